"""Bulk INSERT and INSERT ... ON CONFLICT for SQLite and PostgreSQL alike.

On PostgreSQL the rows are bound as parameters of one cached statement (psycopg's
executemany). On SQLite that would run the statement once per row, and the sqlite3 driver
releases and re-takes the GIL around every row: in a busy process (the collector answering
thousands of beacons a second) each re-take waits behind the other threads, and a 500-row
batch crawled at about 1,000 rows/s. So on SQLite the whole batch travels as one JSON array
and one ``INSERT ... SELECT ... FROM json_each(?)`` statement stores it in a single step,
inside SQLite, without the GIL: about ten times faster, and the other threads run meanwhile.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from sqlalchemy import bindparam, func, literal_column, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session


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

    _execute(session, model, rows, on_conflict)


def _execute(session: Session, model, rows: list[dict[str, Any]], finish) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect
    columns = list(rows[0])
    if dialect.name == "postgresql":
        statement = finish(postgresql.insert(model))
        session.execute(statement, [{column: row.get(column) for column in columns} for row in rows])
        return
    table = model.__table__
    # Columns the rows leave out but the model fills in (timestamps, empty JSON): an
    # INSERT ... SELECT gets no per-row Python defaults, so they are computed here, once per
    # call (as SQLAlchemy would for one INSERT ... SELECT).
    defaults = {column.name: column.default.arg(None) if column.default.is_callable else column.default.arg
                for column in table.columns
                if column.name not in rows[0] and column.default is not None and not column.default.is_sequence
                and not column.default.is_clause_element}
    names = columns + list(defaults)
    processors = [table.c[name].type._cached_bind_processor(dialect) for name in names]
    values = [[row.get(column) for column in columns] + list(defaults.values()) for row in rows]
    for index, process in enumerate(processors):
        if process is not None:
            for value in values:
                value[index] = process(value[index])
    element = literal_column("value")
    source = select(*[func.json_extract(element, literal_column(f"'$[{index}]'")) for index in range(len(names))]) \
        .select_from(func.json_each(bindparam("rows"))).where(true())  # WHERE: SQLite's ON CONFLICT needs one
    statement = finish(sqlite.insert(table).from_select(names, source))
    session.execute(statement, {"rows": json.dumps(values, separators=(",", ":"))})


def greatest(session: Session, *values):
    """SQL max of values: GREATEST on PostgreSQL, the scalar max() on SQLite."""
    return (func.greatest if session.get_bind().dialect.name == "postgresql" else func.max)(*values)


def least(session: Session, *values):
    return (func.least if session.get_bind().dialect.name == "postgresql" else func.min)(*values)
