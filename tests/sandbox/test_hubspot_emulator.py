"""The HubSpot emulator, driven by the real hubspot-api-client 12 over HTTP.

Each test names the facts it pins: a section of shared/reference/hubspot-api.md and the
source given there. Time moves with the sandbox's Clock, never with sleeps.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import requests
import urllib3
from hubspot import HubSpot
from urllib3.util.retry import Retry

from sandbox.clock import Clock
from sandbox.hubspot import HubSpotSandbox

TIMEOUT = (2, 2)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)


@pytest.fixture
def sb():
    """A HubSpot emulator on an ephemeral port with a frozen clock (defaults: 100/10 s, 5 searches/s)."""
    sandbox = HubSpotSandbox(clock=Clock(frozen_at=NOW))
    sandbox.start()
    yield sandbox
    sandbox.stop()
    assert not sandbox.internal_errors, sandbox.internal_errors[0]


def client(sandbox: HubSpotSandbox, token: str | None = None) -> HubSpot:
    return HubSpot(access_token=token or sandbox.credentials["access_token"], host=sandbox.url, retry=Retry(total=0))


def window(prop="lastmodifieddate", gte=None, lt=None, after="0", limit=200, properties=("email",), extra=()):
    filters = [{"propertyName": prop, "operator": "GTE", "value": str(NOW_MS if gte is None else gte)}]
    if lt is not None:
        filters.append({"propertyName": prop, "operator": "LT", "value": str(lt)})
    return {"filterGroups": [{"filters": filters + list(extra)}],
            "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
            "properties": list(properties), "limit": limit, "after": after}


def raises(call, *args, **kwargs):
    """The exception a client call raises, with its decoded JSON body when it has one."""
    with pytest.raises(Exception) as caught:
        call(*args, _request_timeout=TIMEOUT, **kwargs)
    error = caught.value
    try:
        error.json = json.loads(error.body)
    except (AttributeError, TypeError, ValueError):
        error.json = None
    return error


class Searcher:
    """Search through the real client, one call per sandbox second (the 5/s limit is tested apart)."""

    def __init__(self, sandbox: HubSpotSandbox, object_type: str = "contacts") -> None:
        self.sandbox = sandbox
        self.api = getattr(client(sandbox).crm, object_type).search_api

    def __call__(self, body):
        self.sandbox.clock.advance(1)
        return self.api.do_search(body, _request_timeout=TIMEOUT)

    def ids(self, filters=None, groups=None, **extra):
        groups = groups if groups is not None else [{"filters": filters}]
        return [r.id for r in self({"filterGroups": groups, **extra}).results]


# -- search --------------------------------------------------------------------------------


def test_search_pages_with_string_offsets_and_stops_at_10000(sb):
    """§3.1/§3.2/§3.3 (developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm;
    hubspot-api-nodejs#132): ``after`` is an offset string, ``paging.next.after`` only while more
    remain, ``total`` an integer, requested-but-unset properties null, createdate/hs_object_id/
    lastmodifieddate always returned; after+limit beyond 10,000 is a 400, so is limit 201 and a
    body over 3,000 characters. §7.3: search responses carry no ten-second headers."""
    ids = sb.seed("contacts", [{"email": f"p{n}@x.com"} for n in range(250)])
    search = Searcher(sb)
    first = search(window(properties=["email", "firstname"]))
    assert first.total == 250 and len(first.results) == 200 and first.paging.next.after == "200"
    assert first.results[0].id == ids[0] and first.results[0].properties == {
        "email": "p0@x.com", "firstname": None, "createdate": "2026-11-20T12:00:00Z", "hs_object_id": ids[0],
        "lastmodifieddate": "2026-11-20T12:00:00Z"}
    second = search(window(after="200"))
    assert [r.id for r in second.results] == ids[200:] and second.paging is None
    assert raises(search.api.do_search, window(after="9900")).status == 400
    assert search(window(after="9800", limit=200)).results == []  # exactly 10,000 is still allowed
    assert raises(search.api.do_search, window(limit=201)).status == 400
    big_in = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "IN",
                                             "values": [f"someone{n}@example.com" for n in range(150)]}]}]}
    error = raises(search.api.do_search, big_in)
    assert error.status == 400 and error.json["category"] == "VALIDATION_ERROR"
    assert error.headers["X-HubSpot-Correlation-Id"] == error.json["correlationId"]
    sb.clock.advance(1)
    _, status, headers = search.api.do_search_with_http_info(window(), _request_timeout=TIMEOUT)
    assert status == 200 and headers["Content-Type"] == "application/json;charset=utf-8"
    assert "X-HubSpot-Correlation-Id" in headers and not any(h.startswith("X-HubSpot-RateLimit") for h in headers)


def test_more_than_10000_changes_are_read_by_splitting_the_window(sb):
    """§3.3/§3.4: ``total`` reports every match (10,050) while offsets stop at 10,000; a poller
    splits the GTE/LT window on epoch-ms strings and reads everything."""
    for n in range(201):  # 10,050 contacts over 201 milliseconds
        sb.seed("contacts", [{"email": f"b{n}-{i}@x.com"} for i in range(50)])
        sb.clock.advance(0.001)
    search = Searcher(sb)
    start, end = NOW_MS, NOW_MS + 201
    assert search(window(gte=start, lt=end, limit=1)).total == 10_050
    seen: list[str] = []

    def read(low, high):
        total = search(window(gte=low, lt=high, limit=1)).total
        if total > 10_000:
            middle = (low + high) // 2
            read(low, middle)
            read(middle, high)
            return
        after = "0"
        while after is not None:
            page = search(window(gte=low, lt=high, after=after))
            seen.extend(r.id for r in page.results)
            after = page.paging.next.after if page.paging else None

    read(start, end)
    assert len(seen) == len(set(seen)) == 10_050
    log = [e for e in sb.request_log() if e["path"].endswith("/search")]
    assert max(int(e["body"]["after"]) + e["body"]["limit"] for e in log) <= 10_000


def test_datetime_filters_take_epoch_ms_or_iso_and_the_wrong_modified_property_finds_nothing(sb):
    """§3.1: epoch-ms strings and ISO datetimes work, a date-only value is a 400
    (hubspot-api-ruby#62); contacts use ``lastmodifieddate`` and deals ``hs_lastmodifieddate``;
    a contact search on ``hs_lastmodifieddate`` silently returns nothing (amp-labs/connectors#45)."""
    contact = sb.create("contacts", {"email": "a@x.com"})
    deal = sb.create("deals", {"dealname": "D"})
    contacts, deals = Searcher(sb), Searcher(sb, "deals")
    assert [r.id for r in contacts(window(gte=NOW_MS)).results] == [contact]
    assert [r.id for r in contacts(window(gte="2026-11-20T11:59:59.999Z")).results] == [contact]
    assert contacts(window(gte=NOW_MS + 1)).total == 0
    assert raises(contacts.api.do_search, window(gte="2026-11-20")).status == 400
    assert contacts(window(prop="hs_lastmodifieddate")).total == 0
    found = deals(window(prop="hs_lastmodifieddate", properties=["amount"])).results
    assert [r.id for r in found] == [deal] and set(found[0].properties) == {
        "amount", "createdate", "hs_object_id", "hs_lastmodifieddate"}


def test_search_operators_case_rules_sorts_limits_and_archived(sb):
    """§3.1: all 13 operators; enumerations case-sensitive, other strings not; IN on strings
    needs lower-case values; groups are ORed; one dict sort, a JSON-string sort silently ignored
    (hubspot-api-nodejs#14); 5 groups / 6 per group / 18 filters (configurable); §3.3: archived
    records never appear."""
    ann = sb.create("contacts", {"email": "Ann@Example.com", "lifecyclestage": "lead", "firstname": "Ann"})
    sb.clock.advance(1)
    bob = sb.create("contacts", {"email": "bob@example.org", "lifecyclestage": "customer", "hs_lead_status": "NEW"})
    search = Searcher(sb)

    def one(prop, operator, **values):
        return search.ids([{"propertyName": prop, "operator": operator, **values}])

    assert one("email", "EQ", value="ann@example.com") == [ann]
    assert one("lifecyclestage", "EQ", value="LEAD") == [] and one("lifecyclestage", "EQ", value="lead") == [ann]
    assert one("email", "NEQ", value="ANN@example.com") == [bob]
    assert one("email", "IN", values=["ann@example.com"]) == [ann]
    assert one("email", "IN", values=["Ann@Example.com"]) == []
    assert one("lifecyclestage", "NOT_IN", values=["lead"]) == [bob]
    assert one("hs_lead_status", "HAS_PROPERTY") == [bob] and one("hs_lead_status", "NOT_HAS_PROPERTY") == [ann]
    assert one("email", "CONTAINS_TOKEN", value="*@example.org") == [bob]
    assert one("email", "NOT_CONTAINS_TOKEN", value="ann") == [bob]
    assert one("createdate", "LT", value=str(NOW_MS + 500)) == [ann]
    assert one("createdate", "GT", value=str(NOW_MS)) == [bob]
    assert one("createdate", "LTE", value=str(NOW_MS)) == [ann]
    assert one("hs_object_id", "GTE", value=bob) == [bob]
    assert one("createdate", "BETWEEN", value=str(NOW_MS), highValue=str(NOW_MS + 1000)) == [ann, bob]
    assert search.ids(groups=[{"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]},
                              {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ",
                                            "value": "customer"}]}]) == [ann, bob]
    has_email = [{"propertyName": "email", "operator": "HAS_PROPERTY"}]
    assert search.ids(has_email, sorts=[json.dumps({"propertyName": "email", "direction": "DESCENDING"})]) == [ann, bob]
    assert search.ids(has_email, sorts=[{"propertyName": "email", "direction": "DESCENDING"}]) == [bob, ann]
    six_groups = [{"filters": has_email}] * 6
    assert raises(search.api.do_search, {"filterGroups": six_groups}).status == 400
    sb.set_limits(max_filter_groups=6)
    assert search.ids(groups=six_groups) == [ann, bob]
    sb.archive("contacts", ann)
    assert search.ids(has_email) == [bob] and search({"filterGroups": [{"filters": has_email}]}).total == 1


def test_index_lag_follows_the_clock(sb):
    """§3.3: "It may take a few moments for newly created or updated CRM objects to appear in
    search results" - new records and new values become searchable index_lag seconds after
    the write, on the Clock; reads by id see them at once."""
    sb.set_limits(index_lag_seconds=30)
    contact = sb.create("contacts", {"email": "late@x.com", "firstname": "Old"})
    search = Searcher(sb)
    assert search(window()).total == 0
    assert client(sb).crm.contacts.basic_api.get_by_id(contact, _request_timeout=TIMEOUT).id == contact
    sb.clock.advance(29)
    found = search(window(properties=["firstname"]))
    assert [r.properties["firstname"] for r in found.results] == ["Old"]
    sb.update("contacts", contact, {"firstname": "New"})
    assert [r.properties["firstname"] for r in search(window(properties=["firstname"])).results] == ["Old"]
    sb.clock.advance(30)
    assert [r.properties["firstname"] for r in search(window(properties=["firstname"])).results] == ["New"]


def test_search_has_its_own_per_second_limit(sb):
    """§3.3/§7.1/§7.2: 5 searches per second per account, apart from the ten-second window;
    the 429 body is the "secondly limit" shape (grouparoo capture) with no rate headers."""
    api = client(sb).crm.contacts.search_api
    for _ in range(5):
        api.do_search(window(), _request_timeout=TIMEOUT)
    error = raises(api.do_search, window())
    assert error.status == 429 and set(error.json) == {"status", "message", "correlationId", "category"}
    assert error.json["message"] == "You have reached your secondly limit." and error.json["category"] == "RATE_LIMITS"
    assert not any(h.startswith("X-HubSpot-RateLimit") for h in error.headers)
    sb.clock.advance(1)
    assert api.do_search(window(), _request_timeout=TIMEOUT).total == 0
    assert sb.rate_limited == 1


# -- batch and basic objects ---------------------------------------------------------------------


def test_batch_update_200_207_and_the_whole_batch_400(sb):
    """§4.1 (developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis): 200
    without ``errors``; 207 ``OBJECT_NOT_FOUND`` with ``context.ids`` returned normally by the
    client; one bad value rejects the whole batch with 400 VALIDATION_ERROR, its code inside the
    JSON string in ``message`` and in ``errors[].code``; ``""`` clears; over 100 inputs is a 400;
    the daemon's own write advances lastmodifieddate (§3.4)."""
    contact = sb.create("contacts", {"email": "c@x.com", "firstname": "C", "phone": "123"})
    other = sb.create("contacts", {"email": "d@x.com"})
    api = client(sb).crm.contacts.batch_api
    sb.clock.advance(5)
    data, status, _ = api.update_with_http_info({"inputs": [{"id": contact, "properties": {"phone": ""}}]},
                                                _request_timeout=TIMEOUT)
    assert status == 200 and not hasattr(data, "errors")
    assert data.results[0].properties == {"phone": "", "hs_object_id": contact,
                                          "lastmodifieddate": "2026-11-20T12:00:05Z"}
    assert "phone" not in sb.record("contacts", contact)
    assert sb.record("contacts", contact)["lastmodifieddate"] == "2026-11-20T12:00:05Z"
    data = api.update({"inputs": [{"id": contact, "properties": {"firstname": "D"}},
                                  {"id": "424242", "properties": {"firstname": "E"}}]}, _request_timeout=TIMEOUT)
    assert data.num_errors == 1 and data.errors[0].category == "OBJECT_NOT_FOUND"
    assert data.errors[0].context == {"ids": ["424242"]} and [r.id for r in data.results] == [contact]
    for bad, code in (({"nope": "x"}, "PROPERTY_DOESNT_EXIST"), ({"lifecyclestage": "Lead"}, "INVALID_OPTION"),
                      ({"hs_analytics_source": "OFFLINE"}, "READ_ONLY_VALUE"), ({"hs_object_id": "1"}, "READ_ONLY_VALUE"),
                      ({"hs_analytics_first_timestamp": "x"}, "READ_ONLY_VALUE")):
        error = raises(api.update, {"inputs": [{"id": contact, "properties": {"firstname": "F"}},
                                               {"id": other, "properties": bad}]})
        assert error.status == 400 and error.json["category"] == "VALIDATION_ERROR"
        assert error.json["errors"] == [{"message": error.json["errors"][0]["message"], "code": code,
                                         "context": {"propertyName": list(bad)}}]
        prefix = "Property values were not valid: "
        assert error.json["message"].startswith(prefix)
        [detail] = json.loads(error.json["message"][len(prefix):])
        assert detail["isValid"] is False and detail["error"] == code and detail["name"] == list(bad)[0]
    error = raises(api.update, {"inputs": [{"id": contact, "properties": {"nope": "x"}}]})
    assert 'Property \\"nope\\" does not exist' in error.body
    assert sb.record("contacts", contact)["firstname"] == "D"
    assert raises(api.update, {"inputs": [{"id": str(n), "properties": {}} for n in range(101)]}).status == 400
    assert raises(api.update, {"inputs": [{"id": contact, "properties": {}}] * 2}).status == 400


def test_batch_update_value_rules_and_the_missing_id_switch(sb):
    """§5.3/§5.4: numbers take at most one point and no separators (INVALID_LONG here); dates
    need midnight (INVALID_DATE); datetimes accept ISO or ms and print ISO with Z; the deal
    currency is an enumeration of the account's currencies (deal-currency changelog message);
    §4.1/§13: with ``batch_update_missing_ids="400"`` a missing id fails the whole batch."""
    deal = sb.create("deals", {"dealname": "D"})
    api = client(sb).crm.deals.batch_api
    for value in ("1,000", "1.2.3", "ten"):
        assert raises(api.update, {"inputs": [{"id": deal, "properties": {"amount": value}}]}) \
            .json["errors"][0]["code"] == "INVALID_LONG"
    error = raises(api.update, {"inputs": [{"id": deal, "properties": {"deal_currency_code": "BRL"}}]})
    assert error.json["errors"][0] == {"message": '"BRL" is not a part of the current effective currency codes for '
                                                  "portal 99999", "code": "INVALID_OPTION",
                                       "context": {"propertyName": ["deal_currency_code"]}}
    api.update({"inputs": [{"id": deal, "properties": {"amount": "1000.50", "closedate": "1430438400123",
                                                       "deal_currency_code": "EUR"}}]}, _request_timeout=TIMEOUT)
    assert sb.record("deals", deal)["closedate"] == "2015-05-01T00:00:00.123Z"
    assert sb.record("deals", deal)["amount"] == "1000.50"
    client(sb).crm.properties.core_api.create("deals", {"name": "cl_first_seen", "label": "First seen", "type": "date",
                                                        "fieldType": "date", "groupName": "dealinformation"},
                                              _request_timeout=TIMEOUT)
    assert raises(api.update, {"inputs": [{"id": deal, "properties": {"cl_first_seen": "1430438400123"}}]}) \
        .json["errors"][0]["code"] == "INVALID_DATE"
    api.update({"inputs": [{"id": deal, "properties": {"cl_first_seen": "2015-05-01"}}]}, _request_timeout=TIMEOUT)
    assert sb.record("deals", deal)["cl_first_seen"] == "2015-05-01T00:00:00Z"
    sb.set_limits(batch_update_missing_ids="400")
    error = raises(api.update, {"inputs": [{"id": deal, "properties": {"dealname": "E"}},
                                           {"id": "999999", "properties": {"dealname": "F"}}]})
    assert error.status == 400 and error.json["context"] == {"ids": ["999999"]}
    assert sb.record("deals", deal)["dealname"] == "D"


def test_batch_read_create_and_single_records(sb):
    """§1.7: batch read 200/207 (OBJECT_NOT_FOUND, ``context.ids``, hubspot-api-php#619),
    batch create 201, get 200 or 404 (NotFoundException), PATCH 200, create 201; a contact
    email is unique (409 CONFLICT, hubspot-api-python#51); propertiesWithHistory over 50
    inputs is a 400 (§4.2); archived records are gone from reads."""
    hub = client(sb)
    created, status, _ = hub.crm.contacts.batch_api.create_with_http_info(
        {"inputs": [{"properties": {"email": f"n{n}@x.com"}} for n in range(3)]}, _request_timeout=TIMEOUT)
    assert status == 201 and len(created.results) == 3
    ids = [r.id for r in created.results]
    data, status, _ = hub.crm.contacts.batch_api.read_with_http_info(
        {"inputs": [{"id": ids[0]}, {"id": "1"}], "properties": ["email", "phone"]}, _request_timeout=TIMEOUT)
    assert status == 207 and data.errors[0].context == {"ids": ["1"]}
    assert data.results[0].properties == {"email": "n0@x.com", "phone": None, "createdate": "2026-11-20T12:00:00Z",
                                          "hs_object_id": ids[0], "lastmodifieddate": "2026-11-20T12:00:00Z"}
    error = raises(hub.crm.contacts.batch_api.read, {"inputs": [{"id": i} for i in ids] * 17,
                                                     "propertiesWithHistory": ["email"]})
    assert error.status == 400
    basic = hub.crm.contacts.basic_api
    one, status, _ = basic.create_with_http_info({"properties": {"email": "solo@x.com"}}, _request_timeout=TIMEOUT)
    assert status == 201 and one.properties["email"] == "solo@x.com"
    error = raises(basic.create, {"properties": {"email": "SOLO@x.com"}})
    assert error.status == 409 and error.json["message"] == f"Contact already exists. Existing ID: {one.id}"
    assert basic.update(one.id, {"properties": {"firstname": "S"}}, _request_timeout=TIMEOUT).properties["firstname"] == "S"
    assert basic.get_by_id(one.id, properties=["firstname"], _request_timeout=TIMEOUT).properties["firstname"] == "S"
    assert basic.get_by_id("solo@x.com", id_property="email", _request_timeout=TIMEOUT).id == one.id
    missing = raises(basic.get_by_id, "123")
    assert type(missing).__name__ == "NotFoundException" and missing.status == 404
    sb.archive("contacts", one.id)
    assert raises(basic.get_by_id, one.id).status == 404
    page = basic.get_page(limit=2, _request_timeout=TIMEOUT)
    assert [r.id for r in page.results] == ids[:2] and page.paging.next.after
    rest = basic.get_page(limit=2, after=page.paging.next.after, _request_timeout=TIMEOUT)
    assert [r.id for r in rest.results] == ids[2:] and rest.paging is None


# -- properties, pipelines, deals, associations -------------------------------------------------------


def test_properties_and_groups(sb):
    """§5.1-5.4 (developers.hubspot.com/docs/api-reference/crm-properties-v3/guide): group and
    property create answer 201 (the client returns None on 200: hubspot-api-python#448), 409
    when they exist, 400 for a type/fieldType mismatch, 404 for unknown names; list is
    ``{"results":[…]}``; custom properties are stored and returned on records; strings are
    capped at 65,536 characters."""
    hub = client(sb)
    properties, groups = hub.crm.properties.core_api, hub.crm.properties.groups_api
    created, status, _ = groups.create_with_http_info(
        "contacts", {"name": "closedloop", "label": "Closedloop attribution", "displayOrder": -1},
        _request_timeout=TIMEOUT)
    assert status == 201 and created.to_dict() == {"name": "closedloop", "label": "Closedloop attribution",
                                                   "display_order": -1, "archived": False}
    assert raises(groups.create, "contacts", {"name": "closedloop", "label": "again"}).status == 409
    assert raises(groups.get_by_name, "contacts", "nope").status == 404
    body = {"name": "cl_first_click_source", "label": "First click source", "type": "string", "fieldType": "text",
            "groupName": "closedloop"}
    made, status, _ = properties.create_with_http_info("contacts", body, _request_timeout=TIMEOUT)
    assert status == 201 and made.name == body["name"] and made.modification_metadata.read_only_value is False
    assert raises(properties.create, "contacts", body).status == 409
    assert raises(properties.create, "contacts", {**body, "name": "cl_x", "type": "number"}).status == 400
    assert raises(properties.create, "contacts", {**body, "name": "cl_y", "groupName": "nope"}).status == 400
    assert raises(properties.get_by_name, "contacts", "missing").status == 404
    sb.inject("status_200_for_201", path_contains="/properties/")
    assert properties.create("contacts", {**body, "name": "cl_drift"}, _request_timeout=TIMEOUT) is None
    names = {p.name for p in properties.get_all("contacts", _request_timeout=TIMEOUT).results}
    assert {"cl_first_click_source", "cl_drift", "email", "lastmodifieddate", "hs_analytics_source"} <= names
    source = properties.get_by_name("contacts", "hs_analytics_source", _request_timeout=TIMEOUT)
    assert source.modification_metadata.read_only_value is True
    contact = sb.create("contacts", {"email": "p@x.com"})
    batch = hub.crm.contacts.batch_api
    batch.update({"inputs": [{"id": contact, "properties": {"cl_first_click_source": "google"}}]},
                 _request_timeout=TIMEOUT)
    assert batch.read({"inputs": [{"id": contact}], "properties": ["cl_first_click_source"]},
                      _request_timeout=TIMEOUT).results[0].properties["cl_first_click_source"] == "google"
    error = raises(batch.update, {"inputs": [{"id": contact, "properties": {"cl_first_click_source": "x" * 65_537}}]})
    assert error.status == 400 and error.json["errors"][0]["context"] == {"propertyName": ["cl_first_click_source"]}
    batch.update({"inputs": [{"id": contact, "properties": {"cl_first_click_source": "x" * 65_536}}]},
                 _request_timeout=TIMEOUT)


def test_pipelines_carry_string_metadata(sb):
    """§6.2 (Pipelines spec): metadata values are strings, the default pipeline's createdAt is
    epoch 0, default stage ids and probabilities of §6.1; a custom pipeline has numeric ids and
    a closed-won stage; an unknown pipeline is a 404."""
    api = client(sb).crm.pipelines.pipelines_api
    pipelines, status, _ = api.get_all_with_http_info("deals", _request_timeout=TIMEOUT)
    assert status == 200
    default = next(p for p in pipelines.results if p.id == "default")
    assert default.created_at == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert [(s.id, s.metadata["probability"]) for s in default.stages] == [
        ("appointmentscheduled", "0.2"), ("qualifiedtobuy", "0.4"), ("presentationscheduled", "0.6"),
        ("decisionmakerboughtin", "0.8"), ("contractsent", "0.9"), ("closedwon", "1.0"), ("closedlost", "0.0")]
    assert next(s for s in default.stages if s.id == "closedwon").metadata == {"isClosed": "true", "probability": "1.0"}
    custom = api.get_by_id("deals", "7654321", _request_timeout=TIMEOUT)
    assert all(s.id.isdigit() for s in custom.stages)
    assert [s.id for s in custom.stages if s.metadata == {"isClosed": "true", "probability": "1.0"}] == ["1234903"]
    assert raises(api.get_by_id, "deals", "nope").status == 404


def test_deal_stage_drives_closedate_and_calculated_properties(sb):
    """§6.1 (knowledge.hubspot.com/crm-deals/hubspots-default-deal-properties): closedate is set
    on entering a closed stage but not closed-won -> closed-won; hs_is_closed,
    hs_is_closed_won and hs_closed_amount follow the stage metadata; values are strings."""
    deal = sb.create("deals", {"dealname": "D", "amount": "1000.50"})
    record = sb.record("deals", deal)
    assert (record["hs_is_closed_won"], record["hs_closed_amount"], record["pipeline"]) == ("false", "0", "default")
    assert "closedate" not in record and record["hs_deal_stage_probability"].startswith("0.2000000")
    sb.clock.advance(60)
    sb.move_deal(deal, "closedwon")
    record = sb.record("deals", deal)
    assert (record["hs_is_closed"], record["hs_is_closed_won"], record["hs_closed_amount"]) == ("true", "true",
                                                                                                "1000.50")
    assert record["closedate"] == "2026-11-20T12:01:00Z" == record["hs_lastmodifieddate"]
    sb.clock.advance(60)
    sb.move_deal(deal, "1234903")  # closed-won in the custom pipeline: closedate kept
    assert sb.record("deals", deal)["closedate"] == "2026-11-20T12:01:00Z"
    assert sb.record("deals", deal)["pipeline"] == "7654321"
    sb.clock.advance(60)
    sb.move_deal(deal, "closedlost")
    record = sb.record("deals", deal)
    assert (record["closedate"], record["hs_is_closed_won"], record["hs_closed_amount"]) == (
        "2026-11-20T12:03:00Z", "false", "0")
    error = raises(client(sb).crm.deals.basic_api.update, deal, {"properties": {"hs_is_closed_won": "true"}})
    assert error.status == 400 and error.json["errors"][0]["code"] == "READ_ONLY_VALUE"


def test_associations_v4_page_at_500(sb):
    """§6.3 (Associations v4 spec and guide): per-record reads default to 500 with ``after``
    paging, ``toObjectId`` is a JSON number the client coerces to a string, typeId 3
    deal->contact and 4 contact->deal; batch read pages per input and omits deals without
    associations."""
    deal, lonely = sb.create("deals", {"dealname": "Big"}), sb.create("deals", {"dealname": "None"})
    contacts = sb.seed("contacts", [{"email": f"a{n}@x.com"} for n in range(520)])
    for contact in contacts:
        sb.associate(deal, contact)
    hub = client(sb)
    basic = hub.crm.associations.v4.basic_api
    first = basic.get_page("deals", deal, "contacts", _request_timeout=TIMEOUT)
    assert len(first.results) == 500 and first.results[0].to_object_id == contacts[0]
    assert first.results[0].association_types[0].to_dict() == {"category": "HUBSPOT_DEFINED", "type_id": 3,
                                                               "label": None}
    rest = basic.get_page("deals", deal, "contacts", after=first.paging.next.after, _request_timeout=TIMEOUT)
    assert [r.to_object_id for r in rest.results] == contacts[500:] and rest.paging is None
    raw = requests.get(f"{sb.url}/crm/v4/objects/deals/{deal}/associations/contacts?limit=1",
                       headers={"Authorization": f"Bearer {sb.private_token}"}, timeout=5).json()
    assert raw["results"][0]["toObjectId"] == int(contacts[0])
    back = basic.get_page("contacts", contacts[0], "deals", _request_timeout=TIMEOUT)
    assert back.results[0].to_object_id == deal and back.results[0].association_types[0].type_id == 4
    batch = hub.crm.associations.v4.batch_api
    data, status, _ = batch.get_page_with_http_info("deals", "contacts", {"inputs": [{"id": deal}, {"id": lonely}]},
                                                   _request_timeout=TIMEOUT)
    assert status == 200 and [r._from.id for r in data.results] == [deal]
    assert len(data.results[0].to) == 500 and data.results[0].paging.next.after
    more = batch.get_page("deals", "contacts", {"inputs": [{"id": deal, "after": data.results[0].paging.next.after}]},
                          _request_timeout=TIMEOUT)
    assert [t.to_object_id for t in more.results[0].to] == contacts[500:] and more.results[0].paging is None
    assert raises(batch.get_page, "deals", "contacts", {"inputs": [{"id": deal}] * 1001}).status == 400


# -- rate limits, auth, faults -------------------------------------------------------------------------


def test_rate_limit_headers_and_429_bodies(sb):
    """§7.1-7.3: non-search responses carry the X-HubSpot-RateLimit-* headers (read through
    ``*_with_http_info``); past the ten-second Max a 429 ``TEN_SECONDLY_ROLLING`` body
    (hubspot-api-python#117), past the daily allowance a ``DAILY`` body; the tier sets the Max."""
    sb.set_limits(max_per_10s=3)
    api = client(sb).crm.properties.core_api
    _, _, headers = api.get_all_with_http_info("contacts", _request_timeout=TIMEOUT)
    assert (headers["X-HubSpot-RateLimit-Max"], headers["X-HubSpot-RateLimit-Remaining"],
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"]) == ("3", "2", "10000")
    assert (headers["X-HubSpot-RateLimit-Daily"], headers["X-HubSpot-RateLimit-Daily-Remaining"]) == ("250000",
                                                                                                     "249999")
    api.get_all("contacts", _request_timeout=TIMEOUT)
    sb.clock.advance(5)
    api.get_all("contacts", _request_timeout=TIMEOUT)
    error = raises(api.get_all, "contacts")
    assert error.status == 429 and set(error.json) == {"status", "message", "errorType", "correlationId",
                                                       "policyName", "groupName"}
    assert (error.json["message"], error.json["errorType"], error.json["policyName"]) == (
        "You have reached your ten_secondly_rolling limit.", "RATE_LIMIT", "TEN_SECONDLY_ROLLING")
    assert "Retry-After" not in error.headers
    sb.clock.advance(5)  # the first two calls leave the rolling window
    _, _, headers = api.get_all_with_http_info("contacts", _request_timeout=TIMEOUT)
    assert headers["X-HubSpot-RateLimit-Remaining"] == "1"
    sb.set_limits(daily_limit=10, daily_used=10)
    error = raises(api.get_all, "contacts")
    assert error.status == 429 and set(error.json) == {"status", "message", "errorType", "correlationId",
                                                       "policyName", "requestId"}
    assert error.json["policyName"] == "DAILY" and error.json["message"] == "You have reached your daily limit."
    sb.clock.advance(86_400)  # the daily count resets at the account's midnight
    sb.set_tier("professional")
    _, _, headers = api.get_all_with_http_info("contacts", _request_timeout=TIMEOUT)
    assert (headers["X-HubSpot-RateLimit-Max"], headers["X-HubSpot-RateLimit-Daily"]) == ("190", "650000")
    assert sb.rate_limited == 2


def test_auth_oauth_refresh_and_expiry(sb):
    """§2.2 and §8: a wrong token gets 401 INVALID_AUTHENTICATION; ``/oauth/v1/token`` refreshes
    (form-encoded, no Authorization header, expires_in 1800) and the token expires on the clock
    (401 EXPIRED_AUTHENTICATION, https://github.com/airbytehq/airbyte/issues/74726); OAuth calls
    carry no Daily headers (§7.3); the request log never holds a secret."""
    error = raises(client(sb, "pat-na1-wrong").crm.properties.core_api.get_all, "contacts")
    assert error.status == 401 and type(error).__name__ == "UnauthorizedException"
    assert error.json["category"] == "INVALID_AUTHENTICATION"
    assert error.json["message"].startswith("Authentication credentials not found.")
    assert error.headers["X-HubSpot-Correlation-Id"] == error.json["correlationId"]
    oauth = HubSpot(host=sb.url).oauth.tokens_api
    credentials = sb.credentials
    bad = raises(oauth.create, grant_type="refresh_token", client_id=credentials["client_id"],
                 client_secret=credentials["client_secret"], refresh_token="stale")
    assert bad.status == 400 and bad.json["status"] == "BAD_REFRESH_TOKEN"
    tokens = oauth.create(grant_type="refresh_token", client_id=credentials["client_id"],
                          client_secret=credentials["client_secret"], refresh_token=credentials["refresh_token"],
                          _request_timeout=TIMEOUT)
    assert tokens.expires_in == 1800 and tokens.token_type == "bearer" and len(tokens.access_token) <= 300
    api = client(sb, tokens.access_token).crm.properties.core_api
    _, _, headers = api.get_all_with_http_info("contacts", _request_timeout=TIMEOUT)
    assert "X-HubSpot-RateLimit-Max" in headers and "X-HubSpot-RateLimit-Daily" not in headers
    sb.clock.advance(1800)
    expired = raises(api.get_all, "contacts")
    assert expired.status == 401 and expired.json["category"] == "EXPIRED_AUTHENTICATION"
    assert expired.json["message"] == "The OAuth token used to make this call expired 0 second(s) ago."
    logged = json.dumps(sb.request_log())
    for secret in (credentials["client_secret"], credentials["refresh_token"], tokens.access_token,
                   sb.private_token):
        assert secret not in logged


def test_dated_oauth_token_endpoint(sb):
    """realtime-and-auth.md §3.1: ``POST /oauth/2026-03/token`` takes the four form fields in the
    body and nothing in the query string, answers the 2026-03 AccessTokenResponse, and refuses
    with RFC 6749 ``error``/``error_description`` beside the legacy ``status``/``message``
    (changelog "new OAuth v3 API endpoints and standardized error responses"); an uninstalled
    app's refresh token is ``invalid_grant``. The request log never holds the form."""
    url, c = sb.url + "/oauth/2026-03/token", sb.credentials
    form = {"grant_type": "refresh_token", "client_id": c["client_id"], "client_secret": c["client_secret"],
            "refresh_token": c["refresh_token"]}
    ok = requests.post(url, data=form, timeout=5)
    body = ok.json()
    assert ok.status_code == 200 and body["token_type"] == "bearer" and body["token_use"] == "access_token"
    assert body["expires_in"] == 1800 and body["refresh_token"] == c["refresh_token"]
    assert body["hub_id"] == sb.portal_id and "oauth" in body["scopes"]
    api = client(sb, body["access_token"]).crm.properties.core_api
    assert api.get_all("contacts", _request_timeout=TIMEOUT).results

    def refused(response, error, status):
        answer = response.json()
        assert response.status_code == 400, answer
        assert (answer["error"], answer["status"]) == (error, status) and answer["error_description"]
        return answer

    refused(requests.post(url, params=form, data=form, timeout=5), "invalid_request", "BAD_REQUEST")
    refused(requests.post(url, json=form, timeout=5), "invalid_request", "BAD_REQUEST")
    refused(requests.post(url, data={**form, "client_secret": ""}, timeout=5), "invalid_request", "BAD_REQUEST")
    refused(requests.post(url, data={**form, "grant_type": "password"}, timeout=5), "unsupported_grant_type",
            "BAD_GRANT_TYPE")
    refused(requests.post(url, data={**form, "client_id": "other"}, timeout=5), "invalid_client", "BAD_CLIENT_ID")
    stale = refused(requests.post(url, data={**form, "refresh_token": "stale"}, timeout=5), "invalid_grant",
                    "BAD_REFRESH_TOKEN")
    assert stale["error_description"] == "refresh token is invalid, expired or revoked"
    sb.revoke_refresh_token()
    refused(requests.post(url, data=form, timeout=5), "invalid_grant", "BAD_REFRESH_TOKEN")
    legacy = requests.post(sb.url + "/oauth/v1/token", data=form, timeout=5).json()
    assert legacy["status"] == "BAD_REFRESH_TOKEN" and "error" not in legacy  # v1 keeps its old shape
    sb.revoke_refresh_token(False)
    assert requests.post(url, data=form, timeout=5).status_code == 200
    assert requests.get(url, timeout=5).status_code == 405
    assert all(entry["body"] is None for entry in sb.request_log() if entry["path"].startswith("/oauth/"))
    assert c["client_secret"] not in json.dumps(sb.request_log())


def test_transport_faults(sb):
    """§1.3/§10: with no default timeout, ``_request_timeout`` bounds a hung call; a dropped
    connection surfaces as a urllib3 error, not ApiException; commit-then-drop applies the
    write and loses the answer; §7.4: 423, 477 with Retry-After, 5xx (HTML too) become
    ApiException/ServiceException; §7.2: 429 with and without Retry-After. Faults are counted
    and filtered by method and path."""
    contact = sb.create("contacts", {"email": "f@x.com"})
    hub = client(sb)
    api, batch = hub.crm.properties.core_api, hub.crm.contacts.batch_api
    sb.inject("hang", delay=3.0)
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.get_all("contacts", _request_timeout=(1, 0.3))
    assert time.monotonic() - started < 2.0  # the 0.3 s read timeout ended it, not the 3 s hang
    sb.inject("drop")
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.get_all("contacts", _request_timeout=TIMEOUT)
    sb.inject("lost_response", method="POST", path_contains="/batch/update")
    api.get_all("contacts", _request_timeout=TIMEOUT)  # not matched: the fault waits
    with pytest.raises(urllib3.exceptions.HTTPError):
        batch.update({"inputs": [{"id": contact, "properties": {"firstname": "Committed"}}]}, _request_timeout=TIMEOUT)
    assert sb.record("contacts", contact)["firstname"] == "Committed"
    sb.inject("503", times=2)
    for _ in range(2):
        error = raises(api.get_all, "contacts")
        assert type(error).__name__ == "ServiceException" and error.status == 503
    api.get_all("contacts", _request_timeout=TIMEOUT)
    sb.inject("524", html=True)
    error = raises(api.get_all, "contacts")
    assert error.status == 524 and error.headers["Content-Type"].startswith("text/html") and "<html>" in error.body
    sb.inject("477")
    error = raises(api.get_all, "contacts")
    assert error.status == 477 and error.headers["Retry-After"] == "1"
    sb.inject("423")
    assert raises(api.get_all, "contacts").status == 423
    sb.inject("429")
    sb.inject("429_retry_after", retry_after=2)
    plain, delayed = raises(api.get_all, "contacts"), raises(api.get_all, "contacts")
    assert "Retry-After" not in plain.headers and delayed.headers["Retry-After"] == "2"
    assert delayed.json["policyName"] == "TEN_SECONDLY_ROLLING"
    assert [e["fault"] for e in sb.request_log() if e["fault"]] == [
        "hang", "drop", "lost_response", "503", "503", "524", "477", "423", "429", "429_retry_after"]


def test_http_control_api(sb):
    """The brief's control API over HTTP under /_sandbox/: seed, create with an explicit
    createdate, update as a user, move a deal, associate, limits and latency, faults, the log
    with counts by endpoint and 429s, and reset."""
    base = f"{sb.url}/_sandbox"
    with requests.Session() as http:
        ids = http.post(f"{base}/contacts/seed", json={"rows": [{"email": f"s{n}@x.com"} for n in range(3)]},
                        timeout=5).json()["ids"]
        made = http.post(f"{base}/contacts", json={"properties": {"email": "u@x.com"},
                                                   "created_at": "2026-01-01T00:00:00Z"}, timeout=5)
        assert made.status_code == 201
        contact = made.json()["id"]
        assert http.get(f"{base}/contacts/{contact}", timeout=5).json()["properties"]["createdate"] == \
            "2026-01-01T00:00:00Z"
        assert http.post(f"{base}/contacts", json={"properties": {"lifecyclestage": "LEAD"}}, timeout=5) \
            .status_code == 400
        sb.clock.advance(1)
        http.patch(f"{base}/contacts/{contact}", json={"hs_lead_status": "OPEN"}, timeout=5).raise_for_status()
        assert sb.record("contacts", contact)["lastmodifieddate"] == "2026-11-20T12:00:01Z"
        deal = http.post(f"{base}/deals", json={"dealname": "D"}, timeout=5).json()["id"]
        http.post(f"{base}/deals/{deal}/stage", json={"stage": "closedwon"}, timeout=5).raise_for_status()
        http.post(f"{base}/associations", json={"deal_id": deal, "contact_id": contact}, timeout=5).raise_for_status()
        assert sb.stored("deals", deal)["associations"] == [contact]
        assert sb.record("deals", deal)["hs_is_closed_won"] == "true"
        http.post(f"{base}/limits", json={"max_per_10s": 1, "index_lag_seconds": 0}, timeout=5).raise_for_status()
        http.post(f"{base}/faults", json={"kind": "503", "path_contains": "/pipelines"}, timeout=5).raise_for_status()
        api = client(sb).crm.properties.core_api
        api.get_all("contacts", _request_timeout=TIMEOUT)
        assert raises(api.get_all, "contacts").status == 429
        counts = http.get(f"{base}/requests/counts", timeout=5).json()
        assert counts == {"total": 2, "by_endpoint": {"GET /crm/v3/properties/contacts": 2}, "rate_limited": 1}
        http.post(f"{base}/limits", json={"latency_seconds": 0.2}, timeout=5).raise_for_status()
        started = time.monotonic()
        raises(api.get_all, "contacts")
        assert time.monotonic() - started >= 0.2
        assert http.post(f"{base}/clock/advance", json={"seconds": 10}, timeout=5).json()["now"].startswith(
            "2026-11-20T12:00:11")
        http.post(f"{base}/reset", timeout=5).raise_for_status()
    assert sb.record("contacts", ids[0]) is None and sb.request_log() == []


def test_a_large_poll_page_is_answered_from_the_index(sb, monkeypatch):
    """Scale (the brief): the keyset poll - GTE/LT on the last-modified property, ascending
    sort, limit 200, plus the same-millisecond NOT_IN split - never scans the table (asserted
    on the evaluator's path, not on a stopwatch: speed belongs to the benchmarks)."""
    import sandbox.hubspot.search as evaluator

    scans = []
    real_scan = evaluator._scan
    monkeypatch.setattr(evaluator, "_scan", lambda *args: scans.append(args[2]) or real_scan(*args))
    sb.set_limits(max_per_10s=10_000)
    for batch in range(20):  # 40,000 contacts over 20 seconds
        sb.seed("contacts", [{"email": f"m{batch}-{n}@x.com"} for n in range(2_000)])
        sb.clock.advance(1)
    search = Searcher(sb)
    page = search(window(gte=NOW_MS, lt=NOW_MS + 20_000, after="1800"))
    first_millisecond = [r.id for r in search(window(gte=NOW_MS, lt=NOW_MS + 1)).results]
    split = search({"filterGroups": [
        {"filters": [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": str(NOW_MS)},
                     {"propertyName": "hs_object_id", "operator": "NOT_IN", "values": first_millisecond}]},
        {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": str(NOW_MS)},
                     {"propertyName": "lastmodifieddate", "operator": "LTE", "value": str(NOW_MS + 20_000)}]}],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": 200})
    assert page.total == 40_000 and len(page.results) == 200
    assert split.total == 40_000 - 200 and split.results[0].id not in first_millisecond
    assert scans == [], "a keyset poll page was answered by scanning the table instead of from the index"
    search(window(gte=NOW_MS, lt=NOW_MS + 20_000, extra=[{"propertyName": "email", "operator": "CONTAINS_TOKEN",
                                                          "value": "m3-*"}]))
    assert len(scans) == 1  # a filter the index cannot answer does scan: the check above can fail
