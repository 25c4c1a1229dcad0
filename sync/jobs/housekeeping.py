"""Housekeeping: keep the state store from growing without bound, and keep data no longer than due.

- job history older than 90 days;
- with ``[state] retention_days``, every touchpoint older than that;
- with ``[state] anonymous_retention_days`` (default 395 days, the tracker cookie's 13 months),
  what belongs to visitors never identified (no email, phone or CRM record ever linked): their
  touchpoints older than that, and the visitors themselves, with their identities, once their
  last visit is older than that.

Deletes in pages (each its own transaction, with a stop check between) so a large backlog
never holds a long write lock and a shutdown mid-way leaves nothing half-done.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, exists, not_
from sqlmodel import select

from state.models import Identity, JobRun, Touchpoint, Visitor
from sync.capture.stitching import CRM_RECORD
from sync.config import Config
from sync.jobs.base import Job, JobContext, JobResult

JOB_RUN_RETENTION = timedelta(days=90)
PAGE = 5000
IDENTIFYING_KINDS = ("email_sha256", "phone_sha256", CRM_RECORD)


def identified(visitor_id_column):
    """SQL: the visitor was ever linked to a person (an email, a phone or a CRM record)."""
    return exists().where(Identity.visitor_id == visitor_id_column, Identity.kind.in_(IDENTIFYING_KINDS))


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
        anonymous = self.config.settings.state.anonymous_retention_days
        if anonymous:
            cutoff = now - timedelta(days=anonymous)
            self._prune(ctx, Touchpoint, and_(Touchpoint.occurred_at < cutoff, not_(identified(Touchpoint.visitor_id))))
            self._prune(ctx, Visitor, and_(Visitor.last_seen_at < cutoff, not_(identified(Visitor.id))),
                        dependents=((Touchpoint, Touchpoint.visitor_id), (Identity, Identity.visitor_id)))
        if ctx.store.dialect == "sqlite":
            ctx.store.sqlite_maintenance()
        return ctx.result

    @staticmethod
    def _prune(ctx: JobContext, model, condition, dependents=()) -> None:
        """Delete ``model`` rows matching ``condition`` a page at a time, each page in its own
        transaction; ``dependents`` are (model, column) pairs whose rows naming a deleted id go too."""
        key = model.__table__.primary_key.columns.values()[0]
        while True:
            ctx.checkpoint()
            with ctx.store.session() as session:
                ids = session.exec(select(key).where(condition).order_by(key).limit(PAGE)).all()
                if not ids:
                    return
                removed = sum(session.exec(delete(other).where(column.in_(ids))).rowcount
                              for other, column in (*dependents, (model, key)))
            ctx.result.records_read += len(ids)
            ctx.result.records_written += removed
