"""The one interface every CRM adapter implements, and the plain records that cross it.

Adapters speak CRM on one side and these dataclasses on the other; they hold no state about
what was processed (cursors belong to the jobs in ``sync/``, as bookmarks belong to the state
manager in Meltano's SDK, not to streams).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterator, Protocol


@dataclass(frozen=True)
class FieldSpec:
    """A CRM field as its metadata (Salesforce describe, HubSpot properties) describes it.

    ``kind`` is closedloop's normalised type: string, textarea, number, datetime, date,
    boolean, picklist, reference, id or other; ``crm_type`` keeps the CRM's own word.
    """

    name: str
    label: str
    kind: str
    crm_type: str = ""
    length: int | None = None
    updateable: bool = True
    custom: bool = False
    picklist_values: tuple[str, ...] = ()
    restricted_picklist: bool = False
    picklist_labels: tuple[str, ...] = ()  # what users see, parallel to picklist_values


@dataclass(frozen=True)
class NewField:
    """A custom field/property that ``closedloop fields create`` should create."""

    object: str
    name: str
    label: str
    kind: str  # "string" | "number" | "datetime"
    description: str = ""
    length: int = 255


@dataclass
class LeadRecord:
    """A lead/contact (or deal/opportunity) as read from the CRM, with the fields asked for."""

    object: str
    id: str
    created_at: datetime
    modified_at: datetime
    fields: dict[str, Any] = field(default_factory=dict)
    converted: bool = False


@dataclass
class LeadUpdate:
    """Field values to write to one record (already in the CRM's wire format)."""

    object: str
    id: str
    values: dict[str, Any]


@dataclass
class WriteResult:
    """How one update fared; a failure carries the CRM's own code and message."""

    update: LeadUpdate
    ok: bool
    code: str = ""
    message: str = ""
    dropped: tuple[str, ...] = ()  # fields left out because the CRM no longer has them (not written)


@dataclass
class PersonRef:
    """A person a deal belongs to: the CRM object and id (e.g. Contact 003..., contacts 51)."""

    object: str
    id: str
    primary: bool = False


@dataclass
class Deal:
    """A won (or formerly won) deal: what revenue reporting needs."""

    id: str
    name: str
    stage: str
    is_won: bool
    amount: Decimal | None
    currency: str
    closed_at: datetime | None
    modified_at: datetime
    created_at: datetime
    people: list[PersonRef] = field(default_factory=list)
    is_closed: bool = False


@dataclass(frozen=True)
class DealStage:
    """One deal stage as the CRM shows it: the value deals carry (Salesforce's StageName, a
    HubSpot stage id such as ``closedwon``), the label users see, its pipeline (HubSpot), and
    its place in the CRM's own order (``position``, ascending across pipelines)."""

    stage: str
    label: str
    position: int
    pipeline: str = ""


@dataclass
class StageChange:
    """A lifecycle stage a record is now in (lead status, lifecycle stage, deal stage)."""

    object: str
    record_id: str
    stage_field: str
    stage: str
    changed_at: datetime
    person: PersonRef | None = None
    value: Decimal | None = None
    currency: str = ""
    reason: str = ""


@dataclass
class Allowance:
    """A daily API allowance as last reported by the remote, and closedloop's share of it."""

    share: float
    used: int | None = None
    total: int | None = None
    unit: str = "API calls"

    @property
    def exhausted(self) -> bool:
        return self.used is not None and bool(self.total) and self.used >= self.share * self.total

    def describe(self) -> str:
        if not self.total:
            return "not reported yet"
        return (f"{self.used}/{self.total} daily {self.unit} used; closedloop pauses at "
                f"{self.share:.0%}" + (" — paused" if self.exhausted else ""))


class CRMAdapter(Protocol):
    """What the jobs need from a CRM. Writes are batched: 200 (Salesforce) / 100 (HubSpot) per call."""

    name: str
    allowance: Allowance
    write_batch: int  # records per write call

    def describe_fields(self, object_name: str) -> dict[str, FieldSpec]: ...

    def ensure_fields(self, fields: list[NewField]) -> list[str]: ...

    def iter_changed(self, object_name: str, fields: list[str], since: datetime,
                     until: datetime) -> Iterator[list[LeadRecord]]: ...

    def count_changed(self, object_name: str, since: datetime, until: datetime) -> int: ...

    def update_records(self, updates: list[LeadUpdate]) -> list[WriteResult]: ...

    def records_by_id(self, object_name: str, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]: ...

    def people_of_deals(self, deal_ids: list[str]) -> dict[str, list[PersonRef]]: ...

    def iter_deals(self, since: datetime, until: datetime) -> Iterator[list[Deal]]: ...

    def deal_stages(self) -> list[DealStage]: ...
