"""Turning a computed variable into the value a CRM field accepts.

Strings longer than the field are shortened with a marker rather than rejected (a rejected
write would lose every other field of the record); numbers and datetimes take the field's
format per CRM; HubSpot wants every value as a string.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable

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
    return converter(spec, crm, max_length)(value)


@lru_cache(maxsize=4096)
def converter(spec: FieldSpec, crm: str, max_length: int | None = None) -> Callable[[Any], Any]:
    """:func:`to_field_value` for one field, with everything that depends only on the field
    decided once: enrichment converts about 60 values per record."""
    if spec.kind in ("datetime", "date"):
        date_only, hubspot = spec.kind == "date", crm == "hubspot"

        def moment_value(value: Any) -> Any:
            if value is None or value == "":
                return None
            moment = _as_datetime(value)
            if moment is None:
                return None
            if date_only:
                return moment.date().isoformat()
            if hubspot:
                return str(int(moment.timestamp() * 1000))
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        return moment_value
    if spec.kind == "number":
        hubspot, integer = crm == "hubspot", spec.crm_type == "int"

        def number_value(value: Any) -> Any:
            if value is None or value == "":
                return None
            number = Decimal(str(value))
            if hubspot:
                return format(number.normalize(), "f")
            if integer or number == number.to_integral_value():
                return int(number)
            return float(number)
        return number_value
    limit = min(filter(None, (spec.length, max_length, HUBSPOT_MAX_STRING if crm == "hubspot" else None)),
                default=None)

    def text_value(value: Any) -> Any:
        if value is None or value == "":
            return None
        text = value if type(value) is str else _as_text(value)
        return truncate(text, limit) if limit else text
    return text_value


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


def same_value(current: Any, wire: Any, spec: FieldSpec) -> bool:
    """Whether the CRM already holds ``wire`` (values come back in other shapes: Salesforce
    datetimes as ``...000+0000``, numbers as Decimals, HubSpot everything as strings)."""
    if current is None or current == "":
        return wire is None or wire == ""
    if wire is None:
        return False
    if spec.kind in ("datetime", "date"):
        left, right = _as_datetime(_from_epoch_ms(current)), _as_datetime(_from_epoch_ms(wire))
        if left is None or right is None:
            return str(current) == str(wire)
        return left.date() == right.date() if spec.kind == "date" else abs((left - right).total_seconds()) < 1
    if spec.kind == "number":
        try:
            return Decimal(str(current)) == Decimal(str(wire))
        except Exception:  # noqa: BLE001 - anything unparsable simply differs
            return False
    return str(current) == str(wire)


def _from_epoch_ms(value: Any) -> Any:
    text = str(value)
    if text.isdigit() and len(text) >= 12:
        return datetime.fromtimestamp(int(text) / 1000, timezone.utc)
    if len(text) > 5 and text[-5] in "+-" and ":" not in text[-5:]:
        return text[:-2] + ":" + text[-2:]
    return value
