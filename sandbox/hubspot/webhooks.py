"""App webhooks: HubSpot POSTing signed batches of change events to the app's target URL.

Facts (shared/reference/realtime-and-auth.md §1.2, §1.5; hubspot-api.md §9.2):
- subscriptions: ``contact.creation``, ``contact.propertyChange`` (one per property),
  ``contact.deletion``, ``deal.creation``, ``deal.propertyChange``, ``deal.deletion``; the
  last-modified property and ``num_unique_conversion_events`` cannot be subscribed to
  (https://developers.hubspot.com/docs/api/webhooks);
- a request is a JSON array of up to 100 events with ``eventId`` (not guaranteed unique),
  ``subscriptionId``, ``portalId``, ``appId``, ``occurredAt`` (epoch ms), ``subscriptionType``,
  ``attemptNumber`` (from 0), ``objectId``, ``propertyName``/``propertyValue`` (property changes),
  ``changeSource``; order is not guaranteed;
- at most 10 concurrent requests per account (``maxConcurrentRequests``);
- a delivery fails on a connection error, an answer slower than 5 s, or any 4xx/5xx, and is
  retried "up to 10 times ... spread out over the next 24 hours, with varying delays", with
  per-notification randomisation; then it is gone;
- ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client secret, method + URI + body +
  timestamp)), ``X-HubSpot-Request-Timestamp`` in ms; the v1 ``X-HubSpot-Signature``
  (sha256 hex of secret + body) with ``X-HubSpot-Signature-Version: v1`` is still sent for
  CRM-object webhooks (request-validation docs; hubspot-api-python ``utils/signature.py``).

From captured deliveries, third-party sources (not HubSpot's docs), so marked (unverified):
creation events carry ``"changeFlag": "CREATED"``; a write by an app through the API has
``changeSource: "INTEGRATION"`` and ``sourceId`` = that app's id, a write in the CRM UI
``changeSource: "CRM_UI"`` and ``sourceId: "userId:<id>"`` (captures quoted in public repos,
e.g. payload samples of 2025 with ``"sourceId": "9393361"``). Deletion events carry
``"changeFlag": "DELETED"`` (unverified). Properties set when a record is created also produce
``propertyChange`` events (unverified).

Emulator choices: the exact retry delays are not published, so attempt n+1 follows attempt n by
``RETRY_DELAYS[n]`` seconds (1 min … 10 h 9 min, 24 h in all) ±``jitter``; all times are on the
emulator's clock, times ``retry_time_scale`` (tests advance the clock; benchmarks shrink the
scale). 3xx answers are failures (HubSpot is not known to follow redirects). Settings apply
at once (HubSpot: up to 5 minutes). The delivery log and the dropped list keep the latest
10,000 entries.

Not emulated: the Webhooks Journal (reference §1.3). Its endpoints and the ``{currentOffset,
expiresAt, url}`` answers are specified, but the file behind ``url`` (the events themselves)
is known only from third-party summaries, and whether a single-account app may mint the
client-credentials token it needs is open; an emulator would have to invent both, and a
client tested against the invention would prove nothing.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import random
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

import requests

from sandbox.clock import Clock

SUBSCRIPTION_TYPES = ("contact.creation", "contact.propertyChange", "contact.deletion", "deal.creation",
                      "deal.propertyChange", "deal.deletion")
OBJECT_TYPES = {"contact": "contacts", "deal": "deals"}
UNSUBSCRIBABLE = frozenset({"lastmodifieddate", "hs_lastmodifieddate", "num_unique_conversion_events"})
BATCH_LIMIT = 100
MAX_ATTEMPTS = 10
RETRY_DELAYS = (60, 300, 900, 1800, 3600, 7200, 14400, 21600, 36540)  # seconds after attempts 0..8
_TICK = 0.02
_LOG_LIMIT = 10_000
_KEEP: Any = object()  # "leave this setting alone" (None is a meaningful target_url)


@dataclass
class Subscription:
    id: int
    subscription_type: str
    property_name: str | None = None
    active: bool = True

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "subscriptionType": self.subscription_type, "active": self.active}
        if self.property_name:
            out["propertyName"] = self.property_name
        return out


@dataclass
class _Pending:
    event: dict[str, Any]  # everything but attemptNumber
    attempt: int
    due: datetime


class Webhooks:
    """Subscriptions, the queue of undelivered events, and the thread that delivers them."""

    def __init__(self, clock: Clock, portal_id: int, *, app_id: int, client_secret: str,
                 has_property: Callable[[str, str], bool], seed: int = 0) -> None:
        self.clock, self.portal_id, self.has_property = clock, portal_id, has_property
        self.condition = threading.Condition()
        self.app_id, self.client_secret = app_id, client_secret
        self.target_url: str | None = None
        self.subscriptions: list[Subscription] = []
        self.max_concurrent_requests = 10
        self.timeout_seconds = 5.0
        self.delivery_delay_seconds = 0.0
        self.retry_time_scale = 1.0
        self.jitter = 0.1
        self.verify: bool | str = True
        self.pending: list[_Pending] = []
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=_LOG_LIMIT)
        self.dropped: deque[dict[str, Any]] = deque(maxlen=_LOG_LIMIT)
        self._event_ids = itertools.count(1_000_000_001)
        self._subscription_ids = itertools.count(3_329_277)
        self._random = random.Random(seed)
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._stopping = False

    # -- settings ----------------------------------------------------------------------------

    def configure(self, *, target_url: str | None = _KEEP, client_secret: str | None = None,
                  app_id: int | None = None, subscriptions: list[dict[str, Any]] | None = None,
                  max_concurrent_requests: int | None = None, timeout_seconds: float | None = None,
                  delivery_delay_seconds: float | None = None, retry_time_scale: float | None = None,
                  jitter: float | None = None, verify: bool | str | None = None) -> None:
        """Change any setting; ``subscriptions`` replaces the list (``[{"subscriptionType",
        "propertyName", "active"}]``). Raises ValueError naming the bad setting."""
        parsed = None if subscriptions is None else [self._subscription(item) for item in subscriptions]
        if target_url is not _KEEP and target_url is not None and not str(target_url).startswith(("http://", "https://")):
            raise ValueError(f"target_url must be an http(s) URL, not {target_url!r}")
        if max_concurrent_requests is not None and int(max_concurrent_requests) < 1:
            raise ValueError("max_concurrent_requests must be at least 1")
        with self.condition:
            if target_url is not _KEEP:
                self.target_url = target_url
            if parsed is not None:
                self.subscriptions = parsed
            for name, value in (("client_secret", client_secret), ("app_id", app_id),
                                ("max_concurrent_requests", max_concurrent_requests),
                                ("timeout_seconds", timeout_seconds), ("delivery_delay_seconds", delivery_delay_seconds),
                                ("retry_time_scale", retry_time_scale), ("jitter", jitter), ("verify", verify)):
                if value is not None:
                    setattr(self, name, value)
            self.condition.notify_all()

    def _subscription(self, item: Any) -> Subscription:
        if not isinstance(item, dict):
            raise ValueError(f"subscriptions: each entry is an object, not {item!r}")
        kind, name = item.get("subscriptionType"), item.get("propertyName")
        if kind not in SUBSCRIPTION_TYPES:
            raise ValueError(f"subscriptions: unknown subscriptionType {kind!r} (one of {', '.join(SUBSCRIPTION_TYPES)})")
        if kind.endswith(".propertyChange"):
            if not name:
                raise ValueError(f"subscriptions: {kind} needs a propertyName")
            if name in UNSUBSCRIBABLE:
                raise ValueError(f"subscriptions: {name} cannot be subscribed to")
            if not self.has_property(OBJECT_TYPES[kind.split(".")[0]], name):
                raise ValueError(f"subscriptions: {kind.split('.')[0]} property {name!r} does not exist")
        elif name:
            raise ValueError(f"subscriptions: {kind} takes no propertyName")
        return Subscription(next(self._subscription_ids), kind, name, bool(item.get("active", True)))

    def settings(self) -> dict[str, Any]:
        """The settings, without the client secret."""
        with self.condition:
            return {"targetUrl": self.target_url, "appId": self.app_id, "portalId": self.portal_id,
                    "subscriptions": [s.as_json() for s in self.subscriptions],
                    "maxConcurrentRequests": self.max_concurrent_requests, "timeoutSeconds": self.timeout_seconds,
                    "deliveryDelaySeconds": self.delivery_delay_seconds, "retryTimeScale": self.retry_time_scale,
                    "jitter": self.jitter, "pending": len(self.pending), "inFlight": self._in_flight,
                    "nextAttemptAt": min(p.due for p in self.pending).isoformat() if self.pending else None}

    # -- events --------------------------------------------------------------------------------

    def record_change(self, object_type: str, kind: str, object_id: str, properties: dict[str, str],
                      occurred_ms: int, source: tuple[str, str]) -> None:
        """Queue the events one CRM write causes: ``kind`` is creation, propertyChange or deletion;
        ``properties`` the values that changed (all set values, for a creation)."""
        singular = next(key for key, value in OBJECT_TYPES.items() if value == object_type)
        with self.condition:
            if not self.target_url:
                return
            due = self.clock.now() + timedelta(seconds=self.delivery_delay_seconds)
            for subscription in self.subscriptions:
                if not subscription.active or not subscription.subscription_type.startswith(singular + "."):
                    continue
                event_kind = subscription.subscription_type.split(".")[1]
                if event_kind == "propertyChange":
                    if kind == "deletion" or subscription.property_name not in properties:
                        continue
                    extra = {"propertyName": subscription.property_name,
                             "propertyValue": properties[subscription.property_name]}
                elif event_kind == kind:
                    extra = {"changeFlag": "CREATED" if kind == "creation" else "DELETED"}
                else:
                    continue
                event = {"eventId": next(self._event_ids), "subscriptionId": subscription.id,
                         "portalId": self.portal_id, "appId": self.app_id, "occurredAt": occurred_ms,
                         "subscriptionType": subscription.subscription_type, "objectId": int(object_id), **extra,
                         "changeSource": source[0], "sourceId": source[1]}
                self.pending.append(_Pending(event, 0, due))
            self.condition.notify_all()

    def clear_pending(self) -> int:
        with self.condition:
            count, self.pending = len(self.pending), []
            return count

    # -- delivery ------------------------------------------------------------------------------

    def start(self) -> None:
        with self.condition:
            self._stopping = False
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="hubspot-webhook")
        self._thread = threading.Thread(target=self._dispatch, name="hubspot-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self.condition:
            self._stopping = True
            self.condition.notify_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _dispatch(self) -> None:
        while True:
            with self.condition:
                if self._stopping:
                    return
                now = self.clock.now()
                ready = sorted((p for p in self.pending if p.due <= now), key=lambda p: (p.due, p.event["eventId"]))
                while ready and self.target_url and self._in_flight < self.max_concurrent_requests:
                    batch, ready = ready[:BATCH_LIMIT], ready[BATCH_LIMIT:]
                    taken = {id(p) for p in batch}
                    self.pending = [p for p in self.pending if id(p) not in taken]
                    self._in_flight += 1
                    assert self._pool is not None
                    self._pool.submit(self._deliver, batch, self.target_url)
                self.condition.wait(_TICK)

    def _deliver(self, batch: list[_Pending], url: str) -> None:
        body = json.dumps([{**p.event, "attemptNumber": p.attempt} for p in batch], separators=(",", ":"))
        with self.condition:
            secret, timeout, verify = self.client_secret, self.timeout_seconds, self.verify
        timestamp = str(int(self.clock.now().timestamp() * 1000))
        headers = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
                   "X-HubSpot-Signature-v3": signature_v3(secret, "POST", url, body, timestamp),
                   "X-HubSpot-Signature": hashlib.sha256((secret + body).encode()).hexdigest(),
                   "X-HubSpot-Signature-Version": "v1"}
        started, status, error = time.monotonic(), None, None
        try:
            with requests.Session() as session:
                session.trust_env = False
                response = session.post(url, data=body.encode(), headers=headers, timeout=timeout, verify=verify,
                                        allow_redirects=False)
            status = response.status_code
        except requests.RequestException as exc:
            error = type(exc).__name__
        delivered = status is not None and 200 <= status < 300
        with self.condition:
            self._in_flight -= 1
            self.deliveries.append({"at": self.clock.now().isoformat(), "url": url, "status": status, "error": error,
                                    "seconds": round(time.monotonic() - started, 3),
                                    "eventIds": [p.event["eventId"] for p in batch],
                                    "attempts": [p.attempt for p in batch]})
            if not delivered:
                for pending in batch:
                    self._retry_later(pending)
            self.condition.notify_all()

    def _retry_later(self, pending: _Pending) -> None:
        if pending.attempt + 1 >= MAX_ATTEMPTS:
            self.dropped.append({**pending.event, "attemptNumber": pending.attempt})
            return
        delay = RETRY_DELAYS[pending.attempt] * self.retry_time_scale
        delay *= 1 + self._random.uniform(-self.jitter, self.jitter)
        pending.attempt += 1
        pending.due = self.clock.now() + timedelta(seconds=delay)
        self.pending.append(pending)


def signature_v3(secret: str, method: str, uri: str, body: str, timestamp: str) -> str:
    """``X-HubSpot-Signature-v3`` of a request (reference §1.2)."""
    source = f"{method}{uri}{body}{timestamp}".encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()
