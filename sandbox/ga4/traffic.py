"""How GA4 names a web session's traffic source and files it under a default channel group.

This is the emulator's own implementation, written apart from closedloop's classifier on
purpose: the emulator stands for Google, and a mistake shared by both would pass every test
that compares them.

Sources:
- Default channel group rules, "Channels for manual traffic", evaluated in Google's order,
  case-insensitively: https://support.google.com/analytics/answer/9756891
- The source lists those rules refer to ("a list of search/social/video/shopping sites") are
  Google's published spreadsheet from the same page, kept here as ``source_categories.csv``.
- AI Assistant (added 2026-05-13, forward only): a referrer GA4 recognises as an AI assistant
  gives medium ``ai-assistant`` and campaign ``(ai-assistant)``, and the channel AI Assistant;
  UTM parameters win. Google names ChatGPT, Gemini and Claude and publishes no host list, so
  this emulator recognises only those three assistants' hosts (third-party reports:
  https://ppc.land/google-analytics-adds-ai-assistant-channel-for-chatgpt-gemini-claude/).
- Source/medium derivation order (utm_* parameters, then click ids, then the referrer, else
  ``(direct) / (none)``) and the campaign placeholders ``(direct)``, ``(organic)``,
  ``(referral)`` follow how GA4 reports web traffic; shared/reference/ga4-measurement-protocol.md
  §2.3-§2.4 for the user/session scopes.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

NOT_SET = "(not set)"
DIRECT, NONE = "(direct)", "(none)"

_PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
_SHOP_CAMPAIGN = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")
_VIDEO_MEDIUM = re.compile(r"^(.*video.*)$")
_DISPLAY_MEDIA = {"display", "banner", "expandable", "interstitial", "cpm"}
_SOCIAL_MEDIA = {"social", "social-network", "social-media", "sm", "social network", "social media"}
_EMAIL = {"email", "e-mail", "e_mail", "e mail"}

# Google Ads auto-tagging ids, and (as this emulator's contract) Microsoft Advertising's.
_CLICK_ID_SOURCES = (("gclid", "google"), ("gbraid", "google"), ("wbraid", "google"), ("msclkid", "bing"))

# Referrer hosts GA4 reports as "<engine> / organic". Each engine name is on Google's
# SOURCE_CATEGORY_SEARCH list as a bare name; search engines listed only by host name (e.g.
# ecosia.org) stay "<host> / referral" and reach Organic Search through that list instead.
_SEARCH_ENGINES = (
    ("google", re.compile(r"^(www\.)?google(\.[a-z]{2,3}){1,2}$")),
    ("bing", re.compile(r"^((www|cn|m)\.)?bing\.com$")),
    ("yahoo", re.compile(r"^((\w+\.)?search\.yahoo\.com|(www\.)?yahoo\.com|(search\.)?yahoo\.co\.jp)$")),
    ("duckduckgo", re.compile(r"^(www\.|html\.|lite\.)?duckduckgo\.com$")),
    ("baidu", re.compile(r"^(www\.|m\.)?baidu\.com$")),
    ("yandex", re.compile(r"^(www\.)?(yandex(\.[a-z]{2,3}){1,2}|ya\.ru)$")),
    ("naver", re.compile(r"^(search\.)?naver\.com$")),
    ("daum", re.compile(r"^(search\.)?daum\.net$")),
    ("seznam", re.compile(r"^(search\.)?seznam\.cz$")),
    ("qwant", re.compile(r"^(www\.)?qwant\.com$")),
    ("sogou", re.compile(r"^(www\.)?sogou\.com$")),
    ("aol", re.compile(r"^search\.aol\.com$")),
    ("ask", re.compile(r"^(www\.)?ask\.com$")),
)

AI_ASSISTANT_SINCE = datetime(2026, 5, 13, tzinfo=timezone.utc)
_AI_ASSISTANT_HOSTS = re.compile(r"^(chatgpt\.com|chat\.openai\.com|gemini\.google\.com|claude\.ai)$")


@lru_cache(maxsize=1)
def source_categories() -> dict[str, str]:
    """Google's source list: lower-cased source → SEARCH, SOCIAL, VIDEO or SHOPPING."""
    path = Path(__file__).with_name("source_categories.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["source"].strip().lower(): row["source_category"].removeprefix("SOURCE_CATEGORY_")
                for row in csv.DictReader(handle)}


def _listed(source: str, category: str) -> bool:
    return source_categories().get(source) == category


def default_channel_group(source: str, medium: str, campaign: str = "") -> str:
    """The session/first-user default channel group for a source, medium and campaign name."""
    s, m = (value.strip().lower() or NOT_SET for value in (source, medium))  # GA4 shows blanks as (not set)
    c = campaign.strip().lower()
    paid = bool(_PAID_MEDIUM.match(m))
    shopping = _listed(s, "SHOPPING") or bool(_SHOP_CAMPAIGN.match(c))
    if s == DIRECT and m in (NOT_SET, NONE):
        return "Direct"
    if "cross-network" in c:
        return "Cross-network"
    if paid:
        if shopping:
            return "Paid Shopping"
        for category, channel in (("SEARCH", "Paid Search"), ("SOCIAL", "Paid Social"), ("VIDEO", "Paid Video")):
            if _listed(s, category):
                return channel
    if m in _DISPLAY_MEDIA:
        return "Display"
    if paid:
        return "Paid Other"
    if shopping:
        return "Organic Shopping"
    if _listed(s, "SOCIAL") or m in _SOCIAL_MEDIA:
        return "Organic Social"
    if _listed(s, "VIDEO") or _VIDEO_MEDIUM.match(m):
        return "Organic Video"
    if _listed(s, "SEARCH") or m == "organic":
        return "Organic Search"
    if m == "ai-assistant":
        return "AI Assistant"
    if m in ("referral", "app", "link"):
        return "Referral"
    if s in _EMAIL or m in _EMAIL:
        return "Email"
    if m == "affiliate":
        return "Affiliates"
    if m == "audio":
        return "Audio"
    if s == "sms" or m == "sms":
        return "SMS"
    if m.endswith("push") or "mobile" in m or "notification" in m or s == "firebase":
        return "Mobile Push Notifications"
    return "Unassigned"


@dataclass(frozen=True)
class TrafficSource:
    """Source, medium and campaign name as GA4 reports them (case kept as sent)."""

    source: str
    medium: str
    campaign: str = NOT_SET

    @cached_property
    def channel(self) -> str:
        return default_channel_group(self.source, self.medium, self.campaign)

    @property
    def source_medium(self) -> str:
        return f"{self.source} / {self.medium}"

    @property
    def is_direct(self) -> bool:
        return self.source == DIRECT


DIRECT_TRAFFIC = TrafficSource(DIRECT, NONE, DIRECT)


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.lower().removeprefix("www.") if host else ""


def _query(url: str) -> dict[str, str]:
    try:
        parsed = parse_qs(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return {}
    return {key: values[0] for key, values in parsed.items()}


def derive_traffic_source(page_url: str, referrer: str = "", own_host: str = "",
                          at: datetime | None = None) -> TrafficSource:
    """What GA4 records as the traffic source of a hit landing on ``page_url`` from ``referrer``.

    A referrer on the page's own site or a subdomain of it (``own_host`` when the page URL has
    no host) is not a new traffic source. A Meta ``fbclid`` is only an indicator: GA4 has no
    integration that turns it into a source, so it changes nothing here.
    """
    query = _query(page_url)
    campaign = query.get("utm_campaign") or NOT_SET
    if query.get("utm_source") or query.get("utm_medium"):
        return TrafficSource(query.get("utm_source") or NOT_SET, query.get("utm_medium") or NOT_SET, campaign)
    for key, source in _CLICK_ID_SOURCES:
        if query.get(key):
            return TrafficSource(source, "cpc", campaign)
    if query.get("utm_campaign") or query.get("utm_id"):
        # A manually tagged link without source and medium: those are "(not set)", not taken
        # from the referrer (inference: GA4 reads a tagged landing page as a campaign click).
        return TrafficSource(NOT_SET, NOT_SET, campaign)
    host = _host(referrer)
    site = _host(page_url) or own_host.lower().removeprefix("www.")
    if not host or (site and (host == site or host.endswith("." + site))):
        return DIRECT_TRAFFIC
    for engine, pattern in _SEARCH_ENGINES:
        if pattern.match(host):
            return TrafficSource(engine, "organic", campaign if campaign != NOT_SET else "(organic)")
    if _AI_ASSISTANT_HOSTS.match(host) and (at is None or at >= AI_ASSISTANT_SINCE):
        return TrafficSource(host, "ai-assistant", "(ai-assistant)")
    return TrafficSource(host, "referral", campaign if campaign != NOT_SET else "(referral)")
