"""Stitching: which visitors (browsers, devices) belong to one person.

A person is found from what a CRM record or an operator knows — a visitor id written by the
form's hidden field, a GA client id, an email or phone hash — and grows along shared
identities: two devices that identified with the same email are one person; a browser whose
``_cl_vid`` cookie was reset but kept its ``_ga`` cookie is the same browser.

Growth is bounded (``MAX_VISITORS``): a shared kiosk or a test address typed on hundreds of
machines must not merge hundreds of journeys into one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, delete, select

from state.models import Identity, Touchpoint, Visitor

MAX_VISITORS = 25
LINKING_KINDS = ("email_sha256", "phone_sha256", "ga_client_id")
CRM_RECORD = "crm_record"  # identity value "<crm>:<object>:<record id>", written by enrichment


def crm_record_key(crm: str, object_name: str, record_id: str) -> str:
    return f"{crm}:{object_name}:{record_id}"


@dataclass
class Person:
    """The visitors found for one person and the identities that joined them."""

    visitor_ids: set[str] = field(default_factory=set)
    identities: set[tuple[str, str]] = field(default_factory=set)
    truncated: bool = False


def find_person(session: Session, *, visitor_ids=(), ga_client_ids=(), email_hashes=(), phone_hashes=(),
                expand_kinds: tuple[str, ...] = LINKING_KINDS) -> Person:
    """Visitors linked to the given identifiers, following ``expand_kinds`` transitively."""
    person = Person()
    wanted = {value for value in visitor_ids if value}
    pending = set(session.exec(select(Visitor.id).where(col(Visitor.id).in_(wanted))).all()) if wanted else set()
    frontier = ({("ga_client_id", v) for v in ga_client_ids if v} | {("email_sha256", v) for v in email_hashes if v}
                | {("phone_sha256", v) for v in phone_hashes if v})
    while True:
        person.identities |= frontier
        for kind in {kind for kind, _ in frontier}:
            values = [value for k, value in frontier if k == kind]
            pending |= set(session.exec(select(Identity.visitor_id).where(
                Identity.kind == kind, col(Identity.value).in_(values))).all())
        pending -= person.visitor_ids
        if not pending:
            return person
        room = MAX_VISITORS - len(person.visitor_ids)
        if len(pending) > room:
            person.truncated = True
            pending = set(sorted(pending)[:room])
        person.visitor_ids |= pending
        if person.truncated:
            return person
        rows = session.exec(select(Identity.kind, Identity.value).where(
            col(Identity.visitor_id).in_(pending), col(Identity.kind).in_(expand_kinds))).all()
        frontier = {(kind, value) for kind, value in rows} - person.identities
        pending = set()


def touchpoints_for(session: Session, visitor_ids: set[str], until: datetime | None = None) -> list[Touchpoint]:
    """Every stored hit of these visitors, oldest first (up to ``until`` when given)."""
    if not visitor_ids:
        return []
    query = select(Touchpoint).where(col(Touchpoint.visitor_id).in_(visitor_ids))
    if until is not None:
        query = query.where(Touchpoint.occurred_at <= until)
    return list(session.exec(query.order_by(Touchpoint.occurred_at, Touchpoint.id)).all())


def forget_visitors(session: Session, visitor_ids: set[str]) -> dict[str, int]:
    """Delete these visitors with their touchpoints and identities; returns counts."""
    if not visitor_ids:
        return {"visitors": 0, "touchpoints": 0, "identities": 0}
    ids = list(visitor_ids)
    touchpoints = session.exec(delete(Touchpoint).where(col(Touchpoint.visitor_id).in_(ids))).rowcount
    identities = session.exec(delete(Identity).where(col(Identity.visitor_id).in_(ids))).rowcount
    visitors = session.exec(delete(Visitor).where(col(Visitor.id).in_(ids))).rowcount
    return {"visitors": visitors, "touchpoints": touchpoints, "identities": identities}
