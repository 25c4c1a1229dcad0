"""Loading and validating ``closedloop.toml``.

The file is TOML, read with :mod:`tomllib` and validated with pydantic models whose defaults
are the values documented in ``config.example.toml``. Secrets never sit in the file: a key
ending in ``_env`` names the environment variable that holds the secret, and the value is
read from the environment at start-up, only for the sections that are enabled.

Every problem found is reported at once, one line each, naming the file, the line where we
can find it, the key, and what was expected. Messages never echo a value, so a secret pasted
into the wrong key or a database password inside a URL cannot leak through an error.
"""
from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from adapters.errors import ConfigError
from adapters.salesforce_auth import documented_audience

DEFAULT_CONFIG_NAME = "closedloop.toml"

# Keys people are likely to write when they mean the ``*_env`` form.
SECRET_KEY_HINTS = {"access_token", "api_secret", "client_secret", "client_id", "password",
                    "private_key", "refresh_token", "security_token", "token", "secret"}

Seconds = Annotated[float, Field(gt=0)]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
CurrencyCode = Annotated[str, Field(pattern=r"^([A-Z]{3})?$")]
EventName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")]


class Section(BaseModel):
    """Base for every section: unknown keys are errors, values are not coerced loosely."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class StateSection(Section):
    url: str = "sqlite:///state/closedloop.db"
    password_env: EnvName | None = None
    retention_days: Annotated[int, Field(ge=0)] = 0
    anonymous_retention_days: Annotated[int, Field(ge=0)] = 395

    @field_validator("url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("expected a database URL such as sqlite:///state/closedloop.db "
                             "or postgresql+psycopg://user@host/dbname") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        if url.get_backend_name() == "postgresql" and url.get_driver_name() not in ("psycopg",):
            raise ValueError("expected the psycopg driver: postgresql+psycopg://...")
        return value


class LandingPageGroup(Section):
    pattern: str
    group: str


class CollectorSection(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8700
    public_url: Url | Literal[""] = ""
    allowed_origins: list[Annotated[str, Field(pattern=r"^https?://[^\s/]+$")]] = []
    site_hosts: list[str] = []
    cookie_domain: str = ""
    require_consent: bool = False
    honor_dnt: bool = False
    honor_gpc: bool = True
    max_body_bytes: Annotated[int, Field(ge=512, le=1_048_576)] = 16_384
    max_batch_beacons: Annotated[int, Field(ge=1, le=100)] = 20
    max_clock_skew_seconds: Annotated[int, Field(ge=0)] = 21_600
    session_timeout_minutes: Annotated[int, Field(ge=1, le=1440)] = 30
    store_timeout_seconds: Seconds = 10.0
    unhealthy_queue_depth: Annotated[int, Field(ge=1)] = 10_000
    unhealthy_write_delay_seconds: Seconds = 30.0
    ip_rate_per_second: Annotated[float, Field(ge=0)] = 20.0
    ip_burst: Annotated[int, Field(ge=1)] = 200
    visitor_rate_per_second: Annotated[float, Field(ge=0)] = 2.0
    visitor_burst: Annotated[int, Field(ge=1)] = 30
    trusted_proxies: list[str] = []
    identify_devices_per_email: Annotated[int, Field(ge=0)] = 5
    identify_window_seconds: Seconds = 3600.0


class AdminSection(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    token_env: EnvName | None = None


class JourneySection(Section):
    path_max_length: Annotated[int, Field(ge=16, le=65_536)] = 255
    landing_page_groups: list[LandingPageGroup] = []
    match_wait_hours: Annotated[float, Field(ge=0)] = 24.0


class GA4DataApiSection(Section):
    """Reading GA4 back (``closedloop reconcile``) through the GA4 Data API; credentials from [google_auth]."""

    property_id: Annotated[str, Field(pattern=r"^(\d{1,20})?$")] = ""
    endpoint: Url = "https://analyticsdata.googleapis.com"
    processing_delay_hours: Annotated[float, Field(ge=0, le=168)] = 48.0


class GA4Section(Section):
    enabled: bool = False
    measurement_id: Annotated[str, Field(pattern=r"^(G-[A-Z0-9]{4,20})?$")] = ""
    api_secret_env: EnvName = "CLOSEDLOOP_GA4_API_SECRET"
    endpoint: Url = "https://www.google-analytics.com"
    ca_bundle: str = ""
    timeout_seconds: Seconds = 10.0
    revenue_event: EventName = "purchase"
    unattributed_deals: Literal["skip", "send"] = "skip"
    unattributed_client_id: Annotated[str, Field(pattern=r"^\d+\.\d+$")] = "1000000000.1000000000"
    send_user_id: bool = False
    data_api: GA4DataApiSection = GA4DataApiSection()


class GoogleAuthSection(Section):
    """One Google identity for the Data Manager API and the GA4 Data API (a service account's key,
    or an OAuth client and refresh token); ``token_uri`` may point elsewhere (the sandbox)."""

    auth: Literal["service_account", "refresh_token"] = "service_account"
    credentials_env: EnvName = "CLOSEDLOOP_GOOGLE_CREDENTIALS"
    credentials_file: str = ""
    client_id_env: EnvName = "CLOSEDLOOP_GOOGLE_CLIENT_ID"
    client_secret_env: EnvName = "CLOSEDLOOP_GOOGLE_CLIENT_SECRET"
    refresh_token_env: EnvName = "CLOSEDLOOP_GOOGLE_REFRESH_TOKEN"
    token_uri: Url = "https://oauth2.googleapis.com/token"
    ca_bundle: str = ""


StageName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")]


class AdConsentPolicy(Section):
    """What a destination does with people who gave no ad consent (Consent Mode ``ad_user_data``)."""

    # true: a person with no recorded consent signal counts as not consenting (EEA/UK sites);
    # false: as consenting (where the law asks for no consent banner).
    required: bool = True
    # "send_without_user_data": send the conversion with the click id only (no email, phone);
    # "skip": send nothing at all for that person.
    without_consent: Literal["send_without_user_data", "skip"] = "send_without_user_data"


class GoogleAdsConversion(Section):
    conversion_action_id: Annotated[str, Field(pattern=r"^\d{1,20}$")]
    # won: send the deal's amount and currency as the conversion value
    send_value: bool = True
    # the conversion action's click-through window (Google allows at most 90 days)
    click_through_days: Annotated[int, Field(ge=1, le=90)] = 90


class GoogleAdsSection(Section):
    enabled: bool = False
    customer_id: Annotated[str, Field(pattern=r"^(\d{10})?$")] = ""
    login_customer_id: Annotated[str, Field(pattern=r"^(\d{10})?$")] = ""
    endpoint: Url = "https://datamanager.googleapis.com"
    ca_bundle: str = ""
    timeout_seconds: Seconds = 30.0
    requests_per_minute: Annotated[int, Field(ge=1, le=300)] = 250
    default_phone_region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "US"
    conversions: dict[StageName, GoogleAdsConversion] = {}
    consent: AdConsentPolicy = AdConsentPolicy()


class MetaConversion(Section):
    event_name: Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_ -]+$")]
    send_value: bool = True


class MetaSection(Section):
    enabled: bool = False
    dataset_id: Annotated[str, Field(pattern=r"^(\d{1,20})?$")] = ""
    access_token_env: EnvName = "CLOSEDLOOP_META_ACCESS_TOKEN"
    app_secret_env: EnvName | Literal[""] = ""
    graph_url: Url = "https://graph.facebook.com"
    api_version: Annotated[str, Field(pattern=r"^v\d{2}\.0$")] = "v26.0"
    test_event_code: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{0,40}$")] = ""
    ca_bundle: str = ""
    timeout_seconds: Seconds = 30.0
    requests_per_minute: Annotated[int, Field(ge=1, le=600)] = 200
    default_phone_region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "US"
    attribution_days: Annotated[int, Field(ge=1, le=90)] = 28
    conversions: dict[StageName, MetaConversion] = {}
    consent: AdConsentPolicy = AdConsentPolicy(without_consent="skip")


class SalesforceSection(Section):
    enabled: bool = False
    auth: Literal["client_credentials", "jwt", "refresh_token"] = "client_credentials"
    login_url: Url = "https://login.salesforce.com"
    audience: Url | Literal[""] = ""
    instance_url: Url | Literal[""] = ""
    api_version: Annotated[str, Field(pattern=r"^\d{2,3}\.0$")] = "62.0"
    client_id_env: EnvName = "CLOSEDLOOP_SALESFORCE_CLIENT_ID"
    client_secret_env: EnvName = "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET"
    username: str = ""
    private_key_env: EnvName = "CLOSEDLOOP_SALESFORCE_PRIVATE_KEY"
    private_key_file: str = ""
    refresh_token_env: EnvName = "CLOSEDLOOP_SALESFORCE_REFRESH_TOKEN"
    ca_bundle: str = ""
    timeout_seconds: Seconds = 30.0
    mapping: str = ""
    max_daily_api_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    lookback_seconds: Annotated[int, Field(ge=0, le=86_400)] = 300
    org_currency: CurrencyCode = ""
    permission_set: str = ""
    change_events: bool = False
    pubsub_endpoint: Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+:\d{1,5}$")] = "api.pubsub.salesforce.com:7443"
    change_event_batch: Annotated[int, Field(ge=1, le=100)] = 100


class HubSpotSection(Section):
    enabled: bool = False
    auth: Literal["private_app", "oauth"] = "private_app"
    host: Url = "https://api.hubapi.com"
    access_token_env: EnvName = "CLOSEDLOOP_HUBSPOT_TOKEN"
    client_id_env: EnvName = "CLOSEDLOOP_HUBSPOT_CLIENT_ID"
    client_secret_env: EnvName = "CLOSEDLOOP_HUBSPOT_CLIENT_SECRET"
    refresh_token_env: EnvName = "CLOSEDLOOP_HUBSPOT_REFRESH_TOKEN"
    ca_bundle: str = ""
    timeout_seconds: Seconds = 30.0
    mapping: str = ""
    won_stages: list[str] = []
    company_currency: CurrencyCode = ""
    search_lag_seconds: Annotated[int, Field(ge=0, le=3600)] = 60
    max_daily_api_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    write_concurrency: Annotated[int, Field(ge=1, le=10)] = 2
    webhooks: bool = False
    webhook_url: Url | Literal[""] = ""
    app_id: Annotated[str, Field(pattern=r"^\d*$")] = ""


class WebhooksSection(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8704


class ScheduleSection(Section):
    enrich_seconds: Seconds = 60.0
    safety_poll_seconds: Seconds = 900.0
    revenue_seconds: Seconds = 300.0
    lifecycle_seconds: Seconds = 300.0
    conversions_seconds: Seconds = 300.0
    housekeeping_seconds: Seconds = 3600.0
    misfire_grace_seconds: Seconds = 300.0


class RemotesSection(Section):
    down_pause_seconds: Seconds = 60.0
    auth_pause_seconds: Seconds = 300.0
    budget_pause_seconds: Seconds = 900.0
    max_pause_seconds: Seconds = 3600.0


class HealthSection(Section):
    max_consecutive_failures: Annotated[int, Field(ge=1)] = 3
    max_paused_minutes: Annotated[float, Field(gt=0)] = 60.0


class SalesforceLifecycle(Section):
    enabled: bool = True
    lead_status: dict[str, EventName] = {"Working - Contacted": "working_lead", "Qualified": "qualify_lead",
                                         "Unqualified": "disqualify_lead"}
    converted: EventName | Literal[""] = "close_convert_lead"
    lost_opportunity: EventName | Literal[""] = "close_unconvert_lead"


class HubSpotLifecycle(Section):
    enabled: bool = True
    lifecycle_stage: dict[str, EventName] = {"salesqualifiedlead": "qualify_lead",
                                             "customer": "close_convert_lead"}
    lead_status: dict[str, EventName] = {"IN_PROGRESS": "working_lead", "UNQUALIFIED": "disqualify_lead"}
    deal_stage: dict[str, EventName] = {}


class LifecycleSection(Section):
    salesforce: SalesforceLifecycle = SalesforceLifecycle()
    hubspot: HubSpotLifecycle = HubSpotLifecycle()


class LoggingSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Settings(Section):
    """The whole file. Each attribute is one ``[section]``."""

    state: StateSection = StateSection()
    collector: CollectorSection = CollectorSection()
    admin: AdminSection = AdminSection()
    journey: JourneySection = JourneySection()
    ga4: GA4Section = GA4Section()
    salesforce: SalesforceSection = SalesforceSection()
    hubspot: HubSpotSection = HubSpotSection()
    webhooks: WebhooksSection = WebhooksSection()
    google_auth: GoogleAuthSection = GoogleAuthSection()
    google_ads: GoogleAdsSection = GoogleAdsSection()
    meta: MetaSection = MetaSection()
    schedule: ScheduleSection = ScheduleSection()
    remotes: RemotesSection = RemotesSection()
    health: HealthSection = HealthSection()
    lifecycle: LifecycleSection = LifecycleSection()
    logging: LoggingSection = LoggingSection()


@dataclass(frozen=True)
class Config:
    """Validated settings plus where they came from and the secrets read from the environment."""

    settings: Settings
    path: Path | None
    base_dir: Path
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "built-in defaults"

    def secret(self, section: str, key: str) -> str:
        """The value of the secret named by ``[section] key`` (a ``*_env`` key)."""
        try:
            return self.secrets[f"{section}.{key}"]
        except KeyError:
            env = getattr(getattr(self.settings, section), key)
            raise ConfigError(f"{self.source}: [{section}] {key}: environment variable {env} is not set") from None

    def has_secret(self, section: str, key: str) -> bool:
        return f"{section}.{key}" in self.secrets

    def secret_values(self) -> list[str]:
        """Every secret value, for log redaction."""
        return [value for value in self.secrets.values() if value]

    def resolve_path(self, value: str) -> Path:
        """A path from the file, relative to the file's own directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def database_url(self) -> str:
        """The state URL with relative SQLite paths anchored at the config's directory and the
        password (if any) taken from ``password_env``."""
        url = make_url(self.settings.state.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            url = url.set(database=str(self.resolve_path(url.database)))
        if self.settings.state.password_env:
            url = url.set(password=self.secret("state", "password_env"))
        return url.render_as_string(hide_password=False)

    @property
    def safe_database_url(self) -> str:
        """The state URL as it may be shown: password masked."""
        return make_url(self.database_url).render_as_string(hide_password=True)


def required_secrets(settings: Settings) -> list[tuple[str, str, str]]:
    """(section, key, what it holds) for every secret the enabled sections need."""
    needed: list[tuple[str, str, str]] = []
    if settings.state.password_env:
        needed.append(("state", "password_env", "the database password"))
    if settings.admin.token_env:
        needed.append(("admin", "token_env", "the bearer token that /healthz and /metrics require"))
    if settings.ga4.enabled:
        needed.append(("ga4", "api_secret_env", "the Measurement Protocol API secret"))
    sf = settings.salesforce
    if sf.enabled:
        needed.append(("salesforce", "client_id_env", "the External Client App's consumer key"))
        if sf.auth in ("client_credentials", "refresh_token"):
            needed.append(("salesforce", "client_secret_env", "the External Client App's consumer secret"))
        if sf.auth == "refresh_token":
            needed.append(("salesforce", "refresh_token_env", "the OAuth refresh token"))
        if sf.auth == "jwt" and not sf.private_key_file:
            needed.append(("salesforce", "private_key_env", "the PEM private key for the JWT bearer flow"))
    if settings.google_ads.enabled or settings.ga4.data_api.property_id:
        google = settings.google_auth
        if google.auth == "service_account" and not google.credentials_file:
            needed.append(("google_auth", "credentials_env", "the service account's JSON key"))
        elif google.auth == "refresh_token":
            needed.extend([("google_auth", "client_id_env", "the OAuth client id"),
                           ("google_auth", "client_secret_env", "the OAuth client secret"),
                           ("google_auth", "refresh_token_env", "the OAuth refresh token")])
    if settings.meta.enabled:
        needed.append(("meta", "access_token_env", "the Conversions API access token of the dataset"))
        if settings.meta.app_secret_env:
            needed.append(("meta", "app_secret_env", "the Meta app secret (for appsecret_proof)"))
    hs = settings.hubspot
    if hs.enabled:
        if hs.auth == "private_app":
            needed.append(("hubspot", "access_token_env", "the private app or service key token"))
        else:
            needed.extend([("hubspot", "client_id_env", "the OAuth app's client id"),
                           ("hubspot", "client_secret_env", "the OAuth app's client secret"),
                           ("hubspot", "refresh_token_env", "the OAuth refresh token")])
        if hs.webhooks and hs.auth != "oauth":
            needed.append(("hubspot", "client_secret_env", "the app's client secret, which signs its webhooks"))
    return needed


def conversion_stages(settings: Settings) -> set[str]:
    """The stage names a destination may map: ``won`` and every GA4 lead event the lifecycle
    tables name (``qualify_lead``, ``close_convert_lead``...), which are what CRM stages mean."""
    sf, hs = settings.lifecycle.salesforce, settings.lifecycle.hubspot
    names = {"won", *sf.lead_status.values(), sf.converted, sf.lost_opportunity,
             *hs.lifecycle_stage.values(), *hs.lead_status.values(), *hs.deal_stage.values()}
    return {name for name in names if name}


def _cross_checks(settings: Settings) -> list[tuple[tuple[str, ...], str]]:
    """Rules that span keys; each problem is (location, message)."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if settings.ga4.enabled and not settings.ga4.measurement_id:
        problems.append((("ga4", "measurement_id"), "required when [ga4] enabled = true (e.g. \"G-ABC123XYZ\")"))
    stages = conversion_stages(settings)
    for section, destination in (("google_ads", settings.google_ads), ("meta", settings.meta)):
        for stage in destination.conversions:
            if stage not in stages:
                problems.append(((section, "conversions", stage), f"unknown stage {stage!r}: expected \"won\" or an "
                                 f"event name of [lifecycle.*] ({', '.join(sorted(stages - {'won'}))})"))
        if destination.enabled and not destination.conversions:
            problems.append(((section, "conversions"), "no stage is mapped to a conversion: add e.g. "
                             f"[{section}.conversions.won]"))
    if settings.google_ads.enabled and not settings.google_ads.customer_id:
        problems.append((("google_ads", "customer_id"), "required when [google_ads] enabled = true: the 10-digit "
                         "Google Ads account that owns the conversion actions (no dashes)"))
    if settings.meta.enabled and not settings.meta.dataset_id:
        problems.append((("meta", "dataset_id"), "required when [meta] enabled = true: the dataset (pixel) id"))
    sf = settings.salesforce
    if sf.enabled:
        if not sf.login_url.startswith("https://"):
            problems.append((("salesforce", "login_url"), "Salesforce only speaks HTTPS: expected https://..."))
        if sf.audience and not documented_audience(sf.audience):
            problems.append((("salesforce", "audience"), "a My Domain URL is not a documented JWT audience: use "
                             "https://login.salesforce.com, https://test.salesforce.com (sandboxes) or your Experience "
                             "Cloud site's URL; the token request still goes to login_url"))
        if sf.auth == "jwt" and not sf.username:
            problems.append((("salesforce", "username"), "required for auth = \"jwt\" (the integration user's username)"))
        if sf.auth == "client_credentials" and re.match(r"^https://(login|test)\.salesforce\.com/?$", sf.login_url):
            problems.append((("salesforce", "login_url"), "the client credentials flow needs your My Domain URL "
                             "(https://yourcompany.my.salesforce.com), not login.salesforce.com"))
    hs = settings.hubspot
    if hs.enabled and hs.webhooks:
        if not hs.webhook_url:
            problems.append((("hubspot", "webhook_url"), "required when webhooks = true: the public HTTPS URL HubSpot "
                             "calls (as entered in the app's webhook settings), needed to verify signatures"))
        elif not hs.webhook_url.startswith("https://") and not re.match(r"^http://(localhost|127\.0\.0\.1)[:/]",
                                                                        hs.webhook_url):
            problems.append((("hubspot", "webhook_url"), "HubSpot only calls https:// URLs"))
    return problems


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None, *,
                require_secrets: bool = True) -> Config:
    """Read, validate and resolve a config file.

    ``path=None`` means ``./closedloop.toml`` when it exists, else the built-in defaults (the
    values documented in ``config.example.toml``). Raises :class:`ConfigError` listing every
    problem. Commands that only read the state store (status, report, explain, forget...) pass
    ``require_secrets=False``: a CRM secret missing from the environment does not concern them.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        candidate = Path.cwd() / DEFAULT_CONFIG_NAME
        if not candidate.exists():
            return _resolve(Settings(), None, Path.cwd(), "", environ, require_secrets)
        path = candidate
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (copy config.example.toml to start one)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    problems = _secret_in_file_problems(raw)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_describe(error) for error in exc.errors(include_url=False, include_input=False)
                        if not _is_secret_key_error(error, raw))
        raise ConfigError(_format(path, text, problems)) from None
    if problems:
        raise ConfigError(_format(path, text, problems))
    return _resolve(settings, path, path.resolve().parent, text, environ, require_secrets)


def _resolve(settings: Settings, path: Path | None, base_dir: Path, text: str,
             environ: Mapping[str, str], require_secrets: bool = True) -> Config:
    problems = _cross_checks(settings)
    secrets: dict[str, str] = {}
    for section, key, meaning in required_secrets(settings):
        env = getattr(getattr(settings, section), key)
        value = environ.get(env, "")
        if value:
            secrets[f"{section}.{key}"] = value
        elif require_secrets or (section, key) == ("state", "password_env"):
            problems.append(((section, key), f"environment variable {env} is not set (it should hold {meaning})"))
    if problems:
        raise ConfigError(_format(path or Path("built-in defaults"), text, problems))
    return Config(settings=settings, path=path, base_dir=base_dir, secrets=secrets)


def _describe(error: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    loc = tuple(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return loc, "unknown key" + _did_you_mean(loc)
    if kind == "missing":
        return loc, "required key is missing"
    if kind == "literal_error":
        return loc, "expected " + error["msg"].removeprefix("Input should be ")
    if kind == "string_pattern_mismatch":
        return loc, _pattern_hint(loc)
    if kind == "value_error":
        return loc, error["msg"].removeprefix("Value error, ")
    return loc, "expected " + error["msg"].removeprefix("Input should be ").rstrip(".")


def _pattern_hint(loc: tuple[str, ...]) -> str:
    key = loc[-1] if loc else ""
    if loc[:1] == ("meta",) and key == "api_version":
        return "expected a Graph API version like \"v26.0\""
    hints = {
        "measurement_id": "expected a GA4 measurement id like \"G-ABC123XYZ\"",
        "api_version": "expected an API version like \"62.0\" (no leading v)",
        "unattributed_client_id": "expected a GA client id like \"1000000000.1000000000\" (two numbers joined by a dot)",
        "allowed_origins": "expected origins like \"https://www.example.com\" (scheme and host, no path)",
        "pubsub_endpoint": "expected host:port, like \"api.pubsub.salesforce.com:7443\"",
        "customer_id": "expected a 10-digit Google Ads customer id without dashes, like \"1234567890\"",
        "login_customer_id": "expected a 10-digit Google Ads customer id without dashes, like \"1234567890\"",
        "conversion_action_id": "expected the numeric id of a Google Ads conversion action, like \"123456789\"",
        "dataset_id": "expected the numeric Meta dataset (pixel) id",
        "property_id": "expected the numeric GA4 property id (Admin → Property details), not the G- measurement id",
        "default_phone_region": "expected a two-letter ISO 3166 region code like \"US\"",
    }
    if key in hints or (len(loc) > 1 and loc[-2] in hints):
        return hints.get(key) or hints[loc[-2]]
    if key.endswith("_env"):
        return "expected the NAME of an environment variable (letters, digits, underscores), not the secret itself"
    if key.endswith(("url", "host", "endpoint")):
        return "expected an http:// or https:// URL"
    if key.endswith("currency"):
        return "expected a three-letter ISO 4217 currency code like \"USD\""
    if len(loc) >= 2 and loc[0] == "lifecycle":
        return "expected a GA4 event name: a letter, then letters, digits or underscores, at most 40 characters"
    if key in ("revenue_event",):
        return "expected a GA4 event name: a letter, then letters, digits or underscores, at most 40 characters"
    return "value has the wrong format"


def _did_you_mean(loc: tuple[str, ...]) -> str:
    model: Any = Settings
    for part in loc[:-1]:
        annotation = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if annotation is None or not isinstance(annotation.annotation, type):
            return ""
        model = annotation.annotation
    if not hasattr(model, "model_fields"):
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _secret_in_file_problems(raw: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    problems = []
    for section, table in raw.items():
        if isinstance(table, dict):
            for key in table:
                if key in SECRET_KEY_HINTS:
                    problems.append(((section, key), f"secrets are not read from the file: set {key}_env = \"ENV_VAR_NAME\" "
                                                     "and put the value in that environment variable"))
    return problems


def _is_secret_key_error(error: Mapping[str, Any], raw: Mapping[str, Any]) -> bool:
    loc = error["loc"]
    return error["type"] == "extra_forbidden" and len(loc) == 2 and loc[1] in SECRET_KEY_HINTS


def _format(path: Path, text: str, problems: list[tuple[tuple[str, ...], str]]) -> str:
    located = [(locate(text, loc) if text else None, loc, message) for loc, message in problems]
    located.sort(key=lambda item: item[0] or 0)
    return "\n".join(f"{path}:{line}: {_render_loc(loc)}: {message}" if line
                     else f"{path}: {_render_loc(loc)}: {message}" for line, loc, message in located)


def _render_loc(loc: tuple[str, ...]) -> str:
    if not loc:
        return "(file)"
    if len(loc) == 1:
        return f"[{loc[0]}]"
    section = ".".join(part for part in loc[:-1] if not part.isdigit())
    return f"[{section}] {loc[-1]}"


def locate(text: str, loc: tuple[str, ...]) -> int | None:
    """Best-effort line number of ``loc`` (section path + key) in TOML ``text``.

    tomllib keeps no positions, so this scans headers and ``key =`` lines. When the exact key
    is not on a line of its own (inside an inline table, say) the enclosing key or section
    is found instead.
    """
    parts = tuple(part for part in loc if not part.isdigit())
    while parts:
        line = _locate_exact(text, parts)
        if line:
            return line
        parts = parts[:-1]
    return None


def _locate_exact(text: str, parts: tuple[str, ...]) -> int | None:
    header_re = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    key_re = re.compile(r"^\s*(\"[^\"]+\"|'[^']+'|[A-Za-z0-9_.-]+)\s*=")
    current: tuple[str, ...] = ()
    target_section, target_key = parts[:-1], parts[-1]
    for number, line in enumerate(text.splitlines(), start=1):
        header = header_re.match(line)
        if header:
            current = tuple(piece.strip().strip("\"'") for piece in header.group(1).split("."))
            if current == parts:
                return number
            continue
        key = key_re.match(line)
        if key and current == target_section and key.group(1).strip("\"'") == target_key:
            return number
    return None
