"""What happens in the sandbox CRMs once simulated buyers convert: their leads arrive, and sales
works them into won and lost deals.

Even-numbered buyers become Salesforce leads (web-to-lead: a form fill carries the hidden
``CL_Visitor_Id__c`` field the tracker filled; a call or chat is typed in by a rep, without it),
odd-numbered ones HubSpot contacts (a HubSpot form fills ``cl_visitor_id``). Reps then contact
some, disqualify some, and convert the rest into deals that are won, lost or left open. Used by
``closedloop demo`` and ``closedloop sandbox --seed``; everything goes through the emulators'
own operator API, as a CRM user's clicks would.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from sandbox.traffic import Person

AMOUNTS = [4800, 7200, 12000, 18500, 24000, 36000, 9600, 15000]
# The fields the default mappings fill: a rep sees a lead as enriched when its first-click channel is set.
ENRICHED_FIELD = {"salesforce": ("Lead", "CL_First_Click_Channel__c"), "hubspot": ("contacts", "cl_first_click_channel")}


@dataclass
class Lead:
    """A converted buyer's CRM record: ``crm`` is "salesforce" (a Lead) or "hubspot" (a contact)."""

    person: Person
    crm: str
    record_id: str


def create_leads(suite, people: list[Person], progress: Callable[[], None] | None = None) -> list[Lead]:
    """A lead or contact for every buyer who converted, created when they converted."""
    leads = []
    for person in people:
        if person.converted_at is None:
            continue
        name = f"Buyer{person.number:04d}"
        company = person.email.split("@")[1].split("-")[0].title()
        form = person.conversion_type == "form"
        if person.number % 2 == 0:
            values = {"FirstName": "Pat", "LastName": name, "Company": company, "Email": person.email,
                      "LeadSource": "Web" if form else "Phone Inquiry"}
            if form:
                values["CL_Visitor_Id__c"] = person.converting_device.visitor_id
            leads.append(Lead(person, "salesforce", suite.salesforce.create("Lead", values,
                                                                            created_at=person.converted_at)))
        else:
            properties = {"email": person.email, "firstname": "Sam", "lastname": name, "company": company}
            if form:
                properties["cl_visitor_id"] = person.converting_device.visitor_id
            leads.append(Lead(person, "hubspot", suite.hubspot.create("contacts", properties,
                                                                      created_at=person.converted_at)))
        if progress:
            progress()
    return leads


def enriched(suite, lead: Lead) -> bool:
    """Whether the lead's first-click field is filled, as a rep would see it in the CRM."""
    obj, name = ENRICHED_FIELD[lead.crm]
    record = suite.salesforce.record(lead.record_id) if lead.crm == "salesforce" else \
        suite.hubspot.record(obj, lead.record_id)
    return bool((record or {}).get(name))


def work_pipeline(suite, leads: list[Lead], rng: random.Random, progress: Callable[[], None] | None = None) -> dict:
    """Sales at work: contacted, disqualified, converted; deals won, lost or still open.
    Returns counts by outcome."""
    outcomes = {"won": 0, "lost": 0, "open": 0, "working": 0, "disqualified": 0}
    for lead in leads:
        outcome = _work_salesforce(suite, lead, rng) if lead.crm == "salesforce" else _work_hubspot(suite, lead, rng)
        outcomes[outcome] += 1
        if progress:
            progress()
    return outcomes


def _work_salesforce(suite, lead: Lead, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.25:
        suite.salesforce.update("Lead", lead.record_id, {"Status": "Working - Contacted"})
        return "working"
    if roll < 0.35:
        suite.salesforce.update("Lead", lead.record_id, {"Status": "Unqualified"})
        return "disqualified"
    if roll >= 0.95:
        return "working"
    ids = suite.salesforce.convert_lead(lead.record_id, opportunity={
        "Amount": rng.choice(AMOUNTS), "StageName": "Qualification",
        "CloseDate": (lead.person.converted_at + timedelta(days=30)).date().isoformat()})
    stage, outcome = _deal_outcome(rng, "Closed Won", "Closed Lost", ["Proposal/Price Quote", "Negotiation/Review"])
    suite.salesforce.update("Opportunity", ids["opportunityId"], {"StageName": stage})
    return outcome


def _work_hubspot(suite, lead: Lead, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.2:
        suite.hubspot.update("contacts", lead.record_id, {"hs_lead_status": "IN_PROGRESS"})
        return "working"
    if roll < 0.3:
        suite.hubspot.update("contacts", lead.record_id, {"hs_lead_status": "UNQUALIFIED"})
        return "disqualified"
    if roll >= 0.9:
        return "working"
    suite.hubspot.update("contacts", lead.record_id, {"lifecyclestage": "salesqualifiedlead"})
    deal = suite.hubspot.create("deals", {"dealname": f"{lead.person.email.split('@')[1]} deal",
                                          "amount": str(rng.choice(AMOUNTS))})
    suite.hubspot.associate(deal, lead.record_id)
    stage, outcome = _deal_outcome(rng, "closedwon", "closedlost", ["presentationscheduled", "contractsent"])
    suite.hubspot.update("deals", deal, {"dealstage": stage})
    if outcome == "won":
        suite.hubspot.update("contacts", lead.record_id, {"lifecyclestage": "customer"})
    return outcome


def _deal_outcome(rng: random.Random, won: str, lost: str, open_stages: list[str]) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.5:
        return won, "won"
    if roll < 0.7:
        return lost, "lost"
    return rng.choice(open_stages), "open"
