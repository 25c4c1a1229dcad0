"""Change events as Pub/Sub API subscribers receive them: Avro schemas per entity, and payloads.

Facts (shared/reference/realtime-and-auth.md §2.3 and the Salesforce pages cited there):
- the payload is Avro binary; its schema is fetched with ``GetSchema`` by the event's
  ``schema_id``, a fingerprint of the schema that changes when a field is added
  (https://developer.salesforce.com/docs/platform/pub-sub-api/guide/event-deserialization-considerations.html);
- ``ChangeEventHeader`` comes first and carries entityName, recordIds, changeType, changeOrigin,
  transactionKey, sequenceNumber, commitTimestamp, commitNumber, commitUser, nulledFields,
  diffFields, changedFields, in that order (cdc_event_fields_header.htm, cdc_message_structure.htm);
- the body has every field of the object except Id, IsDeleted and SystemModstamp; create and
  undelete events carry all values, update events only the changed ones (the rest null), delete
  events none (cdc_event_fields_body.htm);
- lead and contact ``Name`` is a compound field, a nested record of its components
  (cdc_subscribe_compound_fields.htm);
- in Pub/Sub, changedFields / nulledFields / diffFields are bitmaps: the first element a hex
  bitmap over the top-level Avro field positions (bit i = field i), then ``"{pos}-0x.."`` for
  the components of the compound field at ``pos``, e.g. ``['0x650004E0', '4-0x10']``; Salesforce's
  decoder is ``python/util/ChangeEventHeaderUtility.py`` in forcedotcom/pub-sub-api;
- dates and datetimes travel as epoch numbers (cdc_event_diff_pubsub_cometd.htm); the emulator
  declares them with Avro's ``date`` and ``timestamp-millis`` logical types (the exact ``doc``
  attributes of real schemas are not modelled).
"""
from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from sandbox.salesforce.schema import Field, SObject

NAMESPACE = "com.sforce.eventbus"
EXCLUDED = frozenset({"Id", "IsDeleted", "SystemModstamp"})
COMPOUND_NAME = {"Lead": ("FirstName", "LastName"), "Contact": ("FirstName", "LastName")}
CHANGE_TYPES = ("CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE",
                "GAP_OVERFLOW", "SNAPSHOT")
STRING_ARRAY = {"type": "array", "items": "string"}
HEADER = {"type": "record", "name": "ChangeEventHeader", "namespace": NAMESPACE, "fields": [
    {"name": "entityName", "type": "string"},
    {"name": "recordIds", "type": STRING_ARRAY},
    {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "namespace": NAMESPACE,
                                    "symbols": list(CHANGE_TYPES)}},
    {"name": "changeOrigin", "type": "string"},
    {"name": "transactionKey", "type": "string"},
    {"name": "sequenceNumber", "type": "int"},
    {"name": "commitTimestamp", "type": "long"},
    {"name": "commitNumber", "type": "long"},
    {"name": "commitUser", "type": "string"},
    {"name": "nulledFields", "type": STRING_ARRAY},
    {"name": "diffFields", "type": STRING_ARRAY},
    {"name": "changedFields", "type": STRING_ARRAY},
]}
_AVRO_TYPES: dict[str, Any] = {
    "boolean": "boolean", "int": "int", "double": "double", "currency": "double", "percent": "double",
    "date": {"type": "int", "logicalType": "date"}, "datetime": {"type": "long", "logicalType": "timestamp-millis"},
}


def event_name(entity: str) -> str:
    """``Lead`` → ``LeadChangeEvent``; ``Foo__c`` → ``Foo__ChangeEvent``."""
    return (entity[:-3] + "__ChangeEvent") if entity.endswith("__c") else entity + "ChangeEvent"


@dataclass(frozen=True)
class Slot:
    """One top-level field of the event body: a plain field, or a compound one and its components."""

    name: str
    components: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventSchema:
    """The Avro schema of one entity's change events at one moment of the object's metadata."""

    entity: str
    schema_id: str
    schema_json: str
    slots: tuple[Slot | None, ...]  # index = Avro field position; 0 is the header
    parsed: Any = field(repr=False, compare=False)


def build_schema(sobject: SObject) -> EventSchema:
    """The change-event schema of ``sobject`` as it is now (visible fields, describe order)."""
    components = COMPOUND_NAME.get(sobject.name, ())
    fields: list[dict[str, Any]] = [{"name": "ChangeEventHeader", "type": HEADER, "doc": "Data:ChangeEventHeader"}]
    slots: list[Slot | None] = [None]
    for spec in sobject.fields.values():
        if spec.name in EXCLUDED or not spec.visible or spec.name in components:
            continue
        if components and spec.name == "Name":
            nested = {"type": "record", "name": "Name", "namespace": f"{NAMESPACE}.{sobject.name}",
                      "fields": [{"name": n, "type": ["null", "string"], "default": None} for n in components]}
            fields.append({"name": "Name", "type": ["null", nested], "doc": "Data:Name", "default": None})
            slots.append(Slot("Name", components))
            continue
        fields.append({"name": spec.name, "type": ["null", _AVRO_TYPES.get(spec.type, "string")],
                       "doc": f"Data:{spec.type}", "default": None})
        slots.append(Slot(spec.name))
    schema = {"type": "record", "name": event_name(sobject.name), "namespace": NAMESPACE, "fields": fields}
    parsed = fastavro.parse_schema(schema)
    digest = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "MD5"))
    return EventSchema(sobject.name, base64.urlsafe_b64encode(digest).decode().rstrip("="),
                       json.dumps(schema, separators=(",", ":")), tuple(slots), parsed)


@dataclass
class Change:
    """One record's change inside a transaction, before it becomes an event.

    ``values``: the body's values by sObject field name (all of them for CREATE/UNDELETE, the
    changed ones for UPDATE, none for DELETE); ``changed``/``nulled``: field names for UPDATE.
    """

    entity: str
    change_type: str
    record_id: str
    values: dict[str, Any]
    changed: frozenset[str] = frozenset()
    nulled: frozenset[str] = frozenset()

    def same_change(self) -> tuple:
        """Changes with equal keys in one transaction become one event with several recordIds."""
        return (self.entity, self.change_type, self.changed, self.nulled,
                tuple(sorted((k, repr(v)) for k, v in self.values.items())))


def bitmap(schema: EventSchema, names: frozenset[str]) -> list[str]:
    """The Pub/Sub bitmap list for a set of sObject field names (see the module docstring)."""
    if not names:
        return []
    top, nested = 0, []
    for position, slot in enumerate(schema.slots):
        if slot is None:
            continue
        if slot.components:
            bits = sum(1 << i for i, component in enumerate(slot.components) if component in names)
            if bits:
                nested.append(f"{position}-{_hex(bits)}")
        elif slot.name in names:
            top |= 1 << position
    return ([_hex(top)] if top else []) + nested


def _hex(bits: int) -> str:
    digits = format(bits, "X")
    return "0x" + ("0" * (len(digits) % 2)) + digits


def encode(schema: EventSchema, header: dict[str, Any], change: Change) -> bytes:
    """Avro binary of one event: ``header`` (without the bitmaps) plus ``change``'s body."""
    body: dict[str, Any] = {"ChangeEventHeader": {**header, "nulledFields": bitmap(schema, change.nulled),
                                                  "diffFields": [],
                                                  "changedFields": bitmap(schema, change.changed)}}
    for slot in schema.slots[1:]:
        assert slot is not None
        if slot.components:
            present = [c for c in slot.components if c in change.values]
            body[slot.name] = {c: _avro_value(change.values.get(c)) for c in slot.components} if present else None
        else:
            body[slot.name] = _avro_value(change.values.get(slot.name))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema.parsed, body)
    return out.getvalue()


def _avro_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date, bool, int, float, str)) or value is None:
        return value
    return str(value)


def field_values(sobject: SObject, record: dict[str, Any]) -> dict[str, Any]:
    """Every body value of a stored record (nulls included): what create/undelete events carry."""
    return {spec.name: _stored(spec, record) for spec in sobject.fields.values() if spec.name not in EXCLUDED}


def _stored(spec: Field, record: dict[str, Any]) -> Any:
    value = record.get(spec.name)
    return False if value is None and spec.type == "boolean" else value
