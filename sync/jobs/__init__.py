"""Jobs: the scheduled work that moves data between the store and the remote systems.

Owns the job interface and runner (``base``), the jobs (``enrich``, ``revenue``,
``lifecycle``, ``conversions``, ``housekeeping``), the GA4 outbox and its events (``outbox``,
``ga4_events``), the ad platforms' conversions and their drain (``ad_conversions``,
``ad_outbox``), poll cursors (``cursors``), reading destinations back (``readback``), ``backfill``, the
read-ahead/write-behind pipeline (``prefetch``), field creation (``fields``), valid text for
everything read back from a CRM (``clean_reads``) and the CRMs'
triggers: what a change notification means and the queue it fills (``triggers``), the
Salesforce change event streams (``cdc``) and the HubSpot webhook receiver (``webhooks``,
never among the public collector's routes).

This is the room that drives adapters: it may import ``adapters``, ``mappings``, ``state``,
``sync.config``, ``sync.journey``, ``sync.capture``'s stitching, identity, text normalisation (for
values read back from CRMs) and privacy (a forgotten buyer's ledger status), and ``sync.ops``.
``registry()`` lists every job the daemon knows; each decides from the config whether it is
enabled and how often it runs.
"""
from __future__ import annotations

from sync.jobs.base import Job, JobContext, JobResult, JobRunner, StopRequested
from sync.jobs.conversions import ConversionsJob
from sync.jobs.enrich import EnrichJob
from sync.jobs.housekeeping import HousekeepingJob
from sync.jobs.lifecycle import LifecycleJob
from sync.jobs.revenue import RevenueJob


def registry() -> list[type[Job]]:
    """Job classes in the order ``run --once`` runs them."""
    return [EnrichJob, RevenueJob, LifecycleJob, ConversionsJob, HousekeepingJob]


def job_intervals(config) -> dict[str, float]:
    """Each enabled job's name and interval in seconds (what ``/healthz`` checks freshness by)."""
    return {cls.name: cls.interval_seconds(config) for cls in registry() if cls.enabled(config)}


__all__ = ["Job", "JobContext", "JobResult", "JobRunner", "StopRequested", "job_intervals", "registry"]
