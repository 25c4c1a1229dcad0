"""``closedloop demo``: the whole loop on this machine, with no credentials and no network.

It starts the sandbox (Salesforce, HubSpot, GA4), creates the mapped fields, sends a few weeks
of synthetic visits through the real collector, creates the leads those visitors became in
both CRMs, runs the daemon's jobs, moves deals through the pipeline to won and lost, runs the
jobs again, and shows what happened: leads enriched, a lead as a sales rep sees it, revenue in
GA4 by first-user channel next to the CRM's won revenue by first-click channel. Everything it
made stays in the demo directory (config, state database, HTML report, ``summary.json``).
"""
from __future__ import annotations

import json
import random
import shutil
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import func, select

from state import Store
from state.models import LeadSync, RevenueLedger
from sync.capture.app import create_app
from sync.capture.server import BackgroundServer
from sync.config import load_config
from sync.jobs import job_intervals, registry
from sync.jobs.base import JobRunner
from sync.jobs.fields import missing_fields
from sync.journey.hits import journey_settings
from sync.journey.variables import VARIABLES
from sync.ops.connections import Connections
from sync.reports.build import pipeline_report, source_report
from sync.reports.html import render_html

SITE_ORIGIN = "https://www.example.com"
AMOUNTS = [4800, 7200, 12000, 18500, 24000, 36000, 9600, 15000]


def run_demo(directory: Path, *, people: int = 400, seed: int = 7, console: Console | None = None) -> dict:
    """Run the demo in ``directory`` (emptied first); returns the summary it prints."""
    from sandbox.suite import SandboxSuite
    from sandbox.traffic import TrafficGenerator
    from sandbox.web import free_port

    console = console or Console()
    directory = directory.resolve()  # the config it writes names files by absolute path
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    rng = random.Random(seed)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=False)
    suite = SandboxSuite.start(directory / "sandbox")
    collector = None
    try:
        with progress:
            step = progress.add_task("Starting the sandbox and closedloop", total=3)
            collector_port = free_port()
            config_path = directory / "closedloop.toml"
            config_path.write_text(suite.config(state_url=f"sqlite:///{directory / 'closedloop.db'}",
                                                collector_port=collector_port, site_origin=SITE_ORIGIN,
                                                replay_days=60))
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
            progress.advance(step)

            generator = TrafficGenerator(f"http://127.0.0.1:{collector_port}", suite.ga4.url,
                                         suite.ga4.measurement_id, seed=seed, people=people)
            plan = generator.plan()
            visits = progress.add_task("Visitors browsing the site (beacons → collector)", total=len(plan))
            beacons = generator.send(plan, progress=lambda: progress.advance(visits))
            app.state.writer.flush()

            converted = [person for person in plan if person.converted_at is not None]
            leads = progress.add_task("Leads arriving in Salesforce and HubSpot", total=len(converted))
            sf_leads, hs_contacts = [], []
            for person in converted:
                name = f"Buyer{person.number:04d}"
                company = person.email.split("@")[1].split("-")[0].title()
                if person.number % 2 == 0:  # web-to-lead into Salesforce, hidden fields filled by t.js
                    values = {"FirstName": "Pat", "LastName": name, "Company": company, "Email": person.email,
                              "LeadSource": "Web" if person.conversion_type == "form" else "Phone Inquiry"}
                    if person.conversion_type == "form":
                        values["CL_Visitor_Id__c"] = person.converting_device.visitor_id
                    sf_leads.append((person, suite.salesforce.create("Lead", values, created_at=person.converted_at)))
                else:
                    properties = {"email": person.email, "firstname": "Sam", "lastname": name, "company": company}
                    if person.conversion_type == "form":
                        properties["cl_visitor_id"] = person.converting_device.visitor_id
                    hs_contacts.append((person, suite.hubspot.create("contacts", properties,
                                                                     created_at=person.converted_at)))
                progress.advance(leads)

            jobs = {job.name: job(config) for job in registry()}
            step = progress.add_task("closedloop enriching the new leads", total=1)
            runner.execute(jobs["enrich"])
            progress.advance(step)

            pipeline = progress.add_task("Sales working the pipeline (deals won and lost)",
                                         total=len(sf_leads) + len(hs_contacts))
            for person, lead in sf_leads:
                roll = rng.random()
                if roll < 0.25:
                    suite.salesforce.update("Lead", lead, {"Status": "Working - Contacted"})
                elif roll < 0.35:
                    suite.salesforce.update("Lead", lead, {"Status": "Unqualified"})
                elif roll < 0.95:
                    ids = suite.salesforce.convert_lead(lead, opportunity={
                        "Amount": rng.choice(AMOUNTS), "StageName": "Qualification",
                        "CloseDate": (person.converted_at + timedelta(days=30)).date().isoformat()})
                    outcome = rng.random()
                    if outcome < 0.5:
                        suite.salesforce.update("Opportunity", ids["opportunityId"], {"StageName": "Closed Won"})
                    elif outcome < 0.7:
                        suite.salesforce.update("Opportunity", ids["opportunityId"], {"StageName": "Closed Lost"})
                    else:
                        suite.salesforce.update("Opportunity", ids["opportunityId"],
                                                {"StageName": rng.choice(["Proposal/Price Quote",
                                                                          "Negotiation/Review"])})
                progress.advance(pipeline)
            for person, contact in hs_contacts:
                roll = rng.random()
                if roll < 0.2:
                    suite.hubspot.update("contacts", contact, {"hs_lead_status": "IN_PROGRESS"})
                elif roll < 0.3:
                    suite.hubspot.update("contacts", contact, {"hs_lead_status": "UNQUALIFIED"})
                elif roll < 0.9:
                    suite.hubspot.update("contacts", contact, {"lifecyclestage": "salesqualifiedlead"})
                    deal = suite.hubspot.create("deals", {"dealname": f"{person.email.split('@')[1]} deal",
                                                          "amount": str(rng.choice(AMOUNTS))})
                    suite.hubspot.associate(deal, contact)
                    outcome = rng.random()
                    stage = "closedwon" if outcome < 0.5 else "closedlost" if outcome < 0.7 else \
                        rng.choice(["presentationscheduled", "contractsent"])
                    suite.hubspot.update("deals", deal, {"dealstage": stage})
                    if stage == "closedwon":
                        suite.hubspot.update("contacts", contact, {"lifecyclestage": "customer"})
                progress.advance(pipeline)

            step = progress.add_task("closedloop closing the loop (enrich, revenue, lifecycle → GA4)", total=3)
            for name in ("enrich", "revenue", "lifecycle"):
                runner.execute(jobs[name])
                progress.advance(step)
        summary = _summarise(directory, config, store, suite, connections, beacons, len(plan), created)
        html = directory / "report.html"
        settings = journey_settings(config)
        with store.session(readonly=True) as session:
            html.write_text(render_html(source_report(session, settings), pipeline_report(session, settings)),
                            encoding="utf-8")
        summary["html_report"] = str(html.resolve())
        (directory / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        _print(console, summary)
        return summary
    finally:
        if collector is not None:
            collector.stop()
        suite.stop()


def _summarise(directory, config, store, suite, connections, beacons, visitors, created_fields) -> dict:
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
        "visitors": visitors, "beacons_accepted": beacons, "fields_created": created_fields,
        "leads_enriched": enriched, "fields_written": written, "leads_without_web_journey": no_journey,
        "won_deals": won, "crm_won_revenue": str(sum((Decimal(d["amount"]) for d in won), Decimal(0))),
        "crm_won_revenue_by_first_click_channel": {k: str(v) for k, v in sorted(crm_by_channel.items())},
        "crm_won_revenue_by_first_click_source": {k: str(v) for k, v in sorted(crm_by_source.items())},
        "ga4_revenue_by_first_user_channel": ga4_by_channel, "ga4_revenue_by_first_user_source": ga4_by_source,
        "ga4_revenue": str(sum((Decimal(v) for v in ga4_by_channel.values()), Decimal(0))),
        "ga4_purchases": sum(1 for e in events if e["name"] == "purchase"),
        "won_deals_whose_first_visit_was_direct": first_visit_direct,
        "ga4_lead_events": sum(1 for e in events if e["name"].endswith("_lead")),
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
    console.print(f"[bold]{summary['visitors']}[/bold] visitors sent [bold]{summary['beacons_accepted']}[/bold] "
                  f"beacons; [bold]{enriched['salesforce']}[/bold] Salesforce leads and "
                  f"[bold]{enriched['hubspot']}[/bold] HubSpot contacts were enriched "
                  f"([bold]{summary['fields_written']}[/bold] field values written); "
                  f"{summary['leads_without_web_journey']} had no web journey.")
    sample = summary["sample_lead"]
    if sample.get("id"):
        from mappings.model import load_mapping
        from sync.journey.variables import catalogue
        from sync.ops.connections import DEFAULT_MAPPINGS

        mapping = load_mapping(DEFAULT_MAPPINGS / "salesforce.toml", catalogue())
        labels = {m.field: VARIABLES[m.variable].label for m in mapping.objects["Lead"].fields}
        table = Table(title=f"A Salesforce lead as a sales rep sees it ({sample['id']})", title_justify="left")
        table.add_column("field")
        table.add_column("value", overflow="fold")
        for key in ("FirstName", "LastName", "Company", "Email", "LeadSource"):
            table.add_row(key, str(sample.get(key, "")))
        for field in ("CL_First_Click_Channel__c", "CL_First_Click_Source__c", "CL_First_Click_Campaign__c",
                      "CL_First_Click_Term__c", "CL_First_Click_Landing_Page__c", "CL_Last_Click_Channel__c",
                      "CL_Conversion_Type__c", "CL_Visit_Count__c", "CL_Days_To_Convert__c", "CL_Channel_Path__c",
                      "CL_First_Click_Device__c"):
            if field in sample:
                table.add_row(labels.get(field, field), str(sample[field]))
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
        table.add_row(channel, f"{left:,.2f}", f"{right:,.2f}", "✓" if left == right else "≠")
    table.add_row("[bold]total[/bold]", f"[bold]{Decimal(summary['ga4_revenue']):,.2f}[/bold]",
                  f"[bold]{Decimal(summary['crm_won_revenue']):,.2f}[/bold]", "")
    console.print(table)
    if summary["won_deals_whose_first_visit_was_direct"]:
        console.print(f"≠ {summary['won_deals_whose_first_visit_was_direct']} won deal(s) came from buyers whose very "
                      "first visit was direct: GA4 files such a user under Direct for good (first-user channel), "
                      "while closedloop credits the first campaign, search or referral that brought them "
                      "(first click). Every other dollar lines up.")
    console.print(f"GA4 received {summary['ga4_purchases']} purchases and {summary['ga4_lead_events']} lead events.")
    console.print(f"\nHTML report: [bold]{summary['html_report']}[/bold]")
    console.print(f"Explore further: closedloop report --config {summary['config']}   "
                  f"(and status, explain VISITOR_ID, dead-letters list)")
