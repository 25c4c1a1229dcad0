"""A HubSpot portal on loopback HTTP that the real hubspot-api-client talks to unmodified.

Wire facts from shared/reference/hubspot-api.md (sections in comments): exact status codes
per operation (§1.7), search (§3), batch endpoints with 200/207/400 (§4), properties and
groups (§5), pipelines and associations v4 (§6), rate limits with their headers and 429
bodies (§7), error bodies (§8). Start with :meth:`HubSpotSandbox.start` and point
``HubSpot(access_token=..., host=sandbox.url)`` at it; control it in Python or under
``/_sandbox/...``; inject faults with :meth:`inject`.
"""
from __future__ import annotations

import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.clock import Clock
from sandbox.hubspot.limits import RateLimits
from sandbox.hubspot.schema import FIELD_TYPES, Property
from sandbox.hubspot.search import Limits, SearchError, search
from sandbox.hubspot.store import MODIFIED, PropertyError, Record, Store, iso
from sandbox.web import DropConnection, Request, Response, Router, RunningServer, serve_in_thread

OBJECTS = r"(?P<type>contacts|deals)"
TRANSIENT = {"423": 423, "477": 477, "502": 502, "503": 503, "504": 504, "524": 524}
FAULT_KINDS = {"429", "429_retry_after", "daily_429", "html_503", "hang", "drop", "lost_response",
               "status_200_for_201", *TRANSIENT}
BATCH_LIMIT = 100


@dataclass
class Fault:
    kind: str
    times: int = 1
    method: str | None = None
    path_contains: str | None = None
    delay: float = 0.0

    def matches(self, request: Request) -> bool:
        return (self.times > 0 and (self.method is None or self.method == request.method)
                and (self.path_contains is None or self.path_contains in request.path))


def _error(status: int, message: str, category: str | None = None, **extra: Any) -> Response:
    correlation = str(uuid.uuid4())
    body = {"status": "error", "message": message, "correlationId": correlation, **extra}
    if category:
        body["category"] = category
    return Response.json(body, status, {"X-HubSpot-Correlation-Id": correlation},
                         content_type="application/json;charset=utf-8")


def _ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response.json(data, status, {"X-HubSpot-Correlation-Id": str(uuid.uuid4()), **(headers or {})},
                         content_type="application/json;charset=utf-8")


class HubSpotSandbox:
    """One emulated HubSpot portal."""

    def __init__(self, *, clock: Clock | None = None, tier_max_per_10s: int = 100, daily_limit: int = 250_000,
                 search_per_second: int = 5, index_lag_seconds: float = 0.0, latency_seconds: float = 0.0,
                 batch_update_missing_ids: str = "207", company_currency: str = "USD", portal_id: int = 99999) -> None:
        self.clock = clock or Clock()
        self.store = Store(self.clock, index_lag_seconds=index_lag_seconds, company_currency=company_currency)
        self.limits = RateLimits(self.clock, max_per_10s=tier_max_per_10s, daily_limit=daily_limit,
                                 search_per_second=search_per_second)
        self.search_limits = Limits()
        self.latency_seconds = latency_seconds
        self.batch_update_missing_ids = batch_update_missing_ids
        self.portal_id = portal_id
        self.private_token = "pat-na1-sandbox-5e1f0c2a-7b3d-4c1e-9a8f-000000000001"
        self.oauth_client = {"client_id": "sandbox-oauth-client-0001", "client_secret": "sandbox-oauth-secret-0001",
                             "refresh_token": "na1-sandbox-refresh-0001"}
        self._access_tokens: dict[str, datetime] = {}
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._server: RunningServer | None = None
        self.before_request = None
        self.router = self._routes()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
        self._server = serve_in_thread(self, host=host, port=port, name="hubspot")
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
        return {"access_token": self.private_token, **self.oauth_client}

    # -- control API ----------------------------------------------------------------------

    def create(self, object_type: str, properties: dict[str, Any], *, created_at: datetime | None = None) -> str:
        """Create a record as a user or a form would (validated)."""
        with self._lock, self.store.lock:
            values = self.store.validate(object_type, properties, creating=True)
            created = int(created_at.timestamp() * 1000) if created_at else None
            return self.store.create(object_type, values, created_ms=created).id

    def seed(self, object_type: str, rows: list[dict[str, str]], *, created_at: datetime | None = None) -> list[str]:
        """Fast bulk creation without validation (benchmarks)."""
        with self._lock, self.store.lock:
            created = int(created_at.timestamp() * 1000) if created_at else None
            return [self.store.create(object_type, {k: str(v) for k, v in row.items()}, created_ms=created).id
                    for row in rows]

    def update(self, object_type: str, record_id: str, properties: dict[str, Any]) -> None:
        with self._lock, self.store.lock:
            record = self.store.records[object_type][str(record_id)]
            self.store.update(object_type, record, self.store.validate(object_type, properties, creating=False))

    def archive(self, object_type: str, record_id: str) -> None:
        with self._lock, self.store.lock:
            self.store.records[object_type][str(record_id)].archived = True

    def associate(self, deal_id: str, contact_id: str) -> None:
        with self._lock:
            self.store.associations.setdefault(str(deal_id), set()).add(str(contact_id))

    def record(self, object_type: str, record_id: str) -> dict[str, str] | None:
        with self._lock:
            found = self.store.records[object_type].get(str(record_id))
            return dict(found.properties) if found else None

    def set_limits(self, *, max_per_10s: int | None = None, daily_limit: int | None = None,
                   daily_used: int | None = None, index_lag_seconds: float | None = None,
                   latency_seconds: float | None = None) -> None:
        with self._lock:
            if max_per_10s is not None:
                self.limits.max_per_10s = max_per_10s
            if daily_limit is not None:
                self.limits.daily_limit = daily_limit
            if daily_used is not None:
                self.limits.daily_used = daily_used
            if index_lag_seconds is not None:
                self.store.index_lag_seconds = index_lag_seconds
            if latency_seconds is not None:
                self.latency_seconds = latency_seconds

    def inject(self, kind: str, *, times: int = 1, method: str | None = None, path_contains: str | None = None,
               delay: float = 0.0) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self.faults.append(Fault(kind, times, method, path_contains, delay))

    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.limits.rejected = 0

    def api_calls(self, path_contains: str = "") -> int:
        with self._lock:
            return sum(1 for entry in self.requests if path_contains in entry["path"])

    @property
    def rate_limited(self) -> int:
        """How many 429s the portal has served."""
        return sum(1 for entry in self.request_log() if entry["status"] == 429)

    # -- HTTP --------------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        if self.before_request is not None and not request.path.startswith("/_sandbox/"):
            self.before_request(request)  # a test's hook: "while the daemon is paging, a rep creates a lead"
        if request.path.startswith("/_sandbox/"):
            handler = self.router.resolve(request)
            try:
                return handler(request) if handler else _error(404, "not found")
            except PropertyError as exc:
                return _error(400, exc.message, "VALIDATION_ERROR")
        entry = {"method": request.method, "path": request.path, "query": {k: v for k, v in request.query.items()},
                 "at": self.clock.now().isoformat(), "body": _json_or_none(request.body)}
        with self._lock:
            self.requests.append(entry)
            fault = next((f for f in self.faults if f.matches(request)), None)
            if fault:
                fault.times -= 1
        response = self._handle(request, fault)
        entry["status"] = response.status
        if self.latency_seconds:
            response.delay_seconds += self.latency_seconds
        if fault and fault.kind == "lost_response":
            raise DropConnection()
        return response

    def _handle(self, request: Request, fault: Fault | None) -> Response:
        if fault and fault.kind == "drop":
            raise DropConnection()
        if request.path == "/oauth/v1/token":
            return self._token(request)
        if not self._authorised(request.header("Authorization")):
            return _error(401, "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
                               "you can find more details at https://developers.hubspot.com/docs/methods/auth/"
                               "oauth-overview", "INVALID_AUTHENTICATION")
        is_search = request.path.endswith("/search")
        if fault and fault.kind in ("429", "429_retry_after", "daily_429"):
            policy = "DAILY" if fault.kind == "daily_429" else "TEN_SECONDLY_ROLLING"
            message = "You have reached your daily limit." if policy == "DAILY" else \
                "You have reached your ten_secondly_rolling limit."
            response = _error(429, message, errorType="RATE_LIMIT", policyName=policy)
            if fault.kind == "429_retry_after":
                response.headers["Retry-After"] = "1"
            return response
        if fault and fault.kind in TRANSIENT:
            response = _error(TRANSIENT[fault.kind], "Service temporarily unavailable")
            if fault.kind == "477":
                response.headers["Retry-After"] = "1"
            return response
        if fault and fault.kind == "html_503":
            return Response.text("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", 503,
                                 content_type="text/html")
        refused = self.limits.admit(is_search)
        if refused is not None:
            return Response.json(refused, 429, {"X-HubSpot-Correlation-Id": refused["correlationId"]},
                                 content_type="application/json;charset=utf-8")
        handler = self.router.resolve(request)
        if handler is None:
            return _error(404, "resource not found")
        request.fault = fault  # type: ignore[attr-defined]
        try:
            with self._lock, self.store.lock:
                response = handler(request)
        except SearchError as exc:
            response = _error(exc.status, exc.message, exc.category)
        except PropertyError as exc:
            response = _validation_error([exc])
        except (ValueError, KeyError, TypeError):
            response = _error(400, "Invalid input JSON on line 1", "VALIDATION_ERROR")
        if not is_search:
            response.headers.update(self.limits.headers())
        if fault and fault.kind == "hang":
            response.delay_seconds += fault.delay
        return response

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        token = header[7:].strip()
        if token == self.private_token:
            return True
        expires = self._access_tokens.get(token)
        return expires is not None and self.clock.now() < expires

    def _token(self, request: Request) -> Response:
        form = request.form()
        if form.get("grant_type") != "refresh_token":
            return _error(400, "unsupported grant_type", "BAD_GRANT_TYPE")
        if form.get("client_id") != self.oauth_client["client_id"] or \
                form.get("client_secret") != self.oauth_client["client_secret"]:
            return _error(400, "missing or unknown client id", "BAD_CLIENT_ID")
        if form.get("refresh_token") != self.oauth_client["refresh_token"]:
            return _error(400, "missing or invalid refresh token", "BAD_REFRESH_TOKEN")
        token = "CJ" + secrets.token_urlsafe(120)[:200]
        self._access_tokens[token] = self.clock.now() + timedelta(seconds=1800)
        return Response.json({"token_type": "bearer", "refresh_token": form["refresh_token"], "access_token": token,
                              "expires_in": 1800}, 200, content_type="application/json;charset=utf-8")

    # -- routes -------------------------------------------------------------------------------

    def _routes(self) -> Router:
        router = Router()
        router.add("POST", rf"/crm/v3/objects/{OBJECTS}/search", self._search)
        router.add("POST", rf"/crm/v3/objects/{OBJECTS}/batch/read", self._batch_read)
        router.add("POST", rf"/crm/v3/objects/{OBJECTS}/batch/update", self._batch_update)
        router.add("POST", rf"/crm/v3/objects/{OBJECTS}/batch/create", self._batch_create)
        router.add("GET", rf"/crm/v3/objects/{OBJECTS}", self._page)
        router.add("POST", rf"/crm/v3/objects/{OBJECTS}", self._create)
        router.add("GET", rf"/crm/v3/objects/{OBJECTS}/(?P<id>\d+)", self._get)
        router.add("PATCH", rf"/crm/v3/objects/{OBJECTS}/(?P<id>\d+)", self._patch)
        router.add("POST", rf"/crm/v3/properties/{OBJECTS}/batch/create", self._batch_create_properties)
        router.add("GET", rf"/crm/v3/properties/{OBJECTS}/groups", self._groups)
        router.add("POST", rf"/crm/v3/properties/{OBJECTS}/groups", self._create_group)
        router.add("GET", rf"/crm/v3/properties/{OBJECTS}/groups/(?P<name>[\w-]+)", self._group)
        router.add("GET", rf"/crm/v3/properties/{OBJECTS}", self._properties)
        router.add("POST", rf"/crm/v3/properties/{OBJECTS}", self._create_property)
        router.add("GET", rf"/crm/v3/properties/{OBJECTS}/(?P<name>[\w-]+)", self._property)
        router.add("GET", r"/crm/v3/pipelines/deals", lambda r: _ok({"results": self.store.pipelines}))
        router.add("GET", r"/crm/v3/pipelines/deals/(?P<id>[\w-]+)", self._pipeline)
        router.add("GET", r"/crm/v4/objects/(?P<from>deals|contacts)/(?P<id>\d+)/associations/(?P<to>deals|contacts)",
                   self._associations)
        router.add("POST", r"/crm/v4/associations/(?P<from>deals|contacts)/(?P<to>deals|contacts)/batch/read",
                   self._associations_batch)
        router.add("GET", r"/settings/v3/currencies/company-currency", lambda r: _ok(
            {"currencyCode": self.store.company_currency, "visibleInUI": True}))
        # control API
        router.add("POST", rf"/_sandbox/{OBJECTS}", lambda r: _ok({"id": self.create(
            r.path_params["type"], _values(r), created_at=_created_at(r))}, 201))
        router.add("PATCH", rf"/_sandbox/{OBJECTS}/(?P<id>\d+)", lambda r: (
            self.update(r.path_params["type"], r.path_params["id"], r.json()), _ok({"ok": True}))[1])
        router.add("GET", rf"/_sandbox/{OBJECTS}/(?P<id>\d+)", lambda r: _ok(
            self.record(r.path_params["type"], r.path_params["id"])))
        router.add("POST", r"/_sandbox/associations", lambda r: (
            self.associate(r.json()["deal_id"], r.json()["contact_id"]), _ok({"ok": True}))[1])
        router.add("POST", r"/_sandbox/faults", lambda r: (self.inject(**r.json()), _ok({"ok": True}))[1])
        router.add("POST", r"/_sandbox/limits", lambda r: (self.set_limits(**r.json()), _ok({"ok": True}))[1])
        router.add("GET", r"/_sandbox/requests", lambda r: _ok(self.request_log()))
        router.add("POST", r"/_sandbox/requests/reset", lambda r: (self.reset_log(), _ok({"ok": True}))[1])
        return router

    def _record_json(self, object_type: str, record: Record, names: list[str] | None) -> dict[str, Any]:
        modified = MODIFIED[object_type]
        properties = record.properties if names is None else {
            name: record.properties.get(name) for name in dict.fromkeys(names + ["createdate", "hs_object_id",
                                                                                 modified])}
        return {"id": record.id, "properties": dict(properties), "createdAt": record.properties["createdate"],
                "updatedAt": record.properties[modified], "archived": record.archived}

    def _search(self, request: Request) -> Response:
        return _ok(search(self.store, request.path_params["type"], request.body, self.search_limits))

    def _live(self, object_type: str, record_id: Any) -> Record | None:
        record = self.store.records[object_type].get(str(record_id))
        return record if record is not None and not record.archived else None

    def _page(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        limit = min(int(request.arg("limit", "10")), 100)
        after = int(request.arg("after", "0") or 0)
        live = [r for r in self.store.records[object_type].values() if not r.archived and int(r.id) > after]
        live.sort(key=lambda r: int(r.id))
        names = request.query.get("properties")
        page = live[:limit]
        body: dict[str, Any] = {"results": [self._record_json(object_type, r, names or []) for r in page]}
        if len(live) > limit:
            body["paging"] = {"next": {"after": page[-1].id, "link": f"?after={page[-1].id}"}}
        return _ok(body)

    def _get(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        record = self._live(object_type, request.path_params["id"])
        if record is None:
            return _error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                          context={"id": [request.path_params["id"]]})
        body = self._record_json(object_type, record, request.query.get("properties") or [])
        if "associations" in request.query and object_type == "deals":
            contacts = sorted(self.store.associations.get(record.id, set()), key=int)
            body["associations"] = {"contacts": {"results": [{"id": c, "type": "deal_to_contact"} for c in contacts]}}
        return _ok(body)

    def _create(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        values = self.store.validate(object_type, (request.json() or {}).get("properties") or {}, creating=True)
        return _ok(self._record_json(object_type, self.store.create(object_type, values), None), 201)

    def _patch(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        record = self._live(object_type, request.path_params["id"])
        if record is None:
            return _error(404, "resource not found")
        values = self.store.validate(object_type, (request.json() or {}).get("properties") or {}, creating=False)
        self.store.update(object_type, record, values)
        return _ok(self._record_json(object_type, record, None))

    def _batch_read(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        body = request.json() or {}
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_LIMIT:
            return _error(400, f"Batch input size exceeds {BATCH_LIMIT}", "VALIDATION_ERROR")
        if body.get("propertiesWithHistory") and len(inputs) > 50:
            return _error(400, "Batch read with propertiesWithHistory is limited to 50 inputs", "VALIDATION_ERROR")
        found, missing = [], []
        for item in inputs:
            record = self._live(object_type, item.get("id"))
            (found if record else missing).append(record or str(item.get("id")))
        return self._batch_answer(object_type, [self._record_json(object_type, r, body.get("properties") or [])
                                                for r in found], missing)

    def _batch_answer(self, object_type: str, results: list, missing: list[str]) -> Response:
        now = iso(self.store.now_ms())
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if not missing:
            return _ok(body)
        body["numErrors"] = 1
        body["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                           "message": f"Could not get some {object_type[:-1].upper()} objects, they may be deleted or "
                                      "not exist. Check that ids are valid.",
                           "context": {"ids": missing}, "errors": [], "links": {}}]
        return _ok(body, 207)

    def _batch_update(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        inputs = (request.json() or {}).get("inputs") or []
        if len(inputs) > BATCH_LIMIT:
            return _error(400, f"Batch input size exceeds {BATCH_LIMIT}", "VALIDATION_ERROR")
        validated, errors = [], []
        for item in inputs:
            try:
                validated.append((item, self.store.validate(object_type, item.get("properties") or {},
                                                            creating=False)))
            except PropertyError as exc:
                errors.append(exc)
        if errors:  # one bad value rejects the whole batch (§4.1)
            return _validation_error(errors)
        missing = [str(item.get("id")) for item, _ in validated if self._live(object_type, item.get("id")) is None]
        if missing and self.batch_update_missing_ids == "400":
            return _error(400, f"Could not get some {object_type[:-1].upper()} objects, they may be deleted or not "
                               "exist. Check that ids are valid.", "OBJECT_NOT_FOUND", context={"ids": missing})
        results = []
        for item, values in validated:
            record = self._live(object_type, item.get("id"))
            if record is not None:
                self.store.update(object_type, record, values)
                results.append(self._record_json(object_type, record, list(values)))
        return self._batch_answer(object_type, results, missing)

    def _batch_create(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        inputs = (request.json() or {}).get("inputs") or []
        if len(inputs) > BATCH_LIMIT:
            return _error(400, f"Batch input size exceeds {BATCH_LIMIT}", "VALIDATION_ERROR")
        values = [self.store.validate(object_type, item.get("properties") or {}, creating=True) for item in inputs]
        records = [self.store.create(object_type, v) for v in values]
        now = iso(self.store.now_ms())
        return _ok({"status": "COMPLETE", "results": [self._record_json(object_type, r, None) for r in records],
                    "startedAt": now, "completedAt": now}, 201)

    def _properties(self, request: Request) -> Response:
        return _ok({"results": [p.to_json() for p in self.store.properties[request.path_params["type"]].values()]})

    def _property(self, request: Request) -> Response:
        spec = self.store.properties[request.path_params["type"]].get(request.path_params["name"])
        if spec is None:
            return _error(404, f"Unable to find property {request.path_params['name']}", "OBJECT_NOT_FOUND")
        return _ok(spec.to_json())

    def _create_property(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        result = self._new_property(object_type, request.json() or {})
        if isinstance(result, Response):
            return result
        fault = getattr(request, "fault", None)
        return _ok(result.to_json(), 200 if fault and fault.kind == "status_200_for_201" else 201)

    def _batch_create_properties(self, request: Request) -> Response:
        """§5.1 batch/create: 201 when all were created, 207 listing the ones that failed."""
        object_type = request.path_params["type"]
        inputs = (request.json() or {}).get("inputs") or []
        if len(inputs) > BATCH_LIMIT:
            return _error(400, f"Batch input size exceeds {BATCH_LIMIT}", "VALIDATION_ERROR")
        results, errors = [], []
        for body in inputs:
            outcome = self._new_property(object_type, body)
            if isinstance(outcome, Response):
                failure = json.loads(outcome.body)
                errors.append({"status": "error", "category": failure.get("category", "VALIDATION_ERROR"),
                               "message": failure["message"], "context": {"name": [str(body.get("name"))]},
                               "errors": [], "links": {}})
            else:
                results.append(outcome.to_json())
        now = iso(self.store.now_ms())
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if errors:
            body.update(numErrors=len(errors), errors=errors)
        return _ok(body, 207 if errors else 201)

    def _new_property(self, object_type: str, body: dict[str, Any]) -> Property | Response:
        missing = [key for key in ("name", "label", "type", "fieldType", "groupName") if not body.get(key)]
        if missing:
            return _error(400, f"Missing required fields: {', '.join(missing)}", "VALIDATION_ERROR")
        if body["name"] in self.store.properties[object_type]:
            return _error(409, f"Property named '{body['name']}' already exists.", "OBJECT_ALREADY_EXISTS")
        if body["fieldType"] not in FIELD_TYPES.get(body["type"], set()):
            return _error(400, f"Property type {body['type']} is not compatible with fieldType {body['fieldType']}",
                          "VALIDATION_ERROR")
        if body["groupName"] not in self.store.groups[object_type]:
            return _error(400, f"Property group {body['groupName']} does not exist", "VALIDATION_ERROR")
        spec = Property(body["name"], body["label"], body["type"], body["fieldType"], body["groupName"],
                        options=body.get("options") or [], hubspot_defined=False,
                        description=body.get("description", ""), created_at=iso(self.store.now_ms()))
        self.store.properties[object_type][spec.name] = spec
        return spec

    def _groups(self, request: Request) -> Response:
        return _ok({"results": list(self.store.groups[request.path_params["type"]].values())})

    def _group(self, request: Request) -> Response:
        group = self.store.groups[request.path_params["type"]].get(request.path_params["name"])
        return _ok(group) if group else _error(404, "Unable to find group", "OBJECT_NOT_FOUND")

    def _create_group(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        body = request.json() or {}
        if not body.get("name") or not body.get("label"):
            return _error(400, "Property groups need name and label", "VALIDATION_ERROR")
        if body["name"] in self.store.groups[object_type]:
            return _error(409, f"A group named {body['name']} already exists.", "OBJECT_ALREADY_EXISTS")
        group = {"name": body["name"], "label": body["label"], "displayOrder": body.get("displayOrder", -1),
                 "archived": False}
        self.store.groups[object_type][body["name"]] = group
        return _ok(group, 201)

    def _pipeline(self, request: Request) -> Response:
        found = next((p for p in self.store.pipelines if p["id"] == request.path_params["id"]), None)
        return _ok(found) if found else _error(404, "Unable to find pipeline", "OBJECT_NOT_FOUND")

    def _contacts_of(self, from_type: str, record_id: str, to_type: str) -> list[str]:
        if from_type == "deals" and to_type == "contacts":
            return sorted(self.store.associations.get(record_id, set()), key=int)
        if from_type == "contacts" and to_type == "deals":
            return sorted((d for d, cs in self.store.associations.items() if record_id in cs), key=int)
        return []

    @staticmethod
    def _association_items(ids: list[str], from_type: str) -> list[dict[str, Any]]:
        type_id = 3 if from_type == "deals" else 4
        return [{"toObjectId": int(i), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id,
                                                             "label": None}]} for i in ids]

    def _associations(self, request: Request) -> Response:
        params = request.path_params
        ids = self._contacts_of(params["from"], params["id"], params["to"])
        limit = min(int(request.arg("limit", "500")), 500)
        after = int(request.arg("after", "0") or 0)
        page = ids[after:after + limit]
        body: dict[str, Any] = {"results": self._association_items(page, params["from"])}
        if after + limit < len(ids):
            body["paging"] = {"next": {"after": str(after + limit), "link": None}}
        return _ok(body)

    def _associations_batch(self, request: Request) -> Response:
        params = request.path_params
        inputs = (request.json() or {}).get("inputs") or []
        if len(inputs) > 1000:
            return _error(400, "Batch input size exceeds 1000", "VALIDATION_ERROR")
        results = []
        for item in inputs:
            ids = self._contacts_of(params["from"], str(item.get("id")), params["to"])
            after = int(item.get("after") or 0)
            if not ids:
                continue  # inputs with no associations are absent from results
            page = ids[after:after + 500]
            entry: dict[str, Any] = {"from": {"id": str(item.get("id"))},
                                     "to": self._association_items(page, params["from"])}
            if after + 500 < len(ids):
                entry["paging"] = {"next": {"after": str(after + 500), "link": None}}
            results.append(entry)
        now = iso(self.store.now_ms())
        return _ok({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now})


def _validation_error(errors: list[PropertyError]) -> Response:
    """The whole-batch 400 of §4.1: per-property codes inside a JSON string in ``message``
    and again in ``errors[].code``."""
    details = [{"isValid": False, "message": e.message, "error": e.code, "name": e.name} for e in errors]
    return _error(400, "Property values were not valid: " + json.dumps(details), "VALIDATION_ERROR",
                  errors=[{"message": e.message, "code": e.code, "context": {"propertyName": [e.name]}}
                          for e in errors])


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _values(request: Request) -> dict[str, Any]:
    values = dict(request.json() or {})
    values.pop("_created_at", None)
    return values


def _created_at(request: Request) -> datetime | None:
    value = (request.json() or {}).get("_created_at")
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
