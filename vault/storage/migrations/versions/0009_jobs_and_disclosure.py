"""jobs and disclosure: worker heartbeats (job_workers, for /readyz) and the reason a SAR
disclosure crossed a safety rail (sar_disclosures.override_reason)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 06:00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import vault.storage.catalog


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_workers',
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('kinds', sa.JSON(), nullable=False),
    sa.Column('threads', sa.Integer(), nullable=False),
    sa.Column('started_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=False),
    sa.Column('seen_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_workers_seen_at'), ['seen_at'], unique=False)
    with op.batch_alter_table('sar_disclosures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('override_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sar_disclosures', schema=None) as batch_op:
        batch_op.drop_column('override_reason')
    with op.batch_alter_table('job_workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_workers_seen_at'))
    op.drop_table('job_workers')
