"""Every emulator together, as ``closedloop sandbox`` and ``closedloop demo`` run them.

Salesforce (HTTPS), HubSpot, GA4 (Measurement Protocol and the Data API), Google's OAuth token
endpoint, the Google Ads Data Manager API, and Meta's Conversions API (HTTPS), all on
loopback and on one clock. One service account (``google_oauth.service_account_file``) may
write conversions to the seeded Google Ads account and read the GA4 property.

Triggers (issue 19): the Salesforce org publishes change events for Lead, Contact and
Opportunity by default, on the Pub/Sub API at :attr:`SandboxSuite.pubsub_endpoint`
(``localhost:PORT``, gRPC over TLS with the CA at ``salesforce.ca_path``). The HubSpot app is
subscribed to contact creation, email and lifecycle-stage changes, deal creation, stage and
amount changes, but has no target URL until :meth:`SandboxSuite.set_webhook_target` names the
daemon's receiver (its port is known only once the daemon runs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.clock import Clock
from sandbox.ga4 import GA4Sandbox
from sandbox.google_ads import DataManagerSandbox
from sandbox.googleapis import GoogleOAuth
from sandbox.hubspot import HubSpotSandbox
from sandbox.meta import MetaSandbox
from sandbox.salesforce import SalesforceSandbox

SERVERS = ("salesforce", "hubspot", "ga4", "google_oauth", "google_ads", "meta")
CDC_ENTITIES = ("Lead", "Contact", "Opportunity")
WEBHOOK_SUBSCRIPTIONS = (
    {"subscriptionType": "contact.creation"},
    {"subscriptionType": "contact.propertyChange", "propertyName": "email"},
    {"subscriptionType": "contact.propertyChange", "propertyName": "lifecyclestage"},
    {"subscriptionType": "deal.creation"},
    {"subscriptionType": "deal.propertyChange", "propertyName": "dealstage"},
    {"subscriptionType": "deal.propertyChange", "propertyName": "amount"},
)
# Delays between a CRM write and the trigger reaching a subscriber, for benchmarks that want
# the triggered path measured against something other than zero. Neither vendor publishes a
# figure: these are assumptions of a second or two (pass them as ``salesforce=``/``hubspot=``
# options, or use ``realistic_triggers=True``).
REALISTIC_TRIGGER_DELAYS: dict[str, dict[str, Any]] = {
    "salesforce": {"cdc_delivery_lag_seconds": 1.0, "cdc_delivery_jitter_seconds": 1.0},
    "hubspot": {"webhooks": {"delivery_delay_seconds": 1.5}},
}


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
    def start(cls, data_dir: Path, *, host: str = "127.0.0.1", ports: tuple[int, ...] = (), pubsub_port: int = 0,
              clock: Clock | None = None, realistic_triggers: bool = False, **options) -> "SandboxSuite":
        """Start them all; ``options`` maps a server name to its constructor's keyword arguments;
        ``pubsub_port`` is the Salesforce Pub/Sub API's port."""
        clock = clock or Clock()
        data_dir = Path(data_dir)
        ports = tuple(ports) + (0,) * (len(SERVERS) - len(ports))
        oauth = GoogleOAuth(data_dir=data_dir / "google", **options.get("google_oauth", {}))
        salesforce = {"cdc_entities": CDC_ENTITIES, **(REALISTIC_TRIGGER_DELAYS["salesforce"] if realistic_triggers
                                                        else {}), **options.get("salesforce", {})}
        hubspot = dict(options.get("hubspot", {}))
        hubspot["webhooks"] = {"subscriptions": list(WEBHOOK_SUBSCRIPTIONS),
                               **(REALISTIC_TRIGGER_DELAYS["hubspot"]["webhooks"] if realistic_triggers else {}),
                               **hubspot.get("webhooks", {})}
        suite = cls(SalesforceSandbox(data_dir=data_dir / "salesforce", clock=clock, **salesforce),
                    HubSpotSandbox(clock=clock, **hubspot),
                    GA4Sandbox(clock=clock, oauth=oauth, **options.get("ga4", {})),
                    oauth,
                    DataManagerSandbox(data_dir=data_dir / "google_ads", oauth=oauth, clock=clock,
                                       **options.get("google_ads", {})),
                    MetaSandbox(data_dir=data_dir / "meta", clock=clock, **options.get("meta", {})))
        for name, port in zip(SERVERS, ports):
            if name == "salesforce":
                suite.salesforce.start(host, port, pubsub_port=pubsub_port)
            else:
                getattr(suite, name).start(host, port)
        return suite

    @property
    def pubsub_endpoint(self) -> str:
        """``localhost:PORT`` of the Salesforce Pub/Sub API (TLS; trust ``salesforce.ca_path``)."""
        return self.salesforce.pubsub_endpoint

    def set_webhook_target(self, url: str, *, client_secret: str | None = None) -> None:
        """Point the HubSpot app's webhooks at the daemon's receiver (the full URL HubSpot calls,
        which is also what the v3 signature covers); optionally change the app's client secret
        (default: ``hubspot.credentials["webhook_client_secret"]``)."""
        self.hubspot.configure_webhooks(target_url=url, client_secret=client_secret)

    def stop(self) -> None:
        for name in reversed(SERVERS):
            getattr(self, name).stop()

    def environment(self) -> dict[str, str]:
        """The environment variables a closedloop config reads its secrets from."""
        sf, hs = self.salesforce.credentials, self.hubspot.credentials
        return {"CLOSEDLOOP_SALESFORCE_CLIENT_ID": sf["client_id"],
                "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET": sf["client_secret"],
                "CLOSEDLOOP_HUBSPOT_TOKEN": hs["access_token"],
                "CLOSEDLOOP_HUBSPOT_CLIENT_SECRET": hs["webhook_client_secret"],
                "CLOSEDLOOP_GA4_API_SECRET": self.ga4.api_secret,
                # a key file path, like GOOGLE_APPLICATION_CREDENTIALS: Google Ads conversions and the GA4 Data API
                "CLOSEDLOOP_GOOGLE_SERVICE_ACCOUNT_FILE": str(self.google_oauth.service_account_file),
                "CLOSEDLOOP_META_ACCESS_TOKEN": self.meta.credentials["access_token"]}

    def config(self, *, state_url: str = "sqlite:///state/closedloop.db", collector_port: int = 8700,
               site_origin: str | tuple[str, ...] = "http://localhost:8000", config_dir: Path | None = None,
               schedule: dict[str, float] | None = None, replay_days: int = 0,
               webhook_port: int | None = None) -> str:
        """A closedloop.toml pointing every integration at the emulators. ``replay_days``: the
        collector will take beacons dated that far back, from one address without limits (for
        a traffic generator replaying weeks of visits, as the demo and ``sandbox --seed`` do).

        Paths in a closedloop config are read relative to the config file's folder, so with
        ``config_dir`` (where the file will be written) the CA and key files are named relative to
        it and the config works from any working directory; without it, by absolute path. With
        ``webhook_port`` the triggers are on too: Salesforce change events from
        :attr:`pubsub_endpoint`, HubSpot webhooks to a receiver on that port (point the app at it
        with :meth:`set_webhook_target`)."""
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
        salesforce_triggers = hubspot_triggers = webhooks = ""
        if webhook_port is not None:
            salesforce_triggers = f'change_events = true\npubsub_endpoint = "{self.pubsub_endpoint}"\n'
            hubspot_triggers = (f'webhooks = true\nwebhook_url = "http://127.0.0.1:{webhook_port}/hubspot/webhooks"\n'
                                f'app_id = "{self.hubspot.credentials["webhook_app_id"]}"\n')
            webhooks = f"\n[webhooks]\nport = {webhook_port}\n"
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
{salesforce_triggers}
[hubspot]
enabled = true
host = "{self.hubspot.url}"
# the sandbox's search index lag is {self.hubspot.store.index_lag_seconds:g}s; re-read twice that
search_lag_seconds = {lag}
{hubspot_triggers}
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
{webhooks}''' + (f"\n# short intervals, so the sandbox shows results within a minute\n[schedule]\n{timing}" if timing else "")
