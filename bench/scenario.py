"""A sandbox CRM full of new leads whose visitors the state store already knows.

Shared by the CRM benchmarks: the emulators run in this process (as in the tests), closedloop
runs through its real adapters, jobs and store, and the web journeys are written straight into
the store in bulk (the collector's own benchmark measures that path).
"""
from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sandbox.suite import SandboxSuite
from state import Store
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.writer import BeaconWriter
from sync.config import load_config
from sync.jobs import registry
from sync.jobs.base import JobRunner
from sync.jobs.fields import missing_fields
from sync.ops.connections import Connections

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
LANDINGS = [("https://www.example.com/?utm_source=google&utm_medium=cpc&utm_campaign=brand", ""),
            ("https://www.example.com/blog", "https://www.google.com/"),
            ("https://www.example.com/?utm_source=newsletter&utm_medium=email", ""),
            ("https://www.example.com/", "https://www.linkedin.com/feed/"),
            ("https://www.example.com/", "")]
PERSON = {"salesforce": "Lead", "hubspot": "contacts"}
WRITE_BATCH = {"salesforce": 200, "hubspot": 100}
READ_PAGE = {"salesforce": 2000, "hubspot": 200}


@dataclass
class World:
    crm: str
    directory: Path
    suite: SandboxSuite
    config: object
    store: Store
    connections: Connections
    runner: JobRunner

    @property
    def emulator(self):
        return self.suite.salesforce if self.crm == "salesforce" else self.suite.hubspot

    def run(self, job_name: str):
        job = next(cls for cls in registry() if cls.name == job_name)(self.config)
        outcome = self.runner.execute(job)
        if outcome.outcome != "ok":
            raise RuntimeError(f"{job_name}: {outcome.outcome}: {outcome.error}")
        return outcome

    def close(self) -> None:
        self.suite.stop()
        self.store.dispose()


def start(crm: str, *, directory: Path | None = None, extra_config: str = "", **emulator_options) -> World:
    """Sandbox + migrated SQLite store + config with only ``crm`` enabled (GA4 off)."""
    directory = Path(directory or tempfile.mkdtemp(prefix=f"closedloop-bench-{crm}-"))
    options = {"salesforce": {"log_bodies": False}, "hubspot": {}}
    options[crm].update(emulator_options)
    suite = SandboxSuite.start(directory / "sandbox", **options)
    text = suite.config(state_url=f"sqlite:///{directory / 'state.db'}")
    other = "hubspot" if crm == "salesforce" else "salesforce"
    text = re.sub(rf"\[{other}\]\nenabled = true", f"[{other}]\nenabled = false", text)
    text = text.replace("[ga4]\nenabled = true", "[ga4]\nenabled = false") + extra_config
    path = directory / "closedloop.toml"
    path.write_text(text)
    config = load_config(path, environ=suite.environment())
    store = Store(config.database_url)
    store.migrate()
    connections = Connections(config)
    adapter = connections.adapter(crm)
    adapter.ensure_fields(missing_fields(crm, connections.mapping(crm), adapter.describe_fields))
    return World(crm, directory, suite, config, store, connections, JobRunner(config, store, connections=connections))


def add_journeys(world: World, count: int, *, prefix: str = "v", chunk: int = 20_000) -> None:
    """Visitor i lands from LANDINGS[i % 5] a day ago, comes back, fills a form with its email."""
    now = datetime.now(timezone.utc)
    writer = BeaconWriter(world.store)
    for start_at in range(0, count, chunk):
        hits = []
        for i in range(start_at, min(count, start_at + chunk)):
            url, referrer = LANDINGS[i % len(LANDINGS)]
            visitor = f"{prefix}{i:07d}"
            common = dict(utm={}, click_ids={}, ga_client_id=f"{100000 + i}.1700000000", ga_session_id=None,
                          language="en", timezone="UTC", user_agent=UA, consent=None, session_key=None)
            hits += [Hit(visitor, "pageview", now - timedelta(days=1), url, referrer, conversion_type=None, **common),
                     Hit(visitor, "identify", now - timedelta(minutes=30), "https://www.example.com/contact", "",
                         conversion_type="form", email_sha256=hash_email(email(prefix, i)), **common)]
        writer.write(hits)


def email(prefix: str, i: int) -> str:
    return f"{prefix}{i:07d}@leads.example"


def add_leads(world: World, count: int, *, prefix: str = "v", chunk: int = 10_000,
              created_at: datetime | None = None) -> list[str]:
    """``count`` new leads (Salesforce) / contacts (HubSpot) whose emails match the journeys."""
    ids: list[str] = []
    for start_at in range(0, count, chunk):
        numbers = range(start_at, min(count, start_at + chunk))
        if world.crm == "salesforce":
            rows = [{"LastName": f"L{i}", "Company": "Bench", "Email": email(prefix, i)} for i in numbers]
            ids += world.suite.salesforce.seed("Lead", rows, created_at=created_at)
        else:
            rows = [{"email": email(prefix, i)} for i in numbers]
            ids += world.suite.hubspot.seed("contacts", rows, created_at=created_at)
    return ids


def floor_calls(crm: str, records: int) -> tuple[int, int]:
    """(write calls, read calls) the API cannot go below for ``records`` new person records."""
    return math.ceil(records / WRITE_BATCH[crm]), max(1, math.ceil(records / READ_PAGE[crm]))
