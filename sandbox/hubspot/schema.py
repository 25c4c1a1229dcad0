"""HubSpot's default contact and deal properties, property groups and deal pipelines.

Shapes from shared/reference/hubspot-api.md §5 (the Property fields of §5.2, the
type/fieldType table of §5.3), §6.1 (deal properties, default stage ids and probabilities)
and §6.2 (pipelines: metadata values are strings, the default pipeline's createdAt is epoch 0),
§3.1 (which properties a search returns by default) and §9.1 (analytics source properties are
read-only to the API).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# type -> the fieldTypes it may be shown with (§5.3)
FIELD_TYPES = {
    "string": {"text", "textarea", "file", "html", "phonenumber", "calculation_equation"},
    "number": {"number", "calculation_equation"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"},
    "bool": {"booleancheckbox", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "phone_number": {"phonenumber", "text"},
}
INTERNAL_TYPES = {"object_coordinates", "json"}  # exist, but "cannot be created" (§5.3)
EPOCH = "1970-01-01T00:00:00Z"
MODIFIED = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}  # §3.1: differs by object
SINGULAR = {"contacts": "contact", "deals": "deal"}
OBJECT_TYPE_IDS = {"contacts": "0-1", "deals": "0-3"}
SEARCH_DEFAULTS = {  # §3.1 default-property table
    "contacts": ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
    "deals": ["dealname", "amount", "closedate", "pipeline", "dealstage", "createdate", "hs_lastmodifieddate",
              "hs_object_id"],
}


@dataclass
class Property:
    """One property definition, as ``GET /crm/v3/properties/{objectType}`` lists it."""

    name: str
    label: str
    type: str
    field_type: str
    group: str
    options: list[dict[str, Any]] = field(default_factory=list)
    calculated: bool = False
    hubspot_defined: bool = True
    read_only: bool = False
    description: str = ""
    created_at: str = EPOCH
    updated_at: str | None = None
    display_order: int = -1
    has_unique_value: bool = False
    hidden: bool = False
    form_field: bool | None = None
    archived: bool = False
    archived_at: str | None = None

    @property
    def option_values(self) -> set[str]:
        return {option["value"] for option in self.options}

    def to_json(self) -> dict[str, Any]:
        body = {
            "name": self.name, "label": self.label, "type": self.type, "fieldType": self.field_type,
            "description": self.description, "groupName": self.group, "options": self.options,
            "displayOrder": self.display_order, "calculated": self.calculated, "externalOptions": False,
            "hasUniqueValue": self.has_unique_value, "hidden": self.hidden, "hubspotDefined": self.hubspot_defined,
            "formField": (not self.read_only) if self.form_field is None else self.form_field,
            "modificationMetadata": {"archivable": not self.hubspot_defined,
                                     "readOnlyDefinition": self.hubspot_defined,
                                     "readOnlyValue": self.read_only or self.calculated},
            "createdAt": self.created_at, "updatedAt": self.updated_at or self.created_at,
            "archived": self.archived, "dataSensitivity": "non_sensitive",
        }
        if self.archived_at:
            body["archivedAt"] = self.archived_at
        return body


def options(values: list[str], labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [{"label": (labels or {}).get(v, v.replace("_", " ").title()), "value": v, "displayOrder": n,
             "hidden": False} for n, v in enumerate(values)]


LIFECYCLE_STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
                    "evangelist", "other"]
LEAD_STATUSES = ["NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED",
                 "BAD_TIMING"]
SOURCES = ["ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS", "OTHER_CAMPAIGNS",
           "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL"]  # §9.1


def _read_only(name: str, label: str, type_: str, field_type: str, group: str, **extra: Any) -> Property:
    return Property(name, label, type_, field_type, group, read_only=True, **extra)


def _calculated(name: str, label: str, type_: str, field_type: str, group: str) -> Property:
    return Property(name, label, type_, field_type, group, read_only=True, calculated=True)


def _analytics(object_type: str) -> list[Property]:
    """The source properties HubSpot fills itself; the API may not write them (§9.1)."""
    group = "analyticsinformation"
    found = [_read_only("hs_analytics_source", "Original Source", "enumeration", "select", group,
                        options=options(SOURCES)),
             _read_only("hs_analytics_source_data_1", "Original Source Drill-Down 1", "string", "text", group),
             _read_only("hs_analytics_source_data_2", "Original Source Drill-Down 2", "string", "text", group)]
    if object_type == "contacts":
        found += [
            _read_only("hs_latest_source", "Latest Traffic Source", "enumeration", "select", group,
                       options=options(SOURCES)),
            _read_only("hs_latest_source_data_1", "Latest Traffic Source Drill-Down 1", "string", "text", group),
            _read_only("hs_latest_source_data_2", "Latest Traffic Source Drill-Down 2", "string", "text", group),
            _read_only("hs_analytics_first_url", "First Page Seen", "string", "text", group),
            _read_only("hs_analytics_first_referrer", "First Referring Site", "string", "text", group),
            _read_only("hs_analytics_first_timestamp", "Time First Seen", "datetime", "date", group),
            _read_only("hs_analytics_num_visits", "Number of Sessions", "number", "number", group),
            _read_only("hs_analytics_num_page_views", "Number of Pageviews", "number", "number", group),
        ]
    return found


def default_properties(currencies: list[str]) -> dict[str, dict[str, Property]]:
    info = "contactinformation"
    contact = [
        Property("email", "Email", "string", "text", info),
        Property("firstname", "First Name", "string", "text", info),
        Property("lastname", "Last Name", "string", "text", info),
        Property("phone", "Phone Number", "string", "phonenumber", info),
        Property("company", "Company Name", "string", "text", info),
        Property("website", "Website URL", "string", "text", info),
        Property("jobtitle", "Job Title", "string", "text", info),
        Property("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", info, options(LIFECYCLE_STAGES)),
        Property("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties", options(LEAD_STATUSES)),
        _read_only("createdate", "Create Date", "datetime", "date", info),
        _read_only("lastmodifieddate", "Last Modified Date", "datetime", "date", info),
        _calculated("hs_object_id", "Record ID", "number", "number", info),
        _read_only("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox", info),
        _calculated("hubspotscore", "HubSpot Score", "number", "number", info),
        *_analytics("contacts"),
    ]
    deal_info = "dealinformation"
    deal = [
        Property("dealname", "Deal Name", "string", "text", deal_info),
        Property("amount", "Amount", "number", "number", deal_info),
        Property("closedate", "Close Date", "datetime", "date", deal_info),
        Property("pipeline", "Pipeline", "enumeration", "select", deal_info),
        Property("dealstage", "Deal Stage", "enumeration", "radio", deal_info),
        Property("dealtype", "Deal Type", "enumeration", "radio", deal_info,
                 options(["newbusiness", "existingbusiness"], {"newbusiness": "New Business",
                                                              "existingbusiness": "Existing Business"})),
        Property("description", "Deal Description", "string", "textarea", deal_info),
        Property("deal_currency_code", "Currency", "enumeration", "select", deal_info, options(currencies)),
        _read_only("createdate", "Create Date", "datetime", "date", deal_info),
        _read_only("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", deal_info),
        _calculated("hs_object_id", "Record ID", "number", "number", deal_info),
        _calculated("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", deal_info),
        _calculated("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", deal_info),
        _calculated("hs_closed_amount", "Closed Deal Amount", "number", "number", deal_info),
        _calculated("hs_deal_stage_probability", "Deal Stage Probability", "number", "number", deal_info),
        *_analytics("deals"),
    ]
    for spec in contact + deal:
        if spec.type == "bool" and not spec.options:
            spec.options = options(["true", "false"], {"true": "Yes", "false": "No"})
    return {"contacts": {p.name: p for p in contact}, "deals": {p.name: p for p in deal}}


def group(name: str, label: str, display_order: int = -1) -> dict[str, Any]:
    """A property group as the groups API returns it (§5.2)."""
    return {"name": name, "label": label, "displayOrder": display_order, "archived": False}


def default_groups() -> dict[str, dict[str, dict[str, Any]]]:
    return {"contacts": {g["name"]: g for g in (group("contactinformation", "Contact information", 0),
                                                 group("sales_properties", "Sales properties", 1),
                                                 group("analyticsinformation", "Web analytics history", 2))},
            "deals": {g["name"]: g for g in (group("dealinformation", "Deal information", 0),
                                             group("analyticsinformation", "Web analytics history", 1))}}


def default_pipelines() -> list[dict[str, Any]]:
    """The default sales pipeline (§6.1 stage ids and probabilities) plus a custom one with
    numeric ids, one of its stages closed-won (§6.1: "Custom pipelines and stages have numeric
    string IDs")."""
    def stage(stage_id: str, label: str, order: int, probability: str, closed: bool, created: str) -> dict:
        return {"id": stage_id, "label": label, "displayOrder": order,
                "metadata": {"isClosed": "true" if closed else "false", "probability": probability},
                "archived": False, "createdAt": created, "updatedAt": "2024-01-01T00:00:00Z",
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
    default = [("appointmentscheduled", "Appointment Scheduled", "0.2", False),
               ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
               ("presentationscheduled", "Presentation Scheduled", "0.6", False),
               ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
               ("contractsent", "Contract Sent", "0.9", False), ("closedwon", "Closed Won", "1.0", True),
               ("closedlost", "Closed Lost", "0.0", True)]
    custom = [("1234901", "Discovery", "0.1", False), ("1234902", "Proposal", "0.5", False),
              ("1234903", "Signed", "1.0", True), ("1234904", "Lost", "0.0", True)]
    created = "2024-03-01T00:00:00Z"
    return [
        {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": False, "createdAt": EPOCH,
         "updatedAt": "2024-01-01T00:00:00Z",
         "stages": [stage(s, label, n, p, c, EPOCH) for n, (s, label, p, c) in enumerate(default)]},
        {"id": "7654321", "label": "Partner Pipeline", "displayOrder": 1, "archived": False,
         "createdAt": created, "updatedAt": created,
         "stages": [stage(s, label, n, p, c, created) for n, (s, label, p, c) in enumerate(custom)]},
    ]
