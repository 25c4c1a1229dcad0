"""Reports and explanations as terminal tables that fit the terminal they are printed in.

Rich measures the terminal (``Console().width``: the real width, ``COLUMNS``, else 80) and
these tables are built for that width rather than forced wider: every column has a priority,
and when the columns cannot all be shown at a readable width the least important ones are
left out, with a line saying which and that ``--wide`` shows them all. Long text folds inside
its column. Every value that came from outside goes through :mod:`sync.reports.safe_text`.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sync.reports.build import PipelineReport, SourceReport, SourceRow
from sync.reports.explain import Explanation
from sync.reports.safe_text import cell, plain

MODEL_NAMES = {"first_click": "first click", "last_click": "last non-direct click", "linear": "linear",
               "time_decay": "time decay", "position": "position-based (40/20/40)", "w_shaped": "W-shaped"}


@dataclass(frozen=True)
class Column:
    """A table column: header, how to get its cell, the narrowest readable width, and its
    priority (1 is always shown; higher numbers are dropped first when space runs out)."""

    header: str
    value: Callable[[Any], Any]
    min_width: int
    priority: int
    numeric: bool = False


def fit(columns: list[Column], rows: list[Any], console: Console, *,
        wide: bool = False) -> tuple[list[Column], list[Column]]:
    """The columns that fit the console, and those dropped: the lowest priorities go first
    until rich's own measure of the table's narrowest layout fits. ``wide`` keeps them all."""
    shown, dropped = list(columns), []
    while not wide:
        narrowest = console.measure(_table("", shown, rows, cap=_cap(console)),
                                    options=console.options.update_width(100_000)).minimum
        worst = max((c for c in shown if c.priority > 1), key=lambda c: (c.priority, shown.index(c)), default=None)
        if narrowest <= console.width or worst is None:
            break
        shown.remove(worst)
        dropped.append(worst)
    return shown, dropped


def show(console: Console, title: str, columns: list[Column], rows: list[Any], *, wide: bool = False,
         styles: Callable[[Any], str] | None = None) -> None:
    """Print a table at the terminal's width; with ``wide``, every column, as wide as they need
    (lines longer than the terminal then wrap, or scroll in ``less -S``)."""
    result = table(title, columns, rows, console, wide=wide, styles=styles)
    if wide:
        natural = console.measure(result, options=console.options.update_width(100_000)).maximum
        if natural > console.width:
            console = Console(file=console.file, width=natural)
    console.print(result)


def table(title: str, columns: list[Column], rows: list[Any], console: Console, *, wide: bool = False,
          styles: Callable[[Any], str] | None = None) -> Table:
    shown, dropped = fit(columns, rows, console, wide=wide)
    caption = (f"not shown at this width: {', '.join(c.header for c in dropped)} (--wide shows every column)"
               if dropped else None)
    return _table(title, shown, rows, styles, caption, cap=None if wide else _cap(console))


def _cap(console: Console) -> int:
    """The widest a text column may be in a table that must fit: rich measures a column at
    least as wide as its longest word (a URL, a long id), which a folding column need not be."""
    return max(20, console.width // 3)


def _table(title: str, columns: list[Column], rows: list[Any], styles: Callable[[Any], str] | None = None,
           caption: str | None = None, cap: int | None = None) -> Table:
    result = Table(title=cell(title), title_justify="left", caption_justify="left", caption=caption)
    cells = [[value if isinstance(value, Text) else cell(value) for value in (column.value(row) for column in columns)]
             for row in rows]
    for index, column in enumerate(columns):
        # rich measures a cell by its longest word even when the column never wraps: a numeric
        # column's narrowest is its whole header and its longest value, or the table overflows
        narrowest = column.min_width if not column.numeric else max(
            [column.min_width, cell_len(column.header)] + [values[index].cell_len for values in cells])
        result.add_column(column.header, justify="right" if column.numeric else "left",
                          no_wrap=column.numeric, overflow="fold", min_width=narrowest,
                          max_width=None if cap is None or column.numeric else max(column.min_width, cap))
    for row, values in zip(rows, cells):
        result.add_row(*values, style=styles(row) if styles else None)
    return result


# -- the source report ---------------------------------------------------------------------------

def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def source_columns(report: SourceReport) -> list[Column]:
    def money(value: Decimal | None) -> str:
        return "–" if value is None else f"{value:,.2f}"

    return [
        Column("channel", lambda r: r.channel, 10, 1),
        Column("source", lambda r: r.source, 10, 2),
        Column("campaign", lambda r: r.campaign or ("" if r.is_subtotal or r.is_total else "–"), 10, 4),
        Column("keyword", lambda r: r.label_term, 9, 6),
        Column("visitors", lambda r: r.visitors, 8, 1, True),
        Column("leads", lambda r: r.lead_count, 5, 1, True),
        Column("form", lambda r: r.leads.get("form", 0), 4, 7, True),
        Column("call", lambda r: r.leads.get("call", 0), 4, 7, True),
        Column("chat", lambda r: r.leads.get("chat", 0), 4, 7, True),
        Column("opps", lambda r: r.opportunities, 4, 3, True),
        Column("won", lambda r: r.won, 3, 2, True),
        Column(f"revenue{f' ({report.currency})' if report.currency else ''}", lambda r: money(r.revenue), 10, 1,
               True),
        Column("v→lead", lambda r: _rate(r.rates()["visitor_to_lead"]), 6, 3, True),
        Column("lead→opp", lambda r: _rate(r.rates()["lead_to_opportunity"]), 8, 5, True),
        Column("opp→won", lambda r: _rate(r.rates()["opportunity_to_won"]), 7, 5, True),
        Column("spend", lambda r: money(r.spend), 8, 4, True),
        Column("ROAS", lambda r: "–" if r.roi()[1] is None else f"{r.roi()[1]:,.2f}", 5, 4, True),
    ]


KEY_HEADERS = ("channel", "source", "campaign", "keyword")


def print_source_report(console: Console, report: SourceReport, *, wide: bool = False) -> None:
    """The source report; when the terminal leaves no room for the campaign or keyword columns,
    rows are summed to the level that is shown (channel and source), never repeated."""
    columns = source_columns(report)
    shown, _ = fit(columns, [*report.rows, report.totals()], console, wide=wide)
    level = next((n for n, header in enumerate(KEY_HEADERS) if header not in {c.header for c in shown}), 4)
    rows = [*(report.rows if level == 4 else rollup(report.rows, level)), report.totals()]
    title = f"Revenue by source — {MODEL_NAMES[report.model]} model" + _period(report)
    if level < 4:
        title += f" (summed over {' and '.join(KEY_HEADERS[level:])})"
    show(console, title, columns, rows, wide=wide,
         styles=lambda r: "bold" if r.is_total else ("dim" if r.is_subtotal else ""))
    for currency, value in report.other_currencies.items():
        console.print(Text(f"also {value:,.2f} {plain(currency)} of won revenue in {plain(currency)} "
                           "(not converted, not in the table)"))
    console.print(Text("Visitors are people (devices closedloop linked count once) whose first visit is in the period; "
                       "rates follow them through the funnel, so none exceeds 100%.", style="dim"))


def rollup(rows: list[SourceRow], level: int) -> list[SourceRow]:
    """Detail rows summed by their first ``level`` key parts (channel; channel and source...),
    in the report's order; spend from campaign subtotals joins the group it belongs to."""
    groups: dict[tuple, SourceRow] = {}
    for row in rows:
        key = row.key[:level]
        group = groups.setdefault(key, SourceRow(*key, *[""] * (4 - level)))
        if not row.is_subtotal:
            group.add(row)
        if row.spend is not None:
            group.spend = (group.spend or Decimal(0)) + row.spend
    return list(groups.values())


def print_pipeline(console: Console, pipeline: PipelineReport, *, wide: bool = False) -> None:
    """One table per CRM: its stages in its own order and with its labels, deals by channel."""
    if not pipeline.crms:
        console.print("no deals in this period")
        return
    for crm in pipeline.crms:
        channels = sorted({channel for (channel, _stage) in crm.cells})
        columns = [Column("stage", lambda s: s.label, 12, 1)]
        columns.append(Column("deals", lambda s, crm=crm: crm.stage_totals(s.stage)[0], 5, 1, True))
        columns.append(Column(f"value ({crm.currency})" if crm.currency else "value",
                              lambda s, crm=crm: f"{crm.stage_totals(s.stage)[1]:,.0f}", 9, 1, True))
        for number, channel in enumerate(channels):
            columns.append(Column(channel, lambda s, crm=crm, channel=channel: _deals_cell(crm, channel, s.stage),
                                  max(8, min(len(channel), 14)), 2 + number, True))
        title = f"Pipeline in {crm.name}: deals and value by stage, in {crm.name}'s stage order" + _period(pipeline)
        show(console, title, columns, crm.stages, wide=wide)


def _deals_cell(crm, channel: str, stage: str) -> str:
    count, value = crm.cells.get((channel, stage), (0, Decimal(0)))
    return f"{count} · {value:,.0f}" if count else "–"


def _period(report) -> str:
    if report.since is None and report.until_day is None:
        return ""
    since = report.since.date().isoformat() if report.since else "the beginning"
    until = report.until_day.isoformat() if report.until_day else "today"
    return f", {since} to {until}"


# -- explain ---------------------------------------------------------------------------------------

def _trust_text(device) -> str:
    """The identity trust model, per device (see the README's identity trust model)."""
    if device.trust == "trusted":
        return "trusted: on a CRM record, every touch"
    if device.trust == "claim":
        return f"a claim: touches from {device.counted_from:%Y-%m-%d %H:%M} on"
    return "linked (same email or GA cookie); no record yet"


def print_explanation(console: Console, found: Explanation, variables: Mapping[tuple[str, str], list[tuple[str, str]]],
                      *, wide: bool = False) -> None:
    """``variables``: (crm, object) → [(variable, field)] in mapping order, to name every
    mapped variable (written or not) beside the value last written to its field."""
    devices = ", ".join(d.visitor_id for d in found.devices)
    console.print(Text(f"{found.asked} (found by {found.found_by}) — {len(found.devices)} device(s): {devices}"
                       + (" (capped)" if found.truncated else "") + f"; {len(found.sessions)} session(s); "
                       f"{len(found.records)} CRM record(s)"))
    if found.devices:
        show(console, "Devices", [
            Column("visitor id", lambda d: d.visitor_id, 12, 1),
            Column("device", lambda d: " · ".join(x for x in (d.category, d.browser, d.os) if x) or "–", 12, 2),
            Column("first seen (UTC)", lambda d: f"{d.first_seen_at:%Y-%m-%d %H:%M}", 16, 3),
            Column("last seen (UTC)", lambda d: f"{d.last_seen_at:%Y-%m-%d %H:%M}", 16, 4),
            Column("GA client id", lambda d: d.ga_client_id or "–", 12, 5),
            Column("counts for the CRM", _trust_text, 14, 1),
        ], found.devices, wide=wide)
    if found.sessions:
        numbered = list(enumerate(found.sessions, start=1))
        show(console, "Sessions, and the channel rule each matched", [
            Column("#", lambda e: e[0], 2, 1, True),
            Column("started (UTC)", lambda e: f"{e[1].start:%Y-%m-%d %H:%M}", 16, 1),
            Column("device", lambda e: e[1].visitor_id, 10, 5),
            Column("landing page", lambda e: e[1].landing_page or "–", 10, 4),
            Column("pages", lambda e: e[1].pageviews, 5, 6, True),
            Column("source / medium", lambda e: f"{e[1].source} / {e[1].medium}", 12, 1),
            Column("campaign", lambda e: e[1].campaign or "–", 8, 3),
            Column("channel (rule)", lambda e: f"{e[1].channel} ({e[1].rule})", 14, 1),
            Column("why", lambda e: f"{e[1].source_reason}; {e[1].rule_reason}", 20, 2),
        ], numbered, wide=wide)
    for record in found.records:
        mapped = variables.get((record.crm, record.object), [])
        written = {value.field: value for value in record.values}
        rows = [(variable, name, written.get(name)) for variable, name in mapped]
        rows += [("(not in the mapping now)", name, value) for name, value in written.items()
                 if name not in {field for _, field in mapped}]
        title = (f"{record.crm} {record.object} {record.record_id}: {record.status}"
                 + (f", created {record.created_at:%Y-%m-%d %H:%M}" if record.created_at else "")
                 + (f", last written {record.last_written_at:%Y-%m-%d %H:%M} UTC" if record.last_written_at
                    else ", nothing written yet"))
        show(console, title, [
            Column("variable", lambda r: r[0], 12, 1),
            Column("CRM field", lambda r: r[1], 12, 2),
            Column("value last written", lambda r: "–" if r[2] is None else r[2].value, 14, 1),
            Column("written at (UTC)", lambda r: _written_at(r[2]), 16, 1),
        ], rows, wide=wide)


def _written_at(value) -> str:
    if value is None:
        return "never"
    if value.written_at is None:
        return "before write times were kept"
    return value.written_at[:16].replace("T", " ")


# -- ad platform conversions and reconcile ----------------------------------------------------------

def _money(value) -> str:
    return "–" if value is None else f"{value:,.2f}"


CONVERSION_STATES = ["sent", "queued", "waiting", "no match key", "no consent", "too old", "refused", "dead"]


def print_conversions(console: Console, counts: list[dict], *, wide: bool = False) -> None:
    """Ad platform conversions per stage: sent, and why the rest was not (e.g. "no match key")."""
    if not counts:
        return
    states = CONVERSION_STATES + sorted({key for row in counts for key in row}
                                        - set(CONVERSION_STATES) - {"destination", "stage"})
    columns = [Column("platform", lambda r: r["destination"], 8, 1), Column("stage", lambda r: r["stage"], 8, 1)]
    columns += [Column(state, lambda r, state=state: r.get(state, 0), min(len(state), 8),
                       1 if state in ("sent", "no match key") else 2, True) for state in states]
    show(console, "Ad platform conversions by stage", columns, counts, wide=wide)


def print_reconcile(console: Console, result, *, wide: bool = False, limit: int | None = None) -> None:
    """``closedloop reconcile`` as tables: won deals by first-click channel (the CRMs, what was sent,
    what GA4 and the platforms report), stages by platform, then every difference with its reason
    (the demo shows the first ``limit`` and counts the rest)."""
    show(console, f"Won deals by first-click channel, {result.start} to {result.end}: the CRMs, what closedloop "
                  "sent, what GA4 and the ad platforms report", [
                      Column("channel", lambda r: r.channel, 10, 1),
                      Column("CRM won", lambda r: r.crm_won, 3, 1, True),
                      Column("CRM revenue", lambda r: _money(r.crm_revenue), 10, 1, True),
                      Column("GA4 sent", lambda r: _money(r.ga4_sent), 10, 3, True),
                      Column("GA4 reports", lambda r: _money(r.ga4_received), 10, 1, True),
                      Column("Google Ads won", lambda r: r.google_won, 3, 4, True),
                      Column("Google value", lambda r: _money(r.google_value), 10, 2, True),
                      Column("Meta won", lambda r: r.meta_won, 3, 4, True),
                      Column("Meta value", lambda r: _money(r.meta_value), 10, 2, True)],
         result.channels, wide=wide)
    show(console, "Stages by platform: reached in the CRMs, sent, and what the platform reports", [
        Column("platform", lambda r: r.destination, 8, 1),
        Column("stage", lambda r: r.stage, 8, 1),
        Column("in CRM", lambda r: r.reached, 6, 1, True),
        Column("sent", lambda r: r.sent, 4, 1, True),
        Column("reported", lambda r: "–" if r.received is None else r.received, 8, 2, True),
        Column("not sent (why)", lambda r: ", ".join(f"{reason.replace('_', ' ')} {count}" for reason, count
                                                     in sorted(r.not_sent.items())) or "–", 12, 1)],
         result.stages, wide=wide)
    if result.google_failures:
        console.print(cell("Google Ads reported failed rows: " + ", ".join(
            f"{reason} ×{count}" for reason, count in sorted(result.google_failures.items()))))
    if not result.differences:
        console.print("No differences: every platform holds what the CRM says.")
    else:
        shown = result.differences if limit is None else result.differences[:limit]
        everything = len(shown) == len(result.differences)
        show(console, f"Every difference ({len(result.differences)})" if everything else
             f"Differences: the first {len(shown)} of {len(result.differences)}", [
                 Column("platform", lambda d: d.destination, 8, 1),
                 Column("record", lambda d: f"{d.crm}:{d.record_id}", 12, 1),
                 Column("stage", lambda d: d.stage, 8, 2),
                 Column("why", lambda d: d.why, 20, 1)], shown, wide=wide)
        if not everything:
            by_platform: dict[str, int] = {}
            for item in result.differences:
                by_platform[item.destination] = by_platform.get(item.destination, 0) + 1
            console.print(cell(", ".join(f"{name}: {count}" for name, count in sorted(by_platform.items()))
                               + " differences in all; `closedloop reconcile` lists every one"))
    for note in result.notes:
        console.print(cell(f"note: {note}"))
