"""The trigger queue on SQLite and PostgreSQL: a record queued twice stays one row, its version
moves on and its create-event snapshot is dropped; a job removes only the version it read; the
stream's position and health live beside it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from state.models import Cursor, TriggerStream
from sync.config import load_config
from sync.jobs.triggers import (Change, done, mark_polled, poll_due, queue_changes, queue_depth, request_catch_up,
                                save_stream, triggers_healthy, waiting)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def test_a_record_queued_again_is_one_row_with_a_new_version(store):
    with store.session() as session:
        queue_changes(session, "salesforce", "cdc", [
            Change("enrich", "Lead", "00Q1", T0 + timedelta(seconds=5), {"Email": "a@x.io"}),
            Change("enrich", "Lead", "00Q2", T0, {"Email": "b@x.io"}),
            Change("revenue", "Opportunity", "0061", None)], T0)
    first = {row.record_id: row for row in waiting(store, "salesforce", "enrich")}
    assert first["00Q1"].version == 1 and first["00Q1"].snapshot == {"Email": "a@x.io"}
    with store.session() as session:
        queue_changes(session, "salesforce", "cdc", [Change("enrich", "Lead", "00Q1", T0, None)],
                      T0 + timedelta(seconds=9))
    again = {row.record_id: row for row in waiting(store, "salesforce", "enrich")}
    assert again["00Q1"].version == 2 and again["00Q1"].snapshot is None  # changed since: read it, don't trust the event
    assert again["00Q1"].occurred_at == T0  # the earliest waiting change, for the lag
    assert again["00Q2"].version == 1
    with store.session(readonly=True) as session:
        assert queue_depth(session) == {("salesforce", "enrich"): 2, ("salesforce", "revenue"): 1}

    with store.session() as session:
        done(session, first.values())  # processed version 1 of both: 00Q1 moved on and stays
    assert [(row.record_id, row.version) for row in waiting(store, "salesforce", "enrich")] == [("00Q1", 2)]
    with store.session() as session:
        done(session, waiting(store, "salesforce", "enrich"))
    assert waiting(store, "salesforce", "enrich") == []
    assert [row.record_id for row in waiting(store, "salesforce", "revenue")] == ["0061"]


def test_polls_are_due_unless_every_channel_is_healthy(store, write_config):
    config = load_config(write_config("[schedule]\nsafety_poll_seconds = 600\n"), environ={})
    channels = ["/data/LeadChangeEvent", "/data/OpportunityChangeEvent"]
    assert poll_due(store, config, "salesforce", "enrich", [], T0)  # no trigger: always
    with store.session() as session:
        for channel in channels:
            save_stream(session, "salesforce", channel, T0, state="connected")
    assert not triggers_healthy(store, "salesforce", channels, T0 + timedelta(minutes=6))  # nothing heard for 6 min
    assert triggers_healthy(store, "salesforce", channels, T0 + timedelta(seconds=30))
    assert poll_due(store, config, "salesforce", "enrich", channels, T0)  # healthy, but never polled
    mark_polled(store, "salesforce", "enrich", T0)
    assert not poll_due(store, config, "salesforce", "enrich", channels, T0 + timedelta(seconds=30))
    assert poll_due(store, config, "salesforce", "enrich", channels, T0 + timedelta(seconds=600))
    with store.session() as session:
        save_stream(session, "salesforce", channels[1], T0 + timedelta(seconds=40), state="down", message="lost")
    assert poll_due(store, config, "salesforce", "enrich", channels, T0 + timedelta(seconds=45))
    with store.session() as session:
        save_stream(session, "salesforce", channels[1], T0 + timedelta(seconds=50), state="connected", message=None)
        request_catch_up(session, "salesforce")  # an expired replay id: the gap must be polled
    assert poll_due(store, config, "salesforce", "enrich", channels, T0 + timedelta(seconds=55))
    with store.session(readonly=True) as session:
        assert session.get(Cursor, ("salesforce", "enrich:polled")) is None


def test_a_webhook_receiver_counts_as_healthy_once_hubspot_reached_it(store):
    with store.session() as session:
        save_stream(session, "hubspot", "webhooks", T0, state="listening")
    assert not triggers_healthy(store, "hubspot", ["webhooks"], T0)
    with store.session() as session:
        save_stream(session, "hubspot", "webhooks", T0, state="listening", last_event_at=T0)
    assert triggers_healthy(store, "hubspot", ["webhooks"], T0 + timedelta(seconds=60))
    with store.session(readonly=True) as session:
        row = session.get(TriggerStream, ("hubspot", "webhooks"))
    assert row.state == "listening" and row.last_event_at == T0
