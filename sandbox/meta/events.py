"""Checking a Conversions API ``data`` array the way Meta does: any bad event fails the request.

Facts (shared/reference/ad-platform-conversions.md §3.2-§3.7, §9.2):
- ``data`` is required, at most 1,000 events (§3.2; the exact error for more is UNCERTAIN);
- every event needs ``event_name``, ``event_time`` (Unix **seconds**), ``action_source`` (one of
  the SDK's ActionSource values) and ``user_data``; ``website`` events also
  ``event_source_url`` and ``client_user_agent`` (§3.3);
- "If any event_time in data is greater than 7 days in the past, we return an error for the
  entire request and process no events" (62 days for ``physical_store``); a future time is
  refused too (tolerance UNCERTAIN: 5 minutes here). A millisecond timestamp is therefore
  refused as being in the future;
- ``user_data`` contact fields (em, ph, fn, ln, ge, db, ct, st, zp, country) must be SHA-256
  hex: Meta "is designed to not accept customer information that is unhashed" (§3.4, §9.2.5);
  ``fbc``, ``fbp``, ``client_ip_address``, ``client_user_agent``, ``lead_id``... are never
  hashed; ``external_id`` may be either;
- an event without any usable customer information: code 100, subcode 2804050 "This event has
  insufficient customer information" (§3.2 [OBS], §9.2.4);
- ``Purchase`` needs ``custom_data.value`` and ``currency`` (value optimisation, §3.3);
  ``data_processing_options`` only ``["LDU"]`` or ``[]`` (§3.7);
- Conversion Leads: ``lead_id`` is the 15-17 digit Lead Ads id, not hashed (§3.5).

A malformed ``fbc`` is not refused: Meta accepts the event and flags it in Events Manager's
diagnostics (M-FBC); the emulator records such findings as ``diagnostics`` of the event.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pycountry

from sandbox.meta.graph import GraphError, invalid_parameter

MAX_EVENTS = 1000
MAX_AGE = timedelta(days=7)
MAX_AGE_PHYSICAL_STORE = timedelta(days=62)
FUTURE_TOLERANCE = timedelta(minutes=5)
ACTION_SOURCES = ("email", "website", "app", "phone_call", "chat", "physical_store", "system_generated",
                  "business_messaging", "other")
HASHED_FIELDS = ("em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country")
IDENTIFYING = ("em", "ph", "external_id", "fbc", "fbp", "lead_id", "anon_id", "madid", "fb_login_id", "ctwa_clid",
               "subscription_id", "page_scoped_user_id")
CURRENCIES = frozenset(currency.alpha_3 for currency in pycountry.currencies)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_FBC = re.compile(r"fb\.([0-2])\.(\d+)\.(.+)")


@dataclass
class CheckedEvent:
    """One event that passed, with the emulator's findings."""

    index: int
    event: dict[str, Any]
    event_time: datetime
    diagnostics: list[str] = field(default_factory=list)


def parse_data(raw: Any) -> list[Any]:
    """``data`` as a list: a JSON string (form posts) or a list already (JSON bodies)."""
    if raw is None or raw == "":
        raise GraphError(400, "(#100) The parameter data is required", 100)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise GraphError(400, "(#100) param data must be an array.", 100) from None
    if not isinstance(raw, list):
        raise GraphError(400, "(#100) param data must be an array.", 100)
    return raw


def check_events(data: list[Any], now: datetime) -> list[CheckedEvent]:
    if not data:
        raise GraphError(400, "(#100) The parameter data is required", 100)
    if len(data) > MAX_EVENTS:
        raise invalid_parameter("Too Many Events", f"You can send up to {MAX_EVENTS} events in data; this request has "
                                                   f"{len(data)}.")
    return [_event(item, index, now) for index, item in enumerate(data)]


def _event(item: Any, index: int, now: datetime) -> CheckedEvent:
    where = f"data[{index}]"
    if isinstance(item, str):   # facebook-business sends each event as a JSON string
        try:
            item = json.loads(item)
        except ValueError:
            item = None
    if not isinstance(item, dict):
        raise invalid_parameter("Invalid Event", f"{where} is not a JSON object.")
    for name in ("event_name", "event_time", "action_source", "user_data"):
        if item.get(name) in (None, "", {}):
            raise invalid_parameter(f"Missing {name}", f"The parameter {name} is required ({where}).")
    if not isinstance(item["event_name"], str):
        raise invalid_parameter("Invalid event_name", f"{where}.event_name must be a string.")
    source = item["action_source"]
    if source not in ACTION_SOURCES:
        raise invalid_parameter("Invalid action_source", f"{where}.action_source {source!r} is not one of "
                                                         f"{', '.join(ACTION_SOURCES)}.")
    event_time = _event_time(item["event_time"], source, where, now)
    user_data = item["user_data"]
    if not isinstance(user_data, dict):
        raise invalid_parameter("Invalid user_data", f"{where}.user_data must be an object.")
    if source == "website":
        for name, holder in (("event_source_url", item), ("client_user_agent", user_data)):
            if not holder.get(name):
                raise invalid_parameter(f"Missing {name}", f"{name} is required for website events ({where}).")
    _hashed(user_data, where)
    _lead(user_data, where)
    if not any(user_data.get(name) for name in IDENTIFYING) and not (
            user_data.get("client_ip_address") and user_data.get("client_user_agent")):
        raise invalid_parameter("Customer Information Parameters Missing",
                                f"This event has insufficient customer information ({where}).", subcode=2804050)
    _custom_data(item, where)
    _processing_options(item, where)
    checked = CheckedEvent(index, item, event_time)
    checked.diagnostics.extend(fbc_findings(user_data.get("fbc"), event_time))
    return checked


def _event_time(value: Any, source: str, where: str, now: datetime) -> datetime:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_parameter("Invalid event_time", f"{where}.event_time must be a Unix timestamp in seconds.")
    try:
        at = datetime.fromtimestamp(value, timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise invalid_parameter("Event Timestamp Too Far In The Future",
                                f"{where}.event_time {value} is not a time in seconds (milliseconds?).") from None
    if at > now + FUTURE_TOLERANCE:
        raise invalid_parameter("Event Timestamp Too Far In The Future",
                                f"{where}.event_time is in the future; it is Unix time in seconds, not milliseconds.")
    limit = MAX_AGE_PHYSICAL_STORE if source == "physical_store" else MAX_AGE
    if now - at > limit:
        raise invalid_parameter("Event Timestamp Too Old",
                                f"The timestamp for this event is too far in the past ({where}). Events need to be "
                                f"sent from your server within {limit.days} days of when they occurred.")
    return at


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _hashed(user_data: dict[str, Any], where: str) -> None:
    for name in HASHED_FIELDS:
        for value in _values(user_data.get(name)):
            if value in (None, ""):
                continue
            if not isinstance(value, str) or not _HEX64.fullmatch(value):
                raise invalid_parameter("Unhashed Customer Information",
                                        f"{where}.user_data.{name} must be a SHA-256 hash (64 hex characters) of the "
                                        "normalised value; Meta does not accept unhashed contact information.")


def _lead(user_data: dict[str, Any], where: str) -> None:
    lead = user_data.get("lead_id")
    if lead not in (None, "") and not re.fullmatch(r"\d{15,17}", str(lead)):
        raise invalid_parameter("Invalid lead_id", f"{where}.user_data.lead_id must be the 15-17 digit Lead Ads id, "
                                                   "not hashed.")


def _custom_data(item: dict[str, Any], where: str) -> None:
    custom = item.get("custom_data") or {}
    if not isinstance(custom, dict):
        raise invalid_parameter("Invalid custom_data", f"{where}.custom_data must be an object.")
    value, currency = custom.get("value"), custom.get("currency")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise invalid_parameter("Invalid value", f"{where}.custom_data.value must be a number.")
    if currency is not None and (not isinstance(currency, str) or currency.upper() not in CURRENCIES):
        raise invalid_parameter("Invalid currency", f"{where}.custom_data.currency {currency!r} is not an ISO 4217 "
                                                    "code.")
    if item["event_name"] == "Purchase" and (value is None or not currency):
        raise invalid_parameter("Missing Value or Currency for Purchase Event",
                                f"Purchase events require custom_data.value and custom_data.currency ({where}).")


def _processing_options(item: dict[str, Any], where: str) -> None:
    options = item.get("data_processing_options")
    if options is None:
        return
    if not isinstance(options, list) or any(option != "LDU" for option in options):
        raise invalid_parameter("Invalid data_processing_options",
                                f"{where}.data_processing_options must be [] or [\"LDU\"].")
    if options:
        for name, allowed in (("data_processing_options_country", (0, 1)),
                              ("data_processing_options_state", (0, 1000))):
            if name in item and item[name] not in allowed:
                raise invalid_parameter(f"Invalid {name}", f"{where}.{name} must be one of {allowed}.")


def fbc_findings(fbc: Any, event_time: datetime) -> list[str]:
    """What Events Manager diagnostics would say about an ``fbc`` (M-FBC: ``fb.1.<ms>.<fbclid>``)."""
    if fbc in (None, ""):
        return []
    match = _FBC.fullmatch(str(fbc))
    if not match:
        return [f"fbc {fbc!r} is not fb.<subdomain index>.<creation time ms>.<fbclid>"]
    created = int(match.group(2))
    if len(match.group(2)) < 13:
        return ["fbc creation time is in seconds, not milliseconds"]
    findings = []
    if datetime.fromtimestamp(created / 1000, timezone.utc) > event_time + FUTURE_TOLERANCE:
        findings.append("fbc creation time is after the event: the click id must be recorded when the click arrived")
    return findings
