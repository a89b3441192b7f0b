"""calendars (closed days, opening hours), survey responses, queue opening hours and survey flow

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:07:12.645503
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('calendars',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('survey_responses',
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('question', sa.String(length=32), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('agent', sa.String(length=32), nullable=True),
    sa.Column('queue', sa.String(length=64), nullable=True),
    sa.Column('flow', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('call_id', 'question')
    )
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_responses_agent'), ['agent'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_responses_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_responses_queue'), ['queue'], unique=False)

    op.create_table('calendar_days',
    sa.Column('calendar', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['calendar'], ['calendars.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('calendar', 'day')
    )
    op.create_table('calendar_hours',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('calendar', sa.String(length=64), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('opens', sa.String(length=5), nullable=False),
    sa.Column('closes', sa.String(length=5), nullable=False),
    sa.ForeignKeyConstraint(['calendar'], ['calendars.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('calendar_hours', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_hours_calendar'), ['calendar'], unique=False)

    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calendar', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('closed_queue', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('closed_message', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('survey_flow', sa.String(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.drop_column('survey_flow')
        batch_op.drop_column('closed_message')
        batch_op.drop_column('closed_queue')
        batch_op.drop_column('calendar')

    with op.batch_alter_table('calendar_hours', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendar_hours_calendar'))

    op.drop_table('calendar_hours')
    op.drop_table('calendar_days')
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_responses_queue'))
        batch_op.drop_index(batch_op.f('ix_survey_responses_at'))
        batch_op.drop_index(batch_op.f('ix_survey_responses_agent'))

    op.drop_table('survey_responses')
    op.drop_table('calendars')
