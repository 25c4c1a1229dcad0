"""The CRM search API: request rules, filter semantics and an index-backed evaluator (§3).

Rules (shared/reference/hubspot-api.md §3.1-3.3): filters in a group are ANDed, groups ORed;
at most 5 groups, 6 filters per group, 18 in total (configurable, the sources disagree); one
sort, a JSON-*string* sort silently ignored; ``limit`` at most 200 (default 10); ``after`` is an
offset sent as a string and paging beyond 10,000 results is a 400; bodies over 3,000
characters are a 400; enumerations compare case-sensitively, other strings case-insensitively,
and ``IN`` on a string property only matches lower-case values; datetimes filter on epoch-ms
strings or ISO datetimes, while a date-only value is a 400 (hubspot-api-ruby#62); a filter on a
property the object does not have silently matches nothing (searching contacts on
``hs_lastmodifieddate``, amp-labs/connectors#45); archived records never appear.

Speed: each filter group is reduced to a key interval of the last-modified index
((modified ms, id) keys) plus id exclusions; when every group reduces fully and the sort is the
index order (last-modified ascending or descending, or ``hs_object_id`` within one millisecond)
the total is a difference of ranks and a page is a walk of ``after + limit`` keys. Otherwise the
records inside the groups' key hull are scanned.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

from sandbox.hubspot.index import ID_SPACE, key_id
from sandbox.hubspot.schema import MODIFIED, SEARCH_DEFAULTS, SINGULAR, Property
from sandbox.hubspot.store import Record, Store
from sandbox.hubspot.wire import ApiError, parse_json, to_ms

OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY",
             "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
RANGE = {"EQ", "GT", "GTE", "LT", "LTE", "BETWEEN"}
NEEDS_VALUE = RANGE | {"NEQ", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
PROBLEM = "There was a problem with the request."
QUERY_PROPERTIES = {"contacts": ("email", "firstname", "lastname", "phone", "company", "website"),
                    "deals": ("dealname",)}
LOW, HIGH = -(1 << 62), (1 << 62)  # "unbounded" ms


@dataclass
class SearchLimits:
    """The search API's request limits; configurable because the sources disagree (§3.1)."""

    max_groups: int = 5
    max_filters_per_group: int = 6
    max_filters: int = 18
    max_body: int = 3000
    max_limit: int = 200
    clamp_limit: bool = False  # §13: a limit over 200 is a 400 here unless this is set
    max_results: int = 10_000



@dataclass
class Filter:
    """One filter with its values pre-converted to the property type's comparable form."""

    name: str
    operator: str
    spec: Property | None
    value: Any = None
    high: Any = None
    values: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = _filter_key(self.spec, self.value)
        self.high_key = _filter_key(self.spec, self.high)
        self.value_keys = {_filter_key(self.spec, v) for v in self.values
                           if not (self._string and str(v) != str(v).lower())}  # §3.1: IN needs lower case

    @property
    def _string(self) -> bool:
        return self.spec is None or self.spec.type in ("string", "phone_number")


@dataclass
class Group:
    """One filter group reduced against the index: key interval, id rules, the rest."""

    low_ms: int = LOW
    high_ms: int = HIGH
    id_low: int = 0
    id_high: int = ID_SPACE - 1
    id_in: set[int] | None = None
    id_out: set[int] = field(default_factory=set)
    residual: list[Filter] = field(default_factory=list)
    ids_ranged: bool = False

    @property
    def single_ms(self) -> bool:
        return self.low_ms == self.high_ms

    @property
    def low_key(self) -> int:
        return self.low_ms * ID_SPACE + (self.id_low if self.single_ms else 0)

    @property
    def high_key(self) -> int:
        return self.high_ms * ID_SPACE + (self.id_high if self.single_ms else ID_SPACE - 1)

    @property
    def countable(self) -> bool:
        """Answerable from the index alone: no per-record test left."""
        return not self.residual and self.id_in is None and (self.single_ms or not self.ids_ranged)

    def admits_key(self, key: int) -> bool:
        """Whether an index key satisfies the group's interval and id rules."""
        if not self.low_key <= key <= self.high_key:
            return False
        record_id = key_id(key)
        return (self.id_low <= record_id <= self.id_high and record_id not in self.id_out
                and (self.id_in is None or record_id in self.id_in))


def search(store: Store, object_type: str, raw_body: bytes, limits: SearchLimits) -> dict[str, Any]:
    """Answer ``POST /crm/v3/objects/{object_type}/search``; raises ApiError for a 400."""
    text = raw_body.decode("utf-8", errors="replace")
    if len(text) > limits.max_body:
        raise ApiError(400, f"The request body is {len(text)} characters long; the maximum is {limits.max_body}.")
    body = parse_json(raw_body) or {}
    if not isinstance(body, dict):
        raise ApiError(400, PROBLEM)
    raw_groups = [g.get("filters") or [] for g in body.get("filterGroups") or [] if isinstance(g, dict)]
    if body.get("filters"):
        raw_groups.append(body["filters"])
    _check_counts(raw_groups, limits)
    limit = _integer(body.get("limit", 10), "limit")
    if limit > limits.max_limit:
        if not limits.clamp_limit:
            raise ApiError(400, f"limit must be less than or equal to {limits.max_limit}; it was {limit}.")
        limit = limits.max_limit
    if limit < 0:
        raise ApiError(400, "limit must be greater than or equal to 0.")
    after = _integer(body.get("after") or "0", "after")
    if after < 0 or after + limit > limits.max_results:
        raise ApiError(400, f"Paging beyond {limits.max_results} results is not supported: after={after}, "
                            f"limit={limit}. Narrow the query with filters instead.")
    modified = MODIFIED[object_type]
    filters = [[_parse_filter(store, object_type, item) for item in group] for group in raw_groups]
    query = str(body.get("query") or "").strip().lower()
    groups = [_reduce(group, modified) for group in filters] or [Group()]
    if query:
        for group in groups:
            group.residual.append(Filter("__query__", "QUERY", None, query))
    sort = _sort(body.get("sorts"))
    store.catch_up()
    total, page = _evaluate(store, object_type, groups, sort, after, limit)
    wanted = list(dict.fromkeys([p for p in body.get("properties") or SEARCH_DEFAULTS[object_type]
                                 if isinstance(p, str)] + ["createdate", "hs_object_id", modified]))
    results = []
    for record in page:
        view = record.searchable or {}
        results.append({"id": record.id, "properties": {name: view.get(name) for name in wanted},
                        "createdAt": view.get("createdate"), "updatedAt": view.get(modified), "archived": False})
    answer: dict[str, Any] = {"total": total, "results": results}
    if limit and after + limit < total:
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return answer


# -- request parsing ------------------------------------------------------------------------


def _check_counts(groups: list[list[Any]], limits: SearchLimits) -> None:
    total = sum(len(g) for g in groups)
    if len(groups) > limits.max_groups or total > limits.max_filters or \
            any(len(g) > limits.max_filters_per_group for g in groups):
        raise ApiError(400, f"Too many filters: a search takes at most {limits.max_groups} filterGroups with at most "
                            f"{limits.max_filters_per_group} filters each and {limits.max_filters} filters in total "
                            f"(got {len(groups)} groups, {total} filters).")


def _integer(value: Any, name: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ApiError(400, f"{name} must be an integer; got {value!r}.") from None


def _parse_filter(store: Store, object_type: str, item: Any) -> Filter:
    if not isinstance(item, dict) or not item.get("propertyName"):
        raise ApiError(400, PROBLEM)
    name, operator = str(item["propertyName"]), str(item.get("operator", "EQ"))
    if operator not in OPERATORS:
        raise ApiError(400, f"{operator} is not a valid filter operator; use one of {', '.join(sorted(OPERATORS))}.")
    if operator in NEEDS_VALUE and item.get("value") is None:
        raise ApiError(400, f"Filter on {name} with operator {operator} needs a value.")
    if operator == "BETWEEN" and item.get("highValue") is None:
        raise ApiError(400, f"Filter on {name} with operator BETWEEN needs a highValue.")
    if operator in ("IN", "NOT_IN") and not isinstance(item.get("values"), list):
        raise ApiError(400, f"Filter on {name} with operator {operator} needs values.")
    spec = None if name.startswith("associations.") else store.property(object_type, name)
    parsed = Filter(name, operator, spec, item.get("value"), item.get("highValue"), list(item.get("values") or []))
    if spec is not None and spec.type in ("datetime", "date", "number") and operator not in (
            "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        raw = [parsed.value, parsed.high] if operator != "IN" and operator != "NOT_IN" else parsed.values
        if any(v is not None and _filter_key(spec, v) is None for v in raw):
            raise ApiError(400, PROBLEM)  # e.g. "2020-11-15" on lastmodifieddate (hubspot-api-ruby#62)
    return parsed


def _sort(sorts: Any) -> tuple[str, bool] | None:
    """(property, descending) of the one sort; JSON-string sorts are silently ignored (§3.1)."""
    if not isinstance(sorts, list) or not sorts:
        return None
    first = sorts[0]
    if isinstance(first, dict) and first.get("propertyName"):
        return str(first["propertyName"]), str(first.get("direction", "ASCENDING")).upper() == "DESCENDING"
    if isinstance(first, str) and re.fullmatch(r"-?[a-z0-9_]+", first.strip()):
        # Plain-name sorts are reported to work in some clients ([3P], unverified): accept them.
        name = first.strip()
        return name.lstrip("-"), name.startswith("-")
    return None


def _filter_key(spec: Property | None, value: Any) -> Any:
    """A filter or stored value in the comparable form of its property's type."""
    if value is None:
        return None
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if spec is None:
        return text.lower()
    if spec.type in ("datetime", "date"):
        return to_ms(text, allow_date_only=spec.type == "date")
    if spec.type == "number":
        try:
            number = Decimal(text.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    if spec.type == "bool":
        return text.lower()
    if spec.type == "enumeration":
        return text  # §3.1: case-sensitive
    return text.lower()


def _reduce(filters: list[Filter], modified: str) -> Group:
    """Fold the filters of one group that the (modified, id) index can answer."""
    group = Group()
    for item in filters:
        if item.name == modified and item.operator in RANGE:
            low, high = _ms_bounds(item)
            group.low_ms, group.high_ms = max(group.low_ms, low), min(group.high_ms, high)
        elif item.name == "hs_object_id" and item.operator in RANGE and _integral(item):
            low, high = _id_bounds(item)
            group.id_low, group.id_high = max(group.id_low, low), min(group.id_high, high)
            group.ids_ranged = True
        elif item.name == "hs_object_id" and item.operator in ("IN", "NOT_IN") and \
                all(_is_int(v) for v in item.values):
            ids = {int(str(v)) for v in item.values}
            if item.operator == "IN":
                group.id_in = ids if group.id_in is None else group.id_in & ids
            else:
                group.id_out |= ids
        elif item.name == "hs_object_id" and item.operator == "NEQ" and _is_int(item.value):
            group.id_out.add(int(str(item.value)))
        else:
            group.residual.append(item)
    return group


def _ms_bounds(item: Filter) -> tuple[int, int]:
    value = item.key
    return {"EQ": (value, value), "GT": (value + 1, HIGH), "GTE": (value, HIGH), "LT": (LOW, value - 1),
            "LTE": (LOW, value), "BETWEEN": (value, item.high_key)}[item.operator]


def _id_bounds(item: Filter) -> tuple[int, int]:
    value = int(item.key)
    if item.operator == "BETWEEN":
        return value, int(item.high_key)
    return {"EQ": (value, value), "GT": (value + 1, ID_SPACE), "GTE": (value, ID_SPACE), "LT": (0, value - 1),
            "LTE": (0, value)}[item.operator]


def _integral(item: Filter) -> bool:
    keys = [item.key] + ([item.high_key] if item.operator == "BETWEEN" else [])
    return all(isinstance(k, Decimal) and k == k.to_integral_value() for k in keys)


def _is_int(value: Any) -> bool:
    return str(value).strip().isdigit()


# -- evaluation ---------------------------------------------------------------------------------


def _evaluate(store: Store, object_type: str, groups: list[Group], sort: tuple[str, bool] | None,
              after: int, limit: int) -> tuple[int, list[Record]]:
    modified = MODIFIED[object_type]
    records = store.records[object_type]
    descending = bool(sort and sort[1])
    in_index_order = sort is not None and (sort[0] == modified or (
        sort[0] == "hs_object_id" and len({(g.low_ms, g.high_ms) for g in groups}) == 1 and groups[0].single_ms))
    ordered = sorted(groups, key=lambda g: g.low_key)
    disjoint = all(a.high_key < b.low_key for a, b in zip(ordered, ordered[1:]))
    if in_index_order and disjoint and all(g.countable for g in groups):
        total = sum(_count(store, object_type, g) for g in groups)
        walk = reversed(ordered) if descending else ordered
        keys = (key for g in walk for key in _keys(store, object_type, g, descending))
        page = [records[str(key_id(k))] for k in _slice(keys, after, limit)]
        return total, page
    matches = _scan(store, object_type, groups)
    if in_index_order:
        matches.sort(key=lambda r: r.key, reverse=descending)  # type: ignore[arg-type, return-value]
    else:
        name = sort[0] if sort else "createdate"  # §3.1: the default order is creation, oldest first
        spec = store.property(object_type, name)
        present = [r for r in matches if (r.searchable or {}).get(name) not in (None, "")]
        missing = [r for r in matches if (r.searchable or {}).get(name) in (None, "")]
        present.sort(key=lambda r: (_sort_key(spec, r.searchable[name]), int(r.id)),  # type: ignore[index]
                     reverse=descending)
        missing.sort(key=lambda r: int(r.id))
        matches = present + missing
    return len(matches), matches[after:after + limit]


def _count(store: Store, object_type: str, group: Group) -> int:
    index = store.index[object_type]
    within = index.count(group.low_key, group.high_key)
    records = store.records[object_type]
    excluded = sum(1 for record_id in group.id_out
                   if (r := records.get(str(record_id))) is not None and r.key is not None
                   and group.low_key <= r.key <= group.high_key and group.id_low <= record_id <= group.id_high)
    return within - excluded


def _keys(store: Store, object_type: str, group: Group, descending: bool) -> Iterator[int]:
    index = store.index[object_type]
    start, stop = index.position(group.low_key), index.position(group.high_key + 1)
    for key in index.iterate(start, stop, reverse=descending):
        if key_id(key) not in group.id_out:
            yield key


def _slice(keys: Iterator[int], after: int, limit: int) -> list[int]:
    page = []
    for position, key in enumerate(keys):
        if position >= after + limit:
            break
        if position >= after:
            page.append(key)
    return page


def _scan(store: Store, object_type: str, groups: list[Group]) -> list[Record]:
    """Every searchable record matching any group, from the groups' key hull and id lists."""
    records = store.records[object_type]
    index = store.index[object_type]
    candidates: dict[str, Record] = {}
    ranged = [g for g in groups if g.id_in is None]
    if ranged:
        low, high = min(g.low_key for g in ranged), max(g.high_key for g in ranged)
        for key in index.iterate(index.position(low), index.position(high + 1)):
            record = records[str(key_id(key))]
            candidates[record.id] = record
    for group in groups:
        for record_id in group.id_in or ():
            record = records.get(str(record_id))
            if record is not None and record.key is not None and not record.archived:
                candidates[record.id] = record
    return [record for record in candidates.values()
            if any(group.admits_key(record.key) and all(_test(store, object_type, record, f) for f in group.residual)
                   for group in groups)]  # type: ignore[arg-type]


def _test(store: Store, object_type: str, record: Record, item: Filter) -> bool:
    view = record.searchable or {}
    if item.operator == "QUERY":
        return any(item.value in (view.get(name) or "").lower() for name in QUERY_PROPERTIES[object_type])
    if item.name.startswith("associations."):
        return _associated(store, object_type, record, item)
    actual = view.get(item.name) if item.spec is not None else None
    if actual == "":
        actual = None
    operator = item.operator
    if operator == "HAS_PROPERTY":
        return actual is not None
    if operator == "NOT_HAS_PROPERTY":
        return actual is None
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        hit = actual is not None and _contains_token(actual, str(item.value))
        return hit if operator == "CONTAINS_TOKEN" else not hit
    if operator in ("IN", "NOT_IN"):
        found = actual is not None and _filter_key(item.spec, actual) in item.value_keys
        return found if operator == "IN" else not found
    if actual is None:
        return operator == "NEQ"
    left = _filter_key(item.spec, actual)
    if operator == "EQ":
        return left == item.key
    if operator == "NEQ":
        return left != item.key
    try:
        if operator == "BETWEEN":
            return item.key <= left <= item.high_key
        return {"LT": left < item.key, "LTE": left <= item.key, "GT": left > item.key,
                "GTE": left >= item.key}[operator]
    except TypeError:  # a stored value that is not comparable with the filter's
        return False


def _associated(store: Store, object_type: str, record: Record, item: Filter) -> bool:
    """``associations.contact EQ 123`` finds the records associated with contact 123 (§3.1)."""
    target = {singular: plural for plural, singular in SINGULAR.items()}.get(item.name.split(".", 1)[1])
    if target is None:
        return False
    linked = set(store.associated(object_type, record.id, target))
    if item.operator == "EQ":
        return str(item.value) in linked
    if item.operator == "IN":
        return bool(linked & {str(v) for v in item.values})
    if item.operator == "NEQ":
        return str(item.value) not in linked
    return False


def _contains_token(actual: str, pattern: str) -> bool:
    """Token match with ``*`` wildcards; the whole value counts as a token too (``*@hubspot.com``)."""
    text = actual.lower()
    tokens = re.split(r"[\s@.,;:/\-_]+", text) + [text]
    wanted = pattern.lower()
    return any(fnmatch.fnmatchcase(token, wanted) for token in tokens if token)


def _sort_key(spec: Property | None, value: str) -> Any:
    key = _filter_key(spec, value)
    if key is None:
        return (0, str(value).lower())
    return (1, key) if not isinstance(key, str) else (2, key.lower())

