"""identity trust: when each link was first received; which of a record's devices are trusted

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

Rows written before this keep every device in ``visitor_ids`` (all trusted, as before) until
the enrich job sees their record again; identities without ``first_received_at`` are ordered by
``first_seen_at``.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import state.types


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_received_at', state.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('lead_sync', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claims', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('converting_visitor_id', sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))
        batch_op.add_column(sa.Column('converting_client_id', sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('lead_sync', schema=None) as batch_op:
        batch_op.drop_column('converting_client_id')
        batch_op.drop_column('converting_visitor_id')
        batch_op.drop_column('claims')
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.drop_column('first_received_at')
