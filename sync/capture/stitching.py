"""Stitching: which visitors (browsers, devices) belong to one person, and how far each is trusted.

A person is found from what a CRM record or an operator knows — a visitor id written by the
form's hidden field, a GA client id, an email or phone hash — and grows along shared
identities: two devices that identified with the same email are one person; a browser whose
``_cl_vid`` cookie was reset but kept its ``_ga`` cookie is the same browser.

**Trust.** Not every link proves the same thing (the README's "Identity trust model"):

- *Strong clues* are what the CRM record itself holds: the visitor id and GA client id that
  the lead form submitted from the converting browser. Devices found through them are
  **trusted** from their first touch.
- *Claims* are what a browser says about itself: an identify beacon naming an email or phone,
  a beacon carrying some GA client id. Anyone can send one. A device found only through
  claims is **claimed**: its touches count from the moment its claim was made (the link's
  first sighting, a beacon time the collector clamped to its arrival), never before. Through a
  chain of claims the latest link decides.
- A person with no strong clue in the store (a lead typed in, or from a form without the
  hidden fields) is anchored on the device that claimed the record's email or phone first,
  provided it did so by the conversion (``Clues.anchor_before``): that device is trusted.

Callers give claimed devices' later touches to the journey but take the first click and the
GA client id from trusted devices only (:func:`sync.journey.compute.compute_variables`,
:mod:`sync.jobs.ga4_events`).

Growth is bounded (``MAX_VISITORS``): a shared kiosk or a test address typed on hundreds of
machines must not merge hundreds of journeys into one. The devices kept are the trusted ones
first, then those whose claims are oldest.
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
    """The visitors found for one person, the identities that joined them, and which are claimed."""

    visitor_ids: set[str] = field(default_factory=set)
    identities: set[tuple[str, str]] = field(default_factory=set)
    truncated: bool = False
    claims: dict[str, datetime] = field(default_factory=dict)  # claimed device → its touches count from

    @property
    def trusted(self) -> set[str]:
        return self.visitor_ids - set(self.claims)


@dataclass(frozen=True)
class Clues:
    """What is known about one person: any of these may be empty. Visitor ids and GA client ids
    are strong (the CRM record holds them); devices reached through email or phone hashes are
    claims. ``anchor_before``: with no strong device, the first device to have claimed one of
    the hashes by then is trusted (None: whenever it did)."""

    visitor_ids: tuple[str, ...] = ()
    ga_client_ids: tuple[str, ...] = ()
    email_hashes: tuple[str, ...] = ()
    phone_hashes: tuple[str, ...] = ()
    anchor_before: datetime | None = None


Link = tuple  # (counts from, received): None in both for a trusted device; see find_people
TRUSTED: Link = (None, None)


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    """The later moment; None stands for "from the start" (trusted)."""
    if first is None:
        return second
    return first if second is None else max(first, second)


def _earlier(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return None
    return min(first, second)


def _along(first: Link, second: Link) -> Link:
    """A path through two links counts from the later of each."""
    return _later(first[0], second[0]), _later(first[1], second[1])


def _either(first: Link, second: Link) -> Link:
    """Of two paths to the same device, the earlier of each."""
    return _earlier(first[0], second[0]), _earlier(first[1], second[1])


def find_person(session: Session, *, visitor_ids=(), ga_client_ids=(), email_hashes=(), phone_hashes=(),
                expand_kinds: tuple[str, ...] = LINKING_KINDS, limit: int | None = MAX_VISITORS) -> Person:
    """Visitors linked to the given identifiers, following ``expand_kinds`` transitively."""
    clues = Clues(tuple(visitor_ids), tuple(ga_client_ids), tuple(email_hashes), tuple(phone_hashes))
    return find_people(session, {0: clues}, expand_kinds, limit=limit)[0]


def find_people(session: Session, clues: dict, expand_kinds: tuple[str, ...] = LINKING_KINDS, *,
                limit: int | None = MAX_VISITORS) -> dict:
    """:func:`find_person` for many people at once (a page of CRM records): the same walk, one
    query per identity kind and step for all of them instead of several per person.
    ``limit=None`` walks without the device cap (``forget`` must find every device).

    Each device and identity value found carries a link: the moment from which it counts for
    the person (the beacon times of the links on its path, as clamped by the collector) and the
    moment closedloop received its latest link (server time, which no client can backdate),
    for ordering claims: which device claimed first, which are kept under the cap."""
    people = {key: Person() for key in clues}
    ranks: dict = {key: {} for key in clues}  # device → when its claim was received (None: trusted)
    wanted = {v for clue in clues.values() for v in clue.visitor_ids if v}
    visitor_id = Visitor.__table__.c.id
    known = set(session.execute(select(visitor_id).where(visitor_id.in_(wanted))).scalars()) if wanted else set()
    # Per person: devices found in this step, and identity values to look up next, with their links.
    pending: dict = {key: dict.fromkeys((v for v in clue.visitor_ids if v in known), TRUSTED)
                     for key, clue in clues.items()}
    frontier: dict = {key: dict.fromkeys([*(("ga_client_id", v) for v in clue.ga_client_ids if v),
                                          *(("email_sha256", v) for v in clue.email_hashes if v),
                                          *(("phone_sha256", v) for v in clue.phone_hashes if v)], TRUSTED)
                      for key, clue in clues.items()}
    strong = {key: {("ga_client_id", v) for v in clue.ga_client_ids if v} for key, clue in clues.items()}
    active = set(clues)
    while active:
        owners: dict[tuple[str, str], list] = {}
        for key in active:
            people[key].identities |= set(frontier[key])
            for identity in frontier[key]:
                owners.setdefault(identity, []).append(key)
        for kind in {kind for kind, _ in owners}:
            values = [value for k, value in owners if k == kind]
            for start in range(0, len(values), 500):
                for visitor, value, seen, received in session.execute(
                        select(IDENTITIES.visitor_id, IDENTITIES.value, IDENTITIES.first_seen_at,
                               IDENTITIES.first_received_at).where(
                            IDENTITIES.kind == kind, IDENTITIES.value.in_(values[start:start + 500]))).all():
                    for key in owners[(kind, value)]:
                        link = TRUSTED if (kind, value) in strong[key] else \
                            _along(frontier[key][(kind, value)], (seen, received or seen))
                        found = pending[key]
                        found[visitor] = _either(found[visitor], link) if visitor in found else link
        growing = {}
        for key in active:
            person = people[key]
            new = {visitor: link for visitor, link in pending[key].items() if visitor not in person.visitor_ids}
            chosen = sorted(new, key=lambda visitor: (new[visitor][1] is not None, new[visitor][1] or datetime.min,
                                                      visitor))
            if limit is not None and len(chosen) > limit - len(person.visitor_ids):
                person.truncated = True
                chosen = chosen[:max(0, limit - len(person.visitor_ids))]
            for visitor in chosen:
                person.visitor_ids.add(visitor)
                since, ranks[key][visitor] = new[visitor]
                if since is not None or new[visitor][1] is not None:
                    person.claims[visitor] = since or new[visitor][1]
            if chosen and not person.truncated:
                growing[key] = chosen
        frontier = {key: {} for key in clues}
        pending = {key: {} for key in clues}
        if growing:
            visitors = sorted({v for new in growing.values() for v in new})
            identities: dict[str, list] = {}
            for start in range(0, len(visitors), 500):
                for visitor, kind, value, seen, received in session.execute(
                        select(IDENTITIES.visitor_id, IDENTITIES.kind, IDENTITIES.value, IDENTITIES.first_seen_at,
                               IDENTITIES.first_received_at)
                        .where(IDENTITIES.visitor_id.in_(visitors[start:start + 500]),
                               IDENTITIES.kind.in_(expand_kinds))).all():
                    identities.setdefault(visitor, []).append(((kind, value), (seen, received or seen)))
            for key, new in growing.items():
                person, values = people[key], frontier[key]
                for visitor in new:
                    held = (person.claims.get(visitor), ranks[key][visitor])
                    for identity, link in identities.get(visitor, ()):
                        if identity in person.identities:
                            continue
                        link = _along(held, link)
                        values[identity] = _either(values[identity], link) if identity in values else link
        active = {key for key in growing if frontier[key]}
    for key, clue in clues.items():
        _anchor(people[key], ranks[key], clue.anchor_before)
    return people


def _anchor(person: Person, ranks: dict, before: datetime | None) -> None:
    """With no trusted device, trust the one whose claim closedloop received first, among those
    whose claim is dated by ``before`` (the conversion)."""
    if not person.visitor_ids or person.trusted:
        return
    eligible = [visitor for visitor in person.claims if before is None or person.claims[visitor] <= before]
    if eligible:
        del person.claims[min(eligible, key=lambda visitor: (ranks[visitor], person.claims[visitor], visitor))]


def counted(rows: list, claims: dict[str, datetime]) -> list:
    """The touchpoints (rows or hits with ``visitor_id`` and ``occurred_at``) that count for the
    person: a claimed device's only from the moment of its claim."""
    if not claims:
        return rows
    return [row for row in rows if row.visitor_id not in claims or row.occurred_at >= claims[row.visitor_id]]


def touchpoints_for(session: Session, visitor_ids: set[str], until: datetime | None = None,
                    claims: dict[str, datetime] | None = None) -> list[Touchpoint]:
    """Every stored hit of these visitors, oldest first (up to ``until`` when given; a claimed
    device's only from its claim on, when ``claims`` are given)."""
    if not visitor_ids:
        return []
    query = select(Touchpoint).where(col(Touchpoint.visitor_id).in_(visitor_ids))
    if until is not None:
        query = query.where(Touchpoint.occurred_at <= until)
    return counted(list(session.exec(query.order_by(Touchpoint.occurred_at, Touchpoint.id)).all()), claims or {})


def touchpoints_of_many(session: Session, wanted: dict) -> dict:
    """:func:`touchpoints_for` for many people at once: ``{key: (visitor_ids, until, claims)}`` in,
    each key's hits out, oldest first, from one query per 500 visitors. The hits are table rows
    with the model's attributes (``row.url``), not model instances."""
    owner: dict[str, list] = {}
    for key, (visitor_ids, _, _) in wanted.items():
        for visitor in visitor_ids:
            owner.setdefault(visitor, []).append(key)
    found: dict = {key: [] for key in wanted}
    visitors = sorted(owner)
    latest = max((until for _, until, _ in wanted.values() if until is not None), default=None)
    for start in range(0, len(visitors), 500):
        query = select(TOUCHPOINTS).where(TOUCHPOINTS.c.visitor_id.in_(visitors[start:start + 500]))
        if latest is not None:
            query = query.where(TOUCHPOINTS.c.occurred_at <= latest)
        for row in session.execute(query).all():
            for key in owner[row.visitor_id]:
                _, until, claims = wanted[key]
                claimed = claims.get(row.visitor_id) if claims else None
                if (until is None or row.occurred_at <= until) and (claimed is None or row.occurred_at >= claimed):
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
