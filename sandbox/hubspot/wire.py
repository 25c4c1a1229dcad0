"""HubSpot's wire formats: JSON responses, error bodies and timestamps.

Facts (shared/reference/hubspot-api.md): every JSON response is
``application/json;charset=utf-8`` with an ``X-HubSpot-Correlation-Id`` header equal to the
body's ``correlationId`` on errors (§7.3, §11); error bodies carry ``status``, ``message``,
``correlationId`` and ``category`` plus optional ``context``/``errors`` (§8); datetimes print like
Java's ``Instant.toString()``, with milliseconds only when non-zero (§5.4).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from sandbox.web import Response

CONTENT_TYPE = "application/json;charset=utf-8"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ApiError(Exception):
    """Raised by a handler to answer with a HubSpot error body."""

    def __init__(self, status: int, message: str, category: str | None = "VALIDATION_ERROR", **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.category, self.extra = status, message, category, extra

    def response(self) -> Response:
        return error(self.status, self.message, self.category, **self.extra)


def correlation_id() -> str:
    return str(uuid.uuid4())


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON success response with a fresh correlation id."""
    return Response.json(data, status, {"X-HubSpot-Correlation-Id": correlation_id(), **(headers or {})},
                         content_type=CONTENT_TYPE)


def error_body(message: str, category: str | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": correlation_id(), **extra}
    if category:
        body["category"] = category
    return body


def body_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    """An error response whose correlation header equals the body's ``correlationId``."""
    merged = {"X-HubSpot-Correlation-Id": body.get("correlationId") or correlation_id(), **(headers or {})}
    return Response.json(body, status, merged, content_type=CONTENT_TYPE)


def error(status: int, message: str, category: str | None = None, **extra: Any) -> Response:
    return body_response(error_body(message, category, **extra), status)


def html(status: int, title: str) -> Response:
    """What a CDN in front of HubSpot answers instead of JSON (§7.4, "HTML 5xx")."""
    page = (f"<!DOCTYPE html>\n<html><head><title>{status} {title}</title></head>"
            f"<body><h1>{status} {title}</h1><p>cloudflare</p></body></html>\n")
    return Response.text(page, status, content_type="text/html; charset=UTF-8")


@lru_cache(maxsize=65_536)
def iso(ms: int) -> str:
    """Epoch milliseconds as HubSpot prints them: ``2024-01-01T00:00:00Z`` or ``…:00.123Z``.

    Cached: bulk-seeded records share a handful of timestamps, and sharing the strings keeps
    a million records' memory down.
    """
    seconds, millis = divmod(ms, 1000)
    text = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{millis:03d}Z" if millis else "Z")


def to_ms(value: Any, *, allow_date_only: bool = True) -> int | None:
    """Epoch milliseconds from ms digits or an ISO 8601 string; None if it is neither.

    ``allow_date_only=False`` refuses ``YYYY-MM-DD``: a date-only value on ``lastmodifieddate``
    made the search API answer 400 (§3.1, hubspot-api-ruby#62).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if not allow_date_only and "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def parse_json(raw: bytes) -> Any:
    """The request body as JSON, or the 400 HubSpot gives for malformed input."""
    try:
        return json.loads(raw.decode("utf-8") or "null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Invalid input JSON on line 1, column 1: {exc}", "VALIDATION_ERROR") from None
