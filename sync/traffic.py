"""Where a session came from: source, medium, campaign and friends, from its landing hit.

Order of evidence (the issue's rule, close to GA4's own):

1. **UTM parameters** (``utm_source`` / ``utm_medium``; a missing one reads ``(not set)``).
2. **Click ids** added by ad platforms: ``gclid``, ``gbraid``, ``wbraid``, ``dclid`` →
   google / cpc; ``msclkid`` → bing / cpc; ``ttclid`` → tiktok / cpc and ``li_fat_id`` →
   linkedin / cpc (both only appear on paid clicks). ``fbclid`` is *not* paid evidence:
   Facebook adds it to every outbound link, organic posts included, so such visits are
   classified by their referrer (facebook / referral when the referrer was stripped).
3. **The referrer**: a known search engine → its short name / organic (``www.google.com`` →
   google); any other external host → host / referral (social hosts then land in Organic
   Social through Google's source list, as in GA4); the site's own hosts (and their
   subdomains) are internal and never start a touch.
4. Otherwise ``(direct)`` / ``(none)``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from sync.channels import ChannelMatch, classify

GOOGLE_CLICK_IDS = ("gclid", "gbraid", "wbraid", "dclid")
PAID_CLICK_IDS = {"msclkid": "bing", "ttclid": "tiktok", "li_fat_id": "linkedin"}
CLICK_ID_ORDER = ("gclid", "gbraid", "wbraid", "dclid", "msclkid", "ttclid", "li_fat_id", "fbclid")
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id", "utm_source_platform")
# Host pattern → source name GA4 reports for organic search referrals.
SEARCH_ENGINES = [
    (re.compile(r"(^|\.)google(\.[a-z]{2,3})+$"), "google"),
    (re.compile(r"(^|\.)bing\.com$"), "bing"),
    (re.compile(r"(^|\.)yahoo(\.[a-z]{2,3})+$"), "yahoo"),
    (re.compile(r"(^|\.)duckduckgo\.com$"), "duckduckgo"),
    (re.compile(r"(^|\.)baidu\.com$"), "baidu"),
    (re.compile(r"(^|\.)yandex(\.[a-z]{2,3})+$"), "yandex"),
    (re.compile(r"(^|\.)ecosia\.org$"), "ecosia"),
    (re.compile(r"(^|\.)search\.brave\.com$"), "brave"),
    (re.compile(r"(^|\.)qwant\.com$"), "qwant"),
    (re.compile(r"(^|\.)startpage\.com$"), "startpage"),
    (re.compile(r"(^|\.)naver\.com$"), "naver"),
    (re.compile(r"(^|\.)seznam\.cz$"), "seznam"),
    (re.compile(r"(^|\.)ask\.com$"), "ask"),
    (re.compile(r"(^|\.)aol\.com$"), "aol"),
]


@dataclass(frozen=True)
class TrafficSource:
    """A session's acquisition data, how it was derived, and its channel."""

    source: str
    medium: str
    campaign: str = ""
    campaign_id: str = ""
    term: str = ""
    content: str = ""
    source_platform: str = ""
    click_id: str = ""
    referrer: str = ""
    reason: str = ""
    channel: ChannelMatch | None = None

    @property
    def is_direct(self) -> bool:
        return self.source == "(direct)" and self.medium in ("(none)", "(not set)")


def host_of(url: str) -> str:
    """Lower-case host of ``url`` without ``www.``; empty when there is none."""
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host


def is_internal(host: str, site_hosts: tuple[str, ...]) -> bool:
    """True for the site's own hosts and their subdomains."""
    host = host.lower().removeprefix("www.")
    for site in site_hosts:
        site = site.lower().removeprefix("www.")
        if site and (host == site or host.endswith("." + site)):
            return True
    return False


def url_parameters(url: str) -> dict[str, str]:
    """Query parameters of ``url`` (first value each); never raises."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return {}
    return {key: values[0] for key, values in parse_qs(query, keep_blank_values=False).items() if values}


def derive(utm: dict[str, str], click_ids: dict[str, str], referrer: str, site_hosts: tuple[str, ...],
           url: str = "") -> TrafficSource:
    """The acquisition data of a session from its landing hit (see module docstring)."""
    params = url_parameters(url) if url else {}
    utm = {**{k: v for k, v in params.items() if k in UTM_FIELDS}, **{k: v for k, v in utm.items() if v}}
    click_ids = {**{k: v for k, v in params.items() if k in CLICK_ID_ORDER}, **{k: v for k, v in click_ids.items()
                                                                               if v}}
    click_id = next((f"{key}={click_ids[key]}" for key in CLICK_ID_ORDER if click_ids.get(key)), "")
    referrer_host = host_of(referrer) if referrer else ""
    external_referrer = bool(referrer_host) and not is_internal(referrer_host, site_hosts)
    common = dict(campaign=utm.get("utm_campaign", ""), campaign_id=utm.get("utm_id", ""),
                  term=utm.get("utm_term", ""), content=utm.get("utm_content", ""),
                  source_platform=utm.get("utm_source_platform", ""), click_id=click_id,
                  referrer=referrer if external_referrer else "")

    if utm.get("utm_source") or utm.get("utm_medium"):
        source, medium = utm.get("utm_source") or "(not set)", utm.get("utm_medium") or "(not set)"
        return _finish(source, medium, common, f"utm_source={source!r}, utm_medium={medium!r}")
    google = next((key for key in GOOGLE_CLICK_IDS if click_ids.get(key)), None)
    if google:
        return _finish("google", "cpc", common, f"{google} present (Google Ads click)")
    paid = next((key for key in PAID_CLICK_IDS if click_ids.get(key)), None)
    if paid:
        return _finish(PAID_CLICK_IDS[paid], "cpc", common, f"{paid} present ({PAID_CLICK_IDS[paid]} ads click)")
    if external_referrer:
        engine = next((name for pattern, name in SEARCH_ENGINES if pattern.search(referrer_host)), None)
        if engine:
            return _finish(engine, "organic", common, f"referrer {referrer_host} is the {engine} search engine")
        return _finish(referrer_host, "referral", common, f"referrer {referrer_host} is an external site")
    if click_ids.get("fbclid"):
        return _finish("facebook", "referral", common, "fbclid present without a referrer (Facebook link)")
    if referrer_host:
        return _finish("(direct)", "(none)", common, f"referrer {referrer_host} is the site itself")
    return _finish("(direct)", "(none)", common, "no campaign parameters, click id or referrer")


def _finish(source: str, medium: str, common: dict, reason: str) -> TrafficSource:
    return TrafficSource(source=source, medium=medium, reason=reason,
                         channel=classify(source, medium, common["campaign"]), **common)
