"""Property values on write: what HubSpot accepts, how it stores it, and the error it gives.

Facts (shared/reference/hubspot-api.md):
- values are stored and returned as strings; ``""`` clears (§4.1);
- unknown properties fail with ``PROPERTY_DOESNT_EXIST`` (message text from the DOC example),
  read-only and calculated ones with ``READ_ONLY_VALUE`` (§4.1, §9.1);
- enumerations must match an option value exactly, ``INVALID_OPTION``; ``deal_currency_code``
  has its own message (the deal-currency changelog quoted in §4.1); multi-checkbox values are
  ``;``-separated and a leading ``;`` appends (§5.4);
- numbers: digits with at most one decimal point, no thousands separators (§5.3, §5.4);
- ``date`` needs UTC midnight, ``datetime`` takes ISO 8601 or epoch ms and prints ISO with ``Z``
  (§5.4); strings are limited to 65,536 characters (§5.3); emails must look like emails
  (``INVALID_EMAIL``, §4.1 table).

Not in the reference, from HubSpot's changelog "enhanced validations for non-string properties"
(2025-04): leading or trailing spaces on a non-string value are rejected.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from sandbox.hubspot.schema import Property
from sandbox.hubspot.wire import iso, to_ms

MAX_STRING = 65_536
NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)\Z")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
DAY_MS = 86_400_000


class PropertyError(ValueError):
    """One invalid property value; HubSpot rejects the whole request for it (§4.1)."""

    def __init__(self, code: str, name: str, message: str) -> None:
        super().__init__(message)
        self.code, self.name, self.message = code, name, message


def as_text(raw: Any) -> str:
    """How a JSON value sent as a property value becomes HubSpot's string."""
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def unknown(name: str) -> PropertyError:
    return PropertyError("PROPERTY_DOESNT_EXIST", name, f'Property "{name}" does not exist')


def read_only(spec: Property) -> PropertyError:
    if spec.calculated:
        return PropertyError("READ_ONLY_VALUE", spec.name,
                             f'"{spec.name}" is a calculated property; its value cannot be set')
    return PropertyError("READ_ONLY_VALUE", spec.name, f'"{spec.name}" is a read only property; its value cannot be set')


def _option_listing(spec: Property) -> str:
    # The shape of HubSpot's INVALID_OPTION message (a protobuf dump of each option).
    return ", ".join(f'label: "{o["label"]}"\nvalue: "{o["value"]}"\ndisplay_order: {o.get("displayOrder", -1)}\n'
                     f'hidden: {str(o.get("hidden", False)).lower()}\nread_only: false\n' for o in spec.options)


def normalise(spec: Property, raw: Any, *, portal_id: int) -> str:
    """The stored string for ``raw`` on ``spec``; ``""`` means clear. Raises PropertyError."""
    value = as_text(raw)
    if value == "":
        return ""
    if spec.type != "string" and value != value.strip():
        raise PropertyError(_code(spec), spec.name,
                            f'"{value}" has leading or trailing whitespace, which is not valid for property '
                            f'"{spec.name}" of type {spec.type}')
    if spec.type in ("string", "phone_number"):
        if len(value) > MAX_STRING:
            raise PropertyError("INVALID_STRING", spec.name, f'Property "{spec.name}" value is {len(value)} '
                                                             f"characters long; the limit is {MAX_STRING}")
        if spec.name == "email" and not EMAIL.match(value):
            raise PropertyError("INVALID_EMAIL", spec.name, f"Email address {value} is invalid")
        return value
    if spec.type == "number":
        if not NUMBER.match(value):
            raise PropertyError("INVALID_LONG", spec.name, f'{value} was not a valid number for property '
                                                           f'"{spec.name}"')
        return value
    if spec.type == "bool":
        if value.lower() not in ("true", "false"):
            raise PropertyError("INVALID_BOOLEAN", spec.name, f"{value} was not a valid boolean")
        return value.lower()
    if spec.type in ("datetime", "date"):
        return _moment(spec, value)
    if spec.type == "enumeration":
        return _option(spec, value, portal_id)
    return value


def _code(spec: Property) -> str:
    return {"number": "INVALID_LONG", "bool": "INVALID_BOOLEAN", "datetime": "INVALID_DATE", "date": "INVALID_DATE",
            "enumeration": "INVALID_OPTION"}.get(spec.type, "INVALID_VALUE")


def _moment(spec: Property, value: str) -> str:
    ms = to_ms(value)
    if ms is None:
        raise PropertyError("INVALID_DATE", spec.name, f'{value} is not a valid date for property "{spec.name}"')
    if spec.type == "date" and ms % DAY_MS:
        raise PropertyError("INVALID_DATE", spec.name,
                            f"{value} is at not midnight UTC; property {spec.name} of type date needs a midnight "
                            "timestamp")
    return iso(ms)


def _option(spec: Property, value: str, portal_id: int) -> str:
    parts = [part for part in value.split(";") if part] if spec.field_type == "checkbox" else [value]
    allowed = spec.option_values
    for part in parts:
        if part in allowed:
            continue
        if spec.name == "deal_currency_code":
            message = f'"{part}" is not a part of the current effective currency codes for portal {portal_id}'
        else:
            message = f"{part} was not one of the allowed options: [{_option_listing(spec)}]"
        raise PropertyError("INVALID_OPTION", spec.name, message)
    return value


def merge_checkbox(current: str | None, value: str) -> str:
    """A leading ``;`` appends to a multi-checkbox value instead of replacing it (§5.4)."""
    if not value.startswith(";"):
        return value
    merged = [part for part in (current or "").split(";") if part]
    merged += [part for part in value.split(";") if part and part not in merged]
    return ";".join(merged)


def number_key(value: str) -> Decimal | None:
    """A stored or filter value as a number (None when it is not one)."""
    return Decimal(value) if NUMBER.match(value.strip()) else None
