"""The long-running daemon: the collector and the scheduled jobs in one process.

The main thread owns signals. SIGTERM or SIGINT sets one stop flag: running jobs see it at
their next checkpoint (between pages, after committing what they finished), the scheduler
stops starting new runs, the collector drains, and the process exits 0. A second signal
while stopping is ignored rather than interrupting the orderly shutdown.

Triggers (Salesforce change events, the HubSpot webhook receiver) only queue ids; each queue
"kicks" its job, which runs at once for the queued records alone. A job never runs twice at
the same time in one process (one lock per job, shared by the schedule and the kicks) nor,
on PostgreSQL, across daemons (the runner's advisory lock).
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

from adapters.errors import ClosedloopError
from state import Store
from sync.capture.server import BackgroundServer
from sync.config import Config
from sync.jobs import Job, JobRunner, registry
from sync.jobs.base import RunOutcome
from sync.ops.runtime import settle_gc

log = logging.getLogger(__name__)
KICKED = ("enrich", "revenue", "lifecycle")  # the jobs triggers queue work for
GATHER_SECONDS = 0.2  # a kick waits this long for the rest of a burst of changes
KICK_RETRY_SECONDS = 5.0


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
        self._locks = {job.name: threading.Lock() for job in self.jobs}
        self._kicks = {job.name: threading.Event() for job in self.jobs}

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
        servers = self._start_servers()
        kickers = self._start_kickers()
        triggers = self._start_triggers()
        scheduler.start()
        settle_gc()  # everything built so far lives as long as the process
        log.info("closedloop running: jobs %s%s", ", ".join(job.name for job in self.jobs) or "(none enabled)",
                 "".join(f"; {name} on http://{server.host}:{server.port}" for name, server in servers))
        try:
            while not self.stop.wait(1.0):
                for name, server in servers:
                    if not server.alive:
                        log.error("the %s listener stopped unexpectedly; shutting down", name)
                        self.stop.set()
        finally:
            log.info("stopping: waiting for running jobs to reach a checkpoint")
            for trigger in reversed(triggers):
                trigger.stop()
            scheduler.shutdown(wait=True)
            for kicker in kickers:
                kicker.join(30)
            for _, server in reversed(servers):
                server.stop()
            log.info("stopped cleanly")

    def kick(self, jobs: set[str]) -> None:
        """Run these jobs for their queued changes as soon as they are free."""
        for name in jobs:
            if name in self._kicks:
                self._kicks[name].set()

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

    def _execute(self, job: Job) -> RunOutcome | None:
        with self._locks[job.name]:
            if not self.stop.is_set():
                return self.runner.execute(job)
        return None

    def _start_kickers(self) -> list[threading.Thread]:
        """One thread per job that triggers can queue work for: waits for a kick, gathers the
        burst for a moment, then runs the job for the queued records only."""
        kickers = []
        for job in self.jobs:
            if job.name not in KICKED:
                continue
            queued_only = type(job)(self.config, queued_only=True)
            thread = threading.Thread(target=self._kicked, args=(queued_only,), name=f"kick-{job.name}", daemon=True)
            thread.start()
            kickers.append(thread)
        return kickers

    def _kicked(self, job: Job) -> None:
        kicked = self._kicks[job.name]
        while not self.stop.is_set():
            if not kicked.wait(1.0):
                continue
            self.stop.wait(GATHER_SECONDS)
            kicked.clear()
            outcome = self._execute(job)
            if outcome is not None and outcome.outcome in ("locked", "failed") and not self.stop.wait(KICK_RETRY_SECONDS):
                kicked.set()  # another instance holds the job, or it failed: its queue waits for the next try

    def _start_triggers(self) -> list:
        return start_triggers(self.config, self.store, self.connections, self.kick)

    def _start_servers(self) -> list[tuple[str, BackgroundServer]]:
        """The collector (when enabled) and, on its own address when ``[admin] port`` is set, the
        admin endpoints (``/healthz``, ``/metrics``)."""
        from sync.capture.app import create_app
        from sync.jobs import job_intervals
        from sync.ops.admin import AdminEndpoints

        collector, admin = self.config.settings.collector, self.config.settings.admin
        intervals = job_intervals(self.config)
        servers: list[tuple[str, BackgroundServer]] = []
        endpoints = None
        try:
            if collector.enabled:
                app = create_app(self.config, self.store, job_intervals=intervals)
                servers.append(("collector", BackgroundServer(app, collector.host, collector.port,
                                                              trusted_proxies=collector.trusted_proxies).start()))
                endpoints = app.state.admin
            if admin.port is not None:
                endpoints = endpoints or AdminEndpoints.from_config(self.config, self.store, intervals)
                servers.append(("admin", BackgroundServer(endpoints.app(), admin.host, admin.port).start()))
        except BaseException:
            for _, server in servers:
                server.stop()
            raise
        if endpoints is not None and (self.config.settings.salesforce.change_events or
                                      self.config.settings.hubspot.webhooks):
            from sync.jobs.triggers import trigger_report

            endpoints.add_check("triggers", lambda: trigger_report(self.store, self.config, self.connections,
                                                                   datetime.now(timezone.utc)),
                                lambda details: True)
        return servers


def start_triggers(config: Config, store: Store, connections, kick: Callable[[set[str]], None]) -> list:
    """The Salesforce change event streams and the HubSpot webhook receiver, as configured.
    A trigger that cannot start is logged and left out: polling covers its CRM."""
    settings = config.settings
    started: list = []
    if settings.salesforce.enabled and settings.salesforce.change_events:
        from sync.jobs.cdc import CdcListener

        try:
            started.append(CdcListener(config, store, connections, kick).start())
        except ClosedloopError as exc:
            log.error("Salesforce change events not started: %s; polling instead", exc.user_message)
    if settings.hubspot.enabled and settings.hubspot.webhooks:
        from sync.jobs.webhooks import Heartbeat, create_webhook_app

        app = create_webhook_app(config, store, connections.mapping("hubspot"), kick)
        try:
            server = BackgroundServer(app, settings.webhooks.host, settings.webhooks.port).start()
        except OSError as exc:
            log.error("HubSpot webhook receiver not started: %s; polling instead", exc)
        else:
            log.info("HubSpot webhook receiver on http://%s:%s/hubspot/webhooks (HubSpot calls %s)",
                     settings.webhooks.host, server.port, settings.hubspot.webhook_url)
            started += [server, Heartbeat(store).start()]
    return started
