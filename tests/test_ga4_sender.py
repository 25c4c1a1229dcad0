"""closedloop's Measurement Protocol client against the GA4 emulator."""
from __future__ import annotations

import io
import logging

import pytest

from adapters.errors import RemoteError, TransientError
from adapters.ga4 import Ga4Sender
from adapters.retry import RetryPolicy
from sync.ops.logs import configure_logging

BODY = {"client_id": "123.456", "events": [{"name": "purchase", "params": {
    "transaction_id": "hubspot:42", "value": 99.5, "currency": "USD", "engagement_time_msec": 1}}]}


@pytest.fixture
def sender(ga4_sandbox):
    sleeps = []
    sender = Ga4Sender(ga4_sandbox.url, ga4_sandbox.measurement_id, ga4_sandbox.api_secret, timeout=2,
                       policy=RetryPolicy(attempts=3, sleep=sleeps.append))
    sender.sleeps = sleeps
    return sender


def test_send_reaches_the_property(sender, ga4_sandbox):
    ga4_sandbox.register_user("123.456", "google", "cpc")
    sender.send(BODY)
    assert ga4_sandbox.report("firstUserSource") == {"google": 99.5}
    [request] = ga4_sandbox.request_log()
    assert request["query"] == {"measurement_id": ga4_sandbox.measurement_id, "api_secret": "***"}


def test_validate_remotely_uses_strict_mode(sender, ga4_sandbox):
    messages = sender.validate_remotely({**BODY, "client_id": "not-a-ga-id"})
    assert [m["validationCode"] for m in messages] == ["VALUE_INVALID"]
    assert ga4_sandbox.request_log()[0]["body"]["validation_behavior"] == "ENFORCE_RECOMMENDATIONS"
    assert ga4_sandbox.events == []  # the validation server never records events


def test_5xx_and_dropped_connections_are_retried(sender, ga4_sandbox):
    ga4_sandbox.fail_next(1, 503)
    sender.send(BODY)
    ga4_sandbox.fail_next(1, "drop")
    sender.send(BODY)
    assert len(sender.sleeps) == 2 and len(ga4_sandbox.events) == 1  # the second purchase is a duplicate


def test_4xx_is_not_retried_and_errors_never_show_the_secret(sender, ga4_sandbox):
    ga4_sandbox.fail_next(1, 400)
    with pytest.raises(RemoteError) as caught:
        sender.send(BODY)
    assert sender.sleeps == [] and ga4_sandbox.api_secret not in str(caught.value)
    ga4_sandbox.fail_next(3, 502)
    stream = io.StringIO()
    configure_logging("DEBUG", "text", [], stream=stream)
    try:
        with pytest.raises(TransientError) as caught:
            sender.send(BODY)
        logging.getLogger("urllib3").debug("https://x/mp/collect?measurement_id=G&api_secret=%s", ga4_sandbox.api_secret)
    finally:
        configure_logging("WARNING", "text", [], stream=io.StringIO())
    assert ga4_sandbox.api_secret not in str(caught.value) and ga4_sandbox.api_secret not in stream.getvalue()
    assert ga4_sandbox.api_secret not in repr(sender)
