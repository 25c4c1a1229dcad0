"""The HubSpot emulator, driven by the real hubspot-api-client 12 over HTTP.

Each test names the fact it pins: shared/reference/hubspot-api.md section and its source.
"""
from __future__ import annotations

import json

import pytest
import urllib3
from hubspot import HubSpot
from urllib3.util.retry import Retry

TIMEOUT = (2, 2)


def client(sandbox, token=None) -> HubSpot:
    return HubSpot(access_token=token or sandbox.private_token, host=sandbox.url, retry=Retry(total=0))


def search_body(after="0", limit=200, gte="0", **extra):
    return {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": gte}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "properties": ["email"],
            "limit": limit, "after": after, **extra}


def test_search_paging_total_and_the_10000_cap(hubspot_sandbox):
    """§3.1-3.3: after is an offset sent as a string, paging.next only when more remain, total is
    an integer, requested-but-unset properties are null, and paging beyond 10,000 is a 400
    (developers.hubspot.com search guide; hubspot-api-nodejs#132)."""
    sb = hubspot_sandbox
    sb.seed("contacts", [{"email": f"p{n}@x.com"} for n in range(250)])
    api = client(sb).crm.contacts.search_api
    first = api.do_search(search_body(), _request_timeout=TIMEOUT)
    assert first.total == 250 and len(first.results) == 200 and first.paging.next.after == "200"
    second = api.do_search(search_body(after="200"), _request_timeout=TIMEOUT)
    assert len(second.results) == 50 and second.paging is None
    assert set(first.results[0].properties) == {"email", "createdate", "hs_object_id", "lastmodifieddate"}
    with pytest.raises(Exception) as caught:
        api.do_search(search_body(after="9900"), _request_timeout=TIMEOUT)
    assert caught.value.status == 400
    with pytest.raises(Exception) as caught:
        api.do_search(search_body(limit=201), _request_timeout=TIMEOUT)
    assert caught.value.status == 400


def test_search_operators_case_rules_and_string_sorts(hubspot_sandbox):
    """§3.1: enumerations compare case-sensitively, IN on strings needs lower-case values, a
    JSON-string sort is silently ignored (hubspot-api-nodejs#14), filter groups are ORed."""
    sb = hubspot_sandbox
    a = sb.create("contacts", {"email": "Ann@Example.com", "lifecyclestage": "lead"})
    b = sb.create("contacts", {"email": "bob@example.com", "lifecyclestage": "customer"})
    api = client(sb).crm.contacts.search_api

    def ids(filters_or_groups, **extra):
        groups = filters_or_groups if isinstance(filters_or_groups[0], dict) and "filters" in filters_or_groups[0] \
            else [{"filters": filters_or_groups}]
        sb.clock.advance(1)  # stay under the search API's per-second limit
        return [r.id for r in api.do_search({"filterGroups": groups, **extra}, _request_timeout=TIMEOUT).results]

    assert ids([{"propertyName": "email", "operator": "EQ", "value": "ann@example.com"}]) == [a]
    assert ids([{"propertyName": "lifecyclestage", "operator": "EQ", "value": "LEAD"}]) == []
    assert ids([{"propertyName": "email", "operator": "IN", "values": ["ann@example.com"]}]) == [a]
    assert ids([{"propertyName": "email", "operator": "IN", "values": ["Ann@Example.com"]}]) == []
    assert ids([{"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]},
                {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]}]) == [a, b]
    assert ids([{"propertyName": "email", "operator": "HAS_PROPERTY"}],
               sorts=[json.dumps({"propertyName": "email", "direction": "DESCENDING"})]) == [a, b]
    assert ids([{"propertyName": "email", "operator": "HAS_PROPERTY"}],
               sorts=[{"propertyName": "email", "direction": "DESCENDING"}]) == [b, a]


def test_index_lag(hubspot_sandbox):
    """§3.3: "It may take a few moments for newly created or updated CRM objects to appear in
    search results" — records become searchable index_lag seconds after the write."""
    sb = hubspot_sandbox
    sb.set_limits(index_lag_seconds=30)
    sb.create("contacts", {"email": "late@x.com"})
    api = client(sb).crm.contacts.search_api
    assert api.do_search(search_body(), _request_timeout=TIMEOUT).total == 0
    sb.clock.advance(31)
    assert api.do_search(search_body(), _request_timeout=TIMEOUT).total == 1


def test_batch_update_200_207_and_whole_batch_400(hubspot_sandbox):
    """§4.1: batch/update answers 200, or 207 with numErrors/errors (OBJECT_NOT_FOUND with
    context.ids) which the client returns without raising; one invalid value fails the whole
    batch with 400 VALIDATION_ERROR, codes inside the JSON string in message and in
    errors[].code; more than 100 inputs is a 400; lastmodifieddate advances."""
    sb = hubspot_sandbox
    contact = sb.create("contacts", {"email": "c@x.com"})
    before = sb.record("contacts", contact)["lastmodifieddate"]
    sb.clock.advance(5)
    api = client(sb).crm.contacts.batch_api
    data, status, _ = api.update_with_http_info({"inputs": [{"id": contact, "properties": {"firstname": "C"}}]},
                                                _request_timeout=TIMEOUT)
    assert status == 200 and not hasattr(data, "num_errors")
    assert sb.record("contacts", contact)["lastmodifieddate"] > before
    data, status, _ = api.update_with_http_info({"inputs": [{"id": contact, "properties": {"firstname": "D"}},
                                                            {"id": "424242", "properties": {"firstname": "E"}}]},
                                                _request_timeout=TIMEOUT)
    assert status == 207 and data.num_errors == 1 and data.errors[0].context == {"ids": ["424242"]}
    for bad, code in (({"nope": "x"}, "PROPERTY_DOESNT_EXIST"), ({"lifecyclestage": "Lead"}, "INVALID_OPTION"),
                      ({"hs_analytics_source": "OFFLINE"}, "READ_ONLY_VALUE")):
        with pytest.raises(Exception) as caught:
            api.update({"inputs": [{"id": contact, "properties": {"firstname": "F"}},
                                   {"id": contact, "properties": bad}]}, _request_timeout=TIMEOUT)
        body = json.loads(caught.value.body)
        assert caught.value.status == 400 and body["category"] == "VALIDATION_ERROR"
        assert body["errors"][0]["code"] == code and f'\\"error\\": \\"{code}\\"' in json.dumps(body["message"])
    assert sb.record("contacts", contact)["firstname"] == "D"
    with pytest.raises(Exception) as caught:
        api.update({"inputs": [{"id": contact, "properties": {}}] * 101}, _request_timeout=TIMEOUT)
    assert caught.value.status == 400


def test_properties_and_groups(hubspot_sandbox):
    """§5.2/5.3: create answers 201 (the client returns None on any other status, §1.4),
    duplicates 409, type/fieldType mismatch 400, 404 for unknown names."""
    sb = hubspot_sandbox
    properties, groups = client(sb).crm.properties.core_api, client(sb).crm.properties.groups_api
    created = groups.create("contacts", {"name": "closedloop", "label": "closedloop", "displayOrder": -1})
    assert created.name == "closedloop"
    with pytest.raises(Exception) as caught:
        groups.create("contacts", {"name": "closedloop", "label": "again"})
    assert caught.value.status == 409
    body = {"name": "cl_first_click_source", "label": "First click source", "type": "string", "fieldType": "text",
            "groupName": "closedloop"}
    assert properties.create("contacts", body).name == "cl_first_click_source"
    with pytest.raises(Exception) as caught:
        properties.create("contacts", body)
    assert caught.value.status == 409
    with pytest.raises(Exception) as caught:
        properties.create("contacts", {**body, "name": "cl_x", "type": "number", "fieldType": "text"})
    assert caught.value.status == 400
    sb.inject("status_200_for_201")
    assert properties.create("contacts", {**body, "name": "cl_drift"}) is None  # issue #448 drift
    with pytest.raises(Exception) as caught:
        properties.get_by_name("contacts", "missing")
    assert caught.value.status == 404
    names = {p.name for p in properties.get_all("contacts").results}
    assert {"cl_first_click_source", "email", "lastmodifieddate"} <= names


def test_pipelines_and_derived_deal_properties(hubspot_sandbox):
    """§6.1/6.2: stage metadata values are strings; hs_is_closed_won and hs_closed_amount derive
    from the stage; closedate is set on entering a closed stage."""
    sb = hubspot_sandbox
    pipelines = client(sb).crm.pipelines.pipelines_api.get_all("deals").results
    default = next(p for p in pipelines if p.id == "default")
    won = next(s for s in default.stages if s.id == "closedwon")
    assert won.metadata == {"isClosed": "true", "probability": "1.0"}
    deal = sb.create("deals", {"dealname": "D", "amount": "1000.50"})
    assert sb.record("deals", deal)["hs_is_closed_won"] == "false" and "closedate" not in sb.record("deals", deal)
    sb.clock.advance(60)
    sb.update("deals", deal, {"dealstage": "closedwon"})
    record = sb.record("deals", deal)
    assert record["hs_is_closed_won"] == "true" and record["hs_closed_amount"] == "1000.50"
    assert record["closedate"] == "2026-11-20T12:01:00Z"


def test_associations_paging(hubspot_sandbox):
    """§6.3: v4 per-record reads page at 500 with `after`; toObjectId is a JSON number the
    client coerces to a string; batch read omits deals without associations."""
    sb = hubspot_sandbox
    deal, lonely = sb.create("deals", {"dealname": "Big"}), sb.create("deals", {"dealname": "None"})
    contacts = sb.seed("contacts", [{"email": f"a{n}@x.com"} for n in range(520)])
    for contact in contacts:
        sb.associate(deal, contact)
    basic = client(sb).crm.associations.v4.basic_api
    first = basic.get_page("deals", deal, "contacts", limit=500, _request_timeout=TIMEOUT)
    assert len(first.results) == 500 and first.results[0].association_types[0].type_id == 3
    rest = basic.get_page("deals", deal, "contacts", after=first.paging.next.after, _request_timeout=TIMEOUT)
    assert len(rest.results) == 20 and rest.paging is None
    batch = client(sb).crm.associations.v4.batch_api.get_page("deals", "contacts", {"inputs": [
        {"id": deal}, {"id": lonely}]}, _request_timeout=TIMEOUT)
    assert [r._from.id for r in batch.results] == [deal] and batch.results[0].paging.next.after == "500"


def test_rate_limit_headers_and_429_bodies(hubspot_sandbox):
    """§7.2/7.3: non-search responses carry X-HubSpot-RateLimit-* headers; search responses do
    not; over the ten-second window a 429 TEN_SECONDLY_ROLLING body; the search API has its
    own per-second limit whose 429 body is the "secondly limit" shape."""
    sb = hubspot_sandbox
    sb.set_limits(max_per_10s=3)
    hub = client(sb)
    _, _, headers = hub.crm.properties.core_api.get_all_with_http_info("contacts", _request_timeout=TIMEOUT)
    assert headers["X-HubSpot-RateLimit-Max"] == "3" and headers["X-HubSpot-RateLimit-Remaining"] == "2"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    _, _, headers = hub.crm.contacts.search_api.do_search_with_http_info(search_body(), _request_timeout=TIMEOUT)
    assert "X-HubSpot-RateLimit-Max" not in headers and "X-HubSpot-Correlation-Id" in headers
    hub.crm.properties.core_api.get_all("contacts", _request_timeout=TIMEOUT)
    hub.crm.properties.core_api.get_all("contacts", _request_timeout=TIMEOUT)
    with pytest.raises(Exception) as caught:
        hub.crm.properties.core_api.get_all("contacts", _request_timeout=TIMEOUT)
    assert caught.value.status == 429 and json.loads(caught.value.body)["policyName"] == "TEN_SECONDLY_ROLLING"
    sb.clock.advance(10)
    hub.crm.properties.core_api.get_all("contacts", _request_timeout=TIMEOUT)
    for _ in range(5):
        hub.crm.contacts.search_api.do_search(search_body(), _request_timeout=TIMEOUT)
    with pytest.raises(Exception) as caught:
        hub.crm.contacts.search_api.do_search(search_body(), _request_timeout=TIMEOUT)
    assert json.loads(caught.value.body)["message"] == "You have reached your secondly limit."
    sb.set_limits(daily_used=250_000)
    with pytest.raises(Exception) as caught:
        hub.crm.properties.core_api.get_all("contacts", _request_timeout=TIMEOUT)
    assert json.loads(caught.value.body)["policyName"] == "DAILY"


def test_auth_oauth_refresh_and_expiry(hubspot_sandbox):
    """§2.2 and §8: a bad token gets 401 INVALID_AUTHENTICATION; /oauth/v1/token refreshes
    (form-encoded, expires_in 1800) and the token expires on the clock."""
    sb = hubspot_sandbox
    with pytest.raises(Exception) as caught:
        client(sb, "pat-na1-wrong").crm.properties.core_api.get_all("contacts", _request_timeout=TIMEOUT)
    assert caught.value.status == 401 and json.loads(caught.value.body)["category"] == "INVALID_AUTHENTICATION"
    tokens = HubSpot(host=sb.url).oauth.tokens_api.create(
        grant_type="refresh_token", client_id=sb.oauth_client["client_id"],
        client_secret=sb.oauth_client["client_secret"], refresh_token=sb.oauth_client["refresh_token"])
    assert tokens.expires_in == 1800
    api = client(sb, tokens.access_token).crm.properties.core_api
    api.get_all("contacts", _request_timeout=TIMEOUT)
    sb.clock.advance(1801)
    with pytest.raises(Exception) as caught:
        api.get_all("contacts", _request_timeout=TIMEOUT)
    assert caught.value.status == 401


def test_transport_faults(hubspot_sandbox):
    """§1.3/§10: no default timeout, so `_request_timeout` bounds a hung call (ReadTimeoutError);
    a dropped connection surfaces as a urllib3 error, not ApiException; 5xx and 423/477 are
    ServiceException/ApiException with the status."""
    sb = hubspot_sandbox
    api = client(sb).crm.properties.core_api
    sb.inject("hang", delay=1.5)
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.get_all("contacts", _request_timeout=(1, 0.5))
    sb.inject("drop")
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.get_all("contacts", _request_timeout=TIMEOUT)
    sb.inject("503")
    with pytest.raises(Exception) as caught:
        api.get_all("contacts", _request_timeout=TIMEOUT)
    assert type(caught.value).__name__ == "ServiceException" and caught.value.status == 503
    sb.inject("477")
    with pytest.raises(Exception) as caught:
        api.get_all("contacts", _request_timeout=TIMEOUT)
    assert caught.value.status == 477 and caught.value.headers["Retry-After"] == "1"
