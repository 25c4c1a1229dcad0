"""The identity trust model: a stranger's identify beacon cannot take over someone's attribution.

The attack (issue 15): an unauthenticated identify beacon naming a victim's email, dated 1970,
from the attacker's own browser. It must not rewrite the victim's first click in the CRM, nor
send the victim's purchase to GA4 under the attacker's client id. Everything runs as a user
runs it: beacons through the real collector app, the sandbox CRMs and GA4 emulator through
the real client libraries, the real jobs.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from starlette.testclient import TestClient

from state.models import LeadSync
from support import DESKTOP_UA
from sync.capture.app import create_app
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.stitching import MAX_VISITORS, Clues, find_people, find_person, touchpoints_for
from sync.capture.writer import BeaconWriter

SITE = "http://localhost:8000"  # the sandbox config's allowed origin
VICTIM_GA, ATTACKER_GA = "1111111111.1700000000", "999999999.1600000000"


def send(client, visitor, *, minutes_ago=None, ts=None, kind="pageview", url=f"{SITE}/", referrer="", ga=None,
         **extra):
    stamp = ts if ts is not None else int((time.time() - (minutes_ago or 0) * 60) * 1000)
    body = {"v": 1, "type": kind, "vid": visitor, "ts": stamp, "url": url, "referrer": referrer, **extra}
    if ga:
        body["ga_client_id"] = f"GA1.1.{ga}"
    response = client.post("/collect", content=json.dumps(body),
                           headers={"Content-Type": "text/plain", "Origin": SITE, "User-Agent": DESKTOP_UA})
    assert response.status_code == 204, response.text


def test_a_strangers_claim_changes_neither_the_first_click_nor_the_purchases_client_id(world):
    with TestClient(create_app(world.config, world.store)) as collector:
        # The victim: a Google Ads click two days ago, a direct return, then the lead form.
        for who, email in (("victimsf01", "victim@sf.example"), ("victimhs01", "victim@hs.example")):
            send(collector, who, minutes_ago=2 * 24 * 60, ga=VICTIM_GA if who.endswith("sf01") else "2222.1700000000",
                 url=f"{SITE}/pricing?utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=Cj0victim")
            send(collector, who, minutes_ago=60, url=f"{SITE}/demo")
            send(collector, who, minutes_ago=1, kind="identify", email=email, conversion_type="form")
        # Salesforce: web-to-lead with the tracker's hidden fields (strong). HubSpot: the email only.
        lead = world.salesforce.create("Lead", {"LastName": "Victim", "Company": "V", "Email": "victim@sf.example",
                                                "CL_Visitor_Id__c": "victimsf01", "CL_GA_Client_Id__c": VICTIM_GA})
        contact = world.hubspot.create("contacts", {"email": "victim@hs.example"})
        # The attacker, before closedloop has even enriched the new records: their own browser,
        # their own campaign, and identify beacons naming the victims' emails, dated 1970.
        for email in ("victim@sf.example", "victim@hs.example"):
            send(collector, "attacker01", ts=0, ga=ATTACKER_GA, url=f"{SITE}/?utm_source=attacker&utm_medium=cpc")
            send(collector, "attacker01", ts=0, kind="identify", email=email, conversion_type="form", ga=ATTACKER_GA)
            send(collector, "attacker01", ga=ATTACKER_GA, url=f"{SITE}/?utm_source=attacker&utm_medium=cpc")

    world.run("enrich")
    sf, hs = world.salesforce.record(lead), world.hubspot.record("contacts", contact)
    assert (sf["CL_First_Click_Channel__c"], sf["CL_First_Click_Source__c"], sf["CL_First_Click_Campaign__c"]) == \
        ("Paid Search", "google", "brand")
    assert (hs["cl_first_click_channel"], hs["cl_first_click_source"], hs["cl_first_click_campaign"]) == \
        ("Paid Search", "google", "brand")
    assert sf["CL_GA_Client_Id__c"] == VICTIM_GA and sf["CL_Visitor_Id__c"] == "victimsf01"
    assert hs["cl_visitor_id"] == "victimhs01" and hs["cl_ga_client_id"] == "2222.1700000000"
    with world.store.session(readonly=True) as session:
        sf_sync = session.get(LeadSync, ("salesforce", "Lead", lead))
        hs_sync = session.get(LeadSync, ("hubspot", "contacts", contact))
    # The attacker's device is a claim: its touches count from its claim (dated 1970, clamped to
    # six hours before it arrived), never before; through it, each victim's device is a claim of
    # the other victim's record.
    assert sf_sync.visitor_ids == ["victimsf01"] and set(sf_sync.claims) == {"attacker01", "victimhs01"}
    assert hs_sync.visitor_ids == ["victimhs01"] and set(hs_sync.claims) == {"attacker01", "victimsf01"}
    claimed = datetime.fromisoformat(sf_sync.claims["attacker01"])
    assert abs(claimed - (datetime.now(timezone.utc) - timedelta(hours=6))) < timedelta(minutes=1)

    # Both win a deal: the purchases go to GA4 under the victims' own client ids.
    ids = world.salesforce.convert_lead(lead, opportunity={"Amount": 5000, "StageName": "Negotiation/Review"})
    world.run("enrich")
    world.salesforce.update("Opportunity", ids["opportunityId"], {"StageName": "Closed Won"})
    deal = world.hubspot.create("deals", {"dealname": "V", "amount": "700"})
    world.hubspot.associate(deal, contact)
    world.hubspot.update("deals", deal, {"dealstage": "closedwon"})
    world.run("revenue")
    purchases = {event["params"]["transaction_id"]: event for event in world.ga4.event_log()
                 if event["name"] == "purchase"}
    assert purchases[f"salesforce:{ids['opportunityId']}"]["client_id"] == VICTIM_GA
    assert purchases[f"hubspot:{deal}"]["client_id"] == "2222.1700000000"
    assert {event["params"]["first_click_source"] for event in purchases.values()} == {"google"}


T0 = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)


def hit(visitor, minutes, *, kind="pageview", email=None, ga=None, url="https://www.example.com/", received=None):
    """A beacon dated T0 + ``minutes`` that arrived then (or ``received`` minutes after T0)."""
    return Hit(visitor_id=visitor, kind=kind, occurred_at=T0 + timedelta(minutes=minutes), url=url, referrer="",
               utm={}, click_ids={}, ga_client_id=ga, ga_session_id=None, language=None, timezone=None,
               user_agent="UA", conversion_type="form" if kind == "identify" else None, consent=None,
               session_key=None, email_sha256=hash_email(email) if email else None,
               received_at=T0 + timedelta(minutes=minutes if received is None else received))


@pytest.fixture
def stored(store):
    def write(*hits):
        BeaconWriter(store).write(list(hits))
    return write


def test_a_claimed_devices_touches_count_only_from_its_claim(store, stored):
    stored(hit("laptop0001", 0, ga="111.1"), hit("laptop0001", 10, kind="identify", email="ann@example.com"),
           hit("phone00001", 20), hit("phone00001", 30, kind="identify", email="ann@example.com"),
           hit("phone00001", 40))
    with store.session(readonly=True) as session:
        person = find_person(session, visitor_ids=["laptop0001"], email_hashes=[hash_email("ann@example.com")])
        journey = touchpoints_for(session, person.visitor_ids, claims=person.claims)
    assert person.trusted == {"laptop0001"} and person.claims == {"phone00001": T0 + timedelta(minutes=30)}
    assert [(h.visitor_id, h.occurred_at - T0) for h in journey] == [
        ("laptop0001", timedelta(0)), ("laptop0001", timedelta(minutes=10)), ("phone00001", timedelta(minutes=30)),
        ("phone00001", timedelta(minutes=40))]


def test_without_a_strong_clue_the_first_claimant_is_trusted_if_it_claimed_by_the_conversion(store, stored):
    """The claim that arrived first anchors the person, whatever the claims' own dates say, as
    long as it is dated by the conversion."""
    stored(hit("first00001", 0), hit("first00001", 5, kind="identify", email="bo@example.com"),
           hit("second0001", 1), hit("second0001", 1, received=60, kind="identify", email="bo@example.com"))
    digest = hash_email("bo@example.com")

    def person(anchor_before_minutes):
        clue = Clues(email_hashes=(digest,), anchor_before=T0 + timedelta(minutes=anchor_before_minutes))
        with store.session(readonly=True) as session:
            return find_people(session, {"lead": clue})["lead"]

    assert person(10).trusted == {"first00001"} and set(person(10).claims) == {"second0001"}
    assert person(2).trusted == {"second0001"}  # the only claim dated by the conversion
    assert person(0.5).trusted == set() and set(person(0.5).claims) == {"first00001", "second0001"}


def test_a_chain_of_claims_counts_from_its_latest_link(store, stored):
    """The attacker's second browser shares the attacker's own email with the first, which later
    claimed the victim's: the second browser joins the victim only from that later claim."""
    stored(hit("victim0001", 0, kind="identify", email="victim@example.com"),
           hit("attacker01", 10, kind="identify", email="me@attacker.example"),
           hit("attacker02", 20, kind="identify", email="me@attacker.example"),
           hit("attacker01", 500, kind="identify", email="victim@example.com"))
    with store.session(readonly=True) as session:
        person = find_person(session, visitor_ids=["victim0001"], email_hashes=[hash_email("victim@example.com")])
    assert person.trusted == {"victim0001"}
    assert person.claims == {"attacker01": T0 + timedelta(minutes=500), "attacker02": T0 + timedelta(minutes=500)}


def test_the_device_cap_keeps_the_trusted_and_the_earliest_devices(store, stored):
    """Forty browsers claim one address; the person's own device sorts last by id and claimed
    last, yet it is kept, and so are the 24 claimants that arrived first, not the lowest ids
    (nor those that dated their claims earliest)."""
    claimants = [hit(f"aaaa{n:06d}", n, received=1000 - n, kind="identify", email="shared@example.com")
                 for n in range(40)]
    stored(*claimants, hit("zzzzowner1", 2000, kind="identify", email="shared@example.com"))
    with store.session(readonly=True) as session:
        person = find_person(session, visitor_ids=["zzzzowner1"], email_hashes=[hash_email("shared@example.com")])
    assert person.truncated and len(person.visitor_ids) == MAX_VISITORS
    assert "zzzzowner1" in person.trusted
    assert person.visitor_ids - {"zzzzowner1"} == {f"aaaa{n:06d}" for n in range(16, 40)}
