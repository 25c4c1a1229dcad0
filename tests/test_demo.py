"""``closedloop demo`` end to end, as a new user runs it: a subprocess, no credentials, no network."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

from sqlmodel import func, select

from state import Store
from state.models import OutboxEvent


def test_the_demo_closes_the_loop_and_says_where_the_report_is(tmp_path):
    directory = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "sync.cli", "demo", "--dir", "demo", "--people", "90",
                             "--seed", "3"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"})  # no secrets in the environment
    assert result.returncode == 0, result.stderr
    assert f"HTML report: {directory / 'report.html'}" in " ".join(result.stdout.split())
    summary = json.loads((directory / "summary.json").read_text())
    assert sum(summary["leads_enriched"].values()) > 10 and summary["fields_written"] > 100
    assert summary["sample_lead"]["CL_First_Click_Channel__c"] in result.stdout
    assert Decimal(summary["ga4_revenue"]) == Decimal(summary["crm_won_revenue"]) > 0
    ga4, crm = summary["ga4_revenue_by_first_user_channel"], summary["crm_won_revenue_by_first_click_channel"]
    differing = {channel for channel in {*ga4, *crm} if Decimal(ga4.get(channel, 0)) != Decimal(crm.get(channel, 0))}
    if summary["won_deals_whose_first_visit_was_direct"] == 0:
        assert differing == set()
    else:
        assert "Direct" in differing and "first visit was direct" in " ".join(result.stdout.split())
    store = Store(f"sqlite:///{directory / 'closedloop.db'}")
    with store.session(readonly=True) as session:
        sent = session.exec(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.status == "sent", OutboxEvent.event_name == "purchase")).one()
    store.dispose()
    assert sent == summary["ga4_purchases"] == len(summary["won_deals"])
    html = (directory / "report.html").read_text()
    assert html.count("<svg") >= 5
    # The summary and the report count the same visitors (people; linked devices count once).
    report = subprocess.run([sys.executable, "-m", "sync.cli", "report", "--format", "json", "--config",
                             "demo/closedloop.toml"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin"})
    assert report.returncode == 0, report.stderr
    total = json.loads(report.stdout)["rows"][-1]
    assert total["visitors"] == summary["visitors"] and summary["people"] <= summary["visitors"] <= summary["devices"]
    assert f"closedloop counts {summary['visitors']} visitors" in " ".join(result.stdout.split())
    assert Decimal(total["revenue"]) == Decimal(summary["crm_won_revenue"])
    # Run again: the folder the demo made is emptied and reused.
    again = subprocess.run([sys.executable, "-m", "sync.cli", "demo", "--dir", "demo", "--people", "10"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert again.returncode == 0, again.stderr


def test_the_demo_never_empties_a_folder_it_did_not_make(tmp_path):
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.txt").write_text("important")
    result = subprocess.run([sys.executable, "-m", "sync.cli", "demo", "--dir", str(mine), "--people", "5"],
                            capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr == (f"closedloop: error: demo --dir {mine}: the folder is not empty and was not made by "
                             "`closedloop demo`, which would empty it; choose a new or empty folder\n")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "important"
