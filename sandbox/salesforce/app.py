"""The HTTPS face of the emulated org: login endpoints and the REST API under ``/services``.

Request pipeline (reference §10): injected transport faults → 414 for URIs over 16,384 bytes →
``Bearer`` session check (401 ``[{"message":"Session expired or invalid","errorCode":
"INVALID_SESSION_ID"}]``) → daily API limit (403 ``REQUEST_LIMIT_EXCEEDED``, every other REST call
counts one) → the resource. Every REST response carries ``Content-Type:
application/json;charset=UTF-8`` and ``Sforce-Limit-Info: api-usage=U/T`` (§5).

Resources: versions, ``limits/``, ``sobjects/`` (global describe), ``sobjects/{T}/describe/``,
``sobjects/{T}/`` (info, POST create), ``sobjects/{T}/{id}`` (GET/PATCH/DELETE),
``sobjects/{T}/updated/`` and ``deleted/``, ``query/`` and ``queryAll/`` with query locators,
``composite/sobjects`` (PATCH update, POST create, DELETE), ``tooling/sobjects/CustomField``,
Tooling ``PlatformEventChannelMember`` query/create/read/delete (``tooling.py``).

Each REST request is one transaction for Change Data Capture (``pubsub/capture.py``): its writes
become change events whose ``changeOrigin`` names the API, the version and the
``Sforce-Call-Options`` client.
"""
from __future__ import annotations

import base64
import json
import re
import traceback
from collections import OrderedDict
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import unquote

from sandbox.salesforce.auth import Authority, OAuthError, SOAP_LOGIN_OK, SoapFault, soap_fault
from sandbox.salesforce.faults import (RECORD_KINDS, SERVER_ERROR_HTML, TRANSPORT_KINDS, Fault, FaultBook,
                                       record_error)
from sandbox.salesforce.ids import IdFactory, to18
from sandbox.salesforce.pubsub.capture import ChangeCapture, rest_origin
from sandbox.salesforce.schema import SObject
from sandbox.salesforce.soql import SoqlError, format_datetime, serializer
from sandbox.salesforce.store import QueryResult, RequestError, Store, WriteError
from sandbox.salesforce.tooling import ChannelMembers
from sandbox.web import DropConnection, Request, Response, Router

API = r"/services/data/v(?P<version>\d+\.\d)"
JSON_TYPE = "application/json;charset=UTF-8"
MAX_URI = 16_384
COLLECTION_LIMIT = 200
DEFAULT_BATCH, MIN_BATCH, MAX_BATCH = 2000, 200, 2000
REPLICATION_DAYS = 30
MAX_REPLICATION_IDS = 600_000
MAX_OPEN_CURSORS = 1000  # an emulator safeguard: Salesforce has no limit since v56, only a 2-day lifetime
NOT_FOUND = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all "
               "records were valid and the request was using AllOrNone header", "fields": []}


@dataclass
class Cursor:
    """An open query locator: the result's ids were fixed when the query ran."""

    result: QueryResult
    batch: int
    version: str
    user: str
    created: datetime
    touched: datetime


class Api:
    """Routes and handlers; state lives in the store, the authority and here (usage, cursors, log)."""

    def __init__(self, store: Store, auth: Authority, faults: FaultBook, *, base_url: Callable[[], str],
                 daily_api_limit: int, max_api_version: float, latency_seconds: float = 0.0,
                 log_bodies: bool = True, changes: ChangeCapture | None = None) -> None:
        self.store, self.auth, self.faults, self.base_url = store, auth, faults, base_url
        self.changes = changes
        self.channel_members = ChannelMembers(changes) if changes is not None else None
        self.lock = store.lock
        self.daily_api_limit = daily_api_limit
        self.api_used = 0
        self.max_api_version = max_api_version
        self.latency_seconds = latency_seconds
        self.log_bodies = log_bodies  # False keeps a million-record benchmark's log small
        self.log: list[dict[str, Any]] = []
        self.cursors: OrderedDict[str, Cursor] = OrderedDict()
        self.locator_ids = IdFactory()
        self.before_request: Callable[[Request], None] | None = None
        self.router = self._routes()

    # -- pipeline -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if self.before_request is not None:
            self.before_request(request)  # a test's hook: "while the daemon pages, a rep creates a lead"
        path = request.path
        kind = "oauth" if path.startswith("/services/oauth2/") else "soap" if path.startswith("/services/Soap/") \
            else "rest"
        entry = self._log(request, kind)
        try:
            response = self._dispatch(request, kind)
        except DropConnection:
            entry["status"] = None
            entry["dropped"] = True
            raise
        except Exception:  # an emulator bug: answer like Salesforce's 500, keep the traceback in the log
            entry["error"] = traceback.format_exc()
            response = Response.json([{"message": "An unexpected error occurred. Please include this ErrorId if you "
                                       "contact support: 1966432573-12345 (-1566423532)",
                                       "errorCode": "UNKNOWN_EXCEPTION"}], 500, content_type=JSON_TYPE)
        entry["status"] = response.status
        if self.latency_seconds:
            response.delay_seconds += self.latency_seconds
        return response

    def _log(self, request: Request, kind: str) -> dict[str, Any]:
        if kind == "oauth":
            body = {"grant_type": request.form().get("grant_type")}  # never the secrets
        elif kind == "soap":
            body = None
        else:
            body = _json_or_none(request.body) if self.log_bodies else None
        entry = {"kind": kind, "method": request.method, "path": request.path,
                 "query": {key: values[0] for key, values in request.query.items()},
                 "at": self.store.clock.now().isoformat(), "status": None, "body": body,
                 "auto_assign": request.header("Sforce-Auto-Assign"),
                 "headers": {name: request.header(name) for name in ("Sforce-Auto-Assign", "Sforce-Query-Options",
                                                                     "Content-Type") if request.header(name)}}
        with self.lock:
            self.log.append(entry)
        return entry

    def _dispatch(self, request: Request, kind: str) -> Response:
        if kind == "rest" and len(request.raw_target.encode()) > MAX_URI:
            return Response.text("<html><head><title>414 Request-URI Too Large</title></head><body><h1>Request-URI "
                                 "Too Large</h1></body></html>", 414, content_type="text/html;charset=UTF-8")
        with self.lock:
            fault = self.faults.take(TRANSPORT_KINDS, request.method, request.raw_target,
                                     _objects(request)) if self.faults.faults else None
        if fault is not None:
            early = self._transport_fault(fault, kind)
            if early is not None:
                return early
        if kind == "oauth":
            response = self._token(request)
        elif kind == "soap":
            response = self._soap_login(request)
        else:
            response = self._rest(request)
        if fault is not None and fault.kind == "slow":
            response.delay_seconds += fault.delay
        if fault is not None and fault.kind == "lost_response":
            raise DropConnection()  # the write above was applied; only the answer is lost
        return response

    def _transport_fault(self, fault: Fault, kind: str) -> Response | None:
        if fault.kind == "drop":
            raise DropConnection()
        if fault.kind == "server_error":
            return Response.text(SERVER_ERROR_HTML, fault.status, content_type="text/html;charset=UTF-8")
        if fault.kind == "non_list_401":
            return self._rest_response({"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"},
                                       401)
        if fault.kind == "expire_session":
            self.auth.expire_all()
        elif fault.kind in ("request_limit", "concurrent_limit"):
            what = "TotalRequests" if fault.kind == "request_limit" else "ConcurrentPerOrgLongTxn"
            return self._rest_response([{"message": f"{what} Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                                       403)
        return None

    def _rest_response(self, data: Any, status: int = 200) -> Response:
        headers = {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.daily_api_limit}"}
        if status == 204:
            return Response.empty(204, {"Content-Type": JSON_TYPE, **headers})
        return Response.json(data, status, headers, content_type=JSON_TYPE)

    def _rest(self, request: Request) -> Response:
        if request.path.rstrip("/") == "/services/data":
            return Response.json([{"label": label, "url": f"/services/data/v{version}", "version": version}
                                  for version, label in _VERSIONS if float(version) <= self.max_api_version],
                                 content_type=JSON_TYPE)
        session = self.auth.check(request.header("Authorization"))
        if session is None:
            return self._rest_response(INVALID_SESSION, 401)
        with self.lock:
            if self.api_used >= self.daily_api_limit:
                return self._rest_response([{"message": "TotalRequests Limit exceeded.",
                                             "errorCode": "REQUEST_LIMIT_EXCEEDED"}], 403)
            self.api_used += 1
        handler = self.router.resolve(request)
        version = request.path_params.get("version")
        if handler is None or (version is not None and float(version) > self.max_api_version):
            return self._rest_response(NOT_FOUND, 404)
        request.session = session  # type: ignore[attr-defined]
        try:
            with self.lock, self._transaction(request, session.user_id):
                return handler(request)
        except SoqlError as exc:
            return self._rest_response([{"message": exc.message, "errorCode": exc.code}], 400)
        except (RequestError, WriteError) as exc:
            return self._rest_response([exc.as_rest_error()], exc.status)
        except json.JSONDecodeError as exc:
            return self._rest_response([{"message": f"Unexpected character: {exc.msg} at [line:{exc.lineno}, "
                                                    f"column:{exc.colno}]", "errorCode": "JSON_PARSER_ERROR"}], 400)

    def _transaction(self, request: Request, user_id: str) -> AbstractContextManager:
        """The request's writes as one change-event transaction (reference §2.3 changeOrigin)."""
        if self.changes is None:
            return nullcontext()
        api = "toolingrest" if "/tooling/" in request.path else "rest"
        origin = rest_origin(request.path_params.get("version") or "", request.header("Sforce-Call-Options"), api)
        return self.changes.transaction(origin, user_id)

    # -- login ----------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        if request.method != "POST":
            return Response.json({"error": "invalid_request", "error_description": "must use HTTP POST"}, 400)
        audiences = {"https://login.salesforce.com", "https://test.salesforce.com", *self.auth.extra_audiences}
        if self.auth.accept_my_domain_audience:
            audiences.add(self.base_url())
        try:
            token = self.auth.token_grant(request.form(), _basic_auth(request.header("Authorization")), audiences)
        except OAuthError as exc:
            return Response.json({"error": exc.error, "error_description": exc.description}, 400)
        return Response.json(self.auth.token_body(token, self.base_url()))

    def _soap_login(self, request: Request) -> Response:
        match = re.fullmatch(r"/services/Soap/u/(\d+\.\d)(?:/.*)?", request.path)
        if request.method != "POST" or match is None:
            return Response.text("Not Found", 404)
        version = match.group(1)
        try:
            session = self.auth.soap_login(request.body, version)
        except SoapFault as fault:
            return Response.text(soap_fault(fault), 500, content_type="text/xml;charset=UTF-8")
        org = self.store.organization_id
        return Response.text(SOAP_LOGIN_OK.format(
            url=self.base_url(), version=version, org=org, session=session, user=self.auth.user_id,
            currency=self.store.org_currency, multi=str(self.store.multi_currency).lower(),
            seconds=self.auth.session_seconds, username=self.auth.username), 200,
            content_type="text/xml;charset=UTF-8")

    # -- routes -------------------------------------------------------------------------

    def _routes(self) -> Router:
        router = Router()
        add = router.add
        add("GET", API + r"/?", self._resources)
        add("GET", API + r"/limits/?", self._limits)
        add("GET", API + r"/sobjects/?", self._global_describe)
        add("GET", API + r"/sobjects/(?P<object>\w+)/describe/?", self._describe)
        add("GET", API + r"/sobjects/(?P<object>\w+)/updated/?", lambda r: self._replication(r, deleted=False))
        add("GET", API + r"/sobjects/(?P<object>\w+)/deleted/?", lambda r: self._replication(r, deleted=True))
        add("GET", API + r"/sobjects/(?P<object>\w+)/?", self._object_info)
        add("POST", API + r"/sobjects/(?P<object>\w+)/?", self._create)
        add("GET", API + r"/sobjects/(?P<object>\w+)/(?P<id>[^/]+)/?", self._get)
        add("PATCH", API + r"/sobjects/(?P<object>\w+)/(?P<id>[^/]+)/?", self._patch)
        add("DELETE", API + r"/sobjects/(?P<object>\w+)/(?P<id>[^/]+)/?", self._delete)
        add("GET", API + r"/(?P<endpoint>query|queryAll)/?", self._query)
        add("GET", API + r"/(?:query|queryAll)/(?P<locator>01g\w+)-(?P<offset>\d+)/?", self._query_more)
        add("PATCH", API + r"/composite/sobjects/?", self._collection_update)
        add("POST", API + r"/composite/sobjects/?", self._collection_create)
        add("DELETE", API + r"/composite/sobjects/?", self._collection_delete)
        add("POST", API + r"/tooling/sobjects/CustomField/?", self._custom_field)
        if self.channel_members is not None:
            members = API + r"/tooling/sobjects/PlatformEventChannelMember"
            add("GET", API + r"/tooling/query/?", self._tooling_query)
            add("POST", members + r"/?", self._channel_member_create)
            add("GET", members + r"/(?P<id>\w+)/?", lambda r: self._rest_response(
                self.channel_members.get(r.path_params["id"], r.path_params["version"])))
            add("DELETE", members + r"/(?P<id>\w+)/?", lambda r: (
                self.channel_members.delete(r.path_params["id"]), self._rest_response(None, 204))[1])
        return router

    @staticmethod
    def _base(request: Request) -> str:
        return f"/services/data/v{request.path_params['version']}"

    def _resources(self, request: Request) -> Response:
        base = self._base(request)
        return self._rest_response({name: f"{base}/{name}" for name in (
            "tooling", "metadata", "eclair", "folders", "prechatForms", "chatter", "tabs", "appMenu", "quickActions",
            "queryAll", "commerce", "wave", "iot", "analytics", "search", "identity", "composite",
            "parameterizedSearch",
            "theme", "nouns", "event", "serviceTemplates", "recent", "connect", "licensing", "limits", "process",
            "async-queries", "query", "match", "emailConnect", "compactLayouts", "knowledgeManagement", "sobjects",
            "actions", "support")} | {"identity": f"{self.base_url()}/id/{self.store.organization_id}/"
                                                  f"{self.auth.user_id}"})

    def _limits(self, request: Request) -> Response:
        remaining = max(0, self.daily_api_limit - self.api_used)
        return self._rest_response({
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
            "ConcurrentSyncReportRuns": {"Max": 20, "Remaining": 20},
            "DailyApiRequests": {"Max": self.daily_api_limit, "Remaining": remaining},
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DataStorageMB": {"Max": 5, "Remaining": 5}, "FileStorageMB": {"Max": 20, "Remaining": 20},
            "HourlyTimeBasedWorkflow": {"Max": 50, "Remaining": 50},
            "MassEmail": {"Max": 10, "Remaining": 10}, "SingleEmail": {"Max": 15, "Remaining": 15}})

    def _global_describe(self, request: Request) -> Response:
        base = self._base(request)
        return self._rest_response({"encoding": "UTF-8", "maxBatchSize": 200,
                                    "sobjects": [o.summary(base) for o in self.store.schema.values()]})

    def _describe(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["object"])
        return self._rest_response(sobject.describe(self._base(request)))

    def _object_info(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["object"])
        return self._rest_response({"objectDescribe": sobject.summary(self._base(request)), "recentItems": []})

    # -- single records -------------------------------------------------------------------

    def _record_fault(self, request: Request, sobject: SObject, record_ids: set[str]) -> Fault | None:
        if not self.faults.faults:
            return None
        return self.faults.take(RECORD_KINDS, request.method, request.raw_target, {sobject.name}, record_ids)

    def _create(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["object"])
        values = request.json()
        if not sobject.createable:
            raise WriteError("INVALID_TYPE_FOR_OPERATION", f"entity type {sobject.name} does not support insert")
        self.store.read_values(sobject, values, creating=True)
        if isinstance(values, dict) and ("Id" in values or "id" in values):
            raise WriteError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        fault = self._record_fault(request, sobject, set())
        if fault is not None:
            raise WriteError(*record_error(fault, ""))
        record_id = self.store.insert(sobject.name, values, user_id=request.session.user_id,
                                      auto_assign=_auto_assign(request))
        return self._rest_response({"id": record_id, "success": True, "errors": []}, 201)

    def _get(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["object"])
        raw_id = request.path_params["id"]
        full = to18(raw_id)
        found = self.store.get(full) if full else None
        if found is None or found[0] != sobject.name:
            if full is None or not full.startswith(sobject.key_prefix):
                return self._rest_response([{"errorCode": "NOT_FOUND", "message": "Provided external ID field does "
                                             f"not exist or is not accessible: {raw_id}"}], 404)
            return self._rest_response(NOT_FOUND, 404)
        record = found[1]
        if record["IsDeleted"]:
            raise WriteError("ENTITY_IS_DELETED", "entity is deleted", status=404)
        wanted = request.arg("fields")
        specs = []
        for name in ([n.strip() for n in wanted.split(",") if n.strip()] if wanted else
                     [f.name for f in sobject.fields.values() if f.visible]):
            spec = sobject.field(name)
            if spec is None:
                raise RequestError("INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject.name}")
            specs.append(spec)
        out = {"attributes": {"type": sobject.name, "url": f"{self._base(request)}/sobjects/{sobject.name}/"
                                                            f"{record['Id']}"}}
        for spec in specs:
            out[spec.name] = serializer(spec)(record.get(spec.name, False if spec.type == "boolean" else None))
        return self._rest_response(out)

    def _patch(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["object"])
        values = request.json()
        self.store.read_values(sobject, values, creating=False)
        record_id = request.path_params["id"]
        fault = self._record_fault(request, sobject, {to18(record_id) or record_id})
        if fault is not None:
            raise WriteError(*record_error(fault, to18(record_id) or record_id))
        self.store.update(sobject.name, record_id, values, user_id=request.session.user_id,
                          auto_assign=_auto_assign(request))
        return self._rest_response(None, 204)

    def _delete(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["object"])
        self.store.delete(sobject.name, request.path_params["id"], user_id=request.session.user_id)
        return self._rest_response(None, 204)

    def _replication(self, request: Request, deleted: bool) -> Response:
        """getUpdated/getDeleted (reference §7): last 30 days, seconds truncated, start < end."""
        sobject = self.store.sobject(request.path_params["object"])
        try:
            start = _parse_param_datetime(request.arg("start"))
            end = _parse_param_datetime(request.arg("end"))
        except ValueError:
            raise RequestError("INVALID_REPLICATION_DATE", "start and end must be valid dateTime values "
                                                           "(e.g. 2024-01-01T00:00:00+00:00)") from None
        now = self.store.clock.now().replace(second=0, microsecond=0)
        earliest = now - timedelta(days=REPLICATION_DAYS)
        start, end = start.replace(second=0, microsecond=0), min(end.replace(second=0, microsecond=0), now)
        if start < earliest:
            raise RequestError("INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago")
        if end - start < timedelta(minutes=1):
            raise RequestError("INVALID_REPLICATION_DATE",
                               "startDate must chronologically precede endDate by more than one minute")
        changed = self.store.changed_ids(sobject.name, start, end, deleted)
        if len(changed) > MAX_REPLICATION_IDS:
            raise RequestError("EXCEEDED_ID_LIMIT", "Too many ids: the result exceeds 600,000 records")
        if deleted:
            return self._rest_response({"deletedRecords": [{"id": i, "deletedDate": format_datetime(stamp)}
                                                           for i, stamp in changed],
                                        "earliestDateAvailable": format_datetime(earliest),
                                        "latestDateCovered": format_datetime(end)})
        return self._rest_response({"ids": [i for i, _ in changed], "latestDateCovered": format_datetime(end)})

    # -- queries --------------------------------------------------------------------------

    def _query(self, request: Request) -> Response:
        soql = request.arg("q")
        if not soql or not soql.strip():
            return self._rest_response([{"message": "A query string has to be specified",
                                         "errorCode": "MALFORMED_QUERY"}], 400)
        result = self.store.run_query(soql, include_deleted=request.path_params["endpoint"] == "queryAll")
        if result.compiled.count:
            return self._rest_response({"totalSize": result.count, "done": True, "records": []})
        batch = _batch_size(request.header("Sforce-Query-Options"), DEFAULT_BATCH)
        version = request.path_params["version"]
        if len(result.ids) <= batch:
            return self._rest_response({"totalSize": result.count, "done": True,
                                        "records": self.store.render(result, result.ids, version)})
        now = self.store.clock.now()
        locator = self.locator_ids.new("01g")
        self.cursors[locator] = Cursor(result, batch, version, request.session.user_id, now, now)
        self._prune_cursors(request.session.user_id, version)
        return self._page(locator, 0, batch)

    def _prune_cursors(self, user: str, version: str) -> None:
        if float(version) < 56.0:  # before v56: at most 10 open cursors per user, the oldest closed
            mine = [key for key, cursor in self.cursors.items() if cursor.user == user and float(cursor.version) < 56]
            for key in mine[:-10]:
                del self.cursors[key]
        while len(self.cursors) > MAX_OPEN_CURSORS:
            self.cursors.popitem(last=False)

    def _query_more(self, request: Request) -> Response:
        locator, offset = request.path_params["locator"], int(request.path_params["offset"])
        cursor = self.cursors.get(locator)
        now = self.store.clock.now()
        if cursor is not None:
            lifetime_over = now - cursor.created > timedelta(days=2)
            idle_over = float(cursor.version) < 56.0 and now - cursor.touched > timedelta(minutes=15)
            if lifetime_over or idle_over or offset > len(cursor.result.ids):
                cursor = None
        fault = None
        if self.faults.faults:
            fault = self.faults.take(("invalid_locator",), request.method, request.raw_target, set())
        if cursor is None or fault is not None:
            self.cursors.pop(locator, None)
            return self._rest_response([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}],
                                       400)
        cursor.touched = now
        self.cursors.move_to_end(locator)
        return self._page(locator, offset, _batch_size(request.header("Sforce-Query-Options"), cursor.batch))

    def _page(self, locator: str, offset: int, batch: int) -> Response:
        cursor = self.cursors[locator]
        ids = cursor.result.ids[offset:offset + batch]
        body: dict[str, Any] = {"totalSize": cursor.result.count, "done": offset + batch >= len(cursor.result.ids)}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/v{cursor.version}/query/{locator}-{offset + batch}"
        body["records"] = self.store.render(cursor.result, ids, cursor.version)
        return self._rest_response(body)

    # -- sObject collections (reference §3.2) -------------------------------------------

    def _collection_records(self, request: Request, creating: bool) -> tuple[list[dict[str, Any]], bool]:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise RequestError("JSON_PARSER_ERROR", "Cannot deserialize instance of SObjectCollection: 'records' "
                                                    "must be a list of records")
        records = body["records"]
        if len(records) > COLLECTION_LIMIT:
            raise RequestError("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into "
                                                    "this call")
        for item in records:  # deserialisation fails the whole request, before any record is written
            object_name = (item.get("attributes") or {}).get("type") if isinstance(item, dict) else None
            if not object_name:
                raise RequestError("INVALID_TYPE", "Must send a concrete entity type.")
            if object_name not in self.store.schema:
                raise RequestError("INVALID_TYPE", f"sObject type '{object_name}' is not supported.")
            self.store.read_values(self.store.schema[object_name], item, creating=creating)
        return records, bool(body.get("allOrNone"))

    def _collection_fault(self, request: Request, records: list[dict[str, Any]]) -> Fault | None:
        if not self.faults.faults:
            return None
        ids = {to18(str(r.get("id") or r.get("Id") or "")) or "" for r in records}
        objects = {r["attributes"]["type"] for r in records}
        return self.faults.take(RECORD_KINDS, request.method, request.raw_target, objects, ids)

    def _collection_update(self, request: Request) -> Response:
        records, all_or_none = self._collection_records(request, creating=False)
        fault = self._collection_fault(request, records)
        auto_assign, user = _auto_assign(request), request.session.user_id
        results: list[dict[str, Any]] = []
        snapshots = []
        for item in records:
            object_name = item["attributes"]["type"]
            record_id = item.get("id") or item.get("Id")
            try:
                if not record_id:
                    raise WriteError("MISSING_ARGUMENT", "Id not specified in an update call")
                full = to18(str(record_id)) or str(record_id)
                if fault is not None and (fault.record_ids is None or full in fault.record_ids):
                    raise WriteError(*record_error(fault, full))
                snapshot = self.store.snapshot(full)
                saved = self.store.update(object_name, str(record_id), item, user_id=user, auto_assign=auto_assign)
                snapshots.append(snapshot)
                results.append({"id": saved, "success": True, "errors": []})
            except WriteError as exc:
                results.append({"success": False, "errors": [_save_error(exc)]})
        if all_or_none and any(not r["success"] for r in results):
            for snapshot in reversed(snapshots):
                self.store.restore(snapshot)
            results = [r if not r["success"] else {"id": r["id"], "success": False, "errors": [ROLLED_BACK]}
                       for r in results]
        return self._rest_response(results)

    def _collection_create(self, request: Request) -> Response:
        records, all_or_none = self._collection_records(request, creating=True)
        fault = self._collection_fault(request, records)
        auto_assign, user = _auto_assign(request), request.session.user_id
        results: list[dict[str, Any]] = []
        created = []
        for item in records:
            try:
                if item.get("id") or item.get("Id"):
                    raise WriteError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
                if fault is not None and fault.record_ids is None:
                    raise WriteError(*record_error(fault, ""))
                record_id = self.store.insert(item["attributes"]["type"], item, user_id=user, auto_assign=auto_assign)
                created.append(record_id)
                results.append({"id": record_id, "success": True, "errors": []})
            except WriteError as exc:
                results.append({"success": False, "errors": [_save_error(exc)]})
        if all_or_none and any(not r["success"] for r in results):
            for record_id in reversed(created):
                self.store.remove(record_id)
            results = [r if not r["success"] else {"success": False, "errors": [ROLLED_BACK]} for r in results]
        return self._rest_response(results)

    def _collection_delete(self, request: Request) -> Response:
        ids = [i for i in (request.arg("ids") or "").split(",") if i]
        if not ids:
            raise RequestError("MISSING_ARGUMENT", "ids parameter is required")
        if len(ids) > COLLECTION_LIMIT:
            raise RequestError("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into "
                                                    "this call")
        all_or_none = (request.arg("allOrNone") or "false").lower() == "true"
        results, snapshots = [], []
        for raw in ids:
            try:
                found = self.store.get(raw)
                if found is None:
                    if to18(raw) is None:
                        raise WriteError("MALFORMED_ID", f"malformed id {raw}", [])
                    raise WriteError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
                snapshot = self.store.snapshot(raw)
                deleted = self.store.delete(found[0], raw, user_id=request.session.user_id)
                snapshots.append(snapshot)
                results.append({"id": deleted, "success": True, "errors": []})
            except WriteError as exc:
                results.append({"success": False, "errors": [_save_error(exc)]})
        if all_or_none and any(not r["success"] for r in results):
            for snapshot in reversed(snapshots):
                self.store.restore(snapshot)
            results = [r if not r["success"] else {"id": r["id"], "success": False, "errors": [ROLLED_BACK]}
                       for r in results]
        return self._rest_response(results)

    # -- Tooling ------------------------------------------------------------------------

    def _custom_field(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise RequestError("JSON_PARSER_ERROR", "Cannot deserialize instance of CustomField")
        tooling_id = self.store.add_custom_field(str(body.get("FullName") or ""), body.get("Metadata") or {})
        return self._rest_response({"id": tooling_id, "success": True, "errors": [], "warnings": [], "infos": []},
                                   201)


    def _tooling_query(self, request: Request) -> Response:
        soql = request.arg("q")
        if not soql or not soql.strip():
            return self._rest_response([{"message": "A query string has to be specified",
                                         "errorCode": "MALFORMED_QUERY"}], 400)
        return self._rest_response(self.channel_members.query(soql, request.path_params["version"]))

    def _channel_member_create(self, request: Request) -> Response:
        member_id = self.channel_members.create(request.json())
        return self._rest_response({"id": member_id, "success": True, "errors": [], "warnings": [], "infos": []},
                                   201)


# API versions offered at /services/data (Winter '16 = 35.0 … Winter '27 = 68.0).
_SEASONS = ("Winter", "Spring", "Summer")
_VERSIONS = [(f"{n}.0", f"{_SEASONS[(n - 35) % 3]} '{16 + (n - 35) // 3}") for n in range(35, 69)]


def _save_error(exc: WriteError) -> dict[str, Any]:
    """A SaveResult error; a missing record is INVALID_CROSS_REFERENCE_KEY inside collections."""
    if exc.code == "NOT_FOUND":
        return {"statusCode": "INVALID_CROSS_REFERENCE_KEY", "message": "invalid cross reference id", "fields": []}
    return exc.as_save_error()


def _auto_assign(request: Request) -> bool:
    """``Sforce-Auto-Assign`` defaults to TRUE for REST when absent (reference §3.1)."""
    return (request.header("Sforce-Auto-Assign") or "TRUE").strip().upper() not in ("FALSE", "0")


def _batch_size(header: str | None, default: int) -> int:
    """``Sforce-Query-Options: batchSize=N`` — 200 to 2,000 (reference §2.1)."""
    match = re.search(r"batchSize\s*=\s*(\d+)", header or "", re.IGNORECASE)
    return min(MAX_BATCH, max(MIN_BATCH, int(match.group(1)))) if match else default


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


def _objects(request: Request) -> set[str]:
    """The sObjects a request is about (for faults filtered by ``object``)."""
    match = re.search(r"/sobjects/(\w+)", request.path)
    if match:
        return {match.group(1)}
    soql = request.arg("q")
    if soql:
        found = re.search(r"\bFROM\s+(\w+)", soql, re.IGNORECASE)
        return {found.group(1)} if found else set()
    body = _json_or_none(request.body) if request.body else None
    if isinstance(body, dict) and isinstance(body.get("records"), list):
        return {str((r.get("attributes") or {}).get("type")) for r in body["records"] if isinstance(r, dict)}
    return set()


def _parse_param_datetime(value: str | None) -> datetime:
    if not value:
        raise ValueError("missing")
    text = value.strip().replace(" ", "+").replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
