"""Job freshness, remote pauses and the health verdict for ``/healthz`` and ``closedloop status``.

The verdict (:func:`verdict`) is unhealthy — ``/healthz`` answers 503 — when a job has failed
``[health] max_consecutive_failures`` runs in a row or a remote has been paused longer than
``[health] max_paused_minutes``: a person should look. A job that merely waits for a paused
remote, or that another instance ran, is not failing; a job that has not run yet is not
either (``stale_jobs`` reports that).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from sqlalchemy import func
from sqlmodel import select

from state import Store
from state.models import JobRun
from sync.ops.remotes import RemoteState, Remotes

SUCCEEDED = ("ok", "paused")  # paused: the job did its work; a paused remote's share waits (judged by remote)
COUNTED = ("ok", "failed", "paused")  # outcomes a failure streak is read from (not locked, interrupted, running)


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
                                   .where(JobRun.job == name, JobRun.outcome.in_(SUCCEEDED))).one()
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


def failure_streaks(store: Store, jobs: Iterable[str], longest: int) -> dict[str, int]:
    """How many of each job's latest runs failed in a row (counted up to ``longest``)."""
    streaks = {}
    with store.session(readonly=True) as session:
        for name in jobs:
            outcomes = session.exec(select(JobRun.outcome).where(JobRun.job == name, JobRun.outcome.in_(COUNTED))
                                    .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(longest)).all()
            streaks[name] = next((n for n, outcome in enumerate(outcomes) if outcome != "failed"), len(outcomes))
    return streaks


@dataclass(frozen=True)
class Verdict:
    """Whether a person should look, and why (one line per problem)."""

    healthy: bool
    problems: tuple[str, ...] = field(default_factory=tuple)


def verdict(streaks: dict[str, int], remotes: Iterable[RemoteState], now: datetime, *,
            max_consecutive_failures: int, max_paused_seconds: float) -> Verdict:
    """Unhealthy when a job failed ``max_consecutive_failures`` runs in a row or a remote has
    been paused longer than ``max_paused_seconds``."""
    problems = [f"job {name} failed its last {count} runs" for name, count in sorted(streaks.items())
                if count >= max_consecutive_failures]
    for remote in remotes:
        paused = remote.paused_for(now)
        if paused > max_paused_seconds:
            problems.append(f"{remote.name} paused for {paused / 60:.0f} min: {remote.describe()}")
    return Verdict(not problems, tuple(problems))


def health_verdict(store: Store, jobs: Iterable[str], now: datetime, settings) -> Verdict:
    """:func:`verdict` from the store, with ``settings`` the config's ``[health]`` section."""
    return verdict(failure_streaks(store, jobs, settings.max_consecutive_failures), Remotes(store).states(), now,
                   max_consecutive_failures=settings.max_consecutive_failures,
                   max_paused_seconds=settings.max_paused_minutes * 60)
