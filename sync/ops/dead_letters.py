"""Listing, retrying and dropping dead letters (``closedloop dead-letters``).

A dead letter is a record write or an outbox event (GA4, Google Ads, Meta) that failed for a reason retrying alone would
not fix (a validation rule, a bad value, an event GA4 may already have). Once a person has
fixed the cause, ``retry`` queues it again:

- a GA4 event or ad conversion goes back to ``pending`` in the outbox and leaves with the next drain;
- a CRM record is marked ``retry``; the next enrich run re-reads it by id, recomputes its
  variables and writes what still differs (see ``CrmEnricher.retry_dead_letters``);
- a beacon the database refused (job ``collector``) cannot be queued again: it is there to be
  read (what was refused and why) and then dropped.

``drop`` closes a dead letter and leaves the record or event as it is (an uncertain GA4 event
stops holding back the later events of its deal). Nothing is deleted: the
row stays, with its status and when it was resolved, for the audit trail.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlmodel import col, func, select

from state.models import DeadLetter, OutboxEvent

OUTBOX_JOBS = ("ga4", "google_ads", "meta")  # dead letters that stand for an outbox event
COLLECTOR = "collector"  # beacons the database refused (sync.capture.writer)


@dataclass
class Changed:
    changed: int = 0
    not_open: list[int] = field(default_factory=list)
    not_retryable: list[int] = field(default_factory=list)


def listing(store, *, job: str | None = None, include_closed: bool = False,
            limit: int = 50) -> tuple[list[DeadLetter], int]:
    """The newest dead letters (open ones unless ``include_closed``) and how many there are."""
    where = []
    if job:
        where.append(DeadLetter.job == job)
    if not include_closed:
        where.append(DeadLetter.status == "open")
    with store.session(readonly=True) as session:
        total = session.exec(select(func.count()).select_from(DeadLetter).where(*where)).one()
        rows = session.exec(select(DeadLetter).where(*where).order_by(col(DeadLetter.id).desc()).limit(limit)).all()
    return list(rows), total


def retry(store, ids: list[int] | None, *, job: str | None = None, now: datetime | None = None) -> Changed:
    """Queue open dead letters again (``ids=None``: all open ones, of ``job`` if given)."""
    now = now or datetime.now(timezone.utc)
    done = Changed()
    with store.session() as session:
        for letter in _chosen(session, ids, job, done):
            if letter.job == COLLECTOR:
                done.not_retryable.append(letter.id)
                continue
            if letter.job in OUTBOX_JOBS:
                event = _event_of(session, letter)
                if event is not None and event.status != "sent":
                    event.status, event.last_error = "pending", None
                    if letter.job != "ga4":  # a person checked the platform: send it as new
                        event.first_sent_at = None
                    session.add(event)
                letter.status, letter.resolved_at = "retried", now
            else:
                letter.status = "retry"  # the enrich job picks it up and resolves it
            session.add(letter)
            done.changed += 1
    return done


def drop(store, ids: list[int] | None, *, job: str | None = None, now: datetime | None = None) -> Changed:
    """Close open dead letters without retrying them."""
    now = now or datetime.now(timezone.utc)
    done = Changed()
    with store.session() as session:
        for letter in _chosen(session, ids, job, done):
            letter.status, letter.resolved_at = "dropped", now
            session.add(letter)
            if letter.job in OUTBOX_JOBS:  # a person checked: the remote has it (or it should never go)
                event = _event_of(session, letter)
                if event is not None and event.status == "uncertain":
                    event.status = "dropped"
                    session.add(event)
            done.changed += 1
    return done


def _event_of(session, letter: DeadLetter) -> OutboxEvent | None:
    """The outbox event a GA4 dead letter stands for."""
    return session.exec(select(OutboxEvent).where(
        OutboxEvent.idempotency_key == letter.payload.get("idempotency_key", ""))).first()


def _chosen(session, ids: list[int] | None, job: str | None, done: Changed) -> list[DeadLetter]:
    query = select(DeadLetter).where(DeadLetter.status == "open")
    if job:
        query = query.where(DeadLetter.job == job)
    if ids is not None:
        query = query.where(col(DeadLetter.id).in_(ids))
    letters = list(session.exec(query.order_by(DeadLetter.id)).all())
    if ids is not None:
        found = {letter.id for letter in letters}
        done.not_open = [i for i in ids if i not in found]
    return letters
