"""The Salesforce emulator, driven by the real simple-salesforce 1.12.10 over HTTPS.

Every test that pins behaviour names its source: shared/reference/salesforce-api.md (below "ref")
section and the URL or code location given there. Sessions use ``trust_env = False`` and
``verify = <sandbox CA>`` (ref §0, TLS trust gotcha).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (SalesforceAuthenticationFailed, SalesforceExpiredSession,
                                          SalesforceGeneralError, SalesforceMalformedRequest,
                                          SalesforceRefusedRequest, SalesforceResourceNotFound)

from sandbox.clock import Clock
from sandbox.salesforce import SalesforceSandbox
from sandbox.salesforce.ids import suffix, to18
from sandbox.salesforce.index import SortedIndex

FROZEN = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


# -- helpers ------------------------------------------------------------------------------

def http(sandbox: SalesforceSandbox) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # ref §0: REQUESTS_CA_BUNDLE would otherwise override verify
    session.verify = str(sandbox.ca_path)
    return session


class Rewrite(HTTPAdapter):
    """The probe's adapter (shared/reference/salesforce_probe.py): *.salesforce.com → the emulator."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def send(self, request, **kwargs):
        request.url = re.sub(r"^https://[^/]*salesforce\.com", self.target, request.url)
        return super().send(request, **kwargs)


def rewriting(sandbox: SalesforceSandbox) -> requests.Session:
    session = http(sandbox)
    session.mount("https://", Rewrite(sandbox.url))
    return session


def token(sandbox: SalesforceSandbox, auth=None, **form) -> requests.Response:
    with http(sandbox) as session:
        return session.post(sandbox.url + "/services/oauth2/token", data=form, auth=auth, timeout=10)


def client(sandbox: SalesforceSandbox, **options) -> Salesforce:
    """Direct mode, as closedloop uses it: its own OAuth, then session_id + instance_url."""
    c = sandbox.credentials
    body = token(sandbox, auth=(c["client_id"], c["client_secret"]), grant_type="client_credentials").json()
    return Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], session=http(sandbox),
                      **options)


def assertion(sandbox: SalesforceSandbox, **claims) -> str:
    c = sandbox.credentials
    payload = {"iss": c["client_id"], "sub": c["username"], "aud": "https://login.salesforce.com",
               "exp": int(time.time()) + 180, **claims}
    return jwt.encode(payload, Path(c["private_key_path"]).read_text(), algorithm="RS256")


def error_of(caught) -> dict:
    return caught.value.content[0]


@pytest.fixture
def make_sandbox(tmp_path):
    """Sandboxes with non-default options, stopped after the test."""
    started = []

    def make(**options) -> SalesforceSandbox:
        options.setdefault("clock", Clock(frozen_at=FROZEN))
        sandbox = SalesforceSandbox(data_dir=tmp_path / f"sf{len(started)}", **options)
        sandbox.start()
        started.append(sandbox)
        return sandbox
    yield make
    for sandbox in started:
        sandbox.stop()


# -- authentication (ref §1) --------------------------------------------------------------

def test_each_oauth_grant_then_direct_mode(salesforce_sandbox):
    """Ref §1.1: client credentials (Basic header or form fields), JWT bearer, refresh token and
    password grants answer {access_token, instance_url without trailing slash, id, token_type,
    issued_at, signature}; simple-salesforce then runs in direct mode (session_id + instance_url).
    Token JSON example: SS tests/__init__.py L55-61 and
    https://developer.salesforce.com/docs/atlas.en-us.262.0.chatterapi.meta/chatterapi/quickstart_connecting.htm."""
    sb, c = salesforce_sandbox, salesforce_sandbox.credentials
    lead = sb.create("Lead", {"LastName": "Grant", "Company": "G"})
    grants = [
        ({"grant_type": "client_credentials"}, (c["client_id"], c["client_secret"])),
        ({"grant_type": "client_credentials", "client_id": c["client_id"], "client_secret": c["client_secret"]}, None),
        ({"grant_type": JWT_GRANT, "assertion": assertion(sb)}, None),
        ({"grant_type": "refresh_token", "client_id": c["client_id"], "client_secret": c["client_secret"],
          "refresh_token": c["refresh_token"]}, None),
        ({"grant_type": "password", "client_id": c["client_id"], "client_secret": c["client_secret"],
          "username": c["username"], "password": c["password"] + c["security_token"]}, None),
    ]
    for form, auth in grants:
        response = token(sb, auth=auth, **form)
        body = response.json()
        assert response.status_code == 200, (form["grant_type"], body)
        assert set(body) >= {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}
        assert body["instance_url"] == sb.url and not body["instance_url"].endswith("/")
        assert body["token_type"] == "Bearer"
        expected = hmac.new(c["client_secret"].encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256)
        assert body["signature"] == base64.b64encode(expected.digest()).decode()
        sf = Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], session=http(sb))
        assert [r["Id"] for r in sf.query("SELECT Id FROM Lead")["records"]] == [lead]
    assert sb.auth.logins == len(grants)


def test_oauth_failures_carry_salesforce_codes(salesforce_sandbox):
    """Ref §1.1/§4.1: token failures are HTTP 400 {"error", "error_description"}
    (SS tests/test_login.py L193-201); JWT claim errors from
    https://www.useparagon.com/integration-error-solutions/salesforce-invalid-grant-audience-is-invalid
    ("audience is invalid") and the "expired authorization code" answer for an expired exp."""
    sb, c = salesforce_sandbox, salesforce_sandbox.credentials
    cases = [
        (dict(grant_type="client_credentials", client_id="nope", client_secret="x"),
         ("invalid_client_id", "client identifier invalid")),
        (dict(grant_type="client_credentials", client_id=c["client_id"], client_secret="wrong"),
         ("invalid_client", "invalid client credentials")),
        (dict(grant_type="refresh_token", client_id=c["client_id"], refresh_token="stale"),
         ("invalid_grant", "expired access/refresh token")),
        (dict(grant_type="password", client_id=c["client_id"], client_secret=c["client_secret"],
              username=c["username"], password="wrong"), ("invalid_grant", "authentication failure")),
        (dict(grant_type="authorization_code", code="x"), ("unsupported_grant_type", "grant type not supported")),
        (dict(grant_type=JWT_GRANT, assertion=assertion(sb, aud="https://evil.example")),
         ("invalid_grant", "audience is invalid")),
        (dict(grant_type=JWT_GRANT, assertion=assertion(sb, exp=int(time.time()) - 60)),
         ("invalid_grant", "expired authorization code")),
        (dict(grant_type=JWT_GRANT, assertion=assertion(sb, iss="someone-else")),
         ("invalid_client_id", "client identifier invalid")),
        (dict(grant_type=JWT_GRANT, assertion=assertion(sb, sub="stranger@example.com")),
         ("invalid_grant", "user hasn't approved this consumer")),
    ]
    for form, (error, description) in cases:
        response = token(sb, **form)
        assert (response.status_code, response.json()) == (400, {"error": error, "error_description": description})
    forged = jwt.encode({"iss": c["client_id"], "sub": c["username"], "aud": "https://login.salesforce.com",
                         "exp": int(time.time()) + 60}, _other_key(), algorithm="RS256")
    assert token(sb, grant_type=JWT_GRANT, assertion=forged).json()["error_description"] == "invalid assertion"
    for audience in ("https://login.salesforce.com", "https://test.salesforce.com"):
        assert token(sb, grant_type=JWT_GRANT, assertion=assertion(sb, aud=audience)).status_code == 200
    # The emulator's own URL plays the My Domain host: not a documented audience (realtime-and-auth.md §3.2).
    my_domain = token(sb, grant_type=JWT_GRANT, assertion=assertion(sb, aud=sb.url))
    assert my_domain.json() == {"error": "invalid_grant", "error_description": "audience is invalid"}
    sb.auth.extra_audiences.add("https://acme.my.site.com")  # an Experience Cloud site is one
    assert token(sb, grant_type=JWT_GRANT, assertion=assertion(sb, aud="https://acme.my.site.com")).status_code == 200
    sb.auth.accept_my_domain_audience = True
    assert token(sb, grant_type=JWT_GRANT, assertion=assertion(sb, aud=sb.url)).status_code == 200


def _other_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_the_librarys_own_login_flows_through_the_rewriting_adapter(make_sandbox):
    """Ref §1.1/§1.2 and the probe: simple-salesforce posts SOAP login() to login.salesforce.com
    (login.py L239-250) and reads default-namespace sessionId/serverUrl; a bad password is a
    500 INVALID_LOGIN fault (SS tests/test_login.py L112-133); login() is refused from API 65.0
    (https://developer.salesforce.com/docs/platform/api/guide/sforce-api-calls-login.html). Its
    JWT (login.py L193-218) and client-credentials (login.py L219-230, My Domain) flows work too."""
    sb = make_sandbox()
    c = sb.credentials
    sf = Salesforce(username=c["username"], password=c["password"], security_token=c["security_token"],
                    session=rewriting(sb))
    assert sf.sf_instance == sb.url.removeprefix("https://")
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(username=c["username"], password="wrong", security_token="", session=rewriting(sb))
    assert caught.value.code == "INVALID_LOGIN"
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(username=c["username"], password=c["password"], security_token=c["security_token"],
                   version="65.0", session=rewriting(sb))
    assert caught.value.code == "UNSUPPORTED_API_VERSION"
    jwt_sf = Salesforce(username=c["username"], consumer_key=c["client_id"], privatekey_file=c["private_key_path"],
                        session=rewriting(sb))
    assert jwt_sf.query("SELECT Id FROM Organization")["totalSize"] == 1
    cc_sf = Salesforce(consumer_key=c["client_id"], consumer_secret=c["client_secret"], domain="closedloop.my",
                       session=rewriting(sb))
    assert cc_sf.limits()["DailyApiRequests"]["Max"] == 15000
    assert [e["kind"] for e in sb.request_log()].count("soap") == 3
    assert all("sandbox-password" not in str(e) for e in sb.request_log())
    lenient = make_sandbox(soap_login_max_version=None)
    assert Salesforce(username=c["username"], password=c["password"], security_token=c["security_token"],
                      version="66.0", session=rewriting(lenient)).sf_version == "66.0"


# -- query (ref §2) -------------------------------------------------------------------------

def test_query_all_iter_pages_by_batch_size_over_records_sharing_one_stamp(salesforce_sandbox):
    """Ref §2.1/§2.2: query + nextRecordsUrl pages honour Sforce-Query-Options: batchSize
    (200-2000; https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/api/sforce_api_calls_soql_changing_batch_size.htm),
    locators look like /services/data/v59.0/query/01g...-<offset>, totalSize is the whole result
    (https://developer.salesforce.com/docs/platform/api-rest/guide/resources-query.md). Ref §7:
    records written at one instant share SystemModstamp; ORDER BY SystemModstamp, Id keeps them
    in a stable order across pages."""
    sb = salesforce_sandbox
    ids = sb.seed("Lead", [{"LastName": f"L{n}", "Company": "Acme"} for n in range(450)])
    sf = client(sb)
    sb.reset_log()
    soql = ("SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp >= 2026-11-20T12:00:00Z "
            "ORDER BY SystemModstamp, Id")
    rows = list(sf.query_all_iter(soql, headers={"Sforce-Query-Options": "batchSize=200"}))
    assert [r["Id"] for r in rows] == sorted(ids) and all(len(i) == 18 for i in ids)
    assert {r["SystemModstamp"] for r in rows} == {"2026-11-20T12:00:00.000+0000"}
    queries = [e for e in sb.request_log() if "/query" in e["path"]]
    assert [e["path"].rsplit("-", 1)[-1] if "01g" in e["path"] else "first" for e in queries] == \
        ["first", "200", "400"]
    assert all(e["headers"]["Sforce-Query-Options"] == "batchSize=200" for e in queries)
    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert (first["totalSize"], first["done"], len(first["records"])) == (450, False, 200)
    assert re.fullmatch(r"/services/data/v59\.0/query/01g\w{15}-200", first["nextRecordsUrl"])
    assert first["records"][0]["attributes"] == {"type": "Lead",
                                                 "url": f"/services/data/v59.0/sobjects/Lead/{min(ids)}"}
    assert len(sf.query("SELECT Id FROM Lead")["records"]) == 450  # default batch 2,000
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_more("/services/data/v59.0/query/01g000000000000AAA-200", identifier_is_url=True)
    assert error_of(caught)["errorCode"] == "INVALID_QUERY_LOCATOR"
    sb.inject("invalid_locator")
    with pytest.raises(SalesforceMalformedRequest):
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)


def test_keyset_polling_on_system_modstamp(salesforce_sandbox):
    """Ref §7 (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/system_fields.htm):
    every write, the integration's own included, moves SystemModstamp and LastModifiedDate to
    now; ref §2.3: unquoted datetime literals with Z or ±hh:mm, compared in UTC."""
    sb = salesforce_sandbox
    early = sb.seed("Lead", [{"LastName": f"E{n}", "Company": "X"} for n in range(3)])
    sb.clock.advance(90)
    late = sb.create("Lead", {"LastName": "Late", "Company": "X"})
    sf = client(sb)
    after = sf.query("SELECT Id FROM Lead WHERE SystemModstamp > 2026-11-20T13:00:30+01:00 "
                     "ORDER BY SystemModstamp, Id")["records"]
    assert [r["Id"] for r in after] == [late]
    sb.clock.advance(30)
    sf.Lead.update(early[0], {"FirstName": "Enriched"})
    record = sb.record(early[0])
    assert record["SystemModstamp"] == record["LastModifiedDate"] == "2026-11-20T12:02:00.000+0000"
    assert record["LastModifiedById"] == sb.org.integration_user and record["CreatedById"] == sb.org.sales_rep
    window = sf.query("SELECT Id, LastModifiedById FROM Lead WHERE SystemModstamp >= 2026-11-20T12:01:00Z AND "
                      "SystemModstamp <= 2026-11-20T12:02:00Z ORDER BY SystemModstamp DESC, Id DESC")["records"]
    assert [r["Id"] for r in window] == [early[0], late]
    newest = sf.query("SELECT Id FROM Lead ORDER BY LastModifiedDate DESC, Id DESC LIMIT 2")["records"]
    assert [r["Id"] for r in newest] == [early[0], late]
    oldest = sf.query("SELECT Id FROM Lead WHERE CreatedDate < 2026-11-20T12:01:00Z ORDER BY CreatedDate, Id "
                      "LIMIT 2 OFFSET 1")["records"]
    assert [r["Id"] for r in oldest] == early[1:3]


def test_soql_subset(salesforce_sandbox):
    """Ref §2.2/§2.3/§8.3: parent paths nest (null when the lookup is empty), child subqueries
    are nested query results or null (https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/api/sforce_api_calls_soql_relationships_query_results.htm),
    IN/NOT IN/LIKE/NOT/OR, NULLS FIRST|LAST, LIMIT/OFFSET, COUNT(), 15-character ids accepted,
    queryAll returns recycled rows with IsDeleted = true (ref §7)."""
    sb = salesforce_sandbox
    a = sb.create("Lead", {"FirstName": "Ann", "LastName": "A", "Company": "Acme", "Email": "ann@acme.example",
                           "LeadSource": "Web", "Status": "Working - Contacted"})
    b = sb.create("Lead", {"LastName": "B", "Company": "O'Brien & Co", "Email": "b@obrien.example"})
    c = sb.create("Lead", {"LastName": "C_1", "Company": "Cee", "LeadSource": "Other"})
    ids = sb.convert_lead(a)
    sb.delete("Lead", c)
    sf = client(sb)

    def ids_of(soql, **kwargs):
        return [r["Id"] for r in sf.query(soql, **kwargs)["records"]]

    assert ids_of("SELECT Id FROM Lead WHERE Company = 'o\\'brien & co'") == [b]
    assert ids_of("SELECT Id FROM Lead WHERE (Email LIKE 'ann@%' OR LeadSource = null) AND NOT Company = 'Cee' "
                  "ORDER BY LastName") == [a, b]
    assert ids_of(f"SELECT Id FROM Lead WHERE Id IN ('{a[:15]}', '{c}') AND IsConverted = true") == [a]
    assert ids_of("SELECT Id FROM Lead WHERE LeadSource NOT IN ('Web') ORDER BY LeadSource NULLS LAST, Id") == [b]
    assert ids_of("SELECT Id FROM Lead ORDER BY LeadSource DESC NULLS LAST") == [a, b]
    assert ids_of("SELECT Id FROM Lead ORDER BY LeadSource NULLS FIRST LIMIT 1") == [b]
    assert ids_of("SELECT Id FROM Lead WHERE LastName LIKE 'C\\_%'") == []
    assert ids_of("SELECT Id FROM Lead WHERE LastName LIKE 'C\\_%'", include_deleted=True) == [c]
    assert sf.query("SELECT COUNT() FROM Lead WHERE CreatedDate = TODAY") == \
        {"totalSize": 2, "done": True, "records": []}
    [deleted] = sf.query_all("SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true", include_deleted=True)["records"]
    assert (deleted["Id"], deleted["IsDeleted"]) == (c, True)
    [lead, other] = sf.query("SELECT Id, ConvertedContact.Email, ConvertedContact.Account.Name, ConvertedDate, "
                             "Owner.Name FROM Lead ORDER BY LastName")["records"]
    assert lead["ConvertedContact"]["Email"] == "ann@acme.example"
    assert lead["ConvertedContact"]["Account"] == {
        "attributes": {"type": "Account", "url": f"/services/data/v59.0/sobjects/Account/{ids['accountId']}"},
        "Name": "Acme"}
    assert lead["ConvertedDate"] == "2026-11-20" and lead["Owner"]["Name"] == "Riley Rep"
    assert other["ConvertedContact"] is None and other["ConvertedDate"] is None  # nulls are present
    [opportunity] = sf.query("SELECT Id, Amount, (SELECT ContactId, IsPrimary FROM OpportunityContactRoles) "
                             "FROM Opportunity")["records"]
    roles = opportunity["OpportunityContactRoles"]
    assert (roles["totalSize"], roles["done"], roles["records"][0]["ContactId"], roles["records"][0]["IsPrimary"]) == \
        (1, True, ids["contactId"], True)
    sb.create("Opportunity", {"Name": "Lonely", "StageName": "Prospecting", "CloseDate": "2026-12-31"})
    lonely = sf.query("SELECT Name, (SELECT Id FROM OpportunityContactRoles) FROM Opportunity WHERE Name = 'Lonely'")
    assert lonely["records"][0]["OpportunityContactRoles"] is None


def test_soql_errors(salesforce_sandbox):
    """Ref §4.3: errors are 400 arrays [{"message","errorCode"}] whose message echoes the query
    with a caret and "ERROR at Row:1:Column:n" (probe fixture); str(datetime) in SOQL gives
    MALFORMED_QUERY "unexpected token: '12:52:08.062712+00:00'" (SS issue #500,
    https://github.com/simple-salesforce/simple-salesforce/issues/500); OFFSET > 2000 is
    NUMBER_OUTSIDE_VALID_RANGE; a URI over 16,384 bytes is HTTP 414 (ref §2.3, errorcodes.htm)."""
    sf = client(salesforce_sandbox)
    expectations = [
        ("SELECT Id, Nope__c FROM Lead", "INVALID_FIELD",
         "\nSELECT Id, Nope__c FROM Lead\n           ^\nERROR at Row:1:Column:12\nNo such column 'Nope__c' on entity "
         "'Lead'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field "
         "name. Please reference your WSDL or the describe call for the appropriate names."),
        ("SELECT Id FROM Lead WHERE SystemModstamp > 2026-11-20 12:52:08.062712+00:00", "MALFORMED_QUERY",
         "unexpected token: '12:52:08.062712+00:00'"),
        ("SELECT Id FROM Bogus", "INVALID_TYPE", "sObject type 'Bogus' is not supported."),
        ("SELECT Id FROM Lead OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"),
        ("SELECT Id FROM Lead WHERE CreatedDate > 2026-11-20", "INVALID_FIELD",
         "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed "
         "in quotes"),
        ("SELECT Id FROM Lead WHERE Company = 42", "INVALID_FIELD", "must be of type string and should be enclosed"),
        ("SELECT Id FROM Lead WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: abc"),
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
        ("SELECT Id, (SELECT Id FROM Nothings) FROM Opportunity", "INVALID_TYPE",
         "Didn't understand relationship 'Nothings'"),
        ("SELECT CurrencyIsoCode FROM Opportunity", "INVALID_FIELD", "No such column 'CurrencyIsoCode'"),
    ]
    for soql, code, message in expectations:
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.query(soql)
        assert caught.value.status == 400 and error_of(caught)["errorCode"] == code, soql
        assert message in error_of(caught)["message"], (soql, error_of(caught)["message"])
    ids = ", ".join(f"'00Q5g{n:010d}'" for n in range(1000))
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query(f"SELECT Id FROM Lead WHERE Id IN ({ids})")
    assert caught.value.status == 414


def test_get_updated_and_get_deleted(salesforce_sandbox):
    """Ref §7 (https://developer.salesforce.com/docs/platform/api-rest/guide/dome-get-updated.md):
    sf.Lead.updated/deleted (api.py L1180-1232) answer {"ids", "latestDateCovered"} and
    {"deletedRecords": [{"id", "deletedDate"}], "earliestDateAvailable", "latestDateCovered"};
    seconds are truncated, only the last 30 days, start must precede end by more than a minute."""
    sb = salesforce_sandbox
    kept, gone = (sb.create("Lead", {"LastName": name, "Company": "X"}) for name in ("Kept", "Gone"))
    sb.clock.advance(120)
    sb.delete("Lead", gone)
    sb.clock.advance(120)
    sf = client(sb)
    lead = sf.Lead
    updated = lead.updated(FROZEN - timedelta(minutes=1), FROZEN + timedelta(minutes=10, seconds=30))
    assert updated == {"ids": [kept], "latestDateCovered": "2026-11-20T12:04:00.000+0000"}
    deleted = lead.deleted(FROZEN, FROZEN + timedelta(minutes=5))
    assert deleted["deletedRecords"] == [{"id": gone, "deletedDate": "2026-11-20T12:02:00.000+0000"}]
    assert deleted["earliestDateAvailable"] == "2026-10-21T12:04:00.000+0000"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        lead.updated(FROZEN - timedelta(days=31), FROZEN)
    assert error_of(caught)["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        lead.updated(FROZEN, FROZEN + timedelta(seconds=59))
    assert "more than one minute" in error_of(caught)["message"]
    versions = sf.session.get(sb.url + "/services/data/").json()  # no session needed, no usage header
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions
    assert versions[-1]["version"] == "68.0"
    with pytest.raises(SalesforceResourceNotFound):
        Salesforce(instance_url=sb.url, session_id=sf.session_id, session=http(sb), version="99.0").limits()


# -- writes (ref §3) --------------------------------------------------------------------------

def test_collections_partial_failure_by_position_and_all_or_none(salesforce_sandbox):
    """Ref §3.2 (https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-update.html):
    HTTP 200 with SaveResults in request order; failed items carry no id and use statusCode;
    STRING_TOO_LONG "<Label>: data value too large: <value> (max length=<n>)" (ref §4.3);
    CANNOT_UPDATE_CONVERTED_LEAD "cannot reference converted lead" (ref §8.3); ENTITY_IS_DELETED;
    allOrNone rolls back with ALL_OR_NONE_OPERATION_ROLLED_BACK; more than 200 records is
    EXCEEDED_ID_LIMIT "record limit reached. cannot submit more than 200 records into this call"."""
    sb = salesforce_sandbox
    good, other, converted, deleted = (sb.create("Lead", {"LastName": name, "Company": "X"})
                                       for name in ("G", "O", "C", "D"))
    sb.convert_lead(converted, create_opportunity=False)
    sb.delete("Lead", deleted)
    sf = client(sb)
    sf.session.headers["Sforce-Auto-Assign"] = "FALSE"

    def lead(record_id, **values):
        return {"attributes": {"type": "Lead"}, "id": record_id, **values}

    records = [lead(good, FirstName="Ok"), lead(other, LastName="x" * 81), lead(converted, FirstName="No"),
               lead(deleted, FirstName="No"), lead(other, Status="Made Up"), lead(other, IsConverted=True),
               lead("003000000000000AAA", FirstName="No"), lead(good[:15], Email="not-an-email"),
               lead(other[:15], LeadSource="Trade Show", Phone=None)]
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records})
    assert [r["success"] for r in results] == [True, False, False, False, False, False, False, False, True]
    assert results[0] == {"id": good, "success": True, "errors": []} and results[8]["id"] == other
    assert all("id" not in r for r in results if not r["success"])
    assert [r["errors"][0] for r in results[1:8]] == [
        {"statusCode": "STRING_TOO_LONG", "message": f"Last Name: data value too large: {'x' * 81} (max length=80)",
         "fields": ["LastName"]},
        {"statusCode": "CANNOT_UPDATE_CONVERTED_LEAD", "message": "cannot reference converted lead", "fields": []},
        {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []},
        {"statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
         "message": "Status: bad value for restricted picklist field: Made Up", "fields": ["Status"]},
        {"statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE", "message": "Unable to create/update fields: IsConverted. "
         "Please check the security settings of this field and verify that it is read/write for your profile or "
         "permission set.", "fields": ["IsConverted"]},
        {"statusCode": "MALFORMED_ID", "message": "Lead ID: id value of incorrect type: 003000000000000AAA",
         "fields": ["Id"]},
        {"statusCode": "INVALID_EMAIL_ADDRESS", "message": "Email: invalid email address: not-an-email",
         "fields": ["Email"]}]
    assert sb.record(good)["FirstName"] == "Ok" and sb.record(other)["LeadSource"] == "Trade Show"
    before = sb.record(good)
    sb.clock.advance(5)
    rolled = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": True, "records": [
        lead(good, FirstName="Changed"), lead(other, LastName="y" * 81)]})
    assert rolled[0] == {"id": good, "success": False, "errors": [{
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records "
        "were valid and the request was using AllOrNone header", "fields": []}]}
    assert rolled[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert sb.record(good) == before  # stamps rolled back too
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="PATCH", json={"records": [lead(good, FirstName="n")] * 201})
    assert error_of(caught) == {"message": "record limit reached. cannot submit more than 200 records into this "
                                           "call", "errorCode": "EXCEEDED_ID_LIMIT"}
    with pytest.raises(SalesforceMalformedRequest) as caught:  # deserialisation fails the whole request
        sf.restful("composite/sobjects", method="PATCH", json={"records": [lead(good, FirstName="n"),
                                                                           lead(other, Unknown__c="x")]})
    assert error_of(caught)["errorCode"] == "INVALID_FIELD" and sb.record(good)["FirstName"] == "Ok"
    created = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "New"}, {"attributes": {"type": "Contact"}, "FirstName": "x"}]})
    assert created[0]["success"] and created[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"


def test_single_record_crud(salesforce_sandbox):
    """Ref §3.1: PATCH answers 204 and SFType.update returns 204 (api.py L1120-1150); POST create
    201 {"id","success","errors"}; ref §4.3: a recycled id answers ENTITY_IS_DELETED (404 on
    GET); 15-character ids are accepted (ref §8.3, the django-salesforce gist)."""
    sb = salesforce_sandbox
    sf = client(sb)
    created = sf.Lead.create({"LastName": "Crud", "Company": "C", "Email": "crud@c.example"})
    assert created["success"] is True and created["errors"] == [] and created["id"].startswith("00Q")
    lead_id = created["id"]
    assert suffix(lead_id[:15]) == lead_id[15:] and to18(lead_id[:15].lower() + "AAA") is not None
    assert sf.Lead.update(lead_id[:15], {"FirstName": "Ada", "Phone": None}) == 204
    record = sf.Lead.get(lead_id)
    assert record["Name"] == "Ada Crud" and record["Phone"] is None and record["Status"] == "Open - Not Contacted"
    assert record["OwnerId"] == sb.org.integration_user and record["IsDeleted"] is False
    assert dict(sf.Lead.get(lead_id, params={"fields": "Id,Email"})) == {
        "attributes": {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{lead_id}"},
        "Id": lead_id, "Email": "crud@c.example"}
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Lead.update(lead_id, {"Nope__c": 1})
    assert error_of(caught) == {"message": "No such column 'Nope__c' on sobject of type Lead",
                                "errorCode": "INVALID_FIELD"}
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Lead.create({"Company": "No name"})
    assert error_of(caught) == {"message": "Required fields are missing: [LastName]",
                                "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"]}
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Opportunity.create({"Name": "Typed", "StageName": "Prospecting", "CloseDate": "2026-12-01",
                               "Amount": "lots"})
    assert error_of(caught)["errorCode"] == "JSON_PARSER_ERROR"
    assert sf.Lead.delete(lead_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Lead.get(lead_id)
    assert error_of(caught) == {"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.update(lead_id, {"FirstName": "Ghost"})
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Lead.get("00Q5g0000099999")
    assert error_of(caught)["errorCode"] == "NOT_FOUND"


def test_auto_assign_header_and_assignment_rule(make_sandbox):
    """Ref §3.1 (https://developer.salesforce.com/docs/platform/api-rest/guide/headers-autoassign.md):
    Sforce-Auto-Assign defaults to TRUE, so an active assignment rule reassigns a Lead written
    without "Sforce-Auto-Assign: FALSE"; the header of every write is in the request log."""
    sb = make_sandbox()
    sb.set_assignment_rule_owner(sb.org.integration_user)
    lead = sb.create("Lead", {"LastName": "S", "Company": "X"})
    owner = sb.record(lead)["OwnerId"]
    sf = client(sb)
    sf.session.headers["Sforce-Auto-Assign"] = "FALSE"
    sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Lead"}, "id": lead, "FirstName": "Kept"}]})
    assert sb.record(lead)["OwnerId"] == owner == sb.org.sales_rep
    del sf.session.headers["Sforce-Auto-Assign"]
    sf.Lead.update(lead, {"FirstName": "Moved"})
    assert sb.record(lead)["OwnerId"] == sb.org.integration_user
    assert [e["auto_assign"] for e in sb.request_log() if e["method"] == "PATCH"] == ["FALSE", None]


# -- metadata (ref §6, §8.4) ---------------------------------------------------------------

def test_describe_and_tooling_fields_with_field_level_security(salesforce_sandbox):
    """Ref §6 (https://developer.salesforce.com/docs/platform/api-rest/guide/dome-sobject-describe):
    fields with name/label/type/length/updateable/createable/nillable/custom/restrictedPicklist/
    picklistValues/referenceTo/relationshipName. Ref §8.4
    (https://developer.salesforce.com/docs/atlas.en-us.264.0.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm):
    a Tooling-created field is missing from describe and SOQL until FieldPermissions grant it;
    creating it again is a DUPLICATE_DEVELOPER_NAME error."""
    sb = salesforce_sandbox
    sf = client(sb)
    describe = sf.Lead.describe()
    assert (describe["name"], describe["keyPrefix"]) == ("Lead", "00Q")
    fields = {f["name"]: f for f in describe["fields"]}
    assert {k: fields["Email"][k] for k in ("type", "length", "updateable", "createable", "nillable", "custom")} == \
        {"type": "email", "length": 80, "updateable": True, "createable": True, "nillable": True, "custom": False}
    assert fields["IsConverted"]["updateable"] is False and fields["Status"]["restrictedPicklist"] is True
    assert fields["LeadSource"]["restrictedPicklist"] is False
    assert [v["value"] for v in fields["Status"]["picklistValues"]][-2:] == ["Closed - Converted",
                                                                             "Closed - Not Converted"]
    assert (fields["ConvertedContactId"]["referenceTo"], fields["ConvertedContactId"]["relationshipName"]) == \
        (["Contact"], "ConvertedContact")
    assert "Lead" in {o["name"] for o in sf.describe()["sobjects"]}
    created = sf.toolingexecute("sobjects/CustomField", method="POST", data={
        "FullName": "Lead.CL_First_Click_Source__c", "Metadata": {"label": "First Click Source", "type": "Text",
                                                                  "length": 40, "description": "d"}})
    assert created["success"] is True and created["errors"] == [] and created["id"].startswith("00N")
    sf.toolingexecute("sobjects/CustomField", method="POST", data={
        "FullName": "Lead.CL_Visits__c", "Metadata": {"label": "Visits", "type": "Number", "precision": 18,
                                                      "scale": 2}})
    assert "CL_First_Click_Source__c" not in {f["name"] for f in sf.Lead.describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT CL_First_Click_Source__c FROM Lead")
    assert error_of(caught)["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.toolingexecute("sobjects/CustomField", method="POST", data={
            "FullName": "Lead.CL_First_Click_Source__c", "Metadata": {"label": "x", "type": "Text", "length": 10}})
    assert error_of(caught)["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.toolingexecute("sobjects/CustomField", method="POST", data={
            "FullName": "Lead.CL_Amount__c", "Metadata": {"label": "Amount", "type": "Number"}})
    assert error_of(caught)["message"] == "Must specify 'precision' for a CustomField of type Number"
    [permission_set] = sf.query("SELECT Id FROM PermissionSet WHERE Name = 'Closedloop_Integration'")["records"]
    grant = sf.restful("sobjects/FieldPermissions", method="POST", json={
        "ParentId": permission_set["Id"], "SobjectType": "Lead", "Field": "Lead.CL_First_Click_Source__c",
        "PermissionsRead": True, "PermissionsEdit": True})
    assert grant["success"] is True
    lead = sb.create("Lead", {"LastName": "F", "Company": "X"})
    sf.toolingexecute("sobjects/CustomField", method="POST", data={
        "FullName": "Lead.CL_Matched__c", "Metadata": {"label": "Matched", "type": "Checkbox", "defaultValue": False}})
    grants = sf.restful("composite/sobjects", method="POST", json={"records": [
        {"attributes": {"type": "FieldPermissions"}, "ParentId": permission_set["Id"], "SobjectType": "Lead",
         "Field": f"Lead.{name}", "PermissionsRead": True, "PermissionsEdit": True}
        for name in ("CL_Visits__c", "CL_Matched__c", "CL_Visits__c")]})
    assert [g["success"] for g in grants] == [True, True, False]
    assert grants[2]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert [r["Id"] for r in sf.query("SELECT Id FROM Lead WHERE CL_Matched__c = false")["records"]] == [lead]
    spec = {f["name"]: f for f in sf.Lead.describe()["fields"]}["CL_First_Click_Source__c"]
    assert (spec["custom"], spec["length"], spec["updateable"], spec["label"]) == (True, 40, True, "First Click Source")
    sf.Lead.update(lead, {"CL_First_Click_Source__c": "google", "CL_Visits__c": 2})
    [row] = sf.query("SELECT CL_First_Click_Source__c, CL_Visits__c FROM Lead")["records"]
    assert (row["CL_First_Click_Source__c"], row["CL_Visits__c"]) == ("google", 2.0)
    assert isinstance(row["CL_Visits__c"], float)  # double fields are JSON numbers like 2.0 (ref §2.2)


# -- limits, sessions, faults (ref §1.3, §5, §9) ---------------------------------------------

def test_limits_header_usage_and_request_limit(salesforce_sandbox):
    """Ref §5 (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm):
    Sforce-Limit-Info: api-usage=U/T on every REST response, parsed into sf.api_usage
    (api.py L791-832); /limits/ has DailyApiRequests {Max, Remaining}; past the limit a 403
    [{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}] raised as
    SalesforceRefusedRequest (ref §4.2, §9 item 6)."""
    sb = salesforce_sandbox
    sf = client(sb)
    response = sf.session.get(sb.url + "/services/data/v59.0/limits/",
                              headers={"Authorization": f"Bearer {sf.session_id}"})
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    sf.query("SELECT Id FROM Lead")
    assert (sf.api_usage["api-usage"].used, sf.api_usage["api-usage"].total) == (2, 15000)
    assert sf.limits()["DailyApiRequests"] == {"Max": 15000, "Remaining": 14997}
    sb.set_api_usage(15000)
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Lead")
    assert caught.value.status == 403 and caught.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    sb.reset_api_usage()
    sb.inject("request_limit", object="Lead")
    assert sf.query("SELECT Id FROM Organization")["totalSize"] == 1  # not about Lead: untouched
    with pytest.raises(SalesforceRefusedRequest):
        sf.query("SELECT Id FROM Lead")


def test_expired_sessions_in_direct_mode(make_sandbox):
    """Ref §1.3: 401 [{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]
    (SS issue #406); in direct mode simple-salesforce raises SalesforceExpiredSession and never
    re-logs-in [probe]; with a login to replay, a 401 whose body is not a list crashes it with
    KeyError (api.py L743-795: result.json()[0]; §9 item 3) [probe]."""
    sb = make_sandbox(session_seconds=600)
    sf = client(sb)
    sb.clock.advance(599)
    sf.query("SELECT Id FROM Lead")  # activity keeps the session alive
    sb.clock.advance(601)
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT Id FROM Lead")
    assert caught.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    sf = client(sb)
    sb.expire_sessions(keep_rejecting=True)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Lead")
    fresh = client(sb)  # logins still succeed, but their tokens are dead
    with pytest.raises(SalesforceExpiredSession):
        fresh.query("SELECT Id FROM Lead")
    sb.revive_sessions()
    sf = client(sb)
    sb.inject("non_list_401")
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT Id FROM Lead")
    assert caught.value.content == {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    c = sb.credentials
    relogging = Salesforce(username=c["username"], password=c["password"], security_token=c["security_token"],
                           session=rewriting(sb))
    sb.inject("non_list_401")
    with pytest.raises(KeyError):
        relogging.query("SELECT Id FROM Lead")
    sb.inject("expire_session", method="PATCH")
    sf.query("SELECT Id FROM Lead")
    with pytest.raises(SalesforceExpiredSession):
        sf.restful("composite/sobjects", method="PATCH", json={"records": []})
    sb.refuse_logins()
    assert token(sb, auth=(sb.credentials["client_id"], sb.credentials["client_secret"]),
                 grant_type="client_credentials").json()["error"] == "invalid_grant"


def test_network_and_record_faults(salesforce_sandbox):
    """Ref §9 items 4-5: hangs and connection resets surface as raw requests exceptions, never
    wrapped by simple-salesforce; ref §4.2: a 503 HTML body is SalesforceGeneralError with text
    content [probe]; UNABLE_TO_LOCK_ROW (retryable) and FIELD_CUSTOM_VALIDATION_EXCEPTION arrive
    per record inside collection results and as 400s on single writes (ref §4.3)."""
    sb = salesforce_sandbox
    sf = client(sb)
    leads = [sb.create("Lead", {"LastName": f"F{n}", "Company": "X"}) for n in range(3)]
    sb.inject("drop", path_contains="/query")
    with pytest.raises(requests.ConnectionError):
        sf.query("SELECT Id FROM Lead")
    sb.inject("slow", delay=1.0)
    with pytest.raises(requests.ReadTimeout):
        sf.query("SELECT Id FROM Lead", timeout=0.3)
    sb.inject("lost_response", method="PATCH")
    with pytest.raises(requests.ConnectionError):
        sf.restful("composite/sobjects", method="PATCH", json={"records": [
            {"attributes": {"type": "Lead"}, "id": leads[0], "FirstName": "Applied"}]})
    assert sb.record(leads[0])["FirstName"] == "Applied"
    sb.inject("server_error")
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query("SELECT Id FROM Lead")
    assert caught.value.status == 503 and "Service Unavailable" in caught.value.content
    sb.inject("lock_row", record_ids=[leads[1]])
    sb.inject("validation", record_ids=[leads[2][:15]], message="Company must be set")
    records = [{"attributes": {"type": "Lead"}, "id": i, "FirstName": "Batch"} for i in leads]
    first = sf.restful("composite/sobjects", method="PATCH", json={"records": records})
    assert [r["success"] for r in first] == [True, False, True]
    assert first[1]["errors"] == [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access "
                                   f"to this record or 1 records: {leads[1]}", "fields": []}]
    second = sf.restful("composite/sobjects", method="PATCH", json={"records": records})
    assert [r["success"] for r in second] == [True, True, False]
    assert second[2]["errors"][0] == {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                      "message": "Company must be set", "fields": []}
    sb.inject("lock_row", method="PATCH", object="Lead")
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Lead.update(leads[0], {"FirstName": "Single"})
    assert error_of(caught)["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert sb.pending_faults() == []
    log = [e for e in sb.request_log() if e["kind"] == "rest"]
    assert (log[0]["status"], log[0]["dropped"]) == (None, True)


def test_conversion_won_opportunities_and_currencies(make_sandbox):
    """Ref §8.1-8.3: conversion sets IsConverted, ConvertedDate and Converted*Id
    (https://developer.salesforce.com/docs/platform/change-data-capture/guide/cdc-standard-objects-lead-conversion.md);
    IsWon/IsClosed follow the stage; CurrencyIsoCode exists only in multi-currency orgs (selecting
    it elsewhere is INVALID_FIELD), CurrencyType only there; the single-currency org currency is
    Organization.DefaultCurrencyIsoCode."""
    for multi in (False, True):
        sb = make_sandbox(multi_currency=multi, org_currency="EUR")
        lead = sb.create("Lead", {"LastName": "Won", "Company": "Big", "Email": "won@big.example", "Phone": "1"})
        ids = sb.convert_lead(lead, opportunity_fields={"Amount": 12000, "StageName": "Negotiation/Review",
                                                        **({"CurrencyIsoCode": "GBP"} if multi else {})})
        sb.close_opportunity(ids["opportunityId"], won=True)
        sf = client(sb)
        [row] = sf.query("SELECT IsConverted, Status, ConvertedAccountId, ConvertedContactId, ConvertedOpportunityId "
                         "FROM Lead")["records"]
        assert (row["IsConverted"], row["Status"]) == (True, "Closed - Converted")
        assert [row[k] for k in ("ConvertedAccountId", "ConvertedContactId", "ConvertedOpportunityId")] == \
            [ids["accountId"], ids["contactId"], ids["opportunityId"]]
        contact = sb.record(ids["contactId"])
        assert (contact["Email"], contact["Phone"], contact["AccountId"]) == ("won@big.example", "1", ids["accountId"])
        fields = "Id, Amount, IsWon, IsClosed, Probability, CloseDate, ContactId" + \
            (", CurrencyIsoCode" if multi else "")
        [won] = sf.query(f"SELECT {fields} FROM Opportunity WHERE IsWon = true")["records"]
        assert (won["Amount"], won["IsClosed"], won["Probability"], won["ContactId"]) == \
            (12000.0, True, 100.0, ids["contactId"])
        assert won.get("CurrencyIsoCode") == ("GBP" if multi else None)
        assert sf.query("SELECT DefaultCurrencyIsoCode FROM Organization")["records"][0][
            "DefaultCurrencyIsoCode"] == "EUR"
        has_currency = "CurrencyIsoCode" in {f["name"] for f in sf.Opportunity.describe()["fields"]}
        assert has_currency is multi
        if multi:
            rates = sf.query("SELECT IsoCode, IsCorporate FROM CurrencyType WHERE IsActive = true")["records"]
            assert {r["IsoCode"] for r in rates if r["IsCorporate"]} == {"EUR"}
        else:
            with pytest.raises(SalesforceMalformedRequest):
                sf.query("SELECT CurrencyIsoCode FROM Opportunity")
            sb.set_multi_currency(True)
            assert sf.query("SELECT CurrencyIsoCode FROM Opportunity")["records"][0]["CurrencyIsoCode"] == "EUR"
        sb.close_opportunity(ids["opportunityId"], won=False)
        assert sf.query("SELECT COUNT() FROM Opportunity WHERE IsWon = true")["totalSize"] == 0
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.Lead.update(lead, {"FirstName": "After"})
        assert error_of(caught)["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_control_api_over_https(salesforce_sandbox):
    """The /_sandbox control endpoints mirror the Python control API (no session needed)."""
    sb = salesforce_sandbox
    with http(sb) as session:
        created = session.post(sb.url + "/_sandbox/records/Lead", json={
            "LastName": "Admin", "Company": "X", "CreatedDate": "2026-11-01T00:00:00Z"}).json()
        record = session.get(sb.url + f"/_sandbox/records/{created['id']}").json()
        assert record["CreatedDate"] == "2026-11-01T00:00:00.000+0000"
        assert record["SystemModstamp"] == "2026-11-20T12:00:00.000+0000"  # the real write time
        seeded = session.post(sb.url + "/_sandbox/records/Lead/seed", json={"records": [
            {"LastName": "S1", "Company": "X"}, {"LastName": "S2", "Company": "X"}]}).json()["ids"]
        converted = session.post(sb.url + f"/_sandbox/leads/{seeded[0]}/convert", json={}).json()
        assert session.post(sb.url + f"/_sandbox/opportunities/{converted['opportunityId']}/close",
                            json={"won": True, "amount": 99}).status_code == 204
        assert session.post(sb.url + "/_sandbox/faults", json={"kind": "request_limit"}).json() == {"ok": True}
        assert [f["kind"] for f in session.get(sb.url + "/_sandbox/faults").json()] == ["request_limit"]
        rows = session.get(sb.url + "/_sandbox/query",
                           params={"q": "SELECT Amount FROM Opportunity WHERE IsWon = true"}).json()
        assert rows[0]["Amount"] == 99.0
        assert session.post(sb.url + "/_sandbox/api-usage", json={"used": 7}).json() == {"ok": True}
        assert session.get(sb.url + "/_sandbox/api-usage").json() == {"used": 7, "limit": 15000}
        bad = session.post(sb.url + "/_sandbox/records/Lead", json={"Company": "no last name"})
        assert bad.status_code == 400 and bad.json()["error"] == "REQUIRED_FIELD_MISSING"
        assert session.get(sb.url + "/_sandbox/credentials").json()["client_id"] == sb.credentials["client_id"]
    assert sb.api_calls() == 0  # control calls are not API calls


# -- scale --------------------------------------------------------------------------------------

def test_sorted_index_matches_a_sorted_list():
    """The bucketed index behind keyset polling agrees with a plain sorted list under random edits."""
    rng = random.Random(7)
    index, reference = SortedIndex(), []
    for step in range(6000):
        if reference and rng.random() < 0.3:
            key = reference.pop(rng.randrange(len(reference)))
            index.discard(key)
        else:
            key = (rng.randrange(500), f"{step:06d}")
            reference.append(key)
            index.add(key)
    reference.sort()
    assert list(index.irange()) == reference and len(index) == len(reference)
    low, high = (100, ""), (300, "~")
    expected = [k for k in reference if low <= k <= high]
    assert list(index.irange(low, high)) == expected
    assert list(index.irange(low, high, reverse=True)) == expected[::-1]
    assert index.count(low, high) == len(expected)


def test_keyset_pages_over_many_records_are_read_from_the_sorted_index(salesforce_sandbox, monkeypatch):
    """Ref §7 polling at benchmark scale: a range on SystemModstamp is answered from the sorted
    index, so a page near the end of 60,000 records reads what a page at the start reads
    (counted rows, not a stopwatch: speed belongs to the benchmarks)."""
    sb = salesforce_sandbox
    for batch in range(30):
        sb.seed("Lead", [{"LastName": f"L{batch}-{n}", "Company": "X"} for n in range(2000)])
        sb.clock.advance(1)
    rows_read = []
    plan = sb.store._plan

    def counted(compiled, include_deleted):
        rows, in_order, rest = plan(compiled, include_deleted)
        rows_read.append(0)

        def counting():
            for row in rows:
                rows_read[-1] += 1
                yield row
        return counting(), in_order, rest

    monkeypatch.setattr(sb.store, "_plan", counted)
    sf = client(sb)
    tail = sf.query("SELECT Id FROM Lead WHERE SystemModstamp > 2026-11-20T12:00:28Z ORDER BY SystemModstamp, Id "
                    "LIMIT 5")
    assert tail["totalSize"] == 5
    page = sf.query("SELECT Id FROM Lead WHERE SystemModstamp >= 2026-11-20T12:00:29Z ORDER BY SystemModstamp, Id")
    assert page["totalSize"] == 2000
    assert rows_read == [5, 2000]  # not 60,000: neither query walked the table
    sf.query("SELECT Id FROM Lead WHERE LastName = 'L29-7'")
    assert rows_read[-1] == 60_000  # a filter no sorted index serves does walk it: the count can tell
    assert sb.record(tail["records"][0]["Id"])["SystemModstamp"] == "2026-11-20T12:00:29.000+0000"
    assert sb.clock.now() - FROZEN == timedelta(seconds=30)
