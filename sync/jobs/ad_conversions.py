"""What each ad platform is told when a CRM record reaches a stage, decided once, before any send.

For every stage a destination maps (``[google_ads.conversions]``, ``[meta.conversions]``) and
every record that reaches it, this module writes, in one transaction with the CRM fact:

- an :class:`~state.models.AdConversion` row (the ledger ``report`` and ``reconcile`` read), and
- unless the conversion cannot be sent, an outbox row for that destination carrying the whole
  platform payload and its idempotency key: Google ``transactionId`` and Meta ``event_id`` are
  ``<crm>:<record>:<stage>``, fixed here and never changed, so every resend is the same event.

Identifiers (reference ``ad-platform-conversions.md`` §2.3, §3.4, §7):

- the platform's own click id from the person's journey: the most recent click from that
  platform within its attribution window before the stage was reached (Google: ``gclid``, else
  ``gbraid``/``wbraid`` of that click; Meta: ``fbc`` built from the fbclid and the time that
  fbclid was first seen);
- email and phone from the CRM record, normalised and hashed by each platform's own rules
  (:func:`adapters.google_ads.user_identifiers`, :func:`adapters.meta.hashed_user_data`), only
  when the person's ad consent allows (Consent Mode ``ad_user_data``, recorded by the tracker).
  The clear values are read from the CRM for this and never stored.

A conversion with no usable identifier is not sent (``no_match_key``), nor one the consent
policy skips (``no_consent``), nor one older than the platform accepts (``too_old``). A person
not yet matched to a web visitor waits (``[journey] match_wait_hours``), as revenue does.

Later changes: a won deal whose amount changes is restated to Google (same ``transactionId``,
new value: Data Manager treats a repeat as an adjustment, §2.7); Meta has no restatement, so
its ledger row keeps the value Meta holds (``sent_value``) beside the CRM's. Neither platform
can retract (§2.7, §3.6): a deal reopened or lost after sending keeps its conversion, and the
ledger says so (``reason = "not_retracted"``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from adapters.base import PersonRef
from adapters.google_ads import user_identifiers
from adapters.meta import fbc, hashed_user_data
from state.models import AdConversion, LeadSync, OutboxEvent
from state.upsert import upsert
from sync.config import Config
from sync.jobs.ga4_events import person_client_id, trusted_journey
from sync.journey.compute import Hit, JourneySettings
from sync.ops import metrics

DESTINATIONS = ("google_ads", "meta")
GOOGLE_CLICK_IDS = ("gclid", "gbraid", "wbraid")
GOOGLE_MIN_CLICK_AGE = timedelta(hours=6)     # a click younger than this cannot take a conversion yet (§2.8)
META_MAX_AGE = timedelta(days=7)              # event_time at most 7 days old, or the whole request fails (§3.3)
META_DEDUP_WINDOW = timedelta(hours=48)       # event_name + event_id de-duplicated within 48 hours (§3.6)
CONTACT_FIELDS = {("salesforce", "Lead"): ("Email", "Phone"), ("salesforce", "Contact"): ("Email", "Phone"),
                  ("hubspot", "contacts"): ("email", "phone")}
CRM_NAMES = {"salesforce": "Salesforce", "hubspot": "HubSpot"}


@dataclass
class StageReached:
    """A CRM record at a stage some destination maps (``won`` or a ``[lifecycle.*]`` event name)."""

    crm: str
    record_id: str
    stage: str
    moment: datetime
    people: list[PersonRef]
    value: Decimal | None = None
    currency: str = ""

    def snapshot(self) -> dict[str, Any]:
        return {"moment": self.moment.isoformat(), "people": [[p.object, p.id, p.primary] for p in self.people],
                "value": None if self.value is None else str(self.value), "currency": self.currency}

    @classmethod
    def from_snapshot(cls, row: AdConversion) -> "StageReached":
        data = row.snapshot
        return cls(row.crm, row.record_id, row.stage, datetime.fromisoformat(data["moment"]),
                   [PersonRef(o, i, p) for o, i, p in data.get("people", [])],
                   None if data.get("value") is None else Decimal(data["value"]), data.get("currency", ""))


@dataclass
class Journey:
    """A person as the ad platforms need them: their hits, first-click channel and GA client id."""

    ref: PersonRef
    hits: list[Hit]
    channel: str | None = None
    client_id: str = ""


@dataclass
class Contact:
    """Clear email and phone of a CRM person, held in memory only while payloads are built."""

    email: str | None = None
    phone: str | None = field(default=None, repr=False)


def wanted_stages(config: Config) -> dict[str, list[str]]:
    """stage → the enabled destinations that map it."""
    stages: dict[str, list[str]] = {}
    for destination in DESTINATIONS:
        settings = getattr(config.settings, destination)
        if settings.enabled:
            for stage in settings.conversions:
                stages.setdefault(stage, []).append(destination)
    return stages


def find_journey(session: Session, crm: str, refs: list[PersonRef], settings: JourneySettings,
                 until: datetime) -> Journey | None:
    """The first of ``refs`` closedloop has matched to web visitors, with their hits up to ``until``
    (a device that only claimed the person counts from its claim on: its earlier ad clicks are not theirs)."""
    for ref in refs:
        sync = session.get(LeadSync, (crm, ref.object, ref.id))
        if sync is None or not sync.visitor_ids:
            continue
        hits, variables = trusted_journey(session, sync, settings)  # the identity trust model, as GA4's events
        return Journey(ref, [hit for hit in hits if hit.occurred_at <= until],
                       channel=variables.get("first_click_channel"), client_id=person_client_id(sync, hits) or "")
    return None


def latest_click(hits: list[Hit], kinds: tuple[str, ...], until: datetime,
                 window: timedelta) -> tuple[dict[str, str], datetime] | None:
    """The most recent hit at or before ``until`` (and within ``window``) that carries one of ``kinds``:
    its click ids of those kinds, and when that click was first seen (the first hit carrying it)."""
    for hit in sorted(hits, key=lambda h: h.occurred_at, reverse=True):
        if hit.occurred_at > until or until - hit.occurred_at > window:
            continue
        ids = {kind: hit.click_ids[kind] for kind in kinds if hit.click_ids.get(kind)}
        if ids:
            first = min(h.occurred_at for h in hits if any(h.click_ids.get(k) == v for k, v in ids.items()))
            return ids, first
    return None


def ad_consent(hits: list[Hit], until: datetime) -> dict[str, str | None]:
    """The person's Consent Mode signals as last recorded at or before ``until`` (any of their devices)."""
    found: dict[str, str | None] = {"ad_user_data": None, "ad_personalization": None}
    for hit in sorted(hits, key=lambda h: h.occurred_at):
        if hit.occurred_at > until:
            break
        for signal in found:
            if getattr(hit, signal):
                found[signal] = getattr(hit, signal)
        if hit.consent == "denied":  # the tracker's own opt-out withdraws every ad consent too
            found = {signal: "denied" for signal in found}
    return found


class ConversionPlanner:
    """Turns stages reached into ledger rows and outbox events (see the module docstring)."""

    def __init__(self, config: Config, settings: JourneySettings, now: datetime) -> None:
        self.config, self.settings, self.now = config, settings, now
        self.stages = wanted_stages(config)
        self.wait = timedelta(hours=config.settings.journey.match_wait_hours)

    def record(self, session: Session, reached: StageReached, contacts: dict[tuple[str, str], Contact]) -> None:
        for destination in self.stages.get(reached.stage, []):
            row = session.get(AdConversion, (destination, reached.crm, reached.record_id, reached.stage))
            if row is not None and row.status != "waiting":
                self._changed(session, row, reached)
                continue
            self._plan(session, destination, reached, contacts, row)

    def _plan(self, session: Session, destination: str, reached: StageReached,
              contacts: dict[tuple[str, str], Contact], row: AdConversion | None) -> None:
        settings = getattr(self.config.settings, destination)
        row = row or AdConversion(destination=destination, crm=reached.crm, record_id=reached.record_id,
                                  stage=reached.stage, status="waiting", first_seen_at=self.now)
        journey = find_journey(session, reached.crm, reached.people, self.settings, reached.moment)
        if journey is None and self.now - row.first_seen_at < self.wait:
            row.status, row.reason, row.snapshot, row.updated_at = "waiting", "no_web_visitor_yet", \
                reached.snapshot(), self.now
            session.add(row)
            return
        hits = journey.hits if journey else []
        consent = ad_consent(hits, reached.moment)
        granted = consent["ad_user_data"] == "granted" or (consent["ad_user_data"] is None
                                                            and not settings.consent.required)
        ref = journey.ref if journey else (reached.people[0] if reached.people else None)
        contact = contacts.get((ref.object, ref.id), Contact()) if ref else Contact()
        value, currency = self._value(destination, reached)
        key = f"{reached.crm}:{reached.record_id}:{reached.stage}"
        row.key, row.occurred_at, row.channel = key, reached.moment, journey.channel if journey else None
        row.value, row.currency, row.snapshot, row.updated_at = value, currency, {}, self.now
        row.consent = consent["ad_user_data"] or ("assumed" if granted else "unknown")
        if destination == "google_ads":
            payload, match_keys, reason = self._google(reached, settings, hits, granted, consent, contact, key, value,
                                                       currency)
        else:
            payload, match_keys, reason = self._meta(reached, settings, hits, granted, contact, key, value, currency)
        row.match_keys = ",".join(match_keys)
        if reason:
            row.status, row.reason = "skipped", reason
            session.add(row)
            metrics.ad_conversions.labels(destination, "skipped").inc()
            return
        row.status, row.reason = "queued", None
        session.add(row)
        _queue(session, destination, f"{destination}:{key}", "conversion", reached, payload,
               journey.client_id if journey else "")

    def _value(self, destination: str, reached: StageReached) -> tuple[str | None, str | None]:
        conversion = getattr(self.config.settings, destination).conversions[reached.stage]
        if reached.stage != "won" or not conversion.send_value or reached.value is None or not reached.currency:
            return None, None
        value = reached.value
        return (str(int(value)) if value == value.to_integral_value() else str(value)), reached.currency

    def _google(self, reached, settings, hits, granted, consent, contact, key, value, currency):
        conversion = settings.conversions[reached.stage]
        window = timedelta(days=conversion.click_through_days)
        click = latest_click(hits, GOOGLE_CLICK_IDS, reached.moment, window)
        identifiers = user_identifiers(contact.email, contact.phone, settings.default_phone_region) if granted else []
        if not granted and settings.consent.without_consent == "skip":
            return None, [], "no_consent"
        ad_ids: dict[str, str] = {}
        if click:
            ids = click[0]
            kind = next(k for k in GOOGLE_CLICK_IDS if k in ids)  # one id per event: gclid, else the app ids
            ad_ids = {kind: ids[kind]}
        keys = list(ad_ids) + [next(iter(item)) for item in identifiers]
        if not keys:
            has_data = bool(user_identifiers(contact.email, contact.phone, settings.default_phone_region))
            return None, [], "no_consent" if has_data and not granted else "no_match_key"
        anchor = click[1] if click else reached.moment
        not_after = anchor + window
        if self.now > not_after:
            return None, keys, "too_old"
        signals = {signal: {"granted": "GRANTED", "denied": "DENIED"}.get(
            consent[signal] or "", "GRANTED" if not settings.consent.required else "UNSPECIFIED")
            for signal in ("ad_user_data", "ad_personalization")}
        payload = {"transaction_id": key, "conversion_action_id": conversion.conversion_action_id,
                   "event_time": reached.moment.isoformat(), "ad_identifiers": ad_ids,
                   "user_identifiers": identifiers, "value": value, "currency": currency, "consent": signals,
                   "not_before": (click[1] + GOOGLE_MIN_CLICK_AGE).isoformat() if click else None,
                   "not_after": not_after.isoformat()}
        return payload, keys, None

    def _meta(self, reached, settings, hits, granted, contact, key, value, currency):
        if not granted and settings.consent.without_consent == "skip":
            return None, [], "no_consent"
        click = latest_click(hits, ("fbclid",), reached.moment, timedelta(days=settings.attribution_days))
        user_data: dict[str, Any] = hashed_user_data(contact.email, contact.phone, settings.default_phone_region) \
            if granted else {}
        if click:
            user_data["fbc"] = fbc(click[0]["fbclid"], int(click[1].timestamp() * 1000))
        keys = [{"em": "email", "ph": "phone", "fbc": "fbclid"}[k] for k in user_data]
        if not keys:
            has_data = bool(hashed_user_data(contact.email, contact.phone, settings.default_phone_region))
            return None, [], "no_consent" if has_data and not granted else "no_match_key"
        not_after = reached.moment + META_MAX_AGE
        if self.now > not_after:
            return None, keys, "too_old"
        event_name = settings.conversions[reached.stage].event_name
        payload = {"event_name": event_name, "event_time": int(reached.moment.timestamp()), "event_id": key,
                   "user_data": user_data, "value": value, "currency": currency,
                   "lead_event_source": CRM_NAMES.get(reached.crm, reached.crm), "not_after": not_after.isoformat(),
                   "dedup_hours": META_DEDUP_WINDOW.total_seconds() / 3600}
        return payload, keys, None

    def _changed(self, session: Session, row: AdConversion, reached: StageReached) -> None:
        """A stage already handled comes back (the record changed): follow a new value where possible."""
        if reached.stage != "won" or row.status in ("skipped", "dead"):
            return
        value, currency = self._value(row.destination, reached)
        if value is None or (value == row.value and currency == row.currency):
            return
        row.value, row.currency, row.updated_at = value, currency, self.now
        session.add(row)
        outbox_key = f"{row.destination}:{row.key}"
        pending = _rewrite_pending(session, outbox_key, value, currency)
        if pending or row.destination != "google_ads":
            return  # not sent yet (now carries the new value), or Meta: cannot restate (sent_value stays)
        original = session.exec(select(OutboxEvent).where(OutboxEvent.idempotency_key == outbox_key)).first()
        if original is None:
            return
        row.restatements += 1
        restatement = {**original.payload, "value": value, "currency": currency, "restates": outbox_key,
                       "not_before": None}
        restatement.pop("request_id", None)
        _queue(session, row.destination, f"{outbox_key}:restate:{row.restatements}", "restatement", reached,
               restatement, original.client_id)


def not_retracted(session: Session, crm: str, deal_id: str, now: datetime) -> None:
    """A won deal reopened or lost: the platforms keep its conversion (neither can retract, §2.7, §3.6)."""
    rows = session.exec(select(AdConversion).where(AdConversion.crm == crm, AdConversion.record_id == deal_id,
                                                   AdConversion.stage == "won")).all()
    for row in rows:
        if row.status in ("sent", "queued"):
            row.reason, row.value, row.updated_at = "not_retracted", "0", now
            session.add(row)


def _rewrite_pending(session: Session, outbox_key: str, value: str, currency: str) -> bool:
    """Give a queued (not yet claimed) event the new value; False when it already left."""
    event = session.exec(select(OutboxEvent).where(OutboxEvent.idempotency_key.like(f"{outbox_key}%"),
                                                   OutboxEvent.status == "pending")
                         .order_by(col(OutboxEvent.id).desc())).first()
    if event is None:
        return False
    payload = {**event.payload, "value": value, "currency": currency}
    result = session.execute(update(OutboxEvent).where(OutboxEvent.id == event.id, OutboxEvent.status == "pending")
                             .values(payload=payload))
    return bool(result.rowcount)


def _queue(session: Session, destination: str, key: str, kind: str, reached: StageReached,
           payload: dict[str, Any], client_id: str) -> None:
    upsert(session, OutboxEvent, [{"idempotency_key": key, "destination": destination, "kind": kind,
                                   "crm": reached.crm, "record_id": reached.record_id,
                                   "event_name": reached.stage[:40], "client_id": client_id[:64], "payload": payload,
                                   "status": "pending", "created_at": datetime.now(timezone.utc), "attempts": 0}],
           ["idempotency_key"])
