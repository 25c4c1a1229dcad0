"""The records of one emulated portal: contacts and deals, their search index, associations.

Facts (shared/reference/hubspot-api.md):
- IDs are numeric strings and every property value is a string (§11);
- ``lastmodifieddate`` (contacts) / ``hs_lastmodifieddate`` (deals) advance on every write,
  including the daemon's own batch updates (§3.4);
- ``hs_is_closed``, ``hs_is_closed_won``, ``hs_closed_amount`` follow the stage metadata, and
  ``closedate`` is set on entering a closed stage except closed-won -> closed-won (§6.1);
- search sees a record only after the index lag (§3.3) and never sees archived records;
- emails are unique per portal: a second contact with the same email is a 409 CONFLICT (§8).

Scale: records live in dicts keyed by id; the last-modified index is a
:class:`~sandbox.hubspot.index.SortedKeys` of (modified ms, id) keys, so a keyset poll over a
million records costs a few binary searches per page. Callers hold the sandbox's lock.
"""
from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Callable, Iterable

from sandbox.clock import Clock
from sandbox.hubspot.index import SortedKeys, make_key
from sandbox.hubspot.schema import (MODIFIED, OBJECT_TYPE_IDS, Property, default_groups, default_pipelines,
                                    default_properties)
from sandbox.hubspot.values import PropertyError, merge_checkbox, normalise, read_only, unknown
from sandbox.hubspot.wire import EPOCH, ApiError, iso, to_ms

FIRST_ID = 100_001
SYSTEM = {"createdate", "hs_object_id", *MODIFIED.values()}
MILLISECOND = timedelta(milliseconds=1)


class Record:
    """One contact or deal. ``searchable`` is what search sees (it lags writes by the index lag;
    without lag it is the same dict as ``properties``)."""

    __slots__ = ("id", "properties", "created_ms", "archived", "archived_at", "searchable", "key", "visible_write")

    def __init__(self, record_id: str, properties: dict[str, str], created_ms: int) -> None:
        self.id = record_id
        self.properties = properties
        self.created_ms = created_ms
        self.archived = False
        self.archived_at: str | None = None
        self.searchable: dict[str, str] | None = None
        self.key: int | None = None  # the record's entry in the search index, if any
        self.visible_write = -1  # sequence number of the write search currently shows


@dataclass(order=True)
class _Pending:
    visible_ms: int
    sequence: int
    object_type: str = field(compare=False)
    record_id: str = field(compare=False)
    snapshot: dict[str, str] = field(compare=False)


class Conflict(ApiError):
    """A contact with that email exists already (§8, hubspot-api-python#51)."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(409, f"Contact already exists. Existing ID: {existing_id}", "CONFLICT")


class Store:
    """All CRM data of one portal."""

    def __init__(self, clock: Clock, *, index_lag_seconds: float = 0.0, company_currency: str = "USD",
                 currencies: list[str] | None = None, portal_id: int = 99999) -> None:
        self.clock = clock
        self.index_lag_seconds = index_lag_seconds
        self.company_currency = company_currency
        self.currencies = list(dict.fromkeys([company_currency, *(currencies or ["EUR", "GBP"])]))
        self.portal_id = portal_id
        # Told of every write: (object type, "creation" | "propertyChange" | "deletion", record,
        # changed values {name: value, "" when cleared}); the webhooks hang off it.
        self.listener: Callable[[str, str, Record, dict[str, str]], None] | None = None
        self.reset()

    def reset(self) -> None:
        """Back to a fresh portal: default schema, no records."""
        self.properties: dict[str, dict[str, Property]] = default_properties(self.currencies)
        self.groups = default_groups()
        self.pipelines = default_pipelines()
        self._refresh_stage_options()
        self.records: dict[str, dict[str, Record]] = {"contacts": {}, "deals": {}}
        self.creation_order: dict[str, list[int]] = {"contacts": [], "deals": []}
        self.index: dict[str, SortedKeys] = {"contacts": SortedKeys(), "deals": SortedKeys()}
        self.emails: dict[str, str] = {}
        self.associations: dict[str, set[str]] = {}  # deal id -> contact ids
        self.contact_deals: dict[str, set[str]] = {}  # contact id -> deal ids
        self._ids = itertools.count(FIRST_ID)
        self._sequence = itertools.count()
        self._pending: list[_Pending] = []

    def _refresh_stage_options(self) -> None:
        self.stages: dict[str, tuple[str, dict[str, str]]] = {
            stage["id"]: (pipeline["id"], stage["metadata"]) for pipeline in self.pipelines
            for stage in pipeline["stages"]}
        deals = self.properties["deals"]
        deals["pipeline"].options = [{"label": p["label"], "value": p["id"], "displayOrder": n, "hidden": False}
                                     for n, p in enumerate(self.pipelines)]
        deals["dealstage"].options = [{"label": s["label"], "value": s["id"], "displayOrder": s["displayOrder"],
                                       "hidden": False} for p in self.pipelines for s in p["stages"]]

    def now_ms(self) -> int:
        return (self.clock.now() - EPOCH) // MILLISECOND

    # -- lookups -----------------------------------------------------------------------

    def find(self, object_type: str, record_id: Any, *, archived: bool = False) -> Record | None:
        """The live record (or, with ``archived``, the archived one) with this id."""
        record = self.records[object_type].get(str(record_id))
        if record is None or record.archived != archived:
            return None
        return record

    def find_by(self, object_type: str, id_property: str | None, value: Any) -> Record | None:
        """Look a record up by id, or by a unique property (``email`` for contacts)."""
        if not id_property or id_property == "hs_object_id":
            return self.find(object_type, value)
        if object_type == "contacts" and id_property == "email":
            found = self.emails.get(str(value).lower())
            return self.find(object_type, found) if found else None
        spec = self.properties[object_type].get(id_property)
        if spec is None or not spec.has_unique_value:
            raise ApiError(400, f"Unable to perform update/upsert by non-unique {OBJECT_TYPE_IDS[object_type]} property "
                                f"{id_property} in portal ID {self.portal_id}", "VALIDATION_ERROR")
        wanted = str(value)
        return next((r for r in self.records[object_type].values()
                     if not r.archived and r.properties.get(id_property) == wanted), None)

    def property(self, object_type: str, name: str) -> Property | None:
        spec = self.properties[object_type].get(name)
        return spec if spec is not None and not spec.archived else None

    # -- validation --------------------------------------------------------------------

    def validate(self, object_type: str, values: dict[str, Any], *,
                 as_user: bool = False) -> tuple[dict[str, str], list[PropertyError]]:
        """Normalised string values, and every invalid one (HubSpot reports them all, §4.1).

        ``as_user``: a person in HubSpot's UI may set properties that are read-only to the API,
        such as Original Source (§9.1), but never calculated or system ones.
        """
        clean: dict[str, str] = {}
        errors: list[PropertyError] = []
        for name, raw in (values or {}).items():
            spec = self.property(object_type, name)
            try:
                if spec is None:
                    raise unknown(name)
                if spec.calculated or (spec.read_only and not (as_user and name not in SYSTEM)):
                    raise read_only(spec)
                clean[name] = normalise(spec, raw, portal_id=self.portal_id)
            except PropertyError as exc:
                errors.append(exc)
        if object_type == "deals" and not errors:
            self._check_stage(clean, errors)
        return clean, errors

    def _check_stage(self, clean: dict[str, str], errors: list[PropertyError]) -> None:
        stage, pipeline = clean.get("dealstage"), clean.get("pipeline")
        if stage and pipeline and self.stages[stage][0] != pipeline:
            errors.append(PropertyError("INVALID_OPTION", "dealstage",
                                        f"{stage} is not a valid dealstage for pipeline {pipeline}"))

    def check_email(self, object_type: str, values: dict[str, str], record: Record | None = None) -> None:
        """409 when another live contact has this email."""
        email = values.get("email") if object_type == "contacts" else None
        if not email:
            return
        existing = self.emails.get(email.lower())
        if existing is not None and (record is None or existing != record.id) and self.find("contacts", existing):
            raise Conflict(existing)

    # -- writes ------------------------------------------------------------------------

    def create(self, object_type: str, values: dict[str, str], *, created_ms: int | None = None,
               modified_ms: int | None = None) -> Record:
        """Store a new record from validated values."""
        now = self.now_ms()
        created = now if created_ms is None else created_ms
        record_id = str(next(self._ids))
        properties = {"createdate": iso(created), "hs_object_id": record_id}
        if object_type == "contacts":
            properties["lifecyclestage"] = "lead"
        else:
            properties["pipeline"] = "default"
            properties["dealstage"] = "appointmentscheduled"
        properties.update((k, v) for k, v in values.items() if v != "")
        record = Record(record_id, properties, created)
        self.records[object_type][record_id] = record
        self.creation_order[object_type].append(int(record_id))
        self._remember_email(object_type, record, None)
        modified = max(now, created) if modified_ms is None else modified_ms
        self._after_write(object_type, record, None, modified, set(values))
        if self.listener is not None:
            self.listener(object_type, "creation", record, dict(record.properties))
        return record

    def update(self, object_type: str, record: Record, values: dict[str, str], *,
               modified_ms: int | None = None) -> None:
        """Apply validated values (``""`` clears) and bump the last-modified property."""
        self._detach_view(record)
        before = dict(record.properties) if self.listener is not None else {}
        previous_stage = record.properties.get("dealstage")
        previous_email = record.properties.get("email")
        properties = record.properties
        for name, value in values.items():
            spec = self.properties[object_type].get(name)
            if spec is not None and spec.field_type == "checkbox":
                value = merge_checkbox(properties.get(name), value)
            if value == "":
                properties.pop(name, None)
            else:
                properties[name] = value
        if object_type == "deals" and "dealstage" in values and "pipeline" not in values and values["dealstage"]:
            properties["pipeline"] = self.stages[values["dealstage"]][0]
        self._remember_email(object_type, record, previous_email)
        self._after_write(object_type, record, previous_stage, self.now_ms() if modified_ms is None else modified_ms,
                          set(values))
        if self.listener is not None:
            changed = {name: record.properties.get(name, "") for name in set(before) | set(record.properties)
                       if before.get(name) != record.properties.get(name)}
            if changed:
                self.listener(object_type, "propertyChange", record, changed)

    def archive(self, object_type: str, record: Record) -> None:
        """Archived records disappear from reads and from search (§3.3)."""
        record.archived = True
        record.archived_at = iso(self.now_ms())
        self._unindex(object_type, record)
        if self.listener is not None:
            self.listener(object_type, "deletion", record, {})
        if object_type == "contacts" and record.properties.get("email"):
            if self.emails.get(record.properties["email"].lower()) == record.id:
                del self.emails[record.properties["email"].lower()]

    def seed(self, object_type: str, rows: Iterable[dict[str, Any]], *, created_ms: int | None = None) -> list[str]:
        """Bulk creation without validation or events, for benchmarks: rows may carry
        ``createdate`` and the last-modified property to backdate records."""
        modified_name = MODIFIED[object_type]
        ids = []
        now = self.now_ms()
        listener, self.listener = self.listener, None  # seeded rows stand for data that was already there
        try:
            for row in rows:
                values = {k: str(v) for k, v in row.items() if v is not None}
                created = to_ms(values.pop("createdate")) if "createdate" in values else created_ms
                modified = to_ms(values.pop(modified_name)) if modified_name in values else None
                if created is not None and modified is None:
                    modified = max(now, created)
                ids.append(self.create(object_type, values, created_ms=created, modified_ms=modified).id)
        finally:
            self.listener = listener
        return ids

    def _remember_email(self, object_type: str, record: Record, previous: str | None) -> None:
        if object_type != "contacts":
            return
        email = record.properties.get("email")
        if previous and previous != email and self.emails.get(previous.lower()) == record.id:
            del self.emails[previous.lower()]
        if email:
            self.emails.setdefault(email.lower(), record.id)

    def _after_write(self, object_type: str, record: Record, previous_stage: str | None, modified_ms: int,
                     explicit: set[str]) -> None:
        if object_type == "deals":
            self._derive_deal(record.properties, previous_stage, modified_ms, explicit)
        record.properties[MODIFIED[object_type]] = iso(modified_ms)
        sequence = next(self._sequence)
        if self.index_lag_seconds <= 0:
            record.searchable = record.properties
            record.visible_write = sequence
            self._reindex(object_type, record, modified_ms)
        else:
            snapshot = dict(record.properties)
            heapq.heappush(self._pending, _Pending(modified_ms + int(self.index_lag_seconds * 1000),
                                                   sequence, object_type, record.id, snapshot))

    def _derive_deal(self, properties: dict[str, str], previous_stage: str | None, modified_ms: int,
                     explicit: set[str]) -> None:
        """The calculated deal properties of §6.1, from the stage metadata."""
        stage = properties.get("dealstage", "")
        metadata = self.stages.get(stage, ("", {}))[1]
        closed = metadata.get("isClosed") == "true"
        probability = metadata.get("probability")
        won = closed and probability is not None and float(probability) == 1.0
        was_won = previous_stage is not None and _won(self.stages.get(previous_stage, ("", {}))[1])
        entering = stage != previous_stage
        if closed and entering and "closedate" not in explicit and not (won and was_won):
            properties["closedate"] = iso(modified_ms)
        properties["hs_is_closed"] = "true" if closed else "false"
        properties["hs_is_closed_won"] = "true" if won else "false"
        properties["hs_closed_amount"] = properties.get("amount", "0") if won else "0"
        if probability is not None:
            properties["hs_deal_stage_probability"] = str(Decimal(float(probability)))

    # -- the search index ----------------------------------------------------------------

    def _detach_view(self, record: Record) -> None:
        """Before a write under index lag, give search its own copy of the old values."""
        if self.index_lag_seconds > 0 and record.searchable is record.properties:
            record.searchable = dict(record.properties)

    def _reindex(self, object_type: str, record: Record, modified_ms: int) -> None:
        index = self.index[object_type]
        if record.key is not None:
            index.discard(record.key)
        record.key = make_key(modified_ms, int(record.id))
        index.add(record.key)

    def _unindex(self, object_type: str, record: Record) -> None:
        if record.key is not None:
            self.index[object_type].discard(record.key)
            record.key = None

    def catch_up(self) -> None:
        """Make searchable every write whose index lag has passed (called before each search)."""
        now = self.now_ms()
        while self._pending and self._pending[0].visible_ms <= now:
            item = heapq.heappop(self._pending)
            record = self.records[item.object_type].get(item.record_id)
            if record is None or record.archived or item.sequence < record.visible_write:
                continue  # gone, or a later write is already visible (the lag was lowered meanwhile)
            record.searchable = item.snapshot
            record.visible_write = item.sequence
            self._reindex(item.object_type, record, to_ms(item.snapshot[MODIFIED[item.object_type]]) or 0)

    # -- associations ------------------------------------------------------------------

    def associate(self, deal_id: str, contact_id: str) -> None:
        self.associations.setdefault(str(deal_id), set()).add(str(contact_id))
        self.contact_deals.setdefault(str(contact_id), set()).add(str(deal_id))

    def associated(self, from_type: str, record_id: str, to_type: str) -> list[str]:
        """Ids associated with a record, in id order (live targets only)."""
        if (from_type, to_type) == ("deals", "contacts"):
            targets = self.associations.get(str(record_id), ())
        elif (from_type, to_type) == ("contacts", "deals"):
            targets = self.contact_deals.get(str(record_id), ())
        else:
            return []
        return sorted((t for t in targets if self.find(to_type, t) is not None), key=int)

    # -- GET /crm/v3/objects paging --------------------------------------------------------

    def page(self, object_type: str, after: int, limit: int, *, archived: bool = False) -> tuple[list[Record], bool]:
        """Records with id >= ``after`` in id order, and whether more follow."""
        order = self.creation_order[object_type]
        records = self.records[object_type]
        found: list[Record] = []
        for position in range(bisect_left(order, after), len(order)):
            record = records[str(order[position])]
            if record.archived != archived:
                continue
            if len(found) == limit:
                return found, True
            found.append(record)
        return found, False


def _won(metadata: dict[str, str]) -> bool:
    return metadata.get("isClosed") == "true" and float(metadata.get("probability", "0")) == 1.0
