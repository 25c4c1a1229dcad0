"""The emulators' HTTP control API helpers: a JSON body checked field by field, a 400 on bad input.

A control call is a test's or the demo's instruction to an emulator (register a click, expire
a token...). A mistake in one is reported as ``400 {"error": "<Type>: <reason>"}``, never as a
crash of the emulator.
"""
from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Callable

from sandbox.faults import FaultPlan
from sandbox.identity import PeopleIndex, Person
from sandbox.web import Request, Response


class AdPlatformControls:
    """What a test does to an ad platform's emulator besides calling its API: arm faults, take
    it down for a while, and tell it which people it knows. Needs ``lock``, ``faults`` and
    ``people`` on the emulator."""

    lock: threading.RLock
    faults: FaultPlan
    people: PeopleIndex

    def inject(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` API calls fail the ``kind`` way (the emulator's ``FAULT_KINDS``)."""
        with self.lock:
            self.faults.inject(kind, times)

    def outage(self, seconds: float) -> datetime:
        """Every API call fails as the platform does when it is down, for ``seconds`` of the
        sandbox clock; returns when it ends."""
        with self.lock:
            return self.faults.outage(seconds)

    def register_person(self, *, email: str | None = None, phone: str | None = None, label: str = "") -> None:
        """Someone with an account on the platform (e-mail and phone as typed), so received hashes
        can be judged as matching or wrongly normalised (identity.py)."""
        with self.lock:
            self.people.add(Person(email, phone, label or email or phone or ""))


def control(action: Callable[[Request], Any], status: int = 200) -> Callable[[Request], Response]:
    """A route running ``action``; its result (or ``{"ok": true}``) as JSON with ``status``."""
    def handler(request: Request) -> Response:
        try:
            result = action(request)
        except (KeyError, TypeError, ValueError) as exc:
            return Response.json({"error": f"{type(exc).__name__}: {exc}"}, 400)
        return Response.json({"ok": True} if result is None else result, status)
    return handler


def fields(request: Request, *required: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON object body, checked for required and unknown keys; ``at``/``*_at`` values are
    ISO 8601 times and come back as datetimes."""
    data = request.json()
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    unknown = set(data) - set(required) - set(optional)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"missing fields {missing}")
    return {key: datetime.fromisoformat(value) if (key == "at" or key.endswith("_at")) and isinstance(value, str)
            else value for key, value in data.items()}
