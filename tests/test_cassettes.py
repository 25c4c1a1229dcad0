"""vcrpy cassettes pin the exact requests each adapter and the GA4 sender send.

The cassettes in ``tests/cassettes/`` were recorded from the sandbox emulators; CI replays them
without a network (record mode ``none``), and a test fails when an adapter sends a request
the cassette does not have, or no longer sends one it has. Re-record after an intended change:

    CLOSEDLOOP_RECORD_CASSETTES=1 pytest tests/test_cassettes.py

Secrets are filtered before anything is written (headers, form fields, query parameters,
token bodies), and ``test_no_secret_in_any_cassette`` scans every cassette for the real values.
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
import vcr

from adapters.base import LeadUpdate, NewField
from adapters.ga4 import Ga4Sender
from adapters.hubspot import HubSpotAdapter, HubSpotCredentials
from adapters.retry import RetryPolicy
from adapters.salesforce import SalesforceAdapter
from adapters.salesforce_auth import SalesforceCredentials
from sandbox.clock import Clock

CASSETTES = Path(__file__).parent / "cassettes"
RECORD = os.environ.get("CLOSEDLOOP_RECORD_CASSETTES") == "1"
SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 11, 30, tzinfo=timezone.utc)
FROZEN = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
TOKEN_FIELDS = re.compile(r'("(?:access_token|refresh_token|signature)"\s*:\s*")[^"]*(")')


def _scrub_response(response):
    body = response["body"].get("string", b"")
    if isinstance(body, bytes):
        text = body.decode("utf-8", "replace")
        scrubbed = TOKEN_FIELDS.sub(r"\1REDACTED\2", text)
        scrubbed = re.sub(r"<sessionId>[^<]*</sessionId>", "<sessionId>REDACTED</sessionId>", scrubbed)
        if scrubbed != text:
            response["body"]["string"] = scrubbed.encode("utf-8")
            response["headers"]["Content-Length"] = [str(len(response["body"]["string"]))]
    return response


recorder = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="all" if RECORD else "none",
    match_on=["method", "path", "query", "body"],  # not host/port: the sandbox runs on ephemeral ports
    filter_headers=[("authorization", "REDACTED"), "cookie", "set-cookie"],
    filter_query_parameters=[("api_secret", "***")],
    filter_post_data_parameters=[("client_secret", "REDACTED"),
                                 ("refresh_token", "REDACTED"), ("assertion", "REDACTED")],
    before_record_response=_scrub_response,
    decode_compressed_response=True,
)


@pytest.fixture
def salesforce(tmp_path):
    from sandbox.salesforce import SalesforceSandbox

    sandbox = SalesforceSandbox(data_dir=tmp_path / "sf", clock=Clock(frozen_at=FROZEN), require_fls=False)
    sandbox.start()
    sandbox.seed("Lead", [{"LastName": f"L{i}", "Company": "X", "Email": f"l{i}@x.example"} for i in range(3)])
    credentials = sandbox.credentials
    adapter = SalesforceAdapter(SalesforceCredentials(login_url=sandbox.url, auth="client_credentials",
                                                      client_id=credentials["client_id"],
                                                      client_secret=credentials["client_secret"]),
                                ca_bundle=str(sandbox.ca_path), policy=RetryPolicy(sleep=lambda s: None))
    yield sandbox, adapter
    sandbox.stop()


@pytest.fixture
def hubspot():
    from sandbox.hubspot import HubSpotSandbox

    sandbox = HubSpotSandbox(clock=Clock(frozen_at=FROZEN))
    sandbox.start()
    sandbox.seed("contacts", [{"email": f"c{i}@x.example"} for i in range(3)])
    adapter = HubSpotAdapter(HubSpotCredentials(access_token=sandbox.private_token), host=sandbox.url,
                             policy=RetryPolicy(sleep=lambda s: None))
    yield sandbox, adapter
    sandbox.stop()


def test_salesforce_requests(salesforce):
    sandbox, adapter = salesforce
    with recorder.use_cassette("salesforce_enrich.yaml") as cassette:
        adapter.ensure_fields([NewField("Lead", "CL_First_Click_Source__c", "First Click Source", "string")])
        leads = [record for page in adapter.iter_changed("Lead", ["Email", "CL_First_Click_Source__c"], SINCE, UNTIL,
                                                         where="IsConverted = false") for record in page]
        results = adapter.update_records([LeadUpdate("Lead", r.id, {"CL_First_Click_Source__c": "google"})
                                          for r in leads])
    assert [r.ok for r in results] == [True] * 3
    assert RECORD or cassette.all_played, "the adapter no longer sends a request the cassette pins"
    requests = [(r.method, r.path) for r in cassette.requests]
    assert requests == [("POST", "/services/oauth2/token"),
                        ("GET", "/services/data/v62.0/sobjects/Lead/describe"),
                        ("POST", "/services/data/v62.0/tooling/sobjects/CustomField"),
                        ("GET", "/services/data/v62.0/query/"),
                        ("PATCH", "/services/data/v62.0/composite/sobjects")]
    patch = json.loads(cassette.requests[-1].body)
    assert patch["allOrNone"] is False and patch["records"][0]["attributes"] == {"type": "Lead"}
    assert cassette.requests[-1].headers["Sforce-Auto-Assign"] == "FALSE"
    # closedloop's writes name it, so the change events they cause can be told apart and dropped
    assert cassette.requests[-1].headers["Sforce-Call-Options"] == "client=closedloop"


def test_hubspot_requests(hubspot):
    sandbox, adapter = hubspot
    with recorder.use_cassette("hubspot_enrich.yaml") as cassette:
        adapter.ensure_fields([NewField("contacts", "cl_first_click_source", "First Click Source", "string")])
        contacts = [record for page in adapter.iter_changed("contacts", ["email", "cl_first_click_source"], SINCE,
                                                            UNTIL) for record in page]
        results = adapter.update_records([LeadUpdate("contacts", r.id, {"cl_first_click_source": "google"})
                                          for r in contacts])
    assert [r.ok for r in results] == [True] * 3
    assert RECORD or cassette.all_played
    paths = [(r.method, r.path) for r in cassette.requests]
    assert paths == [("GET", "/crm/v3/properties/contacts/groups"), ("POST", "/crm/v3/properties/contacts/groups"),
                     ("GET", "/crm/v3/properties/contacts"), ("POST", "/crm/v3/properties/contacts/batch/create"),
                     ("POST", "/crm/v3/objects/contacts/search"), ("POST", "/crm/v3/objects/contacts/batch/update")]
    search = json.loads(cassette.requests[4].body)
    assert search["filterGroups"][0]["filters"][0] == {"propertyName": "lastmodifieddate", "operator": "GTE",
                                                       "value": str(int(SINCE.timestamp() * 1000))}
    assert search["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]


def test_ga4_requests(ga4_sandbox):
    sender = Ga4Sender(ga4_sandbox.url, ga4_sandbox.measurement_id, ga4_sandbox.api_secret,
                       policy=RetryPolicy(sleep=lambda s: None))
    body = {"client_id": "123.456", "events": [{"name": "purchase", "params": {
        "transaction_id": "hubspot:42", "value": 10, "currency": "USD"}}]}
    with recorder.use_cassette("ga4_send.yaml") as cassette:
        sender.send(body)
    assert RECORD or cassette.all_played
    [request] = cassette.requests
    assert dict(re.findall(r"(\w+)=([^&]+)", request.uri.split("?", 1)[1])) == {
        "measurement_id": ga4_sandbox.measurement_id, "api_secret": "%2A%2A%2A"}
    assert json.loads(request.body) == body


def test_no_secret_in_any_cassette(tmp_path):
    """Scan every cassette for the sandbox's secret values and for credential shapes."""
    from sandbox.ga4 import GA4Sandbox
    from sandbox.hubspot import HubSpotSandbox
    from sandbox.salesforce import SalesforceSandbox

    salesforce = SalesforceSandbox(data_dir=tmp_path / "sf")
    secrets = [salesforce.credentials["client_secret"], salesforce.credentials["client_id"],
               salesforce.credentials["refresh_token"], HubSpotSandbox().private_token, GA4Sandbox().api_secret,
               "00D5g000004SbxA!"]
    files = sorted(CASSETTES.glob("*.yaml"))
    assert files, "no cassettes recorded"
    for path in files:
        text = path.read_text()
        for secret in secrets:
            assert secret not in text, f"{path.name} contains a secret"
        assert not re.search(r"Bearer [A-Za-z0-9._!-]{20,}", text), path.name
        assert not re.search(r"api_secret=(?!%2A%2A%2A|\*\*\*)", text), path.name
