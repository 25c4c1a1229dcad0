"""The GA4 emulator pinned to the Measurement Protocol facts in
shared/reference/ga4-measurement-protocol.md (section named in each test)."""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests

GOOD_EVENT = {"name": "purchase", "params": {"transaction_id": "salesforce:006A", "value": 100, "currency": "USD"}}


def collect(sandbox, body, *, debug=False, secret=None, measurement_id=None):
    path = "/debug/mp/collect" if debug else "/mp/collect"
    return requests.post(sandbox.url + path, params={"measurement_id": measurement_id or sandbox.measurement_id,
                                                      "api_secret": secret or sandbox.api_secret},
                         data=body if isinstance(body, (bytes, str)) else json.dumps(body), timeout=5)


def test_collect_always_answers_204_with_no_body(ga4_sandbox):
    """§6.2: production "returns a 2xx status code if the HTTP request is received ... doesn't
    return an error code if the payload is malformed" (observed 204 No Content,
    https://github.com/br33f/php-GA4-Measurement-Protocol/issues/16)."""
    for body in ({"client_id": "1.2", "events": [GOOD_EVENT]}, b"{not json", {"events": "nope"}):
        response = collect(ga4_sandbox, body)
        assert response.status_code == 204 and response.content == b""


def test_wrong_secret_is_silently_dropped_and_never_logged(ga4_sandbox):
    """§1.2 / P2: a wrong or other-stream api_secret still gets 204 and nothing is recorded;
    P11: the secret must not reach logs."""
    assert collect(ga4_sandbox, {"client_id": "1.2", "events": [GOOD_EVENT]}, secret="wrong").status_code == 204
    assert ga4_sandbox.events == [] and len(ga4_sandbox.dropped) == 1
    assert ga4_sandbox.api_secret not in json.dumps(ga4_sandbox.request_log())
    assert "wrong" not in json.dumps(ga4_sandbox.request_log())


@pytest.mark.parametrize("body, code, path", [
    ({"client_id": "1.2", "events": [{"name": "_bad"}]}, "NAME_INVALID", "events"),            # §3.1 names
    ({"client_id": "1.2", "events": [{"name": "x" * 41}]}, "NAME_INVALID", "events"),          # §3.1 ≤ 40
    ({"client_id": "1.2", "events": [{"name": "session_start"}]}, "NAME_RESERVED", "events"),  # §3.3
    ({"client_id": "1.2", "events": [{"name": "e", "params": {"ga_x": 1}}]}, "NAME_RESERVED", "events[0].params.ga_x"),
    ({"client_id": "1.2", "events": [{"name": "e", "params": {"p": "v" * 101}}]}, "VALUE_OUT_OF_BOUNDS",
     "events[0].params.p"),                                                                     # §3.1 ≤ 100
    ({"client_id": "1.2", "events": [{"name": "e"}] * 26}, "EXCEEDED_MAX_ENTITIES", "events"),  # §3.1 ≤ 25 events
    ({"client_id": "1.2", "events": [{"name": "e", "params": {f"p{n}": n for n in range(26)}}]},
     "EXCEEDED_MAX_ENTITIES", "events[0].params"),                                              # §3.1 ≤ 25 params
    ({"client_id": "1.2", "events": [{"name": "purchase", "params": {"value": 1, "currency": "USD"}}]},
     "VALUE_REQUIRED", "events[0].params.transaction_id"),                                      # §4.1
    ({"client_id": "1.2", "events": [{"name": "purchase", "params": {"transaction_id": "t", "value": 1}}]},
     "VALUE_REQUIRED", "events[0].params.currency"),                                            # §4.4
    ({"events": [{"name": "e"}]}, "VALUE_REQUIRED", "client_id"),                              # §2.1
    ({"client_id": "1.2", "user_properties": {"first_open_time": {"value": 1}}, "events": [{"name": "e"}]},
     "NAME_RESERVED", "user_properties.first_open_time"),                                       # §3.3
    ({"client_id": "1.2", "consent": {"ad_user_data": "YES"}, "events": [{"name": "e"}]}, "VALUE_INVALID",
     "consent.ad_user_data"),                                                                   # §2.1 consent
    ({"client_id": "1.2", "user_data": {"sha256_email_address": ["jane@example.com"]}, "events": [{"name": "e"}]},
     "VALUE_INVALID", "user_data.sha256_email_address"),                                       # §7.2
])
def test_validation_messages(ga4_sandbox, body, code, path):
    """§6.1: the validation server answers 200 {"validationMessages": [{fieldPath, description,
    validationCode}]} with the seven documented codes."""
    response = collect(ga4_sandbox, body, debug=True)
    assert response.status_code == 200
    messages = response.json()["validationMessages"]
    assert (code, path) in [(m["validationCode"], m.get("fieldPath")) for m in messages], messages


def test_valid_request_and_unknown_field(ga4_sandbox):
    """§6.1: a valid request gives an empty list; an unknown top-level field is a parse error
    without fieldPath ("Unable to parse Measurement Protocol JSON payload. ... Cannot find field.")."""
    assert collect(ga4_sandbox, {"client_id": "1.2", "events": [GOOD_EVENT]}, debug=True).json() == \
        {"validationMessages": []}
    [message] = collect(ga4_sandbox, {"client_id": "1.2", "names": [1], "events": [GOOD_EVENT]},
                        debug=True).json()["validationMessages"]
    assert "Cannot find field" in message["description"] and "fieldPath" not in message


def test_relaxed_and_strict_differ_on_client_id_and_72_hours(ga4_sandbox):
    """§1.3 and §3.4: a non-numeric client_id and timestamps older than 72 h are flagged only
    under ENFORCE_RECOMMENDATIONS; RELAXED accepts (and clamps) them."""
    old = int((ga4_sandbox.clock.now() - timedelta(hours=80)).timestamp() * 1_000_000)
    body = {"client_id": "f81d4fae-7dec", "events": [{**GOOD_EVENT, "timestamp_micros": old}]}
    assert collect(ga4_sandbox, body, debug=True).json() == {"validationMessages": []}
    strict = collect(ga4_sandbox, {**body, "validation_behavior": "ENFORCE_RECOMMENDATIONS"}, debug=True).json()
    codes = sorted(m["validationCode"] for m in strict["validationMessages"])
    assert codes == ["VALUE_INVALID", "VALUE_OUT_OF_BOUNDS"]
    collect(ga4_sandbox, body)
    assert ga4_sandbox.events[0].at == ga4_sandbox.clock.now() - timedelta(hours=72)


def test_purchases_dedupe_by_transaction_id_and_refunds_subtract(ga4_sandbox):
    """§4.2: GA4 de-duplicates purchases with the same transaction_id; §4.3 refunds carry the
    purchase's transaction_id."""
    ga4_sandbox.register_user("1.2", "google", "cpc")
    purchase = {"client_id": "1.2", "events": [GOOD_EVENT]}
    collect(ga4_sandbox, purchase)
    collect(ga4_sandbox, purchase)
    assert ga4_sandbox.report("firstUserSource") == {"google": Decimal(100)}
    collect(ga4_sandbox, {"client_id": "1.2", "events": [{"name": "refund", "params": {
        "transaction_id": "salesforce:006A", "value": 40, "currency": "USD"}}]})
    assert ga4_sandbox.report("firstUserSource") == {"google": Decimal(60)}
    assert ga4_sandbox.report("firstUserSource", "transactions") == {"google": 1}


def test_first_user_source_from_tagging_hits(ga4_sandbox):
    """§2.4: first-user source is a user attribute fixed at the first visit; revenue sent later
    with the same client_id reports under it. Channels per support.google.com/analytics/answer/9756891."""
    visits = [("10.1", "https://www.example.com/?utm_source=newsletter&utm_medium=email", ""),
              ("10.2", "https://www.example.com/?gclid=abc", "https://www.google.com/"),
              ("10.3", "https://www.example.com/", "https://www.google.de/"),
              ("10.4", "https://www.example.com/", "https://m.facebook.com/"),
              ("10.5", "https://www.example.com/", "https://partner.example.org/page"),
              ("10.6", "https://www.example.com/", "")]
    for client_id, url, referrer in visits:
        requests.get(ga4_sandbox.url + "/g/collect", params={"v": "2", "tid": ga4_sandbox.measurement_id,
                                                             "cid": client_id, "en": "page_view", "dl": url,
                                                             "dr": referrer, "sid": "1700000000"}, timeout=5)
        # a later visit must not change the first-user source
        requests.get(ga4_sandbox.url + "/g/collect", params={"tid": ga4_sandbox.measurement_id, "cid": client_id,
                                                             "dl": "https://www.example.com/?utm_source=x&utm_medium=y"},
                     timeout=5)
        collect(ga4_sandbox, {"client_id": client_id, "events": [{"name": "purchase", "params": {
            "transaction_id": f"t-{client_id}", "value": 10, "currency": "EUR"}}]})
    collect(ga4_sandbox, {"client_id": "99.9", "events": [{"name": "purchase", "params": {
        "transaction_id": "t-unknown", "value": 5, "currency": "USD"}}]})
    assert ga4_sandbox.report("firstUserDefaultChannelGroup") == {
        "(not set)": Decimal(5), "Direct": Decimal("11.00"), "Email": Decimal("11.00"),
        "Organic Search": Decimal("11.00"), "Organic Social": Decimal("11.00"), "Paid Search": Decimal("11.00"),
        "Referral": Decimal("11.00")}
    assert ga4_sandbox.report("firstUserSourceMedium")["m.facebook.com / referral"] == Decimal("11.00")


def test_session_source_only_with_a_real_session_id(ga4_sandbox):
    """§2.3: session attribution needs the session_id of a real session, sent within 24 h."""
    ga4_sandbox.record_page_view("5.5", "https://www.example.com/?utm_source=bing&utm_medium=cpc", session_id="1700")
    for session_id in ("1700", "9999", None):
        params = {"transaction_id": f"t{session_id}", "value": 1, "currency": "USD"}
        if session_id:
            params["session_id"] = session_id
        collect(ga4_sandbox, {"client_id": "5.5", "events": [{"name": "purchase", "params": params}]})
    assert ga4_sandbox.report("sessionSource", "transactions") == {"(not set)": 2, "bing": 1}
    ga4_sandbox.clock.advance(25 * 3600)
    collect(ga4_sandbox, {"client_id": "5.5", "events": [{"name": "purchase", "params": {
        "transaction_id": "late", "value": 1, "currency": "USD", "session_id": "1700"}}]})
    assert ga4_sandbox.report("sessionSource", "transactions") == {"(not set)": 3, "bing": 1}


def test_admin_endpoints(ga4_sandbox):
    requests.post(ga4_sandbox.url + "/_sandbox/users", json={"client_id": "7.7", "source": "google",
                                                             "medium": "organic"}, timeout=5)
    collect(ga4_sandbox, {"client_id": "7.7", "events": [GOOD_EVENT]})
    report = requests.get(ga4_sandbox.url + "/_sandbox/report", params={"dimension": "firstUserSource"},
                          timeout=5).json()
    assert report == {"rows": [{"dimension": "google", "value": "100"}], "currency": "USD"}
    assert requests.get(ga4_sandbox.url + "/_sandbox/events", timeout=5).json()[0]["name"] == "purchase"
