"""Every emulator together, as ``closedloop sandbox`` and ``closedloop demo`` run them.

Salesforce (HTTPS), HubSpot, GA4 (Measurement Protocol and the Data API), Google's OAuth token
endpoint, the Google Ads Data Manager API, and Meta's Conversions API (HTTPS), all on
loopback and on one clock. One service account (``google_oauth.service_account_file``) may
write conversions to the seeded Google Ads account and read the GA4 property.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sandbox.clock import Clock
from sandbox.ga4 import GA4Sandbox
from sandbox.google_ads import DataManagerSandbox
from sandbox.googleapis import GoogleOAuth
from sandbox.hubspot import HubSpotSandbox
from sandbox.meta import MetaSandbox
from sandbox.salesforce import SalesforceSandbox

SERVERS = ("salesforce", "hubspot", "ga4", "google_oauth", "google_ads", "meta")


@dataclass
class SandboxSuite:
    """The emulators on loopback; ``ports`` in the order of :data:`SERVERS` (missing ones: any free port)."""

    salesforce: SalesforceSandbox
    hubspot: HubSpotSandbox
    ga4: GA4Sandbox
    google_oauth: GoogleOAuth
    google_ads: DataManagerSandbox
    meta: MetaSandbox

    @classmethod
    def start(cls, data_dir: Path, *, host: str = "127.0.0.1", ports: tuple[int, ...] = (),
              clock: Clock | None = None, **options) -> "SandboxSuite":
        """Start them all; ``options`` maps a server name to its constructor's keyword arguments."""
        clock = clock or Clock()
        data_dir = Path(data_dir)
        ports = tuple(ports) + (0,) * (len(SERVERS) - len(ports))
        oauth = GoogleOAuth(data_dir=data_dir / "google", **options.get("google_oauth", {}))
        suite = cls(SalesforceSandbox(data_dir=data_dir / "salesforce", clock=clock, **options.get("salesforce", {})),
                    HubSpotSandbox(clock=clock, **options.get("hubspot", {})),
                    GA4Sandbox(clock=clock, oauth=oauth, **options.get("ga4", {})),
                    oauth,
                    DataManagerSandbox(data_dir=data_dir / "google_ads", oauth=oauth, clock=clock,
                                       **options.get("google_ads", {})),
                    MetaSandbox(data_dir=data_dir / "meta", clock=clock, **options.get("meta", {})))
        for name, port in zip(SERVERS, ports):
            getattr(suite, name).start(host, port)
        return suite

    def stop(self) -> None:
        for name in reversed(SERVERS):
            getattr(self, name).stop()

    def environment(self) -> dict[str, str]:
        """The environment variables a closedloop config reads its secrets from."""
        sf, hs = self.salesforce.credentials, self.hubspot.credentials
        return {"CLOSEDLOOP_SALESFORCE_CLIENT_ID": sf["client_id"],
                "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET": sf["client_secret"],
                "CLOSEDLOOP_HUBSPOT_TOKEN": hs["access_token"],
                "CLOSEDLOOP_GA4_API_SECRET": self.ga4.api_secret,
                # a key file path, like GOOGLE_APPLICATION_CREDENTIALS: Google Ads conversions and the GA4 Data API
                "CLOSEDLOOP_GOOGLE_SERVICE_ACCOUNT_FILE": str(self.google_oauth.service_account_file),
                "CLOSEDLOOP_META_ACCESS_TOKEN": self.meta.credentials["access_token"]}

    def config(self, *, state_url: str = "sqlite:///state/closedloop.db", collector_port: int = 8700,
               site_origin: str | tuple[str, ...] = "http://localhost:8000", config_dir: Path | None = None,
               schedule: dict[str, float] | None = None, replay_days: int = 0) -> str:
        """A closedloop.toml pointing every integration at the emulators. ``replay_days``: the
        collector will take beacons dated that far back, from one address without limits (for
        a traffic generator replaying weeks of visits, as the demo and ``sandbox --seed`` do).

        Paths in a closedloop config are read relative to the config file's folder, so with
        ``config_dir`` (where the file will be written) the CA and key files are named relative to
        it and the config works from any working directory; without it, by absolute path."""
        lag = max(1, int(self.hubspot.store.index_lag_seconds * 2)) if self.hubspot.store.index_lag_seconds else 0
        ads, meta = self.google_ads.credentials, self.meta.credentials

        def path(file) -> str:
            """``file`` as the config should name it: relative to ``config_dir`` when given."""
            resolved = Path(file).resolve()
            return (Path(os.path.relpath(resolved, Path(config_dir).resolve())) if config_dir else resolved).as_posix()

        origins = ", ".join(f'"{origin}"' for origin in ([site_origin] if isinstance(site_origin, str) else site_origin))
        timing = "".join(f"{key} = {value:g}\n" for key, value in (schedule or {}).items())
        replaying = "" if not replay_days else (
            f"# weeks of visits are replayed from this one machine: beacons dated up to {replay_days} days\n"
            f"# back are taken as they are, and no address or visitor is rate-limited\n"
            f"max_clock_skew_seconds = {replay_days * 86400}\nip_rate_per_second = 0\nvisitor_rate_per_second = 0\n")
        return f'''# closedloop pointed at the local sandbox (closedloop sandbox / closedloop demo).
# Relative paths here are relative to this file's folder.
[state]
url = "{state_url}"

[collector]
port = {collector_port}
allowed_origins = [{origins}]
{replaying}
[salesforce]
enabled = true
auth = "client_credentials"
login_url = "{self.salesforce.url}"
ca_bundle = "{path(self.salesforce.ca_path)}"
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

[ga4.data_api]
property_id = "{self.ga4.property_id}"
endpoint = "{self.ga4.url}"

[google_auth]
credentials_file = "{path(self.google_oauth.service_account_file)}"
token_uri = "{self.google_oauth.token_uri}"

[google_ads]
enabled = true
customer_id = "{ads["operating_account_id"]}"
endpoint = "{self.google_ads.url}"

[google_ads.conversions.qualify_lead]
conversion_action_id = "{ads["conversion_actions"]["qualified"]}"

[google_ads.conversions.won]
conversion_action_id = "{ads["conversion_actions"]["won"]}"

[meta]
enabled = true
dataset_id = "{meta["dataset_id"]}"
graph_url = "{self.meta.url}"
ca_bundle = "{path(self.meta.ca_path)}"

[meta.conversions.qualify_lead]
event_name = "QualifiedLead"

[meta.conversions.won]
event_name = "Purchase"
''' + (f"\n# short intervals, so the sandbox shows results within a minute\n[schedule]\n{timing}" if timing else "")
