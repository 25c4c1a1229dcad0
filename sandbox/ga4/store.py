"""A small GA4 property: users and sessions learnt from tagging, the events Google keeps from
Measurement Protocol requests, and reports over them.

What it models (shared/reference/ga4-measurement-protocol.md):
- §2.4: first-user source/medium/campaign is a user attribute set by the first visit seen by
  tagging (gtag.js); MP events with that client_id report under it, with or without a session.
  Client ids never seen by tagging report as ``(not set)``.
- §2.3: session-scoped dimensions of an MP event come from the tagged session whose
  ``session_id`` it carries, only if the request arrives ≤ 24 h after that session started
  and any overridden timestamp lies within the session; otherwise ``(not set)``.
- §3.2 and §6.1: what exceeds a limit is not kept (RELAXED "ignores parameters that exceed
  limits"; GA "doesn't log events, event parameters, and user properties that exceed" them).
- §3.4: timestamps older than 72 hours are moved to 72 hours ago.
- §4.2-§4.4: ``purchase`` is de-duplicated by ``transaction_id`` (an empty one de-duplicates
  every purchase that has it); ``refund`` subtracts its ``value``; revenue needs a numeric
  ``value`` with a ``currency`` (P8), converted to the property currency with exact Decimals.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable

from sandbox.ga4 import validation as rules
from sandbox.ga4.traffic import NOT_SET, TrafficSource, derive_traffic_source

SESSION_ATTRIBUTION_WINDOW = timedelta(hours=24)   # §2.3 "no later than 24 hours after the start"
SESSION_TIMEOUT = timedelta(minutes=30)           # GA4's default session timeout: a session's end
BACKDATE_LIMIT = timedelta(hours=72)               # §3.4
# Inference: GA4's session-scoped reports attribute a direct session to the user's last
# non-direct source (third-party tests of the Data API, e.g. tanelytics.com); the lookback
# mirrors GA4's 90-day default for non-acquisition key events.
LAST_NON_DIRECT_LOOKBACK = timedelta(days=90)
MAX_CUSTOM_EVENT_DIMENSIONS = 50                   # standard property quota
DEFAULT_KEY_EVENTS = ("purchase",)                 # marked as a key event in every web property

FIRST_USER_DIMENSIONS = {"firstUserSource": "source", "firstUserMedium": "medium",
                         "firstUserSourceMedium": "source_medium", "firstUserCampaignName": "campaign",
                         "firstUserDefaultChannelGroup": "channel"}
SESSION_DIMENSIONS = {"sessionSource": "source", "sessionMedium": "medium", "sessionSourceMedium": "source_medium",
                      "sessionCampaignName": "campaign", "sessionDefaultChannelGroup": "channel"}
NO_SESSION = TrafficSource(NOT_SET, NOT_SET, NOT_SET)
METRICS = ("totalRevenue", "purchaseRevenue", "grossPurchaseRevenue", "refundAmount", "eventCount", "transactions",
           "keyEvents")
_COOKIE_CLIENT_ID = re.compile(r"GA\d+\.\d+\.(\d+\.\d+)")
_SESSION_ID_IN_COOKIE = (re.compile(r"GS\d+\.\d+\.s?(\d+)"), re.compile(r"s(\d+)(\$.*)?"))


def normalise_client_id(client_id: str) -> str:
    """``GA1.1.123.456`` (the ``_ga`` cookie, accepted since 2026-02-17, §1.4) → ``123.456``."""
    match = _COOKIE_CLIENT_ID.fullmatch(client_id)
    return match.group(1) if match else client_id


def normalise_session_id(session_id: Any) -> str | None:
    """A session id as a digit string: number, digit string, GTM built-in or session cookie form."""
    if isinstance(session_id, bool) or session_id is None:
        return None
    if isinstance(session_id, (int, float)):
        return str(int(session_id)) if float(session_id).is_integer() and session_id > 0 else None
    text = str(session_id).strip()
    if text.isdigit():
        return text
    for pattern in _SESSION_ID_IN_COOKIE:
        match = pattern.match(text)
        if match:
            return match.group(1)
    return None


@dataclass
class Session:
    """One tagged session of one client."""

    client_id: str
    session_id: str
    traffic: TrafficSource      # as reported: a direct session carries the last non-direct source
    landing: TrafficSource      # what the session's first hit itself said
    started: datetime
    last_hit: datetime


@dataclass
class StoredEvent:
    """An event the property kept, with what its reports need."""

    client_id: str
    name: str
    params: dict[str, Any]
    at: datetime
    user_id: str | None = None
    session: Session | None = None
    revenue: Decimal = Decimal(0)  # property currency; negative for refunds; 0 when not computed
    key_event: bool = False
    custom: dict[str, str] = field(default_factory=dict)  # registered custom dimensions at processing time
    received_at: datetime | None = None   # when the request arrived (reports lag behind it)

    @property
    def session_traffic(self) -> TrafficSource:
        return self.session.traffic if self.session else NO_SESSION

    @property
    def session_source(self) -> str:
        return self.session_traffic.source

    @property
    def transaction_id(self) -> str | None:
        value = self.params.get("transaction_id")
        return None if value is None else str(value)


@dataclass
class Processed:
    """What became of one production request: the events kept and everything ignored."""

    events: list[StoredEvent] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)

    def ignore(self, path: str, reason: str) -> None:
        self.ignored.append({"fieldPath": path, "reason": reason})


class GA4Property:
    """The data behind one web data stream's reports. Not thread-safe: the sandbox locks."""

    def __init__(self, currency: str, rates: dict[str, Decimal], *, site_host: str = "") -> None:
        self.currency = currency
        self.rates = rates
        self.site_host = site_host
        self.users: dict[str, TrafficSource] = {}
        self.sessions: dict[tuple[str, str], Session] = {}
        self.events: list[StoredEvent] = []
        self.custom_dimensions: dict[str, str] = {}   # parameter name → display name
        self.key_events: set[str] = set(DEFAULT_KEY_EVENTS)
        self._last_non_direct: dict[str, tuple[TrafficSource, datetime]] = {}
        self._purchased: set[str] = set()             # transaction ids already counted

    # -- tagging ---------------------------------------------------------------------

    def record_hit(self, client_id: str, page_url: str, referrer: str, session_id: Any, at: datetime) -> None:
        """A gtag.js hit: the client's first hit fixes its first-user source; the first hit of a
        session fixes that session's source."""
        traffic = derive_traffic_source(page_url, referrer, self.site_host, at)
        self.users.setdefault(client_id, traffic)
        sid = normalise_session_id(session_id)
        session = self.sessions.get((client_id, sid)) if sid is not None else None
        if session is not None:
            session.last_hit = max(session.last_hit, at)
        elif sid is not None:
            reported = traffic
            previous = self._last_non_direct.get(client_id)
            if traffic.is_direct and previous and at - previous[1] <= LAST_NON_DIRECT_LOOKBACK:
                reported = previous[0]
            self.sessions[(client_id, sid)] = Session(client_id, sid, reported, traffic, at, at)
        if not traffic.is_direct:
            self._last_non_direct[client_id] = (traffic, at)

    def register_user(self, client_id: str, traffic: TrafficSource) -> None:
        self.users[client_id] = traffic

    # -- Measurement Protocol --------------------------------------------------------

    def ingest(self, body: dict[str, Any], now: datetime) -> Processed:
        """Keep what GA4 keeps of a parsed, authenticated request (RELAXED processing)."""
        result = Processed()
        client_id = body.get("client_id")
        if not client_id:
            result.ignore("client_id", "a web stream request without client_id is not processed")
            return result
        client_id = normalise_client_id(client_id)
        user_id = body.get("user_id")
        if user_id is not None and len(user_id) > rules.MAX_USER_ID:
            result.ignore("user_id", f"longer than {rules.MAX_USER_ID} characters")
            user_id = None
        request_micros = rules.micros(body.get("timestamp_micros"))
        events = body.get("events") or []
        for index, event in enumerate(events):
            if index >= rules.MAX_EVENTS:
                result.ignore(f"events[{index}]", f"beyond the first {rules.MAX_EVENTS} events")
                continue
            stored = self._event(event, index, client_id, user_id, request_micros, now, result)
            if stored is not None:
                self.events.append(stored)
                result.events.append(stored)
        return result

    def _event(self, event: dict[str, Any], index: int, client_id: str, user_id: str | None,
               request_micros: int | None, now: datetime, result: Processed) -> StoredEvent | None:
        path = f"events[{index}]"
        name = event.get("name")
        if not name or rules.name_problem(name, rules.MAX_NAME) or rules.reserved_event(name):
            result.ignore(path, f"event name {name!r} is missing, invalid or reserved")
            return None
        params = self._kept_params(event.get("params") or {}, path, result)
        own_micros = rules.micros(event.get("timestamp_micros"))
        overridden = own_micros if own_micros is not None else request_micros
        at = self._event_time(overridden, now)
        if name == "purchase" and "transaction_id" in params:
            transaction_id = str(params["transaction_id"])
            if transaction_id in self._purchased:
                result.ignore(path, f"duplicate purchase of transaction_id {transaction_id!r}")
                return None
            self._purchased.add(transaction_id)
        revenue = self._revenue(name, params, path, result)
        session = self._joined_session(client_id, params.get("session_id"), overridden is not None, at, now)
        custom = {param: str(params[param]) for param in self.custom_dimensions if param in params}
        return StoredEvent(client_id, name, params, at, user_id, session, revenue, name in self.key_events, custom,
                           received_at=now)

    def _kept_params(self, params: dict[str, Any], path: str, result: Processed) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for position, (key, value) in enumerate(params.items()):
            param_path = f"{path}.params.{key}"
            if position >= rules.MAX_PARAMS:
                result.ignore(param_path, f"beyond the first {rules.MAX_PARAMS} parameters")
            elif rules.name_problem(key, rules.MAX_NAME) or rules.reserved_param(key):
                result.ignore(param_path, "invalid or reserved parameter name")
            elif key == "items":
                if isinstance(value, list):
                    kept[key] = self._kept_items(value, param_path, result)
                else:
                    result.ignore(param_path, "items is not an array")
            elif not rules.is_scalar(value):
                result.ignore(param_path, "not a string or a number")
            elif isinstance(value, str) and (limit := rules.value_limit(key)) is not None and len(value) > limit:
                result.ignore(param_path, f"value longer than {limit} characters")
            else:
                kept[key] = value
        return kept

    @staticmethod
    def _kept_items(items: list[Any], path: str, result: Processed) -> list[dict[str, Any]]:
        kept_items = []
        for number, item in enumerate(items):
            item_path = f"{path}[{number}]"
            if not isinstance(item, dict) or not (item.get("item_id") or item.get("item_name")):
                result.ignore(item_path, "an item needs item_id or item_name")
                continue
            kept: dict[str, Any] = {}
            custom = 0
            for key, value in item.items():
                custom += key not in rules.STANDARD_ITEM_PARAMS
                if key not in rules.STANDARD_ITEM_PARAMS and custom > rules.MAX_CUSTOM_ITEM_PARAMS:
                    result.ignore(f"{item_path}.{key}", f"beyond {rules.MAX_CUSTOM_ITEM_PARAMS} custom item params")
                elif rules.name_problem(key, rules.MAX_NAME) or rules.reserved_param(key) or not rules.is_scalar(value):
                    result.ignore(f"{item_path}.{key}", "invalid item parameter")
                elif isinstance(value, str) and len(value) > rules.MAX_VALUE:
                    result.ignore(f"{item_path}.{key}", f"value longer than {rules.MAX_VALUE} characters")
                else:
                    kept[key] = value
            kept_items.append(kept)
        return kept_items

    @staticmethod
    def _event_time(overridden: int | None, now: datetime) -> datetime:
        if overridden is None:
            return now
        at = datetime.fromtimestamp(overridden / 1_000_000, timezone.utc)
        # Older than 72 h: moved to 72 h ago (RELAXED, §3.4). Future: the emulator takes
        # receipt time (inference; Google documents only "≤ request time").
        return min(max(at, now - BACKDATE_LIMIT), now)

    def _revenue(self, name: str, params: dict[str, Any], path: str, result: Processed) -> Decimal:
        if name not in rules.MONEY_EVENTS or "value" not in params:
            return Decimal(0)
        value, currency = params["value"], params.get("currency")
        if not rules.is_number(value):
            result.ignore(f"{path}.params.value", "revenue not computed: value is not a number")
            return Decimal(0)
        if not rules.valid_currency(currency):
            result.ignore(f"{path}.params.currency", "revenue not computed: value without an ISO 4217 currency")
            return Decimal(0)
        rate = self.rates.get(currency)
        if rate is None:
            result.ignore(f"{path}.params.currency", f"revenue not computed: no exchange rate for {currency}")
            return Decimal(0)
        # repr() gives back the JSON number's own digits (up to 17 significant ones), so the
        # conversion is exact decimal arithmetic on what the sender wrote.
        amount = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
        converted = amount * rate
        return -converted if name == "refund" else converted

    def _joined_session(self, client_id: str, session_id: Any, overridden: bool, at: datetime,
                        now: datetime) -> Session | None:
        sid = normalise_session_id(session_id)
        session = self.sessions.get((client_id, sid)) if sid is not None else None
        if session is None or now - session.started > SESSION_ATTRIBUTION_WINDOW:
            return None
        if overridden and not (session.started <= at <= session.last_hit + SESSION_TIMEOUT):
            return None
        return session

    # -- configuration ---------------------------------------------------------------

    def register_custom_dimension(self, parameter_name: str, display_name: str | None = None) -> None:
        """An event-scoped custom dimension; like GA4's, it applies to events processed from now on."""
        if rules.name_problem(parameter_name, rules.MAX_NAME):
            raise ValueError(f"invalid parameter name {parameter_name!r}")
        if parameter_name not in self.custom_dimensions and len(self.custom_dimensions) >= MAX_CUSTOM_EVENT_DIMENSIONS:
            raise ValueError(f"a property has at most {MAX_CUSTOM_EVENT_DIMENSIONS} event-scoped custom dimensions")
        self.custom_dimensions[parameter_name] = display_name or parameter_name

    def mark_key_event(self, event_name: str) -> None:
        """Count ``event_name`` as a key event from now on (GA4 key events are not retroactive)."""
        self.key_events.add(event_name)

    # -- reports ---------------------------------------------------------------------

    def report(self, dimension: str, metric: str = "totalRevenue", event_name: str | None = None,
               keep_empty_rows: bool = True) -> dict[str, Any]:
        """Metric totals by dimension value, sorted by value."""
        dimension_of = self.dimension_reader(dimension)
        metric_of = self.metric_reader(metric, event_name)
        totals: dict[str, Any] = {}
        for event in self.events:
            amount = metric_of(event)
            if amount is not None:
                key = dimension_of(event)
                totals[key] = totals.get(key, 0) + amount
        return {key: value for key, value in sorted(totals.items()) if keep_empty_rows or value}

    def dimension_reader(self, dimension: str):
        """A function giving an event's value of ``dimension``; ValueError for an unknown name."""
        if dimension in FIRST_USER_DIMENSIONS:
            attribute = FIRST_USER_DIMENSIONS[dimension]

            def first_user(event: StoredEvent) -> str:
                user = self.users.get(event.client_id)
                return NOT_SET if user is None else getattr(user, attribute)
            return first_user
        if dimension in SESSION_DIMENSIONS:
            attribute = SESSION_DIMENSIONS[dimension]
            return lambda event: getattr(event.session_traffic, attribute)
        if dimension == "eventName":
            return lambda event: event.name
        if dimension == "transactionId":
            return lambda event: NOT_SET if event.transaction_id is None else event.transaction_id
        if dimension.startswith("customEvent:"):
            parameter = dimension.split(":", 1)[1]
            if parameter not in self.custom_dimensions:
                raise ValueError(f"{dimension} is not a valid dimension: register {parameter!r} as a custom "
                                 "dimension first")
            return lambda event: event.custom.get(parameter, NOT_SET)
        raise ValueError(f"unknown dimension {dimension!r}")

    @staticmethod
    def metric_reader(metric: str, event_name: str | None = None):
        """A function giving an event's contribution to ``metric`` (None: not counted)."""
        name, _, qualifier = metric.partition(":")
        if qualifier and name != "keyEvents":
            raise ValueError(f"unknown metric {metric!r}")
        only = qualifier or event_name

        def wanted(event: StoredEvent, names: Iterable[str] | None = None) -> bool:
            return (only is None or event.name == only) and (names is None or event.name in names)

        metrics = {
            "totalRevenue": lambda e: e.revenue if wanted(e, rules.MONEY_EVENTS) else None,
            "purchaseRevenue": lambda e: e.revenue if wanted(e, rules.MONEY_EVENTS) else None,
            "grossPurchaseRevenue": lambda e: e.revenue if wanted(e, ("purchase",)) else None,
            "refundAmount": lambda e: -e.revenue if wanted(e, ("refund",)) else None,
            "eventCount": lambda e: 1 if wanted(e) else None,
            "transactions": lambda e: 1 if wanted(e, ("purchase",)) else None,
            "keyEvents": lambda e: 1 if e.key_event and wanted(e) else None,
        }
        if name not in metrics:
            raise ValueError(f"unknown metric {metric!r}")
        return metrics[name]
