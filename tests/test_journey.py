"""Sessions, sources, touches and every journey variable: a worked example, the rules one by one,
and properties that must hold for any input."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.journey.compute import (
    Hit,
    JourneySettings,
    compute_variables,
    device_of,
    explain,
    join_capped,
    landing_page_group,
    sessionize,
)
from sync.journey.traffic import derive
from sync.journey.variables import VARIABLES

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")
IPAD = ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
        "Mobile/15E148 Safari/604.1")
ANDROID_TABLET = ("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0 Safari/537.36")
ANDROID_PHONE = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/120.0 Mobile Safari/537.36")
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
SITE = JourneySettings(site_hosts=("example.com",), landing_page_groups=(("/pricing*", "Pricing"),))
PATH_VARIABLES = ("channel_path", "source_path", "campaign_path", "channels_touched", "pages_viewed")


def at(**delta):
    return T0 + timedelta(**delta)


def page(visitor, when, url, referrer="", **fields):
    return Hit(visitor, when, "pageview", url, referrer, **fields)


LANDING_LINKEDIN = ("https://www.example.com/blog/ai?utm_source=linkedin&utm_medium=paid_social"
                    "&utm_campaign=q4-launch&utm_content=video-a&utm_id=li-77&li_fat_id=LF1")
NEWSLETTER = "https://www.example.com/case-studies?utm_source=newsletter&utm_medium=email&utm_campaign=nov-digest"
JOURNEY = [
    # phone: a LinkedIn ad, two pages
    page("phone-1", at(), LANDING_LINKEDIN, user_agent=IPHONE, ga_client_id="111.1", language="en-US",
         timezone="America/New_York", consent="denied"),
    page("phone-1", at(minutes=3), "https://www.example.com/pricing", "https://www.example.com/blog/ai",
         user_agent=IPHONE, ga_client_id="111.1"),
    # laptop, two days later: a Google Ads click (the referrer is Google's, the gclid decides)
    page("laptop-1", at(days=2), "https://www.example.com/pricing/enterprise?gclid=G-123", "https://www.google.com/",
         user_agent=DESKTOP, ga_client_id="222.2", ga_session_id="1001"),
    # phone, direct return
    page("phone-1", at(days=3), "https://www.example.com/", user_agent=IPHONE, ga_client_id="111.1"),
    # laptop: the newsletter, and a reload of the same tagged URL (same session)
    page("laptop-1", at(days=4), NEWSLETTER, user_agent=DESKTOP, ga_client_id="222.2"),
    page("laptop-1", at(days=4, minutes=10), NEWSLETTER, user_agent=DESKTOP, ga_client_id="222.2"),
    # laptop: organic Bing, then the form
    page("laptop-1", at(days=6), "https://www.example.com/contact", "https://www.bing.com/search?q=x",
         user_agent=DESKTOP, ga_client_id="222.2", ga_session_id="2002", language="en-GB", timezone="Europe/London",
         consent="granted"),
    Hit("laptop-1", at(days=6, minutes=2), "identify", "https://www.example.com/contact", conversion_type="form",
        user_agent=DESKTOP, ga_client_id="222.2", ga_session_id="2002"),
    # after the form, before the caller's cut-off: not part of the journey to this conversion
    page("laptop-1", at(days=6, minutes=2, seconds=5), "https://www.example.com/thanks", user_agent=DESKTOP),
    page("phone-1", at(days=6, minutes=2, seconds=30), "https://www.example.com/?utm_source=x&utm_medium=cpc",
         user_agent=IPHONE),
    # days later
    page("laptop-1", at(days=9), "https://www.example.com/", user_agent=DESKTOP),
]
CUTOFF = at(days=6, minutes=3)


def test_every_variable_on_a_worked_multi_device_journey():
    """Two devices, five sessions before the form: every catalogue variable, by hand."""
    values = compute_variables(JOURNEY, CUTOFF, SITE)
    assert values == {
        "first_click_channel": "Paid Social", "first_click_source": "linkedin", "first_click_medium": "paid_social",
        "first_click_campaign": "q4-launch", "first_click_campaign_id": "li-77", "first_click_term": None,
        "first_click_content": "video-a", "first_click_landing_page": "/blog/ai",
        "first_click_landing_page_url": LANDING_LINKEDIN, "first_click_landing_page_group": "Blog",
        "first_click_referrer": None, "first_click_click_id": "li_fat_id=LF1",
        "first_click_at": "2026-10-01T09:00:00Z", "first_click_device": "mobile",
        "last_click_channel": "Organic Search", "last_click_source": "bing", "last_click_medium": "organic",
        "last_click_campaign": None, "last_click_campaign_id": None, "last_click_term": None,
        "last_click_content": None, "last_click_landing_page": "/contact",
        "last_click_landing_page_url": "https://www.example.com/contact", "last_click_landing_page_group": "Contact",
        "last_click_referrer": "https://www.bing.com/search?q=x", "last_click_click_id": None,
        "last_click_at": "2026-10-07T09:00:00Z", "last_click_device": "desktop",
        "conversion_channel": "Organic Search", "conversion_source": "bing", "conversion_medium": "organic",
        "conversion_campaign": None, "conversion_term": None, "conversion_landing_page": "/contact",
        "conversion_page": "/contact", "conversion_type": "form", "conversion_at": "2026-10-07T09:02:00Z",
        "visitor_id": "laptop-1", "ga_client_id": "222.2", "ga_session_id": "2002",
        "visit_count": 5, "pageview_count": 7, "avg_pageviews_per_visit": 1.4, "touchpoint_count": 4,
        "conversion_count": 1, "days_to_convert": 6.0, "first_visit_at": "2026-10-01T09:00:00Z",
        "last_visit_at": "2026-10-07T09:00:00Z",
        "channel_path": "Paid Social > Paid Search > Direct > Email > Organic Search",
        "source_path": "linkedin > google > (direct) > newsletter > bing",
        "campaign_path": "q4-launch > nov-digest",
        "channels_touched": "Paid Social, Paid Search, Direct, Email, Organic Search", "distinct_channel_count": 5,
        "pages_viewed": "/blog/ai > /pricing > /pricing/enterprise > / > /case-studies > /contact",
        "last_page_before_conversion": "/contact",
        "gclid": "G-123", "gbraid": None, "wbraid": None, "fbclid": None, "msclkid": None, "ttclid": None,
        "li_fat_id": "LF1", "first_click_browser": "Mobile Safari", "first_click_os": "iOS",
        "language": "en-GB", "timezone": "Europe/London", "consent": "granted",
    }
    assert set(values) == set(VARIABLES)


def test_the_conversion_time_cuts_the_journey():
    """Only hits at or before the conversion count; with no conversion hit the caller's time stands."""
    values = compute_variables(JOURNEY, at(days=2, minutes=5), SITE)
    assert (values["visit_count"], values["pageview_count"], values["last_click_channel"]) == (2, 3, "Paid Search")
    assert values["last_click_click_id"] == "gclid=G-123" and values["last_click_referrer"] == "https://www.google.com/"
    assert values["conversion_at"] == "2026-10-03T09:05:00Z" and values["days_to_convert"] == 2.0
    assert values["conversion_type"] is None and values["conversion_page"] == "/pricing/enterprise"
    assert values["conversion_count"] == 0 and values["channel_path"] == "Paid Social > Paid Search"
    assert values["language"] == "en-US" and values["consent"] == "unknown"  # the laptop never said


def test_a_conversion_hit_long_before_the_cutoff_is_an_earlier_conversion():
    """A call logged a day after the form: the form is not this conversion, the journey runs on."""
    values = compute_variables(JOURNEY, at(days=7), SITE, conversion_type="call")
    assert values["conversion_type"] == "call" and values["conversion_at"] == "2026-10-08T09:00:00Z"
    assert values["conversion_count"] == 1 and values["visit_count"] == 6
    assert values["conversion_channel"] == "Paid Other" and values["conversion_source"] == "x"
    assert values["visitor_id"] == "phone-1" and values["ga_client_id"] == "111.1"
    assert values["last_page_before_conversion"] == "/"


def test_the_converting_device_is_the_one_with_the_conversion_hit():
    """The phone fills the form while a laptop session that started later is still open."""
    hits = [page("phone-1", at(), "https://www.example.com/?utm_source=news&utm_medium=email", ga_client_id="1.1"),
            page("laptop-1", at(minutes=5), "https://www.example.com/", "https://t.co/abc", ga_client_id="2.2"),
            Hit("phone-1", at(minutes=10), "conversion", "https://www.example.com/demo", conversion_type="chat",
                ga_client_id="1.1")]
    values = compute_variables(hits, at(minutes=12), SITE)
    assert (values["conversion_channel"], values["conversion_type"], values["conversion_page"]) == (
        "Email", "chat", "/demo")
    assert (values["visitor_id"], values["ga_client_id"]) == ("phone-1", "1.1")
    assert values["last_click_channel"] == "Organic Social" and values["last_click_source"] == "t.co"


def test_no_hits_at_all():
    values = compute_variables([], T0, SITE, conversion_type="call")
    assert set(values) == set(VARIABLES)
    assert (values["visit_count"], values["pageview_count"], values["consent"]) == (0, 0, "unknown")
    assert values["first_click_channel"] is None and values["conversion_type"] == "call"
    assert values["conversion_at"] == "2026-10-01T09:00:00Z"


def test_naive_datetimes_are_utc():
    hits = [page("v", datetime(2026, 10, 1, 9, 0), "https://www.example.com/?utm_source=a&utm_medium=email")]
    values = compute_variables(hits, datetime(2026, 10, 1, 10, 0), SITE)
    assert values["first_click_at"] == "2026-10-01T09:00:00Z" and values["conversion_at"] == "2026-10-01T10:00:00Z"


# --- sessions ---------------------------------------------------------------------------------------


def sessions_of(hits, settings_=SITE):
    return [[hit.url.removeprefix("https://www.example.com") for hit in s.hits] for s in sessionize(hits, settings_)]


def test_a_session_ends_after_30_minutes_of_inactivity():
    hits = [page("v", at(), "https://www.example.com/a"), page("v", at(minutes=30), "https://www.example.com/b"),
            page("v", at(minutes=60, seconds=1), "https://www.example.com/c")]
    assert sessions_of(hits) == [["/a", "/b"], ["/c"]]
    assert sessions_of(hits, JourneySettings(session_timeout=timedelta(minutes=10))) == [["/a"], ["/b"], ["/c"]]


def test_a_new_campaign_arrival_starts_a_session_and_a_reload_does_not():
    hits = [page("v", at(), "https://www.example.com/?utm_source=a&utm_medium=email"),
            page("v", at(minutes=1), "https://www.example.com/x"),
            page("v", at(minutes=2), "https://www.example.com/?utm_source=b&utm_medium=email"),
            page("v", at(minutes=3), "https://www.example.com/?utm_source=b&utm_medium=email"),
            page("v", at(minutes=4), "https://www.example.com/?gclid=1"),
            page("v", at(minutes=5), "https://www.example.com/?gclid=2")]
    assert [(s.traffic.source, len(s.hits)) for s in sessionize(hits, SITE)] == [("a", 2), ("b", 2), ("google", 1),
                                                                                 ("google", 1)]


def test_the_campaign_is_remembered_across_a_timeout_as_the_tracker_does():
    """tracker.js keeps the last campaign key in the new session: coming back to the same tagged
    URL within the new session does not split it again."""
    tagged = "https://www.example.com/?utm_source=a&utm_medium=email"
    hits = [page("v", at(), tagged), page("v", at(minutes=40), "https://www.example.com/x"),
            page("v", at(minutes=45), tagged)]
    assert sessions_of(hits) == [["/?utm_source=a&utm_medium=email"],
                                 ["/x", "/?utm_source=a&utm_medium=email"]]


def test_only_page_views_arrive_with_campaigns():
    hits = [page("v", at(), "https://www.example.com/"),
            Hit("v", at(minutes=1), "identify", "https://www.example.com/?utm_source=a&utm_medium=email"),
            Hit("v", at(minutes=2), "conversion", "https://www.example.com/?gclid=x", conversion_type="form")]
    assert len(sessionize(hits, SITE)) == 1


def test_devices_keep_their_own_sessions_and_interleave_by_start():
    hits = [page("b", at(minutes=5), "https://www.example.com/b1"), page("a", at(), "https://www.example.com/a1"),
            page("a", at(minutes=10), "https://www.example.com/a2"),
            page("b", at(minutes=20), "https://www.example.com/b2")]
    assert [(s.visitor_id, len(s.hits)) for s in sessionize(hits, SITE)] == [("a", 2), ("b", 2)]


def test_a_session_of_beacons_only_lands_on_its_first_hit():
    beacon = Hit("v", at(), "identify", "https://www.example.com/contact?utm_source=crm&utm_medium=email")
    session, = sessionize([beacon], SITE)
    assert (session.landing.kind, session.traffic.source, session.pageviews) == ("identify", "crm", 0)


# --- where a session came from ----------------------------------------------------------------------


SOURCES = [
    # (landing URL, referrer, source, medium, channel, why)
    ("/?utm_source=newsletter&utm_medium=email&gclid=1", "https://www.google.com/", "newsletter", "email", "Email",
     "UTM parameters come first"),
    ("/?utm_medium=cpc", "", "(not set)", "cpc", "Paid Other", "a missing utm_source reads (not set)"),
    ("/?utm_campaign=spring", "", "(not set)", "(not set)", "Unassigned", "campaign without source/medium"),
    ("/?utm_campaign=spring", "https://www.google.de/", "google", "organic", "Organic Search",
     "the referrer decides source and medium"),
    ("/?gclid=1", "", "google", "cpc", "Paid Search", "Google Ads auto-tagging"),
    ("/?gbraid=1", "", "google", "cpc", "Paid Search", "Google Ads iOS"),
    ("/?wbraid=1", "", "google", "cpc", "Paid Search", "Google Ads iOS"),
    ("/?dclid=1", "", "dfa", "cpm", "Display", "Campaign Manager 360 / DV360"),
    ("/?msclkid=1", "https://www.bing.com/", "bing", "cpc", "Paid Search", "click id beats the referrer"),
    ("/?ttclid=1", "", "tiktok", "cpc", "Paid Social", "TikTok Ads"),
    ("/?li_fat_id=1", "", "linkedin", "cpc", "Paid Social", "LinkedIn Ads"),
    ("/?fbclid=1", "https://l.facebook.com/", "l.facebook.com", "referral", "Organic Social",
     "fbclid is no ad evidence; the referrer decides"),
    ("/?fbclid=1", "", "facebook", "referral", "Organic Social", "fbclid without a referrer"),
    ("/", "https://www.google.co.uk/", "google", "organic", "Organic Search", "a country Google"),
    ("/", "android-app://com.google.android.googlequicksearchbox/", "google", "organic", "Organic Search",
     "the Google app"),
    ("/", "https://duckduckgo.com/", "duckduckgo", "organic", "Organic Search", "DuckDuckGo"),
    ("/", "https://uk.search.yahoo.com/", "yahoo", "organic", "Organic Search", "Yahoo search"),
    ("/", "https://mail.google.com/", "mail.google.com", "referral", "Referral", "Gmail is not Google search"),
    ("/", "https://news.google.com/", "news.google.com", "referral", "Organic Search",
     "a referral whose host is a search site on Google's list"),
    ("/", "https://t.co/xyz", "t.co", "referral", "Organic Social", "a social host on Google's list"),
    ("/", "https://www.youtube.com/watch", "youtube.com", "referral", "Organic Video", "a video host"),
    ("/", "https://partner.example.org/post", "partner.example.org", "referral", "Referral", "any other host"),
    ("/", "https://shop.example.com/cart", "(direct)", "(none)", "Direct", "a subdomain of a site host"),
    ("/", "https://www.example.com/a", "(direct)", "(none)", "Direct", "the site itself"),
    ("/", "https://example.com.evil.net/", "example.com.evil.net", "referral", "Referral",
     "a suffix is not a subdomain"),
    ("/", "", "(direct)", "(none)", "Direct", "nothing at all"),
    ("/", "not a url", "(direct)", "(none)", "Direct", "an unparsable referrer"),
    ("/", "https://chatgpt.com/", "chatgpt.com", "ai-assistant", "AI Assistant",
     "an AI assistant: GA4 rewrites the medium"),
    ("/", "https://gemini.google.com/app", "gemini.google.com", "ai-assistant", "AI Assistant", "Gemini"),
    ("/?utm_source=chatgpt.com", "https://chatgpt.com/", "chatgpt.com", "(not set)", "AI Assistant",
     "ChatGPT's own utm_source without a medium"),
    ("/?utm_source=chatgpt&utm_medium=social", "https://chatgpt.com/", "chatgpt", "social", "Organic Social",
     "explicit UTMs win over the assistant referrer"),
]


@pytest.mark.parametrize("path, referrer, source, medium, channel, why", SOURCES,
                         ids=[f"{case[0]} {case[1]}" for case in SOURCES])
def test_where_a_session_came_from(path, referrer, source, medium, channel, why):
    traffic = derive("https://www.example.com" + path, referrer, site_hosts=("example.com",))
    assert (traffic.source, traffic.medium, traffic.channel) == (source, medium, channel), why
    assert traffic.reason.endswith(f"→ {source} / {medium}")


def test_an_assistant_referral_before_ga4_had_the_channel_stays_a_referral():
    from datetime import datetime, timezone

    old = derive("https://www.example.com/", "https://chatgpt.com/", at=datetime(2026, 3, 1, tzinfo=timezone.utc))
    assert (old.source, old.medium, old.channel) == ("chatgpt.com", "referral", "Referral")
    assert "only from 2026-05-13" in old.match.reason


def test_the_landing_host_is_internal_even_unconfigured():
    assert derive("https://app.example.net/x", "https://app.example.net/y").is_direct
    assert derive("https://app.example.net/x", "https://example.net/").source == "example.net"


def test_site_hosts_may_be_written_as_urls_or_with_ports():
    for host in ("https://www.example.com", "example.com:8443", "WWW.EXAMPLE.COM"):
        assert derive("https://x.test/", "https://blog.example.com/", site_hosts=(host,)).is_direct


def test_stored_parameters_and_the_url_agree():
    """The tracker stores UTMs and click ids beside the URL; either is enough."""
    stored = derive("https://www.example.com/", utm={"utm_source": "news", "utm_medium": "email",
                                                     "utm_term": "crm"}, click_ids={"msclkid": "M"})
    assert (stored.source, stored.term, stored.click_id) == ("news", "crm", "msclkid=M")


def test_explain_says_why():
    lines = explain(JOURNEY[:4], SITE)
    assert [(line.visitor_id, line.channel, line.rule, line.is_touch) for line in lines] == [
        ("phone-1", "Paid Social", "paid_social", True), ("laptop-1", "Paid Search", "paid_search", True),
        ("phone-1", "Direct", "direct", False)]
    assert lines[0].source_reason == "utm_source='linkedin', utm_medium='paid_social' → linkedin / paid_social"
    assert lines[1].source_reason == "gclid present (Google Ads click) → google / cpc"
    assert lines[1].rule_reason.startswith("medium 'cpc' matches ^(.*cp.*|ppc|retargeting|paid.*)$ and source 'google'")
    assert (lines[0].landing_page, lines[0].pageviews, lines[2].source_reason) == (
        "/blog/ai", 2, "no campaign parameters, ad click id or referrer → (direct) / (none)")


# --- details ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("user_agent, expected", [
    (IPHONE, ("Mobile Safari", "iOS", "mobile")), (IPAD, ("Mobile Safari", "iOS", "tablet")),
    (ANDROID_PHONE, ("Chrome", "Android", "mobile")), (ANDROID_TABLET, ("Chrome", "Android", "tablet")),
    (DESKTOP, ("Chrome", "Windows", "desktop")), ("", (None, None, None)), ("curl/8.5.0", ("curl", None, "desktop")),
])
def test_device_browser_and_os_from_the_user_agent(user_agent, expected):
    assert device_of(user_agent) == expected


def test_landing_page_groups():
    groups = JourneySettings(landing_page_groups=(("/blog/*", "Blog posts"), ("/pricing*", "Pricing")))
    assert [landing_page_group(path, groups) for path in ("/blog/a/b", "/pricing", "/pricing/team", "/case-studies/x",
                                                          "/", None)] == [
        "Blog posts", "Pricing", "Pricing", "Case Studies", "Home", None]


def test_paths_are_truncated_in_the_middle():
    entries = [f"Channel {n}" for n in range(40)]
    text = join_capped(entries, " > ", 60)
    assert len(text) <= 60 and text.startswith("Channel 0 > ") and text.endswith(" > Channel 39")
    assert " > … > " in text
    assert join_capped(list("ABCDEF"), " > ", 17) == "A > B > … > E > F"
    assert join_capped(list("ABCDEF"), " > ", 21) == "A > B > C > D > E > F"
    assert join_capped(["x" * 100], " > ", 21) == "x" * 10 + "…" + "x" * 10
    assert join_capped(["a" * 30, "b", "c" * 30], " > ", 20) == "a" * 10 + "…" + "c" * 9
    assert join_capped(["a", "b"], " > ", 0) == "" and join_capped(["abc", "def"], "", 1, "…") == "…"


def test_a_long_journey_respects_the_cap_everywhere():
    hits = [page("v", at(hours=n), f"https://www.example.com/page-{n}?utm_source=s{n}&utm_medium=email"
                                   f"&utm_campaign=campaign-{n}") for n in range(100)]
    values = compute_variables(hits, at(days=10), JourneySettings(path_max_length=80))
    for name in PATH_VARIABLES:
        assert len(values[name]) <= 80
    assert values["source_path"].startswith("s0 > ") and values["source_path"].endswith(" > s99")
    assert values["visit_count"] == 100 and values["touchpoint_count"] == 100


def test_only_direct_sessions_give_direct_everywhere():
    hits = [page("v", at(days=d), "https://www.example.com/", "https://www.example.com/x" if d else "")
            for d in range(3)]
    values = compute_variables(hits, at(days=3), SITE)
    assert values["first_click_channel"] == values["last_click_channel"] == values["conversion_channel"] == "Direct"
    assert values["touchpoint_count"] == 0 and values["channel_path"] == "Direct > Direct > Direct"
    assert values["first_click_at"] == "2026-10-01T09:00:00Z" and values["last_click_at"] == "2026-10-03T09:00:00Z"


# --- properties -------------------------------------------------------------------------------------

TAGGED = ["https://www.example.com/?utm_source=google&utm_medium=cpc&utm_campaign=x",
          "https://www.example.com/p?gclid=x", "https://www.example.com/?fbclid=1&utm_campaign=shop",
          "https://www.example.com/?msclkid=1", "https://www.example.com/?utm_campaign=cross-network"]
MALFORMED = ["https://[::1", "http://%zz", "", "javascript:alert(1)", "//", "https://ex ample.com/?a=%%", "?utm_source"]
URLS = st.one_of(st.text(max_size=60), st.sampled_from(TAGGED + MALFORMED),
                 st.builds(lambda path, query: f"https://www.example.com/{path}?{query}",
                           st.text(max_size=20), st.text(max_size=40)))
REFERRERS = st.one_of(st.text(max_size=40), st.sampled_from([
    "https://www.google.com/", "https://t.co/x", "https://www.example.com/a", "https://sub.example.com/",
    "android-app://com.google.android.gm/", "https://[::1", ""]))
PARAMETERS = st.dictionaries(st.one_of(st.sampled_from(["utm_source", "utm_medium", "utm_campaign", "utm_id",
                                                        "gclid", "fbclid", "msclkid", "ttclid"]), st.text(max_size=8)),
                             st.text(max_size=12), max_size=4)
USER_AGENTS = st.one_of(st.text(max_size=60), st.sampled_from([IPHONE, IPAD, ANDROID_TABLET, DESKTOP, ""]))
TIMES = st.one_of(
    st.integers(0, 60 * 24 * 30).map(lambda minutes: T0 + timedelta(minutes=minutes)),
    st.integers(0, 60 * 24 * 30).map(lambda minutes: (T0 + timedelta(minutes=minutes)).replace(tzinfo=None)),
    st.integers(0, 60 * 24 * 30).map(lambda minutes: (T0 + timedelta(minutes=minutes)).astimezone(
        timezone(timedelta(hours=-5)))))
ANY_HITS = st.lists(st.builds(
    Hit, visitor_id=st.sampled_from(["a", "b", "c"]), occurred_at=TIMES,
    kind=st.sampled_from(["pageview", "pageview", "identify", "conversion", "other"]), url=URLS, referrer=REFERRERS,
    utm=PARAMETERS, click_ids=PARAMETERS, ga_client_id=st.sampled_from(["", "1.1", "2.2"]),
    ga_session_id=st.sampled_from(["", "10", "20"]), language=st.text(max_size=5), timezone=st.text(max_size=5),
    user_agent=USER_AGENTS, conversion_type=st.text(max_size=6), consent=st.text(max_size=8)), max_size=25)
ANY_SETTINGS = st.builds(
    JourneySettings,
    site_hosts=st.lists(st.one_of(st.text(max_size=15), st.just("example.com")), max_size=3).map(tuple),
    session_timeout=st.integers(1, 120).map(lambda minutes: timedelta(minutes=minutes)),
    path_max_length=st.integers(0, 300), path_separator=st.text(max_size=4), truncation_marker=st.text(max_size=3),
    landing_page_groups=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=3).map(tuple))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hits=ANY_HITS, settings_=ANY_SETTINGS, cutoff=TIMES, conversion_type=st.text(max_size=6))
def test_any_input_gives_every_variable_within_bounds(hits, settings_, cutoff, conversion_type):
    """Never raises on arbitrary URLs, referrers, parameters, user agents and settings; paths
    respect the cap; first click ≤ last click ≤ conversion; only-direct journeys read Direct."""
    values = compute_variables(hits, cutoff, settings_, conversion_type=conversion_type)
    assert set(values) == set(VARIABLES)
    for name in PATH_VARIABLES:
        assert values[name] is None or len(values[name]) <= settings_.path_max_length
    if values["visit_count"]:
        assert values["first_click_at"] <= values["last_click_at"] <= values["conversion_at"]
        assert values["first_visit_at"] <= values["first_click_at"]
        assert 0 <= values["touchpoint_count"] <= values["visit_count"]
    if values["visit_count"] and not values["touchpoint_count"]:
        assert values["first_click_channel"] == values["last_click_channel"] == values["conversion_channel"] == "Direct"
    assert explain(hits, settings_) is not None


DIRECT_HITS = st.lists(st.builds(
    Hit, visitor_id=st.sampled_from(["a", "b"]), occurred_at=TIMES,
    kind=st.sampled_from(["pageview", "identify", "conversion"]),
    url=st.builds(lambda path: "https://www.example.com/" + path, st.text(alphabet="abc/-", max_size=10)),
    referrer=st.sampled_from(["", "https://www.example.com/x", "https://blog.example.com/"]),
    user_agent=USER_AGENTS), min_size=1, max_size=25)


@settings(max_examples=100, deadline=None)
@given(hits=DIRECT_HITS)
def test_a_journey_of_direct_sessions_is_direct_everywhere(hits):
    values = compute_variables(hits, T0 + timedelta(days=31), SITE)
    assert values["first_click_channel"] == values["last_click_channel"] == values["conversion_channel"] == "Direct"
    assert values["touchpoint_count"] == 0 and values["channels_touched"] == "Direct"
    assert set(values["channel_path"].split(" > ")) == {"Direct"}
    assert values["first_click_source"] == values["last_click_source"] == "(direct)"
