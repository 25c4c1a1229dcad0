"""HubSpot app webhooks: the v3 request signature and the event batch HubSpot posts.

Facts from shared/reference/realtime-and-auth.md §1.2 (sources there):

- ``X-HubSpot-Signature-v3`` is Base64(HMAC-SHA256(app client secret, method + URI + body +
  timestamp)), UTF-8; ``X-HubSpot-Request-Timestamp`` is in milliseconds and a request older
  than 5 minutes is refused; compare in constant time. The URI is the full URL HubSpot called
  (scheme, host, path, query) with a few URL-encoded characters decoded first (the list below is
  HubSpot's documented one; marked unverified in the reference until a real delivery is seen).
  The HMAC itself is hubspot-api-client's ``Signature.get_signature``; the time window and the
  comparison are done here, with an injectable clock, in both directions (a timestamp from the
  future is as suspicious as a stale one).
- The body is a JSON array of up to 100 events: ``objectId``, ``subscriptionType`` (or
  ``eventType``; the new platform's ``object.*`` types add ``objectTypeId``), ``propertyName``,
  ``occurredAt`` (ms), ``eventId``, ``subscriptionId``, ``portalId``, ``attemptNumber``,
  ``changeSource``. ``propertyValue`` is never trusted: the record is read again.
"""
from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from hubspot.utils.signature import Signature

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
MAX_AGE = timedelta(minutes=5)
URI_DECODES = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
               "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
OBJECT_TYPES = {"0-1": "contact", "0-3": "deal", "0-2": "company"}  # objectTypeId of object.* events


def signed_uri(url: str) -> str:
    """The URI as HubSpot signs it: the characters HubSpot lists decoded (either case)."""
    for encoded, plain in URI_DECODES.items():
        url = url.replace(encoded, plain).replace(encoded.lower(), plain)
    return url


def signature_problem(secret: str, *, method: str, uri: str, body: bytes, timestamp: str | None,
                      signature: str | None, now: datetime) -> str | None:
    """None when the request is HubSpot's, else why not (safe to log: no secret, no signature)."""
    if not secret:
        return "no client secret is configured to verify it with"
    if not signature or not timestamp:
        return f"{SIGNATURE_HEADER} or {TIMESTAMP_HEADER} is missing"
    try:
        sent = datetime.fromtimestamp(int(timestamp) / 1000, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return f"{TIMESTAMP_HEADER} is not a time in milliseconds"
    if now - sent > MAX_AGE:
        return f"the request is {int((now - sent).total_seconds())} s old (at most {int(MAX_AGE.total_seconds())} s)"
    if sent - now > MAX_AGE:
        return "the request timestamp lies in the future"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    expected = Signature.get_signature(secret, text, "v3", signed_uri(uri), method.upper(), timestamp)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        return "the signature does not match (wrong client secret, or the URL HubSpot calls is not webhook_url?)"
    return None


def probe(url: str, secret: str, *, timeout: float = 10.0, ca_bundle: str | None = None,
          now: datetime | None = None) -> tuple[int | None, str]:
    """POST an empty batch signed as HubSpot signs, to ``url`` (the public webhook URL): whether
    the daemon's receiver is reachable there and accepts the signature. Returns (HTTP status or
    None, a short reason)."""
    import requests

    body = b"[]"
    timestamp = str(int((now or datetime.now(timezone.utc)).timestamp() * 1000))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
               SIGNATURE_HEADER: Signature.get_signature(secret, body.decode(), "v3", signed_uri(url), "POST",
                                                         timestamp)}
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout, verify=ca_bundle or True)
    except requests.RequestException as exc:
        return None, type(exc).__name__
    return response.status_code, response.reason or ""


@dataclass(frozen=True)
class WebhookEvent:
    """One notification: ``kind`` is ``object.change`` form, e.g. ``contact.creation``,
    ``contact.propertyChange``, ``deal.propertyChange`` (``object.*`` types normalised)."""

    kind: str
    object_id: str
    property_name: str
    occurred_at: datetime | None
    event_id: str
    portal_id: str
    subscription_id: str
    attempt: int
    change_source: str
    source_id: str  # with changeSource INTEGRATION, the writing app's id (unverified; third-party captures)


def parse_events(body: bytes) -> tuple[list[WebhookEvent], list[str]]:
    """The events of a batch, and a problem line for each entry that is not a usable event (a
    bad entry never hides the good ones). Raises ValueError when the body is not a JSON array."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the body is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, list):
        raise ValueError("the body is not a JSON array of events")
    events, problems = [], []
    for index, entry in enumerate(data):
        try:
            events.append(_event(entry))
        except ValueError as exc:
            problems.append(f"event {index}: {exc}")
    return events, problems


def _event(entry: Any) -> WebhookEvent:
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    kind = str(entry.get("subscriptionType") or entry.get("eventType") or "")
    if not kind or "." not in kind:
        raise ValueError("subscriptionType is missing")
    if kind.startswith("object."):
        object_type = OBJECT_TYPES.get(str(entry.get("objectTypeId", "")))
        if object_type is None:
            raise ValueError(f"objectTypeId {str(entry.get('objectTypeId'))[:20]!r} is not a contact or deal")
        kind = f"{object_type}.{kind.split('.', 1)[1]}"
    object_id = entry.get("objectId")
    if not isinstance(object_id, (int, str)) or isinstance(object_id, bool) or not str(object_id).isdigit():
        raise ValueError("objectId is missing or not a number")
    occurred = entry.get("occurredAt")
    try:
        occurred_at = datetime.fromtimestamp(int(occurred) / 1000, timezone.utc) if occurred is not None else None
    except (ValueError, TypeError, OverflowError, OSError):
        raise ValueError("occurredAt is not a time in milliseconds") from None
    attempt = entry.get("attemptNumber", 0)
    return WebhookEvent(kind=kind, object_id=str(object_id), property_name=str(entry.get("propertyName") or ""),
                        occurred_at=occurred_at, event_id=str(entry.get("eventId", "")),
                        portal_id=str(entry.get("portalId", "")), subscription_id=str(entry.get("subscriptionId", "")),
                        attempt=attempt if isinstance(attempt, int) else 0,
                        change_source=str(entry.get("changeSource") or ""), source_id=str(entry.get("sourceId") or ""))
