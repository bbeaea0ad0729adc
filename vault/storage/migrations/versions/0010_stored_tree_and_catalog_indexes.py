"""custody ledger and catalog at council scale (issue #15): the stored Merkle tree
(custody_tree_nodes, filled in lazily for existing ledgers by vault.ledger.stored_tree); the object
index by seq (incremental verify); partial indexes on live recordings for search order, window
bounds and the reaper, and the hold and case-link lookups of retention

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 09:30:00
"""
from __future__ import annotations

from typing import Any

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing ledgers get their nodes on first use (vault.ledger.stored_tree.catch_up, in committed
    # batches), not here: a migration run inside one transaction would hold the catalog for
    # as long as a large ledger takes to rehash.
    op.create_table('custody_tree_nodes',
    sa.Column('level', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('level', 'idx'),
    sqlite_with_rowid=False,
    )
    # Verify streams the object index in seq order from any point (incremental verify).
    with op.batch_alter_table('custody_event_objects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_custody_event_objects_seq'), ['seq'], unique=False)
    live: dict[str, Any] = {'sqlite_where': sa.text('deleted_at IS NULL'),
                            'postgresql_where': sa.text('deleted_at IS NULL')}
    op.drop_index('ix_recordings_retain_until', table_name='recordings')
    op.create_index('ix_recordings_live_start', 'recordings', ['captured_start', 'id'], **live)
    op.create_index('ix_recordings_live_source_start', 'recordings',
                    ['source_id', 'captured_start', 'id'], **live)
    op.create_index('ix_recordings_live_source_end', 'recordings',
                    ['source_id', sa.text('coalesce(captured_end, captured_start)')], **live)
    op.create_index('ix_recordings_live_retain_until', 'recordings', ['retain_until'], **live)
    pending = sa.text('deleted_at IS NOT NULL AND purged_at IS NULL')
    op.create_index('ix_recordings_purge_pending', 'recordings', ['deleted_at'],
                    sqlite_where=pending, postgresql_where=pending)
    op.create_index('ix_case_recordings_recording_id', 'case_recordings', ['recording_id'])
    released = sa.text('released_at IS NULL')
    op.create_index('ix_holds_active_source', 'holds', ['source_id', 'window_start'],
                    sqlite_where=released, postgresql_where=released)


def downgrade() -> None:
    op.drop_index('ix_holds_active_source', table_name='holds')
    op.drop_index('ix_case_recordings_recording_id', table_name='case_recordings')
    for name in ('ix_recordings_purge_pending', 'ix_recordings_live_retain_until',
                 'ix_recordings_live_source_end', 'ix_recordings_live_source_start',
                 'ix_recordings_live_start'):
        op.drop_index(name, table_name='recordings')
    op.create_index('ix_recordings_retain_until', 'recordings', ['retain_until'])
    with op.batch_alter_table('custody_event_objects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_custody_event_objects_seq'))
    op.drop_table('custody_tree_nodes')
