"""Secrets never reach a log line, whichever way they travel."""
from __future__ import annotations

import io
import json
import logging

import pytest

from sync.ops.logs import configure_logging

SECRET = "pat-na1-11112222-3333-4444-5555-666677778888"


@pytest.fixture
def captured():
    stream = io.StringIO()
    configure_logging("DEBUG", "text", [SECRET], stream=stream)
    yield stream
    configure_logging("WARNING", "text", [], stream=io.StringIO())


@pytest.mark.parametrize("message", [
    f"token is {SECRET}",
    "POST https://www.google-analytics.com/mp/collect?measurement_id=G-1&api_secret=Zx9-abcDEF_123",
    "GET https://x/?a=1&access_token=eyJhbGciOi.payload.sig",
    "Authorization: Bearer 00D5g000004Ab1C!AQ4AQFaketoken12345",
    "connecting to postgresql+psycopg://closedloop:hunter22@db:5432/closedloop",
    'body {"access_token": "sessiontoken123", "instance_url": "https://x"}',
    "grant_type=refresh_token&client_secret=abcdef123&refresh_token=5Aep861.abc",
    "<sessionId>00Dxx!AQcAQH0dMHZfz972Szmpkb58urFRkgeBGsxL</sessionId>",
])
def test_redacted(captured, message):
    logging.getLogger("test").info(message)
    line = captured.getvalue()
    for secret in (SECRET, "Zx9-abcDEF_123", "eyJhbGciOi.payload.sig", "Q4AQFaketoken12345", "hunter22",
                   "sessiontoken123", "abcdef123", "5Aep861.abc", "AQcAQH0dMHZfz972"):
        assert secret not in line
    assert "***" in line


def test_secret_in_a_traceback_is_redacted(captured):
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        logging.getLogger("test").exception("boom")
    assert SECRET not in captured.getvalue() and "auth failed for ***" in captured.getvalue()


def test_json_lines_are_redacted_too():
    stream = io.StringIO()
    configure_logging("INFO", "json", [SECRET], stream=stream)
    try:
        logging.getLogger("test").info("sent %s", f"api_secret={SECRET}", extra={"crm": "hubspot"})
    finally:
        configure_logging("WARNING", "text", [], stream=io.StringIO())
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "sent api_secret=***" and entry["crm"] == "hubspot" and entry["level"] == "INFO"
