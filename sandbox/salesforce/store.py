"""The emulated org's data: records, indexes, validation on write, lead conversion, custom fields.

Writes follow reference §3 and §4.3: unknown fields and wrongly typed JSON are refused for the
whole request (they fail while Salesforce deserialises the body, before any record is
touched); read-only fields, lengths, restricted picklists, bad ids, converted leads and
deleted records are refused per record with Salesforce's codes and messages. Every write
advances ``SystemModstamp`` and ``LastModifiedDate`` to the clock's now, truncated to the
second, so records written at one instant share a stamp (reference §7).

Queries are compiled by ``soql.py`` and planned here: an ``Id``/lookup equality is answered
from a hash index, a range on ``SystemModstamp``/``LastModifiedDate``/``CreatedDate`` from a
sorted index (already in ``ORDER BY field, Id`` order), and only the remaining conditions are
evaluated per candidate. Nulls are not stored (an absent key reads as null), which keeps a
million sparse records affordable.
"""
from __future__ import annotations

import heapq
import itertools
import json
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Iterator

from sandbox.clock import Clock
from sandbox.salesforce import schema as schemas
from sandbox.salesforce.ids import IdFactory, to18
from sandbox.salesforce.index import HashIndex, SortedIndex
from sandbox.salesforce.schema import (ID_TYPES, NUMBER_TYPES, OPPORTUNITY_STAGES, STAMP_FIELDS, TOOLING_TYPES,
                                       Field, SObject)
from sandbox.salesforce.soql import Compiled, compile_query, order_rows

_ID_HIGH = "~"  # sorts after every id character: (stamp, "~") is past every record at that stamp
_EMAIL = re.compile(r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
_CUSTOM_NAME = re.compile(r"^[A-Za-z](?!.*__)[A-Za-z0-9_]{0,39}(?<!_)$")


class WriteError(Exception):
    """One record's failure: a SaveResult error in collections, a 400/404 body for single writes."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.fields, self.status = code, message, fields or [], status

    def as_save_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def as_rest_error(self) -> dict[str, Any]:
        return {"message": self.message, "errorCode": self.code, "fields": self.fields}


class RequestError(Exception):
    """The request as a whole is refused (deserialisation, unknown columns): a 400 error array."""

    def __init__(self, code: str, message: str, status: int = 400, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.fields = code, message, status, fields

    def as_rest_error(self) -> dict[str, Any]:
        error = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            error["fields"] = self.fields
        return error


@dataclass
class QueryResult:
    """The ids a query matched (in result order), and how to render them."""

    compiled: Compiled
    ids: list[str]
    count: int

    @property
    def object(self) -> str:
        return self.compiled.sobject.name


def whole_second(moment: datetime) -> datetime:
    """Salesforce keeps record timestamps to the second (the API always shows ``.000``)."""
    return moment.astimezone(timezone.utc).replace(microsecond=0)


class Store:
    """Records and schema of one org. All mutation happens under ``lock``."""

    def __init__(self, clock: Clock, *, multi_currency: bool = False, org_currency: str = "USD",
                 require_fls: bool = True, assignment_rule_owner_id: str | None = None,
                 lock: threading.RLock | None = None) -> None:
        self.clock = clock
        self.lock = lock or threading.RLock()
        self.org_currency = org_currency
        self.require_fls = require_fls
        self.assignment_rule_owner_id = assignment_rule_owner_id
        self.schema: dict[str, SObject] = schemas.build_schema(multi_currency=False)
        self.ids = IdFactory()
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.by_id: dict[str, str] = {}
        self._sorted: dict[str, dict[str, tuple[SortedIndex, SortedIndex]]] = {}  # object → field → (live, deleted)
        self._lookups: dict[str, dict[str, HashIndex]] = {}
        self.custom_field_ids: dict[str, str] = {}  # "Lead.X__c" → Tooling id
        # Told of every record write, under the lock: (kind, object, record, old or None, user id),
        # kind "insert", "touch" (update, delete, undelete) or "rollback" (allOrNone undo).
        self.listener: Callable[[str, str, dict[str, Any], dict[str, Any] | None, str | None], None] | None = None
        self.multi_currency = False
        self.organization_id = self.ids.new("00D")
        self.integration_user = self._seed_user("integration@closedloop.sandbox", "closedloop", "Integration")
        self.sales_rep = self._seed_user("rep@closedloop.sandbox", "Riley", "Rep")
        self.insert("Organization", {"Name": "closedloop Sandbox", "DefaultCurrencyIsoCode": org_currency,
                                     "IsSandbox": True}, user_id=self.integration_user, validate=False,
                    record_id=self.organization_id)
        self.permission_set = self.insert("PermissionSet", {"Name": "Closedloop_Integration",
                                                            "Label": "closedloop integration"},
                                          user_id=self.integration_user, validate=False)
        if multi_currency:
            self.set_multi_currency(True)

    def _seed_user(self, username: str, first: str, last: str) -> str:
        return self.insert("User", {"Username": username, "FirstName": first, "LastName": last, "Email": username,
                                    "IsActive": True}, user_id=None, validate=False)

    # -- lookups ----------------------------------------------------------------------

    def sobject(self, name: str) -> SObject:
        """The object called ``name`` (case-insensitive); 404 NOT_FOUND as the REST API answers."""
        found = self.schema.get(name) or next((o for key, o in self.schema.items() if key.lower() == name.lower()),
                                              None)
        if found is None:
            raise RequestError("NOT_FOUND", "The requested resource does not exist", status=404)
        return found

    def table(self, object_name: str) -> dict[str, dict[str, Any]]:
        return self.records.setdefault(object_name, {})

    def get(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        """(object name, record) for any stored record, deleted ones included."""
        full = to18(record_id) if isinstance(record_id, str) else None
        object_name = self.by_id.get(full) if full else None
        return (object_name, self.records[object_name][full]) if object_name else None

    def resolve(self, record_id: str) -> dict[str, Any] | None:
        """The live record with this id (RecordSource for compiled queries)."""
        object_name = self.by_id.get(record_id)
        if object_name is None:
            return None
        record = self.records[object_name][record_id]
        return None if record["IsDeleted"] else record

    def children(self, object_name: str, field_name: str, parent_id: str) -> list[dict[str, Any]]:
        table = self.table(object_name)
        index = self._lookups.get(object_name, {}).get(field_name)
        if index is not None:
            rows = (table[i] for i in sorted(index.get(parent_id)))
        else:
            rows = (r for r in table.values() if r.get(field_name) == parent_id)
        return [r for r in rows if not r["IsDeleted"]]

    # -- indexes ----------------------------------------------------------------------

    def _indexes(self, object_name: str) -> tuple[dict[str, tuple[SortedIndex, SortedIndex]], dict[str, HashIndex]]:
        sorted_indexes = self._sorted.get(object_name)
        if sorted_indexes is None:
            sorted_indexes = self._sorted[object_name] = {name: (SortedIndex(), SortedIndex())
                                                          for name in STAMP_FIELDS}
            # Lookups to users (owner, audit fields) are too unselective to be worth a hash index.
            self._lookups[object_name] = {f.name: HashIndex() for f in self.schema[object_name].fields.values()
                                          if f.type == "reference" and f.reference_to != "User"}
        return sorted_indexes, self._lookups[object_name]

    def _index(self, object_name: str, record: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Bring the indexes from ``old`` (None: not indexed yet) to ``record``."""
        sorted_indexes, lookups = self._indexes(object_name)
        record_id = record["Id"]
        for name, (live, deleted) in sorted_indexes.items():
            if old is not None:
                if old.get(name) == record.get(name) and old["IsDeleted"] == record["IsDeleted"]:
                    continue
                (deleted if old["IsDeleted"] else live).discard((old[name], record_id))
            (deleted if record["IsDeleted"] else live).add((record[name], record_id))
        for name, index in lookups.items():
            before = old.get(name) if old is not None else None
            after = record.get(name)
            if before != after or old is None:
                if before is not None:
                    index.discard(before, record_id)
                index.add(after, record_id)

    # -- writes -----------------------------------------------------------------------

    def insert(self, object_name: str, values: dict[str, Any], *, user_id: str | None,
               created_at: datetime | None = None, validate: bool = True, audit: bool = False,
               auto_assign: bool = False, record_id: str | None = None, now: datetime | None = None) -> str:
        """Create a record. ``validate`` applies the API's rules (raises WriteError/RequestError);
        without it values are only converted (fast seeding). ``audit`` allows CreatedDate and
        LastModifiedDate, as the "Set Audit Fields upon Record Creation" permission does."""
        sobject = self.sobject(object_name)
        with self.lock:
            converted = self.convert_values(sobject, values, creating=True, strict=validate, audit=audit)
            if validate:
                self._check_references(sobject, converted)
                self._check_required(sobject, converted)
                if sobject.name == "FieldPermissions":
                    self.check_field_permissions(converted)
            now = now or whole_second(self.clock.now())
            record_id = record_id or self.ids.new(sobject.key_prefix)
            user = user_id or record_id  # the very first user creates itself
            created = converted.pop("CreatedDate", None) or (whole_second(created_at) if created_at else now)
            modified = converted.pop("LastModifiedDate", None) or now
            # SystemModstamp always says when the record was really written, whatever the audit fields say.
            record: dict[str, Any] = {"Id": record_id, "IsDeleted": False, "CreatedDate": created,
                                      "CreatedById": user, "LastModifiedDate": modified,
                                      "LastModifiedById": user, "SystemModstamp": now}
            if "OwnerId" in sobject.fields:
                record["OwnerId"] = user
            self._defaults(sobject, record)
            record.update(converted)
            for name in [k for k, v in record.items() if v is None]:
                del record[name]
            self._derive(sobject.name, record, set(converted))
            if sobject.name == "Lead" and auto_assign and self.assignment_rule_owner_id:
                record["OwnerId"] = self.assignment_rule_owner_id  # an active lead assignment rule fires
            self.table(sobject.name)[record_id] = record
            self.by_id[record_id] = sobject.name
            self._index(sobject.name, record, None)
            if sobject.name == "FieldPermissions":
                self._apply_field_permissions(record)
            if self.listener is not None:
                self.listener("insert", sobject.name, record, None, user)
        return record_id

    def _defaults(self, sobject: SObject, record: dict[str, Any]) -> None:
        if sobject.name == "Lead":
            record.update(IsConverted=False, Status="Open - Not Contacted")
        elif sobject.name == "Opportunity":
            record.update(IsClosed=False, IsWon=False)
        elif sobject.name == "OpportunityContactRole":
            record["IsPrimary"] = False
        elif sobject.name == "User":
            record["IsActive"] = True
        elif sobject.name == "FieldPermissions":
            record.update(PermissionsRead=False, PermissionsEdit=False)
        if "CurrencyIsoCode" in sobject.fields:
            record["CurrencyIsoCode"] = self.org_currency
        for spec in sobject.fields.values():
            if spec.custom and spec.type == "boolean":
                record[spec.name] = bool(spec.default_value)

    def update(self, object_name: str, record_id: str, values: dict[str, Any], *, user_id: str,
               auto_assign: bool = False, validate: bool = True, now: datetime | None = None) -> str:
        """Apply a write as the API would; returns the 18-character id."""
        sobject = self.sobject(object_name)
        with self.lock:
            raw, refused = self.read_values(sobject, values, creating=False, strict=validate)
            record = self.writable(sobject, record_id)
            converted = self.check_values(sobject, raw, refused, strict=validate)
            if validate:
                self._check_references(sobject, converted)
            old = dict(record)
            for name, value in converted.items():
                if value is None:
                    record.pop(name, None)
                else:
                    record[name] = value
            self._derive(sobject.name, record, set(converted))
            if sobject.name == "Lead" and auto_assign and self.assignment_rule_owner_id:
                record["OwnerId"] = self.assignment_rule_owner_id  # an active lead assignment rule fires
            self._touch(sobject.name, record, old, user_id, now)
            if sobject.name == "FieldPermissions":
                self._apply_field_permissions(record)
        return record["Id"]

    def _touch(self, object_name: str, record: dict[str, Any], old: dict[str, Any], user_id: str,
               now: datetime | None = None) -> None:
        now = now or whole_second(self.clock.now())
        record["LastModifiedDate"] = record["SystemModstamp"] = now
        record["LastModifiedById"] = user_id
        self._index(object_name, record, old)
        if self.listener is not None:
            self.listener("touch", object_name, record, old, user_id)

    def delete(self, object_name: str, record_id: str, *, user_id: str) -> str:
        """Move a record to the recycle bin (IsDeleted, still visible to queryAll)."""
        sobject = self.sobject(object_name)
        with self.lock:
            record = self.writable(sobject, record_id, allow_converted=True)
            old = dict(record)
            record["IsDeleted"] = True
            self._touch(sobject.name, record, old, user_id)
            if sobject.name == "FieldPermissions":
                self._apply_field_permissions(record)
        return record["Id"]

    def undelete(self, object_name: str, record_id: str, *, user_id: str) -> str:
        sobject = self.sobject(object_name)
        with self.lock:
            found = self.get(record_id)
            if found is None or found[0] != sobject.name or not found[1]["IsDeleted"]:
                raise WriteError("UNDELETE_FAILED", "Entity is not in the recycle bin")
            record = found[1]
            old = dict(record)
            record["IsDeleted"] = False
            self._touch(sobject.name, record, old, user_id)
        return record["Id"]

    def snapshot(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        found = self.get(record_id)
        return (found[0], dict(found[1])) if found else None

    def restore(self, snapshot: tuple[str, dict[str, Any]]) -> None:
        """Put a record back exactly as snapshotted (allOrNone rollback)."""
        object_name, saved = snapshot
        with self.lock:
            record = self.records[object_name][saved["Id"]]
            old = dict(record)
            record.clear()
            record.update(saved)
            self._index(object_name, record, old)
            if object_name == "FieldPermissions":
                self._apply_field_permissions(record)
            if self.listener is not None:
                self.listener("rollback", object_name, record, old, None)

    def remove(self, record_id: str) -> None:
        """Forget a record entirely (rolling back an insert)."""
        with self.lock:
            found = self.get(record_id)
            if found is None:
                return
            object_name, record = found
            gone = dict(record, IsDeleted=True)
            sorted_indexes, lookups = self._indexes(object_name)
            for name, (live, deleted) in sorted_indexes.items():
                (deleted if record["IsDeleted"] else live).discard((record[name], record["Id"]))
            for name, index in lookups.items():
                index.discard(record.get(name), record["Id"])
            del self.records[object_name][record["Id"]]
            del self.by_id[record["Id"]]
            if object_name == "FieldPermissions":
                self._apply_field_permissions(gone)
            if self.listener is not None:
                self.listener("rollback", object_name, gone, None, None)

    def writable(self, sobject: SObject, record_id: Any, *, allow_converted: bool = False) -> dict[str, Any]:
        """The record ``record_id`` of ``sobject`` if a write may touch it, else WriteError."""
        full = to18(record_id) if isinstance(record_id, str) else None
        if full is None or not full.startswith(sobject.key_prefix):
            raise WriteError("MALFORMED_ID", f"{sobject.label} ID: id value of incorrect type: {record_id}", ["Id"])
        record = self.table(sobject.name).get(full)
        if record is None:
            raise WriteError("NOT_FOUND", "The requested resource does not exist", status=404)
        if record["IsDeleted"]:
            raise WriteError("ENTITY_IS_DELETED", "entity is deleted", status=404)
        if sobject.name == "Lead" and record.get("IsConverted") and not allow_converted:
            raise WriteError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        return record

    # -- validation -------------------------------------------------------------------

    def convert_values(self, sobject: SObject, values: dict[str, Any], *, creating: bool, strict: bool = True,
                       audit: bool = False) -> dict[str, Any]:
        """JSON values → stored values: :meth:`read_values` then :meth:`check_values`."""
        raw, refused = self.read_values(sobject, values, creating=creating, strict=strict, audit=audit)
        return self.check_values(sobject, raw, refused, strict=strict)

    def read_values(self, sobject: SObject, values: Any, *, creating: bool, strict: bool = True,
                    audit: bool = False) -> tuple[dict[str, Any], list[str]]:
        """Deserialise a record body: unknown fields and wrongly typed values fail the whole
        request (RequestError), before any record is touched. Returns the values and the fields
        this write may not set. ``strict=False`` (control-API seeding) may set read-only fields
        such as IsConverted and fields still hidden by field-level security."""
        if not isinstance(values, dict):
            raise RequestError("JSON_PARSER_ERROR", "Cannot deserialize instance of SObject from "
                                                    f"{type(values).__name__.upper()} value")
        converted: dict[str, Any] = {}
        refused: list[str] = []
        for name, value in values.items():
            if name in ("attributes", "Id", "id"):
                continue
            spec = sobject.field(name, include_hidden=not strict)
            if spec is None:
                raise RequestError("INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject.name}")
            if spec.name == "SystemModstamp" and not strict:
                continue
            converted[spec.name] = _deserialise(spec, value)
            allowed = spec.createable if creating else spec.updateable
            if not allowed and not (creating and audit and spec.name in ("CreatedDate", "LastModifiedDate")):
                refused.append(spec.name)
        return converted, refused

    def check_values(self, sobject: SObject, converted: dict[str, Any], refused: list[str], *,
                     strict: bool = True) -> dict[str, Any]:
        """Field-level rules on deserialised values (WriteError): read-only fields, lengths,
        restricted picklists, email format, numeric range, id syntax."""
        if strict and refused:
            raise WriteError("INVALID_FIELD_FOR_INSERT_UPDATE",
                             f"Unable to create/update fields: {', '.join(refused)}. Please check the security "
                             "settings of this field and verify that it is read/write for your profile or "
                             "permission set.", refused)
        return {name: _validate(sobject.fields[name], value) if strict else _normalise(sobject.fields[name], value)
                for name, value in converted.items()}

    def _check_required(self, sobject: SObject, converted: dict[str, Any]) -> None:
        for spec in sobject.fields.values():
            if spec.nillable or spec.defaulted_on_create or spec.calculated or not spec.createable \
                    or spec.type == "boolean" or not spec.visible:
                continue
            if converted.get(spec.name) is None:
                raise WriteError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{spec.name}]", [spec.name])

    def _check_references(self, sobject: SObject, converted: dict[str, Any]) -> None:
        for name, value in converted.items():
            spec = sobject.fields[name]
            if spec.type != "reference" or value is None:
                continue
            target = self.get(value)
            if target is None or target[0] != spec.reference_to:
                if target is None and value.startswith(self.schema[spec.reference_to].key_prefix):
                    raise WriteError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
                raise WriteError("FIELD_INTEGRITY_EXCEPTION",
                                 f"{spec.label}: id value of incorrect type: {value}", [name])
            if target[1]["IsDeleted"]:
                raise WriteError("ENTITY_IS_DELETED", "entity is deleted", [])

    @staticmethod
    def _derive(object_name: str, record: dict[str, Any], changed: set[str]) -> None:
        """Fields Salesforce computes: Name from first/last name; an opportunity's stage sets
        IsClosed, IsWon and (unless given in the same write) Probability."""
        if ("FirstName" in changed or "LastName" in changed or "Name" not in record) \
                and object_name in ("Lead", "Contact", "User"):
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
        if object_name == "Opportunity" and "StageName" in changed and record.get("StageName") in OPPORTUNITY_STAGES:
            probability, closed, won = OPPORTUNITY_STAGES[record["StageName"]]
            record.update(IsClosed=closed, IsWon=won)
            if "Probability" not in changed:
                record["Probability"] = Decimal(probability)

    # -- lead conversion and deals ----------------------------------------------------

    def convert_lead(self, lead_id: str, *, user_id: str, create_opportunity: bool = True,
                     opportunity_fields: dict[str, Any] | None = None) -> dict[str, str | None]:
        """Lead conversion (reference §8.3): an Account, a Contact copying the lead's standard
        fields, optionally an Opportunity with the contact as primary contact role; the lead
        becomes IsConverted with Converted*Id and status 'Closed - Converted', read-only from then on."""
        with self.lock:
            lead = self.writable(self.schema["Lead"], lead_id)
            now = whole_second(self.clock.now())
            today = now.date()
            currency = {"CurrencyIsoCode": lead["CurrencyIsoCode"]} if "CurrencyIsoCode" in lead else {}
            owner = lead.get("OwnerId", user_id)
            account = self.insert("Account", {"Name": lead.get("Company") or lead.get("LastName"), "OwnerId": owner,
                                              **currency}, user_id=user_id, validate=False, now=now)
            contact_values = {key: lead[key] for key in ("FirstName", "LastName", "Email", "Phone", "LeadSource")
                              if lead.get(key) is not None}
            contact = self.insert("Contact", {**contact_values, "AccountId": account, "OwnerId": owner, **currency},
                                  user_id=user_id, validate=False, now=now)
            opportunity_id = None
            if create_opportunity:
                extra = self.convert_values(self.schema["Opportunity"], opportunity_fields or {}, creating=True,
                                            strict=False)
                values = {"Name": f"{lead.get('Company') or lead.get('LastName')}-", "StageName": "Prospecting",
                          "CloseDate": today, "AccountId": account, "ContactId": contact,
                          "LeadSource": lead.get("LeadSource"), "OwnerId": owner, **currency, **extra}
                opportunity_id = self.insert("Opportunity", values, user_id=user_id, validate=False, now=now)
                self.insert("OpportunityContactRole", {"OpportunityId": opportunity_id, "ContactId": contact,
                                                       "IsPrimary": True, **currency},
                            user_id=user_id, validate=False, now=now)
            old = dict(lead)
            lead.update(IsConverted=True, ConvertedDate=today, ConvertedAccountId=account,
                        ConvertedContactId=contact, Status="Closed - Converted")
            if opportunity_id:
                lead["ConvertedOpportunityId"] = opportunity_id
            self._touch("Lead", lead, old, user_id, now)
        return {"leadId": lead["Id"], "accountId": account, "contactId": contact, "opportunityId": opportunity_id}

    # -- metadata: custom fields, field-level security, currencies ---------------------

    def add_custom_field(self, full_name: str, metadata: dict[str, Any]) -> str:
        """Tooling ``CustomField`` create (reference §8.4). The field exists at once but, with
        field-level security required, stays out of describe and SOQL until FieldPermissions grant it."""
        object_name, _, field_name = str(full_name).partition(".")
        sobject = self.schema.get(object_name)
        if sobject is None or not field_name:
            raise WriteError("INVALID_TYPE", f"Cannot find the entity for the field {full_name}", ["FullName"])
        base = field_name[:-3] if field_name.endswith("__c") else ""
        if not base or not _CUSTOM_NAME.match(base):
            raise WriteError("FIELD_INTEGRITY_EXCEPTION",
                             "The Field Name field can only contain underscores and alphanumeric characters. It must "
                             "be unique, begin with a letter, not include spaces, not end with an underscore, and not "
                             "contain two consecutive underscores.", ["FullName"])
        if sobject.field(field_name, include_hidden=True):
            raise WriteError("DUPLICATE_DEVELOPER_NAME",
                             f"There is already a field named {base} on {sobject.label}.", ["FullName"])
        if not isinstance(metadata, dict):
            raise RequestError("JSON_PARSER_ERROR", "Metadata: expected an object")
        kind = metadata.get("type")
        if kind not in TOOLING_TYPES:
            raise RequestError("JSON_PARSER_ERROR", f"Cannot deserialize instance of FieldType from VALUE_STRING "
                                                    f"value {kind} or request may be missing a required field")
        if not metadata.get("label"):
            raise WriteError("REQUIRED_FIELD_MISSING", "Required fields are missing: [Label]", ["Label"])
        field_type, defaults = TOOLING_TYPES[kind]
        spec = Field(field_name, field_type, str(metadata["label"])[:40], custom=True,
                     inline_help=metadata.get("inlineHelpText"), visible=not self.require_fls)
        _apply_tooling_metadata(spec, kind, defaults, metadata)
        with self.lock:
            sobject.add_field(spec)
            tooling_id = self.ids.new("00N")
            self.custom_field_ids[f"{sobject.name}.{field_name}"] = tooling_id
        return tooling_id

    def _apply_field_permissions(self, row: dict[str, Any]) -> None:
        """Recompute read/edit access of the field a FieldPermissions row names, from every live
        row of the integration user's permission set."""
        object_name, _, field_name = str(row.get("Field", "")).partition(".")
        sobject = self.schema.get(object_name)
        spec = sobject.field(field_name, include_hidden=True) if sobject else None
        if spec is None or not spec.custom:
            return
        rows = [r for r in self.table("FieldPermissions").values()
                if not r["IsDeleted"] and r.get("ParentId") == self.permission_set and r.get("Field") == row["Field"]]
        spec.visible = any(r.get("PermissionsRead") or r.get("PermissionsEdit") for r in rows)
        spec.updateable = spec.createable = any(r.get("PermissionsEdit") for r in rows)

    def check_field_permissions(self, values: dict[str, Any]) -> None:
        """FieldPermissions insert rules: an existing field, one row per permission set and field."""
        object_name, _, field_name = str(values.get("Field") or "").partition(".")
        sobject = self.schema.get(object_name)
        if sobject is None or sobject.field(field_name, include_hidden=True) is None or \
                str(values.get("SobjectType") or object_name) != object_name:
            raise WriteError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                             f"Field Name: bad value for restricted picklist field: {values.get('Field')}", ["Field"])
        parent = to18(str(values.get("ParentId") or ""))
        for row in self.table("FieldPermissions").values():
            if not row["IsDeleted"] and row.get("ParentId") == parent and row.get("Field") == values.get("Field"):
                raise WriteError("DUPLICATE_VALUE", "duplicate value found: <unknown> duplicates value on record "
                                                    f"with id: {row['Id']}", [])

    def set_multi_currency(self, enabled: bool) -> None:
        """Toggle multi-currency: CurrencyIsoCode on the currency-aware objects, CurrencyType rows."""
        with self.lock:
            if enabled == self.multi_currency:
                return
            self.multi_currency = enabled
            if not enabled:
                schemas.disable_multi_currency(self.schema)
                return
            schemas.enable_multi_currency(self.schema)
            for name in schemas.CURRENCY_OBJECTS:
                for record in self.table(name).values():
                    record.setdefault("CurrencyIsoCode", self.org_currency)
            if not self.table("CurrencyType"):
                for code, rate in schemas.CURRENCY_RATES.items():
                    self.insert("CurrencyType", {"IsoCode": code, "ConversionRate": Decimal(rate),
                                                 "DecimalPlaces": 0 if code == "JPY" else 2,
                                                 "IsCorporate": code == self.org_currency, "IsActive": True},
                                user_id=self.integration_user, validate=False)

    # -- queries ----------------------------------------------------------------------

    def run_query(self, text: str, include_deleted: bool = False) -> QueryResult:
        """Compile and execute SOQL; the whole result's ids in order (raises SoqlError)."""
        with self.lock:
            compiled = compile_query(text, self.schema, self, self.clock.now().date())
            if compiled.count:
                ids, count = [], self._count(compiled, include_deleted)
            else:
                ids = self._execute(compiled, include_deleted)
                count = len(ids)
        return QueryResult(compiled, ids, count)

    def render(self, result: QueryResult, ids: Iterable[str], version: str) -> list[dict[str, Any]]:
        """Result rows for ``ids`` (a page), with current values, as the API nests them."""
        table, project = self.records[result.object], result.compiled.project
        with self.lock:
            return [project(table[record_id], version) for record_id in ids if record_id in table]

    def _plan(self, compiled: Compiled, include_deleted: bool) -> tuple[Iterator[dict[str, Any]], bool, list]:
        """Candidate records, whether they already come in the query's order, and the tests left to apply."""
        name = compiled.sobject.name
        table = self.table(name)
        sorted_indexes, lookups = self._indexes(name)
        conjuncts = compiled.conjuncts
        for position, conjunct in enumerate(conjuncts):
            spec = conjunct.field
            if spec is None or conjunct.operator not in ("=", "IN") or None in conjunct.values:
                continue
            if spec.name == "Id":
                ids = sorted(set(conjunct.values))
            elif spec.name in lookups:
                ids = sorted(set().union(*(lookups[spec.name].get(v) for v in conjunct.values)))
            else:
                continue
            rest = [c.test for i, c in enumerate(conjuncts) if i != position]
            rows = (table[i] for i in ids if i in table)
            return self._live(rows, include_deleted), False, rest
        order = compiled.order_paths
        directions = {descending for _, descending, _ in compiled.order}
        chosen, low, high, served = None, None, None, []
        candidates = [name for name in STAMP_FIELDS if any(c.field is not None and c.field.name == name and c.bounds
                                                           for c in conjuncts)]
        if order and order[0] in STAMP_FIELDS:
            candidates = [order[0]] + [c for c in candidates if c != order[0]]
        for field_name in candidates[:1]:
            chosen = field_name
            for position, conjunct in enumerate(conjuncts):
                if conjunct.field is None or conjunct.field.name != field_name or not conjunct.bounds:
                    continue
                served.append(position)
                lower, upper = conjunct.bounds
                if lower is not None:
                    key = (lower[0], "" if lower[1] else _ID_HIGH)
                    low = key if low is None or key > low else low
                if upper is not None:
                    key = (upper[0], _ID_HIGH if upper[1] else "")
                    high = key if high is None or key < high else high
        rest = [c.test for i, c in enumerate(conjuncts) if i not in served]
        if chosen is None:
            return self._live(table.values(), include_deleted), False, rest
        in_order = bool(order) and order[0] == chosen and len(directions) == 1 and \
            (len(order) == 1 or (len(order) == 2 and order[1] == "Id"))
        reverse = in_order and compiled.order[0][1]
        live, deleted = sorted_indexes[chosen]
        keys = live.irange(low, high, reverse=reverse)
        if include_deleted:
            keys = heapq.merge(keys, deleted.irange(low, high, reverse=reverse), reverse=reverse)
        return (table[key[1]] for key in keys), in_order or not order, rest

    @staticmethod
    def _live(rows: Iterable[dict[str, Any]], include_deleted: bool) -> Iterator[dict[str, Any]]:
        return iter(rows) if include_deleted else (r for r in rows if not r["IsDeleted"])

    def _execute(self, compiled: Compiled, include_deleted: bool) -> list[str]:
        rows, in_order, rest = self._plan(compiled, include_deleted)
        if rest:
            test = rest[0] if len(rest) == 1 else (lambda record, tests=rest: all(t(record) for t in tests))
            rows = (r for r in rows if test(r))
        start, limit = compiled.offset, compiled.limit
        if in_order:
            stop = None if limit is None else start + limit
            return [r["Id"] for r in itertools.islice(rows, start, stop)]
        ordered = order_rows(list(rows), compiled.order) if compiled.order else list(rows)
        stop = None if limit is None else start + limit
        return [r["Id"] for r in ordered[start:stop]]

    def _count(self, compiled: Compiled, include_deleted: bool) -> int:
        rows, _, rest = self._plan(compiled, include_deleted)
        if rest:
            rows = (r for r in rows if all(t(r) for t in rest))
        total = sum(1 for _ in rows)
        total = max(0, total - compiled.offset)
        return total if compiled.limit is None else min(total, compiled.limit)

    def changed_ids(self, object_name: str, start: datetime, end: datetime,
                    deleted: bool) -> list[tuple[str, datetime]]:
        """(id, SystemModstamp) of records updated (or deleted) in [start, end) — getUpdated/getDeleted."""
        with self.lock:
            live, recycled = self._indexes(object_name)[0]["SystemModstamp"]
            index = recycled if deleted else live
            keys = index.irange((start, ""), (end, ""))
            return [(key[1], key[0]) for key in keys if key[0] < end]


# -- value conversion --------------------------------------------------------------------

def _parse_error(spec: Field, value: Any) -> RequestError:
    """What Salesforce's JSON deserialiser says about a wrongly typed value (HTTP 400)."""
    number = "VALUE_NUMBER_INT" if isinstance(value, int) else "VALUE_NUMBER_FLOAT"
    token = {bool: "VALUE_TRUE" if value is True else "VALUE_FALSE", str: "VALUE_STRING", dict: "START_OBJECT",
             list: "START_ARRAY"}.get(type(value), number)
    shown = json.dumps(value) if not isinstance(value, str) else value
    java = {"boolean": "boolean", "int": "int", "double": "double", "currency": "double", "percent": "double",
            "date": "date", "datetime": "datetime"}.get(spec.type, "String")
    return RequestError("JSON_PARSER_ERROR", f"Cannot deserialize instance of {java} from {token} value {shown} or "
                                             "request may be missing a required field")


def _deserialise(spec: Field, value: Any) -> Any:
    """JSON value → Python value of the field's type, or the deserialiser's 400."""
    if value is None:
        return None
    kind = spec.type
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _parse_error(spec, value)
    if kind in NUMBER_TYPES:
        if isinstance(value, Decimal):
            return value
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            raise _parse_error(spec, value)
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise _parse_error(spec, value) from None
        if not number.is_finite():
            raise _parse_error(spec, value)
        return number
    if kind == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str) and (len(value) == 10 or value[10:11] == "T"):
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                pass
        raise _parse_error(spec, value)
    if kind == "datetime":
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, str):
            try:
                return _parse_datetime(value)
            except ValueError:
                pass
        raise _parse_error(spec, value)
    if isinstance(value, (dict, list)):
        raise _parse_error(spec, value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _parse_datetime(text: str) -> datetime:
    normalised = text.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", normalised):
        normalised = normalised[:-2] + ":" + normalised[-2:]
    if len(normalised) == 10:
        normalised += "T00:00:00+00:00"
    parsed = datetime.fromisoformat(normalised)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _normalise(spec: Field, value: Any) -> Any:
    """The conversions every stored value gets, even unvalidated: 18-character ids, whole seconds."""
    if value is None or value == "":
        return False if spec.type == "boolean" else None
    if spec.type in ID_TYPES:
        return to18(value) or value
    if spec.type == "datetime":
        return whole_second(value)
    return value


def _validate(spec: Field, value: Any) -> Any:
    """Field-level rules of the API on a deserialised value (raises WriteError)."""
    label = spec.label or spec.name
    if value is None:
        if spec.type == "boolean":
            return False
        if not spec.nillable and not spec.defaulted_on_create:
            raise WriteError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{spec.name}]", [spec.name])
        return None
    kind = spec.type
    if kind in ("string", "textarea", "email", "phone", "url", "picklist", "combobox"):
        if value == "" and kind != "textarea":
            return None  # Salesforce stores an empty string as null
        if spec.length and len(value) > spec.length:
            raise WriteError("STRING_TOO_LONG", f"{label}: data value too large: {value} (max length={spec.length})",
                             [spec.name])
        if kind == "email" and not _EMAIL.match(value):
            raise WriteError("INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {value}", [spec.name])
        if kind == "picklist" and spec.restricted and value not in spec.picklist:
            raise WriteError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                             f"{label}: bad value for restricted picklist field: {value}", [spec.name])
        return value
    if kind in NUMBER_TYPES:
        scale = spec.scale if kind != "int" else 0
        if spec.precision:
            rounded = value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
            if abs(rounded) >= Decimal(10) ** (spec.precision - scale):
                raise WriteError("NUMBER_OUTSIDE_VALID_RANGE",
                                 f"{label}: value outside of valid range on numeric field: {value}", [spec.name])
            return rounded
        return value
    if kind in ID_TYPES:
        full = to18(value)
        if full is None:
            raise WriteError("MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [spec.name])
        return full
    if kind == "datetime":
        return whole_second(value)
    return value


def _apply_tooling_metadata(spec: Field, kind: str, defaults: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Fill length/precision/picklist values from Tooling ``Metadata``; Salesforce's required
    attributes per type are enforced (FIELD_INTEGRITY_EXCEPTION "Must specify ...")."""

    def need(attribute: str) -> Any:
        value = metadata.get(attribute)
        if value is None:
            raise WriteError("FIELD_INTEGRITY_EXCEPTION",
                             f"Must specify '{attribute}' for a CustomField of type {kind}", ["Metadata"])
        return value

    def integer(attribute: str, low: int, high: int) -> int:
        try:
            number = int(need(attribute))
        except (TypeError, ValueError):
            raise RequestError("JSON_PARSER_ERROR", f"Cannot deserialize instance of int from VALUE_STRING value "
                                                    f"{metadata.get(attribute)}") from None
        if not low <= number <= high:
            raise WriteError("FIELD_INTEGRITY_EXCEPTION",
                             f"{attribute.title()}: value must be between {low} and {high}", ["Metadata"])
        return number

    if kind == "Text":
        spec.length = integer("length", 1, 255)
    elif kind in ("LongTextArea", "Html"):
        spec.length = integer("length", 256, 131072)
        integer("visibleLines", 1, 70)
    elif kind in ("Number", "Currency", "Percent"):
        spec.precision = integer("precision", 1, 18)
        spec.scale = integer("scale", 0, spec.precision)
    elif kind == "Checkbox":
        default = need("defaultValue")
        spec.default_value = default is True or str(default).lower() == "true"
        spec.nillable = False
        spec.defaulted_on_create = True
    elif kind == "Picklist":
        value_set = metadata.get("valueSet") or {}
        values = (value_set.get("valueSetDefinition") or {}).get("value") or []
        if not values:
            need("valueSet")
        spec.picklist = tuple(str(v.get("fullName") or v.get("label")) for v in values)
        spec.restricted = bool(value_set.get("restricted"))
        spec.length = defaults["length"]
    else:
        spec.length = defaults.get("length", 0)
    if metadata.get("required"):
        spec.nillable = False
