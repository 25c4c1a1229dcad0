"""``closedloop forget``: erase one person from closedloop's own store.

Deletes the visitors linked to the email (and devices joined to them by GA client id), their
touchpoints and identities, GA4 events still waiting to be sent for them, and their visitor
ids in the lead-sync records. CRM records are the CRM owner's data and are not touched.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, delete, select

from state.models import Identity, LeadSync, OutboxEvent, Visitor
from sync.capture.identity import hash_email
from sync.capture.stitching import CRM_RECORD, find_person, forget_visitors


@dataclass
class ForgetReport:
    visitors: int = 0
    touchpoints: int = 0
    identities: int = 0
    pending_ga4_events: int = 0
    lead_sync_records: int = 0


def forget_email(session: Session, email: str) -> ForgetReport:
    """Erase the person behind ``email``; raises ValueError for something that is not an address."""
    digest = hash_email(email)
    if digest is None:
        raise ValueError(f"not an email address: {email!r}")
    person = find_person(session, email_hashes=[digest], expand_kinds=("ga_client_id",))
    report = ForgetReport()
    if not person.visitor_ids:
        report.identities = session.exec(delete(Identity).where(Identity.kind == "email_sha256",
                                                                Identity.value == digest)).rowcount
        return report
    client_ids = {value for kind, value in person.identities if kind == "ga_client_id"}
    client_ids |= set(session.exec(select(Visitor.ga_client_id).where(
        col(Visitor.id).in_(person.visitor_ids), col(Visitor.ga_client_id).is_not(None))).all())
    client_ids |= set(session.exec(select(Identity.value).where(
        col(Identity.visitor_id).in_(person.visitor_ids), Identity.kind == "ga_client_id")).all())
    if client_ids:
        report.pending_ga4_events = session.exec(delete(OutboxEvent).where(
            OutboxEvent.status == "pending", col(OutboxEvent.client_id).in_(client_ids))).rowcount
    # Enrichment records each CRM record a visitor was matched to as a "crm_record" identity.
    records = session.exec(select(Identity.value).where(col(Identity.visitor_id).in_(person.visitor_ids),
                                                        Identity.kind == CRM_RECORD)).all()
    for crm, object_name, record_id in (value.split(":", 2) for value in set(records)):
        sync = session.get(LeadSync, (crm, object_name, record_id))
        if sync is not None:
            sync.visitor_ids = [v for v in sync.visitor_ids if v not in person.visitor_ids]
            session.add(sync)
            report.lead_sync_records += 1
    counts = forget_visitors(session, person.visitor_ids)
    report.visitors, report.touchpoints, report.identities = counts["visitors"], counts["touchpoints"], \
        counts["identities"]
    return report
