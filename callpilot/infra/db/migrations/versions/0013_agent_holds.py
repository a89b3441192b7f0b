"""agents and settings shared by the nodes on one database: which node is using an agent,
whether it is logged in or paused, what the admin web changed, each node's live picture

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 06:45:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agent_holds',
        sa.Column('agent', sa.String(length=32), nullable=False),
        sa.Column('call_id', sa.String(length=128), nullable=True),
        sa.Column('node', sa.String(length=64), nullable=False),
        sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('renewed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('agent'),
    )
    op.create_table(
        'agent_presence',
        sa.Column('agent', sa.String(length=32), nullable=False),
        sa.Column('presence', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('node', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('agent'),
    )

    op.create_table(
        'config_changes',
        sa.Column('what', sa.String(length=32), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('what'),
    )

    op.create_table(
        'node_status',
        sa.Column('node', sa.String(length=64), nullable=False),
        sa.Column('snapshot', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('node'),
    )


def downgrade() -> None:
    op.drop_table('node_status')
    op.drop_table('config_changes')
    op.drop_table('agent_presence')
    op.drop_table('agent_holds')
