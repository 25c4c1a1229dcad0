"""The Salesforce emulator, driven by the real simple-salesforce 1.12.10 over HTTPS.

Each test names the fact it pins: shared/reference/salesforce-api.md section and the source
given there.
"""
from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (SalesforceExpiredSession, SalesforceMalformedRequest,
                                          SalesforceRefusedRequest)


def http(sandbox) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # §0 TLS trust gotcha: REQUESTS_CA_BUNDLE would override verify
    session.verify = str(sandbox.ca_path)
    return session


def token(sandbox, **form):
    return http(sandbox).post(sandbox.url + "/services/oauth2/token", data=form, timeout=10)


def client(sandbox) -> Salesforce:
    credentials = sandbox.credentials
    body = token(sandbox, grant_type="client_credentials", client_id=credentials["client_id"],
                 client_secret=credentials["client_secret"]).json()
    return Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], session=http(sandbox))


def test_oauth_grants(salesforce_sandbox):
    """§1.1: client credentials, refresh token and JWT bearer answer {access_token,
    instance_url (no trailing slash), id, token_type, issued_at, signature}; failures are 400
    {error, error_description} (SS tests/test_login.py)."""
    sb, c = salesforce_sandbox, salesforce_sandbox.credentials
    ok = token(sb, grant_type="client_credentials", client_id=c["client_id"], client_secret=c["client_secret"])
    assert ok.status_code == 200 and ok.json()["instance_url"] == sb.url and not sb.url.endswith("/")
    assert {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"} <= set(ok.json())
    basic = http(sb).post(sb.url + "/services/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=(c["client_id"], c["client_secret"]), timeout=10)
    assert basic.status_code == 200
    assert token(sb, grant_type="refresh_token", client_id=c["client_id"], client_secret=c["client_secret"],
                 refresh_token=c["refresh_token"]).status_code == 200
    assertion = jwt.encode({"iss": c["client_id"], "sub": c["username"], "aud": "https://login.salesforce.com",
                            "exp": int(time.time()) + 120},
                           Path(c["private_key_path"]).read_text(), algorithm="RS256")
    assert token(sb, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", assertion=assertion).status_code == 200
    bad = token(sb, grant_type="client_credentials", client_id=c["client_id"], client_secret="nope")
    assert bad.status_code == 400 and bad.json() == {"error": "invalid_client",
                                                     "error_description": "invalid client credentials"}
    assert token(sb, grant_type="client_credentials", client_id="x", client_secret="y").json()["error"] == \
        "invalid_client_id"
    assert token(sb, grant_type="authorization_code").json()["error"] == "unsupported_grant_type"


def test_soap_login_through_the_library_default_flow(salesforce_sandbox, tmp_path):
    """§1.2 and the probe: simple-salesforce's password login posts SOAP to login.salesforce.com;
    a transport adapter rewrites that host to the emulator, which answers default-namespace
    sessionId/serverUrl (or a 500 INVALID_LOGIN fault)."""
    from requests.adapters import HTTPAdapter

    sb = salesforce_sandbox

    class Rewrite(HTTPAdapter):
        def send(self, request, **kwargs):
            request.url = request.url.replace("https://login.salesforce.com", sb.url)
            return super().send(request, **kwargs)

    session = http(sb)
    session.mount("https://login.salesforce.com", Rewrite())
    c = sb.credentials
    sf = Salesforce(username=c["username"], password=c["password"], security_token=c["security_token"],
                    session=session)
    assert sf.sf_instance == sb.url.removeprefix("https://")
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed
    with pytest.raises(SalesforceAuthenticationFailed, match="INVALID_LOGIN"):
        Salesforce(username=c["username"], password="wrong", security_token="", session=session)


def test_paging_with_batch_size_and_shared_timestamps(salesforce_sandbox):
    """§2.1/2.2: query + nextRecordsUrl pages honour Sforce-Query-Options: batchSize (200-2000);
    totalSize is the whole result; datetimes come back as YYYY-MM-DDTHH:MM:SS.000+0000. Records
    written at one instant share SystemModstamp and all come back."""
    sb = salesforce_sandbox
    sb.seed("Lead", [{"LastName": f"L{n}", "Company": "Acme"} for n in range(450)])
    sf = client(sb)
    pages = []
    result = sf.query("SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp >= 2026-11-20T12:00:00Z "
                      "ORDER BY SystemModstamp, Id", headers={"Sforce-Query-Options": "batchSize=200"})
    while True:
        pages.append(result["records"])
        if result["done"]:
            break
        assert result["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
        result = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True,
                               headers={"Sforce-Query-Options": "batchSize=200"})
    assert [len(page) for page in pages] == [200, 200, 50] and result["totalSize"] == 450
    ids = [r["Id"] for page in pages for r in page]
    assert ids == sorted(ids) and len(set(ids)) == 450 and all(len(i) == 18 for i in ids)
    assert pages[0][0]["SystemModstamp"] == "2026-11-20T12:00:00.000+0000"
    assert len(list(sf.query_all_iter("SELECT Id FROM Lead"))) == 450


def test_soql_errors_and_filters(salesforce_sandbox):
    """§2.3/§4.3: unquoted datetime literals; INVALID_FIELD with the echoed query and caret,
    MALFORMED_QUERY for str(datetime) (SS issue #500), INVALID_TYPE for unknown objects."""
    sb = salesforce_sandbox
    a = sb.create("Lead", {"LastName": "A", "Company": "X", "Email": "a@x.com", "Status": "Qualified"})
    sb.clock.advance(60)
    b = sb.create("Lead", {"LastName": "B", "Company": "X", "Email": "b@x.com"})
    sf = client(sb)
    q = "SELECT Id FROM Lead WHERE (Status = 'Qualified' OR Email LIKE 'b%') AND SystemModstamp > 2026-11-20T12:00:00Z"
    assert [r["Id"] for r in sf.query(q)["records"]] == [b]
    assert [r["Id"] for r in sf.query(f"SELECT Id FROM Lead WHERE Id IN ('{a[:15]}') ORDER BY Id DESC")["records"]] == [a]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id, Nope__c FROM Lead")
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Nope__c' on entity 'Lead'" in caught.value.content[0]["message"]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Lead WHERE SystemModstamp > 2026-11-20 12:52:08.062712+00:00")
    assert caught.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Bogus")
    assert caught.value.content[0]["errorCode"] == "INVALID_TYPE"


def test_collections_partial_failure_and_all_or_none(salesforce_sandbox):
    """§3.2: PATCH composite/sobjects answers 200 with SaveResults in request order; failed items
    carry no id and use statusCode; allOrNone rolls back with ALL_OR_NONE_OPERATION_ROLLED_BACK;
    more than 200 records is EXCEEDED_ID_LIMIT. §8.3: converted leads reject updates."""
    sb = salesforce_sandbox
    good = sb.create("Lead", {"LastName": "G", "Company": "X"})
    converted = sb.create("Lead", {"LastName": "C", "Company": "X"})
    sb.convert_lead(converted)
    deleted = sb.create("Lead", {"LastName": "D", "Company": "X"})
    sb.delete("Lead", deleted)
    sf = client(sb)
    records = [{"attributes": {"type": "Lead"}, "id": good, "FirstName": "Ok"},
               {"attributes": {"type": "Lead"}, "id": good, "LastName": "x" * 81},
               {"attributes": {"type": "Lead"}, "id": converted, "FirstName": "No"},
               {"attributes": {"type": "Lead"}, "id": deleted, "FirstName": "No"},
               {"attributes": {"type": "Lead"}, "id": good, "Status": "Made Up"},
               {"attributes": {"type": "Lead"}, "id": good, "Unknown__c": "x"},
               {"attributes": {"type": "Lead"}, "id": good, "IsConverted": True}]
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records})
    assert [r["success"] for r in results] == [True, False, False, False, False, False, False]
    assert "id" not in results[1] and results[0]["id"] == good
    assert [r["errors"][0]["statusCode"] for r in results[1:]] == [
        "STRING_TOO_LONG", "CANNOT_UPDATE_CONVERTED_LEAD", "ENTITY_IS_DELETED",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "INVALID_FIELD", "INVALID_FIELD_FOR_INSERT_UPDATE"]
    assert results[1]["errors"][0]["message"] == f"Last Name: data value too large: {'x' * 81} (max length=80)"
    assert sb.record(good)["FirstName"] == "Ok"
    rolled = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Lead"}, "id": good, "FirstName": "Changed"}, records[1]]})
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sb.record(good)["FirstName"] == "Ok"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="PATCH", json={"records": [records[0]] * 201})
    assert caught.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_every_write_bumps_the_stamps_and_auto_assign(tmp_path):
    """§7: SystemModstamp/LastModifiedDate advance on every write, the daemon's own included;
    §3.1: without Sforce-Auto-Assign: FALSE an active assignment rule reassigns the lead."""
    from sandbox.clock import Clock
    from sandbox.salesforce import SalesforceSandbox

    sb = SalesforceSandbox(data_dir=tmp_path / "sf", clock=Clock(), assignment_rule_owner_id=None)
    sb.org.assignment_rule_owner_id = sb.org.integration_user
    sb.start()
    try:
        lead = sb.create("Lead", {"LastName": "S", "Company": "X"})
        owner, stamp = sb.record(lead)["OwnerId"], sb.record(lead)["SystemModstamp"]
        sb.clock.advance(5)
        sf = client(sb)
        sf.session.headers["Sforce-Auto-Assign"] = "FALSE"
        sf.Lead.update(lead, {"FirstName": "A"})
        assert sb.record(lead)["OwnerId"] == owner and sb.record(lead)["SystemModstamp"] > stamp
        assert sb.record(lead)["LastModifiedById"] == sb.org.integration_user
        del sf.session.headers["Sforce-Auto-Assign"]
        sf.Lead.update(lead, {"FirstName": "B"})
        assert sb.record(lead)["OwnerId"] == sb.org.integration_user != owner
        assert [entry["auto_assign"] for entry in sb.request_log()[-2:]] == ["FALSE", None]
    finally:
        sb.stop()


def test_describe_tooling_fields_and_field_level_security(salesforce_sandbox):
    """§6 describe fields (name, type, length, updateable, custom, picklistValues); §8.4 a
    Tooling-created field stays invisible (INVALID_FIELD) until FieldPermissions grants it,
    and a duplicate name is DUPLICATE_DEVELOPER_NAME."""
    sf = client(salesforce_sandbox)
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    assert fields["Email"]["type"] == "email" and fields["Email"]["length"] == 80
    assert fields["IsConverted"]["updateable"] is False and fields["Status"]["restrictedPicklist"] is True
    assert "Working - Contacted" in [v["value"] for v in fields["Status"]["picklistValues"]]
    created = sf.toolingexecute("sobjects/CustomField", method="POST", data={
        "FullName": "Lead.CL_First_Click_Source__c", "Metadata": {"label": "First Click Source", "type": "Text",
                                                                  "length": 255}})
    assert created["success"] is True
    assert "CL_First_Click_Source__c" not in {f["name"] for f in sf.Lead.describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest):
        sf.toolingexecute("sobjects/CustomField", method="POST", data={
            "FullName": "Lead.CL_First_Click_Source__c", "Metadata": {"label": "x", "type": "Text", "length": 10}})
    permission_set = sf.query("SELECT Id FROM PermissionSet WHERE Name = 'Closedloop_Integration'")["records"][0]["Id"]
    sf.restful("sobjects/FieldPermissions", method="POST", json={
        "ParentId": permission_set, "SobjectType": "Lead", "Field": "Lead.CL_First_Click_Source__c",
        "PermissionsRead": True, "PermissionsEdit": True})
    spec = {f["name"]: f for f in sf.Lead.describe()["fields"]}["CL_First_Click_Source__c"]
    assert spec["custom"] is True and spec["length"] == 255 and spec["updateable"] is True


def test_limits_header_and_request_limit(salesforce_sandbox):
    """§5: Sforce-Limit-Info: api-usage=U/T on every REST response, parsed by simple-salesforce
    into api_usage; past the daily limit a 403 REQUEST_LIMIT_EXCEEDED (raised as
    SalesforceRefusedRequest, like permission errors)."""
    sb = salesforce_sandbox
    sf = client(sb)
    sf.query("SELECT Id FROM Lead")
    assert sf.api_usage["api-usage"].used == 1 and sf.api_usage["api-usage"].total == 15000
    sb.set_api_usage(15000)
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Lead")
    assert caught.value.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    sb.set_api_usage(10)
    assert sf.limits()["DailyApiRequests"] == {"Max": 15000, "Remaining": 14989}


def test_session_expiry_and_faults(salesforce_sandbox):
    """§1.3: 401 [{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}] —
    in direct mode simple-salesforce raises SalesforceExpiredSession; dropped connections and
    slow answers surface as requests exceptions (§9 items 4-5)."""
    sb = salesforce_sandbox
    sf = client(sb)
    sb.clock.advance(7201)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Lead")
    sf = client(sb)
    sb.inject("drop", path_contains="/query")
    with pytest.raises(requests.ConnectionError):
        sf.query("SELECT Id FROM Lead")
    sb.inject("slow", delay=1.5)
    with pytest.raises(requests.ReadTimeout):
        sf.query("SELECT Id FROM Lead", timeout=0.5)
    lead = sb.create("Lead", {"LastName": "L", "Company": "X"})
    sb.inject("lost_response", method="PATCH")
    with pytest.raises(requests.ConnectionError):
        sf.restful("composite/sobjects", method="PATCH", json={"records": [
            {"attributes": {"type": "Lead"}, "id": lead, "FirstName": "Applied"}]})
    assert sb.record(lead)["FirstName"] == "Applied"
    sb.inject("lock_row", record_ids=[lead])
    [result] = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Lead"}, "id": lead, "FirstName": "Locked"}]})
    assert result["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    sb.inject("server_error")
    from simple_salesforce.exceptions import SalesforceGeneralError
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query("SELECT Id FROM Lead")
    assert caught.value.status == 503


def test_conversion_opportunities_and_relationship_queries(tmp_path):
    """§8.1-8.3: conversion sets IsConverted and Converted*Id; won opportunities (IsWon from the
    stage), CurrencyIsoCode only in multi-currency orgs, contact roles as a child subquery
    (null when none) and parent paths like ConvertedContact.Email (null when unset)."""
    from sandbox.clock import Clock
    from sandbox.salesforce import SalesforceSandbox

    for multi in (False, True):
        sb = SalesforceSandbox(data_dir=tmp_path / f"sf{multi}", clock=Clock(), multi_currency=multi,
                               org_currency="EUR")
        sb.start()
        try:
            lead = sb.create("Lead", {"LastName": "Won", "Company": "Big", "Email": "won@big.example"})
            other = sb.create("Lead", {"LastName": "Open", "Company": "Small"})
            ids = sb.convert_lead(lead, opportunity={"Amount": 12000, "StageName": "Closed Won",
                                                     **({"CurrencyIsoCode": "GBP"} if multi else {})})
            sf = client(sb)
            rows = sf.query(f"SELECT Id, IsConverted, ConvertedContactId, ConvertedContact.Email FROM Lead "
                            f"WHERE Id IN ('{lead}', '{other}') ORDER BY LastName DESC")["records"]
            assert rows[0]["IsConverted"] is True and rows[0]["ConvertedContactId"] == ids["contactId"]
            assert rows[0]["ConvertedContact"]["Email"] == "won@big.example" and rows[1]["ConvertedContact"] is None
            fields = "Id, Amount, IsWon, CloseDate" + (", CurrencyIsoCode" if multi else "")
            [opportunity] = sf.query(f"SELECT {fields}, (SELECT ContactId, IsPrimary FROM OpportunityContactRoles) "
                                     "FROM Opportunity WHERE IsWon = true")["records"]
            assert opportunity["Amount"] == 12000 and opportunity["OpportunityContactRoles"]["records"][0][
                "ContactId"] == ids["contactId"]
            assert opportunity.get("CurrencyIsoCode") == ("GBP" if multi else None)
            if not multi:
                with pytest.raises(SalesforceMalformedRequest):
                    sf.query("SELECT CurrencyIsoCode FROM Opportunity")
            assert sf.query("SELECT DefaultCurrencyIsoCode FROM Organization")["records"][0][
                "DefaultCurrencyIsoCode"] == "EUR"
        finally:
            sb.stop()


def test_admin_api_over_https(salesforce_sandbox):
    sb = salesforce_sandbox
    session = http(sb)
    created = session.post(sb.url + "/_sandbox/records/Lead", json={"LastName": "Admin", "Company": "X",
                                                                    "_created_at": "2026-11-01T00:00:00Z"}).json()
    record = session.get(sb.url + f"/_sandbox/records/Lead/{created['id']}").json()
    assert record["CreatedDate"] == "2026-11-01T00:00:00.000+0000"
    session.post(sb.url + "/_sandbox/faults", json={"kind": "request_limit"})
    assert [f.kind for f in sb.faults] == ["request_limit"]
    rows = session.get(sb.url + "/_sandbox/query", params={"q": "SELECT Id, LastName FROM Lead"}).json()
    assert rows[0]["LastName"] == "Admin"
