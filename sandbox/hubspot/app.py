"""The HubSpot API routes: objects, batch, search, properties, pipelines, associations v4.

Every status code is the one hubspot-api-client 12 expects for the operation
(shared/reference/hubspot-api.md §1.7): a status missing from the client's
``response_types_map`` makes it return ``None``, so 201 vs 200 matters. Bodies use the
client's camelCase field names; the sections cited on each handler give the shapes.
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import unquote

from sandbox.hubspot.schema import (EPOCH, FIELD_TYPES, INTERNAL_TYPES, MODIFIED, SEARCH_DEFAULTS, Property,
                                    group as make_group)
from sandbox.hubspot.search import search
from sandbox.hubspot.store import Record
from sandbox.hubspot.values import PropertyError
from sandbox.hubspot.wire import ApiError, iso, ok, parse_json
from sandbox.web import Request, Response, Router

if TYPE_CHECKING:
    from sandbox.hubspot import HubSpotSandbox

OBJECTS = r"(?P<type>contacts|deals)"
BATCH_LIMIT = 100  # §4.1 "limited to 100 inputs per request"
ASSOCIATION_BATCH_LIMIT = 1000  # §6.3
ASSOCIATION_PAGE = 500  # §6.3 "Limit 500 per call"
HISTORY_BATCH_LIMIT = 50  # §4.2
UNIQUE_PROPERTY_LIMIT = 10  # §5.3
NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
LABELS = {"contacts": "CONTACT", "deals": "DEAL"}


class Endpoint:
    """A route handler that knows its label for the request log ("POST /crm/v3/objects/{type}/search")."""

    def __init__(self, method: str, template: str, handler: Callable[[Request], Response], kind: str = "standard"):
        self.method, self.template, self.handler, self.kind = method, template, handler, kind

    def __call__(self, request: Request) -> Response:
        return self.handler(request)

    def label(self, params: dict[str, str]) -> str:
        shown = {k: v for k, v in params.items() if k in ("type", "from", "to")}
        return f"{self.method} " + re.sub(r"\{(\w+)\}", lambda m: shown.get(m.group(1), "{" + m.group(1) + "}"),
                                         self.template)


def not_found(object_type: str, record_id: str) -> ApiError:
    """§4.3: the documented 404 for an id that cannot be an object id, and the bare
    "resource not found" reported for a numeric id that does not exist."""
    if not record_id.isdigit():
        return ApiError(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                        context={"id": [record_id]})
    return ApiError(404, "resource not found", None)


def validation_error(errors: list[PropertyError], portal_id: int) -> ApiError:
    """The whole-request 400 of §4.1: per-property codes inside a JSON string in ``message``
    and again in ``errors[].code``."""
    details = [{"isValid": False, "message": e.message, "error": e.code, "name": e.name,
                "localizedErrorMessage": e.message, "portalId": portal_id} for e in errors]
    return ApiError(400, "Property values were not valid: " + json.dumps(details, separators=(",", ":")),
                    "VALIDATION_ERROR", errors=[{"message": e.message, "code": e.code,
                                                 "context": {"propertyName": [e.name]}} for e in errors])


def batch_not_found(object_type: str, ids: list[str]) -> dict[str, Any]:
    """The per-batch OBJECT_NOT_FOUND error of §4.1/§4.2 (``context.ids``)."""
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {LABELS[object_type]} objects, they may be deleted or not exist. "
                       "Check that ids are valid.", "context": {"ids": ids}, "errors": [], "links": {}}


def _names(request: Request, key: str) -> list[str] | None:
    """A multi-valued query parameter (``?properties=a&properties=b``, or ``a,b``)."""
    if key not in request.query:
        return None
    return [name for value in request.query[key] for name in value.split(",") if name]


def _inputs(body: Any, limit: int) -> list[dict[str, Any]]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list):
        raise ApiError(400, "Invalid input JSON: inputs must be a list.")
    if len(inputs) > limit:
        raise ApiError(400, f"Batch input size ({len(inputs)}) exceeds the maximum of {limit} inputs.")
    return [item if isinstance(item, dict) else {"id": item} for item in inputs]


class HubSpotApi:
    """Handlers for the HubSpot routes; they run under the sandbox's lock."""

    def __init__(self, sandbox: "HubSpotSandbox") -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.router = Router()
        self._add_routes()

    def _add(self, method: str, template: str, handler: Callable[[Request], Response], kind: str = "standard"):
        pattern = template.replace("{type}", OBJECTS).replace("{id}", r"(?P<id>[^/]+)") \
            .replace("{name}", r"(?P<name>[^/]+)").replace("{from}", r"(?P<from>deals|contacts)") \
            .replace("{to}", r"(?P<to>deals|contacts)").replace("{pipeline}", r"(?P<pipeline>[^/]+)") \
            .replace("{stage}", r"(?P<stage>[^/]+)")
        self.router.add(method, pattern, Endpoint(method, template, handler, kind))

    def _add_routes(self) -> None:
        add = self._add
        add("POST", "/crm/v3/objects/{type}/search", self.do_search, "search")
        add("POST", "/crm/v3/objects/{type}/batch/read", self.batch_read)
        add("POST", "/crm/v3/objects/{type}/batch/update", self.batch_update)
        add("POST", "/crm/v3/objects/{type}/batch/create", self.batch_create)
        add("POST", "/crm/v3/objects/{type}/batch/archive", self.batch_archive)
        add("GET", "/crm/v3/objects/{type}", self.get_page)
        add("POST", "/crm/v3/objects/{type}", self.create)
        add("GET", "/crm/v3/objects/{type}/{id}", self.get_by_id)
        add("PATCH", "/crm/v3/objects/{type}/{id}", self.update)
        add("DELETE", "/crm/v3/objects/{type}/{id}", self.archive)
        add("POST", "/crm/v3/properties/{type}/batch/create", self.batch_create_properties)
        add("POST", "/crm/v3/properties/{type}/batch/read", self.batch_read_properties)
        add("GET", "/crm/v3/properties/{type}/groups", self.list_groups)
        add("POST", "/crm/v3/properties/{type}/groups", self.create_group)
        add("GET", "/crm/v3/properties/{type}/groups/{name}", self.get_group)
        add("PATCH", "/crm/v3/properties/{type}/groups/{name}", self.update_group)
        add("DELETE", "/crm/v3/properties/{type}/groups/{name}", self.archive_group)
        add("GET", "/crm/v3/properties/{type}", self.list_properties)
        add("POST", "/crm/v3/properties/{type}", self.create_property)
        add("GET", "/crm/v3/properties/{type}/{name}", self.get_property)
        add("PATCH", "/crm/v3/properties/{type}/{name}", self.update_property)
        add("DELETE", "/crm/v3/properties/{type}/{name}", self.archive_property)
        add("GET", "/crm/v3/pipelines/deals", self.list_pipelines)
        add("GET", "/crm/v3/pipelines/deals/{pipeline}", self.get_pipeline)
        add("GET", "/crm/v3/pipelines/deals/{pipeline}/stages", self.list_stages)
        add("GET", "/crm/v3/pipelines/deals/{pipeline}/stages/{stage}", self.get_stage)
        add("GET", "/crm/v4/objects/{from}/{id}/associations/{to}", self.associations_page)
        add("POST", "/crm/v4/associations/{from}/{to}/batch/read", self.associations_batch, "exempt")
        add("GET", "/settings/v3/currencies/company-currency", self.company_currency)

    # -- records -------------------------------------------------------------------------

    def record_json(self, object_type: str, record: Record, names: list[str] | None,
                    base: tuple[str, ...] = ("createdate", "hs_object_id")) -> dict[str, Any]:
        """A SimplePublicObject: ``names`` (plus ``base`` and the last-modified property), or
        every stored property when ``names`` is None. Unset properties are null."""
        modified = MODIFIED[object_type]
        stored = record.properties
        if names is None:
            properties: dict[str, Any] = dict(stored)
        else:
            properties = {name: stored.get(name) for name in dict.fromkeys([*names, *base, modified])}
        body: dict[str, Any] = {"id": record.id, "properties": properties, "createdAt": stored["createdate"],
                                "updatedAt": stored[modified], "archived": record.archived}
        if record.archived:
            body["archivedAt"] = record.archived_at
        return body

    def _history(self, object_type: str, record: Record, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        # Only the current value is kept: one history entry per property that has one.
        when = record.properties[MODIFIED[object_type]]
        return {name: [{"value": record.properties[name], "timestamp": when, "sourceType": "API"}]
                for name in names if name in record.properties}

    def _validated(self, object_type: str, values: Any) -> dict[str, str]:
        if values is not None and not isinstance(values, dict):
            raise ApiError(400, "Invalid input JSON: properties must be an object.")
        clean, errors = self.store.validate(object_type, values or {})
        if errors:
            raise validation_error(errors, self.store.portal_id)
        return clean

    def _batch_body(self, results: list[dict[str, Any]], errors: list[dict[str, Any]], success: int) -> Response:
        now = iso(self.store.now_ms())
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return ok(body, 207)
        return ok(body, success)

    def do_search(self, request: Request) -> Response:
        """§3: POST …/search, always 200 on success."""
        return ok(search(self.store, request.path_params["type"], request.body, self.sandbox.search_limits))

    def get_page(self, request: Request) -> Response:
        """GET /crm/v3/objects/{type}: id order, ``after`` is the next id (§1.9: 100 max per page)."""
        object_type = request.path_params["type"]
        try:
            limit = min(max(int(request.arg("limit", "10") or 10), 1), 100)
            after = int(request.arg("after", "0") or 0)
        except ValueError:
            raise ApiError(400, "limit and after must be integers.") from None
        archived = (request.arg("archived", "false") or "false").lower() == "true"
        page, more = self.store.page(object_type, after, limit, archived=archived)
        names = _names(request, "properties") or SEARCH_DEFAULTS[object_type]
        body: dict[str, Any] = {"results": [self.record_json(object_type, r, names) for r in page]}
        if more:
            following = str(int(page[-1].id) + 1)
            body["paging"] = {"next": {"after": following,
                                       "link": f"{request.path}?limit={limit}&after={following}"}}
        return ok(body)

    def _find(self, request: Request, *, archived: bool = False) -> Record:
        object_type = request.path_params["type"]
        record_id = unquote(request.path_params["id"])
        record = self.store.find_by(object_type, request.arg("idProperty"), record_id) if not archived else \
            self.store.find(object_type, record_id, archived=True)
        if record is None:
            raise not_found(object_type, record_id)
        return record

    def get_by_id(self, request: Request) -> Response:
        """§4.3: GET one record; ``properties``, ``propertiesWithHistory``, ``associations``."""
        object_type = request.path_params["type"]
        record = self._find(request, archived=(request.arg("archived", "false") or "").lower() == "true")
        body = self.record_json(object_type, record, _names(request, "properties") or SEARCH_DEFAULTS[object_type])
        history = _names(request, "propertiesWithHistory")
        if history:
            body["propertiesWithHistory"] = self._history(object_type, record, history)
        associations = {}
        for target in _names(request, "associations") or []:
            if target in ("contacts", "deals") and target != object_type:
                linked = self.store.associated(object_type, record.id, target)
                if linked:
                    kind = f"{object_type[:-1]}_to_{target[:-1]}"
                    associations[target] = {"results": [{"id": i, "type": kind} for i in linked]}
        if associations:
            body["associations"] = associations
        return ok(body)

    def create(self, request: Request) -> Response:
        """POST /crm/v3/objects/{type}: 201 SimplePublicObject."""
        object_type = request.path_params["type"]
        body = parse_json(request.body) or {}
        values = self._validated(object_type, body.get("properties"))
        self.store.check_email(object_type, values)
        record = self.store.create(object_type, values)
        self._associate_on_create(object_type, record, body.get("associations"))
        return ok(self.record_json(object_type, record, None), self._created_status(request))

    def update(self, request: Request) -> Response:
        """PATCH one record: 200; one bad value rejects the whole PATCH (§4.1)."""
        object_type = request.path_params["type"]
        record = self._find(request)
        values = self._validated(object_type, (parse_json(request.body) or {}).get("properties"))
        self.store.check_email(object_type, values, record)
        self.store.update(object_type, record, values)
        return ok(self.record_json(object_type, record, list(values), base=("hs_object_id",)))

    def archive(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        record = self.store.find(object_type, unquote(request.path_params["id"]))
        if record is not None:
            self.store.archive(object_type, record)
        return Response.empty(204)

    def batch_archive(self, request: Request) -> Response:
        object_type = request.path_params["type"]
        for item in _inputs(parse_json(request.body), BATCH_LIMIT):
            record = self.store.find(object_type, item.get("id"))
            if record is not None:
                self.store.archive(object_type, record)
        return Response.empty(204)

    def batch_read(self, request: Request) -> Response:
        """§4.2: 200, or 207 with OBJECT_NOT_FOUND listing ``context.ids``."""
        object_type = request.path_params["type"]
        body = parse_json(request.body) or {}
        inputs = _inputs(body, BATCH_LIMIT)
        history = [n for n in body.get("propertiesWithHistory") or [] if isinstance(n, str)]
        if history and len(inputs) > HISTORY_BATCH_LIMIT:
            raise ApiError(400, f"Batch read with propertiesWithHistory is limited to {HISTORY_BATCH_LIMIT} inputs.")
        archived = (request.arg("archived", "false") or "").lower() == "true"
        names = [n for n in body.get("properties") or [] if isinstance(n, str)] or SEARCH_DEFAULTS[object_type]
        results, missing, seen = [], [], set()
        for item in inputs:
            key = str(item.get("id"))
            if key in seen:
                continue
            seen.add(key)
            record = self.store.find(object_type, key, archived=True) if archived else \
                self.store.find_by(object_type, body.get("idProperty"), key)
            if record is None:
                missing.append(key)
                continue
            entry = self.record_json(object_type, record, names)
            if history:
                entry["propertiesWithHistory"] = self._history(object_type, record, history)
            results.append(entry)
        return self._batch_body(results, [batch_not_found(object_type, missing)] if missing else [], 200)

    def batch_update(self, request: Request) -> Response:
        """§4.1: ≤100 inputs; one invalid value rejects the whole batch (400 VALIDATION_ERROR);
        missing ids give 207 OBJECT_NOT_FOUND, or a whole-batch 400 when the sandbox is
        switched to ``batch_update_missing_ids="400"`` (§13: not verified which)."""
        object_type = request.path_params["type"]
        inputs = _inputs(parse_json(request.body), BATCH_LIMIT)
        ids = [str(item.get("id")) for item in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ApiError(400, f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
        targets = [self.store.find_by(object_type, item.get("idProperty"), item.get("id")) for item in inputs]
        errors: list[PropertyError] = []
        validated = []
        for item in inputs:
            values = item.get("properties")
            if values is not None and not isinstance(values, dict):
                raise ApiError(400, "Invalid input JSON: properties must be an object.")
            clean, problems = self.store.validate(object_type, values or {})
            errors += problems
            validated.append(clean)
        if errors:
            raise validation_error(errors, self.store.portal_id)
        missing = [record_id for record_id, record in zip(ids, targets) if record is None]
        if missing and self.sandbox.batch_update_missing_ids == "400":
            raise ApiError(400, batch_not_found(object_type, missing)["message"], "VALIDATION_ERROR",
                           context={"ids": missing})
        for record, values in zip(targets, validated):
            if record is not None:
                self.store.check_email(object_type, values, record)
        results = []
        for record, values in zip(targets, validated):
            if record is None:
                continue
            self.store.update(object_type, record, values)
            entry = self.record_json(object_type, record, [], base=("hs_object_id",))
            entry["properties"].update({name: record.properties.get(name, "") for name in values})
            results.append(entry)
        return self._batch_body(results, [batch_not_found(object_type, missing)] if missing else [], 200)

    def batch_create(self, request: Request) -> Response:
        """201, or 207 when every input carries an ``objectWriteTraceId`` and some fail (§4.1);
        without trace ids one bad input rejects the whole batch."""
        object_type = request.path_params["type"]
        inputs = _inputs(parse_json(request.body), BATCH_LIMIT)
        traced = bool(inputs) and all(item.get("objectWriteTraceId") for item in inputs)
        accepted, failures = [], []
        for item in inputs:
            try:
                values = self._validated(object_type, item.get("properties"))
                self.store.check_email(object_type, values)
                if object_type == "contacts" and values.get("email") and any(
                        (v.get("email") or "").lower() == values["email"].lower() for _, v in accepted):
                    raise ApiError(409, f"Duplicate email {values['email']} in batch input.", "CONFLICT")
                accepted.append((item, values))
            except ApiError as exc:
                if not traced:
                    raise
                failures.append({"status": "error", "category": exc.category, "message": exc.message,
                                 "context": {"objectWriteTraceId": [str(item["objectWriteTraceId"])]},
                                 "errors": exc.extra.get("errors", []), "links": {}})
        results = []
        for item, values in accepted:
            record = self.store.create(object_type, values)
            self._associate_on_create(object_type, record, item.get("associations"))
            results.append(self.record_json(object_type, record, None))
        return self._batch_body(results, failures, self._created_status(request))

    def _associate_on_create(self, object_type: str, record: Record, associations: Any) -> None:
        """``associations`` on create: ``[{"to":{"id":…},"types":[{"associationTypeId":3,…}]}]``."""
        for link in associations or []:
            target = str(((link or {}).get("to") or {}).get("id", ""))
            other = "contacts" if object_type == "deals" else "deals"
            if self.store.find(other, target) is None:
                raise ApiError(400, f"Association target {other[:-1]} {target} does not exist.")
            deal, contact = (record.id, target) if object_type == "deals" else (target, record.id)
            self.store.associate(deal, contact)

    def _created_status(self, request: Request) -> int:
        fault = getattr(request, "fault", None)
        return 200 if fault is not None and fault.kind == "status_200_for_201" else 201

    # -- properties and groups (§5) ----------------------------------------------------------

    def _type(self, request: Request) -> str:
        return request.path_params["type"]

    def list_properties(self, request: Request) -> Response:
        """``{"results":[…]}`` with no paging; ``archived=true`` lists the archived ones."""
        archived = (request.arg("archived", "false") or "").lower() == "true"
        return ok({"results": [p.to_json() for p in self.store.properties[self._type(request)].values()
                               if p.archived == archived]})

    def _property(self, request: Request) -> Property:
        name = unquote(request.path_params["name"])
        spec = self.store.properties[self._type(request)].get(name)
        archived = (request.arg("archived", "false") or "").lower() == "true"
        if spec is None or spec.archived != archived:
            raise ApiError(404, f"Unable to find property {name} for object type {self._type(request)}",
                           "OBJECT_NOT_FOUND")
        return spec

    def get_property(self, request: Request) -> Response:
        return ok(self._property(request).to_json())

    def create_property(self, request: Request) -> Response:
        """201, 409 when the name exists, 400 for a type/fieldType mismatch (§5.2, §5.3)."""
        spec = self._new_property(self._type(request), parse_json(request.body) or {})
        return ok(spec.to_json(), self._created_status(request))

    def batch_create_properties(self, request: Request) -> Response:
        """201 when all were created, 207 listing the ones that failed."""
        object_type = self._type(request)
        results, failures = [], []
        for body in _inputs(parse_json(request.body), BATCH_LIMIT):
            try:
                results.append(self._new_property(object_type, body).to_json())
            except ApiError as exc:
                failures.append({"status": "error", "category": exc.category or "VALIDATION_ERROR",
                                 "message": exc.message, "context": {"name": [str(body.get("name"))]},
                                 "errors": [], "links": {}})
        return self._batch_body(results, failures, self._created_status(request))

    def batch_read_properties(self, request: Request) -> Response:
        object_type = self._type(request)
        body = parse_json(request.body) or {}
        found, missing = [], []
        for item in _inputs(body, BATCH_LIMIT):
            spec = self.store.property(object_type, str(item.get("name")))
            (found.append(spec.to_json()) if spec else missing.append(str(item.get("name"))))
        errors = [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Some properties were not found.",
                   "context": {"name": missing}, "errors": [], "links": {}}] if missing else []
        return self._batch_body(found, errors, 200)

    def _new_property(self, object_type: str, body: Any) -> Property:
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid input JSON: a property definition must be an object.")
        missing = [key for key in ("name", "label", "type", "fieldType", "groupName") if not body.get(key)]
        if missing:
            raise ApiError(400, f"Missing required fields: {', '.join(missing)}.")
        name, type_, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
        existing = self.store.properties[object_type].get(name)
        if existing is not None:
            raise ApiError(409, f"Property named '{name}' already exists"
                                + (" (archived)." if existing.archived else "."), "OBJECT_ALREADY_EXISTS")
        if not NAME.match(name):
            raise ApiError(400, f"Property name '{name}' is invalid: use lower-case letters, digits and underscores, "
                                "starting with a letter.")
        if type_ in INTERNAL_TYPES or type_ not in FIELD_TYPES:
            raise ApiError(400, f"Property type {type_} cannot be used to create a property.")
        if field_type not in FIELD_TYPES[type_]:
            raise ApiError(400, f"Property type {type_} is not compatible with fieldType {field_type}; valid "
                                f"fieldTypes are {', '.join(sorted(FIELD_TYPES[type_]))}.")
        if body["groupName"] not in self.store.groups[object_type]:
            raise ApiError(400, f"Property group {body['groupName']} does not exist.")
        unique = bool(body.get("hasUniqueValue"))
        if unique and sum(p.has_unique_value for p in self.store.properties[object_type].values()
                          if not p.hubspot_defined) >= UNIQUE_PROPERTY_LIMIT:
            raise ApiError(400, f"An object can have at most {UNIQUE_PROPERTY_LIMIT} unique-value properties.")
        options = _options(body.get("options"), type_)
        now = iso(self.store.now_ms())
        spec = Property(name, str(body["label"]), type_, field_type, str(body["groupName"]), options=options,
                        hubspot_defined=False, description=str(body.get("description") or ""), created_at=now,
                        display_order=int(body.get("displayOrder", -1)), has_unique_value=unique,
                        hidden=bool(body.get("hidden", False)), form_field=bool(body.get("formField", False)))
        self.store.properties[object_type][name] = spec
        return spec

    def update_property(self, request: Request) -> Response:
        spec = self._property(request)
        body = parse_json(request.body) or {}
        if spec.hubspot_defined and ({"type", "fieldType", "name"} & set(body)):
            raise ApiError(400, f"The definition of HubSpot-defined property {spec.name} cannot be changed.")
        type_ = body.get("type", spec.type)
        field_type = body.get("fieldType", spec.field_type)
        if field_type not in FIELD_TYPES.get(type_, set()):
            raise ApiError(400, f"Property type {type_} is not compatible with fieldType {field_type}.")
        if "groupName" in body and body["groupName"] not in self.store.groups[self._type(request)]:
            raise ApiError(400, f"Property group {body['groupName']} does not exist.")
        spec.type, spec.field_type = type_, field_type
        spec.label = body.get("label", spec.label)
        spec.description = body.get("description", spec.description)
        spec.group = body.get("groupName", spec.group)
        spec.display_order = int(body.get("displayOrder", spec.display_order))
        spec.hidden = bool(body.get("hidden", spec.hidden))
        if "options" in body:
            spec.options = _options(body["options"], type_)
        spec.updated_at = iso(self.store.now_ms())
        return ok(spec.to_json())

    def archive_property(self, request: Request) -> Response:
        spec = self._property(request)
        if spec.hubspot_defined:
            raise ApiError(400, f"HubSpot-defined property {spec.name} cannot be archived.")
        spec.archived, spec.archived_at = True, iso(self.store.now_ms())
        return Response.empty(204)

    def list_groups(self, request: Request) -> Response:
        return ok({"results": [g for g in self.store.groups[self._type(request)].values() if not g["archived"]]})

    def _group(self, request: Request) -> dict[str, Any]:
        name = unquote(request.path_params["name"])
        found = self.store.groups[self._type(request)].get(name)
        if found is None or found["archived"]:
            raise ApiError(404, f"Unable to find property group {name} for object type {self._type(request)}",
                           "OBJECT_NOT_FOUND")
        return found

    def get_group(self, request: Request) -> Response:
        return ok(self._group(request))

    def create_group(self, request: Request) -> Response:
        """§5.2: ``name`` and ``label`` required; 201; 409 when it exists."""
        body = parse_json(request.body) or {}
        if not isinstance(body, dict) or not body.get("name") or not body.get("label"):
            raise ApiError(400, "Missing required fields: a property group needs a name and a label.")
        name = str(body["name"])
        groups = self.store.groups[self._type(request)]
        if name in groups:
            raise ApiError(409, f"A property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
        if not NAME.match(name):
            raise ApiError(400, f"Property group name '{name}' is invalid: use lower-case letters, digits and "
                                "underscores, starting with a letter.")
        groups[name] = make_group(name, str(body["label"]), int(body.get("displayOrder", -1)))
        return ok(groups[name], self._created_status(request))

    def update_group(self, request: Request) -> Response:
        found = self._group(request)
        body = parse_json(request.body) or {}
        found["label"] = body.get("label", found["label"])
        found["displayOrder"] = int(body.get("displayOrder", found["displayOrder"]))
        return ok(found)

    def archive_group(self, request: Request) -> Response:
        found = self._group(request)
        object_type = self._type(request)
        if any(p.group == found["name"] and not p.hubspot_defined and not p.archived
               for p in self.store.properties[object_type].values()):
            raise ApiError(400, f"Property group {found['name']} still has properties.")
        found["archived"] = True
        return Response.empty(204)

    # -- pipelines (§6.2) --------------------------------------------------------------------

    def list_pipelines(self, request: Request) -> Response:
        return ok({"results": self.store.pipelines})

    def _pipeline(self, request: Request) -> dict[str, Any]:
        wanted = unquote(request.path_params["pipeline"])
        found = next((p for p in self.store.pipelines if p["id"] == wanted and not p["archived"]), None)
        if found is None:
            raise ApiError(404, f"Unable to find pipeline {wanted} for object type deals", "OBJECT_NOT_FOUND")
        return found

    def get_pipeline(self, request: Request) -> Response:
        return ok(self._pipeline(request))

    def list_stages(self, request: Request) -> Response:
        return ok({"results": self._pipeline(request)["stages"]})

    def get_stage(self, request: Request) -> Response:
        wanted = unquote(request.path_params["stage"])
        found = next((s for s in self._pipeline(request)["stages"] if s["id"] == wanted), None)
        if found is None:
            raise ApiError(404, f"Unable to find stage {wanted}", "OBJECT_NOT_FOUND")
        return ok(found)

    # -- associations v4 (§6.3) -------------------------------------------------------------------

    @staticmethod
    def _targets(from_type: str, ids: list[str]) -> list[dict[str, Any]]:
        type_id = 3 if from_type == "deals" else 4  # deal→contact 3, contact→deal 4
        return [{"toObjectId": int(i), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id,
                                                             "label": None}]} for i in ids]

    @staticmethod
    def _offset(value: Any) -> int:
        try:
            offset = int(str(value or "0"))
        except ValueError:
            raise ApiError(400, f"after must be a paging token from a previous response; got {value!r}.") from None
        return max(0, offset)

    def associations_page(self, request: Request) -> Response:
        """Per record: ``limit`` default and maximum 500, ``after`` paging, ``toObjectId`` a number."""
        params = request.path_params
        try:
            limit = min(max(int(request.arg("limit", str(ASSOCIATION_PAGE)) or ASSOCIATION_PAGE), 1),
                        ASSOCIATION_PAGE)
        except ValueError:
            raise ApiError(400, "limit must be an integer.") from None
        after = self._offset(request.arg("after"))
        record_id = unquote(params["id"])
        ids = self.store.associated(params["from"], record_id, params["to"]) \
            if self.store.find(params["from"], record_id) else []
        body: dict[str, Any] = {"results": self._targets(params["from"], ids[after:after + limit])}
        if after + limit < len(ids):
            following = str(after + limit)
            body["paging"] = {"next": {"after": following, "link": f"{request.path}?after={following}&limit={limit}"}}
        return ok(body)

    def associations_batch(self, request: Request) -> Response:
        """Batch read: ≤1,000 inputs, per-input ``paging``, records without associations
        omitted; unknown ids omitted too, or a 207 when the sandbox is set to report them."""
        params = request.path_params
        results, unknown = [], []
        for item in _inputs(parse_json(request.body), ASSOCIATION_BATCH_LIMIT):
            record_id = str(item.get("id"))
            if self.store.find(params["from"], record_id) is None:
                unknown.append(record_id)
                continue
            ids = self.store.associated(params["from"], record_id, params["to"])
            after = self._offset(item.get("after"))
            if not ids:
                continue
            entry: dict[str, Any] = {"from": {"id": record_id},
                                     "to": self._targets(params["from"], ids[after:after + ASSOCIATION_PAGE])}
            if after + ASSOCIATION_PAGE < len(ids):
                entry["paging"] = {"next": {"after": str(after + ASSOCIATION_PAGE)}}
            results.append(entry)
        errors = []
        if unknown and self.sandbox.association_batch_missing == "207":
            errors = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                       "message": f"No {params['from'][:-1]} records found for ids {', '.join(unknown)}",
                       "context": {"fromObjectId": unknown}, "errors": [], "links": {}}]
        return self._batch_body(results, errors, 200)

    def company_currency(self, request: Request) -> Response:
        """The account currency; ``id`` is the documented field (developers.hubspot.com,
        multicurrency "Get the company currency"), ``currencyCode`` kept for older callers."""
        code = self.store.company_currency
        return ok({"id": code, "currencyCode": code, "createdAt": EPOCH})


def _options(raw: Any, type_: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(o, dict) and o.get("label") is not None
                                            and o.get("value") is not None for o in raw):
        raise ApiError(400, "Property options need a label and a value each.")
    values = [str(o["value"]) for o in raw]
    if len(values) != len(set(values)):
        raise ApiError(400, "Property options must have unique values.")
    if raw and type_ not in ("enumeration", "bool"):
        raise ApiError(400, f"Options are only allowed on enumeration properties, not {type_}.")
    return [{"label": str(o["label"]), "value": str(o["value"]), "displayOrder": int(o.get("displayOrder", n)),
             "hidden": bool(o.get("hidden", False)), **({"description": o["description"]} if "description" in o
                                                        else {})} for n, o in enumerate(raw)]

