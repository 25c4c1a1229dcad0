"""ad platform conversions: outbox destinations, Consent Mode signals, the conversion ledger

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import state.types


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('destination', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                   server_default='ga4'))
        batch.add_column(sa.Column('first_sent_at', state.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('outbox') as batch:
        batch.alter_column('destination', server_default=None)
    op.create_index('ix_outbox_destination_status_id', 'outbox', ['destination', 'status', 'id'], unique=False)
    with op.batch_alter_table('touchpoints') as batch:
        batch.add_column(sa.Column('ad_user_data', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
        batch.add_column(sa.Column('ad_personalization', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
    op.create_table('ad_conversions',
    sa.Column('destination', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('occurred_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('match_keys', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('consent', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('sent_value', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
    sa.Column('restatements', sa.Integer(), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.Column('first_seen_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('destination', 'crm', 'record_id', 'stage')
    )


def downgrade() -> None:
    op.drop_table('ad_conversions')
    with op.batch_alter_table('touchpoints') as batch:
        batch.drop_column('ad_personalization')
        batch.drop_column('ad_user_data')
    op.drop_index('ix_outbox_destination_status_id', table_name='outbox')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('first_sent_at')
        batch.drop_column('destination')
