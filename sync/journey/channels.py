"""GA4's default channel group, rule by rule, so that closedloop and GA4 name channels alike.

Sources
-------
- Google, "[GA4] Default channel group", https://support.google.com/analytics/answer/9756891,
  section "Channels for manual traffic": the rules below, their order, and the downloadable list
  of search, social, shopping and video sites that "Source matches a list of ... sites" refers to
  (shipped as ``sync/journey/data/ga4_source_categories.csv``; provenance in ``sync/journey/data/SOURCES.md``).
- Cross-checked against Velir/dbt-ga4, ``macros/default_channel_grouping.sql`` at commit
  9dfdbd4fd24f4785cb3763bac91ba5004002a31e ("Align default channel groupings with GA4 docs"),
  whose comments quote Google's table rule by rule and which is the source of :data:`RULES`'
  wording.

How the rules are applied
-------------------------
- In Google's order; the first rule that matches wins (:data:`RULES`).
- Case-insensitively ("Analytics does not enforce case sensitivity"): values are lower-cased
  before matching. A regular expression must match the whole value, as GA4's "matches regex"
  does.
- "Source matches a list of X sites" means the source is, exactly, a row of X in Google's list.
- ``Source = email|e-mail|e_mail|e mail`` (Email) is read as "equals one of", like GA4's
  "matches regex" (a full match). dbt-ga4 uses a substring match there instead, which would put
  ``utm_medium=email-newsletter`` in Email; GA4's wording does not support that.
- An empty source or medium is GA4's ``(not set)``.

What GA4 does and closedloop cannot
-----------------------------------
AI Assistant
------------
GA4 added an "AI Assistant" channel on 2026-05-13, forward only. Google has published neither
its exact rule nor its host list; what is known and where it comes from is in
``data/ai_assistants.toml``. closedloop's rule (``ai_assistant``) sits just before Referral, as
the channel must for GA4's rewrite of the referral medium to matter: medium ``ai-assistant``,
or medium referral / (none) / (not set) with a source on that list. Sessions before the list's
effective date are classified without it, as GA4 did then. ``sync.journey.traffic`` gives a
session referred by a listed host the medium ``ai-assistant``, as GA4 does.

Google's page has a second table, "Channels for Google Ads traffic", for auto-tagged clicks:
GA4 asks the linked Google Ads account for the click's ad network type and names, e.g.,
Performance Max clicks Cross-network and YouTube clicks Paid Video. closedloop does not see the
Google Ads account, so an auto-tagged click (``gclid``) is classified by the manual rules as
``google / cpc``, i.e. Paid Search, and the match's reason says so.
"""
from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from importlib import resources

CATEGORY_FILE = "ga4_source_categories.csv"
AI_ASSISTANT_FILE = "ai_assistants.toml"
AI_ASSISTANT_MEDIUM = "ai-assistant"
AI_REFERRAL_MEDIUMS = ("referral", "(none)", "(not set)")

PAID_MEDIUM = r"^(.*cp.*|ppc|retargeting|paid.*)$"
SHOPPING_CAMPAIGN = r"^(.*(([^a-df-z]|^)shop|shopping).*)$"
VIDEO_MEDIUM = r"^(.*video.*)$"
DISPLAY_MEDIUMS = ("display", "banner", "expandable", "interstitial", "cpm")
SOCIAL_MEDIUMS = ("social", "social-network", "social-media", "sm", "social network", "social media")
REFERRAL_MEDIUMS = ("referral", "app", "link")
EMAIL_VALUES = ("email", "e-mail", "e_mail", "e mail")
DIRECT_MEDIUMS = ("(not set)", "(none)")
NOT_SET = "(not set)"

_PAID = re.compile(PAID_MEDIUM)
_SHOPPING = re.compile(SHOPPING_CAMPAIGN)
_VIDEO = re.compile(VIDEO_MEDIUM)


@dataclass(frozen=True)
class Rule:
    """One row of Google's table: a stable id, the channel, and Google's definition."""

    id: str
    channel: str
    definition: str


_LIST_AND_PAID = "Source matches a list of {kind} sites AND Medium matches regex " + PAID_MEDIUM

# Google's order. Definitions as published (via dbt-ga4's transcription, see module docstring).
RULES: tuple[Rule, ...] = (
    Rule("direct", "Direct", 'Source exactly matches "(direct)" AND Medium is one of ("(not set)", "(none)")'),
    Rule("cross_network", "Cross-network", 'Campaign Name contains "cross-network"'),
    Rule("paid_shopping", "Paid Shopping",
         f"(Source matches a list of shopping sites OR Campaign Name matches regex {SHOPPING_CAMPAIGN}) "
         f"AND Medium matches regex {PAID_MEDIUM}"),
    Rule("paid_search", "Paid Search", _LIST_AND_PAID.format(kind="search")),
    Rule("paid_social", "Paid Social", _LIST_AND_PAID.format(kind="social")),
    Rule("paid_video", "Paid Video", _LIST_AND_PAID.format(kind="video")),
    Rule("display", "Display", 'Medium is one of ("display", "banner", "expandable", "interstitial", "cpm")'),
    Rule("paid_other", "Paid Other", f"Medium matches regex {PAID_MEDIUM}"),
    Rule("organic_shopping", "Organic Shopping",
         f"Source matches a list of shopping sites OR Campaign name matches regex {SHOPPING_CAMPAIGN}"),
    Rule("organic_social", "Organic Social",
         'Source matches a regex list of social sites OR Medium is one of ("social", "social-network", '
         '"social-media", "sm", "social network", "social media")'),
    Rule("organic_video", "Organic Video",
         f"Source matches a list of video sites OR Medium matches regex {VIDEO_MEDIUM}"),
    Rule("organic_search", "Organic Search", "Source matches a list of search sites OR Medium exactly matches organic"),
    Rule("ai_assistant", "AI Assistant",
         f'Medium exactly matches "{AI_ASSISTANT_MEDIUM}" OR (Medium is one of ("referral", "(none)", "(not set)") '
         f"AND Source is on closedloop's list of AI assistant hosts, data/{AI_ASSISTANT_FILE}); for sessions "
         "from the list's effective date on (GA4 publishes no list; closedloop's placement before Referral)"),
    Rule("referral", "Referral", 'Medium is one of ("referral", "app", or "link")'),
    Rule("email", "Email", "Source = email|e-mail|e_mail|e mail OR Medium = email|e-mail|e_mail|e mail"),
    Rule("affiliates", "Affiliates", "Medium = affiliate"),
    Rule("audio", "Audio", "Medium exactly matches audio"),
    Rule("sms", "SMS", "Source exactly matches sms OR Medium exactly matches sms"),
    Rule("mobile_push", "Mobile Push Notifications",
         'Medium ends with "push" OR Medium contains "mobile" or "notification" OR Source exactly matches "firebase"'),
    Rule("unassigned", "Unassigned", "No other channel rule matches"),
)
RULES_BY_ID = {rule.id: rule for rule in RULES}
CHANNELS: tuple[str, ...] = tuple(rule.channel for rule in RULES)


@dataclass(frozen=True)
class ChannelMatch:
    """The channel, the id of the rule that assigned it (see :data:`RULES`), and a sentence saying why."""

    channel: str
    rule: str
    reason: str


@lru_cache(maxsize=1)
def source_categories() -> dict[str, str]:
    """Google's source list: lower-case source → ``SEARCH`` | ``SOCIAL`` | ``SHOPPING`` | ``VIDEO``."""
    text = (resources.files("sync.journey") / "data" / CATEGORY_FILE).read_text(encoding="utf-8")
    return {row["source"].lower(): row["source_category"].removeprefix("SOURCE_CATEGORY_")
            for row in csv.DictReader(text.splitlines())}


@dataclass(frozen=True)
class AssistantList:
    """The AI assistant hosts (host → assistant name) and the day GA4 started the channel."""

    effective_date: date
    hosts: dict[str, str]

    def assistant(self, host: str) -> str | None:
        """The assistant behind ``host`` (a listed host or a subdomain of one), else None."""
        host = (host or "").lower().rstrip(".")
        for listed, name in self.hosts.items():
            if host == listed or host.endswith("." + listed):
                return name
        return None

    def in_effect(self, at: datetime | None) -> bool:
        """Whether a session starting at ``at`` gets the channel (None: now, so yes)."""
        return at is None or at.astimezone(timezone.utc).date() >= self.effective_date


@lru_cache(maxsize=1)
def ai_assistants() -> AssistantList:
    """``data/ai_assistants.toml``: the hosts GA4 is known or reported to file under AI Assistant."""
    data = tomllib.loads((resources.files("sync.journey") / "data" / AI_ASSISTANT_FILE).read_text(encoding="utf-8"))
    return AssistantList(data["effective_date"], {entry["host"].lower(): entry["assistant"] for entry in data["host"]})


def source_category(source: str) -> str | None:
    """The category of ``source`` on Google's list, or None when it is not listed."""
    return source_categories().get((source or "").lower())


def classify(source: str, medium: str, campaign: str = "", *, source_platform: str = "",
             has_google_click_id: bool = False, at: datetime | None = None) -> ChannelMatch:
    """The GA4 default channel of a session with this source, medium and campaign name.

    ``source_platform`` (``utm_source_platform``) and ``has_google_click_id`` say whether the
    click was auto-tagged by Google Ads; they do not change the channel (see the module
    docstring) but the reason then says what GA4 would know that closedloop does not. ``at``
    is when the session started: rules GA4 added later (AI Assistant) apply from their date.
    """
    match = _apply_rules(_value(source), _value(medium), (campaign or "").lower(), at)
    google_ads = has_google_click_id or (source_platform or "").lower() == "google ads"
    if google_ads and match.rule not in ("direct", "cross_network"):
        match = ChannelMatch(match.channel, match.rule, match.reason + (
            "; an auto-tagged Google Ads click: GA4 would take the ad network type from the linked "
            "Google Ads account (e.g. Performance Max → Cross-network), which closedloop cannot see"))
    return match


def _value(text: str) -> str:
    return (text or "").lower() or NOT_SET


def _apply_rules(source: str, medium: str, campaign: str, at: datetime | None = None) -> ChannelMatch:
    category = source_category(source)
    paid = bool(_PAID.fullmatch(medium))
    shopping_campaign = bool(_SHOPPING.fullmatch(campaign))
    s, m, c = repr(source), repr(medium), repr(campaign)
    paid_why = f"medium {m} matches {PAID_MEDIUM}"

    def listed(kind: str) -> str:
        return f"source {s} is on Google's list of {kind} sites"

    def shopping_why() -> str:
        return listed("shopping") if category == "SHOPPING" else f"campaign {c} matches {SHOPPING_CAMPAIGN}"

    def hit(rule_id: str, reason: str) -> ChannelMatch:
        return ChannelMatch(RULES_BY_ID[rule_id].channel, rule_id, reason)

    if source == "(direct)" and medium in DIRECT_MEDIUMS:
        return hit("direct", f"source is (direct) and medium is {medium}")
    if "cross-network" in campaign:
        return hit("cross_network", f"campaign {c} contains cross-network")
    if (category == "SHOPPING" or shopping_campaign) and paid:
        return hit("paid_shopping", f"{shopping_why()} and {paid_why}")
    for kind, rule_id in (("SEARCH", "paid_search"), ("SOCIAL", "paid_social"), ("VIDEO", "paid_video")):
        if category == kind and paid:
            return hit(rule_id, f"{paid_why} and {listed(kind.lower())}")
    if medium in DISPLAY_MEDIUMS:
        return hit("display", f"medium {m} is one of {', '.join(DISPLAY_MEDIUMS)}")
    if paid:
        return hit("paid_other", f"{paid_why} and source {s} is on none of Google's lists")
    if category == "SHOPPING" or shopping_campaign:
        return hit("organic_shopping", shopping_why())
    if category == "SOCIAL" or medium in SOCIAL_MEDIUMS:
        return hit("organic_social", listed("social") if category == "SOCIAL" else f"medium {m} is a social medium")
    if category == "VIDEO" or _VIDEO.fullmatch(medium):
        return hit("organic_video", listed("video") if category == "VIDEO" else f"medium {m} contains video")
    if category == "SEARCH" or medium == "organic":
        return hit("organic_search", listed("search") if category == "SEARCH" else "medium is organic")
    assistants = ai_assistants()
    assistant = assistants.assistant(source)
    if assistants.in_effect(at):
        if medium == AI_ASSISTANT_MEDIUM:
            return hit("ai_assistant", f"medium is {AI_ASSISTANT_MEDIUM}")
        if assistant and medium in AI_REFERRAL_MEDIUMS:
            return hit("ai_assistant", f"source {s} is {assistant} on closedloop's AI assistant list and medium "
                                       f"{m} is one of {', '.join(AI_REFERRAL_MEDIUMS)}")
    late = (f"; {assistant} counts as AI Assistant only from {assistants.effective_date}, when GA4 added it"
            if assistant else "")
    if medium in REFERRAL_MEDIUMS:
        return hit("referral", f"medium {m} is one of {', '.join(REFERRAL_MEDIUMS)}{late}")
    if source in EMAIL_VALUES or medium in EMAIL_VALUES:
        which = f"source {s}" if source in EMAIL_VALUES else f"medium {m}"
        return hit("email", f"{which} is one of {', '.join(EMAIL_VALUES)}")
    if medium == "affiliate":
        return hit("affiliates", "medium is affiliate")
    if medium == "audio":
        return hit("audio", "medium is audio")
    if source == "sms" or medium == "sms":
        return hit("sms", "source is sms" if source == "sms" else "medium is sms")
    if medium.endswith("push") or "mobile" in medium or "notification" in medium:
        return hit("mobile_push", f"medium {m} ends with push or contains mobile or notification")
    if source == "firebase":
        return hit("mobile_push", "source is firebase")
    return hit("unassigned", f"no rule matches source {s}, medium {m}, campaign {c}{late}")
