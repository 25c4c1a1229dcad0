"""A SOQL subset: tokenizer, parser, and a compiler that binds a query to the org's schema.

Supported (reference §2 and §10): ``SELECT`` field lists with parent paths
(``ConvertedContact.Email``, ``Account.Name``) and child subqueries (``(SELECT ContactId,
IsPrimary FROM OpportunityContactRoles)``), ``COUNT()``, ``FROM`` one object, ``WHERE`` with
``= != <> < <= > >= IN NOT IN LIKE AND OR NOT`` and parentheses, quoted strings with escapes,
numbers, ``true``/``false``/``null``, unquoted date and datetime literals (``2024-01-01``,
``2024-01-01T00:00:00Z``, ``…+02:00``), relative dates (``TODAY``, ``LAST_N_DAYS:7``, …),
``ORDER BY`` several fields ``ASC|DESC NULLS FIRST|LAST``, ``LIMIT`` and ``OFFSET`` (≤ 2000).

Errors carry Salesforce's codes and its message shape: the query line, a caret, ``ERROR at
Row:r:Column:c`` and the reason (reference §4.3), e.g. MALFORMED_QUERY "unexpected token:
'12:52:08.062712+00:00'" for an interpolated ``str(datetime)`` (SS issue #500).

The compiler turns conditions into closures over stored records, so evaluating a predicate
on a million records costs one Python call per record, and reports the top-level ``AND``
conjuncts so the store can answer them from its indexes instead (see ``store.py``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Protocol

from sandbox.salesforce.ids import to18
from sandbox.salesforce.schema import ID_TYPES, NUMBER_TYPES, TEXT_TYPES, Field, SObject

MAX_OFFSET = 2000


class SoqlError(Exception):
    """A query rejected the way Salesforce rejects it: ``[{"message", "errorCode"}]`` with HTTP 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def positioned(text: str, position: int, reason: str) -> str:
    """Salesforce's query error text: the line, a caret under the culprit, row/column, reason."""
    row = text.count("\n", 0, position) + 1
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    line = text[line_start:line_end if line_end >= 0 else len(text)]
    column = position - line_start + 1
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{reason}"


# -- tokens ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>[+-]?(?:\d+(?:\.\d+)?|\.\d+))
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::\d+)?)
""", re.VERBOSE)
_RUN = re.compile(r"[^\s(),]+")
_DELIMITERS = frozenset(" \t\r\n(),=<>!'")
KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
            "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL", "GROUP", "HAVING", "INCLUDES",
            "EXCLUDES", "WITH", "FOR", "USING"}
_ESCAPES = {"n": "\n", "N": "\n", "r": "\r", "R": "\r", "t": "\t", "T": "\t", "b": "\b", "B": "\b", "f": "\f",
            "F": "\f", '"': '"', "'": "'", "\\": "\\"}


@dataclass
class Token:
    kind: str
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            if text[position] == "'":
                raise SoqlError("MALFORMED_QUERY", f"line 1:{position} mismatched character '<EOF>' expecting '''")
            run = _RUN.match(text, position)
            tokens.append(Token("junk", run.group() if run else text[position], position))
            position = run.end() if run else position + 1
            continue
        kind, end = match.lastgroup, match.end()
        if kind in ("datetime", "date", "number", "ident") and end < len(text) and text[end] not in _DELIMITERS:
            # "2024-01-01 12:52:08.062712+00:00": Salesforce names the whole run as the bad token.
            run = _RUN.match(text, position)
            tokens.append(Token("junk", run.group(), position))
            position = run.end()
            continue
        if kind != "ws":
            tokens.append(Token(kind, match.group(), position))
        position = end
    return tokens


# -- syntax tree ----------------------------------------------------------------------------

@dataclass
class Literal:
    value: Any
    kind: str  # string number boolean null date datetime relative
    position: int = 0


@dataclass
class Comparison:
    path: str
    operator: str  # = != < <= > >= IN NOT IN LIKE
    value: Any     # Literal, or list[Literal] for IN / NOT IN
    position: int = 0


@dataclass
class Boolean:
    operator: str  # AND OR NOT
    operands: list


@dataclass
class OrderItem:
    path: str
    descending: bool = False
    nulls_last: bool | None = None
    position: int = 0


@dataclass
class Query:
    object: str
    text: str = ""
    object_position: int = 0
    fields: list[tuple[str, int]] = field(default_factory=list)  # (path, position)
    subqueries: list["Query"] = field(default_factory=list)
    count: bool = False
    where: Any = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at_punct(self, char: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "punct" and token.text == char

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token.kind == "ident" and token.text.upper() == word:
            self.index += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            self.unexpected()

    def expect_punct(self, char: str) -> None:
        if not self.at_punct(char):
            self.unexpected()
        self.index += 1

    def unexpected(self):
        token = self.peek()
        if token is None:
            raise SoqlError("MALFORMED_QUERY", positioned(self.text, len(self.text), "unexpected token: '<EOF>'"))
        raise SoqlError("MALFORMED_QUERY", positioned(self.text, token.position, f"unexpected token: '{token.text}'"))

    def identifier(self) -> Token:
        token = self.peek()
        if not token or token.kind != "ident" or token.text.upper() in KEYWORDS:
            self.unexpected()
        self.index += 1
        return token

    def query(self, nested: bool = False) -> Query:
        self.expect_keyword("SELECT")
        query = Query(object="", text=self.text)
        while True:
            token = self.peek()
            if token and token.kind == "punct" and token.text == "(":
                self.index += 1
                query.subqueries.append(self.query(nested=True))
                self.expect_punct(")")
            elif token and token.kind == "ident" and token.text.upper() == "COUNT" and self.peek(1) \
                    and self.peek(1).text == "(" and self.peek(2) and self.peek(2).text == ")":
                self.index += 3
                query.count = True
            else:
                name = self.identifier()
                query.fields.append((name.text, name.position))
            if self.at_punct(","):
                self.index += 1
                continue
            break
        self.expect_keyword("FROM")
        name = self.identifier()
        query.object, query.object_position = name.text, name.position
        if self.keyword("WHERE"):
            query.where = self.or_expression()
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            while True:
                token = self.identifier()
                item = OrderItem(token.text, position=token.position)
                if self.keyword("DESC"):
                    item.descending = True
                else:
                    self.keyword("ASC")
                if self.keyword("NULLS"):
                    if self.keyword("LAST"):
                        item.nulls_last = True
                    else:
                        self.expect_keyword("FIRST")
                        item.nulls_last = False
                query.order.append(item)
                if self.at_punct(","):
                    self.index += 1
                    continue
                break
        if self.keyword("LIMIT"):
            query.limit = self.integer()
        if self.keyword("OFFSET"):
            token = self.peek()
            query.offset = self.integer()
            if query.offset > MAX_OFFSET:
                raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE",
                                positioned(self.text, token.position, "Maximum SOQL offset allowed is 2000"))
        if not nested and self.peek() is not None:
            self.unexpected()
        return query

    def integer(self) -> int:
        token = self.peek()
        if not token or token.kind != "number" or not token.text.isdigit():
            self.unexpected()
        self.index += 1
        return int(token.text)

    def or_expression(self):
        operands = [self.and_expression()]
        while self.keyword("OR"):
            operands.append(self.and_expression())
        return operands[0] if len(operands) == 1 else Boolean("OR", operands)

    def and_expression(self):
        operands = [self.not_expression()]
        while self.keyword("AND"):
            operands.append(self.not_expression())
        return operands[0] if len(operands) == 1 else Boolean("AND", operands)

    def not_expression(self):
        if self.keyword("NOT"):
            return Boolean("NOT", [self.not_expression()])
        if self.at_punct("("):
            self.index += 1
            inner = self.or_expression()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        path = self.identifier()
        token = self.peek()
        if token is None:
            self.unexpected()
        if token.kind == "op":
            self.index += 1
            operator = "!=" if token.text == "<>" else token.text
            return Comparison(path.text, operator, self.literal(), path.position)
        if self.keyword("LIKE"):
            return Comparison(path.text, "LIKE", self.literal(), path.position)
        negate = self.keyword("NOT")
        if self.keyword("IN"):
            self.expect_punct("(")
            values = [self.literal()]
            while self.at_punct(","):
                self.index += 1
                values.append(self.literal())
            self.expect_punct(")")
            return Comparison(path.text, "NOT IN" if negate else "IN", values, path.position)
        self.unexpected()

    def literal(self) -> Literal:
        token = self.peek()
        if token is None:
            self.unexpected()
        kind, text, position = token.kind, token.text, token.position
        if kind == "string":
            self.index += 1
            return Literal(self._unescape(text, position), "string", position)
        if kind == "number":
            self.index += 1
            return Literal(Decimal(text), "number", position)
        if kind == "datetime":
            self.index += 1
            try:
                return Literal(parse_datetime_literal(text), "datetime", position)
            except ValueError:
                raise SoqlError("MALFORMED_QUERY", positioned(self.text, position,
                                                              f"line 1:{position} no viable alternative at "
                                                              f"character '{text}'")) from None
        if kind == "date":
            self.index += 1
            try:
                return Literal(date.fromisoformat(text), "date", position)
            except ValueError:
                raise SoqlError("MALFORMED_QUERY", positioned(self.text, position,
                                                              f"line 1:{position} no viable alternative at "
                                                              f"character '{text}'")) from None
        if kind == "ident":
            word = text.upper()
            if word in ("TRUE", "FALSE"):
                self.index += 1
                return Literal(word == "TRUE", "boolean", position)
            if word == "NULL":
                self.index += 1
                return Literal(None, "null", position)
            name, _, number = word.partition(":")
            if name in RELATIVE_DATES and (name in _N_LITERALS) == bool(number):
                self.index += 1
                return Literal((name, int(number) if number else None), "relative", position)
        self.unexpected()

    def _unescape(self, token: str, position: int) -> str:
        body, out, index = token[1:-1], [], 0
        while index < len(body):
            char = body[index]
            if char == "\\" and index + 1 < len(body):
                escaped = body[index + 1]
                if escaped in _ESCAPES:
                    out.append(_ESCAPES[escaped])
                elif escaped in "_%":  # only meaningful to LIKE; kept escaped for the pattern
                    out.append("\\" + escaped)
                else:
                    raise SoqlError("MALFORMED_QUERY", positioned(
                        self.text, position, f"Invalid string literal '{body}'. Illegal escape sequence "
                                             f"'\\{escaped}'"))
                index += 2
                continue
            out.append(char)
            index += 1
        return "".join(out)


def parse(text: str) -> Query:
    """Parse ``text`` into a :class:`Query` (raises :class:`SoqlError`)."""
    return _Parser(text).query()


def parse_datetime_literal(text: str) -> datetime:
    normalised = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", normalised):
        normalised = normalised[:-2] + ":" + normalised[-2:]
    return datetime.fromisoformat(normalised).astimezone(timezone.utc)


# -- relative date literals (https://developer.salesforce.com/docs/platform/salesforce-soql-sosl/guide/
#    sforce-api-calls-soql-select-dateformats.md), resolved to [start, end) day ranges in UTC ----------

_N_LITERALS = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO", "LAST_N_WEEKS", "NEXT_N_WEEKS", "LAST_N_MONTHS",
               "NEXT_N_MONTHS"}
RELATIVE_DATES = {"TODAY", "YESTERDAY", "TOMORROW", "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK", "LAST_MONTH",
                  "THIS_MONTH", "NEXT_MONTH", "LAST_90_DAYS", "NEXT_90_DAYS", "THIS_YEAR", "LAST_YEAR",
                  "NEXT_YEAR"} | _N_LITERALS


def _month_start(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def relative_range(name: str, n: int | None, today: date) -> tuple[date, date]:
    """The days ``[start, end)`` a relative date literal covers (weeks start on Sunday)."""
    week = today - timedelta(days=(today.weekday() + 1) % 7)
    one = timedelta(days=1)
    n = n or 0
    ranges = {
        "TODAY": (today, today + one), "YESTERDAY": (today - one, today), "TOMORROW": (today + one, today + 2 * one),
        "THIS_WEEK": (week, week + 7 * one), "LAST_WEEK": (week - 7 * one, week),
        "NEXT_WEEK": (week + 7 * one, week + 14 * one),
        "THIS_MONTH": (_month_start(today, 0), _month_start(today, 1)),
        "LAST_MONTH": (_month_start(today, -1), _month_start(today, 0)),
        "NEXT_MONTH": (_month_start(today, 1), _month_start(today, 2)),
        "LAST_90_DAYS": (today - 90 * one, today + one), "NEXT_90_DAYS": (today + one, today + 91 * one),
        "THIS_YEAR": (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
        "LAST_YEAR": (date(today.year - 1, 1, 1), date(today.year, 1, 1)),
        "NEXT_YEAR": (date(today.year + 1, 1, 1), date(today.year + 2, 1, 1)),
        "LAST_N_DAYS": (today - n * one, today + one), "NEXT_N_DAYS": (today + one, today + (n + 1) * one),
        "N_DAYS_AGO": (today - n * one, today - (n - 1) * one),
        "LAST_N_WEEKS": (week - 7 * n * one, week), "NEXT_N_WEEKS": (week + 7 * one, week + 7 * (n + 1) * one),
        "LAST_N_MONTHS": (_month_start(today, -n), _month_start(today, 0)),
        "NEXT_N_MONTHS": (_month_start(today, 1), _month_start(today, n + 1)),
    }
    return ranges[name]


# -- binding a query to the schema -----------------------------------------------------------

class RecordSource(Protocol):
    """What compiled queries need from the store."""

    def resolve(self, record_id: str) -> dict[str, Any] | None:
        """The live record with this 18-character id, or None."""

    def children(self, object_name: str, field_name: str, parent_id: str) -> list[dict[str, Any]]:
        """Live records of ``object_name`` whose ``field_name`` is ``parent_id``."""


@dataclass
class Path:
    """A resolved field path: the lookups to follow, then the field to read."""

    hops: list[Field]
    objects: list[SObject]  # the object of each step; objects[-1] owns ``field``
    field: Field


@dataclass
class Conjunct:
    """One top-level ``AND`` term, offered to the store's planner."""

    field: Field | None  # a direct field of the queried object (None for dotted paths)
    operator: str
    values: list[Any]    # converted literal values (datetimes, 18-char ids, ...); [] for relative ones
    test: Callable[[dict[str, Any]], bool]
    bounds: tuple[Any, Any] | None = None  # inclusive/exclusive datetime bounds for range operators


@dataclass
class Compiled:
    """A query bound to the schema: predicates, sort key, projection."""

    query: Query
    sobject: SObject
    conjuncts: list[Conjunct]
    predicate: Callable[[dict[str, Any]], bool] | None
    order: list[tuple[Callable[[dict[str, Any]], Any], bool, bool]]  # (key, descending, nulls_last)
    order_paths: list[str]
    project: Callable[[dict[str, Any], str], dict[str, Any]]
    count: bool = False

    @property
    def limit(self) -> int | None:
        return self.query.limit

    @property
    def offset(self) -> int:
        return self.query.offset


def compile_query(text: str, schema: dict[str, SObject], source: RecordSource, today: date) -> Compiled:
    """Parse and bind ``text``; raises :class:`SoqlError` with Salesforce's codes."""
    query = parse(text)
    sobject = _sobject(schema, query.object, text, query.object_position)
    return _Binder(text, schema, source, today).bind(query, sobject)


def _sobject(schema: dict[str, SObject], name: str, text: str, position: int) -> SObject:
    found = schema.get(name) or next((o for key, o in schema.items() if key.lower() == name.lower()), None)
    if found is None:
        raise SoqlError("INVALID_TYPE", positioned(
            text, position, f"sObject type '{name}' is not supported. If you are attempting to use a custom "
                            "object, be sure to append the '__c' after the entity name. Please reference your WSDL "
                            "or the describe call for the appropriate names."))
    return found


def serializer(spec: Field) -> Callable[[Any], Any]:
    """Stored value → JSON value for this field type (reference §2.2)."""
    if spec.type == "datetime":
        return lambda v: None if v is None else format_datetime(v)
    if spec.type == "date":
        return lambda v: None if v is None else v.isoformat()
    if spec.type in ("double", "currency", "percent"):
        return lambda v: None if v is None else float(v)
    if spec.type == "int":
        return lambda v: None if v is None else int(v)
    if spec.type == "boolean":
        return lambda v: False if v is None else v  # checkboxes are never null
    return lambda v: v


def format_datetime(value: datetime) -> str:
    """``2013-05-20T20:49:32.000+0000``: UTC, milliseconds, offset without colon."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


class _Binder:
    def __init__(self, text: str, schema: dict[str, SObject], source: RecordSource, today: date) -> None:
        self.text, self.schema, self.source, self.today = text, schema, source, today

    # paths -----------------------------------------------------------------------------

    def no_column(self, sobject: SObject, name: str, position: int):
        raise SoqlError("INVALID_FIELD", positioned(
            self.text, position, f"No such column '{name}' on entity '{sobject.name}'. If you are attempting to use "
                                 "a custom field, be sure to append the '__c' after the custom field name. Please "
                                 "reference your WSDL or the describe call for the appropriate names."))

    def path(self, sobject: SObject, text: str, position: int) -> Path:
        parts = text.split(".")
        if len(parts) > 1 and parts[0].lower() == sobject.name.lower():
            parts = parts[1:]  # "Lead.Email" on Lead
        hops, objects, current = [], [sobject], sobject
        for name in parts[:-1]:
            spec = current.relationship(name)
            if spec is None:
                raise SoqlError("INVALID_FIELD", positioned(
                    self.text, position, f"Didn't understand relationship '{name}' in field path. If you are "
                                         "attempting to use a custom relationship, be sure to append the '__r' after "
                                         "the custom relationship name. Please reference your WSDL or the describe "
                                         "call for the appropriate names."))
            hops.append(spec)
            current = self.schema[spec.reference_to]
            objects.append(current)
        spec = current.field(parts[-1])
        if spec is None:
            self.no_column(current, parts[-1], position)
        return Path(hops, objects, spec)

    def getter(self, path: Path) -> Callable[[dict[str, Any]], Any]:
        name = path.field.name
        default = False if path.field.type == "boolean" else None  # checkboxes are never null
        if not path.hops:
            return lambda record: record.get(name, default)
        hops, resolve = [hop.name for hop in path.hops], self.source.resolve

        def get(record: dict[str, Any]) -> Any:
            for hop in hops:
                target = record.get(hop)
                record = resolve(target) if target else None
                if record is None:
                    return None
            return record.get(name, default)
        return get

    # the query -------------------------------------------------------------------------

    def bind(self, query: Query, sobject: SObject) -> Compiled:
        query.object = sobject.name
        selected = [(self.path(sobject, text, position), text) for text, position in query.fields]
        subqueries = []
        for sub in query.subqueries:
            relationship = sobject.child(sub.object)
            if relationship is None or relationship.child not in self.schema:
                raise SoqlError("INVALID_TYPE", positioned(
                    self.text, sub.object_position,
                    f"Didn't understand relationship '{sub.object}' in FROM part of query call. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' after the custom "
                    "relationship name. Please reference your WSDL or the describe call for the appropriate names."))
            child = self.bind(sub, self.schema[relationship.child])
            subqueries.append((relationship, child))
        conjuncts = self.conjuncts(sobject, query.where)
        predicate = _all([c.test for c in conjuncts]) if conjuncts else None
        order, order_paths = [], []
        for item in query.order:
            path = self.path(sobject, item.path, item.position)
            if path.field.type == "textarea" and path.field.length > 255:
                raise SoqlError("INVALID_FIELD", positioned(
                    self.text, item.position, f"field '{path.field.name}' can not be sorted in a query call"))
            nulls_last = item.nulls_last if item.nulls_last is not None else item.descending
            order.append((_sort_key(self.getter(path), path.field), item.descending, nulls_last))
            order_paths.append(".".join([h.name for h in path.hops] + [path.field.name]))
        project = self.projection(sobject, selected, subqueries)
        return Compiled(query, sobject, conjuncts, predicate, order, order_paths, project, query.count)

    def projection(self, sobject: SObject, selected: list[tuple[Path, str]],
                   subqueries: list) -> Callable[[dict[str, Any], str], dict[str, Any]]:
        """A function building one result row, nested as the API nests it (reference §2.2)."""
        tree: dict[str, Any] = {}  # name → ("field", serialise) | ("parent", hop name, object, subtree)
        for path, _ in selected:
            node = tree
            for hop, target in zip(path.hops, path.objects[1:]):
                entry = node.setdefault(hop.relationship_name, ("parent", hop.name, target.name, {}))
                node = entry[3]
            node.setdefault(path.field.name, ("field", serializer(path.field)))
        resolve, children = self.source.resolve, self.source.children

        def build(node: dict[str, Any], record: dict[str, Any], object_name: str, version: str) -> dict[str, Any]:
            out = {"attributes": {"type": object_name,
                                  "url": f"/services/data/v{version}/sobjects/{object_name}/{record['Id']}"}}
            for name, entry in node.items():
                if entry[0] == "field":
                    out[name] = entry[1](record.get(name))
                else:
                    target_id = record.get(entry[1])
                    target = resolve(target_id) if target_id else None
                    out[name] = build(entry[3], target, entry[2], version) if target is not None else None
            return out

        def row(record: dict[str, Any], version: str) -> dict[str, Any]:
            out = build(tree, record, sobject.name, version)
            for relationship, child in subqueries:
                rows = [r for r in children(relationship.child, relationship.field, record["Id"])
                        if child.predicate is None or child.predicate(r)]
                rows = order_rows(rows, child.order)[child.offset:]
                if child.limit is not None:
                    rows = rows[:child.limit]
                out[relationship.name] = {"totalSize": len(rows), "done": True,
                                          "records": [child.project(r, version) for r in rows]} if rows else None
            return out
        return row

    # conditions ------------------------------------------------------------------------

    def conjuncts(self, sobject: SObject, condition: Any) -> list[Conjunct]:
        if condition is None:
            return []
        terms = condition.operands if isinstance(condition, Boolean) and condition.operator == "AND" else [condition]
        out = []
        for term in terms:
            if isinstance(term, Comparison):
                out.append(self.comparison(sobject, term))
            else:
                out.append(Conjunct(None, term.operator, [], self.condition(sobject, term)))
        return out

    def condition(self, sobject: SObject, condition: Any) -> Callable[[dict[str, Any]], bool]:
        if isinstance(condition, Comparison):
            return self.comparison(sobject, condition).test
        tests = [self.condition(sobject, operand) for operand in condition.operands]
        if condition.operator == "AND":
            return _all(tests)
        if condition.operator == "OR":
            return lambda record: any(test(record) for test in tests)
        inner = tests[0]
        return lambda record: not inner(record)

    def comparison(self, sobject: SObject, condition: Comparison) -> Conjunct:
        path = self.path(sobject, condition.path, condition.position)
        spec, get = path.field, self.getter(path)
        direct = spec if not path.hops else None
        if spec.type == "textarea" and spec.length > 255:
            raise SoqlError("INVALID_FIELD", positioned(
                self.text, condition.position, f"field '{spec.name}' can not be filtered in a query call"))
        operator = condition.operator
        literals = condition.value if isinstance(condition.value, list) else [condition.value]
        for literal in literals:
            self.check_literal(spec, literal, operator)
        if any(literal.kind == "relative" for literal in literals):
            return self.relative(direct, spec, get, operator, literals[0] if len(literals) == 1 else None,
                                 condition)
        values = [self.convert(spec, literal) for literal in literals]
        normal = _normaliser(spec)
        if operator in ("IN", "NOT IN"):
            wanted = {normal(v) if v is not None else None for v in values}
            if operator == "IN":
                def test(record): return _norm_or_none(normal, get(record)) in wanted
            else:
                def test(record): return _norm_or_none(normal, get(record)) not in wanted
            return Conjunct(direct, operator, values, test)
        value = values[0]
        if operator == "LIKE":
            if value is None:
                return Conjunct(direct, operator, values, lambda record: False)
            pattern = like_pattern(value)
            return Conjunct(direct, operator, values,
                            lambda record: (lambda v: v is not None and bool(pattern.match(str(v))))(get(record)))
        if value is None:
            if operator == "=":
                return Conjunct(direct, operator, values, lambda record: get(record) is None)
            if operator == "!=":
                return Conjunct(direct, operator, values, lambda record: get(record) is not None)
            return Conjunct(direct, operator, values, lambda record: False)
        expected = normal(value)
        if operator == "=":
            def test(record):
                actual = get(record)
                return actual is not None and normal(actual) == expected
        elif operator == "!=":
            def test(record):
                actual = get(record)
                return actual is None or normal(actual) != expected
        else:
            compare = _COMPARE[operator]

            def test(record):
                actual = get(record)
                return actual is not None and compare(normal(actual), expected)
        bounds = None
        if operator in (">", ">=", "<", "<=", "=") and spec.type == "datetime":
            bounds = _bounds(operator, value, value)
        return Conjunct(direct, operator, values, test, bounds)

    def relative(self, direct: Field | None, spec: Field, get, operator: str, literal: Literal | None,
                 condition: Comparison) -> Conjunct:
        if literal is None:  # IN (TODAY, ...) is not worth supporting
            raise SoqlError("MALFORMED_QUERY", positioned(self.text, condition.position,
                                                          "unexpected token: '('"))
        start, end = relative_range(literal.value[0], literal.value[1], self.today)
        if spec.type == "datetime":
            start = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
            end = datetime(end.year, end.month, end.day, tzinfo=timezone.utc)
        inside = {"=": lambda v: start <= v < end, "!=": lambda v: not start <= v < end,
                  "<": lambda v: v < start, "<=": lambda v: v < end, ">": lambda v: v >= end,
                  ">=": lambda v: v >= start}.get(operator)
        if inside is None:
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", positioned(
                self.text, condition.position, f"invalid operator on {spec.type} field"))

        def test(record):
            actual = get(record)
            return inside(actual) if actual is not None else operator == "!="
        bounds = None
        if spec.type == "datetime":
            low_high = {"=": ((start, True), (end, False)), "<": (None, (start, False)), "<=": (None, (end, False)),
                        ">": ((end, True), None), ">=": ((start, True), None)}.get(operator)
            bounds = low_high
        return Conjunct(direct, operator, [], test, bounds)

    def check_literal(self, spec: Field, literal: Literal, operator: str) -> None:
        if literal.kind == "null":
            return
        expected, quoted = None, False
        if spec.type == "datetime" and literal.kind not in ("datetime", "relative"):
            expected = "dateTime"
        elif spec.type == "date" and literal.kind not in ("date", "relative"):
            expected = "date"
        elif spec.type == "boolean" and literal.kind != "boolean":
            expected = "boolean"
        elif spec.type in NUMBER_TYPES and literal.kind != "number":
            expected = "double" if spec.type != "int" else "int"
        elif (spec.type in TEXT_TYPES or spec.type in ID_TYPES) and literal.kind != "string":
            expected, quoted = "string", True
        if expected:
            how = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
            raise SoqlError("INVALID_FIELD", positioned(
                self.text, literal.position,
                f"value of filter criterion for field '{spec.name}' must be of type {expected} and {how}"))
        if operator == "LIKE" and spec.type not in TEXT_TYPES:
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", positioned(
                self.text, literal.position, f"invalid operator on {spec.type} field"))
        if spec.type in ID_TYPES and literal.kind == "string" and to18(literal.value) is None:
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", positioned(
                self.text, literal.position, f"invalid ID field: {literal.value}"))

    def convert(self, spec: Field, literal: Literal) -> Any:
        if literal.kind == "null":
            return None
        if spec.type in ID_TYPES:
            return to18(literal.value)
        return literal.value


def _bounds(operator: str, low: Any, high: Any) -> tuple[Any, Any]:
    """(low, high) bounds as ((value, inclusive) | None, ...) for an index range scan."""
    return {">": ((low, False), None), ">=": ((low, True), None), "<": (None, (high, False)),
            "<=": (None, (high, True)), "=": ((low, True), (high, True))}[operator]


_COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _all(tests: list[Callable[[dict[str, Any]], bool]]) -> Callable[[dict[str, Any]], bool]:
    if len(tests) == 1:
        return tests[0]
    return lambda record: all(test(record) for test in tests)


def _normaliser(spec: Field) -> Callable[[Any], Any]:
    """Values compare case-insensitively for text, exactly for ids, numerically for numbers."""
    if spec.type in TEXT_TYPES:
        return lambda v: v.lower() if isinstance(v, str) else v
    if spec.type in NUMBER_TYPES:
        return lambda v: v if isinstance(v, Decimal) else _decimal(v)
    return lambda v: v


def _norm_or_none(normal: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else normal(value)


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def _sort_key(get: Callable[[dict[str, Any]], Any], spec: Field) -> Callable[[dict[str, Any]], Any]:
    if spec.type in TEXT_TYPES:
        return lambda record: (lambda v: v.lower() if isinstance(v, str) else v)(get(record))
    return get  # ids sort case-sensitively; dates, numbers and booleans natively


def order_rows(rows: list[dict[str, Any]], order: list[tuple[Callable, bool, bool]]) -> list[dict[str, Any]]:
    """Sort by several keys, each ASC|DESC with NULLS FIRST|LAST (stable passes, last key first)."""
    for key, descending, nulls_last in reversed(order):
        null_rank = (1 if nulls_last else 0) if not descending else (0 if nulls_last else 1)

        def ranked(record, key=key, null_rank=null_rank):
            value = key(record)
            return (null_rank, None) if value is None else (1 - null_rank, value)
        rows = sorted(rows, key=ranked, reverse=descending)
    return rows


def like_pattern(pattern: str) -> re.Pattern[str]:
    """SOQL LIKE: ``%`` any run, ``_`` one character, ``\\%``/``\\_`` literal, case-insensitive."""
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in "%_":
            out.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)
