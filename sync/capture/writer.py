"""Batched writes of accepted beacons to the state store.

The request handler only validates and enqueues, so a beacon is answered in well under a
millisecond; one writer thread drains the queue and stores up to a few hundred hits per
transaction. A full queue is answered with 503 (back-pressure) rather than dropped silently;
a failing database is retried with backoff while hits stay queued; ``stop()`` flushes.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from typing import Any

from state import Store
from state.models import Identity, Touchpoint, Visitor
from state.upsert import greatest, insert_rows, least, upsert
from sync.capture.beacon import CLICK_ID_KEYS, UTM_KEYS, Hit

log = logging.getLogger(__name__)


class BeaconWriter:
    """Queue plus writer thread. ``submit`` never blocks."""

    def __init__(self, store: Store, *, batch_size: int = 500, max_queue: int = 100_000,
                 linger_seconds: float = 0.02) -> None:
        self.store = store
        self.batch_size = batch_size
        self.linger_seconds = linger_seconds
        self._queue: queue.Queue[Hit | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._loop, name="beacon-writer", daemon=True)
        self._idle = threading.Event()
        self._idle.set()
        self.stats = Counter()

    def start(self) -> "BeaconWriter":
        self._thread.start()
        return self

    def submit(self, hit: Hit) -> bool:
        """Queue a hit; False when the queue is full (the caller answers 503)."""
        try:
            self._idle.clear()
            self._queue.put_nowait(hit)
            return True
        except queue.Full:
            self.stats["rejected_full"] += 1
            return False

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is stored."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.is_set():
                return True
            time.sleep(0.005)
        return False

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.linger_seconds
            stop = False
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write_with_retry(batch)
            if self._queue.empty():
                self._idle.set()
            if stop:
                return

    def _write_with_retry(self, batch: list[Hit]) -> None:
        delay = 0.1
        while True:
            try:
                self.write(batch)
                self.stats["stored"] += len(batch)
                return
            except Exception:  # the database is down or locked: keep the hits, try again
                log.exception("storing %d beacons failed; retrying in %.1fs", len(batch), delay)
                self.stats["write_errors"] += 1
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

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
                                                        "last_seen_at": hit.occurred_at})
                    entry["first_seen_at"] = min(entry["first_seen_at"], hit.occurred_at)
                    entry["last_seen_at"] = max(entry["last_seen_at"], hit.occurred_at)
            touchpoints.append(_touchpoint_row(hit))
        with self.store.session() as session:
            upsert(session, Visitor, list(visitors.values()), ["id"], lambda table, new: {
                "first_seen_at": least(session, table.first_seen_at, new.first_seen_at),
                "last_seen_at": greatest(session, table.last_seen_at, new.last_seen_at),
                "ga_client_id": _coalesce_latest(table, new, "ga_client_id"),
                "consent": _coalesce_latest(table, new, "consent"),
            })
            insert_rows(session, Touchpoint, touchpoints)
            upsert(session, Identity, list(identities.values()), ["kind", "value", "visitor_id"],
                   lambda table, new: {"last_seen_at": greatest(session, table.last_seen_at, new.last_seen_at)})


def _coalesce_latest(table, new, column: str):
    """Take the incoming value when it is set and at least as recent as what is stored."""
    from sqlalchemy import and_, case

    return case((and_(getattr(new, column).is_not(None), new.last_seen_at >= table.last_seen_at),
                 getattr(new, column)), else_=getattr(table, column))


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
