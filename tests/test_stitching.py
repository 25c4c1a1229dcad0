"""Stitching visitors into people, and forgetting a person, on SQLite and PostgreSQL."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

from sqlmodel import func, select

from state.models import Identity, LeadSync, OutboxEvent, Touchpoint, Visitor
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.stitching import CRM_RECORD, MAX_VISITORS, crm_record_key, find_person, touchpoints_for
from sync.capture.writer import BeaconWriter

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)


def hit(visitor, minutes, *, kind="pageview", email=None, ga=None, url="https://www.example.com/"):
    return Hit(visitor_id=visitor, kind=kind, occurred_at=T0 + timedelta(minutes=minutes), url=url, referrer="",
               utm={}, click_ids={}, ga_client_id=ga, ga_session_id=None, language=None, timezone=None,
               user_agent="UA", conversion_type="form" if kind == "identify" else None, consent=None,
               session_key=None, email_sha256=hash_email(email) if email else None)


def store_hits(store, *hits):
    BeaconWriter(store).write(list(hits))


def test_devices_sharing_an_email_merge_into_one_journey(store):
    store_hits(store,
               hit("laptop0001", 0, ga="111.1"), hit("laptop0001", 5, kind="identify", email="ann@example.com"),
               hit("phone00001", 60 * 24, ga="222.2"),
               hit("phone00001", 60 * 24 + 1, kind="identify", email="ANN@example.com "),
               hit("tablet0001", 60 * 48, ga="222.2"),  # same browser, _cl_vid cookie was reset
               hit("stranger01", 30, ga="999.9"))
    with store.session(readonly=True) as session:
        person = find_person(session, email_hashes=[hash_email("ann@example.com")])
        journey = touchpoints_for(session, person.visitor_ids)
    assert person.visitor_ids == {"laptop0001", "phone00001", "tablet0001"} and not person.truncated
    assert [h.occurred_at for h in journey] == sorted(h.occurred_at for h in journey)
    assert {h.visitor_id for h in journey} == person.visitor_ids


def test_person_found_from_a_visitor_id_or_a_ga_client_id(store):
    store_hits(store, hit("laptop0001", 0, ga="111.1"), hit("laptop0001", 5, kind="identify", email="bo@example.com"),
               hit("phone00001", 10, kind="identify", email="bo@example.com"))
    with store.session(readonly=True) as session:
        assert find_person(session, visitor_ids=["phone00001"]).visitor_ids == {"laptop0001", "phone00001"}
        assert find_person(session, ga_client_ids=["111.1"]).visitor_ids == {"laptop0001", "phone00001"}
        assert find_person(session, visitor_ids=["unknown000"]).visitor_ids == set()


def test_a_shared_address_cannot_merge_unbounded_journeys(store):
    store_hits(store, *[hit(f"kiosk{n:05d}", n, kind="identify", email="test@example.com") for n in range(40)])
    with store.session(readonly=True) as session:
        person = find_person(session, email_hashes=[hash_email("test@example.com")])
    assert len(person.visitor_ids) == MAX_VISITORS and person.truncated


def test_touchpoints_up_to_a_conversion_time(store):
    store_hits(store, hit("laptop0001", 0), hit("laptop0001", 10), hit("laptop0001", 20))
    with store.session(readonly=True) as session:
        assert len(touchpoints_for(session, {"laptop0001"}, until=T0 + timedelta(minutes=10))) == 2


def test_forget_removes_the_person_and_nothing_else(store, tmp_path, write_config):
    store_hits(store, hit("laptop0001", 0, ga="111.1"), hit("laptop0001", 5, kind="identify", email="cy@example.com"),
               hit("phone00001", 60, ga="222.2"), hit("phone00001", 61, kind="identify", email="cy@example.com"),
               hit("stranger01", 30, ga="999.9"), hit("stranger01", 31, kind="identify", email="di@example.com"))
    with store.session() as session:
        session.add(OutboxEvent(idempotency_key="hubspot:1:purchase", kind="revenue", crm="hubspot", record_id="1",
                                event_name="purchase", client_id="222.2", payload={}))
        session.add(OutboxEvent(idempotency_key="hubspot:2:purchase", kind="revenue", crm="hubspot", record_id="2",
                                event_name="purchase", client_id="999.9", payload={}))
        session.add(LeadSync(crm="hubspot", object="contacts", record_id="51", status="enriched",
                             visitor_ids=["laptop0001", "phone00001"], written={"first_click_source": "google"}))
        session.add(Identity(visitor_id="laptop0001", kind=CRM_RECORD, value=crm_record_key("hubspot", "contacts", "51")))
    config = write_config(f'[state]\nurl = "{store.url.render_as_string(hide_password=False)}"\n')
    result = subprocess.run([sys.executable, "-m", "sync.cli", "forget", "Cy@Example.com", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("forgot 2 visitor(s), 4 touchpoint(s), 5 identit(ies), 1 CRM record match(es) "
                                     "with the values written to them, 1 GA4 event(s) and 0 dead letter(s); erased "
                                     "the GA client id of 0 revenue ledger entr(ies) (CRM data itself is not changed)")
    with store.session(readonly=True) as session:
        assert session.exec(select(Visitor.id)).all() == ["stranger01"]
        assert {t.visitor_id for t in session.exec(select(Touchpoint)).all()} == {"stranger01"}
        assert session.exec(select(func.count()).select_from(Identity).where(
            Identity.value == hash_email("cy@example.com"))).one() == 0
        assert [e.client_id for e in session.exec(select(OutboxEvent)).all()] == ["999.9"]
        assert session.get(LeadSync, ("hubspot", "contacts", "51")) is None


def test_explain_prints_the_merged_journey_with_reasons(store, write_config):
    store_hits(store,
               hit("phone00001", 0, url="https://www.example.com/?utm_source=linkedin&utm_medium=paid_social"),
               hit("phone00001", 1, kind="identify", email="ed@example.com"),
               hit("laptop0001", 60 * 24, url="https://www.example.com/pricing?gclid=abc"),
               hit("laptop0001", 60 * 24 + 1, kind="identify", email="ed@example.com"))
    config = write_config(f'[state]\nurl = "{store.url.render_as_string(hide_password=False)}"\n')
    result = subprocess.run([sys.executable, "-m", "sync.cli", "explain", "laptop0001", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, env={**__import__("os").environ,
                                                                             "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "2 device(s): phone00001, laptop0001" in out  # first seen first
    assert out.index("Paid Social") < out.index("Paid Search")
    assert "utm_source='linkedin'" in out and "gclid present (Google Ads click)" in out
    assert "Paid Search (paid_search)" in out  # the channel rule that matched
    missing = subprocess.run([sys.executable, "-m", "sync.cli", "explain", "nobody0000", "--config", str(config)],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no visitor, email or CRM record 'nobody0000'" in missing.stderr
