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

# The bulk reads below select table columns, not ORM entities: rows come back as plain named
# tuples, at a fraction of the cost of building and tracking model instances.
IDENTITIES, TOUCHPOINTS = Identity.__table__.c, Touchpoint.__table__

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


@dataclass(frozen=True)
class Clues:
    """What is known about one person: any of these may be empty."""

    visitor_ids: tuple[str, ...] = ()
    ga_client_ids: tuple[str, ...] = ()
    email_hashes: tuple[str, ...] = ()
    phone_hashes: tuple[str, ...] = ()


def find_person(session: Session, *, visitor_ids=(), ga_client_ids=(), email_hashes=(), phone_hashes=(),
                expand_kinds: tuple[str, ...] = LINKING_KINDS) -> Person:
    """Visitors linked to the given identifiers, following ``expand_kinds`` transitively."""
    clues = Clues(tuple(visitor_ids), tuple(ga_client_ids), tuple(email_hashes), tuple(phone_hashes))
    return find_people(session, {0: clues}, expand_kinds)[0]


def find_people(session: Session, clues: dict, expand_kinds: tuple[str, ...] = LINKING_KINDS) -> dict:
    """:func:`find_person` for many people at once (a page of CRM records): the same walk, one
    query per identity kind and step for all of them instead of several per person."""
    people = {key: Person() for key in clues}
    wanted = {v for clue in clues.values() for v in clue.visitor_ids if v}
    visitor_id = Visitor.__table__.c.id
    known = set(session.execute(select(visitor_id).where(visitor_id.in_(wanted))).scalars()) if wanted else set()
    pending = {key: {v for v in clue.visitor_ids if v in known} for key, clue in clues.items()}
    frontier = {key: ({("ga_client_id", v) for v in clue.ga_client_ids if v}
                      | {("email_sha256", v) for v in clue.email_hashes if v}
                      | {("phone_sha256", v) for v in clue.phone_hashes if v}) for key, clue in clues.items()}
    active = set(clues)
    while active:
        owners: dict[tuple[str, str], list] = {}
        for key in active:
            people[key].identities |= frontier[key]
            for identity in frontier[key]:
                owners.setdefault(identity, []).append(key)
        for kind in {kind for kind, _ in owners}:
            values = [value for k, value in owners if k == kind]
            for start in range(0, len(values), 500):
                for visitor, value in session.execute(select(IDENTITIES.visitor_id, IDENTITIES.value).where(
                        IDENTITIES.kind == kind, IDENTITIES.value.in_(values[start:start + 500]))).all():
                    for key in owners[(kind, value)]:
                        pending[key].add(visitor)
        growing = {}
        for key in active:
            person, new = people[key], pending[key] - people[key].visitor_ids
            room = MAX_VISITORS - len(person.visitor_ids)
            if len(new) > room:
                person.truncated = True
                new = set(sorted(new)[:room])
            person.visitor_ids |= new
            if new and not person.truncated:
                growing[key] = new
        frontier = {key: set() for key in clues}
        pending = {key: set() for key in clues}
        if growing:
            visitors = sorted({v for new in growing.values() for v in new})
            identities: dict[str, set[tuple[str, str]]] = {}
            for start in range(0, len(visitors), 500):
                for visitor, kind, value in session.execute(
                        select(IDENTITIES.visitor_id, IDENTITIES.kind, IDENTITIES.value)
                        .where(IDENTITIES.visitor_id.in_(visitors[start:start + 500]),
                               IDENTITIES.kind.in_(expand_kinds))).all():
                    identities.setdefault(visitor, set()).add((kind, value))
            for key, new in growing.items():
                frontier[key] = {i for v in new for i in identities.get(v, ())} - people[key].identities
        active = {key for key in growing if frontier[key]}
    return people


def touchpoints_for(session: Session, visitor_ids: set[str], until: datetime | None = None) -> list[Touchpoint]:
    """Every stored hit of these visitors, oldest first (up to ``until`` when given)."""
    if not visitor_ids:
        return []
    query = select(Touchpoint).where(col(Touchpoint.visitor_id).in_(visitor_ids))
    if until is not None:
        query = query.where(Touchpoint.occurred_at <= until)
    return list(session.exec(query.order_by(Touchpoint.occurred_at, Touchpoint.id)).all())


def touchpoints_of_many(session: Session, wanted: dict) -> dict:
    """:func:`touchpoints_for` for many people at once: ``{key: (visitor_ids, until)}`` in, each
    key's hits out, oldest first, from one query per 500 visitors. The hits are table rows
    with the model's attributes (``row.url``), not model instances."""
    owner: dict[str, list] = {}
    for key, (visitor_ids, _) in wanted.items():
        for visitor in visitor_ids:
            owner.setdefault(visitor, []).append(key)
    found: dict = {key: [] for key in wanted}
    visitors = sorted(owner)
    latest = max((until for _, until in wanted.values() if until is not None), default=None)
    for start in range(0, len(visitors), 500):
        query = select(TOUCHPOINTS).where(TOUCHPOINTS.c.visitor_id.in_(visitors[start:start + 500]))
        if latest is not None:
            query = query.where(TOUCHPOINTS.c.occurred_at <= latest)
        for row in session.execute(query).all():
            for key in owner[row.visitor_id]:
                until = wanted[key][1]
                if until is None or row.occurred_at <= until:
                    found[key].append(row)
    for rows in found.values():
        rows.sort(key=lambda row: (row.occurred_at, row.id))
    return found


def forget_visitors(session: Session, visitor_ids: set[str]) -> dict[str, int]:
    """Delete these visitors with their touchpoints and identities; returns counts."""
    if not visitor_ids:
        return {"visitors": 0, "touchpoints": 0, "identities": 0}
    ids = list(visitor_ids)
    touchpoints = session.exec(delete(Touchpoint).where(col(Touchpoint.visitor_id).in_(ids))).rowcount
    identities = session.exec(delete(Identity).where(col(Identity.visitor_id).in_(ids))).rowcount
    visitors = session.exec(delete(Visitor).where(col(Visitor.id).in_(ids))).rowcount
    return {"visitors": visitors, "touchpoints": touchpoints, "identities": identities}
