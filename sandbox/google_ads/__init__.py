"""Google Ads conversions through the Data Manager API, on loopback, for the real client.

Start :class:`DataManagerSandbox` and point ``google-ads-datamanager``'s REST transport at it::

    from google.ads import datamanager_v1
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(
        sandbox.service_account_file, scopes=["https://www.googleapis.com/auth/datamanager"])
    client = datamanager_v1.IngestionServiceClient(
        credentials=credentials, transport="rest", client_options={"api_endpoint": sandbox.url})

``sandbox.url`` is ``http://127.0.0.1:PORT`` (the GAPIC REST transport takes the scheme from
``api_endpoint``; with ``tls=True`` it is ``https://localhost:PORT`` and the client must trust
``sandbox.ca_path``, e.g. ``REQUESTS_CA_BUNDLE``). The key file's ``token_uri`` points at the
shared OAuth emulator (``sandbox.googleapis.GoogleOAuth``); by default the client signs its own
JWTs and never calls it (see oauth.py). The client retries 503/504 for up to 120 s by itself:
pass ``retry=None`` per call where the caller has its own retry policy.

The API (shared/reference/ad-platform-conversions.md §2, §9.1):
    POST /v1/events:ingest                         IngestEventsRequest → {"requestId", "fieldWarnings"?}
    GET  /v1/requestStatus:retrieve?requestId=...   → {"requestStatusPerDestination": [...]}
Other Data Manager RPCs answer 501 UNIMPLEMENTED.

The seeded world (constants below): Google Ads account ``CUSTOMER_ID`` with conversion actions
``QUALIFIED_ACTION`` and ``WON_ACTION`` (UPLOAD_CLICKS, 30 days old) and ``WEBPAGE_ACTION`` (a
tag action, wrong type for uploads); manager ``MANAGER_ID`` managing it; ``OTHER_CUSTOMER_ID``
that nobody here may access. The default service account (``GoogleOAuth.service_account_file``)
is a user of the first two. Everything is adjustable (``add_account``, ``add_conversion_action``).

Inspection and control, in Python and over HTTP (``app.py`` lists the routes): accounts,
clicks Google Ads served (``record_click``), people it knows (``register_person``, to judge
hashed identifiers), the conversions each destination holds with their adjustments, every row's
outcome, request statuses, the request log, faults and outages, reset.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.clock import Clock
from sandbox.control import AdPlatformControls
from sandbox.faults import OUTAGE, FaultPlan
from sandbox.google_ads import rules
from sandbox.google_ads.accounts import Accounts, Click
from sandbox.google_ads.app import build_router
from sandbox.google_ads.ledger import Ledger
from sandbox.google_ads.wire import PayloadError, parse_body
from sandbox.googleapis import ApiError, FieldViolation, GoogleOAuth, GoogleService, Principal
from sandbox.googleapis.oauth import DEFAULT_SERVICE_ACCOUNT
from sandbox.googleapis.status import invalid_argument, new_request_id
from sandbox.identity import PeopleIndex, Person, e164_digits, e164_plus, gmail_canonical, no_whitespace_lower
from sandbox.tls import make_tls_files
from sandbox.web import DropConnection, Request, Response, RunningServer, ServedApp

__all__ = ["DataManagerSandbox", "CUSTOMER_ID", "MANAGER_ID", "OTHER_CUSTOMER_ID", "QUALIFIED_ACTION", "WON_ACTION",
           "WEBPAGE_ACTION", "SCOPE", "FAULT_KINDS", "Person"]

CUSTOMER_ID = "1234567890"
MANAGER_ID = "9876543210"
OTHER_CUSTOMER_ID = "5555555555"
QUALIFIED_ACTION = "111111111"
WON_ACTION = "222222222"
WEBPAGE_ACTION = "333333333"
SCOPE = "https://www.googleapis.com/auth/datamanager"
SERVICE = GoogleService("datamanager.googleapis.com", (SCOPE,))
STATUS_METHOD = "google.ads.datamanager.v1.IngestionService.RetrieveRequestStatus"
FAULT_KINDS = {"unavailable": ("UNAVAILABLE", "The service is currently unavailable."),
               "internal": ("INTERNAL", "Internal error encountered."),
               "deadline": ("DEADLINE_EXCEEDED", "Deadline exceeded."),
               "rate_limit": ("RESOURCE_EXHAUSTED", "Too many requests."),
               "drop": None, "lost_response": None}

# Google's normal forms (§2.4) and the mistakes a sender makes, for matching hashed identifiers.
GOOGLE_FORMS = {"email": gmail_canonical, "phone": e164_plus}
GOOGLE_MISTAKES = {
    "email": [("e-mail not lower-cased or not trimmed", lambda raw: raw),
              ("e-mail whitespace kept inside", lambda raw: raw.strip().lower()),
              ("Gmail address hashed without removing dots and +suffix from the local part",
               no_whitespace_lower)],
    "phone": [("phone hashed without the leading + (Meta's form, not Google's)", e164_digits),
              ("phone hashed as typed, not as E.164", lambda raw: raw),
              ("phone hashed with spaces or punctuation", lambda raw: raw.strip())],
}


class DataManagerSandbox(AdPlatformControls, ServedApp):
    """The Data Manager API's ``IngestionService`` in front of an emulated Google Ads.

    Options: ``data_dir`` (TLS files, and the OAuth emulator's key file when it owns one),
    ``oauth`` (a shared :class:`GoogleOAuth`; if omitted the sandbox makes and serves its own),
    ``clock``, ``tls``, ``processing_seconds`` (how long a request stays PROCESSING),
    ``min_click_age_seconds`` (6 h: clicks younger than that cannot take a conversion yet),
    ``requests_per_minute`` (300 per Cloud project, §2.6), ``users`` (e-mails given access to
    the seeded accounts).
    """

    server_name = "datamanager"

    def __init__(self, *, data_dir: Path, oauth: GoogleOAuth | None = None, clock: Clock | None = None,
                 tls: bool = False, processing_seconds: float = 0.0, min_click_age_seconds: float = 6 * 3600,
                 requests_per_minute: int = 300, users: tuple[str, ...] = (DEFAULT_SERVICE_ACCOUNT,)) -> None:
        self.data_dir = Path(data_dir)
        self.clock = clock or Clock()
        self._owns_oauth = oauth is None
        self.oauth = oauth or GoogleOAuth(data_dir=self.data_dir / "oauth")
        self.tls = make_tls_files(self.data_dir / "tls") if tls else None
        self._processing_seconds = processing_seconds
        self._min_click_age = timedelta(seconds=min_click_age_seconds)
        self.requests_per_minute = requests_per_minute
        self.default_users = tuple(users)
        self.lock = threading.RLock()
        self.router = build_router(self)
        self._seed()

    def _seed(self) -> None:
        self.accounts = Accounts()
        self.people = PeopleIndex(GOOGLE_FORMS, GOOGLE_MISTAKES)
        self.ledger = Ledger(self.accounts, self.people, processing_seconds=self._processing_seconds,
                             min_click_age=self._min_click_age)
        self.log: list[dict[str, Any]] = []
        self.faults = FaultPlan(FAULT_KINDS, self.clock)
        self._calls: dict[str, deque] = {}
        users = set(self.default_users)
        month_ago = self.clock.now() - timedelta(days=30)
        self.accounts.add_account(CUSTOMER_ID, name="closedloop sandbox advertiser", users=users)
        self.accounts.add_account(MANAGER_ID, name="closedloop sandbox manager", users=users, manager=True,
                                  clients={CUSTOMER_ID})
        self.accounts.add_account(OTHER_CUSTOMER_ID, name="someone else's account")
        for action_id, name, kind in ((QUALIFIED_ACTION, "closedloop: qualified lead", "UPLOAD_CLICKS"),
                                      (WON_ACTION, "closedloop: won deal", "UPLOAD_CLICKS"),
                                      (WEBPAGE_ACTION, "Website purchase (tag)", "WEBPAGE")):
            self.accounts.add_conversion_action(CUSTOMER_ID, action_id, name, type=kind, created_at=month_ago)

    @property
    def processing_seconds(self) -> float:
        """How long an accepted request reports PROCESSING (sandbox clock)."""
        return self._processing_seconds

    @processing_seconds.setter
    def processing_seconds(self, seconds: float) -> None:
        with self.lock:
            self._processing_seconds = self.ledger.processing_seconds = seconds

    @property
    def min_click_age_seconds(self) -> float:
        """A click younger than this at upload fails with TOO_RECENT_CLICK (6 h by default)."""
        return self._min_click_age.total_seconds()

    @min_click_age_seconds.setter
    def min_click_age_seconds(self, seconds: float) -> None:
        with self.lock:
            self._min_click_age = self.ledger.min_click_age = timedelta(seconds=seconds)

    # -- serving ------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
        if self._owns_oauth:
            self.oauth.start(host)
        return super().start(host, port)

    def stop(self) -> None:
        super().stop()
        if self._owns_oauth:
            self.oauth.stop()

    @property
    def service_account_file(self) -> Path:
        return self.oauth.service_account_file

    @property
    def credentials(self) -> dict[str, Any]:
        """What a closedloop config names for Google Ads conversions."""
        return {"service_account_file": str(self.service_account_file), "operating_account_id": CUSTOMER_ID,
                "login_account_id": MANAGER_ID, "conversion_actions": {"qualified": QUALIFIED_ACTION,
                                                                       "won": WON_ACTION},
                "api_endpoint": self.url, "scope": SCOPE}

    def __call__(self, request: Request) -> Response:
        handler = self.router.resolve(request)
        if handler is None:
            return ApiError("NOT_FOUND", f"The requested URL {request.path} was not found on this server.").response()
        return handler(request)

    # -- the API ------------------------------------------------------------------------

    def handle_ingest(self, request: Request) -> Response:
        return self._call(request, "ingest", rules.INGEST_METHOD, self._ingest)

    def handle_status(self, request: Request) -> Response:
        return self._call(request, "status", STATUS_METHOD, self._status)

    def _call(self, request: Request, kind: str, method: str, action) -> Response:
        """Faults, then Google's edge (auth, quota), then ``action``; every call is logged."""
        with self.lock:
            entry = self._entry(request, kind)
            fault = self._take_fault(entry)
            if isinstance(fault, Response):
                return fault
            try:
                principal = self.oauth.authenticate(request, SERVICE, method)
                entry["caller"] = principal.email
                self._count_call(principal)
                body = action(request, principal, entry)
            except ApiError as error:
                return self._refuse(entry, error)
            entry["status"] = 200
            if fault == "lost_response":   # done, and the answer never arrives
                raise DropConnection()
            return Response.json(body)

    def _ingest(self, request: Request, principal: Principal, entry: dict[str, Any]) -> dict[str, Any]:
        try:
            parsed = parse_body(request.body)
        except PayloadError as exc:
            raise invalid_argument([exc.violation], rules.DOMAIN, {"method": rules.INGEST_METHOD}) from None
        entry["body"] = _json_or_none(request.body)
        accepted = rules.check(parsed, principal, self.accounts, self.clock.now())
        body: dict[str, Any] = {}
        if parsed.get("validateOnly"):
            entry["validate_only"] = True
        else:
            request_id = str(uuid.uuid4())
            self.ledger.process(request_id, parsed, accepted.targets, principal.email, self.clock.now())
            body["requestId"] = entry["request_id"] = request_id
        if accepted.warnings:
            body["fieldWarnings"] = accepted.warnings
        return body

    def _status(self, request: Request, principal: Principal, entry: dict[str, Any]) -> dict[str, Any]:
        request_id = entry["request_id"] = request.arg("requestId") or request.arg("request_id") or ""
        return self._status_for(principal, request_id)

    def _status_for(self, principal: Principal, request_id: str) -> dict[str, Any]:
        def refuse(reason: str, message: str) -> ApiError:
            return invalid_argument([FieldViolation("request_id", message, reason)], rules.DOMAIN,
                                    {"method": STATUS_METHOD})
        if not request_id:
            raise refuse("REQUIRED_FIELD_MISSING", "request_id is required.")
        status = self.ledger.status(request_id, self.clock.now())
        if status is None:
            raise refuse("INVALID_REQUEST_ID", "The request ID used to retrieve the status of a request is not "
                                               "valid. Status can only be retrieved for requests that succeed and "
                                               "don't have validate_only=true.")
        if status == "too_old":
            raise refuse("REQUEST_TOO_OLD", "Request status is only available for approximately 50 days after the "
                                            "API receives a request.")
        record = self.ledger.requests[request_id]
        if not any(self.accounts.can_access(principal.email, d["operatingAccount"]["accountId"],
                                            (d.get("loginAccount") or {}).get("accountId"))
                   for d in record.destinations):
            raise ApiError("PERMISSION_DENIED", "The caller does not have permission", "PERMISSION_DENIED",
                           rules.DOMAIN, {"method": STATUS_METHOD})
        return status

    def handle_unimplemented(self, request: Request) -> Response:
        return ApiError("UNIMPLEMENTED", f"{request.path} is a Data Manager method this sandbox does not emulate.",
                        "NOT_EMULATED", rules.DOMAIN).response()

    def _entry(self, request: Request, kind: str) -> dict[str, Any]:
        entry = {"kind": kind, "method": request.method, "path": request.path, "at": self.clock.now().isoformat(),
                 "status": None}
        self.log.append(entry)
        return entry

    def _refuse(self, entry: dict[str, Any], error: ApiError) -> Response:
        entry.update(status=error.code, error_status=error.status, reason=error.reason,
                     message=error.message, violations=[v.as_json() for v in error.violations])
        return error.response(new_request_id())

    def _count_call(self, principal: Principal) -> None:
        """300 requests per minute per Cloud project (§2.6), on the sandbox clock."""
        now = self.clock.now()
        calls = self._calls.setdefault(principal.project_id, deque())
        while calls and now - calls[0] >= timedelta(minutes=1):
            calls.popleft()
        if len(calls) >= self.requests_per_minute:
            raise ApiError("RESOURCE_EXHAUSTED",
                           f"Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service "
                           f"'{SERVICE.host}' for consumer 'project:{principal.project_id}'.", "RATE_LIMIT_EXCEEDED",
                           "googleapis.com", {"service": SERVICE.host, "consumer": f"projects/{principal.project_id}",
                                              "quota_limit_value": str(self.requests_per_minute)})
        calls.append(now)

    def _take_fault(self, entry: dict[str, Any]) -> Response | str | None:
        kind = self.faults.take()
        if kind is None:
            return None
        entry["fault"] = kind
        if kind == OUTAGE:
            entry["status"] = 503
            return ApiError("UNAVAILABLE", "The service is currently unavailable.").response()
        if kind == "drop":
            raise DropConnection()
        if kind == "lost_response":
            return kind
        status, message = FAULT_KINDS[kind]
        entry["status"] = ApiError(status, message).code
        return ApiError(status, message).response()

    # -- control ------------------------------------------------------------------------

    def add_account(self, customer_id: str, **settings: Any) -> dict[str, Any]:
        """Add or change a Google Ads account (see ``accounts.Account`` for the settings)."""
        with self.lock:
            return self.accounts.add_account(customer_id, **settings).as_json()

    def grant_access(self, email: str, customer_id: str = CUSTOMER_ID) -> None:
        with self.lock:
            self.accounts.require(customer_id).users.add(email)

    def add_conversion_action(self, customer_id: str, action_id: str, name: str, *, type: str = "UPLOAD_CLICKS",  # noqa: A002
                              created_at: datetime | None = None, status: str = "ENABLED",
                              click_through_days: int = 90) -> dict[str, Any]:
        """A conversion action; ``created_at`` defaults to now (too recent for uploads for 6 h)."""
        with self.lock:
            return self.accounts.add_conversion_action(customer_id, action_id, name, type=type,
                                                       created_at=created_at or self.clock.now(), status=status,
                                                       click_through_days=click_through_days).as_json()

    def record_click(self, *, at: datetime | None = None, customer_id: str = CUSTOMER_ID, gclid: str | None = None,
                     gbraid: str | None = None, wbraid: str | None = None, campaign: str = "") -> Click:
        """Google Ads served this click (default: now) — a visitor landed with this identifier."""
        with self.lock:
            return self.accounts.record_click(customer_id, at=at or self.clock.now(), gclid=gclid, gbraid=gbraid,
                                              wbraid=wbraid, campaign=campaign)

    def conversions(self, customer_id: str | None = None, conversion_action_id: str | None = None) -> list[dict]:
        """What Google Ads recorded ("what Google received"), optionally for one destination."""
        with self.lock:
            return [c.as_json() for c in self.ledger.all_conversions()
                    if (customer_id is None or c.customer_id == customer_id)
                    and (conversion_action_id is None or c.action_id == conversion_action_id)]

    def rows(self, request_id: str | None = None) -> list[dict[str, Any]]:
        """Each event's outcome per destination (recorded, adjusted or a processing error reason) —
        the detail Google's status counts leave out."""
        with self.lock:
            records = [self.ledger.requests[request_id]] if request_id else list(self.ledger.requests.values())
            return [{"request_id": record.request_id, **row} for record in records for row in record.rows]

    def request_status(self, request_id: str) -> dict[str, Any] | None:
        """The status the API would return now (no credentials needed)."""
        with self.lock:
            status = self.ledger.status(request_id, self.clock.now())
            return status if isinstance(status, dict) else None

    def request_log(self) -> list[dict[str, Any]]:
        """Every API call: kind, status, caller e-mail, error reason and violations, the body as
        received (hashed identifiers only; never the bearer token)."""
        with self.lock:
            return [dict(entry) for entry in self.log]

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {"accounts": [account.as_json() for account in self.accounts.accounts.values()],
                    "clicks": [click.as_json() for click in self.accounts.clicks.values()],
                    "people": [person.as_json() for person in self.people.people]}

    def reset(self) -> None:
        """Back to the seeded world: no conversions, requests, clicks, people, faults or log."""
        with self.lock:
            self._seed()


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
