"""Turning a computed variable into the value a CRM field accepts.

Strings longer than the field are shortened with a marker rather than rejected (a rejected
write would lose every other field of the record); numbers and datetimes take the field's
format per CRM; HubSpot wants every value as a string.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from adapters.base import FieldSpec

TRUNCATION_MARKER = "…"
HUBSPOT_MAX_STRING = 65_536


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with the marker when it was cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRUNCATION_MARKER))] + TRUNCATION_MARKER if limit > 1 else text[:limit]


def to_field_value(value: Any, spec: FieldSpec, crm: str, max_length: int | None = None) -> Any:
    """The wire value for ``spec``; None means "nothing to write" (unknown variables never clear a field)."""
    if value is None or value == "":
        return None
    if spec.kind in ("datetime", "date"):
        moment = _as_datetime(value)
        if moment is None:
            return None
        if spec.kind == "date":
            return moment.date().isoformat()
        if crm == "hubspot":
            return str(int(moment.timestamp() * 1000))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if spec.kind == "number":
        number = Decimal(str(value))
        if crm == "hubspot":
            return format(number.normalize(), "f")
        if spec.crm_type == "int" or number == number.to_integral_value():
            return int(number)
        return float(number)
    text = _as_text(value)
    limit = min(filter(None, (spec.length, max_length, HUBSPOT_MAX_STRING if crm == "hubspot" else None)),
                default=None)
    return truncate(text, limit) if limit else text


def _as_text(value: Any) -> str:
    if isinstance(value, float):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
