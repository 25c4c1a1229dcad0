"""A controllable clock shared by the emulators, so tests move time instead of sleeping."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone


class Clock:
    """Wall-clock UTC time that a test can freeze, set and advance.

    While frozen, ``now()`` returns the frozen instant; ``advance`` moves it. Unfrozen, it
    follows the real clock plus any offset accumulated by ``advance``.
    """

    def __init__(self, frozen_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._frozen = frozen_at
        self._offset = timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(timezone.utc) + self._offset

    def freeze(self, at: datetime | None = None) -> None:
        """Stop time at ``at`` (default: the current time)."""
        current = self.now()
        with self._lock:
            self._frozen = _aware(at) if at is not None else current

    def unfreeze(self) -> None:
        """Let time run again from the frozen instant."""
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - datetime.now(timezone.utc)
                self._frozen = None

    def advance(self, seconds: float) -> datetime:
        """Move time forward (frozen or not) and return the new now."""
        with self._lock:
            delta = timedelta(seconds=seconds)
            if self._frozen is not None:
                self._frozen += delta
            else:
                self._offset += delta
        return self.now()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
