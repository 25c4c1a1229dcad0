"""GA4 events for CRM facts: who the person is to GA4, and what each event carries.

The person's GA ``client_id`` is that of the browser the CRM record itself names — the GA
client id its form submitted, else the GA client id of the visitor id it holds — and,
when it names none, that of the earliest of the person's trusted devices (see the identity
trust model in :mod:`sync.capture.stitching`). A device that only *claimed* to be the person
(an identify beacon) never gives its client id: a stranger's claim must not carry someone's
revenue into the stranger's GA4 user. A ``session_id`` is never invented (that would create a sourceless session): it
is sent only when the event falls inside a real session of that client that started less than
24 hours before sending. Nothing personal goes into any parameter; ``user_data`` (hashed) only
with ad_user_data consent and ``[ga4] send_user_data = true``.

Events are stored in the outbox with their moment (``occurred_at``); the request body —
``timestamp_micros`` (only within the last 72 hours) and ``session_id`` included or not — is
decided when sending, because both rules depend on the time of sending.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable

from sqlmodel import Session

from adapters.base import PersonRef
from state.models import LeadSync, OutboxEvent
from sync.capture.identity import google_email_hash
from sync.capture.stitching import touchpoints_for
from sync.journey.compute import Hit, JourneySettings, compute_variables
from sync.journey.hits import to_hit

BACKDATE_LIMIT = timedelta(hours=71)  # GA4 accepts 72 h; keep an hour's margin
SESSION_JOIN_LIMIT = timedelta(hours=24)
SESSION_IDLE = timedelta(minutes=30)
ATTRIBUTION_PARAMS = {"first_click_channel": "first_click_channel", "first_click_source": "first_click_source",
                      "first_click_medium": "first_click_medium", "first_click_campaign": "first_click_campaign",
                      "last_click_channel": "last_click_channel"}


@dataclass
class GaPerson:
    """A CRM person as GA4 knows them."""

    client_id: str | None
    variables: dict[str, Any] = field(default_factory=dict)
    sessions: list[dict[str, str]] = field(default_factory=list)  # {"id", "start", "end"} ISO strings
    consent: str = "unknown"
    record: PersonRef | None = None


def resolve_person(session: Session, crm: str, refs: Iterable[PersonRef], settings: JourneySettings) -> GaPerson | None:
    """The first of ``refs`` that closedloop has matched to web visitors, as GA4 sees them."""
    for ref in refs:
        sync = session.get(LeadSync, (crm, ref.object, ref.id))
        if sync is None or not sync.visitor_ids:
            continue
        hits, variables = trusted_journey(session, sync, settings)
        return GaPerson(client_id=person_client_id(sync, hits), variables=variables, sessions=ga_sessions(hits),
                        consent=variables.get("consent") or "unknown", record=ref)
    return None


def trusted_journey(session: Session, sync: LeadSync, settings: JourneySettings) -> tuple[list[Hit], dict[str, Any]]:
    """A matched record's hits under the identity trust model (a claimed device's touches only
    from its claim on) and its variables at conversion (the first click from trusted devices only)."""
    converted_at = (sync.record_created_at or sync.first_seen_at) + timedelta(minutes=2)
    claims = {visitor: datetime.fromisoformat(moment) for visitor, moment in (sync.claims or {}).items()}
    trusted = set(sync.visitor_ids)
    hits = [to_hit(row) for row in touchpoints_for(session, trusted | set(claims), claims=claims)]
    return hits, compute_variables(hits, converted_at, settings, trusted_visitors=trusted)


def person_client_id(sync: LeadSync, hits: list[Hit]) -> str | None:
    """The GA client id a person's events are sent under: the one the CRM record holds, else that
    of the visitor it holds, else that of the earliest trusted device (never a claimed one's)."""
    if sync.converting_client_id:
        return sync.converting_client_id
    trusted = set(sync.visitor_ids)
    if sync.converting_visitor_id in trusted:
        latest = next((hit.ga_client_id for hit in reversed(hits)
                       if hit.visitor_id == sync.converting_visitor_id and hit.ga_client_id), None)
        if latest:
            return latest
    return next((hit.ga_client_id for hit in hits if hit.visitor_id in trusted and hit.ga_client_id), None)


def ga_sessions(hits: list[Hit]) -> list[dict[str, str]]:
    """Real GA sessions seen by the tracker (from the ``_ga_<container>`` cookie): id, first and last hit."""
    spans: dict[tuple[str, str], list[datetime]] = {}
    for hit in hits:
        if hit.ga_session_id and hit.ga_client_id:
            span = spans.setdefault((hit.ga_client_id, hit.ga_session_id), [hit.occurred_at, hit.occurred_at])
            span[0], span[1] = min(span[0], hit.occurred_at), max(span[1], hit.occurred_at)
    return [{"client_id": c, "id": s, "start": a.isoformat(), "end": b.isoformat()} for (c, s), (a, b) in spans.items()]


def attribution_params(variables: dict[str, Any]) -> dict[str, Any]:
    """closedloop's own attribution as event parameters (register them as custom dimensions)."""
    params = {}
    for name, param in ATTRIBUTION_PARAMS.items():
        value = variables.get(name)
        if value:
            params[param] = str(value)[:100]
    return params


def outbox_event(*, key: str, kind: str, crm: str, record_id: str, name: str, client_id: str,
                 params: dict[str, Any], occurred_at: datetime, person: GaPerson | None,
                 user_id: str | None = None, user_data: dict[str, Any] | None = None) -> OutboxEvent:
    payload = {"event": {"name": name, "params": params}, "occurred_at": occurred_at.isoformat(),
               "sessions": person.sessions if person else [], "user_id": user_id}
    if user_data:
        payload["user_data"] = user_data
        payload["consent"] = {"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}
    return OutboxEvent(idempotency_key=key, kind=kind, crm=crm, record_id=record_id, event_name=name,
                       client_id=client_id, payload=payload)


def money(value: Decimal) -> float | int:
    """A JSON number for GA4 (a string value is not computed, pitfall P8)."""
    return int(value) if value == value.to_integral_value() else float(value)


def user_data_for(email: str | None) -> dict[str, Any] | None:
    """``user_data`` per Google's normalisation: trim, lower-case, no dots before @gmail.com."""
    digest = google_email_hash(email) if email else None
    return {"sha256_email_address": [digest]} if digest else None


def request_body(events: list[OutboxEvent], now: datetime) -> dict[str, Any]:
    """One Measurement Protocol request for events that share a client id (≤ 25 of them)."""
    first = events[0]
    body: dict[str, Any] = {"client_id": first.client_id, "events": []}
    if first.payload.get("user_id"):
        body["user_id"] = first.payload["user_id"]
    if first.payload.get("user_data"):
        body["user_data"] = first.payload["user_data"]
        body["consent"] = first.payload["consent"]
    for event in events:
        occurred = datetime.fromisoformat(event.payload["occurred_at"])
        item: dict[str, Any] = {"name": event.payload["event"]["name"], "params": dict(event.payload["event"]["params"])}
        if timedelta(0) <= now - occurred <= BACKDATE_LIMIT:
            item["timestamp_micros"] = int(occurred.timestamp() * 1_000_000)
        session_id = _live_session(event.payload.get("sessions") or [], first.client_id, occurred, now)
        if session_id:
            item["params"]["session_id"] = session_id
        item["params"].setdefault("engagement_time_msec", 1)
        body["events"].append(item)
    return body


def _live_session(sessions: list[dict[str, str]], client_id: str, occurred: datetime, now: datetime) -> int | None:
    """A real GA session the event belongs to, if GA4 can still join it (reference §2.3)."""
    for entry in sessions:
        start, end = datetime.fromisoformat(entry["start"]), datetime.fromisoformat(entry["end"])
        if entry.get("client_id") == client_id and start <= occurred <= end + SESSION_IDLE \
                and now - start <= SESSION_JOIN_LIMIT:
            return int(entry["id"])
    return None


def grouping_key(event: OutboxEvent) -> tuple:
    """Events can share a request when everything outside ``events`` is the same."""
    return (event.client_id, event.payload.get("user_id"), str(event.payload.get("user_data")))


def utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
