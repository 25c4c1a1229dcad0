"""The collector's ASGI application: ``GET /t.js`` and ``POST /collect`` (plus ``/healthz`` and
``/metrics`` when no separate admin listener is configured, see :mod:`sync.ops.admin`).

``/collect`` answers 204 only once the beacon is committed to the store (see
:mod:`sync.capture.writer`: many requests share one commit). Bad input gets a 4xx with a
reason and never a 500; beacons from origins that are not the configured site are refused;
known bots are dropped without telling them. Each client address and each visitor id has a
token bucket (429 past it), and an email claimed by too many new devices at once is refused.
"""
from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

from calmjs.parse import es5
from calmjs.parse.unparsers.es5 import minify_print
from crawlerdetect import CrawlerDetect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from state import Store
from sync.capture.beacon import BeaconError, Bounds, parse_beacons
from sync.capture.limits import ClaimLimiter, TokenBuckets
from sync.capture.text import clean_text
from sync.capture.writer import BeaconWriter, StoreTimeout
from sync.config import Config
from sync.ops import metrics
from sync.ops.admin import AdminEndpoints

log = logging.getLogger(__name__)

TRACKER_SOURCE = Path(__file__).with_name("tracker.js")


def tracker_settings(config: Config) -> dict:
    """The values baked into t.js for this deployment."""
    collector = config.settings.collector
    public = collector.public_url or f"http://{collector.host}:{collector.port}"
    measurement_id = config.settings.ga4.measurement_id
    return {
        "endpoint": public.rstrip("/") + "/collect",
        "cookieDomain": collector.cookie_domain,
        "requireConsent": collector.require_consent,
        "honorDnt": collector.honor_dnt,
        "honorGpc": collector.honor_gpc,
        "sessionMinutes": collector.session_timeout_minutes,
        "gaContainer": measurement_id.removeprefix("G-") if measurement_id else "",
    }


def render_tracker(settings: dict) -> str:
    """t.js with its settings filled in, minified (local names shortened; globals kept)."""
    source = TRACKER_SOURCE.read_text(encoding="utf-8")
    source = source.replace("__CLOSEDLOOP_CONFIG__", json.dumps(settings, separators=(",", ":")))
    return minify_print(es5(source), obfuscate=True, obfuscate_globals=False)


@lru_cache(maxsize=1)
def _crawler_detect() -> CrawlerDetect:
    return CrawlerDetect()


def is_bot(user_agent: str | None) -> bool:
    """True for known crawlers, scripts and headless browsers (and for no user agent at all)."""
    if not user_agent:
        return True
    return _crawler_detect().isCrawler(user_agent)


def _writer_lifespan(writer: BeaconWriter):
    @asynccontextmanager
    async def lifespan(app):
        writer.start()
        try:
            yield
        finally:
            writer.stop()
    return lifespan


def writer_healthy(config: Config):
    """The writer's verdict for ``/healthz``: running, and neither too far behind nor too full."""
    settings = config.settings.collector

    def healthy(details: dict) -> bool:
        return details["writer_running"] and details["queue_depth"] < settings.unhealthy_queue_depth \
            and details["oldest_unwritten_seconds"] < settings.unhealthy_write_delay_seconds
    return healthy


def create_app(config: Config, store: Store, writer: BeaconWriter | None = None,
               job_intervals: dict[str, float] | None = None) -> Starlette:
    """Build the collector app. Without a ``writer`` one is started for the app's lifetime.

    ``job_intervals`` (job name → seconds, from :func:`sync.jobs.job_intervals`) is what
    ``/healthz`` reports freshness for; the collector itself knows no job. The admin endpoints
    are ``app.state.admin``; they are among this app's routes unless ``[admin] port`` is set, in
    which case the caller serves ``app.state.admin.app()`` on that port."""
    settings = config.settings.collector
    allowed = set(settings.allowed_origins)
    if not allowed:
        log.warning("[collector] allowed_origins is empty: beacons are accepted from any site origin")
    script = render_tracker(tracker_settings(config))
    bounds = Bounds(max_batch=settings.max_batch_beacons,
                    max_backdate=timedelta(seconds=settings.max_clock_skew_seconds))
    own_writer = writer is None
    writer = writer or BeaconWriter(store)
    by_address = TokenBuckets(settings.ip_rate_per_second, settings.ip_burst)
    by_visitor = TokenBuckets(settings.visitor_rate_per_second, settings.visitor_burst)
    claims = ClaimLimiter(settings.identify_devices_per_email, settings.identify_window_seconds)
    proxy_warned = []

    admin = AdminEndpoints.from_config(config, store, job_intervals)
    admin.add_check("writer", writer.health, writer_healthy(config))

    def refresh_gauges() -> None:
        health = writer.health()
        metrics.collector_queue_depth.set(health["queue_depth"])
        metrics.collector_oldest_unwritten.set(health["oldest_unwritten_seconds"])
    admin.on_scrape(refresh_gauges)

    def cors_headers(request: Request) -> dict[str, str] | None:
        """CORS headers for an allowed origin; None when the origin is refused."""
        origin = request.headers.get("origin")
        if origin is None:
            return {}
        if allowed and origin not in allowed:
            return None
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def refuse(reason: str, status: int = 400, headers: dict | None = None, outcome: str = "rejected") -> Response:
        metrics.collector_requests.labels(outcome).inc()
        return JSONResponse({"error": clean_text(reason)}, status_code=status, headers=headers)  # it may quote input

    def client_address(request: Request) -> str:
        if by_address.enabled and not proxy_warned and "x-forwarded-for" in request.headers \
                and not settings.trusted_proxies:
            proxy_warned.append(True)
            log.warning("requests carry X-Forwarded-For but [collector] trusted_proxies is empty: per-address "
                        "limits count the proxy's address; list the proxy there, or set ip_rate_per_second = 0 "
                        "if the proxy limits clients itself")
        return request.client.host if request.client else "-"

    async def tracker(request: Request) -> Response:
        return Response(script, media_type="application/javascript; charset=utf-8",
                        headers={"Cache-Control": "public, max-age=3600"})

    async def preflight(request: Request) -> Response:
        headers = cors_headers(request)
        if headers is None:
            return refuse("origin not allowed", 403, outcome="forbidden_origin")
        headers.update({"Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Content-Type",
                        "Access-Control-Max-Age": "86400"})
        return Response(status_code=204, headers=headers)

    async def collect(request: Request) -> Response:
        headers = cors_headers(request)
        if headers is None:
            return refuse("origin not allowed", 403, outcome="forbidden_origin")
        address = client_address(request)
        if not by_address.allow(address):  # before parsing: a flood costs as little as possible
            return refuse("too many beacons from this address; retry later", 429,
                          {**headers, "Retry-After": "1"}, outcome="rate_limited")
        content_type = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
        if content_type not in ("application/json", "text/plain", ""):
            return refuse("unsupported content type (send application/json or text/plain)", 415, headers)
        declared = request.headers.get("content-length")
        if declared and (not declared.isdigit() or int(declared) > settings.max_body_bytes):
            return refuse(f"body exceeds {settings.max_body_bytes} bytes", 413, headers)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                return refuse(f"body exceeds {settings.max_body_bytes} bytes", 413, headers)
        try:
            hits = parse_beacons(bytes(body), user_agent=request.headers.get("user-agent"),
                                 now=datetime.now(timezone.utc), bounds=bounds)
        except BeaconError as exc:
            return refuse(str(exc), headers=headers)
        if len(hits) > 1 and not by_address.allow(address, len(hits) - 1):  # a batch costs a token a beacon
            return refuse("too many beacons from this address; retry later", 429,
                          {**headers, "Retry-After": "1"}, outcome="rate_limited")
        humans = [hit for hit in hits if not is_bot(hit.user_agent)]
        if len(humans) < len(hits):
            metrics.collector_requests.labels("bot").inc(len(hits) - len(humans))
        hits = humans
        if not hits:
            return Response(status_code=204, headers=headers)
        for visitor in {hit.visitor_id for hit in hits}:
            if not by_visitor.allow(visitor, sum(1 for hit in hits if hit.visitor_id == visitor)):
                return refuse("too many beacons from this visitor; retry later", 429,
                              {**headers, "Retry-After": "1"}, outcome="rate_limited")
        for hit in hits:
            for kind, digest in (("email", hit.email_sha256), ("phone", hit.phone_sha256)):
                if digest and not claims.allow(f"{kind}:{digest}", hit.visitor_id):
                    log.warning("identify claims: %s %s… claimed by more than %d new devices within %gs; "
                                "refused for visitor %s from %s", kind, digest[:12],
                                settings.identify_devices_per_email, settings.identify_window_seconds,
                                hit.visitor_id, address)
                    metrics.identify_claims_refused.inc()
                    return refuse(f"this {kind} was claimed by too many new devices; retry later", 429,
                                  {**headers, "Retry-After": str(int(settings.identify_window_seconds))},
                                  outcome="claims_limited")
        try:
            receipt = await writer.store_hits(hits, settings.store_timeout_seconds)
        except OverflowError:
            return refuse("collector is overloaded; retry later", 503, {**headers, "Retry-After": "1"},
                          outcome="overloaded")
        except StoreTimeout:
            return refuse("the store is not answering; retry later", 503, {**headers, "Retry-After": "5"},
                          outcome="store_timeout")
        if not receipt.stored:
            return refuse(f"the store refused {len(receipt.refused)} beacon(s); they were set aside for an "
                          "operator (closedloop dead-letters list)", 422, headers, outcome="store_refused")
        metrics.collector_requests.labels("accepted").inc(len(hits))
        return Response(status_code=204, headers=headers)

    async def not_found(request: Request, exc) -> Response:
        return PlainTextResponse("not found", status_code=404)

    routes = [Route("/t.js", tracker, methods=["GET"]),
              Route("/collect", collect, methods=["POST"]),
              Route("/collect", preflight, methods=["OPTIONS"])]
    if config.settings.admin.port is None:
        routes += admin.routes()
    app = Starlette(routes=routes, exception_handlers={404: not_found},
                    lifespan=_writer_lifespan(writer) if own_writer else None)
    app.state.writer = writer
    app.state.admin = admin
    return app
