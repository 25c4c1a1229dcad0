"""Small helpers shared by test modules (import as ``from support import ...``)."""
from __future__ import annotations

from sandbox.web import free_port  # noqa: F401  (tests import it from here)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"


class World:
    """The sandbox suite, a closedloop config pointing at it, a migrated store and a job runner:
    closedloop exactly as a user runs it, minus the scheduler."""

    def __init__(self, tmp_path, extra_config: str = "", state_url: str | None = None, **suite_options) -> None:
        """``suite_options`` go to the emulators, e.g. ``ga4={"latency_seconds": 0.05}``;
        ``state_url``: another store than a SQLite file in ``tmp_path`` (a PostgreSQL database)."""
        from sandbox.suite import SandboxSuite
        from state import Store
        from sync.config import load_config
        from sync.jobs.base import JobRunner
        from sync.ops.connections import Connections

        self.suite = SandboxSuite.start(tmp_path / "sandbox", **suite_options)
        self.config_path = tmp_path / "closedloop.toml"
        self.config_path.write_text(self.suite.config(state_url=state_url or f"sqlite:///{tmp_path / 'state.db'}")
                                    + "\n" + extra_config)
        self.environ = self.suite.environment()
        self.config = load_config(self.config_path, environ=self.environ)
        self.store = Store(self.config.database_url)
        self.store.migrate()
        self.connections = Connections(self.config)
        self.runner = JobRunner(self.config, self.store, connections=self.connections)

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

    def run(self, job_name: str):
        from sync.jobs import registry

        job = next(cls for cls in registry() if cls.name == job_name)(self.config)
        outcome = self.runner.execute(job)
        assert outcome.outcome == "ok", outcome.error
        return outcome

    def close(self) -> None:
        self.suite.stop()
        self.store.dispose()
