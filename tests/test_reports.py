"""Source and pipeline reports, spend import, and the HTML report drawn in a real browser."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from state.models import DealRecord, LeadSync
from sync.capture.beacon import Hit
from sync.capture.writer import BeaconWriter
from sync.journey.attribution import MODELS
from sync.journey.compute import JourneySettings
from sync.reports.build import pipeline_report, source_report
from sync.reports.html import render_html

NOW = datetime.now(timezone.utc)
SETTINGS = JourneySettings(site_hosts=("www.example.com",))


def hit(visitor, days_ago, url, referrer="", kind="pageview", conversion_type=None):
    return Hit(visitor_id=visitor, kind=kind, occurred_at=NOW - timedelta(days=days_ago), url=url, referrer=referrer,
               utm={}, click_ids={}, ga_client_id=None, ga_session_id=None, language=None, timezone=None,
               user_agent="UA", conversion_type=conversion_type, consent=None, session_key=None)


@pytest.fixture
def populated(store):
    """Three buyers and a browser that never converted."""
    BeaconWriter(store).write([
        hit("ann", 20, "https://www.example.com/?utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_term=crm"),
        hit("ann", 10, "https://www.example.com/blog", "https://www.linkedin.com/"),
        hit("ann", 5, "https://www.example.com/?utm_source=newsletter&utm_medium=email"),
        hit("ann", 5, "https://www.example.com/contact", kind="identify", conversion_type="form"),
        hit("bob", 8, "https://www.example.com/", "https://www.bing.com/"),
        hit("bob", 7, "https://www.example.com/contact", kind="conversion", conversion_type="call"),
        hit("cy", 3, "https://www.example.com/"),
        hit("dee", 2, "https://www.example.com/?utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_term=crm"),
    ])
    with store.session() as session:
        for crm, obj, record, visitors, days in (("salesforce", "Lead", "L1", ["ann"], 5), ("hubspot", "contacts", "C1",
                                                                                           ["bob"], 7),
                                                ("hubspot", "contacts", "C2", ["cy"], 3)):
            session.add(LeadSync(crm=crm, object=obj, record_id=record, status="enriched", visitor_ids=visitors,
                                 record_created_at=NOW - timedelta(days=days, minutes=-1)))
        session.add(LeadSync(crm="salesforce", object="Contact", record_id="K1", status="enriched",
                             visitor_ids=["ann"], record_created_at=NOW - timedelta(days=5, minutes=-1)))
        session.add(DealRecord(crm="salesforce", deal_id="O1", stage="Closed Won", is_won=True, is_closed=True,
                               amount="10000", currency="USD", created_at=NOW - timedelta(days=4),
                               closed_at=NOW - timedelta(days=1), person_object="Contact", person_id="K1"))
        session.add(DealRecord(crm="hubspot", deal_id="D1", stage="closedwon", is_won=True, is_closed=True,
                               amount="2500.50", currency="USD", created_at=NOW - timedelta(days=6),
                               closed_at=NOW - timedelta(days=2), person_object="contacts", person_id="C1"))
        session.add(DealRecord(crm="hubspot", deal_id="D2", stage="contractsent", amount="800", currency="USD",
                               created_at=NOW - timedelta(days=2), person_object="contacts", person_id="C2"))
        session.add(DealRecord(crm="hubspot", deal_id="D3", stage="closedwon", is_won=True, is_closed=True,
                               amount="99", currency="EUR", created_at=NOW - timedelta(days=1),
                               person_object="contacts", person_id="C2"))
    return store


def test_source_report_counts_and_first_click_revenue(populated):
    with populated.session(readonly=True) as session:
        report = source_report(session, SETTINGS)
    rows = {(r.channel, r.source): r for r in report.rows}
    paid = rows[("Paid Search", "google")]
    assert paid.visitors == 2 and paid.leads == {"form": 1} and paid.won == 1 and paid.revenue == Decimal("10000")
    assert (paid.campaign, paid.term) == ("brand", "crm")
    organic = rows[("Organic Search", "bing")]
    assert organic.leads == {"call": 1} and organic.revenue == Decimal("2500.50") and organic.opportunities == 1
    direct = rows[("Direct", "(direct)")]
    assert direct.visitors == 1 and direct.opportunities == 2 and direct.won == 1 and direct.revenue == 0
    assert report.currency == "USD" and report.other_currencies == {"EUR": Decimal("99")}
    assert paid.rates()["visitor_to_lead"] == 0.5


def test_every_model_credits_exactly_the_won_revenue(populated):
    with populated.session(readonly=True) as session:
        for model in MODELS:
            report = source_report(session, SETTINGS, model=model)
            assert sum(report.by_channel_by_model[model].values()) == Decimal("12500.50")
            assert report.totals().revenue == Decimal("12500.50")
        linear = source_report(session, SETTINGS, model="linear")
    shares = linear.by_channel_by_model["linear"]  # Ann's 10,000 over three touches, cent-exact
    assert sorted(shares[c] for c in ("Paid Search", "Organic Social", "Email")) == [
        Decimal("3333.33"), Decimal("3333.33"), Decimal("3333.34")]


def test_pipeline_report_by_stage(populated):
    with populated.session(readonly=True) as session:
        pipeline = pipeline_report(session, SETTINGS)
    assert pipeline.cells[("Paid Search", "Closed Won")] == [1, Decimal("10000")]
    assert pipeline.cells[("Direct", "contractsent")] == [1, Decimal("800")]
    assert set(pipeline.stages) == {"Closed Won", "closedwon", "contractsent"}


def test_csv_and_spend_roas(populated, tmp_path, write_config):
    config = write_config(f'[state]\nurl = "{populated.url.render_as_string(hide_password=False)}"\n')
    spend = tmp_path / "spend.csv"
    spend.write_text("date,channel,source,campaign,cost\n2026-11-01,Paid Search,google,brand,2500\n"
                     "2026-13-01,Email,newsletter,,10\nnot-a-date,,,,\n")
    bad = subprocess.run([sys.executable, "-m", "sync.cli", "spend", "import", str(spend), "--config", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert f"{spend}:3: date: '2026-13-01' is not a YYYY-MM-DD date" in bad.stderr
    assert f"{spend}:4: date: 'not-a-date' is not a YYYY-MM-DD date" in bad.stderr
    assert "nothing imported (2 bad row(s))" in bad.stderr
    spend.write_text("date,channel,source,campaign,cost\n2026-11-01,Paid Search,google,brand,2500\n")
    ok = subprocess.run([sys.executable, "-m", "sync.cli", "spend", "import", str(spend), "--config", str(config)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "imported 1 spend row(s), 2,500.00 in total" in ok.stdout
    result = subprocess.run([sys.executable, "-m", "sync.cli", "report", "--format", "csv", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    rows = {line.split(",")[0] + "/" + line.split(",")[1]: line.split(",") for line in result.stdout.splitlines()[1:]}
    paid = rows["Paid Search/google"]
    header = result.stdout.splitlines()[0].split(",")
    assert paid[header.index("spend")] == "2500" and paid[header.index("roas")] == "4.00"
    assert paid[header.index("roi")] == "3.00"
    assert "Total/" in rows


def test_html_report_draws_its_charts_in_a_browser(populated, browser, tmp_path):
    with populated.session(readonly=True) as session:
        html = render_html(source_report(session, SETTINGS), pipeline_report(session, SETTINGS))
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:|@import|url\(\s*["']?https?:""", html)  # offline
    path = tmp_path / "report.html"
    path.write_text(html)
    page = browser.new_page()
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
    page.goto(path.as_uri())
    assert fetched == [path.as_uri()]  # nothing but the file itself
    for chart in ("revenue-by-model", "funnel-by-source", "pipeline-by-stage", "revenue-share"):
        drawn = page.eval_on_selector_all(f"#{chart} rect.bar", "bars => bars.filter(b => b.getBBox().width > 0 && "
                                                                "b.getBBox().height > 0).length")
        assert drawn > 0, chart
    assert page.locator("table tbody tr").count() >= 4
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    page.close()


def test_report_json_command(populated, write_config):
    config = write_config(f'[state]\nurl = "{populated.url.render_as_string(hide_password=False)}"\n')
    result = subprocess.run([sys.executable, "-m", "sync.cli", "report", "--model", "w_shaped", "--format", "json",
                             "--config", str(config)], capture_output=True, text=True, timeout=60,
                            env={**os.environ})
    data = json.loads(result.stdout)
    assert data["model"] == "w_shaped" and data["rows"][-1]["channel"] == "Total"
    assert Decimal(data["rows"][-1]["revenue"]) == Decimal("12500.50")
