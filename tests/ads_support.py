"""Helpers for the ad platform tests: a world with the Google Ads (and Meta) emulators and visitors
who arrive from ads. Import as ``from ads_support import ...``."""
from __future__ import annotations

from datetime import datetime, timedelta

from sandbox.clock import Clock
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.writer import BeaconWriter
from support import World

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"


class AdsWorld(World):
    """The sandbox suite (its Data Manager and Meta emulators included) on one clock that tests move,
    closedloop configured for both platforms exactly as ``closedloop sandbox`` prints it."""

    def __init__(self, tmp_path, extra_config: str = "", **options) -> None:
        clock = Clock()
        # Retries wait on the sandbox clock, so a test of an outage moves time instead of sleeping.
        super().__init__(tmp_path, extra_config, clock=clock, sleep=clock.advance, **options)

    @property
    def google(self):
        return self.suite.google_ads

    @property
    def meta(self):
        return self.suite.meta


def arrive_from_ad(world, visitor: str, *, at: datetime, click_ids: dict[str, str], email: str,
                   ad_user_data: str | None = "granted", ad_personalization: str | None = "granted",
                   url: str = "https://www.example.com/pricing", ga_client_id: str | None = None) -> None:
    """A visitor lands from an ad (its click ids in the URL) and fills in the form two minutes later."""
    query = "&".join(f"{k}={v}" for k, v in click_ids.items())
    common = dict(utm={}, click_ids=dict(click_ids), ga_client_id=ga_client_id, ga_session_id=None, language="en",
                  timezone="UTC", user_agent=UA, consent=None, session_key=None, ad_user_data=ad_user_data,
                  ad_personalization=ad_personalization)
    hits = [Hit(visitor, "pageview", at, f"{url}?{query}", "", conversion_type=None, **common),
            Hit(visitor, "identify", at + timedelta(minutes=2), f"{url}?{query}", "", conversion_type="form",
                email_sha256=hash_email(email), **common)]
    BeaconWriter(world.store).write(hits)
