"""Housekeeping: keep the state store from growing without bound.

Deletes in pages (each its own transaction, with a stop check between) so a large backlog
never holds a long write lock and a shutdown mid-way leaves nothing half-done.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import select

from state.models import JobRun, Touchpoint
from sync.config import Config
from sync.jobs.base import Job, JobContext, JobResult

JOB_RUN_RETENTION = timedelta(days=90)
PAGE = 5000


class HousekeepingJob(Job):
    """Prunes old job history and, when configured, tracker data past its retention."""

    name = "housekeeping"

    @classmethod
    def interval_seconds(cls, config: Config) -> float:
        return config.settings.schedule.housekeeping_seconds

    def run(self, ctx: JobContext) -> JobResult:
        now = ctx.now()
        self._prune(ctx, JobRun, JobRun.started_at < now - JOB_RUN_RETENTION)
        days = self.config.settings.state.retention_days
        if days:
            self._prune(ctx, Touchpoint, Touchpoint.occurred_at < now - timedelta(days=days))
        if ctx.store.dialect == "sqlite":
            ctx.store.sqlite_maintenance()
        return ctx.result

    @staticmethod
    def _prune(ctx: JobContext, model, condition) -> None:
        while True:
            ctx.checkpoint()
            with ctx.store.session() as session:
                ids = session.exec(select(model.id).where(condition).order_by(model.id).limit(PAGE)).all()
                if not ids:
                    return
                session.exec(delete(model).where(model.id.in_(ids)))
            ctx.result.records_read += len(ids)
            ctx.result.records_written += len(ids)
