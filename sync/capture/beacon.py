"""Beacon v1: parsing and validating what the tracker (or anyone on the internet) posts.

Everything here assumes hostile input. A body is accepted only when it is UTF-8 JSON within
fixed bounds (:class:`Bounds`: nesting depth, digits of a number, characters of a string,
fields of an object, beacons of a batch) holding one beacon object, or an array of them, of
the right shape with the right types. Anything else is refused with a reason naming the bound
or field, never a 500. Strings are made valid text (:mod:`sync.capture.text`), capped at their
field's length and kept as data (never evaluated, never used as markup or SQL). The client's
timestamp is clamped into the window the server trusts: no later than the beacon's arrival,
no earlier than ``max_backdate`` before it. Emails and phones are hashed here, on arrival,
and the clear values go no further than this module.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from sync.capture.identity import hash_email, hash_phone, normalise_ga_client_id
from sync.capture.text import clean_text

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id", "utm_source_platform")
CLICK_ID_KEYS = ("gclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid", "li_fat_id")


class BeaconError(ValueError):
    """A beacon we refuse, with a reason safe to send back to the client."""


def _cap(limit: int):
    return AfterValidator(lambda value: value[:limit] if isinstance(value, str) else value)


Text2048 = Annotated[str, _cap(2048)]
Text512 = Annotated[str, _cap(512)]
Text256 = Annotated[str, _cap(256)]
Text64 = Annotated[str, _cap(64)]


class BeaconV1(BaseModel):
    """The wire format: the JSON object ``send`` in ``tracker.js`` posts, field for field.
    Unknown fields are ignored, so an older collector accepts a newer tracker's beacons."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    v: Literal[1]
    type: Literal["pageview", "identify", "conversion"]
    vid: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    ts: Annotated[int, Field(ge=0)]
    url: Text2048 = ""
    referrer: Text2048 = ""
    sid: Optional[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]] = None
    ga_client_id: Optional[Text64] = None
    ga_session_id: Optional[Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]] = None
    lang: Optional[Annotated[str, _cap(35)]] = None
    tz: Optional[Text64] = None
    ua: Optional[Text512] = None
    utm: dict[str, Text256] = {}
    click_ids: dict[str, Text256] = {}
    email: Optional[Annotated[str, _cap(320)]] = None
    phone: Optional[Text64] = None
    conversion_type: Optional[Literal["form", "call", "chat", "other"]] = None
    consent: Optional[Literal["granted", "denied"]] = None
    ad_user_data: Optional[Literal["granted", "denied"]] = None          # Google Consent Mode signals
    ad_personalization: Optional[Literal["granted", "denied"]] = None


@dataclass
class Hit:
    """A validated beacon, reduced to what is stored: no clear email or phone."""

    visitor_id: str
    kind: str
    occurred_at: datetime
    url: str
    referrer: str
    utm: dict[str, str]
    click_ids: dict[str, str]
    ga_client_id: str | None
    ga_session_id: str | None
    language: str | None
    timezone: str | None
    user_agent: str | None
    conversion_type: str | None
    consent: str | None
    session_key: str | None
    email_sha256: str | None = None
    phone_sha256: str | None = None
    ad_user_data: str | None = None
    ad_personalization: str | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass(frozen=True)
class Bounds:
    """What one request body may hold. Each bound refused says which it was."""

    max_depth: int = 8              # nesting of objects and arrays (a beacon needs 2, a batch 3)
    max_fields: int = 64            # keys of one object, items of one array
    max_string: int = 4096          # characters of any one string (known fields are then capped shorter)
    max_number_chars: int = 32      # characters of one JSON number (Python refuses ints over 4,300 digits)
    max_batch: int = 20             # beacons in one array body
    max_backdate: timedelta = timedelta(hours=6)  # how far before its arrival a beacon may be dated


def parse_beacons(body: bytes, *, user_agent: str | None, now: datetime, bounds: Bounds = Bounds()) -> list[Hit]:
    """Validate ``body`` (one beacon object, or an array of up to ``bounds.max_batch``) into
    :class:`Hit` objects, or raise :class:`BeaconError`. A batch is accepted whole or not at all."""
    data = _load(body, bounds)
    if isinstance(data, list):
        if not data:
            raise BeaconError("an empty batch (send one beacon object, or an array of them)")
        if len(data) > bounds.max_batch:
            raise BeaconError(f"a batch holds at most {bounds.max_batch} beacons")
        hits = []
        for index, item in enumerate(data):
            try:
                hits.append(_hit(item, user_agent, now, bounds))
            except BeaconError as exc:
                raise BeaconError(f"beacon {index}: {exc}") from None
        return hits
    if not isinstance(data, dict):
        raise BeaconError("body must be a JSON object (or an array of them)")
    return [_hit(data, user_agent, now, bounds)]


def _load(body: bytes, bounds: Bounds) -> Any:
    """JSON within the bounds, with every string made valid text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BeaconError("body is not valid JSON (it must be UTF-8)") from None
    def number(text: str, convert):
        if len(text) > bounds.max_number_chars:
            raise BeaconError(f"a number is longer than {bounds.max_number_chars} characters")
        value = convert(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise BeaconError("a number is out of range")
        return value

    def constant(name: str):
        raise BeaconError(f"body is not valid JSON ({name} is not a JSON number)")

    try:
        data = json.loads(text, parse_int=lambda t: number(t, int), parse_float=lambda t: number(t, float),
                          parse_constant=constant)
    except json.JSONDecodeError:
        raise BeaconError("body is not valid JSON") from None
    except RecursionError:  # the decoder's own guard, about a thousand levels down
        raise BeaconError(f"body nests deeper than {bounds.max_depth} levels") from None
    return _checked(data, bounds)


class _OutOfBounds(Exception):
    """A value past a bound; the path to it is added while the walk unwinds."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem, self.path = problem, []

    def reason(self) -> str:
        where = "".join(part if part.startswith("[") else f".{part}" for part in reversed(self.path)).lstrip(".")
        return f"field '{where or 'body'}': {self.problem}"


def _checked(data: Any, bounds: Bounds) -> Any:
    try:
        return _walk(data, bounds, 1)
    except _OutOfBounds as exc:
        raise BeaconError(exc.reason()) from None


def _walk(value: Any, bounds: Bounds, depth: int) -> Any:
    """Strings (and keys) cleaned and within ``max_string``; objects and arrays within
    ``max_depth`` and ``max_fields``."""
    kind = type(value)
    if kind is str:
        if len(value) > bounds.max_string:
            raise _OutOfBounds(f"longer than {bounds.max_string} characters")
        return clean_text(value)
    if kind is not dict and kind is not list:
        return value
    if depth > bounds.max_depth:
        raise BeaconError(f"body nests deeper than {bounds.max_depth} levels")
    if kind is list:
        if depth == 1 and len(value) > bounds.max_batch:  # a batch: its own bound
            raise BeaconError(f"a batch holds at most {bounds.max_batch} beacons")
        if depth > 1 and len(value) > bounds.max_fields:
            raise _OutOfBounds(f"more than {bounds.max_fields} items")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_walk(item, bounds, depth + 1))
            except _OutOfBounds as exc:
                exc.path.append(f"[{index}]" if depth > 1 else str(index))
                raise
        return items
    if len(value) > bounds.max_fields:
        raise _OutOfBounds(f"more than {bounds.max_fields} fields")
    fields = {}
    for key, item in value.items():
        key = clean_text(key)
        try:
            fields[key] = _walk(item, bounds, depth + 1)
        except _OutOfBounds as exc:
            exc.path.append(key)
            raise
    return fields


def _hit(data: Any, user_agent: str | None, now: datetime, bounds: Bounds) -> Hit:
    if not isinstance(data, dict):
        raise BeaconError("must be a JSON object")
    if data.get("v") != 1 and "v" in data:
        raise BeaconError("unsupported beacon version (expected v = 1)")
    try:
        beacon = BeaconV1.model_validate(data)
    except ValidationError as exc:
        raise BeaconError(_reason(exc)) from None
    email_sha256 = phone_sha256 = None
    if beacon.email is not None:
        email_sha256 = hash_email(beacon.email)
        if email_sha256 is None:
            raise BeaconError("field 'email': not an email address")
    if beacon.phone is not None:
        phone_sha256 = hash_phone(beacon.phone)
        if phone_sha256 is None:
            raise BeaconError("field 'phone': not a phone number")
    if beacon.type == "identify" and not (email_sha256 or phone_sha256):
        raise BeaconError("an identify beacon needs 'email' or 'phone'")
    if beacon.type == "conversion" and not beacon.conversion_type:
        raise BeaconError("a conversion beacon needs 'conversion_type' (form, call, chat or other)")
    if beacon.type == "pageview" and not beacon.url:
        raise BeaconError("a pageview beacon needs 'url'")
    return Hit(
        visitor_id=beacon.vid,
        kind=beacon.type,
        occurred_at=clamp_timestamp(beacon.ts, now, bounds.max_backdate),
        url=beacon.url,
        referrer=beacon.referrer,
        utm={key: value for key, value in beacon.utm.items() if key in UTM_KEYS and value},
        click_ids={key: value for key, value in beacon.click_ids.items() if key in CLICK_ID_KEYS and value},
        ga_client_id=normalise_ga_client_id(beacon.ga_client_id) if beacon.ga_client_id else None,
        ga_session_id=beacon.ga_session_id,
        language=beacon.lang,
        timezone=beacon.tz,
        user_agent=beacon.ua or user_agent,
        conversion_type=beacon.conversion_type,
        consent=beacon.consent,
        session_key=beacon.sid,
        email_sha256=email_sha256,
        phone_sha256=phone_sha256,
        ad_user_data=beacon.ad_user_data,
        ad_personalization=beacon.ad_personalization,
        received_at=now,
    )


def clamp_timestamp(ts_ms: int, now: datetime, max_backdate: timedelta) -> datetime:
    """The client's moment (ms since the epoch), trusted only within ``[now - max_backdate, now]``:
    a beacon cannot be dated in the future, nor earlier than an offline queue could hold it."""
    latest = int(now.timestamp() * 1000)
    earliest = latest - int(max_backdate.total_seconds() * 1000)
    if ts_ms >= latest:
        return now
    if ts_ms <= earliest:
        return now - max_backdate
    return datetime.fromtimestamp(ts_ms / 1000, timezone.utc)


def _reason(exc: ValidationError) -> str:
    """The first problem, as ``field 'x': expected ...`` (the input value is never echoed)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    if error["type"] == "missing":
        return f"field '{where}' is required"
    message = error["msg"].removeprefix("Input should be ").removeprefix("String should ").rstrip(".")
    return f"field '{where}': expected {message}" if not message.startswith("match") else \
        f"field '{where}': has the wrong format"
