"""The org's event bus: retained change events, their replay ids, delivery lag and allocation.

Facts (shared/reference/realtime-and-auth.md §2.2–2.3):
- events are kept 72 hours; a replay id naming an event no longer retained (unless it is still
  the newest position, after which nothing can have been lost), or one that is not a replay id
  of this bus at all, fails the subscription with
  ``sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted``
  (https://developer.salesforce.com/docs/platform/pub-sub-api/guide/event-message-durability.html,
  …/retry-rpc-calls.html);
- replay ids are opaque bytes and "not guaranteed to be contiguous"; subscribers must not
  compute them. Here: 8 bytes of position plus a 4-byte tag keyed by the org, so a forged or
  truncated id is detected rather than silently reinterpreted;
- delivery allocation: a rolling 24-hour count of events delivered to all subscribed clients;
  over it, ``sfdc.platform.eventbus.grpc.subscription.limit.exceeded`` (cdc_allocations.htm).

Time: retention and allocation follow the emulator's :class:`~sandbox.clock.Clock` (tests move
it); the delivery lag between commit and visibility is real time, since it exists to make
latency measurements honest. Visibility never overtakes commit order.
"""
from __future__ import annotations

import bisect
import hashlib
import hmac
import random
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from sandbox.clock import Clock

RETENTION = timedelta(hours=72)
ALLOCATION_WINDOW = timedelta(hours=24)
_TAG_BYTES = 4


class CorruptReplayId(Exception):
    """The replay id is malformed, foreign, or older than the retention window."""


@dataclass
class BusEvent:
    """One published event as the bus keeps it."""

    seq: int
    entity: str
    schema_id: str
    payload: bytes
    event_uuid: str
    published: datetime
    visible_at: float  # time.monotonic() from which subscribers may see it
    header: dict[str, Any] = field(repr=False)


class EventBus:
    """Append-only, retention-trimmed event log with one condition variable for every waiter."""

    def __init__(self, clock: Clock, tenant_id: str, *, delivery_lag_seconds: float = 0.0,
                 delivery_jitter_seconds: float = 0.0, retention: timedelta = RETENTION,
                 delivery_allocation: int | None = None, seed: int = 0) -> None:
        self.clock = clock
        self.condition = threading.Condition()
        self.delivery_lag_seconds = delivery_lag_seconds
        self.delivery_jitter_seconds = delivery_jitter_seconds
        self.retention = retention
        self.delivery_allocation = delivery_allocation
        self.events: list[BusEvent] = []
        self.latest = 0  # position of the newest event ever published (0: none yet)
        self.floor = 0   # position of the newest event purged (events after it are retained)
        self.closing = False
        self._deliveries: deque[tuple[datetime, int]] = deque()
        self._key = hashlib.sha256(b"replay:" + tenant_id.encode()).digest()
        self._random = random.Random(seed)

    # -- replay ids -----------------------------------------------------------------------

    def replay_id(self, position: int) -> bytes:
        raw = struct.pack(">Q", position)
        return raw + hmac.new(self._key, raw, hashlib.sha256).digest()[:_TAG_BYTES]

    def position(self, replay_id: bytes) -> int:
        """The position a replay id names, if it is this bus's and still retained."""
        if len(replay_id) != 8 + _TAG_BYTES:
            raise CorruptReplayId("malformed replay id")
        raw, tag = replay_id[:8], replay_id[8:]
        if not hmac.compare_digest(tag, hmac.new(self._key, raw, hashlib.sha256).digest()[:_TAG_BYTES]):
            raise CorruptReplayId("unknown replay id")
        position = struct.unpack(">Q", raw)[0]
        with self.condition:
            self._purge()
            if position > self.latest:
                raise CorruptReplayId("replay id from the future")
            # Valid: a retained event, the tip (nothing can be lost after it), or the very start.
            if position <= self.floor and position != self.latest and not position == self.floor == 0:
                raise CorruptReplayId("replay id older than the retention window")
        return position

    # -- publishing -------------------------------------------------------------------------

    def publish(self, entity: str, schema_id: str, payload: bytes, event_uuid: str,
                header: dict[str, Any]) -> BusEvent:
        with self.condition:
            lag = self.delivery_lag_seconds + self._random.uniform(0, self.delivery_jitter_seconds)
            visible_at = time.monotonic() + lag
            if self.events:
                visible_at = max(visible_at, self.events[-1].visible_at)
            self.latest += 1
            event = BusEvent(self.latest, entity, schema_id, payload, event_uuid, self.clock.now(), visible_at,
                             header)
            self.events.append(event)
            self.condition.notify_all()
            return event

    def wake(self) -> None:
        """Let every waiting stream re-check its state (sessions revoked, settings changed)."""
        with self.condition:
            self.condition.notify_all()

    # -- reading (callers hold ``condition``) ----------------------------------------------

    def take(self, position: int, wanted: Callable[[BusEvent], bool],
             limit: int) -> tuple[list[BusEvent], int, float | None]:
        """Up to ``limit`` visible wanted events after ``position``; the position after them
        (skipping unwanted events, never a pending wanted one); and when the next invisible
        event becomes visible (None if none is waiting)."""
        self._purge()
        found: list[BusEvent] = []
        start = bisect.bisect_right(self.events, position, key=lambda e: e.seq)
        now = time.monotonic()
        for event in self.events[start:]:
            if event.visible_at > now:
                return found, position, event.visible_at
            if wanted(event):
                if len(found) == limit:
                    break
                found.append(event)
            position = event.seq
        return found, position, None

    def allocation_left(self) -> int | None:
        """Events that may still be delivered in the rolling 24 hours (None: unlimited)."""
        if self.delivery_allocation is None:
            return None
        horizon = self.clock.now() - ALLOCATION_WINDOW
        while self._deliveries and self._deliveries[0][0] < horizon:
            self._deliveries.popleft()
        return max(0, self.delivery_allocation - sum(count for _, count in self._deliveries))

    def delivered(self, count: int) -> None:
        self._deliveries.append((self.clock.now(), count))

    def _purge(self) -> None:
        horizon = self.clock.now() - self.retention
        cut = 0
        while cut < len(self.events) and self.events[cut].published < horizon:
            cut += 1
        if cut:
            self.floor = self.events[cut - 1].seq
            del self.events[:cut]
