"""closedloop's own GA4 Measurement Protocol client: local validation and a careful sender.

Production GA4 answers 2xx to everything and silently drops what it does not like, so every
request is checked here against the documented limits before it leaves (see
``shared/reference/ga4-measurement-protocol.md`` §3 and §10): names, lengths, counts,
reserved names and prefixes, the ``client_id`` format, currency with value, transaction ids,
body size. Requests are retried only on network errors and 5xx; a 4xx means the request
itself is wrong and is never replayed. The ``api_secret`` rides in the query string, so every
URL that could reach a log or an error is rendered without it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import requests

from adapters.errors import DeliveryUncertain, RemoteError, TransientError
from adapters.http import CallCounter, connection_problem, make_session, never_connected
from adapters.retry import RetryPolicy

MAX_EVENTS = 25
MAX_PARAMS = 25
MAX_USER_PROPERTIES = 25
MAX_BODY_BYTES = 130_000
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
USER_PROPERTY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,23}$")
CLIENT_ID = re.compile(r"^[0-9]+\.[0-9]+$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# [REF] "Reserved names"; plus web event names the GA UI reserves (support answer 13316687).
RESERVED_EVENTS = frozenset("""ad_activeview ad_click ad_exposure ad_impression ad_query ad_reward adunit_exposure
    app_background app_clear_data app_exception app_install app_remove app_store_refund
    app_store_subscription_cancel app_store_subscription_convert app_store_subscription_renew app_update
    app_upgrade dynamic_link_app_open dynamic_link_app_update dynamic_link_first_open error firebase_campaign
    firebase_in_app_message_action firebase_in_app_message_dismiss firebase_in_app_message_impression first_open
    first_visit in_app_purchase notification_dismiss notification_foreground notification_open
    notification_receive notification_send os_update screen_view session_start session_start_with_rollout
    user_engagement page_view click scroll form_start form_submit file_download view_search_results""".split())
RESERVED_PARAM_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")
RESERVED_PARAMS = frozenset({"firebase_conversion"})
RESERVED_USER_PROPERTIES = frozenset({"first_open_time", "first_visit_time", "last_deep_link_referrer", "user_id",
                                      "first_open_after_install"})
RESERVED_USER_PROPERTY_PREFIXES = ("_", "firebase_", "ga_", "google_")
LONG_VALUE_PARAMS = {"page_title": 300, "page_referrer": 420, "page_location": 1000}
EXEMPT_LENGTH_PARAMS = {"session_id", "session_number"}
MONEY_EVENTS = {"purchase", "refund"}
TOP_LEVEL_KEYS = {"client_id", "app_instance_id", "user_id", "timestamp_micros", "user_properties", "user_data",
                  "consent", "non_personalized_ads", "user_location", "ip_override", "device", "user_agent",
                  "validation_behavior", "events"}
# Never send what looks like personal data: emails and phone numbers in any value.
EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
# A phone: "+" and 8-15 digits, or digits with phone separators — but not a bare id or a date.
PHONE_LIKE = re.compile(r"\+[\d\s().-]{8,20}|(?=.*[\s()])[\d\s().-]{9,20}")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def validate_request(body: dict[str, Any]) -> list[Problem]:
    """Every reason GA4 would reject or silently drop (part of) this request."""
    problems: list[Problem] = []
    unknown = set(body) - TOP_LEVEL_KEYS
    if unknown:
        problems.append(Problem("body", f"unknown top-level field(s): {', '.join(sorted(unknown))}"))
    client_id = body.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
        problems.append(Problem("client_id", "must be two positive numbers joined by a dot (from the _ga cookie)"))
    user_id = body.get("user_id")
    if user_id is not None and (not isinstance(user_id, str) or not user_id or len(user_id) > 256
                                or _looks_personal(user_id)):
        problems.append(Problem("user_id", "must be an opaque string of at most 256 characters"))
    events = body.get("events")
    if not isinstance(events, list) or not events:
        problems.append(Problem("events", "at least one event is required"))
        events = []
    if len(events) > MAX_EVENTS:
        problems.append(Problem("events", f"at most {MAX_EVENTS} events per request"))
    for index, event in enumerate(events):
        problems.extend(validate_event(event, f"events[{index}]"))
    problems.extend(_validate_user_properties(body.get("user_properties")))
    problems.extend(_validate_consent_and_user_data(body))
    size = len(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    if size >= MAX_BODY_BYTES:
        problems.append(Problem("body", f"{size} bytes; the limit is under {MAX_BODY_BYTES}"))
    return problems


def validate_event(event: Any, path: str = "event") -> list[Problem]:
    """Problems with one event object ``{"name", "params", "timestamp_micros"?}``."""
    if not isinstance(event, dict):
        return [Problem(path, "must be an object")]
    problems: list[Problem] = []
    name = event.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(Problem(f"{path}.name", "must start with a letter, use only letters, digits and "
                                                "underscores, and be at most 40 characters"))
    elif name in RESERVED_EVENTS:
        problems.append(Problem(f"{path}.name", f"'{name}' is a reserved event name"))
    if "timestamp_micros" in event and not isinstance(event["timestamp_micros"], int):
        problems.append(Problem(f"{path}.timestamp_micros", "must be an integer number of microseconds"))
    params = event.get("params", {})
    if not isinstance(params, dict):
        return problems + [Problem(f"{path}.params", "must be an object")]
    if len(params) > MAX_PARAMS:
        problems.append(Problem(f"{path}.params", f"{len(params)} parameters; at most {MAX_PARAMS}"))
    for key, value in params.items():
        problems.extend(_validate_param(key, value, f"{path}.params.{key}"))
    if "value" in params:
        if not isinstance(params["value"], (int, float)) or isinstance(params["value"], bool):
            problems.append(Problem(f"{path}.params.value", "must be a number (not a string)"))
        if not isinstance(params.get("currency"), str) or not CURRENCY.match(params.get("currency", "")):
            problems.append(Problem(f"{path}.params.currency", "a three-letter ISO 4217 currency is required "
                                                               "when value is set"))
    if name in MONEY_EVENTS:
        transaction = params.get("transaction_id")
        if not isinstance(transaction, str) or not transaction.strip():
            problems.append(Problem(f"{path}.params.transaction_id", f"{name} needs a non-empty transaction_id"))
    for index, item in enumerate(params.get("items", []) if isinstance(params.get("items"), list) else []):
        if not isinstance(item, dict) or not (item.get("item_id") or item.get("item_name")):
            problems.append(Problem(f"{path}.params.items[{index}]", "needs item_id or item_name"))
    return problems


def _validate_param(key: str, value: Any, path: str) -> list[Problem]:
    if not NAME.match(key):
        return [Problem(path, "parameter names start with a letter, use letters, digits, underscores, "
                              "at most 40 characters")]
    if key in RESERVED_PARAMS or key.startswith(RESERVED_PARAM_PREFIXES):
        return [Problem(path, f"'{key}' is reserved (no _, firebase_, ga_, google_ or gtag. prefixes)")]
    if key == "items":
        return [] if isinstance(value, list) else [Problem(path, "items must be a list")]
    if isinstance(value, str):
        limit = LONG_VALUE_PARAMS.get(key, 100)
        if key not in EXEMPT_LENGTH_PARAMS and len(value) > limit:
            return [Problem(path, f"{len(value)} characters; at most {limit}")]
        if _looks_personal(value):
            return [Problem(path, "looks like an email address or phone number; personal data must not be sent")]
    elif not isinstance(value, (int, float)) or isinstance(value, bool):
        return [Problem(path, "must be a string or a number")]
    return []


def _validate_user_properties(properties: Any) -> list[Problem]:
    if properties is None:
        return []
    if not isinstance(properties, dict):
        return [Problem("user_properties", "must be an object")]
    problems = []
    if len(properties) > MAX_USER_PROPERTIES:
        problems.append(Problem("user_properties", f"at most {MAX_USER_PROPERTIES} user properties"))
    for key, entry in properties.items():
        path = f"user_properties.{key}"
        if not USER_PROPERTY_NAME.match(key) or key in RESERVED_USER_PROPERTIES \
                or key.startswith(RESERVED_USER_PROPERTY_PREFIXES):
            problems.append(Problem(path, "invalid or reserved user property name (at most 24 characters)"))
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(value, str) and len(value) > 36:
            problems.append(Problem(path, "user property values are at most 36 characters"))
    return problems


def _validate_consent_and_user_data(body: dict[str, Any]) -> list[Problem]:
    problems = []
    consent = body.get("consent")
    if consent is not None:
        for key, value in (consent.items() if isinstance(consent, dict) else [("consent", consent)]):
            if key not in ("ad_user_data", "ad_personalization") or value not in ("GRANTED", "DENIED"):
                problems.append(Problem(f"consent.{key}", "must be ad_user_data/ad_personalization: GRANTED or DENIED"))
    user_data = body.get("user_data")
    if user_data is not None:
        if not isinstance(consent, dict) or consent.get("ad_user_data") != "GRANTED":
            problems.append(Problem("user_data", "only sent with consent.ad_user_data = GRANTED"))
        for key in ("sha256_email_address", "sha256_phone_number"):
            values = user_data.get(key, []) if isinstance(user_data, dict) else []
            values = [values] if isinstance(values, str) else values
            if len(values) > 3 or any(not isinstance(v, str) or not SHA256_HEX.match(v) for v in values):
                problems.append(Problem(f"user_data.{key}", "at most 3 SHA-256 hex digests"))
    return problems


def _looks_personal(value: str) -> bool:
    text = value.strip()
    if EMAIL_LIKE.search(text):
        return True
    return bool(PHONE_LIKE.fullmatch(text)) and 8 <= sum(ch.isdigit() for ch in text) <= 15


class Ga4Sender:
    """POSTs Measurement Protocol requests. One instance per daemon; the HTTP session is reused.

    Calls are counted through ``counter`` (system ``"ga4"``), as the CRM adapters count theirs, so
    the daemon's metrics hear them without this module knowing the daemon."""

    def __init__(self, endpoint: str, measurement_id: str, api_secret: str, *, timeout: float = 10.0,
                 ca_bundle: str | None = None, policy: RetryPolicy | None = None,
                 session: requests.Session | None = None, counter: CallCounter | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.measurement_id = measurement_id
        self._api_secret = api_secret
        self.timeout = timeout
        self.policy = policy or RetryPolicy(attempts=4, initial_wait=1.0, max_wait=20.0, give_up_after=60.0)
        if session is None:
            session = make_session(timeout=timeout, ca_bundle=ca_bundle, counter=counter, system="ga4")
        else:
            session.trust_env = False  # REQUESTS_CA_BUNDLE must not silently replace ca_bundle
            session.verify = ca_bundle or True
            if counter is not None:
                session.hooks["response"].append(lambda response, *args, **kwargs: counter.add("ga4"))
        self.session = session
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"Ga4Sender({self.safe_url('/mp/collect')!r})"

    def safe_url(self, path: str) -> str:
        """The request URL as it may appear in logs: no api_secret."""
        return f"{self.endpoint}{path}?measurement_id={self.measurement_id}&api_secret=***"

    def send(self, body: dict[str, Any], *, idempotent: bool = True) -> None:
        """Send one request (≤ 25 events). Raises TransientError after retries, RemoteError on 4xx.

        ``idempotent=False`` (events GA4 does not de-duplicate): a connection that fails after the
        request may have left raises DeliveryUncertain at once instead of being retried."""
        self.policy.call(f"GA4 {self.safe_url('/mp/collect')}",
                         lambda: self._post("/mp/collect", body, idempotent=idempotent))

    def validate_remotely(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Ask the validation server (``/debug/mp/collect``, strict mode); returns its messages."""
        strict = {**body, "validation_behavior": "ENFORCE_RECOMMENDATIONS"}
        response = self.policy.call(f"GA4 {self.safe_url('/debug/mp/collect')}",
                                    lambda: self._post("/debug/mp/collect", strict))
        try:
            return list(response.json().get("validationMessages", []))
        except ValueError:
            raise RemoteError(f"GA4 validation server at {self.endpoint} answered something that is not JSON") from None

    def _post(self, path: str, body: dict[str, Any], *, idempotent: bool = True) -> requests.Response:
        url = f"{self.endpoint}{path}"
        try:
            response = self.session.post(url, params={"measurement_id": self.measurement_id,
                                                      "api_secret": self._api_secret},
                                         data=json.dumps(body, separators=(",", ":")),
                                         headers={"Content-Type": "application/json"}, timeout=self.timeout)
        except requests.RequestException as exc:
            if not idempotent and not never_connected(exc):
                raise DeliveryUncertain(f"GA4 {self.safe_url(path)}: {connection_problem(exc)} after the request was "
                                        "sent; GA4 may or may not have it") from None
            raise TransientError(f"GA4 {self.safe_url(path)}: {connection_problem(exc)}") from None
        self.requests_sent += 1
        if response.status_code >= 500:
            raise TransientError(f"GA4 {self.safe_url(path)} answered {response.status_code}")
        if response.status_code >= 300:
            raise RemoteError(f"GA4 {self.safe_url(path)} refused the request with {response.status_code}; "
                              "check measurement_id and endpoint (it is not retried)")
        return response

