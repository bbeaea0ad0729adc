"""jobs: background work (redaction plans and renders, exports, retention runs)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import vault.storage.catalog


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_KINDS = ('REDACTION_PLAN', 'REDACTION_RENDER', 'REDACT', 'EXPORT', 'RETENTION')
_STATES = ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.Enum(*_KINDS, name='jobkind', native_enum=False, length=32), nullable=False),
    sa.Column('state', sa.Enum(*_STATES, name='jobstate', native_enum=False, length=16), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('message', sa.String(length=512), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('plan', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_role', sa.String(length=32), nullable=False),
    sa.Column('created_org', sa.String(length=256), nullable=True),
    sa.Column('client_addr', sa.String(length=256), nullable=True),
    sa.Column('created_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=256), nullable=True),
    sa.Column('parent_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['jobs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_state_created', ['state', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_parent_id'), ['parent_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_parent_id'))
        batch_op.drop_index('ix_jobs_state_created')

    op.drop_table('jobs')
