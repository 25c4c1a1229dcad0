"""Alembic environment: runs on the connection the Store hands over (no alembic.ini needed)."""
from alembic import context
from sqlmodel import SQLModel

import state.models  # noqa: F401  (registers the tables)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table copies for ALTER
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
