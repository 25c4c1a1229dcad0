"""closedloop's durable state: SQLModel tables, the store (SQLite or PostgreSQL) and migrations.

``state`` imports none of closedloop's other packages.
"""
from state.store import SchemaOutdated, StateUnavailable, Store

__all__ = ["Store", "SchemaOutdated", "StateUnavailable"]
