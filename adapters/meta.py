"""Meta conversions through the Conversions API (``POST /{dataset}/events``).

Facts and sources: ``shared/reference/ad-platform-conversions.md`` §3 (M-USE, M-SRV, M-CIP,
M-FBC, M-DEDUP, M-SDK). The Offline Conversions API is gone; CRM stages go to a dataset as
server events with ``action_source = "system_generated"``.

Choice: ``facebook-business`` for the *event*, closedloop's own plumbing for the *wire*. The
SDK's ``Event``/``UserData``/``CustomData`` models and its ``Normalize`` are Meta's own rules
(email trimmed and lower-cased with no Gmail rules, phone as digits with the country code and
**no** ``+``, values that already are SHA-256 hex passed through), so closedloop does not
re-implement them. Its default transport does not fit: it posts through a process-wide
``FacebookAdsApi`` session with a class-level Graph URL, no timeout of ours, and puts the access
token in the query string. The SDK's documented extension point, ``EventRequest(http_client=...)``
(``HttpServiceInterface``), hands the request to :class:`_GraphClient` instead, which sends it on
the shared session (timeouts, CA bundle, call counting) to the configured ``graph_url``, with
the token in the body (never in a URL that could reach a log), paced and retried by the shared
policy. Only connection failures and 5xx/throttling are retried (Meta's advice): a 4xx means the
request itself is wrong. A request whose answer was lost raises
:class:`~adapters.errors.DeliveryUncertain`; the caller resends it with the same ``event_id``
while Meta still de-duplicates (48 hours, §3.6).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import requests
from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.event_request import EventRequest
from facebook_business.adobjects.serverside.http_service_interface import HttpServiceInterface
from facebook_business.adobjects.serverside.normalize import Normalize
from facebook_business.adobjects.serverside.user_data import UserData
from facebook_business.api import FacebookAdsApi
from facebook_business.session import FacebookSession

from adapters.errors import AuthError, DeliveryUncertain, RateLimited, RemoteError, TransientError
from adapters.http import CallCounter, make_session, never_connected
from adapters.phones import e164
from adapters.ratelimit import SlidingWindowLimiter
from adapters.retry import RetryPolicy

SYSTEM = "meta"
MAX_EVENTS = 1000
THROTTLE_CODES = {4, 17, 32, 613}
TOKEN_CODE = 190


def hashed_user_data(email: str | None, phone: str | None, default_region: str) -> dict[str, list[str]]:
    """Meta's ``em``/``ph`` (§3.4), normalised and hashed by the SDK's own ``Normalize``."""
    found: dict[str, list[str]] = {}
    if email and email.strip():
        try:
            found["em"] = [Normalize.normalize_field("em", email)]
        except (TypeError, ValueError):
            pass  # the SDK's message quotes the address: never let it reach a log
    number = e164(phone, default_region)
    if number:
        try:
            found["ph"] = [Normalize.normalize_field("ph", number)]
        except (TypeError, ValueError):
            pass
    return found


def fbc(fbclid: str, clicked_at_ms: int) -> str:
    """``fb.1.<click time in ms>.<fbclid>``: the fbclid verbatim, case kept (§3.4, M-FBC)."""
    return f"fb.1.{int(clicked_at_ms)}.{fbclid}"


class MetaRefused(RemoteError):
    """Meta refused the request (a 4xx other than throttling); nothing in it was processed."""

    def __init__(self, message: str, code: int | None, subcode: int | None) -> None:
        super().__init__(message)
        self.code, self.subcode = code, subcode


@dataclass
class SendResult:
    events_received: int
    fbtrace_id: str = ""
    messages: list[str] = field(default_factory=list)


class MetaSender:
    """Sends server events (closedloop's stored payloads, see :func:`event_from_payload`) to one dataset."""

    def __init__(self, dataset_id: str, access_token: str, *, graph_url: str = "https://graph.facebook.com",
                 api_version: str = "v26.0", app_secret: str | None = None, test_event_code: str = "",
                 timeout: float = 30.0, ca_bundle: str | None = None, counter: CallCounter | None = None,
                 policy: RetryPolicy | None = None, requests_per_minute: int = 200,
                 limiter: SlidingWindowLimiter | None = None) -> None:
        self.dataset_id = dataset_id
        self._access_token = access_token
        self._app_secret = app_secret or None
        self.test_event_code = test_event_code
        self.graph_url = graph_url.rstrip("/")
        self.api_version = api_version
        self.policy = policy or RetryPolicy(attempts=4, initial_wait=1.0, max_wait=30.0, give_up_after=120.0)
        self.limiter = limiter or SlidingWindowLimiter(requests_per_minute, 60.0)
        self._http = _GraphClient(make_session(timeout=timeout, ca_bundle=ca_bundle, counter=counter, system=SYSTEM),
                                  base=f"{self.graph_url}/{api_version}", timeout=timeout)
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"MetaSender({self.graph_url!r}, dataset {self.dataset_id})"

    def send(self, payloads: list[dict[str, Any]], *, test_event_code: str | None = None) -> SendResult:
        """Send up to 1,000 events in one request."""
        if len(payloads) > MAX_EVENTS:
            raise ValueError(f"at most {MAX_EVENTS} events per request")
        request = EventRequest(pixel_id=self.dataset_id, events=[event_from_payload(p) for p in payloads],
                               test_event_code=(test_event_code if test_event_code is not None
                                                else self.test_event_code) or None,
                               http_client=self._http, access_token=self._access_token, appsecret=self._app_secret)

        def attempt() -> SendResult:
            self.limiter.acquire()
            return request.execute()

        result = self.policy.call(f"Meta {self._http.safe_path(self.dataset_id)}", attempt)
        self.requests_sent += 1
        return result

    def check(self) -> list[str]:
        """Whether the dataset and token work: an empty test request is refused for its content
        (code 100), never for the token (190) or the dataset (803/100 with 'does not exist')."""
        try:
            self.send([], test_event_code=self.test_event_code or "CLOSEDLOOPCHECK")
        except AuthError as exc:
            return [exc.user_message]
        except MetaRefused as exc:
            if exc.code == 100 and exc.subcode is None and "does not exist" not in exc.user_message:
                return []  # "data" is empty: the dataset and token are fine
            return [exc.user_message]
        return []


def event_from_payload(payload: dict[str, Any]) -> Event:
    """An SDK ``Event`` from a stored conversion: ``event_name``, ``event_time`` (Unix s), ``event_id``,
    ``user_data`` (``em``/``ph`` hashed, ``fbc``, ``external_id``), optional ``value``/``currency``
    and ``lead_event_source`` (the CRM's name, for Meta's CRM integrations)."""
    data = payload.get("user_data") or {}
    user = UserData(emails=data.get("em") or None, phones=data.get("ph") or None, fbc=data.get("fbc") or None,
                    external_ids=data.get("external_id") or None)
    custom = CustomData(custom_properties={"event_source": "crm",
                                           "lead_event_source": payload.get("lead_event_source") or "closedloop"})
    if payload.get("value") is not None and payload.get("currency"):
        custom.value = float(payload["value"])
        custom.currency = payload["currency"].lower()
    return Event(event_name=payload["event_name"], event_time=int(payload["event_time"]),
                 event_id=payload["event_id"], action_source=ActionSource.SYSTEM_GENERATED, user_data=user,
                 custom_data=custom)


class _GraphClient(HttpServiceInterface):
    """The SDK's pluggable HTTP client, on closedloop's session (see the module docstring)."""

    def __init__(self, session: requests.Session, *, base: str, timeout: float) -> None:
        self.session, self.base, self.timeout = session, base, timeout
        self.sdk_base = f"{FacebookSession.GRAPH}/{FacebookAdsApi.API_VERSION}"

    def safe_path(self, dataset_id: str) -> str:
        return f"{self.base}/{dataset_id}/events"

    def execute(self, url, method, request_options, headers, params):
        path = url[len(self.sdk_base):] if url.startswith(self.sdk_base) else "/" + url.split("/", 4)[-1]
        target = f"{self.base}{path}"
        body = dict(params)
        body["data"] = [json.loads(item) if isinstance(item, str) else item for item in body.get("data", [])]
        try:
            response = self.session.request(method, target, data=json.dumps(body, separators=(",", ":")),
                                            headers={"Content-Type": "application/json"}, timeout=self.timeout)
        except requests.RequestException as exc:
            if never_connected(exc):
                raise TransientError(f"Meta {target}: {type(exc).__name__}") from None
            raise DeliveryUncertain(f"Meta {target}: {type(exc).__name__} after the request was sent; Meta may or "
                                    "may not have these events") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code >= 500:
            raise TransientError(f"Meta {target} answered {response.status_code}")
        error = answer.get("error") if isinstance(answer, dict) else None
        if response.status_code >= 400 or error:
            raise _our_error(target, response.status_code, error if isinstance(error, dict) else {})
        return SendResult(events_received=int(answer.get("events_received", 0)),
                          fbtrace_id=str(answer.get("fbtrace_id", "")),
                          messages=[str(m) for m in answer.get("messages", [])])


def _our_error(target: str, status: int, error: dict[str, Any]) -> Exception:
    code, subcode = error.get("code"), error.get("error_subcode")
    message = str(error.get("error_user_msg") or error.get("message") or "")[:300]
    where = f"Meta {target} ({status}, code {code}" + (f", subcode {subcode}" if subcode else "") + ")"
    if code == TOKEN_CODE or status == 401:
        return AuthError(f"{where}: the access token of [meta] access_token_env was refused: {message}")
    if code in THROTTLE_CODES or error.get("is_transient") or status == 429:
        return RateLimited(f"{where}: throttled: {message}")
    return MetaRefused(f"{where}: {message}", code if isinstance(code, int) else None,
                       subcode if isinstance(subcode, int) else None)

