"""The collector's ASGI application."""
from __future__ import annotations

from datetime import datetime, timezone

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from state import Store
from sync.config import Config
from sync.health import job_health
from sync.jobs import registry


def create_app(config: Config, store: Store) -> Starlette:
    """Build the collector app for ``config``."""
    jobs = {cls.name: cls for cls in registry() if cls.enabled(config)}

    async def healthz(request: Request) -> JSONResponse:
        """Liveness plus per-job freshness: a job is stale when its last success is older than
        three of its intervals."""
        now = datetime.now(timezone.utc)
        report = {}
        for name, health in job_health(store, list(jobs)).items():
            interval = jobs[name].interval_seconds(config)
            age = (now - health.last_success_at).total_seconds() if health.last_success_at else None
            stale = age is None or age > 3 * interval
            report[name] = {"last_outcome": health.last_outcome,
                            "last_success_at": health.last_success_at.isoformat() if health.last_success_at else None,
                            "seconds_since_success": round(age, 1) if age is not None else None,
                            "interval_seconds": interval, "stale": stale}
        # Liveness is the answer itself; staleness is reported, not turned into a 5xx, so a
        # restart loop cannot be triggered by a CRM outage.
        stale = sorted(name for name, entry in report.items() if entry["stale"])
        return JSONResponse({"status": "ok", "stale_jobs": stale, "jobs": report})

    return Starlette(routes=[Route("/healthz", healthz)])
