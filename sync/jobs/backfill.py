"""``closedloop backfill``: enrich the records a CRM already holds, in bulk, resumably.

The daemon's enrich job only looks at records changed since it started. A backfill walks every
record changed since ``--since`` (default: all of them) through the same enrichment, with its
own cursors (``backfill:<object>``), so it never moves the daemon's. Each page's writes,
results and cursor are committed together, which is what makes it resumable: after Ctrl-C, a
crash or a lost connection, running the same command again starts at the last committed page
(minus the usual look-back; records already written compare equal and are not rewritten).
When every object is done the backfill cursors are removed, so the next backfill starts over.

It holds the enrich job's lock while it runs (on PostgreSQL the daemon's enrich job skips its
runs meanwhile), so the two never write the same record at once.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from sqlmodel import delete, select

from adapters.errors import ConfigError
from state.models import Cursor, DeadLetter, LeadSync
from sync.jobs.base import JobContext
from sync.jobs.enrich import PROFILES, CrmEnricher

STREAM = "backfill"
EVERYTHING = datetime(1970, 1, 2, tzinfo=timezone.utc)


class EnrichRunning(Exception):
    """The daemon's enrich job holds the lock in another instance."""


@dataclass
class BackfillResult:
    crm: str
    since: datetime
    resumed: bool
    read: int = 0
    written: int = 0
    per_object: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    waiting_for_visitor: int = 0


class Backfill:
    """One backfill of one CRM. ``on_start(object, total)`` and ``on_page(object, n)`` drive a
    progress display; ``stop`` (a threading.Event) ends it cleanly after the current page."""

    def __init__(self, config, store, connections, crm: str, *, since: datetime | None = None,
                 restart: bool = False, clock: Callable[[], datetime] | None = None) -> None:
        if crm not in connections.enabled_crms():
            raise ConfigError(f"backfill: [{crm}] is not enabled in the config "
                              f"(enabled: {', '.join(connections.enabled_crms()) or 'none'})")
        self.config, self.store, self.connections, self.crm = config, store, connections, crm
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.stop = threading.Event()
        self.since, self.resumed = self._start_point(since, restart)

    def _start_point(self, since: datetime | None, restart: bool) -> tuple[datetime, bool]:
        with self.store.session() as session:
            if restart:
                session.exec(delete(Cursor).where(Cursor.crm == self.crm, Cursor.stream.startswith(f"{STREAM}:")))
            started = session.get(Cursor, (self.crm, f"{STREAM}:since"))
            if started is not None:
                recorded = datetime.fromisoformat(started.value)
                if since is not None and since != recorded:
                    raise ConfigError(f"backfill: a {self.crm} backfill from {recorded.date()} is unfinished; run it "
                                      "again without --since (or with the same date) to resume it, or add --restart")
                return recorded, True
            since = since or EVERYTHING
            session.add(Cursor(crm=self.crm, stream=f"{STREAM}:since", value=since.isoformat(),
                               updated_at=self.clock()))
            return since, False

    def objects(self) -> list[str]:
        mapping = self.connections.mapping(self.crm)
        profile = PROFILES[self.crm]
        return [name for name in (*profile.person_objects, profile.deal_object)
                if mapping.get(name) is not None and mapping.get(name).fields]

    def count(self, object_name: str) -> int:
        """Records left to read for ``object_name``."""
        adapter = self.connections.adapter(self.crm)
        with self.store.session(readonly=True) as session:
            cursor = session.get(Cursor, (self.crm, f"{STREAM}:{object_name}"))
        start = datetime.fromisoformat(cursor.value) if cursor else self.since
        where = PROFILES[self.crm].filters.get(object_name, "")
        return adapter.count_changed(object_name, start, self.clock(), **({"where": where} if where else {}))

    def run(self, on_start: Callable[[str, int], None] = lambda o, n: None,
            on_page: Callable[[str, int], None] = lambda o, n: None) -> BackfillResult:
        result = BackfillResult(self.crm, self.since, self.resumed)
        with self.store.job_lock("enrich") as acquired:
            if not acquired:
                raise EnrichRunning("the enrich job is running in another instance; try again in a moment")
            ctx = JobContext(self.config, self.store, self.stop, self.clock, connections=self.connections)

            def page_done(object_name: str, records: int) -> None:
                result.per_object[object_name] = result.per_object.get(object_name, 0) + records
                on_page(object_name, records)

            enricher = CrmEnricher(self.crm, ctx, start=self.since, stream=STREAM, on_page=page_done)
            for object_name in self.objects():
                on_start(object_name, self.count(object_name))
                enricher.run([object_name])
            result.read, result.written = ctx.result.records_read, ctx.result.records_written
        with self.store.session() as session:
            session.exec(delete(Cursor).where(Cursor.crm == self.crm, Cursor.stream.startswith(f"{STREAM}:")))
            result.dead_letters = len(session.exec(select(DeadLetter.id).where(
                DeadLetter.crm == self.crm, DeadLetter.job == "enrich", DeadLetter.status == "open")).all())
            result.waiting_for_visitor = len(session.exec(select(LeadSync.record_id).where(
                LeadSync.crm == self.crm, LeadSync.status == "pending_visitor")).all())
        return result
