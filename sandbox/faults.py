"""Faults a test arms on an emulator: the next calls fail a given way, or every call fails for a while.

Each emulator decides what a fault kind looks like on its wire (a Google ``UNAVAILABLE``
status, a Graph ``is_transient`` error, a dropped connection...); this only keeps the plan, on
the emulator's clock so an outage of an hour ends when a test advances the clock an hour.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

from sandbox.clock import Clock

OUTAGE = "outage"


class FaultPlan:
    """Armed faults; not thread-safe on its own (the emulator holds its lock)."""

    def __init__(self, kinds: Iterable[str], clock: Clock) -> None:
        self.kinds = frozenset(kinds)
        self.clock = clock
        self.queue: list[str] = []
        self.down_until: datetime | None = None

    def inject(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` calls fail the ``kind`` way."""
        if kind not in self.kinds:
            raise ValueError(f"fault kind is one of {sorted(self.kinds)}")
        self.queue.extend([kind] * int(times))

    def outage(self, seconds: float) -> datetime:
        """Every call fails from now for ``seconds`` of the emulator's clock; returns the end."""
        self.down_until = self.clock.now() + timedelta(seconds=seconds)
        return self.down_until

    def end_outage(self) -> None:
        self.down_until = None

    def take(self) -> str | None:
        """The fault for the call arriving now: ``"outage"``, an armed kind, or None."""
        if self.down_until is not None and self.clock.now() < self.down_until:
            return OUTAGE
        return self.queue.pop(0) if self.queue else None
