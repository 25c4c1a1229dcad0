"""Won-deal revenue and lifecycle stages into the GA4 emulator, against both sandbox CRMs."""
from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import requests
from sqlmodel import select

from state.models import DealStageRecord, OutboxEvent, RevenueLedger
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.writer import BeaconWriter

UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", re.I)


def browse(world, visitor, client_id, url, referrer="", *, minutes_ago=60 * 24, email=None):
    """A visit as both the tracker (closedloop) and gtag.js (GA4) record it."""
    moment = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    common = dict(utm={}, click_ids={}, ga_client_id=client_id, ga_session_id=None, language="en", timezone="UTC",
                  user_agent=UA, consent=None, session_key=None)
    hits = [Hit(visitor, "pageview", moment, url, referrer, conversion_type=None, **common)]
    if email:
        hits.append(Hit(visitor, "identify", moment + timedelta(minutes=2), url, "", conversion_type="form",
                        email_sha256=hash_email(email), **common))
    BeaconWriter(world.store).write(hits)
    world.ga4.record_page_view(client_id, url, referrer)


def won_salesforce_deal(world, n, amount, url, referrer=""):
    email = f"buyer{n}@sf.example"
    browse(world, f"sfvisitor{n:03d}", f"{1000 + n}.1700000000", url, referrer, email=email)
    lead = world.salesforce.create("Lead", {"LastName": f"B{n}", "Company": f"Co{n}", "Email": email})
    world.run("enrich")
    ids = world.salesforce.convert_lead(lead, opportunity={"Amount": amount, "StageName": "Negotiation/Review"})
    world.run("enrich")
    world.salesforce.update("Opportunity", ids["opportunityId"], {"StageName": "Closed Won"})
    return ids


def won_hubspot_deal(world, n, amount, url, referrer="", stage="closedwon", pipeline="default"):
    email = f"buyer{n}@hs.example"
    browse(world, f"hsvisitor{n:03d}", f"{2000 + n}.1700000000", url, referrer, email=email)
    contact = world.hubspot.create("contacts", {"email": email})
    world.run("enrich")
    deal = world.hubspot.create("deals", {"dealname": f"Deal {n}", "amount": str(amount), "pipeline": pipeline,
                                          "dealstage": "appointmentscheduled" if pipeline == "default" else "1234901"})
    world.hubspot.associate(deal, contact)
    world.hubspot.update("deals", deal, {"dealstage": stage})
    return deal, contact


def crm_won_revenue_by_first_click_source(world) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in world.salesforce.query("SELECT Amount, ContactId FROM Opportunity WHERE IsWon = true"):
        contact = world.salesforce.record(row["ContactId"])
        totals[contact["CL_First_Click_Source__c"]] += Decimal(str(row["Amount"]))
    for deal_id, record in world.hubspot.store.records["deals"].items():
        if record.properties.get("hs_is_closed_won") == "true":
            contact = sorted(world.hubspot.store.associations[deal_id])[0]
            totals[world.hubspot.record("contacts", contact)["cl_first_click_source"]] += \
                Decimal(record.properties["amount"])
    return dict(sorted(totals.items()))


def test_won_deals_become_purchases_that_match_the_crm(world):
    sf = won_salesforce_deal(world, 1, 12000, "https://www.example.com/?utm_source=google&utm_medium=cpc")
    won_salesforce_deal(world, 2, 3000.5, "https://www.example.com/", "https://www.bing.com/")
    deal, _ = won_hubspot_deal(world, 3, 700, "https://www.example.com/?utm_source=newsletter&utm_medium=email")
    won_hubspot_deal(world, 4, 1234.56, "https://www.example.com/", "https://www.google.com/", stage="1234903",
                     pipeline="7654321")
    world.run("revenue")
    ga4_revenue = {source: Decimal(str(value)) for source, value in world.ga4.report("firstUserSource").items()}
    assert ga4_revenue == crm_won_revenue_by_first_click_source(world) == {
        "bing": Decimal("3000.5"), "google": Decimal("13234.56"), "newsletter": Decimal("700")}
    events = world.ga4.event_log()
    purchase = next(e for e in events if e["params"]["transaction_id"] == f"salesforce:{sf['opportunityId']}")
    assert purchase["client_id"] == "1001.1700000000" and purchase["params"]["value"] == 12000
    assert purchase["params"]["first_click_channel"] == "Paid Search" and purchase["params"]["currency"] == "USD"
    assert any(e["params"]["transaction_id"] == f"hubspot:{deal}" for e in events)
    world.run("revenue")  # nothing new: nothing sent
    assert len(world.ga4.event_log()) == 4
    with world.store.session(readonly=True) as session:  # the stage order the pipeline report uses
        stages = session.exec(select(DealStageRecord).order_by(DealStageRecord.crm, DealStageRecord.position)).all()
    hubspot = [(s.stage, s.label, s.pipeline) for s in stages if s.crm == "hubspot"]
    assert hubspot[:2] == [("appointmentscheduled", "Appointment Scheduled", "Sales Pipeline"),
                           ("qualifiedtobuy", "Qualified To Buy", "Sales Pipeline")]
    assert ("closedwon", "Closed Won", "Sales Pipeline") in hubspot and hubspot[-1] == ("1234904", "Lost",
                                                                                        "Partner Pipeline")
    salesforce = [s.label for s in stages if s.crm == "salesforce"]
    assert salesforce[0] == "Prospecting" and salesforce[-2:] == ["Closed Won", "Closed Lost"]


def test_revalued_reopened_and_rewon_deals_keep_ga4_equal_to_the_crm(world):
    ids = won_salesforce_deal(world, 5, 1000, "https://www.example.com/?utm_source=google&utm_medium=cpc")
    opportunity = ids["opportunityId"]
    world.run("revenue")
    world.salesforce.update("Opportunity", opportunity, {"Amount": 1500})
    world.run("revenue")
    assert world.ga4.report("firstUserSource") == {"google": 1500}
    world.salesforce.update("Opportunity", opportunity, {"StageName": "Negotiation/Review"})
    world.run("revenue")
    assert world.ga4.report("firstUserSource") == {"google": 0}
    world.salesforce.update("Opportunity", opportunity, {"StageName": "Closed Won"})
    world.run("revenue")
    assert world.ga4.report("firstUserSource") == {"google": 1500}
    transactions = [(e["name"], e["params"]["transaction_id"], e["params"]["value"]) for e in world.ga4.event_log()]
    base = f"salesforce:{opportunity}"
    assert transactions == [("purchase", base, 1000), ("refund", base, 1000), ("purchase", f"{base}:2", 1500),
                            ("refund", f"{base}:2", 1500), ("purchase", f"{base}:3", 1500)]


def test_a_deal_without_a_web_visitor_is_skipped_with_the_reason(world):
    contact = world.hubspot.create("contacts", {"email": "offline@hs.example"})
    deal = world.hubspot.create("deals", {"dealname": "Offline", "amount": "900"})
    world.hubspot.associate(deal, contact)
    world.hubspot.update("deals", deal, {"dealstage": "closedwon"})
    world.run("enrich")
    world.run("revenue")
    with world.store.session() as session:
        ledger = session.get(RevenueLedger, ("hubspot", deal))
        assert ledger.status == "waiting"
        ledger.first_seen_at -= timedelta(hours=25)
        session.add(ledger)
    world.run("revenue")
    with world.store.session(readonly=True) as session:
        ledger = session.get(RevenueLedger, ("hubspot", deal))
    assert (ledger.status, ledger.reason) == ("skipped", "no GA client id")
    assert world.ga4.event_log() == []


def test_every_event_passes_strict_validation_and_carries_no_personal_data(world):
    won_salesforce_deal(world, 6, 5000, "https://www.example.com/?utm_source=linkedin&utm_medium=paid_social")
    won_hubspot_deal(world, 7, 250, "https://www.example.com/", "https://news.ycombinator.com/")
    world.run("revenue")
    sent = [entry["body"] for entry in world.ga4.request_log() if entry["kind"] == "collect"]
    assert sent
    for body in sent:
        strict = {**body, "validation_behavior": "ENFORCE_RECOMMENDATIONS"}
        answer = requests.post(world.ga4.url + "/debug/mp/collect", data=json.dumps(strict), timeout=5,
                               params={"measurement_id": world.ga4.measurement_id, "api_secret": "x"}).json()
        assert answer == {"validationMessages": []}, answer
        for event in body["events"]:
            assert not any(EMAIL.search(str(value)) for value in event["params"].values())
            assert "session_id" not in event["params"]  # the sessions were a day before: never invented


def test_lifecycle_stages_become_lead_events_once(world):
    browse(world, "lifecycle01", "3001.1700000000", "https://www.example.com/?utm_source=partner&utm_medium=referral",
           email="stage@sf.example")
    lead = world.salesforce.create("Lead", {"LastName": "Stage", "Company": "S", "Email": "stage@sf.example"})
    browse(world, "lifecycle02", "3002.1700000000", "https://www.example.com/", "https://duckduckgo.com/",
           email="stage@hs.example")
    contact = world.hubspot.create("contacts", {"email": "stage@hs.example"})
    world.run("enrich")
    world.salesforce.update("Lead", lead, {"Status": "Working - Contacted"})
    world.hubspot.update("contacts", contact, {"lifecyclestage": "salesqualifiedlead"})
    world.run("lifecycle")
    world.salesforce.update("Lead", lead, {"FirstName": "Still working"})  # same stage again: no second event
    world.run("lifecycle")
    world.salesforce.update("Lead", lead, {"Status": "Unqualified"})
    world.run("lifecycle")
    events = sorted((e["name"], e["client_id"], e["params"].get("lead_source")) for e in world.ga4.event_log())
    assert events == [("disqualify_lead", "3001.1700000000", "partner"), ("qualify_lead", "3002.1700000000",
                                                                           "duckduckgo"),
                      ("working_lead", "3001.1700000000", "partner")]
    with world.store.session(readonly=True) as session:
        keys = {e.idempotency_key for e in session.exec(select(OutboxEvent)).all()}
    assert f"salesforce:Lead:{lead}:Status:Working - Contacted" in keys


def test_ga4_validate_command(world):
    import os
    import subprocess
    import sys

    won_salesforce_deal(world, 8, 400, "https://www.example.com/?utm_source=google&utm_medium=cpc")
    world.run("revenue")
    env = {**os.environ, **world.environ}
    result = subprocess.run([sys.executable, "-m", "sync.cli", "ga4", "validate", "--config", str(world.config_path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ok    purchase salesforce:" in result.stdout and "1 of 1 event(s) valid" in result.stdout
    with world.store.session() as session:  # an event GA4 would drop: a name over 40 characters
        event = session.exec(select(OutboxEvent)).first()
        session.add(OutboxEvent(idempotency_key="bad", kind="lifecycle", crm="salesforce", record_id="x",
                                event_name="x" * 41, client_id=event.client_id,
                                payload={**event.payload, "event": {"name": "x" * 41, "params": {}}}))
    result = subprocess.run([sys.executable, "-m", "sync.cli", "ga4", "validate", "--config", str(world.config_path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "GA4 NAME_INVALID" in result.stdout and "local: events[0].name" in result.stdout
