"""GA4's default channel group, reproduced rule by rule.

Every row cites the rule text of "[GA4] Default channel group"
(https://support.google.com/analytics/answer/9756891, "Channels for manual traffic"); rows
come in pairs where the order of rules decides, so a rule moved out of place fails a row.
"""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from sync.channels import CHANNELS, classify

PAID = "Medium matches regex ^(.*cp.*|ppc|retargeting|paid.*)$"

CASES = [
    # (source, medium, campaign, channel, the rule as Google states it)
    ("(direct)", "(none)", "", "Direct", "Source exactly matches '(direct)' AND Medium is one of ('(not set)', '(none)')"),
    ("(direct)", "(not set)", "", "Direct", "Direct: Medium '(not set)'"),
    ("(direct)", "cpc", "", "Paid Other", "Direct needs medium (none)/(not set); cpc falls to Paid Other"),
    ("google", "cpc", "pmax cross-network q4", "Cross-network", "Campaign Name contains 'cross-network' (before Paid Search)"),
    ("google", "cpc", "", "Paid Search", "Source matches a list of search sites AND " + PAID),
    ("bing", "ppc", "", "Paid Search", "Paid Search: ppc"),
    ("google", "paid_search", "", "Paid Search", "Paid Search: paid.* medium"),
    ("duckduckgo", "retargeting", "", "Paid Search", "Paid Search: retargeting medium"),
    ("google", "cpm", "", "Paid Search", "cpm matches .*cp.* so Paid Search wins over Display (rule order)"),
    ("Google Shopping", "cpc", "", "Paid Shopping", "Source matches a list of shopping sites AND " + PAID),
    ("newsletter", "cpc", "summer-shop", "Paid Shopping", "Campaign Name matches ^(.*(([^a-df-z]|^)shop|shopping).*)$ AND " + PAID),
    ("newsletter", "cpc", "workshop", "Paid Other", "'workshop': 'k' precedes 'shop', excluded by [^a-df-z], so not shopping"),
    ("google", "cpc", "black friday shopping", "Paid Shopping", "Paid Shopping comes before Paid Search"),
    ("facebook", "cpc", "", "Paid Social", "Source matches a list of social sites AND " + PAID),
    ("linkedin", "paid_social", "", "Paid Social", "Paid Social: paid.* medium"),
    ("youtube", "cpv", "", "Paid Video", "Source matches a list of video sites AND " + PAID),
    ("criteo", "display", "", "Display", "Medium is one of ('display', 'banner', 'expandable', 'interstitial', 'cpm')"),
    ("partner", "banner", "", "Display", "Display: banner"),
    ("partner", "interstitial", "", "Display", "Display: interstitial"),
    ("partner", "cpm", "", "Display", "Display is checked before Paid Other, and cpm is a display medium"),
    ("partner", "cpc", "", "Paid Other", "Paid Other: " + PAID + " (source on no list)"),
    ("amazon.com", "referral", "", "Organic Shopping", "Source matches a list of shopping sites"),
    ("newsletter", "email", "shopping-week", "Organic Shopping", "Campaign matches the shopping regex, before Email"),
    ("facebook.com", "referral", "", "Organic Social", "Source matches a list of social sites, before Referral"),
    ("partner", "social", "", "Organic Social", "Medium is one of ('social', 'social-network', 'social-media', 'sm', 'social network', 'social media')"),
    ("partner", "sm", "", "Organic Social", "Organic Social: sm"),
    ("youtube.com", "referral", "", "Organic Video", "Source matches a list of video sites"),
    ("partner", "video", "", "Organic Video", "Medium matches regex ^(.*video.*)$"),
    ("google", "organic", "", "Organic Search", "Source matches a list of search sites"),
    ("partner", "organic", "", "Organic Search", "Medium exactly matches organic"),
    ("blog.example", "referral", "", "Referral", "Medium is one of ('referral', 'app', 'link')"),
    ("partner", "link", "", "Referral", "Referral: link"),
    ("partner", "app", "", "Referral", "Referral: app"),
    ("newsletter", "email", "", "Email", "Source = email|e-mail|e_mail|e mail OR Medium = email|e-mail|e_mail|e mail"),
    ("email", "(not set)", "", "Email", "Email: by source"),
    ("partner", "e-mail", "", "Email", "Email: e-mail"),
    ("partner", "affiliate", "", "Affiliates", "Medium = affiliate"),
    ("podcast", "audio", "", "Audio", "Medium exactly matches audio"),
    ("sms", "(not set)", "", "SMS", "Source exactly matches sms OR Medium exactly matches sms"),
    ("partner", "sms", "", "SMS", "SMS: medium"),
    ("app", "web-push", "", "Mobile Push Notifications", "Medium ends with 'push'"),
    ("app", "mobile-alert", "", "Mobile Push Notifications", "Medium contains 'mobile'"),
    ("firebase", "(not set)", "", "Mobile Push Notifications", "Source exactly matches 'firebase'"),
    ("partner", "print", "", "Unassigned", "No rule matches"),
    ("(not set)", "(not set)", "", "Unassigned", "An untagged medium on a source on no list"),
    ("GOOGLE", "CPC", "", "Paid Search", "Analytics does not enforce case sensitivity"),
]


@pytest.mark.parametrize("source, medium, campaign, channel, rule", CASES,
                         ids=[f"{c[0]}/{c[1]}/{c[2]}" for c in CASES])
def test_ga4_rule(source, medium, campaign, channel, rule):
    assert classify(source, medium, campaign).channel == channel, rule


def test_the_match_says_why():
    match = classify("facebook", "cpc")
    assert match.rule == "paid_social"
    assert "on Google's list of social sites" in match.reason and "cpc" in match.reason


@given(st.text(), st.text(), st.text())
def test_never_raises_and_always_names_a_known_channel(source, medium, campaign):
    assert classify(source, medium, campaign).channel in CHANNELS
