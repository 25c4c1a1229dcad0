"""The collector's ASGI application: ``GET /t.js``, ``POST /collect``, ``/healthz``, ``/metrics``.

``/collect`` answers fast: it validates, enqueues and returns 204; the batched writer stores.
Bad input gets a 400 with a reason and never a 500; beacons from origins that are not the
configured site are refused; known bots are dropped without telling them.
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
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from state import Store
from sync.capture.beacon import BeaconError, parse_beacon
from sync.capture.writer import BeaconWriter
from sync.config import Config
from sync.ops import metrics
from sync.ops.health import health_verdict, job_freshness, remote_report
from sync.ops.remotes import publish_from_store

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


def create_app(config: Config, store: Store, writer: BeaconWriter | None = None,
               job_intervals: dict[str, float] | None = None) -> Starlette:
    """Build the collector app. Without a ``writer`` one is started for the app's lifetime.

    ``job_intervals`` (job name → seconds, from :func:`sync.jobs.job_intervals`) is what
    ``/healthz`` reports freshness for; the collector itself knows no job."""
    settings = config.settings.collector
    job_intervals = dict(job_intervals or {})
    allowed = set(settings.allowed_origins)
    if not allowed:
        log.warning("[collector] allowed_origins is empty: beacons are accepted from any site origin")
    script = render_tracker(tracker_settings(config))
    max_skew = timedelta(seconds=settings.max_clock_skew_seconds)
    own_writer = writer is None
    writer = writer or BeaconWriter(store)

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
        return JSONResponse({"error": reason}, status_code=status, headers=headers)

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
        content_type = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
        if content_type not in ("application/json", "text/plain", ""):
            return refuse("unsupported content type (send application/json or text/plain)", headers=headers)
        declared = request.headers.get("content-length")
        if declared and (not declared.isdigit() or int(declared) > settings.max_body_bytes):
            return refuse(f"body exceeds {settings.max_body_bytes} bytes", headers=headers)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                return refuse(f"body exceeds {settings.max_body_bytes} bytes", headers=headers)
        try:
            hit = parse_beacon(bytes(body), user_agent=request.headers.get("user-agent"),
                               now=datetime.now(timezone.utc), max_skew=max_skew)
        except BeaconError as exc:
            return refuse(str(exc), headers=headers)
        if is_bot(hit.user_agent):
            metrics.collector_requests.labels("bot").inc()
            return Response(status_code=204, headers=headers)
        if not writer.submit(hit):
            return refuse("collector is overloaded; retry later", 503, headers, outcome="overloaded")
        metrics.collector_requests.labels("accepted").inc()
        return Response(status_code=204, headers=headers)

    async def healthz(request: Request) -> JSONResponse:
        """Per-job freshness, per-remote pauses and the verdict (:func:`sync.ops.health.verdict`):
        200 ``ok``, or 503 ``unhealthy`` with the problems when a person should look."""
        now = datetime.now(timezone.utc)
        report = job_freshness(store, job_intervals, now)
        stale = sorted(name for name, entry in report.items() if entry["stale"])
        judged = health_verdict(store, job_intervals, now, config.settings.health)
        return JSONResponse({"status": "ok" if judged.healthy else "unhealthy", "problems": list(judged.problems),
                             "stale_jobs": stale, "collector_queue": writer.depth, "jobs": report,
                             "remotes": remote_report(store, now)}, status_code=200 if judged.healthy else 503)

    async def metrics_endpoint(request: Request) -> Response:
        metrics.collector_queue_depth.set(writer.depth)
        publish_from_store(store)
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request, exc) -> Response:
        return PlainTextResponse("not found", status_code=404)

    app = Starlette(
        routes=[
            Route("/t.js", tracker, methods=["GET"]),
            Route("/collect", collect, methods=["POST"]),
            Route("/collect", preflight, methods=["OPTIONS"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={404: not_found},
        lifespan=_writer_lifespan(writer) if own_writer else None,
    )
    app.state.writer = writer
    return app
