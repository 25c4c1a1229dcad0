"""The long-running daemon: the collector and the scheduled jobs in one process.

The main thread owns signals. SIGTERM or SIGINT sets one stop flag: running jobs see it at
their next checkpoint (between pages, after committing what they finished), the scheduler
stops starting new runs, the collector drains, and the process exits 0. A second signal
while stopping is ignored rather than interrupting the orderly shutdown.
"""
from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timezone
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from state import Store
from sync.capture.server import BackgroundServer
from sync.config import Config
from sync.jobs import Job, JobRunner, registry
from sync.jobs.base import RunOutcome

log = logging.getLogger(__name__)


class Daemon:
    """Schedules the enabled jobs and serves the collector until told to stop."""

    def __init__(self, config: Config, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        self.config, self.store = config, store
        from sync.ops.connections import Connections

        self.stop = threading.Event()
        self.connections = Connections(config)
        self.runner = JobRunner(config, store, self.stop, clock, connections=self.connections)
        self.jobs: list[Job] = [cls(config) for cls in registry() if cls.enabled(config)]
        self._stopping = False

    def run_once(self) -> list[RunOutcome]:
        """Run every enabled job once, in order (``closedloop run --once``)."""
        self._install_signal_handlers()
        outcomes = []
        for job in self.jobs:
            if self.stop.is_set():
                break
            outcomes.append(self.runner.execute(job))
        return outcomes

    def serve(self) -> None:
        """Run until SIGTERM/SIGINT."""
        self._install_signal_handlers()
        scheduler = self._scheduler()
        collector = self._start_collector()
        scheduler.start()
        log.info("closedloop running: jobs %s%s", ", ".join(job.name for job in self.jobs) or "(none enabled)",
                 f"; collector on http://{collector.host}:{collector.port}"
                 if collector else "")
        try:
            while not self.stop.wait(1.0):
                if collector and not collector.alive:
                    log.error("collector stopped unexpectedly; shutting down")
                    self.stop.set()
        finally:
            log.info("stopping: waiting for running jobs to reach a checkpoint")
            scheduler.shutdown(wait=True)
            if collector:
                collector.stop()
            log.info("stopped cleanly")

    def request_stop(self, *_args) -> None:
        if self._stopping:
            log.info("already stopping; waiting for jobs to reach a checkpoint")
            return
        self._stopping = True
        self.stop.set()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def _scheduler(self) -> BackgroundScheduler:
        grace = int(self.config.settings.schedule.misfire_grace_seconds)
        scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": ThreadPoolExecutor(max_workers=max(1, len(self.jobs)))},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": grace},
        )
        now = datetime.now(timezone.utc)
        for job in self.jobs:
            scheduler.add_job(self._execute, IntervalTrigger(seconds=job.interval_seconds(self.config)),
                              args=[job], id=job.name, name=job.name, next_run_time=now,
                              max_instances=1, coalesce=True, misfire_grace_time=grace)
        return scheduler

    def _execute(self, job: Job) -> None:
        if not self.stop.is_set():
            self.runner.execute(job)

    def _start_collector(self) -> BackgroundServer | None:
        settings = self.config.settings.collector
        if not settings.enabled:
            return None
        from sync.capture.app import create_app
        from sync.jobs import job_intervals

        app = create_app(self.config, self.store, job_intervals=job_intervals(self.config))
        return BackgroundServer(app, settings.host, settings.port).start()
