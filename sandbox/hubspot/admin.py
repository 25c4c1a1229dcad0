"""The sandbox's control API over HTTP, under ``/_sandbox/...`` (JSON in, JSON out).

The same operations as the Python methods of :class:`sandbox.hubspot.HubSpotSandbox`, for a
demo or benchmark driving an emulator that runs in another process. Not part of HubSpot: no
authentication, no rate limits, not in the request log.

| Method and path | Body | Does |
|---|---|---|
| POST ``/_sandbox/{type}`` | ``{"properties": {...}, "created_at": iso}`` (or the values flat, ``_created_at``) | create as a user |
| POST ``/_sandbox/{type}/seed`` | ``{"rows": [...], "created_at": iso}`` | fast bulk seed |
| GET/PATCH/DELETE ``/_sandbox/{type}/{id}`` | PATCH: the values | read as stored, update as a user, archive |
| POST ``/_sandbox/deals/{id}/stage`` | ``{"stage": "closedwon"}`` | move a deal |
| POST ``/_sandbox/associations`` | ``{"deal_id", "contact_id"}`` | associate |
| POST ``/_sandbox/limits`` | keywords of ``set_limits`` (``tier`` too) | limits, index lag, latency |
| POST/DELETE ``/_sandbox/faults`` | keywords of ``inject`` | arm / clear faults |
| POST ``/_sandbox/tokens/expire`` | | expire OAuth access tokens |
| POST ``/_sandbox/tokens/revoke`` | ``{"revoked": true}`` | uninstall the OAuth app (refreshes get invalid_grant) |
| POST ``/_sandbox/tokens/private`` | ``{"token": "pat-..."}`` | rotate the private-app token |
| POST ``/_sandbox/clock/advance`` | ``{"seconds": 30}`` | move the clock |
| GET ``/_sandbox/requests``, ``/_sandbox/requests/counts`` | | the log; counts by endpoint and 429s |
| POST ``/_sandbox/requests/reset``, ``/_sandbox/reset`` | | clear the log; reset everything |
| GET ``/_sandbox/credentials`` | | the sandbox's own (fake) credentials |
| GET/PUT ``/_sandbox/webhooks`` | PUT: keywords of ``configure_webhooks`` (``target_url``, ``client_secret``, ``app_id``, ``subscriptions``, ...) | the app's webhook settings (GET omits the secret) |
| GET ``/_sandbox/webhooks/deliveries`` | | every delivery attempt, and the events dropped after the last retry |
| DELETE ``/_sandbox/webhooks/pending`` | | forget undelivered events |
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox.web import Request, Response, Router

if TYPE_CHECKING:
    from sandbox.hubspot import HubSpotSandbox

OBJECTS = r"(?P<type>contacts|deals)"


def _json(request: Request) -> Any:
    return request.json() or {}


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _done(data: Any = None, status: int = 200) -> Response:
    return Response.json({"ok": True} if data is None else data, status)


def admin_router(sandbox: "HubSpotSandbox") -> Router:
    router = Router()

    def create(request: Request) -> Response:
        body = dict(_json(request))
        created = body.pop("created_at", None) or body.pop("_created_at", None)
        values = body["properties"] if isinstance(body.get("properties"), dict) else body
        record_id = sandbox.create(request.path_params["type"], values, created_at=_when(created))
        return _done({"id": record_id}, 201)

    def seed(request: Request) -> Response:
        body = _json(request)
        ids = sandbox.seed(request.path_params["type"], body.get("rows") or [], created_at=_when(body.get("created_at")))
        return _done({"ids": ids}, 201)

    def read(request: Request) -> Response:
        found = sandbox.stored(request.path_params["type"], request.path_params["id"])
        return _done(found) if found is not None else Response.json({"error": "not found"}, 404)

    def update(request: Request) -> Response:
        body = _json(request)
        values = body["properties"] if isinstance(body.get("properties"), dict) else body
        sandbox.update(request.path_params["type"], request.path_params["id"], values)
        return _done()

    def archive(request: Request) -> Response:
        sandbox.archive(request.path_params["type"], request.path_params["id"])
        return _done()

    def counts(request: Request) -> Response:
        return _done({"total": len(sandbox.requests), "by_endpoint": sandbox.endpoint_counts(),
                      "rate_limited": sandbox.rate_limited})

    def advance(request: Request) -> Response:
        return _done({"now": sandbox.advance(float(_json(request).get("seconds", 0))).isoformat()})

    router.add("POST", rf"/_sandbox/{OBJECTS}", create)
    router.add("POST", rf"/_sandbox/{OBJECTS}/seed", seed)
    router.add("GET", rf"/_sandbox/{OBJECTS}/(?P<id>\d+)", read)
    router.add("PATCH", rf"/_sandbox/{OBJECTS}/(?P<id>\d+)", update)
    router.add("DELETE", rf"/_sandbox/{OBJECTS}/(?P<id>\d+)", archive)
    router.add("POST", r"/_sandbox/deals/(?P<id>\d+)/stage", lambda r: (
        sandbox.move_deal(r.path_params["id"], _json(r)["stage"]), _done())[1])
    router.add("POST", r"/_sandbox/associations", lambda r: (
        sandbox.associate(_json(r)["deal_id"], _json(r)["contact_id"]), _done())[1])
    router.add("POST", r"/_sandbox/limits", lambda r: (sandbox.set_limits(**_json(r)), _done())[1])
    router.add("POST", r"/_sandbox/faults", lambda r: (sandbox.inject(**_json(r)), _done())[1])
    router.add("DELETE", r"/_sandbox/faults", lambda r: (sandbox.clear_faults(), _done())[1])
    router.add("POST", r"/_sandbox/tokens/expire", lambda r: (sandbox.expire_tokens(), _done())[1])
    router.add("POST", r"/_sandbox/tokens/revoke", lambda r: (
        sandbox.revoke_refresh_token(bool(_json(r).get("revoked", True))), _done())[1])
    router.add("POST", r"/_sandbox/tokens/private", lambda r: _done({"old": sandbox.rotate_private_token(
        str(_json(r)["token"]))}))
    router.add("POST", r"/_sandbox/clock/advance", advance)
    router.add("GET", r"/_sandbox/requests", lambda r: _done(sandbox.request_log()))
    router.add("GET", r"/_sandbox/requests/counts", counts)
    router.add("POST", r"/_sandbox/requests/reset", lambda r: (sandbox.reset_log(), _done())[1])
    router.add("POST", r"/_sandbox/reset", lambda r: (sandbox.reset(), _done())[1])
    router.add("GET", r"/_sandbox/credentials", lambda r: _done(sandbox.credentials))
    router.add("GET", r"/_sandbox/webhooks", lambda r: _done(sandbox.webhook_settings()))
    router.add("PUT", r"/_sandbox/webhooks", lambda r: (sandbox.configure_webhooks(**_json(r)), _done())[1])
    router.add("GET", r"/_sandbox/webhooks/deliveries", lambda r: _done({
        "deliveries": sandbox.webhook_deliveries(), "dropped": sandbox.dropped_webhook_events()}))
    router.add("DELETE", r"/_sandbox/webhooks/pending", lambda r: _done({"cleared": sandbox.webhooks.clear_pending()}))
    return router
