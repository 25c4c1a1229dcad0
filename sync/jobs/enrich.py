"""The enrich job: journey variables onto new and changed CRM leads, contacts and deals.

Per CRM and object, a page at a time:

1. read records changed since the cursor (minus a look-back; HubSpot also waits out its search
   index lag), with every mapped field, so the current values come along for free;
2. find each record's person — visitor-id field, GA client id field, email hash (for a
   Salesforce contact, also the lead it was converted from) — and compute the variables at the
   record's creation (its conversion);
3. keep only values that differ from what the CRM already holds and that the field's policy
   allows (``fill_empty`` never touches a filled field), so the daemon's own writes, which bump
   the modification stamp and come back through the poll, never loop;
4. write the page in batched calls (200 / 100 records a call), then record the results, dead
   letters and the new cursor in one transaction — a crash re-reads the page and finds nothing
   left to write.

A record with no visitor yet (the identify beacon can trail the CRM record) waits as
``pending_visitor`` and is re-checked each run until ``[journey] match_wait_hours`` pass; then
it is marked ``no_web_journey``. Deals and opportunities get the first-click, last-click and
conversion variables of their (primary) contact, as their mapping says.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Iterator

from sqlmodel import Session, func, select

from adapters.base import FieldSpec, LeadRecord, LeadUpdate, WriteResult
from mappings.convert import converter, same_value
from mappings.model import ObjectMapping
from state.models import DeadLetter, Identity, LeadSync
from state.upsert import upsert
from sync.capture.identity import hash_email, normalise_ga_client_id
from sync.capture.stitching import CRM_RECORD, Clues, crm_record_key, find_people, touchpoints_of_many
from sync.config import Config
from sync.jobs.base import Job, JobContext, JobResult
from sync.jobs.cursors import advance_cursor, poll_window
from sync.jobs.prefetch import WriteBehind, prefetched
from sync.jobs.triggers import (Routing, done, expected_channels, mark_polled, poll_due, queue_depth,
                                queued_batches)
from sync.journey.compute import compute_variables
from sync.journey.hits import journey_settings, to_hit
from sync.ops import metrics

log = logging.getLogger(__name__)

CONVERSION_SKEW = timedelta(minutes=2)  # the identify beacon may land just after the CRM record
PENDING_BATCH = 500
PENDING_RECHECK = timedelta(minutes=1)
PIPELINE_DEPTH = 3  # pages read ahead, and pages waiting to be written, at most


@dataclass(frozen=True)
class CrmProfile:
    """What differs between CRMs for enrichment."""

    person_objects: tuple[str, ...]
    deal_object: str
    filters: dict[str, str] = field(default_factory=dict)

    def lag(self, config: Config, crm: str) -> timedelta:
        return timedelta(seconds=config.settings.hubspot.search_lag_seconds) if crm == "hubspot" else timedelta(0)

    def lookback(self, config: Config, crm: str) -> timedelta:
        return timedelta(seconds=config.settings.salesforce.lookback_seconds) if crm == "salesforce" \
            else timedelta(seconds=60)


PROFILES = {
    "salesforce": CrmProfile(("Lead", "Contact"), "Opportunity", {"Lead": "IsConverted = false"}),
    "hubspot": CrmProfile(("contacts",), "deals"),
}


def whole_batches(pages: Iterable[list[LeadRecord]], batch: int) -> Iterator[list[LeadRecord]]:
    """The same records, regrouped so that every page but the last holds whole write batches.

    Reads do not always come in round numbers (a crowded millisecond is drained by id, less
    what was already read), and a page of 137 would cost two write calls where 100 need one.
    The few records held back are older than none of those that follow, so a cursor taken from
    a page's newest record still never passes a record that was not processed."""
    held: list[LeadRecord] = []
    for page in pages:
        held += page
        whole = len(held) - len(held) % batch
        if whole:
            yield held[:whole]
            held = held[whole:]
    if held:
        yield held


@dataclass
class PreparedPage:
    """A page planned but not yet written: what :meth:`CrmEnricher.finish` needs."""

    object_mapping: ObjectMapping
    plans: list[tuple[LeadRecord, "Person | None", dict[str, Any]]]
    syncs: dict[str, Any]  # lead_syncs rows (attributes as on LeadSync) by record id
    now: datetime
    wait: timedelta


@dataclass
class Person:
    """Who a record belongs to on the web, and when they converted.

    ``claims``: devices that only claimed to be the person, and from when their touches count
    (see :mod:`sync.capture.stitching`); the converting ids are those the record itself held."""

    visitor_ids: set[str]
    converted_at: datetime
    claims: dict[str, datetime] = field(default_factory=dict)
    converting_visitor_id: str | None = None
    converting_client_id: str | None = None

    @property
    def trusted(self) -> set[str]:
        return self.visitor_ids - set(self.claims)

    def stored_claims(self) -> dict[str, str]:
        return {visitor: moment.isoformat() for visitor, moment in sorted(self.claims.items())}


class EnrichJob(Job):
    name = "enrich"

    @classmethod
    def enabled(cls, config: Config) -> bool:
        return config.settings.salesforce.enabled or config.settings.hubspot.enabled

    @classmethod
    def interval_seconds(cls, config: Config) -> float:
        return config.settings.schedule.enrich_seconds

    @classmethod
    def backlog(cls, session) -> int | None:
        pending = session.exec(select(func.count()).select_from(LeadSync)
                               .where(LeadSync.status == "pending_visitor")).one()
        queued = sum(count for (_, job), count in queue_depth(session).items() if job == cls.name)
        return pending + queued

    def run(self, ctx: JobContext) -> JobResult:
        """Per CRM (each on its own: one paused CRM never stops the other): the records triggers
        queued, then (unless this run was only for those) a poll when one is due — every run
        without healthy triggers, else each ``safety_poll_seconds``."""
        for crm in ctx.connections.enabled_crms():
            ctx.for_crm(crm, lambda crm=crm: self.enrich(ctx, crm))
        return ctx.result

    def enrich(self, ctx: JobContext, crm: str) -> None:
        enricher = CrmEnricher(crm, ctx)
        enricher.drain()
        if self.queued_only:
            return
        started = ctx.now()
        channels = expected_channels(ctx.config, crm, Routing(ctx.config, crm, enricher.mapping))
        polling = poll_due(ctx.store, ctx.config, crm, self.name, channels, started)
        enricher.run(poll=polling)
        if polling:
            mark_polled(ctx.store, crm, self.name, started)


class CrmEnricher:
    """Enrichment of one CRM during one job run."""

    def __init__(self, crm: str, ctx: JobContext, *, start: datetime | None = None, stream: str = "enrich",
                 on_page: Callable[[str, int], None] | None = None) -> None:
        """``stream`` names the cursors (``backfill`` keeps its own, apart from the daemon's);
        ``start`` is where a stream with no cursor begins (default: a day ago); ``on_page`` hears
        (object, records) after each page is committed."""
        self.crm, self.ctx = crm, ctx
        self.adapter = ctx.crm(crm)
        self.mapping = ctx.connections.mapping(crm)
        self.profile = PROFILES[crm]
        self.settings = journey_settings(ctx.config)
        self.start, self.stream, self.on_page = start, stream, on_page
        self._specs: dict[str, dict[str, FieldSpec]] = {}
        self._writers: dict[str, list[tuple]] = {}

    def run(self, objects: Iterable[str] | None = None, *, poll: bool = True) -> None:
        """Poll (``poll=False``: only the rechecks), recheck records waiting for their visitor,
        and retry the dead letters a person queued again."""
        wanted = list(objects) if objects else [*self.profile.person_objects, self.profile.deal_object]
        for object_name in wanted if poll else []:
            object_mapping = self.mapping.get(object_name)
            if object_mapping is None or not object_mapping.fields:
                continue
            self.poll(object_mapping)
        for object_name in self.profile.person_objects:
            if object_name in wanted and self.mapping.get(object_name):
                self.recheck_pending(self.mapping.get(object_name))
        self.retry_dead_letters()

    # -- triggered ----------------------------------------------------------------------

    def drain(self) -> None:
        """The records triggers queued for enrichment, a batch at a time."""
        for rows in queued_batches(self.ctx, self.crm, EnrichJob.name):
            # People first: a deal finds its person through the person's own enrichment.
            order = [*self.profile.person_objects, self.profile.deal_object]
            by_object: dict[str, list] = {}
            for row in sorted(rows, key=lambda row: order.index(row.object) if row.object in order else len(order)):
                by_object.setdefault(row.object, []).append(row)
            for object_name, queued in by_object.items():
                self.enrich_queued(object_name, queued)

    def enrich_queued(self, object_name: str, queued: list) -> None:
        """Enrich these queued records: read them by id now and process them as the poll would
        (:meth:`prepare`/:meth:`finish`: only changed values are written, so a record the poll
        also sees is written once); the queue rows go in the same transaction as the results."""
        object_mapping = self.mapping.get(object_name)
        records = []
        if object_mapping is not None and object_mapping.fields:
            # A record as its create event described it needs no read (and the event of
            # closedloop's write is dropped): one API call per created lead, the write. Only for
            # a record closedloop has never processed: otherwise the event is older news.
            fresh = [row for row in queued if row.snapshot and row.version == 1]
            if fresh:
                with self.ctx.store.session(readonly=True) as session:
                    seen = set(session.exec(select(LeadSync.record_id).where(
                        LeadSync.crm == self.crm, LeadSync.object == object_name,
                        LeadSync.record_id.in_([row.record_id for row in fresh]))).all())
                fresh = [row for row in fresh if row.record_id not in seen]
            created = {row.record_id: self.adapter.record_from_snapshot(object_name, row.record_id, row.snapshot)
                       for row in fresh}
            records = [record for record in created.values() if record is not None]
            ids = list(dict.fromkeys(row.record_id for row in queued if created.get(row.record_id) is None))
            if ids:
                records += self.adapter.read_records(object_name, ids, self.read_fields(object_mapping))
            records = [record for record in records if not (object_name == "Lead" and record.converted)]
            metrics.records_read.labels(self.crm, object_name).inc(len(records))
            self.ctx.result.records_read += len(records)
        if records:
            self.finish(self.prepare(object_mapping, records), None, queued=queued)
        else:  # deleted, converted or no longer mapped: nothing to do but forget them
            with self.ctx.store.session() as session:
                done(session, queued)
        now = self.ctx.now()
        for row in queued:
            if row.occurred_at is not None:
                metrics.triggered_enrich.labels(self.crm, EnrichJob.name).observe(
                    max(0.0, (now - row.occurred_at).total_seconds()))

    # -- polling ----------------------------------------------------------------------

    def specs(self, object_name: str) -> dict[str, FieldSpec]:
        if object_name not in self._specs:
            self._specs[object_name] = self.adapter.describe_fields(object_name)
        return self._specs[object_name]

    def read_fields(self, object_mapping: ObjectMapping) -> list[str]:
        fields = [*object_mapping.field_names, *object_mapping.match.values()]
        if object_mapping.object == "Lead":
            fields.append("IsConverted")
        return list(dict.fromkeys(fields))

    def poll(self, object_mapping: ObjectMapping) -> None:
        stream = f"{self.stream}:{object_mapping.object}"
        now = self.ctx.now()
        since, until = poll_window(self.ctx, self.crm, self.profile, stream, now, start=self.start)
        where = self.profile.filters.get(object_mapping.object, "")
        pages = whole_batches(self.adapter.iter_changed(object_mapping.object, self.read_fields(object_mapping),
                                                        since, until, **({"where": where} if where else {})),
                              self.adapter.write_batch)
        # Where the adapter may be called from several threads at once, the next page is read,
        # and the last one written and committed, while this one is computed.
        overlap = getattr(self.adapter, "concurrent_calls", False)
        if overlap:
            pages = prefetched(pages, name=f"{self.crm}-{object_mapping.object}-pages", depth=PIPELINE_DEPTH)
        with WriteBehind(name=f"{self.crm}-{object_mapping.object}-writes", enabled=overlap,
                         depth=PIPELINE_DEPTH) as writes:
            for page in pages:
                self.ctx.checkpoint()
                if not page:
                    continue
                metrics.records_read.labels(self.crm, object_mapping.object).inc(len(page))
                self.ctx.result.records_read += len(page)
                newest = min(max(record.modified_at for record in page), until)
                ids = {record.id for record in page}
                writes.wait_if_touching(ids)  # its plan must see what the pages before wrote
                prepared = self.prepare(object_mapping, page)
                writes.submit(lambda prepared=prepared, newest=newest: self.finish_unless_stopped(
                    prepared, (stream, newest)), ids)

    def finish_unless_stopped(self, page: "PreparedPage", cursor: tuple[str, datetime]) -> None:
        """A queued page is not started once a stop was asked for (it is read again next time)."""
        self.ctx.checkpoint()
        self.finish(page, cursor)

    def recheck_pending(self, object_mapping: ObjectMapping) -> None:
        """Leads still waiting for their visitor: look again, or give up after the wait."""
        now = self.ctx.now()
        wait = timedelta(hours=self.ctx.config.settings.journey.match_wait_hours)
        with self.ctx.store.session(readonly=True) as session:
            waiting = session.exec(select(LeadSync).where(
                LeadSync.crm == self.crm, LeadSync.object == object_mapping.object,
                LeadSync.status == "pending_visitor", LeadSync.last_checked_at < now - PENDING_RECHECK)
                .order_by(LeadSync.last_checked_at).limit(PENDING_BATCH)).all()
        if waiting:
            self.reread(object_mapping, [(sync.record_id, sync.record_created_at or sync.first_seen_at)
                                         for sync in waiting], wait=wait)

    def retry_dead_letters(self) -> None:
        """Records a person queued again with ``closedloop dead-letters retry``: re-read, rewrite."""
        with self.ctx.store.session(readonly=True) as session:
            letters = session.exec(select(DeadLetter).where(
                DeadLetter.job == EnrichJob.name, DeadLetter.crm == self.crm, DeadLetter.status == "retry")
                .order_by(DeadLetter.id).limit(PENDING_BATCH)).all()
            by_object: dict[str, dict[str, datetime]] = {}
            for letter in letters:
                sync = session.get(LeadSync, (self.crm, letter.object, letter.record_id))
                by_object.setdefault(letter.object, {})[letter.record_id] = \
                    (sync.record_created_at or sync.first_seen_at) if sync else letter.created_at
        for object_name, records in by_object.items():
            object_mapping = self.mapping.get(object_name)
            found = self.reread(object_mapping, list(records.items())) if object_mapping else set()
            with self.ctx.store.session() as session:
                for letter in letters:
                    if letter.object == object_name:
                        stored = session.get(DeadLetter, letter.id)
                        stored.status = "retried" if letter.record_id in found else "gone"
                        stored.resolved_at = self.ctx.now()
                        session.add(stored)

    def reread(self, object_mapping: ObjectMapping, records: list[tuple[str, datetime]], *,
               wait: timedelta | None = None) -> set[str]:
        """Read these records by id and process them again; returns the ids the CRM still has."""
        self.ctx.checkpoint()
        now = self.ctx.now()
        current = self.adapter.records_by_id(object_mapping.object, [record_id for record_id, _ in records],
                                             self.read_fields(object_mapping) + (
                                                 ["CreatedDate"] if self.crm == "salesforce" else ["createdate"]))
        found = [LeadRecord(object_mapping.object, record_id, created_at, now, current[record_id])
                 for record_id, created_at in records if record_id in current]
        if found:
            self.process(object_mapping, found, cursor=None, wait=wait)
        return {record.id for record in found}

    # -- one page -----------------------------------------------------------------------

    def process(self, object_mapping: ObjectMapping, records: list[LeadRecord], *,
                cursor: tuple[str, datetime] | None, wait: timedelta | None = None) -> None:
        self.finish(self.prepare(object_mapping, records, wait=wait), cursor)

    def prepare(self, object_mapping: ObjectMapping, records: list[LeadRecord], *,
                wait: timedelta | None = None) -> "PreparedPage":
        """Who each record is, its journey and the field values to write (reads only)."""
        now = self.ctx.now()
        wait = wait or timedelta(hours=self.ctx.config.settings.journey.match_wait_hours)
        specs = self.specs(object_mapping.object)
        is_deal = object_mapping.object == self.profile.deal_object
        with self.ctx.store.session(readonly=True) as session:
            table = LeadSync.__table__.c  # rows, not model instances: a page is read-only here
            syncs = {s.record_id: s for s in session.execute(select(LeadSync.__table__).where(
                table.crm == self.crm, table.object == object_mapping.object,
                table.record_id.in_([r.id for r in records]))).all()}
            people = self.deal_people(records) if is_deal else self.people(session, object_mapping, records)
            hits = touchpoints_of_many(session, {record_id: (person.visitor_ids, person.converted_at + CONVERSION_SKEW,
                                                             person.claims)
                                                 for record_id, person in people.items()})
            plans: list[tuple[LeadRecord, Person | None, dict[str, Any]]] = []
            for record in records:
                person = people.get(record.id)
                if person is None:
                    plans.append((record, None, {}))
                    continue
                variables = compute_variables([to_hit(row) for row in hits[record.id]],
                                              person.converted_at + CONVERSION_SKEW, self.settings,
                                              trusted_visitors=person.trusted)
                sync = syncs.get(record.id)
                plans.append((record, person, self.plan(object_mapping, specs, record, variables,
                                                        sync.written if sync else {})))
        return PreparedPage(object_mapping, plans, syncs, now, wait)

    def finish(self, page: "PreparedPage", cursor: tuple[str, datetime] | None, *, queued: list = ()) -> None:
        """Write the page's values, then record results, identities and the cursor (or the
        ``queued`` changes it processed) in one transaction (a crash before the commit re-reads
        the page and finds nothing to write)."""
        object_mapping, plans, syncs, now, wait = page.object_mapping, page.plans, page.syncs, page.now, page.wait
        updates = [LeadUpdate(object_mapping.object, record.id, values) for record, _, values in plans if values]
        results = {result.update.id: result for result in self.adapter.update_records(updates)} if updates else {}
        written = sum(1 for result in results.values() if result.ok)
        metrics.records_written.labels(self.crm, object_mapping.object).inc(written)
        self.ctx.result.records_written += written
        with self.ctx.store.session() as session:
            outcomes = [self.outcome(session, object_mapping.object, record, person, values, results.get(record.id),
                                     syncs.get(record.id), now, wait) for record, person, values in plans]
            rows = {row["record_id"]: row for row, _ in outcomes}  # one row per record, even if read twice
            upsert(session, LeadSync, list(rows.values()), ["crm", "object", "record_id"],
                   lambda table, new: {column: getattr(new, column) for column in (
                       "status", "last_checked_at", "last_written_at", "visitor_ids", "claims",
                       "converting_visitor_id", "converting_client_id", "written", "written_at", "attempts")})
            links = {(link["value"], link["visitor_id"]): link for _, found in outcomes for link in found}
            upsert(session, Identity, list(links.values()), ["kind", "value", "visitor_id"])
            done(session, queued)
            if cursor is not None:
                advance_cursor(session, self.crm, *cursor, now)
        if cursor is not None and self.on_page:
            self.on_page(object_mapping.object, len(plans))

    def plan(self, object_mapping: ObjectMapping, specs: dict[str, FieldSpec], record: LeadRecord,
             variables: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
        """The field values to write: changed ones only, as the policies allow."""
        values: dict[str, Any] = {}
        fields = record.fields
        for name, variable, fill_empty, spec, convert in self.field_writers(object_mapping, specs):
            wire = convert(variables.get(variable))
            if wire is None:
                continue
            current = fields.get(name)
            if current is None or current == "":
                if wire == "" or (fill_empty and name in written):
                    continue
            elif fill_empty or same_value(current, wire, spec):
                continue
            values[name] = wire
        return values

    def field_writers(self, object_mapping: ObjectMapping, specs: dict[str, FieldSpec]) -> list[tuple]:
        """Per mapped field the CRM has: (field, variable, fill_empty?, spec, converter).

        A field the CRM lacks is left out: `closedloop check` reports it, and one missing field
        must not stop the others."""
        if object_mapping.object not in self._writers:  # mapping and specs are fixed for this run
            self._writers[object_mapping.object] = [
                (mapping.field, mapping.variable, mapping.policy == "fill_empty", specs[mapping.field],
                 converter(specs[mapping.field], self.crm, mapping.max_length))
                for mapping in object_mapping.fields if mapping.field in specs]
        return self._writers[object_mapping.object]

    def outcome(self, session: Session, object_name: str, record: LeadRecord, person: Person | None,
                values: dict[str, Any], result: WriteResult | None, sync: Any, now: datetime,
                wait: timedelta) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The record's new lead-sync row and the identity rows linking it to its visitors
        (written in bulk by the caller); a failed write is dead-lettered here."""
        row = {"crm": self.crm, "object": object_name, "record_id": record.id, "status": "pending_visitor",
               "record_created_at": record.created_at, "first_seen_at": now, "last_written_at": None,
               "visitor_ids": [], "claims": {}, "converting_visitor_id": None, "converting_client_id": None,
               "written": {}, "written_at": {}, "attempts": 0}
        if sync is not None:
            row.update(status=sync.status, record_created_at=sync.record_created_at, first_seen_at=sync.first_seen_at,
                       last_written_at=sync.last_written_at, visitor_ids=sync.visitor_ids, claims=sync.claims,
                       converting_visitor_id=sync.converting_visitor_id,
                       converting_client_id=sync.converting_client_id, written=sync.written,
                       written_at=sync.written_at or {}, attempts=sync.attempts)
        row["last_checked_at"] = now
        row["attempts"] += 1
        if person is None:
            if row["status"] in ("pending_visitor", "no_web_journey"):
                row["status"] = "pending_visitor" if now - row["first_seen_at"] < wait else "no_web_journey"
            return row, []
        row.update(status="enriched", visitor_ids=sorted(person.trusted), claims=person.stored_claims(),
                   converting_visitor_id=person.converting_visitor_id,
                   converting_client_id=person.converting_client_id)
        if result is not None and result.ok:
            landed = {name: value for name, value in values.items() if name not in result.dropped}
            row["written"], row["last_written_at"] = {**row["written"], **landed}, now
            row["written_at"] = {**row["written_at"], **dict.fromkeys(landed, now.isoformat())}
        elif result is not None:
            self.ctx.result.dead_letters += 1
            session.add(DeadLetter(job=EnrichJob.name, crm=self.crm, object=object_name, record_id=record.id,
                                   code=result.code or "WRITE_FAILED", message=(result.message or "")[:2000],
                                   payload={"values": values}))
        key = crm_record_key(self.crm, object_name, record.id)
        return row, [{"visitor_id": visitor, "kind": CRM_RECORD, "value": key, "first_seen_at": now,
                      "last_seen_at": now, "first_received_at": now} for visitor in sorted(person.visitor_ids)]

    # -- who is it? -----------------------------------------------------------------------

    def people(self, session: Session, object_mapping: ObjectMapping,
               records: list[LeadRecord]) -> dict[str, Person]:
        """Each record's person. The visitor and GA client ids the record holds (and, for a
        converted contact, its lead's trusted devices) are strong clues; its email finds the
        devices that claimed it (:mod:`sync.capture.stitching`)."""
        match = object_mapping.match
        converted_from = self.converted_leads(records) if object_mapping.object == "Contact" else {}
        clues: dict[str, Clues] = {}
        named: dict[str, tuple[datetime, str | None, str | None]] = {}
        for record in records:
            visitor = str(record.fields.get(match["visitor_id"]) or "") if match.get("visitor_id") else ""
            ga = normalise_ga_client_id(str(record.fields.get(match["ga_client_id"]) or "")) \
                if match.get("ga_client_id") else None
            email = hash_email(str(record.fields.get(match["email"]) or "")) if match.get("email") else None
            lead = converted_from.get(record.id)
            visitor_ids = [visitor] if visitor else []
            converted_at = record.created_at
            if lead is not None:
                lead_sync = session.get(LeadSync, (self.crm, "Lead", lead["Id"]))
                if lead_sync is not None:
                    visitor_ids += lead_sync.visitor_ids
                    visitor = visitor or lead_sync.converting_visitor_id or ""
                    ga = ga or lead_sync.converting_client_id
                converted_at = lead["created_at"]
            named[record.id] = (converted_at, visitor or None, ga)
            clues[record.id] = Clues(tuple(visitor_ids), (ga,) if ga else (), (email,) if email else (),
                                     anchor_before=converted_at + CONVERSION_SKEW)
        people = {}
        for record_id, found in find_people(session, clues).items():
            if not found.visitor_ids:
                continue
            converted_at, visitor, ga = named[record_id]
            people[record_id] = Person(found.visitor_ids, converted_at, found.claims,
                                       visitor if visitor in found.trusted else None, ga)
        return people

    def converted_leads(self, contacts: list[LeadRecord]) -> dict[str, dict[str, Any]]:
        """Salesforce: the lead each contact was converted from (its creation is the conversion)."""
        from adapters.salesforce import parse_datetime

        ids = ", ".join(f"'{record.id}'" for record in contacts)
        if not ids:
            return {}
        rows = self.adapter.query(f"SELECT Id, CreatedDate, ConvertedContactId FROM Lead WHERE ConvertedContactId "
                                  f"IN ({ids})")
        return {row["ConvertedContactId"]: {"Id": row["Id"], "created_at": parse_datetime(row["CreatedDate"])}
                for row in rows}

    def deal_people(self, deals: list[LeadRecord]) -> dict[str, Person]:
        """A deal's person is its primary (else first) contact; the contact's own enrichment
        (visitors, conversion time) is reused."""
        refs = self.adapter.people_of_deals([deal.id for deal in deals])
        found: dict[str, Person] = {}
        with self.ctx.store.session(readonly=True) as session:
            for deal in deals:
                for ref in refs.get(deal.id, []):
                    sync = session.get(LeadSync, (self.crm, ref.object, ref.id))
                    if sync and sync.visitor_ids:
                        claims = {visitor: datetime.fromisoformat(moment) for visitor, moment in sync.claims.items()}
                        found[deal.id] = Person(set(sync.visitor_ids) | set(claims),
                                                sync.record_created_at or deal.created_at, claims,
                                                sync.converting_visitor_id, sync.converting_client_id)
                        break
        return found
