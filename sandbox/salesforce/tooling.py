"""Tooling API ``PlatformEventChannelMember``: how a client reads (and sets) which entities publish
change events.

Facts (shared/reference/realtime-and-auth.md §2.2; Tooling object reference
https://developer.salesforce.com/docs/platform/api-tooling/references/tooling-objects/tooling-platformeventchannelmember.html,
"Get Custom Channels and Channel Members" cdc-filter-list-channels.html):
- query with ``GET /services/data/vXX.X/tooling/query?q=SELECT Id, DeveloperName, EventChannel,
  FilterExpression, SelectedEntity FROM PlatformEventChannelMember``;
- a selection on the standard channel is named ``ChangeEvents_<Entity>ChangeEvent``, its
  ``EventChannel`` is ``ChangeEvents`` and ``SelectedEntity`` e.g. ``LeadChangeEvent``;
- create with ``POST .../tooling/sobjects/PlatformEventChannelMember`` and ``{"FullName",
  "Metadata": {"eventChannel", "selectedEntity"}}``; delete by id; EventChannel and
  SelectedEntity cannot be updated.

Only the standard ``ChangeEvents`` channel is emulated; custom ``__chn`` channels, filters and
enrichment are refused with a clear message.
"""
from __future__ import annotations

from typing import Any

from sandbox.salesforce.ids import to18
from sandbox.salesforce.pubsub.capture import STANDARD_CHANNEL, ChangeCapture
from sandbox.salesforce.pubsub.events import event_name
from sandbox.salesforce.schema import Field, SObject, system_object
from sandbox.salesforce.soql import compile_query, order_rows
from sandbox.salesforce.store import RequestError, WriteError

MEMBER = "PlatformEventChannelMember"
TOOLING_SCHEMA: dict[str, SObject] = {MEMBER: system_object(MEMBER, "Platform Event Channel Member", "0v8", [
    Field("DeveloperName", "string", "Developer Name", 80, updateable=False),
    Field("MasterLabel", "string", "Label", 80),
    Field("EventChannel", "string", "Event Channel", 255, updateable=False, nillable=False),
    Field("SelectedEntity", "string", "Selected Entity", 255, updateable=False, nillable=False),
    Field("FilterExpression", "textarea", "Filter Expression", 255),
    Field("NamespacePrefix", "string", "Namespace Prefix", 15, updateable=False, createable=False),
])}


class _Rows:
    """The record source compiled queries need (no lookups to follow on this object)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._by_id = {row["Id"]: row for row in rows}

    def resolve(self, record_id: str) -> dict[str, Any] | None:
        return self._by_id.get(record_id)

    def children(self, object_name: str, field_name: str, parent_id: str) -> list[dict[str, Any]]:
        return []


class ChannelMembers:
    """Tooling reads and writes of the CDC selection kept by :class:`ChangeCapture`."""

    def __init__(self, capture: ChangeCapture) -> None:
        self.capture = capture

    def query(self, soql: str, version: str) -> dict[str, Any]:
        """A Tooling query result (raises SoqlError like the data API)."""
        store = self.capture.store
        with store.lock:
            rows = list(self.capture.members.values())
            compiled = compile_query(soql, TOOLING_SCHEMA, _Rows(rows), store.clock.now().date())
            matched = [row for row in rows if compiled.predicate is None or compiled.predicate(row)]
            if compiled.order:
                matched = order_rows(matched, compiled.order)
            matched = matched[compiled.offset:]
            if compiled.limit is not None:
                matched = matched[:compiled.limit]
            records = [] if compiled.count else [_tooling_url(compiled.project(row, version)) for row in matched]
        return {"size": len(matched), "totalSize": len(matched), "done": True, "queryLocator": None,
                "entityTypeName": MEMBER, "records": records}

    def get(self, member_id: str, version: str) -> dict[str, Any]:
        row = self._find(member_id)
        out = {"attributes": {"type": MEMBER,
                              "url": f"/services/data/v{version}/tooling/sobjects/{MEMBER}/{row['Id']}"}}
        for spec in TOOLING_SCHEMA[MEMBER].fields.values():
            value = row.get(spec.name)
            out[spec.name] = value.strftime("%Y-%m-%dT%H:%M:%S.000+0000") if hasattr(value, "strftime") else value
        out["Metadata"] = {"eventChannel": row["EventChannel"], "selectedEntity": row["SelectedEntity"],
                           "enrichedFields": [], "filterExpression": None}
        return out

    def create(self, body: Any) -> str:
        """Select an entity; returns the new member's id (WriteError/RequestError otherwise)."""
        if not isinstance(body, dict) or not isinstance(body.get("Metadata"), dict):
            raise RequestError("JSON_PARSER_ERROR", "Cannot deserialize instance of PlatformEventChannelMember: "
                                                    "expected FullName and Metadata")
        metadata = body["Metadata"]
        channel, selected = metadata.get("eventChannel"), str(metadata.get("selectedEntity") or "")
        if not channel or not selected:
            raise WriteError("REQUIRED_FIELD_MISSING", "Required fields are missing: [eventChannel, selectedEntity]",
                             ["Metadata"])
        if channel != STANDARD_CHANNEL:
            raise WriteError("INVALID_INPUT", f"The sandbox only emulates the standard {STANDARD_CHANNEL} channel, "
                                              f"not {channel}", ["Metadata"])
        if metadata.get("filterExpression") or metadata.get("enrichedFields"):
            raise WriteError("INVALID_INPUT", "Filters and enriched fields need a custom channel, which the sandbox "
                                              "does not emulate", ["Metadata"])
        entity = self.capture.entity_of_event(selected)
        if entity is None:
            raise WriteError("INVALID_INPUT", f"Invalid selectedEntity: {selected}", ["Metadata"])
        full_name = body.get("FullName") or f"{STANDARD_CHANNEL}_{selected}"
        if full_name != f"{STANDARD_CHANNEL}_{event_name(entity)}":
            raise WriteError("FIELD_INTEGRITY_EXCEPTION", f"FullName must be {STANDARD_CHANNEL}_{selected}",
                             ["FullName"])
        if entity in self.capture.members:
            raise WriteError("DUPLICATE_DEVELOPER_NAME", f"There is already a channel member named {full_name}.",
                             ["FullName"])
        self.capture.enable(entity)
        return self.capture.members[entity]["Id"]

    def delete(self, member_id: str) -> None:
        row = self._find(member_id)
        entity = self.capture.entity_of_event(row["SelectedEntity"])
        if entity is not None:
            self.capture.disable(entity)

    def _find(self, member_id: str) -> dict[str, Any]:
        with self.capture.store.lock:
            wanted = to18(member_id)
            row = next((r for r in self.capture.members.values() if r["Id"] == wanted), None)
        if row is None:
            raise WriteError("NOT_FOUND", "The requested resource does not exist", status=404)
        return row


def _tooling_url(row: dict[str, Any]) -> dict[str, Any]:
    row["attributes"]["url"] = row["attributes"]["url"].replace("/sobjects/", "/tooling/sobjects/", 1)
    return row
