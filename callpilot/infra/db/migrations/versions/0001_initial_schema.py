"""initial schema

Tables that already exist are left alone: databases made by ``create_all`` before migrations
existed are adopted as they are (their tables match this revision).

Revision ID: 0001
Revises: (none)
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _create(name: str, *columns) -> None:
    if not sa.inspect(op.get_bind()).has_table(name):
        op.create_table(name, *columns)


def upgrade() -> None:
    _create('agents',
        sa.Column('extension', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('sip_md5_cred', sa.String(length=32), nullable=False),
        sa.Column('birth_year', sa.Integer(), nullable=True),
        sa.Column('auto_login', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('extension')
    )
    _create('call_records',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('caller_id', sa.String(length=64), nullable=False),
        sa.Column('did', sa.String(length=32), nullable=False),
        sa.Column('flow', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('menu_path', sa.JSON(), nullable=False),
        sa.Column('journey', sa.JSON(), nullable=False),
        sa.Column('queue', sa.String(length=64), nullable=True),
        sa.Column('agent', sa.String(length=32), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.String(length=32), nullable=True),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    _create('customers',
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('birth_year', sa.Integer(), nullable=True),
        sa.Column('segment', sa.String(length=32), nullable=False),
        sa.Column('language', sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint('phone')
    )
    _create('ivr_flow_drafts',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('document', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('name')
    )
    _create('ivr_flow_versions',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('document', sa.JSON(), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('published_by', sa.String(length=64), nullable=False),
        sa.Column('comment', sa.Text(), nullable=False),
        sa.Column('rollback_of', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('name', 'version')
    )
    _create('queues',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('moh_class', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('name')
    )
    _create('queue_members',
        sa.Column('queue_name', sa.String(length=64), nullable=False),
        sa.Column('agent_extension', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['agent_extension'], ['agents.extension'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['queue_name'], ['queues.name'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('queue_name', 'agent_extension')
    )


def downgrade() -> None:
    op.drop_table('queue_members')
    op.drop_table('queues')
    op.drop_table('ivr_flow_versions')
    op.drop_table('ivr_flow_drafts')
    op.drop_table('customers')
    op.drop_table('call_records')
    op.drop_table('agents')
