"""The job interface and the runner that gives every job the same guarantees.

A job is a class with a ``name`` and a ``run(ctx)`` method. The runner wraps every run the
same way: it takes the job's cluster-wide lock (so with several daemons on one PostgreSQL
store exactly one runs it), records a ``job_runs`` row, hands the job a stop flag to check
between pages, and turns failures into a recorded outcome instead of a crashed scheduler.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar

from adapters.errors import BudgetExhausted, ClosedloopError
from state import Store
from state.models import JobRun
from sync.config import Config
from sync.jobs.clean_reads import CleanReads
from sync.ops import metrics
from sync.ops.budgets import record_allowance
from sync.ops.remotes import PausePolicy, RemoteRun, Remotes

log = logging.getLogger(__name__)

INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


class StopRequested(Exception):
    """Raised by :meth:`JobContext.checkpoint` when the daemon is shutting down."""


@dataclass
class JobResult:
    """What a run did, for status, metrics and logs."""

    records_read: int = 0
    records_written: int = 0
    message: str = ""
    dead_letters: int = 0  # records and events set aside in this run
    remotes: dict[str, RemoteRun] = field(default_factory=dict)  # each remote's share of the run


@dataclass
class JobContext:
    """Everything a job may use. Jobs call ``checkpoint()`` between units of work."""

    config: Config
    store: Store
    stop: threading.Event
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    result: JobResult = field(default_factory=JobResult)
    connections: Any = None  # sync.ops.connections.Connections: adapters, mappings, GA4 sender
    remotes: Remotes | None = None  # the pause book (sync/ops/remotes.py); None: work runs unguarded

    def for_remote(self, name: str, work: Callable[[], Any]) -> RemoteRun:
        """Do remote ``name``'s share of this run, unless the remote is paused; a remote that is
        out of allowance, unauthorised or down is paused and the job goes on with the next one."""
        if self.remotes is None:
            work()
            outcome = RemoteRun(name, "ok")
        else:
            outcome = self.remotes.run(name, work, passthrough=(StopRequested,))
        earlier = self.result.remotes.get(name)
        if earlier is None or earlier.status == "ok":  # a remote used twice in one run keeps its worst outcome
            self.result.remotes[name] = outcome
        return outcome

    def for_crm(self, crm: str, work: Callable[[], Any]) -> RemoteRun:
        """:meth:`for_remote` for a CRM: its allowance is remembered for ``status`` whatever
        happens, and once closedloop's share of the day's allowance is used the CRM is paused
        (reads spend the allowance too, not only writes)."""
        def share() -> None:
            adapter = self.connections.adapter(crm)
            try:
                work()
            finally:
                record_allowance(self.store, crm, adapter.allowance, self.now())
            adapter.check_budget()
        return self.for_remote(crm, share)

    def checkpoint(self) -> None:
        """Raise :class:`StopRequested` if shutdown was asked for; call it between pages."""
        if self.stop.is_set():
            raise StopRequested()

    def now(self) -> datetime:
        return self.clock()

    def crm(self, name: str) -> Any:
        """The CRM's adapter, with every value it reads made valid text before it can be stored."""
        return CleanReads(self.connections.adapter(name))


class Job(ABC):
    """One recurring piece of work."""

    name: ClassVar[str]

    def __init__(self, config: Config, *, queued_only: bool = False) -> None:
        """``queued_only``: a run started by a trigger, which processes the queued changes
        (:mod:`sync.jobs.triggers`) and polls nothing."""
        self.config = config
        self.queued_only = queued_only

    @classmethod
    def enabled(cls, config: Config) -> bool:
        return True

    @classmethod
    @abstractmethod
    def interval_seconds(cls, config: Config) -> float:
        """How often the scheduler runs it."""

    @classmethod
    def backlog(cls, session) -> int | None:
        """How much work is waiting (for ``closedloop status``), if the job can tell."""
        return None

    @abstractmethod
    def run(self, ctx: JobContext) -> JobResult:
        """Do one pass. Commit work in units; call ``ctx.checkpoint()`` between them."""


@dataclass
class RunOutcome:
    job: str
    outcome: str  # ok | failed | interrupted | locked | paused (a remote's work waits: see result.remotes)
    result: JobResult
    error: str = ""
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.outcome in ("ok", "locked", "interrupted", "paused")


class JobRunner:
    """Runs jobs with locking, bookkeeping and error capture."""

    def __init__(self, config: Config, store: Store, stop: threading.Event | None = None,
                 clock: Callable[[], datetime] | None = None,
                 on_finish: Callable[[RunOutcome], None] | None = None, connections: Any = None) -> None:
        self.config, self.store = config, store
        self.connections = connections
        self.stop = stop or threading.Event()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.on_finish = on_finish
        self.remotes = Remotes(store, policy=PausePolicy.from_config(config), clock=self.clock, instance=INSTANCE)

    def execute(self, job: Job) -> RunOutcome:
        started = time.monotonic()
        with self.store.job_lock(job.name) as acquired:
            if not acquired:
                log.info("job %s is running in another instance; skipped", job.name)
                outcome = RunOutcome(job.name, "locked", JobResult())
                self._finish(outcome)
                return outcome
            with self.store.session() as session:
                run = JobRun(job=job.name, instance=INSTANCE, started_at=self.clock())
                session.add(run)
                session.flush()
                run_id = run.id
            ctx = JobContext(self.config, self.store, self.stop, self.clock, connections=self.connections,
                             remotes=self.remotes)
            outcome = self._run(job, ctx)
            outcome.seconds = time.monotonic() - started
            with self.store.session() as session:
                run = session.get(JobRun, run_id)
                run.finished_at = self.clock()
                run.outcome = outcome.outcome
                run.records_read = outcome.result.records_read
                run.records_written = outcome.result.records_written
                run.message = (outcome.error or outcome.result.message or None)
                if run.message:
                    run.message = run.message[:2000]
        self._finish(outcome)
        return outcome

    def _run(self, job: Job, ctx: JobContext) -> RunOutcome:
        try:
            result = job.run(ctx)
            # a run that found nothing is routine (every few seconds while triggers are healthy): DEBUG
            idle = not (result.records_read or result.records_written or result.message)
            log.log(logging.DEBUG if idle else logging.INFO, "job %s done: read %d, wrote %d%s", job.name,
                    result.records_read, result.records_written, f" ({result.message})" if result.message else "")
            return self._by_remote(job, result)
        except StopRequested:
            log.info("job %s stopped for shutdown after committed work (read %d, wrote %d)",
                     job.name, ctx.result.records_read, ctx.result.records_written)
            return RunOutcome(job.name, "interrupted", ctx.result)
        except BudgetExhausted as exc:
            log.warning("job %s paused: %s", job.name, exc.user_message)
            return RunOutcome(job.name, "paused", ctx.result, exc.user_message)
        except ClosedloopError as exc:
            log.error("job %s failed: %s", job.name, exc.user_message)
            return RunOutcome(job.name, "failed", ctx.result, exc.user_message)
        except Exception as exc:  # a bug or an unclassified library error: keep the daemon alive
            log.exception("job %s failed unexpectedly", job.name)
            first_line = (str(exc).strip().splitlines() or [""])[0]
            return RunOutcome(job.name, "failed", ctx.result, f"{type(exc).__name__}: {first_line}")

    @staticmethod
    def _by_remote(job: Job, result: JobResult) -> RunOutcome:
        """``failed`` when a remote's share failed for a reason of its own (a bug, a mapping,
        a contract problem), ``paused`` when a remote's work waits for it to recover, else ``ok``;
        the message names each remote that was not ok."""
        runs = list(result.remotes.values())
        notes = "; ".join(run.describe() for run in runs if not run.succeeded)
        if any(run.status == "failed" for run in runs):
            log.error("job %s failed: %s", job.name, notes)
            return RunOutcome(job.name, "failed", result, notes)
        if notes:
            log.warning("job %s: %s", job.name, notes)
            return RunOutcome(job.name, "paused", result, notes)
        return RunOutcome(job.name, "ok", result)

    def _finish(self, outcome: RunOutcome) -> None:
        metrics.job_duration.labels(outcome.job, outcome.outcome).observe(outcome.seconds)
        if self.on_finish:
            self.on_finish(outcome)
