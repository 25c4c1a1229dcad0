"""The GA4 emulator pinned to the facts in shared/reference/ga4-measurement-protocol.md.

Every test names its section of that file and the Google page it quotes, abbreviated as in
the reference file; the validation table cites its source per row. Everything goes over HTTP
with ``requests`` against the emulator on an ephemeral port, with a frozen clock.

  [SEND] https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events?client_type=gtag
  [REF] https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference?client_type=gtag
  [VAL] https://developers.google.com/analytics/devguides/collection/protocol/ga4/validating-events?client_type=gtag
  [EVENTS] https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference/events
  [USE] https://developers.google.com/analytics/devguides/collection/protocol/ga4/use-cases
  [LIMITS] https://support.google.com/analytics/answer/9267744
  [TXID] https://support.google.com/analytics/answer/12313109
  [UID] https://developers.google.com/analytics/devguides/collection/ga4/uid-data
  [CHANNELS] https://support.google.com/analytics/answer/9756891
  [VERIFY] https://developers.google.com/analytics/devguides/collection/protocol/ga4/verify-implementation?client_type=gtag
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import quote

import pytest
import requests

from sandbox.clock import Clock
from sandbox.ga4 import GA4Sandbox
from sandbox.ga4.traffic import default_channel_group

SEND = "https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events?client_type=gtag"
REF = "https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference?client_type=gtag"
VAL = "https://developers.google.com/analytics/devguides/collection/protocol/ga4/validating-events?client_type=gtag"
EVENTS = "https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference/events"
USE = "https://developers.google.com/analytics/devguides/collection/protocol/ga4/use-cases"
LIMITS = "https://support.google.com/analytics/answer/9267744"
TXID = "https://support.google.com/analytics/answer/12313109"
UID = "https://developers.google.com/analytics/devguides/collection/ga4/uid-data"
CHANNELS = "https://support.google.com/analytics/answer/9756891"

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
STRICT = "ENFORCE_RECOMMENDATIONS"
HASH = "a" * 64
WRONG_SECRET = "not-the-stream-secret-7Qx"


@pytest.fixture(scope="module")
def _server():
    sandbox = GA4Sandbox(clock=Clock(frozen_at=NOW))
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def ga4(_server):
    """One server for the module (stopping one takes a poll interval), reset for each test."""
    _server.reset()
    _server.clock.freeze(NOW)
    return _server


def mp(ga4, body, *, debug=False, secret=None, measurement_id=None):
    """POST a Measurement Protocol request as a sender would."""
    path = "/debug/mp/collect" if debug else "/mp/collect"
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(ga4.url + path, data=data, timeout=5, headers={"Content-Type": "application/json"},
                         params={"measurement_id": measurement_id or ga4.measurement_id,
                                 "api_secret": secret or ga4.api_secret})


def messages(ga4, body):
    response = mp(ga4, body, debug=True)
    assert response.status_code == 200
    return response.json()["validationMessages"]


def micros(moment):
    return int(moment.timestamp() * 1_000_000)


def purchase(transaction_id, value, currency="USD", **params):
    return {"name": "purchase", "params": {"transaction_id": transaction_id, "value": value, "currency": currency,
                                           **params}}


def hit(ga4, client_id, url, referrer="", session_id="1763640000"):
    """A gtag.js page_view hit with GA4's own parameter names."""
    response = requests.get(ga4.url + "/g/collect", timeout=5, params={
        "v": "2", "tid": ga4.measurement_id, "cid": client_id, "sid": session_id, "en": "page_view", "dl": url,
        "dr": referrer})
    assert response.status_code == 204


# -- production endpoint ----------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"client_id": "1.2", "events": [purchase("t1", 10)]},
    b"{not json",
    b"",
    {"client_id": "1.2", "events": "not a list"},
    {"client_id": "1.2", "names": [], "events": [{"name": "x"}]},
    {"client_id": "1.2", "events": [{"name": "_reserved_looking"}] * 30},
], ids=["good", "malformed", "empty", "wrong-type", "unknown-field", "over-limits"])
def test_collect_answers_204_with_an_empty_body_to_anything(ga4, body):
    """§6.2: production "returns a 2xx status code if the HTTP request is received ... doesn't
    return an error code if the payload is malformed" ([REF]); observed 204 No Content
    (https://github.com/br33f/php-GA4-Measurement-Protocol/issues/16)."""
    response = mp(ga4, body)
    assert (response.status_code, response.content) == (204, b"")


def test_malformed_requests_are_dropped_with_the_parse_message(ga4):
    """§6.1: a malformed payload ("Unable to parse Measurement Protocol JSON payload") is
    rejected as a whole ([VAL]); the log keeps what the validator would have said."""
    mp(ga4, {"client_id": "1.2", "names": [], "events": [purchase("t1", 10)]})
    [dropped] = ga4.dropped_requests()
    assert dropped["dropped"].startswith("malformed") and ga4.events == []
    assert "Cannot find field" in dropped["validation"][0]["description"]


def test_wrong_secret_or_stream_is_dropped_silently_and_no_secret_is_ever_logged(ga4):
    """§1.2 and P2: a wrong or other-stream api_secret still gets 204 and nothing is recorded
    (https://github.com/br33f/php-GA4-Measurement-Protocol/issues/16); P11: the secret is a
    query parameter and must never reach logs ([REF])."""
    ga4.register_user("1.2", "google", "cpc")
    assert mp(ga4, {"client_id": "1.2", "events": [purchase("t1", 10)]}, secret=WRONG_SECRET).status_code == 204
    mp(ga4, {"client_id": "1.2", "events": [purchase("t2", 10)]}, measurement_id="G-OTHERSTREAM")
    mp(ga4, {"client_id": "1.2", "events": [purchase("t3", 10)]}, debug=True, secret=WRONG_SECRET)
    assert ga4.events == [] and ga4.report("firstUserSource") == {}
    assert [entry["dropped"] for entry in ga4.dropped_requests()] == [
        "wrong api_secret", "unknown measurement_id (or not a web stream)"]
    for route in ("requests", "dropped"):
        logged = requests.get(f"{ga4.url}/_sandbox/{route}", timeout=5).text
        assert ga4.api_secret not in logged and WRONG_SECRET not in logged
    assert {entry["query"]["api_secret"] for entry in ga4.request_log()} == {"***"}


def test_request_log_has_status_and_what_the_strict_validator_would_say(ga4):
    """Common emulator contract + §10 harness: record payloads for assertions, with the
    ENFORCE_RECOMMENDATIONS verdict (§1.3 client_id format) though production accepted it."""
    mp(ga4, {"client_id": "uuid-like-id", "events": [purchase("t1", 10)]})
    [entry] = ga4.request_log()
    assert (entry["kind"], entry["method"], entry["path"], entry["status"]) == ("collect", "POST", "/mp/collect", 204)
    assert entry["body"]["client_id"] == "uuid-like-id" and entry["at"] == NOW.isoformat()
    assert [m["fieldPath"] for m in entry["validation"]] == ["client_id"]
    assert len(ga4.events) == 1  # RELAXED production still keeps it
    ga4.reset_log()
    assert ga4.request_log() == []


def test_production_ignores_what_exceeds_the_limits(ga4):
    """§3.1-§3.3 and §6.1: RELAXED "ignores parameters that exceed limits" ([REF]); GA "doesn't
    log events, event parameters, and user properties that exceed" them ([LIMITS])."""
    params = {f"p{n}": n for n in range(30)}
    params.update({"ga_session_id": 1, "long": "x" * 101, "page_title": "t" * 300, "nested": {"a": 1}})
    events = [{"name": "custom_event", "params": params}, {"name": "session_start"}, {"name": "bad-name"}]
    events += [{"name": "filler"}] * 25
    mp(ga4, {"client_id": "1.2", "user_id": "u" * 257, "events": events})
    kept = ga4.events
    assert [event.name for event in kept] == ["custom_event"] + ["filler"] * 22  # 25 events, 2 refused
    assert list(kept[0].params) == [f"p{n}" for n in range(25)] and kept[0].user_id is None
    ignored = {item["fieldPath"] for item in ga4.request_log()[0]["ignored"]}
    assert {"events[1]", "events[2]", "events[25]", "user_id", "events[0].params.p25",
            "events[0].params.long"} <= ignored


def test_timestamps_older_than_72_hours_are_clamped_and_event_timestamps_win(ga4):
    """§3.4: RELAXED "accepts the event ... but overrides its timestamp to 72 hours ago" ([SEND]);
    §2.1: per-event timestamp_micros beats the request's, which beats receipt time."""
    old, recent = micros(NOW - timedelta(hours=80)), micros(NOW - timedelta(hours=1))
    mp(ga4, {"client_id": "1.2", "timestamp_micros": old,
             "events": [{"name": "a"}, {"name": "b", "timestamp_micros": recent}]})
    mp(ga4, {"client_id": "1.2", "events": [{"name": "c"}, {"name": "d", "timestamp_micros": str(recent)}]})
    assert [event.at for event in ga4.events] == [NOW - timedelta(hours=72), NOW - timedelta(hours=1), NOW,
                                                  NOW - timedelta(hours=1)]


# -- validation server ------------------------------------------------------------------

def _event(name="custom_event", **params):
    return {"name": name, "params": params} if params else {"name": name}


def _body(*events, **fields):
    return {"client_id": "123456789.1700000000", "events": list(events) or [_event()], **fields}


def _too_many(count):
    return {f"p{n}": n for n in range(count)}


VALIDATION_TABLE = [
    # (id, body, behaviour, expected code, expected fieldPath, source)
    ("event-name-underscore", _body(_event("_bad")), None, "NAME_INVALID", "events", f"§3.1, §6.1 {SEND}"),
    ("event-name-hyphen", _body(_event("bad-name")), None, "NAME_INVALID", "events", f"§3.1 {SEND}"),
    ("event-name-41-chars", _body(_event("e" * 41)), None, "NAME_INVALID", "events", f"§3.1 {SEND}"),
    ("event-reserved", _body(_event("session_start")), None, "NAME_RESERVED", "events", f"§3.3 {REF}"),
    ("event-app-only", _body(_event("screen_view")), None, "NAME_RESERVED", "events", f"§3.3 {REF}"),
    ("event-name-missing", _body({"params": {}}), None, "VALUE_REQUIRED", "events[0].name", f"§2.1 {REF}"),
    ("param-name-digit", _body(_event(**{"1st": 1})), None, "NAME_INVALID", "events[0].params.1st",
     f"§3.1 {SEND}"),
    ("param-name-41-chars", _body(_event(**{"p" * 41: 1})), None, "NAME_INVALID", "events[0].params." + "p" * 41,
     f"§3.1 {SEND}"),
    ("param-reserved-prefix", _body(_event(ga_session_id=1)), None, "NAME_RESERVED", "events[0].params.ga_session_id",
     f"§3.3 {REF}"),
    ("param-reserved-name", _body(_event(firebase_conversion=1)), None, "NAME_RESERVED",
     "events[0].params.firebase_conversion", f"§3.3 {REF}"),
    ("param-value-101", _body(_event(note="v" * 101)), None, "VALUE_OUT_OF_BOUNDS", "events[0].params.note",
     f"§3.1 {SEND}"),
    ("page-title-301", _body(_event(page_title="t" * 301)), None, "VALUE_OUT_OF_BOUNDS",
     "events[0].params.page_title", f"§3.2 {LIMITS}"),
    ("page-referrer-421", _body(_event(page_referrer="r" * 421)), None, "VALUE_OUT_OF_BOUNDS",
     "events[0].params.page_referrer", f"§3.2 {LIMITS}"),
    ("page-location-1001", _body(_event(page_location="l" * 1001)), None, "VALUE_OUT_OF_BOUNDS",
     "events[0].params.page_location", f"§3.2 {LIMITS}"),
    ("26-events", _body(*[_event()] * 26), None, "EXCEEDED_MAX_ENTITIES", "events", f"§3.1 {SEND}"),
    ("26-params", _body(_event(**_too_many(26))), None, "EXCEEDED_MAX_ENTITIES", "events[0].params",
     f"§3.1 {SEND}"),
    ("26-user-properties", _body(user_properties={f"u{n}": {"value": n} for n in range(26)}), None,
     "EXCEEDED_MAX_ENTITIES", "user_properties", f"§3.1 {SEND}"),
    ("user-property-name-25", _body(user_properties={"u" * 25: {"value": 1}}), None, "NAME_INVALID",
     "user_properties." + "u" * 25, f"§3.1 {SEND}"),
    ("user-property-reserved", _body(user_properties={"first_open_time": {"value": 1}}), None, "NAME_RESERVED",
     "user_properties.first_open_time", f"§3.3 {REF}"),
    ("user-property-reserved-prefix", _body(user_properties={"google_x": {"value": 1}}), None, "NAME_RESERVED",
     "user_properties.google_x", f"§3.3 {REF}"),
    ("user-property-value-37", _body(user_properties={"plan": {"value": "v" * 37}}), None, "VALUE_OUT_OF_BOUNDS",
     "user_properties.plan", f"§3.1 {SEND}"),
    ("item-without-id-or-name", _body(purchase("t", 1, items=[{"price": 1}])), None, "VALUE_REQUIRED",
     "events[0].params.items[0]", f"§4.1 {EVENTS}"),
    ("item-11-custom-params", _body(purchase("t", 1, items=[{"item_id": "a", **_too_many(11)}])), None,
     "EXCEEDED_MAX_ENTITIES", "events[0].params.items[0]", f"§3.1 {SEND}"),
    ("item-value-101", _body(purchase("t", 1, items=[{"item_name": "n" * 101}])), None, "VALUE_OUT_OF_BOUNDS",
     "events[0].params.items[0].item_name", f"§3.1 {SEND}"),
    ("client-id-missing", {"events": [_event()]}, None, "VALUE_REQUIRED", "client_id", f"§2.1 {REF}"),
    ("client-id-format", _body(client_id="f81d4fae-7dec-11d0"), STRICT, "VALUE_INVALID", "client_id",
     f"§1.3 {REF}"),
    ("client-id-cookie-format", _body(client_id="GA1.1.123.456"), STRICT, "VALUE_INVALID", "client_id",
     f"§1.3-§1.4 {REF}"),
    ("user-id-257", _body(user_id="u" * 257), None, "VALUE_OUT_OF_BOUNDS", "user_id", f"§2.1 {LIMITS}"),
    ("event-timestamp-73h", _body({"name": "e", "timestamp_micros": micros(NOW - timedelta(hours=73))}), STRICT,
     "VALUE_OUT_OF_BOUNDS", "events[0].timestamp_micros", f"§3.4 {SEND}"),
    ("request-timestamp-future", _body(timestamp_micros=micros(NOW + timedelta(hours=1))), STRICT,
     "VALUE_OUT_OF_BOUNDS", "timestamp_micros", f"§3.4 {USE}"),
    ("user-property-timestamp-73h", _body(user_properties={"plan": {
        "value": "pro", "timestamp_micros": micros(NOW - timedelta(hours=73))}}), STRICT, "VALUE_OUT_OF_BOUNDS",
     "user_properties.plan.timestamp_micros", f"§3.4 {SEND}"),
    ("value-without-currency", _body(_event("generate_lead", value=100)), None, "VALUE_REQUIRED",
     "events[0].params.currency", f"§4.4 {EVENTS}"),
    ("currency-not-iso", _body(_event("generate_lead", value=100, currency="usd")), None, "VALUE_INVALID",
     "events[0].params.currency", f"§4.4 {EVENTS}"),
    ("value-as-string", _body(purchase("t", "9.99")), STRICT, "VALUE_INVALID", "events[0].params.value",
     f"§6.1 {REF}, P8 {EVENTS}"),
    ("purchase-without-transaction-id", _body(_event("purchase", value=1, currency="USD")), None,
     "VALUE_REQUIRED", "events[0].params.transaction_id", f"§4.1 {EVENTS}"),
    ("transaction-id-number", _body(purchase(123, 1)), STRICT, "VALUE_INVALID", "events[0].params.transaction_id",
     f"§4.1 {EVENTS}, §6.1 {REF}"),
    ("refund-empty-transaction-id", _body(_event("refund", transaction_id="", value=1, currency="USD")), None,
     "VALUE_REQUIRED", "events[0].params.transaction_id", f"§4.2-§4.3 {TXID}"),
    ("email-not-hashed", _body(user_id="u1", user_data={"sha256_email_address": ["jane@example.com"]}), None,
     "VALUE_INVALID", "user_data.sha256_email_address", f"§7.2 {UID}"),
    ("four-emails", _body(user_id="u1", user_data={"sha256_email_address": [HASH] * 4}), None,
     "EXCEEDED_MAX_ENTITIES", "user_data.sha256_email_address", f"§7.2 {UID}"),
    ("four-phones", _body(user_id="u1", user_data={"sha256_phone_number": [HASH] * 4}), None,
     "EXCEEDED_MAX_ENTITIES", "user_data.sha256_phone_number", f"§7.2 {UID}"),
    ("three-addresses", _body(user_id="u1", user_data={"address": [{"city": "x"}] * 3}), None,
     "EXCEEDED_MAX_ENTITIES", "user_data.address", f"§7.2 {UID}"),
    ("address-name-not-hashed", _body(user_id="u1", user_data={"address": {"sha256_first_name": "Jane"}}), None,
     "VALUE_INVALID", "user_data.address[0].sha256_first_name", f"§7.2 {UID}"),
    ("user-data-without-user-id", _body(user_data={"sha256_email_address": HASH}), STRICT, "VALUE_REQUIRED",
     "user_id", f"§7.2 {UID}"),
    ("consent-value", _body(consent={"ad_user_data": "YES"}), None, "VALUE_INVALID", "consent.ad_user_data",
     f"§2.1 {REF}"),
    ("no-events", {"client_id": "1.2", "events": []}, None, "VALUE_REQUIRED", "events", f"§2.1 {REF}"),
]


@pytest.mark.parametrize("body, behaviour, code, field_path, source",
                         [pytest.param(*row[1:], id=row[0]) for row in VALIDATION_TABLE])
def test_validation_messages(ga4, body, behaviour, code, field_path, source):
    """§6.1: the validation server answers 200 {"validationMessages": [{fieldPath, description,
    validationCode}]} with the seven documented codes ([VAL]); each row names its own source."""
    if behaviour:
        body = {**body, "validation_behavior": behaviour}
    found = messages(ga4, body)
    assert (code, field_path) in [(m["validationCode"], m.get("fieldPath")) for m in found], (source, found)
    assert all(m["description"] for m in found)


@pytest.mark.parametrize("raw, fragment, code", [
    (b"{not json", "Unable to parse Measurement Protocol JSON payload.", "VALUE_INVALID"),
    (b"[1, 2]", "Expected a JSON object", "VALUE_INVALID"),
    (json.dumps(_body(names=[1])).encode(), "names: Cannot find field.", "VALUE_INVALID"),
    (json.dumps({"client_id": "1.2", "events": [{"names": "e"}]}).encode(), "(events[0]) names: Cannot find field.",
     "VALUE_INVALID"),
    (json.dumps(_body(consent={"analytics_storage": "GRANTED"})).encode(), "(consent) analytics_storage: Cannot",
     "VALUE_INVALID"),
    (json.dumps(_body(client_id=123.456)).encode(), "client_id: Invalid value", "VALUE_INVALID"),
    (json.dumps(_body(_event(note="x" * 99)) | {"user_agent": "u" * 130_000}).encode(), "130kB",
     "VALUE_OUT_OF_BOUNDS"),
], ids=["bad-json", "not-an-object", "unknown-top-level-field", "unknown-event-field", "unknown-consent-field",
        "wrong-type", "body-130kB"])
def test_malformed_payloads_give_one_message_without_field_path(ga4, raw, fragment, code):
    """§6.1: "Unable to parse Measurement Protocol JSON payload. (events[0]) names: Cannot find
    field." comes without fieldPath (observed in https://github.com/br33f/php-GA4-Measurement-Protocol
    tests); §3.1: the POST body must be < 130 kB ([SEND])."""
    [message] = messages(ga4, raw)
    assert fragment in message["description"] and message["validationCode"] == code
    assert "fieldPath" not in message


@pytest.mark.parametrize("behaviour", ["RELAXED", STRICT])
def test_a_correct_request_has_no_messages_in_either_mode(ga4, behaviour):
    """§6.1: a valid request gives {"validationMessages": []}; §3.2 long-value exceptions,
    §2.2 session_id exempt from the length limit, §7.2 hashed user_data ([VAL], [LIMITS], [UID])."""
    body = {
        "client_id": "123456789.1700000000", "user_id": "crm-contact-0031x", "validation_behavior": behaviour,
        "timestamp_micros": micros(NOW - timedelta(hours=71)),
        "consent": {"ad_user_data": "GRANTED", "ad_personalization": "DENIED"},
        "user_properties": {"customer_tier": {"value": "gold"}},
        "user_data": {"sha256_email_address": [HASH], "sha256_phone_number": HASH.upper(),
                      "address": [{"sha256_first_name": HASH, "city": "berlin", "country": "DE"}]},
        "events": [purchase("sfdc-opp-1", 24000.5, "EUR", engagement_time_msec=1, page_title="t" * 300,
                            session_id="s1700000000$o1" + "x" * 99,
                            items=[{"item_id": "plan", "price": 24000.5, "quantity": 1}]),
                   {"name": "qualify_lead", "timestamp_micros": micros(NOW),
                    "params": {"value": 0, "currency": "USD"}}]}
    assert messages(ga4, body) == []
    assert messages(ga4, {"client_id": "1.2", "user_id": "u1", "user_data": {"sha256_email_address": HASH},
                          "validation_behavior": behaviour}) == []  # user data alone needs no events (§7.2)


def test_relaxed_and_enforce_recommendations_differ(ga4):
    """§6.1 ([REF]): RELAXED accepts a non-GA client_id, wrongly typed values and timestamps
    outside 72 h; ENFORCE_RECOMMENDATIONS rejects them (§1.3, §3.4)."""
    body = {"client_id": "f81d4fae-7dec", "timestamp_micros": micros(NOW + timedelta(minutes=5)),
            "events": [{**purchase("t1", "10"), "timestamp_micros": micros(NOW - timedelta(hours=80))}]}
    assert messages(ga4, body) == []
    strict = messages(ga4, {**body, "validation_behavior": STRICT})
    assert sorted((m["validationCode"], m["fieldPath"]) for m in strict) == [
        ("VALUE_INVALID", "client_id"), ("VALUE_INVALID", "events[0].params.value"),
        ("VALUE_OUT_OF_BOUNDS", "events[0].timestamp_micros"), ("VALUE_OUT_OF_BOUNDS", "timestamp_micros")]


def test_validation_server_ignores_the_stream_ids_and_records_no_events(ga4):
    """§1.2 and §1.1: the validation server does not validate api_secret or measurement_id, and
    "Events sent to the validation server don't show up in reports." ([VAL])"""
    response = mp(ga4, _body(purchase("t1", 10)), debug=True, secret=WRONG_SECRET, measurement_id="G-NOPE")
    assert response.json() == {"validationMessages": []}
    assert response.headers["Content-Type"].startswith("application/json")
    assert ga4.events == [] and ga4.dropped_requests() == []


# -- ecommerce ----------------------------------------------------------------------------

def test_purchases_dedupe_by_transaction_id_and_refunds_subtract(ga4):
    """§4.2: GA4 "deduplicates purchase events with the same transaction ID" and "will
    deduplicate all purchase events that have transaction_id=''" ([TXID]); §4.3 a refund
    carries the purchase's transaction_id and a positive value ([EVENTS])."""
    ga4.register_user("1.2", "google", "cpc")
    for _ in range(2):
        mp(ga4, {"client_id": "1.2", "events": [purchase("sf:006A", 100)]})
    mp(ga4, {"client_id": "1.2", "events": [purchase("", 5), purchase("", 7)]})
    mp(ga4, {"client_id": "1.2", "events": [{"name": "refund", "params": {
        "transaction_id": "sf:006A", "value": 40, "currency": "USD"}}]})
    assert ga4.report("firstUserSource") == {"google": Decimal(65)}
    assert ga4.report("firstUserSource", "grossPurchaseRevenue") == {"google": Decimal(105)}
    assert ga4.report("firstUserSource", "refundAmount") == {"google": Decimal(40)}
    assert ga4.report("firstUserSource", "transactions") == {"google": 2}
    assert ga4.report("transactionId", "purchaseRevenue") == {"": Decimal(5), "sf:006A": Decimal(60)}
    ignored = [i["reason"] for entry in ga4.request_log() for i in entry.get("ignored", [])]
    assert ignored == ["duplicate purchase of transaction_id 'sf:006A'", "duplicate purchase of transaction_id ''"]


def test_revenue_needs_a_numeric_value_and_a_currency(ga4):
    """§4.4 and P8: "If you set value then currency is required for revenue metrics to be
    computed" ([EVENTS]); a string value computes no revenue either."""
    ga4.register_user("1.2", "google", "cpc")
    mp(ga4, {"client_id": "1.2", "events": [purchase("a", 10, None), purchase("b", "10"), purchase("c", 10, "usd")]})
    assert ga4.report("firstUserSource") == {"google": Decimal(0)}
    assert ga4.report("firstUserSource", keep_empty_rows=False) == {}
    assert ga4.report("firstUserSource", "transactions") == {"google": 3}


# -- traffic sources and reports --------------------------------------------------------

SITE = "https://www.example.com/pricing"
VISITS = [
    # client, landing URL, referrer, expected first-user source / medium, channel
    ("10.1", SITE + "?utm_source=newsletter&utm_medium=email&utm_campaign=nov", "", "newsletter / email", "Email"),
    ("10.2", SITE + "?gclid=abc", "https://www.google.com/", "google / cpc", "Paid Search"),
    ("10.3", SITE + "?msclkid=xyz", "https://www.bing.com/", "bing / cpc", "Paid Search"),
    ("10.4", SITE, "https://www.google.de/", "google / organic", "Organic Search"),
    ("10.5", SITE, "https://duckduckgo.com/", "duckduckgo / organic", "Organic Search"),
    ("10.6", SITE, "https://www.ecosia.org/search?q=x", "ecosia.org / referral", "Organic Search"),
    ("10.7", SITE + "?fbclid=IwAR0", "https://m.facebook.com/", "m.facebook.com / referral", "Organic Social"),
    ("10.8", SITE, "https://www.linkedin.com/feed/", "linkedin.com / referral", "Organic Social"),
    ("10.9", SITE, "https://partner.example.org/post", "partner.example.org / referral", "Referral"),
    ("10.10", SITE, "", "(direct) / (none)", "Direct"),
    ("10.11", SITE + "?fbclid=IwAR1", "", "(direct) / (none)", "Direct"),
    ("10.12", SITE, "https://blog.example.com/post", "(direct) / (none)", "Direct"),
    ("10.13", SITE + "?utm_source=linkedin&utm_medium=paid_social", "", "linkedin / paid_social", "Paid Social"),
    ("10.14", SITE + "?utm_campaign=spring", "https://www.google.com/", "(not set) / (not set)", "Unassigned"),
    ("10.15", SITE, "https://search.brave.com/search?q=x", "search.brave.com / referral", "Referral"),
    ("10.16", SITE, "https://chatgpt.com/", "chatgpt.com / ai-assistant", "AI Assistant"),
    ("10.17", SITE + "?utm_source=chatgpt&utm_medium=email", "https://chatgpt.com/", "chatgpt / email", "Email"),
]


def test_first_user_source_comes_from_the_first_tagging_hit(ga4):
    """§2.4: first-user source/medium/campaign is "from the first_visit" and fixed; MP revenue
    with the same client_id reports under it without a session
    (https://developers.google.com/analytics/bigquery/traffic-attribution-data). Channels per
    Google's default channel group rules ([CHANNELS]) and its source lists, so a search engine
    missing from them (Brave) is a referral; an fbclid is only an indicator; a link tagged with
    utm_campaign alone leaves source and medium (not set) (inference); an AI assistant's
    referral is medium ai-assistant, channel AI Assistant, unless UTMs say otherwise
    (realtime-and-auth.md §4.1)."""
    for client_id, url, referrer, _, _ in VISITS:
        hit(ga4, client_id, url, referrer)
        hit(ga4, client_id, SITE + "?utm_source=later&utm_medium=cpc", session_id="1763650000")
    got = {client_id: (f"{user.source} / {user.medium}", user.channel) for client_id, user in ga4.users.items()}
    assert got == {client_id: (source_medium, channel) for client_id, _, _, source_medium, channel in VISITS}
    assert ga4.users["10.1"].campaign == "nov" and ga4.users["10.4"].campaign == "(organic)"


def test_gtag_hits_batched_in_a_post_body_and_other_streams_ignored(ga4):
    """§1.2: MP events join users "already used to send an event from gtag.js" ([VERIFY]).
    The stand-in takes gtag's own hit format: shared parameters (v, tid, cid, sid) in the
    query string, one event per body line when batched; hits for another measurement id do
    not touch this property."""
    shared = {"v": "2", "tid": ga4.measurement_id, "cid": "20.1", "sid": "1763640000"}
    lines = "\n".join(["en=page_view&dl=" + quote(SITE + "?utm_source=partner&utm_medium=affiliate", safe=""),
                       "en=scroll&dl=" + quote(SITE, safe="")])
    response = requests.post(ga4.url + "/g/collect", params=shared, data=lines, timeout=5,
                             headers={"Origin": "https://www.example.com"})
    assert response.status_code == 204 and response.headers["Access-Control-Allow-Origin"] == "https://www.example.com"
    requests.post(ga4.url + "/g/collect", params={**shared, "tid": "G-OTHER", "cid": "20.2"}, timeout=5)
    assert {client_id: user.channel for client_id, user in ga4.users.items()} == {"20.1": "Affiliates"}
    assert [(h["en"], h["kept"]) for h in ga4.hit_log()] == [("page_view", True), ("scroll", True), (None, False)]


def test_revenue_by_first_user_source_and_channel_in_the_property_currency(ga4):
    """§2.4 (User acquisition report, firstUserSourceMedium × totalRevenue) with revenue in
    the property currency; client ids never seen by tagging report as (not set) (§2.3,
    https://support.google.com/analytics/answer/14847402)."""
    for client_id, url, referrer, _, _ in VISITS[:4]:
        hit(ga4, client_id, url, referrer)
        mp(ga4, {"client_id": client_id, "events": [purchase(f"t-{client_id}", 10.10, "EUR")]})
    mp(ga4, {"client_id": "99.9", "events": [purchase("t-unknown", 1000, "JPY")]})
    mp(ga4, {"client_id": "GA1.1.10.4", "events": [purchase("t-cookie", 1, "GBP")]})  # _ga cookie form, §1.4
    assert ga4.report("firstUserDefaultChannelGroup") == {
        "(not set)": Decimal("6.7"), "Email": Decimal("11.11"), "Organic Search": Decimal("12.36"),
        "Paid Search": Decimal("22.22")}
    assert ga4.report("firstUserSourceMedium")["google / organic"] == Decimal("12.36")
    assert ga4.report("firstUserSource") == {"(not set)": Decimal("6.7"), "bing": Decimal("11.11"),
                                             "google": Decimal("23.47"), "newsletter": Decimal("11.11")}
    over_http = requests.get(ga4.url + "/_sandbox/report", timeout=5, params={
        "dimension": "firstUserCampaignName"}).json()
    assert over_http == {"dimension": "firstUserCampaignName", "metric": "totalRevenue", "currency": "USD", "rows": [
        {"dimension": "(not set)", "value": "28.92"}, {"dimension": "(organic)", "value": "12.36"},
        {"dimension": "nov", "value": "11.11"}]}


def test_a_property_in_another_currency_needs_its_own_rates():
    """§4.4: revenue is reported in the property currency; the emulator's default table is to
    USD, so a EUR property must say how to convert."""
    with pytest.raises(ValueError):
        GA4Sandbox(property_currency="EUR")
    sandbox = GA4Sandbox(clock=Clock(frozen_at=NOW), property_currency="EUR",
                         exchange_rates={"USD": Decimal("0.92"), "CHF": Decimal("1.07")})
    sandbox.start()
    try:
        sandbox.register_user("1.2", "google", "organic")
        mp(sandbox, {"client_id": "1.2", "events": [purchase("a", 100, "USD"), purchase("b", 0.1, "CHF"),
                                                    purchase("c", 5, "EUR")]})
        assert sandbox.report("firstUserSource") == {"google": Decimal("97.107")}
    finally:
        sandbox.stop()


def test_session_source_joins_only_a_real_session_within_24_hours(ga4):
    """§2.3: session attribution needs the session_id of a real tagged session, the request
    ≤ 24 h after the session start and an overridden timestamp inside the session ([USE]);
    otherwise session-scoped dimensions are (not set) and the channel Unassigned
    (https://support.google.com/analytics/answer/9900444)."""
    hit(ga4, "5.5", SITE + "?utm_source=bing&utm_medium=cpc", session_id="1763640000")
    inside, before = micros(NOW + timedelta(minutes=10)), micros(NOW - timedelta(hours=1))
    ga4.clock.advance(15 * 60)
    cases = [("real", 1763640000, None), ("string-id", "1763640000", None), ("fabricated", 1763649999, None),
             ("none", None, None), ("inside", 1763640000, inside), ("before-start", 1763640000, before)]
    for transaction_id, session_id, timestamp in cases:
        event = purchase(transaction_id, 1)
        if session_id is not None:
            event["params"]["session_id"] = session_id
        if timestamp is not None:
            event["timestamp_micros"] = timestamp
        mp(ga4, {"client_id": "5.5", "events": [event]})
    assert ga4.report("transactionId", "transactions") == {name: 1 for name, _, _ in cases}
    by_session = {event.transaction_id: event.session_source for event in ga4.events}
    assert by_session == {"real": "bing", "string-id": "bing", "fabricated": "(not set)", "none": "(not set)",
                          "inside": "bing", "before-start": "(not set)"}
    assert ga4.report("sessionDefaultChannelGroup", "transactions") == {"Paid Search": 3, "Unassigned": 3}
    ga4.clock.advance(24 * 3600)
    mp(ga4, {"client_id": "5.5", "events": [purchase("late", 1, session_id=1763640000)]})
    assert ga4.events[-1].session_source == "(not set)"


def test_a_direct_session_reports_the_last_non_direct_source(ga4):
    """§2.4 scopes: the first-user source stays the first visit's, while GA4's session-scoped
    reports give a direct return visit the user's last non-direct source (third-party tests
    of the Data API, https://tanelytics.com/ga4-bigquery-session-traffic_source/)."""
    hit(ga4, "6.6", SITE, "https://www.google.com/", session_id="100")
    hit(ga4, "6.6", SITE + "?utm_source=newsletter&utm_medium=email", session_id="200")
    hit(ga4, "6.6", SITE, "", session_id="300")
    for session_id in ("100", "200", "300"):
        mp(ga4, {"client_id": "6.6", "events": [{"name": "generate_lead", "params": {"session_id": session_id}}]})
    assert [event.session_source for event in ga4.events] == ["google", "newsletter", "newsletter"]
    assert ga4.report("firstUserSource", "eventCount") == {"google": 3}


def test_custom_dimensions_and_key_events_apply_from_registration_on(ga4):
    """§2.4 step 4: closedloop's own source travels as an event parameter registered as an
    event-scoped custom dimension; §5: lead events count as key events only once marked
    (https://developers.google.com/analytics/devguides/config/admin/v1/rest/v1beta/properties.keyEvents).
    Neither is retroactive in GA4."""
    lead = {"client_id": "1.2", "events": [{"name": "generate_lead", "params": {"lead_source": "webinar"}}]}
    mp(ga4, lead)
    with pytest.raises(ValueError):
        ga4.report("customEvent:lead_source")
    assert requests.post(ga4.url + "/_sandbox/custom-dimensions", json={"parameter_name": "lead_source"},
                         timeout=5).status_code == 201
    ga4.mark_key_event("generate_lead")
    mp(ga4, lead)
    mp(ga4, {"client_id": "1.2", "events": [purchase("p1", 1)]})
    assert ga4.report("customEvent:lead_source", "eventCount") == {"(not set)": 2, "webinar": 1}
    assert ga4.report("eventName", "keyEvents") == {"generate_lead": 1, "purchase": 1}
    assert ga4.report("eventName", "keyEvents:generate_lead") == {"generate_lead": 1}


def test_control_api_over_http(ga4):
    """Common emulator contract: the Python control operations exist under /_sandbox/ as JSON."""
    base = ga4.url + "/_sandbox"
    assert requests.get(base + "/credentials", timeout=5).json() == ga4.credentials
    assert requests.post(base + "/users", json={"client_id": "7.7", "source": "google", "medium": "organic"},
                         timeout=5).status_code == 201
    assert requests.post(base + "/users", json={"client_id": "7.7"}, timeout=5).status_code == 400
    assert requests.get(base + "/report", params={"dimension": "nope"}, timeout=5).status_code == 400
    hit(ga4, "8.8", SITE, "https://news.ycombinator.com/")
    mp(ga4, {"client_id": "7.7", "events": [purchase("t1", 100)]})
    mp(ga4, {"client_id": "7.7", "events": [purchase("t2", 1)]}, secret=WRONG_SECRET)
    assert requests.get(base + "/users", timeout=5).json() == {
        "7.7": {"source": "google", "medium": "organic", "campaign": "(not set)", "channel": "Organic Search"},
        "8.8": {"source": "news.ycombinator.com", "medium": "referral", "campaign": "(referral)",
                "channel": "Organic Social"}}  # on Google's social list
    assert [e["name"] for e in requests.get(base + "/events", timeout=5).json()] == ["purchase"]
    assert len(requests.get(base + "/dropped", timeout=5).json()) == 1
    assert requests.get(base + "/hits", timeout=5).json()[0]["cid"] == "8.8"
    assert requests.get(base + "/key-events", timeout=5).json() == ["purchase"]
    requests.post(base + "/faults", json={"count": 1, "status": 503}, timeout=5)
    assert mp(ga4, {"client_id": "7.7", "events": [purchase("t3", 1)]}).status_code == 503
    assert ga4.request_log()[-1]["status"] == 503
    requests.post(base + "/requests/reset", timeout=5)
    assert requests.get(base + "/requests", timeout=5).json() == []
    requests.post(base + "/reset", timeout=5)
    assert ga4.events == [] and ga4.users == {} and ga4.dropped_requests() == []


@pytest.mark.parametrize("source, medium, campaign, channel", [
    ("(direct)", "(none)", "", "Direct"),
    ("(direct)", "(not set)", "", "Direct"),
    ("(direct)", "", "", "Direct"),
    ("google", "cpc", "spring-cross-network", "Cross-network"),
    ("amazon", "cpc", "", "Paid Shopping"),
    ("partner", "ppc", "summer-shop", "Paid Shopping"),
    ("Google", "CPC", "", "Paid Search"),
    ("google", "cpm", "", "Paid Search"),
    ("facebook.com", "paid_social", "", "Paid Social"),
    ("youtube.com", "retargeting", "", "Paid Video"),
    ("partner", "cpm", "", "Display"),
    ("partner", "banner", "", "Display"),
    ("partner", "cpc", "", "Paid Other"),
    ("ebay.com", "referral", "", "Organic Shopping"),
    ("t.co", "referral", "", "Organic Social"),
    ("partner", "social-network", "", "Organic Social"),
    ("m.youtube.com", "referral", "", "Organic Video"),
    ("partner", "webinar-video", "", "Organic Video"),
    ("yahoo", "organic", "", "Organic Search"),
    ("news.google.com", "referral", "", "Organic Search"),
    ("x.com", "referral", "", "Referral"),
    ("partner", "app", "", "Referral"),
    ("e-mail", "newsletter", "", "Email"),
    ("partner", "affiliate", "", "Affiliates"),
    ("podcast", "audio", "", "Audio"),
    ("sms", "text", "", "SMS"),
    ("app", "web-push", "", "Mobile Push Notifications"),
    ("firebase", "x", "", "Mobile Push Notifications"),
    ("partner", "print", "", "Unassigned"),
    ("(not set)", "(not set)", "", "Unassigned"),
    ("chatgpt.com", "ai-assistant", "(ai-assistant)", "AI Assistant"),
])
def test_default_channel_group_rules(source, medium, campaign, channel):
    """Google's default channel group rules, "Channels for manual traffic", evaluated in order,
    case-insensitively, with Google's source-category list ([CHANNELS])."""
    assert default_channel_group(source, medium, campaign) == channel


def test_the_ai_assistant_channel_is_forward_only():
    """GA4 added AI Assistant on 2026-05-13 without reprocessing (realtime-and-auth.md §4.1)."""
    from datetime import datetime, timezone

    from sandbox.ga4.traffic import derive_traffic_source

    before = derive_traffic_source(SITE, "https://chatgpt.com/", at=datetime(2026, 5, 1, tzinfo=timezone.utc))
    after = derive_traffic_source(SITE, "https://chatgpt.com/", at=datetime(2026, 5, 13, tzinfo=timezone.utc))
    assert (before.source_medium, before.channel) == ("chatgpt.com / referral", "Referral")
    assert (after.source_medium, after.channel, after.campaign) == ("chatgpt.com / ai-assistant", "AI Assistant",
                                                                    "(ai-assistant)")
