"""From an ad click in a real browser to one conversion per stage in Google Ads and in Meta.

Headless Chromium runs ``t.js`` on a site of its own origin: one visitor lands from a Google ad
(gclid and gbraid in the URL; the page sets Consent Mode with gtag), another from a Meta ad
(fbclid; the page calls ``closedloop('ad_consent', ...)``). Both fill in the contact form, become
a Salesforce lead and a HubSpot contact, are qualified, and win deals. The emulators then hold
exactly one conversion per stage and person, with the platform's own hashes, the click, the
stage's time and the consent the page recorded.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
import time
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlmodel import select

from ads_support import AdsWorld
from sandbox.google_ads import QUALIFIED_ACTION, WON_ACTION
from state.models import Touchpoint
from support import DESKTOP_UA, free_port
from sync.capture.app import create_app
from sync.capture.server import BackgroundServer

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head><title>{title}</title>
<script>window.dataLayer = window.dataLayer || []; function gtag() {{ dataLayer.push(arguments); }}
if (location.search.indexOf('gclid=') >= 0 || sessionStorage.getItem('cm')) {{
  sessionStorage.setItem('cm', '1');
  gtag('consent', 'default', {{ad_user_data: 'denied', ad_personalization: 'denied'}});
  gtag('consent', 'update', {{ad_user_data: 'granted'}});
}}</script>
<script async src="{collector}/t.js"></script></head>
<body><h1>{title}</h1>{body}</body></html>"""
PAGES = {"landing.html": ("Landing", '<a id="contact" href="/contact.html">Contact us</a>'),
         "contact.html": ("Contact", '<form id="lead" action="/thanks.html" method="get">'
                                     '<input type="email" name="email"><button>Send</button></form>'),
         "thanks.html": ("Thanks", "<p>We will be in touch.</p>")}
GOOGLE = {"gclid": "Cj0KCQiAbrowser-gclid_1", "gbraid": "0AAAAAbrowser-gbraid"}
FBCLID = "IwAR1Browser_FbClid-CaseKept"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def visit_and_convert(browser, site: str, query: str, email: str, *, ad_consent: dict | None = None) -> None:
    context = browser.new_context(user_agent=DESKTOP_UA)
    page = context.new_page()
    page.goto(f"{site}/landing.html?{query}")
    page.wait_for_function("typeof window.closedloop === 'function'")
    if ad_consent is not None:
        page.evaluate("consent => window.closedloop('ad_consent', consent)", ad_consent)
    page.click("#contact")
    page.wait_for_function("typeof window.closedloop === 'function'")
    page.fill("input[name=email]", email)
    page.click("button")
    page.wait_for_url("**/thanks.html*")
    context.close()


def test_browser_visitors_from_google_and_meta_ads_end_as_one_conversion_per_stage(browser, tmp_path):
    world = AdsWorld(tmp_path)
    root = tmp_path / "site"
    root.mkdir()
    site_server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=site_server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{site_server.server_address[1]}"
    port = free_port()
    settings = world.config.settings
    config = dataclasses.replace(world.config, settings=settings.model_copy(update={
        "collector": settings.collector.model_copy(update={"port": port, "allowed_origins": [site],
                                                           "public_url": f"http://127.0.0.1:{port}"})}))
    app = create_app(config, world.store)
    collector = BackgroundServer(app, "127.0.0.1", port).start()
    try:
        for name, (title, body) in PAGES.items():
            (root / name).write_text(PAGE.format(title=title, body=body, collector=f"http://127.0.0.1:{port}"))
        world.create_fields()
        clicked = datetime.now(timezone.utc)
        world.google.record_click(at=clicked, gclid=GOOGLE["gclid"])
        world.meta.record_click(FBCLID, at=clicked)
        visit_and_convert(browser, site, "gclid={gclid}&gbraid={gbraid}&utm_source=google&utm_medium=cpc"
                          .format(**GOOGLE), "Ana.Google+ads@Gmail.com")
        visit_and_convert(browser, site, f"fbclid={FBCLID}", "meta.visitor@example.org",
                          ad_consent={"ad_user_data": True, "ad_personalization": False})
        deadline = time.monotonic() + 15
        while True:  # the beacons are stored asynchronously
            app.state.writer.flush()
            with world.store.session(readonly=True) as session:
                hits = session.exec(select(Touchpoint).order_by(Touchpoint.occurred_at)).all()
            if sum(1 for hit in hits if hit.kind == "identify") == 2:
                break
            assert time.monotonic() < deadline, [(h.kind, h.url) for h in hits]
            time.sleep(0.05)
        google_landing = next(h for h in hits if h.gclid)
        meta_landing = next(h for h in hits if h.fbclid)
        assert (google_landing.gbraid, google_landing.ad_user_data, google_landing.ad_personalization) == (
            GOOGLE["gbraid"], "granted", "denied")  # Consent Mode as the page set it
        meta_form = [h for h in hits if h.visitor_id == meta_landing.visitor_id and h.kind == "identify"][0]
        assert (meta_form.ad_user_data, meta_form.ad_personalization) == ("granted", "denied")

        lead = world.salesforce.create("Lead", {"LastName": "Google", "Company": "G", "Email": "ana.google+ads@gmail.com",
                                                "Phone": "(415) 555-0142"})
        contact = world.hubspot.create("contacts", {"email": "meta.visitor@example.org", "phone": "+44 20 7946 0958"})
        world.run("enrich")
        world.clock.advance(7 * 3600)  # Google takes a conversion only for a click at least 6 hours old
        world.salesforce.update("Lead", lead, {"Status": "Qualified"})
        world.hubspot.update("contacts", contact, {"lifecyclestage": "salesqualifiedlead"})
        world.run("conversions")
        qualified_at = world.clock.now()
        ids = world.salesforce.convert_lead(lead, opportunity={"Amount": 18000, "StageName": "Closed Won"})
        deal = world.hubspot.create("deals", {"dealname": "Meta deal", "amount": "4200"})
        world.hubspot.associate(deal, contact)
        world.hubspot.update("deals", deal, {"dealstage": "closedwon"})
        world.run("enrich")
        for _ in range(2):
            world.run("conversions")

        google = world.google.conversions()
        by_key = {c["transaction_id"]: c for c in google}
        assert sorted(by_key) == sorted([f"salesforce:{lead}:qualify_lead", f"hubspot:{contact}:qualify_lead",
                                         f"salesforce:{ids['opportunityId']}:won", f"hubspot:{deal}:won"])
        assert len(google) == 4  # exactly one per stage and person
        for key in (f"salesforce:{lead}:qualify_lead", f"salesforce:{ids['opportunityId']}:won"):
            item = by_key[key]
            assert item["ad_identifiers"] == {"gclid": GOOGLE["gclid"]}
            assert {i["kind"]: i["value"] for i in item["user_identifiers"]} == {
                "email": sha("anagoogle@gmail.com"), "phone": sha("+14155550142")}
            assert item["consent"] == {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_DENIED"}
        assert by_key[f"salesforce:{lead}:qualify_lead"]["conversion_action_id"] == QUALIFIED_ACTION
        assert by_key[f"salesforce:{ids['opportunityId']}:won"]["conversion_action_id"] == WON_ACTION
        assert by_key[f"salesforce:{ids['opportunityId']}:won"]["conversion_value"] == 18000.0
        assert by_key[f"hubspot:{contact}:qualify_lead"]["ad_identifiers"] == {}  # no Google click: email only
        stage_time = datetime.fromisoformat(by_key[f"salesforce:{lead}:qualify_lead"]["event_timestamp"]
                                            .replace("Z", "+00:00"))
        assert clicked < stage_time <= qualified_at

        meta = world.meta.events()
        assert sorted(e["event_id"] for e in meta) == sorted(by_key)  # one event per stage and person
        assert all(e["counted"] and e["action_source"] == "system_generated" for e in meta)
        from_meta_ad = [e for e in meta if e["event_id"].startswith("hubspot:")]
        meta_click_ms = int(meta_landing.occurred_at.timestamp() * 1000)
        for event in from_meta_ad:
            assert event["user_data"]["fbc"] == f"fb.1.{meta_click_ms}.{FBCLID}"
            assert event["user_data"]["em"] == [sha("meta.visitor@example.org")]
            assert event["user_data"]["ph"] == [sha("442079460958")]
            assert event["attributed_click"]["fbclid"] == FBCLID
        purchase = next(e for e in from_meta_ad if e["event_name"] == "Purchase")
        assert purchase["custom_data"]["value"] == 4200.0
        google_visitor = next(e for e in meta if e["event_id"] == f"salesforce:{lead}:qualify_lead")
        assert "fbc" not in google_visitor["user_data"] and google_visitor["event_name"] == "QualifiedLead"
        assert google_visitor["user_data"]["em"] == [sha("ana.google+ads@gmail.com")]  # Meta keeps dots and +tags
    finally:
        collector.stop()
        site_server.shutdown()
        site_server.server_close()
        world.close()
