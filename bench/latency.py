"""Lead-to-fields latency: from a lead's creation in the CRM to its journey fields being filled.

The real daemon (``closedloop run``) runs in its own process against the sandbox CRMs. Leads are
created at random moments in both CRMs, each with a known web visitor; the benchmark watches
each lead until its first-click channel field is filled and records how long that took.

Three ways: the default schedule (enrich every 60 s; HubSpot search results are re-read 60 s
back, because HubSpot's search index lags behind writes), a faster one (``enrich_seconds = 10``,
``search_lag_seconds = 15``) showing how far polling goes, and triggers: Salesforce change
events over the Pub/Sub API and HubSpot webhooks, with the emulators' realistic delivery delays
(change events 1–2 s after the commit, webhooks 1.5 s after the change) and polling as the safety
net only. Targets for triggers: p50 ≤ 5 s and p95 ≤ 15 s per CRM, and no more API calls per
enriched lead than the default schedule spends (REST calls and HubSpot requests counted by the
emulators from the first lead on; Pub/Sub RPCs and webhook deliveries are not API calls).
"""
from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import scenario
from bench.common import Measurement
from sandbox.suite import SandboxSuite
from sandbox.web import free_port
from state import Store
from sync.config import load_config
from sync.jobs.fields import missing_fields
from sync.ops.connections import Connections

SCHEDULES = {"default": "", "fast": "\n[schedule]\nenrich_seconds = 10.0\n", "triggers": ""}
TARGET_P50, TARGET_P95 = 5.0, 15.0
FIELDS = {"salesforce": "CL_First_Click_Channel__c", "hubspot": "cl_first_click_channel"}


def main(options: list[str]) -> list[Measurement]:
    parser = argparse.ArgumentParser(prog="python -m bench latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long leads keep arriving, per schedule")
    parser.add_argument("--every", type=float, default=15.0, help="mean seconds between leads, per CRM")
    parser.add_argument("--only", choices=sorted(SCHEDULES), action="append",
                        help="measure only these (repeatable); default: all three")
    parser.add_argument("--quiet-every", type=float, default=0.0,
                        help="also compare API calls per lead of the default schedule and triggers with a lead "
                             "this many seconds apart (a quieter CRM); 0: skip")
    parser.add_argument("--quiet-minutes", type=float, default=10.0, help="how long the quieter comparison runs")
    args = parser.parse_args(options)
    measurements: list[Measurement] = []
    per_lead: dict[tuple[float, str, str], float] = {}
    cases = [(schedule, args.minutes, args.every) for schedule in args.only or ("default", "fast", "triggers")]
    if args.quiet_every:
        cases += [(schedule, args.quiet_minutes, args.quiet_every) for schedule in ("default", "triggers")]
    for schedule, minutes, every in cases:
        latencies, calls = measure(schedule, minutes, every)
        for crm, values in latencies.items():
            values.sort()
            p50, p90, p95 = statistics.median(values), _percentile(values, 0.9), _percentile(values, 0.95)
            per_lead[(every, schedule, crm)] = calls[crm] / len(values)
            detail = {"leads": len(values), "every_s": every, "p50_s": round(p50, 1), "p90_s": round(p90, 1),
                      "p95_s": round(p95, 1), "max_s": round(values[-1], 1), "api_calls": calls[crm],
                      "api_calls_per_lead": round(calls[crm] / len(values), 2), "all_s": [round(v, 1) for v in values]}
            print(f"{schedule} {crm} (a lead every {every:g} s): {len(values)} leads, p50 {p50:.1f}s, p95 {p95:.1f}s, "
                  f"max {values[-1]:.1f}s, {calls[crm] / len(values):.2f} API calls per lead", flush=True)
            if every != args.every:
                continue
            if schedule != "triggers":
                measurements.append(Measurement("latency", f"{crm}, {schedule} schedule (p50; p90 {p90:.0f} s, max "
                                                            f"{values[-1]:.0f} s)", p50, "s", "", None, detail))
                continue
            measurements.append(Measurement("latency", f"{crm}, triggers: p50", p50, "s", f"≤ {TARGET_P50:g} s",
                                            p50 <= TARGET_P50, detail))
            measurements.append(Measurement("latency", f"{crm}, triggers: p95", p95, "s", f"≤ {TARGET_P95:g} s",
                                            p95 <= TARGET_P95, {}))
    for every in dict.fromkeys(every for every, _, _ in per_lead):
        for crm in ("salesforce", "hubspot"):
            triggered, polled = per_lead.get((every, "triggers", crm)), per_lead.get((every, "default", crm))
            if triggered is not None:
                measurements.append(Measurement(
                    "latency", f"{crm}, triggers: API calls per enriched lead, a lead every {every:g} s", triggered,
                    "calls", f"≤ default schedule ({polled:.2f})" if polled is not None else "",
                    None if polled is None else triggered <= polled, {}))
    return measurements


def _percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted ``values``."""
    return values[max(0, math.ceil(share * len(values)) - 1)]


def measure(schedule: str, minutes: float, every: float) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Latencies per CRM, and the API calls each CRM answered from the first lead to the last fill."""
    directory = Path(tempfile.mkdtemp(prefix=f"closedloop-bench-latency-{schedule}-"))
    triggers = schedule == "triggers"
    suite = SandboxSuite.start(directory / "sandbox", hubspot={"index_lag_seconds": 2.0}, realistic_triggers=triggers)
    lag = "search_lag_seconds = 15" if schedule == "fast" else "search_lag_seconds = 60"
    webhook_port = free_port() if triggers else None
    text = suite.config(state_url=f"sqlite:///{directory / 'state.db'}", collector_port=free_port(),
                        webhook_port=webhook_port)
    if triggers:
        suite.set_webhook_target(f"http://127.0.0.1:{webhook_port}/hubspot/webhooks")
    text = text.replace("search_lag_seconds = 4", lag).replace("[ga4]\nenabled = true", "[ga4]\nenabled = false")
    config_path = directory / "closedloop.toml"
    config_path.write_text(text + SCHEDULES[schedule])
    environ = suite.environment()
    config = load_config(config_path, environ=environ)
    store = Store(config.database_url)
    store.migrate()
    connections = Connections(config)
    for crm in connections.enabled_crms():
        adapter = connections.adapter(crm)
        adapter.ensure_fields(missing_fields(crm, connections.mapping(crm), adapter.describe_fields))
    people = scenario.World("both", directory, suite, config, store, connections, None)
    daemon = subprocess.Popen([sys.executable, "-m", "sync.cli", "run", "--config", str(config_path)],
                              env={**os.environ, **environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rng = random.Random(11)
    waiting: dict[tuple[str, str], float] = {}
    latencies: dict[str, list[float]] = {"salesforce": [], "hubspot": []}
    try:
        time.sleep(5)  # the daemon starts and runs its first polls
        suite.salesforce.reset_log()
        suite.hubspot.reset_log()
        ends = time.monotonic() + minutes * 60
        due = {crm: time.monotonic() + rng.uniform(0, every) for crm in latencies}
        n = 0
        while time.monotonic() < ends or waiting:
            now = time.monotonic()
            for crm in latencies:
                if now < ends and now >= due[crm]:
                    scenario.add_journeys(people, 1, prefix=f"lat{n:05d}x")
                    email = scenario.email(f"lat{n:05d}x", 0)
                    if crm == "salesforce":
                        record = suite.salesforce.create("Lead", {"LastName": f"Lat{n}", "Company": "Bench",
                                                                  "Email": email})
                    else:
                        record = suite.hubspot.create("contacts", {"email": email})
                    waiting[(crm, record)] = time.monotonic()
                    due[crm] = now + rng.expovariate(1 / every)
                    n += 1
            for (crm, record), created in list(waiting.items()):
                stored = suite.salesforce.record(record) if crm == "salesforce" else \
                    suite.hubspot.record("contacts", record)
                if stored.get(FIELDS[crm]):
                    latencies[crm].append(time.monotonic() - created)
                    del waiting[(crm, record)]
                elif time.monotonic() - created > 600:
                    raise RuntimeError(f"{crm} {record} not enriched after 10 minutes")
            time.sleep(0.25)
        calls = {"salesforce": sum(1 for entry in suite.salesforce.request_log() if entry["kind"] == "rest"),
                 "hubspot": suite.hubspot.api_calls()}
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
        suite.stop()
        store.dispose()
    return latencies, calls

