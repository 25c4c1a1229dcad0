"""Per-client request limits at the collector, and the brake on identify claims.

:class:`TokenBuckets` is one token bucket per key (a client address, a visitor id): a key may
spend ``burst`` beacons at once and then ``rate`` a second. Buckets live in a bounded LRU
map, so a flood of new addresses or visitor ids costs bounded memory; the bucket forgotten
first is the one touched longest ago, which has long refilled and is worth a fresh one.
(The ``limits`` package offers windows, not buckets, and a storage with its own timer thread;
this is the few lines a bucket needs.)

:class:`ClaimLimiter` watches identify claims: an email (by its hash) claimed by more than
``devices`` visitor ids not seen claiming it before, within ``window`` seconds, is an attempt
to attach strangers' browsers to someone; further new devices are refused and the attempt is
logged. Devices already counted may identify again freely.

Both count in this process: several collectors behind a load balancer each apply the limits
to the traffic they see.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable


class TokenBuckets:
    """``allow(key, cost)``: whether ``key`` may spend ``cost`` tokens now (and spends them)."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_keys, self._clock = rate, max(burst, 1.0), max_keys, clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key → [tokens, when]
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, key: str, cost: float = 1.0) -> bool:
        if not self.enabled:
            return True
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = [self.burst, now]
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
                bucket[1] = now
            if bucket[0] < cost:
                return False
            bucket[0] -= cost
            return True


class ClaimLimiter:
    """``allow(email_hash, visitor_id)``: whether this device may claim this email now."""

    def __init__(self, devices: int, window: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.devices, self.window, self.max_keys, self._clock = devices, window, max_keys, clock
        self._claims: OrderedDict[str, dict[str, float]] = OrderedDict()  # email hash → {visitor: first claim}
        self._lock = threading.Lock()

    def allow(self, email_hash: str, visitor_id: str) -> bool:
        if self.devices <= 0:
            return True
        now = self._clock()
        with self._lock:
            claims = self._claims.setdefault(email_hash, {})
            self._claims.move_to_end(email_hash)
            if len(self._claims) > self.max_keys:
                self._claims.popitem(last=False)
            for visitor, when in list(claims.items()):
                if now - when > self.window:
                    del claims[visitor]
            if visitor_id in claims:
                return True
            if len(claims) >= self.devices:
                return False
            claims[visitor_id] = now
            return True
