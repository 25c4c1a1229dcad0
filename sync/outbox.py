"""Draining the GA4 outbox: build requests, check them, send them, mark them sent.

Events reach the outbox in the same transaction as the CRM fact they record; here they leave
it. Up to 25 events that share a client id go in one request. An event that breaks a
documented limit is dead-lettered with the reason instead of being sent (production GA4 would
accept and silently drop it). A crash between sending and marking resends at most that one
request: purchases de-duplicate on ``transaction_id`` in GA4; the window for anything else is
one request wide.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, func, select

from adapters.errors import RemoteError, TransientError
from state.models import DeadLetter, OutboxEvent
from sync import metrics
from sync.ga4 import MAX_EVENTS, Ga4Sender, validate_request
from sync.ga4_events import grouping_key, request_body

log = logging.getLogger(__name__)
PAGE = 500


@dataclass
class DrainResult:
    sent: int = 0
    dead: int = 0
    requests: int = 0
    stopped_by: str = ""


def drain_outbox(store, sender: Ga4Sender, now, checkpoint=lambda: None) -> DrainResult:
    """Send every pending event; stops early (leaving events pending) if GA4 is unreachable."""
    result = DrainResult()
    last_id = 0
    while True:
        checkpoint()
        with store.session(readonly=True) as session:
            pending = session.exec(select(OutboxEvent).where(OutboxEvent.status == "pending", OutboxEvent.id > last_id)
                                   .order_by(OutboxEvent.id).limit(PAGE)).all()
        if not pending:
            break
        last_id = pending[-1].id
        for chunk in _requests(pending):
            checkpoint()
            try:
                _send_chunk(store, sender, chunk, now(), result)
            except TransientError as exc:
                _note_failure(store, chunk, exc.user_message)
                result.stopped_by = exc.user_message
                log.warning("GA4 unreachable; %d event(s) stay queued: %s", len(chunk), exc.user_message)
                return result
    with store.session(readonly=True) as session:
        metrics.outbox_depth.set(session.exec(select(func.count()).select_from(OutboxEvent)
                                              .where(OutboxEvent.status == "pending")).one())
    return result


def _requests(events: list[OutboxEvent]) -> list[list[OutboxEvent]]:
    groups: OrderedDict[tuple, list[OutboxEvent]] = OrderedDict()
    for event in events:
        groups.setdefault(grouping_key(event), []).append(event)
    return [group[start:start + MAX_EVENTS] for group in groups.values() for start in range(0, len(group), MAX_EVENTS)]


def _send_chunk(store, sender: Ga4Sender, chunk: list[OutboxEvent], moment: datetime, result: DrainResult) -> None:
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
    try:
        sender.send(body)
    except RemoteError as exc:
        _dead_letter(store, [(event, exc.user_message) for event in good], "GA4_REFUSED")
        result.dead += len(good)
        return
    result.requests += 1
    with store.session() as session:
        for event in session.exec(select(OutboxEvent).where(col(OutboxEvent.id).in_([e.id for e in good]))).all():
            event.status, event.sent_at, event.attempts = "sent", moment, event.attempts + 1
            session.add(event)
    metrics.ga4_events.labels("sent").inc(len(good))
    result.sent += len(good)


def _dead_letter(store, failures: list[tuple[OutboxEvent, str]], code: str) -> None:
    with store.session() as session:
        for event, reason in failures:
            stored = session.get(OutboxEvent, event.id)
            stored.status, stored.last_error = "dead", reason[:2000]
            session.add(stored)
            session.add(DeadLetter(job="ga4", crm=event.crm, object=event.kind, record_id=event.record_id, code=code,
                                   message=reason[:2000], payload={"idempotency_key": event.idempotency_key,
                                                                   "event": event.payload.get("event")}))
    metrics.ga4_events.labels("dead_lettered").inc(len(failures))
    log.warning("dead-lettered %d GA4 event(s): %s", len(failures), failures[0][1])


def _note_failure(store, chunk: list[OutboxEvent], reason: str) -> None:
    with store.session() as session:
        for event in session.exec(select(OutboxEvent).where(col(OutboxEvent.id).in_([e.id for e in chunk]))).all():
            event.attempts += 1
            event.last_error = reason[:2000]
            session.add(event)
