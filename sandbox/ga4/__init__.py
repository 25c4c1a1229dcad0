"""A GA4 stand-in: Measurement Protocol collection, the validation server, a gtag.js hit
endpoint and a small property with reports.

- ``POST /mp/collect`` answers 204 with an empty body to everything, as production does.
  Requests for another measurement id or with a wrong ``api_secret`` are recorded as dropped
  and never reach reports; malformed ones likewise. Well-formed events are processed the way
  GA4 would (``store.py``). The ``api_secret`` never reaches the request log.
- ``POST /debug/mp/collect`` answers 200 ``{"validationMessages": [...]}`` (``validation.py``)
  and never records events.
- ``GET|POST /g/collect`` stands in for gtag.js hits (``v``, ``tid``, ``cid``, ``sid``, ``en``,
  ``dl``, ``dr``): they teach the property each client's first-user source and each
  session's source (``traffic.py``).
- ``POST /v1beta/properties/{property_id}:runReport`` is the GA4 Data API's runReport
  (``data_api.py``, ``reporting.py``) over the same property, for ``google-analytics-data`` with
  a service account of the shared Google OAuth emulator (sandbox.googleapis): reports include an
  event only ``processing_delay_seconds`` after its request arrived (sandbox clock).
- ``/_sandbox/...`` (``app.py``) and the same methods here: request log, dropped requests,
  events, hits, users, custom dimensions, key events, reports, Data API calls, faults, reset.

Source for every rule: shared/reference/ga4-measurement-protocol.md.
"""
from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from sandbox.clock import Clock
from sandbox.ga4 import validation
from sandbox.ga4.app import build_router
from sandbox.ga4.data_api import TokenQuota
from sandbox.ga4.store import GA4Property, StoredEvent
from sandbox.ga4.traffic import NOT_SET, TrafficSource
from sandbox.googleapis import GoogleOAuth
from sandbox.googleapis.oauth import DEFAULT_SERVICE_ACCOUNT
from sandbox.web import DropConnection, Request, Response, RunningServer, ServedApp

__all__ = ["GA4Sandbox", "DEFAULT_RATES_TO_USD", "StoredEvent", "TrafficSource"]

# A fixed table so reports are reproducible: units of USD per unit of each currency.
DEFAULT_RATES_TO_USD = {"USD": Decimal("1"), "EUR": Decimal("1.10"), "GBP": Decimal("1.25"),
                        "CAD": Decimal("0.75"), "AUD": Decimal("0.65"), "JPY": Decimal("0.0067")}
REDACTED = "***"
FAULTABLE_PATHS = ("/mp/collect", "/debug/mp/collect")


class GA4Sandbox(ServedApp):
    """One GA4 web data stream and its property, served over plain HTTP on loopback."""

    server_name = "ga4"

    def __init__(self, *, clock: Clock | None = None, measurement_id: str = "G-SANDBOX01",
                 api_secret: str = "sandbox-mp-secret-0001", property_currency: str = "USD",
                 exchange_rates: dict[str, Decimal] | None = None, latency_seconds: float = 0.0,
                 site_host: str = "www.example.com", property_id: str = "123456789", time_zone: str = "UTC",
                 processing_delay_seconds: float = 0.0, oauth: GoogleOAuth | None = None,
                 data_dir: Path | None = None,
                 data_api_users: tuple[str, ...] = (DEFAULT_SERVICE_ACCOUNT,)) -> None:
        """``exchange_rates`` convert each currency to ``property_currency`` (units of property
        currency per unit); the default table is to USD, so another property currency needs
        its own table. ``site_host`` stands for the page's host when a hit carries no ``dl``.

        Data API: ``property_id`` (the number in ``properties/<id>``), ``time_zone`` (the
        property's, for the ``date`` dimension and date ranges), ``processing_delay_seconds``,
        ``oauth`` (a shared :class:`GoogleOAuth`; without one the sandbox makes and serves its
        own, writing its key file under ``data_dir``), ``data_api_users`` (e-mails with Viewer
        access to the property)."""
        self.clock = clock or Clock()
        self.measurement_id, self.api_secret = measurement_id, api_secret
        self.property_currency = property_currency
        self.rates = _rates(property_currency, exchange_rates)
        self.site_host = site_host
        self.latency_seconds = latency_seconds
        self._lock = threading.RLock()
        self._faults: list[int | str] = []
        self.requests: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.hits: list[dict[str, Any]] = []
        self.property = GA4Property(property_currency, self.rates, site_host=site_host)
        self.property_id, self.time_zone = property_id, time_zone
        self.processing_delay_seconds = processing_delay_seconds
        self._owns_oauth = oauth is None
        self.oauth = oauth or GoogleOAuth(data_dir=Path(data_dir) / "oauth" if data_dir else None)
        self.data_api_users = set(data_api_users)
        self.data_api_calls: list[dict[str, Any]] = []
        self.data_api_quota = TokenQuota()
        self.router = build_router(self)

    # -- serving -----------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
        """Serve on ``host:port`` (0 = an ephemeral port), plain HTTP (and its own OAuth emulator)."""
        if self._owns_oauth:
            self.oauth.start(host)
        return super().start(host, port)

    def stop(self) -> None:
        super().stop()
        if self._owns_oauth:
            self.oauth.stop()

    @property
    def credentials(self) -> dict[str, str]:
        """What a GA4 sender needs: the stream's measurement id and its MP API secret."""
        return {"measurement_id": self.measurement_id, "api_secret": self.api_secret}

    def __call__(self, request: Request) -> Response:
        if request.path in FAULTABLE_PATHS:
            with self._lock:
                fault = self._faults.pop(0) if self._faults else None
            if fault is not None:
                return self._fault(request, fault)
        handler = self.router.resolve(request)
        response = handler(request) if handler else Response.json({"error": "not found"}, 404)
        if self.latency_seconds and not request.path.startswith("/_sandbox/"):
            response.delay_seconds = self.latency_seconds
        return response

    def fail_next(self, count: int, status: int | str = 503) -> None:
        """Make the next ``count`` MP requests (collect or debug) fail with an HTTP status, or
        with "drop" close the connection unanswered. GA4 itself never errors; proxies,
        load balancers and networks do."""
        with self._lock:
            self._faults = [status] * count

    def _fault(self, request: Request, fault: int | str) -> Response:
        with self._lock:
            self._log(request, "fault", None if fault == "drop" else int(fault), fault=str(fault))
        if fault == "drop":
            raise DropConnection()
        return Response.text("<html><body>upstream error</body></html>", int(fault), content_type="text/html")

    # -- Measurement Protocol ----------------------------------------------------------

    def _log(self, request: Request, kind: str, status: int | None, **extra: Any) -> dict[str, Any]:
        query = {key: (REDACTED if key == "api_secret" else values[0]) for key, values in request.query.items()}
        try:
            body = json.loads(request.body.decode("utf-8")) if request.body else None
        except (UnicodeDecodeError, ValueError):
            body = None
        entry = {"kind": kind, "method": request.method, "path": request.path, "query": query, "status": status,
                 "at": self.clock.now().isoformat(), "body": body, **extra}
        self.requests.append(entry)
        return entry

    def _now_us(self) -> int:
        return int(self.clock.now().timestamp() * 1_000_000)

    def handle_collect(self, request: Request) -> Response:
        """``/mp/collect``: always 204; keep what GA4 would keep."""
        with self._lock:
            entry = self._log(request, "collect", 204)
            if request.arg("measurement_id") != self.measurement_id:
                reason = "unknown measurement_id (or not a web stream)"
            elif request.arg("api_secret") != self.api_secret:
                reason = "wrong api_secret"
            else:
                reason = None
            if reason is None:
                try:
                    body = validation.parse(request.body)
                except validation.PayloadError as exc:
                    entry["validation"] = [exc.issue.as_message()]
                    reason = f"malformed: {exc}"
                else:
                    entry["validation"] = [issue.as_message() for issue in validation.check(
                        body, self._now_us(), behavior=validation.STRICT)]
                    processed = self.property.ingest(body, self.clock.now())
                    entry["kept_events"] = len(processed.events)
                    entry["ignored"] = processed.ignored
            if reason is not None:
                entry["dropped"] = reason
                self.dropped.append(entry)
        return Response.empty(204)

    def handle_debug(self, request: Request) -> Response:
        """``/debug/mp/collect``: validation messages; the stream's ids are not checked."""
        stream = "app" if request.arg("firebase_app_id") and not request.arg("measurement_id") else "web"
        messages = validation.validate(request.body, self._now_us(), stream=stream)
        with self._lock:
            self._log(request, "debug", 200, validation=messages)
        return Response.json({"validationMessages": messages}, content_type="application/json; charset=utf-8")

    # -- gtag.js stand-in --------------------------------------------------------------

    def handle_hits(self, request: Request) -> Response:
        """``/g/collect``: shared parameters in the query string, one hit per body line (gtag
        batches hits that way); 204 whatever they hold, like Google."""
        shared = {key: values[0] for key, values in request.query.items()}
        lines = [line for line in request.body.decode("utf-8", "replace").splitlines() if line.strip()]
        hits = [{**shared, **dict(parse_qsl(line, keep_blank_values=True))} for line in lines] or [shared]
        with self._lock:
            for hit in hits:
                kept = hit.get("tid") == self.measurement_id and bool(hit.get("cid"))
                if kept:
                    self.property.record_hit(hit["cid"], hit.get("dl", ""), hit.get("dr", ""), hit.get("sid"),
                                             self.clock.now())
                self.hits.append({"at": self.clock.now().isoformat(), "kept": kept,
                                  **{key: hit.get(key) for key in ("tid", "cid", "sid", "en", "dl", "dr")}})
        origin = request.header("Origin")
        headers = {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"} if origin else {}
        return Response.empty(204, headers)

    def record_page_view(self, client_id: str, page_url: str, referrer: str = "",
                         session_id: str | int | None = None) -> None:
        """What a gtag.js page_view hit reports (the same as ``GET /g/collect``)."""
        with self._lock:
            self.property.record_hit(client_id, page_url, referrer, session_id, self.clock.now())

    def register_user(self, client_id: str, source: str, medium: str, campaign: str = NOT_SET) -> None:
        """Declare a client's first-user source directly (tests that skip tagging hits)."""
        with self._lock:
            self.property.register_user(client_id, TrafficSource(source, medium, campaign))

    # -- property configuration --------------------------------------------------------

    def register_custom_dimension(self, parameter_name: str, display_name: str | None = None) -> None:
        """Make event parameter ``parameter_name`` reportable as ``customEvent:<name>``."""
        with self._lock:
            self.property.register_custom_dimension(parameter_name, display_name)

    def mark_key_event(self, event_name: str) -> None:
        """Count ``event_name`` in the ``keyEvents`` metric from now on (``purchase`` is by default)."""
        with self._lock:
            self.property.mark_key_event(event_name)

    # -- reading -----------------------------------------------------------------------

    @property
    def events(self) -> list[StoredEvent]:
        """The events the property kept, in processing order (the live list)."""
        return self.property.events

    @property
    def users(self) -> dict[str, TrafficSource]:
        """First-user traffic source by client id (``.source``, ``.medium``, ``.campaign``, ``.channel``)."""
        return self.property.users

    def report(self, dimension: str, metric: str = "totalRevenue", event_name: str | None = None,
               keep_empty_rows: bool = True) -> dict[str, Any]:
        """Metric by dimension value, as a GA4 report aggregates it (sorted by value).

        Dimensions: firstUserSource, firstUserMedium, firstUserSourceMedium,
        firstUserCampaignName, firstUserDefaultChannelGroup, the same five with ``session``,
        eventName, transactionId, customEvent:<registered parameter>. Metrics (money as Decimal
        in the property currency): totalRevenue and purchaseRevenue (purchases minus refunds),
        grossPurchaseRevenue, refundAmount, eventCount, transactions, keyEvents or
        keyEvents:<event name>. ``event_name`` restricts any metric to one event name.
        ``keep_empty_rows=False`` drops rows whose total is zero, as the Data API does by default.
        """
        with self._lock:
            return self.property.report(dimension, metric, event_name, keep_empty_rows)

    # -- the Data API ------------------------------------------------------------------

    @property
    def data_api_settings(self) -> dict[str, str]:
        """What a GA4 Data API client needs: ``api_endpoint`` (this server), the property id,
        the service account key file and the read-only scope."""
        return {"api_endpoint": self.url, "property_id": self.property_id,
                "service_account_file": str(self.oauth.service_account_file),
                "scope": "https://www.googleapis.com/auth/analytics.readonly"}

    def grant_data_api_access(self, email: str) -> None:
        """Make ``email`` (a service account) a Viewer of the property."""
        with self._lock:
            self.data_api_users.add(email)

    def log_data_api(self, request: Request, status: int, message: str | None) -> None:
        with self._lock:
            self.data_api_calls.append({"at": self.clock.now().isoformat(), "path": request.path, "status": status,
                                        "error": message, "body": _json_or_none(request.body)})

    def data_api_log(self) -> list[dict[str, Any]]:
        """runReport calls: path, status, the API's error message, the request body."""
        with self._lock:
            return list(self.data_api_calls)

    def request_log(self) -> list[dict[str, Any]]:
        """MP requests (collect, debug, injected faults) with status, redacted query, decoded body,
        and for collect what the strict validator would have said and what was ignored."""
        with self._lock:
            return list(self.requests)

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def dropped_requests(self) -> list[dict[str, Any]]:
        """Collect requests that never reached the property, each with its ``dropped`` reason."""
        with self._lock:
            return list(self.dropped)

    def hit_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.hits)

    def event_log(self) -> list[dict[str, Any]]:
        """The kept events as JSON-ready dicts."""
        with self._lock:
            return [_event_json(event) for event in self.property.events]

    def user_log(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return {client_id: _traffic_json(traffic) for client_id, traffic in self.property.users.items()}

    def reset(self) -> None:
        """Forget everything: logs, users, sessions, events and property configuration."""
        with self._lock:
            self.requests.clear()
            self.dropped.clear()
            self.hits.clear()
            self.data_api_calls.clear()
            self.data_api_quota = TokenQuota()
            self._faults.clear()
            self.property = GA4Property(self.property_currency, self.rates, site_host=self.site_host)


def _rates(currency: str, rates: dict[str, Decimal] | None) -> dict[str, Decimal]:
    if rates is None:
        if currency != "USD":
            raise ValueError("the default exchange rates are to USD: pass exchange_rates for a "
                             f"{currency} property")
        return dict(DEFAULT_RATES_TO_USD)
    table = {code: Decimal(str(rate)) for code, rate in rates.items()}
    if table.setdefault(currency, Decimal(1)) != 1:
        raise ValueError(f"the rate of the property currency {currency} must be 1")
    return table


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        return None


def _traffic_json(traffic: TrafficSource) -> dict[str, str]:
    return {"source": traffic.source, "medium": traffic.medium, "campaign": traffic.campaign,
            "channel": traffic.channel}


def _event_json(event: StoredEvent) -> dict[str, Any]:
    return {"client_id": event.client_id, "name": event.name, "params": event.params, "at": event.at.isoformat(),
            "user_id": event.user_id, "session_id": event.session.session_id if event.session else None,
            "session_source": event.session_source, "revenue": str(event.revenue), "key_event": event.key_event}
