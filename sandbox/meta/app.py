"""The Meta sandbox's routes: the Graph endpoints a Conversions API sender uses, and control.

    POST /v{N}.{M}/{dataset_id}/events           the Conversions API
    GET  /v{N}.{M}/{dataset_id}?fields=id,name   a token/permission check

    GET  /_sandbox/credentials                   → access_token, dataset_id, graph_url, api_version, ca_path
    GET  /_sandbox/state                         → datasets, tokens (shortened), clicks, people
    GET  /_sandbox/events?dataset_id=&test=&counted_only=   → what the dataset received
    GET  /_sandbox/requests                      → the request log (tokens redacted)
    POST /_sandbox/tokens    {"token", "datasets"?, "expires_at"?, "app_secret"?, "require_proof"?} → 201
    POST /_sandbox/expire-token {"token"?}       ; POST /_sandbox/datasets {"dataset_id", "name"?, "grant"?}
    POST /_sandbox/clicks    {"fbclid", "at"?, "campaign"?} → 201
    POST /_sandbox/people    {"email"?, "phone"?, "label"?} → 201
    POST /_sandbox/faults    {"kind", "times"?}  ; POST /_sandbox/outage {"seconds"}
    POST /_sandbox/reset
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.control import control as _control
from sandbox.control import fields
from sandbox.web import Router

if TYPE_CHECKING:
    from sandbox.meta import MetaSandbox

_TRUE = ("1", "true", "yes")


def build_router(sandbox: "MetaSandbox") -> Router:
    router = Router()
    add = router.add
    version, object_id = r"/(?P<version>v[0-9.]+)", r"/(?P<object_id>[0-9]+)"
    add("POST", version + object_id + r"/events", sandbox.handle_events)
    add("GET", version + object_id, sandbox.handle_dataset)

    add("GET", r"/_sandbox/credentials", _control(lambda r: sandbox.credentials))
    add("GET", r"/_sandbox/state", _control(lambda r: sandbox.describe()))
    add("GET", r"/_sandbox/events", _control(lambda r: sandbox.events(
        r.arg("dataset_id") or sandbox.credentials["dataset_id"], test=(r.arg("test") or "").lower() in _TRUE,
        counted_only=(r.arg("counted_only") or "").lower() in _TRUE)))
    add("GET", r"/_sandbox/requests", _control(lambda r: sandbox.request_log()))
    add("POST", r"/_sandbox/tokens", _control(lambda r: sandbox.add_token(**fields(
        r, "token", optional=("datasets", "expires_at", "app_secret", "require_proof"))), 201))
    add("POST", r"/_sandbox/expire-token", _control(lambda r: sandbox.expire_token(**fields(r, optional=("token",)))))
    add("POST", r"/_sandbox/datasets", _control(lambda r: sandbox.add_dataset(**fields(
        r, "dataset_id", optional=("name", "grant"))), 201))
    add("POST", r"/_sandbox/clicks", _control(lambda r: _click_json(sandbox.record_click(**fields(
        r, "fbclid", optional=("at", "campaign")))), 201))
    add("POST", r"/_sandbox/people", _control(lambda r: sandbox.register_person(**fields(
        r, optional=("email", "phone", "label"))), 201))
    add("POST", r"/_sandbox/faults", _control(lambda r: sandbox.inject(**fields(r, "kind", optional=("times",)))))
    add("POST", r"/_sandbox/outage", _control(lambda r: {"down_until": sandbox.outage(
        **fields(r, "seconds")).isoformat()}))
    add("POST", r"/_sandbox/reset", _control(lambda r: sandbox.reset()))
    return router


def _click_json(click) -> dict:
    return {"fbclid": click.fbclid, "at": click.at.isoformat(), "campaign": click.campaign}
