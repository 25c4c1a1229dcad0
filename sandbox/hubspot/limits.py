"""HubSpot's rate limits (reference §7): a rolling ten-second window per app, a daily
allowance per account, and the search API's own per-second limit, with their headers and
429 bodies."""
from __future__ import annotations

import threading
import uuid
from collections import deque

from sandbox.clock import Clock


class RateLimits:
    def __init__(self, clock: Clock, *, max_per_10s: int, daily_limit: int, search_per_second: int) -> None:
        self.clock = clock
        self.max_per_10s, self.daily_limit, self.search_per_second = max_per_10s, daily_limit, search_per_second
        self.daily_used = 0
        self._window: deque[float] = deque()
        self._search: deque[float] = deque()
        self._lock = threading.Lock()
        self.rejected = 0

    def _trim(self, window: deque[float], seconds: float, now: float) -> None:
        while window and now - window[0] >= seconds:
            window.popleft()

    def admit(self, search: bool) -> dict | None:
        """Count a call; returns a 429 body when it must be refused."""
        now = self.clock.now().timestamp()
        with self._lock:
            if self.daily_used >= self.daily_limit:
                self.rejected += 1
                return {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
                        "correlationId": str(uuid.uuid4()), "policyName": "DAILY", "requestId": str(uuid.uuid4())}
            if search:
                self._trim(self._search, 1.0, now)
                if len(self._search) >= self.search_per_second:
                    self.rejected += 1
                    return {"status": "error", "message": "You have reached your secondly limit.",
                            "correlationId": str(uuid.uuid4()), "category": "RATE_LIMITS"}
                self._search.append(now)
            else:
                self._trim(self._window, 10.0, now)
                if len(self._window) >= self.max_per_10s:
                    self.rejected += 1
                    return {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                            "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                            "policyName": "TEN_SECONDLY_ROLLING",
                            "groupName": "publicapi:private-app-api-calls-ten-secondly:99999"}
                self._window.append(now)
            self.daily_used += 1
        return None

    def headers(self) -> dict[str, str]:
        """Headers of a non-search response (§7.3)."""
        now = self.clock.now().timestamp()
        with self._lock:
            self._trim(self._window, 10.0, now)
            return {"X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                    "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self.daily_used)),
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                    "X-HubSpot-RateLimit-Max": str(self.max_per_10s),
                    "X-HubSpot-RateLimit-Remaining": str(max(0, self.max_per_10s - len(self._window))),
                    "X-HubSpot-RateLimit-Secondly": str(max(1, self.max_per_10s // 10)),
                    "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, self.max_per_10s // 10 - sum(
                        1 for t in self._window if now - t < 1.0)))}
