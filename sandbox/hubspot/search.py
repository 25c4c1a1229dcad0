"""The CRM search API's request rules and filter semantics (reference §3).

Filters in a group are ANDed, groups ORed; one sort; ``limit`` ≤ 200; ``after`` is an offset
and paging beyond 10,000 results is a 400; bodies over 3,000 characters are a 400.
Enumerations compare case-sensitively, other strings case-insensitively, and ``IN`` on a
string property only matches lower-case values.
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.hubspot.schema import Property
from sandbox.hubspot.store import MODIFIED, Record, Store, to_ms

OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY",
             "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
MAX_RESULTS = 10_000


class SearchError(Exception):
    def __init__(self, message: str, status: int = 400, category: str = "VALIDATION_ERROR") -> None:
        super().__init__(message)
        self.message, self.status, self.category = message, status, category


@dataclass
class Limits:
    max_groups: int = 5
    max_filters_per_group: int = 6
    max_filters: int = 18
    max_body: int = 3000


def search(store: Store, object_type: str, raw_body: bytes, limits: Limits) -> dict[str, Any]:
    if len(raw_body) > limits.max_body:
        raise SearchError(f"The request body is {len(raw_body)} characters; the limit is {limits.max_body}.")
    try:
        body = json.loads(raw_body or b"{}")
    except ValueError:
        raise SearchError("Invalid input JSON on line 1") from None
    groups = body.get("filterGroups") or []
    if body.get("filters"):
        groups = groups + [{"filters": body["filters"]}]
    if len(groups) > limits.max_groups or any(len(g.get("filters") or []) > limits.max_filters_per_group
                                              for g in groups) or sum(len(g.get("filters") or [])
                                                                      for g in groups) > limits.max_filters:
        raise SearchError(f"Too many filters: at most {limits.max_groups} filterGroups, "
                          f"{limits.max_filters_per_group} filters per group and {limits.max_filters} in total.")
    definitions = store.properties[object_type]
    for group in groups:
        for item in group.get("filters") or []:
            if item.get("operator") not in OPERATORS:
                raise SearchError(f"Unsupported operator {item.get('operator')!r}.")
            if item.get("propertyName") not in definitions and item.get("propertyName") != "associations.contact":
                raise SearchError(f"Property {item.get('propertyName')!r} does not exist.")
    limit = int(body.get("limit", 10))
    if not 0 < limit <= 200:
        raise SearchError("limit must be between 1 and 200.")
    after = int(str(body.get("after") or "0"))
    if after + limit > MAX_RESULTS:
        raise SearchError("Search results are limited to 10,000; page with filters instead of offsets.")
    sort_name, descending = _sort(body.get("sorts"))
    modified = MODIFIED[object_type]
    low, high = _bounds(groups, modified)
    start, end = store.index_range(object_type, low, high)
    if _only_range(groups, modified) and sort_name == modified and not descending:
        # The common keyset poll: answered straight from the index, without a scan.
        total = end - start
        page = list(store.indexed(object_type, start + after, min(end, start + after + limit)))
    else:
        matches = [record for record in store.indexed(object_type, start, end)
                   if _matches(store, object_type, record, groups, definitions)]
        sort_name = sort_name or "createdate"
        if sort_name != modified or descending:
            spec = definitions.get(sort_name)
            matches.sort(key=lambda r: (_key(spec, r.searchable.get(sort_name)), int(r.id)), reverse=descending)
        total = len(matches)
        page = matches[after:after + limit]
    wanted = list(dict.fromkeys((body.get("properties") or _defaults(object_type)) +
                                ["createdate", "hs_object_id", modified]))
    results = [{"id": r.id, "properties": {name: r.searchable.get(name) for name in wanted},
                "createdAt": r.searchable["createdate"], "updatedAt": r.searchable[modified], "archived": False}
               for r in page]
    answer: dict[str, Any] = {"total": total, "results": results}
    if after + limit < total:
        answer["paging"] = {"next": {"after": str(after + limit), "link": f"?after={after + limit}"}}
    return answer


def _defaults(object_type: str) -> list[str]:
    return ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"] \
        if object_type == "contacts" else ["dealname", "amount", "closedate", "pipeline", "dealstage", "createdate",
                                           "hs_lastmodifieddate", "hs_object_id"]


def _sort(sorts: Any) -> tuple[str | None, bool]:
    """One sort; a JSON-encoded string sort is silently ignored (hubspot-api-nodejs#14)."""
    if not sorts:
        return None, False
    first = sorts[0]
    if isinstance(first, dict):
        return first.get("propertyName"), str(first.get("direction", "ASCENDING")).upper() == "DESCENDING"
    if isinstance(first, str) and not first.lstrip().startswith("{"):
        return first, False
    return None, False


def _only_range(groups: list[dict[str, Any]], modified: str) -> bool:
    """True when the search is one group of range filters on the last-modified property."""
    return len(groups) == 1 and all(item.get("propertyName") == modified and item.get("operator") in
                                    ("GT", "GTE", "LT", "LTE", "EQ", "BETWEEN") and to_ms(item.get("value", ""))
                                    is not None and item.get("operator") not in ("GT", "LT")
                                    for item in groups[0].get("filters") or [])


def _bounds(groups: list[dict[str, Any]], modified: str) -> tuple[int | None, int | None]:
    """Range on the last-modified property implied by every group (for the index scan)."""
    if not groups:
        return None, None
    lows, highs = [], []
    for group in groups:
        low = high = None
        for item in group.get("filters") or []:
            if item.get("propertyName") != modified:
                continue
            value = to_ms(item.get("value", ""))
            if item["operator"] in ("GT", "GTE", "EQ") and value is not None:
                low = value if low is None else max(low, value)
            if item["operator"] in ("LT", "LTE", "EQ") and value is not None:
                high = value if high is None else min(high, value)
            if item["operator"] == "BETWEEN":
                low, high = to_ms(item.get("value", "")), to_ms(item.get("highValue", ""))
        lows.append(low)
        highs.append(high)
    low = None if any(v is None for v in lows) else min(lows)
    high = None if any(v is None for v in highs) else max(highs)
    return low, high


def _matches(store: Store, object_type: str, record: Record, groups, definitions) -> bool:
    if not groups:
        return True
    return any(all(_test(store, object_type, record, item, definitions) for item in group.get("filters") or [])
               for group in groups)


def _test(store: Store, object_type: str, record: Record, item: dict[str, Any], definitions) -> bool:
    name, operator = item["propertyName"], item["operator"]
    if name == "associations.contact":
        contacts = store.associations.get(record.id, set()) if object_type == "deals" else set()
        return str(item.get("value")) in contacts
    spec: Property = definitions[name]
    actual = record.searchable.get(name)
    if operator == "HAS_PROPERTY":
        return actual not in (None, "")
    if operator == "NOT_HAS_PROPERTY":
        return actual in (None, "")
    if operator in ("IN", "NOT_IN"):
        values = [str(v) for v in item.get("values") or []]
        if spec.type == "string":  # string IN values must be lower case (§3.1)
            found = actual is not None and any(v == v.lower() and v == actual.lower() for v in values)
        else:
            found = actual is not None and any(_equal(spec, actual, v) for v in values)
        return found if operator == "IN" else not found
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(item.get("value", "")).lower()
        hit = actual is not None and any(fnmatch.fnmatchcase(word, token) for word in
                                         str(actual).lower().replace("@", " ").replace(".", " ").split()
                                         + [str(actual).lower()])
        return hit if operator == "CONTAINS_TOKEN" else not hit
    if actual is None:
        return operator == "NEQ"
    if operator == "EQ":
        return _equal(spec, actual, str(item.get("value", "")))
    if operator == "NEQ":
        return not _equal(spec, actual, str(item.get("value", "")))
    left = _key(spec, actual)
    if operator == "BETWEEN":
        return _key(spec, item.get("value")) <= left <= _key(spec, item.get("highValue"))
    right = _key(spec, item.get("value"))
    return {"LT": left < right, "LTE": left <= right, "GT": left > right, "GTE": left >= right}[operator]


def _equal(spec: Property, actual: str, expected: str) -> bool:
    if spec.type == "enumeration":
        return actual == expected
    if spec.type in ("number", "datetime", "date"):
        return _key(spec, actual) == _key(spec, expected)
    return actual.lower() == expected.lower()


def _key(spec: Property | None, value: Any) -> Any:
    if value is None:
        return (0, "")
    if spec is not None and spec.type in ("datetime", "date"):
        ms = to_ms(str(value))
        return (1, ms if ms is not None else 0)
    if spec is not None and spec.type == "number":
        try:
            return (1, Decimal(str(value)))
        except InvalidOperation:
            return (1, Decimal(0))
    return (1, str(value).lower())
