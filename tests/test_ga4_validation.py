"""Local validation of Measurement Protocol requests, rule by rule.

Each row cites shared/reference/ga4-measurement-protocol.md (and the Google page behind it):
production GA4 accepts and silently drops bad data, so these checks are the only warning.
"""
from __future__ import annotations

import copy

import pytest

from adapters.ga4 import validate_request

GOOD = {
    "client_id": "123456789.1700000000",
    "events": [{"name": "purchase", "params": {"transaction_id": "salesforce:006A", "value": 1200.5,
                                               "currency": "EUR", "first_click_channel": "Paid Search",
                                               "engagement_time_msec": 1}}],
}


def with_(path, value):
    body = copy.deepcopy(GOOD)
    target = body
    *parents, last = path
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return body


def test_a_good_request_has_no_problems():
    assert validate_request(GOOD) == []


CASES = [
    # §1.3 client_id "Must be two positive numbers, joined by a period"
    (with_(["client_id"], "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"), "client_id"),
    (with_(["client_id"], "GA1.1.123.456"), "client_id"),
    # §3.1 event name ≤ 40, alphanumerics and underscores, starts with a letter
    (with_(["events", 0, "name"], "_purchase"), "events[0].name"),
    (with_(["events", 0, "name"], "x" * 41), "events[0].name"),
    # §3.3 reserved event names
    (with_(["events", 0, "name"], "session_start"), "events[0].name"),
    # §3.3 reserved parameter prefixes and names
    (with_(["events", 0, "params", "ga_session"], "1"), "events[0].params.ga_session"),
    (with_(["events", 0, "params", "firebase_conversion"], 1), "events[0].params.firebase_conversion"),
    # §3.1 parameter value ≤ 100 characters (page_location 1000)
    (with_(["events", 0, "params", "first_click_campaign"], "c" * 101), "events[0].params.first_click_campaign"),
    # §3.1 ≤ 25 parameters per event
    (with_(["events", 0, "params"], {f"p{n}": n for n in range(26)}), "events[0].params"),
    # §3.1 ≤ 25 events per request
    (with_(["events"], [{"name": "working_lead"}] * 26), "events"),
    # §4.4 / P8: value needs an ISO-4217 currency, and value must be a number
    (with_(["events", 0, "params", "currency"], KeyError), "events[0].params.currency"),
    (with_(["events", 0, "params", "value"], "1200.50"), "events[0].params.value"),
    # §4.2: purchase needs a non-empty transaction_id (an empty one de-duplicates everything)
    (with_(["events", 0, "params", "transaction_id"], ""), "events[0].params.transaction_id"),
    # §7.1 PII policy: no email or phone in any parameter
    (with_(["events", 0, "params", "lead_source"], "jane.doe@example.com"), "events[0].params.lead_source"),
    (with_(["events", 0, "params", "lead_source"], "+44 20 7946 0000"), "events[0].params.lead_source"),
    # §2.1 user_id ≤ 256
    (with_(["user_id"], "u" * 257), "user_id"),
    # §3.1 user properties: names ≤ 24, values ≤ 36
    (with_(["user_properties"], {"x" * 25: {"value": "a"}}), "user_properties." + "x" * 25),
    (with_(["user_properties"], {"plan": {"value": "v" * 37}}), "user_properties.plan"),
    # §7.2 user_data only with ad_user_data consent, hashed as 64 hex
    (with_(["user_data"], {"sha256_email_address": ["ab" * 32]}), "user_data"),
    # §6.1 unknown top-level fields make the request unparseable
    (with_(["names"], ["purchase"]), "body"),
]


@pytest.mark.parametrize("body, path", CASES)
def test_each_rule(body, path):
    problems = validate_request(body)
    assert path in [problem.path for problem in problems], problems


def test_body_size_limit():
    """§3.1: "POST body < 130 kB"."""
    event = {"name": "working_lead", "params": {f"p{n}": "v" * 100 for n in range(25)}}
    assert validate_request({**GOOD, "events": [event] * 25}) == []  # ~70 kB
    paths = [p.path for p in validate_request({**GOOD, "events": [event] * 75})]
    assert "events" in paths and "body" in paths
