"""Mapping files: parsing with file/line/field errors, metadata checks, value conversion."""
from __future__ import annotations

import textwrap
from datetime import datetime, timezone

import pytest

from adapters.base import FieldSpec
from adapters.errors import MappingError
from mappings.check import check_against_crm
from mappings.convert import to_field_value, truncate
from mappings.model import load_mapping
from sync.journey.variables import ENUMERATIONS, VARIABLES, WHOLE_LENGTHS, catalogue
from sync.ops.connections import DEFAULT_MAPPINGS


@pytest.mark.parametrize("crm, objects", [("salesforce", ["Lead", "Contact", "Opportunity"]),
                                          ("hubspot", ["contacts", "deals"])])
def test_default_mappings_load_and_cover_the_catalogue(crm, objects):
    mapping = load_mapping(DEFAULT_MAPPINGS / f"{crm}.toml", catalogue(), crm=crm)
    assert list(mapping.objects) == objects
    lead_object = mapping.objects[objects[0]]
    assert {m.variable for m in lead_object.fields} == set(VARIABLES)
    policies = {m.variable: m.policy for m in lead_object.fields}
    assert policies["first_click_source"] == "fill_empty" and policies["last_click_source"] == "overwrite"
    deal_variables = {m.variable for m in mapping.objects[objects[-1]].fields}
    assert all(v.startswith(("first_click_", "last_click_", "conversion_")) for v in deal_variables)


def write(tmp_path, text):
    path = tmp_path / "mapping.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_problems_name_file_line_and_field(tmp_path):
    path = write(tmp_path, """\
        crm = "salesforce"

        [[object]]
        object = "Lead"
        match = { visitor = "CL_Visitor_Id__c" }

        [object.fields]
        first_click_sauce = "CL_FC_Source__c"
        last_click_source = { field = "CL_LC_Source__c", policy = "sometimes" }
        visit_count = { field = "CL_Visits__c", max_length = 0 }
        days_to_convert = "CL_Days__c"
        distinct_channel_count = "CL_Days__c"
        """)
    with pytest.raises(MappingError) as caught:
        load_mapping(path, catalogue(), crm="salesforce")
    assert str(caught.value).splitlines() == [
        f"{path}:5: Lead: match key 'visitor' is not one of visitor_id, ga_client_id, email",
        f"{path}:8: Lead: unknown variable 'first_click_sauce' (did you mean 'first_click_source'?)",
        f"{path}:9: Lead.last_click_source: policy must be \"overwrite\" or \"fill_empty\"",
        f"{path}:10: Lead.visit_count: max_length must be a whole number from 1 to 131072",
        f"{path}:12: Lead.CL_Days__c: receives both days_to_convert and distinct_channel_count",
    ]


def spec(name, kind="string", **kwargs):
    return FieldSpec(name=name, label=name, kind=kind, crm_type=kwargs.pop("crm_type", kind), **kwargs)


def test_check_against_live_metadata(tmp_path):
    path = write(tmp_path, """\
        crm = "salesforce"
        [[object]]
        object = "Lead"
        match = { email = "Email" }
        [object.fields]
        first_click_channel = "CL_Channel__c"
        first_click_source = "CL_Source__c"
        visit_count = "CL_Visits__c"
        first_click_at = "CL_First_At__c"
        last_click_source = "CL_Formula__c"
        conversion_type = "CL_Type__c"
        last_click_campaign = "CL_Missing__c"
        [[object]]
        object = "Nope"
        [object.fields]
        visit_count = "X__c"
        """)
    mapping = load_mapping(path, catalogue(), crm="salesforce")
    describe = {"Lead": {
        "Email": spec("Email"),
        "CL_Channel__c": spec("CL_Channel__c", "picklist", restricted_picklist=True, picklist_values=("Direct",)),
        "CL_Source__c": spec("CL_Source__c", "picklist", restricted_picklist=True, picklist_values=("google",)),
        "CL_Visits__c": spec("CL_Visits__c", "string", length=10),
        "CL_First_At__c": spec("CL_First_At__c", "number", crm_type="double"),
        "CL_Formula__c": spec("CL_Formula__c", updateable=False),
        "CL_Type__c": spec("CL_Type__c", "picklist", restricted_picklist=True,
                           picklist_values=("form", "call", "chat", "other")),
    }}
    problems = check_against_crm(mapping, describe, catalogue(), ENUMERATIONS)
    assert problems == [
        f"{path}:6: Lead.CL_Channel__c (first_click_channel): the restricted picklist lacks values AI Assistant, "
        "Affiliates, Audio, Cross-network, Display, Email, Mobile Push Notifications, Organic Search, Organic Shopping, "
        "Organic Social, Organic Video, Paid Other, Paid Search, Paid Shopping, Paid Social, Paid Video, Referral, "
        "SMS, Unassigned",
        f"{path}:7: Lead.CL_Source__c (first_click_source): a restricted picklist cannot hold free text; map it "
        "to a text field",
        f"{path}:9: Lead.CL_First_At__c (first_click_at): a datetime variable cannot go into a double field",
        f"{path}:10: Lead.CL_Formula__c (last_click_source): the field is read-only (formula, system or no edit "
        "permission)",
        f"{path}:12: Lead.CL_Missing__c (last_click_campaign): no such field in salesforce — run `closedloop fields "
        "create`, and check the integration user can see it",
        f"{path}:13: object 'Nope' is not one closedloop enriches in salesforce (Lead, Contact, Opportunity)",
    ]


def test_check_refuses_fields_whose_type_the_crm_would_enforce(tmp_path):
    """What would dead-letter or come out mangled is caught at `check`, with file and line."""
    path = write(tmp_path, """\
        crm = "salesforce"
        [[object]]
        object = "Lead"
        [object.fields]
        visit_count = { field = "Email", policy = "overwrite" }
        first_click_at = "CL_Day__c"
        days_to_convert = "CL_Day2__c"
        visitor_id = "CL_Visitor_Id__c"
        last_click_channel = { field = "CL_Channel__c", max_length = 8 }
        conversion_type = "CL_Type__c"
        first_click_campaign = "CL_Campaign__c"
        """)
    mapping = load_mapping(path, catalogue(), crm="salesforce")
    describe = {"Lead": {
        "Email": spec("Email", "string", crm_type="email", length=80),
        "CL_Day__c": spec("CL_Day__c", "date"),
        "CL_Day2__c": spec("CL_Day2__c", "date"),
        "CL_Visitor_Id__c": spec("CL_Visitor_Id__c", length=36),
        "CL_Channel__c": spec("CL_Channel__c", length=255),
        "CL_Type__c": spec("CL_Type__c", length=4),
        "CL_Campaign__c": spec("CL_Campaign__c", length=20),  # free text: shortened with a marker, fine
    }}
    assert check_against_crm(mapping, describe, catalogue(), ENUMERATIONS, WHOLE_LENGTHS) == [
        f"{path}:5: Lead.Email (visit_count): an email field holds only email addresses, and visit_count is not "
        "one: map it to a text field",
        f"{path}:7: Lead.CL_Day2__c (days_to_convert): a number variable cannot go into a date field",
        f"{path}:8: Lead.CL_Visitor_Id__c (visitor_id): 36 characters cannot hold visitor_id's values whole (they "
        "need 64): lengthen the field to 64 or more",
        f"{path}:9: Lead.CL_Channel__c (last_click_channel): 8 characters cannot hold last_click_channel's values "
        "whole (they need 25): raise max_length to 25 or more",
        f"{path}:10: Lead.CL_Type__c (conversion_type): 4 characters cannot hold conversion_type's values whole "
        "(they need 5): lengthen the field to 5 or more",
    ]


@pytest.mark.parametrize("value, field, crm, expected", [
    ("2026-11-24T10:00:00Z", spec("F", "datetime"), "salesforce", "2026-11-24T10:00:00.000Z"),
    ("2026-11-24T10:00:00Z", spec("F", "datetime"), "hubspot", "1795514400000"),
    ("2026-11-24T10:00:00Z", spec("F", "date"), "salesforce", "2026-11-24"),
    (4, spec("F", "number", crm_type="double"), "salesforce", 4),
    (1.25, spec("F", "number", crm_type="double"), "salesforce", 1.25),
    (1.25, spec("F", "number"), "hubspot", "1.25"),
    (3.0, spec("F", "string", length=255), "salesforce", "3"),
    ("a" * 300, spec("F", "string", length=255), "salesforce", "a" * 254 + "…"),
    ("abc", spec("F", "string", length=255), "salesforce", "abc"),
    (None, spec("F"), "salesforce", None),
    ("", spec("F"), "hubspot", None),
    ("x" * 70_000, spec("F", "string", length=65_536), "hubspot", "x" * 65_535 + "…"),
])
def test_values_take_the_field_format(value, field, crm, expected):
    assert to_field_value(value, field, crm) == expected


def test_max_length_from_the_mapping_wins_when_shorter():
    assert to_field_value("abcdefghij", spec("F", length=255), "salesforce", max_length=5) == "abcd…"
    assert truncate("abc", 3) == "abc"
    assert datetime.fromtimestamp(1795514400, timezone.utc).isoformat() == "2026-11-24T10:00:00+00:00"


def test_what_counts_as_a_likely_typo():
    """Case, Salesforce's __c suffix and one or two edits make a name "close"; fields the mapping
    itself names are meant to be different and never count."""
    from mappings.check import close_existing

    existing = ["CL_First_Click_Channel__c", "CL_Gclid__c", "Email", "LeadSource"]
    assert close_existing("salesforce", "CL_First_Click_Chanel__c", existing) == "CL_First_Click_Channel__c"
    assert close_existing("salesforce", "cl_first_click_channel__C", existing) == "CL_First_Click_Channel__c"
    assert close_existing("salesforce", "CL_First_Click_Channel", existing) == "CL_First_Click_Channel__c"
    assert close_existing("salesforce", "Emial", existing) == "Email"            # two letters swapped: one edit
    assert close_existing("salesforce", "CL_Fbclid__c", existing) is None        # short names: one edit at most
    assert close_existing("salesforce", "CL_Gclidd__c", existing) == "CL_Gclid__c"
    assert close_existing("salesforce", "CL_First_Click_Chanel__c", existing,
                          mapped=["CL_First_Click_Channel__c"]) is None          # both are mapped: both meant
    assert close_existing("hubspot", "cl_first_click_chanel", ["cl_first_click_channel"]) == "cl_first_click_channel"
    assert close_existing("hubspot", "Email", ["email"]) == "email"
    assert close_existing("hubspot", "cl_last_click_source", ["cl_first_click_source"]) is None


def test_the_checked_objects_are_the_enriched_ones():
    from mappings.check import SUPPORTED_OBJECTS
    from sync.jobs.enrich import PROFILES

    assert {crm: set(objects) for crm, objects in SUPPORTED_OBJECTS.items()} == {
        crm: {*profile.person_objects, profile.deal_object} for crm, profile in PROFILES.items()}

