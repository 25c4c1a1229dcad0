"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network).

Three charts are drawn as plain SVG so the file opens anywhere, offline, and prints well:
revenue by channel under each attribution model, the funnel by source, and pipeline by stage.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from html import escape

from sync.journey.attribution import MODELS
from sync.reports.build import PipelineReport, SourceReport, source_rows

PALETTE = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#dc2626", "#ca8a04", "#4b5563", "#db2777",
           "#65a30d", "#7c3aed", "#0d9488"]
MODEL_LABELS = {"first_click": "First click", "last_click": "Last non-direct click", "linear": "Linear",
                "time_decay": "Time decay", "position": "Position-based (40/20/40)", "w_shaped": "W-shaped"}


def _money(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}".strip()


def _bars(title: str, rows: list[tuple[str, float]], unit: str, chart_id: str, color: str = PALETTE[0]) -> str:
    """A horizontal bar chart."""
    width, bar, gap, label = 720, 18, 8, 220
    peak = max((value for _, value in rows), default=0) or 1
    height = len(rows) * (bar + gap) + 30
    parts = [f'<svg id="{chart_id}" class="chart" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">']
    for n, (name, value) in enumerate(rows):
        y = 10 + n * (bar + gap)
        length = max(1.0, (width - label - 120) * value / peak) if value > 0 else 0
        parts.append(f'<text x="{label - 8}" y="{y + 13}" text-anchor="end" class="label">{escape(name)}</text>')
        parts.append(f'<rect class="bar" x="{label}" y="{y}" width="{length:.1f}" height="{bar}" fill="{color}">'
                     f'<title>{escape(name)}: {value:,.2f} {escape(unit)}</title></rect>')
        parts.append(f'<text x="{label + length + 6:.1f}" y="{y + 13}" class="value">{value:,.0f}</text>')
    parts.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{''.join(parts)}</figure>"


def _grouped(title: str, categories: list[str], series: dict[str, dict[str, Decimal]], chart_id: str,
             unit: str) -> str:
    """Vertical grouped bars: one group per category, one bar per series."""
    names = list(series)
    group = max(1, len(names)) * 14 + 18
    width, height, base = max(720, 80 + len(categories) * group), 300, 240
    peak = max((float(v) for s in series.values() for v in s.values()), default=0) or 1
    parts = [f'<svg id="{chart_id}" class="chart" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="60" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#9ca3af"/>']
    for c, category in enumerate(categories):
        x0 = 70 + c * group
        for s, name in enumerate(names):
            value = float(series[name].get(category, 0))
            h = (base - 20) * value / peak
            parts.append(f'<rect class="bar" x="{x0 + s * 14}" y="{base - h:.1f}" width="12" height="{h:.1f}" '
                         f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(category)} — {escape(name)}: '
                         f'{value:,.2f} {escape(unit)}</title></rect>')
        parts.append(f'<text x="{x0 + group / 2 - 9}" y="{base + 14}" text-anchor="middle" class="label small" '
                     f'transform="rotate(20 {x0 + group / 2 - 9} {base + 14})">{escape(category)}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{PALETTE[s % len(PALETTE)]}"></i>{escape(name)}</span>'
                     for s, name in enumerate(names))
    return f"<figure><figcaption>{escape(title)}</figcaption>{''.join(parts)}<div class='legend'>{legend}</div></figure>"


def render_html(report: SourceReport, pipeline: PipelineReport) -> str:
    currency = report.currency
    channels = list(dict.fromkeys(c for m in MODELS for c in report.by_channel_by_model.get(m, {})))
    revenue_chart = _grouped(f"Revenue by channel under each attribution model ({currency or 'no revenue yet'})",
                             channels, {MODEL_LABELS[m]: report.by_channel_by_model.get(m, {}) for m in MODELS},
                             "revenue-by-model", currency)
    top = [row for row in report.rows if row.visitors or row.lead_count][:8]
    funnel = _grouped("Funnel by source: visitors, leads, opportunities, won deals",
                      [f"{row.channel} / {row.source}" for row in top],
                      {"Visitors": {f"{r.channel} / {r.source}": Decimal(r.visitors) for r in top},
                       "Leads": {f"{r.channel} / {r.source}": Decimal(r.lead_count) for r in top},
                       "Opportunities": {f"{r.channel} / {r.source}": Decimal(r.opportunities) for r in top},
                       "Won deals": {f"{r.channel} / {r.source}": Decimal(r.won) for r in top}},
                      "funnel-by-source", "")
    pipeline_channels = sorted({channel for channel, _ in pipeline.cells})
    pipeline_chart = _grouped(f"Pipeline by stage and first-click channel ({pipeline.currency})", pipeline.stages,
                              {channel: {stage: pipeline.cells.get((channel, stage), [0, Decimal(0)])[1]
                                         for stage in pipeline.stages} for channel in pipeline_channels},
                              "pipeline-by-stage", pipeline.currency)
    share = _bars(f"{MODEL_LABELS[report.model]}: revenue by channel",
                  [(channel, float(value)) for channel, value in report.by_channel_by_model.get(report.model, {}).items()],
                  currency, "revenue-share")
    rows = source_rows(report)
    head = "".join(f"<th>{escape(h)}</th>" for h in ("Channel", "Source", "Campaign", "Keyword", "Visitors", "Leads",
                                                     "Form", "Call", "Chat", "Opps", "Won", f"Revenue ({currency})",
                                                     "Visitor→lead", "Spend", "ROAS"))
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(value))}</td>" for value in (
            r["channel"], r["source"], r["campaign"], r["term"], r["visitors"], r["leads"], r["form"], r["call"],
            r["chat"], r["opportunities"], r["won"], f"{Decimal(r['revenue']):,.2f}",
            f"{r['visitor_to_lead']:.1%}" if r["visitor_to_lead"] is not None else "–", r["spend"] or "–",
            r["roas"] or "–")) + "</tr>" for r in rows)
    other = "".join(f"<li>{_money(v, c)} in won deals in {escape(c)} (not converted, not charted)</li>"
                    for c, v in report.other_currencies.items())
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>closedloop report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #111827; }}
h1 {{ font-size: 1.5rem; margin-bottom: .2rem; }} .meta {{ color: #6b7280; margin-top: 0; }}
figure {{ margin: 1.5rem 0; }} figcaption {{ font-weight: 600; margin-bottom: .4rem; }}
.chart text {{ font-size: 11px; fill: #374151; }} .chart .small {{ font-size: 10px; }}
.legend .key {{ margin-right: 1rem; font-size: 12px; }} .legend i {{ display: inline-block; width: 10px;
  height: 10px; margin-right: 4px; }}
table {{ border-collapse: collapse; font-size: 12px; }} th, td {{ border-bottom: 1px solid #e5e7eb;
  padding: 4px 8px; text-align: right; }} th:nth-child(-n+4), td:nth-child(-n+4) {{ text-align: left; }}
tr:last-child td {{ font-weight: 600; }}
</style></head><body>
<h1>closedloop — revenue and pipeline by source</h1>
<p class="meta">Attribution model for the table: {escape(MODEL_LABELS[report.model])}. Generated {generated}.</p>
{share}
{revenue_chart}
{funnel}
{pipeline_chart}
<h2>Source report</h2>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<ul>{other}</ul>
</body></html>
"""
