"""queue settings, agent skills and languages

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 11:49:50.982447
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent_skills',
    sa.Column('agent_extension', sa.String(length=32), nullable=False),
    sa.Column('skill', sa.String(length=64), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['agent_extension'], ['agents.extension'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agent_extension', 'skill')
    )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('languages', sa.JSON(), server_default='["en"]', nullable=False))

    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('skill', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('sl_target_seconds', sa.Integer(), server_default=sa.text('20'), nullable=False))
        batch_op.add_column(sa.Column('sl_target_percent', sa.Integer(), server_default=sa.text('80'), nullable=False))
        batch_op.add_column(sa.Column('max_wait_seconds', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('overflow_queue', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('join_empty', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('announce_frequency', sa.Integer(), server_default=sa.text('30'), nullable=False))
        batch_op.add_column(sa.Column('announce_position', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('periodic_announce', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('steps', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.drop_column('steps')
        batch_op.drop_column('periodic_announce')
        batch_op.drop_column('announce_position')
        batch_op.drop_column('announce_frequency')
        batch_op.drop_column('join_empty')
        batch_op.drop_column('overflow_queue')
        batch_op.drop_column('max_wait_seconds')
        batch_op.drop_column('sl_target_percent')
        batch_op.drop_column('sl_target_seconds')
        batch_op.drop_column('skill')

    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('languages')

    op.drop_table('agent_skills')
