"""The Meta Conversions API emulator, through plain HTTPS and through facebook-business 26.x.

Rules cite shared/reference/ad-platform-conversions.md §3 (M-USE, M-SRV, M-CIP, M-FBC, M-DEDUP,
M-DPO) and §9.2. The sandbox clock is frozen at the real time (facebook-business stamps nothing
itself, but the events' times are computed from it) and only moved forward by tests.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.event_request import EventRequest
from facebook_business.adobjects.serverside.user_data import UserData
from facebook_business.api import FacebookAdsApi, FacebookSession
from facebook_business.exceptions import FacebookRequestError

from sandbox.clock import Clock
from sandbox.meta import ACCESS_TOKEN, DATASET_ID, OTHER_DATASET_ID, MetaSandbox

NOW = datetime.now(timezone.utc).replace(microsecond=0)
VERSION = "v26.0"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def _server(tmp_path_factory):
    sandbox = MetaSandbox(data_dir=tmp_path_factory.mktemp("meta"), clock=Clock(frozen_at=NOW))
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def meta(_server):
    _server.clock.freeze(NOW)
    _server.reset()
    return _server


def now_seconds(meta) -> int:
    return int(meta.clock.now().timestamp())


def lead(meta, **changes):
    event = {"event_name": "QualifiedLead", "event_time": now_seconds(meta) - 600, "event_id": "sf:00Q1:qualified",
             "action_source": "system_generated", "user_data": {"em": [sha("jane@example.com")]},
             "custom_data": {"value": 500, "currency": "EUR"}}
    event.update(changes)
    return event


def post(meta, data, *, token=ACCESS_TOKEN, dataset=DATASET_ID, version=VERSION, **extra):
    body = {"data": data, **extra}
    if token is not None:
        body["access_token"] = token
    return requests.post(f"{meta.url}/{version}/{dataset}/events", json=body, verify=meta.ca_path, timeout=5)


def graph_error(response):
    error = response.json()["error"]
    return response.status_code, error["code"], error.get("error_subcode"), error.get("error_user_title")


# -- accepted -----------------------------------------------------------------------------

def test_an_accepted_request_answers_like_meta_and_is_kept(meta):
    response = post(meta, [lead(meta), lead(meta, event_id="sf:00Q2:qualified")])
    assert response.status_code == 200
    body = response.json()
    assert body["events_received"] == 2 and body["messages"] == [] and body["fbtrace_id"]
    assert response.headers["x-fb-trace-id"] == body["fbtrace_id"]
    stored = meta.events()
    assert [event["event_id"] for event in stored] == ["sf:00Q1:qualified", "sf:00Q2:qualified"]
    assert all(event["counted"] for event in stored)


def test_facebook_business_can_be_pointed_at_the_sandbox(meta):
    """The SDK: GRAPH and CA on its session, trust_env off (an environment CA bundle would win)."""
    session = FacebookSession(access_token=ACCESS_TOKEN)
    session.GRAPH = meta.url
    session.requests.verify = str(meta.ca_path)
    session.requests.trust_env = False
    previous = FacebookAdsApi.get_default_api()
    FacebookAdsApi.set_default_api(FacebookAdsApi(session, api_version=VERSION))
    try:
        meta.register_person(email="Jane.Doe@Gmail.com", phone="+1 (800) 555-0100", label="jane")
        event = Event(event_name="Purchase", event_time=now_seconds(meta) - 60, event_id="sf:006A:won",
                      action_source=ActionSource.SYSTEM_GENERATED,
                      user_data=UserData(email=" Jane.Doe@Gmail.com ", phone="+1 (800) 555-0100"),
                      custom_data=CustomData(value=1200.0, currency="eur"))
        response = EventRequest(pixel_id=DATASET_ID, events=[event]).execute()
        assert response.events_received == 1
        [stored] = meta.events()
        assert [(m["field"], m["person"], m["matched"]) for m in stored["matches"]] == \
            [("em", "jane", True), ("ph", "jane", True)]
        event.event_time = now_seconds(meta) - 8 * 86400
        with pytest.raises(FacebookRequestError) as refused:
            EventRequest(pixel_id=DATASET_ID, events=[event]).execute()
        assert refused.value.api_error_code() == 100
        assert refused.value.body()["error"]["error_user_title"] == "Event Timestamp Too Old"
    finally:
        FacebookAdsApi.set_default_api(previous)


def test_a_form_post_with_a_bearer_header_is_read_too(meta):
    response = requests.post(f"{meta.url}/{VERSION}/{DATASET_ID}/events", verify=meta.ca_path, timeout=5,
                             data={"data": json.dumps([json.dumps(lead(meta))])},
                             headers={"Authorization": f"Bearer {ACCESS_TOKEN}"})
    assert response.status_code == 200 and len(meta.events()) == 1
    assert "access_token" not in json.dumps(meta.request_log()).replace('"access_token": "***"', "")


def test_test_event_code_keeps_events_out_of_production(meta):
    post(meta, [lead(meta)], test_event_code="TEST4821")
    assert meta.events() == []
    [test_event] = meta.events(test=True)
    assert test_event["test_event_code"] == "TEST4821"
    post(meta, [lead(meta)])                    # the same event for real is not a duplicate of the test
    assert meta.events()[0]["counted"] is True


def test_the_dataset_can_be_read_to_check_the_token(meta):
    response = requests.get(f"{meta.url}/{VERSION}/{DATASET_ID}", params={"fields": "id,name",
                                                                         "access_token": ACCESS_TOKEN},
                            verify=meta.ca_path, timeout=5)
    assert response.status_code == 200 and response.json() == {"id": DATASET_ID, "name": "closedloop sandbox dataset"}
    unknown = requests.get(f"{meta.url}/{VERSION}/{DATASET_ID}", params={"fields": "id,colour",
                                                                        "access_token": ACCESS_TOKEN},
                           verify=meta.ca_path, timeout=5)
    assert unknown.status_code == 400 and "nonexisting field (colour)" in unknown.json()["error"]["message"]


# -- §3.6: dedup ----------------------------------------------------------------------------

def test_event_name_and_event_id_dedup_within_48_hours_and_not_after(meta):
    post(meta, [lead(meta)])
    meta.clock.advance(47 * 3600)
    post(meta, [lead(meta)])                                        # a retry: counted once
    post(meta, [lead(meta, event_name="Opportunity")])              # another name: another event
    meta.clock.advance(2 * 3600)
    post(meta, [lead(meta)])                                        # 49 h later: counts again
    counted = [(e["event_name"], e["counted"]) for e in meta.events()]
    assert counted == [("QualifiedLead", True), ("QualifiedLead", False), ("Opportunity", True),
                       ("QualifiedLead", True)]
    assert meta.events()[1]["deduplicated_with"] == meta.events()[0]["fbtrace_id"]


def test_events_without_event_id_never_dedup(meta):
    event = lead(meta)
    del event["event_id"]
    post(meta, [event])
    post(meta, [event])
    assert len(meta.events(counted_only=True)) == 2


def test_a_lost_response_retried_with_the_same_event_id_counts_once(meta):
    meta.inject("lost_response")
    with pytest.raises(requests.exceptions.ConnectionError):
        post(meta, [lead(meta)])
    assert post(meta, [lead(meta)]).status_code == 200
    assert len(meta.events()) == 2 and len(meta.events(counted_only=True)) == 1


# -- §9.2: refused, the whole request -------------------------------------------------------

@pytest.mark.parametrize("change, title", [
    ({"event_name": None}, "Missing event_name"),
    ({"event_time": None}, "Missing event_time"),
    ({"action_source": None}, "Missing action_source"),
    ({"user_data": None}, "Missing user_data"),
    ({"action_source": "crm"}, "Invalid action_source"),
    ({"event_time": "yesterday"}, "Invalid event_time"),
    ({"user_data": {"em": ["jane@example.com"]}}, "Unhashed Customer Information"),
    ({"user_data": {"ph": sha("15551234567")[:63]}}, "Unhashed Customer Information"),
    ({"user_data": {"lead_id": sha("1234567890123456")}}, "Invalid lead_id"),
    ({"event_name": "Purchase", "custom_data": {"value": 10}}, "Missing Value or Currency for Purchase Event"),
    ({"custom_data": {"value": "ten", "currency": "EUR"}}, "Invalid value"),
    ({"custom_data": {"value": 10, "currency": "EURO"}}, "Invalid currency"),
    ({"data_processing_options": ["CCPA"]}, "Invalid data_processing_options"),
    ({"action_source": "website"}, "Missing event_source_url"),
])
def test_a_bad_event_fails_the_whole_request(meta, change, title):
    bad = lead(meta, **change)
    for key in [key for key, value in change.items() if value is None]:
        del bad[key]
    response = post(meta, [lead(meta, event_id="good"), bad])
    assert graph_error(response) == (400, 100, None, title)
    assert "data[1]" in response.json()["error"]["error_user_msg"]
    assert meta.events() == []


def test_event_time_limits(meta):
    old = lead(meta, event_time=now_seconds(meta) - 7 * 86400 - 60)
    assert graph_error(post(meta, [lead(meta), old]))[3] == "Event Timestamp Too Old"
    in_store = lead(meta, action_source="physical_store", event_time=now_seconds(meta) - 30 * 86400)
    assert post(meta, [in_store]).status_code == 200
    millis = lead(meta, event_time=now_seconds(meta) * 1000)
    assert graph_error(post(meta, [millis]))[3] == "Event Timestamp Too Far In The Future"


def test_an_event_nobody_can_be_matched_to_is_refused_with_2804050(meta):
    thin = lead(meta, user_data={"country": [sha("de")]})
    assert graph_error(post(meta, [thin])) == (400, 100, 2804050, "Customer Information Parameters Missing")
    browser = lead(meta, user_data={"client_ip_address": "203.0.113.9", "client_user_agent": "Mozilla/5.0"})
    assert post(meta, [browser]).status_code == 200


def test_batch_limit_is_1000_events(meta):
    events = [lead(meta, event_id=f"e{i}") for i in range(1001)]
    assert graph_error(post(meta, events))[3] == "Too Many Events"
    assert post(meta, events[:1000]).json()["events_received"] == 1000


def test_data_must_be_a_non_empty_array(meta):
    assert post(meta, None).json()["error"]["message"] == "(#100) The parameter data is required"
    assert post(meta, "not json").json()["error"]["message"] == "(#100) param data must be an array."
    assert post(meta, []).status_code == 400


# -- tokens, permissions, versions ----------------------------------------------------------

def test_token_and_permission_refusals(meta):
    assert graph_error(post(meta, [lead(meta)], token=None))[:2] == (400, 104)
    assert graph_error(post(meta, [lead(meta)], token="EAAGnot-a-real-token"))[:2] == (401, 190)
    assert graph_error(post(meta, [lead(meta)], dataset=OTHER_DATASET_ID)) == (400, 100, 33, None)
    assert graph_error(post(meta, [lead(meta)], dataset="999999999999999")) == (400, 100, 33, None)
    meta.expire_token()
    expired = post(meta, [lead(meta)])
    assert graph_error(expired)[:3] == (401, 190, 463)
    assert expired.json()["error"]["message"].startswith("Error validating access token: Session has expired on")


def test_appsecret_proof_is_checked_when_the_app_has_a_secret(meta):
    meta.add_token("EAAGsecured", [DATASET_ID], app_secret="app-secret", require_proof=True)
    assert graph_error(post(meta, [lead(meta)], token="EAAGsecured"))[:2] == (400, 100)
    assert graph_error(post(meta, [lead(meta)], token="EAAGsecured", appsecret_proof="0" * 64))[:2] == (400, 100)
    good = hmac.new(b"app-secret", b"EAAGsecured", hashlib.sha256).hexdigest()
    assert post(meta, [lead(meta)], token="EAAGsecured", appsecret_proof=good).status_code == 200


def test_graph_versions_outside_the_supported_range(meta):
    assert graph_error(post(meta, [lead(meta)], version="v18.0"))[:2] == (400, 2635)
    assert graph_error(post(meta, [lead(meta)], version="v99.0"))[:2] == (400, 2500)


def test_throttling_and_an_outage_are_transient_graph_errors(meta):
    meta.inject("rate_limit")
    throttled = post(meta, [lead(meta)])
    assert graph_error(throttled)[:2] == (400, 4) and throttled.json()["error"]["is_transient"] is True
    meta.outage(3600)
    down = post(meta, [lead(meta)])
    assert graph_error(down)[:2] == (500, 2) and down.json()["error"]["is_transient"] is True
    meta.clock.advance(3600)
    assert post(meta, [lead(meta)]).status_code == 200


# -- fbc, clicks and how the hashes were normalised ----------------------------------------

def test_fbc_is_matched_to_the_click_meta_served_and_bad_fbc_is_diagnosed_not_refused(meta):
    clicked_at = meta.clock.now() - timedelta(days=2)
    meta.record_click("IwAR2sandboxFbclid0AbC", at=clicked_at, campaign="q4-retargeting")
    ms = int(clicked_at.timestamp() * 1000)
    good = lead(meta, event_id="a", user_data={"fbc": f"fb.1.{ms}.IwAR2sandboxFbclid0AbC"})
    seconds = lead(meta, event_id="b", user_data={"fbc": f"fb.1.{ms // 1000}.IwAR2sandboxFbclid0AbC"})
    recased = lead(meta, event_id="c", user_data={"fbc": f"fb.1.{ms}.iwar2sandboxfbclid0abc"})
    garbage = lead(meta, event_id="d", user_data={"fbc": "IwAR2sandboxFbclid0AbC"})
    assert post(meta, [good, seconds, recased, garbage]).status_code == 200
    events = meta.events()
    assert events[0]["attributed_click"]["campaign"] == "q4-retargeting" and events[0]["diagnostics"] == []
    assert events[1]["diagnostics"] == ["fbc creation time is in seconds, not milliseconds"]
    assert events[2]["attributed_click"] is None and "copy it verbatim" in events[2]["diagnostics"][0]
    assert events[3]["diagnostics"][0].startswith("fbc 'IwAR2sandboxFbclid0AbC' is not fb.")


def test_hashes_are_judged_by_metas_normal_forms_not_googles(meta):
    meta.register_person(email="John.Doe+ads@Gmail.com", phone="+1 (800) 555-0100", label="john")
    user_data = {"em": [sha("john.doe+ads@gmail.com"), sha("johndoe@gmail.com")],
                 "ph": [sha("18005550100"), sha("+18005550100")]}
    post(meta, [lead(meta, user_data=user_data)])
    found = [(m["field"], m["matched"], m["normalisation_problem"]) for m in meta.events()[0]["matches"]]
    assert found == [("em", True, None),
                     ("em", False, "Gmail address hashed with Google's dot and +suffix removal (Meta keeps them)"),
                     ("ph", True, None),
                     ("ph", False, "phone hashed with the leading + (Google's form, not Meta's)")]


def test_control_api_over_http(meta):
    created = requests.post(f"{meta.url}/_sandbox/clicks", json={"fbclid": "IwAR2http", "campaign": "c"},
                            verify=meta.ca_path, timeout=5)
    assert created.status_code == 201 and created.json()["fbclid"] == "IwAR2http"
    post(meta, [lead(meta)], test_event_code="T1")
    listed = requests.get(f"{meta.url}/_sandbox/events", params={"test": "1"}, verify=meta.ca_path, timeout=5)
    assert [event["test_event_code"] for event in listed.json()] == ["T1"]
    bad = requests.post(f"{meta.url}/_sandbox/faults", json={"kind": "meltdown"}, verify=meta.ca_path, timeout=5)
    assert bad.status_code == 400 and "fault kind" in bad.json()["error"]
