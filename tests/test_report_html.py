"""The HTML report drawn by a real browser: every chart's bars say what the report's numbers say.

Headless Chromium renders the file with the network cut off; for each chart the test reads
every bar's label, series and number, checks them against the report object, and measures
the drawn width against the chart's own axis. Screenshots of the page and of each chart are
kept in ``test-artifacts/`` (or ``$CLOSEDLOOP_TEST_ARTIFACTS``) for a person to look at.
"""
from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from state import Store
from sync.journey.attribution import MODELS
from sync.reports.build import pipeline_report, source_report
from sync.reports.html import MODEL_LABELS, nice_axis, render_html
from test_reports import SETTINGS, populate

pytestmark = pytest.mark.browser
ARTIFACTS = Path(os.environ.get("CLOSEDLOOP_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))

READ_CHART = """svg => {
  const axis = svg.querySelector('line.axis');
  const plot = axis.x2.baseVal.value - axis.x1.baseVal.value;
  return {
    axisMax: parseFloat(svg.dataset.axisMax), plot,
    ticks: [...svg.querySelectorAll('text.tick')].map(t => t.textContent),
    axisLabel: svg.querySelector('text.axis-label').textContent,
    bars: [...svg.querySelectorAll('rect.bar')].map(b => ({
      label: b.dataset.label, series: b.dataset.series, value: parseFloat(b.dataset.value),
      width: b.getBBox().width, shown: b.nextElementSibling.textContent,
      shownInside: b.nextElementSibling.getBBox().x + b.nextElementSibling.getBBox().width <= svg.width.baseVal.value,
      labelDrawn: [...svg.querySelectorAll('text.label')].some(t => t.dataset.full === b.dataset.label &&
                                                                   t.getBBox().x >= 0)})),
  };
}"""


@pytest.fixture
def report(sqlite_url):
    store = Store(sqlite_url)
    populate(store)
    with store.session(readonly=True) as session:
        yield source_report(session, SETTINGS), pipeline_report(session, SETTINGS)
    store.dispose()


def test_the_charts_draw_the_reports_numbers(report, browser, tmp_path):
    sources, pipeline = report
    html = render_html(sources, pipeline)
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:|@import|url\(\s*["']?https?:|<script""", html)
    path = tmp_path / "report.html"
    path.write_text(html)
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
    page.goto(path.as_uri())
    assert fetched == [path.as_uri()]  # one self-contained file
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

    charts = {}
    for chart_id in ("funnel", "revenue-by-model", "pipeline-salesforce", "pipeline-hubspot", "revenue-share"):
        page.locator(f"figure:has(#{chart_id})").screenshot(path=str(ARTIFACTS / f"report-{chart_id}.png"))
        element = page.locator(f"#{chart_id}")
        charts[chart_id] = chart = element.evaluate(READ_CHART)
        assert chart["axisMax"] == nice_axis(max(bar["value"] for bar in chart["bars"]))[0], chart_id
        assert len(chart["ticks"]) >= 2 and chart["ticks"][0] == "0" and chart["axisLabel"], chart_id
        for bar in chart["bars"]:  # drawn to scale, labelled, with its number beside it
            assert bar["width"] == pytest.approx(chart["plot"] * bar["value"] / chart["axisMax"], abs=0.6), bar
            assert bar["labelDrawn"] and bar["shownInside"], bar  # neither label nor number clipped

    funnel = charts["funnel"]["bars"]
    assert [(b["label"], b["value"]) for b in funnel] == [(stage, float(n)) for stage, n in sources.funnel()]
    assert [b["shown"] for b in funnel] == ["5", "3 (60.0% of visitors converted)", "4 (100.0% of leads got one)",
                                            "3 (75.0% of opportunities won)"]

    models = charts["revenue-by-model"]["bars"]
    expected = [(channel, MODEL_LABELS[m], float(sources.by_channel_by_model[m].get(channel, 0)))
                for channel in dict.fromkeys(c for m in MODELS for c in sources.by_channel_by_model[m])
                for m in MODELS]
    assert [(b["label"], b["series"], b["value"]) for b in models] == expected  # every model side by side
    ann = {b["series"]: b["shown"] for b in models if b["label"] == "Email"}
    assert ann["Linear"] in ("3,333.33 · Linear", "3,333.34 · Linear") and ann["First click"] == "0.00 · First click"

    for crm in pipeline.crms:
        bars = charts[f"pipeline-{crm.crm}"]["bars"]
        assert [b["label"] for b in bars] == [stage.label for stage in crm.stages]  # the CRM's order and labels
        assert [b["value"] for b in bars] == [float(crm.stage_totals(s.stage)[1]) for s in crm.stages]
    hubspot = {b["label"]: b["shown"] for b in charts["pipeline-hubspot"]["bars"]}
    assert hubspot == {"Appointment Scheduled": "0 deals · 0.00", "Contract Sent": "1 deal · 800.00",
                       "Closed Won": "2 deals · 2,500.50", "Closed Lost": "0 deals · 0.00"}

    share = charts["revenue-share"]["bars"]
    assert {b["label"]: Decimal(str(b["value"])) for b in share} == {
        channel: value for channel, value in sources.by_channel_by_model["first_click"].items()}
    assert page.locator("table tbody tr").count() == len(sources.rows) + 1
    page.close()


def test_axis_steps_are_round_numbers():
    assert nice_axis(12_500.5) == (15_000, [0, 5_000, 10_000, 15_000])
    assert nice_axis(9_000) == (10_000, [0, 2_000, 4_000, 6_000, 8_000, 10_000])
    assert nice_axis(5)[0] == 5 and nice_axis(0) == (1.0, [0.0, 1.0]) and nice_axis(0.3)[0] == 0.3
