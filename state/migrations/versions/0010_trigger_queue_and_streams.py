"""trigger queue and streams

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import state.types


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('queued_changes',
    sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('job', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('object', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('occurred_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('queued_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('crm', 'job', 'object', 'record_id')
    )
    op.create_index('ix_queued_changes_job', 'queued_changes', ['crm', 'job', 'queued_at'], unique=False)
    op.create_table('trigger_streams',
    sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('position', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('position_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('connected_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_event_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lag_seconds', sa.Float(), nullable=True),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('instance', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('updated_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('crm', 'channel')
    )


def downgrade() -> None:
    op.drop_table('trigger_streams')
    op.drop_index('ix_queued_changes_job', table_name='queued_changes')
    op.drop_table('queued_changes')
