"""Sessions, touches and every journey variable, on a worked example and under fuzzing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings, strategies as st

from sync.journey import Hit, JourneySettings, compute_variables, explain, join_capped, sessionize
from sync.traffic import derive
from sync.variables import VARIABLES

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
SITE = JourneySettings(site_hosts=("example.com",), landing_page_groups=(("/pricing*", "Pricing"),))


def at(**delta):
    return T0 + timedelta(**delta)


JOURNEY = [
    # phone: arrives from a LinkedIn ad, reads two pages
    Hit("phone001", at(), "pageview", "https://www.example.com/blog/ai?utm_source=linkedin&utm_medium=paid_social"
        "&utm_campaign=q4-launch&utm_content=video-a&utm_id=li-77&li_fat_id=LF1", user_agent=IPHONE,
        ga_client_id="111.1", language="en-US", timezone="America/New_York", consent="granted"),
    Hit("phone001", at(minutes=3), "pageview", "https://www.example.com/pricing",
        referrer="https://www.example.com/blog/ai", user_agent=IPHONE, ga_client_id="111.1"),
    # laptop, two days later: Google Ads click
    Hit("laptop01", at(days=2), "pageview", "https://www.example.com/pricing/enterprise?gclid=G-123",
        referrer="https://www.google.com/", user_agent=DESKTOP, ga_client_id="222.2", ga_session_id="1727946000"),
    # laptop, direct return, then a newsletter, then organic search and the form
    Hit("laptop01", at(days=4), "pageview", "https://www.example.com/", user_agent=DESKTOP, ga_client_id="222.2"),
    Hit("laptop01", at(days=5), "pageview", "https://www.example.com/case-studies?utm_source=newsletter&utm_medium=email"
        "&utm_campaign=nov-digest", user_agent=DESKTOP, ga_client_id="222.2"),
    Hit("laptop01", at(days=6), "pageview", "https://www.example.com/contact", referrer="https://www.bing.com/search?q=x",
        user_agent=DESKTOP, ga_client_id="222.2", language="en-GB", timezone="Europe/London", ga_session_id="1728205200"),
    Hit("laptop01", at(days=6, minutes=2), "identify", "https://www.example.com/contact", conversion_type="form",
        user_agent=DESKTOP, ga_client_id="222.2"),
    # after the lead was created: must not count
    Hit("laptop01", at(days=9), "pageview", "https://www.example.com/?utm_source=x&utm_medium=cpc", user_agent=DESKTOP),
]
CONVERSION = at(days=6, minutes=3)


def test_every_variable_on_a_worked_journey():
    values = compute_variables(JOURNEY, CONVERSION, SITE)
    assert set(values) == set(VARIABLES)
    assert values == {
        "first_click_channel": "Paid Social", "first_click_source": "linkedin", "first_click_medium": "paid_social",
        "first_click_campaign": "q4-launch", "first_click_campaign_id": "li-77", "first_click_term": None,
        "first_click_content": "video-a", "first_click_landing_page": "/blog/ai",
        "first_click_landing_page_url": JOURNEY[0].url, "first_click_landing_page_group": "Blog",
        "first_click_referrer": None, "first_click_click_id": "li_fat_id=LF1", "first_click_at": "2026-10-01T09:00:00Z",
        "first_click_device": "mobile",
        "last_click_channel": "Organic Search", "last_click_source": "bing", "last_click_medium": "organic",
        "last_click_campaign": None, "last_click_campaign_id": None, "last_click_term": None,
        "last_click_content": None, "last_click_landing_page": "/contact",
        "last_click_landing_page_url": "https://www.example.com/contact", "last_click_landing_page_group": "Contact",
        "last_click_referrer": "https://www.bing.com/search?q=x", "last_click_click_id": None,
        "last_click_at": "2026-10-07T09:00:00Z", "last_click_device": "desktop",
        "conversion_channel": "Organic Search", "conversion_source": "bing", "conversion_medium": "organic",
        "conversion_campaign": None, "conversion_term": None, "conversion_landing_page": "/contact",
        "conversion_page": "/contact", "conversion_type": "form", "conversion_at": "2026-10-07T09:03:00Z",
        "visitor_id": "laptop01", "ga_client_id": "222.2", "ga_session_id": "1728205200",
        "visit_count": 5, "pageview_count": 6, "avg_pageviews_per_visit": 1.2, "touchpoint_count": 4,
        "conversion_count": 1, "days_to_convert": 6.0, "first_visit_at": "2026-10-01T09:00:00Z",
        "last_visit_at": "2026-10-07T09:00:00Z",
        "channel_path": "Paid Social > Paid Search > Direct > Email > Organic Search",
        "source_path": "linkedin > google > (direct) > newsletter > bing",
        "campaign_path": "q4-launch > nov-digest",
        "channels_touched": "Paid Social, Paid Search, Direct, Email, Organic Search", "distinct_channel_count": 5,
        "pages_viewed": "/blog/ai | /pricing | /pricing/enterprise | / | /case-studies | /contact",
        "last_page_before_conversion": "/contact",
        "gclid": "G-123", "gbraid": None, "wbraid": None, "fbclid": None, "msclkid": None, "ttclid": None,
        "li_fat_id": "LF1", "first_click_browser": "Mobile Safari", "first_click_os": "iOS", "language": "en-GB",
        "timezone": "Europe/London", "consent": "granted",
    }


def test_the_conversion_time_cuts_the_journey():
    values = compute_variables(JOURNEY, at(days=2, minutes=5), SITE)
    assert values["last_click_channel"] == "Paid Search" and values["visit_count"] == 2
    assert values["conversion_type"] is None and values["conversion_page"] == "/pricing/enterprise"
    assert values["first_click_landing_page_group"] == "Blog"


def test_sessions_split_on_inactivity_and_on_a_new_campaign():
    hits = [Hit("v", at(), "pageview", "https://www.example.com/?utm_source=a&utm_medium=email"),
            Hit("v", at(minutes=10), "pageview", "https://www.example.com/x"),
            Hit("v", at(minutes=12), "pageview", "https://www.example.com/?utm_source=b&utm_medium=email"),
            Hit("v", at(minutes=13), "pageview", "https://www.example.com/?utm_source=b&utm_medium=email"),
            Hit("v", at(minutes=50), "pageview", "https://www.example.com/y")]
    sessions = sessionize(hits, SITE)
    assert [len(s.hits) for s in sessions] == [2, 2, 1]
    assert [s.traffic.source for s in sessions] == ["a", "b", "(direct)"]


def test_internal_referrer_is_not_a_touch_and_subdomains_are_internal():
    assert derive({}, {}, "https://shop.example.com/cart", ("example.com",)).is_direct
    assert derive({}, {}, "https://example.com.evil.net/", ("example.com",)).source == "example.com.evil.net"


def test_click_ids_and_referrers():
    assert (derive({}, {"msclkid": "m"}, "", ()).source, derive({}, {"msclkid": "m"}, "", ()).medium) == ("bing", "cpc")
    facebook = derive({}, {"fbclid": "f"}, "https://l.facebook.com/", ())
    assert (facebook.source, facebook.medium, facebook.channel.channel) == ("l.facebook.com", "referral",
                                                                             "Organic Social")
    assert derive({}, {"fbclid": "f"}, "", ()).channel.channel == "Organic Social"
    assert derive({}, {}, "https://www.google.co.uk/", ()).source == "google"
    assert derive({"utm_medium": "cpc"}, {}, "", ()).source == "(not set)"


def test_only_direct_sessions_give_direct_everywhere():
    hits = [Hit("v", at(days=d), "pageview", "https://www.example.com/") for d in range(3)]
    values = compute_variables(hits, at(days=3), SITE)
    assert values["first_click_channel"] == values["last_click_channel"] == values["conversion_channel"] == "Direct"
    assert values["touchpoint_count"] == 0 and values["channel_path"] == "Direct > Direct > Direct"


def test_no_hits_at_all():
    values = compute_variables([], T0, SITE, conversion_type="call")
    assert values["visit_count"] == 0 and values["first_click_channel"] is None and values["conversion_type"] == "call"


def test_paths_are_truncated_in_the_middle():
    entries = [f"Channel {n}" for n in range(40)]
    text = join_capped(entries, " > ", 60)
    assert len(text) <= 60 and text.startswith("Channel 0 > ") and text.endswith(" > Channel 39") and "…" in text
    assert join_capped(["x" * 100], " > ", 20) == "x" * 19 + "…"


def test_explain_says_why():
    lines = explain(JOURNEY[:3], SITE)
    assert [(e.channel, e.rule) for e in lines] == [("Paid Social", "paid_social"), ("Paid Search", "paid_search")]
    assert lines[1].source_reason == "gclid present (Google Ads click)"


urls = st.one_of(st.text(max_size=60),
                 st.builds(lambda path, query: f"https://www.example.com/{path}?{query}",
                           st.text(max_size=20), st.text(max_size=40)),
                 st.sampled_from(["https://www.example.com/?utm_source=google&utm_medium=cpc",
                                  "https://www.example.com/?gclid=x", "https://[::1", "http://%zz", ""]))
referrers = st.one_of(st.text(max_size=40), st.sampled_from(["https://www.google.com/", "https://t.co/x",
                                                             "https://www.example.com/a", ""]))
hits_strategy = st.lists(st.builds(
    lambda visitor, minutes, kind, url, referrer, utm, clicks, ua: Hit(visitor, T0 + timedelta(minutes=minutes), kind,
                                                                       url, referrer, utm, clicks, user_agent=ua),
    st.sampled_from(["a", "b", "c"]), st.integers(0, 60 * 24 * 30), st.sampled_from(["pageview", "identify",
                                                                                     "conversion"]),
    urls, referrers, st.dictionaries(st.sampled_from(["utm_source", "utm_medium", "utm_campaign", "utm_term"]),
                                     st.text(max_size=12), max_size=3),
    st.dictionaries(st.sampled_from(["gclid", "fbclid", "msclkid"]), st.text(max_size=8), max_size=2),
    st.text(max_size=30)), max_size=25)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hits=hits_strategy, cap=st.integers(16, 300), cutoff=st.integers(0, 60 * 24 * 31))
def test_properties(hits, cap, cutoff):
    settings_ = JourneySettings(site_hosts=("example.com",), path_max_length=cap)
    values = compute_variables(hits, T0 + timedelta(minutes=cutoff), settings_)
    for name in ("channel_path", "source_path", "campaign_path", "channels_touched", "pages_viewed"):
        assert values[name] is None or len(values[name]) <= cap
    if values["first_click_at"]:
        assert values["first_click_at"] <= values["last_click_at"] <= values["conversion_at"]
    if values["visit_count"] and values["touchpoint_count"] == 0:
        assert values["first_click_channel"] == values["last_click_channel"] == "Direct"
    assert set(values) == set(VARIABLES)
