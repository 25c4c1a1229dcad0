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


def work_pipeline(suite, leads: list[Lead], rng: random.Random, progress: Callable[[], None] | None = None,
                  qualified: Callable[[], object] | None = None) -> dict:
    """Sales at work: contacted, disqualified, qualified; then the qualified leads' deals won, lost
    or left open. ``qualified`` runs between the two (the demo lets closedloop see each
    qualification before its deal moves on, as a poll between a rep's two clicks would).
    Returns counts by outcome."""
    outcomes = {"won": 0, "lost": 0, "open": 0, "working": 0, "disqualified": 0}
    deals = []
    for lead in leads:
        desk = SalesforceDesk(suite) if lead.crm == "salesforce" else HubSpotDesk(suite)
        roll = rng.random()
        if roll < desk.contacted:
            desk.contact(lead)
            outcome = "working"
        elif roll < desk.disqualified:
            desk.disqualify(lead)
            outcome = "disqualified"
        elif roll < desk.converted:
            desk.qualify(lead)
            amount, outcome = rng.choice(AMOUNTS), _deal_outcome(rng)
            stage = desk.stages.get(outcome) or rng.choice(desk.open_stages)
            deals.append((desk, lead, amount, stage, outcome == "won"))
        else:
            outcome = "working"
        outcomes[outcome] += 1
        if progress:
            progress()
    if qualified:
        qualified()
    for desk, lead, amount, stage, won in deals:
        desk.convert(lead, amount, stage, won=won)
    return outcomes


def _deal_outcome(rng: random.Random) -> str:
    roll = rng.random()
    return "won" if roll < 0.5 else "lost" if roll < 0.7 else "open"


class SalesforceDesk:
    """A Salesforce rep: lead statuses (qualified before conversion), lead conversion, opportunity stages."""

    contacted, disqualified, converted = 0.25, 0.35, 0.95
    stages = {"won": "Closed Won", "lost": "Closed Lost"}
    open_stages = ("Proposal/Price Quote", "Negotiation/Review")

    def __init__(self, suite) -> None:
        self.org = suite.salesforce

    def contact(self, lead: Lead) -> None:
        self.org.update("Lead", lead.record_id, {"Status": "Working - Contacted"})

    def disqualify(self, lead: Lead) -> None:
        self.org.update("Lead", lead.record_id, {"Status": "Unqualified"})

    def qualify(self, lead: Lead) -> None:
        self.org.update("Lead", lead.record_id, {"Status": "Qualified"})

    def convert(self, lead: Lead, amount: int, stage: str, *, won: bool) -> None:
        ids = self.org.convert_lead(lead.record_id, opportunity={
            "Amount": amount, "StageName": "Qualification",
            "CloseDate": (lead.person.converted_at + timedelta(days=30)).date().isoformat()})
        self.org.update("Opportunity", ids["opportunityId"], {"StageName": stage})


class HubSpotDesk:
    """A HubSpot rep: lead statuses, lifecycle stages, deals associated with the contact."""

    contacted, disqualified, converted = 0.2, 0.3, 0.9
    stages = {"won": "closedwon", "lost": "closedlost"}
    open_stages = ("presentationscheduled", "contractsent")

    def __init__(self, suite) -> None:
        self.portal = suite.hubspot

    def contact(self, lead: Lead) -> None:
        self.portal.update("contacts", lead.record_id, {"hs_lead_status": "IN_PROGRESS"})

    def disqualify(self, lead: Lead) -> None:
        self.portal.update("contacts", lead.record_id, {"hs_lead_status": "UNQUALIFIED"})

    def qualify(self, lead: Lead) -> None:
        self.portal.update("contacts", lead.record_id, {"lifecyclestage": "salesqualifiedlead"})

    def convert(self, lead: Lead, amount: int, stage: str, *, won: bool) -> None:
        deal = self.portal.create("deals", {"dealname": f"{lead.person.email.split('@')[1]} deal",
                                            "amount": str(amount)})
        self.portal.associate(deal, lead.record_id)
        self.portal.update("deals", deal, {"dealstage": stage})
        if won:
            self.portal.update("contacts", lead.record_id, {"lifecyclestage": "customer"})
