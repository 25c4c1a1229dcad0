"""Which CRM fields a mapping needs, which are missing, and creating them (``fields create``)."""
from __future__ import annotations

from adapters.base import NewField
from mappings.model import MappingFile
from sync.journey.variables import VARIABLES

# Match fields closedloop may create (hidden-field targets); CRM standard fields never.
MATCH_FIELD_KINDS = {"visitor_id": ("Visitor Id", "closedloop visitor id posted by the form's hidden cl_visitor_id "
                                                  "field"),
                     "ga_client_id": ("GA Client Id", "Google Analytics client id posted by the form's hidden "
                                                      "cl_ga_client_id field")}


def is_custom(crm: str, name: str) -> bool:
    """Whether closedloop may create this field: Salesforce custom fields end in __c; on
    HubSpot anything not HubSpot's own (hs_*) and not a default contact/deal property."""
    if crm == "salesforce":
        return name.endswith("__c")
    return not name.startswith("hs_") and name not in {"email", "firstname", "lastname", "phone", "company",
                                                       "lifecyclestage", "dealname", "amount", "closedate",
                                                       "dealstage", "pipeline"}


def missing_fields(crm: str, mapping: MappingFile, describe) -> list[NewField]:
    """NewField specs for mapped custom fields the CRM does not have (``describe(object)``)."""
    needed: list[NewField] = []
    for object_name, object_mapping in mapping.objects.items():
        existing = describe(object_name)
        seen: set[str] = set()
        for key, field_name in object_mapping.match.items():
            if key in MATCH_FIELD_KINDS and is_custom(crm, field_name) and field_name not in existing:
                label, description = MATCH_FIELD_KINDS[key]
                needed.append(NewField(object_name, field_name, label, "string", description, 255))
                seen.add(field_name)
        for item in object_mapping.fields:
            if item.field in existing or item.field in seen or not is_custom(crm, item.field):
                continue
            spec = VARIABLES[item.variable]
            needed.append(NewField(object_name, item.field, spec.label, spec.kind, spec.description,
                                   min(item.max_length or 255, 255)))
            seen.add(item.field)
    return needed
