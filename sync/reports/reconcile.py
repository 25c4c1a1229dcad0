"""``closedloop reconcile``: do the CRM, what closedloop sent, and what each destination received line up?

For a period (by the day a deal was won or a stage reached), side by side:

1. **by first-click channel**: the CRMs' won deals and revenue; what closedloop sent GA4 (the
   revenue ledger) and what GA4 reports (Data API, by first-user default channel group); the
   won conversions sent to Google Ads and to Meta;
2. **by platform and stage**: stages reached in the CRM, conversions sent, what Google reports
   it recorded (request status), and why the rest was not sent (no match key, no consent, too
   old, dead-lettered, waiting for a web visitor);
3. **row by row**, every difference with its reason.

This module compares; it calls nothing. What the destinations say comes in as plain data from
:func:`sync.jobs.readback.read_back` (``None`` where a destination was not read back).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from state.models import AdConversion, DealRecord, DeadLetter, LeadSync, OutboxEvent, RevenueLedger
from sync.journey.compute import JourneySettings
from sync.reports.build import UNATTRIBUTED, _person

REASONS = {
    "no_match_key": "no click id from this platform in the journey and no usable email or phone: not sent",
    "no_consent": "no ad consent (Consent Mode ad_user_data) for this person: not sent",
    "too_old": "older than the platform accepts: never sent",
    "refused": "refused by the platform: dead-lettered",
    "no_web_visitor_yet": "waiting for the person to be matched to a web visitor",
    "not_retracted": "reopened or lost in the CRM after it was sent; the platform cannot retract a conversion",
}
UNKNOWN_CHANNEL = "(no web journey)"


@dataclass
class ChannelLine:
    channel: str
    crm_won: int = 0
    crm_revenue: Decimal = Decimal(0)
    ga4_sent: Decimal = Decimal(0)
    ga4_received: Decimal | None = None
    google_won: int = 0
    google_value: Decimal = Decimal(0)
    meta_won: int = 0
    meta_value: Decimal = Decimal(0)


@dataclass
class StageLine:
    destination: str
    stage: str
    reached: int = 0
    sent: int = 0
    received: int | None = None               # Google: rows its request status says it recorded
    not_sent: dict[str, int] = field(default_factory=dict)


@dataclass
class Difference:
    destination: str
    crm: str
    record_id: str
    stage: str
    why: str


@dataclass
class ReconcileReport:
    start: date
    end: date
    channels: list[ChannelLine]
    stages: list[StageLine]
    differences: list[Difference]
    google_failures: dict[str, int]             # processing error reason → rows
    notes: list[str]

    def as_json(self) -> dict[str, Any]:
        def plain(value):
            if isinstance(value, Decimal):
                return str(int(value)) if value == value.to_integral_value() else str(value)
            return value
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "channels": [{k: plain(v) for k, v in vars(line).items()} for line in self.channels],
                "stages": [vars(line) for line in self.stages],
                "differences": [vars(d) for d in self.differences],
                "google_failures": self.google_failures, "notes": self.notes}


def reconcile(session: Session, settings: JourneySettings, start: date, end: date, readback,
              *, ga4_delay_hours: float = 48.0, now: datetime | None = None,
              stage_actions: dict[str, str] | None = None) -> ReconcileReport:
    """The report for won deals and stages reached from ``start`` to ``end`` (whole days, UTC)."""
    now = now or datetime.now(timezone.utc)
    low = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    high = datetime(end.year, end.month, end.day, tzinfo=timezone.utc) + timedelta(days=1)
    channels: dict[str, ChannelLine] = {}
    differences: list[Difference] = []
    notes = list(readback.notes)

    def line(channel: str | None) -> ChannelLine:
        name = channel or UNKNOWN_CHANNEL
        return channels.setdefault(name, ChannelLine(name))

    ledgers = {(r.crm, r.deal_id): r for r in session.exec(select(RevenueLedger)).all()}
    by_transaction = readback.ga4_by_transaction
    deals = [d for d in session.exec(select(DealRecord).where(DealRecord.is_won)).all()
             if low <= won_on(d) < high and Decimal(d.amount or "0") > 0]
    for deal in deals:
        person = _person(session, session.get(LeadSync, (deal.crm, deal.person_object or "", deal.person_id or "")),
                         settings, won_on(deal)) if deal.person_id else None
        channel = person.key[0] if person is not None and person.key != UNATTRIBUTED else None
        row = line(channel)
        amount = Decimal(deal.amount or "0")
        row.crm_won += 1
        row.crm_revenue += amount
        ledger = ledgers.get((deal.crm, deal.deal_id))
        if ledger is not None and ledger.status == "sent":
            row.ga4_sent += Decimal(ledger.value or "0")
            if by_transaction is not None:
                transaction = f"{deal.crm}:{deal.deal_id}" + (f":{ledger.version}" if ledger.version > 1 else "")
                received, ga4_channel = by_transaction.get(transaction, (None, None))
                if received is None:
                    late = now - ledger.updated_at < timedelta(hours=ga4_delay_hours)
                    differences.append(Difference("ga4", deal.crm, deal.deal_id, "won",
                                                  "GA4 processing delay: sent " f"{_ago(now - ledger.updated_at)} ago, "
                                                  f"GA4 reports can take up to {ga4_delay_hours:g} h" if late else
                                                  f"sent as {transaction} but GA4 does not report it"))
                elif received != Decimal(ledger.value or "0"):
                    differences.append(Difference("ga4", deal.crm, deal.deal_id, "won",
                                                  f"GA4 reports {received} for {transaction}, closedloop sent "
                                                  f"{ledger.value}"))
                elif ga4_channel != row.channel:
                    differences.append(Difference("ga4", deal.crm, deal.deal_id, "won", (
                        f"GA4 files it under {ga4_channel}, the channel of the buyer's very first session "
                        f"(first-user channel); closedloop under {row.channel}, the first click")))
        else:
            why = (ledger.reason if ledger is not None and ledger.reason else
                   "GA4 is not enabled" if ledger is None else ledger.status)
            differences.append(Difference("ga4", deal.crm, deal.deal_id, "won", f"not sent to GA4: {why}"))

    google_rows, failures = _google_received(session, readback)
    stages: dict[tuple[str, str], StageLine] = {}
    conversions = [c for c in session.exec(select(AdConversion)).all()
                   if c.occurred_at is None or low <= c.occurred_at < high]
    dead = {(d.job, d.crm, d.record_id, d.object): d.code for d in session.exec(
        select(DeadLetter).where(DeadLetter.job.in_(("google_ads", "meta")))).all()}
    for conversion in conversions:
        stage = stages.setdefault((conversion.destination, conversion.stage),
                                  StageLine(conversion.destination, conversion.stage))
        stage.reached += 1
        if conversion.status == "sent":
            stage.sent += 1
            if conversion.stage == "won" and conversion.sent_value is not None:
                row = line(conversion.channel)
                if conversion.destination == "google_ads":
                    row.google_won += 1
                    row.google_value += Decimal(conversion.sent_value)
                else:
                    row.meta_won += 1
                    row.meta_value += Decimal(conversion.sent_value)
        else:
            reason = conversion.reason or conversion.status
            stage.not_sent[reason] = stage.not_sent.get(reason, 0) + 1
        why = _why(conversion, dead, google_rows)
        if why:
            differences.append(Difference(conversion.destination, conversion.crm, conversion.record_id,
                                          conversion.stage, why))
    if readback.google_requests is not None:
        recorded = _google_recorded(readback.google_requests)
        for (destination, stage_name), stage in stages.items():
            action = (stage_actions or {}).get(stage_name)
            if destination == "google_ads" and action:
                stage.received = recorded.get(action, 0)
    if readback.ga4_by_channel is not None:
        for channel, revenue in readback.ga4_by_channel.items():
            line(channel).ga4_received = revenue
        for row in channels.values():
            if row.ga4_received is None:
                row.ga4_received = Decimal(0)
        if any(row.ga4_received != row.ga4_sent for row in channels.values()):
            notes.append("GA4 files revenue under the channel of a buyer's very first session (first-user channel), "
                         "closedloop under the first click: the rows above say which deals moved")
    if "meta" in {s.destination for s in stages.values()}:
        notes.append("Meta cannot be read back (the Conversions API has no read endpoint): its columns are what "
                     "closedloop sent; Meta cannot restate or retract a conversion")
    return ReconcileReport(start, end, sorted(channels.values(), key=lambda c: c.channel),
                           sorted(stages.values(), key=lambda s: (s.destination, s.stage)),
                           sorted(differences, key=lambda d: (d.destination, d.crm, d.record_id, d.stage)),
                           dict(failures), notes)


def conversion_counts(session: Session, since: datetime | None = None,
                      until: datetime | None = None) -> list[dict[str, Any]]:
    """Per platform and stage: conversions sent, queued, and not sent by reason ("no match key",
    "no consent", "too old", dead-lettered, waiting), for ``closedloop report``."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for row in session.exec(select(AdConversion)).all():
        if (since and row.occurred_at and row.occurred_at < since) or (until and row.occurred_at
                                                                       and row.occurred_at >= until):
            continue
        label = row.status if row.status in ("sent", "queued", "waiting") else (row.reason or row.status)
        counts[(row.destination, row.stage)][label.replace("_", " ")] += 1
    return [{"destination": destination, "stage": stage, **dict(counter)}
            for (destination, stage), counter in sorted(counts.items())]


def won_on(deal: DealRecord) -> datetime:
    """When a deal was won, as closedloop dates its conversions: its close date unless that is still to
    come (a Salesforce CloseDate is often the planned one), else when closedloop saw it won."""
    return min(deal.closed_at, deal.updated_at) if deal.closed_at else deal.updated_at


def _why(conversion: AdConversion, dead: dict, google_rows: dict[str, str]) -> str:
    """Why the platform does not hold exactly what the CRM says ("" when it does)."""
    platform = "Google Ads" if conversion.destination == "google_ads" else "Meta"
    if conversion.status == "sent":
        if conversion.reason == "not_retracted":
            return f"{REASONS['not_retracted']} ({platform} holds {conversion.sent_value or 'the conversion'})"
        if conversion.value is not None and conversion.sent_value is not None and conversion.value != conversion.sent_value:
            return (f"{platform} holds {conversion.sent_value}, the CRM now says {conversion.value}: Meta has no "
                    "restatement" if conversion.destination == "meta" else
                    f"{platform} holds {conversion.sent_value}, the CRM now says {conversion.value}: restatement queued")
        return google_rows.get(conversion.key, "")
    if conversion.status == "queued":
        return "queued, not sent yet (waiting for the click to be 6 hours old, or the platform was unreachable)"
    if conversion.status == "dead":
        code = dead.get((conversion.destination, conversion.crm, conversion.record_id, conversion.stage), "")
        return f"dead-lettered ({code or conversion.reason}): see `closedloop dead-letters list`"
    return REASONS.get(conversion.reason or "", conversion.reason or conversion.status)


def _google_received(session: Session, readback) -> tuple[dict[str, str], Counter]:
    """Transaction id → the failure Google reported for its request, and failures by reason."""
    failures: Counter = Counter()
    per_transaction: dict[str, str] = {}
    if not readback.google_requests:
        return per_transaction, failures
    troubled = {}
    for request_id, statuses in readback.google_requests.items():
        errors = Counter()
        for status in statuses:
            errors.update(status.get("errors") or {})
        if errors:
            failures.update(errors)
            troubled[request_id] = errors
    if troubled:
        for event in session.exec(select(OutboxEvent).where(OutboxEvent.destination == "google_ads",
                                                            OutboxEvent.status == "sent")).all():
            errors = troubled.get(event.payload.get("request_id", ""))
            if errors:
                listed = ", ".join(f"{reason} ×{count}" for reason, count in sorted(errors.items()))
                per_transaction[event.payload["transaction_id"]] = (
                    f"sent, but Google reported failed rows in its request ({listed}); Google does not say which")
    return per_transaction, failures


def _google_recorded(requests: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    recorded: dict[str, int] = defaultdict(int)
    for statuses in requests.values():
        for status in statuses:
            failed = sum((status.get("errors") or {}).values())
            recorded[status["conversion_action_id"]] += max(int(status.get("record_count") or 0) - failed, 0)
    return recorded


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
