"""Where a session came from: source, medium, campaign and the rest, from its landing hit.

The evidence is weighed in this order; the first that applies decides, and the result says
which one it was (``TrafficSource.reason``, printed by ``closedloop explain``):

1. **UTM parameters.** ``utm_source`` or ``utm_medium`` present: they are the source and medium
   (a missing one reads ``(not set)``, as in GA4). ``utm_campaign``, ``utm_id``, ``utm_term``,
   ``utm_content`` and ``utm_source_platform`` fill the other fields whatever decided the source.
   GA4 prefers a Google Ads auto-tag over UTMs when its Google Ads link resolves the click;
   closedloop cannot resolve it and trusts the UTMs, which is what GA4 falls back to
   (https://support.google.com/analytics/answer/11242870).
2. **Click ids that only ad clicks carry** (:data:`AD_CLICK_IDS`):

   - ``gclid``, ``gbraid``, ``wbraid`` → ``google / cpc``: Google Ads auto-tagging, which GA4
     reports as ``google / cpc`` (answer 11242870 above); the channel rules make it Paid Search.
   - ``dclid`` → ``dfa / cpm``: Campaign Manager 360 / Display & Video 360 clicks, which Google
     Analytics reports as ``dfa / cpm`` when untagged (https://www.wojtek.ch/advertising/
     google-analytics/google-analytics-dfa-cpm-campaign-traffic-problem/); the rules make it
     Display.
   - ``msclkid`` → ``bing / cpc`` (Microsoft Advertising), ``ttclid`` → ``tiktok / cpc`` (TikTok
     Ads), ``li_fat_id`` → ``linkedin / cpc`` (LinkedIn Ads): each platform adds its id to ad
     clicks only; GA4 ignores them and would classify such a click by its referrer (Organic
     Search for Bing), which undercounts paid traffic. tiktok and linkedin are social sites on
     Google's list, so these become Paid Social.

   ``fbclid`` is not among them: Facebook and Instagram add it to every outbound link, posts as
   well as ads, so it proves a click from Meta's apps but not a paid one (see step 4).
3. **An external referrer.** A search engine (:func:`search_engines`, ``data/search_engines.toml``)
   gives its short name and ``organic`` (``www.google.co.uk`` → ``google / organic``); an AI
   assistant (``data/ai_assistants.toml``, for sessions from the day GA4 added the channel)
   gives ``host / ai-assistant``, as GA4 rewrites it; any other host gives
   ``host / referral`` with ``www.`` dropped. Social sites stay ``referral`` here and become
   Organic Social through Google's source list, exactly as in GA4 (``l.facebook.com``,
   ``t.co``, ``lnkd.in`` are on it). The site's own hosts — the configured ``site_hosts`` and
   their subdomains, and the landing page's own host — are internal: they never start a touch.
4. **fbclid without an external referrer** (in-app browsers often drop it): ``facebook /
   referral``, so Organic Social. GA4 would say ``(direct) / (none)`` here; the click id is
   better evidence than its absence.
5. Otherwise ``(direct) / (none)``, and the session is not a touch. Campaign parameters without
   a source or medium (only ``utm_campaign`` or ``utm_id``) still make a touch: ``(not set) /
   (not set)``, which GA4 calls Unassigned.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Mapping
from urllib.parse import parse_qs, urlsplit

from sync.journey.channels import AI_ASSISTANT_MEDIUM, ChannelMatch, ai_assistants, classify

SEARCH_ENGINE_FILE = "search_engines.toml"

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id", "utm_source_platform")
CAMPAIGN_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_id")  # any of these makes a touch
# Click ids in order of preference when a landing URL carries several.
CLICK_IDS = ("gclid", "gbraid", "wbraid", "dclid", "msclkid", "ttclid", "li_fat_id", "fbclid")
GOOGLE_ADS_CLICK_IDS = ("gclid", "gbraid", "wbraid")
AD_CLICK_IDS: dict[str, tuple[str, str, str]] = {  # click id → (source, medium, the ad platform that adds it)
    "gclid": ("google", "cpc", "Google Ads"),
    "gbraid": ("google", "cpc", "Google Ads"),
    "wbraid": ("google", "cpc", "Google Ads"),
    "dclid": ("dfa", "cpm", "Campaign Manager 360 / Display & Video 360"),
    "msclkid": ("bing", "cpc", "Microsoft Advertising"),
    "ttclid": ("tiktok", "cpc", "TikTok Ads"),
    "li_fat_id": ("linkedin", "cpc", "LinkedIn Ads"),
}
# What the tracker compares to decide that a page view is a new campaign arrival (tracker.js,
# ``send``): a different value of any of these starts a new session.
CAMPAIGN_KEY_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "gclid", "gbraid", "wbraid", "fbclid",
                       "msclkid", "ttclid", "li_fat_id")
DIRECT, NONE, NOT_SET = "(direct)", "(none)", "(not set)"



@lru_cache(maxsize=1)
def search_engines() -> tuple[tuple[re.Pattern[str], str], ...]:
    """``data/search_engines.toml``: (whole-host pattern, engine name), in the file's order."""
    data = tomllib.loads((resources.files("sync.journey") / "data" / SEARCH_ENGINE_FILE).read_text(encoding="utf-8"))
    return tuple((re.compile(entry["pattern"]), entry["name"]) for entry in data["engine"])


@dataclass(frozen=True)
class TrafficSource:
    """A session's acquisition data, the evidence it came from, and its GA4 channel."""

    source: str
    medium: str
    reason: str
    match: ChannelMatch
    campaign: str = ""
    campaign_id: str = ""
    term: str = ""
    content: str = ""
    source_platform: str = ""
    click_id: str = ""      # "name=value" of the landing URL's click id, e.g. "gclid=Cj0K..."
    referrer: str = ""      # the referrer URL when it was external, else ""

    @property
    def channel(self) -> str:
        return self.match.channel

    @property
    def is_direct(self) -> bool:
        """Direct sessions are not touches: no campaign, click id or external referrer."""
        return self.match.rule == "direct"


def url_parameters(url: str) -> dict[str, str]:
    """Non-empty query parameters of ``url``, first value of each; never raises."""
    return dict(_query(url or ""))


@lru_cache(maxsize=4096)  # one journey asks about the same landing URLs several times
def _query(url: str) -> tuple[tuple[str, str], ...]:
    try:
        query = urlsplit(url).query
    except ValueError:
        return ()
    return tuple((key, values[0]) for key, values in parse_qs(query).items() if values and values[0])


def host_of(url: str) -> str:
    """Lower-case host of ``url`` without ``www.`` and a trailing dot; "" when there is none."""
    try:
        host = urlsplit((url or "").strip()).hostname or ""
    except ValueError:
        return ""
    return _bare(host)


def _bare(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def is_internal(host: str, site_hosts: tuple[str, ...]) -> bool:
    """True for the site's own hosts and their subdomains (``www.`` ignored on both sides)."""
    host = _bare(host)
    for site in site_hosts:
        site = host_of(site if "://" in site else "//" + site)
        if site and (host == site or host.endswith("." + site)):
            return True
    return False


def landing_evidence(url: str, utm: Mapping[str, str] | None = None,
                     click_ids: Mapping[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """UTM parameters and click ids of a hit: the stored ones, completed from its URL's query."""
    params = url_parameters(url)
    found_utm = {key: params[key] for key in UTM_FIELDS if key in params}
    found_clicks = {key: params[key] for key in CLICK_IDS if key in params}
    found_utm.update({key: str(value) for key, value in (utm or {}).items() if key in UTM_FIELDS and value})
    found_clicks.update({key: str(value) for key, value in (click_ids or {}).items() if key in CLICK_IDS and value})
    return found_utm, found_clicks


def campaign_key(url: str, utm: Mapping[str, str] | None = None, click_ids: Mapping[str, str] | None = None) -> str:
    """The tracker's campaign key of a page view ("" when it carries no campaign data)."""
    found_utm, found_clicks = landing_evidence(url, utm, click_ids)
    values = {**found_utm, **found_clicks}
    parts = [values.get(name, "") for name in CAMPAIGN_KEY_FIELDS]
    return "|".join(parts) if any(parts) else ""


def derive(url: str, referrer: str = "", *, utm: Mapping[str, str] | None = None,
           click_ids: Mapping[str, str] | None = None, site_hosts: tuple[str, ...] = (),
           at: datetime | None = None) -> TrafficSource:
    """The acquisition data of a session from its landing hit (rules in the module docstring);
    ``at``, the session's start, decides whether rules GA4 added later apply."""
    utm_values, clicks = landing_evidence(url, utm, click_ids)
    click_name = next((name for name in CLICK_IDS if name in clicks), "")
    referrer_host = host_of(referrer)
    internal = bool(referrer_host) and (referrer_host == host_of(url) or is_internal(referrer_host, site_hosts))
    external = bool(referrer_host) and not internal
    details = dict(campaign=utm_values.get("utm_campaign", ""), campaign_id=utm_values.get("utm_id", ""),
                   term=utm_values.get("utm_term", ""), content=utm_values.get("utm_content", ""),
                   source_platform=utm_values.get("utm_source_platform", ""),
                   click_id=f"{click_name}={clicks[click_name]}" if click_name else "",
                   referrer=referrer if external else "")
    google_click = any(name in clicks for name in GOOGLE_ADS_CLICK_IDS)

    def result(source: str, medium: str, reason: str) -> TrafficSource:
        match = classify(source, medium, details["campaign"], source_platform=details["source_platform"],
                         has_google_click_id=google_click, at=at)
        return TrafficSource(source=source, medium=medium, reason=f"{reason} → {source} / {medium}", match=match,
                             **details)

    if "utm_source" in utm_values or "utm_medium" in utm_values:
        source, medium = utm_values.get("utm_source", NOT_SET), utm_values.get("utm_medium", NOT_SET)
        return result(source, medium, f"utm_source={_quote(utm_values, 'utm_source')}, "
                                      f"utm_medium={_quote(utm_values, 'utm_medium')}")
    ad_click = next((name for name in AD_CLICK_IDS if name in clicks), None)
    if ad_click:
        source, medium, who = AD_CLICK_IDS[ad_click]
        return result(source, medium, f"{ad_click} present ({who} click)")
    if external:
        engine = next((name for pattern, name in search_engines() if pattern.fullmatch(referrer_host)), None)
        if engine:
            return result(engine, "organic", f"referrer {referrer_host} is the {engine} search engine")
        assistant = ai_assistants().assistant(referrer_host)
        if assistant and ai_assistants().in_effect(at):
            return result(referrer_host, AI_ASSISTANT_MEDIUM, f"referrer {referrer_host} is the AI assistant "
                                                              f"{assistant}")
        return result(referrer_host, "referral", f"referrer {referrer_host} is an external site")
    if "fbclid" in clicks:
        return result("facebook", "referral", "fbclid without an external referrer: a link opened from Facebook "
                                              "or Instagram")
    if any(name in utm_values for name in CAMPAIGN_FIELDS):
        named = ", ".join(name for name in CAMPAIGN_FIELDS if name in utm_values)
        return result(NOT_SET, NOT_SET, f"{named} without utm_source or utm_medium")
    if referrer_host:
        return result(DIRECT, NONE, f"referrer {referrer_host} is the site itself, not a new touch")
    return result(DIRECT, NONE, "no campaign parameters, ad click id or referrer")


def _quote(values: dict[str, str], name: str) -> str:
    return repr(values[name]) if name in values else "missing"
