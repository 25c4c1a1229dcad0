"""The Data Manager emulator through the real google-ads-datamanager client (REST transport).

Every rule cites shared/reference/ad-platform-conversions.md: §2.3 request shape, §2.4
hashing, §2.5 errors and request status, §2.6 limits, §2.7 dedup and adjustments, §2.8 event
age, §2.9 consent, §2.10 ECL, §9.1 what is refused. The clock is frozen; nothing sleeps.
"""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta, timezone

import google.auth.transport.requests
import pytest
import requests
from google.ads import datamanager_v1 as dm
from google.api_core import exceptions
from google.oauth2 import service_account

from sandbox.clock import Clock
from sandbox.google_ads import (CUSTOMER_ID, MANAGER_ID, OTHER_CUSTOMER_ID, QUALIFIED_ACTION, SCOPE, WEBPAGE_ACTION,
                                WON_ACTION, DataManagerSandbox)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
GCLID = "Cj0KCQiA5bocBhCaARIsAOo4Hl0sandboxClick1"
GBRAID = "0AAAAAo4Hl0sandboxBraid2"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def _server(tmp_path_factory):
    sandbox = DataManagerSandbox(data_dir=tmp_path_factory.mktemp("datamanager"), clock=Clock(frozen_at=NOW))
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def ads(_server):
    _server.clock.freeze(NOW)
    _server.reset()
    _server.processing_seconds = 0
    _server.min_click_age_seconds = 6 * 3600
    _server.requests_per_minute = 300
    return _server


@pytest.fixture(scope="module")
def client(_server):
    credentials = service_account.Credentials.from_service_account_file(_server.service_account_file, scopes=[SCOPE])
    return dm.IngestionServiceClient(credentials=credentials, transport="rest",
                                     client_options={"api_endpoint": _server.url})


def destination(action=WON_ACTION, customer=CUSTOMER_ID, **extra):
    return dm.Destination(operating_account=dm.ProductAccount(account_type="GOOGLE_ADS", account_id=customer),
                          product_destination_id=action, **extra)


def event(transaction_id="sf:006A:won", *, at=None, gclid=GCLID, value=1200.0, currency="EUR", **extra):
    fields = {"transaction_id": transaction_id, "event_timestamp": at or NOW - timedelta(hours=2),
              "event_source": "OTHER", "conversion_value": value, "currency": currency}
    if gclid:
        fields["ad_identifiers"] = dm.AdIdentifiers(gclid=gclid)
    fields.update(extra)
    return dm.Event(**fields)


def ingest(client, events, destinations=None, *, consent="CONSENT_GRANTED", **extra):
    request = dm.IngestEventsRequest(destinations=destinations or [destination()], events=events,
                                     consent=dm.Consent(ad_user_data=consent, ad_personalization=consent), **extra)
    return client.ingest_events(request=request, retry=None)


def refused(client, events, destinations=None, **extra):
    with pytest.raises(exceptions.GoogleAPICallError) as raised:
        ingest(client, events, destinations, **extra)
    return raised.value


def violations(error):
    return [(v["field"], v["reason"]) for detail in error.details if "fieldViolations" in detail
            for v in detail["fieldViolations"]]


def status(client, request_id):
    response = client.retrieve_request_status(request={"request_id": request_id}, retry=None)
    return list(response.request_status_per_destination)


def error_counts(entry):
    return {count.reason.name.removeprefix("PROCESSING_ERROR_REASON_"): count.record_count
            for count in entry.error_info.error_counts}


@pytest.fixture
def clicked(ads):
    """The gclid and gbraid above were served by the account two days ago."""
    ads.record_click(gclid=GCLID, at=NOW - timedelta(days=2))
    ads.record_click(gbraid=GBRAID, at=NOW - timedelta(days=2))
    return ads


# -- accepted requests and what Google received --------------------------------------------

def test_an_accepted_event_is_recorded_and_its_request_status_reads_back(client, clicked):
    response = ingest(client, [event()])
    assert response.request_id
    [entry] = status(client, response.request_id)
    assert entry.request_status == dm.RequestStatusPerDestination.RequestStatus.SUCCESS
    assert entry.events_ingestion_status.record_count == 1
    assert entry.destination.product_destination_id == WON_ACTION
    [conversion] = clicked.conversions(CUSTOMER_ID, WON_ACTION)
    assert conversion["transaction_id"] == "sf:006A:won" and conversion["conversion_value"] == 1200.0
    assert conversion["currency"] == "EUR" and conversion["attributed_click"]["value"] == GCLID
    assert conversion["consent"] == {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
    assert conversion["event_timestamp"] == "2026-11-20T10:00:00Z"


def test_status_is_processing_until_the_processing_delay_has_passed(client, clicked):
    clicked.processing_seconds = 120
    response = ingest(client, [event()])
    assert status(client, response.request_id)[0].request_status == \
        dm.RequestStatusPerDestination.RequestStatus.PROCESSING
    clicked.clock.advance(120)
    assert status(client, response.request_id)[0].request_status == \
        dm.RequestStatusPerDestination.RequestStatus.SUCCESS


def test_validate_only_checks_but_records_nothing_and_has_no_status(client, clicked):
    response = ingest(client, [event()], validate_only=True)
    assert response.request_id == ""
    assert clicked.conversions() == []
    assert refused(client, [event(currency="EURO")], validate_only=True).reason == "INVALID_CURRENCY_CODE"
    with pytest.raises(exceptions.BadRequest) as unknown:
        client.retrieve_request_status(request={"request_id": "0f1e2d3c-not-a-request"}, retry=None)
    assert unknown.value.reason == "INVALID_REQUEST_ID"


def test_request_status_is_kept_about_fifty_days(client, clicked):
    response = ingest(client, [event()])
    clicked.clock.advance(51 * 86400)
    with pytest.raises(exceptions.BadRequest) as too_old:
        status(client, response.request_id)
    assert too_old.value.reason == "REQUEST_TOO_OLD"


def test_a_manager_login_account_may_write_to_its_client(client, clicked):
    login = dm.ProductAccount(account_type="GOOGLE_ADS", account_id=MANAGER_ID)
    assert ingest(client, [event()], [destination(login_account=login)]).request_id


def test_plain_json_with_snake_case_names_and_enum_names_is_accepted(clicked):
    credentials = service_account.Credentials.from_service_account_file(clicked.service_account_file, scopes=[SCOPE])
    credentials.refresh(google.auth.transport.requests.Request())
    body = {"destinations": [{"operating_account": {"account_type": "GOOGLE_ADS", "account_id": CUSTOMER_ID},
                              "product_destination_id": QUALIFIED_ACTION}],
            "consent": {"ad_user_data": "CONSENT_GRANTED"}, "encoding": "HEX",
            "events": [{"transaction_id": "hs:42:qualified", "event_timestamp": "2026-11-20T09:30:00.5+01:00",
                        "event_source": "OTHER", "ad_identifiers": {"gclid": GCLID},
                        "user_data": {"user_identifiers": [{"email_address": sha("jane@example.com")}]}}]}
    response = requests.post(clicked.url + "/v1/events:ingest", json=body, timeout=5,
                             headers={"Authorization": f"Bearer {credentials.token}"})
    assert response.status_code == 200, response.text
    [conversion] = clicked.conversions(conversion_action_id=QUALIFIED_ACTION)
    assert conversion["event_timestamp"] == "2026-11-20T08:30:00.5Z"
    unknown = requests.post(clicked.url + "/v1/events:ingest", timeout=5,
                            json={**body, "events": [{**body["events"][0], "orderId": "x"}]},
                            headers={"Authorization": f"Bearer {credentials.token}"})
    assert unknown.status_code == 400
    assert 'Unknown name "orderId" at \'events[0]\': Cannot find field.' in unknown.json()["error"]["message"]


# -- §9.1: refused synchronously, the whole request ----------------------------------------

def test_one_bad_event_refuses_the_whole_request_and_names_every_bad_field(client, clicked):
    error = refused(client, [event("ok"), event("bad", currency="XYZ"), event("worse", gclid=None)])
    assert error.code == 400 and error.reason == "INVALID_CURRENCY_CODE"
    assert violations(error) == [("events[1].currency", "INVALID_CURRENCY_CODE"),
                                 ("events[2]", "NO_IDENTIFIERS_PROVIDED")]
    assert clicked.conversions() == [] and clicked.rows() == []


def test_batch_limits(client, clicked):
    too_many = refused(client, [event(f"t{i}") for i in range(2001)])
    assert too_many.reason == "TOO_MANY_EVENTS"
    assert ingest(client, [event(f"t{i}") for i in range(2000)]).request_id
    eleven = [destination(reference=f"d{i}") for i in range(11)]
    assert refused(client, [event()], eleven).reason == "TOO_MANY_DESTINATIONS"
    identifiers = [dm.UserIdentifier(email_address=sha(f"p{i}@example.com")) for i in range(11)]
    error = refused(client, [event(user_data=dm.UserData(user_identifiers=identifiers))], encoding="HEX")
    assert error.reason == "TOO_MANY_USER_IDENTIFIERS"


@pytest.mark.parametrize("change, field, reason", [
    (lambda e: e.__setattr__("event_timestamp", None), "events[0].event_timestamp", "REQUIRED_FIELD_MISSING"),
    (lambda e: e.__setattr__("event_source", "EVENT_SOURCE_UNSPECIFIED"), "events[0].event_source",
     "REQUIRED_FIELD_MISSING"),
    (lambda e: e.__setattr__("event_timestamp", NOW + timedelta(hours=1)), "events[0].event_timestamp",
     "EVENT_TIME_INVALID"),
    (lambda e: e.__setattr__("event_timestamp", NOW - timedelta(days=91)), "events[0].event_timestamp",
     "EVENT_TIME_INVALID"),
    (lambda e: e.__setattr__("currency", "eur"), "events[0].currency", "INVALID_CURRENCY_CODE"),
])
def test_event_fields_are_refused_with_googles_reason(client, clicked, change, field, reason):
    bad = event()
    change(bad)
    error = refused(client, [bad])
    assert (field, reason) in violations(error) and error.reason == reason


@pytest.mark.parametrize("value, encoding, reason", [
    ("jane@example.com", "HEX", "INVALID_SHA256_FORMAT"),            # never hashed
    ("+15551234567", "HEX", "INVALID_SHA256_FORMAT"),
    ("zz" * 32, "HEX", "INVALID_HEX_ENCODING"),
    (sha("jane@example.com")[:62], "HEX", "INVALID_SHA256_FORMAT"),  # 31 bytes
    ("%%not*base64%%", "BASE64", "INVALID_BASE64_ENCODING"),
    (base64.b64encode(b"sixteen byte key").decode(), "BASE64", "INVALID_SHA256_FORMAT"),
])
def test_hashed_identifiers_must_be_sha256_in_the_declared_encoding(client, clicked, value, encoding, reason):
    bad = event(user_data=dm.UserData(user_identifiers=[dm.UserIdentifier(email_address=value)]))
    error = refused(client, [bad], encoding=encoding)
    assert violations(error) == [("events[0].user_data.user_identifiers[0].email_address", reason)]


def test_user_data_needs_an_encoding_and_base64_digests_are_accepted(client, clicked):
    with_data = event(user_data=dm.UserData(user_identifiers=[dm.UserIdentifier(email_address=sha("a@b.co"))]))
    assert violations(refused(client, [with_data])) == [("encoding", "REQUIRED_FIELD_MISSING")]
    digest = base64.b64encode(hashlib.sha256(b"a@b.co").digest()).decode()
    ok = event(user_data=dm.UserData(user_identifiers=[dm.UserIdentifier(email_address=digest)]))
    assert ingest(client, [ok], encoding="BASE64").request_id


def test_addresses_hash_names_and_send_region_in_clear(client, clicked):
    address = dm.AddressInfo(given_name=sha("jane"), family_name=sha("doe"), region_code="us", postal_code="94043")
    bad = event(user_data=dm.UserData(user_identifiers=[dm.UserIdentifier(address=address)]))
    assert violations(refused(client, [bad], encoding="HEX")) == [
        ("events[0].user_data.user_identifiers[0].address.region_code", "INVALID_REGION_CODE")]


@pytest.mark.parametrize("make, reason", [
    (lambda: destination(action="999999999"), "INVALID_CONVERSION_ACTION_ID"),
    (lambda: destination(action=WEBPAGE_ACTION), "INVALID_CONVERSION_ACTION_TYPE"),
    (lambda: dm.Destination(operating_account=dm.ProductAccount(account_type="GOOGLE_ADS", account_id=CUSTOMER_ID)),
     "REQUIRED_FIELD_MISSING"),
    (lambda: dm.Destination(product_destination_id=WON_ACTION), "REQUIRED_FIELD_MISSING"),
    (lambda: destination(customer="123-456-7890"), "INVALID_FORMAT"),
])
def test_destinations_are_refused_with_googles_reason(client, clicked, make, reason):
    assert refused(client, [event()], [make()]).reason == reason


def test_a_new_conversion_action_refuses_uploads_for_six_hours(client, clicked):
    clicked.add_conversion_action(CUSTOMER_ID, "444444444", "closedloop: opportunity")
    assert refused(client, [event()], [destination("444444444")]).reason == "CONVERSION_ACTION_TOO_RECENTLY_CREATED"
    clicked.clock.advance(6 * 3600)
    assert ingest(client, [event(at=NOW + timedelta(hours=5))], [destination("444444444")]).request_id


def test_a_manager_id_is_not_an_operating_account_and_others_accounts_are_forbidden(client, clicked):
    assert refused(client, [event()], [destination(customer=MANAGER_ID)]).reason == "INVALID_CONVERSION_ACTION_ID"
    forbidden = refused(client, [event()], [destination(customer=OTHER_CUSTOMER_ID)])
    assert forbidden.code == 403 and forbidden.reason == "PERMISSION_DENIED"


def test_duplicate_references_and_a_click_from_another_account(client, clicked):
    twice = [destination(reference="won"), destination(QUALIFIED_ACTION, reference="won")]
    assert refused(client, [event()], twice).reason == "DUPLICATE_DESTINATION_REFERENCE"
    clicked.add_account(OTHER_CUSTOMER_ID)
    clicked.record_click(gclid="Cj0KCQiAotherAccountsClick9", customer_id=OTHER_CUSTOMER_ID, at=NOW - timedelta(days=1))
    error = refused(client, [event(gclid="Cj0KCQiAotherAccountsClick9")])
    assert violations(error) == [("events[0].ad_identifiers.gclid", "INVALID_AD_IDENTIFIER_FOR_ACCOUNT")]


def test_enhanced_conversions_for_leads_need_the_accounts_prerequisites(client, clicked):
    clicked.add_account(CUSTOMER_ID, ecl_terms_signed=False)
    lead = event(gclid=None, user_data=dm.UserData(user_identifiers=[dm.UserIdentifier(email_address=sha("x@y.de"))]))
    assert refused(client, [lead], encoding="HEX").reason == "DESTINATION_ACCOUNT_ENHANCED_CONVERSIONS_TERMS_NOT_SIGNED"
    assert ingest(client, [event()]).request_id   # a click id alone needs no ECL


def test_custom_variables_must_exist_and_hold_no_pii(client, clicked):
    clicked.add_account(CUSTOMER_ID, custom_variables={"crm_stage": True, "legacy": False})
    unknown = event(custom_variables=[dm.CustomVariable(variable="nope", value="won")])
    assert refused(client, [unknown]).reason == "CUSTOM_VARIABLE_NOT_FOUND"
    pii = event(custom_variables=[dm.CustomVariable(variable="crm_stage", value="jane.doe@example.com")])
    assert refused(client, [pii]).reason == "CUSTOM_VARIABLE_VALUE_CONTAINS_PII"
    disabled = ingest(client, [event(custom_variables=[dm.CustomVariable(variable="legacy", value="x")])])
    assert [w.reason for w in disabled.field_warnings] == [dm.WarningReason.WARNING_REASON_CUSTOM_VARIABLE_NOT_ENABLED]


def test_what_the_sandbox_does_not_emulate_is_refused_not_ignored(client, clicked):
    response = requests.post(clicked.url + "/v1/audienceMembers:ingest", json={}, timeout=5)
    assert response.status_code == 501 and response.json()["error"]["status"] == "UNIMPLEMENTED"
    encrypted = refused(client, [event()], encryption_info=dm.EncryptionInfo(
        gcp_wrapped_key_info=dm.GcpWrappedKeyInfo(key_type="XCHACHA20_POLY1305", wip_provider="w", kek_uri="k",
                                                 encrypted_dek="d")))
    assert violations(encrypted) == [("encryption_info", "INVALID_ARGUMENT")]


def test_the_project_quota_is_300_requests_a_minute(client, clicked):
    clicked.requests_per_minute = 3
    for number in range(3):
        ingest(client, [event(f"q{number}")])
    with pytest.raises(exceptions.TooManyRequests) as limited:
        ingest(client, [event("q3")])
    assert limited.value.reason == "RATE_LIMIT_EXCEEDED"
    clicked.clock.advance(60)
    assert ingest(client, [event("q3")]).request_id


# -- §2.7: dedup and adjustments -----------------------------------------------------------

def test_the_same_transaction_id_again_restates_the_value_instead_of_double_counting(client, clicked):
    first = ingest(client, [event(value=1200.0)])
    second = ingest(client, [event(value=900.0, currency="USD", gclid=GCLID,
                                   user_data=dm.UserData(user_identifiers=[
                                       dm.UserIdentifier(email_address=sha("jane@example.com"))]))],
                    encoding="HEX")
    [conversion] = clicked.conversions()
    assert (conversion["conversion_value"], conversion["currency"]) == (900.0, "USD")
    assert conversion["request_id"] == first.request_id
    [adjustment] = conversion["adjustments"]
    assert adjustment["value_before"] == 1200.0 and adjustment["enhanced_with_user_data"] is True
    assert status(client, second.request_id)[0].request_status == \
        dm.RequestStatusPerDestination.RequestStatus.SUCCESS
    assert [row["outcome"] for row in clicked.rows()] == ["recorded", "adjusted"]


def test_a_transaction_id_is_per_conversion_action(client, clicked):
    ingest(client, [event("sf:006A")], [destination(WON_ACTION), destination(QUALIFIED_ACTION)])
    assert len(clicked.conversions()) == 2


def test_repeats_inside_a_request_and_click_only_duplicates_fail_row_by_row(client, clicked):
    response = ingest(client, [event("same"), event("same"), event("", at=NOW - timedelta(hours=3)),
                               event("", at=NOW - timedelta(hours=3))])
    [entry] = status(client, response.request_id)
    assert entry.request_status == dm.RequestStatusPerDestination.RequestStatus.PARTIAL_SUCCESS
    assert error_counts(entry) == {"DUPLICATE_TRANSACTION_ID": 1, "DUPLICATE_GCLID": 1}
    assert len(clicked.conversions()) == 2


def test_a_lost_response_retried_with_the_same_transaction_id_counts_once(client, clicked):
    clicked.inject("lost_response")
    with pytest.raises(requests.exceptions.ConnectionError):
        ingest(client, [event()])
    assert len(clicked.conversions()) == 1          # Google recorded it; the sender cannot know
    ingest(client, [event()])
    [conversion] = clicked.conversions()
    assert len(conversion["adjustments"]) == 1 and conversion["conversion_value"] == 1200.0


def test_faults_and_an_outage_answer_like_google(client, clicked):
    clicked.inject("unavailable")
    with pytest.raises(exceptions.ServiceUnavailable):
        ingest(client, [event()])
    clicked.outage(3600)
    with pytest.raises(exceptions.ServiceUnavailable):
        ingest(client, [event()])
    clicked.clock.advance(3600)
    assert ingest(client, [event()]).request_id
    assert [entry.get("fault") for entry in clicked.request_log()] == ["unavailable", "outage", None]


# -- asynchronous row outcomes: consent, clicks -------------------------------------------

def test_consent_is_judged_per_row_after_the_request_is_accepted(client, clicked):
    denied = event("denied", consent=dm.Consent(ad_user_data="CONSENT_DENIED"))
    response = ingest(client, [event("granted"), denied])
    unspecified = ingest(client, [event("unknown")], consent="CONSENT_STATUS_UNSPECIFIED")
    [entry] = status(client, response.request_id)
    assert entry.request_status == dm.RequestStatusPerDestination.RequestStatus.PARTIAL_SUCCESS
    assert error_counts(entry) == {"DENIED_CONSENT": 1}
    [failed] = status(client, unspecified.request_id)
    assert failed.request_status == dm.RequestStatusPerDestination.RequestStatus.FAILED
    assert error_counts(failed) == {"UNKNOWN_CONSENT": 1}
    assert [c["transaction_id"] for c in clicked.conversions()] == ["granted"]
    clicked.add_account(CUSTOMER_ID, consent_required=False)   # outside the EEA, no consent signal is fine
    ingest(client, [event("unknown")], consent="CONSENT_STATUS_UNSPECIFIED")
    assert len(clicked.conversions()) == 2


@pytest.mark.parametrize("click_at, event_at, reason", [
    (NOW - timedelta(hours=1), NOW - timedelta(minutes=30), "TOO_RECENT_CLICK"),
    (NOW - timedelta(days=1), NOW - timedelta(days=2), "CONVERSION_PRECEDES_CLICK"),
    (NOW - timedelta(days=80), NOW - timedelta(days=1), "EVENT_TOO_OLD"),   # the action's window is 60 days
])
def test_click_timing_is_checked_against_the_click_google_served(client, ads, click_at, event_at, reason):
    ads.add_conversion_action(CUSTOMER_ID, "555555555", "short window", created_at=NOW - timedelta(days=90),
                              click_through_days=60)
    ads.record_click(gclid=GCLID, at=click_at)
    response = ingest(client, [event(at=event_at)], [destination("555555555")])
    [entry] = status(client, response.request_id)
    assert error_counts(entry) == {reason: 1}


def test_unknown_clicks_are_recorded_unattributed_unless_they_cannot_be_decoded(client, ads):
    response = ingest(client, [event("a", gclid="Cj0KCQiAneverServedClick"), event("b", gclid="not a gclid!")])
    [entry] = status(client, response.request_id)
    assert error_counts(entry) == {"INVALID_GCLID": 1}
    [conversion] = ads.conversions()
    assert conversion["transaction_id"] == "a" and conversion["attributed_click"] is None


def test_gbraid_attributes_like_a_gclid(client, clicked):
    ingest(client, [event(gclid=None, ad_identifiers=dm.AdIdentifiers(gbraid=GBRAID))])
    assert clicked.conversions()[0]["attributed_click"]["kind"] == "gbraid"


# -- §2.4: how the hashes were normalised ---------------------------------------------------

def test_hashed_identifiers_are_judged_against_the_people_google_knows(client, clicked):
    clicked.register_person(email=" John.Doe+ads@Gmail.com", phone="+1 (800) 555-0100", label="john")
    identifiers = [dm.UserIdentifier(email_address=sha("johndoe@gmail.com")),
                   dm.UserIdentifier(phone_number=sha("+18005550100")),
                   dm.UserIdentifier(email_address=sha("john.doe+ads@gmail.com")),
                   dm.UserIdentifier(phone_number=sha("18005550100"))]
    ingest(client, [event(user_data=dm.UserData(user_identifiers=identifiers))], encoding="HEX")
    found = [(i["kind"], i["person"], i["matched"], i["normalisation_problem"])
             for i in clicked.conversions()[0]["user_identifiers"]]
    assert found == [
        ("email", "john", True, None), ("phone", "john", True, None),
        ("email", "john", False, "Gmail address hashed without removing dots and +suffix from the local part"),
        ("phone", "john", False, "phone hashed without the leading + (Meta's form, not Google's)")]


def test_control_api_over_http(clicked):
    response = requests.post(clicked.url + "/_sandbox/clicks", timeout=5,
                             json={"gclid": "Cj0KCQiAviaHttpControl", "at": "2026-11-19T12:00:00+00:00"})
    assert response.status_code == 201 and response.json()["customer_id"] == CUSTOMER_ID
    bad = requests.post(clicked.url + "/_sandbox/clicks", json={"gclid": "x", "colour": "red"}, timeout=5)
    assert bad.status_code == 400 and "colour" in bad.json()["error"]
    accounts = requests.get(clicked.url + "/_sandbox/accounts", timeout=5).json()
    assert {a["customer_id"] for a in accounts["accounts"]} == {CUSTOMER_ID, MANAGER_ID, OTHER_CUSTOMER_ID}
    assert requests.get(clicked.url + "/_sandbox/credentials", timeout=5).json()["operating_account_id"] == CUSTOMER_ID


def test_https_mode_with_the_sandbox_ca(tmp_path, monkeypatch):
    sandbox = DataManagerSandbox(data_dir=tmp_path, clock=Clock(frozen_at=NOW), tls=True)
    sandbox.start()
    try:
        assert sandbox.url.startswith("https://localhost:")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_path))
        credentials = service_account.Credentials.from_service_account_file(sandbox.service_account_file,
                                                                            scopes=[SCOPE])
        https_client = dm.IngestionServiceClient(credentials=credentials, transport="rest",
                                                 client_options={"api_endpoint": sandbox.url})
        sandbox.record_click(gclid=GCLID, at=NOW - timedelta(days=1))
        assert ingest(https_client, [event()]).request_id
    finally:
        sandbox.stop()
