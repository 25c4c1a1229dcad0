"""What Meta keeps: datasets (the former pixels), the events they received, tokens, clicks.

- Dedup (§3.6): the same ``event_name`` + ``event_id`` received again within 48 hours counts
  once (the later copy is kept, marked ``deduplicated``); after 48 hours it counts again — a
  double count the sender must avoid. That server-vs-server replays dedup like pixel/server
  pairs is "likely but UNCERTAIN" in the reference; the emulator assumes it. Without
  ``event_id`` nothing dedups.
- ``test_event_code`` (§3.6): such events go to the dataset's Test Events and never count in
  its production events (nor dedup against them).
- No retraction exists (§3.6): nothing here removes or changes a received event.
- Matching: hashed ``em``/``ph`` are looked up among the people Meta knows (identity.py) with
  Meta's own normal forms (§3.4: e-mail trimmed and lower-cased, no Gmail rule; phone digits
  with the country code, no ``+``); an ``fbc`` is matched to the ad click Meta served with its
  fbclid (exact, case-sensitive: M-FBC "copy verbatim").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sandbox.identity import PeopleIndex, e164_digits, e164_plus, gmail_canonical, trimmed_lower
from sandbox.meta.events import CheckedEvent

DEDUP_WINDOW = timedelta(hours=48)

META_FORMS = {"email": trimmed_lower, "phone": e164_digits}
META_MISTAKES = {
    "email": [("e-mail not lower-cased or not trimmed", lambda raw: raw),
              ("Gmail address hashed with Google's dot and +suffix removal (Meta keeps them)", gmail_canonical)],
    "phone": [("phone hashed with the leading + (Google's form, not Meta's)", e164_plus),
              ("phone hashed as typed, not as digits with the country code", lambda raw: raw),
              ("phone hashed without the country code (+1 numbers)",
               lambda raw: e164_digits(raw)[1:] if e164_digits(raw).startswith("1") else None)],
}


@dataclass
class Token:
    value: str
    datasets: set[str]
    expires_at: datetime | None = None
    app_secret: str | None = None      # when set, appsecret_proof is checked (and required if demanded)
    require_proof: bool = False


@dataclass
class FacebookClick:
    fbclid: str
    at: datetime
    campaign: str = ""


@dataclass
class ReceivedEvent:
    """One server event as Meta stored it."""

    dataset_id: str
    event: dict[str, Any]
    event_time: datetime
    received_at: datetime
    fbtrace_id: str
    test_event_code: str | None
    counted: bool = True
    deduplicated_with: str | None = None       # fbtrace id of the request that counted it first
    matches: list[dict[str, Any]] = field(default_factory=list)
    click: FacebookClick | None = None
    diagnostics: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "event_name": self.event.get("event_name"),
                "event_id": self.event.get("event_id"), "event_time": int(self.event_time.timestamp()),
                "action_source": self.event.get("action_source"), "user_data": self.event.get("user_data"),
                "custom_data": self.event.get("custom_data"), "event": self.event,
                "received_at": self.received_at.isoformat(), "fbtrace_id": self.fbtrace_id,
                "test_event_code": self.test_event_code, "counted": self.counted,
                "deduplicated_with": self.deduplicated_with, "matches": self.matches,
                "attributed_click": ({"fbclid": self.click.fbclid, "at": self.click.at.isoformat(),
                                      "campaign": self.click.campaign} if self.click else None),
                "diagnostics": self.diagnostics}


@dataclass
class Dataset:
    id: str
    name: str
    events: list[ReceivedEvent] = field(default_factory=list)
    test_events: list[ReceivedEvent] = field(default_factory=list)
    _first_seen: dict[tuple[str, str, bool], ReceivedEvent] = field(default_factory=dict)

    def receive(self, checked: list[CheckedEvent], now: datetime, trace: str, test_event_code: str | None,
                people: PeopleIndex, clicks: dict[str, FacebookClick]) -> None:
        for item in checked:
            received = ReceivedEvent(self.id, item.event, item.event_time, now, trace, test_event_code,
                                     diagnostics=list(item.diagnostics))
            self._dedup(received, now)
            received.matches = _matches(item.event["user_data"], people)
            received.click = _click(item.event["user_data"].get("fbc"), clicks, received)
            (self.test_events if test_event_code else self.events).append(received)

    def _dedup(self, received: ReceivedEvent, now: datetime) -> None:
        event_id = received.event.get("event_id")
        if event_id in (None, ""):
            return
        key = (str(received.event["event_name"]), str(event_id), bool(received.test_event_code))
        first = self._first_seen.get(key)
        if first is not None and now - first.received_at <= DEDUP_WINDOW:
            received.counted = False
            received.deduplicated_with = first.fbtrace_id
        else:
            self._first_seen[key] = received


def _matches(user_data: dict[str, Any], people: PeopleIndex) -> list[dict[str, Any]]:
    found = []
    for field_name, kind in (("em", "email"), ("ph", "phone")):
        values = user_data.get(field_name)
        for value in values if isinstance(values, list) else [values]:
            if not value:
                continue
            match = people.lookup(kind, bytes.fromhex(value))
            found.append({"field": field_name, "value": value, "matched": match is not None and match.problem is None,
                          "person": match.person.label if match else None,
                          "normalisation_problem": match.problem if match else None})
    return found


def _click(fbc: Any, clicks: dict[str, FacebookClick], received: ReceivedEvent) -> FacebookClick | None:
    if not fbc or str(fbc).count(".") < 3:
        return None
    fbclid = str(fbc).split(".", 3)[3]
    click = clicks.get(fbclid)
    if click is None:
        lowered = {key.lower(): value for key, value in clicks.items()}
        if fbclid.lower() in lowered:
            received.diagnostics.append("fbclid in fbc differs in case from the click Meta served: copy it verbatim")
        return None
    return click if click.at <= received.event_time else None
