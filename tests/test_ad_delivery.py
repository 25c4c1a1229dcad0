"""Delivery to the ad platforms: uncertain sends inside and outside the dedup windows, refusals, bad
tokens, a platform down for an hour while the others go on — all through the real clients and emulators,
time moved on the sandbox clock instead of waited for."""
from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from ads_support import arrive_from_ad
from state.models import AdConversion, DeadLetter, OutboxEvent
from sync.ops import dead_letters


def qualified_lead(world, n, *, gclid=None, fbclid=None, days_ago=2.0):
    email = f"lead{n}@example.org"
    at = world.clock.now() - timedelta(days=days_ago)
    click_ids = {}
    if gclid:
        world.google.record_click(at=at, gclid=gclid)
        click_ids["gclid"] = gclid
    if fbclid:
        world.meta.record_click(fbclid, at=at)
        click_ids["fbclid"] = fbclid
    arrive_from_ad(world, f"deliveryvisitor{n:03d}", at=at, click_ids=click_ids, email=email)
    lead = world.salesforce.create("Lead", {"LastName": f"L{n}", "Company": "C", "Email": email})
    return lead


def qualify(world, *leads):
    world.run("enrich")
    for lead in leads:
        world.salesforce.update("Lead", lead, {"Status": "Qualified"})


def counted_meta(world):
    return [e for e in world.meta.events() if e["counted"]]


def letters(world, job):
    with world.store.session(readonly=True) as session:
        return [(d.code, d.record_id) for d in session.exec(select(DeadLetter).where(DeadLetter.job == job)).all()]


def test_a_lost_answer_is_resent_with_the_same_keys_and_counted_once_by_both_platforms(ads):
    lead = qualified_lead(ads, 1, gclid="Cj0-lost-1", fbclid="IwAR-lost-1")
    qualify(ads, lead)
    ads.google.inject("lost_response")  # the request is processed, the answer never arrives
    ads.meta.inject("lost_response")
    ads.run("conversions", expect=None)
    ads.clock.advance(3600)
    ads.run("conversions")
    assert len(ads.google.conversions()) == 1  # the resend restated the same transaction id
    assert len(counted_meta(ads)) == 1 and len(ads.meta.events()) == 2  # Meta de-duplicated the event_id
    assert letters(ads, "google_ads") == letters(ads, "meta") == []


def test_outside_metas_48_hours_an_uncertain_event_is_dead_lettered_not_resent(ads):
    lead = qualified_lead(ads, 2, fbclid="IwAR-late-2", days_ago=1)
    qualify(ads, lead)
    ads.meta.inject("lost_response")
    ads.run("conversions", expect="paused")  # the answer is lost; the next drain comes only after Meta's 48 hours
    ads.clock.advance(50 * 3600)
    ads.run("conversions")
    assert len(ads.meta.events()) == 1  # only the first, lost-answer copy
    assert letters(ads, "meta") == [("META_DELIVERY_UNCERTAIN", lead)]
    # A person checks Events Manager, finds it there, and drops the letter: nothing more is sent.
    dead_letters.drop(ads.store, None, job="meta")
    ads.run("conversions")
    assert len(ads.meta.events()) == 1


def test_a_platform_down_for_an_hour_holds_only_its_own_conversions(ads):
    first = qualified_lead(ads, 3, gclid="Cj0-down-3", fbclid="IwAR-down-3")
    qualify(ads, first)
    ads.google.outage(3600)
    outcome = ads.run("conversions", expect="paused")
    assert outcome.error.startswith("google_ads paused (not answering)")
    assert ads.google.conversions() == [] and len(counted_meta(ads)) == 1  # Meta went on
    with ads.store.session(readonly=True) as session:
        queued = session.exec(select(OutboxEvent).where(OutboxEvent.destination == "google_ads")).one()
    assert queued.status == "pending"  # nothing dropped
    second = qualified_lead(ads, 4, gclid="Cj0-down-4", fbclid="IwAR-down-4")
    qualify(ads, second)
    ads.run("conversions", expect="paused")  # Google still paused (not even asked): Meta gets the new one too
    assert len(counted_meta(ads)) == 2 and ads.google.conversions() == []
    ads.clock.advance(3600)
    ads.run("conversions")
    assert sorted(c["transaction_id"] for c in ads.google.conversions()) == sorted(
        [f"salesforce:{first}:qualify_lead", f"salesforce:{second}:qualify_lead"])
    assert len(counted_meta(ads)) == 2


def test_a_refused_token_stops_only_that_platform_and_the_conversions_wait(ads):
    lead = qualified_lead(ads, 5, gclid="Cj0-token-5", fbclid="IwAR-token-5")
    qualify(ads, lead)
    ads.meta.expire_token()
    outcome = ads.run("conversions", expect="paused")
    assert outcome.error.startswith("meta paused (credentials refused)") and "access token" in outcome.error
    assert len(ads.google.conversions()) == 1 and ads.meta.events() == []
    with ads.store.session(readonly=True) as session:
        row = session.get(AdConversion, ("meta", "salesforce", lead, "qualify_lead"))
    assert row.status == "queued" and letters(ads, "meta") == []


def test_an_event_meta_would_refuse_for_age_is_never_sent_and_one_bad_event_does_not_sink_the_rest(ads):
    old = qualified_lead(ads, 6, fbclid="IwAR-old-6", days_ago=1)
    fine = qualified_lead(ads, 7, fbclid="IwAR-fine-7", days_ago=1)
    qualify(ads, old)
    ads.meta.outage(8 * 86400)
    ads.run("conversions", expect="paused")  # queued while Meta is down; then 8 days pass
    ads.clock.advance(8 * 86400)
    qualify(ads, fine)
    ads.run("conversions")
    assert [e["event_id"] for e in ads.meta.events()] == [f"salesforce:{fine}:qualify_lead"]
    assert letters(ads, "meta") == [("META_TOO_OLD", old)]


def test_google_refusing_one_event_dead_letters_that_event_and_sends_the_others(ads):
    good = qualified_lead(ads, 8, gclid="Cj0-good-8")
    bad = qualified_lead(ads, 9, gclid="Cj0-bad-9")
    qualify(ads, good, bad)
    ads.run("conversions")
    assert len(ads.google.conversions()) == 2
    with ads.store.session() as session:  # a conversion the CRM now values in a currency Google refuses
        event = session.exec(select(OutboxEvent).where(OutboxEvent.destination == "google_ads",
                                                       OutboxEvent.record_id == bad)).one()
        session.add(OutboxEvent(idempotency_key="google_ads:test:refused", destination="google_ads",
                                kind="conversion", crm="salesforce", record_id=bad, event_name="qualify_lead",
                                client_id="", payload={**event.payload, "transaction_id": "test:refused",
                                                       "value": "10", "currency": "XYZ"}))
        session.add(OutboxEvent(idempotency_key="google_ads:test:fine", destination="google_ads",
                                kind="conversion", crm="salesforce", record_id=good, event_name="qualify_lead",
                                client_id="", payload={**event.payload, "transaction_id": "test:fine"}))
    ads.run("conversions")
    assert sorted(c["transaction_id"] for c in ads.google.conversions())[-1] == "test:fine"
    [(code, record)] = letters(ads, "google_ads")
    assert (code, record) == ("GOOGLE_ADS_REFUSED", bad)
    with ads.store.session(readonly=True) as session:
        [letter] = session.exec(select(DeadLetter).where(DeadLetter.job == "google_ads")).all()
    assert "INVALID_CURRENCY_CODE" in letter.message
