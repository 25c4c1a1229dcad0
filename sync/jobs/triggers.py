"""Triggers: what a CRM's "this record changed" means to closedloop's jobs, and the queue it fills.

A trigger (a Salesforce change event, a HubSpot webhook) never does the work itself: it is
turned into queued ids — one ``queued_changes`` row per (crm, job, object, record) — in one
transaction with the trigger's own bookkeeping (a stream's replay position), and the jobs take
them from there through the same idempotent code the poll uses (enrich: read by id, plan only
changed values, write once). So a record seen by a trigger and by the poll is written once,
and a crash between the two steps repeats a read, never a write.

Which changes matter (:class:`Routing`):

- enrich: a record created (or undeleted, or a gap event with no field data), or one whose
  match fields (visitor id, GA client id, email) or mapped fields changed; HubSpot
  ``propertyChange`` events count only for the match properties, never for closedloop's own
  output properties (its writes would otherwise come back as events);
- revenue: a deal created or whose stage, amount, close date or currency changed;
- lifecycle: a deal whose stage changed (lead and contact stages stay with the poll).

The poll remains the safety net. While every trigger of a CRM is healthy (connected and heard
from within :data:`HEALTHY_WITHIN`) the enrich job polls that CRM only every
``[schedule] safety_poll_seconds``; otherwise every ``enrich_seconds``, as without triggers.
"""
from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Iterator

from sqlalchemy import and_, case, delete, literal_column, null, or_
from sqlmodel import Session, func, select

from state import Store
from state.models import Cursor, QueuedChange, TriggerStream
from state.upsert import upsert
from sync.config import Config
from sync.jobs.cursors import advance_cursor

log = logging.getLogger(__name__)

SOURCE_CDC, SOURCE_WEBHOOK = "cdc", "webhook"
WEBHOOK_CHANNEL = "webhooks"
QUEUE_BATCH = 200  # queued records read and written per step: one write call
HEALTHY_WITHIN = timedelta(seconds=330)  # Pub/Sub keepalives come within 270 s; the receiver beats every 60 s
CREATED = {"CREATE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_UNDELETE", "GAP_OVERFLOW"}
SALESFORCE_DEAL_FIELDS = {"StageName", "Amount", "CloseDate", "IsWon", "IsClosed", "CurrencyIsoCode", "Name",
                          "ContactId", "Probability", "ForecastCategoryName"}
HUBSPOT_DEAL_PROPERTIES = {"dealstage", "amount", "closedate", "deal_currency_code", "dealname", "pipeline"}
TOPICS = {"Lead": "/data/LeadChangeEvent", "Opportunity": "/data/OpportunityChangeEvent",
          "Contact": "/data/ContactChangeEvent"}


@dataclass(frozen=True)
class Change:
    """One record one job should look at again."""

    job: str
    object: str
    record_id: str
    occurred_at: datetime | None
    snapshot: dict | None = None  # a create event's field values (REST form), for enrich


class Routing:
    """Which jobs a change concerns, from the config and the CRM's mapping."""

    def __init__(self, config: Config, crm: str, mapping) -> None:
        from sync.jobs.lifecycle import LifecycleJob

        self.crm = crm
        settings = config.settings
        self.deal_object = "Opportunity" if crm == "salesforce" else "deals"
        self.person_object = "Lead" if crm == "salesforce" else "contacts"
        self.lifecycle = LifecycleJob.enabled(config) and getattr(settings.lifecycle, crm).enabled
        self.revenue = True  # the revenue job mirrors deals for the reports even without GA4
        self.ga4 = settings.ga4.enabled
        self.match: dict[str, set[str]] = {}
        self.mapped: dict[str, set[str]] = {}
        for name, object_mapping in mapping.objects.items():
            if object_mapping.fields:
                self.match[name] = set(object_mapping.match.values())
                self.mapped[name] = set(object_mapping.field_names)
        self.enriched = set(self.match)

    def topics(self) -> list[str]:
        """The Salesforce change event channels worth a subscription: leads; contacts where they
        are mapped (a converted lead's contact is created then, and deals find their person
        through it); opportunities where they are enriched or their revenue goes to GA4."""
        wanted = ["Lead"] + (["Contact"] if "Contact" in self.enriched else []) \
            + (["Opportunity"] if "Opportunity" in self.enriched or self.ga4 else [])
        return [TOPICS[name] for name in wanted]

    def salesforce(self, entity: str, record_ids: Iterable[str], change_type: str, changed: Iterable[str],
                   occurred_at: datetime | None, snapshot: dict | None = None) -> list[Change]:
        """Changes for one Salesforce change event (not one closedloop caused: the caller drops those).
        ``snapshot``: a create (or undelete) event's field values, kept for enrich."""
        kind = change_type.upper()
        if kind in ("DELETE", "GAP_DELETE"):
            return []
        fields = {name.split(".", 1)[0] for name in changed}
        anything = kind in CREATED or not fields  # no changedFields: take the event as "something changed"
        jobs = []
        if entity in self.enriched and (anything or fields & (self.match[entity] | self.mapped[entity] |
                                                              {"IsConverted", "ContactId", "ConvertedContactId"})):
            jobs.append("enrich")
        if entity == self.deal_object:
            if self.revenue and (anything or fields & SALESFORCE_DEAL_FIELDS):
                jobs.append("revenue")
            if self.lifecycle and (anything or "StageName" in fields):
                jobs.append("lifecycle")
        whole = snapshot if kind in ("CREATE", "UNDELETE") else None
        return [Change(job, entity, record_id, occurred_at, whole if job == "enrich" else None)
                for record_id in record_ids for job in jobs]

    def hubspot(self, kind: str, object_id: str, property_name: str, occurred_at: datetime | None, *,
                written_by_another: bool = False) -> list[Change]:
        """Changes for one HubSpot webhook event (``contact.creation``, ``deal.propertyChange``...).

        A change of a property closedloop writes itself counts only when the event names
        another writer (``written_by_another``): otherwise it is most likely closedloop's own."""
        object_type, _, action = kind.partition(".")
        name = {"contact": "contacts", "deal": "deals"}.get(object_type)
        jobs = []
        if name is None or action not in ("creation", "propertyChange", "restore"):
            return []
        created = action in ("creation", "restore")
        ours = property_name in self.mapped.get(name, ()) and not written_by_another
        if name in self.enriched and (created or (property_name in self.match[name] and not ours)):
            jobs.append("enrich")
        if name == self.deal_object:
            if self.revenue and (created or property_name in HUBSPOT_DEAL_PROPERTIES):
                jobs.append("revenue")
            if self.lifecycle and (created or property_name == "dealstage"):
                jobs.append("lifecycle")
        return [Change(job, name, object_id, occurred_at) for job in jobs]


# -- the queue ------------------------------------------------------------------------------


def queue_changes(session: Session, crm: str, source: str, changes: Iterable[Change], now: datetime) -> int:
    """Add the changes to the queue (inside the caller's transaction); returns how many rows."""
    rows = {}
    for change in changes:
        key = (change.job, change.object, change.record_id)
        earlier = rows.get(key)
        occurred = change.occurred_at if earlier is None or earlier["occurred_at"] is None or (
            change.occurred_at is not None and change.occurred_at < earlier["occurred_at"]) else earlier["occurred_at"]
        rows[key] = {"crm": crm, "job": change.job, "object": change.object, "record_id": change.record_id,
                     "source": source, "occurred_at": occurred, "queued_at": now, "version": 1,
                     "snapshot": change.snapshot if earlier is None else None}
    upsert(session, QueuedChange, list(rows.values()), ["crm", "job", "object", "record_id"],
           # literal SQL only: the bulk statement is compiled once with the rows as its one parameter
           lambda table, new: {"version": table.version + literal_column("1"), "source": new.source,
                               "snapshot": null(),
                               "occurred_at": case(
               (table.occurred_at.is_(None), new.occurred_at), (new.occurred_at.is_(None), table.occurred_at),
               (new.occurred_at < table.occurred_at, new.occurred_at), else_=table.occurred_at)})
    return len(rows)


def waiting(store: Store, crm: str, job: str, limit: int = 1000) -> list[QueuedChange]:
    """The oldest queued changes for one job and CRM."""
    with store.session(readonly=True) as session:
        return list(session.exec(select(QueuedChange).where(QueuedChange.crm == crm, QueuedChange.job == job)
                                 .order_by(QueuedChange.queued_at, QueuedChange.record_id).limit(limit)).all())


def queued_batches(ctx, crm: str, job: str, size: int = QUEUE_BATCH) -> Iterator[list[QueuedChange]]:
    """One job's queued changes for a CRM, a batch at a time, oldest first, until none are left;
    the caller removes each batch (:func:`done`) with the work it did. ``ctx`` is the job's
    context: a stop is honoured between batches."""
    while True:
        ctx.checkpoint()
        rows = waiting(ctx.store, crm, job, limit=size)
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return


def done(session: Session, rows: Iterable[QueuedChange]) -> None:
    """Remove processed rows, unless the record was queued again since (its version moved on)."""
    rows = list(rows)
    for start in range(0, len(rows), 200):
        chunk = rows[start:start + 200]
        session.exec(delete(QueuedChange).where(or_(*[and_(
            QueuedChange.crm == row.crm, QueuedChange.job == row.job, QueuedChange.object == row.object,
            QueuedChange.record_id == row.record_id, QueuedChange.version == row.version) for row in chunk])))


def queue_depth(session: Session) -> dict[tuple[str, str], int]:
    """Queued changes per (crm, job)."""
    return {(crm, job): count for crm, job, count in session.exec(
        select(QueuedChange.crm, QueuedChange.job, func.count()).group_by(QueuedChange.crm, QueuedChange.job)).all()}


# -- stream state ---------------------------------------------------------------------------


def save_stream(session: Session, crm: str, channel: str, now: datetime, **values) -> None:
    """Create or update one trigger channel's row (inside the caller's transaction)."""
    row = session.get(TriggerStream, (crm, channel)) or TriggerStream(crm=crm, channel=channel)
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = now
    session.add(row)


def expected_channels(config: Config, crm: str, routing: Routing | None) -> list[str]:
    """The trigger channels a CRM has when all is configured ([] = the CRM has no trigger)."""
    settings = getattr(config.settings, crm)
    if crm == "salesforce" and settings.change_events and routing is not None:
        return routing.topics()
    if crm == "hubspot" and settings.webhooks:
        return [WEBHOOK_CHANNEL]
    return []


def triggers_healthy(store: Store, crm: str, channels: list[str], now: datetime) -> bool:
    """Every channel connected (or listening and delivering) and heard from recently."""
    if not channels:
        return False
    with store.session(readonly=True) as session:
        rows = {row.channel: row for row in session.exec(select(TriggerStream).where(
            TriggerStream.crm == crm, TriggerStream.channel.in_(channels))).all()}
    for channel in channels:
        row = rows.get(channel)
        if row is None or now - row.updated_at > HEALTHY_WITHIN:
            return False
        if channel == WEBHOOK_CHANNEL:
            # A listening receiver proves nothing until HubSpot has reached it once in the last day.
            if row.state != "listening" or row.last_event_at is None or now - row.last_event_at > timedelta(days=1):
                return False
        elif row.state != "connected":
            return False
    return True


def poll_due(store: Store, config: Config, crm: str, job: str, channels: list[str], now: datetime) -> bool:
    """Whether ``job`` should poll ``crm`` now: always without healthy triggers, else once per
    ``[schedule] safety_poll_seconds`` (remembered in the ``<job>:polled`` cursor)."""
    if not triggers_healthy(store, crm, channels, now):
        return True
    with store.session(readonly=True) as session:
        cursor = session.get(Cursor, (crm, f"{job}:polled"))
    if cursor is None:
        return True
    return now - datetime.fromisoformat(cursor.value) >= timedelta(seconds=config.settings.schedule.safety_poll_seconds)


def mark_polled(store: Store, crm: str, job: str, now: datetime) -> None:
    with store.session() as session:
        advance_cursor(session, crm, f"{job}:polled", now, now)


def request_catch_up(session: Session, crm: str, job: str = "enrich") -> None:
    """The next run of ``job`` polls ``crm`` whatever the triggers say (a replay gap to cover)."""
    session.exec(delete(Cursor).where(Cursor.crm == crm, Cursor.stream == f"{job}:polled"))


@dataclass(frozen=True)
class TriggerStatus:
    """One trigger channel as ``closedloop status`` shows it."""

    crm: str
    channel: str
    state: str  # connected | connecting | down | paused | listening | stopped | stale | not started
    message: str | None
    last_event_at: datetime | None
    position: str  # the replay id (hex, shortened) or "" for webhooks
    position_at: datetime | None
    lag_seconds: float | None
    queued: int


def trigger_status(store: Store, config: Config, connections, now: datetime) -> list[TriggerStatus]:
    """Every configured trigger channel of every enabled CRM, with what the store knows of it."""
    with store.session(readonly=True) as session:
        rows = {(row.crm, row.channel): row for row in session.exec(select(TriggerStream)).all()}
        depth = queue_depth(session)
    found = []
    for crm in connections.enabled_crms():
        routing = Routing(config, crm, connections.mapping(crm)) if crm == "salesforce" else None
        for channel in expected_channels(config, crm, routing):
            row = rows.get((crm, channel))
            state = row.state if row else "not started"
            if row is not None and state in ("connected", "listening", "connecting") and \
                    now - row.updated_at > HEALTHY_WITHIN:
                state = "stale"  # no daemon has refreshed it: none is running, or it hangs
            position = ""
            if row is not None and row.position:
                position = base64.b64decode(row.position).hex()
                position = position if len(position) <= 16 else position[:16] + "…"
            found.append(TriggerStatus(crm, channel, state, row.message if row else None,
                                       row.last_event_at if row else None, position,
                                       row.position_at if row else None, row.lag_seconds if row else None,
                                       sum(n for (c, _), n in depth.items() if c == crm)))
    return found


def trigger_report(store: Store, config: Config, connections, now: datetime) -> dict:
    """The ``triggers`` section of ``/healthz``: each channel's state, last event and lag, and
    the ids waiting. Informational: a trigger that is down only slows a CRM to its poll."""
    return {f"{row.crm} {row.channel}": {
        "state": row.state, "last_event_at": row.last_event_at.isoformat() if row.last_event_at else None,
        "lag_seconds": row.lag_seconds, "queued": row.queued, "message": row.message}
        for row in trigger_status(store, config, connections, now)}
