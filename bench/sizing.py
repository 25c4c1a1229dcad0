"""What several instances on one PostgreSQL need: connections and storage, measured.

Method:

1. A private PostgreSQL server (started as ``bench collector`` starts one) holds one state
   database; the sandbox emulators run in this process.
2. Two stand-alone collectors (``closedloop collector``) and two daemons (``closedloop run``,
   fast schedule) are started against it, as the README's scale-out section describes.
3. ``--people`` visitors each send ``--pageviews`` pageview beacons and an identify beacon,
   spread over the two collectors; then half of them become Salesforce leads and half HubSpot
   contacts, and the daemons enrich them all (the benchmark waits until every record holds its
   first-click source).
4. Throughout, ``pg_stat_activity`` is sampled every 0.2 s; each closedloop process labels its
   connections (``application_name = "closedloop <command> <pid>"``), so the peak number of
   connections per daemon and per collector can be read off.
5. Afterwards the stores are measured: ``pg_total_relation_size`` (table, indexes and TOAST) of
   the tables a beacon fills (visitors, touchpoints, identities) per beacon, and of the tables an
   enriched lead fills (lead_sync and its identity links) per lead.

All numbers are informational (they size a deployment, they are not held to a target). Run:
``python -m bench sizing [--people 400] [--pageviews 4]``. Needs the PostgreSQL server binaries.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

from bench.common import Measurement, closedloop_command, postgres_server
from sandbox.web import free_port

BENCHMARK = "sizing"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
BEACON_TABLES = ("visitors", "touchpoints", "identities")
LEAD_TABLES = ("lead_sync",)


def main(options: list[str]) -> list[Measurement]:
    parser = argparse.ArgumentParser(prog="python -m bench sizing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=400, help="visitors who become leads (default 400)")
    parser.add_argument("--pageviews", type=int, default=4, help="pageviews per visitor (default 4)")
    args = parser.parse_args(options)
    import psycopg

    with tempfile.TemporaryDirectory(prefix="closedloop-bench-sizing-") as scratch, postgres_server() as port:
        scratch = Path(scratch)
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE DATABASE closedloop_sizing")
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/closedloop_sizing"
        return _run(url, f"postgresql://postgres@127.0.0.1:{port}/closedloop_sizing", scratch, args)


def _run(url: str, dsn: str, scratch: Path, args) -> list[Measurement]:
    from sandbox.suite import SandboxSuite
    from state import Store

    store = Store(url)
    store.migrate()
    store.dispose()
    suite = SandboxSuite.start(scratch / "sandbox")
    processes: dict[str, subprocess.Popen] = {}
    sampler = _Sampler(dsn)
    try:
        _create_fields(suite, scratch, url)
        ports = {name: free_port() for name in ("collector-1", "collector-2", "daemon-1", "daemon-2")}
        env = {**os.environ, **suite.environment()}
        sampler.start()
        for name, port in ports.items():
            config = scratch / f"{name}.toml"
            config.write_text(suite.config(state_url=url, collector_port=port) +
                              "\n[schedule]\nenrich_seconds = 2\nrevenue_seconds = 5\nlifecycle_seconds = 5\n")
            with open(scratch / f"{name}.log", "wb") as log:
                processes[name] = subprocess.Popen([*closedloop_command(), "collector" if name.startswith("collector")
                                                    else "run", "--config", str(config)], env=env, cwd=scratch,
                                                   stdout=log, stderr=subprocess.STDOUT)
        for port in ports.values():
            _wait(lambda port=port: _answers(port), 60, "the collectors to listen")
        beacons = _send_beacons([ports["collector-1"], ports["collector-2"]], args.people, args.pageviews)
        _wait(lambda: _count(dsn, "touchpoints") >= beacons, 120, "every beacon to be stored")
        leads = _create_leads(suite, args.people)
        _wait(lambda: _enriched(suite) >= args.people, 600, "every lead to be enriched")
        sizes = _sizes(dsn)
        lead_links = _count(dsn, "identities", "kind = 'crm_record'")
        identity_rows = _count(dsn, "identities")
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        sampler.stop()
        suite.stop()
    peaks = sampler.peaks()
    daemon_peak = max((n for name, n in peaks.items() if name.startswith("closedloop run")), default=0)
    collector_peak = max((n for name, n in peaks.items() if name.startswith("closedloop collector")), default=0)
    beacon_bytes = sum(sizes[table] for table in BEACON_TABLES)
    # A lead's share of identities is its crm_record links (the rest came with the beacons).
    lead_bytes = sizes["lead_sync"] + sizes["identities"] * lead_links / max(1, identity_rows)
    detail = {"people": args.people, "beacons": beacons, "leads": leads, "table_bytes": sizes,
              "peak_connections_by_process": peaks}
    return [
        Measurement(BENCHMARK, "postgresql connections per daemon (peak)", daemon_peak, "connections", "", None,
                    detail),
        Measurement(BENCHMARK, "postgresql connections per collector (peak)", collector_peak, "connections", "",
                    None),
        Measurement(BENCHMARK, "postgresql storage per beacon", beacon_bytes / beacons, "bytes", "", None,
                    {"tables": list(BEACON_TABLES)}),
        Measurement(BENCHMARK, "postgresql storage per enriched lead", lead_bytes / leads, "bytes", "", None,
                    {"tables": ["lead_sync", "identities (crm_record links)"]}),
    ]


def _create_fields(suite, scratch: Path, url: str) -> None:
    from sync.config import load_config
    from sync.jobs.fields import missing_fields
    from sync.ops.connections import Connections

    config_path = scratch / "fields.toml"
    config_path.write_text(suite.config(state_url=url))
    connections = Connections(load_config(config_path, environ=suite.environment()))
    for crm in connections.enabled_crms():
        adapter = connections.adapter(crm)
        adapter.ensure_fields(missing_fields(crm, connections.mapping(crm), adapter.describe_fields))


def _send_beacons(ports: list[int], people: int, pageviews: int) -> int:
    """Each person's pageviews and identify beacon, alternating between the collectors."""
    session = requests.Session()
    now, sent = int(time.time() * 1000), 0
    for n in range(people):
        common = {"v": 1, "vid": f"sizing-visitor-{n:06d}", "ga_client_id": f"GA1.1.{10_000 + n}.1700000000",
                  "lang": "en-US", "tz": "UTC", "referrer": "https://www.google.com/"}
        bodies = [{**common, "type": "pageview", "ts": now - 3_600_000 + k * 60_000,
                   "url": f"https://www.example.com/page-{k}?utm_source=google&utm_medium=cpc&utm_campaign=c{n % 7}"}
                  for k in range(pageviews)]
        bodies.append({**common, "type": "identify", "ts": now - 60_000, "url": "https://www.example.com/demo",
                       "email": f"sizing{n}@example.com"})
        for body in bodies:
            port = ports[sent % len(ports)]
            response = session.post(f"http://127.0.0.1:{port}/collect", data=json.dumps(body), timeout=10,
                                    headers={"Content-Type": "text/plain", "User-Agent": UA})
            response.raise_for_status()
            sent += 1
    return sent


def _create_leads(suite, people: int) -> int:
    half = people // 2
    suite.salesforce.seed("Lead", [{"LastName": f"S{n}", "Company": "Sizing", "Email": f"sizing{n}@example.com"}
                                   for n in range(half)])
    suite.hubspot.seed("contacts", [{"email": f"sizing{n}@example.com"} for n in range(half, people)])
    return people


def _enriched(suite) -> int:
    count = len(suite.salesforce.query("SELECT Id FROM Lead WHERE CL_First_Click_Source__c != null"))
    hubspot = sum(1 for record in suite.hubspot.store.records["contacts"].values()
                  if record.properties.get("cl_first_click_source"))
    return count + hubspot


class _Sampler:
    """Peak connections per closedloop process, from pg_stat_activity every 0.2 s."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._peaks: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pg-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def peaks(self) -> dict[str, int]:
        return dict(self._peaks)

    def _loop(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as connection:
            while not self._stop.wait(0.2):
                rows = connection.execute("SELECT application_name, count(*) FROM pg_stat_activity "
                                          "WHERE application_name LIKE 'closedloop %' GROUP BY 1").fetchall()
                for name, count in rows:
                    self._peaks[name] = max(self._peaks[name], count)


def _count(dsn: str, table: str, where: str = "true") -> int:
    import psycopg

    with psycopg.connect(dsn) as connection:
        return connection.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def _sizes(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:  # VACUUM runs outside a transaction
        connection.execute("VACUUM")
        return {table: connection.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0]
                for table in (*BEACON_TABLES, *LEAD_TABLES)}


def _answers(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/t.js", timeout=1)
        return True
    except requests.ConnectionError:
        return False


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)
    print(f"done waiting for {what}", file=sys.stderr)
