"""The revenue job: won deals to GA4 as purchases, exactly once, and kept equal to the CRM.

For each deal changed since the cursor, the ledger says what GA4 already holds:

- a newly won deal sends ``purchase`` (transaction id ``<crm>:<deal id>``, value, currency, the
  person's GA client id, closedloop's attribution as parameters);
- a won deal whose amount or currency changed refunds the old purchase and sends a new one
  with the next transaction id suffix (``<crm>:<deal id>:2``);
- a won deal reopened or lost refunds what was sent.

So GA4's revenue equals the CRM's won revenue at all times. The events go into the outbox in
the same transaction as the ledger change and the cursor advance; the sender drains the
outbox afterwards. A deal whose contact has no GA client id yet waits for enrichment (up to
``[journey] match_wait_hours``), then is skipped with the reason recorded, or sent under the
configured unattributed client id.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from sqlmodel import Session, delete, func, select

from adapters.base import Deal, DealStage, PersonRef
from state.models import DealRecord, DealStageRecord, OutboxEvent, RevenueLedger
from state.upsert import upsert
from sync.capture.privacy import FORGOTTEN
from sync.config import Config
from sync.jobs.base import Job, JobContext, JobResult
from sync.jobs.cursors import advance_cursor, poll_window
from sync.jobs.enrich import PROFILES
from sync.jobs.ga4_events import attribution_params, money, outbox_event, resolve_person
from sync.jobs.outbox import send_outbox
from sync.jobs.triggers import done, queued_batches
from sync.journey.hits import journey_settings
from sync.ops import metrics

log = logging.getLogger(__name__)
WAITING_BATCH = 500


def transaction_id(crm: str, deal_id: str, version: int) -> str:
    return f"{crm}:{deal_id}" if version <= 1 else f"{crm}:{deal_id}:{version}"


class RevenueJob(Job):
    name = "revenue"

    @classmethod
    def enabled(cls, config: Config) -> bool:
        # Deals are mirrored for the reports whether or not GA4 is on; revenue is sent only with GA4.
        return config.settings.salesforce.enabled or config.settings.hubspot.enabled

    @classmethod
    def interval_seconds(cls, config: Config) -> float:
        return config.settings.schedule.revenue_seconds

    @classmethod
    def backlog(cls, session) -> int | None:
        return session.exec(select(func.count()).select_from(OutboxEvent)
                            .where(OutboxEvent.destination == "ga4", OutboxEvent.status == "pending")).one()

    def run(self, ctx: JobContext) -> JobResult:
        for crm in ctx.connections.enabled_crms():  # each CRM on its own, then GA4 as a remote of its own
            ctx.for_crm(crm, lambda crm=crm: RevenueSync(crm, ctx).run(poll=not self.queued_only))
        if ctx.config.settings.ga4.enabled:
            ctx.for_remote("ga4", lambda: send_outbox(ctx))
        return ctx.result


class RevenueSync:
    def __init__(self, crm: str, ctx: JobContext) -> None:
        self.crm, self.ctx = crm, ctx
        self.adapter = ctx.crm(crm)
        self.profile = PROFILES[crm]
        self.settings = journey_settings(ctx.config)
        self.ga4 = ctx.config.settings.ga4
        self.wait = timedelta(hours=ctx.config.settings.journey.match_wait_hours)

    def run(self, *, poll: bool = True) -> None:
        """The deals triggers queued, then (``poll``) every deal changed since the cursor."""
        self.drain()
        if poll:
            self.poll()

    def poll(self) -> None:
        stream = f"{RevenueJob.name}:deals"
        now = self.ctx.now()
        since, until = poll_window(self.ctx, self.crm, self.profile, stream, now)
        with self.ctx.store.session() as session:
            mirror_stages(session, self.crm, self.adapter.deal_stages(), now)
        for page in self.adapter.iter_deals(since, until):
            self.ctx.checkpoint()
            if not page:
                continue
            metrics.records_read.labels(self.crm, self.profile.deal_object).inc(len(page))
            self.ctx.result.records_read += len(page)
            newest = min(max(deal.modified_at for deal in page), until)
            with self.ctx.store.session() as session:
                mirror_deals(session, self.crm, page, now)
                for deal in page:
                    if self.ga4.enabled:
                        self.apply(session, deal, now)
                advance_cursor(session, self.crm, stream, newest, now)
        self.recheck_waiting(now)

    def drain(self) -> None:
        """Deals a trigger said changed: read them now and bring the mirror and GA4 in line,
        exactly as a polled page would (:meth:`apply` is idempotent, so the poll finding the
        same deal later sends nothing twice)."""
        for rows in queued_batches(self.ctx, self.crm, RevenueJob.name):
            now = self.ctx.now()
            deals = self.adapter.deals_by_id(
                list(dict.fromkeys(row.record_id for row in rows if row.object == self.profile.deal_object)))
            metrics.records_read.labels(self.crm, self.profile.deal_object).inc(len(deals))
            self.ctx.result.records_read += len(deals)
            with self.ctx.store.session() as session:
                mirror_deals(session, self.crm, deals, now)
                for deal in deals:
                    if self.ga4.enabled:
                        self.apply(session, deal, now)
                done(session, rows)
            for row in rows:
                if row.occurred_at is not None:
                    metrics.triggered_enrich.labels(self.crm, RevenueJob.name).observe(
                        max(0.0, (now - row.occurred_at).total_seconds()))

    def recheck_waiting(self, now: datetime) -> None:
        """Deals that waited for their person's GA client id: try again from their snapshot."""
        if not self.ga4.enabled:
            return
        with self.ctx.store.session() as session:
            waiting = session.exec(select(RevenueLedger).where(RevenueLedger.crm == self.crm,
                                                               RevenueLedger.status == "waiting")
                                   .order_by(RevenueLedger.updated_at).limit(WAITING_BATCH)).all()
            for ledger in waiting:
                self.apply(session, _deal_from_snapshot(ledger), now)

    def apply(self, session: Session, deal: Deal, now: datetime) -> None:
        """Bring GA4 in line with this deal (events into the outbox, ledger updated)."""
        ledger = session.get(RevenueLedger, (self.crm, deal.id))
        if ledger is not None and ledger.status == FORGOTTEN:  # its buyer was erased: nothing is sent again
            return
        amount = deal.amount if deal.amount is not None else Decimal(0)
        won = deal.is_won and amount > 0
        if not won:
            if ledger is not None and ledger.status == "sent":
                self._refund(session, ledger, deal, now)
                ledger.status, ledger.reason = "refunded", "reopened or lost" if not deal.is_won else "amount is 0"
            elif ledger is not None and ledger.status == "waiting":
                ledger.status, ledger.reason = "skipped", "no longer won"
            if ledger is not None:
                ledger.updated_at = now
                session.add(ledger)
            return
        if ledger is not None and ledger.status == "sent" and ledger.value == str(amount) \
                and ledger.currency == deal.currency:
            return
        person = resolve_person(session, self.crm, deal.people, self.settings)
        client_id = person.client_id if person else (ledger.client_id if ledger is not None else None)
        if ledger is None:
            ledger = RevenueLedger(crm=self.crm, deal_id=deal.id, status="waiting", first_seen_at=now)
        if client_id is None:
            if now - ledger.first_seen_at < self.wait:
                ledger.status, ledger.reason, ledger.snapshot = "waiting", "contact not matched to a web visitor yet", \
                    _snapshot(deal)
                ledger.updated_at = now
                session.add(ledger)
                return
            if self.ga4.unattributed_deals == "skip":
                ledger.status, ledger.reason, ledger.updated_at = "skipped", "no GA client id", now
                session.add(ledger)
                log.info("deal %s:%s skipped: no GA client id for its contacts", self.crm, deal.id)
                return
            client_id = self.ga4.unattributed_client_id
        if ledger.status == "sent":
            self._refund(session, ledger, deal, now)
        ledger.version += 1
        ledger.status, ledger.value, ledger.currency = "sent", str(amount), deal.currency
        ledger.client_id, ledger.reason, ledger.snapshot, ledger.updated_at = client_id, None, {}, now
        self._purchase(session, ledger, deal, amount, client_id, person, now)
        session.add(ledger)

    def _purchase(self, session, ledger, deal, amount, client_id, person, now) -> None:
        txn = transaction_id(self.crm, deal.id, ledger.version)
        value = money(amount)
        params = {"transaction_id": txn, "value": value, "currency": deal.currency,
                  "items": [{"item_id": f"{self.crm}:{deal.id}", "item_name": "won deal", "price": value,
                             "quantity": 1}],
                  **attribution_params(person.variables if person else {})}
        occurred = min(deal.closed_at or deal.modified_at, now)
        user_id = f"{self.crm}:{person.record.object}:{person.record.id}" if person and person.record and \
            self.ga4.send_user_id else None
        upsert(session, OutboxEvent, [_row(outbox_event(
            key=f"{self.crm}:{deal.id}:purchase:{ledger.version}", kind="revenue", crm=self.crm, record_id=deal.id,
            name=self.ga4.revenue_event, client_id=client_id, params=params, occurred_at=occurred, person=person,
            user_id=user_id))], ["idempotency_key"])

    def _refund(self, session, ledger: RevenueLedger, deal: Deal, now: datetime) -> None:
        value = money(Decimal(ledger.value or "0"))
        params = {"transaction_id": transaction_id(self.crm, deal.id, ledger.version), "value": value,
                  "currency": ledger.currency,
                  "items": [{"item_id": f"{self.crm}:{deal.id}", "item_name": "won deal", "price": value,
                             "quantity": 1}]}
        upsert(session, OutboxEvent, [_row(outbox_event(
            key=f"{self.crm}:{deal.id}:refund:{ledger.version}", kind="refund", crm=self.crm, record_id=deal.id,
            name="refund", client_id=ledger.client_id, params=params, occurred_at=now, person=None))],
            ["idempotency_key"])


def mirror_deals(session: Session, crm: str, deals: list[Deal], now: datetime) -> None:
    """Keep the local deal mirror (``deals`` table) current for the reports."""
    rows = [{"crm": crm, "deal_id": d.id, "name": d.name[:255], "stage": d.stage[:128], "is_won": d.is_won,
             "is_closed": d.is_closed or d.is_won, "amount": None if d.amount is None else str(d.amount),
             "currency": d.currency, "created_at": d.created_at, "closed_at": d.closed_at,
             "person_object": d.people[0].object if d.people else None,
             "person_id": d.people[0].id if d.people else None, "updated_at": now} for d in deals]
    upsert(session, DealRecord, rows, ["crm", "deal_id"], lambda table, new: {
        column: getattr(new, column) for column in ("name", "stage", "is_won", "is_closed", "amount", "currency",
                                                    "created_at", "closed_at", "person_object", "person_id",
                                                    "updated_at")})


def mirror_stages(session: Session, crm: str, stages: list[DealStage], now: datetime) -> None:
    """Keep the CRM's stage order and labels (``deal_stages``) current for the pipeline report.
    Stages the CRM no longer lists are dropped; deals still in one show its raw value."""
    if not stages:
        return
    session.exec(delete(DealStageRecord).where(DealStageRecord.crm == crm))
    session.add_all(DealStageRecord(crm=crm, stage=stage.stage[:128], label=stage.label[:255],
                                    pipeline=stage.pipeline[:255], position=stage.position, updated_at=now)
                    for stage in {stage.stage[:128]: stage for stage in stages}.values())


def _row(event: OutboxEvent) -> dict:
    return {column: getattr(event, column) for column in ("idempotency_key", "kind", "crm", "record_id",
                                                          "event_name", "client_id", "payload", "status",
                                                          "created_at", "attempts")}


def _snapshot(deal: Deal) -> dict:
    return {"name": deal.name, "stage": deal.stage, "is_won": deal.is_won,
            "amount": None if deal.amount is None else str(deal.amount), "currency": deal.currency,
            "closed_at": deal.closed_at.isoformat() if deal.closed_at else None,
            "modified_at": deal.modified_at.isoformat(), "created_at": deal.created_at.isoformat(),
            "people": [[p.object, p.id, p.primary] for p in deal.people]}


def _deal_from_snapshot(ledger: RevenueLedger) -> Deal:
    data = ledger.snapshot
    return Deal(id=ledger.deal_id, name=data.get("name", ""), stage=data.get("stage", ""),
                is_won=bool(data.get("is_won")),
                amount=None if data.get("amount") is None else Decimal(data["amount"]),
                currency=data.get("currency", ""),
                closed_at=datetime.fromisoformat(data["closed_at"]) if data.get("closed_at") else None,
                modified_at=datetime.fromisoformat(data["modified_at"]),
                created_at=datetime.fromisoformat(data["created_at"]),
                people=[PersonRef(obj, rid, primary) for obj, rid, primary in data.get("people", [])])
