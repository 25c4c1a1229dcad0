"""GA4's default channel group, reproduced rule by rule.

Source: "[GA4] Default channel group", https://support.google.com/analytics/answer/9756891,
section "Channels for manual traffic" (rule text as transcribed in sync/journey/channels.py, RULES).
Every row names the rule it reproduces and says which part of the rule text decides; many rows
come in pairs where only the order of the rules decides, so a rule moved out of place fails.
"""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.journey.channels import CHANNELS, RULES, RULES_BY_ID, classify, source_categories

# (source, medium, campaign, expected rule id, what the row shows)
CASES = [
    # Direct: Source exactly matches "(direct)" AND Medium is one of ("(not set)", "(none)")
    ("(direct)", "(none)", "", "direct", "medium (none)"),
    ("(direct)", "(not set)", "", "direct", "medium (not set)"),
    ("(DIRECT)", "(None)", "", "direct", "case is not enforced"),
    ("(direct)", "(none)", "pmax cross-network", "direct", "Direct is checked before Cross-network"),
    ("(direct)", "referral", "", "referral", "Direct needs medium (none) or (not set)"),
    ("(direct)", "cpc", "", "paid_other", "Direct needs medium (none) or (not set); cpc is paid"),
    # Cross-network: Campaign Name contains "cross-network"
    ("google", "cpc", "PMax Cross-Network Q4", "cross_network", "contains, case-insensitively; before Paid Search"),
    ("newsletter", "email", "cross-network", "cross_network", "whatever the medium"),
    ("google", "cpc", "crossnetwork", "paid_search", "the hyphen is part of the text"),
    # Paid Shopping: (Source matches a list of shopping sites OR Campaign Name matches regex
    # ^(.*(([^a-df-z]|^)shop|shopping).*)$) AND Medium matches regex ^(.*cp.*|ppc|retargeting|paid.*)$
    ("Google Shopping", "cpc", "", "paid_shopping", "a shopping site on Google's list"),
    ("IGShopping", "paid_social", "", "paid_shopping", "a shopping site: Paid Shopping before Paid Social"),
    ("partner", "cpc", "summer-shop", "paid_shopping", "'-' before 'shop' matches [^a-df-z]"),
    ("partner", "ppc", "shop", "paid_shopping", "'shop' at the start matches ^"),
    ("partner", "cpc", "eshop-deals", "paid_shopping", "'e' is outside a-d and f-z, so 'eshop' matches"),
    ("partner", "cpc", "workshop", "paid_other", "'k' before 'shop' is in f-z: not a shopping campaign"),
    ("partner", "cpc", "bookshopping", "paid_shopping", "'shopping' anywhere"),
    ("google", "cpc", "black friday shopping", "paid_shopping", "Paid Shopping before Paid Search"),
    ("amazon", "organic", "", "organic_shopping", "a shopping site without a paid medium"),
    # Paid Search: Source matches a list of search sites AND Medium matches regex ^(.*cp.*|ppc|retargeting|paid.*)$
    ("google", "cpc", "", "paid_search", "search site, medium contains cp"),
    ("bing", "ppc", "", "paid_search", "medium exactly ppc"),
    ("duckduckgo", "retargeting", "", "paid_search", "medium exactly retargeting"),
    ("google", "paid_search", "", "paid_search", "medium starts with paid"),
    ("google", "cpm", "", "paid_search", "cpm contains cp: Paid Search before Display"),
    ("GOOGLE", "CPC", "", "paid_search", "case is not enforced"),
    ("google", "ppc-brand", "", "organic_search", "ppc must be the whole medium, and ppc-brand has no 'cp'"),
    ("google", "sponsored-paid", "", "organic_search", "paid must start the medium"),
    # Paid Social: Source matches a regex list of social sites AND Medium matches the paid regex
    ("facebook", "cpc", "", "paid_social", "social site, paid medium"),
    ("linkedin.com", "paid_social", "", "paid_social", "paid.*"),
    ("t.co", "retargeting", "", "paid_social", "retargeting"),
    # Paid Video: Source matches a list of video sites AND Medium matches the paid regex
    ("youtube", "cpv", "", "paid_video", "video site, medium contains cp"),
    ("youtube.com", "paid-video", "", "paid_video", "paid.*: Paid Video before Organic Video"),
    # Display: Medium is one of ("display", "banner", "expandable", "interstitial", "cpm")
    ("criteo", "display", "", "display", "display"),
    ("partner", "banner", "", "display", "banner"),
    ("partner", "expandable", "", "display", "expandable"),
    ("partner", "interstitial", "", "display", "interstitial"),
    ("partner", "cpm", "", "display", "cpm: Display before Paid Other"),
    ("youtube", "display", "", "display", "display is not a paid medium, and Display precedes Organic Video"),
    ("partner", "display ads", "", "unassigned", "one of: the whole medium must be listed"),
    # Paid Other: Medium matches regex ^(.*cp.*|ppc|retargeting|paid.*)$
    ("partner", "cpc", "", "paid_other", "paid medium, source on no list"),
    ("partner", "paid", "", "paid_other", "paid"),
    ("partner", "cpa", "", "paid_other", "cpa contains cp"),
    ("partner", "mobile-cpc", "", "paid_other", "Paid Other before Mobile Push Notifications"),
    ("partner", "cpc-video", "", "paid_other", "Paid Other before Organic Video"),
    # Organic Shopping: Source matches a list of shopping sites OR Campaign name matches the shopping regex
    ("Google Shopping", "referral", "", "organic_shopping", "shopping site: before Referral"),
    ("newsletter", "email", "shopping-week", "organic_shopping", "shopping campaign: before Email"),
    ("partner", "video", "shop", "organic_shopping", "shopping campaign: before Organic Video"),
    # Organic Social: Source matches a regex list of social sites OR Medium is one of ("social",
    # "social-network", "social-media", "sm", "social network", "social media")
    ("facebook.com", "referral", "", "organic_social", "social site: before Referral"),
    ("l.facebook.com", "referral", "", "organic_social", "Facebook's link shim is on the list"),
    ("partner", "social", "", "organic_social", "social"),
    ("partner", "social-network", "", "organic_social", "social-network"),
    ("partner", "social media", "", "organic_social", "social media"),
    ("partner", "sm", "", "organic_social", "sm"),
    ("partner", "social-ads", "", "unassigned", "one of: social-ads is not listed"),
    ("linkedin", "email", "", "organic_social", "social site: Organic Social before Email"),
    # Organic Video: Source matches a list of video sites OR Medium matches regex ^(.*video.*)$
    ("youtube.com", "referral", "", "organic_video", "video site: before Referral"),
    ("partner", "video", "", "organic_video", "video"),
    ("partner", "explainer-video-share", "", "organic_video", "contains video"),
    # Organic Search: Source matches a list of search sites OR Medium exactly matches organic
    ("google", "organic", "", "organic_search", "search site"),
    ("bing", "referral", "", "organic_search", "search site: before Referral"),
    ("partner", "organic", "", "organic_search", "medium organic, source on no list"),
    ("partner", "Organic", "", "organic_search", "case is not enforced"),
    ("partner", "organic-social", "", "unassigned", "exactly organic"),
    # AI Assistant (GA4, from 2026-05-13; closedloop's rule text and host list, data/ai_assistants.toml)
    ("chatgpt.com", "referral", "", "ai_assistant", "a listed host with medium referral: before Referral"),
    ("partner", "ai-assistant", "", "ai_assistant", "medium ai-assistant, as GA4 rewrites it"),
    ("chatgpt.com", "(not set)", "", "ai_assistant", "utm_source=chatgpt.com without a medium"),
    ("Claude.ai", "(none)", "", "ai_assistant", "case is not enforced; medium (none)"),
    ("www.perplexity.ai", "referral", "", "ai_assistant", "a subdomain of a listed host"),
    ("chatgpt.com", "email", "", "email", "an explicit medium wins: only referral, (none) or (not set)"),
    ("chatgpt.com", "cpc", "", "paid_other", "a paid medium is matched long before"),
    ("notchatgpt.com", "referral", "", "referral", "a host that merely ends like a listed one"),
    # Referral: Medium is one of ("referral", "app", or "link")
    ("blog.example.org", "referral", "", "referral", "referral"),
    ("partner", "app", "", "referral", "app"),
    ("partner", "link", "", "referral", "link"),
    ("email", "referral", "", "referral", "Referral before Email"),
    # Email: Source = email|e-mail|e_mail|e mail OR Medium = email|e-mail|e_mail|e mail
    ("newsletter", "email", "", "email", "medium email"),
    ("email", "(not set)", "", "email", "source email"),
    ("partner", "e-mail", "", "email", "e-mail"),
    ("partner", "e_mail", "", "email", "e_mail"),
    ("partner", "e mail", "", "email", "e mail"),
    ("partner", "Email", "", "email", "case is not enforced"),
    ("partner", "email-newsletter", "", "unassigned", "= is a whole-value match"),
    ("sms", "email", "", "email", "Email before SMS"),
    ("firebase", "email", "", "email", "Email before Mobile Push Notifications"),
    # Affiliates: Medium = affiliate
    ("partner", "affiliate", "", "affiliates", "affiliate"),
    ("partner", "affiliates", "", "unassigned", "exactly affiliate"),
    # Audio: Medium exactly matches audio
    ("podcast", "audio", "", "audio", "audio"),
    # SMS: Source exactly matches sms OR Medium exactly matches sms
    ("sms", "(not set)", "", "sms", "source sms"),
    ("partner", "sms", "", "sms", "medium sms"),
    ("sms", "push", "", "sms", "SMS before Mobile Push Notifications"),
    # Mobile Push Notifications: Medium ends with "push" OR Medium contains "mobile" or
    # "notification" OR Source exactly matches "firebase"
    ("app", "web-push", "", "mobile_push", "ends with push"),
    ("app", "mobile", "", "mobile_push", "contains mobile"),
    ("app", "in-app-notification", "", "mobile_push", "contains notification"),
    ("firebase", "(not set)", "", "mobile_push", "source firebase"),
    ("app", "push-alert", "", "unassigned", "push must end the medium"),
    # Unassigned: no rule matches
    ("partner", "print", "", "unassigned", "no rule matches"),
    ("(not set)", "(not set)", "", "unassigned", "untagged medium, source on no list"),
    ("", "", "", "unassigned", "empty values are (not set)"),
]


@pytest.mark.parametrize("source, medium, campaign, rule_id, why", CASES,
                         ids=[f"{c[3]}:{c[0]}/{c[1]}/{c[2]}" for c in CASES])
def test_ga4_rule(source, medium, campaign, rule_id, why):
    """Each row: the rule Google's table says applies (answer 9756891, "Channels for manual traffic")."""
    match = classify(source, medium, campaign)
    assert (match.rule, match.channel) == (rule_id, RULES_BY_ID[rule_id].channel), (
        f"{why}: expected {RULES_BY_ID[rule_id].definition!r}, got {match}")


def test_every_rule_is_reproduced_and_in_googles_order():
    """The 20 channels in the order of Google's table, each exercised by at least one row."""
    assert CHANNELS == ("Direct", "Cross-network", "Paid Shopping", "Paid Search", "Paid Social", "Paid Video",
                        "Display", "Paid Other", "Organic Shopping", "Organic Social", "Organic Video",
                        "Organic Search", "AI Assistant", "Referral", "Email", "Affiliates", "Audio", "SMS",
                        "Mobile Push Notifications", "Unassigned")
    assert {rule.id for rule in RULES} == {case[3] for case in CASES}


def test_the_match_says_why():
    match = classify("google", "cpc")
    assert match.rule == "paid_search"
    assert match.reason == ("medium 'cpc' matches ^(.*cp.*|ppc|retargeting|paid.*)$ and source 'google' "
                            "is on Google's list of search sites")
    assert classify("newsletter", "email", "summer-shop").reason.startswith(
        "campaign 'summer-shop' matches ^(.*(([^a-df-z]|^)shop|shopping).*)$")


def test_a_google_ads_click_says_what_ga4_would_know_more():
    """GA4 refines auto-tagged clicks by the Google Ads network type ("Channels for Google Ads
    traffic"), which needs the linked Google Ads account; closedloop keeps the manual rules."""
    match = classify("google", "cpc", has_google_click_id=True)
    assert match.channel == "Paid Search" and "Google Ads account" in match.reason
    assert classify("google", "cpc", source_platform="Google Ads").reason == match.reason
    assert "Google Ads" not in classify("google", "cpc").reason


def test_the_shipped_source_list():
    """sync/journey/data/ga4_source_categories.csv: 819 sources in Google's four categories (SOURCES.md)."""
    categories = source_categories()
    assert len(categories) == 819
    counts = {kind: sum(1 for value in categories.values() if value == kind)
              for kind in ("SEARCH", "SOCIAL", "SHOPPING", "VIDEO")}
    assert counts == {"SEARCH": 129, "SOCIAL": 592, "SHOPPING": 52, "VIDEO": 46}
    assert categories["google shopping"] == "SHOPPING" and categories["t.co"] == "SOCIAL"


@given(st.text(), st.text(), st.text(), st.text(), st.booleans())
def test_never_raises_and_always_names_a_known_rule(source, medium, campaign, platform, google_click):
    match = classify(source, medium, campaign, source_platform=platform, has_google_click_id=google_click)
    assert match.channel in CHANNELS and RULES_BY_ID[match.rule].channel == match.channel and match.reason


def test_ai_assistant_applies_from_the_day_ga4_added_it():
    """GA4's AI Assistant channel is forward-only (realtime-and-auth.md §4.1): an older session
    from chatgpt.com stays Referral, and the reason says why."""
    from datetime import datetime, timezone

    from sync.journey.channels import ai_assistants

    assistants = ai_assistants()
    before = datetime(2026, 5, 12, 23, 59, tzinfo=timezone.utc)
    on = datetime(2026, 5, 13, 0, 0, tzinfo=timezone.utc)
    assert str(assistants.effective_date) == "2026-05-13"
    assert classify("chatgpt.com", "referral", at=on).rule == "ai_assistant"
    old = classify("chatgpt.com", "referral", at=before)
    assert old.rule == "referral" and "ChatGPT counts as AI Assistant only from 2026-05-13" in old.reason
    assert classify("partner", "ai-assistant", at=before).rule == "unassigned"


def test_the_data_files_name_their_sources_and_dates():
    """Every list closedloop classifies by is a data file that says where it comes from and when."""
    import tomllib
    from importlib import resources

    data = resources.files("sync.journey") / "data"
    for name in ("ai_assistants.toml", "search_engines.toml"):
        content = tomllib.loads((data / name).read_text(encoding="utf-8"))
        assert content["sources"] and content["as_of"], name
    hosts = tomllib.loads((data / "ai_assistants.toml").read_text())["host"]
    assert {"chatgpt.com", "gemini.google.com", "claude.ai"} <= {entry["host"] for entry in hosts}
    assert all(entry["evidence"] for entry in hosts)
    sources = (data / "SOURCES.md").read_text()
    for name in ("ga4_source_categories.csv", "ai_assistants.toml", "search_engines.toml"):
        assert f"## `{name}`" in sources
