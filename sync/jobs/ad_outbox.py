"""Draining one ad platform's outbox rows: exactly once, inside what the platform accepts.

Each destination (``google_ads``, ``meta``) drains its own rows under its own lock, and its
failures stay its own: a platform that is down, refuses our credentials or throttles us leaves
its events queued and stops only its own drain (GA4, the CRMs and the other platform go on).

Once and only once, across crashes, as the GA4 drain does it: rows are claimed (``pending`` →
``sending``, committed, ``first_sent_at`` stamped on the first claim) before the request leaves
and marked ``sent`` after the platform answers. Unlike most GA4 events, every ad conversion
carries the key its platform de-duplicates on (Google ``transactionId``, Meta ``event_id``), so
an uncertain delivery (a dead daemon's ``sending`` rows, a connection lost after the request
left) is simply sent again **with the same key** while the platform still de-duplicates it:

- Google: a repeated ``transactionId`` in the same conversion action is an adjustment to the
  same value, never a second conversion (reference §2.7), for as long as Google accepts the
  conversion at all (its ``not_after``, the click-through window);
- Meta: ``event_name`` + ``event_id`` are de-duplicated for 48 hours from the first send (§3.6).
  Outside that window a resend could count twice, so the event is dead-lettered
  (``META_DELIVERY_UNCERTAIN``) for a person to check in Events Manager.

Events older than the platform accepts (Google: past the click-through window; Meta: more than
7 days, which would fail the whole request) are never sent: dead letter ``*_TOO_OLD``. A Google
event whose click is younger than 6 hours waits (``not_before``). A request the platform refuses
for some of its events has those set aside (Google names them in field violations; Meta's
request is split in halves until the bad event is alone) and the rest sent.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import update
from sqlmodel import col, func, select

from adapters.errors import ClosedloopError, ConfigError, DeliveryUncertain, TransientError
from adapters.google_ads import MAX_DESTINATIONS, RequestRefused
from adapters.google_ads import MAX_EVENTS as GOOGLE_MAX_EVENTS
from adapters.meta import MAX_EVENTS as META_MAX_EVENTS
from adapters.meta import MetaRefused
from state.models import AdConversion, DeadLetter, OutboxEvent
from sync.ops import metrics

log = logging.getLogger(__name__)
PAGE = 2000
CODES = {"google_ads": "GOOGLE_ADS", "meta": "META"}
# Google refusals that concern the configuration (a conversion action, the account), not an event
CONFIG_REASONS = ("INVALID_CONVERSION_ACTION", "CONVERSION_ACTION", "DESTINATION", "PERMISSION", "LINKED_ACCOUNT")
_locks = {"google_ads": threading.Lock(), "meta": threading.Lock()}


@dataclass
class AdDrainResult:
    destination: str
    sent: int = 0
    dead: int = 0
    waiting: int = 0
    requests: int = 0
    stopped_by: str = ""
    error: ClosedloopError | None = None


def drain_destination(store, destination: str, sender, now: Callable[[], datetime],
                      checkpoint: Callable[[], None] = lambda: None) -> AdDrainResult:
    """Send every sendable pending row of ``destination``; never raises for the platform's own failures
    (they are in ``error``/``stopped_by``), so one platform cannot stop another."""
    result = AdDrainResult(destination)
    if not _locks[destination].acquire(blocking=False):
        result.stopped_by = "another drain is running"
        return result
    try:
        with store.job_lock(f"{destination}-outbox") as acquired:
            if not acquired:
                result.stopped_by = "another instance is draining"
                return result
            recover_interrupted(store, destination, now())
            _drain(store, destination, sender, now, checkpoint, result)
    except ClosedloopError as exc:
        result.error, result.stopped_by = exc, exc.user_message
        log.warning("%s: events stay queued: %s", destination, exc.user_message)
    finally:
        _locks[destination].release()
    with store.session(readonly=True) as session:
        depth = session.exec(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.destination == destination, OutboxEvent.status == "pending")).one()
    idle = not (result.sent or result.dead or result.waiting or depth)
    log.log(logging.DEBUG if idle else logging.INFO, "%s: %d sent, %d dead-lettered, %d waiting, %d queued",
            destination, result.sent, result.dead, result.waiting, depth)
    return result


def dedup_deadline(event: OutboxEvent) -> datetime | None:
    """Until when resending this event cannot make the platform count it twice."""
    hours = event.payload.get("dedup_hours")
    if hours is not None:  # Meta: from the first send
        return (event.first_sent_at or event.created_at) + timedelta(hours=float(hours))
    return datetime.fromisoformat(event.payload["not_after"])  # Google: as long as it takes the conversion


def recover_interrupted(store, destination: str, moment: datetime) -> int:
    """Rows a dead drain left ``sending``: resent (same key) inside the dedup window, else dead-lettered."""
    with store.session() as session:
        stuck = session.exec(select(OutboxEvent).where(OutboxEvent.destination == destination,
                                                       OutboxEvent.status == "sending")).all()
        for event in stuck:
            if moment <= dedup_deadline(event):
                event.status = "pending"
                session.add(event)
            else:
                _set_aside(session, event, f"{CODES[destination]}_DELIVERY_UNCERTAIN",
                           "the daemon stopped while this conversion's request was in flight, and the platform's "
                           "de-duplication window has passed, so a resend could count it twice: check the platform "
                           "and, if it is missing, run `closedloop dead-letters retry`", status="uncertain")
    if stuck:
        log.warning("%s: %d conversion(s) were in flight when a drain stopped", destination, len(stuck))
    return len(stuck)


def _drain(store, destination, sender, now, checkpoint, result: AdDrainResult) -> None:
    after = 0
    while True:
        checkpoint()
        moment = now()
        with store.session(readonly=True) as session:
            page = list(session.exec(select(OutboxEvent).where(
                OutboxEvent.destination == destination, OutboxEvent.status == "pending", OutboxEvent.id > after)
                .order_by(OutboxEvent.id).limit(PAGE)).all())
            sent_keys = _sent_keys(session, [e.payload.get("restates") for e in page if e.payload.get("restates")])
        if not page:
            return
        after = page[-1].id
        ready = []
        for event in page:
            if event.first_sent_at is not None and moment > dedup_deadline(event):
                with store.session() as session:
                    _set_aside(session, session.get(OutboxEvent, event.id), f"{CODES[destination]}_DELIVERY_UNCERTAIN",
                               "an earlier request with this event may have arrived and the platform's "
                               "de-duplication window has passed, so a resend could count it twice: check the "
                               "platform and, if it is missing, run `closedloop dead-letters retry`",
                               status="uncertain")
                result.dead += 1
            elif moment > datetime.fromisoformat(event.payload["not_after"]):
                _dead_letter(store, [(event, "older than the platform accepts (past its window); never sent")],
                             f"{CODES[destination]}_TOO_OLD", reason="too_old")
                result.dead += 1
            elif event.payload.get("not_before") and moment < datetime.fromisoformat(event.payload["not_before"]):
                result.waiting += 1  # Google: the click is younger than 6 hours
            elif event.payload.get("restates") and event.payload["restates"] not in sent_keys:
                result.waiting += 1  # a restatement waits for the conversion it restates
            else:
                ready.append(event)
        for chunk in _requests(destination, ready):
            checkpoint()
            _send(store, destination, sender, chunk, now(), result)


def _requests(destination: str, events: list[OutboxEvent]) -> list[list[OutboxEvent]]:
    """Requests in queue order: Google ≤ 2,000 events in ≤ 10 conversion actions, a transaction id at
    most once (a restatement never shares a request with what it restates); Meta ≤ 1,000 events."""
    chunks: list[list[OutboxEvent]] = []
    limit = GOOGLE_MAX_EVENTS if destination == "google_ads" else META_MAX_EVENTS
    actions: set[str] = set()
    keys: set[str] = set()
    for event in events:
        action = str(event.payload.get("conversion_action_id", ""))
        key = event.payload.get("transaction_id") or event.payload.get("event_id")
        if not chunks or len(chunks[-1]) >= limit or key in keys or (
                action not in actions and len(actions) >= MAX_DESTINATIONS):
            chunks.append([])
            actions, keys = set(), set()
        chunks[-1].append(event)
        actions.add(action)
        keys.add(key)
    return chunks


def _send(store, destination, sender, chunk: list[OutboxEvent], moment: datetime, result: AdDrainResult) -> None:
    _claim(store, chunk, moment)
    payloads = [event.payload for event in chunk]
    try:
        if destination == "google_ads":
            answer = sender.ingest(payloads)
            extra: dict[str, Any] = {"request_id": answer.request_id}
        else:
            sender.send(payloads)
            extra = {}
    except RequestRefused as exc:
        _release(store, chunk, keep_first_sent=False)  # refused whole: nothing in it was recorded
        named = {v.event: str(v) for v in exc.violations if v.event is not None and v.event < len(chunk)}
        if named:
            bad = [(chunk[i], reason) for i, reason in named.items()]
        elif len(chunk) > 1:
            _bisect(store, destination, sender, chunk, moment, result)
            return
        elif any(v.field_path.startswith("destinations") or v.reason.startswith(CONFIG_REASONS)
                 for v in exc.violations):
            raise ConfigError(f"{exc.user_message} (check [google_ads] conversions and `closedloop check`)") from None
        else:
            bad = [(chunk[0], exc.user_message)]
        _dead_letter(store, bad, "GOOGLE_ADS_REFUSED", reason="refused")
        result.dead += len(bad)
        rest = [event for event in chunk if all(event is not e for e, _ in bad)]
        if rest:
            _send(store, destination, sender, rest, moment, result)
        return
    except MetaRefused as exc:
        _release(store, chunk, keep_first_sent=False)
        if len(chunk) == 1:
            _dead_letter(store, [(chunk[0], exc.user_message)], "META_REFUSED", reason="refused")
            result.dead += 1
            return
        _bisect(store, destination, sender, chunk, moment, result)  # one bad event fails them all: find it
        return
    except DeliveryUncertain:
        # The next drain resends with the same ids while the platform de-duplicates; after that, a dead letter.
        _release(store, chunk, keep_first_sent=True)
        raise TransientError(f"{destination}: the connection broke after a request left; its "
                             f"{len(chunk)} event(s) are resent with the same ids") from None
    except ClosedloopError:
        _release(store, chunk, keep_first_sent=False)  # never arrived (or refused as a whole): no send to count
        raise
    result.requests += 1
    with store.session() as session:
        for event in session.exec(select(OutboxEvent).where(col(OutboxEvent.id).in_([e.id for e in chunk]))).all():
            event.status, event.sent_at, event.attempts = "sent", moment, event.attempts + 1
            event.payload = {**event.payload, **extra}
            session.add(event)
            ledger = _ledger(session, destination, event)
            if ledger is not None:
                ledger.status, ledger.sent_value, ledger.updated_at = "sent", event.payload.get("value"), moment
                session.add(ledger)
    metrics.ad_conversions.labels(destination, "sent").inc(len(chunk))
    result.sent += len(chunk)


def _bisect(store, destination, sender, chunk, moment, result) -> None:
    half = len(chunk) // 2
    _send(store, destination, sender, chunk[:half], moment, result)
    _send(store, destination, sender, chunk[half:], moment, result)


def _claim(store, chunk: list[OutboxEvent], moment: datetime) -> None:
    ids = [event.id for event in chunk]
    with store.session() as session:
        session.execute(update(OutboxEvent).where(col(OutboxEvent.id).in_(ids), OutboxEvent.status == "pending")
                        .values(status="sending"))
        session.execute(update(OutboxEvent).where(col(OutboxEvent.id).in_(ids),
                                                  col(OutboxEvent.first_sent_at).is_(None))
                        .values(first_sent_at=moment))


def _release(store, chunk: list[OutboxEvent], *, keep_first_sent: bool) -> None:
    """Back to ``pending``. ``first_sent_at`` (what Meta's 48-hour window counts from) stays only when
    the request may have arrived; otherwise it is what it was before this attempt."""
    with store.session() as session:
        for event in chunk:
            values: dict[str, Any] = {"status": "pending"}
            if not keep_first_sent:
                values["first_sent_at"] = event.first_sent_at
            session.execute(update(OutboxEvent).where(OutboxEvent.id == event.id, OutboxEvent.status == "sending")
                            .values(**values))


def _sent_keys(session, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    return set(session.exec(select(OutboxEvent.idempotency_key).where(
        col(OutboxEvent.idempotency_key).in_(keys), OutboxEvent.status == "sent")).all())


def _ledger(session, destination: str, event: OutboxEvent) -> AdConversion | None:
    return session.get(AdConversion, (destination, event.crm, event.record_id, event.event_name))


def _dead_letter(store, failures: list[tuple[OutboxEvent, str]], code: str, *, reason: str) -> None:
    with store.session() as session:
        for event, message in failures:
            row = session.get(OutboxEvent, event.id)
            _set_aside(session, row, code, message)
            ledger = _ledger(session, row.destination, row)
            if ledger is not None and row.kind == "conversion":
                ledger.status, ledger.reason = "dead", reason
                session.add(ledger)
    metrics.ad_conversions.labels(failures[0][0].destination, "dead_lettered").inc(len(failures))
    log.warning("dead-lettered %d %s conversion(s): %s", len(failures), failures[0][0].destination, failures[0][1])


def _set_aside(session, event: OutboxEvent, code: str, message: str, *, status: str = "dead") -> None:
    event.status, event.last_error = status, message[:2000]
    session.add(event)
    key = event.payload.get("transaction_id") or event.payload.get("event_id")
    session.add(DeadLetter(job=event.destination, crm=event.crm, object=event.event_name, record_id=event.record_id,
                           code=code, message=message[:2000],
                           payload={"idempotency_key": event.idempotency_key, "key": key, "stage": event.event_name}))
