"""Google Ads offline conversions through the Data Manager API (``events:ingest``).

Facts and sources: ``shared/reference/ad-platform-conversions.md`` §2 (DM-PROTO, DM-FMT,
DM-ADJ, DM-LIM, DM-ERR). Google closed ``UploadClickConversions`` to new integrations on
2026-06-15, so this is the only way in for closedloop.

Choices:

- **Client**: ``google-ads-datamanager`` (Google's generated client), REST transport, so the
  endpoint is a plain URL (the sandbox stands in for ``datamanager.googleapis.com``). Each call
  passes ``retry=None``: the library would otherwise resend on ``ServiceUnavailable`` for up to
  120 s behind closedloop's back. closedloop's :class:`~adapters.retry.RetryPolicy` retries
  instead, which is safe because every event carries a ``transactionId``: Google treats a
  repeat of a transaction id in the same conversion action as a restatement of it, never as a
  second conversion (§2.7).
- **Hashing**: ``google-ads-datamanager-util``'s ``Formatter`` (Google's own normaliser: trim,
  lower-case, Gmail dots and ``+tags`` dropped; phone as ``+`` and digits; SHA-256 as lowercase
  hex, request ``encoding`` HEX). The util only strips a phone to its digits, so a national
  number would be hashed without its country code: :func:`adapters.phones.e164` first puts it
  in E.164 with the configured default region.
- **Batching**: one request carries up to 2,000 events and 10 destinations (one destination
  per conversion action, events point at theirs with ``destinationReferences``), §2.6.
- **Failures**: a request is rejected whole when any event is invalid (fast fail, no partial
  failure, §2.5). :class:`RequestRefused` carries the field violations, whose ``events[i]``
  paths let the caller set aside the bad events and send the rest.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

import google.auth.exceptions
import requests
from google.api_core import exceptions as google_exceptions
from google.api_core.client_options import ClientOptions
from google.protobuf import timestamp_pb2

from adapters.errors import AuthError, ConfigError, RateLimited, RemoteError, TransientError
from adapters.google_auth import DATAMANAGER_SCOPE, GoogleCredentials, configure_google_sessions, token_error
from adapters.http import CallCounter
from adapters.lazy import lazy_module
from adapters.phones import e164
from adapters.ratelimit import SlidingWindowLimiter
from adapters.retry import RetryPolicy

SYSTEM = "google_ads"
MAX_EVENTS = 2000
MAX_DESTINATIONS = 10
MAX_USER_IDENTIFIERS = 10
CLICK_IDS = ("gclid", "gbraid", "wbraid")
_EVENT_PATH = re.compile(r"^events\[(\d+)\]")
dm = lazy_module("google.ads.datamanager_v1")  # most of a second to import: only when Google Ads is used
_util = lazy_module("google.ads.datamanager_util")


@functools.lru_cache(maxsize=1)
def _formatter():
    return _util.Formatter()


def consent_status(value: str):
    """Data Manager's consent status for ``GRANTED`` / ``DENIED`` / anything else."""
    return {"GRANTED": dm.ConsentStatus.CONSENT_GRANTED,
            "DENIED": dm.ConsentStatus.CONSENT_DENIED}.get(value, dm.ConsentStatus.CONSENT_STATUS_UNSPECIFIED)


def user_identifiers(email: str | None, phone: str | None, default_region: str) -> list[dict[str, str]]:
    """Google's hashed user identifiers (§2.4) for whatever of ``email`` and ``phone`` is usable."""
    found: list[dict[str, str]] = []
    if email and email.strip():
        try:
            found.append({"email_address": _formatter().process_email_address(email, _util.Encoding.HEX)})
        except ValueError:
            pass  # not an address; the message would not say which, and we never log the value
    number = e164(phone, default_region)
    if number:
        found.append({"phone_number": _formatter().process_phone_number(number, _util.Encoding.HEX)})
    return found


@dataclass(frozen=True)
class Violation:
    """One reason Google gave for refusing a request; ``event`` is the event's index, if it names one."""

    reason: str
    description: str
    field_path: str = ""
    event: int | None = None

    def __str__(self) -> str:
        where = f"{self.field_path}: " if self.field_path else ""
        return f"{where}{self.reason or 'INVALID_ARGUMENT'}" + (f" ({self.description})" if self.description else "")


class RequestRefused(RemoteError):
    """Data Manager rejected the whole request (HTTP 400); ``violations`` say which events and why."""

    def __init__(self, message: str, violations: list[Violation]) -> None:
        super().__init__(message)
        self.violations = violations


@dataclass
class IngestResult:
    request_id: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class DestinationStatus:
    """``requestStatus:retrieve`` for one destination: counts only, never which event (§2.5)."""

    conversion_action_id: str
    status: str                      # SUCCESS | PROCESSING | FAILED | PARTIAL_SUCCESS
    record_count: int = 0
    errors: dict[str, int] = field(default_factory=dict)     # reason → how many records
    warnings: dict[str, int] = field(default_factory=dict)


class GoogleAdsSender:
    """Sends conversions (closedloop's stored payloads, see :func:`event_from_payload`) to one Google Ads
    account. One instance per daemon; the client and its HTTP session are reused."""

    def __init__(self, customer_id: str, credentials: GoogleCredentials, *, login_customer_id: str = "",
                 endpoint: str = "https://datamanager.googleapis.com", timeout: float = 30.0,
                 ca_bundle: str | None = None, counter: CallCounter | None = None,
                 policy: RetryPolicy | None = None, requests_per_minute: int = 250,
                 limiter: SlidingWindowLimiter | None = None) -> None:
        self.customer_id, self.login_customer_id = customer_id, login_customer_id
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self.policy = policy or RetryPolicy(attempts=4, initial_wait=1.0, max_wait=30.0, give_up_after=120.0)
        self.limiter = limiter or SlidingWindowLimiter(requests_per_minute, 60.0)
        self._client = dm.IngestionServiceClient(credentials=credentials.build([DATAMANAGER_SCOPE]), transport="rest",
                                                 client_options=ClientOptions(api_endpoint=self.endpoint))
        configure_google_sessions(self._client.transport._session, timeout=timeout, ca_bundle=ca_bundle,
                                  counter=counter, system=SYSTEM)
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"GoogleAdsSender({self.endpoint!r}, customer {self.customer_id})"

    def ingest(self, payloads: list[dict[str, Any]], *, validate_only: bool = False) -> IngestResult:
        """Send up to 2,000 conversions in one request (retried on transient failures)."""
        request = self.request_for(payloads, validate_only=validate_only)
        response = self._call("events:ingest", lambda: self._client.ingest_events(
            request=request, retry=None, timeout=self.timeout))
        self.requests_sent += 1
        return IngestResult(request_id=response.request_id,
                            warnings=[f"{w.field}: {w.reason} {w.description}".strip()
                                      for w in getattr(response, "field_warnings", [])])

    def request_for(self, payloads: list[dict[str, Any]], *, validate_only: bool = False) -> dm.IngestEventsRequest:
        actions = list(dict.fromkeys(str(p["conversion_action_id"]) for p in payloads))
        if len(payloads) > MAX_EVENTS or len(actions) > MAX_DESTINATIONS:
            raise ValueError(f"at most {MAX_EVENTS} events and {MAX_DESTINATIONS} conversion actions per request")
        destinations = [dm.Destination(
            reference=f"action-{action}", product_destination_id=action,
            operating_account=dm.ProductAccount(account_type=dm.ProductAccount.AccountType.GOOGLE_ADS,
                                                account_id=self.customer_id),
            login_account=dm.ProductAccount(account_type=dm.ProductAccount.AccountType.GOOGLE_ADS,
                                            account_id=self.login_customer_id) if self.login_customer_id else None)
            for action in actions]
        events = [event_from_payload(payload) for payload in payloads]
        has_user_data = any(payload.get("user_identifiers") for payload in payloads)
        return dm.IngestEventsRequest(destinations=destinations, events=events, validate_only=validate_only,
                                      encoding=dm.Encoding.HEX if has_user_data else dm.Encoding.ENCODING_UNSPECIFIED)

    def request_status(self, request_id: str) -> list[DestinationStatus]:
        """What Google did with an accepted request (rows failing after acceptance show only here)."""
        response = self._call("requestStatus:retrieve", lambda: self._client.retrieve_request_status(
            request=dm.RetrieveRequestStatusRequest(request_id=request_id), retry=None, timeout=self.timeout))
        statuses = []
        for entry in response.request_status_per_destination:
            ingestion = entry.events_ingestion_status
            statuses.append(DestinationStatus(
                conversion_action_id=entry.destination.product_destination_id,
                status=dm.RequestStatusPerDestination.RequestStatus(entry.request_status).name,
                record_count=int(getattr(ingestion, "record_count", 0) or 0),
                errors={_enum_name(c.reason): int(c.record_count) for c in entry.error_info.error_counts},
                warnings={_enum_name(c.reason): int(c.record_count) for c in entry.warning_info.warning_counts}))
        return statuses

    def check_conversion_action(self, action_id: str, moment: datetime) -> list[str]:
        """Ask Google (``validateOnly``) whether a conversion for ``action_id`` would be accepted.

        The sample conversion carries a hashed address and granted consent; nothing is recorded."""
        sample = {"transaction_id": "closedloop-check", "conversion_action_id": action_id,
                  "event_time": moment.isoformat(), "consent": {"ad_user_data": "GRANTED",
                                                                "ad_personalization": "GRANTED"},
                  "user_identifiers": user_identifiers("closedloop-check@example.com", None, "US")}
        try:
            self.ingest([sample], validate_only=True)
        except RequestRefused as exc:
            return [str(violation) for violation in exc.violations] or [exc.user_message]
        return []

    def _call(self, what: str, function):
        def attempt():
            self.limiter.acquire()
            try:
                return function()
            except google_exceptions.GoogleAPICallError as exc:
                raise _our_error(exc, f"Google Ads {what}") from None
            except google.auth.exceptions.GoogleAuthError as exc:
                raise token_error(exc, f"Google Ads {what}") from None
            except requests.RequestException as exc:
                # Resending is safe (every event has a transactionId), so a lost answer is transient too.
                raise TransientError(f"Google Ads {what} at {self.endpoint}: {type(exc).__name__}") from None
        return self.policy.call(f"Google Ads {what}", attempt)


def event_from_payload(payload: dict[str, Any]) -> dm.Event:
    """One Data Manager ``Event`` from closedloop's stored conversion (everything decided at queue time).

    ``payload``: ``transaction_id``, ``conversion_action_id``, ``event_time`` (ISO 8601),
    optional ``ad_identifiers`` ({gclid|gbraid|wbraid}), ``user_identifiers`` (hashed, from
    :func:`user_identifiers`), ``value`` and ``currency``, ``consent`` ({ad_user_data,
    ad_personalization}: GRANTED | DENIED | UNSPECIFIED)."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(payload["event_time"]))
    event = dm.Event(transaction_id=payload["transaction_id"], event_timestamp=stamp,
                     event_source=dm.EventSource.OTHER,
                     destination_references=[f"action-{payload['conversion_action_id']}"])
    ids = {key: value for key, value in (payload.get("ad_identifiers") or {}).items() if key in CLICK_IDS and value}
    if ids:
        event.ad_identifiers = dm.AdIdentifiers(**ids)
    identifiers = payload.get("user_identifiers") or []
    if identifiers:
        event.user_data = dm.UserData(user_identifiers=[dm.UserIdentifier(**item)
                                                        for item in identifiers[:MAX_USER_IDENTIFIERS]])
    if payload.get("value") is not None and payload.get("currency"):
        event.conversion_value = float(payload["value"])
        event.currency = payload["currency"]
    consent = payload.get("consent") or {}
    event.consent = dm.Consent(ad_user_data=consent_status(consent.get("ad_user_data", "")),
                               ad_personalization=consent_status(consent.get("ad_personalization", "")))
    return event


def _our_error(exc: google_exceptions.GoogleAPICallError, what: str) -> Exception:
    status = getattr(exc, "code", None)
    if isinstance(exc, google_exceptions.Unauthenticated):
        return AuthError(f"{what}: Google refused the access token (401); the credentials of [google_auth] need "
                         "the scope https://www.googleapis.com/auth/datamanager")
    if isinstance(exc, google_exceptions.PermissionDenied):
        return AuthError(f"{what}: permission denied (403): the Google identity of [google_auth] is not a user of "
                         "Google Ads account [google_ads] customer_id (or the API is not enabled on its Cloud project)")
    if isinstance(exc, (google_exceptions.TooManyRequests, google_exceptions.ResourceExhausted)):
        return RateLimited(f"{what}: over the Data Manager quota (429)", retry_after=None)
    if status is not None and int(status) >= 500 or isinstance(exc, (google_exceptions.ServerError,
                                                                    google_exceptions.DeadlineExceeded)):
        return TransientError(f"{what}: Google answered {status}")
    if isinstance(exc, google_exceptions.NotFound):
        return ConfigError(f"{what}: not found (404); check [google_ads] endpoint")
    violations = list(_violations(exc))
    summary = "; ".join(str(v) for v in violations[:5]) or (exc.message or "")[:300]
    return RequestRefused(f"{what}: Google refused the request ({status}): {summary}", violations)


def _violations(exc: google_exceptions.GoogleAPICallError) -> Iterable[Violation]:
    """Field violations (with the event they name) and ErrorInfo reasons from a Google error."""
    seen_reason = False
    for detail in exc.details or []:
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type", "")
        if kind.endswith("google.rpc.BadRequest"):
            for item in detail.get("fieldViolations", detail.get("field_violations", [])) or []:
                path = str(item.get("field", ""))
                match = _EVENT_PATH.match(path)
                seen_reason = True
                yield Violation(reason=str(item.get("reason", "")), description=str(item.get("description", ""))[:300],
                                field_path=path, event=int(match.group(1)) if match else None)
    if not seen_reason and exc.reason:
        yield Violation(reason=str(exc.reason), description=(exc.message or "")[:300])


def _enum_name(value: Any) -> str:
    return getattr(value, "name", None) or str(value)
