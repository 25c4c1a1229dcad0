"""The lifecycle job: CRM stage changes to GA4's recommended lead events, once per stage.

Which stage sends which event is configuration (``[lifecycle.salesforce]``,
``[lifecycle.hubspot]``): e.g. Lead Status "Working - Contacted" → ``working_lead``,
"Unqualified" → ``disqualify_lead``, a converted lead → ``close_convert_lead``, HubSpot
lifecycle stages and deal stages likewise. Each event is sent once per (CRM, record, stage):
the outbox's unique key is ``<crm>:<object>:<record>:<field>:<stage>``. Events carry
``lead_source`` (the first-click source) and, for deal stages, the deal's value and currency.
People with no GA client id get no event (there is nothing to join it to).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlmodel import Session, select

from adapters.base import StageChange
from state.models import OutboxEvent
from state.upsert import upsert
from sync.config import Config
from sync.jobs.base import Job, JobContext, JobResult
from sync.jobs.cursors import advance_cursor, poll_window
from sync.jobs.enrich import PROFILES
from sync.jobs.ga4_events import money, outbox_event, resolve_person
from sync.jobs.outbox import send_outbox
from sync.jobs.revenue import _row
from sync.jobs.triggers import done, queued_batches
from sync.journey.hits import journey_settings
from sync.ops import metrics


class LifecycleJob(Job):
    name = "lifecycle"

    @classmethod
    def enabled(cls, config: Config) -> bool:
        settings = config.settings
        return settings.ga4.enabled and ((settings.salesforce.enabled and settings.lifecycle.salesforce.enabled) or
                                         (settings.hubspot.enabled and settings.lifecycle.hubspot.enabled))

    @classmethod
    def interval_seconds(cls, config: Config) -> float:
        return config.settings.schedule.lifecycle_seconds

    def run(self, ctx: JobContext) -> JobResult:
        for crm in ctx.connections.enabled_crms():  # each CRM on its own, then GA4 as a remote of its own
            if getattr(ctx.config.settings.lifecycle, crm).enabled:
                ctx.for_crm(crm, lambda crm=crm: LifecycleSync(crm, ctx).run(poll=not self.queued_only))
        ctx.for_remote("ga4", lambda: send_outbox(ctx))
        return ctx.result


def stage_streams(crm: str, adapter):
    """(stream name, ``pages(since, until)`` of StageChange) for a CRM: lead statuses and lifecycle
    stages, and each deal's current stage."""
    def deal_stages(since: datetime, until: datetime):
        for page in adapter.iter_deals(since, until):
            yield deal_stage_changes(crm, page)

    if crm == "salesforce":
        return [("Lead", adapter.iter_lead_stages), ("Opportunity", deal_stages)]
    return [("contacts", adapter.iter_contact_stages), ("deals", deal_stages)]


def deal_stage_changes(crm: str, deals) -> list[StageChange]:
    """Each deal's current stage, as a stage change of its (first) person."""
    return [StageChange(PROFILES[crm].deal_object, deal.id, "dealstage" if crm == "hubspot" else "StageName",
                        deal.stage, deal.modified_at, deal.people[0] if deal.people else None,
                        value=deal.amount, currency=deal.currency) for deal in deals]


def stage_event(crm: str, rules, change: StageChange) -> str:
    """What a stage means, as the GA4 lead event ``[lifecycle.<crm>]`` names for it ("" when none)."""
    if crm == "salesforce":
        if change.stage_field == "IsConverted":
            return rules.converted
        if change.stage_field == "Status":
            return rules.lead_status.get(change.stage, "")
        return rules.lost_opportunity if change.stage == "Closed Lost" else ""
    table = {"lifecyclestage": rules.lifecycle_stage, "hs_lead_status": rules.lead_status,
             "dealstage": rules.deal_stage}.get(change.stage_field, {})
    return table.get(change.stage, "")


class LifecycleSync:
    def __init__(self, crm: str, ctx: JobContext) -> None:
        self.crm, self.ctx = crm, ctx
        self.adapter = ctx.crm(crm)
        self.profile = PROFILES[crm]
        self.rules = getattr(ctx.config.settings.lifecycle, crm)
        self.settings = journey_settings(ctx.config)

    def streams(self):
        """(stream name, pages of StageChange) for this CRM."""
        return stage_streams(self.crm, self.adapter)

    def event_for(self, change: StageChange) -> str:
        """The configured GA4 event for a stage ("" when none)."""
        return stage_event(self.crm, self.rules, change)

    def run(self, *, poll: bool = True) -> None:
        """The deals triggers queued, then (``poll``) every stage changed since the cursors."""
        self.drain()
        if not poll:
            return
        now = self.ctx.now()
        for object_name, pages in self.streams():
            stream = f"{LifecycleJob.name}:{object_name}"
            since, until = poll_window(self.ctx, self.crm, self.profile, stream, now)
            for page in pages(since, until):
                self.ctx.checkpoint()
                if not page:
                    continue
                self.ctx.result.records_read += len(page)
                metrics.records_read.labels(self.crm, object_name).inc(len(page))
                newest = min(max(change.changed_at for change in page), until)
                with self.ctx.store.session() as session:
                    for change in page:
                        self.record(session, change)
                    advance_cursor(session, self.crm, stream, newest, now)

    def drain(self) -> None:
        """Deals whose stage a trigger said changed: read them now and record their events."""
        for rows in queued_batches(self.ctx, self.crm, LifecycleJob.name):
            changes = deal_stage_changes(self.crm, self.adapter.deals_by_id(
                list(dict.fromkeys(row.record_id for row in rows if row.object == self.profile.deal_object))))
            self.ctx.result.records_read += len(changes)
            with self.ctx.store.session() as session:
                for change in changes:
                    self.record(session, change)
                done(session, rows)

    def record(self, session: Session, change: StageChange) -> None:
        name = self.event_for(change)
        if not name or change.person is None:
            return
        key = f"{self.crm}:{change.object}:{change.record_id}:{change.stage_field}:{change.stage}"
        if session.exec(select(OutboxEvent.id).where(OutboxEvent.idempotency_key == key)).first() is not None:
            return
        person = resolve_person(session, self.crm, [change.person], self.settings)
        if person is None or not person.client_id:
            return
        params: dict = {}
        if person.variables.get("first_click_source"):
            params["lead_source"] = str(person.variables["first_click_source"])[:100]
        if name == "working_lead":
            params["lead_status"] = change.stage[:100]
        if change.value is not None and change.value > 0 and change.currency:
            params.update(value=money(Decimal(change.value)), currency=change.currency)
        upsert(session, OutboxEvent, [_row(outbox_event(
            key=key, kind="lifecycle", crm=self.crm, record_id=change.record_id, name=name,
            client_id=person.client_id, params=params, occurred_at=change.changed_at, person=person))],
            ["idempotency_key"])
