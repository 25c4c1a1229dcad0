"""The GA4 emulator's Data API runReport, through the real google-analytics-data client.

Sources: the v1beta runReport reference (request/response shapes), the schema compatibility
announcement (20221201-compatibility-changes), and the error wording cited in
sandbox/ga4/reporting.py and data_api.py. Events reach the property through the Measurement
Protocol endpoint, exactly as closedloop's GA4 sender puts them there.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
from google.analytics.data_v1beta import (BetaAnalyticsDataClient, DateRange, Dimension, Filter, FilterExpression,
                                          Metric, OrderBy, RunReportRequest)
from google.api_core import exceptions
from google.oauth2 import service_account

from sandbox.clock import Clock
from sandbox.ga4 import GA4Sandbox

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
READONLY = "https://www.googleapis.com/auth/analytics.readonly"


@pytest.fixture(scope="module")
def _server(tmp_path_factory):
    sandbox = GA4Sandbox(clock=Clock(frozen_at=NOW), data_dir=tmp_path_factory.mktemp("ga4"))
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def ga4(_server):
    _server.reset()
    _server.clock.freeze(NOW)
    _server.processing_delay_seconds = 0
    _server.time_zone = "UTC"
    _server.register_user("111.1", "google", "cpc", "brand")
    _server.register_user("222.2", "newsletter", "email", "digest")
    return _server


@pytest.fixture(scope="module")
def client(_server):
    credentials = service_account.Credentials.from_service_account_file(_server.oauth.service_account_file,
                                                                        scopes=[READONLY])
    return BetaAnalyticsDataClient(credentials=credentials, transport="rest",
                                   client_options={"api_endpoint": _server.url})


def send(ga4, client_id, name, **params):
    """A Measurement Protocol request, as the GA4 sender makes it."""
    at = params.pop("at", None)
    event = {"name": name, "params": params}
    if at is not None:
        event["timestamp_micros"] = int(at.timestamp() * 1_000_000)
    response = requests.post(ga4.url + "/mp/collect", json={"client_id": client_id, "events": [event]}, timeout=5,
                             params={"measurement_id": ga4.measurement_id, "api_secret": ga4.api_secret})
    assert response.status_code == 204


def purchase(ga4, client_id, transaction_id, value, currency="USD", **extra):
    send(ga4, client_id, "purchase", transaction_id=transaction_id, value=value, currency=currency, **extra)


def report(client, ga4, dimensions, metrics, *, start="7daysAgo", end="today", **extra):
    request = RunReportRequest(property=f"properties/{ga4.property_id}",
                               dimensions=[Dimension(name=name) for name in dimensions],
                               metrics=[Metric(name=name) for name in metrics],
                               date_ranges=extra.pop("date_ranges", None) or [DateRange(start_date=start,
                                                                                         end_date=end)],
                               **extra)
    return client.run_report(request=request)


def table(response):
    return [tuple(v.value for v in row.dimension_values) + tuple(v.value for v in row.metric_values)
            for row in response.rows]


def test_purchase_revenue_by_first_user_channel_and_by_transaction(client, ga4):
    purchase(ga4, "111.1", "sf:006A", 1200)
    purchase(ga4, "111.1", "sf:006B", 300.5)
    purchase(ga4, "222.2", "hs:77", 1000, currency="EUR")
    purchase(ga4, "333.3", "hs:78", 10)                     # never seen by tagging
    by_channel = report(client, ga4, ["firstUserDefaultChannelGroup"], ["purchaseRevenue", "transactions"])
    assert [h.name for h in by_channel.dimension_headers] == ["firstUserDefaultChannelGroup"]
    assert [(h.name, h.type_.name) for h in by_channel.metric_headers] == [("purchaseRevenue", "TYPE_CURRENCY"),
                                                                          ("transactions", "TYPE_INTEGER")]
    assert table(by_channel) == [("Paid Search", "1500.5", "2"), ("Email", "1100", "1"), ("(not set)", "10", "1")]
    assert by_channel.row_count == 3
    assert by_channel.metadata.currency_code == "USD" and by_channel.kind == "analyticsData#runReport"
    by_transaction = report(client, ga4, ["transactionId"], ["purchaseRevenue"],
                            order_bys=[OrderBy(dimension=OrderBy.DimensionOrderBy(dimension_name="transactionId"))])
    assert table(by_transaction) == [("hs:77", "1100"), ("hs:78", "10"), ("sf:006A", "1200"), ("sf:006B", "300.5")]


def test_reports_lag_behind_collection_by_the_processing_delay(client, ga4):
    ga4.processing_delay_seconds = 4 * 3600
    purchase(ga4, "111.1", "sf:006A", 1200)
    assert table(report(client, ga4, ["transactionId"], ["purchaseRevenue"])) == []
    ga4.clock.advance(4 * 3600 - 1)
    assert table(report(client, ga4, ["transactionId"], ["purchaseRevenue"])) == []
    ga4.clock.advance(1)
    assert table(report(client, ga4, ["transactionId"], ["purchaseRevenue"])) == [("sf:006A", "1200")]


def test_refunds_subtract_and_date_follows_the_property_time_zone(client, ga4):
    ga4.time_zone = "America/Los_Angeles"
    purchase(ga4, "111.1", "sf:006A", 1200, at=NOW - timedelta(hours=8))        # 20 Nov 04:00 UTC = 19 Nov PST
    send(ga4, "111.1", "refund", transaction_id="sf:006A", value=200, currency="USD")
    daily = report(client, ga4, ["date"], ["purchaseRevenue", "grossPurchaseRevenue", "refundAmount"],
                   order_bys=[OrderBy(dimension=OrderBy.DimensionOrderBy(dimension_name="date"))])
    assert table(daily) == [("20261119", "1200", "1200", "0"), ("20261120", "-200", "0", "200")]
    assert daily.metadata.time_zone == "America/Los_Angeles"


def test_date_ranges_select_by_event_date_and_several_add_a_date_range_dimension(client, ga4):
    purchase(ga4, "111.1", "old", 100, at=NOW - timedelta(hours=60))
    purchase(ga4, "111.1", "new", 10)
    assert table(report(client, ga4, ["transactionId"], ["purchaseRevenue"], start="today", end="today")) == \
        [("new", "10")]
    both = report(client, ga4, [], ["purchaseRevenue"], date_ranges=[
        DateRange(start_date="2026-11-17", end_date="2026-11-18", name="before"),
        DateRange(start_date="yesterday", end_date="today")])
    assert [h.name for h in both.dimension_headers] == ["dateRange"]
    assert sorted(table(both)) == [("before", "100"), ("date_range_1", "10")]


def test_items_and_key_events(client, ga4):
    purchase(ga4, "111.1", "sf:1", 1500, items=[{"item_id": "plan", "item_name": "Plan", "price": 1000, "quantity": 1},
                                                {"item_id": "seat", "item_name": "Seat", "price": 250, "quantity": 2}])
    send(ga4, "111.1", "qualify_lead", value=10, currency="USD")
    ga4.mark_key_event("qualify_lead")
    send(ga4, "222.2", "qualify_lead", value=10, currency="USD")
    items = report(client, ga4, ["itemName"], ["itemRevenue", "itemsPurchased"])
    assert table(items) == [("Plan", "1000", "1"), ("Seat", "500", "2")]
    keys = report(client, ga4, ["eventName"], ["keyEvents", "eventCount"])
    assert sorted(table(keys)) == [("purchase", "1", "1"), ("qualify_lead", "1", "2")]


def test_filters_empty_rows_paging_and_totals(client, ga4):
    for number in range(5):
        purchase(ga4, "111.1", f"sf:{number}", 100 * (number + 1))
    send(ga4, "222.2", "page_view_like", value=1, currency="USD")
    only_sf3 = FilterExpression(filter=Filter(field_name="transactionId", string_filter=Filter.StringFilter(
        match_type=Filter.StringFilter.MatchType.ENDS_WITH, value=":3")))
    assert table(report(client, ga4, ["transactionId"], ["purchaseRevenue"], dimension_filter=only_sf3)) == \
        [("sf:3", "400")]
    with_empty = report(client, ga4, ["eventName"], ["purchaseRevenue"], keep_empty_rows=True)
    assert ("page_view_like", "0") in table(with_empty)
    assert ("page_view_like", "0") not in table(report(client, ga4, ["eventName"], ["purchaseRevenue"]))
    page = report(client, ga4, ["transactionId"], ["purchaseRevenue"], limit=2, offset=1,
                  metric_aggregations=["TOTAL", "MAXIMUM"])
    assert table(page) == [("sf:3", "400"), ("sf:2", "300")] and page.row_count == 5
    assert [v.value for v in page.totals[0].metric_values] == ["1500"]
    assert page.totals[0].dimension_values[0].value == "RESERVED_TOTAL"
    assert [v.value for v in page.maximums[0].metric_values] == ["500"]


@pytest.mark.parametrize("dimensions, metrics, message", [
    (["country"], ["eventCount"], "Field country is not a valid dimension. For a list of valid dimensions and "
                                  "metrics, see https://developers.google.com/analytics/devguides/reporting/data/v1/"
                                  "api-schema "),
    (["date"], ["revenue"], "Field revenue is not a valid metric."),
    (["customEvent:crm_stage"], ["eventCount"], "Field customEvent:crm_stage is not a valid dimension."),
    (["itemName"], ["eventCount"], "Please remove itemName to make the request compatible. The request's "
                                   "dimensions & metrics are incompatible."),
    (["itemId"], ["purchaseRevenue", "itemRevenue"], "Please remove itemId to make the request compatible."),
    ([], [], "Requests require dimensions and/or metrics. Most requests include both."),
    ([f"date{i}" for i in range(10)], ["eventCount"], "limited to 9 dimensions"),
])
def test_names_and_combinations_the_api_refuses(client, ga4, dimensions, metrics, message):
    with pytest.raises(exceptions.BadRequest) as refused:
        report(client, ga4, dimensions, metrics)
    assert message in refused.value.message


@pytest.mark.parametrize("start, end, message", [
    ("2026-11-31", "today", "Invalid date '2026-11-31'"),
    ("last week", "today", "Invalid date 'last week'"),
    ("today", "7daysAgo", "is after endDate"),
])
def test_bad_date_ranges_are_refused(client, ga4, start, end, message):
    with pytest.raises(exceptions.BadRequest) as refused:
        report(client, ga4, ["date"], ["eventCount"], start=start, end=end)
    assert message in refused.value.message


def test_what_the_sandbox_does_not_emulate_is_refused_not_ignored(ga4):
    credentials = service_account.Credentials.from_service_account_file(ga4.oauth.service_account_file,
                                                                        scopes=[READONLY])
    import google.auth.transport.requests
    credentials.refresh(google.auth.transport.requests.Request())
    response = requests.post(f"{ga4.url}/v1beta/properties/{ga4.property_id}:runReport", timeout=5,
                             headers={"Authorization": f"Bearer {credentials.token}"},
                             json={"dimensions": [{"name": "date"}], "metrics": [{"name": "eventCount"}],
                                   "dateRanges": [{"startDate": "7daysAgo", "endDate": "today"}],
                                   "metricFilter": {"filter": {"fieldName": "eventCount"}}})
    assert response.status_code == 400
    assert response.json()["error"] == {"code": 400, "status": "INVALID_ARGUMENT", "details": [
        response.json()["error"]["details"][0]], "message": "metricFilter is not emulated by the sandbox's Data API."}


def test_scope_and_property_access(client, ga4, tmp_path):
    wrong_scope = service_account.Credentials.from_service_account_file(
        ga4.oauth.service_account_file, scopes=["https://www.googleapis.com/auth/datamanager"])
    other = BetaAnalyticsDataClient(credentials=wrong_scope, transport="rest",
                                    client_options={"api_endpoint": ga4.url})
    with pytest.raises(exceptions.Forbidden) as scope:
        report(other, ga4, ["date"], ["eventCount"])
    assert scope.value.reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    stranger_key = ga4.oauth.create_service_account("stranger@closedloop-sandbox.iam.gserviceaccount.com",
                                                    key_path=tmp_path / "stranger.json")
    stranger = BetaAnalyticsDataClient(
        credentials=service_account.Credentials.from_service_account_file(stranger_key, scopes=[READONLY]),
        transport="rest", client_options={"api_endpoint": ga4.url})
    with pytest.raises(exceptions.Forbidden) as access:
        report(stranger, ga4, ["date"], ["eventCount"])
    assert access.value.message.endswith("User does not have sufficient permissions for this property. To learn more "
                                         "about Property ID, see https://developers.google.com/analytics/devguides/"
                                         "reporting/data/v1/property-id.")
    ga4.grant_data_api_access("stranger@closedloop-sandbox.iam.gserviceaccount.com")
    assert report(stranger, ga4, ["date"], ["eventCount"]).kind == "analyticsData#runReport"
    with pytest.raises(exceptions.Forbidden):
        client.run_report(request=RunReportRequest(property="properties/999", metrics=[Metric(name="eventCount")],
                                                   date_ranges=[DateRange(start_date="today", end_date="today")]))
    assert [call["status"] for call in ga4.data_api_log()] == [403, 403, 200, 403]


def test_property_tokens_are_reported_and_run_out(client, ga4):
    ga4.data_api_quota.per_hour = 2
    first = report(client, ga4, ["date"], ["eventCount"], return_property_quota=True)
    assert first.property_quota.tokens_per_hour.remaining == 1
    assert first.property_quota.tokens_per_day.remaining == 199_999
    report(client, ga4, ["date"], ["eventCount"])
    with pytest.raises(exceptions.TooManyRequests) as spent:
        report(client, ga4, ["date"], ["eventCount"])
    assert spent.value.message.endswith("Exhausted property tokens per hour. These quota tokens will return in under "
                                        "an hour.")
    ga4.clock.advance(3600)
    assert report(client, ga4, ["date"], ["eventCount"]).kind == "analyticsData#runReport"
