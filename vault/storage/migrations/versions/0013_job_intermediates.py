"""job intermediates: a job's encrypted work product another job picks up (a chunked
render's rendered chunks; vault/casework/intermediates.py)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 21:30:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import vault.storage.catalog


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_intermediates',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('owner_job_id', sa.String(length=36), nullable=False),
    sa.Column('made_by_job_id', sa.String(length=36), nullable=False),
    sa.Column('recording_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('object_key', sa.String(length=256), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('stored_size', sa.BigInteger(), nullable=False),
    sa.Column('wrapped_dek', sa.LargeBinary(), nullable=False),
    sa.Column('key_id', sa.String(length=128), nullable=False),
    sa.Column('created_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['made_by_job_id'], ['jobs.id'], ),
    sa.ForeignKeyConstraint(['owner_job_id'], ['jobs.id'], ),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_intermediates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_intermediates_owner_job_id'), ['owner_job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_intermediates_recording_id'), ['recording_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job_intermediates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_intermediates_recording_id'))
        batch_op.drop_index(batch_op.f('ix_job_intermediates_owner_job_id'))
    op.drop_table('job_intermediates')
