"""Beacon v1: parsing and validating what the tracker (or anyone on the internet) posts.

Everything here assumes hostile input. A beacon is accepted only when it is a JSON object of
the right shape with the right types; strings are capped at fixed lengths and kept as data
(never evaluated, never used as markup or SQL). Emails and phones are hashed here, on
arrival, and the clear values go no further than this module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from sync.capture.identity import hash_email, hash_phone, normalise_ga_client_id

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
    ga_session_id: Optional[Annotated[str, Field(pattern=r"^\d{1,20}$")]] = None
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


def parse_beacon(body: bytes, *, user_agent: str | None, now: datetime, max_skew: timedelta) -> Hit:
    """Validate ``body`` and turn it into a :class:`Hit`, or raise :class:`BeaconError`."""
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BeaconError("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BeaconError("body must be a JSON object")
    if data.get("v") != 1 and "v" in data:
        raise BeaconError("unsupported beacon version (expected v = 1)")
    try:
        beacon = BeaconV1.model_validate(data)
    except ValidationError as exc:
        raise BeaconError(_reason(exc)) from None
    occurred = datetime.fromtimestamp(beacon.ts / 1000, timezone.utc) if beacon.ts < 10**14 else None
    if occurred is None or occurred > now + max_skew:
        raise BeaconError("field 'ts': timestamp is in the future")
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
        occurred_at=occurred,
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


def _reason(exc: ValidationError) -> str:
    """The first problem, as ``field 'x': expected ...`` (the input value is never echoed)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    if error["type"] == "missing":
        return f"field '{where}' is required"
    message = error["msg"].removeprefix("Input should be ").removeprefix("String should ").rstrip(".")
    return f"field '{where}': expected {message}" if not message.startswith("match") else \
        f"field '{where}': has the wrong format"
