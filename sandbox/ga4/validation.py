"""The Measurement Protocol validation server's rules (``/debug/mp/collect``).

Source: shared/reference/ga4-measurement-protocol.md — §3 (limits, reserved names), §3.4
(72-hour window), §4 (purchase/refund), §6.1 (response shape, codes, RELAXED vs
ENFORCE_RECOMMENDATIONS), §7.2 (user_data). Messages follow Google's wording where it is
known ("Event at index: [0] has invalid name [...]").
"""
from __future__ import annotations

import re
from typing import Any

KNOWN_FIELDS = {"client_id", "app_instance_id", "user_id", "timestamp_micros", "user_properties", "user_data",
                "consent", "non_personalized_ads", "user_location", "ip_override", "device", "user_agent",
                "validation_behavior", "events"}
RESERVED_EVENT_NAMES = {
    "ad_activeview", "ad_click", "ad_exposure", "ad_query", "ad_reward", "adunit_exposure", "app_clear_data",
    "app_exception", "app_install", "app_remove", "app_store_refund", "app_update", "app_upgrade",
    "dynamic_link_app_open", "dynamic_link_app_update", "dynamic_link_first_open", "error", "firebase_campaign",
    "firebase_in_app_message_action", "firebase_in_app_message_dismiss", "firebase_in_app_message_impression",
    "first_open", "first_visit", "notification_dismiss", "notification_foreground", "notification_open",
    "notification_receive", "notification_send", "os_update", "session_start", "user_engagement",
    "ad_impression", "in_app_purchase", "screen_view"}  # the last three: app streams only
RESERVED_PARAM_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")
RESERVED_USER_PROPERTIES = {"first_open_time", "first_visit_time", "last_deep_link_referrer", "user_id",
                            "first_open_after_install"}
RESERVED_USER_PROPERTY_PREFIXES = ("_", "firebase_", "ga_", "google_")
LONG_PARAMS = {"page_title": 300, "page_referrer": 420, "page_location": 1000}
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
SEVENTY_TWO_HOURS_US = 72 * 3600 * 1_000_000
MAX_BODY = 130 * 1024


def message(code: str, description: str, field_path: str | None = None) -> dict[str, str]:
    entry = {"description": description, "validationCode": code}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def validate(raw: bytes, now_us: int) -> list[dict[str, str]]:
    """Validation messages for a request body, as ``/debug/mp/collect`` returns them."""
    import json

    if len(raw) >= MAX_BODY:
        return [message("VALUE_OUT_OF_BOUNDS", f"Request body size {len(raw)} exceeds the 130kB limit.")]
    try:
        body = json.loads(raw)
    except ValueError:
        return [message("VALUE_INVALID", "Unable to parse Measurement Protocol JSON payload.")]
    if not isinstance(body, dict):
        return [message("VALUE_INVALID", "Unable to parse Measurement Protocol JSON payload. Expected an object.")]
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        return [message("VALUE_INVALID", f"Unable to parse Measurement Protocol JSON payload. ({unknown[0]}) "
                                         f"names: Cannot find field.")]
    strict = body.get("validation_behavior") == "ENFORCE_RECOMMENDATIONS"
    messages: list[dict[str, str]] = []
    client_id = body.get("client_id")
    if client_id is None and body.get("app_instance_id") is None:
        messages.append(message("VALUE_REQUIRED", "Measurement requires a client_id.", "client_id"))
    elif client_id is not None and (not isinstance(client_id, str) or
                                    (strict and not re.fullmatch(r"\d+\.\d+", client_id))):
        messages.append(message("VALUE_INVALID", f"client_id [{client_id}] has invalid format. It should be in "
                                                 "<number>.<number> format.", "client_id"))
    user_id = body.get("user_id")
    if user_id is not None and (not isinstance(user_id, str) or len(user_id) > 256):
        messages.append(message("VALUE_OUT_OF_BOUNDS", "user_id exceeds 256 characters.", "user_id"))
    if "timestamp_micros" in body:
        messages += _timestamp(body["timestamp_micros"], "timestamp_micros", now_us, strict)
    events = body.get("events")
    if not isinstance(events, list) or not events:
        messages.append(message("VALUE_REQUIRED", "Measurement requires at least one event.", "events"))
        events = []
    if len(events) > 25:
        messages.append(message("EXCEEDED_MAX_ENTITIES", f"Measurement has {len(events)} events; the maximum is 25.",
                                "events"))
    for index, event in enumerate(events[:25]):
        messages += _event(event, index, now_us, strict)
    messages += _user_properties(body.get("user_properties"))
    messages += _consent_and_user_data(body)
    return messages


def _timestamp(value: Any, path: str, now_us: int, strict: bool) -> list[dict[str, str]]:
    if not isinstance(value, int) or isinstance(value, bool):
        return [message("VALUE_INVALID", f"{path} must be an integer number of microseconds.", path)]
    if value > now_us + 60_000_000:
        return [message("VALUE_INVALID", f"{path} is in the future.", path)]
    if strict and value < now_us - SEVENTY_TWO_HOURS_US:
        return [message("VALUE_OUT_OF_BOUNDS", f"{path} is more than 72 hours in the past.", path)]
    return []


def _event(event: Any, index: int, now_us: int, strict: bool) -> list[dict[str, str]]:
    path = f"events[{index}]"
    if not isinstance(event, dict):
        return [message("VALUE_INVALID", f"Event at index: [{index}] is not an object.", path)]
    messages = []
    name = event.get("name")
    if not isinstance(name, str) or not name:
        messages.append(message("VALUE_REQUIRED", f"Event at index: [{index}] has no name.", f"{path}.name"))
    elif not NAME.match(name):
        messages.append(message("NAME_INVALID", f"Event at index: [{index}] has invalid name [{name}]. Names must "
                                                "start with an alphabetic character.", "events"))
    elif len(name) > 40:
        messages.append(message("NAME_INVALID", f"Event at index: [{index}] has invalid name [{name}]. Names must "
                                                "be 40 characters or fewer.", "events"))
    elif name in RESERVED_EVENT_NAMES:
        messages.append(message("NAME_RESERVED", f"Event at index: [{index}] has name [{name}] which is reserved.",
                                "events"))
    if "timestamp_micros" in event:
        messages += _timestamp(event["timestamp_micros"], f"{path}.timestamp_micros", now_us, strict)
    params = event.get("params", {})
    if not isinstance(params, dict):
        return messages + [message("VALUE_INVALID", "params must be an object.", f"{path}.params")]
    if len(params) > 25:
        messages.append(message("EXCEEDED_MAX_ENTITIES", f"Event at index: [{index}] has {len(params)} parameters; "
                                                         "the maximum is 25.", f"{path}.params"))
    for key, value in params.items():
        messages += _param(key, value, f"{path}.params.{key}", index, strict)
    if "value" in params:
        currency = params.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            messages.append(message("VALUE_REQUIRED", f"Event at index: [{index}] sets value without a valid "
                                                      "currency.", f"{path}.params.currency"))
    if name in ("purchase", "refund") and not (isinstance(params.get("transaction_id"), str)
                                               and params["transaction_id"].strip()):
        messages.append(message("VALUE_REQUIRED", f"Event at index: [{index}] ({name}) requires a non-empty "
                                                  "transaction_id.", f"{path}.params.transaction_id"))
    return messages


def _param(key: str, value: Any, path: str, index: int, strict: bool) -> list[dict[str, str]]:
    if not NAME.match(key) or len(key) > 40:
        return [message("NAME_INVALID", f"Event at index: [{index}] has invalid parameter name [{key}].", path)]
    if key == "firebase_conversion" or key.startswith(RESERVED_PARAM_PREFIXES):
        return [message("NAME_RESERVED", f"Event at index: [{index}] has reserved parameter name [{key}].", path)]
    if key == "items":
        if not isinstance(value, list):
            return [message("VALUE_INVALID", "items must be a list.", path)]
        return [message("VALUE_REQUIRED", f"Item at index [{n}] needs item_id or item_name.", f"{path}[{n}]")
                for n, item in enumerate(value) if not (isinstance(item, dict) and (item.get("item_id")
                                                                                     or item.get("item_name")))]
    if isinstance(value, str):
        limit = LONG_PARAMS.get(key, 100)
        if key not in ("session_id", "session_number") and len(value) > limit:
            return [message("VALUE_OUT_OF_BOUNDS", f"Parameter [{key}] value is {len(value)} characters; the "
                                                   f"maximum is {limit}.", path)]
        if strict and key == "value":
            return [message("VALUE_INVALID", "Parameter [value] must be a number.", path)]
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        if strict:
            return [message("VALUE_INVALID", f"Parameter [{key}] has an unsupported type.", path)]
    return []


def _user_properties(properties: Any) -> list[dict[str, str]]:
    if properties is None:
        return []
    if not isinstance(properties, dict):
        return [message("VALUE_INVALID", "user_properties must be an object.", "user_properties")]
    messages = []
    if len(properties) > 25:
        messages.append(message("EXCEEDED_MAX_ENTITIES", "More than 25 user properties.", "user_properties"))
    for key, entry in properties.items():
        path = f"user_properties.{key}"
        if not NAME.match(key) or len(key) > 24:
            messages.append(message("NAME_INVALID", f"User property name [{key}] is invalid.", path))
        elif key in RESERVED_USER_PROPERTIES or key.startswith(RESERVED_USER_PROPERTY_PREFIXES):
            messages.append(message("NAME_RESERVED", f"User property name [{key}] is reserved.", path))
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(value, str) and len(value) > 36:
            messages.append(message("VALUE_OUT_OF_BOUNDS", f"User property [{key}] value exceeds 36 characters.",
                                    path))
    return messages


def _consent_and_user_data(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = []
    consent = body.get("consent")
    if consent is not None:
        for key, value in (consent.items() if isinstance(consent, dict) else []):
            if key not in ("ad_user_data", "ad_personalization"):
                messages.append(message("NAME_INVALID", f"Unknown consent field [{key}].", f"consent.{key}"))
            elif value not in ("GRANTED", "DENIED"):
                messages.append(message("VALUE_INVALID", f"consent.{key} must be GRANTED or DENIED.", f"consent.{key}"))
    user_data = body.get("user_data")
    if isinstance(user_data, dict):
        for key, limit in (("sha256_email_address", 3), ("sha256_phone_number", 3), ("address", 2)):
            values = user_data.get(key)
            if values is None:
                continue
            values = values if isinstance(values, list) else [values]
            if len(values) > limit:
                messages.append(message("EXCEEDED_MAX_ENTITIES", f"user_data.{key} has more than {limit} values.",
                                        f"user_data.{key}"))
            if key.startswith("sha256") and any(not (isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v))
                                                for v in values):
                messages.append(message("VALUE_INVALID", f"user_data.{key} must hold SHA-256 hex digests.",
                                        f"user_data.{key}"))
    return messages
