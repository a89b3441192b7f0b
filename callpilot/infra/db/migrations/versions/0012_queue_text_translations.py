"""queue texts per language (periodic announcement, closed message)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 19:10:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('periodic_announce_translations', sa.JSON(), server_default='{}',
                                      nullable=False))
        batch_op.add_column(sa.Column('closed_message_translations', sa.JSON(), server_default='{}',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.drop_column('closed_message_translations')
        batch_op.drop_column('periodic_announce_translations')
