"""Reading a proto3 JSON request body the way Google's front end reads it, given its schema.

proto3 JSON rules applied (https://protobuf.dev/programming-guides/json/): a field may be
written with its lowerCamelCase JSON name or its original snake_case name; enums as their name
or their number (GAPIC REST transports send numbers: ``$alt=json;enum-encoding=int``); int64
as a number or a decimal string; double as a number or a numeric string (``"NaN"``,
``"Infinity"`` too); Timestamp as an RFC 3339 string with ``Z`` or an offset and up to nine
fractional digits; ``null`` is the field's default. An unknown field, or a value of the wrong
type, fails the whole request with the front end's wording ("Invalid JSON payload received.
Unknown name ... Cannot find field.", "Invalid value at '...' (TYPE_DOUBLE), ...").

A :class:`Schema` names each message's fields ``{jsonName: (type, repeated)}``, a type being a
scalar below, ``"enum:<Name>"`` or ``"msg:<Name>"``, and each enum's values by number. The
result of parsing is plain dicts with camelCase keys, enum names, ``datetime`` timestamps and
only the fields present.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sandbox.googleapis.status import FieldViolation

STRING, DOUBLE, INT64, INT32, BOOL, TIMESTAMP = "TYPE_STRING", "TYPE_DOUBLE", "TYPE_INT64", "TYPE_INT32", \
    "TYPE_BOOL", "Timestamp"
ANY = "any"   # a message the emulator does not read; kept as the JSON it was
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_INT = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Schema:
    package: str                                          # e.g. "google.ads.datamanager.v1"
    messages: dict[str, dict[str, tuple[str, bool]]]
    enums: dict[str, dict[str, int]]                      # enum → value name → number

    def enum_name(self, enum: str, value: Any) -> str | None:
        values = self.enums[enum]
        if isinstance(value, str) and value in values:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            for name, number in values.items():
                if number == value:
                    return name
        return None


def enum_values(*names: str) -> dict[str, int]:
    """An enum whose numbers follow declaration order."""
    return {name: number for number, name in enumerate(names)}


class PayloadError(Exception):
    """The body is not a valid proto3 JSON message; ``violation`` says where and why."""

    def __init__(self, violation: FieldViolation) -> None:
        super().__init__(violation.description)
        self.violation = violation


def snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def parse_body(body: bytes, message: str, schema: Schema) -> dict[str, Any]:
    """Decode ``body`` as JSON and then as ``message``; PayloadError on the first problem."""
    try:
        data = json.loads(body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(FieldViolation("", f"Invalid JSON payload received. {exc}.", "INVALID_FORMAT")) from None
    return parse_message(data, message, "", schema)


def parse_message(data: Any, message: str, path: str, schema: Schema) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PayloadError(FieldViolation(path, f"Invalid JSON payload received. Expected an object at "
                                                f"'{path or message}'.", "INVALID_FORMAT"))
    fields = schema.messages[message]
    result: dict[str, Any] = {}
    for key, value in data.items():
        name = key if key in fields else camel(key)
        if name not in fields or (name != key and snake(name) != key):
            where = f" at '{path}'" if path else ""
            raise PayloadError(FieldViolation(path, f'Invalid JSON payload received. Unknown name "{key}"{where}: '
                                                    "Cannot find field.", "INVALID_ARGUMENT"))
        if value is None:
            continue
        kind, repeated = fields[name]
        field_path = f"{path}.{snake(name)}" if path else snake(name)
        if repeated:
            if not isinstance(value, list):
                raise PayloadError(FieldViolation(field_path, f"Invalid value at '{field_path}', expected a list.",
                                                  "INVALID_FORMAT"))
            result[name] = [_value(item, kind, f"{field_path}[{index}]", schema) for index, item in enumerate(value)]
        else:
            result[name] = _value(value, kind, field_path, schema)
    return result


def _value(value: Any, kind: str, path: str, schema: Schema) -> Any:
    if kind == ANY:
        return value
    if kind.startswith("msg:"):
        return parse_message(value, kind[4:], path, schema)
    if kind.startswith("enum:"):
        name = schema.enum_name(kind[5:], value)
        if name is None:
            raise PayloadError(FieldViolation(path, f"Invalid value at '{path}' (type.googleapis.com/"
                                                    f"{schema.package}.{kind[5:]}), {json.dumps(value)}",
                                              "INVALID_ENUM_VALUE"))
        return name
    if kind == STRING and isinstance(value, str):
        return value
    if kind == BOOL and isinstance(value, bool):
        return value
    if kind == DOUBLE:
        number = _double(value)
        if number is not None:
            return number
    if kind in (INT64, INT32) and not isinstance(value, bool):
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        if isinstance(value, str) and _INT.fullmatch(value):
            return int(value)
    if kind == TIMESTAMP and isinstance(value, str):
        moment = parse_timestamp(value)
        if moment is not None:
            return moment
        raise PayloadError(FieldViolation(path, f"Invalid value at '{path}' (type.googleapis.com/google.protobuf."
                                                f"Timestamp), Field '{path}', Illegal timestamp format; timestamps "
                                                f"must end with 'Z' or have a valid timezone offset.",
                                          "INVALID_FORMAT"))
    raise PayloadError(FieldViolation(path, f"Invalid value at '{path}' ({kind}), {json.dumps(value)}",
                                      "INVALID_FORMAT"))


def _double(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) or value in ("NaN", "Infinity", "-Infinity") else None
    return None


def parse_timestamp(text: str) -> datetime | None:
    """RFC 3339 as protobuf's Timestamp JSON accepts it, as an aware UTC datetime."""
    match = _TIMESTAMP.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(group) for group in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        return None
    if fraction:
        moment += timedelta(microseconds=int(fraction[1:].ljust(9, "0")[:6]))
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return moment


def timestamp_json(moment: datetime) -> str:
    """A datetime as protobuf writes a Timestamp: UTC, ``Z``, fractional digits only if any."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"
