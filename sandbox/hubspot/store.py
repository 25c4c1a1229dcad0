"""HubSpot's records: property values (always strings), validation on write, search with
index lag, and deal↔contact associations.

Facts (shared/reference/hubspot-api.md): values are strings or null; datetimes ISO 8601 with
``Z``; ``lastmodifieddate`` (contacts) / ``hs_lastmodifieddate`` (deals) advance on every write
(§3.4); read-only and unknown properties fail the whole write with VALIDATION_ERROR (§4.1);
enumerations must match an option (INVALID_OPTION, §5.4); strings are capped at 65,536
characters (§5.3); search sees a record only after the index lag (§3.3), with the operators
and case rules of §3.1; ``hs_is_closed``, ``hs_is_closed_won`` and ``hs_closed_amount`` follow
the stage metadata and ``closedate`` is set on entering a closed stage (§6.1).
"""
from __future__ import annotations

import bisect
import heapq
import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

from sandbox.clock import Clock
from sandbox.hubspot.schema import Property, default_groups, default_pipelines, default_properties

MODIFIED = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}
MAX_STRING = 65_536


class PropertyError(Exception):
    """One invalid property value: HubSpot rejects the whole request for it."""

    def __init__(self, code: str, name: str, message: str) -> None:
        super().__init__(message)
        self.code, self.name, self.message = code, name, message


@dataclass
class Record:
    id: str
    properties: dict[str, str]
    created_ms: int
    archived: bool = False
    searchable: dict[str, str] | None = None  # what search sees (lags behind writes)


@dataclass(order=True)
class _Pending:
    visible_ms: int
    sequence: int
    object_type: str = field(compare=False)
    record_id: str = field(compare=False)
    snapshot: dict[str, str] = field(compare=False)


def iso(ms: int) -> str:
    """HubSpot's timestamp format: Java Instant.toString (millis only when non-zero)."""
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{ms % 1000:03d}Z" if ms % 1000 else "Z")


def to_ms(value: str) -> int | None:
    """Epoch milliseconds from a ms string or an ISO 8601 datetime; None if neither."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


class Store:
    """All CRM data of one portal. Callers hold ``lock``."""

    def __init__(self, clock: Clock, *, index_lag_seconds: float = 0.0, currencies: list[str] | None = None,
                 company_currency: str = "USD") -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.index_lag_seconds = index_lag_seconds
        self.company_currency = company_currency
        self.properties = default_properties(currencies or [company_currency, "EUR", "GBP"])
        self.groups = default_groups()
        self.pipelines = default_pipelines()
        self.stage_meta = {stage["id"]: stage["metadata"] for p in self.pipelines for stage in p["stages"]}
        self.properties["deals"]["pipeline"].options = [
            {"label": p["label"], "value": p["id"], "displayOrder": n, "hidden": False}
            for n, p in enumerate(self.pipelines)]
        self.properties["deals"]["dealstage"].options = [
            {"label": s["label"], "value": s["id"], "displayOrder": n, "hidden": False}
            for n, s in enumerate(s for p in self.pipelines for s in p["stages"])]
        self.records: dict[str, dict[str, Record]] = {"contacts": {}, "deals": {}}
        self.ids = itertools.count(100_001)
        self._sequence = itertools.count()
        self._pending: list[_Pending] = []
        # search index over the searchable last-modified value: sorted (ms, numeric id)
        self._index: dict[str, list[tuple[int, int]]] = {"contacts": [], "deals": []}
        self._indexed: dict[str, dict[str, tuple[int, int]]] = {"contacts": {}, "deals": {}}
        self.associations: dict[str, set[str]] = {}  # deal id → contact ids

    def now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    # -- writes ------------------------------------------------------------------------

    def validate(self, object_type: str, values: dict[str, Any], *, creating: bool) -> dict[str, str]:
        """Validated, normalised string values; raises PropertyError for the first bad one."""
        definitions = self.properties[object_type]
        clean: dict[str, str] = {}
        for name, raw in values.items():
            spec = definitions.get(name)
            if spec is None:
                raise PropertyError("PROPERTY_DOESNT_EXIST", name, f'Property "{name}" does not exist')
            if spec.read_only or spec.calculated:
                raise PropertyError("READ_ONLY_VALUE", name, f'Property "{name}" is read only')
            value = "" if raw is None else str(raw) if not isinstance(raw, bool) else str(raw).lower()
            if value == "":
                clean[name] = ""
                continue
            clean[name] = self._normalise(spec, value)
        return clean

    @staticmethod
    def _normalise(spec: Property, value: str) -> str:
        if spec.type == "string":
            if len(value) > MAX_STRING:
                raise PropertyError("INVALID_STRING", spec.name, f'Property "{spec.name}" value is longer than '
                                                                 f"{MAX_STRING} characters")
            return value
        if spec.type == "number":
            try:
                number = Decimal(value)
            except InvalidOperation:
                raise PropertyError("INVALID_LONG" if "." not in value else "INVALID_DOUBLE", spec.name,
                                    f'"{value}" is not a valid number for property "{spec.name}"') from None
            return value if number.is_finite() else str(number)
        if spec.type == "enumeration":
            if value not in spec.option_values:
                raise PropertyError("INVALID_OPTION", spec.name, f'"{value}" was not one of the allowed options: '
                                                                 f"{', '.join(sorted(spec.option_values))}")
            return value
        if spec.type == "bool":
            if value.lower() not in ("true", "false"):
                raise PropertyError("INVALID_BOOLEAN", spec.name, f'"{value}" is not a valid boolean')
            return value.lower()
        if spec.type in ("datetime", "date"):
            ms = to_ms(value)
            if ms is None:
                raise PropertyError("INVALID_DATE", spec.name, f'"{value}" is not a valid date for "{spec.name}"')
            if spec.type == "date" and ms % 86_400_000:
                raise PropertyError("INVALID_DATE", spec.name, f'{value} is at not midnight! (property "{spec.name}")')
            return iso(ms)
        return value

    def create(self, object_type: str, values: dict[str, str], *, created_ms: int | None = None) -> Record:
        now = self.now_ms()
        record_id = str(next(self.ids))
        created = created_ms if created_ms is not None else now
        properties = {"createdate": iso(created), "hs_object_id": record_id}
        if object_type == "contacts":
            properties["lifecyclestage"] = "lead"
        else:
            properties.update(pipeline="default", dealstage="appointmentscheduled")
        properties.update({k: v for k, v in values.items() if v != ""})
        record = Record(record_id, properties, created)
        self.records[object_type][record_id] = record
        self._after_write(object_type, record, None, max(now, created), explicit=set(values))
        return record

    def update(self, object_type: str, record: Record, values: dict[str, str]) -> None:
        previous_stage = record.properties.get("dealstage")
        for name, value in values.items():
            if value == "":
                record.properties.pop(name, None)
            else:
                record.properties[name] = value
        self._after_write(object_type, record, previous_stage, self.now_ms(), explicit=set(values))

    def _after_write(self, object_type: str, record: Record, previous_stage: str | None, modified_ms: int,
                     explicit: set[str]) -> None:
        properties = record.properties
        if object_type == "deals":
            meta = self.stage_meta.get(properties.get("dealstage", ""), {})
            closed = meta.get("isClosed") == "true"
            won = closed and meta.get("probability") == "1.0"
            if closed and "closedate" not in explicit and properties.get("dealstage") != previous_stage and not (
                    won and self.stage_meta.get(previous_stage or "", {}).get("probability") == "1.0"):
                properties["closedate"] = iso(modified_ms)
            properties["hs_is_closed"] = "true" if closed else "false"
            properties["hs_is_closed_won"] = "true" if won else "false"
            properties["hs_closed_amount"] = properties.get("amount", "0") if won else "0"
        properties[MODIFIED[object_type]] = iso(modified_ms)
        snapshot = dict(properties)
        if self.index_lag_seconds <= 0:
            self._make_searchable(object_type, record.id, snapshot)
        else:
            heapq.heappush(self._pending, _Pending(modified_ms + int(self.index_lag_seconds * 1000),
                                                   next(self._sequence), object_type, record.id, snapshot))

    def _make_searchable(self, object_type: str, record_id: str, snapshot: dict[str, str]) -> None:
        record = self.records[object_type].get(record_id)
        if record is None:
            return
        record.searchable = snapshot
        index, current = self._index[object_type], self._indexed[object_type]
        old = current.get(record_id)
        if old is not None:
            position = bisect.bisect_left(index, old)
            if position < len(index) and index[position] == old:
                del index[position]
        entry = (to_ms(snapshot[MODIFIED[object_type]]), int(record_id))
        current[record_id] = entry
        if not index or index[-1] <= entry:
            index.append(entry)
        else:
            bisect.insort(index, entry)

    def catch_up_index(self) -> None:
        """Make searchable every write whose index lag has passed."""
        now = self.now_ms()
        while self._pending and self._pending[0].visible_ms <= now:
            item = heapq.heappop(self._pending)
            self._make_searchable(item.object_type, item.record_id, item.snapshot)

    # -- search --------------------------------------------------------------------------

    def index_range(self, object_type: str, low_ms: int | None, high_ms: int | None) -> tuple[int, int]:
        """Positions [start, end) of the index entries with low_ms <= modified <= high_ms."""
        self.catch_up_index()
        index = self._index[object_type]
        start = bisect.bisect_left(index, (low_ms, -1)) if low_ms is not None else 0
        end = bisect.bisect_right(index, (high_ms, float("inf"))) if high_ms is not None else len(index)
        return start, max(start, end)

    def indexed(self, object_type: str, start: int, end: int) -> Iterator[Record]:
        """Searchable records at index positions [start, end), oldest last-modified first."""
        records = self.records[object_type]
        for _, record_id in self._index[object_type][start:end]:
            record = records[str(record_id)]
            if not record.archived:
                yield record
