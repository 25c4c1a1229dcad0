"""The emulated org: records, validation on write, the SystemModstamp index, and SOQL execution.

Writes follow the rules of reference §3 and §4.3: unknown fields, read-only fields, lengths,
restricted picklists, converted leads and deleted records are refused with Salesforce's own
codes and messages; every write advances ``SystemModstamp``/``LastModifiedDate`` to the
clock's now (records written at the same instant share it). Queries that filter and sort on
``SystemModstamp`` walk a time-ordered index instead of scanning the table, so keyset polling
over a million records stays fast.
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

from sandbox.clock import Clock
from sandbox.salesforce.ids import IdFactory, to18
from sandbox.salesforce.schema import (OPPORTUNITY_STAGES, TOOLING_TYPES, Field, SObject, build_schema)
from sandbox.salesforce.soql import Boolean, Comparison, Literal, Query, SoqlError, like_pattern, parse

NUMERIC = ("int", "double", "currency", "percent")
TEXT = ("string", "textarea", "email", "phone", "url", "picklist", "id", "reference")


class WriteError(Exception):
    """One record's failure, as a SaveResult error."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields or []

    def as_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


@dataclass
class QueryResult:
    object: str
    ids: list[str]
    query: Query
    count: int | None = None


class _StampIndex:
    """(stamp, sequence, id) entries in time order; stale entries are skipped lazily."""

    def __init__(self) -> None:
        self.entries: list[tuple[datetime, int, str]] = []
        self.current: dict[str, tuple[datetime, int]] = {}
        self.sequence = 0

    def put(self, record_id: str, stamp: datetime) -> None:
        self.sequence += 1
        entry = (stamp, self.sequence, record_id)
        self.current[record_id] = entry[:2]
        if not self.entries or self.entries[-1][:2] <= entry[:2]:
            self.entries.append(entry)
        else:
            bisect.insort(self.entries, entry)
        if len(self.entries) > 2 * len(self.current) + 1024:
            self.entries = [e for e in self.entries if self.current.get(e[2]) == e[:2]]

    def scan(self, low: datetime | None, high: datetime | None) -> Iterator[tuple[datetime, str]]:
        start = bisect.bisect_left(self.entries, (low,)) if low else 0
        for stamp, sequence, record_id in self.entries[start:] if start else self.entries:
            if high is not None and stamp > high:
                return
            if self.current.get(record_id) == (stamp, sequence):
                yield stamp, record_id


class Org:
    """Records and schema of one org. Callers hold ``lock`` for multi-step operations."""

    def __init__(self, clock: Clock, *, multi_currency: bool = False, org_currency: str = "USD",
                 require_fls: bool = True, assignment_rule_owner_id: str | None = None) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.multi_currency = multi_currency
        self.org_currency = org_currency
        self.require_fls = require_fls
        self.assignment_rule_owner_id = assignment_rule_owner_id
        self.schema: dict[str, SObject] = build_schema(multi_currency)
        self.ids = IdFactory()
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schema}
        self.index: dict[str, _StampIndex] = {name: _StampIndex() for name in self.schema}
        self.by_id: dict[str, str] = {}  # id → object name
        self.integration_user = self.insert("User", {"Username": "integration@closedloop.sandbox",
                                                     "Name": "closedloop Integration",
                                                     "Email": "integration@closedloop.sandbox", "IsActive": True})
        self.sales_rep = self.insert("User", {"Username": "rep@closedloop.sandbox", "Name": "Riley Rep",
                                              "Email": "rep@closedloop.sandbox", "IsActive": True})
        self.insert("Organization", {"Name": "closedloop Sandbox", "DefaultCurrencyIsoCode": org_currency,
                                     "IsSandbox": True})
        self.permission_set = self.insert("PermissionSet", {"Name": "Closedloop_Integration",
                                                            "Label": "closedloop integration"})
        if multi_currency:
            for code, rate in (("USD", "1"), ("EUR", "0.909091"), ("GBP", "0.8"), ("CAD", "1.333333"),
                               ("AUD", "1.538462"), ("JPY", "149.25")):
                self.insert("CurrencyType", {"IsoCode": code, "ConversionRate": Decimal(rate),
                                             "IsCorporate": code == org_currency, "IsActive": True})

    # -- lookups --------------------------------------------------------------------

    def sobject(self, name: str) -> SObject:
        found = self.schema.get(name) or next((o for n, o in self.schema.items() if n.lower() == name.lower()), None)
        if found is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{name}' is not supported. If you are attempting to use a "
                                            "custom object, be sure to append the '__c' after the entity name.")
        return found

    def get(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        full = to18(record_id) if record_id else None
        object_name = self.by_id.get(full or "")
        return (object_name, self.records[object_name][full]) if object_name else None

    # -- writes ---------------------------------------------------------------------

    def insert(self, object_name: str, values: dict[str, Any], *, user_id: str | None = None,
               created_at: datetime | None = None, validate: bool = False) -> str:
        sobject = self.sobject(object_name)
        record_id = self.ids.new(sobject.key_prefix)
        # An explicit CreatedDate (orgs with "Set Audit Fields" may set it on insert) backdates
        # the record's creation, but SystemModstamp always says when it was really written.
        now = _whole_second(self.clock.now())
        created = _whole_second(created_at) if created_at else now
        user = user_id or getattr(self, "integration_user", record_id)
        record: dict[str, Any] = {"Id": record_id, "IsDeleted": False, "CreatedDate": created, "CreatedById": user,
                                  "LastModifiedDate": now, "LastModifiedById": user, "SystemModstamp": now}
        if "OwnerId" in sobject.fields:
            record["OwnerId"] = getattr(self, "sales_rep", user)
        if object_name == "Lead":
            record.update(IsConverted=False, Status="Open - Not Contacted")
        converted = self._convert_values(sobject, values, creating=True) if validate else dict(values)
        record.update(converted)
        self._derive(sobject.name, record, set(converted))
        with self.lock:
            self.records[sobject.name][record_id] = record
            self.by_id[record_id] = sobject.name
            self.index[sobject.name].put(record_id, record["SystemModstamp"])
        return record_id

    def update(self, object_name: str, record_id: str, values: dict[str, Any], *, user_id: str | None = None,
               auto_assign: bool = True, validate: bool = True) -> None:
        """Apply a write as the API would (raises WriteError)."""
        sobject = self.sobject(object_name)
        record = self._writable(sobject, record_id)
        converted = self._convert_values(sobject, values, creating=False) if validate else dict(values)
        with self.lock:
            record.update(converted)
            self._derive(sobject.name, record, set(converted))
            if sobject.name == "Lead" and auto_assign and self.assignment_rule_owner_id:
                record["OwnerId"] = self.assignment_rule_owner_id  # an active assignment rule fires
            self.touch(sobject.name, record, user_id)

    def touch(self, object_name: str, record: dict[str, Any], user_id: str | None = None) -> None:
        now = _whole_second(self.clock.now())
        record["LastModifiedDate"] = record["SystemModstamp"] = now
        record["LastModifiedById"] = user_id or self.integration_user
        self.index[object_name].put(record["Id"], now)

    def delete(self, object_name: str, record_id: str) -> None:
        record = self._writable(self.sobject(object_name), record_id)
        with self.lock:
            record["IsDeleted"] = True
            self.touch(object_name, record)

    def _writable(self, sobject: SObject, record_id: str) -> dict[str, Any]:
        full = to18(record_id or "")
        if full is None or not full.startswith(sobject.key_prefix):
            raise WriteError("MALFORMED_ID", f"{sobject.label} ID: id value of incorrect type: {record_id}", ["Id"])
        record = self.records[sobject.name].get(full)
        if record is None:
            raise WriteError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        if record["IsDeleted"]:
            raise WriteError("ENTITY_IS_DELETED", "entity is deleted", [])
        if sobject.name == "Lead" and record.get("IsConverted"):
            raise WriteError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
        return record

    def _convert_values(self, sobject: SObject, values: dict[str, Any], creating: bool) -> dict[str, Any]:
        converted = {}
        for name, value in values.items():
            if name in ("attributes", "Id", "id"):
                continue
            spec = sobject.field(name)
            if spec is None:
                raise WriteError("INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject.name}", [name])
            allowed = spec.createable if creating else spec.updateable
            if not allowed:
                raise WriteError("INVALID_FIELD_FOR_INSERT_UPDATE",
                                 f"Unable to create/update fields: {spec.name}. Please check the security settings of "
                                 "this field and verify that it is read/write for your profile or permission set.",
                                 [spec.name])
            converted[spec.name] = _coerce(spec, value)
        return converted

    @staticmethod
    def _derive(object_name: str, record: dict[str, Any], changed: set[str]) -> None:
        """Fields Salesforce computes: an opportunity's stage sets IsClosed, IsWon and (unless
        given in the same write) Probability."""
        if object_name == "Opportunity" and "StageName" in changed and record.get("StageName") in OPPORTUNITY_STAGES:
            probability, closed, won = OPPORTUNITY_STAGES[record["StageName"]]
            record.update(IsClosed=closed, IsWon=won)
            if "Probability" not in changed:
                record["Probability"] = Decimal(probability)

    def convert_lead(self, lead_id: str, *, create_opportunity: bool = True,
                     opportunity: dict[str, Any] | None = None) -> dict[str, str]:
        """Lead conversion (reference §8.3): Account, Contact and optionally Opportunity."""
        lead = self._writable(self.schema["Lead"], lead_id)
        with self.lock:
            account = self.insert("Account", {"Name": lead.get("Company") or lead.get("LastName") or "Account"})
            contact_values = {key: lead.get(key) for key in ("FirstName", "LastName", "Email", "Phone", "LeadSource")}
            contact = self.insert("Contact", {**contact_values, "AccountId": account})
            opportunity_id = None
            if create_opportunity:
                values = {"Name": f"{lead.get('Company') or lead.get('LastName')} deal", "StageName": "Prospecting",
                          "CloseDate": self.clock.now().date(), "AccountId": account, "ContactId": contact,
                          "LeadSource": lead.get("LeadSource"), **(opportunity or {})}
                opportunity_id = self.insert("Opportunity", values)
                self.insert("OpportunityContactRole", {"OpportunityId": opportunity_id, "ContactId": contact,
                                                       "IsPrimary": True, "Role": "Decision Maker"})
            lead.update(IsConverted=True, ConvertedDate=self.clock.now().date(), ConvertedAccountId=account,
                        ConvertedContactId=contact, ConvertedOpportunityId=opportunity_id,
                        Status="Closed - Converted")
            self.touch("Lead", lead, self.sales_rep)
        return {"accountId": account, "contactId": contact, "opportunityId": opportunity_id}

    def add_custom_field(self, full_name: str, metadata: dict[str, Any]) -> str:
        object_name, _, field_name = full_name.partition(".")
        sobject = self.sobject(object_name)
        if not field_name.endswith("__c") or len(field_name) > 43:
            raise WriteError("INVALID_FIELD", f"Invalid field name: {field_name}", ["FullName"])
        if sobject.field(field_name, include_hidden=True):
            raise WriteError("DUPLICATE_DEVELOPER_NAME", "There is already a field named "
                                                         f"{field_name[:-3]} on {sobject.label}.", ["FullName"])
        kind = metadata.get("type")
        if kind not in TOOLING_TYPES:
            raise WriteError("FIELD_INTEGRITY_EXCEPTION", f"Invalid type: {kind}", ["Metadata"])
        field_type, defaults = TOOLING_TYPES[kind]
        length = int(metadata.get("length") or defaults.get("length", 0))
        if field_type == "string" and not 1 <= length <= 255:
            raise WriteError("FIELD_INTEGRITY_EXCEPTION", "Length must be between 1 and 255", ["Metadata"])
        values = tuple(v.get("fullName") for v in (metadata.get("valueSet", {}).get("valueSetDefinition", {})
                                                   .get("value", [])))
        sobject.fields[field_name] = Field(
            field_name, field_type, metadata.get("label") or field_name, length, custom=True,
            precision=int(metadata.get("precision") or 0), scale=int(metadata.get("scale") or 0),
            picklist=values, restricted=bool(metadata.get("valueSet", {}).get("restricted")),
            visible=not self.require_fls)
        return self.ids.new("00N")

    def grant_field_access(self, values: dict[str, Any]) -> str:
        parent = self.get(str(values.get("ParentId", "")))
        if parent is None or parent[0] != "PermissionSet":
            raise WriteError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["ParentId"])
        object_name, _, field_name = str(values.get("Field", "")).partition(".")
        sobject = self.schema.get(object_name)
        spec = sobject.field(field_name, include_hidden=True) if sobject else None
        if spec is None:
            raise WriteError("INVALID_FIELD", f"Field {values.get('Field')} does not exist", ["Field"])
        if values.get("PermissionsRead"):
            spec.visible = True
        if not values.get("PermissionsEdit"):
            spec.updateable = False
        return self.insert("FieldPermissions", {k: values.get(k) for k in ("ParentId", "SobjectType", "Field",
                                                                           "PermissionsRead", "PermissionsEdit")})

    # -- queries --------------------------------------------------------------------

    def run_query(self, text: str, include_deleted: bool = False) -> QueryResult:
        query = parse(text)
        sobject = self.sobject(query.object)
        query.object = sobject.name
        for path, position in query.fields:
            self._check_path(sobject, path, position, text)
        for item in query.order:
            self._check_path(sobject, item.path, 0, text)
        for sub in query.subqueries:
            relationship = sobject.children.get(sub.object)
            if relationship is None:
                raise SoqlError("INVALID_TYPE", f"Didn't understand relationship '{sub.object}' in FROM part of "
                                                "query call.")
        if query.where is not None:
            self._check_condition(sobject, query.where, text)
        with self.lock:
            ids = self._candidates(sobject, query, include_deleted)
        if query.count:
            return QueryResult(sobject.name, [], query, count=len(ids))
        return QueryResult(sobject.name, ids, query)

    def _check_path(self, sobject: SObject, path: str, position: int, text: str) -> Field:
        parts = path.split(".")
        current = sobject
        if len(parts) > 1 and parts[0].lower() == sobject.name.lower():
            parts = parts[1:]
        for relationship in parts[:-1]:
            spec = current.relationship(relationship)
            if spec is None:
                self._no_column(current, relationship, position, text)
            current = self.schema[spec.reference_to]
        spec = current.field(parts[-1])
        if spec is None:
            self._no_column(current, parts[-1], position, text)
        return spec

    @staticmethod
    def _no_column(sobject: SObject, name: str, position: int, text: str):
        column = position + 1
        raise SoqlError("INVALID_FIELD", f"{text}\n{' ' * position}^\nERROR at Row:1:Column:{column}\nNo such column "
                                         f"'{name}' on entity '{sobject.name}'. If you are attempting to use a custom "
                                         "field, be sure to append the '__c' after the custom field name. Please "
                                         "reference your WSDL or the describe call for the appropriate names.")

    def _check_condition(self, sobject: SObject, condition: Any, text: str) -> None:
        if isinstance(condition, Boolean):
            for operand in condition.operands:
                self._check_condition(sobject, operand, text)
            return
        spec = self._check_path(sobject, condition.path, condition.position, text)
        condition.spec = spec  # resolved once, used for every record
        literals = condition.value if isinstance(condition.value, list) else [condition.value]
        for literal in literals:
            if literal.kind == "null":
                continue
            if spec.type == "datetime" and literal.kind not in ("datetime", "relative"):
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{spec.name}' must be of type "
                                                 "dateTime and should not be enclosed in quotes")
            if spec.type == "date" and literal.kind not in ("date", "relative"):
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{spec.name}' must be of type "
                                                 "date and should not be enclosed in quotes")
            if spec.type == "boolean" and literal.kind != "boolean":
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{spec.name}' must be of type "
                                                 "boolean and should not be enclosed in quotes")
            if spec.type in NUMERIC and literal.kind != "number":
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{spec.name}' must be of type "
                                                 "double and should not be enclosed in quotes")
            if spec.type in TEXT and literal.kind not in ("string",):
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{spec.name}' must be of type "
                                                 "string and should be enclosed in quotes")

    def _candidates(self, sobject: SObject, query: Query, include_deleted: bool) -> list[str]:
        table = self.records[sobject.name]
        low, high = _stamp_bounds(query.where)
        by_stamp = query.order[:1] and query.order[0].path == "SystemModstamp" and not query.order[0].descending
        matches: list[str] = []
        if (low or high) and by_stamp:
            run_stamp, run = None, []
            for stamp, record_id in self.index[sobject.name].scan(low, high):
                record = table[record_id]
                if (record["IsDeleted"] and not include_deleted) or not self._matches(sobject, record, query.where):
                    continue
                if stamp != run_stamp:
                    matches.extend(self._sort(sobject, [table[i] for i in run], query.order[1:]))
                    run_stamp, run = stamp, []
                run.append(record_id)
                if query.limit is not None and len(matches) >= query.offset + query.limit:
                    break
            matches.extend(self._sort(sobject, [table[i] for i in run], query.order[1:]))
        else:
            rows = [r for r in table.values() if (include_deleted or not r["IsDeleted"])
                    and self._matches(sobject, r, query.where)]
            matches = self._sort(sobject, rows, query.order)
        end = None if query.limit is None else query.offset + query.limit
        return matches[query.offset:end]

    def _sort(self, sobject: SObject, rows: list[dict[str, Any]], order) -> list[str]:
        for item in reversed(order):
            nulls_last = item.nulls_last if item.nulls_last is not None else item.descending
            present = [r for r in rows if self.value(sobject, r, item.path) is not None]
            absent = [r for r in rows if self.value(sobject, r, item.path) is None]
            is_id = self._check_path(sobject, item.path, 0, "").type in ("id", "reference")  # ids sort case-sensitively
            present.sort(key=lambda r: (self.value(sobject, r, item.path) if is_id
                                        else _sortable(self.value(sobject, r, item.path))), reverse=item.descending)
            rows = present + absent if nulls_last else absent + present
        return [r["Id"] for r in rows]

    def value(self, sobject: SObject, record: dict[str, Any], path: str) -> Any:
        parts = path.split(".")
        if len(parts) > 1 and parts[0].lower() == sobject.name.lower():
            parts = parts[1:]
        current_object, current = sobject, record
        for relationship in parts[:-1]:
            spec = current_object.relationship(relationship)
            target = self.get(current.get(spec.name) or "") if current.get(spec.name) else None
            if target is None:
                return None
            current_object, current = self.schema[target[0]], target[1]
        spec = current_object.field(parts[-1])
        return current.get(spec.name) if spec else None

    def _matches(self, sobject: SObject, record: dict[str, Any], condition: Any) -> bool:
        if condition is None:
            return True
        if isinstance(condition, Boolean):
            if condition.operator == "AND":
                return all(self._matches(sobject, record, c) for c in condition.operands)
            if condition.operator == "OR":
                return any(self._matches(sobject, record, c) for c in condition.operands)
            return not self._matches(sobject, record, condition.operands[0])
        actual = self.value(sobject, record, condition.path)
        spec = condition.spec
        if condition.operator in ("IN", "NOT IN"):
            found = any(_equal(actual, self._literal(spec, v)) for v in condition.value)
            return found if condition.operator == "IN" else not found
        expected = self._literal(spec, condition.value)
        if condition.operator == "LIKE":
            return actual is not None and bool(like_pattern(str(expected)).match(str(actual)))
        if condition.operator == "=":
            return _equal(actual, expected)
        if condition.operator == "!=":
            return not _equal(actual, expected)
        if actual is None or expected is None:
            return False
        left, right = _sortable(actual), _sortable(expected)
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[condition.operator]

    def _literal(self, spec: Field, literal: Literal) -> Any:
        if literal.kind == "relative":
            return self.clock.now().date() + timedelta(days=literal.value[1])
        if spec.type in ("id", "reference") and isinstance(literal.value, str):
            return to18(literal.value) or literal.value
        return literal.value


def _whole_second(moment: datetime) -> datetime:
    """Salesforce keeps record timestamps to the second (the API always shows .000)."""
    return moment.replace(microsecond=0)


def _stamp_bounds(condition: Any) -> tuple[datetime | None, datetime | None]:
    """SystemModstamp bounds implied by top-level AND conditions (for the index scan)."""
    comparisons = condition.operands if isinstance(condition, Boolean) and condition.operator == "AND" \
        else [condition] if isinstance(condition, Comparison) else []
    low = high = None
    for item in comparisons:
        if isinstance(item, Comparison) and item.path == "SystemModstamp" and isinstance(item.value, Literal) \
                and isinstance(item.value.value, datetime):
            if item.operator in (">", ">="):
                low = item.value.value if low is None else max(low, item.value.value)
            elif item.operator in ("<", "<="):
                high = item.value.value if high is None else min(high, item.value.value)
    return low, high


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.lower() == expected.lower()
    if isinstance(actual, (int, float, Decimal)) and isinstance(expected, (int, float, Decimal)) \
            and not isinstance(actual, bool):
        return Decimal(str(actual)) == Decimal(str(expected))
    return actual == expected


def _sortable(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return value.toordinal()
    return Decimal(str(value))


def _coerce(spec: Field, value: Any) -> Any:
    """Turn a JSON value into the stored value for ``spec``, or raise WriteError."""
    if value is None or value == "" and spec.type not in ("string", "textarea"):
        if not spec.nillable:
            raise WriteError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{spec.name}]", [spec.name])
        return None
    label = spec.label or spec.name

    def wrong_type() -> WriteError:
        return WriteError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{label}: value not of required type: {value}",
                          [spec.name])

    if spec.type in ("string", "textarea", "email", "phone", "url", "picklist"):
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            else:
                raise wrong_type()
        if spec.length and len(value) > spec.length:
            raise WriteError("STRING_TOO_LONG", f"{label}: data value too large: {value} (max length={spec.length})",
                             [spec.name])
        if spec.type == "picklist" and spec.restricted and value not in spec.picklist:
            raise WriteError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                             f"{label}: bad value for restricted picklist field: {value}", [spec.name])
        return value
    if spec.type in NUMERIC:
        if isinstance(value, bool):
            raise wrong_type()
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise wrong_type() from None
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise wrong_type()
    if spec.type == "datetime":
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc)
        try:
            text = str(value).replace("Z", "+00:00")
            if len(text) >= 5 and text[-5] in "+-" and ":" not in text[-5:]:
                text = text[:-2] + ":" + text[-2:]
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise wrong_type() from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    if spec.type == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError:
            raise wrong_type() from None
    if spec.type in ("reference", "id"):
        full = to18(str(value))
        if full is None:
            raise WriteError("MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [spec.name])
        return full
    return value


def serialise(value: Any) -> Any:
    """Stored value → JSON as Salesforce writes it."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    return value


