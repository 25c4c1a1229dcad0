"""HubSpot's default contact and deal properties, property groups and deal pipelines.

Shapes from shared/reference/hubspot-api.md §5 (properties, type/fieldType table §5.3) and
§6 (deal properties, default pipeline stages and probabilities, metadata as strings).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# type → allowed fieldTypes (§5.3)
FIELD_TYPES = {
    "string": {"text", "textarea", "file", "html", "phonenumber", "calculation_equation"},
    "number": {"number", "calculation_equation"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"},
    "bool": {"booleancheckbox", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "phone_number": {"phonenumber", "text"},
}
EPOCH = "1970-01-01T00:00:00Z"


@dataclass
class Property:
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

    @property
    def option_values(self) -> set[str]:
        return {option["value"] for option in self.options}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "label": self.label, "type": self.type, "fieldType": self.field_type,
            "description": self.description, "groupName": self.group, "options": self.options,
            "displayOrder": -1, "calculated": self.calculated, "externalOptions": False, "hasUniqueValue": False,
            "hidden": False, "hubspotDefined": self.hubspot_defined, "formField": not self.read_only,
            "modificationMetadata": {"archivable": not self.hubspot_defined, "readOnlyDefinition": self.hubspot_defined,
                                     "readOnlyValue": self.read_only},
            "createdAt": self.created_at, "updatedAt": self.created_at, "archived": False,
            "dataSensitivity": "non_sensitive",
        }


def _options(values: list[str], labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [{"label": (labels or {}).get(v, v.replace("_", " ").title()), "value": v, "displayOrder": n,
             "hidden": False} for n, v in enumerate(values)]


LIFECYCLE_STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
                    "evangelist", "other"]
LEAD_STATUSES = ["NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED",
                 "BAD_TIMING"]


def default_properties(currencies: list[str]) -> dict[str, dict[str, Property]]:
    contact = [
        Property("email", "Email", "string", "text", "contactinformation"),
        Property("firstname", "First Name", "string", "text", "contactinformation"),
        Property("lastname", "Last Name", "string", "text", "contactinformation"),
        Property("phone", "Phone Number", "string", "phonenumber", "contactinformation"),
        Property("company", "Company Name", "string", "text", "contactinformation"),
        Property("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation",
                 _options(LIFECYCLE_STAGES)),
        Property("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties",
                 _options(LEAD_STATUSES)),
        Property("createdate", "Create Date", "datetime", "date", "contactinformation", read_only=True),
        Property("lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation", read_only=True),
        Property("hs_object_id", "Record ID", "number", "number", "contactinformation", read_only=True),
        Property("hs_analytics_source", "Original Source", "enumeration", "select", "analyticsinformation",
                 _options(["ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS",
                           "OTHER_CAMPAIGNS", "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL"]), read_only=True),
        Property("hs_analytics_source_data_1", "Original Source Drill-Down 1", "string", "text",
                 "analyticsinformation", read_only=True),
    ]
    deal = [
        Property("dealname", "Deal Name", "string", "text", "dealinformation"),
        Property("amount", "Amount", "number", "number", "dealinformation"),
        Property("closedate", "Close Date", "datetime", "date", "dealinformation"),
        Property("pipeline", "Pipeline", "enumeration", "select", "dealinformation"),
        Property("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation"),
        Property("deal_currency_code", "Currency", "enumeration", "select", "dealinformation", _options(currencies)),
        Property("createdate", "Create Date", "datetime", "date", "dealinformation", read_only=True),
        Property("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "dealinformation", read_only=True),
        Property("hs_object_id", "Record ID", "number", "number", "dealinformation", read_only=True),
        Property("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", "dealinformation", calculated=True,
                 read_only=True),
        Property("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", "dealinformation", calculated=True,
                 read_only=True),
        Property("hs_closed_amount", "Closed Deal Amount", "number", "number", "dealinformation", calculated=True,
                 read_only=True),
        Property("hs_analytics_source", "Original Source Type", "enumeration", "select", "analyticsinformation",
                 read_only=True),
    ]
    return {"contacts": {p.name: p for p in contact}, "deals": {p.name: p for p in deal}}


def default_groups() -> dict[str, dict[str, dict[str, Any]]]:
    def group(name: str, label: str) -> dict[str, Any]:
        return {"name": name, "label": label, "displayOrder": 0, "archived": False}
    return {"contacts": {g["name"]: g for g in (group("contactinformation", "Contact information"),
                                                 group("sales_properties", "Sales properties"),
                                                 group("analyticsinformation", "Web analytics history"))},
            "deals": {g["name"]: g for g in (group("dealinformation", "Deal information"),
                                             group("analyticsinformation", "Web analytics history"))}}


def default_pipelines() -> list[dict[str, Any]]:
    """The default sales pipeline (§6.1 stage ids and probabilities) plus a custom one with
    numeric stage ids (§6.1: "Custom pipelines and stages have numeric string IDs")."""
    def stage(stage_id: str, label: str, order: int, probability: str, closed: bool, created: str = EPOCH):
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
    return [
        {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": False, "createdAt": EPOCH,
         "updatedAt": "2024-01-01T00:00:00Z",
         "stages": [stage(s, label, n, p, c) for n, (s, label, p, c) in enumerate(default)]},
        {"id": "7654321", "label": "Partner Pipeline", "displayOrder": 1, "archived": False,
         "createdAt": "2024-03-01T00:00:00Z", "updatedAt": "2024-03-01T00:00:00Z",
         "stages": [stage(s, label, n, p, c, "2024-03-01T00:00:00Z") for n, (s, label, p, c) in enumerate(custom)]},
    ]
