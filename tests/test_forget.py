"""``closedloop forget`` leaves nothing behind: after it, a dump of every table of the store holds
none of the person's identifiers, while everyone else's data is still there."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from sqlalchemy import MetaData, select

from state.models import DeadLetter, OutboxEvent, RevenueLedger
from support import run_coroutine
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.writer import BeaconWriter

EMAIL, STRANGER = "Forget.Me@Example.com", "stays@example.com"
DEVICES = [f"forgetme{n:02d}" for n in range(30)]  # more than the stitching cap of 25
CLIENT_IDS = [f"{4000 + n}.1700000000" for n in range(30)]
URL = "https://www.example.com/pricing?utm_source=google&utm_medium=cpc&gclid=Cj0forget"


def visits(visitor, client_id, email, minutes_ago):
    moment = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    common = dict(referrer="", utm={}, click_ids={}, ga_client_id=client_id, ga_session_id=None, language="en",
                  timezone="UTC", user_agent="UA", consent=None, session_key=None)
    return [Hit(visitor, "pageview", moment, URL, conversion_type=None, **common),
            Hit(visitor, "identify", moment + timedelta(minutes=1), URL, conversion_type="form",
                email_sha256=hash_email(email), **common)]


def dump(store) -> str:
    """Every row of every table, as text."""
    metadata = MetaData()
    metadata.reflect(store.engine)
    with store.engine.connect() as connection:
        return "\n".join(repr(tuple(row)) for table in metadata.sorted_tables
                         for row in connection.execute(select(table)).all())


def forget(world, email):
    return subprocess.run([sys.executable, "-m", "sync.cli", "forget", email, "--config", str(world.config_path)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **world.environ})


def test_forget_leaves_no_trace_of_the_person_in_any_table(world):
    writer = BeaconWriter(world.store)
    for n, (device, client_id) in enumerate(zip(DEVICES, CLIENT_IDS)):
        writer.write(visits(device, client_id, EMAIL, 3 * 24 * 60 - n))
    writer.write(visits("stranger01", "7777.1700000000", STRANGER, 24 * 60))
    lead = world.salesforce.create("Lead", {"LastName": "Gone", "Company": "G", "Email": "forget.me@example.com",
                                            "CL_Visitor_Id__c": DEVICES[0], "CL_GA_Client_Id__c": CLIENT_IDS[0]})
    contact = world.hubspot.create("contacts", {"email": "forget.me@example.com"})
    other = world.salesforce.create("Lead", {"LastName": "Stays", "Company": "S", "Email": STRANGER})
    world.run("enrich")
    ids = world.salesforce.convert_lead(lead, opportunity={"Amount": 900, "StageName": "Negotiation/Review"})
    world.run("enrich")
    world.salesforce.update("Opportunity", ids["opportunityId"], {"StageName": "Closed Won"})
    world.hubspot.update("contacts", contact, {"lifecyclestage": "salesqualifiedlead"})
    world.salesforce.update("Lead", other, {"Status": "Working - Contacted"})
    world.run("revenue")
    world.run("lifecycle")
    # A beacon of one of the person's devices that the database refused, and a GA4 event set aside.
    refused = visits(DEVICES[3], CLIENT_IDS[3], EMAIL, 5)[1]
    refused.kind = None  # breaks a NOT NULL constraint
    writer.start()
    assert not run_coroutine(writer.store_hits([refused], timeout=30)).stored
    writer.stop()
    with world.store.session() as session:
        purchase = session.exec(select(OutboxEvent).where(OutboxEvent.event_name == "purchase")).scalars().one()
        session.add(DeadLetter(job="ga4", crm="salesforce", object="Opportunity", record_id="elsewhere",
                               code="GA4_DELIVERY_UNCERTAIN", message="check GA4",
                               payload={"idempotency_key": purchase.idempotency_key}))

    email = EMAIL.strip().lower()
    needles = [email, hash_email(EMAIL), hashlib.sha256(email.encode()).hexdigest(), *DEVICES, *CLIENT_IDS]
    before = dump(world.store)
    assert all(needle in before for needle in needles if needle != email)  # all of it was stored somewhere

    result = forget(world, EMAIL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("forgot 30 visitor(s), 60 touchpoint(s), ")
    # the lead, the contact it became, its opportunity, the HubSpot contact; the purchase, its
    # lifecycle events; both dead letters; the ledger entry of the won deal
    assert "4 CRM record match(es) with the values written to them, 3 GA4 event(s) and 2 dead letter(s); erased " \
        "the GA client id of 1 revenue ledger entr(ies)" in result.stdout

    after = dump(world.store)
    left = [needle for needle in needles if needle in after]
    assert left == [], f"still stored after forget: {left}"
    assert "stranger01" in after and "7777.1700000000" in after and hash_email(STRANGER) in after
    with world.store.session(readonly=True) as session:
        ledger = session.get(RevenueLedger, ("salesforce", ids["opportunityId"]))
        assert (ledger.status, ledger.client_id) == ("forgotten", None)
        assert session.exec(select(DeadLetter)).scalars().all() == []
    world.salesforce.update("Opportunity", ids["opportunityId"], {"Amount": 1900})
    world.run("revenue")  # a forgotten buyer's deal is never sent again
    assert len([e for e in world.ga4.event_log() if e["name"] in ("purchase", "refund")]) == 1

    again = forget(world, EMAIL)
    assert again.returncode == 0 and again.stdout.strip() == "nothing stored about that address"
