"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import state.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cursors',
    sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('stream', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('updated_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('crm', 'stream')
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('object', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index('ix_dead_letters_status_id', ['status', 'id'], unique=False)

    op.create_table('identities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visitor_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('first_seen_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'value', 'visitor_id', name='uq_identities_kind_value_visitor')
    )
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.create_index('ix_identities_visitor', ['visitor_id'], unique=False)

    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('instance', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('started_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('records_read', sa.Integer(), nullable=False),
    sa.Column('records_written', sa.Integer(), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.create_index('ix_job_runs_job_started', ['job', 'started_at'], unique=False)

    op.create_table('lead_sync',
    sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('object', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('record_created_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_seen_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_checked_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_written_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('visitor_ids', sa.JSON(), nullable=False),
    sa.Column('written', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('crm', 'object', 'record_id')
    )
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('event_name', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', state.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_status_id', ['status', 'id'], unique=False)

    op.create_table('touchpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visitor_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('occurred_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('received_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
    sa.Column('referrer', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
    sa.Column('utm_source', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('utm_medium', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('utm_campaign', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('utm_term', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('utm_content', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('utm_id', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('utm_source_platform', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('gclid', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('gbraid', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('wbraid', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('fbclid', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('msclkid', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('ttclid', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('li_fat_id', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('ga_client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('ga_session_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=35), nullable=True),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
    sa.Column('conversion_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('consent', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('touchpoints', schema=None) as batch_op:
        batch_op.create_index('ix_touchpoints_visitor_time', ['visitor_id', 'occurred_at'], unique=False)

    op.create_table('visitors',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('first_seen_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ga_client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('consent', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('visitors')
    with op.batch_alter_table('touchpoints', schema=None) as batch_op:
        batch_op.drop_index('ix_touchpoints_visitor_time')

    op.drop_table('touchpoints')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_status_id')

    op.drop_table('outbox')
    op.drop_table('lead_sync')
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_job_runs_job_started')

    op.drop_table('job_runs')
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.drop_index('ix_identities_visitor')

    op.drop_table('identities')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index('ix_dead_letters_status_id')

    op.drop_table('dead_letters')
    op.drop_table('cursors')
