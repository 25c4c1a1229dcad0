"""The journey-variable catalogue: every variable closedloop computes, its kind and its definition.

:func:`sync.journey.compute.compute_variables` returns exactly these names. Each description is the
variable's one-line definition, worded for people: the mapping layer and ``closedloop fields
create`` reuse it as the CRM field's help text. Kinds: ``string``, ``number``, ``datetime``
(an ISO 8601 UTC string such as ``2026-11-24T10:00:00Z``).
"""
from __future__ import annotations

from dataclasses import dataclass

from sync.journey.channels import CHANNELS


@dataclass(frozen=True)
class VariableSpec:
    """One catalogue variable."""

    name: str
    description: str
    kind: str       # "string" | "number" | "datetime"
    label: str      # short human name, e.g. for a new CRM field


# (suffix, kind, label, description: {touch} names the touch, {touch_defined} also defines it)
_CLICK_FIELDS = (
    ("channel", "string", "Channel", "GA4 default channel group of the {touch_defined}"),
    ("source", "string", "Source", "Source of the {touch}: utm_source, the ad platform of a click id, the search "
                                   "engine, or the referring host"),
    ("medium", "string", "Medium", "Medium of the {touch}: utm_medium, or cpc, organic, referral"),
    ("campaign", "string", "Campaign", "Campaign name (utm_campaign) of the {touch}"),
    ("campaign_id", "string", "Campaign Id", "Campaign id (utm_id) of the {touch}"),
    ("term", "string", "Term", "Keyword (utm_term) of the {touch}"),
    ("content", "string", "Content", "Ad content (utm_content) of the {touch}"),
    ("landing_page", "string", "Landing Page", "Path of the first page of the {touch}, without query string"),
    ("landing_page_url", "string", "Landing Page URL", "Full URL of the first page of the {touch}, tracking "
                                                       "parameters kept"),
    ("landing_page_group", "string", "Landing Page Group", "Group of the {touch}'s landing page (configured "
                                                           "patterns, else its first path segment)"),
    ("referrer", "string", "Referrer", "External referrer URL of the {touch}"),
    ("click_id", "string", "Click Id", "Ad click id on the {touch}'s landing page, as name=value (gclid=...)"),
    ("at", "datetime", "At", "When the {touch} started"),
    ("device", "string", "Device", "Device category of the {touch}: desktop, mobile or tablet"),
)
_TOUCHES = (  # (prefix, label, touch, touch_defined)
    ("first_click", "First Click", "first touch", "first touch (first session with campaign data, an ad click id "
                                                  "or an external referrer; the first visit if there was none)"),
    ("last_click", "Last Click", "last touch", "last touch before conversion (last session that was not direct; "
                                               "the last visit if there was none)"),
)
_REST = (
    ("conversion_channel", "string", "Conversion Channel", "GA4 channel of the session in which the person "
                                                           "converted"),
    ("conversion_source", "string", "Conversion Source", "Source of the session in which the person converted"),
    ("conversion_medium", "string", "Conversion Medium", "Medium of the session in which the person converted"),
    ("conversion_campaign", "string", "Conversion Campaign", "Campaign name of the session in which the person "
                                                             "converted"),
    ("conversion_term", "string", "Conversion Term", "Keyword (utm_term) of the session in which the person "
                                                     "converted"),
    ("conversion_landing_page", "string", "Conversion Landing Page", "First page (path) of the session in which "
                                                                     "the person converted"),
    ("conversion_page", "string", "Conversion Page", "Page (path) where the person converted, e.g. the form's "
                                                     "page; else the last page viewed"),
    ("conversion_type", "string", "Conversion Type", "How the person converted: form, call, chat or other"),
    ("conversion_at", "datetime", "Conversion At", "When the person converted (the tracked conversion, else the "
                                                   "lead's creation)"),
    ("visitor_id", "string", "Visitor Id", "closedloop visitor id (_cl_vid cookie) of the browser that converted"),
    ("ga_client_id", "string", "GA Client Id", "Google Analytics client id (from the _ga cookie), of the converting "
                                               "browser when it has one"),
    ("ga_session_id", "string", "GA Session Id", "Latest Google Analytics session id of that same browser"),
    ("visit_count", "number", "Visits", "Sessions before conversion, all devices"),
    ("pageview_count", "number", "Pageviews", "Page views before conversion, all devices"),
    ("avg_pageviews_per_visit", "number", "Avg Pageviews Per Visit", "Page views per session before conversion "
                                                                     "(two decimals)"),
    ("touchpoint_count", "number", "Touchpoints", "Touches before conversion: sessions that were not direct"),
    ("conversion_count", "number", "Conversions", "Tracked conversions (forms, calls, chats) up to and including "
                                                  "this one"),
    ("days_to_convert", "number", "Days To Convert", "Days from the start of the first visit to conversion (one "
                                                     "decimal)"),
    ("first_visit_at", "datetime", "First Visit At", "When the first session started"),
    ("last_visit_at", "datetime", "Last Visit At", "When the last session before conversion started"),
    ("channel_path", "string", "Channel Path", "Channel of every session in order (A > B > C), middle entries "
                                               "elided when too long"),
    ("source_path", "string", "Source Path", "Source of every session in order, middle entries elided when too "
                                             "long"),
    ("campaign_path", "string", "Campaign Path", "Campaign of every session that had one, in order, middle "
                                                 "entries elided when too long"),
    ("channels_touched", "string", "Channels Touched", "Distinct channels of the sessions (Direct included), in "
                                                       "order of first appearance"),
    ("distinct_channel_count", "number", "Distinct Channels", "How many different channels the sessions had"),
    ("pages_viewed", "string", "Pages Viewed", "Distinct page paths in order of first view, middle entries elided "
                                               "when too long"),
    ("last_page_before_conversion", "string", "Last Page Before Conversion", "Last page (path) viewed before "
                                                                             "converting"),
    ("gclid", "string", "GCLID", "Latest Google Ads click id (gclid) seen"),
    ("gbraid", "string", "GBRAID", "Latest Google Ads iOS app-to-web click id (gbraid) seen"),
    ("wbraid", "string", "WBRAID", "Latest Google Ads iOS web-to-app click id (wbraid) seen"),
    ("fbclid", "string", "FBCLID", "Latest Facebook/Instagram click id (fbclid) seen"),
    ("msclkid", "string", "MSCLKID", "Latest Microsoft Advertising click id (msclkid) seen"),
    ("ttclid", "string", "TTCLID", "Latest TikTok Ads click id (ttclid) seen"),
    ("li_fat_id", "string", "LinkedIn Click Id", "Latest LinkedIn Ads click id (li_fat_id) seen"),
    ("first_click_browser", "string", "First Click Browser", "Browser of the first touch (e.g. Chrome, Mobile "
                                                             "Safari)"),
    ("first_click_os", "string", "First Click OS", "Operating system of the first touch (e.g. Windows, iOS)"),
    ("language", "string", "Language", "Browser language of the converting browser (e.g. en-US)"),
    ("timezone", "string", "Time Zone", "Time zone of the converting browser (e.g. Europe/Paris)"),
    ("consent", "string", "Consent", "Tracking consent of the converting browser: granted, denied or unknown"),
)


def _build() -> dict[str, VariableSpec]:
    specs = [VariableSpec(f"{prefix}_{suffix}", text.format(touch=touch, touch_defined=defined), kind,
                          f"{title} {label}")
             for prefix, title, touch, defined in _TOUCHES for suffix, kind, label, text in _CLICK_FIELDS]
    specs += [VariableSpec(name, description, kind, label) for name, kind, label, description in _REST]
    return {spec.name: spec for spec in specs}


VARIABLES: dict[str, VariableSpec] = _build()


def catalogue() -> dict[str, str]:
    """name → kind, the form the mapping layer checks against."""
    return {name: spec.kind for name, spec in VARIABLES.items()}


def _enumerations() -> dict[str, frozenset[str]]:
    channels, devices = frozenset(CHANNELS), frozenset({"desktop", "mobile", "tablet"})
    return {"first_click_channel": channels, "last_click_channel": channels, "conversion_channel": channels,
            "conversion_type": frozenset({"form", "call", "chat", "other"}),
            "first_click_device": devices, "last_click_device": devices,
            "consent": frozenset({"granted", "denied", "unknown"})}


# Variables whose values come from a closed set (a restricted picklist can hold them).
ENUMERATIONS: dict[str, frozenset[str]] = _enumerations()


# Identifiers a text field must hold whole (cut short, they would match nobody): the longest
# value the collector accepts (visitor ids 64 characters; GA ids ``x.y``, 20 digits each).
WHOLE_LENGTHS: dict[str, int] = {"visitor_id": 64, "ga_client_id": 41, "ga_session_id": 20}
