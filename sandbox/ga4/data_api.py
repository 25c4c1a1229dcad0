"""``POST /v1beta/properties/{propertyId}:runReport``: the GA4 Data API, minimal and strict.

For the real ``google-analytics-data`` client (``BetaAnalyticsDataClient``, REST transport,
``client_options={"api_endpoint": ga4.url}``) and plain HTTP. Request and response are the
v1beta REST shapes (https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport):

    → {"dimensionHeaders": [{"name"}], "metricHeaders": [{"name", "type"}],
       "rows": [{"dimensionValues": [{"value"}], "metricValues": [{"value"}]}],   (values as strings)
       "totals"/"maximums"/"minimums"?, "rowCount", "metadata": {"currencyCode", "timeZone"},
       "kind": "analyticsData#runReport"}

(proto3 JSON: ``rows`` and ``rowCount`` are absent from an empty report.)

Quota (https://developers.google.com/analytics/devguides/reporting/data/v1/quotas): a standard
property has 200,000 tokens a day and 40,000 an hour; the emulator charges each report one
token (Google charges by complexity, "most requests" ≤ 10) and answers 429 RESOURCE_EXHAUSTED
"Exhausted property tokens per hour/day..." (the wording client code matches on) once spent;
``returnPropertyQuota`` adds ``propertyQuota`` with consumed/remaining.

Refusals, all HTTP 400 INVALID_ARGUMENT with the API's message unless noted: unknown names and
incompatible combinations (reporting.py); "Requests require dimensions and/or metrics. Most
requests include both."; more than 9 dimensions, 10 metrics or 4 date ranges; bad dates;
``metricFilter``, ``cohortSpec``, ``comparisons``, metric ``expression`` and the ``COUNT``
aggregation are refused as not emulated (400 naming the field) rather than ignored. Auth
(shared with Data Manager, sandbox/googleapis/oauth.py): scope ``analytics.readonly`` or
``analytics``; a caller who is not a user of the property, or another property id, gets 403
"User does not have sufficient permissions for this property..." (the wording users quote,
e.g. in public GA4 setup guides).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable

from sandbox.ga4.reporting import MAX_DIMENSIONS, MAX_METRICS, Fact, Report, Reporter, ReportError
from sandbox.googleapis import ApiError, GoogleService
from sandbox.googleapis.protojson import ANY, BOOL, DOUBLE, INT64, STRING, PayloadError, Schema, enum_values, \
    parse_body
from sandbox.web import Request, Response

if TYPE_CHECKING:
    from sandbox.ga4 import GA4Sandbox

ANALYTICS_READONLY = "https://www.googleapis.com/auth/analytics.readonly"
SERVICE = GoogleService("analyticsdata.googleapis.com",
                        ("https://www.googleapis.com/auth/analytics", ANALYTICS_READONLY))
METHOD = "google.analytics.data.v1beta.BetaAnalyticsData.RunReport"
NO_ACCESS = ("User does not have sufficient permissions for this property. To learn more about Property ID, see "
             "https://developers.google.com/analytics/devguides/reporting/data/v1/property-id.")
DEFAULT_LIMIT, MAX_LIMIT = 10_000, 250_000

SCHEMA = Schema("google.analytics.data.v1beta", {
    "RunReportRequest": {"property": (STRING, False), "dimensions": ("msg:Dimension", True),
                         "metrics": ("msg:Metric", True), "dateRanges": ("msg:DateRange", True),
                         "dimensionFilter": ("msg:FilterExpression", False), "metricFilter": (ANY, False),
                         "offset": (INT64, False), "limit": (INT64, False),
                         "metricAggregations": ("enum:MetricAggregation", True), "orderBys": ("msg:OrderBy", True),
                         "currencyCode": (STRING, False), "cohortSpec": (ANY, False), "keepEmptyRows": (BOOL, False),
                         "returnPropertyQuota": (BOOL, False), "comparisons": (ANY, True)},
    "Dimension": {"name": (STRING, False), "dimensionExpression": (ANY, False)},
    "Metric": {"name": (STRING, False), "expression": (STRING, False), "invisible": (BOOL, False)},
    "DateRange": {"startDate": (STRING, False), "endDate": (STRING, False), "name": (STRING, False)},
    "FilterExpression": {"andGroup": ("msg:FilterExpressionList", False),
                         "orGroup": ("msg:FilterExpressionList", False),
                         "notExpression": ("msg:FilterExpression", False), "filter": ("msg:Filter", False)},
    "FilterExpressionList": {"expressions": ("msg:FilterExpression", True)},
    "Filter": {"fieldName": (STRING, False), "stringFilter": ("msg:StringFilter", False),
               "inListFilter": ("msg:InListFilter", False), "numericFilter": (ANY, False),
               "betweenFilter": (ANY, False), "emptyFilter": (ANY, False)},
    "StringFilter": {"matchType": ("enum:MatchType", False), "value": (STRING, False),
                     "caseSensitive": (BOOL, False)},
    "InListFilter": {"values": (STRING, True), "caseSensitive": (BOOL, False)},
    "OrderBy": {"metric": ("msg:MetricOrderBy", False), "dimension": ("msg:DimensionOrderBy", False),
                "pivot": (ANY, False), "desc": (BOOL, False)},
    "MetricOrderBy": {"metricName": (STRING, False)},
    "DimensionOrderBy": {"dimensionName": (STRING, False), "orderType": ("enum:OrderType", False)},
    "NumericValue": {"int64Value": (INT64, False), "doubleValue": (DOUBLE, False)},
}, {
    "MetricAggregation": {"METRIC_AGGREGATION_UNSPECIFIED": 0, "TOTAL": 1, "COUNT": 4, "MINIMUM": 5, "MAXIMUM": 6},
    "MatchType": enum_values("MATCH_TYPE_UNSPECIFIED", "EXACT", "BEGINS_WITH", "ENDS_WITH", "CONTAINS", "FULL_REGEXP",
                             "PARTIAL_REGEXP"),
    "OrderType": enum_values("ORDER_TYPE_UNSPECIFIED", "ALPHANUMERIC", "CASE_INSENSITIVE_ALPHANUMERIC", "NUMERIC"),
})
NOT_EMULATED = {"metricFilter": "metricFilter", "cohortSpec": "cohortSpec", "comparisons": "comparisons"}
AGGREGATE_ROWS = {"TOTAL": ("totals", "RESERVED_TOTAL"), "MAXIMUM": ("maximums", "RESERVED_MAX"),
                  "MINIMUM": ("minimums", "RESERVED_MIN")}


@dataclass
class TokenQuota:
    """The property's Data API tokens, hour and day windows on the sandbox clock."""

    per_hour: int = 40_000
    per_day: int = 200_000
    spent: list[datetime] = field(default_factory=list)

    def charge(self, now: datetime) -> None:
        self.spent = [at for at in self.spent if now - at < timedelta(days=1)]
        if len(self.spent) >= self.per_day:
            raise ApiError("RESOURCE_EXHAUSTED", "Exhausted property tokens per day. These quota tokens will return "
                                                 "in under 24 hours.")
        if self._last_hour(now) >= self.per_hour:
            raise ApiError("RESOURCE_EXHAUSTED", "Exhausted property tokens per hour. These quota tokens will return "
                                                 "in under an hour.")
        self.spent.append(now)

    def _last_hour(self, now: datetime) -> int:
        return sum(1 for at in self.spent if now - at < timedelta(hours=1))

    def as_json(self, now: datetime) -> dict[str, Any]:
        day, hour = len(self.spent), self._last_hour(now)
        return {"tokensPerDay": {"consumed": 1, "remaining": self.per_day - day},
                "tokensPerHour": {"consumed": 1, "remaining": self.per_hour - hour},
                "concurrentRequests": {"remaining": 10},
                "serverErrorsPerProjectPerHour": {"remaining": 10},
                "potentiallyThresholdedRequestsPerHour": {"remaining": 120},
                "tokensPerProjectPerHour": {"consumed": 1, "remaining": max(0, 14_000 - hour)}}


def handle_run_report(sandbox: "GA4Sandbox", request: Request) -> Response:
    """The route's handler: auth, property access, then the report."""
    try:
        principal = sandbox.oauth.authenticate(request, SERVICE, METHOD)
        property_id = request.path_params["property_id"]
        with sandbox._lock:
            allowed = property_id == sandbox.property_id and principal.email in sandbox.data_api_users
        if not allowed:
            raise ApiError("PERMISSION_DENIED", NO_ACCESS)
        try:
            body = parse_body(request.body, "RunReportRequest", SCHEMA)
        except PayloadError as exc:
            raise ApiError("INVALID_ARGUMENT", exc.violation.description) from None
        with sandbox._lock:
            result = run_report(sandbox, body)
            sandbox.data_api_quota.charge(sandbox.clock.now())
            if body.get("returnPropertyQuota"):
                result["propertyQuota"] = sandbox.data_api_quota.as_json(sandbox.clock.now())
    except ReportError as error:
        result = ApiError("INVALID_ARGUMENT", str(error))
    except ApiError as error:
        result = error
    if isinstance(result, ApiError):
        sandbox.log_data_api(request, result.code, result.message)
        return result.response()
    sandbox.log_data_api(request, 200, None)
    return Response.json(result, content_type="application/json; charset=UTF-8")


def run_report(sandbox: "GA4Sandbox", body: dict[str, Any]) -> dict[str, Any]:
    for key, name in NOT_EMULATED.items():
        if body.get(key):
            raise ReportError(f"{name} is not emulated by the sandbox's Data API.")
    dimensions = [entry.get("name", "") for entry in body.get("dimensions", [])]
    metrics = [entry.get("name", "") for entry in body.get("metrics", [])]
    if any(entry.get("expression") for entry in body.get("metrics", [])):
        raise ReportError("Metric expressions are not emulated by the sandbox's Data API.")
    if not dimensions and not metrics:
        raise ReportError("Requests require dimensions and/or metrics. Most requests include both.")
    if len(dimensions) > MAX_DIMENSIONS or len(metrics) > MAX_METRICS:
        raise ReportError(f"Requests are limited to {MAX_DIMENSIONS} dimensions and {MAX_METRICS} metrics.")
    reporter = Reporter(sandbox.property, sandbox.time_zone, sandbox.clock.now(), sandbox.processing_delay_seconds)
    for name in dimensions:
        reporter.dimension(name)
    metric_types = [(name, reporter.metric(name)[1]) for name in metrics]
    reporter.check_compatible(dimensions, metrics)
    ranges = reporter.date_ranges(body.get("dateRanges", []))
    keep = _filter(reporter, body.get("dimensionFilter"))
    totals = reporter.rows(dimensions, metrics, ranges, keep, bool(body.get("keepEmptyRows")))
    if metrics and not body.get("keepEmptyRows"):
        totals = {key: values for key, values in totals.items() if any(values)}
    headers = dimensions + (["dateRange"] if len(ranges) > 1 else [])
    rows = _ordered(list(totals.items()), headers, metrics, body.get("orderBys", []))
    offset, limit = body.get("offset", 0), body.get("limit", DEFAULT_LIMIT) or DEFAULT_LIMIT
    if offset < 0 or limit < 0:
        raise ReportError("offset and limit must not be negative.")
    report = Report(headers, metric_types, rows[offset:offset + min(limit, MAX_LIMIT)])
    return _render(report, len(rows), body.get("metricAggregations", []), list(totals.values()), sandbox)


def _filter(reporter: Reporter, expression: dict[str, Any] | None) -> Callable[[Fact], bool]:
    if not expression:
        return lambda fact: True
    if "andGroup" in expression:
        parts = [_filter(reporter, e) for e in expression["andGroup"].get("expressions", [])]
        return lambda fact: all(part(fact) for part in parts)
    if "orGroup" in expression:
        parts = [_filter(reporter, e) for e in expression["orGroup"].get("expressions", [])]
        return lambda fact: any(part(fact) for part in parts)
    if "notExpression" in expression:
        inner = _filter(reporter, expression["notExpression"])
        return lambda fact: not inner(fact)
    condition = expression.get("filter") or {}
    read = reporter.dimension(condition.get("fieldName", ""))[1]
    if "stringFilter" in condition:
        test = _string_test(condition["stringFilter"])
    elif "inListFilter" in condition:
        spec = condition["inListFilter"]
        sensitive = spec.get("caseSensitive", False)
        values = {v if sensitive else v.lower() for v in spec.get("values", [])}
        test = lambda value: (value if sensitive else value.lower()) in values  # noqa: E731
    else:
        raise ReportError("A dimension filter needs a stringFilter or inListFilter (numeric, between and empty "
                          "filters are not emulated by the sandbox's Data API).")
    return lambda fact: test(read(fact))


def _string_test(spec: dict[str, Any]) -> Callable[[str], bool]:
    match_type, wanted = spec.get("matchType", "EXACT"), spec.get("value", "")
    flags = 0 if spec.get("caseSensitive") else re.IGNORECASE
    if match_type in ("FULL_REGEXP", "PARTIAL_REGEXP"):
        try:
            pattern = re.compile(wanted, flags)
        except re.error as exc:
            raise ReportError(f"Invalid regular expression {wanted!r}: {exc}") from None
        return (lambda v: pattern.fullmatch(v) is not None) if match_type == "FULL_REGEXP" else \
            (lambda v: pattern.search(v) is not None)
    fold = (lambda v: v) if spec.get("caseSensitive") else str.lower
    target = fold(wanted)
    tests = {"EXACT": lambda v: fold(v) == target, "MATCH_TYPE_UNSPECIFIED": lambda v: fold(v) == target,
             "BEGINS_WITH": lambda v: fold(v).startswith(target), "ENDS_WITH": lambda v: fold(v).endswith(target),
             "CONTAINS": lambda v: target in fold(v)}
    return tests[match_type]


def _ordered(rows: list, headers: list[str], metrics: list[str], order_bys: list[dict[str, Any]]) -> list:
    def dimension_key(index: int, order_type: str):
        def key(row):
            value = row[0][index]
            if order_type == "NUMERIC":
                return (0, float(value)) if re.fullmatch(r"-?\d+(\.\d+)?", value) else (-1, 0.0)
            return value.lower() if order_type == "CASE_INSENSITIVE_ALPHANUMERIC" else value
        return key

    rows.sort(key=lambda row: row[0])
    if not order_bys:
        if metrics:
            rows.sort(key=lambda row: row[1][0], reverse=True)
        return rows
    for order in reversed(order_bys):   # stable sorts, last key first
        if "metric" in order:
            name = order["metric"].get("metricName", "")
            if name not in metrics:
                raise ReportError(f"orderBys metric {name} must be one of the request's metrics.")
            index = metrics.index(name)
            rows.sort(key=lambda row, i=index: row[1][i], reverse=order.get("desc", False))
        elif "dimension" in order:
            name = order["dimension"].get("dimensionName", "")
            if name not in headers:
                raise ReportError(f"orderBys dimension {name} must be one of the request's dimensions.")
            rows.sort(key=dimension_key(headers.index(name), order["dimension"].get("orderType", "ALPHANUMERIC")),
                      reverse=order.get("desc", False))
        else:
            raise ReportError("Pivot ordering is not emulated by the sandbox's Data API.")
    return rows


def _render(report: Report, row_count: int, aggregations: list[str], all_values: list[list[Any]],
            sandbox: "GA4Sandbox") -> dict[str, Any]:
    body: dict[str, Any] = {"dimensionHeaders": [{"name": name} for name in report.dimension_headers],
                            "metricHeaders": [{"name": name, "type": kind} for name, kind in report.metric_headers]}
    if not report.dimension_headers:
        del body["dimensionHeaders"]
    if not report.metric_headers:
        del body["metricHeaders"]
    if report.rows:
        body["rows"] = [_row(key, values) for key, values in report.rows]
    for aggregation in aggregations:
        if aggregation == "COUNT":
            raise ReportError("The COUNT metric aggregation is not emulated by the sandbox's Data API.")
        if aggregation not in AGGREGATE_ROWS or not all_values:
            continue
        field_name, label = AGGREGATE_ROWS[aggregation]
        columns = list(zip(*all_values))
        combine = {"TOTAL": sum, "MAXIMUM": max, "MINIMUM": min}[aggregation]
        body[field_name] = [_row(tuple(label for _ in report.dimension_headers),
                                 [combine(column) for column in columns])]
    if row_count:
        body["rowCount"] = row_count
    body["metadata"] = {"currencyCode": sandbox.property_currency, "timeZone": sandbox.time_zone}
    body["kind"] = "analyticsData#runReport"
    return body


def _row(key: tuple[str, ...], values: list[Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if key:
        row["dimensionValues"] = [{"value": value} for value in key]
    if values:
        row["metricValues"] = [{"value": metric_text(value)} for value in values]
    return row


def metric_text(value: Any) -> str:
    """A metric value as the Data API writes it: a decimal string without exponent."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return str(value)
