"""ledger integrity: no schema change

Issue #11 findings 13-18 need no new table or column: the per-vault log origin is a
``vault_meta`` row (``ledger_origin``, since 0001) written by ``init``, and each recording's
catalog record travels in its creating custody event's details. This revision only keeps the
chain 0008 -> 0010 whole.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 06:00:00
"""
from __future__ import annotations

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
