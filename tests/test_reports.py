"""Source and pipeline reports, spend, periods and terminal safety, run as a user runs them."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from state import Store
from state.models import DeadLetter, DealRecord, DealStageRecord, Identity, JobRun, LeadSync
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.writer import BeaconWriter
from sync.journey.attribution import MODELS
from sync.journey.compute import JourneySettings
from sync.reports.build import pipeline_report, source_report

NOW = datetime.now(timezone.utc)
SETTINGS = JourneySettings(site_hosts=("www.example.com",))
CLOSEDLOOP = [sys.executable, "-m", "sync.cli"]


def hit(visitor, days_ago, url, referrer="", kind="pageview", conversion_type=None, utm=None, email=None):
    return Hit(visitor_id=visitor, kind=kind, occurred_at=NOW - timedelta(days=days_ago), url=url, referrer=referrer,
               utm=utm or {}, click_ids={}, ga_client_id=None, ga_session_id=None, language=None, timezone=None,
               user_agent="UA", conversion_type=conversion_type, consent=None, session_key=None,
               email_sha256=hash_email(email) if email else None)


@pytest.fixture
def populated(store):
    """Three buyers, two browsers that never converted, and a second device of one buyer."""
    return populate(store)


@pytest.fixture
def on_sqlite(sqlite_url):
    """The same data on SQLite only, for the tests that run the CLI (the stores agree above)."""
    store = Store(sqlite_url)
    yield populate(store)
    store.dispose()


def populate(store):
    BeaconWriter(store).write([
        hit("ann", 20, "https://www.example.com/?utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_term=crm"),
        hit("ann", 10, "https://www.example.com/blog", "https://www.linkedin.com/"),
        hit("ann", 5, "https://www.example.com/?utm_source=newsletter&utm_medium=email"),
        hit("ann", 5, "https://www.example.com/contact", kind="identify", conversion_type="form", email="ann@x.example"),
        hit("annphone", 4, "https://www.example.com/pricing"),
        hit("annphone", 4, "https://www.example.com/pricing", kind="identify", email="ann@x.example"),
        hit("bob", 8, "https://www.example.com/", "https://www.bing.com/"),
        hit("bob", 7, "https://www.example.com/contact", kind="conversion", conversion_type="call"),
        hit("cy", 3, "https://www.example.com/"),
        hit("dee", 2, "https://www.example.com/?utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_term=crm"),
        hit("eve", 2, "https://www.example.com/?utm_source=google&utm_medium=cpc&utm_campaign=brand"
                      "&utm_term=attribution"),
    ])
    with store.session() as session:
        for crm, obj, record, visitors, days in (("salesforce", "Lead", "L1", ["ann"], 5),
                                                 ("hubspot", "contacts", "C1", ["bob"], 7),
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
        for position, (stage, label) in enumerate([("appointmentscheduled", "Appointment Scheduled"),
                                                   ("contractsent", "Contract Sent"), ("closedwon", "Closed Won"),
                                                   ("closedlost", "Closed Lost")]):
            session.add(DealStageRecord(crm="hubspot", stage=stage, label=label, pipeline="Sales Pipeline",
                                        position=position))
        for position, stage in enumerate(["Prospecting", "Negotiation/Review", "Closed Won", "Closed Lost"]):
            session.add(DealStageRecord(crm="salesforce", stage=stage, label=stage, position=position))
    return store


@pytest.fixture
def config_for(write_config):
    def write(store) -> str:
        return str(write_config(f'[state]\nurl = "{store.url.render_as_string(hide_password=False)}"\n'
                                '[collector]\nallowed_origins = ["https://www.example.com"]\n'))
    return write


def closedloop(*args, columns: int = 200, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLOSEDLOOP, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": str(columns)}, **kwargs)


def test_source_report_counts_and_first_click_revenue(populated):
    with populated.session(readonly=True) as session:
        report = source_report(session, SETTINGS)
    rows = {(r.channel, r.source, r.term): r for r in report.rows}
    paid = rows[("Paid Search", "google", "crm")]
    # ann's laptop and phone are one person (same email); dee is another: two visitors, one lead.
    assert paid.visitors == 2 and paid.leads == {"form": 1} and paid.won == 1 and paid.revenue == Decimal("10000")
    assert paid.campaign == "brand"
    assert paid.rates() == {"visitor_to_lead": 0.5, "lead_to_opportunity": 1.0, "opportunity_to_won": 1.0}
    organic = rows[("Organic Search", "bing", "")]
    assert organic.leads == {"call": 1} and organic.revenue == Decimal("2500.50") and organic.opportunities == 1
    direct = rows[("Direct", "(direct)", "")]
    assert direct.visitors == 1 and direct.opportunities == 2 and direct.won == 1 and direct.revenue == 0
    assert report.currency == "USD" and report.other_currencies == {"EUR": Decimal("99")}
    assert report.totals().visitors == 5  # ann (two devices), bob, cy, dee, eve
    assert report.funnel() == [("Visitors", 5), ("Leads", 3), ("Opportunities", 4), ("Won deals", 3)]


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


def test_pipeline_report_in_each_crms_stage_order_and_labels(populated):
    with populated.session(readonly=True) as session:
        pipeline = pipeline_report(session, SETTINGS)
    by_crm = {crm.crm: crm for crm in pipeline.crms}
    hubspot, salesforce = by_crm["hubspot"], by_crm["salesforce"]
    assert [s.label for s in hubspot.stages] == ["Appointment Scheduled", "Contract Sent", "Closed Won",
                                                 "Closed Lost"]  # HubSpot's order, HubSpot's labels
    assert hubspot.stage_totals("closedwon") == (2, Decimal("2500.50"))  # the EUR deal counts, its value apart
    assert hubspot.cells[("Direct", "contractsent")] == [1, Decimal("800")]
    assert [s.label for s in salesforce.stages][:2] == ["Prospecting", "Negotiation/Review"]
    assert salesforce.cells[("Paid Search", "Closed Won")] == [1, Decimal("10000")]


@pytest.mark.parametrize("since_days, until_days", [(None, None), (30, 0), (6, 0), (4, 2), (3, 3), (2, 0), (1, 0)])
def test_every_section_is_filtered_by_the_same_dates_and_rates_stay_at_most_100_percent(populated, since_days,
                                                                                        until_days):
    """Visitors by first visit, leads and opportunities by creation, won deals by close date;
    the rates follow the period's own visitors, leads and opportunities."""
    day = lambda n: None if n is None else datetime.combine((NOW - timedelta(days=n)).date(),  # noqa: E731
                                                            datetime.min.time(), timezone.utc)
    since, until = day(since_days), (day(until_days) + timedelta(days=1)) if until_days is not None else None
    with populated.session(readonly=True) as session:
        report = source_report(session, SETTINGS, since=since, until=until)
        pipeline = pipeline_report(session, SETTINGS, since=since, until=until)
        deals = session.exec(__import__("sqlmodel").select(DealRecord)).all()
        leads = session.exec(__import__("sqlmodel").select(LeadSync)).all()
    within = lambda moment: (since is None or moment >= since) and (until is None or moment < until)  # noqa: E731
    total = report.totals()
    assert total.opportunities == sum(1 for d in deals if within(d.created_at))
    assert total.won == sum(1 for d in deals if d.is_won and within(min(d.closed_at or d.updated_at, d.updated_at)))
    assert total.lead_count == sum(1 for s in leads if s.object != "Contact" and within(s.record_created_at))
    assert sum(crm.stage_totals(s.stage)[0] for crm in pipeline.crms for s in crm.stages) == total.opportunities
    for row in [*report.rows, total]:
        assert all(rate is None or 0 <= rate <= 1 for rate in row.rates().values()), row


def test_spend_is_joined_at_the_campaign_unless_the_file_names_keywords(on_sqlite, tmp_path, config_for):
    config = config_for(on_sqlite)
    spend = tmp_path / "spend.csv"
    spend.write_text("date,channel,source,campaign,cost\n2026-13-01,Email,newsletter,,10\nnot-a-date,,,,\n")
    bad = closedloop("spend", "import", str(spend), "--config", config)
    assert bad.returncode == 2
    assert f"{spend}:2: date: '2026-13-01' is not a YYYY-MM-DD date" in bad.stderr
    assert f"{spend}:3: date: 'not-a-date' is not a YYYY-MM-DD date" in bad.stderr
    assert "nothing imported (2 bad row(s))" in bad.stderr
    today = NOW.date().isoformat()
    spend.write_text(f"date,channel,source,campaign,cost\n{today},Paid Search,google,brand,2500\n")
    assert closedloop("spend", "import", str(spend), "--config", config).returncode == 0
    rows = _csv(closedloop("report", "--format", "csv", "--config", config).stdout)
    brand = [r for r in rows if r["campaign"] == "brand"]
    assert [(r["row"], r["term"], r["spend"]) for r in brand] == [
        ("detail", "crm", ""), ("detail", "attribution", ""), ("subtotal", "(all keywords)", "2500")]
    subtotal = brand[-1]  # the campaign as a whole: 10,000 of revenue on 2,500 of spend
    assert (Decimal(subtotal["revenue"]), subtotal["roas"], subtotal["roi"]) == (Decimal(10000), "4.00", "3.00")
    assert subtotal["visitors"] == "3" and rows[-1]["row"] == "total" and rows[-1]["spend"] == "2500"
    keyworded = tmp_path / "keywords.csv"
    keyworded.write_text(f"date,channel,source,campaign,keyword,cost\n{today},Paid Search,google,brand,crm,400\n")
    assert closedloop("spend", "import", str(keyworded), "--config", config).returncode == 0
    rows = _csv(closedloop("report", "--format", "csv", "--config", config).stdout)
    crm_row = next(r for r in rows if r["term"] == "crm")
    assert crm_row["spend"] == "400" and crm_row["roas"] == "25.00" and rows[-1]["spend"] == "2900"


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_report_fits_an_80_column_terminal_and_wide_shows_everything(on_sqlite, config_for):
    config = config_for(on_sqlite)
    narrow = closedloop("report", "--config", config, columns=80)
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    header = next(line for line in lines if "channel" in line and "visitors" in line)
    for column in ("channel", "visitors", "leads", "won", "revenue"):
        assert column in header  # the first-priority columns always stay
    assert "not shown at this width:" in narrow.stdout and "--wide shows every column" in narrow.stdout
    assert "Paid Search" in narrow.stdout and "12,500.50" in narrow.stdout
    wide = closedloop("report", "--wide", "--config", config, columns=80)
    assert wide.returncode == 0 and "not shown at this width" not in wide.stdout
    for column in ("keyword", "form", "call", "chat", "ROAS", "lead→opp"):
        assert column in wide.stdout
    pipeline = closedloop("report", "pipeline", "--config", config, columns=80)
    assert pipeline.returncode == 0, pipeline.stderr
    assert max(len(line) for line in pipeline.stdout.splitlines()) <= 80
    out = pipeline.stdout
    assert out.index("Appointment Scheduled") < out.index("Contract Sent") < out.index("Closed Won")
    assert "closedwon" not in out and "contractsent" not in out


def test_periods_that_hold_nothing_are_refused(on_sqlite, config_for):
    config = config_for(on_sqlite)
    inverted = closedloop("report", "--since", "2026-11-10", "--until", "2026-11-01", "--config", config)
    assert inverted.returncode == 2
    assert inverted.stderr == ("closedloop: error: --since 2026-11-10 is after --until 2026-11-01: the period "
                               "would be empty\n")
    future = (NOW + timedelta(days=3)).date().isoformat()
    ahead = closedloop("report", "--since", future, "--config", config)
    assert ahead.returncode == 2 and "is in the future: the period holds no data yet" in ahead.stderr
    one_day = closedloop("report", "--since", NOW.date().isoformat(), "--until", NOW.date().isoformat(),
                         "--format", "json", "--config", config)
    assert one_day.returncode == 0, one_day.stderr
    data = json.loads(one_day.stdout)
    assert data["since"] == data["until"] == NOW.date().isoformat()


def test_report_in_a_folder_without_a_database_creates_none(tmp_path, write_config):
    config = write_config('[state]\nurl = "sqlite:///state/closedloop.db"\n')
    result = closedloop("report", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"closedloop: error: no state database at {tmp_path / 'state' / 'closedloop.db'} "
                                     "(is --config or [state] url right?): run `closedloop migrate` to create it")
    assert not (tmp_path / "state").exists()


HOSTILE = {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "[/bogus] [bold red]boom",
           "utm_term": "\x1b]8;;https://osc-target.example/\x07click me\x1b]8;;\x07 \x1b[2J\x1b[31mred\u202egnp.exe"}
FORMULA = {"utm_source": "=HYPERLINK(\"https://evil.example/\",\"x\")", "utm_medium": "referral",
           "utm_campaign": "+cmd|' /C calc'!A0", "utm_term": "@SUM(1+1)"}


def test_outside_values_are_printed_as_text_everywhere(sqlite_url, config_for):
    """UTM values, CRM ids and remote messages are data: no rich markup, escape sequence or
    formula reaches a terminal or a spreadsheet (issue 15, terminal and CSV safety)."""
    store = Store(sqlite_url)
    BeaconWriter(store).write([
        hit("hostile01", 2, "https://www.example.com/", utm=HOSTILE),
        hit("hostile01", 2, "https://www.example.com/contact", kind="identify", conversion_type="form",
            email="mallory@x.example"),
        hit("formula01", 1, "https://www.example.com/", utm=FORMULA)])
    with store.session() as session:
        session.add(LeadSync(crm="salesforce", object="Lead", record_id="00Q[/red]\x1b[31m", status="enriched",
                             visitor_ids=["hostile01"], record_created_at=NOW - timedelta(days=2),
                             written={"CL_First_Click_Campaign__c": "[/bogus] \x1b[5mblink"},
                             written_at={"CL_First_Click_Campaign__c": NOW.isoformat()}))
        session.add(Identity(visitor_id="hostile01", kind="crm_record", value="salesforce:Lead:00Q[/red]\x1b[31m"))
        session.add(DeadLetter(job="enrich", crm="salesforce", object="Lead", record_id="00Q\x1b]8;;x\x07",
                               code="FIELD_CUSTOM_VALIDATION_EXCEPTION", message="[/bogus] \x1b[2Jcleared \u202eevil"))
        session.add(JobRun(job="enrich", instance="test", outcome="failed", finished_at=NOW,
                           message="HTTP 400 [/bogus] \x1b[31mred"))
    store.dispose()
    config = config_for(store)
    outputs = {
        "report": closedloop("report", "--wide", "--config", config),
        "explain": closedloop("explain", "mallory@x.example", "--wide", "--config", config),
        "status": closedloop("status", "--config", config),
        "dead-letters": closedloop("dead-letters", "list", "--config", config),
    }
    for name, result in outputs.items():
        assert result.returncode == 0, (name, result.stderr)
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", result.stdout), name
        assert "[/bogus]" in result.stdout, name  # shown, literally
    assert "[bold red]boom" in outputs["report"].stdout and "click me" in outputs["report"].stdout
    assert "osc-target" not in outputs["report"].stdout  # an OSC 8 link's hidden target is dropped
    assert "[/bogus] blink" in outputs["explain"].stdout
    rows = _csv(closedloop("report", "--format", "csv", "--config", config).stdout)
    formula = next(r for r in rows if "HYPERLINK" in r["source"])
    assert formula["source"] == "'=HYPERLINK(\"https://evil.example/\",\"x\")"
    assert formula["campaign"] == "'+cmd|' /C calc'!A0" and formula["term"] == "'@SUM(1+1)"
    assert not any(value.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows
                   for key, value in r.items() if key in ("channel", "source", "campaign", "term"))


def test_safe_text_rules():
    from sync.reports.safe_text import cell, markup, plain, spreadsheet_cell

    assert plain("\x1b]8;;https://evil/\x1b\\link\x1b]8;;\x1b\\") == "link"
    assert plain("a\x9b31mb\x90dcs\x9cc") == "abc"  # 8-bit CSI and DCS
    assert plain("x\ud800y") == "x\ufffdy" and plain("tab\tnew\nline") == "tab new line"
    assert plain(None) == "" and plain(12) == "12"
    assert markup("[b]x[/b]") == "\\[b]x\\[/b]" and cell("[b]x").plain == "[b]x"
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert spreadsheet_cell(start + "1") == "'" + start + "1"
    assert spreadsheet_cell("google") == "google" and spreadsheet_cell(-1) == -1


def test_report_json_command(on_sqlite, config_for):
    result = closedloop("report", "--model", "w_shaped", "--format", "json", "--config", config_for(on_sqlite))
    data = json.loads(result.stdout)
    assert data["model"] == "w_shaped" and data["rows"][-1]["row"] == "total"
    assert Decimal(data["rows"][-1]["revenue"]) == Decimal("12500.50")
    assert data["funnel"] == {"Visitors": 5, "Leads": 3, "Opportunities": 4, "Won deals": 3}
    hubspot = next(crm for crm in data["pipeline"] if crm["crm"] == "hubspot")
    assert [s["label"] for s in hubspot["stages"]][:3] == ["Appointment Scheduled", "Contract Sent", "Closed Won"]


def test_a_table_of_numeric_columns_with_long_headers_never_runs_past_the_terminal():
    """A numeric column never wraps, header included: the columns kept must fit whole, or the
    table (and its title) are cut at the terminal's edge."""
    from rich.console import Console

    from sync.reports.terminal import Column, show

    rows = [{"channel": "Organic Search", **{f"n{i}": 123_456.78 * i for i in range(9)}} for _ in range(3)]
    columns = [Column("channel", lambda r: r["channel"], 10, 1)]
    columns += [Column(f"Platform {i} value sent", lambda r, i=i: f"{r[f'n{i}']:,.2f}", 3, 1 if i < 2 else 2, True)
                for i in range(9)]
    for width in (80, 100, 130):  # the columns that always stay (priority 1) fit in 80
        out = io.StringIO()
        show(Console(file=out, width=width, force_terminal=False), "A title long enough to wrap at any of these "
             "widths, every word of it kept", columns, rows)
        lines = out.getvalue().splitlines()
        assert max(len(line) for line in lines) <= width, "\n".join(lines)
        assert "every word of it kept" in " ".join(line.strip() for line in lines)
        assert "Platform 1 value sent" in out.getvalue()
