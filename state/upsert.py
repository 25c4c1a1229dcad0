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
from sqlmodel import Session

from state.types import to_utc


def insert_rows(session: Session, model, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` (dicts of column values; absent columns take their defaults)."""
    _execute(session, model, rows, lambda insert: insert)


def upsert(session: Session, model, rows: list[dict[str, Any]], key: Iterable[str],
           update: Callable[[Any, Any], dict[str, Any]] | None = None) -> None:
    """Insert ``rows``; on a ``key`` conflict apply ``update(table, excluded)`` (or do nothing).

    Rows conflicting with each other within one call are applied in order, as if inserted
    one at a time."""
    key = list(key)

    def on_conflict(insert):
        if update is None:
            return insert.on_conflict_do_nothing(index_elements=key)
        return insert.on_conflict_do_update(index_elements=key, set_=update(model.__table__.c, insert.excluded))

    _execute(session, model, rows, on_conflict, key)


def _execute(session: Session, model, rows: list[dict[str, Any]], finish, key: list[str] | None = None) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect
    table = model.__table__
    columns = list(rows[0])
    # Columns the rows leave out but the model fills in (timestamps, empty JSON): an
    # INSERT ... SELECT gets no per-row Python defaults, so they are computed here, once per
    # call (as SQLAlchemy would for one INSERT ... SELECT).
    defaults = {column.name: column.default.arg(None) if column.default.is_callable else column.default.arg
                for column in table.columns
                if column.name not in rows[0] and column.default is not None and not column.default.is_sequence
                and not column.default.is_clause_element}
    names = columns + list(defaults)
    values = [[row.get(column) for column in columns] + list(defaults.values()) for row in rows]
    if dialect.name == "postgresql":
        if key and len({tuple(row.get(name) for name in key) for row in rows}) < len(rows):
            session.execute(finish(postgresql.insert(table)), [dict(zip(names, value)) for value in values])
            return
        document = json.dumps([dict(zip(names, value)) for value in values], separators=(",", ":"),
                              default=_json_value, ensure_ascii=False)
        source = func.json_to_recordset(cast(bindparam("rows", type_=Text), postgresql.JSON)).table_valued(
            *[column(name, table.c[name].type) for name in names]).render_derived(name="batch", with_types=True)
        statement = finish(postgresql.insert(table).from_select(names, select(*source.c)))
        session.execute(statement, {"rows": document})
        return
    for index, name in enumerate(names):
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            for value in values:
                value[index] = process(value[index])
    element = literal_column("value")
    source = select(*[func.json_extract(element, literal_column(f"'$[{index}]'")) for index in range(len(names))]) \
        .select_from(func.json_each(bindparam("rows"))).where(true())  # WHERE: SQLite's ON CONFLICT needs one
    statement = finish(sqlite.insert(table).from_select(names, source))
    session.execute(statement, {"rows": json.dumps(values, separators=(",", ":"), ensure_ascii=False)})


def _json_value(value: Any) -> str:
    """Values JSON has no type for, as text PostgreSQL reads back into the column's type."""
    if isinstance(value, datetime):
        return to_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a bulk write")


def greatest(session: Session, *values):
    """SQL max of values: GREATEST on PostgreSQL, the scalar max() on SQLite."""
    return (func.greatest if session.get_bind().dialect.name == "postgresql" else func.max)(*values)


def least(session: Session, *values):
    return (func.least if session.get_bind().dialect.name == "postgresql" else func.min)(*values)
