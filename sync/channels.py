"""GA4's default channel group, rule by rule, so closedloop and GA4 name channels the same way.

Source: "[GA4] Default channel group", https://support.google.com/analytics/answer/9756891
(section "Channels for manual traffic"), cross-checked against third-party transcriptions of
the same table (see ``sync/data/SOURCES.md``). Rules are evaluated in Google's order and the
first match wins; matching is case-insensitive, as GA4's is. "Source matches a list of ...
sites" uses Google's published source-category list, shipped in
``sync/data/ga4_source_categories.csv``.

Every classification says which rule matched and why, for ``closedloop explain``.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "ga4_source_categories.csv"

PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
SHOPPING_CAMPAIGN = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")
DISPLAY_MEDIUMS = {"display", "banner", "expandable", "interstitial", "cpm"}
SOCIAL_MEDIUMS = {"social", "social-network", "social-media", "sm", "social network", "social media"}
VIDEO_MEDIUM = re.compile(r"^(.*video.*)$")
EMAIL_VALUES = {"email", "e-mail", "e_mail", "e mail"}
REFERRAL_MEDIUMS = {"referral", "app", "link"}
DIRECT_MEDIUMS = {"(not set)", "(none)"}

CHANNELS = ("Direct", "Cross-network", "Paid Shopping", "Paid Search", "Paid Social", "Paid Video", "Display",
            "Paid Other", "Organic Shopping", "Organic Social", "Organic Video", "Organic Search", "Referral",
            "Email", "Affiliates", "Audio", "SMS", "Mobile Push Notifications", "Unassigned")


@dataclass(frozen=True)
class ChannelMatch:
    """The channel, the id of the rule that assigned it, and a sentence saying why."""

    channel: str
    rule: str
    reason: str


@lru_cache(maxsize=1)
def source_categories() -> dict[str, str]:
    """source (lower case) → SEARCH | SOCIAL | SHOPPING | VIDEO."""
    with DATA.open(encoding="utf-8", newline="") as handle:
        return {row["source"].strip().lower(): row["source_category"].removeprefix("SOURCE_CATEGORY_")
                for row in csv.DictReader(handle)}


def source_category(source: str) -> str | None:
    return source_categories().get(source.strip().lower())


def classify(source: str, medium: str, campaign: str = "") -> ChannelMatch:
    """The GA4 default channel for a session's source, medium and campaign name."""
    source_l, medium_l, campaign_l = (value.strip().lower() for value in (source or "", medium or "",
                                                                          campaign or ""))
    category = source_category(source_l)
    paid = bool(PAID_MEDIUM.match(medium_l))
    shopping_campaign = bool(SHOPPING_CAMPAIGN.match(campaign_l))
    s, m, c = repr(source_l), repr(medium_l), repr(campaign_l)
    on_list = {kind: f"source {s} is on Google's list of {kind.lower()} sites" for kind in
               ("SEARCH", "SOCIAL", "SHOPPING", "VIDEO")}
    paid_text = f"medium {m} matches ^(.*cp.*|ppc|retargeting|paid.*)$"

    if source_l == "(direct)" and medium_l in DIRECT_MEDIUMS:
        return ChannelMatch("Direct", "direct", f"source is (direct) and medium is {medium_l}")
    if "cross-network" in campaign_l:
        return ChannelMatch("Cross-network", "cross_network", f"campaign {c} contains cross-network")
    if (category == "SHOPPING" or shopping_campaign) and paid:
        why = on_list["SHOPPING"] if category == "SHOPPING" else f"campaign {c} matches the shopping pattern"
        return ChannelMatch("Paid Shopping", "paid_shopping", f"{why} and {paid_text}")
    for kind, channel, rule in (("SEARCH", "Paid Search", "paid_search"), ("SOCIAL", "Paid Social", "paid_social"),
                                ("VIDEO", "Paid Video", "paid_video")):
        if category == kind and paid:
            return ChannelMatch(channel, rule, f"{on_list[kind]} and {paid_text}")
    if medium_l in DISPLAY_MEDIUMS:
        return ChannelMatch("Display", "display", f"medium {m} is one of display, banner, expandable, "
                                                  "interstitial, cpm")
    if paid:
        return ChannelMatch("Paid Other", "paid_other", f"{paid_text} but the source is on no list")
    if category == "SHOPPING" or shopping_campaign:
        why = on_list["SHOPPING"] if category == "SHOPPING" else f"campaign {c} matches the shopping pattern"
        return ChannelMatch("Organic Shopping", "organic_shopping", why)
    if category == "SOCIAL" or medium_l in SOCIAL_MEDIUMS:
        why = on_list["SOCIAL"] if category == "SOCIAL" else f"medium {m} is a social medium"
        return ChannelMatch("Organic Social", "organic_social", why)
    if category == "VIDEO" or VIDEO_MEDIUM.match(medium_l):
        why = on_list["VIDEO"] if category == "VIDEO" else f"medium {m} contains video"
        return ChannelMatch("Organic Video", "organic_video", why)
    if category == "SEARCH" or medium_l == "organic":
        why = on_list["SEARCH"] if category == "SEARCH" else "medium is organic"
        return ChannelMatch("Organic Search", "organic_search", why)
    if medium_l in REFERRAL_MEDIUMS:
        return ChannelMatch("Referral", "referral", f"medium {m} is one of referral, app, link")
    if source_l in EMAIL_VALUES or medium_l in EMAIL_VALUES:
        return ChannelMatch("Email", "email", f"source or medium is one of email, e-mail, e_mail, e mail")
    if medium_l == "affiliate":
        return ChannelMatch("Affiliates", "affiliates", "medium is affiliate")
    if medium_l == "audio":
        return ChannelMatch("Audio", "audio", "medium is audio")
    if source_l == "sms" or medium_l == "sms":
        return ChannelMatch("SMS", "sms", "source or medium is sms")
    if medium_l.endswith("push") or "mobile" in medium_l or "notification" in medium_l or source_l == "firebase":
        return ChannelMatch("Mobile Push Notifications", "mobile_push",
                            f"medium {m} ends with push or contains mobile/notification, or source is firebase")
    return ChannelMatch("Unassigned", "unassigned", f"no rule matches source {s}, medium {m}, campaign {c}")
