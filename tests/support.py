"""Small helpers shared by test modules (import as ``from support import ...``)."""
from __future__ import annotations

from sandbox.web import free_port  # noqa: F401  (tests import it from here)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"


class World:
    """The sandbox suite, a closedloop config pointing at it, a migrated store and a job runner:
    closedloop exactly as a user runs it, minus the scheduler."""

    def __init__(self, tmp_path, extra_config: str = "", *, clock=None, sleep=None, state_url: str | None = None,
                 triggers: bool = False, **suite_options) -> None:
        """``suite_options`` go to the emulators, e.g. ``ga4={"latency_seconds": 0.05}``. ``clock`` (a
        :class:`sandbox.clock.Clock`) is shared by the emulators and the job runner, so a test moves
        time for both; ``sleep`` replaces the adapters' retry waits (e.g. ``lambda seconds: None``);
        ``state_url`` is the store (default: a SQLite file in ``tmp_path``); with ``triggers`` the
        config turns on Salesforce change events and HubSpot webhooks (the HubSpot app calls a
        receiver on ``webhook_port``) and the collector gets a free port."""
        from sandbox.suite import SandboxSuite
        from state import Store
        from sync.config import load_config

        self.clock = clock
        self.suite = SandboxSuite.start(tmp_path / "sandbox", clock=clock, **suite_options)
        self.config_path = tmp_path / "closedloop.toml"
        self.state_url = state_url or f"sqlite:///{tmp_path / 'state.db'}"
        self.webhook_port = free_port() if triggers else None
        options = {"webhook_port": self.webhook_port, "collector_port": free_port()} if triggers else {}
        self.config_path.write_text(self.suite.config(state_url=self.state_url, **options) + "\n" + extra_config)
        if triggers:
            self.suite.set_webhook_target(f"http://127.0.0.1:{self.webhook_port}/hubspot/webhooks")
        self.environ = self.suite.environment()
        self.config = load_config(self.config_path, environ=self.environ)
        self.store = Store(self.config.database_url)
        self.store.migrate()
        self._sleep = sleep
        self._connect()

    def _connect(self) -> None:
        from sync.jobs.base import JobRunner
        from sync.ops.connections import Connections

        self.connections = Connections(self.config, **({"sleep": self._sleep} if self._sleep else {}))
        self.runner = JobRunner(self.config, self.store, connections=self.connections,
                                clock=self.clock.now if self.clock else None)

    def reconfigure(self, edit, environ: dict[str, str] | None = None) -> None:
        """Rewrite the config file with ``edit(text) -> text`` (and add ``environ``), then build
        fresh connections and a fresh runner from it, as a restarted daemon would."""
        from sync.config import load_config

        self.config_path.write_text(edit(self.config_path.read_text()))
        self.environ = {**self.environ, **(environ or {})}
        self.config = load_config(self.config_path, environ=self.environ)
        self._connect()

    @property
    def salesforce(self):
        return self.suite.salesforce

    @property
    def hubspot(self):
        return self.suite.hubspot

    @property
    def ga4(self):
        return self.suite.ga4

    def create_fields(self) -> None:
        from sync.jobs.fields import missing_fields

        for crm in self.connections.enabled_crms():
            adapter = self.connections.adapter(crm)
            adapter.ensure_fields(missing_fields(crm, self.connections.mapping(crm), adapter.describe_fields))

    def run(self, job_name: str, expect: str | None = "ok"):
        """Run one job once; its outcome must be ``expect`` (None: any)."""
        from sync.jobs import registry

        job = next(cls for cls in registry() if cls.name == job_name)(self.config)
        outcome = self.runner.execute(job)
        assert expect is None or outcome.outcome == expect, (outcome.outcome, outcome.error)
        return outcome

    def close(self) -> None:
        self.suite.stop()
        self.store.dispose()


def run_coroutine(coroutine):
    """``asyncio.run`` on a thread of its own: the session's Playwright browser (sync API) keeps an
    event loop running on the main thread, where ``asyncio.run`` refuses to start another."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
