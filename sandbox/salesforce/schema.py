"""The emulated org's objects and fields, and their describe output.

Field types and flags follow the DescribeSObjectResult shape (reference §6,
https://developer.salesforce.com/docs/platform/api-rest/guide/dome-sobject-describe). Only
what closedloop and its tests touch is modelled, but what is modelled is strict: unknown
fields, read-only fields, lengths and restricted picklists are enforced on write.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Field:
    name: str
    type: str  # id string textarea email phone url picklist boolean int double currency percent date datetime reference
    label: str = ""
    length: int = 0
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    custom: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: str = ""
    relationship_name: str = ""
    precision: int = 0
    scale: int = 0
    visible: bool = True  # False: created but no field-level security for the integration user yet

    def describe(self) -> dict:
        return {
            "name": self.name, "label": self.label or self.name, "type": self.type, "length": self.length,
            "byteLength": self.length * 3, "precision": self.precision, "scale": self.scale,
            "digits": 0, "nillable": self.nillable, "updateable": self.updateable, "createable": self.createable,
            "custom": self.custom, "calculated": False, "defaultedOnCreate": self.name in SYSTEM_FIELDS,
            "externalId": False, "unique": False, "idLookup": self.type == "id",
            "restrictedPicklist": self.restricted, "dependentPicklist": False,
            "picklistValues": [{"active": True, "defaultValue": False, "label": value, "validFor": None,
                                "value": value} for value in self.picklist],
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.relationship_name or None,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
        }


@dataclass
class ChildRelationship:
    name: str          # e.g. OpportunityContactRoles
    child: str         # e.g. OpportunityContactRole
    field: str         # the child's lookup to the parent, e.g. OpportunityId


@dataclass
class SObject:
    name: str
    label: str
    key_prefix: str
    fields: dict[str, Field] = field(default_factory=dict)
    children: dict[str, ChildRelationship] = field(default_factory=dict)
    updateable: bool = True
    createable: bool = True

    def field(self, name: str, *, include_hidden: bool = False) -> Field | None:
        found = self.fields.get(name) or next((f for f in self.fields.values() if f.name.lower() == name.lower()),
                                              None)
        if found is None or (not found.visible and not include_hidden):
            return None
        return found

    def relationship(self, name: str) -> Field | None:
        return next((f for f in self.fields.values() if f.visible and f.relationship_name
                     and f.relationship_name.lower() == name.lower()), None)

    def describe(self, base: str) -> dict:
        return {
            "name": self.name, "label": self.label, "labelPlural": self.label + "s", "keyPrefix": self.key_prefix,
            "custom": False, "createable": self.createable, "updateable": self.updateable, "deletable": True,
            "queryable": True, "searchable": True, "retrieveable": True,
            "fields": [f.describe() for f in self.fields.values() if f.visible],
            "childRelationships": [{"childSObject": c.child, "field": c.field, "relationshipName": c.name,
                                    "cascadeDelete": False} for c in self.children.values()],
            "recordTypeInfos": [],
            "urls": {"sobject": f"{base}/sobjects/{self.name}", "describe": f"{base}/sobjects/{self.name}/describe",
                     "rowTemplate": f"{base}/sobjects/{self.name}/{{ID}}"},
        }


SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                 "SystemModstamp")
_SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
               "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double", "date": "xsd:date",
               "datetime": "xsd:dateTime"}

LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Qualified", "Unqualified", "Closed - Converted",
                 "Closed - Not Converted")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
# stage → (probability, is_closed, is_won)
OPPORTUNITY_STAGES = {
    "Prospecting": (10, False, False), "Qualification": (10, False, False), "Needs Analysis": (20, False, False),
    "Value Proposition": (50, False, False), "Id. Decision Makers": (60, False, False),
    "Perception Analysis": (70, False, False), "Proposal/Price Quote": (75, False, False),
    "Negotiation/Review": (90, False, False), "Closed Won": (100, True, True), "Closed Lost": (0, True, False),
}
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY")


def _system(owner: bool = True) -> list[Field]:
    fields = [
        Field("Id", "id", "Record ID", 18, updateable=False, createable=False, nillable=False),
        Field("IsDeleted", "boolean", "Deleted", updateable=False, createable=False, nillable=False),
        Field("CreatedDate", "datetime", "Created Date", updateable=False, createable=False, nillable=False),
        Field("CreatedById", "reference", "Created By ID", 18, updateable=False, createable=False, nillable=False,
              reference_to="User", relationship_name="CreatedBy"),
        Field("LastModifiedDate", "datetime", "Last Modified Date", updateable=False, createable=False,
              nillable=False),
        Field("LastModifiedById", "reference", "Last Modified By ID", 18, updateable=False, createable=False,
              nillable=False, reference_to="User", relationship_name="LastModifiedBy"),
        Field("SystemModstamp", "datetime", "System Modstamp", updateable=False, createable=False, nillable=False),
    ]
    if owner:
        fields.append(Field("OwnerId", "reference", "Owner ID", 18, nillable=False, reference_to="User",
                            relationship_name="Owner"))
    return fields


def _object(name: str, label: str, prefix: str, fields: list[Field], owner: bool = True, **kwargs) -> SObject:
    return SObject(name, label, prefix, {f.name: f for f in _system(owner) + fields}, **kwargs)


def build_schema(multi_currency: bool) -> dict[str, SObject]:
    """A fresh org schema (custom fields get added to it by the Tooling API)."""
    currency = [Field("CurrencyIsoCode", "picklist", "Currency ISO Code", 3, picklist=CURRENCIES,
                      restricted=True)] if multi_currency else []
    person = [Field("FirstName", "string", "First Name", 40), Field("LastName", "string", "Last Name", 80,
                                                                   nillable=False),
              Field("Email", "email", "Email", 80), Field("Phone", "phone", "Phone", 40),
              Field("LeadSource", "picklist", "Lead Source", 255, picklist=LEAD_SOURCES)]
    objects = [
        _object("Lead", "Lead", "00Q", person + [
            Field("Company", "string", "Company", 255, nillable=False),
            Field("Status", "picklist", "Status", 255, nillable=False, picklist=LEAD_STATUSES, restricted=True),
            Field("IsConverted", "boolean", "Converted", updateable=False, createable=False, nillable=False),
            Field("ConvertedDate", "date", "Converted Date", updateable=False, createable=False),
            Field("ConvertedAccountId", "reference", "Converted Account ID", 18, updateable=False, createable=False,
                  reference_to="Account", relationship_name="ConvertedAccount"),
            Field("ConvertedContactId", "reference", "Converted Contact ID", 18, updateable=False, createable=False,
                  reference_to="Contact", relationship_name="ConvertedContact"),
            Field("ConvertedOpportunityId", "reference", "Converted Opportunity ID", 18, updateable=False,
                  createable=False, reference_to="Opportunity", relationship_name="ConvertedOpportunity"),
        ] + currency),
        _object("Contact", "Contact", "003", person + [
            Field("AccountId", "reference", "Account ID", 18, reference_to="Account", relationship_name="Account"),
        ] + currency),
        _object("Account", "Account", "001", [Field("Name", "string", "Account Name", 255, nillable=False)] + currency),
        _object("Opportunity", "Opportunity", "006", [
            Field("Name", "string", "Name", 120, nillable=False),
            Field("StageName", "picklist", "Stage", 255, nillable=False, picklist=tuple(OPPORTUNITY_STAGES),
                  restricted=True),
            Field("Amount", "currency", "Amount", precision=18, scale=2),
            Field("Probability", "percent", "Probability (%)", precision=3, scale=0),
            Field("CloseDate", "date", "Close Date", nillable=False),
            Field("IsClosed", "boolean", "Closed", updateable=False, createable=False, nillable=False),
            Field("IsWon", "boolean", "Won", updateable=False, createable=False, nillable=False),
            Field("AccountId", "reference", "Account ID", 18, reference_to="Account", relationship_name="Account"),
            Field("ContactId", "reference", "Contact ID", 18, reference_to="Contact", relationship_name="Contact"),
            Field("LeadSource", "picklist", "Lead Source", 255, picklist=LEAD_SOURCES),
        ] + currency, children={"OpportunityContactRoles": ChildRelationship(
            "OpportunityContactRoles", "OpportunityContactRole", "OpportunityId")}),
        _object("OpportunityContactRole", "Opportunity Contact Role", "00K", [
            Field("OpportunityId", "reference", "Opportunity ID", 18, updateable=False, nillable=False,
                  reference_to="Opportunity", relationship_name="Opportunity"),
            Field("ContactId", "reference", "Contact ID", 18, reference_to="Contact", relationship_name="Contact"),
            Field("IsPrimary", "boolean", "Primary", nillable=False),
            Field("Role", "picklist", "Role", 40, picklist=("Decision Maker", "Economic Buyer", "Influencer",
                                                             "Other")),
        ] + currency, owner=False),
        _object("User", "User", "005", [
            Field("Username", "string", "Username", 80, nillable=False), Field("Name", "string", "Full Name", 121),
            Field("Email", "email", "Email", 128, nillable=False),
            Field("IsActive", "boolean", "Active", nillable=False)], owner=False),
        _object("Organization", "Organization", "00D", [
            Field("Name", "string", "Name", 80, updateable=False),
            Field("DefaultCurrencyIsoCode", "picklist", "Locale Currency", 3, updateable=False, picklist=CURRENCIES),
            Field("IsSandbox", "boolean", "Is Sandbox", updateable=False)], owner=False, updateable=False,
            createable=False),
        _object("PermissionSet", "Permission Set", "0PS", [
            Field("Name", "string", "Name", 80, nillable=False), Field("Label", "string", "Label", 80,
                                                                       nillable=False)], owner=False),
        _object("FieldPermissions", "Field Permissions", "01k", [
            Field("ParentId", "reference", "Parent ID", 18, reference_to="PermissionSet", nillable=False),
            Field("SobjectType", "string", "Sobject Type", 255, nillable=False),
            Field("Field", "string", "Field Name", 255, nillable=False),
            Field("PermissionsRead", "boolean", "Read Access"), Field("PermissionsEdit", "boolean", "Edit Access")],
            owner=False),
    ]
    if multi_currency:
        objects.append(_object("CurrencyType", "Currency Type", "02C", [
            Field("IsoCode", "picklist", "Currency ISO Code", 3, picklist=CURRENCIES),
            Field("ConversionRate", "double", "Conversion Rate", precision=18, scale=6),
            Field("IsCorporate", "boolean", "Corporate Currency"), Field("IsActive", "boolean", "Active")],
            owner=False))
    return {sobject.name: sobject for sobject in objects}


TOOLING_TYPES = {  # Tooling CustomField Metadata.type → field type and defaults
    "Text": ("string", {"length": 255}), "TextArea": ("textarea", {"length": 255}),
    "LongTextArea": ("textarea", {"length": 32768}), "Email": ("email", {"length": 80}),
    "Url": ("url", {"length": 255}), "Phone": ("phone", {"length": 40}), "Number": ("double", {}),
    "Currency": ("currency", {}), "Percent": ("percent", {}), "Checkbox": ("boolean", {}),
    "Date": ("date", {}), "DateTime": ("datetime", {}), "Picklist": ("picklist", {"length": 255}),
}
