"""A SOQL subset: parse a query into an AST and evaluate conditions against records.

Supported (reference §2 and §10): ``SELECT`` field lists with parent paths
(``ConvertedContact.Email``) and child subqueries (``(SELECT ContactId FROM
OpportunityContactRoles)``), ``COUNT()``, ``FROM`` one object, ``WHERE`` with
``= != <> < <= > >= IN NOT IN LIKE AND OR NOT ()``, unquoted date and datetime literals
(``2024-01-01``, ``2024-01-01T00:00:00Z``, ``…+02:00``), ``TODAY``/``YESTERDAY``,
``true``/``false``/``null``, ``ORDER BY`` several fields ``ASC|DESC NULLS FIRST|LAST``,
``LIMIT`` and ``OFFSET`` (≤ 2000). Errors carry Salesforce's error codes and message shapes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*(?::\d+)?)
""", re.VERBOSE)
KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
            "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL"}


@dataclass
class Token:
    kind: str
    text: str
    position: int


def tokenize(query: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(query):
        match = _TOKEN.match(query, position)
        if not match:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{query[position:position + 20].split()[0]}'")
        if match.lastgroup != "ws":
            tokens.append(Token(match.lastgroup, match.group(), position))
        position = match.end()
    return tokens


@dataclass
class Literal:
    value: Any
    kind: str  # string number boolean null date datetime


@dataclass
class Comparison:
    path: str
    operator: str  # = != < <= > >= IN NOT IN LIKE
    value: Any     # Literal or list[Literal]
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


@dataclass
class Query:
    object: str
    fields: list[tuple[str, int]] = field(default_factory=list)  # (path, position)
    subqueries: list["Query"] = field(default_factory=list)
    count: bool = False
    where: Any = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    object_position: int = 0


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else None

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
        token = self.peek()
        if not token or token.text != char:
            self.unexpected()
        self.index += 1

    def unexpected(self):
        token = self.peek()
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{token.text}'" if token
                        else "unexpected end of query")

    def identifier(self) -> Token:
        token = self.peek()
        if not token or token.kind != "ident" or token.text.upper() in KEYWORDS:
            self.unexpected()
        self.index += 1
        return token

    def query(self, nested: bool = False) -> Query:
        self.expect_keyword("SELECT")
        query = Query(object="")
        while True:
            token = self.peek()
            if token and token.text == "(":
                self.index += 1
                query.subqueries.append(self.query(nested=True))
                self.expect_punct(")")
            elif token and token.kind == "ident" and token.text.upper() == "COUNT" and self.peek(1) \
                    and self.peek(1).text == "(":
                self.index += 2
                self.expect_punct(")")
                query.count = True
            else:
                name = self.identifier()
                query.fields.append((name.text, name.position))
            if self.peek() and self.peek().text == ",":
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
                item = OrderItem(self.identifier().text)
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
                if self.peek() and self.peek().text == ",":
                    self.index += 1
                    continue
                break
        if self.keyword("LIMIT"):
            query.limit = self.integer()
        if self.keyword("OFFSET"):
            query.offset = self.integer()
            if query.offset > 2000:
                raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
        if not nested and self.peek() is not None:
            self.unexpected()
        return query

    def integer(self) -> int:
        token = self.peek()
        if not token or token.kind != "number" or "." in token.text:
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
        token = self.peek()
        if token and token.text == "(":
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
            while self.peek() and self.peek().text == ",":
                self.index += 1
                values.append(self.literal())
            self.expect_punct(")")
            return Comparison(path.text, "NOT IN" if negate else "IN", values, path.position)
        self.unexpected()

    def literal(self) -> Literal:
        token = self.peek()
        if token is None:
            self.unexpected()
        self.index += 1
        if token.kind == "string":
            return Literal(re.sub(r"\\(.)", r"\1", token.text[1:-1]), "string")
        if token.kind == "number":
            return Literal(Decimal(token.text), "number")
        if token.kind == "datetime":
            return Literal(parse_datetime_literal(token.text), "datetime")
        if token.kind == "date":
            return Literal(date.fromisoformat(token.text), "date")
        word = token.text.upper()
        if word in ("TRUE", "FALSE"):
            return Literal(word == "TRUE", "boolean")
        if word == "NULL":
            return Literal(None, "null")
        if word in ("TODAY", "YESTERDAY", "TOMORROW"):
            offset = {"TODAY": 0, "YESTERDAY": -1, "TOMORROW": 1}[word]
            return Literal(("relative_day", offset), "relative")
        self.index -= 1
        self.unexpected()


def parse(text: str) -> Query:
    return _Parser(text).query()


def parse_datetime_literal(text: str) -> datetime:
    normalised = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", normalised):
        normalised = normalised[:-2] + ":" + normalised[-2:]
    return datetime.fromisoformat(normalised).astimezone(timezone.utc)


def like_pattern(pattern: str) -> re.Pattern[str]:
    """SOQL LIKE: % any run, _ one character, case-insensitive."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL)


def relative_day(offset: int, today: date) -> date:
    return today + timedelta(days=offset)
