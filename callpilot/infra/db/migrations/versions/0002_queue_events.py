"""queue events: the durable twin of the Asterisk-style queue_log (acd.queue_events)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 11:47:54.130684
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table('queue_events'):
        return      # made by create_all (with its indexes) before this revision ran
    op.create_table('queue_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('call_id', sa.String(length=64), nullable=True),
        sa.Column('queue', sa.String(length=64), nullable=True),
        sa.Column('agent', sa.String(length=64), nullable=True),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('queue_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_queue_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_queue_events_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_queue_events_queue'), ['queue'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('queue_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_queue_events_queue'))
        batch_op.drop_index(batch_op.f('ix_queue_events_call_id'))
        batch_op.drop_index(batch_op.f('ix_queue_events_at'))
    op.drop_table('queue_events')
