"""The tables. Each class says what it records and why the daemon needs it.

Schema changes are made in a new migration under ``state/migrations/versions`` as well as
here; ``tests/test_state.py`` fails when the two disagree.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from state.types import UTCDateTime, utcnow


def _when(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


class Visitor(SQLModel, table=True):
    """One browser/device, identified by the tracker's first-party ``_cl_vid`` cookie."""

    __tablename__ = "visitors"

    id: str = Field(primary_key=True, max_length=64)
    first_seen_at: datetime = _when()
    last_seen_at: datetime = _when()
    ga_client_id: Optional[str] = Field(default=None, max_length=64)
    consent: Optional[str] = Field(default=None, max_length=16)


class Touchpoint(SQLModel, table=True):
    """One tracker event (page view, identify or conversion) exactly as it arrived.

    Sessions and channels are derived from these rows when a journey is computed, so a
    change of classification rules can be replayed over history.
    """

    __tablename__ = "touchpoints"
    __table_args__ = (Index("ix_touchpoints_visitor_time", "visitor_id", "occurred_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    visitor_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    occurred_at: datetime = _when()
    received_at: datetime = _when(default_factory=utcnow)
    url: str = Field(default="", max_length=2048)
    referrer: str = Field(default="", max_length=2048)
    utm_source: Optional[str] = Field(default=None, max_length=256)
    utm_medium: Optional[str] = Field(default=None, max_length=256)
    utm_campaign: Optional[str] = Field(default=None, max_length=256)
    utm_term: Optional[str] = Field(default=None, max_length=256)
    utm_content: Optional[str] = Field(default=None, max_length=256)
    utm_id: Optional[str] = Field(default=None, max_length=256)
    utm_source_platform: Optional[str] = Field(default=None, max_length=256)
    gclid: Optional[str] = Field(default=None, max_length=256)
    gbraid: Optional[str] = Field(default=None, max_length=256)
    wbraid: Optional[str] = Field(default=None, max_length=256)
    fbclid: Optional[str] = Field(default=None, max_length=256)
    msclkid: Optional[str] = Field(default=None, max_length=256)
    ttclid: Optional[str] = Field(default=None, max_length=256)
    li_fat_id: Optional[str] = Field(default=None, max_length=256)
    ga_client_id: Optional[str] = Field(default=None, max_length=64)
    ga_session_id: Optional[str] = Field(default=None, max_length=32)
    language: Optional[str] = Field(default=None, max_length=35)
    timezone: Optional[str] = Field(default=None, max_length=64)
    user_agent: Optional[str] = Field(default=None, max_length=512)
    conversion_type: Optional[str] = Field(default=None, max_length=16)
    consent: Optional[str] = Field(default=None, max_length=16)
    session_key: Optional[str] = Field(default=None, max_length=64)
    # Google Consent Mode signals as the page had them ("granted" | "denied"; None when the site set none)
    ad_user_data: Optional[str] = Field(default=None, max_length=8)
    ad_personalization: Optional[str] = Field(default=None, max_length=8)


class Identity(SQLModel, table=True):
    """Something that ties a visitor to a person: a hashed email or phone, a GA client id,
    or a CRM record that named this visitor in its visitor-id field.

    Visitors sharing an identity value belong to the same person; their touchpoints merge
    into one journey. ``first_received_at`` is when closedloop first received the link, by its
    own clock: a client can backdate ``first_seen_at`` (within the collector's skew), not this.
    """

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value", "visitor_id", name="uq_identities_kind_value_visitor"),
                      Index("ix_identities_visitor", "visitor_id"))

    id: Optional[int] = Field(default=None, primary_key=True)
    visitor_id: str = Field(max_length=64)
    kind: str = Field(max_length=24)
    value: str = Field(max_length=128)
    first_seen_at: datetime = _when(default_factory=utcnow)  # the beacon's own moment (clamped to its arrival)
    last_seen_at: datetime = _when(default_factory=utcnow)
    first_received_at: Optional[datetime] = _when(default=None)  # server time of the first sighting: trust order


class Cursor(SQLModel, table=True):
    """How far a job has read a CRM stream (the replication key value it reached)."""

    __tablename__ = "cursors"

    crm: str = Field(primary_key=True, max_length=32)
    stream: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=256)
    updated_at: datetime = _when(default_factory=utcnow)


class LeadSync(SQLModel, table=True):
    """What closedloop knows and last wrote about one CRM record.

    ``written`` holds the value of every field as last written, so an unchanged value is
    never written again (the daemon's own writes bump the record's modification stamp and
    come back through the poll; without this they would loop).

    Who the record is on the web, by trust (see ``sync.capture.stitching``): ``visitor_ids``
    are the devices trusted to be the person (named on the record, or the first to claim its
    email); ``claims`` maps each device that only claimed to be them to the moment (ISO 8601)
    from which its touches count. ``converting_visitor_id`` and ``converting_client_id`` are
    the visitor and GA client ids the record itself held: its purchases and lead events go to
    GA4 under that browser.
    """

    __tablename__ = "lead_sync"

    crm: str = Field(primary_key=True, max_length=32)
    object: str = Field(primary_key=True, max_length=64)
    record_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=24)
    record_created_at: Optional[datetime] = _when(default=None)
    first_seen_at: datetime = _when(default_factory=utcnow)
    last_checked_at: datetime = _when(default_factory=utcnow)
    last_written_at: Optional[datetime] = _when(default=None)
    visitor_ids: list[str] = Field(default_factory=list, sa_type=JSON)
    claims: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    converting_visitor_id: Optional[str] = Field(default=None, max_length=64)
    converting_client_id: Optional[str] = Field(default=None, max_length=64)
    written: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    written_at: dict[str, str] = Field(default_factory=dict, sa_type=JSON)  # field → ISO time of its last write
    attempts: int = 0


class OutboxEvent(SQLModel, table=True):
    """An event for one destination (GA4, Google Ads, Meta) waiting to be sent, or already sent.

    The unique ``idempotency_key`` (e.g. ``salesforce:006...:purchase:1``) makes "once and only
    once" a database constraint: the row is inserted in the same transaction that advances
    the cursor, and the sender marks it sent. ``destination`` says which drain owns the row;
    ``first_sent_at`` is when its request first left, which is what a platform's de-duplication
    window is counted from.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_id", "status", "id"),
                      Index("ix_outbox_destination_status_id", "destination", "status", "id"))

    id: Optional[int] = Field(default=None, primary_key=True)
    destination: str = Field(default="ga4", max_length=16)
    idempotency_key: str = Field(max_length=200, unique=True)
    kind: str = Field(max_length=16)
    crm: str = Field(max_length=32)
    record_id: str = Field(max_length=64)
    event_name: str = Field(max_length=40)
    client_id: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = Field(default="pending", max_length=16)
    created_at: datetime = _when(default_factory=utcnow)
    sent_at: Optional[datetime] = _when(default=None)
    first_sent_at: Optional[datetime] = _when(default=None)
    attempts: int = 0
    last_error: Optional[str] = Field(default=None, max_length=2000)


class DeadLetter(SQLModel, table=True):
    """A record that failed for a reason retrying will not fix, kept for a person to act on."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_status_id", "status", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    job: str = Field(max_length=32)
    crm: Optional[str] = Field(default=None, max_length=32)
    object: Optional[str] = Field(default=None, max_length=64)
    record_id: Optional[str] = Field(default=None, max_length=64)
    code: str = Field(max_length=64)
    message: str = Field(max_length=2000)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = Field(default="open", max_length=16)
    created_at: datetime = _when(default_factory=utcnow)
    resolved_at: Optional[datetime] = _when(default=None)


class JobRun(SQLModel, table=True):
    """One execution of a job, for ``closedloop status`` and ``/healthz``."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_started", "job", "started_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    job: str = Field(max_length=32)
    instance: str = Field(max_length=128)
    started_at: datetime = _when(default_factory=utcnow)
    finished_at: Optional[datetime] = _when(default=None)
    outcome: str = Field(default="running", max_length=16)
    records_read: int = 0
    records_written: int = 0
    message: Optional[str] = Field(default=None, max_length=2000)


class ApiBudget(SQLModel, table=True):
    """The latest API allowance a remote reported, so ``closedloop status`` (another process)
    can say how much is used and whether closedloop paused its writes."""

    __tablename__ = "api_budgets"

    system: str = Field(primary_key=True, max_length=32)
    used: Optional[int] = None
    total: Optional[int] = None
    share: float = 0.5
    paused: bool = False
    description: str = Field(default="", max_length=500)
    updated_at: datetime = _when(default_factory=utcnow)


class RemoteStatus(SQLModel, table=True):
    """Whether closedloop is talking to one remote system (salesforce, hubspot, ga4, ...) or has
    paused it, and why, so that every instance on the store and ``closedloop status`` see the
    same thing (``sync/ops/remotes.py`` owns the rules).

    ``state`` is ``ok`` or ``paused``; ``reason`` is ``budget`` (out of allowance), ``auth``
    (credentials refused) or ``down`` (failing through the retries); ``failures`` counts the
    failures in a row; ``paused_since`` is when the current stretch began and ``paused_until``
    when the remote is tried again. ``message`` keeps the last error, also after recovery.
    """

    __tablename__ = "remote_states"

    name: str = Field(primary_key=True, max_length=32)
    state: str = Field(default="ok", max_length=16)
    reason: Optional[str] = Field(default=None, max_length=16)
    message: Optional[str] = Field(default=None, max_length=2000)
    failures: int = 0
    paused_since: Optional[datetime] = _when(default=None)
    paused_until: Optional[datetime] = _when(default=None)
    last_error_at: Optional[datetime] = _when(default=None)
    last_success_at: Optional[datetime] = _when(default=None)
    instance: Optional[str] = Field(default=None, max_length=128)
    updated_at: datetime = _when(default_factory=utcnow)


class RevenueLedger(SQLModel, table=True):
    """What GA4 currently holds for one won deal, so later changes send exactly the difference.

    ``version`` numbers the purchases: the first uses transaction id ``<crm>:<deal id>``, a
    re-valued deal refunds it and sends ``<crm>:<deal id>:<version>``. ``status`` is ``sent``
    (GA4 holds ``value``), ``refunded`` (reopened or lost), ``waiting`` (its person has no GA
    client id yet), ``skipped`` (never attributable; ``reason`` says why) or ``forgotten`` (its
    buyer was erased with ``closedloop forget``: the client id is gone and nothing is sent again).
    """

    __tablename__ = "revenue_ledger"

    crm: str = Field(primary_key=True, max_length=32)
    deal_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=16)
    version: int = 0
    value: Optional[str] = Field(default=None, max_length=40)
    currency: Optional[str] = Field(default=None, max_length=3)
    client_id: Optional[str] = Field(default=None, max_length=64)
    reason: Optional[str] = Field(default=None, max_length=500)
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # the deal while it waits
    first_seen_at: datetime = _when(default_factory=utcnow)
    updated_at: datetime = _when(default_factory=utcnow)


class DealRecord(SQLModel, table=True):
    """A local mirror of every deal/opportunity the jobs have read, for pipeline and revenue
    reports that need no API calls."""

    __tablename__ = "deals"

    crm: str = Field(primary_key=True, max_length=32)
    deal_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=255)
    stage: str = Field(default="", max_length=128)
    is_won: bool = False
    is_closed: bool = False
    amount: Optional[str] = Field(default=None, max_length=40)
    currency: str = Field(default="", max_length=3)
    created_at: datetime = _when()
    closed_at: Optional[datetime] = _when(default=None)
    person_object: Optional[str] = Field(default=None, max_length=64)
    person_id: Optional[str] = Field(default=None, max_length=64)
    updated_at: datetime = _when(default_factory=utcnow)


class DealStageRecord(SQLModel, table=True):
    """Each CRM's deal stages in its own order with the labels its users see, so the pipeline
    report reads "Closed Won" where HubSpot's deals carry ``closedwon``. Refreshed by the
    revenue job from the metadata it reads anyway."""

    __tablename__ = "deal_stages"

    crm: str = Field(primary_key=True, max_length=32)
    stage: str = Field(primary_key=True, max_length=128)
    label: str = Field(max_length=255)
    pipeline: str = Field(default="", max_length=255)
    position: int = 0
    updated_at: datetime = _when(default_factory=utcnow)


class Spend(SQLModel, table=True):
    """Ad spend imported from CSV, for ROI and ROAS in the source report. Spend is kept at the
    level the file gives it (channel, source, campaign, and keyword only when the file has one)."""

    __tablename__ = "spend"
    __table_args__ = (UniqueConstraint("day", "channel", "source", "campaign", "keyword", name="uq_spend_day_key"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    day: str = Field(max_length=10)
    channel: str = Field(default="", max_length=64)
    source: str = Field(default="", max_length=256)
    campaign: str = Field(default="", max_length=256)
    keyword: str = Field(default="", max_length=256)
    cost: str = Field(max_length=40)
    currency: str = Field(default="", max_length=3)


class QueuedChange(SQLModel, table=True):
    """A CRM record a trigger (Salesforce change event, HubSpot webhook) said changed, waiting
    for one job to process it.

    One row per (crm, job, object, record): a record that changes again before it is
    processed stays one row, its ``version`` bumped, so a job that read version 3 removes the
    row only if no version 4 arrived meanwhile. ``occurred_at`` is when the CRM says the
    (earliest waiting) change happened, for the trigger's lag.
    """

    __tablename__ = "queued_changes"
    __table_args__ = (Index("ix_queued_changes_job", "crm", "job", "queued_at"),)

    crm: str = Field(primary_key=True, max_length=32)
    job: str = Field(primary_key=True, max_length=32)
    object: str = Field(primary_key=True, max_length=64)
    record_id: str = Field(primary_key=True, max_length=64)
    source: str = Field(max_length=16)  # cdc | webhook
    occurred_at: Optional[datetime] = _when(default=None)
    queued_at: datetime = _when(default_factory=utcnow)
    version: int = 1
    # A Salesforce create event's field values: the record as created, so enrichment need not
    # read it again. Dropped when the record changes again before it is processed.
    snapshot: Optional[dict[str, Any]] = Field(default=None, sa_type=JSON)


class TriggerStream(SQLModel, table=True):
    """One trigger channel of a CRM (a Pub/Sub topic, the webhook receiver) and how it fares.

    ``position`` is the Salesforce replay id (base64) to resume after; it is written in the
    same transaction as the changes it delivered, so a restart neither loses nor repeats one.
    ``state`` is connected, connecting, down (``message`` says why), paused or listening.
    """

    __tablename__ = "trigger_streams"

    crm: str = Field(primary_key=True, max_length=32)
    channel: str = Field(primary_key=True, max_length=128)
    state: str = Field(default="connecting", max_length=16)
    message: Optional[str] = Field(default=None, max_length=1000)
    position: Optional[str] = Field(default=None, max_length=256)
    position_at: Optional[datetime] = _when(default=None)
    connected_at: Optional[datetime] = _when(default=None)
    last_event_at: Optional[datetime] = _when(default=None)
    lag_seconds: Optional[float] = None
    events: int = 0
    instance: Optional[str] = Field(default=None, max_length=128)
    updated_at: datetime = _when(default_factory=utcnow)


class AdConversion(SQLModel, table=True):
    """What one ad platform was (or was not) told about one CRM record reaching one stage.

    One row per (destination, CRM, record, stage), written in the same transaction as the outbox
    event it queues, so ``closedloop report`` and ``closedloop reconcile`` can say for every
    stage reached what was sent, with which match key and value, and why the rest was not:
    ``status`` is ``queued`` (in the outbox), ``sent``, ``waiting`` (its person is not matched to
    a web visitor yet), ``skipped`` (never sendable: ``reason`` is ``no_match_key``,
    ``no_consent``, ``too_old``...) or ``dead`` (dead-lettered by the sender). ``key`` is the
    idempotency key the platform de-duplicates on (Google ``transactionId``, Meta ``event_id``),
    decided before the first send and never changed; ``sent_value`` is the value the platform
    holds, ``value`` the CRM's current one (they differ when Meta could not be told of a change).
    """

    __tablename__ = "ad_conversions"

    destination: str = Field(primary_key=True, max_length=16)
    crm: str = Field(primary_key=True, max_length=32)
    record_id: str = Field(primary_key=True, max_length=64)
    stage: str = Field(primary_key=True, max_length=40)
    status: str = Field(max_length=16)
    reason: Optional[str] = Field(default=None, max_length=40)
    key: str = Field(default="", max_length=200)
    occurred_at: Optional[datetime] = _when(default=None)
    match_keys: str = Field(default="", max_length=80)   # e.g. "gclid,email"; "" when none
    consent: str = Field(default="unknown", max_length=16)
    channel: Optional[str] = Field(default=None, max_length=64)  # first-click channel, for reconcile
    value: Optional[str] = Field(default=None, max_length=40)
    sent_value: Optional[str] = Field(default=None, max_length=40)
    currency: Optional[str] = Field(default=None, max_length=3)
    restatements: int = 0
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # what a waiting row is rebuilt from
    first_seen_at: datetime = _when(default_factory=utcnow)
    updated_at: datetime = _when(default_factory=utcnow)
