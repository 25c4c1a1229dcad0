"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network).

Every chart is a horizontal bar chart drawn as plain SVG, so the file opens anywhere, offline,
and prints well. Each shows exactly what its title says, with a labelled value axis (ticks
and grid lines from zero), a label for every bar and its number at the bar's end:

- the funnel: visitors, leads, opportunities and won deals of the period, one bar per stage,
  with each stage's share of the one before;
- revenue by channel under every attribution model, the models side by side per channel;
- pipeline by stage, one chart per CRM, in that CRM's own stage order and with its labels
  (HubSpot's ``closedwon`` reads "Closed Won"), deals and value per stage;
- the chosen model's revenue by channel.

Bars carry their numbers as ``data-value`` (and the chart its axis maximum as
``data-axis-max``), which the browser test compares with the report and with the drawn widths.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from html import escape

from sync.journey.attribution import MODELS
from sync.reports.build import PipelineReport, SourceReport, source_rows
from sync.reports.safe_text import plain

PALETTE = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#dc2626", "#ca8a04", "#4b5563", "#db2777",
           "#65a30d", "#7c3aed", "#0d9488"]
MODEL_LABELS = {"first_click": "First click", "last_click": "Last non-direct click", "linear": "Linear",
                "time_decay": "Time decay", "position": "Position-based (40/20/40)", "w_shaped": "W-shaped"}
WIDTH, LABEL_WIDTH, VALUE_ROOM, BAR, GAP, GROUP_GAP = 980, 250, 250, 16, 3, 12
LABEL_CHARS = 36  # what fits LABEL_WIDTH at the label font size; longer labels end in "…" (full text on hover)


def _text(value) -> str:
    """Outside text for HTML: control characters removed, then escaped."""
    return escape(plain(value))


@dataclass(frozen=True)
class Bar:
    series: str
    value: float
    caption: str  # the number shown at the bar's end


def nice_axis(peak: float) -> tuple[float, list[float]]:
    """An axis maximum at or above ``peak`` and its ticks, at 1, 2 or 5 times a power of ten."""
    if peak <= 0:
        return 1.0, [0.0, 1.0]
    raw = peak / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    steps = math.ceil(round(peak / step, 9))
    return round(steps * step, 9), [round(step * i, 9) for i in range(steps + 1)]


def _tick(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def chart(chart_id: str, title: str, groups: list[tuple[str, list[Bar]]], axis_label: str,
          legend: list[str] | None = None) -> str:
    """Horizontal bars: one group per category (its label on the left), one bar per series."""
    peak = max((bar.value for _, bars in groups for bar in bars), default=0)
    top, ticks = nice_axis(peak)
    plot = WIDTH - LABEL_WIDTH - VALUE_ROOM
    colours = {name: PALETTE[n % len(PALETTE)] for n, name in enumerate(legend or [])}
    y = 8
    parts = []
    for label, bars in groups:
        group_height = len(bars) * (BAR + GAP) - GAP
        shown = label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"
        parts.append(f'<text class="label" x="{LABEL_WIDTH - 10}" y="{y + group_height / 2 + 4:.1f}" '
                     f'text-anchor="end" data-full="{_text(label)}">{_text(shown)}<title>{_text(label)}</title>'
                     "</text>")
        for bar in bars:
            length = plot * bar.value / top if bar.value > 0 else 0
            colour = colours.get(bar.series, PALETTE[0])
            parts.append(f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{length:.2f}" height="{BAR}" '
                         f'fill="{colour}" data-label="{_text(label)}" data-series="{_text(bar.series)}" '
                         f'data-value="{bar.value:.2f}"><title>{_text(label)}'
                         f'{" — " + _text(bar.series) if legend else ""}: {_text(bar.caption)}</title></rect>')
            parts.append(f'<text class="value" x="{LABEL_WIDTH + length + 5:.2f}" y="{y + BAR - 4}">'
                         f'{_text(bar.caption)}</text>')
            y += BAR + GAP
        y += GROUP_GAP
    axis_y = y
    grid = [f'<line class="grid" x1="{LABEL_WIDTH + plot * t / top:.2f}" y1="4" x2="{LABEL_WIDTH + plot * t / top:.2f}" '
            f'y2="{axis_y}"/><text class="tick" x="{LABEL_WIDTH + plot * t / top:.2f}" y="{axis_y + 14}" '
            f'text-anchor="middle">{_tick(t)}</text>' for t in ticks]
    height = axis_y + 40
    svg = (f'<svg id="{chart_id}" class="chart" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
           f'role="img" aria-label="{_text(title)}" data-axis-max="{top:g}" xmlns="http://www.w3.org/2000/svg">'
           + "".join(grid) + "".join(parts)
           + f'<line class="axis" x1="{LABEL_WIDTH}" y1="{axis_y}" x2="{LABEL_WIDTH + plot}" y2="{axis_y}"/>'
           f'<line class="axis" x1="{LABEL_WIDTH}" y1="4" x2="{LABEL_WIDTH}" y2="{axis_y}"/>'
           f'<text class="axis-label" x="{LABEL_WIDTH + plot / 2}" y="{axis_y + 32}" text-anchor="middle">'
           f'{_text(axis_label)}</text></svg>')
    keys = "".join(f'<span class="key"><i style="background:{colour}"></i>{_text(name)}</span>'
                   for name, colour in colours.items())
    return (f'<figure><figcaption>{_text(title)}</figcaption>'
            + (f'<div class="legend">{keys}</div>' if legend else "") + f"{svg}</figure>")


def _money(value: Decimal | float) -> str:
    return f"{value:,.2f}"


def funnel_chart(report: SourceReport) -> str:
    """Counts per stage; beside each, the period's conversion into it (never above 100%)."""
    rates = report.totals().rates()
    notes = ["", ("visitor_to_lead", "of visitors converted"), ("lead_to_opportunity", "of leads got one"),
             ("opportunity_to_won", "of opportunities won")]
    groups = []
    for (stage, count), note in zip(report.funnel(), notes):
        rate = rates[note[0]] if note else None
        groups.append((stage, [Bar(stage, float(count), f"{count:,}" + (f" ({rate:.1%} {note[1]})"
                                                                         if rate is not None else ""))]))
    return chart("funnel", "Funnel: visitors, leads, opportunities and won deals" + _period(report), groups,
                 "count")


def models_chart(report: SourceReport) -> str:
    currency = report.currency or "no revenue yet"
    channels = list(dict.fromkeys(c for m in MODELS for c in report.by_channel_by_model.get(m, {})))
    groups = [(channel, [Bar(MODEL_LABELS[m], float(report.by_channel_by_model.get(m, {}).get(channel, 0)),
                             f"{_money(report.by_channel_by_model.get(m, {}).get(channel, Decimal(0)))} "
                             f"· {MODEL_LABELS[m]}")  # named on the bar too: not by colour alone
                         for m in MODELS]) for channel in channels]
    return chart("revenue-by-model", f"Won revenue by channel under each attribution model, side by side ({currency})",
                 groups, f"revenue ({currency})", legend=[MODEL_LABELS[m] for m in MODELS])


def share_chart(report: SourceReport) -> str:
    values = report.by_channel_by_model.get(report.model, {})
    return chart("revenue-share", f"{MODEL_LABELS[report.model]}: won revenue by channel ({report.currency or '–'})",
                 [(channel, [Bar("revenue", float(value), _money(value))]) for channel, value in values.items()],
                 f"revenue ({report.currency or '–'})")


def pipeline_charts(pipeline: PipelineReport) -> str:
    charts = []
    for crm in pipeline.crms:
        groups = []
        for stage in crm.stages:
            count, value = crm.stage_totals(stage.stage)
            groups.append((stage.label, [Bar("value", float(value), f"{count} deal{'s' * (count != 1)} · "
                                                                    f"{_money(value)}")]))
        charts.append(chart(f"pipeline-{crm.crm}", f"Pipeline in {crm.name}: deal value by stage, in {crm.name}'s "
                                                   f"stage order ({crm.currency})" + _period(pipeline),
                            groups, f"deal value ({crm.currency})"))
    return "".join(charts) or "<p>No deals in this period.</p>"


def _period(report) -> str:
    if report.since is None and report.until_day is None:
        return ""
    return (f", {report.since.date() if report.since else 'the beginning'} to "
            f"{report.until_day or 'today'}")


def render_html(report: SourceReport, pipeline: PipelineReport) -> str:
    currency = report.currency
    rows = source_rows(report)
    head = "".join(f"<th>{escape(h)}</th>" for h in ("Channel", "Source", "Campaign", "Keyword", "Visitors", "Leads",
                                                     "Form", "Call", "Chat", "Opps", "Won", f"Revenue ({currency})",
                                                     "Visitor→lead", "Lead→opp", "Opp→won", "Spend", "ROAS"))

    def rate(value: float | None) -> str:
        return "–" if value is None else f"{value:.1%}"

    body = "".join(
        f'<tr class="{r["row"]}">' + "".join(f"<td>{_text(value)}</td>" for value in (
            r["channel"], r["source"], r["campaign"], r["term"], r["visitors"], r["leads"], r["form"], r["call"],
            r["chat"], r["opportunities"], r["won"], _money(Decimal(r["revenue"])), rate(r["visitor_to_lead"]),
            rate(r["lead_to_opportunity"]), rate(r["opportunity_to_won"]), r["spend"] or "–",
            r["roas"] or "–")) + "</tr>" for r in rows)
    other = "".join(f"<li>{_money(v)} {_text(c)} in won deals in {_text(c)} (not converted, not charted)</li>"
                    for c, v in report.other_currencies.items())
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>closedloop report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #111827; }}
h1 {{ font-size: 1.5rem; margin-bottom: .2rem; }} .meta {{ color: #6b7280; margin-top: 0; }}
figure {{ margin: 1.8rem 0; }} figcaption {{ font-weight: 600; margin-bottom: .4rem; }}
.chart text {{ font-size: 12px; fill: #374151; }} .chart .value {{ font-size: 11px; fill: #111827; }}
.chart .tick {{ font-size: 10px; fill: #6b7280; }} .chart .axis-label {{ font-size: 11px; fill: #6b7280; }}
.chart .axis {{ stroke: #6b7280; }} .chart .grid {{ stroke: #e5e7eb; }}
.legend .key {{ margin-right: 1rem; font-size: 12px; white-space: nowrap; }} .legend i {{ display: inline-block;
  width: 10px; height: 10px; margin-right: 4px; }}
table {{ border-collapse: collapse; font-size: 12px; }} th, td {{ border-bottom: 1px solid #e5e7eb;
  padding: 4px 8px; text-align: right; }} th:nth-child(-n+4), td:nth-child(-n+4) {{ text-align: left; }}
tr.total td {{ font-weight: 600; }} tr.subtotal td {{ color: #4b5563; font-style: italic; }}
.note {{ color: #4b5563; max-width: 60rem; }}
</style></head><body>
<h1>closedloop — revenue and pipeline by source</h1>
<p class="meta">Attribution model for the table: {escape(MODEL_LABELS[report.model])}{escape(_period(report))}.
Generated {generated}.</p>
{funnel_chart(report)}
{models_chart(report)}
{pipeline_charts(pipeline)}
{share_chart(report)}
<h2>Source report</h2>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<ul>{other}</ul>
<p class="note">Visitors are people (devices closedloop linked count once) whose first visit is in the period; leads,
opportunities and won deals count by their own dates (creation, creation, close). Rates follow the period's visitors,
leads and opportunities through the funnel, so none exceeds 100%. Spend is joined at the level the spend file gives:
campaign spend without keywords shows on the campaign (subtotal rows in italics).</p>
</body></html>
"""
