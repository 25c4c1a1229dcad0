"""HubSpot's rate limits (shared/reference/hubspot-api.md §7): a rolling ten-second window per
app (100 / 190 / 250 by tier), a daily allowance per account that resets at the account's
midnight, and the search API's own per-second limit, exempt from the ten-second window but
counted in the daily total (§3.3, §7.1). The 429 bodies are the three observed shapes of §7.2;
the headers are those of §7.3, absent on search responses and without the ``Daily`` pair for
OAuth calls.
"""
from __future__ import annotations

import threading
import uuid
from collections import deque
from datetime import date, timedelta

from sandbox.clock import Clock

TEN_SECONDS = 10.0


def ten_secondly_body(portal_id: int, bucket: str) -> dict:
    """§7.2, hubspot-api-python#117."""
    kind = "oauth" if bucket == "oauth" else "private-app"
    return {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()), "policyName": "TEN_SECONDLY_ROLLING",
            "groupName": f"publicapi:{kind}-api-calls-ten-secondly:{portal_id}"}


def daily_body() -> dict:
    """§7.2, the usage-guidelines example."""
    return {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()), "policyName": "DAILY", "requestId": str(uuid.uuid4())}


def secondly_body() -> dict:
    """§7.2, the grouparoo capture of a search 429 (no policyName, no rate headers)."""
    return {"status": "error", "message": "You have reached your secondly limit.",
            "correlationId": str(uuid.uuid4()), "category": "RATE_LIMITS"}


class RateLimits:
    """Counts calls on the sandbox's clock and refuses the ones over a limit."""

    def __init__(self, clock: Clock, *, max_per_10s: int, daily_limit: int, search_per_second: int,
                 portal_id: int = 99999, utc_offset_hours: float = 0.0, lock: threading.RLock | None = None) -> None:
        self.clock = clock
        self.max_per_10s, self.daily_limit, self.search_per_second = max_per_10s, daily_limit, search_per_second
        self.portal_id = portal_id
        self.utc_offset = timedelta(hours=utc_offset_hours)
        self._lock = lock or threading.RLock()
        self.reset()

    def reset(self) -> None:
        self.daily_used = 0
        self.rejected = 0
        self._day: date | None = None
        self._windows: dict[str, deque[float]] = {}
        self._search: deque[float] = deque()

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _roll_day(self) -> None:
        today = (self.clock.now() + self.utc_offset).date()
        if self._day != today:
            if self._day is not None:
                self.daily_used = 0
            self._day = today

    @staticmethod
    def _trim(window: deque[float], seconds: float, now: float) -> None:
        while window and now - window[0] >= seconds:
            window.popleft()

    def admit(self, bucket: str, kind: str = "standard") -> dict | None:
        """Count one call; returns the 429 body when it must be refused.

        ``bucket`` names the app whose ten-second window is charged (the private app or the
        OAuth app); ``kind`` is ``standard``, ``search`` (per-second limit instead of the
        window) or ``exempt`` (batch association reads, §6.3: daily total only).
        """
        now = self._now()
        with self._lock:
            self._roll_day()
            if self.daily_used >= self.daily_limit:
                self.rejected += 1
                return daily_body()
            if kind == "search":
                self._trim(self._search, 1.0, now)
                if len(self._search) >= self.search_per_second:
                    self.rejected += 1
                    return secondly_body()
                self._search.append(now)
            elif kind == "standard":
                window = self._windows.setdefault(bucket, deque())
                self._trim(window, TEN_SECONDS, now)
                if len(window) >= self.max_per_10s:
                    self.rejected += 1
                    return ten_secondly_body(self.portal_id, bucket)
                window.append(now)
            self.daily_used += 1
        return None

    def headers(self, bucket: str, *, oauth: bool = False) -> dict[str, str]:
        """The ``X-HubSpot-RateLimit-*`` headers of a non-search response (§7.3)."""
        now = self._now()
        with self._lock:
            self._roll_day()
            window = self._windows.setdefault(bucket, deque())
            self._trim(window, TEN_SECONDS, now)
            per_second = max(1, self.max_per_10s // 10)
            last_second = sum(1 for t in window if now - t < 1.0)
            headers = {} if oauth else {
                "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self.daily_used))}
            headers.update({
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Max": str(self.max_per_10s),
                "X-HubSpot-RateLimit-Remaining": str(max(0, self.max_per_10s - len(window))),
                "X-HubSpot-RateLimit-Secondly": str(per_second),
                "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, per_second - last_second))})
            return headers
