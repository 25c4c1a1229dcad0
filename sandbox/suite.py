"""All three emulators together, as ``closedloop sandbox`` and ``closedloop demo`` run them.

Triggers (issue 19): the Salesforce org publishes change events for Lead, Contact and
Opportunity by default, on the Pub/Sub API at :attr:`SandboxSuite.pubsub_endpoint`
(``localhost:PORT``, gRPC over TLS with the CA at ``salesforce.ca_path``). The HubSpot app is
subscribed to contact creation, email and lifecycle-stage changes, deal creation, stage and
amount changes, but has no target URL until :meth:`SandboxSuite.set_webhook_target` names the
daemon's receiver (its port is known only once the daemon runs).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.clock import Clock
from sandbox.ga4 import GA4Sandbox
from sandbox.hubspot import HubSpotSandbox
from sandbox.salesforce import SalesforceSandbox


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
    """Salesforce (HTTPS), HubSpot and GA4 on loopback."""

    salesforce: SalesforceSandbox
    hubspot: HubSpotSandbox
    ga4: GA4Sandbox

    @classmethod
    def start(cls, data_dir: Path, *, host: str = "127.0.0.1", ports: tuple[int, int, int] = (0, 0, 0),
              pubsub_port: int = 0, clock: Clock | None = None, realistic_triggers: bool = False,
              **options) -> "SandboxSuite":
        """Start all three; ``options`` per emulator (``salesforce={...}``, ``hubspot={...}``,
        ``ga4={...}``) override the defaults above; ``pubsub_port`` is the Pub/Sub API's port."""
        clock = clock or Clock()
        salesforce = {"cdc_entities": CDC_ENTITIES, **(REALISTIC_TRIGGER_DELAYS["salesforce"] if realistic_triggers
                                                        else {}), **options.get("salesforce", {})}
        hubspot = dict(options.get("hubspot", {}))
        hubspot["webhooks"] = {"subscriptions": list(WEBHOOK_SUBSCRIPTIONS),
                               **(REALISTIC_TRIGGER_DELAYS["hubspot"]["webhooks"] if realistic_triggers else {}),
                               **hubspot.get("webhooks", {})}
        suite = cls(SalesforceSandbox(data_dir=Path(data_dir) / "salesforce", clock=clock, **salesforce),
                    HubSpotSandbox(clock=clock, **hubspot),
                    GA4Sandbox(clock=clock, **options.get("ga4", {})))
        suite.salesforce.start(host, ports[0], pubsub_port=pubsub_port)
        suite.hubspot.start(host, ports[1])
        suite.ga4.start(host, ports[2])
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
        for emulator in (self.salesforce, self.hubspot, self.ga4):
            emulator.stop()

    def environment(self) -> dict[str, str]:
        """The environment variables a closedloop config reads its secrets from."""
        sf, hs = self.salesforce.credentials, self.hubspot.credentials
        return {"CLOSEDLOOP_SALESFORCE_CLIENT_ID": sf["client_id"],
                "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET": sf["client_secret"],
                "CLOSEDLOOP_HUBSPOT_TOKEN": hs["access_token"],
                "CLOSEDLOOP_HUBSPOT_CLIENT_SECRET": hs["webhook_client_secret"],
                "CLOSEDLOOP_GA4_API_SECRET": self.ga4.api_secret}

    def config(self, *, state_url: str = "sqlite:///state/closedloop.db", collector_port: int = 8700,
               site_origin: str = "http://localhost:8000", webhook_port: int | None = None) -> str:
        """A closedloop.toml pointing every integration at the emulators. With ``webhook_port``
        the triggers are on too: Salesforce change events from :attr:`pubsub_endpoint`, HubSpot
        webhooks to a receiver on that port (point the app at it with :meth:`set_webhook_target`)."""
        lag = max(1, int(self.hubspot.store.index_lag_seconds * 2)) if self.hubspot.store.index_lag_seconds else 0
        salesforce_triggers = hubspot_triggers = webhooks = ""
        if webhook_port is not None:
            salesforce_triggers = f'change_events = true\npubsub_endpoint = "{self.pubsub_endpoint}"\n'
            hubspot_triggers = (f'webhooks = true\nwebhook_url = "http://127.0.0.1:{webhook_port}/hubspot/webhooks"\n'
                                f'app_id = "{self.hubspot.credentials["webhook_app_id"]}"\n')
            webhooks = f"\n[webhooks]\nport = {webhook_port}\n"
        return f'''# closedloop pointed at the local sandbox (closedloop sandbox / closedloop demo)
[state]
url = "{state_url}"

[collector]
port = {collector_port}
allowed_origins = ["{site_origin}"]

[salesforce]
enabled = true
auth = "client_credentials"
login_url = "{self.salesforce.url}"
ca_bundle = "{self.salesforce.ca_path}"
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
{webhooks}'''
