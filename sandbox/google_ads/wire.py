"""IngestEventsRequest as proto3 JSON, parsed the way Google's front end parses it.

The message and enum definitions are those of ``google/ads/datamanager/v1/*.proto``
(shared/reference/ad-platform-conversions.md §2.3; the same text as the generated types of
``google-ads-datamanager`` 0.9.4), restricted to what an ``events:ingest`` request can carry.

proto3 JSON rules applied (https://protobuf.dev/programming-guides/json/): a field may be
written with its lowerCamelCase JSON name or its original snake_case name; enums as their name
or their number (the GAPIC REST transport sends numbers: ``$alt=json;enum-encoding=int``);
int64 as a number or a decimal string; double as a number or a numeric string (``"NaN"``,
``"Infinity"`` too); Timestamp as an RFC 3339 string with ``Z`` or an offset and up to nine
fractional digits; ``null`` is the field's default. An unknown field, or a value of the wrong
type, fails the whole request with Google's front-end wording ("Invalid JSON payload received.
Unknown name ... Cannot find field.", "Invalid value at '...' (TYPE_DOUBLE), ...").

The parse result is plain dicts with camelCase keys, enum names, ``datetime`` timestamps, and
only the fields that were present.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from sandbox.googleapis.status import FieldViolation

ENUMS: dict[str, tuple[str, ...]] = {  # index = enum number
    "Encoding": ("ENCODING_UNSPECIFIED", "HEX", "BASE64"),
    "ConsentStatus": ("CONSENT_STATUS_UNSPECIFIED", "CONSENT_GRANTED", "CONSENT_DENIED"),
    "AccountType": ("ACCOUNT_TYPE_UNSPECIFIED", "GOOGLE_ADS", "DISPLAY_VIDEO_PARTNER", "DISPLAY_VIDEO_ADVERTISER",
                    "DATA_PARTNER", "GOOGLE_ANALYTICS_PROPERTY", "GOOGLE_AD_MANAGER_AUDIENCE_LINK",
                    "FLOODLIGHT_CONFIG", "GOOGLE_AD_MANAGER"),
    "Product": ("PRODUCT_UNSPECIFIED", "GOOGLE_ADS", "DISPLAY_VIDEO_PARTNER", "DISPLAY_VIDEO_ADVERTISER",
                "DATA_PARTNER"),
    # EventSource numbers are not in declaration order: MESSAGE = 6, OTHER = 5.
    "EventSource": ("EVENT_SOURCE_UNSPECIFIED", "WEB", "APP", "IN_STORE", "PHONE", "OTHER", "MESSAGE"),
}

S, D, I64, I32, B, TS = "TYPE_STRING", "TYPE_DOUBLE", "TYPE_INT64", "TYPE_INT32", "TYPE_BOOL", "Timestamp"

# message → {jsonName: (type, repeated)}; a type is a scalar above, "enum:<Name>" or "msg:<Name>".
MESSAGES: dict[str, dict[str, tuple[str, bool]]] = {
    "IngestEventsRequest": {"destinations": ("msg:Destination", True), "events": ("msg:Event", True),
                            "consent": ("msg:Consent", False), "validateOnly": (B, False),
                            "encoding": ("enum:Encoding", False), "encryptionInfo": ("msg:EncryptionInfo", False)},
    "Destination": {"reference": (S, False), "loginAccount": ("msg:ProductAccount", False),
                    "linkedAccount": ("msg:ProductAccount", False), "operatingAccount": ("msg:ProductAccount", False),
                    "productDestinationId": (S, False)},
    "ProductAccount": {"product": ("enum:Product", False), "accountId": (S, False),
                       "accountType": ("enum:AccountType", False)},
    "Consent": {"adUserData": ("enum:ConsentStatus", False), "adPersonalization": ("enum:ConsentStatus", False)},
    "EncryptionInfo": {"gcpWrappedKeyInfo": ("msg:Opaque", False), "awsWrappedKeyInfo": ("msg:Opaque", False)},
    "Opaque": {},
    "Event": {"destinationReferences": (S, True), "transactionId": (S, False), "eventTimestamp": (TS, False),
              "lastUpdatedTimestamp": (TS, False), "userData": ("msg:UserData", False),
              "consent": ("msg:Consent", False), "adIdentifiers": ("msg:AdIdentifiers", False),
              "currency": (S, False), "conversionValue": (D, False), "conversionCount": (D, False),
              "eventSource": ("enum:EventSource", False), "eventDeviceInfo": ("msg:DeviceInfo", False),
              "cartData": ("msg:CartData", False), "customVariables": ("msg:CustomVariable", True),
              "eventName": (S, False), "clientId": (S, False), "userId": (S, False),
              "eventLocation": ("msg:EventLocation", False), "appInstanceId": (S, False)},
    "AdIdentifiers": {"sessionAttributes": (S, False), "gclid": (S, False), "gbraid": (S, False),
                      "wbraid": (S, False), "landingPageDeviceInfo": ("msg:DeviceInfo", False),
                      "mobileDeviceId": (S, False), "dclid": (S, False), "impressionId": (S, False),
                      "matchId": (S, False), "ppid": (S, False), "visitorPpid": (S, False)},
    "UserData": {"userIdentifiers": ("msg:UserIdentifier", True)},
    "UserIdentifier": {"emailAddress": (S, False), "phoneNumber": (S, False), "address": ("msg:AddressInfo", False)},
    "AddressInfo": {"givenName": (S, False), "familyName": (S, False), "regionCode": (S, False),
                    "postalCode": (S, False), "addressLine": (S, False), "city": (S, False),
                    "administrativeArea": (S, False)},
    "DeviceInfo": {"userAgent": (S, False), "ipAddress": (S, False), "category": (S, False),
                   "languageCode": (S, False), "screenHeight": (I32, False), "screenWidth": (I32, False),
                   "operatingSystem": (S, False), "operatingSystemVersion": (S, False), "model": (S, False),
                   "brand": (S, False), "browser": (S, False), "browserVersion": (S, False)},
    "CartData": {"merchantId": (S, False), "merchantFeedLabel": (S, False), "merchantFeedLanguageCode": (S, False),
                 "transactionDiscount": (D, False), "items": ("msg:Item", True), "couponCodes": (S, True)},
    "Item": {"merchantProductId": (S, False), "quantity": (I64, False), "unitPrice": (D, False), "itemId": (S, False),
             "merchantId": (S, False), "conversionValue": (D, False)},
    "CustomVariable": {"variable": (S, False), "value": (S, False), "destinationReferences": (S, True)},
    "EventLocation": {"storeId": (S, False), "city": (S, False), "subdivisionCode": (S, False),
                      "regionCode": (S, False), "subcontinentCode": (S, False), "continentCode": (S, False)},
    "RetrieveRequestStatusRequest": {"requestId": (S, False)},
}
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_INT = re.compile(r"-?\d+")


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


def parse_body(body: bytes, message: str = "IngestEventsRequest") -> dict[str, Any]:
    """Decode ``body`` as JSON and then as ``message``; PayloadError on the first problem."""
    try:
        data = json.loads(body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(FieldViolation("", f"Invalid JSON payload received. {exc}.", "INVALID_FORMAT")) from None
    return parse_message(data, message, "")


def parse_message(data: Any, message: str, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PayloadError(FieldViolation(path, f"Invalid JSON payload received. Expected an object at "
                                                f"'{path or message}'.", "INVALID_FORMAT"))
    fields = MESSAGES[message]
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
            result[name] = [_value(item, kind, f"{field_path}[{index}]") for index, item in enumerate(value)]
        else:
            result[name] = _value(value, kind, field_path)
    return result


def _value(value: Any, kind: str, path: str) -> Any:
    if kind.startswith("msg:"):
        return parse_message(value, kind[4:], path)
    if kind.startswith("enum:"):
        return _enum(value, kind[5:], path)
    if kind == S and isinstance(value, str):
        return value
    if kind == B and isinstance(value, bool):
        return value
    if kind == D:
        number = _double(value)
        if number is not None:
            return number
    if kind in (I64, I32) and not isinstance(value, bool):
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        if isinstance(value, str) and _INT.fullmatch(value):
            return int(value)
    if kind == TS and isinstance(value, str):
        moment = parse_timestamp(value)
        if moment is not None:
            return moment
        raise PayloadError(FieldViolation(path, f"Invalid value at '{path}' (type.googleapis.com/google.protobuf."
                                                f"Timestamp), Field '{path}', Illegal timestamp format; timestamps "
                                                f"must end with 'Z' or have a valid timezone offset.",
                                          "INVALID_FORMAT"))
    shown = json.dumps(value)
    raise PayloadError(FieldViolation(path, f"Invalid value at '{path}' ({kind}), {shown}", "INVALID_FORMAT"))


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


def _enum(value: Any, name: str, path: str) -> str:
    values = ENUMS[name]
    if isinstance(value, str) and value in values:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(values):
        return values[value]
    raise PayloadError(FieldViolation(path, f"Invalid value at '{path}' (type.googleapis.com/google.ads.datamanager."
                                            f"v1.{name}), {json.dumps(value)}", "INVALID_ENUM_VALUE"))


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
