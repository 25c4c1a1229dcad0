"""Asking the destinations what they have, for ``closedloop reconcile`` and ``closedloop check``.

Reports may not call a remote, so the calls live here and hand plain data (dicts, Decimals)
to :mod:`sync.reports.reconcile`, which does the comparing:

- GA4 through the GA4 Data API: purchase revenue by first-user default channel group and by
  transaction id (``[ga4.data_api] property_id``);
- Google Ads through Data Manager's ``requestStatus:retrieve`` for every request closedloop sent
  in the period (counts per conversion action: recorded, and failed by reason);
- Meta cannot be read back (the Conversions API has no read endpoint): only what was sent.

Each destination is read on its own: one that cannot be read is noted, the others still are.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import select

from adapters.errors import ClosedloopError
from adapters.ga4_data import Ga4DataReader
from state.models import OutboxEvent
from sync.config import Config, locate

log = logging.getLogger(__name__)


@dataclass
class Readback:
    """What each destination says it received (None: not read; ``notes`` say why)."""

    ga4_by_channel: dict[str, Decimal] | None = None
    ga4_by_transaction: dict[str, tuple[Decimal, str]] | None = None   # → (revenue, first-user channel group)
    google_requests: dict[str, list[dict[str, Any]]] | None = None   # request id → per-action status
    notes: list[str] = field(default_factory=list)


def read_back(config: Config, connections, store, start: date, end: date) -> Readback:
    result = Readback()
    data_api = config.settings.ga4.data_api
    if config.settings.ga4.enabled and data_api.property_id:
        try:
            reader = Ga4DataReader(data_api.property_id, connections.google_credentials(), endpoint=data_api.endpoint,
                                   counter=connections.counter)
            rows = reader.revenue_by(["transactionId", "firstUserDefaultChannelGroup"], start, end)
            result.ga4_by_channel, result.ga4_by_transaction = {}, {}
            for row in rows:
                transaction, channel = row.keys
                result.ga4_by_channel[channel] = result.ga4_by_channel.get(channel, Decimal(0)) + row.revenue
                if transaction and transaction != "(not set)":
                    result.ga4_by_transaction[transaction] = (row.revenue, channel)
        except ClosedloopError as exc:
            result.notes.append(f"GA4 could not be read back: {exc.user_message}")
    elif config.settings.ga4.enabled:
        result.notes.append("GA4 is not read back: set [ga4.data_api] property_id to compare with what GA4 received")
    if config.settings.google_ads.enabled:
        try:
            sender = connections.destination("google_ads")
            result.google_requests = {}
            for request_id in sent_google_requests(store, start, end):
                result.google_requests[request_id] = [vars(status) for status in sender.request_status(request_id)]
        except ClosedloopError as exc:
            result.google_requests = None
            result.notes.append(f"Google Ads could not be read back: {exc.user_message}")
    return result


def sent_google_requests(store, start: date, end: date) -> list[str]:
    """Request ids of the Data Manager requests that carried conversions of the period."""
    with store.session(readonly=True) as session:
        events = session.exec(select(OutboxEvent).where(OutboxEvent.destination == "google_ads",
                                                        OutboxEvent.status == "sent")).all()
    ids = []
    for event in events:
        moment = datetime.fromisoformat(event.payload["event_time"]).date()
        if start <= moment <= end and event.payload.get("request_id"):
            ids.append(event.payload["request_id"])
    return list(dict.fromkeys(ids))


def check_destinations(config: Config, connections, now: datetime) -> tuple[list[str], list[str]]:
    """(what is fine, problems): each mapped conversion action asked with ``validateOnly``, the Meta
    dataset and token with an empty test request. Problems name the file, line and key at fault."""
    text = config.path.read_text(encoding="utf-8") if config.path else ""

    def where(*loc: str) -> str:
        line = locate(text, loc) if text else None
        return f"{config.source}:{line}" if line else config.source

    fine: list[str] = []
    problems: list[str] = []
    google = config.settings.google_ads
    if google.enabled:
        try:
            sender = connections.destination("google_ads")
            for stage, conversion in google.conversions.items():
                found = sender.check_conversion_action(conversion.conversion_action_id, now)
                problems += [f"{where('google_ads', 'conversions', stage, 'conversion_action_id')}: "
                             f"[google_ads.conversions.{stage}] conversion_action_id: {problem}" for problem in found]
                if not found:
                    fine.append(f"google_ads: {stage} → conversion action {conversion.conversion_action_id} accepts "
                                "conversions")
        except ClosedloopError as exc:
            problems.append(f"{where('google_auth')}: [google_auth] / [google_ads]: {exc.user_message}")
    meta = config.settings.meta
    if meta.enabled:
        try:
            found = connections.destination("meta").check()
            problems += [f"{where('meta', 'dataset_id')}: [meta] dataset_id / access_token_env: {p}" for p in found]
            if not found:
                fine.append(f"meta: dataset {meta.dataset_id} accepts events with this token "
                            f"({', '.join(f'{s} → {c.event_name}' for s, c in meta.conversions.items())})")
        except ClosedloopError as exc:
            problems.append(f"{where('meta')}: [meta]: {exc.user_message}")
    return fine, problems
