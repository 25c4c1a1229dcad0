"""Job freshness and remote pauses for ``/healthz`` and ``closedloop status``."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import select

from state import Store
from state.models import JobRun
from sync.ops.remotes import Remotes


@dataclass
class JobHealth:
    job: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None
    last_success_at: datetime | None
    records_read: int
    records_written: int
    message: str | None


def job_health(store: Store, jobs: list[str]) -> dict[str, JobHealth]:
    """The latest run and latest success of each job."""
    health: dict[str, JobHealth] = {}
    with store.session(readonly=True) as session:
        for name in jobs:
            last = session.exec(select(JobRun).where(JobRun.job == name)
                                .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1)).first()
            success = session.exec(select(func.max(JobRun.finished_at))
                                   .where(JobRun.job == name, JobRun.outcome == "ok")).one()
            health[name] = JobHealth(
                job=name,
                last_started_at=last.started_at if last else None,
                last_finished_at=last.finished_at if last else None,
                last_outcome=last.outcome if last else None,
                last_success_at=success,
                records_read=last.records_read if last else 0,
                records_written=last.records_written if last else 0,
                message=last.message if last else None,
            )
    return health


def job_freshness(store: Store, intervals: dict[str, float], now: datetime) -> dict[str, dict]:
    """Each job's last outcome and success, as ``/healthz`` shows them: a job is stale when its last
    success is older than three of its intervals (or it never succeeded)."""
    report = {}
    for name, health in job_health(store, list(intervals)).items():
        interval = intervals[name]
        age = (now - health.last_success_at).total_seconds() if health.last_success_at else None
        report[name] = {"last_outcome": health.last_outcome,
                        "last_success_at": health.last_success_at.isoformat() if health.last_success_at else None,
                        "seconds_since_success": round(age, 1) if age is not None else None,
                        "interval_seconds": interval, "stale": age is None or age > 3 * interval}
    return report


def remote_report(store: Store, now: datetime) -> dict[str, dict]:
    """Each remote the store knows: ok or paused, why, since and until when, the last error."""
    return {state.name: {"state": state.state, "reason": state.reason,
                         "paused_since": state.paused_since.isoformat() if state.paused and state.paused_since
                         else None,
                         "paused_until": state.paused_until.isoformat() if state.paused and state.paused_until
                         else None,
                         "paused_seconds": round(state.paused_for(now), 1), "last_error": state.message}
            for state in Remotes(store).states()}
