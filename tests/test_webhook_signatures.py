"""HubSpot's v3 webhook signature and event batches, checked against the recipe HubSpot documents
(realtime-and-auth.md §1.2): Base64(HMAC-SHA256(client secret, method + URI + body + timestamp)),
timestamps older than 5 minutes refused. The expected values here are computed with the standard
library from that recipe, independently of the code under test."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import pytest

from adapters.hubspot_webhooks import parse_events, signature_problem, signed_uri

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
URI = "https://hooks.example.com/hubspot/webhooks"
BODY = json.dumps([{"eventId": 1, "subscriptionId": 12345, "portalId": 62515, "occurredAt": 1564113600000,
                    "subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": 123,
                    "changeSource": "CRM", "changeFlag": "NEW", "appId": 54321}]).encode()


def documented_signature(method: str, uri: str, body: bytes, timestamp: str, secret: str = SECRET) -> str:
    source = f"{method}{uri}{body.decode()}{timestamp}".encode("utf-8")
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def check(*, body=BODY, uri=URI, method="POST", timestamp=None, signature=None, secret=SECRET, now=NOW):
    timestamp = ms(NOW - timedelta(seconds=3)) if timestamp is None else timestamp
    signature = documented_signature("POST", URI, BODY, timestamp) if signature is None else signature
    return signature_problem(secret, method=method, uri=uri, body=body, timestamp=timestamp, signature=signature,
                             now=now)


def test_a_request_signed_as_documented_passes():
    assert check() is None


@pytest.mark.parametrize("change, reason", [
    ({"body": BODY.replace(b"123", b"124")}, "does not match"),
    ({"uri": URI + "?x=1"}, "does not match"),
    ({"method": "PUT"}, "does not match"),
    ({"secret": "another-secret"}, "does not match"),
    ({"signature": "AAAA"}, "does not match"),
    ({"signature": ""}, "missing"),
    ({"timestamp": ""}, "missing"),
    ({"timestamp": "yesterday"}, "not a time"),
    ({"secret": ""}, "no client secret"),
])
def test_a_forged_or_tampered_request_is_refused(change, reason):
    assert reason in check(**change)


def test_a_signature_older_than_five_minutes_is_refused_even_when_it_matches():
    old = ms(NOW - timedelta(minutes=5, seconds=1))
    problem = check(timestamp=old, signature=documented_signature("POST", URI, BODY, old))
    assert "301 s old" in problem
    recent = ms(NOW - timedelta(minutes=4, seconds=59))
    assert check(timestamp=recent, signature=documented_signature("POST", URI, BODY, recent)) is None


def test_a_timestamp_from_the_future_is_refused():
    ahead = ms(NOW + timedelta(minutes=6))
    assert "future" in check(timestamp=ahead, signature=documented_signature("POST", URI, BODY, ahead))


def test_the_uri_is_signed_with_hubspots_listed_characters_decoded():
    encoded = "https://hooks.example.com/hubspot/webhooks?portal=a%3Ab%2fc&name=x%20y"
    assert signed_uri(encoded) == "https://hooks.example.com/hubspot/webhooks?portal=a:b/c&name=x%20y"
    timestamp = ms(NOW)
    signature = documented_signature("POST", signed_uri(encoded), BODY, timestamp)
    assert check(uri=encoded, timestamp=timestamp, signature=signature) is None


def test_a_batch_yields_its_events_and_names_each_bad_entry():
    body = json.dumps([
        {"subscriptionType": "contact.creation", "objectId": 51, "occurredAt": 1796130000000, "eventId": 7,
         "portalId": 62515, "subscriptionId": 1, "attemptNumber": 2, "changeSource": "CRM"},
        {"subscriptionType": "contact.propertyChange", "objectId": "52", "propertyName": "email",
         "propertyValue": "<script>", "occurredAt": 1796130000001},
        {"eventType": "object.propertyChange", "objectTypeId": "0-3", "objectId": 9, "propertyName": "dealstage"},
        {"subscriptionType": "contact.creation"},
        {"subscriptionType": "object.creation", "objectTypeId": "2-999", "objectId": 1},
        "not an event",
    ]).encode()
    events, problems = parse_events(body)
    assert [(e.kind, e.object_id, e.property_name) for e in events] == [
        ("contact.creation", "51", ""), ("contact.propertyChange", "52", "email"), ("deal.propertyChange", "9",
                                                                                   "dealstage")]
    assert events[0].occurred_at == datetime(2026, 12, 1, 13, 0, tzinfo=timezone.utc) and events[0].attempt == 2
    assert problems == ["event 3: objectId is missing or not a number",
                        "event 4: objectTypeId '2-999' is not a contact or deal", "event 5: not an object"]


@pytest.mark.parametrize("body", [b"{}", b"not json", b"\xff\xfe"])
def test_a_body_that_is_not_an_array_is_refused_as_a_whole(body):
    with pytest.raises(ValueError):
        parse_events(body)
