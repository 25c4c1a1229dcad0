"""Client-side pacing, so the remote never has to answer 429.

:class:`SlidingWindowLimiter` admits at most ``limit`` calls in any ``window`` seconds (a
rolling window, as HubSpot's ten-second limit is), sleeping the caller until the oldest call
leaves the window. The limit can be re-learned at run time from response headers (HubSpot's
``X-HubSpot-RateLimit-Max``), and shrunk when the remote reports fewer calls remaining than
our own count expects (other integrations share the account's allowance).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


# Our calls are stamped before they are sent, the remote's on arrival, so each of ours leaves
# the remote's window a little after it left ours. Calls are kept this much longer for
# comparing with what the remote reports, or each would pass for someone else's call.
SKEW_SECONDS = 1.0


class SlidingWindowLimiter:
    """At most ``limit`` acquisitions per ``window`` seconds, across threads."""

    def __init__(self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit = max(1, limit)
        self.window = window
        self._clock, self._sleep = clock, sleep
        self._calls: deque[float] = deque()  # stamps, oldest first (kept SKEW_SECONDS past the window)
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        """Block until one more call fits in the window, then record it."""
        while True:
            with self._lock:
                now = self._clock()
                self._trim(now)
                expired = next((n for n, stamp in enumerate(self._calls) if now - stamp < self.window),
                               len(self._calls))
                if len(self._calls) - expired < self.limit:
                    self._calls.append(now)
                    return
                wait = self.window - (now - self._calls[expired]) + 0.001
            self.waited += wait
            self._sleep(wait)

    def observe(self, limit: int | None = None, remaining: int | None = None) -> None:
        """Adjust to what the remote reported: its window size and how many calls are left."""
        with self._lock:
            if limit:
                self.limit = max(1, limit)
            if remaining is not None:
                now = self._clock()
                self._trim(now)
                # Someone else is spending our allowance: count those calls as ours, from now.
                used_elsewhere = (self.limit - remaining) - len(self._calls)
                self._calls.extend([now] * max(0, used_elsewhere))

    def penalise(self) -> None:
        """After a 429: treat the window as full from now."""
        with self._lock:
            now = self._clock()
            self._calls = deque([now] * self.limit)

    def _trim(self, now: float) -> None:
        while self._calls and now - self._calls[0] >= self.window + SKEW_SECONDS:
            self._calls.popleft()
