"""The daemon's jobs, all behind one interface (:class:`sync.jobs.base.Job`).

``registry()`` lists every job the daemon knows; each decides from the config whether it is
enabled and how often it runs.
"""
from __future__ import annotations

from sync.jobs.base import Job, JobContext, JobResult, JobRunner, StopRequested
from sync.jobs.enrich import EnrichJob
from sync.jobs.housekeeping import HousekeepingJob
from sync.jobs.lifecycle import LifecycleJob
from sync.jobs.revenue import RevenueJob


def registry() -> list[type[Job]]:
    """Job classes in the order ``run --once`` runs them."""
    return [EnrichJob, RevenueJob, LifecycleJob, HousekeepingJob]


__all__ = ["Job", "JobContext", "JobResult", "JobRunner", "StopRequested", "registry"]
