"""Durable, group-committed writes of accepted beacons to the state store.

A beacon is answered 204 only once the transaction holding it has committed, so a crash (even
``kill -9``) never loses an acknowledged beacon. Throughput comes from group commit: request
handlers queue their hits and wait; one writer thread takes everything queued (up to
``batch_size``) and stores it in one transaction, then wakes every handler of that batch.
While one batch commits the next one gathers, so under load many requests share a commit.

One bad row never blocks the others. When the database refuses a batch for its data (an
integrity or data error, text it cannot encode), the batch is split in halves until the rows
that fail are alone; each of those goes to the dead letters with the database's reason
(``job = "collector"``) and its request is told so; the rest is stored. When the database
itself is unavailable (locked, disconnected) the batch is kept and retried with backoff, and
the waiting handlers time out with 503 instead of a false 204.

:meth:`BeaconWriter.health` reports what ``/healthz`` and ``/metrics`` need: queue depth, the
age of the oldest beacon not yet stored, rows refused, the last write error.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from state import Store
from state.models import DeadLetter, Identity, Touchpoint, Visitor
from state.upsert import BulkWrite, greatest, least
from sync.capture.beacon import CLICK_ID_KEYS, UTM_KEYS, Hit
from sync.capture.text import is_clean
from sync.ops import metrics

log = logging.getLogger(__name__)

STORED, REFUSED = "stored", "refused"
DEAD_LETTER_JOB = "collector"
REFUSED_CODE = "STORE_REFUSED"


class StoreTimeout(Exception):
    """The beacons were not committed within the time the request may wait (they stay queued)."""


@dataclass
class Receipt:
    """What became of one request's beacons: all stored, or which were refused and why."""

    refused: list[str]

    @property
    def stored(self) -> bool:
        return not self.refused


class _Waiter:
    """One request waiting in its event loop for its hits to be committed."""

    __slots__ = ("loop", "future", "remaining", "refused")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop, self.future = loop, loop.create_future()
        self.remaining, self.refused = count, []

    def expire(self, timeout: float) -> None:  # runs in the waiter's loop; a later settle finds it done
        if not self.future.done():
            self.future.set_exception(StoreTimeout(f"not stored within {timeout:g}s"))

    def settle(self, outcome: str, reason: str) -> None:  # runs in the waiter's loop
        self.remaining -= 1
        if outcome == REFUSED:
            self.refused.append(reason)
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(Receipt(self.refused))


@dataclass
class _Pending:
    hit: Hit
    enqueued: float
    waiter: _Waiter | None = None


class BeaconWriter:
    """The queue of hits waiting to be stored, and the thread that stores them."""

    def __init__(self, store: Store, *, batch_size: int = 500, max_queue: int = 100_000) -> None:
        self.store = store
        self.batch_size = batch_size
        self.max_queue = max_queue
        self._items: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._writing_since: float | None = None  # when the oldest hit of the batch being written was queued
        self._writing = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="beacon-writer", daemon=True)
        self.stats: Counter = Counter()  # stored, refused, write_errors, rejected_full
        self.last_error: str | None = None
        self._bulk: tuple[BulkWrite, BulkWrite, BulkWrite] | None = None

    # -- the request side ------------------------------------------------------------------

    def start(self) -> "BeaconWriter":
        self._thread.start()
        return self

    def submit(self, hit: Hit) -> bool:
        """Queue a hit without waiting for it; False when the queue is full."""
        return self._enqueue([hit], None)

    async def store_hits(self, hits: list[Hit], timeout: float) -> Receipt:
        """Queue ``hits`` and wait until their transaction committed.

        Raises :class:`OverflowError` when the queue is full and :class:`StoreTimeout` when the
        commit did not happen within ``timeout`` seconds (the hits stay queued and may still be
        stored: the client may send them again)."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop, len(hits))
        if not self._enqueue(hits, waiter):
            raise OverflowError("the collector's queue is full")
        expiry = loop.call_later(timeout, waiter.expire, timeout)
        try:
            return await waiter.future
        finally:
            expiry.cancel()

    def _enqueue(self, hits: list[Hit], waiter: _Waiter | None) -> bool:
        now = time.monotonic()
        with self._cond:
            if len(self._items) + len(hits) > self.max_queue:
                self.stats["rejected_full"] += len(hits)
                return False
            self._items.extend(_Pending(hit, now, waiter) for hit in hits)
            self._cond.notify()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is stored (or refused)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._items or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Store what is queued, then end the writer thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- health ------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Hits accepted but not yet committed (queued or in the batch being written)."""
        with self._cond:
            return len(self._items) + self._writing

    def oldest_unwritten_seconds(self) -> float:
        with self._cond:
            oldest = [t for t in (self._writing_since, self._items[0].enqueued if self._items else None)
                      if t is not None]
        return round(time.monotonic() - min(oldest), 3) if oldest else 0.0

    def health(self) -> dict[str, Any]:
        return {"queue_depth": self.depth, "oldest_unwritten_seconds": self.oldest_unwritten_seconds(),
                "rows_stored": self.stats["stored"], "commits": self.stats["commits"],
                "rows_refused": self.stats["refused"],
                "write_errors": self.stats["write_errors"], "last_error": self.last_error,
                "writer_running": self._thread.is_alive()}

    # -- the writer thread -------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    self._cond.wait()
                if not self._items:
                    return
                batch = [self._items.popleft() for _ in range(min(len(self._items), self.batch_size))]
                self._writing, self._writing_since = len(batch), batch[0].enqueued
            outcomes = self._store(batch)
            with self._cond:
                self._writing, self._writing_since = 0, None
                self._cond.notify_all()
            _settle(outcomes)

    def _store(self, batch: list[_Pending]) -> list[tuple[_Pending, str, str]]:
        """Commit ``batch``; split it around rows the database refuses. Never gives up on a
        database that is merely unavailable."""
        delay = 0.1
        while True:
            try:
                self.write([pending.hit for pending in batch])
                self.stats["stored"] += len(batch)
                self.stats["commits"] += 1
                return [(pending, STORED, "") for pending in batch]
            except Exception as exc:
                if _unavailable(exc):
                    self.stats["write_errors"] += 1
                    self.last_error = _reason(exc)
                    log.warning("storing %d beacons failed (%s); retrying in %.1fs", len(batch), self.last_error,
                                delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if len(batch) > 1:
                    middle = len(batch) // 2
                    return self._store(batch[:middle]) + self._store(batch[middle:])
                return [self._refuse(batch[0], exc)]

    def _refuse(self, pending: _Pending, exc: Exception) -> tuple[_Pending, str, str]:
        """Set a beacon the database refuses aside as a dead letter (retrying until that is stored)."""
        reason = _reason(exc)
        letter = {"job": DEAD_LETTER_JOB, "object": "touchpoint", "record_id": str(pending.hit.visitor_id)[:64],
                  "code": REFUSED_CODE, "message": f"the database refused this beacon: {reason}"[:2000],
                  "payload": {"beacon": beacon_record(pending.hit)}}
        delay = 0.1
        while True:
            try:
                with self.store.session() as session:
                    session.add(DeadLetter(**letter))
                break
            except Exception as failure:  # the payload is plain ASCII-safe text: only the database can fail
                self.last_error = _reason(failure)
                log.warning("dead-lettering a refused beacon failed (%s); retrying in %.1fs", self.last_error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.stats["refused"] += 1
        metrics.collector_rows_refused.inc()
        self.last_error = reason
        log.error("a beacon of visitor %r was refused by the database and dead-lettered: %s",
                  letter["record_id"], reason)
        return pending, REFUSED, reason

    def write(self, batch: list[Hit]) -> None:
        """Store a batch in one transaction: visitors upserted, touchpoints appended, identities linked."""
        visitors: dict[str, dict[str, Any]] = {}
        identities: dict[tuple[str, str, str], dict[str, Any]] = {}
        touchpoints = []
        for hit in batch:
            row = visitors.setdefault(hit.visitor_id, {"id": hit.visitor_id, "first_seen_at": hit.occurred_at,
                                                       "last_seen_at": hit.occurred_at, "ga_client_id": None,
                                                       "consent": None})
            row["first_seen_at"] = min(row["first_seen_at"], hit.occurred_at)
            if hit.occurred_at >= row["last_seen_at"]:
                row["last_seen_at"] = hit.occurred_at
                row["ga_client_id"] = hit.ga_client_id or row["ga_client_id"]
                row["consent"] = hit.consent or row["consent"]
            for kind, value in (("ga_client_id", hit.ga_client_id), ("email_sha256", hit.email_sha256),
                                ("phone_sha256", hit.phone_sha256)):
                if value:
                    key = (kind, value, hit.visitor_id)
                    entry = identities.setdefault(key, {"visitor_id": hit.visitor_id, "kind": kind, "value": value,
                                                        "first_seen_at": hit.occurred_at,
                                                        "last_seen_at": hit.occurred_at,
                                                        "first_received_at": hit.received_at})
                    entry["first_seen_at"] = min(entry["first_seen_at"], hit.occurred_at)
                    entry["last_seen_at"] = max(entry["last_seen_at"], hit.occurred_at)
                    entry["first_received_at"] = min(entry["first_received_at"], hit.received_at)
            touchpoints.append(_touchpoint_row(hit))
        visitor_rows, touchpoint_rows, identity_rows = self._statements()
        with self.store.transaction() as connection:
            visitor_rows.run(connection, list(visitors.values()))
            touchpoint_rows.run(connection, touchpoints)
            identity_rows.run(connection, list(identities.values()))

    def _statements(self) -> tuple[BulkWrite, BulkWrite, BulkWrite]:
        """The three statements a batch runs, built once (building costs more than running them)."""
        if self._bulk is None:
            dialect = self.store.engine.dialect
            self._bulk = (
                BulkWrite(dialect, Visitor, ["id", "first_seen_at", "last_seen_at", "ga_client_id", "consent"], ["id"],
                          lambda table, new: {
                              "first_seen_at": least(dialect, table.first_seen_at, new.first_seen_at),
                              "last_seen_at": greatest(dialect, table.last_seen_at, new.last_seen_at),
                              "ga_client_id": _coalesce_latest(table, new, "ga_client_id"),
                              "consent": _coalesce_latest(table, new, "consent")}),
                BulkWrite(dialect, Touchpoint, TOUCHPOINT_COLUMNS),
                BulkWrite(dialect, Identity, ["visitor_id", "kind", "value", "first_seen_at", "last_seen_at",
                                              "first_received_at"], ["kind", "value", "visitor_id"],
                          lambda table, new: {
                              "first_seen_at": least(dialect, table.first_seen_at, new.first_seen_at),
                              "last_seen_at": greatest(dialect, table.last_seen_at, new.last_seen_at),
                              "first_received_at": func.coalesce(table.first_received_at, new.first_received_at)}))
        return self._bulk


def _settle(outcomes: list[tuple[_Pending, str, str]]) -> None:
    """Wake the waiting requests: one call into each event loop per batch, not one per hit."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Waiter, str, str]]] = {}
    for pending, outcome, reason in outcomes:
        if pending.waiter is not None:
            by_loop.setdefault(pending.waiter.loop, []).append((pending.waiter, outcome, reason))
    for loop, entries in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_in_loop, entries)
        except RuntimeError:  # the loop is closed: its requests are gone, the rows are stored
            pass


def _settle_in_loop(entries: list[tuple[_Waiter, str, str]]) -> None:
    for waiter, outcome, reason in entries:
        waiter.settle(outcome, reason)


def _unavailable(exc: Exception) -> bool:
    """The database could not be reached or was busy: retrying the same rows can succeed."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, ConnectionError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _reason(exc: Exception) -> str:
    """The database's own message (first line), without the statement or its parameters."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first}"[:500]


def beacon_record(hit: Hit) -> dict[str, Any]:
    """A hit as a dead letter keeps it: every field, with text the store could not hold shown as
    its Python escape (``'a\\x00b'``), so the record itself is always storable."""
    def shown(value: Any) -> Any:
        if isinstance(value, str):
            return value if is_clean(value) else ascii(value)
        if isinstance(value, dict):
            return {shown(key): shown(item) for key, item in value.items()}
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value if value is None or isinstance(value, (int, float, bool)) else ascii(value)

    return {name: shown(getattr(hit, name)) for name in hit.__dataclass_fields__}


def _coalesce_latest(table, new, column: str):
    """Take the incoming value when it is set and at least as recent as what is stored."""
    return case((and_(getattr(new, column).is_not(None), new.last_seen_at >= table.last_seen_at),
                 getattr(new, column)), else_=getattr(table, column))


TOUCHPOINT_COLUMNS = ["visitor_id", "kind", "occurred_at", "received_at", "url", "referrer", "ga_client_id",
                      "ga_session_id", "language", "timezone", "user_agent", "conversion_type", "consent",
                      "session_key", "ad_user_data", "ad_personalization", *UTM_KEYS, *CLICK_ID_KEYS]


def _touchpoint_row(hit: Hit) -> dict[str, Any]:
    row = {
        "visitor_id": hit.visitor_id, "kind": hit.kind, "occurred_at": hit.occurred_at,
        "received_at": hit.received_at, "url": hit.url, "referrer": hit.referrer,
        "ga_client_id": hit.ga_client_id, "ga_session_id": hit.ga_session_id, "language": hit.language,
        "timezone": hit.timezone, "user_agent": hit.user_agent, "conversion_type": hit.conversion_type,
        "consent": hit.consent, "session_key": hit.session_key,
        "ad_user_data": hit.ad_user_data, "ad_personalization": hit.ad_personalization,
    }
    for key in UTM_KEYS:
        row[key] = hit.utm.get(key)
    for key in CLICK_ID_KEYS:
        row[key] = hit.click_ids.get(key)
    return row
