"""The emulated org's objects and fields, and their describe output.

Field types and flags follow the DescribeSObjectResult shape (reference §6,
https://developer.salesforce.com/docs/platform/api-rest/guide/dome-sobject-describe). Only
what closedloop and its tests touch is modelled, but what is modelled is strict: the store
enforces unknown fields, read-only fields, lengths and restricted picklists on write against
exactly these definitions, so describe and behaviour cannot disagree.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Field.type values (DescribeFieldResult.type)
TEXT_TYPES = ("string", "textarea", "email", "phone", "url", "picklist", "combobox")
NUMBER_TYPES = ("int", "double", "currency", "percent")
ID_TYPES = ("id", "reference")
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                 "SystemModstamp")
# Fields that the sorted index covers (reference §7: polling on SystemModstamp/LastModifiedDate).
STAMP_FIELDS = ("SystemModstamp", "LastModifiedDate", "CreatedDate")

_SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
               "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double", "date": "xsd:date",
               "datetime": "xsd:dateTime"}


@dataclass
class Field:
    """One field of an sObject, with the flags describe reports and writes obey."""

    name: str
    type: str
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
    defaulted_on_create: bool = False
    calculated: bool = False
    inline_help: str | None = None
    default_value: object = None
    # False: created through Tooling but the integration user has no field-level security yet
    # (reference §8.4), so describe omits it and SOQL says INVALID_FIELD.
    visible: bool = True

    def describe(self) -> dict:
        """The DescribeFieldResult for this field (reference §6)."""
        is_text = self.type in TEXT_TYPES or self.type in ID_TYPES
        return {
            "aggregatable": self.type not in ("textarea",), "autoNumber": False,
            "byteLength": self.length * 3 if is_text else 0, "calculated": self.calculated,
            "calculatedFormula": None, "cascadeDelete": False, "caseSensitive": False, "compoundFieldName": None,
            "controllerName": None, "createable": self.createable, "custom": self.custom,
            "defaultValue": self.default_value, "defaultValueFormula": None,
            "defaultedOnCreate": self.defaulted_on_create, "dependentPicklist": False,
            "deprecatedAndHidden": False, "digits": 9 if self.type == "int" else 0,
            "displayLocationInDecimal": False, "encrypted": False, "externalId": False, "extraTypeInfo": None,
            "filterable": self.type != "textarea" or self.length <= 255, "filteredLookupInfo": None,
            "groupable": self.type not in NUMBER_TYPES + ("datetime", "textarea"), "highScaleNumber": False,
            "htmlFormatted": False, "idLookup": self.type == "id", "inlineHelpText": self.inline_help,
            "label": self.label or self.name, "length": self.length if is_text else 0, "mask": None,
            "maskType": None, "name": self.name, "nameField": self.name == "Name", "namePointing": False,
            "nillable": self.nillable, "permissionable": self.custom or (self.nillable and self.updateable),
            "picklistValues": [{"active": True, "defaultValue": False, "label": value, "validFor": None,
                                "value": value} for value in self.picklist],
            "polymorphicForeignKey": False, "precision": self.precision, "queryByDistance": False,
            "referenceTargetField": None, "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.relationship_name or None, "relationshipOrder": None,
            "restrictedDelete": False, "restrictedPicklist": self.restricted, "scale": self.scale,
            "searchPrefilterable": False, "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.type != "textarea" or self.length <= 255, "type": self.type, "unique": False,
            "updateable": self.updateable, "writeRequiresMasterRead": False,
        }


@dataclass
class ChildRelationship:
    """A parent-to-child relationship usable as a SOQL subquery (``OpportunityContactRoles``)."""

    name: str   # e.g. OpportunityContactRoles
    child: str  # e.g. OpportunityContactRole
    field: str  # the child's lookup to the parent, e.g. OpportunityId


@dataclass
class SObject:
    """One object: its fields (in describe order) and child relationships."""

    name: str
    label: str
    key_prefix: str
    fields: dict[str, Field] = field(default_factory=dict)
    children: dict[str, ChildRelationship] = field(default_factory=dict)
    updateable: bool = True
    createable: bool = True
    deletable: bool = True
    label_plural: str = ""
    _lower: dict[str, Field] = field(default_factory=dict, repr=False)

    def field(self, name: str, *, include_hidden: bool = False) -> Field | None:
        """The field called ``name`` (case-insensitive), or None when absent or FLS-hidden."""
        found = self.fields.get(name)
        if found is None:
            if len(self._lower) != len(self.fields):
                self._lower = {key.lower(): value for key, value in self.fields.items()}
            found = self._lower.get(name.lower())
        if found is None or (not found.visible and not include_hidden):
            return None
        return found

    def add_field(self, spec: Field) -> None:
        self.fields[spec.name] = spec
        self._lower = {}

    def remove_field(self, name: str) -> None:
        self.fields.pop(name, None)
        self._lower = {}

    def relationship(self, name: str) -> Field | None:
        """The lookup field whose relationship name is ``name`` (``ConvertedContact`` → ConvertedContactId)."""
        lowered = name.lower()
        return next((f for f in self.fields.values() if f.visible and f.relationship_name
                     and f.relationship_name.lower() == lowered), None)

    def child(self, name: str) -> ChildRelationship | None:
        lowered = name.lower()
        return next((c for key, c in self.children.items() if key.lower() == lowered), None)

    def describe(self, base: str) -> dict:
        """The DescribeSObjectResult (``GET sobjects/{T}/describe``, reference §6)."""
        return {
            **self.summary(base),
            "fields": [f.describe() for f in self.fields.values() if f.visible],
            "childRelationships": [{"cascadeDelete": False, "childSObject": c.child, "deprecatedAndHidden": False,
                                    "field": c.field, "junctionIdListNames": [], "junctionReferenceTo": [],
                                    "relationshipName": c.name, "restrictedDelete": False}
                                   for c in self.children.values()],
            "recordTypeInfos": [], "supportedScopes": [{"label": "All " + self.plural, "name": "everything"}],
            "namedLayoutInfos": [], "networkScopeFieldName": None, "actionOverrides": [],
        }

    @property
    def plural(self) -> str:
        return self.label_plural or self.label + "s"

    def summary(self, base: str) -> dict:
        """The entry of the global describe (``GET sobjects``) for this object."""
        return {
            "activateable": False, "createable": self.createable, "custom": False, "customSetting": False,
            "deepCloneable": False, "deletable": self.deletable, "deprecatedAndHidden": False,
            "feedEnabled": False, "hasSubtypes": False, "isInterface": False, "isSubtype": False,
            "keyPrefix": self.key_prefix, "label": self.label, "labelPlural": self.plural, "layoutable": True,
            "mergeable": self.name in ("Lead", "Contact", "Account"), "mruEnabled": True, "name": self.name,
            "queryable": True, "replicateable": True, "retrieveable": True, "searchable": True,
            "triggerable": True, "undeletable": self.deletable, "updateable": self.updateable,
            "urls": {"sobject": f"{base}/sobjects/{self.name}", "describe": f"{base}/sobjects/{self.name}/describe",
                     "rowTemplate": f"{base}/sobjects/{self.name}/{{ID}}"},
        }


LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Qualified", "Unqualified", "Closed - Converted",
                 "Closed - Not Converted")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
# Standard sales process stages → (probability %, IsClosed, IsWon).
OPPORTUNITY_STAGES = {
    "Prospecting": (10, False, False), "Qualification": (10, False, False), "Needs Analysis": (20, False, False),
    "Value Proposition": (50, False, False), "Id. Decision Makers": (60, False, False),
    "Perception Analysis": (70, False, False), "Proposal/Price Quote": (75, False, False),
    "Negotiation/Review": (90, False, False), "Closed Won": (100, True, True), "Closed Lost": (0, True, False),
}
CONTACT_ROLES = ("Business User", "Decision Maker", "Economic Buyer", "Economic Decision Maker", "Evaluator",
                 "Executive Sponsor", "Influencer", "Technical Buyer", "Other")
# Active currencies of a multi-currency org and their rates against USD.
CURRENCY_RATES = {"USD": "1", "EUR": "0.909091", "GBP": "0.8", "CAD": "1.333333", "AUD": "1.538462",
                  "JPY": "149.25"}
# Objects that carry CurrencyIsoCode once multi-currency is on (reference §8.2).
CURRENCY_OBJECTS = ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole")


def _system(owner: bool = True) -> list[Field]:
    fields = [
        Field("Id", "id", "Record ID", 18, updateable=False, createable=False, nillable=False,
              defaulted_on_create=True),
        Field("IsDeleted", "boolean", "Deleted", updateable=False, createable=False, nillable=False,
              defaulted_on_create=True),
        Field("CreatedDate", "datetime", "Created Date", updateable=False, createable=False, nillable=False,
              defaulted_on_create=True),
        Field("CreatedById", "reference", "Created By ID", 18, updateable=False, createable=False, nillable=False,
              reference_to="User", relationship_name="CreatedBy", defaulted_on_create=True),
        Field("LastModifiedDate", "datetime", "Last Modified Date", updateable=False, createable=False,
              nillable=False, defaulted_on_create=True),
        Field("LastModifiedById", "reference", "Last Modified By ID", 18, updateable=False, createable=False,
              nillable=False, reference_to="User", relationship_name="LastModifiedBy", defaulted_on_create=True),
        Field("SystemModstamp", "datetime", "System Modstamp", updateable=False, createable=False, nillable=False,
              defaulted_on_create=True),
    ]
    if owner:
        fields.append(Field("OwnerId", "reference", "Owner ID", 18, nillable=False, reference_to="User",
                            relationship_name="Owner", defaulted_on_create=True))
    return fields


def _object(name: str, label: str, prefix: str, fields: list[Field], owner: bool = True, **kwargs) -> SObject:
    return SObject(name, label, prefix, {f.name: f for f in _system(owner) + fields}, **kwargs)


def system_object(name: str, label: str, prefix: str, fields: list[Field], **kwargs) -> SObject:
    """An object with the system fields but no owner (setup and Tooling objects)."""
    return _object(name, label, prefix, fields, owner=False, **kwargs)


def _person_fields() -> list[Field]:
    return [Field("FirstName", "string", "First Name", 40),
            Field("LastName", "string", "Last Name", 80, nillable=False),
            Field("Name", "string", "Full Name", 121, updateable=False, createable=False, nillable=False,
                  calculated=True),
            Field("Email", "email", "Email", 80), Field("Phone", "phone", "Phone", 40),
            Field("LeadSource", "picklist", "Lead Source", 255, picklist=LEAD_SOURCES)]


def currency_field() -> Field:
    return Field("CurrencyIsoCode", "picklist", "Currency ISO Code", 3, picklist=tuple(CURRENCY_RATES),
                 restricted=True, nillable=False, defaulted_on_create=True)


def currency_type_object() -> SObject:
    return _object("CurrencyType", "Currency Type", "02B", [
        Field("IsoCode", "picklist", "Currency ISO Code", 3, picklist=tuple(CURRENCY_RATES), nillable=False,
              restricted=True),
        Field("ConversionRate", "double", "Conversion Rate", precision=18, scale=6, nillable=False),
        Field("DecimalPlaces", "int", "Decimal Places", precision=2),
        Field("IsCorporate", "boolean", "Corporate Currency", updateable=False, nillable=False),
        Field("IsActive", "boolean", "Active", nillable=False)], owner=False,
        label_plural="Currency Types")


def build_schema(multi_currency: bool) -> dict[str, SObject]:
    """A fresh org schema (custom fields get added to it by the Tooling API)."""
    objects = [
        _object("Lead", "Lead", "00Q", _person_fields() + [
            Field("Company", "string", "Company", 255, nillable=False),
            Field("Status", "picklist", "Status", 255, nillable=False, picklist=LEAD_STATUSES, restricted=True,
                  defaulted_on_create=True),
            Field("IsConverted", "boolean", "Converted", updateable=False, createable=False, nillable=False,
                  defaulted_on_create=True),
            Field("ConvertedDate", "date", "Converted Date", updateable=False, createable=False),
            Field("ConvertedAccountId", "reference", "Converted Account ID", 18, updateable=False, createable=False,
                  reference_to="Account", relationship_name="ConvertedAccount"),
            Field("ConvertedContactId", "reference", "Converted Contact ID", 18, updateable=False, createable=False,
                  reference_to="Contact", relationship_name="ConvertedContact"),
            Field("ConvertedOpportunityId", "reference", "Converted Opportunity ID", 18, updateable=False,
                  createable=False, reference_to="Opportunity", relationship_name="ConvertedOpportunity"),
        ]),
        _object("Contact", "Contact", "003", _person_fields() + [
            Field("AccountId", "reference", "Account ID", 18, reference_to="Account", relationship_name="Account"),
        ], children={"OpportunityContactRoles": ChildRelationship("OpportunityContactRoles", "OpportunityContactRole",
                                                                  "ContactId")}),
        _object("Account", "Account", "001", [Field("Name", "string", "Account Name", 255, nillable=False)],
                children={"Contacts": ChildRelationship("Contacts", "Contact", "AccountId"),
                          "Opportunities": ChildRelationship("Opportunities", "Opportunity", "AccountId")}),
        _object("Opportunity", "Opportunity", "006", [
            Field("Name", "string", "Name", 120, nillable=False),
            Field("StageName", "picklist", "Stage", 255, nillable=False, picklist=tuple(OPPORTUNITY_STAGES),
                  restricted=True),
            Field("Amount", "currency", "Amount", precision=18, scale=2),
            Field("Probability", "percent", "Probability (%)", precision=3, scale=0, defaulted_on_create=True),
            Field("CloseDate", "date", "Close Date", nillable=False),
            Field("IsClosed", "boolean", "Closed", updateable=False, createable=False, nillable=False,
                  defaulted_on_create=True),
            Field("IsWon", "boolean", "Won", updateable=False, createable=False, nillable=False,
                  defaulted_on_create=True),
            Field("AccountId", "reference", "Account ID", 18, reference_to="Account", relationship_name="Account"),
            Field("ContactId", "reference", "Contact ID", 18, reference_to="Contact", relationship_name="Contact"),
            Field("LeadSource", "picklist", "Lead Source", 255, picklist=LEAD_SOURCES),
        ], label_plural="Opportunities",
            children={"OpportunityContactRoles": ChildRelationship("OpportunityContactRoles", "OpportunityContactRole",
                                                                   "OpportunityId")}),
        _object("OpportunityContactRole", "Opportunity Contact Role", "00K", [
            Field("OpportunityId", "reference", "Opportunity ID", 18, updateable=False, nillable=False,
                  reference_to="Opportunity", relationship_name="Opportunity"),
            Field("ContactId", "reference", "Contact ID", 18, nillable=False, reference_to="Contact",
                  relationship_name="Contact"),
            Field("IsPrimary", "boolean", "Primary", nillable=False, defaulted_on_create=True, default_value=False),
            Field("Role", "picklist", "Role", 40, picklist=CONTACT_ROLES),
        ], owner=False),
        _object("User", "User", "005", [
            Field("Username", "string", "Username", 80, nillable=False),
            Field("Name", "string", "Full Name", 121, updateable=False, createable=False, nillable=False,
                  calculated=True),
            Field("FirstName", "string", "First Name", 40), Field("LastName", "string", "Last Name", 80,
                                                                  nillable=False),
            Field("Email", "email", "Email", 128, nillable=False),
            Field("IsActive", "boolean", "Active", nillable=False, defaulted_on_create=True)], owner=False),
        _object("Organization", "Organization", "00D", [
            Field("Name", "string", "Name", 80, updateable=False, createable=False, nillable=False),
            Field("DefaultCurrencyIsoCode", "picklist", "Locale Currency", 3, updateable=False, createable=False,
                  picklist=tuple(CURRENCY_RATES)),
            Field("IsSandbox", "boolean", "Is Sandbox", updateable=False, createable=False, nillable=False)],
            owner=False, updateable=False, createable=False, deletable=False),
        _object("PermissionSet", "Permission Set", "0PS", [
            Field("Name", "string", "Name", 80, nillable=False),
            Field("Label", "string", "Label", 80, nillable=False)], owner=False),
        _object("FieldPermissions", "Field Permissions", "01k", [
            Field("ParentId", "reference", "Parent ID", 18, updateable=False, reference_to="PermissionSet",
                  relationship_name="Parent", nillable=False),
            Field("SobjectType", "picklist", "Sobject Type Name", 40, updateable=False, nillable=False),
            Field("Field", "picklist", "Field Name", 255, updateable=False, nillable=False),
            Field("PermissionsRead", "boolean", "Read Access", nillable=False, defaulted_on_create=True),
            Field("PermissionsEdit", "boolean", "Edit Access", nillable=False, defaulted_on_create=True)],
            owner=False, label_plural="Field Permissions"),
    ]
    schema = {sobject.name: sobject for sobject in objects}
    if multi_currency:
        enable_multi_currency(schema)
    return schema


def enable_multi_currency(schema: dict[str, SObject]) -> None:
    """Add CurrencyIsoCode to the currency-aware objects and the CurrencyType object."""
    for name in CURRENCY_OBJECTS:
        if "CurrencyIsoCode" not in schema[name].fields:
            schema[name].add_field(currency_field())
    schema.setdefault("CurrencyType", currency_type_object())


def disable_multi_currency(schema: dict[str, SObject]) -> None:
    """The opposite of :func:`enable_multi_currency` (a test toggle; real orgs cannot go back)."""
    for name in CURRENCY_OBJECTS:
        schema[name].remove_field("CurrencyIsoCode")
    schema.pop("CurrencyType", None)


# Tooling CustomField Metadata.type → (describe type, defaults) (reference §8.4).
TOOLING_TYPES = {
    "Text": ("string", {}), "TextArea": ("textarea", {"length": 255}),
    "LongTextArea": ("textarea", {}), "Html": ("textarea", {}), "Email": ("email", {"length": 80}),
    "Url": ("url", {"length": 255}), "Phone": ("phone", {"length": 40}), "Number": ("double", {}),
    "Currency": ("currency", {}), "Percent": ("percent", {}), "Checkbox": ("boolean", {}),
    "Date": ("date", {}), "DateTime": ("datetime", {}), "Picklist": ("picklist", {"length": 255}),
}
