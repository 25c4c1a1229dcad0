"""How GA4 decides a web session's source, medium and default channel (the emulator's own copy).

Deliberately written apart from closedloop's ``sync/channels.py``: the emulator stands for
Google, and a shared mistake would pass every test. Rules: "[GA4] Default channel group",
https://support.google.com/analytics/answer/9756891 ("Channels for manual traffic"); the
source lists are Google's spreadsheet from the same page (``source_categories.csv``).
"""
from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_PAID = r"^(.*cp.*|ppc|retargeting|paid.*)$"
_SHOP_CAMPAIGN = r"^(.*(([^a-df-z]|^)shop|shopping).*)$"
_SEARCH_HOSTS = {"google": r"(^|\.)google\.[a-z.]+$", "bing": r"(^|\.)bing\.com$", "yahoo": r"(^|\.)yahoo\.[a-z.]+$",
                 "duckduckgo": r"(^|\.)duckduckgo\.com$", "baidu": r"(^|\.)baidu\.com$",
                 "yandex": r"(^|\.)yandex\.[a-z.]+$", "ecosia": r"(^|\.)ecosia\.org$"}


@lru_cache(maxsize=1)
def _categories() -> dict[str, str]:
    with (Path(__file__).with_name("source_categories.csv")).open(newline="", encoding="utf-8") as handle:
        return {row["source"].lower(): row["source_category"].split("_")[-1] for row in csv.DictReader(handle)}


def _on(source: str, kind: str) -> bool:
    return _categories().get(source) == kind


# (channel, predicate over lower-cased source, medium, campaign), in Google's order.
RULES = [
    ("Direct", lambda s, m, c: s == "(direct)" and m in ("(none)", "(not set)")),
    ("Cross-network", lambda s, m, c: "cross-network" in c),
    ("Paid Shopping", lambda s, m, c: (_on(s, "SHOPPING") or re.match(_SHOP_CAMPAIGN, c)) and re.match(_PAID, m)),
    ("Paid Search", lambda s, m, c: _on(s, "SEARCH") and re.match(_PAID, m)),
    ("Paid Social", lambda s, m, c: _on(s, "SOCIAL") and re.match(_PAID, m)),
    ("Paid Video", lambda s, m, c: _on(s, "VIDEO") and re.match(_PAID, m)),
    ("Display", lambda s, m, c: m in ("display", "banner", "expandable", "interstitial", "cpm")),
    ("Paid Other", lambda s, m, c: re.match(_PAID, m)),
    ("Organic Shopping", lambda s, m, c: _on(s, "SHOPPING") or re.match(_SHOP_CAMPAIGN, c)),
    ("Organic Social", lambda s, m, c: _on(s, "SOCIAL") or m in ("social", "social-network", "social-media", "sm",
                                                                   "social network", "social media")),
    ("Organic Video", lambda s, m, c: _on(s, "VIDEO") or re.match(r"^(.*video.*)$", m)),
    ("Organic Search", lambda s, m, c: _on(s, "SEARCH") or m == "organic"),
    ("Referral", lambda s, m, c: m in ("referral", "app", "link")),
    ("Email", lambda s, m, c: s in ("email", "e-mail", "e_mail", "e mail") or m in ("email", "e-mail", "e_mail",
                                                                                     "e mail")),
    ("Affiliates", lambda s, m, c: m == "affiliate"),
    ("Audio", lambda s, m, c: m == "audio"),
    ("SMS", lambda s, m, c: s == "sms" or m == "sms"),
    ("Mobile Push Notifications", lambda s, m, c: m.endswith("push") or "mobile" in m or "notification" in m
     or s == "firebase"),
]


def default_channel_group(source: str, medium: str, campaign: str = "") -> str:
    lowered = (source.lower(), medium.lower(), campaign.lower())
    return next((channel for channel, rule in RULES if rule(*lowered)), "Unassigned")


def session_source(page_url: str, referrer: str, own_host: str) -> tuple[str, str, str]:
    """(source, medium, campaign) GA4 records for a session starting on ``page_url``."""
    try:
        query = {k: v[0] for k, v in parse_qs(urlsplit(page_url).query).items()}
    except ValueError:
        query = {}
    campaign = query.get("utm_campaign", "(not set)")
    if "utm_source" in query or "utm_medium" in query:
        return query.get("utm_source", "(not set)"), query.get("utm_medium", "(not set)"), campaign
    if any(key in query for key in ("gclid", "gbraid", "wbraid", "dclid")):
        return "google", "cpc", campaign
    # GA4 knows only Google's own click ids; other platforms' ids (msclkid, fbclid, ...)
    # mean nothing to it without UTM parameters.
    host = (urlsplit(referrer).hostname or "").lower() if referrer else ""
    host = host[4:] if host.startswith("www.") else host
    own = own_host.lower().removeprefix("www.")
    if host and not (host == own or host.endswith("." + own)):
        for name, pattern in _SEARCH_HOSTS.items():
            if re.search(pattern, host):
                return name, "organic", campaign
        return host, "referral", campaign
    return "(direct)", "(none)", campaign
