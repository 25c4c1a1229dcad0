"""The HubSpot webhook receiver: verify, record the changed ids durably, answer — nothing more.

``POST /hubspot/webhooks`` lives on its own listener (``[webhooks] host``/``port``), apart
from the public collector's routes; :func:`webhook_routes` can equally be mounted on another
app (an admin listener). HubSpot retries a delivery that took more than 5 s or got any 4xx/5xx
(realtime-and-auth.md §1.2), so the handler only verifies the v3 signature against
``[hubspot] webhook_url`` and the app's client secret, queues the ids in one transaction and
answers 204; the enrich, revenue and lifecycle jobs do the work. A forged, tampered or stale
request gets 401 and nothing is stored. Events the daemon does not act on (other types, other
properties) are acknowledged too: refusing them would only make HubSpot retry them.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from adapters.hubspot_webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_events, signature_problem
from state import Store
from state.models import TriggerStream
from sync.config import Config
from sync.jobs.base import INSTANCE
from sync.jobs.triggers import SOURCE_WEBHOOK, WEBHOOK_CHANNEL, Routing, queue_changes, save_stream
from sync.ops import metrics

log = logging.getLogger(__name__)
CRM = "hubspot"
PATH = "/hubspot/webhooks"
MAX_BODY = 1_048_576  # 100 events are far below this
HEARTBEAT_SECONDS = 60.0


def webhook_routes(config: Config, store: Store, mapping, kick: Callable[[set[str]], None], *,
                   clock: Callable[[], datetime] | None = None) -> list[Route]:
    """The receiver's route, for any Starlette app."""
    settings = config.settings.hubspot
    secret = config.secrets.get("hubspot.client_secret_env", "")
    routing = Routing(config, CRM, mapping)
    clock = clock or (lambda: datetime.now(timezone.utc))

    def refuse(status: int, reason: str, outcome: str) -> Response:
        metrics.trigger_events.labels(CRM, WEBHOOK_CHANNEL, outcome).inc()
        return JSONResponse({"error": reason}, status_code=status)

    app_id = settings.app_id

    def own(event) -> bool:
        return bool(app_id) and event.source_id == app_id and event.change_source in ("INTEGRATION", "API")

    def record(events) -> set[str]:
        now = clock()
        mine = [event for event in events if own(event)]
        changes = [change for event in events if event not in mine
                   for change in routing.hubspot(event.kind, event.object_id, event.property_name, event.occurred_at,
                                                 written_by_another=bool(app_id and event.source_id))]
        moments = [event.occurred_at for event in events if event.occurred_at is not None]
        with store.session() as session:
            queue_changes(session, CRM, SOURCE_WEBHOOK, changes, now)
            if events:
                row = session.get(TriggerStream, (CRM, WEBHOOK_CHANNEL))
                values = {"state": "listening", "last_event_at": now, "events": (row.events if row else 0) + len(events),
                          "instance": INSTANCE}
                if moments:
                    values["lag_seconds"] = max(0.0, (now - max(moments)).total_seconds())
                save_stream(session, CRM, WEBHOOK_CHANNEL, now, **values)
        if events:
            metrics.trigger_last_event.labels(CRM, WEBHOOK_CHANNEL).set(now.timestamp())
            if moments:
                metrics.trigger_lag.labels(CRM, WEBHOOK_CHANNEL).set(max(0.0, (now - max(moments)).total_seconds()))
        relevant = {change.record_id for change in changes}
        metrics.trigger_events.labels(CRM, WEBHOOK_CHANNEL, "own_write").inc(len(mine))
        metrics.trigger_events.labels(CRM, WEBHOOK_CHANNEL, "queued").inc(
            sum(1 for event in events if event.object_id in relevant))
        metrics.trigger_events.labels(CRM, WEBHOOK_CHANNEL, "ignored").inc(
            sum(1 for event in events if event not in mine and event.object_id not in relevant))
        return {change.job for change in changes}

    async def receive(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return refuse(413, f"body exceeds {MAX_BODY} bytes", "refused")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return refuse(413, f"body exceeds {MAX_BODY} bytes", "refused")
        uri = settings.webhook_url + (f"?{request.url.query}" if request.url.query and "?" not in
                                      settings.webhook_url else "")
        problem = signature_problem(secret, method=request.method, uri=uri, body=bytes(body),
                                    timestamp=request.headers.get(TIMESTAMP_HEADER),
                                    signature=request.headers.get(SIGNATURE_HEADER), now=clock())
        if problem:
            log.warning("refused a HubSpot webhook request from %s: %s", request.client.host if request.client
                        else "?", problem)
            return refuse(401, "signature verification failed", "refused")
        try:
            events, problems = parse_events(bytes(body))
        except ValueError as exc:
            return refuse(400, str(exc), "refused")
        for line in problems:
            log.warning("HubSpot webhook: %s; skipped", line)
        metrics.trigger_events.labels(CRM, WEBHOOK_CHANNEL, "unreadable").inc(len(problems))
        jobs = await run_in_threadpool(record, events)
        if jobs:
            kick(jobs)
        return Response(status_code=204)

    return [Route(PATH, receive, methods=["POST"])]


def create_webhook_app(config: Config, store: Store, mapping, kick: Callable[[set[str]], None], *,
                       clock: Callable[[], datetime] | None = None) -> Starlette:
    """The receiver as an app of its own (what the daemon serves on ``[webhooks]``)."""
    async def not_found(request: Request, exc) -> Response:
        return PlainTextResponse("not found", status_code=404)

    return Starlette(routes=webhook_routes(config, store, mapping, kick, clock=clock),
                     exception_handlers={404: not_found})


class Heartbeat:
    """Keeps the webhook channel's row fresh while the receiver listens, so ``status`` and the
    enrich job can tell a listening daemon from one that stopped."""

    def __init__(self, store: Store, clock: Callable[[], datetime] | None = None,
                 every: float = HEARTBEAT_SECONDS) -> None:
        self.store, self.every = store, every
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="webhook-heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self.beat("listening")
        self.thread.start()
        return self

    def beat(self, state: str) -> None:
        with self.store.session() as session:
            save_stream(session, CRM, WEBHOOK_CHANNEL, self.clock(), state=state, instance=INSTANCE, message=None)
        metrics.trigger_connected.labels(CRM, WEBHOOK_CHANNEL).set(1 if state == "listening" else 0)

    def _run(self) -> None:
        while not self.stop_event.wait(self.every):
            try:
                self.beat("listening")
            except Exception:  # the store may be briefly unreachable; the next beat tries again
                log.exception("webhook receiver heartbeat failed")

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(5)
        try:
            self.beat("stopped")
        except Exception:
            log.exception("could not record that the webhook receiver stopped")


def check_webhooks(config: Config, store: Store, connections) -> tuple[list[str], list[str]]:
    """For ``closedloop check``: (lines, problems) — a signed empty batch sent to ``webhook_url``
    must reach a running daemon's receiver and be accepted (what HubSpot's deliveries need), and
    when HubSpot last reached it."""
    from adapters.hubspot_webhooks import probe

    settings = config.settings.hubspot
    secret = config.secrets.get("hubspot.client_secret_env", "")
    status, reason = probe(settings.webhook_url, secret, timeout=min(10.0, settings.timeout_seconds),
                           ca_bundle=connections.ca_bundle(settings.ca_bundle))
    lines, problems = [], []
    if status is None:
        problems.append(f"[hubspot] webhook_url: {settings.webhook_url} cannot be reached ({reason}): is the daemon "
                        f"running, and does the URL lead to its receiver ([webhooks] {config.settings.webhooks.host}:"
                        f"{config.settings.webhooks.port}, path {PATH})?")
    elif status == 401:
        problems.append(f"[hubspot] webhook_url: the receiver at {settings.webhook_url} refused a correctly signed "
                        "request: it checks another client secret, or webhook_url is not the URL it is served at")
    elif not 200 <= status < 300:
        problems.append(f"[hubspot] webhook_url: {settings.webhook_url} answered HTTP {status} {reason}: not closedloop's "
                        f"receiver (it answers 204 on {PATH})")
    else:
        with store.session(readonly=True) as session:
            row = session.get(TriggerStream, (CRM, WEBHOOK_CHANNEL))
        heard = f"last delivery from HubSpot {row.last_event_at:%Y-%m-%d %H:%M} UTC" if row and row.last_event_at \
            else "no delivery from HubSpot yet (subscribe the app to contact.creation, contact.propertyChange and " \
                 "deal.propertyChange)"
        lines.append(f"hubspot: webhooks reach the daemon at {settings.webhook_url}; {heard}")
    return lines, problems
