"""``closedloop explain``: one person as closedloop sees them, found by whatever the asker has.

A sales rep or an admin has a CRM record id or an email, rarely a visitor id; any of the three
finds the person. The explanation holds their devices, every session with the evidence for its
source and the channel rule that matched, and each CRM record closedloop enriched for them
with the values it last wrote and when. Mapping files are not read here (reports never touch
``mappings``): the CLI names the variable behind each field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, or_, select

from adapters.errors import ClosedloopError
from state.models import DealRecord, Identity, LeadSync, Touchpoint, Visitor
from sync.capture.identity import hash_email
from sync.capture.stitching import CRM_RECORD, find_person, touchpoints_for
from sync.journey.compute import JourneySettings, SessionExplanation, device_of, explain
from sync.journey.hits import to_hit


@dataclass(frozen=True)
class Device:
    visitor_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    ga_client_id: str | None
    browser: str | None
    os: str | None
    category: str | None
    trust: str = "linked"  # "trusted" (a CRM record's strong clue), "claim" (counted from its claim on), "linked"
    counted_from: datetime | None = None  # for a claim: when its touches start to count


@dataclass(frozen=True)
class WrittenValue:
    field: str
    value: Any
    written_at: str | None  # ISO time; None for values written before write times were kept


@dataclass(frozen=True)
class RecordState:
    """What closedloop knows and last wrote about one CRM record of the person."""

    crm: str
    object: str
    record_id: str
    status: str
    created_at: datetime | None
    last_written_at: datetime | None
    values: list[WrittenValue] = field(default_factory=list)


@dataclass
class Explanation:
    asked: str
    found_by: str           # "visitor id", "email", "salesforce Lead record", ...
    devices: list[Device]
    truncated: bool
    sessions: list[SessionExplanation]
    records: list[RecordState]


def explain_person(session: Session, who: str, settings: JourneySettings) -> Explanation:
    """Find the person behind ``who`` (visitor id, email, or CRM record id) and explain them.
    Raises :class:`ClosedloopError` saying what was looked for when nothing matches."""
    who = who.strip()
    found_by, visitor_ids, email_hashes, records = _identify(session, who)
    person = find_person(session, visitor_ids=visitor_ids, email_hashes=email_hashes)
    if not person.visitor_ids and not records:
        raise ClosedloopError(f"no visitor, email or CRM record {who!r} in the state store"
                              + (" (emails are known only once a form or identify beacon sent them)"
                                 if "@" in who else ""))
    records = _records(session, person.visitor_ids, records)
    hits = [to_hit(row) for row in touchpoints_for(session, person.visitor_ids)]
    return Explanation(who, found_by, _devices(session, person.visitor_ids, _trust(session, records)),
                       person.truncated, explain(hits, settings), records)


def _trust(session: Session, records: list[RecordState]) -> dict[str, tuple[str, datetime | None]]:
    """What each device is to the person's CRM records (the identity trust model): trusted when a
    record holds it (its touches all count), a claim when it only claimed the person (its touches
    count from the claim on: earlier sessions, shown below, never change the first click)."""
    trust: dict[str, tuple[str, datetime | None]] = {}
    for record in records:
        sync = session.get(LeadSync, (record.crm, record.object, record.record_id))
        for visitor, moment in (sync.claims or {}).items() if sync else ():
            claimed = datetime.fromisoformat(moment)
            known = trust.get(visitor)
            if known is None or (known[0] == "claim" and claimed < known[1]):
                trust[visitor] = ("claim", claimed)
        for visitor in sync.visitor_ids if sync else ():
            trust[visitor] = ("trusted", None)
    return trust


def _identify(session: Session, who: str) -> tuple[str, list[str], list[str], list[LeadSync]]:
    if "@" in who:
        digest = hash_email(who)
        return "email", [], [digest] if digest else [], []
    if session.get(Visitor, who) is not None:
        return "visitor id", [who], [], []
    syncs = _records_by_id(session, who)
    if syncs:
        sync = syncs[0]
        return f"{sync.crm} {sync.object} record", [v for s in syncs for v in s.visitor_ids], [], syncs
    deal = session.exec(select(DealRecord).where(DealRecord.deal_id == who)).first()
    if deal is not None and deal.person_id:
        syncs = _records_by_id(session, deal.person_id)
        return (f"{deal.crm} deal {who} of {deal.person_object} {deal.person_id}",
                [v for s in syncs for v in s.visitor_ids], [], syncs)
    return "nothing", [], [], []


def _records_by_id(session: Session, record_id: str) -> list[LeadSync]:
    """A record by id; a 15-character Salesforce id also finds its 18-character form."""
    query = select(LeadSync).where(LeadSync.record_id == record_id)
    if len(record_id) == 15 and record_id.isalnum():
        query = select(LeadSync).where(or_(LeadSync.record_id == record_id,
                                           col(LeadSync.record_id).startswith(record_id)))
    return list(session.exec(query.order_by(LeadSync.crm, LeadSync.object)).all())


def _records(session: Session, visitor_ids: set[str], known: list[LeadSync]) -> list[RecordState]:
    """The CRM records enrichment tied to these visitors, plus those already found."""
    keys = {(s.crm, s.object, s.record_id) for s in known}
    if visitor_ids:
        for value in session.exec(select(Identity.value).where(Identity.kind == CRM_RECORD,
                                                                col(Identity.visitor_id).in_(visitor_ids))):
            crm, obj, record_id = value.split(":", 2)
            keys.add((crm, obj, record_id))
    states = []
    for key in sorted(keys):
        sync = session.get(LeadSync, key)
        if sync is None:
            continue
        times = sync.written_at or {}
        states.append(RecordState(sync.crm, sync.object, sync.record_id, sync.status, sync.record_created_at,
                                  sync.last_written_at, [WrittenValue(name, value, times.get(name))
                                                         for name, value in sorted(sync.written.items())]))
    return states


def _devices(session: Session, visitor_ids: set[str],
             trust: dict[str, tuple[str, datetime | None]]) -> list[Device]:
    if not visitor_ids:
        return []
    devices = []
    for visitor in session.exec(select(Visitor).where(col(Visitor.id).in_(visitor_ids))
                                .order_by(Visitor.first_seen_at, Visitor.id)):
        agent = session.exec(select(Touchpoint.user_agent).where(Touchpoint.visitor_id == visitor.id,
                                                                 Touchpoint.user_agent.is_not(None))
                             .order_by(Touchpoint.occurred_at.desc()).limit(1)).first()
        browser, os_name, category = device_of(agent)
        kind, since = trust.get(visitor.id, ("linked", None))
        devices.append(Device(visitor.id, visitor.first_seen_at, visitor.last_seen_at, visitor.ga_client_id,
                              browser, os_name, category, kind, since))
    return devices
