"""deal stages, per-field write times, spend by keyword

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import state.types


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deal_stages',
    sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('pipeline', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('updated_at', state.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('crm', 'stage')
    )
    # Existing rows get an empty map: their fields' write times were not kept before.
    with op.batch_alter_table('lead_sync') as batch:
        batch.add_column(sa.Column('written_at', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    # Spend may name a keyword; a campaign's spend without one is the campaign's as a whole.
    with op.batch_alter_table('spend') as batch:
        batch.add_column(sa.Column('keyword', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False,
                                   server_default=''))
        batch.drop_constraint('uq_spend_day_key', type_='unique')
        batch.create_unique_constraint('uq_spend_day_key', ['day', 'channel', 'source', 'campaign', 'keyword'])


def downgrade() -> None:
    with op.batch_alter_table('spend') as batch:
        batch.drop_constraint('uq_spend_day_key', type_='unique')
        batch.drop_column('keyword')
        batch.create_unique_constraint('uq_spend_day_key', ['day', 'channel', 'source', 'campaign'])
    with op.batch_alter_table('lead_sync') as batch:
        batch.drop_column('written_at')
    op.drop_table('deal_stages')
