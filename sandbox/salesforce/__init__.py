"""A Salesforce org on loopback HTTPS that the real simple-salesforce can talk to unmodified.

Wire facts come from shared/reference/salesforce-api.md (section numbers in comments):
OAuth and SOAP login (§1), the 401 list body (§1.3), SOQL with paging and
``Sforce-Query-Options`` (§2), sObject CRUD and Collections with per-record SaveResults (§3),
error arrays and codes (§4), ``Sforce-Limit-Info`` and the daily limit (§5), describe (§6),
Tooling custom fields and field-level security (§8.4).

Start it with :meth:`SalesforceSandbox.start`; ``url`` is both the login URL and the instance
URL, ``ca_path`` the CA to trust, ``credentials`` what a config needs. The same control API
is offered in Python and over HTTPS under ``/_sandbox/...``. Faults are injected per test
with :meth:`inject`.
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sandbox.clock import Clock
from sandbox.salesforce.auth import Authority, OAuthError
from sandbox.salesforce.org import Org, QueryResult, WriteError, serialise
from sandbox.salesforce.soql import SoqlError
from sandbox.tls import make_tls_files
from sandbox.web import DropConnection, Request, Response, Router, RunningServer, serve_in_thread

API = r"/services/data/v(?P<version>\d+\.\d)"
FAULT_KINDS = {"request_limit", "lock_row", "validation", "expire_session", "server_error", "slow", "drop",
               "lost_response", "non_list_401", "invalid_locator"}
COLLECTION_LIMIT = 200
MAX_URI = 16_384


@dataclass
class Fault:
    kind: str
    times: int = 1
    method: str | None = None
    path_contains: str | None = None
    record_ids: set[str] | None = None
    delay: float = 0.0
    message: str = ""

    def matches(self, request: Request) -> bool:
        return (self.times > 0 and (self.method is None or self.method == request.method)
                and (self.path_contains is None or self.path_contains in request.raw_target))


@dataclass
class _Cursor:
    result: QueryResult
    created: datetime
    fields: list = field(default_factory=list)


class SalesforceSandbox:
    """One emulated org behind an HTTPS server."""

    def __init__(self, *, data_dir: Path, clock: Clock | None = None, multi_currency: bool = False,
                 org_currency: str = "USD", daily_api_limit: int = 15_000, session_seconds: int = 7200,
                 assignment_rule_owner_id: str | None = None, require_fls: bool = True,
                 latency_seconds: float = 0.0) -> None:
        self.data_dir = Path(data_dir)
        self.clock = clock or Clock()
        self.org = Org(self.clock, multi_currency=multi_currency, org_currency=org_currency,
                       require_fls=require_fls, assignment_rule_owner_id=assignment_rule_owner_id)
        self.auth = Authority(self.data_dir, self.clock, self.org.integration_user, session_seconds)
        self.daily_api_limit = daily_api_limit
        self.api_used = 0
        self.latency_seconds = latency_seconds
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self._cursors: dict[str, _Cursor] = {}
        self._lock = threading.RLock()
        self._server: RunningServer | None = None
        self.before_request = None
        self.tls = make_tls_files(self.data_dir / "tls")
        self.router = self._routes()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
        self._server = serve_in_thread(self, host=host, port=port, tls=self.tls, name="salesforce")
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
    def ca_path(self) -> Path:
        return self.tls.ca_pem

    @property
    def credentials(self) -> dict[str, str]:
        return {"client_id": self.auth.client_id, "client_secret": self.auth.client_secret,
                "username": self.auth.username, "password": self.auth.password,
                "security_token": self.auth.security_token, "private_key_path": str(self.auth.private_key_path),
                "refresh_token": next(iter(self.auth.refresh_tokens))}

    # -- control API ------------------------------------------------------------------

    def create(self, object_name: str, values: dict[str, Any], *, created_at: datetime | None = None) -> str:
        """Create a record as a user would (validated), e.g. a web-to-lead submission."""
        with self._lock:
            return self.org.insert(object_name, values, user_id=self.org.sales_rep, created_at=created_at,
                                   validate=True)

    def seed(self, object_name: str, rows: list[dict[str, Any]], *, created_at: datetime | None = None) -> list[str]:
        """Fast bulk creation without validation (benchmarks, large fixtures)."""
        with self._lock:
            return [self.org.insert(object_name, row, user_id=self.org.sales_rep, created_at=created_at)
                    for row in rows]

    def update(self, object_name: str, record_id: str, values: dict[str, Any]) -> None:
        """Edit a record as a sales rep would (bumps the modification stamps)."""
        with self._lock:
            self.org.update(object_name, record_id, values, user_id=self.org.sales_rep, auto_assign=False)

    def delete(self, object_name: str, record_id: str) -> None:
        with self._lock:
            self.org.delete(object_name, record_id)

    def convert_lead(self, lead_id: str, *, create_opportunity: bool = True,
                     opportunity: dict[str, Any] | None = None) -> dict[str, str]:
        with self._lock:
            values = self.org._convert_values(self.org.schema["Opportunity"], opportunity or {}, creating=True)
            return self.org.convert_lead(lead_id, create_opportunity=create_opportunity, opportunity=values)

    def add_contact_role(self, opportunity_id: str, contact_id: str, primary: bool = True) -> str:
        return self.create("OpportunityContactRole", {"OpportunityId": opportunity_id, "ContactId": contact_id,
                                                      "IsPrimary": primary})

    def record(self, record_id: str) -> dict[str, Any] | None:
        """A record as stored, serialised like the API would."""
        with self._lock:
            found = self.org.get(record_id)
            return {key: serialise(value) for key, value in found[1].items()} if found else None

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Run SOQL without the API (no auth, no limits): for tests and the demo."""
        with self._lock:
            result = self.org.run_query(soql)
            return [self._serialise_record(result.object, record_id, result.query) for record_id in result.ids]

    def inject(self, kind: str, *, times: int = 1, method: str | None = None, path_contains: str | None = None,
               record_ids: list[str] | None = None, delay: float = 0.0) -> None:
        """Make the next ``times`` matching requests fail in the given way (see FAULT_KINDS)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self.faults.append(Fault(kind, times, method, path_contains, set(record_ids) if record_ids else None,
                                     delay))

    def expire_sessions(self, *, keep_rejecting: bool = False) -> None:
        """Expire every session; with ``keep_rejecting`` new logins succeed but their tokens are dead."""
        self.auth.expire_all()
        self.auth.sessions_die_on_arrival = keep_rejecting

    def set_api_usage(self, used: int, limit: int | None = None) -> None:
        with self._lock:
            self.api_used = used
            if limit is not None:
                self.daily_api_limit = limit

    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def api_calls(self, path_contains: str = "") -> int:
        """REST calls made so far (optionally only those whose path contains a string)."""
        with self._lock:
            return sum(1 for entry in self.requests if entry["kind"] == "rest" and path_contains in entry["path"])

    # -- HTTP ---------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        if self.before_request is not None and not request.path.startswith("/_sandbox/"):
            self.before_request(request)  # a test's hook: "while the daemon is paging, a rep creates a lead"
        if request.path.startswith("/_sandbox/"):
            handler = self.router.resolve(request)
            try:
                return handler(request) if handler else Response.json({"error": "not found"}, 404)
            except (WriteError, SoqlError) as exc:
                return Response.json({"error": exc.code, "message": getattr(exc, "message", str(exc))}, 400)
        if request.path == "/services/oauth2/token" or request.path.startswith("/services/Soap/u/"):
            handler = self.router.resolve(request)
            return handler(request) if handler else _not_found()
        return self._rest(request)

    def _rest(self, request: Request) -> Response:
        entry = {"kind": "rest", "method": request.method, "path": request.path,
                 "query": {k: v[0] for k, v in request.query.items()}, "at": self.clock.now().isoformat(),
                 "auto_assign": request.header("Sforce-Auto-Assign"), "body": _json_or_none(request.body)}
        with self._lock:
            self.requests.append(entry)
            fault = next((f for f in self.faults if f.matches(request)), None)
            if fault:
                fault.times -= 1
        response = self._rest_inner(request, fault)
        entry["status"] = response.status
        if self.latency_seconds:
            response.delay_seconds += self.latency_seconds
        if fault and fault.kind == "lost_response":
            raise DropConnection()
        return response

    def _rest_inner(self, request: Request, fault: Fault | None) -> Response:
        if len(request.raw_target) > MAX_URI:
            return Response.text("URI Too Long", 414)
        if fault and fault.kind == "drop":
            raise DropConnection()
        if fault and fault.kind == "server_error":
            return Response.text("<html><body>Service Unavailable: the server is busy</body></html>", 503,
                                 content_type="text/html")
        if fault and fault.kind == "expire_session":
            self.auth.expire_all()
        if self.auth.check(request.header("Authorization")) is None:
            if fault and fault.kind == "non_list_401":
                return Response.json({"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}, 401)
            return Response.json([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], 401)
        with self._lock:
            if self.api_used >= self.daily_api_limit or (fault and fault.kind == "request_limit"):
                return self._api_response([{"message": "TotalRequests Limit exceeded.",
                                            "errorCode": "REQUEST_LIMIT_EXCEEDED"}], 403)
            self.api_used += 1
        handler = self.router.resolve(request)
        if handler is None:
            return self._api_response([{"message": "The requested resource does not exist",
                                        "errorCode": "NOT_FOUND"}], 404)
        request.fault = fault  # type: ignore[attr-defined]
        try:
            with self._lock:
                response = handler(request)
        except SoqlError as exc:
            response = self._api_response([{"message": exc.message, "errorCode": exc.code}], 400)
        except WriteError as exc:
            response = self._api_response([{"message": exc.message, "errorCode": exc.code, "fields": exc.fields}],
                                          400)
        except ValueError:
            response = self._api_response([{"message": "The request body is not valid JSON",
                                            "errorCode": "JSON_PARSER_ERROR"}], 400)
        if fault and fault.kind == "slow":
            response.delay_seconds += fault.delay
        return response

    def _api_response(self, data: Any, status: int = 200) -> Response:
        headers = {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.daily_api_limit}"}
        if status == 204:
            return Response.empty(204, headers)
        return Response.json(data, status, headers)

    # -- routes -------------------------------------------------------------------------

    def _routes(self) -> Router:
        router = Router()
        router.add("POST", r"/services/oauth2/token", self._token)
        router.add("POST", r"/services/Soap/u/(?P<version>[\d.]+)", self._soap_login)
        router.add("GET", API + r"/limits/?", lambda r: self._api_response({
            "DailyApiRequests": {"Max": self.daily_api_limit, "Remaining": max(0, self.daily_api_limit - self.api_used)},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000}}))
        router.add("GET", API + r"/sobjects/?", self._global_describe)
        router.add("GET", API + r"/sobjects/(?P<object>\w+)/describe/?", self._describe)
        router.add("POST", API + r"/sobjects/(?P<object>\w+)/?", self._create)
        router.add("GET", API + r"/sobjects/(?P<object>\w+)/(?P<id>\w+)/?", self._get)
        router.add("PATCH", API + r"/sobjects/(?P<object>\w+)/(?P<id>\w+)/?", self._patch)
        router.add("DELETE", API + r"/sobjects/(?P<object>\w+)/(?P<id>\w+)/?", self._delete)
        router.add("GET", API + r"/(?P<endpoint>query|queryAll)/?", self._query)
        router.add("GET", API + r"/(?:query|queryAll)/(?P<locator>01g\w+-\d+)/?", self._query_more)
        router.add("PATCH", API + r"/composite/sobjects/?", self._collection_update)
        router.add("POST", API + r"/composite/sobjects/?", self._collection_create)
        router.add("POST", API + r"/tooling/sobjects/CustomField/?", self._custom_field)
        # control API
        router.add("POST", r"/_sandbox/records/(?P<object>\w+)", lambda r: Response.json(
            {"id": self.create(r.path_params["object"], _values(r), created_at=_created_at(r))}, 201))
        router.add("PATCH", r"/_sandbox/records/(?P<object>\w+)/(?P<id>\w+)", lambda r: (
            self.update(r.path_params["object"], r.path_params["id"], _values(r)), Response.empty(204))[1])
        router.add("DELETE", r"/_sandbox/records/(?P<object>\w+)/(?P<id>\w+)", lambda r: (
            self.delete(r.path_params["object"], r.path_params["id"]), Response.empty(204))[1])
        router.add("GET", r"/_sandbox/records/\w+/(?P<id>\w+)", lambda r: (
            Response.json(self.record(r.path_params["id"])) if self.record(r.path_params["id"]) else _not_found()))
        router.add("POST", r"/_sandbox/leads/(?P<id>\w+)/convert", lambda r: Response.json(self.convert_lead(
            r.path_params["id"], create_opportunity=(r.json() or {}).get("create_opportunity", True),
            opportunity=(r.json() or {}).get("opportunity"))))
        router.add("GET", r"/_sandbox/query", lambda r: Response.json(self.query(r.arg("q", ""))))
        router.add("POST", r"/_sandbox/faults", lambda r: (self.inject(**r.json()), Response.json({"ok": True}))[1])
        router.add("POST", r"/_sandbox/sessions/expire", lambda r: (
            self.expire_sessions(keep_rejecting=bool((r.json() or {}).get("keep_rejecting"))),
            Response.json({"ok": True}))[1])
        router.add("GET", r"/_sandbox/requests", lambda r: Response.json(self.request_log()))
        router.add("POST", r"/_sandbox/requests/reset", lambda r: (self.reset_log(), Response.json({"ok": True}))[1])
        router.add("POST", r"/_sandbox/api-usage", lambda r: (self.set_api_usage(**r.json()),
                                                              Response.json({"ok": True}))[1])
        return router

    def _token(self, request: Request) -> Response:
        form = request.form()
        basic = _basic_auth(request.header("Authorization"))
        audiences = {"https://login.salesforce.com", "https://test.salesforce.com", self.url}
        try:
            token = self.auth.token_grant(form, basic, audiences)
        except OAuthError as exc:
            return Response.json({"error": exc.error, "error_description": exc.description}, 400)
        return Response.json(self.auth.token_body(token, self.url))

    def _soap_login(self, request: Request) -> Response:
        version = float(request.path_params["version"])
        session = self.auth.soap_login(request.body.decode("utf-8", "replace"), version)
        if session is None:
            return Response.text(_SOAP_FAULT, 500, content_type="text/xml; charset=utf-8")
        server_url = f"{self.url}/services/Soap/u/{request.path_params['version']}/00D5g000004SbxA"
        return Response.text(_SOAP_OK.format(server_url=server_url, session=session, user=self.org.integration_user,
                                             currency=self.org.org_currency,
                                             multi=str(self.org.multi_currency).lower()),
                             200, content_type="text/xml; charset=utf-8")

    def _base(self, request: Request) -> str:
        return f"/services/data/v{request.path_params['version']}"

    def _global_describe(self, request: Request) -> Response:
        base = self._base(request)
        return self._api_response({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
            {"name": o.name, "label": o.label, "keyPrefix": o.key_prefix, "custom": False, "queryable": True,
             "createable": o.createable, "updateable": o.updateable,
             "urls": {"sobject": f"{base}/sobjects/{o.name}", "describe": f"{base}/sobjects/{o.name}/describe"}}
            for o in self.org.schema.values()]})

    def _describe(self, request: Request) -> Response:
        sobject = self.org.sobject(request.path_params["object"])
        return self._api_response(sobject.describe(self._base(request)))

    def _create(self, request: Request) -> Response:
        object_name = request.path_params["object"]
        values = request.json() or {}
        if object_name == "FieldPermissions":
            record_id = self.org.grant_field_access(values)
        else:
            record_id = self.org.insert(object_name, values, validate=True)
        return self._api_response({"id": record_id, "success": True, "errors": []}, 201)

    def _get(self, request: Request) -> Response:
        found = self.org.get(request.path_params["id"])
        sobject = self.org.sobject(request.path_params["object"])
        if found is None or found[0] != sobject.name or found[1]["IsDeleted"]:
            return self._api_response([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
                                      404)
        wanted = request.arg("fields")
        names = [n.strip() for n in wanted.split(",")] if wanted else [f.name for f in sobject.fields.values()
                                                                       if f.visible]
        record = {"attributes": self._attributes(sobject.name, found[1]["Id"], request)}
        for name in names:
            spec = sobject.field(name)
            if spec is None:
                return self._api_response([{"message": f"No such column '{name}' on sobject of type {sobject.name}",
                                            "errorCode": "INVALID_FIELD"}], 400)
            record[spec.name] = serialise(found[1].get(spec.name))
        return self._api_response(record)

    def _patch(self, request: Request) -> Response:
        object_name, record_id = request.path_params["object"], request.path_params["id"]
        fault = getattr(request, "fault", None)
        if fault and fault.kind in ("lock_row", "validation"):
            raise _fault_error(fault, self.org.sobject(object_name).label)
        self.org.update(object_name, record_id, request.json() or {},
                        auto_assign=_auto_assign(request))
        return self._api_response(None, 204)

    def _delete(self, request: Request) -> Response:
        self.org.delete(request.path_params["object"], request.path_params["id"])
        return self._api_response(None, 204)

    # -- queries --------------------------------------------------------------------------

    def _query(self, request: Request) -> Response:
        soql = request.arg("q")
        if not soql:
            return self._api_response([{"message": "A query string has to be specified",
                                        "errorCode": "MALFORMED_QUERY"}], 400)
        result = self.org.run_query(soql, include_deleted=request.path_params["endpoint"] == "queryAll")
        if result.count is not None:
            return self._api_response({"totalSize": result.count, "done": True, "records": []})
        locator = "01g" + secrets.token_hex(8)[:15]
        self._cursors[locator] = _Cursor(result, self.clock.now())
        return self._page(request, locator, 0)

    def _query_more(self, request: Request) -> Response:
        locator, _, offset = request.path_params["locator"].partition("-")
        cursor = self._cursors.get(locator)
        fault = getattr(request, "fault", None)
        if cursor is None or self.clock.now() - cursor.created > timedelta(days=2) or \
                (fault and fault.kind == "invalid_locator"):
            return self._api_response([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}],
                                      400)
        return self._page(request, locator, int(offset))

    def _page(self, request: Request, locator: str, offset: int) -> Response:
        result = self._cursors[locator].result
        size = _batch_size(request.header("Sforce-Query-Options"))
        ids = result.ids[offset:offset + size]
        records = [self._serialise_record(result.object, record_id, result.query, request) for record_id in ids]
        done = offset + size >= len(result.ids)
        body: dict[str, Any] = {"totalSize": len(result.ids), "done": done, "records": records}
        if done:
            self._cursors.pop(locator, None)
        else:
            body["nextRecordsUrl"] = f"{self._base(request)}/query/{locator}-{offset + size}"
        return self._api_response(body)

    def _attributes(self, object_name: str, record_id: str, request: Request | None) -> dict[str, str]:
        version = request.path_params.get("version", "62.0") if request else "62.0"
        return {"type": object_name, "url": f"/services/data/v{version}/sobjects/{object_name}/{record_id}"}

    def _serialise_record(self, object_name: str, record_id: str, query, request: Request | None = None) -> dict:
        sobject = self.org.schema[object_name]
        record = self.org.records[object_name][record_id]
        output: dict[str, Any] = {"attributes": self._attributes(object_name, record_id, request)}
        for path, _ in query.fields:
            parts = path.split(".")
            if len(parts) > 1 and parts[0].lower() == object_name.lower():
                parts = parts[1:]
            if len(parts) == 1:
                spec = sobject.field(parts[0])
                output[spec.name] = serialise(record.get(spec.name))
                continue
            relationship = sobject.relationship(parts[0])
            target = self.org.get(record.get(relationship.name) or "") if record.get(relationship.name) else None
            if target is None:
                output[relationship.relationship_name] = None
                continue
            nested = output.get(relationship.relationship_name) or {
                "attributes": self._attributes(target[0], target[1]["Id"], request)}
            target_spec = self.org.schema[target[0]].field(parts[-1])
            nested[target_spec.name] = serialise(self.org.value(self.org.schema[target[0]], target[1],
                                                                ".".join(parts[1:])))
            output[relationship.relationship_name] = nested
        for sub in query.subqueries:
            relationship = sobject.children[sub.object]
            child = self.org.schema[relationship.child]
            rows = [r for r in self.org.records[child.name].values()
                    if r.get(relationship.field) == record_id and not r["IsDeleted"]]
            if not rows:
                output[relationship.name] = None
                continue
            output[relationship.name] = {"totalSize": len(rows), "done": True, "records": [
                {"attributes": self._attributes(child.name, r["Id"], request),
                 **{child.field(p).name: serialise(r.get(child.field(p).name)) for p, _ in sub.fields}}
                for r in rows]}
        return output

    # -- collections ----------------------------------------------------------------------

    def _collection_update(self, request: Request) -> Response:
        body = request.json() or {}
        records = body.get("records") or []
        if len(records) > COLLECTION_LIMIT:
            return self._api_response([{"message": "record limit reached. cannot submit more than 200 records into "
                                                   "this call", "errorCode": "EXCEEDED_ID_LIMIT"}], 400)
        all_or_none = bool(body.get("allOrNone"))
        fault = getattr(request, "fault", None)
        auto_assign = _auto_assign(request)
        results, applied = [], []
        for item in records:
            try:
                object_name = (item.get("attributes") or {}).get("type")
                if not object_name:
                    raise WriteError("INVALID_TYPE", "Must send a concrete entity type.", [])
                record_id = item.get("id") or item.get("Id")
                if fault and fault.kind in ("lock_row", "validation") and (
                        fault.record_ids is None or record_id in fault.record_ids):
                    raise _fault_error(fault, object_name)
                snapshot = dict(self.org.records[self.org.sobject(object_name).name].get(record_id or "") or {})
                self.org.update(object_name, record_id, {k: v for k, v in item.items() if k not in ("attributes",
                                                                                                      "id")},
                                auto_assign=auto_assign)
                applied.append((object_name, record_id, snapshot))
                results.append({"id": self.org.get(record_id)[1]["Id"], "success": True, "errors": []})
            except WriteError as exc:
                results.append({"success": False, "errors": [exc.as_error()]})
            except SoqlError as exc:
                results.append({"success": False, "errors": [{"statusCode": exc.code, "message": exc.message,
                                                              "fields": []}]})
        if all_or_none and any(not r["success"] for r in results):
            for object_name, record_id, snapshot in applied:  # roll back
                record = self.org.records[self.org.sobject(object_name).name][self.org.get(record_id)[1]["Id"]]
                record.clear()
                record.update(snapshot)
                self.org.index[self.org.sobject(object_name).name].put(record["Id"], record["SystemModstamp"])
            results = [r if not r["success"] else {"id": r["id"], "success": False, "errors": [{
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all "
                "records were valid and the request was using AllOrNone header", "fields": []}]} for r in results]
        return self._api_response(results)

    def _collection_create(self, request: Request) -> Response:
        body = request.json() or {}
        records = body.get("records") or []
        if len(records) > COLLECTION_LIMIT:
            return self._api_response([{"message": "record limit reached. cannot submit more than 200 records into "
                                                   "this call", "errorCode": "EXCEEDED_ID_LIMIT"}], 400)
        results = []
        for item in records:
            try:
                object_name = (item.get("attributes") or {}).get("type")
                values = {k: v for k, v in item.items() if k != "attributes"}
                record_id = self.org.grant_field_access(values) if object_name == "FieldPermissions" else \
                    self.org.insert(object_name, values, validate=True)
                results.append({"id": record_id, "success": True, "errors": []})
            except (WriteError, SoqlError) as exc:
                results.append({"success": False, "errors": [{"statusCode": exc.code, "message": exc.message,
                                                              "fields": getattr(exc, "fields", [])}]})
        return self._api_response(results)

    def _custom_field(self, request: Request) -> Response:
        body = request.json() or {}
        record_id = self.org.add_custom_field(str(body.get("FullName", "")), body.get("Metadata") or {})
        return self._api_response({"id": record_id, "success": True, "errors": [], "warnings": [], "infos": []}, 201)


def _fault_error(fault: Fault, label: str) -> WriteError:
    if fault.kind == "lock_row":
        return WriteError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records", [])
    return WriteError("FIELD_CUSTOM_VALIDATION_EXCEPTION", fault.message or f"{label} cannot be saved: "
                                                                             "a validation rule rejected it", [])


def _auto_assign(request: Request) -> bool:
    return (request.header("Sforce-Auto-Assign") or "TRUE").strip().upper() not in ("FALSE", "0")


def _batch_size(header: str | None) -> int:
    match = re.search(r"batchSize\s*=\s*(\d+)", header or "")
    return min(2000, max(200, int(match.group(1)))) if match else 2000


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return unquote(user), unquote(password)


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


def _not_found() -> Response:
    return Response.json([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}], 404)


_SOAP_OK = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>\
<passwordExpired>false</passwordExpired><sandbox>true</sandbox><serverUrl>{server_url}</serverUrl>\
<sessionId>{session}</sessionId><userId>{user}</userId><userInfo>\
<organizationMultiCurrency>{multi}</organizationMultiCurrency>\
<orgDefaultCurrencyIsoCode>{currency}</orgDefaultCurrencyIsoCode><sessionSecondsValid>7200</sessionSecondsValid>\
</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"""

_SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>\
<soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password, \
security token; or user locked out.</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault">\
<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, password, security token; \
or user locked out.</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body>\
</soapenv:Envelope>"""
