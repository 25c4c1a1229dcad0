"""Which jobs a CRM change notification concerns, with the default mappings: created records and
changes of the fields that match or are mapped count; closedloop's own output properties on
HubSpot, deletions and unrelated edits do not."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mappings import load_mapping
from sync.config import load_config
from sync.jobs.triggers import Routing
from sync.journey.variables import catalogue
from sync.ops.connections import DEFAULT_MAPPINGS

AT = datetime(2026, 12, 1, tzinfo=timezone.utc)
ENVIRON = {"CLOSEDLOOP_SALESFORCE_CLIENT_ID": "id", "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET": "secret",
           "CLOSEDLOOP_HUBSPOT_TOKEN": "pat", "CLOSEDLOOP_GA4_API_SECRET": "ga4"}


@pytest.fixture(scope="module")
def routes(tmp_path_factory):
    path = tmp_path_factory.mktemp("routing") / "closedloop.toml"
    path.write_text('[salesforce]\nenabled = true\nlogin_url = "https://acme.my.salesforce.com"\n'
                    '[hubspot]\nenabled = true\n[ga4]\nenabled = true\nmeasurement_id = "G-ABC123"\n')
    config = load_config(path, environ=ENVIRON)
    return {crm: Routing(config, crm, load_mapping(DEFAULT_MAPPINGS / f"{crm}.toml", catalogue(), crm=crm))
            for crm in ("salesforce", "hubspot")}


def jobs(changes):
    return sorted((change.job, change.object, change.record_id) for change in changes)


def test_salesforce_topics_follow_the_mapping_and_ga4(routes):
    assert routes["salesforce"].topics() == ["/data/LeadChangeEvent", "/data/ContactChangeEvent",
                                             "/data/OpportunityChangeEvent"]


@pytest.mark.parametrize("entity, change_type, changed, expected", [
    ("Lead", "CREATE", (), [("enrich", "Lead", "r1"), ("enrich", "Lead", "r2")]),
    ("Lead", "UPDATE", ("Email",), [("enrich", "Lead", "r1"), ("enrich", "Lead", "r2")]),
    ("Lead", "UPDATE", ("Status", "Name.FirstName"), []),          # a rep's edit that matters to no job here
    ("Lead", "UPDATE", (), [("enrich", "Lead", "r1"), ("enrich", "Lead", "r2")]),  # no bitmap: assume it matters
    ("Lead", "DELETE", (), []),
    ("Lead", "GAP_UPDATE", ("Status",), [("enrich", "Lead", "r1"), ("enrich", "Lead", "r2")]),
    ("Opportunity", "UPDATE", ("StageName",), [("lifecycle", "Opportunity", "r1"), ("lifecycle", "Opportunity", "r2"),
                                               ("revenue", "Opportunity", "r1"), ("revenue", "Opportunity", "r2")]),
    ("Opportunity", "UPDATE", ("Description",), []),
])
def test_salesforce_change_events(routes, entity, change_type, changed, expected):
    assert jobs(routes["salesforce"].salesforce(entity, ["r1", "r2"], change_type, changed, AT)) == expected


@pytest.mark.parametrize("kind, prop, another, expected", [
    ("contact.creation", "", False, [("enrich", "contacts", "7")]),
    ("contact.propertyChange", "email", False, [("enrich", "contacts", "7")]),
    ("contact.propertyChange", "cl_first_click_source", False, []),   # closedloop's own output
    ("contact.propertyChange", "cl_visitor_id", False, []),           # matches, but closedloop writes it too
    ("contact.propertyChange", "cl_visitor_id", True, [("enrich", "contacts", "7")]),  # someone else wrote it
    ("contact.deletion", "", False, []),
    ("deal.propertyChange", "dealstage", False, [("lifecycle", "deals", "7"), ("revenue", "deals", "7")]),
    ("deal.propertyChange", "amount", False, [("revenue", "deals", "7")]),
    ("deal.propertyChange", "description", False, []),
    ("company.creation", "", False, []),
])
def test_hubspot_webhook_events(routes, kind, prop, another, expected):
    assert jobs(routes["hubspot"].hubspot(kind, "7", prop, AT, written_by_another=another)) == expected
