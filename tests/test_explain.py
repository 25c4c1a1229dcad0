"""`closedloop explain` as a rep or admin uses it: by email, by lead id, by deal id, by visitor id."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.writer import BeaconWriter

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 " \
     "Mobile/15E148 Safari/604.1"
NOW = datetime.now(timezone.utc)


def visit(visitor, days_ago, url, referrer="", kind="pageview", email=None, client="111.222"):
    return Hit(visitor_id=visitor, kind=kind, occurred_at=NOW - timedelta(days=days_ago), url=url, referrer=referrer,
               utm={}, click_ids={}, ga_client_id=client, ga_session_id=None, language="en", timezone="UTC",
               user_agent=UA, conversion_type="form" if kind == "identify" else None, consent=None, session_key=None,
               email_sha256=hash_email(email) if email else None)


def explain(world, who: str, columns: int = 160) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sync.cli", "explain", who, "--config", str(world.config_path)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": str(columns)})


def test_explain_by_email_record_id_and_deal_id(world):
    BeaconWriter(world.store).write([
        visit("phone0001", 9, "https://www.example.com/", "https://chatgpt.com/"),
        visit("laptop001", 3, "https://www.example.com/pricing?utm_source=newsletter&utm_medium=email"
                              "&utm_campaign=october", client="333.444"),
        visit("laptop001", 3, "https://www.example.com/contact", kind="identify", email="Rita@Example.com",
              client="333.444"),
        visit("phone0001", 2, "https://www.example.com/login", kind="identify", email="rita@example.com")])
    lead = world.salesforce.create("Lead", {"LastName": "Rita", "Company": "Acme", "Email": "rita@example.com",
                                            "CL_Visitor_Id__c": "laptop001"}, created_at=NOW - timedelta(days=3))
    world.run("enrich")
    ids = world.salesforce.convert_lead(lead, opportunity={"Amount": 5000, "StageName": "Closed Won"})
    world.run("enrich")
    world.run("revenue")

    by_email = explain(world, "rita@example.com")
    assert by_email.returncode == 0, by_email.stderr
    out = by_email.stdout
    assert "rita@example.com (found by email) — 2 device(s): phone0001, laptop001; 3 session(s); 3 CRM record(s)" \
        in out  # the lead, the contact it became, and the opportunity
    assert "mobile · Mobile Safari · iOS" in out  # the devices, as a person would name them
    # each session with the channel rule that matched, and why
    assert "chatgpt.com / ai-assistant" in out and "AI Assistant (ai_assistant)" in out
    assert "newsletter / email" in out and "Email (email)" in out
    # each CRM record, every mapped variable with the value last written and when
    lead_id = world.salesforce.query("SELECT Id FROM Lead WHERE Email = 'rita@example.com'")[0]["Id"]
    assert f"salesforce Lead {lead_id}: enriched" in out
    # The lead's form carried the laptop's visitor id: the laptop is trusted. The phone only claimed
    # Rita's email a day after the lead, so its ChatGPT visit, shown above, cannot be her first click.
    assert "trusted: on a CRM record, every touch" in next(line for line in out.splitlines() if "│ laptop001" in line)
    assert f"a claim: touches from {NOW - timedelta(days=2):%Y-%m-%d}" in next(
        line for line in out.splitlines() if "│ phone0001" in line)
    first_click = next(line for line in out.splitlines() if "│ first_click_channel " in line)
    assert "CL_First_Click_Channel__c" in first_click and "Email" in first_click
    assert f"{NOW:%Y-%m-%d}" in first_click  # when it was written
    assert "│ gbraid" in out and "never" in next(line for line in out.splitlines() if "│ gbraid" in line)

    by_lead = explain(world, lead_id)
    assert by_lead.returncode == 0, by_lead.stderr
    assert f"{lead_id} (found by salesforce Lead record)" in by_lead.stdout and "AI Assistant" in by_lead.stdout
    by_short_id = explain(world, lead_id[:15])  # the 15-character form Salesforce shows in its UI
    assert by_short_id.returncode == 0 and "found by salesforce Lead record" in by_short_id.stdout
    by_deal = explain(world, ids["opportunityId"])
    assert by_deal.returncode == 0, by_deal.stderr
    assert f"{ids['opportunityId']} (found by salesforce Opportunity record)" in by_deal.stdout
    assert f"salesforce Contact {ids['contactId']}: enriched" in by_deal.stdout
    by_visitor = explain(world, "phone0001", columns=80)
    assert by_visitor.returncode == 0 and max(len(line) for line in by_visitor.stdout.splitlines()) <= 80
    unknown = explain(world, "nobody@example.com")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == ("closedloop: error: no visitor, email or CRM record 'nobody@example.com' in "
                                      "the state store (emails are known only once a form or identify beacon sent "
                                      "them)")


def test_a_deal_closedloop_only_mirrors_finds_its_person(store):
    """A deal id that enrichment never wrote to (its object is not mapped) still leads to the
    person through the deal mirror."""
    from sync.journey.compute import JourneySettings
    from sync.reports.explain import explain_person
    from state.models import DealRecord, LeadSync

    BeaconWriter(store).write([visit("tablet001", 1, "https://www.example.com/?utm_source=bing&utm_medium=cpc")])
    with store.session() as session:
        session.add(LeadSync(crm="hubspot", object="contacts", record_id="501", status="enriched",
                             visitor_ids=["tablet001"], written={"cl_first_click_source": "bing"}))
        session.add(DealRecord(crm="hubspot", deal_id="9001", stage="closedwon", created_at=NOW,
                               person_object="contacts", person_id="501"))
    with store.session(readonly=True) as session:
        found = explain_person(session, "9001", JourneySettings())
    assert found.found_by == "hubspot deal 9001 of contacts 501"
    assert [d.visitor_id for d in found.devices] == ["tablet001"] and found.sessions[0].channel == "Paid Search"
    assert [(r.record_id, [(v.field, v.value, v.written_at) for v in r.values]) for r in found.records] == [
        ("501", [("cl_first_click_source", "bing", None)])]  # written before write times were kept
