"""A HubSpot portal on loopback HTTP that the real hubspot-api-client 12 talks to unmodified.

Point ``HubSpot(access_token=sandbox.credentials["access_token"], host=sandbox.url)`` at a
started :class:`HubSpotSandbox`. Wire facts come from shared/reference/hubspot-api.md (sections
cited in each module): status codes per operation (§1.7, ``app.py``), search (§3, ``search.py``),
batch endpoints (§4), properties and groups (§5), pipelines and associations v4 (§6), rate
limits (§7, ``limits.py``), error bodies (§8, ``wire.py``), faults (§7.4/§10, ``faults.py``).

Control it from Python (the methods below) or over HTTP under ``/_sandbox/...`` (``admin.py``);
both take the same lock as the request handlers, so tests may drive it while a client is busy.

App webhooks (reference realtime-and-auth.md §1.2, ``webhooks.py``): :meth:`configure_webhooks`
sets the app's target URL, client secret, app id and subscriptions (or the ``webhooks`` start
option, or ``PUT /_sandbox/webhooks``); every later record change then reaches the target as
signed batches. API writes are attributed to the token's app (``changeSource: INTEGRATION``,
``sourceId`` = ``private_app_id`` for the private-app token, ``oauth_app_id`` for OAuth tokens),
changes made through the methods below to a user in the CRM UI (``CRM_UI``,
``userId:<ui_user_id>``).
"""
from __future__ import annotations

import threading
import traceback
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Callable

from sandbox.clock import Clock
from sandbox.hubspot.admin import admin_router
from sandbox.hubspot.app import Endpoint, HubSpotApi, validation_error
from sandbox.hubspot.faults import FAULT_KINDS, Fault
from sandbox.hubspot.limits import RateLimits
from sandbox.hubspot.oauth import OAuthServer, PATHS as TOKEN_PATHS
from sandbox.hubspot.schema import Property
from sandbox.hubspot.search import SearchLimits
from sandbox.hubspot.store import Record, Store
from sandbox.hubspot.values import PropertyError
from sandbox.hubspot.webhooks import Webhooks
from sandbox.hubspot.wire import ApiError, body_response, error, iso, json_or_none, to_ms
from sandbox.web import DropConnection, Request, Response, RunningServer, ServedApp

TIERS = {  # §7.1: (ten-second Max, daily allowance)
    "free": (100, 250_000), "starter": (100, 250_000), "professional": (190, 650_000),
    "enterprise": (190, 1_000_000), "api_limit_increase": (250, 1_650_000),  # one pack on Professional
}
UNAUTHENTICATED = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
                   "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")

__all__ = ["HubSpotSandbox", "FAULT_KINDS", "Property", "Record", "SearchLimits", "TIERS"]


class HubSpotSandbox(ServedApp):
    """One emulated HubSpot portal: records, schema, limits, credentials, faults, request log."""

    server_name = "hubspot"

    def __init__(self, *, clock: Clock | None = None, tier_max_per_10s: int = 100, daily_limit: int = 250_000,
                 search_per_second: int = 5, index_lag_seconds: float = 0.0, latency_seconds: float = 0.0,
                 batch_update_missing_ids: str = "207", company_currency: str = "USD",
                 currencies: list[str] | None = None, portal_id: int = 99999,
                 private_app_token: str = "pat-na1-sandbox-5e1f0c2a-7b3d-4c1e-9a8f-000000000001",
                 oauth_client_id: str = "sandbox-oauth-client-0001",
                 oauth_client_secret: str = "sandbox-oauth-secret-0001",
                 oauth_refresh_token: str = "na1-sandbox-refresh-0001", token_lifetime_seconds: int = 1800,
                 association_batch_missing: str = "omit", search_limits: SearchLimits | None = None,
                 utc_offset_hours: float = 0.0, private_app_id: int = 1234567, oauth_app_id: int = 7654321,
                 webhook_client_secret: str = "sandbox-app-client-secret-0001", ui_user_id: int = 98765432,
                 webhooks: dict[str, Any] | None = None) -> None:
        if batch_update_missing_ids not in ("207", "400"):
            raise ValueError('batch_update_missing_ids is "207" or "400"')
        if association_batch_missing not in ("omit", "207"):
            raise ValueError('association_batch_missing is "omit" or "207"')
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.store = Store(self.clock, index_lag_seconds=index_lag_seconds, company_currency=company_currency,
                           currencies=currencies, portal_id=portal_id)
        self.limits = RateLimits(self.clock, max_per_10s=tier_max_per_10s, daily_limit=daily_limit,
                                 search_per_second=search_per_second, portal_id=portal_id,
                                 utc_offset_hours=utc_offset_hours, lock=self.lock)
        self.search_limits = search_limits or SearchLimits()
        self.latency_seconds = latency_seconds
        self.batch_update_missing_ids = batch_update_missing_ids
        self.association_batch_missing = association_batch_missing
        self.portal_id = portal_id
        self.private_token = private_app_token
        self.oauth = OAuthServer(self.clock, self.lock, client_id=oauth_client_id, client_secret=oauth_client_secret,
                                 refresh_token=oauth_refresh_token, lifetime_seconds=token_lifetime_seconds,
                                 portal_id=portal_id)
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.served_429 = 0
        self.internal_errors: list[str] = []  # tracebacks of emulator bugs, answered as 500
        self.before_request: Callable[[Request], None] | None = None
        self.private_app_id, self.oauth_app_id = private_app_id, oauth_app_id
        self.ui_source = ("CRM_UI", f"userId:{ui_user_id}")
        self._writer = self.ui_source  # who the writes being made now are attributed to
        self.webhooks = Webhooks(self.clock, portal_id, app_id=private_app_id, client_secret=webhook_client_secret,
                                 has_property=lambda object_type, name: self.store.property(object_type, name)
                                 is not None)
        self.store.listener = self._on_change
        if webhooks:
            self.configure_webhooks(**webhooks)
        self.api = HubSpotApi(self)
        self.admin = admin_router(self)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
        """Serve on ``host:port`` (0 = an ephemeral port); plain HTTP, which the client accepts.
        Webhook deliveries start too."""
        server = super().start(host, port)
        self.webhooks.start()
        return server

    def stop(self) -> None:
        self.webhooks.stop()
        super().stop()

    @property
    def credentials(self) -> dict[str, str]:
        """The private-app token (``access_token``), the OAuth app's client and refresh token, and
        the id and client secret of the app whose webhooks are signed (``webhook_app_id``,
        ``webhook_client_secret``)."""
        return {"access_token": self.private_token, **self.oauth.client,
                "webhook_app_id": str(self.webhooks.app_id), "webhook_client_secret": self.webhooks.client_secret}

    @property
    def token_lifetime_seconds(self) -> int:
        return self.oauth.lifetime_seconds

    @token_lifetime_seconds.setter
    def token_lifetime_seconds(self, seconds: int) -> None:
        self.oauth.lifetime_seconds = seconds

    # -- control: webhooks ------------------------------------------------------------------

    def configure_webhooks(self, **settings: Any) -> None:
        """The app's webhook settings (see :meth:`sandbox.hubspot.webhooks.Webhooks.configure`):
        ``target_url``, ``client_secret``, ``app_id``, ``subscriptions`` (replaces them:
        ``[{"subscriptionType": "contact.propertyChange", "propertyName": "email"}, ...]``),
        ``max_concurrent_requests``, ``timeout_seconds``, ``delivery_delay_seconds``,
        ``retry_time_scale``, ``jitter``, ``verify`` (CA file for an HTTPS target)."""
        with self.lock:
            self.webhooks.configure(**settings)

    def webhook_settings(self) -> dict[str, Any]:
        return self.webhooks.settings()

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every delivery attempt: at, url, status (None: no answer), error, seconds, eventIds, attempts."""
        with self.webhooks.condition:
            return [dict(entry) for entry in self.webhooks.deliveries]

    def dropped_webhook_events(self) -> list[dict[str, Any]]:
        """Events given up on after the last retry."""
        with self.webhooks.condition:
            return [dict(entry) for entry in self.webhooks.dropped]

    def _on_change(self, object_type: str, kind: str, record: Record, changed: dict[str, str]) -> None:
        self.webhooks.record_change(object_type, kind, record.id, changed, self.store.now_ms(), self._writer)

    # -- control: records -------------------------------------------------------------------

    def create(self, object_type: str, properties: dict[str, Any], *, created_at: datetime | None = None) -> str:
        """Create a record as a person or a form would: validated, read-only-to-API properties allowed."""
        with self.lock:
            values = self._user_values(object_type, properties)
            self.store.check_email(object_type, values)
            return self.store.create(object_type, values, created_ms=_ms(created_at)).id

    def seed(self, object_type: str, rows: list[dict[str, Any]], *, created_at: datetime | None = None) -> list[str]:
        """Fast bulk creation without validation (benchmarks: 100k+ rows). A row may carry
        ``createdate`` and the last-modified property (ISO or epoch ms) to backdate it."""
        with self.lock:
            return self.store.seed(object_type, rows, created_ms=_ms(created_at))

    def update(self, object_type: str, record_id: str, properties: dict[str, Any]) -> None:
        """Change a record as a person in HubSpot would; bumps the last-modified property."""
        with self.lock:
            record = self._existing(object_type, record_id)
            values = self._user_values(object_type, properties)
            self.store.check_email(object_type, values, record)
            self.store.update(object_type, record, values)

    def move_deal(self, deal_id: str, stage_id: str) -> None:
        """Move a deal to a stage (and the stage's pipeline), as a rep dragging a card."""
        with self.lock:
            if stage_id not in self.store.stages:
                raise ValueError(f"unknown deal stage {stage_id!r}")
            self.update("deals", deal_id, {"dealstage": stage_id, "pipeline": self.store.stages[stage_id][0]})

    def archive(self, object_type: str, record_id: str) -> None:
        with self.lock:
            self.store.archive(object_type, self._existing(object_type, record_id))

    def associate(self, deal_id: str, contact_id: str) -> None:
        """Associate a deal with a contact (both directions, typeIds 3 and 4)."""
        with self.lock:
            self.store.associate(str(deal_id), str(contact_id))

    def record(self, object_type: str, record_id: str) -> dict[str, str] | None:
        """A record's stored property values (archived records too), or None."""
        with self.lock:
            found = self.store.records[object_type].get(str(record_id))
            return dict(found.properties) if found else None

    def stored(self, object_type: str, record_id: str) -> dict[str, Any] | None:
        """Everything about a record: values, archived state and what search currently sees."""
        with self.lock:
            found = self.store.records[object_type].get(str(record_id))
            if found is None:
                return None
            return {"id": found.id, "properties": dict(found.properties), "archived": found.archived,
                    "archivedAt": found.archived_at,
                    "searchable": dict(found.searchable) if found.searchable is not None and found.key is not None
                    else None,
                    "associations": self.store.associated(object_type, found.id,
                                                          "contacts" if object_type == "deals" else "deals")}

    def _existing(self, object_type: str, record_id: str) -> Record:
        record = self.store.records[object_type].get(str(record_id))
        if record is None:
            raise KeyError(f"no {object_type[:-1]} {record_id}")
        return record

    def _user_values(self, object_type: str, properties: dict[str, Any]) -> dict[str, str]:
        values, errors = self.store.validate(object_type, properties, as_user=True)
        if errors:
            raise errors[0]
        return values

    # -- control: limits, faults, tokens ----------------------------------------------------------

    def set_limits(self, *, max_per_10s: int | None = None, daily_limit: int | None = None,
                   daily_used: int | None = None, search_per_second: int | None = None,
                   index_lag_seconds: float | None = None, latency_seconds: float | None = None,
                   batch_update_missing_ids: str | None = None, max_filter_groups: int | None = None,
                   max_filters_per_group: int | None = None, max_filters: int | None = None,
                   tier: str | None = None) -> None:
        """Change limits at run time; ``tier`` sets the Max and daily allowance of §7.1."""
        with self.lock:
            if tier is not None:
                self.limits.max_per_10s, self.limits.daily_limit = TIERS[tier]
            for target, name, value in (
                    (self.limits, "max_per_10s", max_per_10s), (self.limits, "daily_limit", daily_limit),
                    (self.limits, "daily_used", daily_used), (self.limits, "search_per_second", search_per_second),
                    (self.store, "index_lag_seconds", index_lag_seconds), (self, "latency_seconds", latency_seconds),
                    (self.search_limits, "max_groups", max_filter_groups),
                    (self.search_limits, "max_filters_per_group", max_filters_per_group),
                    (self.search_limits, "max_filters", max_filters)):
                if value is not None:
                    setattr(target, name, value)
            if batch_update_missing_ids is not None:
                if batch_update_missing_ids not in ("207", "400"):
                    raise ValueError('batch_update_missing_ids is "207" or "400"')
                self.batch_update_missing_ids = batch_update_missing_ids

    def set_tier(self, tier: str) -> None:
        self.set_limits(tier=tier)

    def inject(self, kind: str, *, times: int = 1, method: str | None = None, path_contains: str | None = None,
               delay: float = 0.0, retry_after: float | None = None, html: bool = False) -> None:
        """Arm a fault (kinds in ``faults.py``) for the next ``times`` matching requests."""
        fault = Fault(kind, times, method, path_contains, delay, retry_after, html)
        with self.lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def expire_tokens(self) -> None:
        """Expire every OAuth access token now (the private-app token keeps working)."""
        self.oauth.expire_all()

    def revoke_refresh_token(self, revoked: bool = True) -> None:
        """Uninstall the OAuth app: refreshes fail with invalid_grant until called with False."""
        self.oauth.revoke_refresh_token(revoked)

    def rotate_private_token(self, token: str) -> str:
        """Rotate the private app's token (the old one gets 401); returns the old one."""
        with self.lock:
            old, self.private_token = self.private_token, token
            return old

    def advance(self, seconds: float) -> datetime:
        """Move the shared clock (index lag, token expiry and rate windows all follow it)."""
        return self.clock.advance(seconds)

    def reset(self) -> None:
        """A fresh portal: no records, default schema, no faults, counters and log cleared."""
        with self.lock:
            self.store.reset()
            self.webhooks.clear_pending()
            self.limits.reset()
            self.faults.clear()
            self.oauth.reset()
            self.requests.clear()
            self.served_429 = 0
            self.internal_errors.clear()

    # -- control: the request log -------------------------------------------------------------

    def request_log(self) -> list[dict[str, Any]]:
        """Every API request: method, path, query, status, at, body (JSON or None), endpoint,
        fault. Authorization headers and the OAuth form body are never recorded."""
        with self.lock:
            return [dict(entry) for entry in self.requests]

    def reset_log(self) -> None:
        with self.lock:
            self.requests.clear()
            self.served_429 = 0
            self.limits.rejected = 0

    def api_calls(self, path_contains: str = "") -> int:
        with self.lock:
            return sum(1 for entry in self.requests if path_contains in entry["path"])

    def endpoint_counts(self) -> dict[str, int]:
        """Requests per endpoint label, e.g. ``{"POST /crm/v3/objects/contacts/search": 3}``."""
        with self.lock:
            return dict(Counter(entry["endpoint"] for entry in self.requests))

    @property
    def rate_limited(self) -> int:
        """How many 429s have been served since the log was last reset."""
        with self.lock:
            return self.served_429

    # -- HTTP ---------------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        if request.path.startswith("/_sandbox/"):
            return self._control(request)
        if self.before_request is not None:
            self.before_request(request)  # a test's hook: "while the daemon pages, a rep creates a lead"
        handler = self.api.router.resolve(request)
        endpoint = handler if isinstance(handler, Endpoint) else None
        token_call = request.path in TOKEN_PATHS
        query = {key: ["***"] for key in request.query} if token_call else dict(request.query)  # never a secret
        entry = {"method": request.method, "path": request.path, "query": query, "status": None,
                 "at": self.clock.now().isoformat(), "body": None if token_call else json_or_none(request.body),
                 "endpoint": endpoint.label(request.path_params) if endpoint else f"{request.method} {request.path}",
                 "fault": None}
        with self.lock:
            self.requests.append(entry)
            fault = next((f for f in self.faults if f.matches(request)), None)
            if fault is not None:
                fault.times -= 1
                entry["fault"] = fault.kind
                self.faults = [f for f in self.faults if f.times > 0]
        if fault is not None and fault.kind == "drop":
            raise DropConnection()
        if token_call:
            response = (fault.response(self.portal_id) if fault else None) or self.oauth.handle(request)
        else:
            response = self._respond(request, handler, endpoint, fault)
        with self.lock:
            entry["status"] = response.status
            if response.status == 429:
                self.served_429 += 1
        if self.latency_seconds:
            response.delay_seconds += self.latency_seconds
        if fault is not None and fault.kind == "hang":
            response.delay_seconds += fault.delay
        if fault is not None and fault.kind == "lost_response":
            raise DropConnection()
        return response

    def _respond(self, request: Request, handler: Callable[[Request], Response] | None, endpoint: Endpoint | None,
                 fault: Fault | None) -> Response:
        auth = self._authenticate(request)
        if isinstance(auth, Response):
            return auth
        bucket, oauth = auth
        if fault is not None:
            canned = fault.response(self.portal_id)
            if canned is not None:
                return canned
        if handler is None:
            return error(404, "resource not found")
        kind = endpoint.kind if endpoint else "standard"
        refused = self.limits.admit(bucket, kind)
        if refused is not None:
            response = body_response(refused, 429)
        else:
            request.fault = fault  # type: ignore[attr-defined]
            app_id = self.oauth_app_id if oauth else self.private_app_id
            response = self._handle(request, handler, ("INTEGRATION", str(app_id)))
        if kind != "search":  # §7.3: search responses carry no ten-second headers
            response.headers.update(self.limits.headers(bucket, oauth=oauth))
        return response

    def _handle(self, request: Request, handler: Callable[[Request], Response], writer: tuple[str, str]) -> Response:
        with self.lock:
            self._writer = writer
            try:
                return handler(request)
            except ApiError as exc:
                return exc.response()
            except PropertyError as exc:
                return validation_error([exc], self.portal_id).response()
            except Exception:  # an emulator bug: answer 500 and keep the traceback for the test
                self.internal_errors.append(traceback.format_exc())
                return error(500, "Internal error in the HubSpot sandbox.", "INTERNAL_ERROR")
            finally:
                self._writer = self.ui_source

    def _authenticate(self, request: Request) -> tuple[str, bool] | Response:
        """(rate-limit bucket, is OAuth) for a valid Bearer token, else the 401 of §8."""
        header = request.header("Authorization") or ""
        token = header[7:].strip() if header.startswith("Bearer ") else ""
        if token and token == self.private_token:
            return "private-app", False
        with self.lock:
            expires = self.oauth.expiry(token) if token else None
            if expires is None:
                return error(401, UNAUTHENTICATED, "INVALID_AUTHENTICATION")
            now = self.clock.now()
            if now >= expires:
                # Not in the reference: the body HubSpot sends for an expired OAuth token,
                # recorded in https://github.com/airbytehq/airbyte/issues/74726.
                return error(401, f"The OAuth token used to make this call expired {_ago(now - expires)} ago.",
                             "EXPIRED_AUTHENTICATION", context={"expire time": [iso(_ms(expires) or 0)]})
        return "oauth", True

    def _control(self, request: Request) -> Response:
        handler = self.admin.resolve(request)
        if handler is None:
            return error(404, f"no sandbox control endpoint {request.method} {request.path}")
        try:
            with self.lock:
                return handler(request)
        except ApiError as exc:
            return exc.response()
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, f"{type(exc).__name__}: {exc}", "VALIDATION_ERROR")


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else to_ms(moment.isoformat())


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}(s)"
    return f"{seconds} second(s)"

