"""Dead letters: a person retries or drops them from the CLI, and GA4 events whose delivery is
uncertain are dead-lettered instead of risking a double count."""
from __future__ import annotations

from dataclasses import replace

from click.testing import CliRunner
from sqlmodel import select
from test_enrich import journey
from test_revenue import won_salesforce_deal

from state.models import DeadLetter, OutboxEvent
from support import run_coroutine
from sync.cli import main


def cli(world, *args):
    result = CliRunner().invoke(main, [*args, "--config", str(world.config_path)], env=world.environ)
    assert result.exit_code == 0, result.output
    return result.output


def letters(world):
    with world.store.session(readonly=True) as session:
        return session.exec(select(DeadLetter).order_by(DeadLetter.id)).all()


def test_a_record_that_failed_validation_is_rewritten_after_retry(world):
    journey(world, "visitor2001", "fix@x.example")
    lead = world.salesforce.create("Lead", {"LastName": "Fix", "Company": "X", "Email": "fix@x.example"})
    world.salesforce.inject("validation", record_ids=[lead], method="PATCH", message="Region is required")
    world.run("enrich")
    [dead] = letters(world)
    listed = cli(world, "dead-letters", "list")
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in listed and "Region is required" in listed and lead in listed
    assert "queued 1 dead letter(s) again" in cli(world, "dead-letters", "retry", str(dead.id))
    assert [letter.status for letter in letters(world)] == ["retry"]
    world.run("enrich")
    assert world.salesforce.record(lead)["CL_First_Click_Source__c"] == "google"
    [dead] = letters(world)
    assert dead.status == "retried" and dead.resolved_at is not None
    assert "no dead letters open" in cli(world, "dead-letters", "list")
    assert "retried" in cli(world, "dead-letters", "list", "--all")


def test_drop_closes_without_retrying_and_ids_must_be_open(world):
    journey(world, "visitor2002", "drop@x.example")
    lead = world.salesforce.create("Lead", {"LastName": "Drop", "Company": "X", "Email": "drop@x.example"})
    world.salesforce.inject("validation", record_ids=[lead], method="PATCH")
    world.run("enrich")
    [dead] = letters(world)
    output = cli(world, "dead-letters", "drop", str(dead.id), "999")
    assert "dropped 1 dead letter(s)" in output and "not open, so left alone: 999" in output
    result = CliRunner().invoke(main, ["dead-letters", "retry", "--config", str(world.config_path)],
                                env=world.environ)
    assert result.exit_code == 2 and "give dead-letter ids" in result.output


def test_a_refund_whose_connection_dropped_is_dead_lettered_not_resent(world):
    ids = won_salesforce_deal(world, 40, 800, "https://www.example.com/?utm_source=google&utm_medium=cpc")
    world.run("revenue")
    world.salesforce.update("Opportunity", ids["opportunityId"], {"StageName": "Closed Lost"})
    world.ga4.fail_next(1, "drop")  # the request reaches GA4's front door, no answer comes back
    world.run("revenue")
    assert [e["name"] for e in world.ga4.event_log()] == ["purchase"]
    [dead] = letters(world)
    assert dead.code == "GA4_DELIVERY_UNCERTAIN" and "closedloop dead-letters retry" in dead.message
    world.run("revenue")  # not resent on a guess
    assert [e["name"] for e in world.ga4.event_log()] == ["purchase"]
    world.salesforce.update("Opportunity", ids["opportunityId"], {"StageName": "Closed Won", "Amount": 950})
    world.run("revenue")  # the new purchase waits: GA4 may still count the first one
    assert [e["name"] for e in world.ga4.event_log()] == ["purchase"]
    cli(world, "dead-letters", "retry", "--all", "--job", "ga4")  # a person checked GA4: it is missing
    world.run("revenue")
    assert [(e["name"], e["params"]["value"]) for e in world.ga4.event_log()] == [
        ("purchase", 800), ("refund", 800), ("purchase", 950)]
    assert world.ga4.report("firstUserSource") == {"google": 950}


def test_a_purchase_whose_connection_dropped_is_simply_resent(world):
    won_salesforce_deal(world, 41, 900, "https://www.example.com/?utm_source=google&utm_medium=cpc")
    world.ga4.fail_next(1, "drop")
    world.run("revenue")  # GA4 de-duplicates purchases by transaction_id: resending is safe
    assert world.ga4.report("firstUserSource") == {"google": 900}
    assert letters(world) == []


def test_events_left_in_flight_by_a_killed_drain_are_settled_safely(world):
    ids = won_salesforce_deal(world, 42, 700, "https://www.example.com/?utm_source=google&utm_medium=cpc")
    world.run("revenue")
    world.salesforce.update("Opportunity", ids["opportunityId"], {"StageName": "Closed Lost"})
    won_salesforce_deal(world, 43, 300, "https://www.example.com/?utm_source=google&utm_medium=cpc")
    sender = world.connections.ga4()
    sender.policy = replace(sender.policy, sleep=lambda seconds: None)  # retries without waiting
    world.ga4.fail_next(sender.policy.attempts, 503)  # every retry fails: the drain stops, both queued
    assert world.run("revenue", expect="paused").result.remotes["ga4"].status == "paused"
    world.runner.remotes.resume("ga4")  # as when its pause is over and GA4 answers the probe
    with world.store.session() as session:  # as if killed after claiming them, before GA4 answered
        for event in session.exec(select(OutboxEvent).where(OutboxEvent.status == "pending")).all():
            event.status = "sending"
            session.add(event)
    world.run("revenue")
    names = [e["name"] for e in world.ga4.event_log()]
    assert names == ["purchase", "purchase"]  # the second deal's purchase went; the refund did not
    [dead] = letters(world)
    assert dead.code == "GA4_DELIVERY_UNCERTAIN" and "stopped while" in dead.message
    with world.store.session(readonly=True) as session:
        statuses = sorted(e.status for e in session.exec(select(OutboxEvent)).all())
    assert statuses == ["sent", "sent", "uncertain"]


def test_a_beacon_the_database_refused_is_listed_and_dropped_not_retried(world):
    """The collector's dead letters say what was refused and why; they cannot be queued again."""
    from datetime import datetime, timezone

    from sync.capture.beacon import Hit
    from sync.capture.writer import BeaconWriter

    refused = Hit("refused001", None, datetime.now(timezone.utc), "https://www.example.com/\x00", "", {}, {}, None,
                  None, None, None, "UA", None, None, None)
    writer = BeaconWriter(world.store).start()
    assert not run_coroutine(writer.store_hits([refused], timeout=30)).stored
    writer.stop()
    [dead] = letters(world)
    assert (dead.job, dead.object, dead.record_id, dead.code) == ("collector", "touchpoint", "refused001",
                                                                   "STORE_REFUSED")
    assert dead.payload["beacon"]["url"] == ascii("https://www.example.com/\x00")  # stored as its escape
    listed = cli(world, "dead-letters", "list", "--job", "collector")
    assert "STORE_REFUSED" in listed and "the database refused this beacon" in listed
    output = cli(world, "dead-letters", "retry", "--all")
    assert f"cannot be queued again (drop them once read): {dead.id}" in output
    assert [letter.status for letter in letters(world)] == ["open"]
    assert "dropped 1 dead letter(s)" in cli(world, "dead-letters", "drop", str(dead.id))
