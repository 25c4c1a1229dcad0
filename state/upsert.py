"""Bulk INSERT and INSERT ... ON CONFLICT for SQLite and PostgreSQL alike.

A batch travels as one JSON document and is stored by one ``INSERT ... SELECT`` from it
(``json_each`` on SQLite, ``json_to_recordset`` on PostgreSQL), not as an executemany. The
drivers run an executemany row by row and release and re-take the GIL around every row: in a
busy process (the collector answering thousands of beacons a second) each re-take waited
behind the other threads, and a 500-row batch crawled at about 1,000 rows/s. One statement
is stored in a single step inside the database, without the GIL, while the other threads
run. On PostgreSQL an upsert whose rows share a key goes row by row instead: one statement
may not update a row twice.

The document is UTF-8 text (no ``\\u`` escapes), so text that is not valid Unicode (a lone
surrogate) is refused by both databases alike instead of being stored by SQLite as invalid
UTF-8; callers store only text made valid first (``sync.capture.text``).
"""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable, Iterable

from sqlalchemy import Text, bindparam, cast, column, func, literal_column, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Session

from state.types import to_utc


def insert_rows(session: Session, model, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` (dicts of column values; absent columns take their defaults)."""
    if rows:
        BulkWrite(_dialect(session), model, list(rows[0])).run(session, rows)


def upsert(session: Session, model, rows: list[dict[str, Any]], key: Iterable[str],
           update: Callable[[Any, Any], dict[str, Any]] | None = None) -> None:
    """Insert ``rows``; on a ``key`` conflict apply ``update(table, excluded)`` (or do nothing).

    Rows conflicting with each other within one call are applied in order, as if inserted
    one at a time."""
    if rows:
        BulkWrite(_dialect(session), model, list(rows[0]), key, update).run(session, rows)


class BulkWrite:
    """One bulk INSERT (or upsert) of ``columns`` into ``model``'s table, built once for a
    dialect and run with any number of row batches: a writer that stores a batch many times a
    second keeps one, rather than build the statement (a SQL function per column) every time."""

    def __init__(self, dialect, model, columns: list[str], key: Iterable[str] | None = None,
                 update: Callable[[Any, Any], dict[str, Any]] | None = None) -> None:
        self.dialect, self.model, self.columns = dialect, model, list(columns)
        self.key = list(key) if key is not None else None
        self.update = update
        table = model.__table__
        # Columns the rows leave out but the model fills in (timestamps, empty JSON): an
        # INSERT ... SELECT gets no per-row Python defaults, so they are computed once per run
        # (as SQLAlchemy would for one INSERT ... SELECT).
        self.defaulted = [column for column in table.columns
                          if column.name not in self.columns and column.default is not None
                          and not column.default.is_sequence and not column.default.is_clause_element]
        self.names = self.columns + [column.name for column in self.defaulted]
        if dialect.name == "postgresql":
            source = func.json_to_recordset(cast(bindparam("rows", type_=Text), postgresql.JSON)).table_valued(
                *[column(name, table.c[name].type) for name in self.names]).render_derived(name="batch",
                                                                                              with_types=True)
            self.statement = self._finish(postgresql.insert(table).from_select(self.names, select(*source.c)))
            self.processors = []
        else:
            self.processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names]
            element = literal_column("value")
            source = select(*[func.json_extract(element, literal_column(f"'$[{index}]'"))
                              for index in range(len(self.names))]) \
                .select_from(func.json_each(bindparam("rows"))).where(true())  # WHERE: SQLite's ON CONFLICT needs one
            self.statement = self._finish(sqlite.insert(table).from_select(self.names, source))
        # The SQL text, compiled once: run as it is, it skips the statement cache's key
        # computation, which for thirty extracted columns costs more than the insert.
        compiled = self.statement.compile(dialect=dialect)
        assert list(compiled.params) == ["rows"], compiled.params  # the one parameter: the document
        self.sql = str(compiled)
        self.positional = dialect.positional

    def _finish(self, insert):
        if self.key is None:
            return insert
        if self.update is None:
            return insert.on_conflict_do_nothing(index_elements=self.key)
        return insert.on_conflict_do_update(index_elements=self.key,
                                            set_=self.update(self.model.__table__.c, insert.excluded))

    def run(self, session: Session | Connection, rows: list[dict[str, Any]]) -> None:
        """Store ``rows`` in the caller's transaction (a session's, or a bare connection's)."""
        if not rows:
            return
        defaults = [column.default.arg(None) if column.default.is_callable else column.default.arg
                    for column in self.defaulted]
        values = [[row.get(name) for name in self.columns] + defaults for row in rows]
        if self.dialect.name == "postgresql":
            if self.key and len({tuple(row.get(name) for name in self.key) for row in rows}) < len(rows):
                session.execute(self._finish(postgresql.insert(self.model.__table__)),
                                [dict(zip(self.names, value)) for value in values])
                return
            document = json.dumps([dict(zip(self.names, value)) for value in values], separators=(",", ":"),
                                  default=_json_value, ensure_ascii=False)
        else:
            for index, process in enumerate(self.processors):
                if process is not None:
                    for value in values:
                        value[index] = process(value[index])
            document = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
        connection = session.connection() if isinstance(session, Session) else session
        connection.exec_driver_sql(self.sql, (document,) if self.positional else {"rows": document})


def _dialect(session: Session):
    return session.get_bind().dialect


def _json_value(value: Any) -> str:
    """Values JSON has no type for, as text PostgreSQL reads back into the column's type."""
    if isinstance(value, datetime):
        return to_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a bulk write")


def greatest(session_or_dialect, *values):
    """SQL max of values: GREATEST on PostgreSQL, the scalar max() on SQLite."""
    return (func.greatest if _dialect_name(session_or_dialect) == "postgresql" else func.max)(*values)


def least(session_or_dialect, *values):
    return (func.least if _dialect_name(session_or_dialect) == "postgresql" else func.min)(*values)


def _dialect_name(session_or_dialect) -> str:
    """A session, a dialect or a dialect's name, as the name."""
    if isinstance(session_or_dialect, str):
        return session_or_dialect
    if hasattr(session_or_dialect, "get_bind"):
        return session_or_dialect.get_bind().dialect.name
    return session_or_dialect.name
