"""A thousand leads across both CRMs: bursts, leads created mid-poll, API calls near the floor,
and opportunities/deals that inherit their contact's attribution."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from support import World
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.writer import BeaconWriter

SOURCES = [  # (landing URL, referrer, expected first-click channel)
    ("https://www.example.com/?utm_source=google&utm_medium=cpc&utm_campaign=brand", "", "Paid Search"),
    ("https://www.example.com/blog", "https://www.google.com/", "Organic Search"),
    ("https://www.example.com/?utm_source=newsletter&utm_medium=email", "", "Email"),
    ("https://www.example.com/", "https://www.linkedin.com/feed/", "Organic Social"),
    ("https://www.example.com/", "", "Direct"),
]
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def journeys(world: World, prefix: str, count: int) -> None:
    """Visitor i lands from SOURCES[i % 5] a day ago, returns directly, then fills a form."""
    now = datetime.now(timezone.utc)
    hits = []
    for i in range(count):
        url, referrer, _ = SOURCES[i % len(SOURCES)]
        visitor = f"{prefix}{i:06d}"
        common = dict(utm={}, click_ids={}, ga_client_id=f"{abs(hash(prefix)) % 1000 + 1}{i:06d}.1700000000",
                      ga_session_id=None,
                      language="en", timezone="UTC", user_agent=UA, consent=None, session_key=None)
        hits += [Hit(visitor, "pageview", now - timedelta(days=1), url, referrer, conversion_type=None, **common),
                 Hit(visitor, "pageview", now - timedelta(minutes=10), "https://www.example.com/pricing", "",
                     conversion_type=None, **common),
                 Hit(visitor, "identify", now - timedelta(minutes=9), "https://www.example.com/contact", "",
                     conversion_type="form", email_sha256=hash_email(f"{visitor}@leads.example"), **common)]
    BeaconWriter(world.store).write(hits)


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path)
    world.create_fields()
    world.connections.adapter("salesforce").query_batch = 200  # several pages per poll
    yield world
    world.close()


def test_thousand_leads_in_bursts_and_mid_poll(world):
    journeys(world, "sfv", 500)
    journeys(world, "hsv", 500)
    sf, hs = world.salesforce, world.hubspot
    sf.clock.freeze()  # a burst: one import, one timestamp
    sf_leads = sf.seed("Lead", [{"LastName": f"L{i}", "Company": "X", "Email": f"sfv{i:06d}@leads.example"}
                                for i in range(400)])
    sf.clock.unfreeze()
    hs.clock.freeze()
    hs_contacts = hs.seed("contacts", [{"email": f"hsv{i:06d}@leads.example"} for i in range(400)])
    hs.clock.unfreeze()
    late = {"salesforce": [], "hubspot": []}

    def salesforce_rep(request):  # while the daemon pages through leads, 100 more arrive
        if "/query/01g" in request.path and not late["salesforce"]:
            late["salesforce"] = sf.seed("Lead", [{"LastName": f"M{i}", "Company": "Y",
                                                   "Email": f"sfv{i:06d}@leads.example"} for i in range(400, 500)])

    searches = []

    def hubspot_form(request):
        searches.append(request.path) if request.path.endswith("/search") else None
        if len(searches) == 2 and not late["hubspot"]:
            late["hubspot"] = hs.seed("contacts", [{"email": f"hsv{i:06d}@leads.example"} for i in range(400, 500)])

    sf.before_request, hs.before_request = salesforce_rep, hubspot_form
    sf.reset_log(), hs.reset_log()
    first = world.run("enrich")
    sf.before_request = hs.before_request = None
    second = world.run("enrich")  # picks up whatever arrived after its pages had passed (and re-reads its look-back)
    read = first.result.records_read + second.result.records_read

    for crm, ids, get, field, prefix in (("salesforce", sf_leads + late["salesforce"], sf.record,
                                          "CL_First_Click_Channel__c", "sfv"),
                                         ("hubspot", hs_contacts + late["hubspot"],
                                          lambda i: hs.record("contacts", i), "cl_first_click_channel", "hsv")):
        assert len(ids) == 500
        for n, record_id in enumerate(ids):
            record = get(record_id)
            assert record[field] == SOURCES[n % len(SOURCES)][2], (crm, n)
            visits = record["CL_Visit_Count__c" if crm == "salesforce" else "cl_visit_count"]
            assert str(visits) == "2"

    # API calls: one write call per 200 (Salesforce) / 100 (HubSpot) records written, plus
    # paging: a page of 200 per call, plus an empty last page and a partial one per object.
    assert sf.api_calls("composite/sobjects") <= math.ceil(500 / 200) + 1
    assert hs.api_calls("batch/update") <= math.ceil(500 / 100) + 2
    pages = math.ceil(read / 200) + 2 * 3 * 2  # runs × objects × (empty + partial)
    assert sf.api_calls("/query") + hs.api_calls("/search") <= pages, (read, pages)
    world.salesforce.reset_log(), world.hubspot.reset_log()
    world.run("enrich")
    assert sf.api_calls("composite/sobjects") == 0 and hs.api_calls("batch/update") == 0


def test_opportunities_and_deals_inherit_their_contacts_attribution(world):
    journeys(world, "opp", 2)
    sf, hs = world.salesforce, world.hubspot
    lead = sf.create("Lead", {"LastName": "Opp", "Company": "Z", "Email": "opp000000@leads.example"})
    world.run("enrich")
    ids = sf.convert_lead(lead, opportunity={"Amount": 5000})
    contact = hs.create("contacts", {"email": "opp000001@leads.example"})
    world.run("enrich")
    deal = hs.create("deals", {"dealname": "Deal", "amount": "700"})
    hs.associate(deal, contact)
    world.run("enrich")
    opportunity = sf.record(ids["opportunityId"])
    assert opportunity["CL_First_Click_Channel__c"] == "Paid Search"
    assert opportunity["CL_Conversion_Type__c"] == "form"
    assert sf.record(ids["contactId"])["CL_First_Click_Channel__c"] == "Paid Search"
    assert hs.record("deals", deal)["cl_first_click_channel"] == "Organic Search"
