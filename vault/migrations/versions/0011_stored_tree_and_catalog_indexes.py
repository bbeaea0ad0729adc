"""custody ledger and catalog at council scale (issue #15): the stored Merkle tree
(custody_tree_nodes, filled in lazily for existing ledgers by vault.stored_tree)

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-06 09:30:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing ledgers get their nodes on first use (vault.stored_tree.catch_up, in committed
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


def downgrade() -> None:
    with op.batch_alter_table('custody_event_objects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_custody_event_objects_seq'))
    op.drop_table('custody_tree_nodes')
