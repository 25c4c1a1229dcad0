"""Change Data Capture: which entities publish, and how the org's writes become change events.

Facts (shared/reference/realtime-and-auth.md §2.2–2.3, salesforce-api.md §7):
- only selected entities publish; "you can select up to five entities" without an add-on
  licence; each selection is a ``PlatformEventChannelMember`` of the standard ``ChangeEvents``
  channel named ``ChangeEvents_<Entity>ChangeEvent`` (cdc_what.htm, Tooling
  tooling-platformeventchannelmember.html);
- one event per record change, but "if in one transaction the same change occurred in multiple
  records of the same object type", one event lists all of their ``recordIds``
  (cdc_event_fields_header.htm); events of one transaction share ``transactionKey`` and
  ``commitNumber`` and count ``sequenceNumber`` from 1;
- ``changeOrigin`` is ``com/salesforce/api/<api>/<version>;client=<id>`` when the call sent
  ``Sforce-Call-Options: client=<id>``, without ``;client=`` otherwise; changes made in the
  Lightning UI show ``com/salesforce/api/soap/<version>;client=SfdcInternalAPI/``
  (apex-class-eventbus-changeeventheader.html, cdc-subscribe-compound-fields.html);
- ``changedFields`` of an update includes ``LastModifiedDate``;
- lead conversion emits a Lead update carrying IsConverted and the Converted*Id fields.

The store reports every write to :meth:`ChangeCapture.on_write` under its lock; writes are
grouped into a transaction (one REST request, one control-API action), and committed to the
bus when it closes. Rolled-back writes (``allOrNone``) are withdrawn before commit.
"""
from __future__ import annotations

import itertools
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from sandbox.salesforce.pubsub.bus import EventBus
from sandbox.salesforce.pubsub.events import (EXCLUDED, Change, EventSchema, build_schema, encode, event_name,
                                              field_values)
from sandbox.salesforce.store import Store, WriteError

STANDARD_CHANNEL = "ChangeEvents"
MAX_SELECTED_ENTITIES = 5
UI_CLIENT = "SfdcInternalAPI/"
_TOPIC = re.compile(r"^/data/(?:(?P<all>ChangeEvents)|(?P<event>\w+?)ChangeEvent)$")


def rest_origin(version: str, call_options: str | None, api: str = "rest") -> str:
    """``changeOrigin`` for an API write, from the request's ``Sforce-Call-Options`` header."""
    client = None
    for option in re.split(r"[,;]", call_options or ""):
        name, _, value = option.partition("=")
        if name.strip().lower() == "client" and value.strip():
            client = value.strip()
    origin = f"com/salesforce/api/{api}/{version}"
    return f"{origin};client={client}" if client else origin


@dataclass
class _Transaction:
    origin: str
    user_id: str
    changes: list[Change] = field(default_factory=list)
    depth: int = 1


class ChangeCapture:
    """Selected entities, schema registry, and the store listener that publishes change events."""

    def __init__(self, store: Store, bus: EventBus, *, entities: tuple[str, ...] | list[str] = (),
                 max_entities: int | None = MAX_SELECTED_ENTITIES, ui_version: str = "62.0") -> None:
        self.store = store
        self.bus = bus
        self.max_entities = max_entities
        self.ui_origin = f"com/salesforce/api/soap/{ui_version};client={UI_CLIENT}"
        self.members: dict[str, dict[str, Any]] = {}  # entity → PlatformEventChannelMember row
        self.schemas: dict[str, EventSchema] = {}     # every schema id ever used
        self._current: dict[str, tuple[tuple, EventSchema]] = {}
        self._transaction: _Transaction | None = None
        self._quiet = 0
        self._commit_numbers = itertools.count(1_100_670_838_951)
        store.listener = self.on_write
        self.enable(*entities)

    # -- selection ------------------------------------------------------------------------

    def enable(self, *entities: str) -> None:
        """Select entities for change notifications (as Setup → Change Data Capture does)."""
        with self.store.lock:
            wanted = [self.store.sobject(name).name for name in entities]
            new = [name for name in dict.fromkeys(wanted) if name not in self.members]
            if self.max_entities is not None and len(self.members) + len(new) > self.max_entities:
                raise WriteError("LIMIT_EXCEEDED", f"You can select up to {self.max_entities} entities for "
                                                   "change notifications without an add-on license.", [])
            now = self.store.clock.now().replace(microsecond=0)
            for name in new:
                self.members[name] = {
                    "Id": self.store.ids.new("0v8"), "DeveloperName": f"{STANDARD_CHANNEL}_{event_name(name)}",
                    "MasterLabel": event_name(name), "EventChannel": STANDARD_CHANNEL,
                    "SelectedEntity": event_name(name), "FilterExpression": None, "NamespacePrefix": None,
                    "IsDeleted": False, "CreatedDate": now, "CreatedById": self.store.integration_user,
                    "LastModifiedDate": now, "LastModifiedById": self.store.integration_user, "SystemModstamp": now}

    def disable(self, *entities: str) -> None:
        with self.store.lock:
            for name in entities:
                self.members.pop(self.store.sobject(name).name, None)

    def enabled(self) -> list[str]:
        with self.store.lock:
            return list(self.members)

    def entity_of_event(self, selected_entity: str) -> str | None:
        """``LeadChangeEvent`` → ``Lead`` (custom: ``Foo__ChangeEvent`` → ``Foo__c``), if the org has it."""
        with self.store.lock:
            return next((name for name in self.store.schema if event_name(name) == selected_entity), None)

    # -- topics and schemas ----------------------------------------------------------------

    def topic_entity(self, topic: str) -> str | None:
        """The entity of a ``/data/<Entity>ChangeEvent`` topic, ``"*"`` for ``/data/ChangeEvents``,
        None when the org has no such topic."""
        match = _TOPIC.match(topic or "")
        if match is None:
            return None
        if match.group("all"):
            return "*"
        return self.entity_of_event(match.group("event") + "ChangeEvent")

    def schema_for(self, entity: str) -> EventSchema:
        """The entity's current schema (rebuilt, with a new id, when its fields changed)."""
        with self.store.lock:
            sobject = self.store.schema[entity]
            shape = tuple((f.name, f.type, f.visible) for f in sobject.fields.values() if f.name not in EXCLUDED)
            known = self._current.get(entity)
            if known is None or known[0] != shape:
                schema = build_schema(sobject)
                self.schemas.setdefault(schema.schema_id, schema)
                known = self._current[entity] = (shape, self.schemas[schema.schema_id])
            return known[1]

    def schema(self, schema_id: str) -> EventSchema | None:
        with self.store.lock:
            return self.schemas.get(schema_id)

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self, origin: str, user_id: str) -> Iterator[None]:
        """Group the writes made inside into one transaction; nested calls join the outer one."""
        with self.store.lock:
            if self._transaction is not None:
                self._transaction.depth += 1
            else:
                self._transaction = _Transaction(origin, user_id)
            try:
                yield
            finally:
                self._transaction.depth -= 1
                if self._transaction.depth == 0:
                    finished, self._transaction = self._transaction, None
                    self._commit(finished)

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Writes inside publish nothing (bulk fixtures that stand for pre-existing data)."""
        with self.store.lock:
            self._quiet += 1
            try:
                yield
            finally:
                self._quiet -= 1

    def on_write(self, kind: str, object_name: str, record: dict[str, Any], old: dict[str, Any] | None,
                 user_id: str | None) -> None:
        """The store's listener: ``insert``, ``touch`` (update/delete/undelete), ``rollback``."""
        if kind == "rollback":
            if self._transaction is not None:
                self._transaction.changes = [c for c in self._transaction.changes if c.record_id != record["Id"]]
            return
        if self._quiet or object_name not in self.members:
            return
        change = self._change(object_name, record, old)
        if self._transaction is not None:
            self._transaction.changes.append(change)
        else:
            self._commit(_Transaction("", user_id or self.store.integration_user, [change]))

    def _change(self, object_name: str, record: dict[str, Any], old: dict[str, Any] | None) -> Change:
        sobject = self.store.schema[object_name]
        if old is None:
            return Change(object_name, "CREATE", record["Id"], field_values(sobject, record))
        if record["IsDeleted"] and not old["IsDeleted"]:
            return Change(object_name, "DELETE", record["Id"], {})
        if old["IsDeleted"] and not record["IsDeleted"]:
            return Change(object_name, "UNDELETE", record["Id"], field_values(sobject, record))
        changed = {name for name in set(record) | set(old) if record.get(name) != old.get(name)}
        changed = (changed - EXCLUDED) | {"LastModifiedDate"}
        nulled = frozenset(name for name in changed if record.get(name) is None)
        return Change(object_name, "UPDATE", record["Id"], {name: record.get(name) for name in changed},
                      frozenset(changed), nulled)

    def _commit(self, transaction: _Transaction) -> None:
        if not transaction.changes:
            return
        groups: dict[tuple, list[Change]] = {}
        for change in transaction.changes:
            groups.setdefault(change.same_change(), []).append(change)
        key, number = str(uuid.uuid4()), next(self._commit_numbers)
        timestamp = int(self.store.clock.now().timestamp() * 1000)
        for sequence, changes in enumerate(groups.values(), start=1):
            first = changes[0]
            schema = self.schema_for(first.entity)
            header = {"entityName": first.entity, "recordIds": [c.record_id for c in changes],
                      "changeType": first.change_type, "changeOrigin": transaction.origin or "",
                      "transactionKey": key, "sequenceNumber": sequence, "commitTimestamp": timestamp,
                      "commitNumber": number, "commitUser": transaction.user_id}
            self.bus.publish(first.entity, schema.schema_id, encode(schema, header, first), str(uuid.uuid4()), header)
