"""Building the adapters, mappings and GA4 sender that a config describes, once per process."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import mappings
from adapters.errors import ConfigError
from adapters.ga4 import Ga4Sender
from adapters.google_ads import GoogleAdsSender
from adapters.google_auth import GoogleCredentials
from adapters.http import CallCounter
from adapters.retry import RetryPolicy
from adapters.hubspot import HubSpotAdapter, HubSpotCredentials
from adapters.meta import MetaSender
from adapters.salesforce import SalesforceAdapter
from adapters.salesforce_auth import SalesforceCredentials
from mappings import MappingFile, load_mapping
from sync.config import Config
from sync.ops import metrics

DEFAULT_MAPPINGS = Path(mappings.__file__).resolve().parent  # the default mapping files ship with the package
CRMS = ("salesforce", "hubspot")


class Connections:
    """Lazily built, shared clients for one config. Jobs ask for what they need."""

    def __init__(self, config: Config, counter: CallCounter | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, attempts: int | None = None,
                 timeout: float | None = None) -> None:
        """``sleep`` is what the adapters' retries wait with (tests pass one that does not wait);
        ``attempts`` and ``timeout`` cap every remote call (``check`` tries each remote once,
        briefly)."""
        self.config = config
        self.sleep = sleep
        self.attempts, self.timeout = attempts, timeout
        self.counter = counter or CallCounter(lambda system, n: metrics.api_calls.labels(system).inc(n))
        self._lock = threading.Lock()
        self._adapters: dict[str, object] = {}
        self._mappings: dict[str, MappingFile] = {}
        self._ga4: Ga4Sender | None = None
        self._destinations: dict[str, object] = {}

    def enabled_crms(self) -> list[str]:
        return [crm for crm in CRMS if getattr(self.config.settings, crm).enabled]

    def adapter(self, crm: str):
        with self._lock:
            if crm not in self._adapters:
                self._adapters[crm] = self._build(crm)
            return self._adapters[crm]

    def _build(self, crm: str):
        config = self.config
        if crm == "salesforce":
            settings = config.settings.salesforce
            private_key = ""
            if settings.auth == "jwt":
                private_key = (config.resolve_path(settings.private_key_file).read_text()
                               if settings.private_key_file else config.secret("salesforce", "private_key_env"))
            credentials = SalesforceCredentials(
                login_url=settings.login_url, auth=settings.auth,
                client_id=config.secret("salesforce", "client_id_env"),
                client_secret=config.secrets.get("salesforce.client_secret_env", ""),
                username=settings.username, private_key=private_key,
                refresh_token=config.secrets.get("salesforce.refresh_token_env", ""), audience=settings.audience)
            return SalesforceAdapter(credentials, api_version=settings.api_version,
                                     instance_url=settings.instance_url, ca_bundle=self._ca(settings.ca_bundle),
                                     timeout=self._timeout(settings), max_daily_share=settings.max_daily_api_share,
                                     counter=self.counter, permission_set=settings.permission_set,
                                     policy=self._policy())
        settings = config.settings.hubspot
        credentials = HubSpotCredentials(
            access_token=config.secrets.get("hubspot.access_token_env", ""),
            client_id=config.secrets.get("hubspot.client_id_env", ""),
            client_secret=config.secrets.get("hubspot.client_secret_env", ""),
            refresh_token=config.secrets.get("hubspot.refresh_token_env", ""))
        return HubSpotAdapter(credentials, host=settings.host, ca_bundle=self._ca(settings.ca_bundle),
                              timeout=self._timeout(settings), max_daily_share=settings.max_daily_api_share,
                              counter=self.counter, won_stages=settings.won_stages,
                              company_currency=settings.company_currency,
                              write_concurrency=settings.write_concurrency,
                              policy=self._policy(max_wait=15.0))

    def _policy(self, **options) -> RetryPolicy:
        return RetryPolicy(sleep=self.sleep, **({"attempts": self.attempts} if self.attempts else {}), **options)

    def _timeout(self, settings) -> float:
        return min(settings.timeout_seconds, self.timeout) if self.timeout else settings.timeout_seconds

    def ca_bundle(self, value: str) -> str | None:
        """A configured ``ca_bundle`` as an absolute path (None: the system store)."""
        return self._ca(value)

    def _ca(self, value: str) -> str | None:
        if not value:
            return None
        path = self.config.resolve_path(value)
        if not path.exists():
            raise ConfigError(f"{self.config.source}: ca_bundle {value!r}: file not found")
        return str(path)

    def mapping(self, crm: str) -> MappingFile:
        """The CRM's mapping file, parsed and checked against the variable catalogue."""
        from sync.journey.variables import catalogue

        with self._lock:
            if crm not in self._mappings:
                configured = getattr(self.config.settings, crm).mapping
                path = self.config.resolve_path(configured) if configured else DEFAULT_MAPPINGS / f"{crm}.toml"
                self._mappings[crm] = load_mapping(path, catalogue(), crm=crm)
            return self._mappings[crm]

    def ga4(self) -> Ga4Sender:
        with self._lock:
            if self._ga4 is None:
                settings = self.config.settings.ga4
                if not settings.enabled:
                    raise ConfigError(f"{self.config.source}: [ga4] is not enabled")
                self._ga4 = Ga4Sender(settings.endpoint, settings.measurement_id,
                                      self.config.secret("ga4", "api_secret_env"),
                                      timeout=self._timeout(settings), ca_bundle=self._ca(settings.ca_bundle),
                                      counter=self.counter)
            return self._ga4

    def google_credentials(self) -> GoogleCredentials:
        settings = self.config.settings.google_auth
        if settings.auth == "service_account":
            key = (self.config.resolve_path(settings.credentials_file).read_text(encoding="utf-8")
                   if settings.credentials_file else self.config.secret("google_auth", "credentials_env"))
            return GoogleCredentials(auth="service_account", token_uri=settings.token_uri, service_account_json=key)
        return GoogleCredentials(auth="refresh_token", token_uri=settings.token_uri,
                                 client_id=self.config.secret("google_auth", "client_id_env"),
                                 client_secret=self.config.secret("google_auth", "client_secret_env"),
                                 refresh_token=self.config.secret("google_auth", "refresh_token_env"))

    def destination(self, name: str):
        """The sender of an ad platform destination ("google_ads" | "meta"), built once."""
        with self._lock:
            if name not in self._destinations:
                self._destinations[name] = self._build_destination(name)
            return self._destinations[name]

    def _build_destination(self, name: str):
        config = self.config
        if name == "google_ads":
            settings = config.settings.google_ads
            if not settings.enabled:
                raise ConfigError(f"{config.source}: [google_ads] is not enabled")
            return GoogleAdsSender(settings.customer_id, self.google_credentials(),
                                   login_customer_id=settings.login_customer_id, endpoint=settings.endpoint,
                                   timeout=self._timeout(settings),
                                   ca_bundle=self._ca(settings.ca_bundle or config.settings.google_auth.ca_bundle),
                                   counter=self.counter, requests_per_minute=settings.requests_per_minute,
                                   policy=self._destination_policy())
        settings = config.settings.meta
        if not settings.enabled:
            raise ConfigError(f"{config.source}: [meta] is not enabled")
        return MetaSender(settings.dataset_id, config.secret("meta", "access_token_env"),
                          graph_url=settings.graph_url, api_version=settings.api_version,
                          app_secret=config.secret("meta", "app_secret_env") if settings.app_secret_env else None,
                          test_event_code=settings.test_event_code, timeout=self._timeout(settings),
                          ca_bundle=self._ca(settings.ca_bundle), counter=self.counter,
                          requests_per_minute=settings.requests_per_minute, policy=self._destination_policy())

    def _destination_policy(self) -> RetryPolicy:
        return self._policy(**({} if self.attempts else {"attempts": 4}), initial_wait=1.0, max_wait=30.0,
                            give_up_after=120.0)
