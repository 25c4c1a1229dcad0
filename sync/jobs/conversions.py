"""The conversions job: CRM stages to Google Ads and Meta, exactly once each.

It reads what the lifecycle and revenue jobs read (lead statuses and lifecycle stages, deals),
with its own cursors, so the ad platforms never wait for GA4 nor GA4 for them. A stage counts
when a destination maps it (``won``, or the ``[lifecycle.*]`` event name a CRM stage means);
:mod:`sync.jobs.ad_conversions` decides what each platform gets and queues it with the cursor
advance, and :mod:`sync.jobs.ad_outbox` drains each destination on its own. Each CRM and each
platform is a remote of its own (:mod:`sync.ops.remotes`): one that is down, throttled or
refusing our credentials is paused with its reason and backoff, its conversions stay queued,
and the others go on.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from sqlmodel import func, select

from adapters.base import Deal, StageChange
from state.models import AdConversion, OutboxEvent
from sync.config import Config
from sync.jobs.ad_conversions import CONTACT_FIELDS, DESTINATIONS, Contact, ConversionPlanner, StageReached, \
    not_retracted, wanted_stages
from sync.jobs.ad_outbox import drain_destination
from sync.jobs.base import Job, JobContext, JobResult
from sync.jobs.cursors import advance_cursor, poll_window
from sync.jobs.enrich import PROFILES
from sync.jobs.lifecycle import stage_event
from sync.jobs.revenue import mirror_deals
from sync.journey.hits import journey_settings
from sync.ops import metrics

log = logging.getLogger(__name__)
WAITING_BATCH = 500


class ConversionsJob(Job):
    name = "conversions"

    @classmethod
    def enabled(cls, config: Config) -> bool:
        settings = config.settings
        return (settings.google_ads.enabled or settings.meta.enabled) and \
            (settings.salesforce.enabled or settings.hubspot.enabled)

    @classmethod
    def interval_seconds(cls, config: Config) -> float:
        return config.settings.schedule.conversions_seconds

    @classmethod
    def backlog(cls, session) -> int | None:
        return session.exec(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.destination.in_(DESTINATIONS), OutboxEvent.status == "pending")).one()

    def run(self, ctx: JobContext) -> JobResult:
        # Each CRM, then each platform, as a remote of its own (sync/ops/remotes.py): one that is out of
        # allowance, refuses our credentials or is down is paused and its work waits; the others go on.
        for crm in ctx.connections.enabled_crms():
            ctx.for_crm(crm, lambda crm=crm: ConversionSync(crm, ctx).run())
        for destination in DESTINATIONS:
            if getattr(ctx.config.settings, destination).enabled:
                ctx.for_remote(destination, lambda destination=destination: send_destination(ctx, destination))
        return ctx.result


def send_destination(ctx: JobContext, destination: str) -> None:
    """One platform's share of the run: drain its outbox rows, count them, and raise what stopped the
    drain (a platform that is down or refuses our token) so that remote is paused."""
    drained = drain_destination(ctx.store, destination, ctx.connections.destination(destination), ctx.now,
                                ctx.checkpoint)
    ctx.result.records_written += drained.sent
    ctx.result.dead_letters += drained.dead
    if drained.error is not None:
        raise drained.error


class ConversionSync:
    """One CRM's stages since the cursor, planned for every destination that maps them."""

    def __init__(self, crm: str, ctx: JobContext) -> None:
        self.crm, self.ctx = crm, ctx
        self.adapter = ctx.connections.adapter(crm)
        self.profile = PROFILES[crm]
        self.rules = getattr(ctx.config.settings.lifecycle, crm)
        self.stages = wanted_stages(ctx.config)

    def streams(self):
        if self.crm == "salesforce":
            return [("Lead", self._lead_stages(self.adapter.iter_lead_stages)), ("Opportunity", self._deals)]
        return [("contacts", self._lead_stages(self.adapter.iter_contact_stages)), ("deals", self._deals)]

    def _lead_stages(self, pages):
        def reached(since: datetime, until: datetime):
            for page in pages(since, until):
                if page:
                    yield [item for change in page for item in self._from_change(change)], [], \
                        max(change.changed_at for change in page), []
        return reached

    def _from_change(self, change: StageChange) -> list[StageReached]:
        stage = stage_event(self.crm, self.rules, change)
        if stage not in self.stages or change.person is None:
            return []
        return [StageReached(self.crm, change.record_id, stage, change.changed_at, [change.person])]

    def _deals(self, since: datetime, until: datetime):
        for page in self.adapter.iter_deals(since, until):
            if not page:
                continue
            reached, lost = [], []
            for deal in page:
                if deal.is_won and deal.amount is not None and deal.amount > 0 and "won" in self.stages:
                    reached.append(StageReached(self.crm, deal.id, "won", won_moment(deal), list(deal.people),
                                                deal.amount, deal.currency))
                elif not deal.is_won:
                    lost.append(deal.id)
                change = StageChange(self.profile.deal_object, deal.id,
                                     "dealstage" if self.crm == "hubspot" else "StageName", deal.stage,
                                     deal.modified_at, deal.people[0] if deal.people else None)
                reached.extend(self._from_change(change))
            yield reached, lost, max(deal.modified_at for deal in page), page

    def run(self) -> None:
        now = self.ctx.now()
        planner = ConversionPlanner(self.ctx.config, journey_settings(self.ctx.config), now)
        for object_name, pages in self.streams():
            stream = f"{ConversionsJob.name}:{object_name}"
            since, until = poll_window(self.ctx, self.crm, self.profile, stream, now)
            for reached, lost, newest, deals in pages(since, until):
                self.ctx.checkpoint()
                metrics.records_read.labels(self.crm, object_name).inc(len(reached) + len(lost))
                self.ctx.result.records_read += len(reached) + len(lost)
                contacts = self.contacts(reached)
                with self.ctx.store.session() as session:
                    mirror_deals(session, self.crm, deals, now)  # for reports and reconcile
                    for item in reached:
                        planner.record(session, item, contacts)
                    for deal_id in lost:
                        not_retracted(session, self.crm, deal_id, now)
                    advance_cursor(session, self.crm, stream, min(newest, until), now)
        self.recheck_waiting(planner)

    def recheck_waiting(self, planner: ConversionPlanner) -> None:
        """Stages whose person was not matched to a web visitor yet: try again from their snapshot."""
        with self.ctx.store.session(readonly=True) as session:
            rows = session.exec(select(AdConversion).where(AdConversion.crm == self.crm,
                                                           AdConversion.status == "waiting")
                                .order_by(AdConversion.updated_at).limit(WAITING_BATCH)).all()
            reached = {(row.record_id, row.stage): StageReached.from_snapshot(row) for row in rows}
        if not reached:
            return
        contacts = self.contacts(list(reached.values()))
        with self.ctx.store.session() as session:
            for item in reached.values():
                planner.record(session, item, contacts)

    def contacts(self, reached: list[StageReached]) -> dict[tuple[str, str], Contact]:
        """Email and phone of everyone in ``reached``, read from the CRM (clear values stay in memory)."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for item in reached:
            for person in item.people:
                if (self.crm, person.object) in CONTACT_FIELDS:
                    wanted[person.object].add(person.id)
        found: dict[tuple[str, str], Contact] = {}
        for object_name, ids in wanted.items():
            email_field, phone_field = CONTACT_FIELDS[(self.crm, object_name)]
            records = self.adapter.records_by_id(object_name, sorted(ids), [email_field, phone_field])
            for record_id, values in records.items():
                found[(object_name, record_id)] = Contact(values.get(email_field) or None,
                                                          values.get(phone_field) or None)
        return found


def won_moment(deal: Deal) -> datetime:
    """When the deal was won, as well as the CRM says: its close date, unless that lies after the
    last change (a Salesforce CloseDate is a day, counted to its end) or before the deal existed."""
    moment = deal.closed_at or deal.modified_at
    return max(min(moment, deal.modified_at), deal.created_at)

