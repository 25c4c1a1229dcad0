"""The journey-variable catalogue: every variable closedloop computes, its type and meaning.

The descriptions double as help text on the CRM fields ``closedloop fields create`` makes.
Kinds: ``string``, ``number``, ``datetime`` (ISO 8601 UTC, e.g. ``2026-11-24T10:00:00Z``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VariableSpec:
    name: str
    kind: str
    label: str
    description: str


_CLICK_FIELDS = [
    ("channel", "string", "Channel", "GA4 default channel group of the {which}"),
    ("source", "string", "Source", "Source of the {which} (utm_source, search engine, referring host)"),
    ("medium", "string", "Medium", "Medium of the {which} (utm_medium, cpc, organic, referral)"),
    ("campaign", "string", "Campaign", "Campaign name of the {which} (utm_campaign)"),
    ("campaign_id", "string", "Campaign Id", "Campaign id of the {which} (utm_id)"),
    ("term", "string", "Term", "Keyword of the {which} (utm_term)"),
    ("content", "string", "Content", "Ad content of the {which} (utm_content)"),
    ("landing_page", "string", "Landing Page", "Landing page path of the {which}, without query string"),
    ("landing_page_url", "string", "Landing Page URL", "Full landing page URL of the {which}, tracking parameters kept"),
    ("landing_page_group", "string", "Landing Page Group", "Landing page group of the {which}"),
    ("referrer", "string", "Referrer", "External referrer of the {which}"),
    ("click_id", "string", "Click Id", "Ad click id of the {which}, as name=value (gclid=..., msclkid=...)"),
    ("at", "datetime", "At", "When the {which} started"),
    ("device", "string", "Device", "Device category of the {which} (desktop, mobile, tablet)"),
]
_CONVERSION_FIELDS = [
    ("channel", "string", "Channel", "Channel of the session in which the lead converted"),
    ("source", "string", "Source", "Source of the converting session"),
    ("medium", "string", "Medium", "Medium of the converting session"),
    ("campaign", "string", "Campaign", "Campaign of the converting session"),
    ("term", "string", "Term", "Keyword of the converting session"),
    ("landing_page", "string", "Landing Page", "Landing page path of the converting session"),
    ("page", "string", "Page", "Page on which the visitor converted (the form's page)"),
    ("type", "string", "Type", "How the visitor converted: form, call, chat or other"),
    ("at", "datetime", "At", "When the visitor converted (lead creation)"),
]
_OTHER = [
    ("visitor_id", "string", "Visitor Id", "closedloop visitor id (the _cl_vid cookie) of the converting browser"),
    ("ga_client_id", "string", "GA Client Id", "Google Analytics client id (from the _ga cookie)"),
    ("ga_session_id", "string", "GA Session Id", "Google Analytics session id at conversion"),
    ("visit_count", "number", "Visits", "Sessions before conversion"),
    ("pageview_count", "number", "Pageviews", "Page views before conversion"),
    ("avg_pageviews_per_visit", "number", "Avg Pageviews Per Visit", "Page views per session before conversion"),
    ("touchpoint_count", "number", "Touchpoints", "Non-direct sessions (touches) before conversion"),
    ("conversion_count", "number", "Conversions", "Conversions (forms, calls, chats) up to this one"),
    ("days_to_convert", "number", "Days To Convert", "Days from the first visit to conversion"),
    ("first_visit_at", "datetime", "First Visit At", "When the first session started"),
    ("last_visit_at", "datetime", "Last Visit At", "When the last session before conversion started"),
    ("channel_path", "string", "Channel Path", "Channels of every session in order, A > B > C"),
    ("source_path", "string", "Source Path", "Sources of every session in order"),
    ("campaign_path", "string", "Campaign Path", "Campaigns of the sessions that had one, in order"),
    ("channels_touched", "string", "Channels Touched", "Distinct channels in order of first appearance"),
    ("distinct_channel_count", "number", "Distinct Channels", "How many different channels"),
    ("pages_viewed", "string", "Pages Viewed", "Distinct page paths in order of first view"),
    ("last_page_before_conversion", "string", "Last Page Before Conversion", "Last page viewed before converting"),
    ("gclid", "string", "GCLID", "Latest Google Ads click id seen"),
    ("gbraid", "string", "GBRAID", "Latest Google Ads app-to-web click id seen"),
    ("wbraid", "string", "WBRAID", "Latest Google Ads web-to-app click id seen"),
    ("fbclid", "string", "FBCLID", "Latest Facebook click id seen"),
    ("msclkid", "string", "MSCLKID", "Latest Microsoft Ads click id seen"),
    ("ttclid", "string", "TTCLID", "Latest TikTok Ads click id seen"),
    ("li_fat_id", "string", "LinkedIn Click Id", "Latest LinkedIn Ads click id seen"),
    ("first_click_browser", "string", "First Click Browser", "Browser of the first touch"),
    ("first_click_os", "string", "First Click OS", "Operating system of the first touch"),
    ("language", "string", "Language", "Browser language at conversion"),
    ("timezone", "string", "Time Zone", "Browser time zone at conversion"),
    ("consent", "string", "Consent", "Tracking consent state at conversion (granted, denied, unknown)"),
]


def _build() -> dict[str, VariableSpec]:
    specs: list[VariableSpec] = []
    for prefix, which, title in (("first_click", "first touch", "First Click"),
                                 ("last_click", "last non-direct touch before conversion", "Last Click")):
        specs += [VariableSpec(f"{prefix}_{name}", kind, f"{title} {label}", text.format(which=which))
                  for name, kind, label, text in _CLICK_FIELDS]
    specs += [VariableSpec(f"conversion_{name}", kind, f"Conversion {label}", text)
              for name, kind, label, text in _CONVERSION_FIELDS]
    specs += [VariableSpec(name, kind, label, text) for name, kind, label, text in _OTHER]
    return {spec.name: spec for spec in specs}


VARIABLES: dict[str, VariableSpec] = _build()

# Variables whose values come from a closed set (a restricted picklist can hold them).
ENUMERATIONS: dict[str, frozenset[str]] = {}


def catalogue() -> dict[str, str]:
    """name → kind, the form the mapping layer checks against."""
    return {name: spec.kind for name, spec in VARIABLES.items()}


def _enumerations() -> dict[str, frozenset[str]]:
    from sync.channels import CHANNELS

    channels = frozenset(CHANNELS)
    return {"first_click_channel": channels, "last_click_channel": channels, "conversion_channel": channels,
            "conversion_type": frozenset({"form", "call", "chat", "other"}),
            "first_click_device": frozenset({"desktop", "mobile", "tablet"}),
            "last_click_device": frozenset({"desktop", "mobile", "tablet"}),
            "consent": frozenset({"granted", "denied", "unknown"})}


ENUMERATIONS.update(_enumerations())
