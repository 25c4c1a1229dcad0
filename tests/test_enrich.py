"""The enrich job against both sandbox CRMs, through the real client libraries."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from state.models import DeadLetter, LeadSync
from support import World
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.writer import BeaconWriter

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path)
    world.create_fields()
    world.salesforce.reset_log()
    world.hubspot.reset_log()
    yield world
    world.close()


def visit(world, visitor, minutes_ago, url, *, referrer="", kind="pageview", email=None, ga="111.222"):
    moment = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    hit = Hit(visitor_id=visitor, kind=kind, occurred_at=moment, url=url, referrer=referrer, utm={}, click_ids={},
              ga_client_id=ga, ga_session_id=None, language="en-US", timezone="America/Chicago", user_agent=PHONE,
              conversion_type="form" if kind == "identify" else None, consent=None, session_key=None,
              email_sha256=hash_email(email) if email else None)
    BeaconWriter(world.store).write([hit])


def journey(world, visitor, email):
    visit(world, visitor, 3 * 24 * 60, "https://www.example.com/blog?utm_source=google&utm_medium=cpc"
                                       "&utm_campaign=brand&utm_term=attribution+software")
    visit(world, visitor, 60, "https://www.example.com/pricing", referrer="https://www.bing.com/")
    visit(world, visitor, 5, "https://www.example.com/demo", kind="identify", email=email)


def test_salesforce_lead_gets_its_journey_and_a_second_run_writes_nothing(world):
    journey(world, "visitor0001", "pat@acme.example")
    lead = world.salesforce.create("Lead", {"LastName": "Pat", "Company": "Acme", "Email": "pat@acme.example",
                                            "CL_Visitor_Id__c": "visitor0001"})
    world.run("enrich")
    record = world.salesforce.record(lead)
    assert record["CL_First_Click_Channel__c"] == "Paid Search"
    assert record["CL_First_Click_Source__c"] == "google" and record["CL_First_Click_Term__c"] == "attribution software"
    assert record["CL_Last_Click_Channel__c"] == "Organic Search" and record["CL_Visit_Count__c"] == 3
    assert record["CL_Conversion_Type__c"] == "form" and record["CL_Channel_Path__c"] == "Paid Search > Organic Search > Direct"
    assert record["CL_First_Click_Device__c"] == "mobile"
    assert record["CL_GA_Client_Id__c"] == "111.222"
    writes = world.salesforce.api_calls("composite/sobjects")
    assert writes == 1
    world.run("enrich")  # our own write bumped SystemModstamp: the poll sees the lead again
    assert world.salesforce.api_calls("composite/sobjects") == writes
    with world.store.session(readonly=True) as session:
        sync = session.get(LeadSync, ("salesforce", "Lead", lead))
    assert sync.status == "enriched" and sync.visitor_ids == ["visitor0001"]
    assert sync.written["CL_First_Click_Channel__c"] == "Paid Search"


def test_hubspot_contact_matched_by_email_hash(world):
    journey(world, "visitor0002", "sam@beta.example")
    contact = world.hubspot.create("contacts", {"email": "Sam@Beta.example", "firstname": "Sam"})
    world.run("enrich")
    record = world.hubspot.record("contacts", contact)
    assert record["cl_first_click_source"] == "google" and record["cl_visitor_id"] == "visitor0002"
    assert record["cl_visit_count"] == "3" and record["cl_first_click_at"].endswith("Z")


def test_lead_waits_for_its_visitor_then_gives_up(world):
    lead = world.salesforce.create("Lead", {"LastName": "Late", "Company": "Gamma", "Email": "late@gamma.example"})
    world.run("enrich")
    with world.store.session(readonly=True) as session:
        assert session.get(LeadSync, ("salesforce", "Lead", lead)).status == "pending_visitor"
    visit(world, "visitor0003", 1, "https://www.example.com/?utm_source=newsletter&utm_medium=email",
          kind="identify", email="late@gamma.example")
    with world.store.session() as session:  # a minute later
        sync = session.get(LeadSync, ("salesforce", "Lead", lead))
        sync.last_checked_at -= timedelta(minutes=2)
        session.add(sync)
    world.run("enrich")
    assert world.salesforce.record(lead)["CL_First_Click_Channel__c"] == "Email"
    orphan = world.salesforce.create("Lead", {"LastName": "Nobody", "Company": "Delta"})
    world.run("enrich")
    with world.store.session() as session:
        sync = session.get(LeadSync, ("salesforce", "Lead", orphan))
        sync.first_seen_at -= timedelta(hours=25)
        sync.last_checked_at -= timedelta(minutes=2)
        session.add(sync)
    world.run("enrich")
    with world.store.session(readonly=True) as session:
        assert session.get(LeadSync, ("salesforce", "Lead", orphan)).status == "no_web_journey"


def test_partial_failures_are_dead_lettered_and_the_rest_lands(world):
    for n in range(3):
        journey(world, f"visitor10{n:02d}", f"p{n}@x.example")
    leads = [world.salesforce.create("Lead", {"LastName": f"P{n}", "Company": "X", "Email": f"p{n}@x.example"})
             for n in range(3)]
    world.salesforce.inject("validation", record_ids=[leads[1]], method="PATCH")
    world.run("enrich")
    assert world.salesforce.record(leads[0])["CL_First_Click_Source__c"] == "google"
    assert world.salesforce.record(leads[1]).get("CL_First_Click_Source__c") is None
    assert world.salesforce.record(leads[2])["CL_First_Click_Source__c"] == "google"
    with world.store.session(readonly=True) as session:
        [dead] = session.exec(select(DeadLetter)).all()
    assert (dead.crm, dead.record_id, dead.code) == ("salesforce", leads[1], "FIELD_CUSTOM_VALIDATION_EXCEPTION")


def test_a_deleted_hubspot_property_costs_three_calls_for_a_batch(world):
    """Someone deletes a mapped property in HubSpot: the first batch write is refused as
    PROPERTY_DOESNT_EXIST for every record; one schema re-read and one resend without it land
    the rest (splitting the batch to find "the bad record" used to cost about 199 calls)."""
    import requests

    world.connections.adapter("hubspot").describe_fields("contacts")  # a running daemon has read the schema
    emails = [f"gone{n}@x.example" for n in range(100)]
    for n, email in enumerate(emails):
        visit(world, f"visitor9{n:03d}", 5, "https://www.example.com/?utm_source=google&utm_medium=cpc",
              kind="identify", email=email, ga=f"{n}.1700000000")
    contacts = [world.hubspot.create("contacts", {"email": email}) for email in emails]
    deleted = requests.delete(f"{world.hubspot.url}/crm/v3/properties/contacts/cl_first_click_channel", timeout=10,
                              headers={"Authorization": f"Bearer {world.hubspot.credentials['access_token']}"})
    assert deleted.status_code == 204
    world.hubspot.reset_log()
    outcome = world.run("enrich")
    assert outcome.result.dead_letters == 0
    writes = [e for e in world.hubspot.request_log() if e["endpoint"] in (
        "POST /crm/v3/objects/contacts/batch/update", "GET /crm/v3/properties/contacts")]
    assert [(e["endpoint"].split()[1].rsplit("/", 1)[-1], e["status"], len((e["body"] or {}).get("inputs", [])))
            for e in writes] == [("update", 400, 100), ("contacts", 200, 0), ("update", 200, 100)]
    assert all("cl_first_click_channel" not in item["properties"] for e in writes[2:] for item in e["body"]["inputs"])
    record = world.hubspot.record("contacts", contacts[42])
    assert record["cl_first_click_source"] == "google" and "cl_first_click_channel" not in record
    with world.store.session(readonly=True) as session:
        sync = session.get(LeadSync, ("hubspot", "contacts", contacts[42]))
        assert "cl_first_click_channel" not in sync.written and sync.written["cl_first_click_source"] == "google"
        assert session.exec(select(DeadLetter)).all() == []
    world.hubspot.reset_log()
    person = world.hubspot.create("contacts", {"email": emails[0].replace("gone0", "later")})
    visit(world, "visitor9999", 1, "https://www.example.com/?utm_source=bing&utm_medium=cpc", kind="identify",
          email=emails[0].replace("gone0", "later"), ga="999.1700000000")
    world.run("enrich")  # later runs know the property is gone: no refused write at all
    assert world.hubspot.record("contacts", person)["cl_first_click_source"] == "bing"
    assert all(e["status"] < 400 for e in world.hubspot.request_log())
