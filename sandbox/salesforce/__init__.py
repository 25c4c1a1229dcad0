"""A Salesforce org on loopback HTTPS that the real simple-salesforce can talk to unmodified.

Wire facts come from shared/reference/salesforce-api.md (section numbers in the modules):
OAuth and SOAP login (§1, ``auth.py``), SOQL with paging and ``Sforce-Query-Options`` (§2,
``soql.py``, ``app.py``), sObject CRUD and Collections with per-record SaveResults (§3), error
arrays and codes (§4), ``Sforce-Limit-Info`` and the daily limit (§5), describe (§6,
``schema.py``), change tracking on SystemModstamp (§7, ``store.py``, ``index.py``), lead
conversion, contact roles, currencies and Tooling custom fields with field-level security (§8).

Start it with :meth:`SalesforceSandbox.start`; ``url`` is both the login URL and the instance
URL, ``ca_path`` the CA to trust, ``credentials`` what a config needs. The control API below is
offered in Python and, for a sandbox running in another process, over HTTPS under
``/_sandbox/...`` (``admin.py``). Faults are injected per test with :meth:`inject` (``faults.py``).

Change Data Capture through the Pub/Sub API (reference realtime-and-auth.md §2, ``pubsub/``):
``start`` also serves gRPC ``eventbus.v1.PubSub`` over TLS at :attr:`pubsub_endpoint`
(``localhost:PORT``, same certificate and CA file as the HTTPS API). Clients authenticate each
RPC with metadata ``accesstoken`` (an access token from ``/services/oauth2/token``),
``instanceurl`` (:attr:`url`, the token response's ``instance_url``) and ``tenantid`` (the
18-character org id, the token response's ``id`` URL ``…/id/<org id>/<user id>``). Writes to the
entities selected with :meth:`enable_cdc` (none by default, as in a new org; Tooling
``PlatformEventChannelMember`` reads and writes the same selection) publish change events on
``/data/<Entity>ChangeEvent`` and ``/data/ChangeEvents``: REST writes with ``changeOrigin``
``com/salesforce/api/rest/<version>[;client=<Sforce-Call-Options client>]``, writes through the
methods below (a sales rep in the UI) with ``com/salesforce/api/soap/<version>;client=SfdcInternalAPI/``.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable

from sandbox.clock import Clock
from sandbox.salesforce.admin import admin_router
from sandbox.salesforce.app import Api
from sandbox.salesforce.auth import Authority
from sandbox.salesforce.faults import FAULT_KINDS, Fault, FaultBook
from sandbox.salesforce.ids import to18
from sandbox.salesforce.pubsub.bus import RETENTION, EventBus
from sandbox.salesforce.pubsub.capture import MAX_SELECTED_ENTITIES, ChangeCapture
from sandbox.salesforce.pubsub.server import PubSubServer, PubSubService
from sandbox.salesforce.soql import SoqlError, serializer
from sandbox.salesforce.store import RequestError, Store, WriteError
from sandbox.tls import make_tls_files
from sandbox.web import Request, Response, RunningServer, ServedApp

__all__ = ["SalesforceSandbox", "FAULT_KINDS", "WriteError", "RequestError"]


class SalesforceSandbox(ServedApp):
    """One emulated org behind an HTTPS server.

    Options: ``data_dir`` (TLS files ``ca.pem``/``server.pem``/``server.key`` and the JWT key
    pair live here), ``clock``, ``multi_currency``, ``org_currency``, ``daily_api_limit``,
    ``session_seconds`` (inactivity timeout), ``assignment_rule_owner_id`` (a Lead written
    without ``Sforce-Auto-Assign: FALSE`` is reassigned to this user, as an active assignment
    rule would), ``require_fls`` (Tooling-created fields stay hidden until FieldPermissions
    grant them), ``credentials`` (override any of the deterministic defaults),
    ``soap_login_max_version`` (SOAP ``login()`` is refused above it; None accepts any),
    ``max_api_version``, ``latency_seconds`` (added to every answer), ``log_bodies`` (False: the
    request log keeps no bodies, for million-record benchmarks), ``experience_sites`` (Experience
    Cloud site URLs accepted as JWT audiences besides login/test) and ``accept_my_domain_audience``
    (also accept the emulator's own URL, which plays the My Domain host; undocumented, off).

    Change Data Capture and Pub/Sub: ``cdc_entities`` (selected at start, default none),
    ``cdc_max_entities`` (5 without the add-on licence; None: unlimited), ``cdc_delivery_lag_seconds``
    and ``cdc_delivery_jitter_seconds`` (real seconds from commit until subscribers can receive an
    event, plus a uniform random extra; 0 by default, a second or two makes latency benchmarks
    honest), ``cdc_retention_hours`` (72, on the emulator clock), ``cdc_delivery_allocation``
    (events delivered per rolling 24 h before ``…subscription.limit.exceeded``; None: unlimited),
    ``pubsub_keepalive_seconds`` (270: the empty FetchResponse sent on an idle stream),
    ``pubsub_idle_timeout_seconds`` (60: a stream with no credit left ends when no FetchRequest
    comes in that long; None: never).
    """

    server_name = "salesforce"

    def __init__(self, *, data_dir: Path, clock: Clock | None = None, multi_currency: bool = False,
                 org_currency: str = "USD", daily_api_limit: int = 15_000, session_seconds: int = 7200,
                 assignment_rule_owner_id: str | None = None, require_fls: bool = True,
                 credentials: dict[str, str] | None = None, soap_login_max_version: float | None = 64.0,
                 max_api_version: float = 68.0, latency_seconds: float = 0.0, log_bodies: bool = True,
                 cdc_entities: Iterable[str] = (), cdc_max_entities: int | None = MAX_SELECTED_ENTITIES,
                 cdc_delivery_lag_seconds: float = 0.0, cdc_delivery_jitter_seconds: float = 0.0,
                 cdc_retention_hours: float = RETENTION.total_seconds() / 3600,
                 cdc_delivery_allocation: int | None = None, pubsub_keepalive_seconds: float = 270.0,
                 pubsub_idle_timeout_seconds: float | None = 60.0,
                 experience_sites: tuple[str, ...] = (), accept_my_domain_audience: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.clock = clock or Clock()
        self.store = Store(self.clock, multi_currency=multi_currency, org_currency=org_currency,
                           require_fls=require_fls, assignment_rule_owner_id=assignment_rule_owner_id)
        self.lock = self.store.lock
        self.tls = make_tls_files(self.data_dir)
        self.auth = Authority(self.data_dir, self.clock, self.store.integration_user, self.store.organization_id,
                              session_seconds, credentials=credentials, soap_login_max_version=soap_login_max_version)
        self.auth.extra_audiences.update(site.rstrip("/") for site in experience_sites)
        self.auth.accept_my_domain_audience = accept_my_domain_audience
        self.faults = FaultBook()
        self.bus = EventBus(self.clock, self.store.organization_id, delivery_lag_seconds=cdc_delivery_lag_seconds,
                            delivery_jitter_seconds=cdc_delivery_jitter_seconds,
                            retention=timedelta(hours=cdc_retention_hours),
                            delivery_allocation=cdc_delivery_allocation)
        self.changes = ChangeCapture(self.store, self.bus, entities=tuple(cdc_entities), max_entities=cdc_max_entities,
                                     ui_version=f"{max_api_version:.1f}")
        self.pubsub = PubSubService(self.changes, self.bus, self.auth, tenant_id=self.store.organization_id,
                                    instance_url=lambda: self.url, keepalive_seconds=pubsub_keepalive_seconds,
                                    idle_timeout_seconds=pubsub_idle_timeout_seconds)
        self.api = Api(self.store, self.auth, self.faults, base_url=lambda: self.url,
                       daily_api_limit=daily_api_limit, max_api_version=max_api_version,
                       latency_seconds=latency_seconds, log_bodies=log_bodies, changes=self.changes)
        self.admin = admin_router(self)
        self._pubsub_server: PubSubServer | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0, *, pubsub_port: int = 0) -> RunningServer:
        """Serve HTTPS on ``host:port`` and the Pub/Sub API (gRPC, TLS) on ``host:pubsub_port``
        (0: ephemeral ports); the certificate names localhost and 127.0.0.1."""
        server = super().start(host, port)
        self._pubsub_server = PubSubServer(self.pubsub, self.tls)
        self._pubsub_server.start(host, pubsub_port)
        return server

    def stop(self) -> None:
        if self._pubsub_server:
            self._pubsub_server.stop()
            self._pubsub_server = None
        super().stop()

    def __call__(self, request: Request) -> Response:
        if request.path.startswith("/_sandbox/"):
            handler = self.admin.resolve(request)
            if handler is None:
                return Response.json({"error": "NOT_FOUND", "message": "no such control endpoint"}, 404)
            try:
                return handler(request)
            except (WriteError, RequestError) as exc:
                return Response.json({"error": exc.code, "message": exc.message}, exc.status)
            except SoqlError as exc:
                return Response.json({"error": exc.code, "message": exc.message}, 400)
            except (ValueError, TypeError, KeyError) as exc:  # a control call's mistake is reported, not a crash
                return Response.json({"error": "BAD_REQUEST", "message": str(exc)}, 400)
        return self.api.handle(request)

    # -- where and who --------------------------------------------------------------------

    @property
    def pubsub_endpoint(self) -> str:
        """``localhost:PORT`` of the Pub/Sub API: ``grpc.secure_channel(endpoint,
        grpc.ssl_channel_credentials(ca_path.read_bytes()))``."""
        assert self._pubsub_server and self._pubsub_server.port, "start() the sandbox first"
        return f"localhost:{self._pubsub_server.port}"

    @property
    def org(self) -> Store:
        """The org's records and metadata (``integration_user``, ``sales_rep``, ``permission_set``...)."""
        return self.store

    @property
    def credentials(self) -> dict[str, str]:
        """What a closedloop config names: connected app, integration user, JWT key, refresh token."""
        return {"client_id": self.auth.client_id, "client_secret": self.auth.client_secret,
                "username": self.auth.username, "password": self.auth.password,
                "security_token": self.auth.security_token, "private_key_path": str(self.auth.private_key_path),
                "refresh_token": next(iter(self.auth.refresh_tokens)),
                "permission_set": "Closedloop_Integration"}

    @property
    def before_request(self) -> Callable[[Request], None] | None:
        return self.api.before_request

    @before_request.setter
    def before_request(self, hook: Callable[[Request], None] | None) -> None:
        self.api.before_request = hook

    # -- records ------------------------------------------------------------------------

    def create(self, object_name: str, values: dict[str, Any], *, created_at: datetime | None = None) -> str:
        """Create a record as a sales rep would (validated; ``CreatedDate`` may be given, as with
        "Set Audit Fields upon Record Creation"), e.g. a web-to-lead submission."""
        with self._as_rep():
            return self.store.insert(object_name, values, user_id=self.store.sales_rep, created_at=created_at,
                                     audit=True)

    def seed(self, object_name: str, rows: list[dict[str, Any]], *, created_at: datetime | None = None) -> list[str]:
        """Fast bulk creation without the API's validation (benchmarks, large fixtures); the rows
        of one call share one SystemModstamp. Read-only fields (IsConverted...) may be set."""
        with self.lock, self.changes.quiet():
            now = None
            ids = []
            for row in rows:
                record_id = self.store.insert(object_name, row, user_id=self.store.sales_rep, created_at=created_at,
                                              validate=False, now=now)
                now = now or self.store.records[self.store.by_id[record_id]][record_id]["SystemModstamp"]
                ids.append(record_id)
            return ids

    def update(self, object_name: str, record_id: str, values: dict[str, Any]) -> None:
        """Edit a record as a sales rep would (validated; bumps the modification stamps)."""
        with self._as_rep():
            self.store.update(object_name, record_id, values, user_id=self.store.sales_rep)

    def delete(self, object_name: str, record_id: str) -> None:
        """Move a record to the recycle bin: IsDeleted, visible to queryAll, ENTITY_IS_DELETED on write."""
        with self._as_rep():
            self.store.delete(object_name, record_id, user_id=self.store.sales_rep)

    def undelete(self, object_name: str, record_id: str) -> None:
        with self._as_rep():
            self.store.undelete(object_name, record_id, user_id=self.store.sales_rep)

    def convert_lead(self, lead_id: str, create_opportunity: bool = True,
                     opportunity_fields: dict[str, Any] | None = None, *,
                     opportunity: dict[str, Any] | None = None) -> dict[str, str | None]:
        """Convert a lead (reference §8.3); returns leadId, accountId, contactId, opportunityId.
        ``opportunity`` is the older name of ``opportunity_fields``."""
        with self._as_rep():
            return self.store.convert_lead(lead_id, user_id=self.store.sales_rep,
                                           create_opportunity=create_opportunity,
                                           opportunity_fields=opportunity_fields or opportunity)

    def _as_rep(self) -> AbstractContextManager:
        """One UI transaction of the sales rep (Lightning: ``client=SfdcInternalAPI/``)."""
        return self.changes.transaction(self.changes.ui_origin, self.store.sales_rep)

    def close_opportunity(self, opportunity_id: str, won: bool, amount: float | None = None) -> None:
        """Close an opportunity as won or lost (IsClosed/IsWon follow the stage), optionally with an amount."""
        values: dict[str, Any] = {"StageName": "Closed Won" if won else "Closed Lost",
                                  "CloseDate": self.clock.now().date().isoformat()}
        if amount is not None:
            values["Amount"] = amount
        self.update("Opportunity", opportunity_id, values)

    def add_contact_role(self, opportunity_id: str, contact_id: str, primary: bool = True,
                         role: str | None = None) -> str:
        return self.create("OpportunityContactRole", {"OpportunityId": opportunity_id, "ContactId": contact_id,
                                                      "IsPrimary": primary, "Role": role})

    def record(self, record_id: str) -> dict[str, Any] | None:
        """A record as stored (deleted ones too), every field of its object present, datetimes as
        the API writes them, whole numbers as ints."""
        with self.lock:
            found = self.store.get(record_id)
            if found is None:
                return None
            object_name, stored = found
            sobject = self.store.schema.get(object_name)
            names = list(sobject.fields) if sobject else []
            names += [name for name in stored if name not in names]
            out = {"attributes": {"type": object_name}}
            for name in names:
                spec = sobject.fields.get(name) if sobject else None
                value = stored.get(name, False if spec is not None and spec.type == "boolean" else None)
                out[name] = _plain(serializer(spec)(value) if spec is not None else value)
            return out

    def query(self, soql: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Run SOQL without the API (no session, no limits, nothing logged): for tests and the demo."""
        with self.lock:
            result = self.store.run_query(soql, include_deleted)
            return self.store.render(result, result.ids, "62.0")

    # -- Change Data Capture and the Pub/Sub API -----------------------------------------

    def enable_cdc(self, *entities: str) -> None:
        """Select entities for change events (Setup → Change Data Capture); at most
        ``cdc_max_entities`` (WriteError LIMIT_EXCEEDED beyond)."""
        self.changes.enable(*entities)

    def disable_cdc(self, *entities: str) -> None:
        self.changes.disable(*entities)

    @property
    def cdc_entities(self) -> list[str]:
        return self.changes.enabled()

    def set_pubsub(self, *, keepalive_seconds: float | None = None, idle_timeout_seconds: float | None = -1,
                   delivery_lag_seconds: float | None = None, delivery_jitter_seconds: float | None = None,
                   delivery_allocation: int | None = -1) -> None:
        """Change Pub/Sub timings at run time (``-1`` leaves the two nullable settings alone)."""
        with self.bus.condition:
            if keepalive_seconds is not None:
                self.pubsub.keepalive_seconds = float(keepalive_seconds)
            if idle_timeout_seconds != -1:
                self.pubsub.idle_timeout_seconds = idle_timeout_seconds
            if delivery_lag_seconds is not None:
                self.bus.delivery_lag_seconds = float(delivery_lag_seconds)
            if delivery_jitter_seconds is not None:
                self.bus.delivery_jitter_seconds = float(delivery_jitter_seconds)
            if delivery_allocation != -1:
                self.bus.delivery_allocation = delivery_allocation
            self.bus.condition.notify_all()

    def pubsub_settings(self) -> dict[str, Any]:
        return {"endpoint": self.pubsub_endpoint if self._pubsub_server else None,
                "keepalive_seconds": self.pubsub.keepalive_seconds,
                "idle_timeout_seconds": self.pubsub.idle_timeout_seconds,
                "delivery_lag_seconds": self.bus.delivery_lag_seconds,
                "delivery_jitter_seconds": self.bus.delivery_jitter_seconds,
                "delivery_allocation": self.bus.delivery_allocation, "unavailable": self.pubsub.unavailable,
                "cdc_entities": self.cdc_entities, "streams": self.pubsub.open_streams()}

    def break_pubsub_streams(self) -> int:
        """Fail every open Subscribe stream with UNAVAILABLE (a lost stream); returns how many."""
        return self.pubsub.break_streams()

    def set_pubsub_unavailable(self, unavailable: bool = True) -> None:
        """While set, every new Pub/Sub RPC fails UNAVAILABLE (``…service.unavailable``)."""
        self.pubsub.unavailable = unavailable

    def change_events(self) -> list[dict[str, Any]]:
        """The retained change events, oldest first: header fields (decoded), schema id, entity."""
        with self.bus.condition:
            return [{"entity": e.entity, "schema_id": e.schema_id, "published": e.published.isoformat(),
                     "event_uuid": e.event_uuid, **e.header} for e in self.bus.events]

    # -- faults, sessions, limits ---------------------------------------------------------

    def inject(self, kind: str, *, times: int = 1, method: str | None = None, path_contains: str | None = None,
               object: str | None = None, record_ids: list[str] | None = None,  # noqa: A002 - API name
               delay: float = 0.0, message: str | None = None, status: int = 503) -> None:
        """Make the next ``times`` matching requests fail the given way (see ``faults.py``)."""
        ids = {self._id18(i) for i in record_ids} if record_ids else None
        with self.lock:
            self.faults.add(Fault(kind, times, method, path_contains, object, ids, delay, message, status))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def pending_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.faults.pending()

    def expire_sessions(self, *, keep_rejecting: bool = False) -> None:
        """Expire every session now; with ``keep_rejecting`` new logins succeed but their tokens are dead.
        Open Pub/Sub streams of those sessions end with the auth error."""
        self.auth.expire_all()
        self.auth.sessions_die_on_arrival = keep_rejecting
        self.bus.wake()

    def revive_sessions(self) -> None:
        """Stop ``keep_rejecting``: the next login's token works again."""
        self.auth.sessions_die_on_arrival = False

    def refuse_logins(self, refuse: bool = True) -> None:
        """Make every login fail (invalid_grant / INVALID_LOGIN) until called with False."""
        self.auth.refuse_logins = refuse

    @property
    def api_used(self) -> int:
        return self.api.api_used

    @property
    def daily_api_limit(self) -> int:
        return self.api.daily_api_limit

    def set_api_usage(self, used: int, limit: int | None = None) -> None:
        """Set the daily API counter (and optionally the limit) reported in Sforce-Limit-Info and /limits."""
        with self.lock:
            self.api.api_used = used
            if limit is not None:
                self.api.daily_api_limit = limit

    def reset_api_usage(self) -> None:
        self.set_api_usage(0)

    def set_multi_currency(self, enabled: bool) -> None:
        """Toggle multi-currency: CurrencyIsoCode appears on/disappears from describe and SOQL."""
        self.store.set_multi_currency(enabled)

    def set_assignment_rule_owner(self, owner_id: str | None) -> None:
        with self.lock:
            self.store.assignment_rule_owner_id = self._id18(owner_id) if owner_id else None

    # -- the request log ----------------------------------------------------------------

    def request_log(self) -> list[dict[str, Any]]:
        """Every request: kind (rest/oauth/soap), method, path, query, status, at, body (decoded
        JSON; never secrets or the Authorization header), auto_assign, headers."""
        with self.lock:
            return [dict(entry) for entry in self.api.log]

    def reset_log(self) -> None:
        with self.lock:
            self.api.log.clear()

    def api_calls(self, path_contains: str = "") -> int:
        """REST calls made so far (optionally only those whose path contains ``path_contains``)."""
        with self.lock:
            return sum(1 for entry in self.api.log if entry["kind"] == "rest" and path_contains in entry["path"])

    @staticmethod
    def _id18(record_id: str) -> str:
        return to18(record_id) or record_id


def _plain(value: Any) -> Any:
    """Whole floats as ints, so a stored 2.00 reads back as 2 in the control API."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return value
