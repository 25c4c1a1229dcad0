"""Source and pipeline reports, computed from the state store alone (no API calls).

Rows are keyed by the first-click channel, source, campaign and keyword of the person behind
each visitor, lead and deal — the same journey computation that fills the CRM fields. Lead,
opportunity and won-deal *counts* follow first-click acquisition; *revenue* is shared among
each deal's touches by the chosen attribution model (:mod:`sync.journey.attribution`), so the revenue
column of every model adds up to the same total.

Leads are Salesforce Leads and HubSpot contacts (a Salesforce contact converted from a lead is
the same person, counted once, as its lead). Money is kept per currency; the report's
currency is the one most won revenue is in, and deals in other currencies are listed apart.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable

from sqlmodel import Session, select

from state.models import DealRecord, LeadSync, Spend, Touchpoint
from sync.capture.stitching import touchpoints_for
from sync.journey.attribution import MODELS, Touch, attribute, direct_touch, with_milestones
from sync.journey.compute import JourneySettings, compute_variables, sessionize
from sync.journey.hits import to_hit

LEAD_OBJECTS = {("salesforce", "Lead"), ("hubspot", "contacts")}
UNATTRIBUTED = ("Unattributed", "(none)", "", "")
CONVERSION_TYPES = ("form", "call", "chat", "other")


@dataclass
class SourceRow:
    channel: str
    source: str
    campaign: str
    term: str
    visitors: int = 0
    leads: Counter = field(default_factory=Counter)  # by conversion type
    opportunities: int = 0
    won: int = 0
    revenue: Decimal = Decimal(0)
    revenue_by_model: dict[str, Decimal] = field(default_factory=dict)
    spend: Decimal | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.channel, self.source, self.campaign, self.term)

    @property
    def lead_count(self) -> int:
        return sum(self.leads.values())

    def rates(self) -> dict[str, float | None]:
        def ratio(a, b):
            return round(a / b, 4) if b else None
        return {"visitor_to_lead": ratio(self.lead_count, self.visitors),
                "lead_to_opportunity": ratio(self.opportunities, self.lead_count),
                "opportunity_to_won": ratio(self.won, self.opportunities)}

    def roi(self) -> tuple[Decimal | None, Decimal | None]:
        """(ROI, ROAS) when spend is known."""
        if not self.spend:
            return None, None
        return ((self.revenue - self.spend) / self.spend).quantize(Decimal("0.01")), \
            (self.revenue / self.spend).quantize(Decimal("0.01"))


@dataclass
class SourceReport:
    model: str
    currency: str
    rows: list[SourceRow]
    other_currencies: dict[str, Decimal]
    by_channel_by_model: dict[str, dict[str, Decimal]]  # model → channel → revenue
    since: datetime | None = None
    until: datetime | None = None

    def totals(self) -> SourceRow:
        total = SourceRow("Total", "", "", "")
        for row in self.rows:
            total.visitors += row.visitors
            total.leads.update(row.leads)
            total.opportunities += row.opportunities
            total.won += row.won
            total.revenue += row.revenue
            if row.spend is not None:
                total.spend = (total.spend or Decimal(0)) + row.spend
        return total


@dataclass
class PipelineReport:
    currency: str
    stages: list[str]
    cells: dict[tuple[str, str], list]  # (channel, stage) → [count, value]
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class _Person:
    key: tuple[str, str, str, str]
    conversion_type: str
    touches: list[Touch]
    created_at: datetime


def _person(session: Session, sync: LeadSync | None, settings: JourneySettings, until: datetime) -> _Person | None:
    if sync is None:
        return None
    created = sync.record_created_at or sync.first_seen_at
    if not sync.visitor_ids:
        return _Person(UNATTRIBUTED, "other", [], created)
    hits = [to_hit(row) for row in touchpoints_for(session, set(sync.visitor_ids))]
    variables = compute_variables(hits, created + timedelta(minutes=2), settings)
    key = (variables["first_click_channel"] or "Direct", variables["first_click_source"] or "(direct)",
           variables["first_click_campaign"] or "", variables["first_click_term"] or "")
    touches = [Touch(at=s.start, channel=s.channel, source=s.traffic.source, medium=s.traffic.medium,
                     campaign=s.traffic.campaign, term=s.traffic.term)
               for s in sessionize([h for h in hits if h.occurred_at <= until], settings) if not s.is_direct]
    return _Person(key, variables["conversion_type"] or "other", touches, created)


def source_report(session: Session, settings: JourneySettings, *, model: str = "first_click",
                  half_life: timedelta = timedelta(days=7), since: datetime | None = None,
                  until: datetime | None = None) -> SourceReport:
    """Visitors, leads, opportunities, won deals and revenue by first-click channel/source/campaign/term."""
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r} (expected one of {', '.join(MODELS)})")
    until = until or datetime.now(timezone.utc)
    rows: dict[tuple, SourceRow] = {}

    def row(key: tuple[str, str, str, str]) -> SourceRow:
        return rows.setdefault(key, SourceRow(*key))

    for key in _visitor_acquisitions(session, settings, since, until):
        row(key).visitors += 1
    people: dict[tuple[str, str, str], _Person | None] = {}

    def person_of(crm: str, obj: str | None, record_id: str | None) -> _Person | None:
        if obj is None or record_id is None:
            return None
        if (crm, obj, record_id) not in people:
            people[(crm, obj, record_id)] = _person(session, session.get(LeadSync, (crm, obj, record_id)), settings,
                                                    until)
        return people[(crm, obj, record_id)]

    for sync in session.exec(select(LeadSync)).all():
        if (sync.crm, sync.object) not in LEAD_OBJECTS:
            continue
        created = sync.record_created_at or sync.first_seen_at
        if (since and created < since) or created > until:
            continue
        person = person_of(sync.crm, sync.object, sync.record_id)
        row(person.key).leads[person.conversion_type if person.conversion_type in CONVERSION_TYPES else "other"] += 1

    currencies = Counter()
    deals = [d for d in session.exec(select(DealRecord)).all()
             if not (since and d.created_at < since) and d.created_at <= until]
    for deal in deals:
        if deal.is_won and deal.amount:
            currencies[deal.currency] += Decimal(deal.amount)
    currency = currencies.most_common(1)[0][0] if currencies else ""
    by_model: dict[str, dict[str, Decimal]] = {m: defaultdict(Decimal) for m in MODELS}
    other: dict[str, Decimal] = defaultdict(Decimal)
    for deal in deals:
        person = person_of(deal.crm, deal.person_object, deal.person_id)
        key = person.key if person else UNATTRIBUTED
        row(key).opportunities += 1
        if not deal.is_won:
            continue
        row(key).won += 1
        amount = Decimal(deal.amount or 0)
        if deal.currency != currency:
            other[deal.currency] += amount
            continue
        closed = deal.closed_at or deal.updated_at
        touches = with_milestones(person.touches if person else [], person.created_at if person else None,
                                  deal.created_at) or []
        if not touches:
            touches = [direct_touch(closed) if person and person.key != UNATTRIBUTED
                       else Touch(at=closed, channel=UNATTRIBUTED[0], source=UNATTRIBUTED[1])]
        for name in MODELS:
            for credit in attribute(name, touches, amount, closed_at=closed, half_life=half_life):
                by_model[name][credit.touch.channel] += credit.amount
                if name == model:
                    touch = credit.touch
                    target = row(key) if name == "first_click" and person else \
                        row((touch.channel, touch.source or "(direct)", touch.campaign, touch.term))
                    target.revenue += credit.amount
    for spend in session.exec(select(Spend)).all():
        if since and spend.day < since.date().isoformat() or spend.day > until.date().isoformat():
            continue
        if spend.currency and currency and spend.currency != currency:
            continue
        for candidate in rows.values():
            if _spend_matches(spend, candidate):
                candidate.spend = (candidate.spend or Decimal(0)) + Decimal(spend.cost)
                break
        else:
            target = row((spend.channel or "Unassigned", spend.source or "(not set)", spend.campaign, ""))
            target.spend = (target.spend or Decimal(0)) + Decimal(spend.cost)
    # By channel (highest revenue first), then source, campaign and keyword within it.
    channel_revenue: dict[str, Decimal] = defaultdict(Decimal)
    channel_leads: Counter = Counter()
    for entry in rows.values():
        channel_revenue[entry.channel] += entry.revenue
        channel_leads[entry.channel] += entry.lead_count
    ordered = sorted(rows.values(), key=lambda r: (-channel_revenue[r.channel], -channel_leads[r.channel], r.channel,
                                                   -r.revenue, -r.lead_count, -r.visitors, r.key))
    return SourceReport(model, currency, ordered, dict(other),
                        {m: dict(sorted(v.items(), key=lambda kv: -kv[1])) for m, v in by_model.items()},
                        since, until)


def _spend_matches(spend: Spend, row: SourceRow) -> bool:
    return ((not spend.channel or spend.channel.lower() == row.channel.lower())
            and (not spend.source or spend.source.lower() == row.source.lower())
            and (not spend.campaign or spend.campaign.lower() == row.campaign.lower()))


def _visitor_acquisitions(session: Session, settings: JourneySettings, since, until) -> Iterable[tuple]:
    """Each device's first session: its channel, source, campaign and term."""
    query = select(Touchpoint).where(Touchpoint.kind == "pageview").order_by(Touchpoint.visitor_id,
                                                                              Touchpoint.occurred_at)
    current, hits = None, []
    for touchpoint in session.exec(query):
        if touchpoint.visitor_id != current:
            if hits:
                yield from _first_session(hits, settings, since, until)
            current, hits = touchpoint.visitor_id, []
        if len(hits) < 50:  # the first session is all that is needed
            hits.append(to_hit(touchpoint))
    if hits:
        yield from _first_session(hits, settings, since, until)


def _first_session(hits, settings, since, until):
    first = sessionize(hits, settings)[0]
    if (since and first.start < since) or first.start > until:
        return
    traffic = first.traffic
    yield (first.channel, traffic.source, traffic.campaign, traffic.term)


def pipeline_report(session: Session, settings: JourneySettings, *, since: datetime | None = None,
                    until: datetime | None = None) -> PipelineReport:
    """Deals created in the range: count and value at each CRM stage, by first-click channel."""
    until = until or datetime.now(timezone.utc)
    cells: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0)])
    stages: list[str] = []
    currencies = Counter()
    deals = [d for d in session.exec(select(DealRecord).order_by(DealRecord.created_at)).all()
             if not (since and d.created_at < since) and d.created_at <= until]
    for deal in deals:
        currencies[deal.currency] += 1
    currency = currencies.most_common(1)[0][0] if currencies else ""
    for deal in deals:
        sync = session.get(LeadSync, (deal.crm, deal.person_object, deal.person_id)) if deal.person_id else None
        person = _person(session, sync, settings, until)
        channel = person.key[0] if person else UNATTRIBUTED[0]
        stage = deal.stage or "(none)"
        if stage not in stages:
            stages.append(stage)
        cell = cells[(channel, stage)]
        cell[0] += 1
        if deal.currency == currency and deal.amount:
            cell[1] += Decimal(deal.amount)
    return PipelineReport(currency, stages, dict(cells), since, until)


# -- output -----------------------------------------------------------------------------------

COLUMNS = ["channel", "source", "campaign", "term", "visitors", "leads", "form", "call", "chat", "other",
           "opportunities", "won", "revenue", "visitor_to_lead", "lead_to_opportunity", "opportunity_to_won",
           "spend", "roi", "roas"]


def source_rows(report: SourceReport) -> list[dict[str, Any]]:
    out = []
    for row in report.rows + [report.totals()]:
        roi, roas = row.roi()
        out.append({"channel": row.channel, "source": row.source, "campaign": row.campaign, "term": row.term,
                    "visitors": row.visitors, "leads": row.lead_count,
                    **{kind: row.leads.get(kind, 0) for kind in CONVERSION_TYPES},
                    "opportunities": row.opportunities, "won": row.won, "revenue": str(row.revenue),
                    **row.rates(), "spend": None if row.spend is None else str(row.spend),
                    "roi": None if roi is None else str(roi), "roas": None if roas is None else str(roas)})
    return out


def to_csv(report: SourceReport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for entry in source_rows(report):
        writer.writerow({key: "" if value is None else value for key, value in entry.items()})
    return buffer.getvalue()


def to_json(report: SourceReport, pipeline: PipelineReport | None = None) -> str:
    data = {"model": report.model, "currency": report.currency, "rows": source_rows(report),
            "revenue_by_channel_by_model": {m: {c: str(v) for c, v in channels.items()}
                                            for m, channels in report.by_channel_by_model.items()},
            "other_currencies": {c: str(v) for c, v in report.other_currencies.items()}}
    if pipeline is not None:
        data["pipeline"] = {"currency": pipeline.currency, "stages": pipeline.stages,
                            "cells": [{"channel": c, "stage": s, "count": n, "value": str(v)}
                                      for (c, s), (n, v) in pipeline.cells.items()]}
    return json.dumps(data, indent=2)
