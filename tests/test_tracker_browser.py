"""t.js in a real browser: headless Chromium visits a site that includes the snippet.

The site and the collector run on different loopback ports (different origins, as a real
site and its collector would), so CORS and third-party rules apply for real.
"""
from __future__ import annotations

import functools
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select

from state import Store
from state.models import Identity, Touchpoint
from support import DESKTOP_UA, free_port
from sync.capture.app import create_app
from sync.capture.identity import hash_email
from sync.capture.server import BackgroundServer
from sync.config import load_config

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head><title>{title}</title>
<script>document.cookie = "_ga=GA1.1.987654321.1700000000; path=/";
document.cookie = "_ga_SANDBOX01=GS2.1.s1732400000$o3$g1$t1732400100$j0$l0$h0; path=/";</script>
<script async src="{collector}/t.js"></script></head>
<body><h1>{title}</h1>{body}</body></html>"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def site(tmp_path):
    """Static pages on their own origin; returns a function (collector url) -> site url."""
    root = tmp_path / "site"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def build(collector: str) -> str:
        pages = {
            "landing.html": ("Landing", '<a id="pricing" href="/pricing.html">Pricing</a>'),
            "pricing.html": ("Pricing", '<a id="contact" href="/contact.html">Contact us</a>'),
            "contact.html": ("Contact", '<form id="lead" action="/thanks.html" method="get">'
                                        '<input type="email" name="work_email"><button>Send</button></form>'),
            "thanks.html": ("Thanks", "<p>We will be in touch.</p>"),
            "consent.html": ("Consent", ""),
        }
        for name, (title, body) in pages.items():
            (root / name).write_text(PAGE.format(title=title, body=body, collector=collector))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield build
    server.shutdown()
    server.server_close()


@pytest.fixture
def collector_for(tmp_path, write_config):
    """Start a collector for a site origin with extra [collector] settings."""
    started = []

    def start(site_url: str, extra: str = "") -> tuple[str, Store, object]:
        port = free_port()
        store = Store(f"sqlite:///{tmp_path / 'state.db'}")
        store.migrate()
        config = load_config(write_config(f"""
            [collector]
            port = {port}
            public_url = "http://127.0.0.1:{port}"
            allowed_origins = ["{site_url}"]
            {extra}
            [ga4]
            measurement_id = "G-SANDBOX01"
        """), environ={})
        app = create_app(config, store)
        server = BackgroundServer(app, "127.0.0.1", port).start()
        started.append((server, store))
        return f"http://127.0.0.1:{port}", store, app.state.writer

    yield start
    for server, store in started:
        server.stop()
        store.dispose()


def wait_for(store: Store, writer, predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        writer.flush()
        with store.session(readonly=True) as session:
            hits = session.exec(select(Touchpoint).order_by(Touchpoint.id)).all()
        if predicate(hits):
            return hits
        assert time.monotonic() < deadline, f"timed out; stored so far: {[(h.kind, h.url) for h in hits]}"
        time.sleep(0.05)


def test_journey_across_two_sessions_and_a_form(browser, site, collector_for):
    site_url = site("http://127.0.0.1:0")  # placeholder, rebuilt below once the collector port is known
    collector_url, store, writer = collector_for(site_url)
    site(collector_url)
    context = browser.new_context(user_agent=DESKTOP_UA, locale="en-GB", timezone_id="Europe/London")
    page = context.new_page()
    # The browser's clock starts two hours back so that jumping 45 minutes ahead still
    # leaves its timestamps in the collector's past (future beacons are rejected).
    page.clock.install(time=time.time() - 7200)

    # 1. Arrival from a newsletter, then an internal click: one session.
    page.goto(f"{site_url}/landing.html?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
              referer="https://mail.example.net/")
    wait_for(store, writer, lambda hits: len(hits) == 1)
    page.click("#pricing")
    page.wait_for_url("**/pricing.html")
    wait_for(store, writer, lambda hits: len(hits) == 2)

    # 2. Back 45 minutes later from a Google ad: a new session.
    page.clock.fast_forward("45:00")
    page.goto(f"{site_url}/landing.html?gclid=Cj0KCQ-test", referer="https://www.google.com/")
    wait_for(store, writer, lambda hits: len(hits) == 3)

    # 3. The contact form: hidden fields added, email identified as a form conversion.
    page.goto(f"{site_url}/contact.html")
    page.fill("input[name=work_email]", "  Sam.Buyer@Example.com ")
    page.click("button")
    page.wait_for_url("**/thanks.html**")
    hits = wait_for(store, writer, lambda hits: any(h.kind == "identify" for h in hits) and len(hits) >= 6)

    visitor_cookie = next(c["value"] for c in context.cookies() if c["name"] == "_cl_vid")
    cookie = next(c for c in context.cookies() if c["name"] == "_cl_vid")
    assert cookie["sameSite"] == "Lax" and cookie["expires"] - time.time() > 390 * 86400
    submitted = parse_qs(urlsplit(page.url).query)
    assert submitted["cl_visitor_id"] == [visitor_cookie]
    assert submitted["cl_ga_client_id"] == ["987654321.1700000000"]

    by_kind = [(h.kind, urlsplit(h.url).path) for h in hits]
    assert by_kind == [("pageview", "/landing.html"), ("pageview", "/pricing.html"), ("pageview", "/landing.html"),
                       ("pageview", "/contact.html"), ("identify", "/contact.html"), ("pageview", "/thanks.html")]
    first, internal, second, contact, identify, thanks = hits
    assert {h.visitor_id for h in hits} == {visitor_cookie}
    assert (first.utm_source, first.utm_medium, first.utm_campaign) == ("newsletter", "email", "spring")
    assert first.referrer == "https://mail.example.net/"
    assert internal.referrer == f"{site_url}/landing.html?utm_source=newsletter&utm_medium=email&utm_campaign=spring"
    assert second.gclid == "Cj0KCQ-test" and second.referrer == "https://www.google.com/"
    assert first.session_key == internal.session_key != second.session_key == contact.session_key
    assert all(h.ga_client_id == "987654321.1700000000" and h.ga_session_id == "1732400000" for h in hits)
    assert first.language == "en-GB" and first.timezone == "Europe/London" and first.user_agent == DESKTOP_UA
    assert identify.conversion_type == "form"
    with store.session(readonly=True) as session:
        emails = session.exec(select(Identity.value).where(Identity.kind == "email_sha256")).all()
    assert emails == [hash_email("sam.buyer@example.com")]
    context.close()


def test_consent_gates_cookies_and_beacons(browser, site, collector_for):
    site_url = site("http://127.0.0.1:0")
    collector_url, store, writer = collector_for(site_url, "require_consent = true")
    site(collector_url)
    context = browser.new_context(user_agent=DESKTOP_UA)
    page = context.new_page()
    page.goto(f"{site_url}/consent.html?utm_source=partner")
    page.wait_for_function("typeof window.closedloop === 'function'")
    time.sleep(0.3)
    writer.flush()
    assert [c["name"] for c in context.cookies() if c["name"].startswith("_cl_")] == []
    with store.session(readonly=True) as session:
        assert session.exec(select(Touchpoint)).all() == []

    page.evaluate("closedloop('consent', true)")
    hits = wait_for(store, writer, lambda hits: len(hits) == 1)
    assert hits[0].utm_source == "partner" and hits[0].consent == "granted"
    assert any(c["name"] == "_cl_vid" for c in context.cookies())

    page.evaluate("closedloop('consent', false)")
    assert [c["name"] for c in context.cookies() if c["name"] == "_cl_vid"] == []
    page.evaluate("closedloop('pageview')")
    page.evaluate("closedloop('conversion', {type: 'call', phone: '+44 20 7946 0000'})")
    time.sleep(0.3)
    assert len(wait_for(store, writer, lambda hits: True)) == 1
    context.close()


def test_api_calls_identify_and_conversion(browser, site, collector_for):
    site_url = site("http://127.0.0.1:0")
    collector_url, store, writer = collector_for(site_url)
    site(collector_url)
    context = browser.new_context(user_agent=DESKTOP_UA)
    page = context.new_page()
    page.goto(f"{site_url}/landing.html")
    page.wait_for_function("typeof window.closedloop === 'function'")
    page.evaluate("closedloop('identify', {email: 'chat.user@example.org'})")
    page.evaluate("closedloop('conversion', {type: 'chat', email: 'chat.user@example.org'})")
    hits = wait_for(store, writer, lambda hits: len(hits) == 3)
    assert [(h.kind, h.conversion_type) for h in hits] == [("pageview", None), ("identify", None),
                                                           ("conversion", "chat")]
    context.close()
