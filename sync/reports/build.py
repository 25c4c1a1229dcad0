"""Source and pipeline reports, computed from the state store alone (no API calls).

Rows are keyed by the first-click channel, source, campaign and keyword of the person behind
each visitor, lead and deal — the same journey computation that fills the CRM fields. Lead,
opportunity and won-deal *counts* follow first-click acquisition; *revenue* is shared among
each deal's touches by the chosen attribution model (:mod:`sync.journey.attribution`), so the
revenue column of every model adds up to the same total.

**Who is a visitor.** A person as closedloop knows them: the devices enrichment matched to one
CRM record, or that identified with the same email, phone or GA client id, count once; a
device linked to nobody counts on its own. (An identity value shared by more devices than
stitching follows, :data:`sync.capture.stitching.MAX_VISITORS`, such as a kiosk, links
nothing.) A person's row is their first click: the one their first lead recorded, else their
first non-direct session, else Direct. The demo's summary prints this same count.

**Dates.** ``since``/``until`` select events, each by its own date: visitors by their first
visit, leads by the record's creation, opportunities by the deal's creation, won deals and
their revenue by the close date, spend by its day. Conversion rates follow those of the
period through the funnel — the share of the period's visitors who became leads, of its leads
whose person has an opportunity, of its opportunities that are won — so none exceeds 100%.

**Spend** is joined at the level the spend file gives it: a campaign's cost without keywords
goes to the campaign as a whole (a subtotal row when the campaign has several keyword rows),
to a keyword only when the file names one.

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
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable

from sqlmodel import Session, col, select

from state.models import DealRecord, DealStageRecord, Identity, LeadSync, Spend, Touchpoint
from sync.capture.stitching import CRM_RECORD, LINKING_KINDS, MAX_VISITORS, touchpoints_for
from sync.journey.attribution import MODELS, Touch, attribute, direct_touch, with_milestones
from sync.journey.compute import JourneySettings, compute_variables, sessionize
from sync.journey.hits import to_hit
from sync.reports.safe_text import spreadsheet_cell

LEAD_OBJECTS = {("salesforce", "Lead"), ("hubspot", "contacts")}
UNATTRIBUTED = ("Unattributed", "(none)", "", "")
DIRECT_KEY = ("Direct", "(direct)", "", "")
CONVERSION_TYPES = ("form", "call", "chat", "other")
CRM_NAMES = {"salesforce": "Salesforce", "hubspot": "HubSpot"}
HITS_PER_DEVICE = 500  # enough to find a device's first touch; its later hits cannot change it


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
    spend: Decimal | None = None
    # Cohort numerators for the rates (see the module docstring).
    visitors_converted: int = 0
    leads_with_opportunity: int = 0
    opportunities_won: int = 0
    is_subtotal: bool = False
    is_total: bool = False

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.channel, self.source, self.campaign, self.term)

    @property
    def lead_count(self) -> int:
        return sum(self.leads.values())

    @property
    def label_term(self) -> str:
        return "(all keywords)" if self.is_subtotal else self.term

    def rates(self) -> dict[str, float | None]:
        def ratio(a, b):
            return round(a / b, 4) if b else None
        return {"visitor_to_lead": ratio(self.visitors_converted, self.visitors),
                "lead_to_opportunity": ratio(self.leads_with_opportunity, self.lead_count),
                "opportunity_to_won": ratio(self.opportunities_won, self.opportunities)}

    def roi(self) -> tuple[Decimal | None, Decimal | None]:
        """(ROI, ROAS) when spend is known."""
        if not self.spend:
            return None, None
        return ((self.revenue - self.spend) / self.spend).quantize(Decimal("0.01")), \
            (self.revenue / self.spend).quantize(Decimal("0.01"))

    def add(self, other: "SourceRow") -> None:
        self.visitors += other.visitors
        self.leads.update(other.leads)
        self.opportunities += other.opportunities
        self.won += other.won
        self.revenue += other.revenue
        self.visitors_converted += other.visitors_converted
        self.leads_with_opportunity += other.leads_with_opportunity
        self.opportunities_won += other.opportunities_won


@dataclass
class SourceReport:
    model: str
    currency: str
    rows: list[SourceRow]  # detail rows, each campaign subtotal right after its rows
    other_currencies: dict[str, Decimal]
    by_channel_by_model: dict[str, dict[str, Decimal]]  # model → channel → revenue
    since: datetime | None = None
    until: datetime | None = None  # exclusive

    @property
    def until_day(self) -> date | None:
        return (self.until - timedelta(days=1)).date() if self.until else None

    def totals(self) -> SourceRow:
        total = SourceRow("Total", "", "", "", is_total=True)
        for row in self.rows:
            if row.is_subtotal:
                continue
            total.add(row)
            if row.spend is not None:
                total.spend = (total.spend or Decimal(0)) + row.spend
        for row in self.rows:  # campaign-level spend sits on subtotal rows
            if row.is_subtotal and row.spend is not None:
                total.spend = (total.spend or Decimal(0)) + row.spend
        return total

    def funnel(self) -> list[tuple[str, int]]:
        """The period's funnel, stage by stage (the HTML report's funnel chart)."""
        total = self.totals()
        return [("Visitors", total.visitors), ("Leads", total.lead_count), ("Opportunities", total.opportunities),
                ("Won deals", total.won)]


@dataclass(frozen=True)
class StageColumn:
    stage: str   # the value deals carry (Salesforce StageName, HubSpot stage id)
    label: str   # what the CRM's users see


@dataclass
class CrmPipeline:
    crm: str
    currency: str
    stages: list[StageColumn]  # the CRM's own order
    cells: dict[tuple[str, str], list]  # (channel, stage) → [count, value]

    @property
    def name(self) -> str:
        return CRM_NAMES.get(self.crm, self.crm)

    def stage_totals(self, stage: str) -> tuple[int, Decimal]:
        count, value = 0, Decimal(0)
        for (_channel, cell_stage), (n, amount) in self.cells.items():
            if cell_stage == stage:
                count, value = count + n, value + amount
        return count, value


@dataclass
class PipelineReport:
    crms: list[CrmPipeline]
    since: datetime | None = None
    until: datetime | None = None

    @property
    def until_day(self) -> date | None:
        return (self.until - timedelta(days=1)).date() if self.until else None


@dataclass
class _Person:
    key: tuple[str, str, str, str]
    conversion_type: str
    touches: list[Touch]
    created_at: datetime
    group: frozenset[str]  # the person's devices; empty when no web journey


def _person(session: Session, sync: LeadSync | None, settings: JourneySettings, until: datetime) -> _Person | None:
    if sync is None:
        return None
    created = sync.record_created_at or sync.first_seen_at
    if not sync.visitor_ids:
        return _Person(UNATTRIBUTED, "other", [], created, frozenset())
    hits = [to_hit(row) for row in touchpoints_for(session, set(sync.visitor_ids))]
    variables = compute_variables(hits, created + timedelta(minutes=2), settings)
    key = (variables["first_click_channel"] or "Direct", variables["first_click_source"] or "(direct)",
           variables["first_click_campaign"] or "", variables["first_click_term"] or "")
    touches = [Touch(at=s.start, channel=s.channel, source=s.traffic.source, medium=s.traffic.medium,
                     campaign=s.traffic.campaign, term=s.traffic.term)
               for s in sessionize([h for h in hits if h.occurred_at <= until], settings) if not s.is_direct]
    return _Person(key, variables["conversion_type"] or "other", touches, created, frozenset(sync.visitor_ids))


def _in(moment: datetime | None, since: datetime | None, until: datetime) -> bool:
    return moment is not None and (since is None or moment >= since) and moment < until


def source_report(session: Session, settings: JourneySettings, *, model: str = "first_click",
                  half_life: timedelta = timedelta(days=7), since: datetime | None = None,
                  until: datetime | None = None) -> SourceReport:
    """Visitors, leads, opportunities, won deals and revenue by first-click channel/source/campaign/term.
    ``until`` is exclusive (the CLI passes the day after ``--until``)."""
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r} (expected one of {', '.join(MODELS)})")
    asked_until, until = until, until or datetime.now(timezone.utc)
    rows: dict[tuple, SourceRow] = {}

    def row(key: tuple[str, str, str, str]) -> SourceRow:
        return rows.setdefault(key, SourceRow(*key))

    people: dict[tuple[str, str, str], _Person | None] = {}

    def person_of(crm: str, obj: str | None, record_id: str | None) -> _Person | None:
        if obj is None or record_id is None:
            return None
        if (crm, obj, record_id) not in people:
            people[(crm, obj, record_id)] = _person(session, session.get(LeadSync, (crm, obj, record_id)), settings,
                                                    until)
        return people[(crm, obj, record_id)]

    every_sync = session.exec(select(LeadSync)).all()
    syncs = [s for s in every_sync if (s.crm, s.object) in LEAD_OBJECTS]
    deals = session.exec(select(DealRecord)).all()
    groups = _visitor_groups(session, every_sync)

    def group_of(person: _Person | None) -> frozenset[str]:
        """The person's devices as the visitor count groups them (empty: no web journey)."""
        if person is None or not person.group:
            return frozenset()
        return groups.get(min(person.group), person.group)

    opportunity_groups = {group_of(person_of(deal.crm, deal.person_object, deal.person_id))
                          for deal in deals if _in(deal.created_at, None, until)} - {frozenset()}

    # Leads: created in the period, by their person's first click.
    first_leads: dict[frozenset[str], tuple[datetime, tuple]] = {}
    for sync in syncs:
        created = sync.record_created_at or sync.first_seen_at
        person = person_of(sync.crm, sync.object, sync.record_id)
        group = group_of(person)
        if group and created < until and (group not in first_leads or created < first_leads[group][0]):
            first_leads[group] = (created, person.key)
        if not _in(created, since, until):
            continue
        target = row(person.key)
        target.leads[person.conversion_type if person.conversion_type in CONVERSION_TYPES else "other"] += 1
        target.leads_with_opportunity += 1 if group in opportunity_groups else 0

    # Visitors: people whose first visit is in the period, under their first click.
    for group, first_visit, first_touch in _people(session, settings, groups, until):
        if not _in(first_visit, since, until):
            continue
        lead = first_leads.get(group)
        target = row(lead[1] if lead else first_touch)
        target.visitors += 1
        target.visitors_converted += 1 if lead else 0

    amounts: Counter = Counter()
    for deal in deals:
        if deal.is_won and deal.amount and _in(_closed(deal), since, until):
            amounts[deal.currency] += Decimal(deal.amount)
    currency = amounts.most_common(1)[0][0] if amounts else ""
    by_model: dict[str, dict[str, Decimal]] = {m: defaultdict(Decimal) for m in MODELS}
    other: dict[str, Decimal] = defaultdict(Decimal)
    for deal in deals:
        person = person_of(deal.crm, deal.person_object, deal.person_id)
        key = person.key if person else UNATTRIBUTED
        if _in(deal.created_at, since, until):
            row(key).opportunities += 1
            row(key).opportunities_won += 1 if deal.is_won else 0
        if not deal.is_won or not _in(_closed(deal), since, until):
            continue
        row(key).won += 1
        amount = Decimal(deal.amount or 0)
        if deal.currency != currency:
            other[deal.currency] += amount
            continue
        closed = _closed(deal)
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
    subtotals = _join_spend(session, rows, row, currency, since, until)
    return SourceReport(model, currency, _ordered(rows, subtotals), dict(other),
                        {m: dict(sorted(v.items(), key=lambda kv: -kv[1])) for m, v in by_model.items()},
                        since, asked_until)


def _closed(deal: DealRecord) -> datetime:
    """When a won deal counts as won: its close date, unless that lies after the moment
    closedloop saw the deal (a close date left in the future), as the revenue job does for GA4."""
    return min(deal.closed_at, deal.updated_at) if deal.closed_at else deal.updated_at


def _visitor_groups(session: Session, syncs: list[LeadSync]) -> dict[str, frozenset[str]]:
    """Device → the devices of the same person (see "Who is a visitor" in the module docstring)."""
    parent: dict[str, str] = {}

    def find(v: str) -> str:
        parent.setdefault(v, v)
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    def union(members: Iterable[str]) -> None:
        members = list(members)
        for other in members[1:]:
            parent[find(other)] = find(members[0])

    for sync in syncs:
        if sync.visitor_ids:
            union(sync.visitor_ids)
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    query = select(Identity.kind, Identity.value, Identity.visitor_id).where(
        col(Identity.kind).in_([*LINKING_KINDS, CRM_RECORD]))
    for kind, value, visitor in session.exec(query):
        owners[(kind, value)].add(visitor)
    for members in owners.values():
        if 1 < len(members) <= MAX_VISITORS:
            union(sorted(members))
    groups: dict[str, set[str]] = defaultdict(set)
    for visitor in list(parent):
        groups[find(visitor)].add(visitor)
    return {visitor: frozenset(groups[find(visitor)]) for visitor in parent}


def _people(session: Session, settings: JourneySettings, groups: dict[str, frozenset[str]],
            until: datetime) -> Iterable[tuple[frozenset[str], datetime, tuple]]:
    """(devices, first visit, first-click key) of every person with a page view before ``until``."""
    firsts: dict[frozenset[str], list] = {}
    for visitor, start, touch in _devices(session, settings, until):
        group = groups.get(visitor, frozenset([visitor]))
        known = firsts.setdefault(group, [start, touch])
        known[0] = min(known[0], start)
        if touch and (known[1] is None or touch[0] < known[1][0]):
            known[1] = touch
    for group, (start, touch) in firsts.items():
        yield group, start, touch[1] if touch else DIRECT_KEY


def _devices(session: Session, settings: JourneySettings, until: datetime) -> Iterable[tuple]:
    """Each device's first visit and first touch (start, key) before ``until``, from one pass
    over the page views in visitor order."""
    query = select(Touchpoint).where(Touchpoint.kind == "pageview", Touchpoint.occurred_at < until).order_by(
        Touchpoint.visitor_id, Touchpoint.occurred_at, Touchpoint.id)
    current, hits = None, []
    for touchpoint in session.exec(query):
        if touchpoint.visitor_id != current:
            if hits:
                yield _device_firsts(current, hits, settings)
            current, hits = touchpoint.visitor_id, []
        if len(hits) < HITS_PER_DEVICE:
            hits.append(to_hit(touchpoint))
    if hits:
        yield _device_firsts(current, hits, settings)


def _device_firsts(visitor: str, hits: list, settings: JourneySettings) -> tuple:
    sessions = sessionize(hits, settings)
    touch = next((s for s in sessions if not s.is_direct), None)
    return visitor, sessions[0].start, (touch.start, (touch.channel, touch.traffic.source, touch.traffic.campaign,
                                                      touch.traffic.term)) if touch else None


def _join_spend(session: Session, rows: dict[tuple, SourceRow], row, currency: str, since: datetime | None,
                until: datetime) -> dict[tuple, SourceRow]:
    """Add spend at the level the file gives it; returns the campaign (or wider) subtotal rows
    created for spend that covers several report rows, by the spend's own key."""
    costs: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    first, last = (since.date().isoformat() if since else ""), (until - timedelta(microseconds=1)).date().isoformat()
    for spend in session.exec(select(Spend)).all():
        if spend.day < first or spend.day > last:
            continue
        if spend.currency and currency and spend.currency != currency:
            continue
        costs[(spend.channel, spend.source, spend.campaign, spend.keyword)] += Decimal(spend.cost)
    subtotals: dict[tuple, SourceRow] = {}
    details = list(rows.values())
    for spend_key, cost in costs.items():
        matching = [r for r in details if _spend_matches(spend_key, r)]
        if len(matching) == 1:
            target = matching[0]
        elif not matching:
            channel, source, campaign, keyword = spend_key
            target = row((channel or "Unassigned", source or "(not set)", campaign, keyword))
        else:
            target = subtotals.get(spend_key)
            if target is None:
                channels, sources = {r.channel for r in matching}, {r.source for r in matching}
                target = SourceRow(spend_key[0] or (channels.pop() if len(channels) == 1 else "(several)"),
                                   spend_key[1] or (sources.pop() if len(sources) == 1 else "(several)"),
                                   spend_key[2], "", is_subtotal=True)
                for member in matching:
                    target.add(member)
                subtotals[spend_key] = target
        target.spend = (target.spend or Decimal(0)) + cost
    return subtotals


def _spend_matches(key: tuple[str, str, str, str], row: SourceRow) -> bool:
    return all(not wanted or wanted.lower() == have.lower()
               for wanted, have in zip(key, (row.channel, row.source, row.campaign, row.term)))


def _ordered(rows: dict[tuple, SourceRow], subtotals: dict[tuple, SourceRow]) -> list[SourceRow]:
    """By channel (highest revenue first), then source, campaign and keyword; each subtotal
    right after the last row it covers."""
    channel_revenue: dict[str, Decimal] = defaultdict(Decimal)
    channel_leads: Counter = Counter()
    for entry in rows.values():
        channel_revenue[entry.channel] += entry.revenue
        channel_leads[entry.channel] += entry.lead_count
    ordered = sorted(rows.values(), key=lambda r: (-channel_revenue[r.channel], -channel_leads[r.channel], r.channel,
                                                   r.source, r.campaign, -r.revenue, -r.lead_count, -r.visitors,
                                                   r.key))
    for spend_key, subtotal in subtotals.items():
        last = max(i for i, r in enumerate(ordered) if not r.is_subtotal and _spend_matches(spend_key, r))
        ordered.insert(last + 1, subtotal)
    return ordered


def pipeline_report(session: Session, settings: JourneySettings, *, since: datetime | None = None,
                    until: datetime | None = None) -> PipelineReport:
    """Deals created in the period: count and value at each stage, by first-click channel, per
    CRM, in the CRM's own stage order and with its labels (``deal_stages``)."""
    asked_until, until = until, until or datetime.now(timezone.utc)
    deals = [d for d in session.exec(select(DealRecord).order_by(DealRecord.created_at)).all()
             if _in(d.created_at, since, until)]
    known: dict[str, list[DealStageRecord]] = defaultdict(list)
    for stage in session.exec(select(DealStageRecord).order_by(DealStageRecord.crm, DealStageRecord.position)):
        known[stage.crm].append(stage)
    crms = []
    for crm in sorted({d.crm for d in deals}, key=lambda c: (c not in CRM_NAMES, c)):
        crm_deals = [d for d in deals if d.crm == crm]
        currency = Counter(d.currency for d in crm_deals).most_common(1)[0][0]
        pipelines = {stage.pipeline for stage in known[crm]}
        stages = [StageColumn(s.stage, f"{s.pipeline}: {s.label}" if len(pipelines) > 1 else s.label)
                  for s in known[crm]]
        listed = {s.stage for s in stages}
        stages += [StageColumn(stage, stage or "(none)")
                   for stage in dict.fromkeys(d.stage for d in crm_deals) if stage not in listed]
        cells: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0)])
        for deal in crm_deals:
            sync = session.get(LeadSync, (deal.crm, deal.person_object, deal.person_id)) if deal.person_id else None
            person = _person(session, sync, settings, until)
            cell = cells[(person.key[0] if person else UNATTRIBUTED[0], deal.stage)]
            cell[0] += 1
            if deal.currency == currency and deal.amount:
                cell[1] += Decimal(deal.amount)
        crms.append(CrmPipeline(crm, currency, stages, dict(cells)))
    return PipelineReport(crms, since, asked_until)


# -- output -----------------------------------------------------------------------------------

COLUMNS = ["row", "channel", "source", "campaign", "term", "visitors", "leads", "form", "call", "chat", "other",
           "opportunities", "won", "revenue", "visitor_to_lead", "lead_to_opportunity", "opportunity_to_won",
           "spend", "roi", "roas"]
TEXT_COLUMNS = ("channel", "source", "campaign", "term")


def source_rows(report: SourceReport) -> list[dict[str, Any]]:
    out = []
    for row in report.rows + [report.totals()]:
        roi, roas = row.roi()
        out.append({"row": "total" if row.is_total else "subtotal" if row.is_subtotal else "detail",
                    "channel": row.channel, "source": row.source, "campaign": row.campaign, "term": row.label_term,
                    "visitors": row.visitors, "leads": row.lead_count,
                    **{kind: row.leads.get(kind, 0) for kind in CONVERSION_TYPES},
                    "opportunities": row.opportunities, "won": row.won, "revenue": str(row.revenue),
                    **row.rates(), "spend": None if row.spend is None else str(row.spend),
                    "roi": None if roi is None else str(roi), "roas": None if roas is None else str(roas)})
    return out


def to_csv(report: SourceReport) -> str:
    """The source report as CSV; text cells a spreadsheet would run as formulas are defused
    (:func:`sync.reports.safe_text.spreadsheet_cell`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for entry in source_rows(report):
        writer.writerow({key: "" if value is None else spreadsheet_cell(value) if key in TEXT_COLUMNS else value
                         for key, value in entry.items()})
    return buffer.getvalue()


def to_json(report: SourceReport, pipeline: PipelineReport | None = None) -> str:
    data = {"model": report.model, "currency": report.currency,
            "since": report.since.date().isoformat() if report.since else None,
            "until": report.until_day.isoformat() if report.until_day else None,
            "rows": source_rows(report), "funnel": dict(report.funnel()),
            "revenue_by_channel_by_model": {m: {c: str(v) for c, v in channels.items()}
                                            for m, channels in report.by_channel_by_model.items()},
            "other_currencies": {c: str(v) for c, v in report.other_currencies.items()}}
    if pipeline is not None:
        data["pipeline"] = [{"crm": crm.crm, "currency": crm.currency,
                             "stages": [{"stage": s.stage, "label": s.label, "count": crm.stage_totals(s.stage)[0],
                                         "value": str(crm.stage_totals(s.stage)[1])} for s in crm.stages],
                             "cells": [{"channel": c, "stage": s, "count": n, "value": str(v)}
                                       for (c, s), (n, v) in crm.cells.items()]}
                            for crm in pipeline.crms]
    return json.dumps(data, indent=2)
