"""What Google Ads does with accepted events after ``events:ingest`` answered 200.

Row-level outcomes are asynchronous and visible to the sender only as counts per reason in
``requestStatus:retrieve`` (shared/reference/ad-platform-conversions.md §2.5). Modelled here:

- consent (§2.9): effective ``adUserData`` = the event's, else the request's, else the
  account's default; ``CONSENT_DENIED`` → ``PROCESSING_ERROR_REASON_DENIED_CONSENT``; still
  unspecified for an account that requires consent (an EEA advertiser) → ``..._UNKNOWN_CONSENT``;
  an account without third-party consent for Ads → ``..._NO_CONSENT``;
- click identifiers (§2.8, §9.1): not decodable → ``..._INVALID_GCLID``/``GBRAID``/``WBRAID``; a
  known click: conversion before it → ``..._CONVERSION_PRECEDES_CLICK``, click younger than
  ``min_click_age`` at upload → ``..._TOO_RECENT_CLICK``, conversion later than the action's
  click-through window → ``..._EVENT_TOO_OLD``; an unknown but decodable click is recorded and
  attributes to nothing (Google says nothing about it);
- dedup and adjustments (§2.7): same ``transactionId`` + same destination as a recorded
  conversion ⇒ an adjustment, not an error: value and currency are overwritten (restatement),
  user data is added only if the original had none, everything else keeps the recorded values;
  there is no retraction. Without a transactionId, same click id + same ``eventTimestamp`` ⇒
  ``..._DUPLICATE_GCLID``. A transactionId repeated inside one request for one destination ⇒
  ``..._DUPLICATE_TRANSACTION_ID`` for the repeats (emulator's reading of an enum value the
  reference cannot place, §2.7 UNCERTAIN). §2.7 documents no time limit on matching a
  transactionId, so the emulator keeps matching for as long as it keeps the conversion.
- request status (§2.5): ``PROCESSING`` until ``processing_seconds`` have passed on the sandbox
  clock, then ``SUCCESS`` / ``PARTIAL_SUCCESS`` / ``FAILED`` with ``errorInfo.errorCounts``;
  ``eventsIngestionStatus.recordCount`` counts every event sent to that destination. Status is
  kept ~50 days (``REQUEST_TOO_OLD`` after).

The ledger also keeps what Google never tells: which event failed and why, which person a
hashed identifier matched, and whether it was normalised the way Google wants (identity.py).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sandbox.google_ads.accounts import Accounts, Click, decodable, window_closed
from sandbox.google_ads.rules import CLICK_IDS, decode_hash
from sandbox.google_ads.wire import timestamp_json
from sandbox.identity import PeopleIndex

STATUS_RETENTION = timedelta(days=50)
PREFIX = "PROCESSING_ERROR_REASON_"


@dataclass
class Conversion:
    """One conversion as Google Ads recorded it, with its adjustments."""

    customer_id: str
    action_id: str
    transaction_id: str | None
    event_at: datetime
    value: float | None
    currency: str | None
    event_source: str
    ad_identifiers: dict[str, str]
    user_identifiers: list[dict[str, Any]]
    consent: dict[str, str]
    click: Click | None
    received_at: datetime
    request_id: str
    adjustments: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "conversion_action_id": self.action_id,
                "transaction_id": self.transaction_id, "event_timestamp": timestamp_json(self.event_at),
                "conversion_value": self.value, "currency": self.currency, "event_source": self.event_source,
                "ad_identifiers": dict(self.ad_identifiers), "user_identifiers": list(self.user_identifiers),
                "consent": dict(self.consent), "attributed_click": self.click.as_json() if self.click else None,
                "received_at": self.received_at.isoformat(), "request_id": self.request_id,
                "adjustments": list(self.adjustments)}


@dataclass
class RequestRecord:
    """An accepted, non-validateOnly request and the outcome of each of its rows."""

    request_id: str
    received_at: datetime
    caller: str
    destinations: list[dict[str, Any]]        # parsed (camelCase, enum names), for the status echo
    record_counts: list[int]
    errors: list[Counter] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # per (destination, event): outcome


class Ledger:
    """Conversions per destination and the status of every request. Not thread-safe: the sandbox locks."""

    def __init__(self, accounts: Accounts, people: PeopleIndex, *, processing_seconds: float = 0.0,
                 min_click_age: timedelta = timedelta(hours=6)) -> None:
        self.accounts = accounts
        self.people = people
        self.processing_seconds = processing_seconds
        self.min_click_age = min_click_age
        self.conversions: dict[tuple[str, str, str], Conversion] = {}   # (customer, action, transaction id)
        self.untracked: list[Conversion] = []                            # no transaction id
        self.requests: dict[str, RequestRecord] = {}
        self._click_times: set[tuple[str, str, frozenset, datetime]] = set()  # DUPLICATE_GCLID lookups

    # -- processing -------------------------------------------------------------------

    def process(self, request_id: str, request: dict[str, Any], targets: list[list[int]], caller: str,
                now: datetime) -> RequestRecord:
        record = RequestRecord(request_id, now, caller, request["destinations"], [len(t) for t in targets])
        encoding = request.get("encoding", "HEX")
        for number, (destination, indexes) in enumerate(zip(request["destinations"], targets)):
            errors: Counter = Counter()
            seen: set[str] = set()
            for index in indexes:
                event = request["events"][index]
                outcome = self._row(event, destination, request.get("consent") or {}, encoding, request_id, now, seen)
                if outcome.startswith(PREFIX):
                    errors[outcome] += 1
                record.rows.append({"destination": number, "event": index, "transaction_id":
                                    event.get("transactionId"), "outcome": outcome})
            record.errors.append(errors)
        self.requests[request_id] = record
        return record

    def _row(self, event: dict[str, Any], destination: dict[str, Any], request_consent: dict[str, str],
             encoding: str, request_id: str, now: datetime, seen: set[str]) -> str:
        account = self.accounts.accounts[destination["operatingAccount"]["accountId"]]
        action = account.conversion_actions[destination["productDestinationId"]]
        consent = self._consent(event, request_consent, account)
        if consent:
            return consent
        ids = {kind: value for kind, value in (event.get("adIdentifiers") or {}).items() if kind in CLICK_IDS and value}
        click, problem = self._click(ids, event["eventTimestamp"], action.click_through_days, now)
        if problem:
            return problem
        transaction_id = event.get("transactionId") or None
        if transaction_id:
            if transaction_id in seen:
                return PREFIX + "DUPLICATE_TRANSACTION_ID"
            seen.add(transaction_id)
            existing = self.conversions.get((account.customer_id, action.id, transaction_id))
            if existing is not None:
                self._adjust(existing, event, encoding, request_id, now)
                return "adjusted"
        elif ids and (account.customer_id, action.id, frozenset(ids.items()), event["eventTimestamp"]) \
                in self._click_times:
            return PREFIX + "DUPLICATE_GCLID"
        conversion = Conversion(account.customer_id, action.id, transaction_id, event["eventTimestamp"],
                                event.get("conversionValue"), event.get("currency"), event["eventSource"], ids,
                                self._identifiers(event, encoding), self._effective_consent(event, request_consent,
                                                                                            account),
                                click, now, request_id)
        if transaction_id:
            self.conversions[(account.customer_id, action.id, transaction_id)] = conversion
        else:
            self.untracked.append(conversion)
        if ids:
            self._click_times.add((account.customer_id, action.id, frozenset(ids.items()), conversion.event_at))
        return "recorded"

    @staticmethod
    def _effective_consent(event: dict[str, Any], request_consent: dict[str, str], account) -> dict[str, str]:
        unspecified = "CONSENT_STATUS_UNSPECIFIED"
        own = event.get("consent") or {}
        result = {}
        for key, default in (("adUserData", account.default_ad_user_data), ("adPersonalization", unspecified)):
            value = own.get(key, unspecified)
            if value == unspecified:
                value = request_consent.get(key, unspecified)
            if value == unspecified:
                value = default
            result[key] = value
        return result

    def _consent(self, event: dict[str, Any], request_consent: dict[str, str], account) -> str | None:
        if not account.third_party_consent:
            return PREFIX + "NO_CONSENT"
        ad_user_data = self._effective_consent(event, request_consent, account)["adUserData"]
        if ad_user_data == "CONSENT_DENIED":
            return PREFIX + "DENIED_CONSENT"
        if ad_user_data == "CONSENT_STATUS_UNSPECIFIED" and account.consent_required:
            return PREFIX + "UNKNOWN_CONSENT"
        return None

    def _click(self, ids: dict[str, str], event_at: datetime, window_days: int,
               now: datetime) -> tuple[Click | None, str | None]:
        for kind in CLICK_IDS:          # gclid first, then the iOS identifiers
            value = ids.get(kind)
            if not value:
                continue
            click = self.accounts.click(kind, value)
            if click is None:
                if not decodable(value):
                    return None, f"{PREFIX}INVALID_{kind.upper()}"
                continue                 # a real-looking click Google cannot find: attributes to nothing
            if event_at < click.at:
                return None, PREFIX + "CONVERSION_PRECEDES_CLICK"
            if now - click.at < self.min_click_age:
                return None, PREFIX + "TOO_RECENT_CLICK"
            if window_closed(click, event_at, window_days):
                return None, PREFIX + "EVENT_TOO_OLD"
            return click, None
        return None, None

    def _identifiers(self, event: dict[str, Any], encoding: str) -> list[dict[str, Any]]:
        """Each hashed identifier as received, with whom it matched and any normalisation problem."""
        found = []
        for identifier in (event.get("userData") or {}).get("userIdentifiers", []):
            for key, kind in (("emailAddress", "email"), ("phoneNumber", "phone")):
                value = identifier.get(key)
                if not value:
                    continue
                digest, _ = decode_hash(value, encoding)
                match = self.people.lookup(kind, digest) if digest else None
                found.append({"kind": kind, "value": value, "matched": match is not None and match.problem is None,
                              "person": match.person.label if match else None,
                              "normalisation_problem": match.problem if match else None})
            if identifier.get("address"):
                found.append({"kind": "address", "value": identifier["address"], "matched": False, "person": None,
                              "normalisation_problem": None})
        return found

    def _adjust(self, conversion: Conversion, event: dict[str, Any], encoding: str, request_id: str,
                now: datetime) -> None:
        change: dict[str, Any] = {"at": now.isoformat(), "request_id": request_id,
                                  "value_before": conversion.value, "currency_before": conversion.currency}
        conversion.value = event.get("conversionValue")
        conversion.currency = event.get("currency")
        change.update(value_after=conversion.value, currency_after=conversion.currency)
        if not conversion.user_identifiers and (event.get("userData") or {}).get("userIdentifiers"):
            conversion.user_identifiers = self._identifiers(event, encoding)
            change["enhanced_with_user_data"] = True
        conversion.adjustments.append(change)

    # -- reading ----------------------------------------------------------------------

    def status(self, request_id: str, now: datetime) -> dict[str, Any] | None | str:
        """The RetrieveRequestStatusResponse JSON; None for an unknown id, "too_old" past retention."""
        record = self.requests.get(request_id)
        if record is None:
            return None
        if now - record.received_at > STATUS_RETENTION:
            return "too_old"
        done = (now - record.received_at).total_seconds() >= self.processing_seconds
        per_destination = []
        for destination, count, errors in zip(record.destinations, record.record_counts, record.errors):
            entry: dict[str, Any] = {"destination": destination,
                                     "eventsIngestionStatus": {"recordCount": str(count)}}
            if not done:
                entry["requestStatus"] = "PROCESSING"
            else:
                failed = sum(errors.values())
                entry["requestStatus"] = ("SUCCESS" if failed == 0 else "FAILED" if failed == count
                                          else "PARTIAL_SUCCESS")
                if errors:
                    entry["errorInfo"] = {"errorCounts": [{"recordCount": str(n), "reason": reason}
                                                          for reason, n in sorted(errors.items())]}
            per_destination.append(entry)
        return {"requestStatusPerDestination": per_destination}

    def all_conversions(self) -> list[Conversion]:
        return list(self.conversions.values()) + list(self.untracked)
