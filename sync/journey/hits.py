"""Glue between stored touchpoints and the journey computation: rows → Hits, config → settings."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from state.models import Touchpoint
from sync.capture.beacon import CLICK_ID_KEYS, UTM_KEYS
from sync.config import Config
from sync.journey.compute import Hit, JourneySettings


def to_hit(row: Touchpoint) -> Hit:
    """A stored touchpoint as the journey code sees it."""
    return Hit(
        visitor_id=row.visitor_id, occurred_at=row.occurred_at, kind=row.kind, url=row.url or "",
        referrer=row.referrer or "",
        utm={key: getattr(row, key) for key in UTM_KEYS if getattr(row, key)},
        click_ids={key: getattr(row, key) for key in CLICK_ID_KEYS if getattr(row, key)},
        ga_client_id=row.ga_client_id or "", ga_session_id=row.ga_session_id or "", language=row.language or "",
        timezone=row.timezone or "", user_agent=row.user_agent or "", conversion_type=row.conversion_type or "",
        consent=row.consent or "", ad_user_data=row.ad_user_data or "",
        ad_personalization=row.ad_personalization or "")


def journey_settings(config: Config) -> JourneySettings:
    """The site's own hosts (configured, else those of the allowed origins) and journey options."""
    collector, journey = config.settings.collector, config.settings.journey
    hosts = tuple(collector.site_hosts) or tuple(
        (urlsplit(origin).hostname or "") for origin in collector.allowed_origins)
    return JourneySettings(site_hosts=tuple(host for host in hosts if host),
                           session_timeout=timedelta(minutes=collector.session_timeout_minutes),
                           path_max_length=journey.path_max_length,
                           landing_page_groups=tuple((g.pattern, g.group) for g in journey.landing_page_groups))
