"""queue callback offer settings (admin web)

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-01 16:10:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('callback_offer_after', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('callback_offer_key', sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column('callback_customer_first', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.drop_column('callback_customer_first')
        batch_op.drop_column('callback_offer_key')
        batch_op.drop_column('callback_offer_after')
