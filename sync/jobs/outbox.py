"""Draining the GA4 outbox: build requests, check them, send them, mark them sent.

Events reach the outbox in the same transaction as the CRM fact they record; here they leave
it. Up to 25 events that share a client id go in one request. An event that breaks a
documented limit is dead-lettered with the reason instead of being sent (production GA4 would
accept and silently drop it).

Once and only once, across crashes: events are claimed (``pending`` → ``sending``, committed)
before their request leaves and marked ``sent`` after GA4 answers. Events still ``sending`` when
a drain starts belong to a drain that died mid-request. A purchase among them is sent again —
GA4 de-duplicates purchases by ``transaction_id`` — but GA4 de-duplicates nothing else, so a
refund or lead event is never resent on a guess: it becomes ``uncertain`` and is dead-lettered
(GA4_DELIVERY_UNCERTAIN) for a person to check in GA4 and, if it is missing, to resend with
``closedloop dead-letters retry``. A connection that fails after such a request left is treated
the same way. While a deal has an uncertain event, its later events wait (GA4 never sees a
second purchase of a deal before the refund of the first); ``retry`` or ``drop`` releases them.
Only one drain runs at a time (per process and, on PostgreSQL, per cluster).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, update
from sqlmodel import col, func, select

from adapters.errors import DeliveryUncertain, RemoteError, TransientError
from adapters.ga4 import MAX_EVENTS, Ga4Sender, validate_request
from state.models import DeadLetter, OutboxEvent
from sync.jobs.ga4_events import grouping_key, request_body
from sync.ops import metrics

log = logging.getLogger(__name__)
PAGE = 500
LOCK = "ga4-outbox"
DESTINATION = "ga4"  # the outbox rows this drain owns (the ad platforms' rows have their own drain)
_drain_lock = threading.Lock()  # the revenue and lifecycle jobs both drain, maybe in parallel threads


@dataclass
class DrainResult:
    sent: int = 0
    dead: int = 0
    requests: int = 0
    stopped_by: str = ""
    unreachable: TransientError | None = None  # GA4 failed through the retries; the rest stays queued


def send_outbox(ctx) -> DrainResult:
    """A job's GA4 share (``ctx`` a :class:`~sync.jobs.base.JobContext`, run under
    ``ctx.for_remote("ga4", ...)``): drain, count what was sent and set aside, and raise the
    error that stopped the drain so the GA4 remote is paused while it is unreachable."""
    drained = drain_outbox(ctx.store, ctx.connections.ga4(), ctx.now, ctx.checkpoint)
    ctx.result.records_written += drained.sent
    ctx.result.dead_letters += drained.dead
    if drained.unreachable is not None:
        raise drained.unreachable
    return drained


def drain_outbox(store, sender: Ga4Sender, now, checkpoint=lambda: None) -> DrainResult:
    """Send every pending event; stops early (leaving events pending) if GA4 is unreachable.

    Returns at once (``stopped_by`` says why) when another drain holds the outbox."""
    if not _drain_lock.acquire(blocking=False):
        return DrainResult(stopped_by="another drain is running")
    try:
        with store.job_lock(LOCK) as acquired:
            if not acquired:
                return DrainResult(stopped_by="another instance is draining")
            recover_interrupted(store)
            return _drain(store, sender, now, checkpoint)
    finally:
        _drain_lock.release()


def idempotent(event: OutboxEvent) -> bool:
    """GA4 de-duplicates this event itself (a purchase with a transaction id), so resending is safe."""
    params = (event.payload.get("event") or {}).get("params") or {}
    return event.event_name == "purchase" and bool(params.get("transaction_id"))


def recover_interrupted(store) -> int:
    """Settle events a dead drain left ``sending``; returns how many were found."""
    with store.session() as session:
        stuck = session.exec(select(OutboxEvent).where(OutboxEvent.destination == DESTINATION,
                                                        OutboxEvent.status == "sending")).all()
        for event in stuck:
            if idempotent(event):
                event.status = "pending"
                session.add(event)
            else:
                _mark_uncertain(session, event, "the daemon stopped while this event's request was in flight")
    if stuck:
        log.warning("%d GA4 event(s) were in flight when a drain stopped; purchases will be resent, "
                    "the rest are dead-lettered as GA4_DELIVERY_UNCERTAIN", len(stuck))
    return len(stuck)


def _mark_uncertain(session, event: OutboxEvent, why: str) -> None:
    params = (event.payload.get("event") or {}).get("params") or {}
    what = f"{event.event_name}" + (f" {params['transaction_id']}" if params.get("transaction_id") else "")
    reason = (f"{why}; GA4 may or may not have this {what} and does not de-duplicate it, so closedloop will "
              "not resend it on its own: check GA4 and, if it is missing, run `closedloop dead-letters retry`")
    _set_aside(session, event, "uncertain", "GA4_DELIVERY_UNCERTAIN", reason)
    metrics.ga4_events.labels("dead_lettered").inc()


def _set_aside(session, event: OutboxEvent, status: str, code: str, reason: str) -> None:
    """Give the event its final status and a dead letter that says why (and how to find it again)."""
    event.status, event.last_error = status, reason[:2000]
    session.add(event)
    session.add(DeadLetter(job="ga4", crm=event.crm, object=event.kind, record_id=event.record_id, code=code,
                           message=reason[:2000], payload={"idempotency_key": event.idempotency_key,
                                                           "client_id": event.client_id,
                                                           "event": event.payload.get("event")}))


def _drain(store, sender: Ga4Sender, now, checkpoint) -> DrainResult:
    """Pages of pending events in (client id, id) order, so each user's events fill whole
    requests of 25 however they were interleaved when queued; a user's events stay in order."""
    result = DrainResult()
    held = _uncertain_deals(store)  # (crm, record id) → id of its earliest uncertain event
    after = ("", 0)  # keyset: (client_id, id) of the last event handled
    while True:
        checkpoint()
        with store.session(readonly=True) as session:
            pending = list(session.exec(select(OutboxEvent).where(
                OutboxEvent.destination == DESTINATION, OutboxEvent.status == "pending",
                or_(OutboxEvent.client_id > after[0], and_(OutboxEvent.client_id == after[0],
                                                           OutboxEvent.id > after[1])))
                .order_by(OutboxEvent.client_id, OutboxEvent.id).limit(PAGE)).all())
        if not pending:
            break
        last_client = pending[-1].client_id
        if len(pending) == PAGE and pending[0].client_id != last_client:
            pending = [event for event in pending if event.client_id != last_client]  # whole next page
        after = (pending[-1].client_id, pending[-1].id)
        for chunk in _requests(pending):
            checkpoint()
            chunk = [event for event in chunk if event.id < held.get((event.crm, event.record_id), event.id + 1)]
            if not chunk:
                continue
            try:
                _send_chunk(store, sender, chunk, now(), result, held)
            except TransientError as exc:
                _note_failure(store, chunk, exc.user_message)
                result.stopped_by, result.unreachable = exc.user_message, exc
                log.warning("GA4 unreachable; %d event(s) stay queued: %s", len(chunk), exc.user_message)
                return result
    with store.session(readonly=True) as session:
        metrics.outbox_depth.set(session.exec(select(func.count()).select_from(OutboxEvent)
                                              .where(OutboxEvent.destination == DESTINATION,
                                                     OutboxEvent.status == "pending")).one())
    if held:
        log.warning("%d deal(s) hold their later GA4 events until an uncertain one is retried or dropped "
                    "(closedloop dead-letters list --job ga4)", len(held))
    return result


def _uncertain_deals(store) -> dict[tuple[str, str], int]:
    with store.session(readonly=True) as session:
        rows = session.exec(select(OutboxEvent.crm, OutboxEvent.record_id, func.min(OutboxEvent.id))
                            .where(OutboxEvent.destination == DESTINATION, OutboxEvent.status == "uncertain")
                            .group_by(OutboxEvent.crm, OutboxEvent.record_id)).all()
    return {(crm, record_id): first for crm, record_id, first in rows}


def _requests(events: list[OutboxEvent]) -> list[list[OutboxEvent]]:
    """Requests of ≤ 25 consecutive events (``events`` come in client, then queue, order) that
    share a client id, in the order they were queued: a refund is never sent after the purchase
    that followed it. Resend-safe purchases and the rest travel in separate requests, so an
    uncertain delivery concerns only events GA4 does not de-duplicate."""
    requests: list[list[OutboxEvent]] = []
    previous = None
    for event in events:
        key = (*grouping_key(event), idempotent(event))
        if key != previous or len(requests[-1]) == MAX_EVENTS:
            requests.append([])
            previous = key
        requests[-1].append(event)
    return requests


def _send_chunk(store, sender: Ga4Sender, chunk: list[OutboxEvent], moment: datetime, result: DrainResult,
                held: dict[tuple[str, str], int]) -> None:
    body = request_body(chunk, moment)
    problems = validate_request(body)
    bad: dict[int, str] = {}
    for problem in problems:
        if problem.path.startswith("events["):
            index = int(problem.path[len("events["):problem.path.index("]")])
            bad.setdefault(index, str(problem))
        else:
            for index in range(len(chunk)):
                bad.setdefault(index, str(problem))
    good = [event for index, event in enumerate(chunk) if index not in bad]
    if bad:
        _dead_letter(store, [(chunk[index], reason) for index, reason in bad.items()], "GA4_INVALID")
        result.dead += len(bad)
    if not good:
        return
    body["events"] = [item for index, item in enumerate(body["events"]) if index not in bad]
    ids = [event.id for event in good]
    _set_status(store, ids, "pending", "sending")
    try:
        sender.send(body, idempotent=all(idempotent(event) for event in good))
    except TransientError:
        _set_status(store, ids, "sending", "pending")  # it never arrived (or GA4 de-duplicates it)
        raise
    except DeliveryUncertain as exc:
        with store.session() as session:
            for event in session.exec(select(OutboxEvent).where(col(OutboxEvent.id).in_(ids))).all():
                _mark_uncertain(session, event, exc.user_message)
                key = (event.crm, event.record_id)
                held[key] = min(held.get(key, event.id), event.id)
        result.dead += len(good)
        return
    except RemoteError as exc:
        _set_status(store, ids, "sending", "pending")
        _dead_letter(store, [(event, exc.user_message) for event in good], "GA4_REFUSED")
        result.dead += len(good)
        return
    result.requests += 1
    with store.session() as session:
        for event in session.exec(select(OutboxEvent).where(col(OutboxEvent.id).in_(ids))).all():
            event.status, event.sent_at, event.attempts = "sent", moment, event.attempts + 1
            event.first_sent_at = event.first_sent_at or moment
            session.add(event)
    metrics.ga4_events.labels("sent").inc(len(good))
    result.sent += len(good)


def _set_status(store, ids: list[int], old: str, new: str) -> None:
    with store.session() as session:
        session.execute(update(OutboxEvent).where(col(OutboxEvent.id).in_(ids), OutboxEvent.status == old)
                        .values(status=new))


def _dead_letter(store, failures: list[tuple[OutboxEvent, str]], code: str) -> None:
    with store.session() as session:
        for event, reason in failures:
            _set_aside(session, session.get(OutboxEvent, event.id), "dead", code, reason)
    metrics.ga4_events.labels("dead_lettered").inc(len(failures))
    log.warning("dead-lettered %d GA4 event(s): %s", len(failures), failures[0][1])


def _note_failure(store, chunk: list[OutboxEvent], reason: str) -> None:
    with store.session() as session:
        for event in session.exec(select(OutboxEvent).where(col(OutboxEvent.id).in_([e.id for e in chunk]))).all():
            event.attempts += 1
            event.last_error = reason[:2000]
            session.add(event)
