"""All three emulators together, as ``closedloop sandbox`` and ``closedloop demo`` run them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.clock import Clock
from sandbox.ga4 import GA4Sandbox
from sandbox.hubspot import HubSpotSandbox
from sandbox.salesforce import SalesforceSandbox


@dataclass
class SandboxSuite:
    """Salesforce (HTTPS), HubSpot and GA4 on loopback."""

    salesforce: SalesforceSandbox
    hubspot: HubSpotSandbox
    ga4: GA4Sandbox

    @classmethod
    def start(cls, data_dir: Path, *, host: str = "127.0.0.1", ports: tuple[int, int, int] = (0, 0, 0),
              clock: Clock | None = None, **options) -> "SandboxSuite":
        clock = clock or Clock()
        suite = cls(SalesforceSandbox(data_dir=Path(data_dir) / "salesforce", clock=clock,
                                      **options.get("salesforce", {})),
                    HubSpotSandbox(clock=clock, **options.get("hubspot", {})),
                    GA4Sandbox(clock=clock, **options.get("ga4", {})))
        suite.salesforce.start(host, ports[0])
        suite.hubspot.start(host, ports[1])
        suite.ga4.start(host, ports[2])
        return suite

    def stop(self) -> None:
        for emulator in (self.salesforce, self.hubspot, self.ga4):
            emulator.stop()

    def environment(self) -> dict[str, str]:
        """The environment variables a closedloop config reads its secrets from."""
        sf, hs = self.salesforce.credentials, self.hubspot.credentials
        return {"CLOSEDLOOP_SALESFORCE_CLIENT_ID": sf["client_id"],
                "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET": sf["client_secret"],
                "CLOSEDLOOP_HUBSPOT_TOKEN": hs["access_token"],
                "CLOSEDLOOP_GA4_API_SECRET": self.ga4.api_secret}

    def config(self, *, state_url: str = "sqlite:///state/closedloop.db", collector_port: int = 8700,
               site_origin: str = "http://localhost:8000", replay_days: int = 0) -> str:
        """A closedloop.toml pointing every integration at the emulators. ``replay_days``: the
        collector will take beacons dated that far back, from one address without limits (for
        a traffic generator replaying weeks of visits, as the demo does)."""
        lag = max(1, int(self.hubspot.store.index_lag_seconds * 2)) if self.hubspot.store.index_lag_seconds else 0
        replaying = "" if not replay_days else (
            f"# weeks of visits are replayed from this one machine: beacons dated up to {replay_days} days\n"
            f"# back are taken as they are, and no address or visitor is rate-limited\n"
            f"max_clock_skew_seconds = {replay_days * 86400}\nip_rate_per_second = 0\nvisitor_rate_per_second = 0\n")
        return f'''# closedloop pointed at the local sandbox (closedloop sandbox / closedloop demo)
[state]
url = "{state_url}"

[collector]
port = {collector_port}
allowed_origins = ["{site_origin}"]
{replaying}
[salesforce]
enabled = true
auth = "client_credentials"
login_url = "{self.salesforce.url}"
ca_bundle = "{self.salesforce.ca_path}"
permission_set = "Closedloop_Integration"

[hubspot]
enabled = true
host = "{self.hubspot.url}"
# the sandbox's search index lag is {self.hubspot.store.index_lag_seconds:g}s; re-read twice that
search_lag_seconds = {lag}

[ga4]
enabled = true
measurement_id = "{self.ga4.measurement_id}"
endpoint = "{self.ga4.url}"
'''
