"""``closedloop demo``: the whole loop on this machine, with no credentials and no network.

It starts the sandbox (Salesforce, HubSpot, GA4, Google Ads, Meta), creates the mapped fields, sends a few weeks
of synthetic visits through the real collector, creates the leads those visitors became in
both CRMs, runs the daemon's jobs, moves deals through the pipeline to won and lost, runs the
jobs again, and shows what happened: leads enriched, a lead as a sales rep sees it, revenue in
GA4 by first-user channel next to the CRM's won revenue by first-click channel, and the conversions
each stage became in Google Ads and Meta. Everything it
made stays in the demo directory (config, state database, HTML report, ``summary.json``).
"""
from __future__ import annotations

import json
import random
import shutil
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import func, select

from adapters.errors import ConfigError
from state import Store
from state.models import LeadSync, QueuedChange, RevenueLedger
from sync.capture.app import create_app
from sync.capture.server import BackgroundServer
from sync.config import load_config
from sync.jobs import job_intervals, registry
from sync.daemon import start_triggers
from sync.jobs.base import JobRunner
from sync.jobs.enrich import EnrichJob
from sync.jobs.fields import missing_fields
from sync.journey.hits import journey_settings
from sync.journey.variables import VARIABLES
from sync.ops.connections import Connections
from sync.reports.build import pipeline_report, source_report
from sync.reports.html import render_html
from sync.reports.safe_text import cell, markup

SITE_ORIGIN = "https://www.example.com"
MARKER = ".made-by-closedloop-demo"  # in every folder the demo made: only those may be emptied


def run_demo(directory: Path, *, people: int = 400, seed: int = 7, console: Console | None = None) -> dict:
    """Run the demo in ``directory`` (emptied first); returns the summary it prints."""
    from sandbox.sales import create_leads, work_pipeline
    from sandbox.suite import SandboxSuite
    from sandbox.traffic import TrafficGenerator
    from sandbox.web import free_port

    console = console or Console()
    directory = directory.resolve()
    prepare_directory(directory)
    rng = random.Random(seed)
    progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=16), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=False)
    suite = SandboxSuite.start(directory / "sandbox")
    collector, triggers = None, []
    try:
        with progress:
            step = progress.add_task("Starting the sandbox and closedloop", total=3)
            collector_port, webhook_port = free_port(), free_port()
            config_path = directory / "closedloop.toml"
            config_path.write_text(suite.config(state_url="sqlite:///closedloop.db", collector_port=collector_port,
                                                site_origin=SITE_ORIGIN, config_dir=directory, replay_days=60,
                                                webhook_port=webhook_port))
            suite.set_webhook_target(f"http://127.0.0.1:{webhook_port}/hubspot/webhooks")
            config = load_config(config_path, environ=suite.environment())
            store = Store(config.database_url)
            store.migrate()
            connections = Connections(config)
            runner = JobRunner(config, store, connections=connections)
            progress.advance(step)
            created = 0
            for crm in connections.enabled_crms():
                adapter = connections.adapter(crm)
                created += len(adapter.ensure_fields(missing_fields(crm, connections.mapping(crm),
                                                                    adapter.describe_fields)))
            progress.advance(step)
            app = create_app(config, store, job_intervals=job_intervals(config))
            collector = BackgroundServer(app, "127.0.0.1", collector_port).start()
            triggers = start_triggers(config, store, connections, kick=lambda jobs: None)
            progress.advance(step)

            generator = TrafficGenerator(f"http://127.0.0.1:{collector_port}", suite.ga4.url,
                                         suite.ga4.measurement_id, seed=seed, people=people)
            plan = generator.plan()
            visits = progress.add_task("Visitors browsing (beacons → collector)", total=len(plan))
            beacons = generator.send(plan, progress=lambda: progress.advance(visits))
            app.state.writer.flush()
            _ads_served(suite, plan)

            converted = [person for person in plan if person.converted_at is not None]
            task = progress.add_task("Leads arriving in Salesforce and HubSpot", total=len(converted))
            leads = create_leads(suite, plan, progress=lambda: progress.advance(task))

            jobs = {job.name: job(config) for job in registry()}
            step = progress.add_task("Enriching the leads the CRMs announced", total=2)
            triggered = _await_triggers(store, {(lead.crm, lead.record_id) for lead in leads})
            runner.execute(EnrichJob(config, queued_only=True))  # no poll: only what the triggers queued
            progress.advance(step)
            runner.execute(jobs["enrich"])  # the safety-net poll finds nothing left to write
            progress.advance(step)

            task = progress.add_task("Sales qualifying leads, winning and losing deals", total=len(leads))
            # closedloop sees each qualification before its deal is worked: CRM stages are polled
            work_pipeline(suite, leads, rng, progress=lambda: progress.advance(task),
                          qualified=lambda: [runner.execute(jobs[name]) for name in ("lifecycle", "conversions")])

            step = progress.add_task("Closing the loop: GA4, Google Ads, Meta", total=4)
            _settle(store)  # the sales team's changes are announced too: let the triggers catch up
            for name in ("enrich", "revenue", "lifecycle", "conversions"):
                runner.execute(jobs[name])
                progress.advance(step)
        reconciled = _reconcile(config, store, connections)
        (directory / "reconcile.json").write_text(json.dumps(reconciled.as_json(), indent=2))
        settings = journey_settings(config)
        with store.session(readonly=True) as session:
            sources, pipeline_stages = source_report(session, settings), pipeline_report(session, settings)
        html = directory / "report.html"
        html.write_text(render_html(sources, pipeline_stages), encoding="utf-8")
        summary = _summarise(directory, config, store, suite, beacons, created)
        # The visitors the report counts (a person whose devices closedloop linked counts once),
        # so the summary and `closedloop report` agree.
        summary.update(visitors=sources.totals().visitors, people=len(plan),
                       devices=sum(len(person.devices) for person in plan))
        summary["html_report"] = str(html.resolve())
        summary["leads_announced_by_triggers"] = triggered
        (directory / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        _print(console, summary)
        from sync.reports.terminal import print_reconcile

        console.print("\n[bold]closedloop reconcile[/bold] (the CRMs, what closedloop sent, what GA4 and Google Ads "
                      "report; also in reconcile.json):")
        print_reconcile(console, reconciled, limit=6)
        summary["reconcile_differences"] = len(reconciled.differences)
        return summary
    finally:
        for trigger in reversed(triggers):
            trigger.stop()
        if collector is not None:
            collector.stop()
        suite.stop()


def _await_triggers(store: Store, records: set[tuple[str, str]], timeout: float = 30.0) -> int:
    """Wait until the CRMs' change events and webhooks have queued every new lead (or the
    timeout passes: the poll after it catches any stragglers); returns how many were queued."""
    deadline = time.monotonic() + timeout
    while True:
        with store.session(readonly=True) as session:
            queued = {(row.crm, row.record_id) for row in session.exec(
                select(QueuedChange).where(QueuedChange.job == "enrich")).all()}
        if records <= queued or time.monotonic() > deadline:
            return len(records & queued)
        time.sleep(0.1)


def _settle(store: Store, quiet: float = 1.0, timeout: float = 20.0) -> None:
    """Wait until no new change has been queued for ``quiet`` seconds (or ``timeout`` passed)."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        with store.session(readonly=True) as session:
            state = session.exec(select(func.count(), func.max(QueuedChange.queued_at)).select_from(QueuedChange)).one()
        if state != last:
            last, since = state, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)


def _reconcile(config, store, connections):
    """``closedloop reconcile`` for the demo's weeks, while the emulators can still be read back."""
    from datetime import datetime, timedelta, timezone

    from sync.jobs.readback import read_back
    from sync.reports.reconcile import reconcile

    today = datetime.now(timezone.utc).date()
    start = today - timedelta(days=60)
    readback = read_back(config, connections, store, start, today)
    actions = {stage: c.conversion_action_id for stage, c in config.settings.google_ads.conversions.items()}
    with store.session(readonly=True) as session:
        return reconcile(session, journey_settings(config), start, today, readback, stage_actions=actions,
                         ga4_delay_hours=config.settings.ga4.data_api.processing_delay_hours)


def _ads_served(suite, plan) -> None:
    """What the ad platforms know before any conversion arrives: the clicks they served (each paid
    visit's gclid or fbclid, at its time) and their users (the buyers' e-mail addresses)."""
    from urllib.parse import parse_qs

    for person in plan:
        for moment, _device, query, _referrer, _pages in person.visits:
            ids = {key: values[0] for key, values in parse_qs(query.lstrip("?")).items()}
            if ids.get("gclid"):
                suite.google_ads.record_click(at=moment, gclid=ids["gclid"], campaign=ids.get("utm_campaign", ""))
            if ids.get("fbclid"):
                suite.meta.record_click(ids["fbclid"], at=moment, campaign=ids.get("utm_campaign", ""))
        suite.google_ads.register_person(email=person.email, label=person.email)
        suite.meta.register_person(email=person.email, label=person.email)


def _ad_platforms(config, store, suite) -> dict:
    """Per stage: reached in the CRMs, received by Google Ads and by Meta, and why the rest was not sent."""
    from state.models import AdConversion

    actions = {c.conversion_action_id: stage for stage, c in config.settings.google_ads.conversions.items()}
    events = {c.event_name: stage for stage, c in config.settings.meta.conversions.items()}
    stages: dict = {}

    def entry(stage):
        return stages.setdefault(stage, {"reached": 0, "google_ads": 0, "meta": 0, "google_ads_value": "0",
                                         "meta_value": "0", "not_sent": {"google_ads": {}, "meta": {}}})

    with store.session(readonly=True) as session:
        rows = session.exec(select(AdConversion)).all()
    for row in rows:
        if row.destination == "google_ads":
            entry(row.stage)["reached"] += 1
        if row.status != "sent":
            reasons = entry(row.stage)["not_sent"][row.destination]
            reason = row.reason or row.status
            reasons[reason] = reasons.get(reason, 0) + 1
    for conversion in suite.google_ads.conversions():
        item = entry(actions.get(conversion["conversion_action_id"], conversion["conversion_action_id"]))
        item["google_ads"] += 1
        item["google_ads_value"] = str(Decimal(item["google_ads_value"]) +
                                       Decimal(str(conversion.get("conversion_value") or 0)))
    for event in suite.meta.events(counted_only=True):
        item = entry(events.get(event["event_name"], event["event_name"]))
        item["meta"] += 1
        item["meta_value"] = str(Decimal(item["meta_value"]) +
                                 Decimal(str((event.get("custom_data") or {}).get("value") or 0)))
    return stages


def prepare_directory(directory: Path) -> None:
    """Make ``directory`` an empty demo folder. A folder the demo made before (it holds the
    marker) is emptied; an empty one is used; anything else is refused, never deleted."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"demo --dir {directory}: a file of that name exists; choose another --dir")
    if directory.is_dir() and any(directory.iterdir()):
        if not (directory / MARKER).is_file():
            raise ConfigError(f"demo --dir {directory}: the folder is not empty and was not made by `closedloop "
                              "demo`, which would empty it; choose a new or empty folder")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("Made by `closedloop demo`, which empties this folder when it runs again.\n")


def _summarise(directory, config, store, suite, beacons, created_fields) -> dict:
    with store.session(readonly=True) as session:
        enriched = {crm: session.exec(select(func.count()).select_from(LeadSync).where(
            LeadSync.crm == crm, LeadSync.object == obj, LeadSync.status == "enriched")).one()
            for crm, obj in (("salesforce", "Lead"), ("hubspot", "contacts"))}
        ledgers = {(row.crm, row.deal_id): row.client_id for row in session.exec(select(RevenueLedger)).all()}
        written = sum(len(sync.written) for sync in session.exec(select(LeadSync)).all())
        no_journey = session.exec(select(func.count()).select_from(LeadSync).where(
            LeadSync.status.in_(["pending_visitor", "no_web_journey"]))).one()
    ga4_by_channel = {k: str(v) for k, v in suite.ga4.report("firstUserDefaultChannelGroup").items() if v}
    ga4_by_source = {k: str(v) for k, v in suite.ga4.report("firstUserSource").items() if v}
    crm_by_channel, crm_by_source, won = defaultdict(Decimal), defaultdict(Decimal), []
    for row in suite.salesforce.query("SELECT Id, Amount, ContactId FROM Opportunity WHERE IsWon = true"):
        contact = suite.salesforce.record(row["ContactId"]) or {}
        won.append({"crm": "salesforce", "id": row["Id"], "amount": str(row["Amount"]),
                    "first_click_channel": contact.get("CL_First_Click_Channel__c"),
                    "first_click_source": contact.get("CL_First_Click_Source__c")})
    for deal_id, record in suite.hubspot.store.records["deals"].items():
        if record.properties.get("hs_is_closed_won") == "true":
            contacts = sorted(suite.hubspot.store.associations.get(deal_id, set()))
            contact = suite.hubspot.record("contacts", contacts[0]) if contacts else {}
            won.append({"crm": "hubspot", "id": deal_id, "amount": record.properties.get("amount"),
                        "first_click_channel": contact.get("cl_first_click_channel"),
                        "first_click_source": contact.get("cl_first_click_source")})
    first_visit_direct = 0
    for deal in won:
        crm_by_channel[deal["first_click_channel"] or "(no web journey)"] += Decimal(deal["amount"])
        user = suite.ga4.users.get(ledgers.get((deal["crm"], deal["id"])) or "")
        if user is not None and user.channel == "Direct" and deal["first_click_channel"] not in (None, "Direct"):
            first_visit_direct += 1
        crm_by_source[deal["first_click_source"] or "(no web journey)"] += Decimal(deal["amount"])
    sample_id = next((sync.record_id for sync in _enriched_leads(store, "salesforce")), None)
    sample = suite.salesforce.record(sample_id) if sample_id else {}
    events = suite.ga4.event_log()
    return {
        "directory": str(directory.resolve()), "config": str(directory / "closedloop.toml"),
        "beacons_accepted": beacons, "fields_created": created_fields,
        "leads_enriched": enriched, "fields_written": written, "leads_without_web_journey": no_journey,
        "won_deals": won, "crm_won_revenue": str(sum((Decimal(d["amount"]) for d in won), Decimal(0))),
        "crm_won_revenue_by_first_click_channel": {k: str(v) for k, v in sorted(crm_by_channel.items())},
        "crm_won_revenue_by_first_click_source": {k: str(v) for k, v in sorted(crm_by_source.items())},
        "ga4_revenue_by_first_user_channel": ga4_by_channel, "ga4_revenue_by_first_user_source": ga4_by_source,
        "ga4_revenue": str(sum((Decimal(v) for v in ga4_by_channel.values()), Decimal(0))),
        "ga4_purchases": sum(1 for e in events if e["name"] == "purchase"),
        "won_deals_whose_first_visit_was_direct": first_visit_direct,
        "ga4_lead_events": sum(1 for e in events if e["name"].endswith("_lead")),
        "ad_platforms": _ad_platforms(config, store, suite),
        "sample_lead": {"id": sample_id, **{k: v for k, v in (sample or {}).items()
                                             if k.startswith("CL_") or k in ("FirstName", "LastName", "Company",
                                                                             "Email", "LeadSource")}},
    }


def _enriched_leads(store, crm):
    with store.session(readonly=True) as session:
        return session.exec(select(LeadSync).where(LeadSync.crm == crm, LeadSync.object == "Lead",
                                                   LeadSync.status == "enriched")
                            .order_by(LeadSync.record_id)).all()


def _print(console: Console, summary: dict) -> None:
    console.print()
    enriched = summary["leads_enriched"]
    console.print(f"[bold]{summary['people']}[/bold] simulated buyers browsed on {summary['devices']} devices and "
                  f"sent [bold]{summary['beacons_accepted']}[/bold] beacons; closedloop counts "
                  f"[bold]{summary['visitors']}[/bold] visitors (a buyer whose devices it could link counts once), "
                  f"as `closedloop report` does. [bold]{enriched['salesforce']}[/bold] Salesforce leads and "
                  f"[bold]{enriched['hubspot']}[/bold] HubSpot contacts were enriched "
                  f"([bold]{summary['fields_written']}[/bold] field values written); "
                  f"{summary['leads_without_web_journey']} had no web journey.")
    console.print(f"{summary['leads_announced_by_triggers']} of the new leads were announced by the CRMs "
                  "themselves (Salesforce change events, HubSpot webhooks) and enriched before any poll.")
    sample = summary["sample_lead"]
    if sample.get("id"):
        from mappings.model import load_mapping
        from sync.journey.variables import catalogue
        from sync.ops.connections import DEFAULT_MAPPINGS

        mapping = load_mapping(DEFAULT_MAPPINGS / "salesforce.toml", catalogue())
        labels = {m.field: VARIABLES[m.variable].label for m in mapping.objects["Lead"].fields}
        table = Table(title=cell(f"A Salesforce lead as a sales rep sees it ({sample['id']})"), title_justify="left")
        table.add_column("field")
        table.add_column("value", overflow="fold")
        for key in ("FirstName", "LastName", "Company", "Email", "LeadSource"):
            table.add_row(key, cell(sample.get(key, "")))
        for field in ("CL_First_Click_Channel__c", "CL_First_Click_Source__c", "CL_First_Click_Campaign__c",
                      "CL_First_Click_Term__c", "CL_First_Click_Landing_Page__c", "CL_Last_Click_Channel__c",
                      "CL_Conversion_Type__c", "CL_Visit_Count__c", "CL_Days_To_Convert__c", "CL_Channel_Path__c",
                      "CL_First_Click_Device__c"):
            if field in sample:
                table.add_row(labels.get(field, field), cell(sample[field]))
        console.print(table)
    table = Table(title="Won revenue by channel: GA4 (first-user channel) vs the CRMs (first-click channel)",
                  title_justify="left")
    table.add_column("channel")
    table.add_column("GA4", justify="right")
    table.add_column("CRM", justify="right")
    table.add_column("", justify="center")
    ga4, crm = summary["ga4_revenue_by_first_user_channel"], summary["crm_won_revenue_by_first_click_channel"]
    for channel in sorted(set(ga4) | set(crm)):
        left, right = Decimal(ga4.get(channel, "0")), Decimal(crm.get(channel, "0"))
        table.add_row(cell(channel), f"{left:,.2f}", f"{right:,.2f}", "✓" if left == right else "≠")
    table.add_row("[bold]total[/bold]", f"[bold]{Decimal(summary['ga4_revenue']):,.2f}[/bold]",
                  f"[bold]{Decimal(summary['crm_won_revenue']):,.2f}[/bold]", "")
    console.print(table)
    if summary["won_deals_whose_first_visit_was_direct"]:
        console.print(f"≠ {summary['won_deals_whose_first_visit_was_direct']} won deal(s) came from buyers whose very "
                      "first visit was direct: GA4 files such a user under Direct for good (first-user channel), "
                      "while closedloop credits the first campaign, search or referral that brought them "
                      "(first click). Every other dollar lines up.")
    console.print(f"GA4 received {summary['ga4_purchases']} purchases and {summary['ga4_lead_events']} lead events.")
    table = Table(title="Conversions per stage: reached in the CRMs, received by Google Ads and Meta",
                  title_justify="left")
    for column in ("stage", "CRM", "Google", "value", "Meta", "value", "not sent (why)"):
        table.add_column(column, justify="left" if column in ("stage", "not sent (why)") else "right")
    for stage, item in sorted(summary["ad_platforms"].items()):
        why = "; ".join(f"{ {'google_ads': 'Google', 'meta': 'Meta'}[platform]}: " + ", ".join(
            f"{reason.replace('_', ' ')} {count}" for reason, count in sorted(reasons.items()))
            for platform, reasons in item["not_sent"].items() if reasons)
        table.add_row(stage, str(item["reached"]), str(item["google_ads"]), f"{Decimal(item['google_ads_value']):,.2f}",
                      str(item["meta"]), f"{Decimal(item['meta_value']):,.2f}", why or "–")
    console.print(table)

    console.print(f"\nHTML report: [bold]{markup(summary['html_report'])}[/bold]")
    console.print(f"Explore further: closedloop report --config {markup(summary['config'])}   "
                  f"(and status, explain EMAIL or RECORD_ID, dead-letters list)")
