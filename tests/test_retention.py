"""Retention: what the housekeeping job keeps and deletes, on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sqlmodel import select

from state.models import Identity, Touchpoint, Visitor
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.stitching import CRM_RECORD
from sync.capture.writer import BeaconWriter
from sync.config import load_config
from sync.jobs.base import JobRunner
from sync.jobs.housekeeping import HousekeepingJob

NOW = datetime(2027, 12, 1, 12, 0, tzinfo=timezone.utc)


def hit(visitor, days_ago, *, email=None, ga=None):
    moment = NOW - timedelta(days=days_ago)
    return Hit(visitor_id=visitor, kind="identify" if email else "pageview", occurred_at=moment,
               url="https://www.example.com/", referrer="", utm={}, click_ids={}, ga_client_id=ga,
               ga_session_id=None, language=None, timezone=None, user_agent="UA",
               conversion_type="form" if email else None, consent=None, session_key=None,
               email_sha256=hash_email(email) if email else None, received_at=moment)


def test_never_identified_visitors_are_deleted_after_13_months(store, write_config):
    BeaconWriter(store).write([
        hit("gone000001", 500, ga="1.1"), hit("gone000001", 420),                # anonymous, last seen 14 months ago
        hit("active0001", 500), hit("active0001", 10),                           # anonymous, still visiting
        hit("known00001", 500), hit("known00001", 499, email="kim@example.com"),  # identified long ago
        hit("crmlink001", 500),                                                  # matched to a CRM record
    ])
    with store.session() as session:
        session.add(Identity(visitor_id="crmlink001", kind=CRM_RECORD, value="hubspot:contacts:1",
                             first_seen_at=NOW, last_seen_at=NOW))
    config = load_config(write_config(f'[state]\nurl = "{store.url.render_as_string(hide_password=False)}"\n'),
                         environ={})
    outcome = JobRunner(config, store, threading.Event(), clock=lambda: NOW).execute(HousekeepingJob(config))
    assert outcome.outcome == "ok"
    with store.session(readonly=True) as session:
        visitors = set(session.exec(select(Visitor.id)).all())
        touchpoints = sorted((t.visitor_id, (NOW - t.occurred_at).days) for t in session.exec(select(Touchpoint)))
        identities = {(i.visitor_id, i.kind) for i in session.exec(select(Identity))}
    assert visitors == {"active0001", "known00001", "crmlink001"}
    assert touchpoints == [("active0001", 10), ("crmlink001", 500), ("known00001", 499), ("known00001", 500)]
    assert ("gone000001", "ga_client_id") not in identities
    assert outcome.result.records_written == 5  # 1 old touchpoint of active0001; gone000001: 2 + 1 identity + itself


def test_anonymous_retention_can_be_turned_off(store, write_config):
    BeaconWriter(store).write([hit("gone000001", 500)])
    config = load_config(write_config(f'[state]\nurl = "{store.url.render_as_string(hide_password=False)}"\n'
                                      "anonymous_retention_days = 0\n"), environ={})
    JobRunner(config, store, threading.Event(), clock=lambda: NOW).execute(HousekeepingJob(config))
    with store.session(readonly=True) as session:
        assert session.exec(select(Visitor.id)).all() == ["gone000001"]
