"""remote states: per-remote pauses shared by every instance

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import state.types


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('remote_states',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('paused_since', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paused_until', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('instance', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('updated_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('remote_states')
