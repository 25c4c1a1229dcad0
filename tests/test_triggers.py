"""Enrichment triggered by the CRMs themselves, against the emulators over real gRPC and real HTTP.

Salesforce: the daemon's change event streams (``CdcListener``) subscribe to the emulator's
Pub/Sub endpoint; HubSpot: the emulator posts signed webhook batches to the daemon's receiver.
Each test checks the emulator's own request log to tell a triggered read by id from a poll.
"""
from __future__ import annotations

import base64
import threading
import time
from datetime import datetime, timezone

import pytest
from sqlmodel import select

from state.models import Cursor, QueuedChange, TriggerStream
from support import World
from sync.jobs.enrich import EnrichJob
from sync.jobs.triggers import mark_polled, poll_due, triggers_healthy
from test_enrich import journey

LEAD_TOPIC, OPPORTUNITY_TOPIC = "/data/LeadChangeEvent", "/data/OpportunityChangeEvent"
TOPICS = [LEAD_TOPIC, "/data/ContactChangeEvent", OPPORTUNITY_TOPIC]


def until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Kicks:
    """What the daemon's kick hook hears, with an event per kick."""

    def __init__(self) -> None:
        self.jobs: list[set[str]] = []
        self.event = threading.Event()

    def __call__(self, jobs: set[str]) -> None:
        self.jobs.append(set(jobs))
        self.event.set()


def reconfigure(world: World, old: str, new: str, append: str = "") -> World:
    """Edit the world's config text (``old`` → ``new``, plus ``append``) and rebuild what reads it."""
    from state import Store
    from sync.config import load_config
    from sync.jobs.base import JobRunner
    from sync.ops.connections import Connections

    text = world.config_path.read_text()
    assert old in text
    world.config_path.write_text(text.replace(old, new, 1) + append)
    world.store.dispose()
    world.config = load_config(world.config_path, environ=world.environ)
    world.store = Store(world.config.database_url)
    world.connections = Connections(world.config)
    world.runner = JobRunner(world.config, world.store, connections=world.connections)
    return world


def cdc_world(tmp_path, **suite_options) -> World:
    world = World(tmp_path, salesforce={"cdc_entities": ["Lead", "Contact", "Opportunity"], **suite_options})
    return reconfigure(world, "[salesforce]\nenabled = true\n", "[salesforce]\nenabled = true\nchange_events = true\n"
                       f'pubsub_endpoint = "{world.salesforce.pubsub_endpoint}"\n')


@pytest.fixture
def sf(tmp_path):
    world = cdc_world(tmp_path)
    world.create_fields()
    yield world
    world.close()


def listener(world, kicks, **options):
    from sync.jobs.cdc import CdcListener

    return CdcListener(world.config, world.store, world.connections, kicks, backoff_cap=0.2, **options).start()



def stream(world, topic=LEAD_TOPIC) -> TriggerStream | None:
    with world.store.session(readonly=True) as session:
        return session.get(TriggerStream, ("salesforce", topic))


def connected(world, topic=LEAD_TOPIC) -> bool:
    """The daemon says connected and the emulator has the subscription open (a change made
    before the server opened a tip subscription is the poll's to find, not the stream's)."""
    row = stream(world, topic)
    return row is not None and row.state == "connected" and any(
        open_stream["topic"] == topic for open_stream in world.salesforce.pubsub_settings()["streams"])


def queued(world, job="enrich") -> dict[str, QueuedChange]:
    with world.store.session(readonly=True) as session:
        return {row.record_id: row for row in session.exec(select(QueuedChange).where(
            QueuedChange.crm == "salesforce", QueuedChange.job == job)).all()}


def polls(world, object_name: str = "Lead") -> list[str]:
    """The SOQL polls (reads by SystemModstamp) of ``object_name`` in the emulator's log."""
    return [entry["query"].get("q", "") for entry in world.salesforce.request_log()
            if entry["kind"] == "rest" and "/query" in entry["path"] and "SystemModstamp >=" in
            entry["query"].get("q", "") and f" FROM {object_name} " in entry["query"].get("q", "")]


def triggered_run(world):
    outcome = world.runner.execute(EnrichJob(world.config, queued_only=True))
    assert outcome.outcome == "ok", outcome.error
    return outcome


def test_a_salesforce_lead_is_enriched_from_its_change_event_without_a_poll(sf):
    kicks = Kicks()
    streams = listener(sf, kicks)
    try:
        until(lambda: all(connected(sf, topic) for topic in TOPICS), what="both streams connected")
        journey(sf, "visitor0101", "pat@acme.example")
        sf.salesforce.reset_log()
        lead = sf.salesforce.create("Lead", {"LastName": "Pat", "Company": "Acme", "Email": "pat@acme.example",
                                             "CL_Visitor_Id__c": "visitor0101"})
        assert kicks.event.wait(15) and kicks.jobs[0] == {"enrich"}
        assert set(queued(sf)) == {lead}
        triggered_run(sf)
        record = sf.salesforce.record(lead)
        assert record["CL_First_Click_Channel__c"] == "Paid Search" and record["CL_Visit_Count__c"] == 3
        assert polls(sf) == [], "the lead was found by a poll, not by its change event"
        # the create event carried the lead's fields: no read, one write
        assert [e["query"].get("q") for e in sf.salesforce.request_log() if "/query" in e["path"]] == []
        assert sf.salesforce.api_calls("composite/sobjects") == 1
        assert queued(sf) == {}

        # closedloop's own write comes back as a change event naming client=closedloop: dropped
        until(lambda: stream(sf).events >= 2, what="the event of closedloop's own write")
        events = [e for e in sf.salesforce.change_events() if lead in e["recordIds"]]
        assert [e["changeOrigin"].endswith(";client=closedloop") for e in events] == [False, True]
        assert queued(sf) == {}
        calls = sf.salesforce.api_calls()
        triggered_run(sf)
        assert sf.salesforce.api_calls() == calls, "an own write triggered a second enrichment"
    finally:
        streams.stop()


def test_a_restarted_daemon_resumes_after_its_stored_replay_id(sf):
    kicks = Kicks()
    first = listener(sf, kicks)
    until(lambda: connected(sf), what="connected")
    before = sf.salesforce.create("Lead", {"LastName": "Before", "Company": "A"})
    until(lambda: before in queued(sf), what="the first lead queued")
    first.stop()
    position = stream(sf).position
    during = [sf.salesforce.create("Lead", {"LastName": f"During{n}", "Company": "B"}) for n in range(3)]
    triggered_run(sf)  # the first lead is processed and leaves the queue
    assert queued(sf) == {}
    second = listener(sf, Kicks())
    try:
        until(lambda: set(during) <= set(queued(sf)), what="the leads created while stopped")
        rows = queued(sf)
        assert before not in rows, "a change recorded before the restart was delivered again"
        assert all(rows[lead].version == 1 for lead in during)
        assert stream(sf).events == 4 and stream(sf).position != position
    finally:
        second.stop()


def test_an_expired_replay_id_resubscribes_at_the_tip_and_polls_the_gap(sf):
    now = datetime.now(timezone.utc)
    mark_polled(sf.store, "salesforce", "enrich", now)
    with sf.store.session() as session:
        session.add(TriggerStream(crm="salesforce", channel=LEAD_TOPIC, state="down",
                                  position=base64.b64encode(b"not-a-replay-id").decode(), updated_at=now))
    kicks = Kicks()
    streams = listener(sf, kicks)
    try:
        assert kicks.event.wait(15) and {"enrich"} in kicks.jobs, "the lost replay id asked for no catch-up"
        until(lambda: connected(sf) and stream(sf).position is None, what="resubscribed at the tip")
        with sf.store.session(readonly=True) as session:
            assert session.get(Cursor, ("salesforce", "enrich:polled")) is None  # the next run polls the gap
        after = sf.salesforce.create("Lead", {"LastName": "After", "Company": "C"})
        until(lambda: after in queued(sf), what="a lead after the resubscription")
    finally:
        streams.stop()


def test_stream_loss_falls_back_to_polling_and_recovers(sf):
    kicks = Kicks()
    streams = listener(sf, kicks)
    channels = TOPICS
    try:
        until(lambda: all(connected(sf, topic) for topic in TOPICS), what="connected")
        sf.run("enrich")  # the regular first poll
        earlier = sf.salesforce.create("Lead", {"LastName": "Earlier", "Company": "Acme"})
        until(lambda: earlier in queued(sf), what="a position stored before the outage")
        now = datetime.now(timezone.utc)
        assert triggers_healthy(sf.store, "salesforce", channels, now)
        assert not poll_due(sf.store, sf.config, "salesforce", "enrich", channels, now)

        sf.salesforce.set_pubsub_unavailable(True)
        sf.salesforce.break_pubsub_streams()
        until(lambda: stream(sf).state == "down", what="the stream reported down")
        assert poll_due(sf.store, sf.config, "salesforce", "enrich", channels, datetime.now(timezone.utc))
        journey(sf, "visitor0102", "lost@acme.example")
        lost = sf.salesforce.create("Lead", {"LastName": "Lost", "Company": "Acme", "CL_Visitor_Id__c": "visitor0102"})
        sf.salesforce.reset_log()
        sf.run("enrich")  # no trigger: the scheduled run polls
        assert polls(sf), "a run without a healthy trigger did not poll"
        assert sf.salesforce.record(lost)["CL_First_Click_Channel__c"] == "Paid Search"

        writes = sf.salesforce.api_calls("composite/sobjects")
        sf.salesforce.set_pubsub_unavailable(False)
        until(lambda: connected(sf), what="the stream back")
        # the stream resumes after its stored position, so the lead the poll handled comes again:
        # read, found up to date, not written twice
        until(lambda: lost in queued(sf), what="the outage's change event delivered on resumption")
        triggered_run(sf)
        assert sf.salesforce.api_calls("composite/sobjects") == writes
        until(lambda: triggers_healthy(sf.store, "salesforce", channels, datetime.now(timezone.utc)),
              what="healthy again")
        assert not poll_due(sf.store, sf.config, "salesforce", "enrich", channels, datetime.now(timezone.utc))
        journey(sf, "visitor0103", "back@acme.example")
        back = sf.salesforce.create("Lead", {"LastName": "Back", "Company": "Acme", "CL_Visitor_Id__c": "visitor0103"})
        until(lambda: back in queued(sf), what="the lead after recovery queued")
        sf.salesforce.reset_log()
        sf.run("enrich")  # healthy again: the scheduled run drains the queue and skips the poll
        assert polls(sf) == []
        assert sf.salesforce.record(back)["CL_First_Click_Channel__c"] == "Paid Search"
    finally:
        streams.stop()


def test_an_expired_session_is_renewed_and_the_stream_goes_on(sf):
    kicks = Kicks()
    streams = listener(sf, kicks)
    try:
        until(lambda: connected(sf), what="connected")
        logins = sf.salesforce.api_calls()
        sf.salesforce.expire_sessions()
        until(lambda: any(e["kind"] == "oauth" for e in sf.salesforce.request_log()[-5:]) or
              sf.salesforce.api_calls() > logins, timeout=20, what="a new login")
        until(lambda: connected(sf), what="connected again")
        lead = sf.salesforce.create("Lead", {"LastName": "Renewed", "Company": "D"})
        until(lambda: lead in queued(sf), what="a lead after the new session")
    finally:
        streams.stop()


def closedloop(world, *args):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "sync.cli", *args, "--config", str(world.config_path)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **world.environ, "COLUMNS": "200"})


def test_check_tells_whether_change_data_capture_is_enabled(sf):
    ok = closedloop(sf, "check")
    assert ok.returncode == 0, ok.stderr
    assert "salesforce: change events: /data/LeadChangeEvent, /data/ContactChangeEvent, /data/OpportunityChangeEvent reachable" in ok.stdout
    sf.salesforce.disable_cdc("Opportunity")
    missing = closedloop(sf, "check")
    assert missing.returncode == 2
    assert "Change Data Capture is not enabled for Opportunity: in Setup → Change Data Capture, move Opportunity " \
           "to Selected Entities" in missing.stderr
    assert "for Lead" not in missing.stderr


def test_status_shows_each_stream_its_position_and_lag(sf):
    kicks = Kicks()
    streams = listener(sf, kicks)
    try:
        until(lambda: connected(sf), what="connected")
        lead = sf.salesforce.create("Lead", {"LastName": "Status", "Company": "E"})
        until(lambda: lead in queued(sf), what="queued")
        status = closedloop(sf, "status")
        assert status.returncode == 0, status.stderr
        line = next(line for line in status.stdout.splitlines() if LEAD_TOPIC in line)
        assert "connected" in line and "s ago" in line and base64.b64decode(stream(sf).position).hex()[:16] in line
        assert line.rstrip().rstrip("│").rstrip().endswith("1")  # one id queued
        assert OPPORTUNITY_TOPIC in status.stdout and "hubspot: none, polled every 60 s" in status.stdout
    finally:
        streams.stop()
    stopped = closedloop(sf, "status")  # nothing refreshes the rows any more; they go stale after a while
    assert LEAD_TOPIC in stopped.stdout


# -- HubSpot webhooks ------------------------------------------------------------------------------


SUBSCRIPTIONS = [{"subscriptionType": "contact.creation"},
                 {"subscriptionType": "contact.propertyChange", "propertyName": "email"},
                 {"subscriptionType": "contact.propertyChange", "propertyName": "cl_visitor_id"},
                 {"subscriptionType": "deal.propertyChange", "propertyName": "dealstage"},
                 {"subscriptionType": "deal.propertyChange", "propertyName": "amount"}]


def webhook_world(tmp_path, app_id: bool = False) -> World:
    from support import free_port

    world = World(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hubspot/webhooks"
    world.environ["CLOSEDLOOP_HUBSPOT_CLIENT_SECRET"] = world.hubspot.credentials["webhook_client_secret"]
    reconfigure(world, "[hubspot]\nenabled = true\n",
                f'[hubspot]\nenabled = true\nwebhooks = true\nwebhook_url = "{url}"\n'
                + (f'app_id = "{world.hubspot.credentials["webhook_app_id"]}"\n' if app_id else ""),
                f"\n[webhooks]\nport = {port}\n")
    world.webhook_url, world.webhook_port = url, port
    return world


class Receiver:
    """The daemon's webhook receiver, served as the daemon serves it."""

    def __init__(self, world, kicks) -> None:
        from sync.capture.server import BackgroundServer
        from sync.jobs.webhooks import Heartbeat, create_webhook_app

        app = create_webhook_app(world.config, world.store, world.connections.mapping("hubspot"), kicks)
        self.server = BackgroundServer(app, "127.0.0.1", world.webhook_port).start()
        self.heartbeat = Heartbeat(world.store).start()

    def stop(self) -> None:
        self.heartbeat.stop()
        self.server.stop()


@pytest.fixture
def hs(tmp_path):
    world = webhook_world(tmp_path)
    world.create_fields()
    world.hubspot.configure_webhooks(target_url=world.webhook_url, subscriptions=SUBSCRIPTIONS)
    yield world
    world.close()


def hs_queued(world, job="enrich") -> dict[str, QueuedChange]:
    with world.store.session(readonly=True) as session:
        return {row.record_id: row for row in session.exec(select(QueuedChange).where(
            QueuedChange.crm == "hubspot", QueuedChange.job == job)).all()}


def hs_stream(world) -> TriggerStream | None:
    with world.store.session(readonly=True) as session:
        return session.get(TriggerStream, ("hubspot", "webhooks"))


def searches(world) -> int:
    """HubSpot contact searches (the enrich poll's reads)."""
    return world.hubspot.api_calls("/contacts/search")


def test_a_hubspot_contact_is_enriched_from_its_webhook_without_a_poll(hs):
    kicks = Kicks()
    receiver = Receiver(hs, kicks)
    try:
        journey(hs, "visitor0201", "sam@beta.example")
        hs.hubspot.reset_log()
        contact = hs.hubspot.create("contacts", {"email": "sam@beta.example", "firstname": "Sam",
                                                 "cl_visitor_id": "visitor0201"})
        assert kicks.event.wait(15) and kicks.jobs[0] == {"enrich"}
        assert set(hs_queued(hs)) == {contact}
        outcome = hs.runner.execute(EnrichJob(hs.config, queued_only=True))
        assert outcome.outcome == "ok", outcome.error
        record = hs.hubspot.record("contacts", contact)
        assert record["cl_first_click_source"] == "google" and record["cl_visit_count"] == "3"
        assert searches(hs) == 0, "the contact was found by a search poll, not by its webhook"
        assert hs_queued(hs) == {} and hs_stream(hs).state == "listening" and hs_stream(hs).events >= 1
        assert all(d["status"] == 204 for d in hs.hubspot.webhook_deliveries())
    finally:
        receiver.stop()


def test_closedloops_own_property_writes_come_back_and_are_not_enriched_again(hs):
    kicks = Kicks()
    receiver = Receiver(hs, kicks)
    try:
        journey(hs, "visitor0202", "kim@gamma.example")
        contact = hs.hubspot.create("contacts", {"email": "kim@gamma.example"})  # matched by email, not visitor id
        assert kicks.event.wait(15)
        until(lambda: hs_stream(hs).events == 2, what="contact.creation and its email propertyChange")
        hs.runner.execute(EnrichJob(hs.config, queued_only=True))
        assert hs.hubspot.record("contacts", contact)["cl_visitor_id"] == "visitor0202"  # written by closedloop
        until(lambda: hs_stream(hs).events == 3, what="the webhook of closedloop's own cl_visitor_id write")
        assert hs_queued(hs) == {}, "closedloop's own write was queued for enrichment again"
        calls = hs.hubspot.api_calls()
        hs.runner.execute(EnrichJob(hs.config, queued_only=True))
        assert hs.hubspot.api_calls() == calls
    finally:
        receiver.stop()


def test_a_forged_or_stale_webhook_is_refused_with_401_and_stores_nothing(hs):
    import json as json_module

    import requests

    from test_webhook_signatures import documented_signature, ms

    receiver = Receiver(hs, Kicks())
    try:
        body = json_module.dumps([{"subscriptionType": "contact.creation", "objectId": 42, "occurredAt": 1}]).encode()
        now = datetime.now(timezone.utc)
        secret = hs.hubspot.credentials["webhook_client_secret"]
        fresh, stale = ms(now), ms(now.replace(microsecond=0) - __import__("datetime").timedelta(minutes=6))
        cases = {
            "forged": {"X-HubSpot-Signature-v3": documented_signature("POST", hs.webhook_url, body, fresh,
                                                                      secret="not-the-secret"),
                       "X-HubSpot-Request-Timestamp": fresh},
            "stale": {"X-HubSpot-Signature-v3": documented_signature("POST", hs.webhook_url, body, stale, secret),
                      "X-HubSpot-Request-Timestamp": stale},
            "unsigned": {},
        }
        for name, headers in cases.items():
            answer = requests.post(hs.webhook_url, data=body, headers={"Content-Type": "application/json", **headers},
                                   timeout=10)
            assert answer.status_code == 401, name
            assert answer.json() == {"error": "signature verification failed"}
        assert hs_queued(hs) == {} and hs_stream(hs).last_event_at is None and hs_stream(hs).events == 0
        good = requests.post(hs.webhook_url, data=body, timeout=10, headers={
            "Content-Type": "application/json", "X-HubSpot-Request-Timestamp": fresh,
            "X-HubSpot-Signature-v3": documented_signature("POST", hs.webhook_url, body, fresh, secret)})
        assert good.status_code == 204 and set(hs_queued(hs)) == {"42"}
    finally:
        receiver.stop()


def test_a_deal_stage_webhook_updates_the_deal_mirror_at_once(hs):
    from state.models import DealRecord
    from sync.jobs.revenue import RevenueJob

    kicks = Kicks()
    receiver = Receiver(hs, kicks)
    try:
        contact = hs.hubspot.create("contacts", {"email": "deal@delta.example"})
        deal = hs.hubspot.create("deals", {"dealname": "Delta", "amount": "1200", "dealstage": "appointmentscheduled"})
        hs.hubspot.associate(deal, contact)
        kicks.event.clear()
        hs.hubspot.update("deals", deal, {"dealstage": "closedwon"})
        until(lambda: deal in hs_queued(hs, "revenue"), what="the deal queued for revenue")
        hs.hubspot.reset_log()
        outcome = hs.runner.execute(RevenueJob(hs.config, queued_only=True))
        assert outcome.outcome == "ok", outcome.error
        with hs.store.session(readonly=True) as session:
            mirrored = session.get(DealRecord, ("hubspot", deal))
        assert mirrored.stage == "closedwon" and mirrored.is_won and mirrored.amount == "1200"
        assert hs.hubspot.api_calls("/deals/search") == 0 and hs_queued(hs, "revenue") == {}
    finally:
        receiver.stop()


def test_with_the_app_id_configured_events_of_closedloops_own_writes_are_dropped(tmp_path):
    from sync.ops.metrics import REGISTRY

    world = webhook_world(tmp_path, app_id=True)
    try:
        world.create_fields()
        world.hubspot.configure_webhooks(target_url=world.webhook_url, subscriptions=SUBSCRIPTIONS)
        receiver = Receiver(world, Kicks())
        labels = {"crm": "hubspot", "channel": "webhooks", "outcome": "own_write"}
        before = REGISTRY.get_sample_value("closedloop_trigger_events_total", labels) or 0
        try:
            journey(world, "visitor0203", "lee@eps.example")
            contact = world.hubspot.create("contacts", {"email": "lee@eps.example"})
            until(lambda: contact in hs_queued(world), what="queued")
            world.runner.execute(EnrichJob(world.config, queued_only=True))
            until(lambda: (REGISTRY.get_sample_value("closedloop_trigger_events_total", labels) or 0) > before,
                  what="the own write's event counted as such")
            assert hs_queued(world) == {}
        finally:
            receiver.stop()
    finally:
        world.close()


def test_the_daemon_enriches_new_leads_in_both_crms_from_their_triggers(tmp_path):
    """The real daemon: change event streams, the webhook receiver and the kicked runs together."""
    from state.models import JobRun
    from sync.daemon import Daemon

    world = World(tmp_path, triggers=True)
    world.create_fields()
    daemon = Daemon(world.config, world.store)
    thread = threading.Thread(target=daemon.serve, daemon=True)
    thread.start()
    try:
        def first_runs_done():  # every job polls once at start; what comes after is the triggers' doing
            with world.store.session(readonly=True) as session:
                finished = set(session.exec(select(JobRun.job).where(JobRun.finished_at.is_not(None))).all())
            return {job.name for job in daemon.jobs} <= finished
        until(first_runs_done, timeout=60, what="the first scheduled run of every job")
        until(lambda: all(connected(world, topic) for topic in TOPICS), what="streams connected")
        journey(world, "visitor0301", "ann@one.example")
        journey(world, "visitor0302", "bo@two.example")
        world.salesforce.reset_log()
        world.hubspot.reset_log()
        lead = world.salesforce.create("Lead", {"LastName": "Ann", "Company": "One", "CL_Visitor_Id__c": "visitor0301"})
        contact = world.hubspot.create("contacts", {"email": "bo@two.example"})
        until(lambda: (world.salesforce.record(lead) or {}).get("CL_First_Click_Channel__c"), what="the lead enriched")
        until(lambda: (world.hubspot.record("contacts", contact) or {}).get("cl_first_click_channel"),
              what="the contact enriched")
        assert polls(world) == [] and searches(world) == 0, "a poll, not a trigger, found them"
        import requests

        port = world.config.settings.collector.port  # /healthz shares the collector's port by default
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        assert health["triggers"][f"salesforce {LEAD_TOPIC}"]["state"] == "connected"
        assert health["triggers"]["hubspot webhooks"]["state"] == "listening"
    finally:
        daemon.request_stop()
        thread.join(60)
        world.close()
    assert not thread.is_alive()


def test_a_paused_salesforce_keeps_its_streams_idle_and_loses_nothing(sf):
    """Per-remote isolation: while Salesforce is paused its streams stay closed and its queued ids
    wait; resumed, the streams pick up after their stored positions."""
    from sync.ops.remotes import Remotes

    kicks = Kicks()
    streams = listener(sf, kicks, held_recheck=0.2)
    remotes = Remotes(sf.store)
    try:
        until(lambda: connected(sf), what="connected")
        first = sf.salesforce.create("Lead", {"LastName": "Before", "Company": "P"})
        until(lambda: first in queued(sf), what="a position stored")
        remotes.pause("salesforce", "budget", "out of allowance (test)", seconds=600)
        second = sf.salesforce.create("Lead", {"LastName": "Second", "Company": "P"})  # delivered, then the hold
        until(lambda: stream(sf).state == "paused", what="the stream idle")
        assert not any(s["topic"] == LEAD_TOPIC for s in sf.salesforce.pubsub_settings()["streams"])
        during = sf.salesforce.create("Lead", {"LastName": "During", "Company": "P"})
        outcome = sf.runner.execute(EnrichJob(sf.config, queued_only=True))
        assert outcome.result.remotes["salesforce"].status == "skipped"  # the ids wait
        assert first in queued(sf) and during not in queued(sf)
        remotes.resume("salesforce")
        until(lambda: {second, during} <= set(queued(sf)), what="the paused stretch delivered on resumption")
    finally:
        streams.stop()
