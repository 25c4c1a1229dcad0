"""The Data Manager sandbox's routes: Google's two ingestion RPCs and the JSON control API.

    POST /v1/events:ingest                      → {"requestId", "fieldWarnings"?} | google.rpc.Status
    GET  /v1/requestStatus:retrieve?requestId=  → {"requestStatusPerDestination": [...]}
    *    /v1/audienceMembers:*, /v1/users:*, /v1/adEvents:ingest → 501 (not emulated)

    GET  /_sandbox/credentials                  → service account file, account ids, action ids
    GET  /_sandbox/accounts                     → accounts, conversion actions, clicks, people
    POST /_sandbox/accounts                     {"customer_id", ...settings} → 201
    POST /_sandbox/conversion-actions           {"customer_id", "action_id", "name", "type"?, "created_at"?,
                                                 "status"?, "click_through_days"?} → 201
    POST /_sandbox/access                       {"email", "customer_id"?} → 201
    POST /_sandbox/clicks                       {"gclid"|"gbraid"|"wbraid", "at"?, "customer_id"?, "campaign"?}
    POST /_sandbox/people                       {"email"?, "phone"?, "label"?}
    GET  /_sandbox/conversions?customer_id=&conversion_action_id=   → what Google Ads recorded
    GET  /_sandbox/rows?request_id=             → each event's outcome per destination
    GET  /_sandbox/request-status/<id>          → the status the API would answer now
    GET  /_sandbox/requests                     → the request log (no tokens)
    POST /_sandbox/faults                       {"kind", "times"?} ; POST /_sandbox/outage {"seconds"}
    POST /_sandbox/reset
Times are ISO 8601 with an offset. Control calls answer 400 with the reason on bad input.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sandbox.control import control as _control
from sandbox.control import fields
from sandbox.web import Request, Response, Router

if TYPE_CHECKING:
    from sandbox.google_ads import DataManagerSandbox


def build_router(sandbox: "DataManagerSandbox") -> Router:
    router = Router()
    add = router.add
    add("POST", r"/v1/events:ingest", sandbox.handle_ingest)
    add("GET", r"/v1/requestStatus:retrieve", sandbox.handle_status)
    for pattern in (r"/v1/audienceMembers:\w+", r"/v1/users:\w+", r"/v1/adEvents:ingest"):
        add("POST", pattern, sandbox.handle_unimplemented)

    add("GET", r"/_sandbox/credentials", _control(lambda r: sandbox.credentials))
    add("GET", r"/_sandbox/accounts", _control(lambda r: sandbox.describe()))
    add("POST", r"/_sandbox/accounts", _control(lambda r: sandbox.add_account(**fields(
        r, "customer_id", optional=("name", "currency", "users", "manager", "clients", "custom_variables",
                                    "consent_required", "default_ad_user_data", "third_party_consent", "ecl_enabled",
                                    "ecl_terms_signed", "ecl_policy_allows"))), 201))
    add("POST", r"/_sandbox/conversion-actions", _control(lambda r: sandbox.add_conversion_action(**fields(
        r, "customer_id", "action_id", "name", optional=("type", "created_at", "status", "click_through_days"))),
        201))
    add("POST", r"/_sandbox/access", _control(lambda r: sandbox.grant_access(**fields(
        r, "email", optional=("customer_id",))), 201))
    add("POST", r"/_sandbox/clicks", _control(lambda r: sandbox.record_click(**fields(
        r, optional=("gclid", "gbraid", "wbraid", "at", "customer_id", "campaign"))).as_json(), 201))
    add("POST", r"/_sandbox/people", _control(lambda r: sandbox.register_person(**fields(
        r, optional=("email", "phone", "label"))), 201))
    add("GET", r"/_sandbox/conversions", _control(lambda r: sandbox.conversions(
        r.arg("customer_id"), r.arg("conversion_action_id"))))
    add("GET", r"/_sandbox/rows", _control(lambda r: sandbox.rows(r.arg("request_id"))))
    add("GET", r"/_sandbox/request-status/(?P<request_id>[^/]+)", _status(sandbox))
    add("GET", r"/_sandbox/requests", _control(lambda r: sandbox.request_log()))
    add("POST", r"/_sandbox/faults", _control(lambda r: sandbox.inject(**fields(r, "kind", optional=("times",)))))
    add("POST", r"/_sandbox/outage", _control(lambda r: {"down_until": sandbox.outage(
        **fields(r, "seconds")).isoformat()}))
    add("POST", r"/_sandbox/reset", _control(lambda r: sandbox.reset()))
    return router


def _status(sandbox: "DataManagerSandbox") -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        status = sandbox.request_status(request.path_params["request_id"])
        if status is None:
            return Response.json({"error": "no such request (or validateOnly, or older than 50 days)"}, 404)
        return Response.json(status)
    return handler
