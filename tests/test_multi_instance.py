"""Several instances on one PostgreSQL server: two daemons and two stand-alone collectors, real
processes, the sandbox CRMs and GA4. Every lead is written once, every GA4 event lands once, no
job runs twice at the same time, and when one daemon is killed mid-job the other takes over."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from sqlmodel import func, select

from state.models import DeadLetter, JobRun, OutboxEvent, Touchpoint
from support import DESKTOP_UA, World, free_port

pytestmark = pytest.mark.postgres

CLOSEDLOOP = [sys.executable, "-m", "sync.cli"]
REPO = Path(__file__).resolve().parent.parent
PEOPLE = 12  # per CRM
TAKEOVER_SECONDS = 15  # the other daemon runs the killed daemon's job within this (interval 1 s)


@pytest.fixture
def world(tmp_path, postgres_url):
    world = World(tmp_path, state_url=postgres_url, salesforce={"latency_seconds": 0.02},
                  hubspot={"latency_seconds": 0.02})
    world.create_fields()
    yield world
    world.close()


def instance_config(world, tmp_path, name: str, port: int) -> Path:
    text = world.config_path.read_text().replace("port = 8700", f"port = {port}")
    path = tmp_path / f"{name}.toml"
    path.write_text(text + "\n[schedule]\nenrich_seconds = 1\nrevenue_seconds = 1\nlifecycle_seconds = 1\n"
                           "housekeeping_seconds = 3600\n\n[logging]\nlevel = \"INFO\"\n")
    return path


def start(world, command: list[str], config: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([*CLOSEDLOOP, *command, "--config", str(config)], cwd=REPO,
                                env={**os.environ, **world.environ}, stdout=output, stderr=subprocess.STDOUT)


def wait_until(condition, seconds: float, what: str, processes=()) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        for process in processes:
            assert process.poll() is None or process.returncode == -signal.SIGKILL, f"{what}: an instance died"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def beacons(n: int, email: str, source: str) -> list[dict]:
    now = int(time.time() * 1000)
    common = {"v": 1, "vid": f"mi-visitor-{n:04d}", "ga_client_id": f"GA1.1.{5000 + n}.1700000000",
              "lang": "en-US", "tz": "UTC", "referrer": ""}
    return [{**common, "type": "pageview", "ts": now - 120_000,
             "url": f"https://www.example.com/?utm_source={source}&utm_medium=cpc"},
            {**common, "type": "identify", "ts": now - 60_000, "url": "https://www.example.com/demo", "email": email}]


def test_two_daemons_and_two_collectors_on_one_postgresql(world, tmp_path):
    ports = [free_port() for _ in range(4)]
    configs = [instance_config(world, tmp_path, name, port) for name, port in zip(("a", "b", "c", "d"), ports)]
    logs = [tmp_path / f"{name}.log" for name in ("a", "b", "c", "d")]
    collectors = [start(world, ["collector"], configs[n], logs[n]) for n in (2, 3)]
    daemons = [start(world, ["run"], configs[n], logs[n]) for n in (0, 1)]
    processes = daemons + collectors
    try:
        # Visitors arrive through all four collectors, round robin.
        sent = 0
        for n in range(2 * PEOPLE):
            crm = "sf" if n < PEOPLE else "hs"
            for body in beacons(n, f"buyer{n}@{crm}.example", "google" if n % 2 else "bing"):
                port = ports[sent % 4]
                wait_until(lambda: _answers(port), 30, f"the collector on {port}", processes)
                response = requests.post(f"http://127.0.0.1:{port}/collect", data=json.dumps(body), timeout=10,
                                         headers={"Content-Type": "text/plain", "User-Agent": DESKTOP_UA})
                assert response.status_code == 204, response.text
                sent += 1
        wait_until(lambda: _count(world, Touchpoint) == sent, 30, "every beacon stored", processes)

        # Leads and won deals appear in both CRMs while the daemons run.
        won = {}
        for n in range(PEOPLE):
            lead = world.salesforce.create("Lead", {"LastName": f"B{n}", "Company": f"Co{n}",
                                                    "Email": f"buyer{n}@sf.example"})
            if n % 3 == 0:
                ids = world.salesforce.convert_lead(lead, opportunity={"Amount": 1000 + n, "StageName": "Closed Won"})
                won[f"salesforce:{ids['opportunityId']}"] = 1000 + n
            m = PEOPLE + n
            contact = world.hubspot.create("contacts", {"email": f"buyer{m}@hs.example"})
            if n % 3 == 0:
                deal = world.hubspot.create("deals", {"dealname": f"D{m}", "amount": str(2000 + n),
                                                      "pipeline": "default", "dealstage": "appointmentscheduled"})
                world.hubspot.associate(deal, contact)
                world.hubspot.update("deals", deal, {"dealstage": "closedwon"})
                won[f"hubspot:{deal}"] = 2000 + n

        # Kill daemon A in the middle of a job it holds.
        victim = daemons[0]
        running = []
        wait_until(lambda: running.extend(_running(world, victim.pid)) or running, 60, "daemon A mid-job", processes)
        victim.send_signal(signal.SIGKILL)
        killed_at = datetime.now(timezone.utc)
        victim.wait(10)
        killed_job = running[0].job

        def done() -> bool:
            sources = [world.salesforce.record(row["Id"])["CL_First_Click_Source__c"]
                       for row in world.salesforce.query("SELECT Id FROM Contact")] + \
                      [record.properties.get("cl_first_click_source")
                       for record in world.hubspot.store.records["contacts"].values()]
            sent_revenue = sum(float(value) for value in world.ga4.report("firstUserSource").values())
            return None not in sources and sent_revenue == sum(won.values())
        wait_until(done, 120, "every record enriched and every won deal in GA4", processes)
        time.sleep(2)  # a few more rounds: nothing more may be written or sent
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        statuses = [process.wait(30) for process in processes]
    survivors = statuses[1:]
    assert survivors == [0, 0, 0], [log.read_text()[-3000:] for log in logs[1:]]

    # The survivor took the killed daemon's job over within a bounded time.
    instance_b = f":{daemons[1].pid}"
    with world.store.session(readonly=True) as session:
        runs = session.exec(select(JobRun).order_by(JobRun.started_at)).all()
    takeover = [run for run in runs if run.job == killed_job and run.instance.endswith(instance_b)
                and run.started_at > killed_at and run.outcome in ("ok", "paused")]
    assert takeover, f"daemon B never ran {killed_job} after the kill"
    assert (takeover[0].started_at - killed_at).total_seconds() < TAKEOVER_SECONDS

    # No job ever ran twice at the same time (the killed run ends at the kill).
    for job in {run.job for run in runs}:
        spans = sorted((run.started_at, run.finished_at or killed_at) for run in runs if run.job == job)
        for (_, end), (start_next, _) in zip(spans, spans[1:]):
            assert end <= start_next, f"{job} ran twice at once around {start_next}"

    # Every record written once: each id in exactly one successful write request.
    sf_writes = Counter(record["id"] for entry in world.salesforce.request_log()
                        if entry["method"] == "PATCH" and "composite/sobjects" in entry["path"]
                        and entry["status"] == 200 for record in entry["body"]["records"])
    hs_writes = Counter(item["id"] for entry in world.hubspot.request_log()
                        if entry["endpoint"].endswith("batch/update") and entry["status"] == 200
                        for item in entry["body"]["inputs"])
    assert sf_writes and hs_writes
    assert {record: count for record, count in (sf_writes + hs_writes).items() if count > 1} == {}

    # Every GA4 event once: purchases match the won deals exactly; nothing else was sent twice.
    events = world.ga4.event_log()
    purchases = Counter(e["params"]["transaction_id"] for e in events if e["name"] == "purchase")
    assert set(purchases) == set(won)
    others = Counter(json.dumps([e["client_id"], e["name"], e.get("params")], sort_keys=True)
                     for e in events if e["name"] != "purchase")
    assert [key for key, count in others.items() if count > 1] == []
    assert set(purchases.values()) == {1}  # (a purchase in flight at the kill is resent; GA4 drops the copy)
    with world.store.session(readonly=True) as session:
        assert session.exec(select(func.count()).select_from(OutboxEvent)
                            .where(OutboxEvent.status.in_(("pending", "sending")))).one() == 0
        letters = session.exec(select(DeadLetter)).all()
    assert all(letter.code == "GA4_DELIVERY_UNCERTAIN" for letter in letters)  # only what the kill left unsure


def _answers(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/t.js", timeout=1)
        return True
    except requests.ConnectionError:
        return False


def _count(world, model) -> int:
    with world.store.session(readonly=True) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def _running(world, pid: int) -> list[JobRun]:
    """Jobs the daemon with ``pid`` is running right now that have work in hand."""
    with world.store.session(readonly=True) as session:
        return session.exec(select(JobRun).where(JobRun.outcome == "running", JobRun.instance.endswith(f":{pid}"),
                                                 JobRun.job.in_(("enrich", "revenue")))).all()
