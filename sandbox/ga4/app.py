"""The GA4 sandbox's routes: Google's three endpoints and the JSON control API.

    POST /mp/collect                  → 204, empty body (always)
    POST /debug/mp/collect            → 200 {"validationMessages": [...]}
    GET|POST /g/collect               → 204 (gtag.js hits)

    GET  /_sandbox/credentials        → {"measurement_id", "api_secret"}
    GET  /_sandbox/requests           · POST /_sandbox/requests/reset
    GET  /_sandbox/dropped            → collect requests that never reached the property
    GET  /_sandbox/events             · GET /_sandbox/hits · GET /_sandbox/users
    POST /_sandbox/users              {"client_id", "source", "medium", "campaign"?} → 201
    GET|POST /_sandbox/custom-dimensions  {"parameter_name", "display_name"?}
    GET|POST /_sandbox/key-events     {"event_name"}
    POST /v1beta/properties/<id>:runReport → the GA4 Data API (data_api.py)

    GET  /_sandbox/data-api-calls   → runReport calls with status and error
    GET  /_sandbox/report?dimension=&metric=&event_name=&keep_empty_rows=
         → {"dimension", "metric", "currency", "rows": [{"dimension", "value"}]} (values as strings)
    POST /_sandbox/faults             {"count", "status": 503 | "drop"}
    POST /_sandbox/reset
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.ga4.data_api import handle_run_report, metric_text
from sandbox.control import control as _control
from sandbox.control import fields as _fields
from sandbox.web import Request, Response, Router

if TYPE_CHECKING:
    from sandbox.ga4 import GA4Sandbox


def _ok(data: Any = None, status: int = 200) -> Response:
    return Response.json({"ok": True} if data is None else data, status)


def build_router(sandbox: "GA4Sandbox") -> Router:
    """All routes bound to ``sandbox``."""
    router = Router()
    add = router.add
    add("POST", r"/mp/collect", sandbox.handle_collect)
    add("POST", r"/debug/mp/collect", sandbox.handle_debug)
    add("GET", r"/g/collect", sandbox.handle_hits)
    add("POST", r"/g/collect", sandbox.handle_hits)
    add("POST", r"/v1beta/properties/(?P<property_id>[^/:]+):runReport", lambda r: handle_run_report(sandbox, r))
    add("GET", r"/_sandbox/data-api-calls", lambda r: _ok(sandbox.data_api_log()))

    add("GET", r"/_sandbox/credentials", lambda r: _ok(sandbox.credentials))
    add("GET", r"/_sandbox/requests", lambda r: _ok(sandbox.request_log()))
    add("POST", r"/_sandbox/requests/reset", _control(lambda r: sandbox.reset_log()))
    add("GET", r"/_sandbox/dropped", lambda r: _ok(sandbox.dropped_requests()))
    add("GET", r"/_sandbox/events", lambda r: _ok(sandbox.event_log()))
    add("GET", r"/_sandbox/hits", lambda r: _ok(sandbox.hit_log()))
    add("GET", r"/_sandbox/users", lambda r: _ok(sandbox.user_log()))
    add("POST", r"/_sandbox/users", _control(lambda r: sandbox.register_user(**_fields(
        r, "client_id", "source", "medium", optional=("campaign",))), 201))
    add("GET", r"/_sandbox/custom-dimensions", lambda r: _ok(dict(sandbox.property.custom_dimensions)))
    add("POST", r"/_sandbox/custom-dimensions", _control(lambda r: sandbox.register_custom_dimension(**_fields(
        r, "parameter_name", optional=("display_name",))), 201))
    add("GET", r"/_sandbox/key-events", lambda r: _ok(sorted(sandbox.property.key_events)))
    add("POST", r"/_sandbox/key-events", _control(lambda r: sandbox.mark_key_event(**_fields(r, "event_name")), 201))
    add("GET", r"/_sandbox/report", _control(lambda r: _report(sandbox, r)))
    add("POST", r"/_sandbox/faults", _control(lambda r: sandbox.fail_next(**_fields(
        r, "count", optional=("status",)))))
    add("POST", r"/_sandbox/reset", _control(lambda r: sandbox.reset()))
    return router


def _report(sandbox: "GA4Sandbox", request: Request) -> dict[str, Any]:
    dimension = request.arg("dimension") or "firstUserSource"
    metric = request.arg("metric") or "totalRevenue"
    keep = (request.arg("keep_empty_rows") or "true").lower() not in ("false", "0", "no")
    rows = sandbox.report(dimension, metric, request.arg("event_name"), keep_empty_rows=keep)
    return {"dimension": dimension, "metric": metric, "currency": sandbox.property_currency,
            "rows": [{"dimension": key, "value": metric_text(value)} for key, value in rows.items()]}
