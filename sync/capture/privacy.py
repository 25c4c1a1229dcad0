"""``closedloop forget``: erase one person from closedloop's own store, completely.

The person is every device that claimed the email (however many: no cap here) and every
device sharing a GA client id with one of those (the same browser). Erased:

- the devices, their touchpoints and identities, and every identity naming the email's hash;
- the CRM records matched to them: their ``lead_sync`` rows (visitor ids, claims, converting
  ids, the field values last written);
- GA4 events of those records, of their deals, or under their client ids, whatever their
  status (pending, sent, dead, uncertain);
- dead letters about those records, deals, events or devices, or that mention one of their
  ids anywhere in what they kept;
- the client id in the revenue ledger of their deals, which are marked ``forgotten`` so that
  nothing is ever sent for them again (GA4's own copy is deleted in GA4: its user deletion).

CRM records are the CRM owner's data and are not touched; nor is the local mirror of deals,
which holds no personal identifier. Running it again finds nothing and removes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import or_, tuple_
from sqlmodel import Session, col, delete, select

from state.models import DeadLetter, DealRecord, Identity, LeadSync, OutboxEvent, RevenueLedger, Visitor
from sync.capture.identity import google_email_hash, hash_email
from sync.capture.stitching import CRM_RECORD, find_person, forget_visitors

FORGOTTEN = "forgotten"


@dataclass
class ForgetReport:
    visitors: int = 0
    touchpoints: int = 0
    identities: int = 0
    crm_records: int = 0
    ga4_events: int = 0
    dead_letters: int = 0
    ledger_entries: int = 0

    def describe(self) -> str:
        return (f"forgot {self.visitors} visitor(s), {self.touchpoints} touchpoint(s), {self.identities} "
                f"identit(ies), {self.crm_records} CRM record match(es) with the values written to them, "
                f"{self.ga4_events} GA4 event(s) and {self.dead_letters} dead letter(s); erased the GA client id of "
                f"{self.ledger_entries} revenue ledger entr(ies) (CRM data itself is not changed)")

    @property
    def removed_anything(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


def forget_email(session: Session, email: str) -> ForgetReport:
    """Erase the person behind ``email``; raises ValueError for something that is not an address."""
    digest = hash_email(email)
    if digest is None:
        raise ValueError(f"not an email address: {email!r}")
    person = find_person(session, email_hashes=[digest], expand_kinds=("ga_client_id",), limit=None)
    visitors = person.visitor_ids
    report = ForgetReport()
    client_ids = {value for kind, value in person.identities if kind == "ga_client_id"}
    if visitors:
        client_ids |= set(session.exec(select(Visitor.ga_client_id).where(
            col(Visitor.id).in_(visitors), col(Visitor.ga_client_id).is_not(None))).all())
        client_ids |= set(session.exec(select(Identity.value).where(
            col(Identity.visitor_id).in_(visitors), Identity.kind == "ga_client_id")).all())
    # The CRM records enrichment matched to these devices (it links every device as "crm_record").
    records = {tuple(value.split(":", 2)) for value in session.exec(select(Identity.value).where(
        col(Identity.visitor_id).in_(visitors), Identity.kind == CRM_RECORD)).all()} if visitors else set()
    if visitors or client_ids:
        records |= {(s.crm, s.object, s.record_id) for s in session.exec(select(LeadSync).where(or_(
            col(LeadSync.converting_visitor_id).in_(visitors), col(LeadSync.converting_client_id).in_(client_ids))))}
    deals = _deals_of(session, records, client_ids)
    owned = {(crm, record_id) for crm, _, record_id in records} | deals

    owned_by = [col(OutboxEvent.client_id).in_(client_ids)]
    if owned:
        owned_by.append(tuple_(OutboxEvent.crm, OutboxEvent.record_id).in_(sorted(owned)))
    keys = set(session.exec(select(OutboxEvent.idempotency_key).where(or_(*owned_by))).all())
    if keys:
        report.ga4_events = session.exec(delete(OutboxEvent).where(col(OutboxEvent.idempotency_key).in_(keys))).rowcount

    # Dead letters are few and keep what they were about in free-form payloads: each is read.
    needles = set(visitors) | client_ids | keys | {digest, google_email_hash(email)}
    letters = [letter.id for letter in session.exec(select(DeadLetter)).all()
               if (letter.crm, letter.record_id) in owned or letter.record_id in visitors
               or _mentions(letter.payload, needles) or any(n in (letter.message or "") for n in needles if len(n) > 7)]
    if letters:
        report.dead_letters = session.exec(delete(DeadLetter).where(col(DeadLetter.id).in_(letters))).rowcount

    ledger_of = [col(RevenueLedger.client_id).in_(client_ids)]
    if deals:
        ledger_of.append(tuple_(RevenueLedger.crm, RevenueLedger.deal_id).in_(sorted(deals)))
    ledgers = session.exec(select(RevenueLedger).where(or_(*ledger_of))).all()
    for ledger in ledgers:
        ledger.client_id, ledger.snapshot = None, {}
        ledger.status, ledger.reason = FORGOTTEN, "the person was erased (closedloop forget)"
        session.add(ledger)
    report.ledger_entries = len(ledgers)

    for crm, object_name, record_id in sorted(records):
        sync = session.get(LeadSync, (crm, object_name, record_id))
        if sync is not None:
            session.delete(sync)
            report.crm_records += 1
    counts = forget_visitors(session, visitors)
    report.visitors, report.touchpoints = counts["visitors"], counts["touchpoints"]
    report.identities = counts["identities"] + session.exec(delete(Identity).where(
        Identity.kind.in_(("email_sha256", "ga_client_id")),
        col(Identity.value).in_({digest} | client_ids))).rowcount
    return report


def _deals_of(session: Session, records: set[tuple[str, str, str]], client_ids: set[str]) -> set[tuple[str, str]]:
    """(crm, deal id) of the deals whose person is one of ``records`` or whose purchase went under
    one of ``client_ids``."""
    deals = {(crm, deal_id) for crm, deal_id in session.exec(select(RevenueLedger.crm, RevenueLedger.deal_id).where(
        col(RevenueLedger.client_id).in_(client_ids))).all()} if client_ids else set()
    if records:
        people = sorted(records)
        deals |= {(crm, deal_id) for crm, deal_id in session.exec(select(DealRecord.crm, DealRecord.deal_id).where(
            tuple_(DealRecord.crm, DealRecord.person_object, DealRecord.person_id).in_(people))).all()}
    return deals


def _mentions(value: Any, needles: set[str]) -> bool:
    """Whether any string inside ``value`` (a dead letter's payload) is one of ``needles``."""
    if isinstance(value, str):
        return value in needles
    if isinstance(value, dict):
        return any(_mentions(key, needles) or _mentions(item, needles) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(_mentions(item, needles) for item in value)
    return False
