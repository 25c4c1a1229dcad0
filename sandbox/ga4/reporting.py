"""The GA4 Data API's report engine over the sandbox property: names, scopes, rows.

What it emulates (runReport, v1beta; https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport):

- Dimensions: ``date`` (YYYYMMDD in the property's time zone), ``eventName``,
  ``transactionId``, ``customEvent:<parameter>`` (registered ones), the five ``firstUser*`` and
  five ``session*`` traffic dimensions (store.py says how they are derived), and the item-scoped
  ``itemId``, ``itemName``. With more than one date range a ``dateRange`` dimension is added.
- Metrics: ``purchaseRevenue``, ``totalRevenue``, ``grossPurchaseRevenue``, ``refundAmount``
  (TYPE_CURRENCY, property currency), ``eventCount``, ``transactions``, ``ecommercePurchases``,
  ``keyEvents`` and ``keyEvents:<event>`` (TYPE_INTEGER), and the item-scoped ``itemRevenue``
  (TYPE_CURRENCY) and ``itemsPurchased`` (TYPE_INTEGER).
- Any other name is refused as the API refuses it: "Field X is not a valid dimension. For a
  list of valid dimensions and metrics, see
  https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema " (wording as
  quoted in public code that handles the API's 400s).
- Compatibility: "Item-scoped dimensions like itemName are becoming incompatible with
  event-scoped metrics like eventCount" (https://developers.google.com/analytics/devguides/
  reporting/data/v1/announcements/20221201-compatibility-changes; its list names eventCount,
  ecommercePurchases, conversions (now keyEvents)...; the copy read here is cut off, so the
  emulator treats every event-scoped metric as incompatible with item-scoped dimensions). The
  refusal: "Please remove <dimension> to make the request compatible. The request's dimensions
  & metrics are incompatible. To learn more, see
  https://ga-dev-tools.web.app/ga4/dimensions-metrics-explorer/" (github.com/googleapis/
  google-cloud-ruby/issues/20138, github.com/ComposioHQ/composio/issues/2169).
- Processing delay: an event shows up in reports only ``delay`` seconds (sandbox clock) after
  its request arrived — GA4 standard reports lag by hours (ga4-measurement-protocol.md §9 P3).

Rows: every combination of dimension values that has data; rows whose metrics are all zero
are dropped unless ``keepEmptyRows``. Without ``orderBys`` rows come by the first metric,
descending, then by dimension values (an emulator choice; the API promises no order).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

from sandbox.ga4.store import FIRST_USER_DIMENSIONS, SESSION_DIMENSIONS, GA4Property, StoredEvent
from sandbox.ga4.traffic import NOT_SET

SCHEMA_URL = "https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema"
EXPLORER_URL = "https://ga-dev-tools.web.app/ga4/dimensions-metrics-explorer/"
EVENT_DIMENSIONS = ("date", "eventName", "transactionId")
ITEM_DIMENSIONS = {"itemId": "item_id", "itemName": "item_name"}
CURRENCY_METRICS = ("purchaseRevenue", "totalRevenue", "grossPurchaseRevenue", "refundAmount")
INTEGER_METRICS = ("eventCount", "transactions", "ecommercePurchases", "keyEvents")
ITEM_METRICS = {"itemRevenue": "TYPE_CURRENCY", "itemsPurchased": "TYPE_INTEGER"}
MAX_DIMENSIONS, MAX_METRICS, MAX_DATE_RANGES = 9, 10, 4
_DAYS_AGO = re.compile(r"(\d+)daysAgo")


class ReportError(ValueError):
    """A 400 INVALID_ARGUMENT of the Data API; the message is the API's."""


@dataclass(frozen=True)
class Fact:
    """What one metric value comes from: an event, or one item of a purchase/refund event."""

    event: StoredEvent
    item: dict[str, Any] | None = None


@dataclass
class DateRange:
    start: date
    end: date
    name: str


@dataclass
class Report:
    dimension_headers: list[str]
    metric_headers: list[tuple[str, str]]
    rows: list[tuple[tuple[str, ...], list[Any]]]


def not_a_dimension(name: str) -> ReportError:
    return ReportError(f"Field {name} is not a valid dimension. For a list of valid dimensions and metrics, see "
                       f"{SCHEMA_URL} ")


def not_a_metric(name: str) -> ReportError:
    return ReportError(f"Field {name} is not a valid metric. For a list of valid dimensions and metrics, see "
                       f"{SCHEMA_URL} ")


class Reporter:
    """Reports over one property's events as the Data API computes them."""

    def __init__(self, prop: GA4Property, time_zone: str, now: datetime, delay_seconds: float) -> None:
        self.prop = prop
        self.zone = ZoneInfo(time_zone)
        self.now = now
        self.visible_before = now - timedelta(seconds=delay_seconds)

    # -- names and compatibility ------------------------------------------------------

    def dimension(self, name: str) -> tuple[str, Callable[[Fact], str]]:
        """(scope, reader) of a dimension; ReportError if the name is not one."""
        if name in ITEM_DIMENSIONS:
            key = ITEM_DIMENSIONS[name]
            return "item", lambda fact: str(fact.item.get(key, NOT_SET)) if fact.item else NOT_SET
        if name == "date":
            return "event", lambda fact: fact.event.at.astimezone(self.zone).strftime("%Y%m%d")
        if name in FIRST_USER_DIMENSIONS or name in SESSION_DIMENSIONS or name in ("eventName", "transactionId") \
                or name.startswith("customEvent:"):
            try:
                reader = self.prop.dimension_reader(name)
            except ValueError:
                raise not_a_dimension(name) from None
            return "event", lambda fact: reader(fact.event)
        raise not_a_dimension(name)

    def metric(self, name: str) -> tuple[str, str, Callable[[Fact], Any]]:
        """(scope, type, reader) of a metric; ReportError if the name is not one."""
        if name in ITEM_METRICS:
            return "item", ITEM_METRICS[name], self._item_metric(name)
        base = name.partition(":")[0]
        if base not in CURRENCY_METRICS and base not in INTEGER_METRICS:
            raise not_a_metric(name)
        if base == "ecommercePurchases":
            return "event", "TYPE_INTEGER", lambda fact: 1 if fact.event.name == "purchase" else None
        try:
            reader = self.prop.metric_reader(name)
        except ValueError:
            raise not_a_metric(name) from None
        kind = "TYPE_CURRENCY" if base in CURRENCY_METRICS else "TYPE_INTEGER"
        return "event", kind, lambda fact: reader(fact.event)

    def _item_metric(self, name: str) -> Callable[[Fact], Any]:
        def value(fact: Fact) -> Any:
            event, item = fact.event, fact.item
            if item is None or event.name not in ("purchase", "refund"):
                return None
            quantity = item.get("quantity", 1)
            quantity = quantity if isinstance(quantity, (int, float)) and not isinstance(quantity, bool) else 1
            sign = -1 if event.name == "refund" else 1
            if name == "itemsPurchased":
                return int(quantity) * sign
            price, rate = item.get("price"), self.prop.rates.get(event.params.get("currency"))
            if not isinstance(price, (int, float)) or isinstance(price, bool) or rate is None:
                return None
            return Decimal(repr(price)) * Decimal(repr(quantity)) * rate * sign
        return value

    def check_compatible(self, dimensions: list[str], metrics: list[str]) -> None:
        item_dimensions = [name for name in dimensions if self.dimension(name)[0] == "item"]
        event_metrics = [name for name in metrics if self.metric(name)[0] == "event"]
        if item_dimensions and event_metrics:
            raise ReportError(f"Please remove {item_dimensions[0]} to make the request compatible. The request's "
                              f"dimensions & metrics are incompatible. To learn more, see {EXPLORER_URL}")

    # -- dates ------------------------------------------------------------------------

    def date_ranges(self, ranges: list[dict[str, Any]]) -> list[DateRange]:
        if not ranges:
            raise ReportError("dateRanges is required: a report needs at least one date range.")
        if len(ranges) > MAX_DATE_RANGES:
            raise ReportError(f"Requests are limited to {MAX_DATE_RANGES} date ranges.")
        parsed = []
        for index, entry in enumerate(ranges):
            start, end = self._day(entry.get("startDate", "")), self._day(entry.get("endDate", ""))
            if start > end:
                raise ReportError(f"Invalid date range: startDate {entry['startDate']} is after endDate "
                                  f"{entry['endDate']}.")
            parsed.append(DateRange(start, end, entry.get("name") or f"date_range_{index}"))
        return parsed

    def _day(self, text: str) -> date:
        today = self.now.astimezone(self.zone).date()
        if text == "today":
            return today
        if text == "yesterday":
            return today - timedelta(days=1)
        match = _DAYS_AGO.fullmatch(text)
        if match:
            return today - timedelta(days=int(match.group(1)))
        try:
            return date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else _bad_date(text)
        except ValueError:
            return _bad_date(text)

    # -- rows -------------------------------------------------------------------------

    def facts(self, scope: str) -> Iterator[Fact]:
        """Events (or their items) whose processing delay has passed."""
        for event in self.prop.events:
            if event.received_at is not None and event.received_at > self.visible_before:
                continue
            if scope == "event":
                yield Fact(event)
            else:
                for item in event.params.get("items") or []:
                    yield Fact(event, item)

    def rows(self, dimensions: list[str], metrics: list[str], ranges: list[DateRange],
             keep: Callable[[Fact], bool], keep_empty: bool) -> dict[tuple[str, ...], list[Any]]:
        """Metric totals per combination of dimension values (plus the date range's name).

        With ``keep_empty`` every combination present in the data gets a row, zeros included."""
        readers = [self.dimension(name)[1] for name in dimensions]
        totals: dict[tuple[str, ...], list[Any]] = {}

        def add(fact: Fact, index: int | None, value: Any) -> None:
            day = fact.event.at.astimezone(self.zone).date()
            for date_range in ranges:
                if date_range.start <= day <= date_range.end:
                    key = tuple(reader(fact) for reader in readers)
                    if len(ranges) > 1:
                        key += (date_range.name,)
                    row = totals.setdefault(key, [0] * len(metrics))
                    if index is not None:
                        row[index] += value

        if keep_empty or not metrics:
            item_scoped = any(self.dimension(name)[0] == "item" for name in dimensions)
            for fact in self.facts("item" if item_scoped else "event"):
                if keep(fact):
                    add(fact, None, 0)
        for index, name in enumerate(metrics):
            scope, _, value_of = self.metric(name)
            for fact in self.facts(scope):
                value = value_of(fact) if keep(fact) else None
                if value is not None:
                    add(fact, index, value)
        return totals


def _bad_date(text: str) -> date:
    raise ReportError(f"Invalid date {text!r}: use YYYY-MM-DD, today, yesterday or NdaysAgo.")
