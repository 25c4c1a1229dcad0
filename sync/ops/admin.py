"""The admin endpoints — ``GET /healthz`` and ``GET /metrics`` — in one place.

They are served on the collector's port when ``[admin] port`` is not set (the default), or on
their own listener at ``[admin] host``/``port``, so that only ``/t.js`` and ``/collect`` need to
be reachable from the internet. With ``[admin] token_env`` set, both require
``Authorization: Bearer <token>``.

:class:`AdminEndpoints` collects what they report: job freshness and each remote's pause from
the store, the verdict of :func:`sync.ops.health.health_verdict` (a job that failed N runs in
a row, a remote paused longer than the ``[health]`` threshold), plus health checks that other
parts register (the collector registers its writer's). A failing verdict or check makes
``/healthz`` answer 503 with one line per problem, which a load balancer or supervisor acts
on; a merely stale job does not (a CRM outage must not make a supervisor restart-loop the
daemon: its remote is paused, and only a long pause is a problem). More admin routes (a
webhook receiver, say) are added with :meth:`AdminEndpoints.add_route` and bring their own
authentication.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from state import Store
from sync.config import Config
from sync.ops import metrics
from sync.ops.health import Verdict, health_verdict, job_freshness, remote_report
from sync.ops.remotes import publish_from_store


@dataclass(frozen=True)
class HealthCheck:
    """One section of ``/healthz``: ``read()`` gives its details, ``healthy(details)`` the verdict."""

    name: str
    read: Callable[[], dict[str, Any]]
    healthy: Callable[[dict[str, Any]], bool]


class AdminEndpoints:
    """The admin routes of one process, and the app that serves them on their own listener."""

    def __init__(self, store: Store, *, job_intervals: dict[str, float] | None = None,
                 token: str | None = None, health_settings: Any = None) -> None:
        """``health_settings`` is the config's ``[health]`` section (the verdict's thresholds)."""
        self.store = store
        self.job_intervals = dict(job_intervals or {})
        self.token = token or None
        self.health_settings = health_settings
        self.checks: list[HealthCheck] = []
        self.scrape_hooks: list[Callable[[], None]] = [lambda: publish_from_store(store)]  # remote gauges
        self.extra_routes: list[BaseRoute] = []

    @classmethod
    def from_config(cls, config: Config, store: Store, job_intervals: dict[str, float] | None = None):
        token = config.secret("admin", "token_env") if config.settings.admin.token_env else None
        return cls(store, job_intervals=job_intervals, token=token, health_settings=config.settings.health)

    def add_check(self, name: str, read: Callable[[], dict[str, Any]],
                  healthy: Callable[[dict[str, Any]], bool]) -> None:
        self.checks.append(HealthCheck(name, read, healthy))

    def on_scrape(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` before each ``/metrics`` scrape (to refresh gauges)."""
        self.scrape_hooks.append(hook)

    def add_route(self, route: BaseRoute) -> None:
        """Serve one more route on the admin listener (it handles its own authentication)."""
        self.extra_routes.append(route)

    # -- the endpoints -----------------------------------------------------------------------

    def health(self) -> tuple[dict[str, Any], bool]:
        """The ``/healthz`` document and whether every check passes."""
        now = datetime.now(timezone.utc)
        jobs = job_freshness(self.store, self.job_intervals, now)
        judged = (health_verdict(self.store, self.job_intervals, now, self.health_settings)
                  if self.health_settings is not None else Verdict(True))
        document: dict[str, Any] = {"status": "ok", "problems": list(judged.problems),
                                    "stale_jobs": sorted(name for name, e in jobs.items() if e["stale"]),
                                    "jobs": jobs, "remotes": remote_report(self.store, now)}
        healthy = judged.healthy
        failing = []
        for check in self.checks:
            details = check.read()
            details["healthy"] = ok = bool(check.healthy(details))
            document[check.name] = details
            if not ok:
                failing.append(check.name)
                document["problems"].append(f"{check.name} is unhealthy (see its section)")
        if failing:
            document["failing"] = failing
        if not healthy or failing:
            document["status"] = "unhealthy"
        return document, healthy and not failing

    async def _healthz(self, request: Request) -> Response:
        document, healthy = self.health()
        return JSONResponse(document, status_code=200 if healthy else 503)

    async def _metrics(self, request: Request) -> Response:
        for hook in self.scrape_hooks:
            hook()
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    def _guarded(self, endpoint):
        """``endpoint`` behind the bearer token, when one is configured."""
        if not self.token:
            return endpoint
        expected = f"Bearer {self.token}".encode()

        async def guarded(request: Request) -> Response:
            given = request.headers.get("authorization", "").encode("latin-1", "replace")
            if not hmac.compare_digest(given, expected):
                return JSONResponse({"error": "a bearer token is required"}, status_code=401,
                                    headers={"WWW-Authenticate": 'Bearer realm="closedloop admin"'})
            return await endpoint(request)
        return guarded

    def routes(self) -> list[BaseRoute]:
        return [Route("/healthz", self._guarded(self._healthz), methods=["GET"]),
                Route("/metrics", self._guarded(self._metrics), methods=["GET"]),
                *self.extra_routes]

    def app(self) -> Starlette:
        """The admin listener's own app (``[admin] port`` set)."""
        async def not_found(request: Request, exc) -> Response:
            return PlainTextResponse("not found", status_code=404)

        return Starlette(routes=self.routes(), exception_handlers={404: not_found})
