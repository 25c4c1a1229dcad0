"""What an operator watches: ``/healthz`` and ``/metrics`` on a daemon that has done real work."""
from __future__ import annotations

import json

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from test_collector import beacon
from test_enrich import journey
from test_revenue import won_salesforce_deal

from support import DESKTOP_UA, free_port
from sync.capture.app import create_app
from sync.capture.server import BackgroundServer
from sync.jobs import job_intervals


@pytest.fixture
def collector(world):
    port = free_port()
    server = BackgroundServer(create_app(world.config, world.store, job_intervals=job_intervals(world.config)), "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def samples(base: str) -> dict[tuple, float]:
    response = requests.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(snapshot, name, **labels) -> float:
    return snapshot.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_the_work_done(world, collector):
    before = samples(collector)
    journey(world, "visitor3001", "ops@x.example")
    world.salesforce.create("Lead", {"LastName": "Ops", "Company": "X", "Email": "ops@x.example"})
    world.run("enrich")
    won_salesforce_deal(world, 50, 4200, "https://www.example.com/?utm_source=google&utm_medium=cpc")
    world.run("revenue")
    response = requests.post(f"{collector}/collect", data=json.dumps(beacon()), timeout=10,
                             headers={"Content-Type": "text/plain", "User-Agent": DESKTOP_UA})
    assert response.status_code < 300, response.text
    after = samples(collector)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("closedloop_records_read_total", crm="salesforce", object="Lead") >= 1
    assert grew("closedloop_records_written_total", crm="salesforce", object="Lead") >= 1
    assert grew("closedloop_api_calls_total", system="salesforce") >= 3
    assert grew("closedloop_api_calls_total", system="ga4") >= 1
    assert grew("closedloop_ga4_events_total", outcome="sent") >= 1
    assert grew("closedloop_job_duration_seconds_count", job="enrich", outcome="ok") >= 2
    assert grew("closedloop_job_duration_seconds_count", job="revenue", outcome="ok") == 1
    assert value(after, "closedloop_api_budget_remaining", system="salesforce", window="daily") > 0
    assert value(after, "closedloop_outbox_depth") == 0
    assert grew("closedloop_collector_requests_total", outcome="accepted") == 1


def test_healthz_reports_each_job_and_which_are_stale(world, collector):
    health = requests.get(f"{collector}/healthz", timeout=10).json()
    assert health["status"] == "ok" and "enrich" in health["stale_jobs"]  # never ran yet
    world.run("enrich")
    health = requests.get(f"{collector}/healthz", timeout=10).json()
    assert "enrich" not in health["stale_jobs"]
    enrich = health["jobs"]["enrich"]
    assert enrich["last_outcome"] == "ok" and enrich["seconds_since_success"] < 60


def test_a_paused_remote_shows_in_healthz_and_metrics(world, collector):
    world.run("enrich")
    world.runner.remotes.pause("salesforce", "auth", "Salesforce refused the jwt login: invalid_grant")
    health = requests.get(f"{collector}/healthz", timeout=10).json()
    remote = health["remotes"]["salesforce"]
    assert (remote["state"], remote["reason"]) == ("paused", "auth")
    assert remote["last_error"] == "Salesforce refused the jwt login: invalid_grant" and remote["paused_until"]
    assert health["remotes"]["hubspot"]["state"] == "ok"
    after = samples(collector)
    assert value(after, "closedloop_remote_up", remote="salesforce") == 0
    assert value(after, "closedloop_remote_up", remote="hubspot") == 1
    assert value(after, "closedloop_remote_paused_until", remote="salesforce") > 0
    assert value(after, "closedloop_remote_failures_total", remote="salesforce", reason="auth") >= 1


def test_healthz_turns_unhealthy_on_a_failure_streak_or_a_long_pause(world, collector):
    from datetime import datetime, timedelta, timezone

    from state.models import JobRun

    assert requests.get(f"{collector}/healthz", timeout=10).status_code == 200
    now = datetime.now(timezone.utc)
    with world.store.session() as session:  # revenue failed its last three runs (a locked one between)
        for n, outcome in enumerate(["ok", "failed", "failed", "locked", "failed"]):
            session.add(JobRun(job="revenue", instance="x", started_at=now - timedelta(minutes=10 - n),
                               outcome=outcome))
    response = requests.get(f"{collector}/healthz", timeout=10)
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["problems"] == ["job revenue failed its last 3 runs"]
    with world.store.session() as session:
        session.add(JobRun(job="revenue", instance="x", started_at=now, outcome="paused"))
    assert requests.get(f"{collector}/healthz", timeout=10).status_code == 200
    remotes = world.runner.remotes
    remotes.clock = lambda: now - timedelta(minutes=61)  # paused for an hour and a minute now
    remotes.pause("hubspot", "down", "HubSpot contacts search: HTTP 503")
    response = requests.get(f"{collector}/healthz", timeout=10)
    assert response.status_code == 503
    [problem] = response.json()["problems"]
    assert problem.startswith("hubspot paused for 61 min: paused (not answering) until ")
    remotes.clock = lambda: now
    remotes.resume("hubspot")
    assert requests.get(f"{collector}/healthz", timeout=10).json()["status"] == "ok"


def test_the_verdict_thresholds():
    from datetime import datetime, timedelta, timezone

    from sync.ops.health import verdict
    from sync.ops.remotes import RemoteState

    now = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)
    fine = verdict({"enrich": 2}, [RemoteState("ga4", "paused", "down", "x", 3, now - timedelta(minutes=59))], now,
                   max_consecutive_failures=3, max_paused_seconds=3600)
    assert fine.healthy and fine.problems == ()
    bad = verdict({"enrich": 3}, [RemoteState("ga4", "paused", "down", "x", 3, now - timedelta(minutes=61)),
                                  RemoteState("hubspot")], now, max_consecutive_failures=3, max_paused_seconds=3600)
    assert not bad.healthy and len(bad.problems) == 2
