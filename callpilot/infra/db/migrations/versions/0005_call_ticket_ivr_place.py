"""call records keep their routing ticket, IVR place and hang-up cause

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('call_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ticket', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('ivr_place', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('hangup_cause', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('call_records', schema=None) as batch_op:
        batch_op.drop_column('hangup_cause')
        batch_op.drop_column('ivr_place')
        batch_op.drop_column('ticket')
