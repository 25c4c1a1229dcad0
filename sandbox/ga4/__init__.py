"""A GA4 stand-in: Measurement Protocol collection, the validation server, and a small property.

- ``POST /mp/collect`` answers 204 with no body to anything, as production does, and never
  reports errors; what GA4 would keep is folded into the property: purchases de-duplicated by
  ``transaction_id`` (an empty id de-duplicates every purchase), refunds, timestamps older
  than 72 hours clamped, requests with a wrong ``api_secret`` or ``measurement_id`` silently
  dropped. The secret is never written to the request log.
- ``POST /debug/mp/collect`` answers ``{"validationMessages": [...]}`` (see ``validation.py``).
- ``GET|POST /g/collect`` stands in for gtag.js: the first hit of a client id fixes its
  first-user source, medium, campaign and default channel group; each ``sid`` gets its
  session source.
- ``/_sandbox/...`` (and the same methods in Python) list requests and events, register a
  client's first-user source directly, and report metrics by dimension the way GA4's
  reports would aggregate them.

Source for every rule: shared/reference/ga4-measurement-protocol.md.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.clock import Clock
from sandbox.ga4.traffic import default_channel_group, session_source
from sandbox.ga4.validation import validate
from sandbox.web import DropConnection, Request, Response, Router, RunningServer, serve_in_thread

DEFAULT_RATES = {"USD": Decimal("1"), "EUR": Decimal("1.10"), "GBP": Decimal("1.25"), "CAD": Decimal("0.75"),
                 "AUD": Decimal("0.65"), "JPY": Decimal("0.0067")}
NOT_SET = "(not set)"


@dataclass
class UserAcquisition:
    source: str
    medium: str
    campaign: str

    @property
    def channel(self) -> str:
        return default_channel_group(self.source, self.medium, self.campaign)


@dataclass
class StoredEvent:
    """An event GA4 kept, with what its reports need."""

    client_id: str
    name: str
    params: dict[str, Any]
    at: datetime
    user_id: str | None = None
    session_source: str = NOT_SET
    revenue: Decimal = Decimal(0)  # in the property currency; negative for refunds


@dataclass
class _Session:
    source: str
    medium: str
    campaign: str
    started: datetime


class GA4Sandbox:
    """One GA4 web data stream with its property."""

    def __init__(self, *, clock: Clock | None = None, measurement_id: str = "G-SANDBOX01",
                 api_secret: str = "sandbox-mp-secret-0001", property_currency: str = "USD",
                 exchange_rates: dict[str, Decimal] | None = None, site_host: str = "www.example.com",
                 latency_seconds: float = 0.0) -> None:
        self.clock = clock or Clock()
        self.measurement_id, self.api_secret = measurement_id, api_secret
        self.property_currency = property_currency
        self.rates = dict(exchange_rates or DEFAULT_RATES)
        self.site_host = site_host
        self.latency_seconds = latency_seconds
        self._lock = threading.RLock()
        self.requests: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.events: list[StoredEvent] = []
        self.users: dict[str, UserAcquisition] = {}
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._transactions: dict[str, Decimal] = {}  # transaction_id → revenue counted
        self._server: RunningServer | None = None
        self._faults: list[int | str] = []
        self.router = Router()
        self.router.add("POST", r"/mp/collect", self._collect)
        self.router.add("POST", r"/debug/mp/collect", self._debug)
        self.router.add("GET", r"/g/collect", self._gtag)
        self.router.add("POST", r"/g/collect", self._gtag)
        self.router.add("GET", r"/_sandbox/requests", lambda r: Response.json(self.request_log()))
        self.router.add("GET", r"/_sandbox/events", lambda r: Response.json(self.event_log()))
        self.router.add("GET", r"/_sandbox/report", self._report_endpoint)
        self.router.add("POST", r"/_sandbox/users", self._register_endpoint)
        self.router.add("POST", r"/_sandbox/reset", lambda r: (self.reset(), Response.json({"ok": True}))[1])

    # -- serving ---------------------------------------------------------------------

    def fail_next(self, count: int, status: int | str = 503) -> None:
        """Make the next ``count`` collect requests fail: an HTTP status, or "drop" to close
        the connection unanswered (GA4 itself never errors, but proxies and networks do)."""
        with self._lock:
            self._faults = [status] * count

    def __call__(self, request: Request) -> Response:
        if request.path.endswith("/collect") and not request.path.startswith("/g/"):
            with self._lock:
                fault = self._faults.pop(0) if self._faults else None
            if fault == "drop":
                raise DropConnection()
            if fault is not None:
                return Response.text("<html>upstream error</html>", int(fault), content_type="text/html")
        handler = self.router.resolve(request)
        response = handler(request) if handler else Response.json({"error": "not found"}, 404)
        if self.latency_seconds and not request.path.startswith("/_sandbox"):
            response.delay_seconds = self.latency_seconds
        return response

    def start(self, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
        self._server = serve_in_thread(self, host=host, port=port, name="ga4")
        return self._server

    def stop(self) -> None:
        if self._server:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server, "start() the sandbox first"
        return self._server.url

    @property
    def credentials(self) -> dict[str, str]:
        return {"measurement_id": self.measurement_id, "api_secret": self.api_secret}

    # -- Measurement Protocol ----------------------------------------------------------

    def _log(self, request: Request, kind: str, **extra: Any) -> dict[str, Any]:
        query = {key: ("***" if key == "api_secret" else values[0]) for key, values in request.query.items()}
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            body = None
        entry = {"kind": kind, "path": request.path, "query": query, "body": body, "at": self.clock.now().isoformat(),
                 **extra}
        self.requests.append(entry)
        return entry

    def _collect(self, request: Request) -> Response:
        with self._lock:
            entry = self._log(request, "collect")
            if request.arg("measurement_id") != self.measurement_id or request.arg("api_secret") != self.api_secret:
                entry["dropped"] = "unknown measurement_id or api_secret"
                self.dropped.append(entry)
            elif not isinstance(entry["body"], dict):
                entry["dropped"] = "body is not a JSON object"
                self.dropped.append(entry)
            else:
                now = self.clock.now()
                entry["validation"] = validate(request.body, int(now.timestamp() * 1_000_000))
                self._ingest(entry["body"], now)
        return Response.empty(204)

    def _debug(self, request: Request) -> Response:
        with self._lock:
            self._log(request, "debug")
        now_us = int(self.clock.now().timestamp() * 1_000_000)
        return Response.json({"validationMessages": validate(request.body, now_us)}, 200,
                             content_type="application/json; charset=utf-8")

    def _ingest(self, body: dict[str, Any], now: datetime) -> None:
        """What GA4 keeps of a request in RELAXED mode."""
        client_id = body.get("client_id")
        if not isinstance(client_id, str) or not isinstance(body.get("events"), list):
            return
        base_us = body.get("timestamp_micros") if isinstance(body.get("timestamp_micros"), int) else None
        for event in body["events"][:25]:
            if not isinstance(event, dict) or not isinstance(event.get("name"), str):
                continue
            name = event["name"]
            params = event.get("params") if isinstance(event.get("params"), dict) else {}
            micros = event.get("timestamp_micros") if isinstance(event.get("timestamp_micros"), int) else base_us
            at = now if micros is None else datetime.fromtimestamp(micros / 1_000_000, timezone.utc)
            at = max(min(at, now), now - timedelta(hours=72))  # RELAXED clamps late events to 72 h ago
            stored = StoredEvent(client_id, name, dict(params), at, body.get("user_id"),
                                 self._session_source(client_id, params.get("session_id"), now))
            stored.revenue = self._revenue(name, params)
            if stored.revenue is None:
                continue  # a duplicate purchase: GA4 de-duplicates it away
            self.events.append(stored)

    def _revenue(self, name: str, params: dict[str, Any]) -> Decimal | None:
        if name not in ("purchase", "refund"):
            return Decimal(0)
        transaction = params.get("transaction_id") if isinstance(params.get("transaction_id"), str) else ""
        value = self._in_property_currency(params.get("value"), params.get("currency"))
        if name == "purchase":
            if transaction in self._transactions:
                return None
            self._transactions[transaction] = value
            return value
        if transaction not in self._transactions:
            return -value
        refunded = value if params.get("value") is not None else self._transactions[transaction]
        return -refunded

    def _in_property_currency(self, value: Any, currency: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or not isinstance(currency, str):
            return Decimal(0)  # value without currency: revenue is not computed
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return Decimal(0)
        rate = self.rates.get(currency.upper())
        if rate is None:
            return Decimal(0)
        return amount * rate / self.rates.get(self.property_currency, Decimal(1))

    def _session_source(self, client_id: str, session_id: Any, now: datetime) -> str:
        session = self._sessions.get((client_id, str(session_id))) if session_id is not None else None
        if session is None or now - session.started > timedelta(hours=24):
            return NOT_SET
        return session.source

    # -- gtag.js stand-in --------------------------------------------------------------

    def _gtag(self, request: Request) -> Response:
        params = {key: values[0] for key, values in request.query.items()}
        if request.method == "POST" and request.body:
            params.update({k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()})
        if params.get("tid") != self.measurement_id or not params.get("cid"):
            return Response.empty(204)
        self.record_page_view(params["cid"], params.get("dl", ""), params.get("dr", ""), params.get("sid"))
        return Response.empty(204)

    def record_page_view(self, client_id: str, page_url: str, referrer: str = "", session_id: str | None = None) -> None:
        """What gtag.js would report for a page view: it fixes first-user and session sources."""
        with self._lock:
            source, medium, campaign = session_source(page_url, referrer, urlsplit(page_url).hostname or self.site_host)
            self.users.setdefault(client_id, UserAcquisition(source, medium, campaign))
            if session_id and (client_id, str(session_id)) not in self._sessions:
                self._sessions[(client_id, str(session_id))] = _Session(source, medium, campaign, self.clock.now())

    def register_user(self, client_id: str, source: str, medium: str, campaign: str = NOT_SET) -> None:
        """Declare a client's first-user acquisition directly (tests that skip gtag hits)."""
        with self._lock:
            self.users[client_id] = UserAcquisition(source, medium, campaign)

    def _register_endpoint(self, request: Request) -> Response:
        data = request.json()
        self.register_user(data["client_id"], data["source"], data["medium"], data.get("campaign", NOT_SET))
        return Response.json({"ok": True}, 201)

    # -- reading ----------------------------------------------------------------------

    def report(self, dimension: str, metric: str = "totalRevenue", event_name: str | None = None) -> dict[str, Any]:
        """Metric by dimension, as a GA4 report would show it (values sorted by key).

        Dimensions: firstUserSource, firstUserMedium, firstUserSourceMedium, firstUserCampaignName,
        firstUserDefaultChannelGroup, sessionSource, eventName, customEvent:<param>. Metrics:
        totalRevenue, purchaseRevenue (Decimal, property currency), eventCount, transactions,
        keyEvents (needs ``event_name``).
        """
        with self._lock:
            totals: dict[str, Any] = {}
            for event in self.events:
                key = self._dimension(event, dimension)
                amount = self._metric(event, metric, event_name)
                if amount is None:
                    continue
                totals[key] = totals.get(key, 0) + amount
            return dict(sorted(totals.items()))

    def _dimension(self, event: StoredEvent, dimension: str) -> str:
        user = self.users.get(event.client_id)
        first_user = {
            "firstUserSource": lambda: user.source, "firstUserMedium": lambda: user.medium,
            "firstUserSourceMedium": lambda: f"{user.source} / {user.medium}",
            "firstUserCampaignName": lambda: user.campaign, "firstUserDefaultChannelGroup": lambda: user.channel,
        }
        if dimension in first_user:
            return first_user[dimension]() if user else NOT_SET
        if dimension == "sessionSource":
            return event.session_source
        if dimension == "eventName":
            return event.name
        if dimension.startswith("customEvent:"):
            value = event.params.get(dimension.split(":", 1)[1])
            return NOT_SET if value is None else str(value)
        raise ValueError(f"unknown dimension {dimension!r}")

    @staticmethod
    def _metric(event: StoredEvent, metric: str, event_name: str | None) -> Any:
        if metric == "totalRevenue":
            return event.revenue if event.name in ("purchase", "refund") else None
        if metric == "purchaseRevenue":
            return event.revenue if event.name == "purchase" else None
        if metric == "eventCount":
            return 1 if event_name in (None, event.name) else None
        if metric == "transactions":
            return 1 if event.name == "purchase" else None
        if metric == "keyEvents":
            return 1 if event.name == event_name else None
        raise ValueError(f"unknown metric {metric!r}")

    def _report_endpoint(self, request: Request) -> Response:
        try:
            rows = self.report(request.arg("dimension", "firstUserSource"), request.arg("metric", "totalRevenue"),
                               request.arg("event_name"))
        except ValueError as exc:
            return Response.json({"error": str(exc)}, 400)
        return Response.json({"rows": [{"dimension": key, "value": str(value)} for key, value in rows.items()],
                              "currency": self.property_currency})

    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def event_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"client_id": e.client_id, "name": e.name, "params": e.params, "at": e.at.isoformat(),
                     "user_id": e.user_id, "session_source": e.session_source, "revenue": str(e.revenue)}
                    for e in self.events]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.dropped.clear()
            self.events.clear()
            self.users.clear()
            self._sessions.clear()
            self._transactions.clear()
