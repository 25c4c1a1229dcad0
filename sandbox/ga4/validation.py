"""The Measurement Protocol's payload rules: the validation server's messages, and the
atoms the production endpoint uses to decide silently what it keeps.

Source for every rule: shared/reference/ga4-measurement-protocol.md — §2.1 payload schema,
§1.3 client_id, §3.1-§3.3 limits and reserved names, §3.4 the 72-hour window, §4 purchase and
refund, §6.1 the response shape, the seven codes and RELAXED vs ENFORCE_RECOMMENDATIONS, §7.2
user_data. Descriptions follow Google's wording where it is known ("Event at index: [0] has
invalid name [...]", "client_id [...] has invalid format. ...", "Unable to parse Measurement
Protocol JSON payload. (events[0]) names: Cannot find field.").

Two layers, as on Google's side:
1. Parsing (:func:`parse`): the body must be JSON of the documented shape — unknown fields
   and wrong types for the fixed fields make the request malformed. The validation server
   answers with one message without ``fieldPath``; production drops the request.
2. Checking (:func:`check`): names, limits, reserved names, required values. RELAXED reports
   names and limits but accepts wrongly typed values, a non-GA client_id and timestamps
   outside the window; ENFORCE_RECOMMENDATIONS reports those too.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

STRICT, RELAXED = "ENFORCE_RECOMMENDATIONS", "RELAXED"

MAX_BODY_BYTES = 130_000  # "< 130 kB" (§3.1); read as decimal kilobytes, the stricter reading
MAX_EVENTS = MAX_PARAMS = MAX_USER_PROPERTIES = 25
MAX_CUSTOM_ITEM_PARAMS = 10  # [SEND]; [EVENTS] says 27, §3.1 advises enforcing 10
MAX_NAME = 40
MAX_USER_PROPERTY_NAME, MAX_USER_PROPERTY_VALUE = 24, 36
MAX_VALUE = 100
LONG_VALUES = {"page_title": 300, "page_referrer": 420, "page_location": 1000}
LENGTH_EXEMPT = {"session_id", "session_number"}
MAX_USER_ID = 256
MAX_EMAILS = MAX_PHONES = 3
MAX_ADDRESSES = 2
BACKDATE_LIMIT_US = 72 * 3600 * 1_000_000
# "≤ request time" (§3.4) with a minute's grace for the sender's clock (inference: Google
# cannot demand clocks in perfect agreement).
FUTURE_GRACE_US = 60 * 1_000_000

RESERVED_EVENT_NAMES = frozenset({
    "ad_activeview", "ad_click", "ad_exposure", "ad_query", "ad_reward", "adunit_exposure", "app_clear_data",
    "app_exception", "app_install", "app_remove", "app_store_refund", "app_update", "app_upgrade",
    "dynamic_link_app_open", "dynamic_link_app_update", "dynamic_link_first_open", "error", "firebase_campaign",
    "firebase_in_app_message_action", "firebase_in_app_message_dismiss", "firebase_in_app_message_impression",
    "first_open", "first_visit", "notification_dismiss", "notification_foreground", "notification_open",
    "notification_receive", "notification_send", "os_update", "session_start", "user_engagement"})
APP_ONLY_EVENT_NAMES = frozenset({"ad_impression", "in_app_purchase", "screen_view"})
RESERVED_PARAM_NAMES = frozenset({"firebase_conversion"})
RESERVED_PARAM_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")
RESERVED_USER_PROPERTY_NAMES = frozenset({"first_open_time", "first_visit_time", "last_deep_link_referrer",
                                          "user_id", "first_open_after_install"})
RESERVED_USER_PROPERTY_PREFIXES = ("_", "firebase_", "ga_", "google_")
STANDARD_ITEM_PARAMS = frozenset({
    "item_id", "item_name", "affiliation", "coupon", "discount", "index", "item_brand", "item_category",
    "item_category2", "item_category3", "item_category4", "item_category5", "item_list_id", "item_list_name",
    "item_variant", "location_id", "price", "quantity", "creative_name", "creative_slot", "promotion_id",
    "promotion_name"})
# Types of documented parameters ([EVENTS]); checked under ENFORCE_RECOMMENDATIONS only.
NUMBER_PARAMS = frozenset({"value", "tax", "shipping", "engagement_time_msec"})
STRING_PARAMS = frozenset({"currency", "transaction_id", "coupon", "customer_type", "lead_source",
                           "lead_status", "disqualified_lead_reason", "unconvert_lead_reason"})
NUMBER_ITEM_PARAMS = frozenset({"price", "quantity", "discount", "index"})
STRING_ITEM_PARAMS = frozenset({"item_id", "item_name"})
MONEY_EVENTS = frozenset({"purchase", "refund"})
CONSENT_VALUES = ("GRANTED", "DENIED")

_NAME_CHARS = re.compile(r"[A-Za-z0-9_]*")
_CLIENT_ID = re.compile(r"[0-9]+\.[0-9]+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_COUNTRY = re.compile(r"[A-Za-z]{2}")


@dataclass(frozen=True)
class Issue:
    """One validation message."""

    code: str
    description: str
    field_path: str | None = None

    def as_message(self) -> dict[str, str]:
        message = {"description": self.description, "validationCode": self.code}
        if self.field_path is not None:
            message = {"fieldPath": self.field_path, **message}
        return message


class PayloadError(ValueError):
    """The request is malformed: Google rejects it as a whole."""

    def __init__(self, description: str, code: str = "VALUE_INVALID") -> None:
        super().__init__(description)
        self.issue = Issue(code, description)


# -- atoms shared with the production endpoint -----------------------------------------

def name_problem(name: str, limit: int) -> str | None:
    """Why ``name`` is not a valid event/parameter/user-property name, or None."""
    if not name or not name[0].isascii() or not name[0].isalpha():
        return "Names must start with an alphabetic character."
    if not _NAME_CHARS.fullmatch(name):
        return "Names may contain only alphanumeric characters and underscores."
    if len(name) > limit:
        return f"Names must be {limit} characters or fewer."
    return None


def reserved_event(name: str, stream: str = "web") -> bool:
    return name in RESERVED_EVENT_NAMES or (stream != "app" and name in APP_ONLY_EVENT_NAMES)


def reserved_param(name: str) -> bool:
    return name in RESERVED_PARAM_NAMES or name.startswith(RESERVED_PARAM_PREFIXES)


def reserved_user_property(name: str) -> bool:
    return name in RESERVED_USER_PROPERTY_NAMES or name.startswith(RESERVED_USER_PROPERTY_PREFIXES)


def value_limit(key: str) -> int | None:
    """Longest string value a parameter may carry (None: exempt)."""
    return None if key in LENGTH_EXEMPT else LONG_VALUES.get(key, MAX_VALUE)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def micros(value: Any) -> int | None:
    """A proto int64 from JSON: an integer, an integral float or a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    return None


def valid_currency(value: Any) -> bool:
    return isinstance(value, str) and bool(_CURRENCY.fullmatch(value))


def valid_client_id(value: str) -> bool:
    """Two positive numbers joined by a period (§1.3)."""
    return bool(_CLIENT_ID.fullmatch(value))


def custom_item_params(item: dict[str, Any]) -> list[str]:
    return [key for key in item if key not in STANDARD_ITEM_PARAMS]


# -- parsing ---------------------------------------------------------------------------

_STRING, _BOOL, _INT64, _STRUCT, _SCALAR = "a string", "a boolean", "an integer", "an object", "a value"


@dataclass(frozen=True)
class _Repeated:
    """An array; ``single_ok``: one value may stand for a one-element array (§7.2)."""

    item: Any
    single_ok: bool = False


@dataclass(frozen=True)
class _MapOf:
    value: Any


@dataclass(frozen=True)
class _Enum:
    values: tuple[str, ...]


_EVENT = {"name": _STRING, "params": _STRUCT, "timestamp_micros": _INT64}
_USER_PROPERTY = {"value": _SCALAR, "timestamp_micros": _INT64}
_ADDRESS = {key: _STRING for key in ("sha256_first_name", "sha256_last_name", "sha256_street", "city", "region",
                                     "postal_code", "country")}
_USER_DATA = {"sha256_email_address": _Repeated(_STRING, True), "sha256_phone_number": _Repeated(_STRING, True),
              "address": _Repeated(_ADDRESS, True)}
_CONSENT = {"ad_user_data": _STRING, "ad_personalization": _STRING}
_USER_LOCATION = {key: _STRING for key in ("city", "region_id", "country_id", "subcontinent_id", "continent_id")}
_DEVICE = {key: _STRING for key in ("category", "language", "screen_resolution", "operating_system",
                                    "operating_system_version", "model", "brand", "browser", "browser_version")}
_REQUEST = {
    "client_id": _STRING, "app_instance_id": _STRING, "user_id": _STRING, "timestamp_micros": _INT64,
    "user_properties": _MapOf(_USER_PROPERTY), "user_data": _USER_DATA, "consent": _CONSENT,
    "non_personalized_ads": _BOOL, "user_location": _USER_LOCATION, "ip_override": _STRING, "device": _DEVICE,
    "user_agent": _STRING, "validation_behavior": _Enum((RELAXED, STRICT)), "events": _Repeated(_EVENT)}
_PREFIX = "Unable to parse Measurement Protocol JSON payload."


def parse(raw: bytes) -> dict[str, Any]:
    """The request body as a dict, or :class:`PayloadError` if Google would call it malformed."""
    if len(raw) >= MAX_BODY_BYTES:
        raise PayloadError(f"Request body of {len(raw)} bytes exceeds the limit of 130kB.", "VALUE_OUT_OF_BOUNDS")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"{_PREFIX} {exc}") from None
    if not isinstance(body, dict):
        raise PayloadError(f"{_PREFIX} Expected a JSON object.")
    _check_object(body, _REQUEST, "")
    return body


def _where(parent: str, field: str) -> str:
    return f"({parent}) {field}" if parent else field


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: str) -> None:
    for field, item in value.items():
        if field not in schema:
            raise PayloadError(f"{_PREFIX} {_where(path, field)}: Cannot find field.")
        _check_value(item, schema[field], path, field)


def _check_value(value: Any, spec: Any, parent: str, field: str) -> None:
    if value is None:
        return  # proto3 JSON: null means "not set"
    path = f"{parent}.{field}" if parent else field

    def invalid(expected: str) -> PayloadError:
        return PayloadError(f"{_PREFIX} {_where(parent, field)}: Invalid value, expected {expected}.")

    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise invalid(_STRUCT)
        _check_object(value, spec, path)
    elif isinstance(spec, _Repeated):
        values = value if isinstance(value, list) else [value] if spec.single_ok else None
        if values is None:
            raise invalid("an array")
        for index, item in enumerate(values):
            _check_value(item, spec.item, parent, f"{field}[{index}]")
    elif isinstance(spec, _MapOf):
        if not isinstance(value, dict):
            raise invalid(_STRUCT)
        for key, item in value.items():
            _check_value(item, spec.value, path, key)
    elif isinstance(spec, _Enum):
        if value not in spec.values:
            raise invalid("one of " + ", ".join(spec.values))
    elif spec == _STRING and not isinstance(value, str):
        raise invalid(_STRING)
    elif spec == _BOOL and not isinstance(value, bool):
        raise invalid(_BOOL)
    elif spec == _INT64 and micros(value) is None:
        raise invalid(_INT64)
    elif spec == _STRUCT and not isinstance(value, dict):
        raise invalid(_STRUCT)
    elif spec == _SCALAR and not is_scalar(value):
        raise invalid("a string or a number")


# -- checking --------------------------------------------------------------------------

def validate(raw: bytes, now_us: int, *, stream: str = "web", behavior: str | None = None) -> list[dict[str, str]]:
    """The ``validationMessages`` Google's validation server returns for ``raw``.

    ``behavior`` overrides the body's ``validation_behavior`` (the request log uses STRICT to
    show what a strict check would have said about a production request).
    """
    try:
        body = parse(raw)
    except PayloadError as exc:
        return [exc.issue.as_message()]
    return [issue.as_message() for issue in check(body, now_us, stream=stream, behavior=behavior)]


def check(body: dict[str, Any], now_us: int, *, stream: str = "web", behavior: str | None = None) -> list[Issue]:
    """Issues in a parsed body (see the module docstring for RELAXED vs ENFORCE_RECOMMENDATIONS)."""
    strict = (behavior or body.get("validation_behavior") or RELAXED) == STRICT
    return _Checker(now_us, strict, stream).request(body)


class _Checker:
    def __init__(self, now_us: int, strict: bool, stream: str) -> None:
        self.now_us, self.strict, self.stream = now_us, strict, stream

    def request(self, body: dict[str, Any]) -> list[Issue]:
        issues = self._identity(body)
        if "timestamp_micros" in body:
            issues += self._timestamp(body["timestamp_micros"], "timestamp_micros")
        events = body.get("events") or []
        if not events and not body.get("user_data"):
            # "You can send a request that contains only user data, without events." (§7.2)
            issues.append(Issue("VALUE_REQUIRED", "Measurement requires at least one event.", "events"))
        if len(events) > MAX_EVENTS:
            issues.append(Issue("EXCEEDED_MAX_ENTITIES", f"A request can have a maximum of {MAX_EVENTS} events; "
                                                         f"this one has {len(events)}.", "events"))
        for index, event in enumerate(events):
            issues += self._event(event, index)
        issues += self._user_properties(body.get("user_properties") or {})
        issues += self._consent(body.get("consent") or {})
        issues += self._user_data(body)
        return issues

    def _identity(self, body: dict[str, Any]) -> list[Issue]:
        field = "app_instance_id" if self.stream == "app" else "client_id"
        device_id = body.get(field)
        issues = []
        if not device_id:
            issues.append(Issue("VALUE_REQUIRED", f"Measurement requires a {field}.", field))
        elif self.strict and field == "client_id" and not valid_client_id(device_id):
            issues.append(Issue("VALUE_INVALID", f"client_id [{device_id}] has invalid format. It should be in "
                                                 "<number>.<number> format.", "client_id"))
        user_id = body.get("user_id")
        if user_id is not None and len(user_id) > MAX_USER_ID:
            issues.append(Issue("VALUE_OUT_OF_BOUNDS", f"user_id is {len(user_id)} characters long; the maximum "
                                                       f"is {MAX_USER_ID}.", "user_id"))
        return issues

    def _timestamp(self, value: Any, path: str) -> list[Issue]:
        at = micros(value)
        if not self.strict or at is None:
            return []  # RELAXED accepts it and clamps late ones to 72 hours ago (§3.4)
        if at > self.now_us + FUTURE_GRACE_US:
            return [Issue("VALUE_OUT_OF_BOUNDS", f"{path} [{at}] is in the future.", path)]
        if at < self.now_us - BACKDATE_LIMIT_US:
            return [Issue("VALUE_OUT_OF_BOUNDS", f"{path} [{at}] is more than 72 hours in the past.", path)]
        return []

    def _event(self, event: dict[str, Any], index: int) -> list[Issue]:
        path = f"events[{index}]"
        issues = []
        name = event.get("name")
        if not name:
            issues.append(Issue("VALUE_REQUIRED", f"Event at index: [{index}] has no name.", f"{path}.name"))
        elif (problem := name_problem(name, MAX_NAME)) is not None:
            issues.append(Issue("NAME_INVALID", f"Event at index: [{index}] has invalid name [{name}]. {problem}",
                                "events"))
        elif reserved_event(name, self.stream):
            issues.append(Issue("NAME_RESERVED", f"Event at index: [{index}] has name [{name}] which is reserved.",
                                "events"))
        if "timestamp_micros" in event:
            issues += self._timestamp(event["timestamp_micros"], f"{path}.timestamp_micros")
        params = event.get("params") or {}
        if len(params) > MAX_PARAMS:
            issues.append(Issue("EXCEEDED_MAX_ENTITIES", f"Event at index: [{index}] has {len(params)} parameters; "
                                                         f"the maximum is {MAX_PARAMS}.", f"{path}.params"))
        for key, value in params.items():
            issues += self._param(key, value, f"{path}.params.{key}", index)
        issues += self._money(name, params, path, index)
        return issues

    def _param(self, key: str, value: Any, path: str, index: int) -> list[Issue]:
        if (problem := name_problem(key, MAX_NAME)) is not None:
            return [Issue("NAME_INVALID", f"Event at index: [{index}] has invalid parameter name [{key}]. "
                                          f"{problem}", path)]
        if reserved_param(key):
            return [Issue("NAME_RESERVED", f"Event at index: [{index}] has parameter name [{key}] which is "
                                           "reserved.", path)]
        if key == "items":
            return self._items(value, path, index)
        limit = value_limit(key)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            return [Issue("VALUE_OUT_OF_BOUNDS", f"Event at index: [{index}] has parameter [{key}] with a value "
                                                 f"of {len(value)} characters; the maximum is {limit}.", path)]
        if self.strict and (problem := _type_problem(key, value, NUMBER_PARAMS, STRING_PARAMS)):
            return [Issue("VALUE_INVALID", f"Event at index: [{index}] has parameter [{key}] {problem}.", path)]
        return []

    def _items(self, items: Any, path: str, index: int) -> list[Issue]:
        if not isinstance(items, list):
            return [Issue("VALUE_INVALID", f"Event at index: [{index}] has items that are not an array.", path)]
        issues = []
        for number, item in enumerate(items):
            item_path = f"{path}[{number}]"
            if not isinstance(item, dict):
                issues.append(Issue("VALUE_INVALID", f"Item at index [{number}] is not an object.", item_path))
                continue
            if not item.get("item_id") and not item.get("item_name"):
                issues.append(Issue("VALUE_REQUIRED", f"Item at index [{number}] requires item_id or item_name.",
                                    item_path))
            custom = custom_item_params(item)
            if len(custom) > MAX_CUSTOM_ITEM_PARAMS:
                issues.append(Issue("EXCEEDED_MAX_ENTITIES", f"Item at index [{number}] has {len(custom)} custom "
                                                             f"parameters; the maximum is {MAX_CUSTOM_ITEM_PARAMS}.",
                                    item_path))
            for key, value in item.items():
                issues += self._item_param(key, value, f"{item_path}.{key}", number)
        return issues

    def _item_param(self, key: str, value: Any, path: str, number: int) -> list[Issue]:
        if (problem := name_problem(key, MAX_NAME)) is not None:
            return [Issue("NAME_INVALID", f"Item at index [{number}] has invalid parameter name [{key}]. {problem}",
                          path)]
        if reserved_param(key):
            return [Issue("NAME_RESERVED", f"Item at index [{number}] has parameter name [{key}] which is "
                                           "reserved.", path)]
        if isinstance(value, str) and len(value) > MAX_VALUE:
            return [Issue("VALUE_OUT_OF_BOUNDS", f"Item at index [{number}] has parameter [{key}] with a value of "
                                                 f"{len(value)} characters; the maximum is {MAX_VALUE}.", path)]
        if self.strict and (problem := _type_problem(key, value, NUMBER_ITEM_PARAMS, STRING_ITEM_PARAMS)):
            return [Issue("VALUE_INVALID", f"Item at index [{number}] has parameter [{key}] {problem}.", path)]
        return []

    def _money(self, name: Any, params: dict[str, Any], path: str, index: int) -> list[Issue]:
        issues = []
        if params.get("value") is not None:
            currency = params.get("currency")
            if currency is None or currency == "":
                issues.append(Issue("VALUE_REQUIRED", f"Event at index: [{index}] sets value without currency; "
                                                      "currency is required when value is set.",
                                    f"{path}.params.currency"))
            elif not valid_currency(currency):
                issues.append(Issue("VALUE_INVALID", f"Event at index: [{index}] has currency [{currency}], which "
                                                     "is not a three-letter ISO 4217 code.",
                                    f"{path}.params.currency"))
        if name in MONEY_EVENTS:
            transaction_id = params.get("transaction_id")
            if transaction_id is None or (isinstance(transaction_id, str) and not transaction_id.strip()):
                issues.append(Issue("VALUE_REQUIRED", f"Event at index: [{index}] ({name}) requires a non-empty "
                                                      "transaction_id.", f"{path}.params.transaction_id"))
        return issues

    def _user_properties(self, properties: dict[str, Any]) -> list[Issue]:
        issues = []
        if len(properties) > MAX_USER_PROPERTIES:
            issues.append(Issue("EXCEEDED_MAX_ENTITIES", f"A request can have a maximum of {MAX_USER_PROPERTIES} "
                                                         f"user properties; this one has {len(properties)}.",
                                "user_properties"))
        for key, entry in properties.items():
            path = f"user_properties.{key}"
            if (problem := name_problem(key, MAX_USER_PROPERTY_NAME)) is not None:
                issues.append(Issue("NAME_INVALID", f"User property has invalid name [{key}]. {problem}", path))
            elif reserved_user_property(key):
                issues.append(Issue("NAME_RESERVED", f"User property name [{key}] is reserved.", path))
            entry = entry or {}
            value = entry.get("value")
            if isinstance(value, str) and len(value) > MAX_USER_PROPERTY_VALUE:
                issues.append(Issue("VALUE_OUT_OF_BOUNDS", f"User property [{key}] has a value of {len(value)} "
                                                           f"characters; the maximum is {MAX_USER_PROPERTY_VALUE}.",
                                    path))
            if "timestamp_micros" in entry:
                issues += self._timestamp(entry["timestamp_micros"], f"{path}.timestamp_micros")
        return issues

    def _consent(self, consent: dict[str, Any]) -> list[Issue]:
        return [Issue("VALUE_INVALID", f"consent.{key} [{value}] must be one of GRANTED, DENIED.", f"consent.{key}")
                for key, value in consent.items() if value is not None and value not in CONSENT_VALUES]

    def _user_data(self, body: dict[str, Any]) -> list[Issue]:
        user_data = body.get("user_data") or {}
        issues = []
        for key, limit in (("sha256_email_address", MAX_EMAILS), ("sha256_phone_number", MAX_PHONES)):
            values = _as_list(user_data.get(key))
            if len(values) > limit:
                issues.append(Issue("EXCEEDED_MAX_ENTITIES", f"user_data.{key} can have at most {limit} values.",
                                    f"user_data.{key}"))
            if any(not _SHA256_HEX.fullmatch(value) for value in values):
                issues.append(Issue("VALUE_INVALID", f"user_data.{key} must hold SHA-256 hashes, hex-encoded "
                                                     "(64 hexadecimal characters).", f"user_data.{key}"))
        addresses = _as_list(user_data.get("address"))
        if len(addresses) > MAX_ADDRESSES:
            issues.append(Issue("EXCEEDED_MAX_ENTITIES", f"user_data.address can have at most {MAX_ADDRESSES} "
                                                         "values.", "user_data.address"))
        for number, address in enumerate(addresses):
            for key, value in address.items():
                path = f"user_data.address[{number}].{key}"
                if key.startswith("sha256") and value is not None and not _SHA256_HEX.fullmatch(value):
                    issues.append(Issue("VALUE_INVALID", f"{path} must be a SHA-256 hash, hex-encoded.", path))
                elif key == "country" and value is not None and not _COUNTRY.fullmatch(value):
                    issues.append(Issue("VALUE_INVALID", f"{path} must be an ISO 3166-1 alpha-2 code.", path))
        if self.strict and user_data and not body.get("user_id"):
            issues.append(Issue("VALUE_REQUIRED", "user_id is recommended whenever user_data is provided.",
                                "user_id"))
        return issues


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [item for item in value if item is not None] if isinstance(value, list) else [value]


def _type_problem(key: str, value: Any, numbers: frozenset[str], strings: frozenset[str]) -> str | None:
    if key in numbers and not is_number(value):
        return "must be a number"
    if key in strings and not isinstance(value, str):
        return "must be a string"
    if not is_scalar(value):
        return "must be a string or a number"
    return None
