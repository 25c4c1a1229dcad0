"""One CRM in trouble never stops the other: out of allowance, credentials refused, down for a long
stretch — the other CRM's enrichment and revenue go on, and the waiting work resumes afterwards.

Real clients against the sandbox; time is the shared emulator clock (advanced, never waited for),
and the adapters' retry waits are skipped."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from sandbox.clock import Clock
from state.models import Cursor, OutboxEvent
from support import World
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.writer import BeaconWriter

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path, clock=Clock(), sleep=lambda seconds: None)
    world.create_fields()
    yield world
    world.close()


def arrive(world, visitor: str, client_id: str, email: str, source: str) -> None:
    moment = datetime.now(timezone.utc) - timedelta(days=1)
    common = dict(utm={}, click_ids={}, ga_client_id=client_id, ga_session_id=None, language="en", timezone="UTC",
                  user_agent=UA, consent=None, session_key=None)
    BeaconWriter(world.store).write([
        Hit(visitor, "pageview", moment, f"https://www.example.com/?utm_source={source}&utm_medium=cpc", "",
            conversion_type=None, **common),
        Hit(visitor, "identify", moment + timedelta(minutes=2), "https://www.example.com/demo", "",
            conversion_type="form", email_sha256=hash_email(email), **common)])
    world.ga4.record_page_view(client_id, f"https://www.example.com/?utm_source={source}&utm_medium=cpc", "")


def salesforce_buyer(world) -> dict:
    arrive(world, "sfvisitor", "1001.1700000000", "ann@sf.example", "google")
    lead = world.salesforce.create("Lead", {"LastName": "Ann", "Company": "SF Co", "Email": "ann@sf.example"})
    ids = world.salesforce.convert_lead(lead, opportunity={"Amount": 5000, "StageName": "Closed Won"})
    return {"contact": ids["contactId"], "opportunity": ids["opportunityId"]}


def hubspot_buyer(world) -> dict:
    arrive(world, "hsvisitor", "2002.1700000000", "bo@hs.example", "bing")
    contact = world.hubspot.create("contacts", {"email": "bo@hs.example"})
    deal = world.hubspot.create("deals", {"dealname": "Bo", "amount": "700", "pipeline": "default",
                                          "dealstage": "appointmentscheduled"})
    world.hubspot.associate(deal, contact)
    world.hubspot.update("deals", deal, {"dealstage": "closedwon"})
    return {"contact": contact, "deal": deal}


def source_of(world, crm: str, buyer: dict):
    if crm == "salesforce":
        return world.salesforce.record(buyer["contact"]).get("CL_First_Click_Source__c")
    return world.hubspot.record("contacts", buyer["contact"]).get("cl_first_click_source")


def purchases(world) -> dict[str, float]:
    return {source: float(value) for source, value in world.ga4.report("firstUserSource").items()}


def salesforce_trouble(world, kind: str):
    """Arm a Salesforce failure; returns how to end it."""
    sf = world.salesforce
    if kind == "budget":
        sf.set_api_usage(sf.daily_api_limit, sf.daily_api_limit)
        return sf.reset_api_usage
    if kind == "auth":  # the integration user's access was revoked: every login is invalid_grant
        sf.refuse_logins(True)
        sf.expire_sessions()
        return lambda: sf.refuse_logins(False)
    sf.inject("server_error", times=10_000)
    return sf.clear_faults


def hubspot_trouble(world, kind: str):
    hs = world.hubspot
    if kind == "budget":
        hs.set_limits(daily_used=hs.limits.daily_limit)
        return lambda: hs.set_limits(daily_used=0)
    if kind == "auth":  # the private app's token was rotated in HubSpot
        token = hs.rotate_private_token("pat-na1-rotated-0000")
        return lambda: hs.rotate_private_token(token)
    hs.inject("503", times=10_000)
    return hs.clear_faults


@pytest.mark.parametrize("kind", ["budget", "auth", "down"])
@pytest.mark.parametrize("failing", ["salesforce", "hubspot"])
def test_one_crm_in_trouble_the_other_goes_on(world, failing, kind):
    healthy = "hubspot" if failing == "salesforce" else "salesforce"
    buyers = {"salesforce": salesforce_buyer(world), "hubspot": hubspot_buyer(world)}
    recover = (salesforce_trouble if failing == "salesforce" else hubspot_trouble)(world, kind)

    enrich = world.run("enrich", expect="paused")
    assert enrich.result.remotes[healthy].status == "ok"
    assert enrich.result.remotes[failing].status == "paused"
    assert f"{failing} paused" in enrich.error
    assert source_of(world, healthy, buyers[healthy]) in ("google", "bing")
    assert source_of(world, failing, buyers[failing]) is None
    state = world.runner.remotes.state(failing)
    assert state.paused and state.reason == kind

    revenue = world.run("revenue", expect="paused")
    assert revenue.result.remotes[failing].status == "skipped"  # paused: not even tried
    assert revenue.result.remotes["ga4"].status == "ok"
    assert purchases(world) == ({"bing": 700.0} if healthy == "hubspot" else {"google": 5000.0})
    with world.store.session(readonly=True) as session:  # the paused CRM's work waits where it was
        streams = {(c.crm, c.stream) for c in session.exec(select(Cursor)).all()}
    assert (failing, "revenue:deals") not in streams and (healthy, "revenue:deals") in streams

    # Still in trouble when the pause ends: tried once more, paused longer (an allowance is re-checked).
    world.clock.advance((state.paused_until - world.clock.now()).total_seconds() + 1)
    world.run("enrich", expect="paused")
    again = world.runner.remotes.state(failing)
    assert again.paused_since == state.paused_since
    if kind != "budget":
        assert again.failures == 2 and again.paused_until - world.clock.now() > state.paused_until - \
            state.paused_since

    recover()
    world.clock.advance((again.paused_until - world.clock.now()).total_seconds() + 1)
    world.run("enrich")
    world.run("revenue")
    assert not world.runner.remotes.state(failing).paused
    assert source_of(world, failing, buyers[failing]) in ("google", "bing")
    assert purchases(world) == {"bing": 700.0, "google": 5000.0}


def test_ga4_down_pauses_only_the_outbox(world):
    hubspot_buyer(world)
    world.run("enrich")
    world.ga4.fail_next(10_000, 503)
    revenue = world.run("revenue", expect="paused")
    assert revenue.result.remotes["hubspot"].status == "ok" and revenue.result.remotes["ga4"].status == "paused"
    with world.store.session(readonly=True) as session:
        assert [e.status for e in session.exec(select(OutboxEvent)).all()] == ["pending"]  # kept, not dropped
    assert world.run("enrich").outcome == "ok"  # the CRMs go on
    world.ga4.fail_next(0)
    world.clock.advance(61)
    world.run("revenue")
    assert purchases(world) == {"bing": 700.0}
