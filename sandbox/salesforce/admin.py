"""The control API over HTTPS, under ``/_sandbox/...`` (no session needed), for a sandbox that
runs in another process (``closedloop sandbox``, the demo, benchmarks).

Every endpoint mirrors a :class:`~sandbox.salesforce.SalesforceSandbox` method; bodies and
answers are JSON. Errors: ``{"error": code, "message": text}`` with 400 (or 404).

    POST   /_sandbox/records/{object}              values (+ "_created_at")   → 201 {"id"}
    POST   /_sandbox/records/{object}/seed         {"records": [...]} or [...] → 201 {"ids"}
    GET    /_sandbox/records/{id}  or /_sandbox/records/{object}/{id}          → the stored record
    PATCH  /_sandbox/records/{object}/{id}         values                     → 204
    DELETE /_sandbox/records/{object}/{id}                                    → 204 (recycle bin)
    POST   /_sandbox/records/{object}/{id}/undelete                           → 204
    POST   /_sandbox/leads/{id}/convert            {"create_opportunity", "opportunity_fields"}
    POST   /_sandbox/opportunities/{id}/close      {"won", "amount"}          → 204
    GET    /_sandbox/query?q=SOQL[&all=true]                                  → rows
    POST   /_sandbox/faults                        {"kind", "times", "method", "path_contains",
                                                    "object", "record_ids", "delay", "message", "status"}
    GET    /_sandbox/faults  ·  DELETE /_sandbox/faults
    POST   /_sandbox/sessions/expire               {"keep_rejecting": bool}
    POST   /_sandbox/sessions/revive  ·  POST /_sandbox/logins {"refuse": bool}
    GET    /_sandbox/requests  ·  POST /_sandbox/requests/reset  ·  GET /_sandbox/api-calls?path_contains=
    GET    /_sandbox/api-usage  ·  POST /_sandbox/api-usage {"used", "limit"}  ·  POST /_sandbox/api-usage/reset
    POST   /_sandbox/multi-currency                {"enabled": bool}
    POST   /_sandbox/assignment-rule               {"owner_id": id or null}
    GET    /_sandbox/credentials  ·  GET /_sandbox/org
    GET    /_sandbox/cdc                           → {"entities": [...], "max_entities"}
    POST   /_sandbox/cdc                           {"enable": ["Lead"], "disable": ["Contact"]}
    GET    /_sandbox/pubsub                        → endpoint, timings, open streams
    POST   /_sandbox/pubsub                        keywords of set_pubsub (keepalive_seconds, ...)
    POST   /_sandbox/pubsub/break                  → {"broken": n} (every open stream fails UNAVAILABLE)
    POST   /_sandbox/pubsub/unavailable            {"unavailable": bool} (new RPCs fail UNAVAILABLE)
    GET    /_sandbox/change-events                 → retained change events' headers, oldest first
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox.web import Request, Response, Router

if TYPE_CHECKING:
    from sandbox.salesforce import SalesforceSandbox

OK = {"ok": True}


def admin_router(sandbox: "SalesforceSandbox") -> Router:
    """The ``/_sandbox`` routes bound to ``sandbox``."""
    router = Router()
    add = router.add

    def body(request: Request) -> Any:
        return request.json() if request.body else {}

    def create(request: Request) -> Response:
        values = dict(body(request))
        created_at = values.pop("_created_at", None)
        record_id = sandbox.create(request.path_params["object"], values, created_at=_moment(created_at))
        return Response.json({"id": record_id}, 201)

    def seed(request: Request) -> Response:
        data = body(request)
        rows = data.get("records", []) if isinstance(data, dict) else data
        created_at = data.get("created_at") if isinstance(data, dict) else None
        return Response.json({"ids": sandbox.seed(request.path_params["object"], rows,
                                                  created_at=_moment(created_at))}, 201)

    def record(request: Request) -> Response:
        found = sandbox.record(request.path_params["id"])
        return Response.json(found) if found else Response.json({"error": "NOT_FOUND", "message": "no such record"},
                                                                 404)

    def convert(request: Request) -> Response:
        data = body(request)
        return Response.json(sandbox.convert_lead(request.path_params["id"],
                                                  create_opportunity=data.get("create_opportunity", True),
                                                  opportunity_fields=data.get("opportunity_fields")
                                                  or data.get("opportunity")))

    def done(_result: Any = None, status: int = 200) -> Response:
        return Response.json(OK, status)

    add("POST", r"/_sandbox/records/(?P<object>\w+)", create)
    add("POST", r"/_sandbox/records/(?P<object>\w+)/seed", seed)
    add("GET", r"/_sandbox/records/(?P<id>\w+)", record)
    add("GET", r"/_sandbox/records/\w+/(?P<id>\w+)", record)
    add("PATCH", r"/_sandbox/records/(?P<object>\w+)/(?P<id>\w+)", lambda r: (
        sandbox.update(r.path_params["object"], r.path_params["id"], body(r)), Response.empty(204))[1])
    add("DELETE", r"/_sandbox/records/(?P<object>\w+)/(?P<id>\w+)", lambda r: (
        sandbox.delete(r.path_params["object"], r.path_params["id"]), Response.empty(204))[1])
    add("POST", r"/_sandbox/records/(?P<object>\w+)/(?P<id>\w+)/undelete", lambda r: (
        sandbox.undelete(r.path_params["object"], r.path_params["id"]), Response.empty(204))[1])
    add("POST", r"/_sandbox/leads/(?P<id>\w+)/convert", convert)
    add("POST", r"/_sandbox/opportunities/(?P<id>\w+)/close", lambda r: (
        sandbox.close_opportunity(r.path_params["id"], bool(body(r).get("won", True)), body(r).get("amount")),
        Response.empty(204))[1])
    add("GET", r"/_sandbox/query", lambda r: Response.json(
        sandbox.query(r.arg("q", ""), include_deleted=(r.arg("all") or "").lower() == "true")))
    add("POST", r"/_sandbox/faults", lambda r: done(sandbox.inject(**body(r))))
    add("GET", r"/_sandbox/faults", lambda r: Response.json(sandbox.pending_faults()))
    add("DELETE", r"/_sandbox/faults", lambda r: done(sandbox.clear_faults()))
    add("POST", r"/_sandbox/sessions/expire", lambda r: done(
        sandbox.expire_sessions(keep_rejecting=bool(body(r).get("keep_rejecting")))))
    add("POST", r"/_sandbox/sessions/revive", lambda r: done(sandbox.revive_sessions()))
    add("POST", r"/_sandbox/logins", lambda r: done(sandbox.refuse_logins(bool(body(r).get("refuse", True)))))
    add("GET", r"/_sandbox/requests", lambda r: Response.json(sandbox.request_log()))
    add("POST", r"/_sandbox/requests/reset", lambda r: done(sandbox.reset_log()))
    add("GET", r"/_sandbox/api-calls", lambda r: Response.json(
        {"calls": sandbox.api_calls(r.arg("path_contains", "") or "")}))
    add("GET", r"/_sandbox/api-usage", lambda r: Response.json({"used": sandbox.api_used,
                                                                "limit": sandbox.daily_api_limit}))
    add("POST", r"/_sandbox/api-usage", lambda r: done(sandbox.set_api_usage(**body(r))))
    add("POST", r"/_sandbox/api-usage/reset", lambda r: done(sandbox.reset_api_usage()))
    add("POST", r"/_sandbox/multi-currency", lambda r: done(sandbox.set_multi_currency(bool(body(r).get("enabled")))))
    add("POST", r"/_sandbox/assignment-rule", lambda r: done(sandbox.set_assignment_rule_owner(
        body(r).get("owner_id"))))
    add("GET", r"/_sandbox/credentials", lambda r: Response.json(sandbox.credentials))
    add("GET", r"/_sandbox/cdc", lambda r: Response.json({"entities": sandbox.cdc_entities,
                                                          "max_entities": sandbox.changes.max_entities}))
    add("POST", r"/_sandbox/cdc", lambda r: done((sandbox.enable_cdc(*body(r).get("enable", [])),
                                                  sandbox.disable_cdc(*body(r).get("disable", [])))))
    add("GET", r"/_sandbox/pubsub", lambda r: Response.json(sandbox.pubsub_settings()))
    add("POST", r"/_sandbox/pubsub", lambda r: done(sandbox.set_pubsub(**body(r))))
    add("POST", r"/_sandbox/pubsub/break", lambda r: Response.json({"broken": sandbox.break_pubsub_streams()}))
    add("POST", r"/_sandbox/pubsub/unavailable", lambda r: done(sandbox.set_pubsub_unavailable(
        bool(body(r).get("unavailable", True)))))
    add("GET", r"/_sandbox/change-events", lambda r: Response.json(sandbox.change_events()))
    add("GET", r"/_sandbox/org", lambda r: Response.json({
        "organization_id": sandbox.org.organization_id, "integration_user": sandbox.org.integration_user,
        "sales_rep": sandbox.org.sales_rep, "permission_set": sandbox.org.permission_set,
        "multi_currency": sandbox.org.multi_currency, "org_currency": sandbox.org.org_currency,
        "records": {name: len(table) for name, table in sandbox.org.records.items()}}))
    return router


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
