"""The synchronous checks of ``events:ingest``: one bad field refuses the whole request.

"If any field of an IngestEventsRequest fails validation, the Data Manager API rejects the
entire request" (shared/reference/ad-platform-conversions.md §2.5, DM-ERR "fast-fail"). What is
refused, and with which ``ErrorReason`` (§9.1; reasons from ``error.proto``):

1. ``TOO_MANY_EVENTS`` (> 2,000, §2.6), ``TOO_MANY_DESTINATIONS`` (> 10),
   ``TOO_MANY_USER_IDENTIFIERS`` (> 10 in an event);
2. ``REQUIRED_FIELD_MISSING``: destinations, events, operatingAccount, its accountId and
   accountType, productDestinationId, eventTimestamp, eventSource (the reason for a missing
   eventSource and a missing ``encoding`` is UNCERTAIN in the reference; this emulator says
   REQUIRED_FIELD_MISSING for both);
3. hashed identifiers: ``INVALID_HEX_ENCODING`` / ``INVALID_BASE64_ENCODING`` when the value is
   not valid for the request's ``encoding``, ``INVALID_SHA256_FORMAT`` when it does not decode to
   32 bytes or is plainly unhashed (an ``@`` e-mail, a ``+`` phone); address ``regionCode`` is
   clear ISO-3166 alpha-2 (``INVALID_REGION_CODE``), names hashed (§2.4);
4. the destination: ``INVALID_CONVERSION_ACTION_ID`` (unknown, removed, or another account's),
   ``INVALID_CONVERSION_ACTION_TYPE`` (not UPLOAD_CLICKS), ``CONVERSION_ACTION_TOO_RECENTLY_CREATED``
   (< 6 h); no access to the account → 403 ``PERMISSION_DENIED``;
5. ``INVALID_CURRENCY_CODE``; ``NO_IDENTIFIERS_PROVIDED`` (neither a click id nor user data);
   ``EVENT_TIME_INVALID`` (in the future, or older than the longest click-through window, 90
   days, §2.8);
6. ``INVALID_AD_IDENTIFIER_FOR_ACCOUNT`` (a click served by another account),
   ``DUPLICATE_DESTINATION_REFERENCE``, ``LINKED_ACCOUNT_ONLY_ALLOWED_WITH_DATA_PARTNER_LOGIN_ACCOUNT``,
   ``DESTINATION_ACCOUNT_TYPE_MISMATCH``;
7. ECL prerequisites of the account, for events carrying user data (§2.10);
8. custom variables: ``CUSTOM_VARIABLE_NOT_FOUND``, ``CUSTOM_VARIABLE_VALUE_CONTAINS_PII``; a
   known but disabled one is only a ``fieldWarning`` (``WARNING_REASON_CUSTOM_VARIABLE_NOT_ENABLED``).

Every violation found is listed in ``BadRequest.fieldViolations``; ``ErrorInfo.reason`` is the
first one's. Field paths use the proto's snake_case names, as Google's front end does.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pycountry

from sandbox.google_ads.accounts import MAX_CLICK_THROUGH_DAYS, Accounts
from sandbox.googleapis import ApiError, FieldViolation, Principal
from sandbox.googleapis.status import invalid_argument

DOMAIN = "datamanager.googleapis.com"
INGEST_METHOD = "google.ads.datamanager.v1.IngestionService.IngestEvents"
MAX_EVENTS = 2000                   # §2.6: use 2,000 (the enum text's 10,000 is stale)
MAX_DESTINATIONS = 10
MAX_USER_IDENTIFIERS = 10
ACTION_MIN_AGE = timedelta(hours=6)
FUTURE_TOLERANCE = timedelta(minutes=5)   # emulator's choice; Google's skew tolerance is not documented
CLICK_IDS = ("gclid", "gbraid", "wbraid")
CURRENCIES = frozenset(currency.alpha_3 for currency in pycountry.currencies)
REGIONS = frozenset(country.alpha_2 for country in pycountry.countries)
_PII = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}|\+?\d[\d\s().-]{7,}\d")


@dataclass
class Accepted:
    """A request that passed: which events go to which destination, and the warnings."""

    targets: list[list[int]]            # per destination: indexes of the events sent to it
    warnings: list[dict[str, str]] = field(default_factory=list)


def check(request: dict[str, Any], principal: Principal, accounts: Accounts, now: datetime) -> Accepted:
    """Validate a parsed IngestEventsRequest; ApiError (400/403) on the first failing stage."""
    destinations, events = request.get("destinations", []), request.get("events", [])
    found: list[FieldViolation] = []
    if request.get("encryptionInfo"):
        found.append(_v("encryption_info", "INVALID_ARGUMENT",
                        "encryption_info (encrypted user identifiers) is not emulated by the sandbox."))
    if not destinations:
        found.append(_v("destinations", "REQUIRED_FIELD_MISSING", "destinations is required."))
    elif len(destinations) > MAX_DESTINATIONS:
        found.append(_v("destinations", "TOO_MANY_DESTINATIONS",
                        f"Maximum number of destinations allowed per request is {MAX_DESTINATIONS}."))
    if not events:
        found.append(_v("events", "REQUIRED_FIELD_MISSING", "events is required."))
    elif len(events) > MAX_EVENTS:
        found.append(_v("events", "TOO_MANY_EVENTS",
                        f"Maximum number of events allowed per request is {MAX_EVENTS}; got {len(events)}."))
    _raise(found)
    _raise(_destination_shape(destinations, accounts))
    _check_access(destinations, principal, accounts)
    _raise(_conversion_actions(destinations, accounts, now))
    warnings: list[dict[str, str]] = []
    found, targets = _events(request, accounts, now, warnings)
    _raise(found)
    return Accepted(targets, _cart_warnings(request) + warnings)


def _v(path: str, reason: str, description: str) -> FieldViolation:
    return FieldViolation(path, description, reason)


def _raise(found: list[FieldViolation]) -> None:
    if found:
        raise invalid_argument(found, DOMAIN, {"method": INGEST_METHOD})


def _destination_shape(destinations: list[dict[str, Any]], accounts: Accounts) -> list[FieldViolation]:
    found: list[FieldViolation] = []
    references: set[str] = set()
    for index, destination in enumerate(destinations):
        path = f"destinations[{index}]"
        operating = destination.get("operatingAccount")
        if not operating:
            found.append(_v(f"{path}.operating_account", "REQUIRED_FIELD_MISSING", "operating_account is required."))
        else:
            found.extend(_account_shape(operating, f"{path}.operating_account", accounts))
        login = destination.get("loginAccount")
        if login:
            found.extend(_account_shape(login, f"{path}.login_account", accounts))
        if destination.get("linkedAccount") and _account_type(login or {}) != "DATA_PARTNER":
            found.append(_v(f"{path}.linked_account", "LINKED_ACCOUNT_ONLY_ALLOWED_WITH_DATA_PARTNER_LOGIN_ACCOUNT",
                            "linked_account is only allowed with a DATA_PARTNER login account."))
        if not destination.get("productDestinationId"):
            found.append(_v(f"{path}.product_destination_id", "REQUIRED_FIELD_MISSING",
                            "product_destination_id (the conversion action id) is required."))
        reference = destination.get("reference")
        if reference:
            if reference in references:
                found.append(_v(f"{path}.reference", "DUPLICATE_DESTINATION_REFERENCE",
                                f"Two or more destinations in the request have the reference {reference!r}."))
            references.add(reference)
    return found


def _account_type(account: dict[str, Any]) -> str | None:
    kind = account.get("accountType")
    if kind and kind != "ACCOUNT_TYPE_UNSPECIFIED":
        return kind
    product = account.get("product")   # deprecated spelling of the same thing
    return product if product and product != "PRODUCT_UNSPECIFIED" else None


def _account_shape(account: dict[str, Any], path: str, accounts: Accounts) -> list[FieldViolation]:
    found: list[FieldViolation] = []
    account_id = account.get("accountId", "")
    kind, product = account.get("accountType"), account.get("product")
    if kind and product and kind != "ACCOUNT_TYPE_UNSPECIFIED" and product != "PRODUCT_UNSPECIFIED" \
            and kind != product:
        found.append(_v(f"{path}.product", "INVALID_ARGUMENT", "product and account_type disagree."))
    if not account_id:
        found.append(_v(f"{path}.account_id", "REQUIRED_FIELD_MISSING", "account_id is required."))
    elif not re.fullmatch(r"\d{10}", account_id):
        found.append(_v(f"{path}.account_id", "INVALID_FORMAT",
                        f"account_id {account_id!r} is not a ten-digit customer id without hyphens."))
    resolved = _account_type(account)
    if resolved is None:
        found.append(_v(f"{path}.account_type", "REQUIRED_FIELD_MISSING", "account_type is required."))
    elif resolved != "GOOGLE_ADS" and resolved != "DATA_PARTNER":
        if account_id in accounts.accounts:
            found.append(_v(f"{path}.account_type", "DESTINATION_ACCOUNT_TYPE_MISMATCH",
                            f"Account {account_id} is a GOOGLE_ADS account, not {resolved}."))
        else:
            found.append(_v(f"{path}.account_type", "INVALID_DESTINATION",
                            f"This sandbox emulates Google Ads destinations only, not {resolved}."))
    return found


def _check_access(destinations: list[dict[str, Any]], principal: Principal, accounts: Accounts) -> None:
    for destination in destinations:
        operating = destination["operatingAccount"]["accountId"]
        login = (destination.get("loginAccount") or {}).get("accountId")
        if not accounts.can_access(principal.email, operating, login):
            raise ApiError("PERMISSION_DENIED", "The caller does not have permission", "PERMISSION_DENIED", DOMAIN,
                           {"method": INGEST_METHOD})


def _conversion_actions(destinations: list[dict[str, Any]], accounts: Accounts, now: datetime) -> list[FieldViolation]:
    found: list[FieldViolation] = []
    for index, destination in enumerate(destinations):
        path = f"destinations[{index}].product_destination_id"
        account = accounts.accounts[destination["operatingAccount"]["accountId"]]
        action_id = destination["productDestinationId"]
        action = account.conversion_actions.get(action_id)
        if action is None or action.status == "REMOVED":
            found.append(_v(path, "INVALID_CONVERSION_ACTION_ID",
                            f"Conversion action {action_id} is not a conversion action of account "
                            f"{account.customer_id}."))
        elif action.type != "UPLOAD_CLICKS":
            found.append(_v(path, "INVALID_CONVERSION_ACTION_TYPE",
                            f"Conversion action {action_id} is of type {action.type}, not UPLOAD_CLICKS."))
        elif action.created_at and now - action.created_at < ACTION_MIN_AGE:
            found.append(_v(path, "CONVERSION_ACTION_TOO_RECENTLY_CREATED",
                            f"Conversion action {action_id} was created less than 6 hours ago."))
    return found


def _events(request: dict[str, Any], accounts: Accounts, now: datetime,
            warnings: list[dict[str, str]]) -> tuple[list[FieldViolation], list[list[int]]]:
    destinations, events = request["destinations"], request["events"]
    references = {d.get("reference"): i for i, d in enumerate(destinations) if d.get("reference")}
    targets: list[list[int]] = [[] for _ in destinations]
    encoding = request.get("encoding", "ENCODING_UNSPECIFIED")
    found: list[FieldViolation] = []
    encoding_reported = False
    for index, event in enumerate(events):
        path = f"events[{index}]"
        chosen = _event_destinations(event, references, len(destinations), path, found)
        for destination_index in chosen:
            targets[destination_index].append(index)
        _event_time(event, path, now, found)
        if event.get("eventSource", "EVENT_SOURCE_UNSPECIFIED") == "EVENT_SOURCE_UNSPECIFIED":
            found.append(_v(f"{path}.event_source", "REQUIRED_FIELD_MISSING",
                            "event_source is required for offline conversions."))
        currency = event.get("currency")
        if currency is not None and currency not in CURRENCIES:
            found.append(_v(f"{path}.currency", "INVALID_CURRENCY_CODE", f"Currency {currency!r} is not supported."))
        click_ids = {kind: value for kind, value in (event.get("adIdentifiers") or {}).items()
                     if kind in CLICK_IDS and value}
        identifiers = (event.get("userData") or {}).get("userIdentifiers", [])
        if not click_ids and not identifiers:
            found.append(_v(path, "NO_IDENTIFIERS_PROVIDED",
                            "The event has neither an ad identifier (gclid, gbraid, wbraid) nor user data."))
        if identifiers:
            if encoding == "ENCODING_UNSPECIFIED" and not encoding_reported:
                found.append(_v("encoding", "REQUIRED_FIELD_MISSING", "encoding is required when user data is sent."))
                encoding_reported = True
            found.extend(_identifiers(identifiers, encoding, f"{path}.user_data.user_identifiers"))
        for destination_index in chosen:
            account = accounts.accounts[destinations[destination_index]["operatingAccount"]["accountId"]]
            found.extend(_click_owner(click_ids, account.customer_id, accounts, path))
            if identifiers:
                found.extend(_ecl(account, path))
            found.extend(_custom_variables(event, account, path, warnings))
    return found, targets


def _event_destinations(event: dict[str, Any], references: dict[str, int], count: int, path: str,
                        found: list[FieldViolation]) -> list[int]:
    named = event.get("destinationReferences") or []
    if not named:
        return list(range(count))
    chosen = []
    for number, reference in enumerate(named):
        if reference not in references:
            found.append(_v(f"{path}.destination_references[{number}]", "INVALID_ARGUMENT",
                            f"No destination in the request has the reference {reference!r}."))
        else:
            chosen.append(references[reference])
    return chosen


def _event_time(event: dict[str, Any], path: str, now: datetime, found: list[FieldViolation]) -> None:
    at = event.get("eventTimestamp")
    if at is None:
        found.append(_v(f"{path}.event_timestamp", "REQUIRED_FIELD_MISSING", "event_timestamp is required."))
    elif at > now + FUTURE_TOLERANCE:
        found.append(_v(f"{path}.event_timestamp", "EVENT_TIME_INVALID",
                        "Event did not occur within the acceptable time window: it is in the future."))
    elif now - at > timedelta(days=MAX_CLICK_THROUGH_DAYS):
        found.append(_v(f"{path}.event_timestamp", "EVENT_TIME_INVALID",
                        f"Event did not occur within the acceptable time window: it is more than "
                        f"{MAX_CLICK_THROUGH_DAYS} days old."))


def decode_hash(value: str, encoding: str) -> tuple[bytes | None, str | None]:
    """(32-byte digest, None) for a well-formed hashed identifier, else (None, ErrorReason)."""
    if "@" in value or value.startswith("+") or re.search(r"\s", value):
        return None, "INVALID_SHA256_FORMAT"
    if encoding == "BASE64":
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            try:
                digest = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            except (binascii.Error, ValueError):
                return None, "INVALID_BASE64_ENCODING"
    else:
        if len(value) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", value):
            return None, "INVALID_HEX_ENCODING"
        digest = bytes.fromhex(value)
    if len(digest) != 32:
        return None, "INVALID_SHA256_FORMAT"
    return digest, None


_HASH_DESCRIPTIONS = {"INVALID_HEX_ENCODING": "The HEX encoded value is malformed.",
                      "INVALID_BASE64_ENCODING": "The base64 encoded value is malformed.",
                      "INVALID_SHA256_FORMAT": "The SHA256 encoded value is malformed (is it hashed at all?)."}


def _identifiers(identifiers: list[dict[str, Any]], encoding: str, path: str) -> list[FieldViolation]:
    found: list[FieldViolation] = []
    if len(identifiers) > MAX_USER_IDENTIFIERS:
        found.append(_v(path, "TOO_MANY_USER_IDENTIFIERS",
                        f"Maximum number of user identifiers allowed per event is {MAX_USER_IDENTIFIERS}."))
    for number, identifier in enumerate(identifiers):
        item = f"{path}[{number}]"
        hashed = [(f"{item}.email_address", identifier.get("emailAddress")),
                  (f"{item}.phone_number", identifier.get("phoneNumber"))]
        address = identifier.get("address")
        if address:
            hashed += [(f"{item}.address.given_name", address.get("givenName")),
                       (f"{item}.address.family_name", address.get("familyName"))]
            region = address.get("regionCode")
            if not region:
                found.append(_v(f"{item}.address.region_code", "REQUIRED_FIELD_MISSING",
                                "region_code is required in an address."))
            elif region not in REGIONS:
                found.append(_v(f"{item}.address.region_code", "INVALID_REGION_CODE",
                                f"region_code {region!r} is not an ISO-3166-1 alpha-2 code (sent in clear)."))
        if not any(value for _, value in hashed):
            found.append(_v(item, "REQUIRED_FIELD_MISSING", "A user identifier needs an e-mail, phone or address."))
        for field_path, value in hashed:
            if value:
                _, problem = decode_hash(value, encoding)
                if problem:
                    found.append(_v(field_path, problem, _HASH_DESCRIPTIONS[problem]))
    return found


def _click_owner(click_ids: dict[str, str], customer_id: str, accounts: Accounts, path: str) -> list[FieldViolation]:
    found = []
    for kind, value in click_ids.items():
        click = accounts.click(kind, value)
        if click is not None and click.customer_id != customer_id:
            found.append(_v(f"{path}.ad_identifiers.{kind}", "INVALID_AD_IDENTIFIER_FOR_ACCOUNT",
                            f"The {kind} does not belong to account {customer_id}."))
    return found


def _ecl(account, path: str) -> list[FieldViolation]:
    for flag, reason in (("ecl_enabled", "DESTINATION_ACCOUNT_NOT_ENABLED_ENHANCED_CONVERSIONS_FOR_LEADS"),
                         ("ecl_terms_signed", "DESTINATION_ACCOUNT_ENHANCED_CONVERSIONS_TERMS_NOT_SIGNED"),
                         ("ecl_policy_allows", "DESTINATION_ACCOUNT_DATA_POLICY_PROHIBITS_ENHANCED_CONVERSIONS")):
        if not getattr(account, flag):
            return [_v(f"{path}.user_data", reason, f"Account {account.customer_id}: {reason.lower()}.")]
    return []


def _custom_variables(event: dict[str, Any], account, path: str,
                      warnings: list[dict[str, str]]) -> list[FieldViolation]:
    found = []
    for number, variable in enumerate(event.get("customVariables") or []):
        item = f"{path}.custom_variables[{number}]"
        name = variable.get("variable", "")
        if name not in account.custom_variables:
            found.append(_v(f"{item}.variable", "CUSTOM_VARIABLE_NOT_FOUND",
                            f"Account {account.customer_id} has no custom variable {name!r}."))
        elif _PII.search(variable.get("value", "")):
            found.append(_v(f"{item}.value", "CUSTOM_VARIABLE_VALUE_CONTAINS_PII",
                            "The custom variable value contains personally identifiable information (PII)."))
        elif not account.custom_variables[name]:
            warnings.append({"reason": "WARNING_REASON_CUSTOM_VARIABLE_NOT_ENABLED", "field": f"{item}.variable",
                             "description": f"Custom variable {name!r} is not enabled; its value is ignored."})
    return found


def _cart_warnings(request: dict[str, Any]) -> list[dict[str, str]]:
    """``IngestEventsResponse.fieldWarnings`` for cart data Google will ignore."""
    warnings = []
    for index, event in enumerate(request["events"]):
        ids = event.get("adIdentifiers") or {}
        if event.get("cartData") and (ids.get("gbraid") or ids.get("wbraid")):
            warnings.append({"reason": "WARNING_REASON_CART_DATA_NOT_SUPPORTED_WITH_GBRAID_OR_WBRAID",
                             "description": "Cart data is ignored for events with gbraid or wbraid.",
                             "field": f"events[{index}].cart_data"})
    return warnings
