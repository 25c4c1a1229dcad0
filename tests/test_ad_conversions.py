"""CRM stages into Google Ads and Meta through the real clients (google-ads-datamanager, facebook-business)
and the Data Manager and Conversions API emulators."""
from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlmodel import select

from ads_support import AdsWorld, arrive_from_ad
from sandbox.google_ads import QUALIFIED_ACTION, WON_ACTION
from state.models import AdConversion, DeadLetter, Touchpoint


def salesforce_lead(world, n, *, click_ids, days_ago=3.0, consent="granted", phone="(800) 555-01%02d",
                    ga_client_id=None):
    email = f"Pat.Buyer{n}+work@Gmail.com"
    at = world.clock.now() - timedelta(days=days_ago)
    for kind in ("gclid", "gbraid", "wbraid"):
        if kind in click_ids:
            world.google.record_click(at=at, **{kind: click_ids[kind]})
    if "fbclid" in click_ids:
        world.meta.record_click(click_ids["fbclid"], at=at)
    world.meta.register_person(email=email, phone="+1 " + phone % n if phone else None)
    arrive_from_ad(world, f"adsvisitor{n:03d}", at=at, click_ids=click_ids, email=email, ad_user_data=consent,
                   ga_client_id=ga_client_id)
    world.google.register_person(email=email, phone="+1 " + phone % n if phone else None)
    values = {"LastName": f"Buyer{n}", "Company": f"Co{n}", "Email": email}
    if phone:
        values["Phone"] = phone % n
    return world.salesforce.create("Lead", values)


def google_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_qualified_and_won_become_one_google_conversion_each_with_click_hashes_and_consent(ads):
    lead = salesforce_lead(ads, 1, click_ids={"gclid": "Cj0KCQiA-gclid-1", "gbraid": "0AAAAA-gbraid-1"})
    ads.run("enrich")
    ads.salesforce.update("Lead", lead, {"Status": "Qualified"})
    ads.run("conversions")
    ids = ads.salesforce.convert_lead(lead, opportunity={"Amount": 12000, "StageName": "Negotiation/Review"})
    ads.run("enrich")
    ads.salesforce.update("Opportunity", ids["opportunityId"], {"StageName": "Closed Won"})
    for _ in range(2):  # a second run sends nothing again
        ads.run("conversions")

    qualified = ads.google.conversions(conversion_action_id=QUALIFIED_ACTION)
    won = ads.google.conversions(conversion_action_id=WON_ACTION)
    assert len(qualified) == 1 and len(won) == 1
    assert qualified[0]["transaction_id"] == f"salesforce:{lead}:qualify_lead"
    assert qualified[0]["ad_identifiers"] == {"gclid": "Cj0KCQiA-gclid-1"}  # gclid wins over the gbraid
    assert qualified[0]["attributed_click"]["value"] == "Cj0KCQiA-gclid-1"
    identifiers = {item["kind"]: item for item in qualified[0]["user_identifiers"]}
    assert identifiers["email"]["value"] == google_hash("patbuyer1@gmail.com")  # Gmail: no dots, no +tag
    assert identifiers["phone"]["value"] == google_hash("+18005550101")
    assert identifiers["email"]["matched"] and identifiers["phone"]["matched"]
    assert qualified[0]["consent"] == {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
    assert won[0]["transaction_id"] == f"salesforce:{ids['opportunityId']}:won"
    assert (won[0]["conversion_value"], won[0]["currency"]) == (12000.0, "USD")
    with ads.store.session(readonly=True) as session:
        rows = session.exec(select(AdConversion).where(AdConversion.destination == "google_ads")).all()
    assert {(r.stage, r.status, r.match_keys, r.sent_value) for r in rows} == {
        ("qualify_lead", "sent", "gclid,email_address,phone_number", None),
        ("won", "sent", "gclid,email_address,phone_number", "12000")}


def test_a_deal_whose_amount_changes_after_sending_is_restated_under_the_same_transaction_id(ads):
    lead = salesforce_lead(ads, 2, click_ids={"gclid": "Cj0KCQiA-gclid-2"})
    ads.run("enrich")
    ids = ads.salesforce.convert_lead(lead, opportunity={"Amount": 5000, "StageName": "Closed Won"})
    ads.run("enrich")
    ads.run("conversions")
    ads.salesforce.update("Opportunity", ids["opportunityId"], {"Amount": 7500})
    ads.run("conversions")
    ads.run("conversions")
    [won] = ads.google.conversions(conversion_action_id=WON_ACTION)
    assert won["conversion_value"] == 7500.0
    assert [(a["value_before"], a["value_after"]) for a in won["adjustments"]] == [(5000.0, 7500.0)]
    with ads.store.session(readonly=True) as session:
        row = session.get(AdConversion, ("google_ads", "salesforce", ids["opportunityId"], "won"))
    assert (row.value, row.sent_value, row.restatements) == ("7500", "7500", 1)


def test_no_click_and_no_consent_means_nothing_is_sent_and_the_ledger_says_why(ads):
    lead = salesforce_lead(ads, 3, click_ids={}, consent="denied")
    ads.run("enrich")
    ads.salesforce.update("Lead", lead, {"Status": "Qualified"})
    ads.run("conversions")
    assert ads.google.conversions() == []
    with ads.store.session(readonly=True) as session:
        rows = session.exec(select(AdConversion)).all()
    assert {(r.destination, r.status, r.reason, r.consent) for r in rows} == {
        ("google_ads", "skipped", "no_consent", "denied"), ("meta", "skipped", "no_consent", "denied")}
    assert ads.meta.events() == []


def test_a_click_younger_than_six_hours_waits_and_an_event_past_the_window_is_dead_lettered(ads):
    fresh = salesforce_lead(ads, 4, click_ids={"gclid": "Cj0KCQiA-fresh"}, days_ago=0.05)
    ads.run("enrich")
    ads.salesforce.update("Lead", fresh, {"Status": "Qualified"})
    ads.run("conversions")
    assert ads.google.conversions() == []  # Google refuses clicks younger than 6 h (TOO_RECENT_CLICK)
    ads.clock.advance(7 * 3600)
    ads.run("conversions")
    assert len(ads.google.conversions()) == 1
    late = salesforce_lead(ads, 5, click_ids={"gclid": "Cj0KCQiA-late"}, days_ago=80)
    ads.run("enrich")
    ads.salesforce.update("Lead", late, {"Status": "Qualified"})
    ads.google.outage(10 * 86400)  # Google is down while the click's 90 days run out
    outcome = ads.run("conversions", expect="paused")
    assert "google_ads paused (not answering)" in outcome.error and "503" in outcome.error
    ads.clock.advance(11 * 86400)
    ads.run("conversions")
    with ads.store.session(readonly=True) as session:
        letters = session.exec(select(DeadLetter).where(DeadLetter.job == "google_ads")).all()
        row = session.get(AdConversion, ("google_ads", "salesforce", late, "qualify_lead"))
    assert [letter.code for letter in letters] == ["GOOGLE_ADS_TOO_OLD"]
    assert (row.status, row.reason) == ("dead", "too_old")
    assert len(ads.google.conversions()) == 1


def test_reconcile_puts_the_crm_beside_what_google_recorded_and_explains_each_difference(ads, tmp_path):
    import json as jsonlib
    import os
    import subprocess
    import sys

    sent = salesforce_lead(ads, 6, click_ids={"gclid": "Cj0KCQiA-rec-6"})
    silent = salesforce_lead(ads, 7, click_ids={}, consent="granted", phone=None)
    ads.google.register_person(email="nobody@example.com")
    ads.run("enrich")
    for lead in (sent, silent):
        ads.salesforce.update("Lead", lead, {"Status": "Qualified"})
    ads.run("conversions")
    ids = ads.salesforce.convert_lead(sent, opportunity={"Amount": 900, "StageName": "Closed Won"})
    ads.run("enrich")
    ads.run("conversions")
    result = subprocess.run([sys.executable, "-m", "sync.cli", "reconcile", "--config", str(ads.config_path),
                             "--format", "json"], env={**os.environ, **ads.environ}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    report = jsonlib.loads(result.stdout)
    stages = {(s["destination"], s["stage"]): s for s in report["stages"]}
    assert stages[("google_ads", "qualify_lead")]["reached"] == 2
    assert stages[("google_ads", "qualify_lead")]["sent"] == 2  # the second one on its hashed email alone
    assert stages[("google_ads", "qualify_lead")]["received"] == 2
    assert stages[("google_ads", "won")] | {"reached": 1, "sent": 1, "received": 1} == stages[("google_ads", "won")]
    [won_channel] = [c for c in report["channels"] if c["google_won"]]
    assert (won_channel["crm_won"], won_channel["crm_revenue"], won_channel["google_value"]) == (1, "900", "900")
    assert ids["opportunityId"] in {d["record_id"] for d in report["differences"] if d["destination"] == "ga4"}


def test_a_meta_ad_visitor_becomes_one_meta_event_per_stage_with_fbc_and_metas_own_hashes(ads):
    lead = salesforce_lead(ads, 8, click_ids={"fbclid": "IwAR3xYz_AbC-case-Sensitive"})
    ads.run("enrich")
    ads.salesforce.update("Lead", lead, {"Status": "Qualified"})
    ads.run("conversions")
    ids = ads.salesforce.convert_lead(lead, opportunity={"Amount": 2500.5, "StageName": "Closed Won"})
    ads.run("enrich")
    for _ in range(2):
        ads.run("conversions")
    events = {event["event_name"]: event for event in ads.meta.events()}
    assert sorted(events) == ["Purchase", "QualifiedLead"] and len(ads.meta.events()) == 2
    qualified, purchase = events["QualifiedLead"], events["Purchase"]
    with ads.store.session(readonly=True) as session:
        touch = session.exec(select(Touchpoint).where(Touchpoint.visitor_id == "adsvisitor008")
                             .order_by(Touchpoint.occurred_at)).first()
    clicked_ms = int(touch.occurred_at.timestamp() * 1000)
    assert qualified["user_data"]["fbc"] == f"fb.1.{clicked_ms}.IwAR3xYz_AbC-case-Sensitive"
    assert qualified["user_data"]["em"] == [google_hash("pat.buyer8+work@gmail.com")]  # Meta: no Gmail rules
    assert qualified["user_data"]["ph"] == [google_hash("18005550108")]                 # Meta: no "+"
    assert qualified["event_id"] == f"salesforce:{lead}:qualify_lead"
    assert qualified["action_source"] == "system_generated"
    assert qualified["attributed_click"]["fbclid"] == "IwAR3xYz_AbC-case-Sensitive"
    assert purchase["event_id"] == f"salesforce:{ids['opportunityId']}:won"
    assert purchase["custom_data"]["value"] == 2500.5 and purchase["custom_data"]["currency"] == "usd"
    # No Google click: Google still gets both, matched on the hashed email and phone alone (ECL).
    assert [c["ad_identifiers"] for c in ads.google.conversions()] == [{}, {}]


def test_check_names_the_file_line_and_key_of_a_conversion_action_google_refuses_and_a_bad_meta_token(tmp_path):
    import os
    import subprocess
    import sys

    world = AdsWorld(tmp_path)
    try:
        world.create_fields()
        text = world.config_path.read_text().replace(f'conversion_action_id = "{WON_ACTION}"',
                                                     'conversion_action_id = "333333333"')
        world.config_path.write_text(text)
        line = text.splitlines().index('conversion_action_id = "333333333"') + 1
        environment = {**os.environ, **world.environ, "CLOSEDLOOP_META_ACCESS_TOKEN": "EAAGnot-a-real-token"}
        result = subprocess.run([sys.executable, "-m", "sync.cli", "check", "--config", str(world.config_path)],
                                env=environment, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "google_ads: qualify_lead → conversion action 111111111 accepts conversions" in result.stdout
        problems = [p.strip() for p in result.stderr.splitlines()[1:]]
        assert len(problems) == 2, problems
        assert problems[0].startswith(f"{world.config_path}:{line}: [google_ads.conversions.won] "
                                      "conversion_action_id: destinations[0].product_destination_id: "
                                      "INVALID_CONVERSION_ACTION_TYPE")
        assert any("[meta] dataset_id / access_token_env" in p and "access token" in p for p in problems)
        assert "EAAGnot-a-real-token" not in result.stdout + result.stderr
    finally:
        world.close()


def test_a_lead_with_no_usable_identifier_waits_for_its_visitor_then_report_counts_it_as_no_match_key(ads):
    import json as jsonlib
    import os
    import subprocess
    import sys

    lead = ads.salesforce.create("Lead", {"LastName": "Nobody", "Company": "N"})  # no web visit, no email
    ads.salesforce.update("Lead", lead, {"Status": "Qualified"})
    ads.run("conversions")
    with ads.store.session(readonly=True) as session:
        assert {r.status for r in session.exec(select(AdConversion)).all()} == {"waiting"}
    ads.clock.advance(25 * 3600)  # [journey] match_wait_hours = 24
    ads.run("conversions")
    result = subprocess.run([sys.executable, "-m", "sync.cli", "report", "--format", "json", "--config",
                             str(ads.config_path)], env={**os.environ, **ads.environ}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    counts = jsonlib.loads(result.stdout)["ad_conversions"]
    assert counts == [{"destination": "google_ads", "stage": "qualify_lead", "no match key": 1},
                      {"destination": "meta", "stage": "qualify_lead", "no consent": 1}]
    assert ads.google.conversions() == [] and ads.meta.events() == []


def test_reconcile_calls_a_purchase_ga4_has_not_processed_yet_a_processing_delay(tmp_path):
    """GA4 reports an event only after processing (up to 24–48 h): reconcile says so, instead of
    calling a purchase GA4 will show later missing, and the row settles once GA4 reports it."""
    import json as jsonlib
    import os
    import subprocess
    import sys

    world = AdsWorld(tmp_path, ga4={"processing_delay_seconds": 3600})
    try:
        world.create_fields()
        lead = salesforce_lead(world, 9, click_ids={"gclid": "Cj0KCQiA-delay-9"}, ga_client_id="1784.1730000009")
        world.run("enrich")
        ids = world.salesforce.convert_lead(lead, opportunity={"Amount": 700, "StageName": "Closed Won"})
        world.run("enrich")
        world.run("revenue")

        def ga4_differences() -> dict[str, str]:
            result = subprocess.run([sys.executable, "-m", "sync.cli", "reconcile", "--config", str(world.config_path),
                                     "--format", "json"], env={**os.environ, **world.environ}, capture_output=True,
                                    text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            return {d["record_id"]: d["why"] for d in jsonlib.loads(result.stdout)["differences"]
                    if d["destination"] == "ga4"}

        assert ga4_differences()[ids["opportunityId"]].startswith("GA4 processing delay: sent ")
        world.clock.advance(3601)  # the emulator's processing delay has passed: GA4 reports the purchase
        assert "processing delay" not in ga4_differences().get(ids["opportunityId"], "")
    finally:
        world.close()
