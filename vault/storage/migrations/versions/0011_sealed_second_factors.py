"""sealed second factors: TOTP secrets wrapped by the key-encryption key (issue #12 item 10)

``user_credentials.totp_key_id``, ``totp_wrapped_key`` and ``totp_sealed``
(vault/access/credentials.py check 7). Rows with a plaintext ``totp_secret`` keep working and are
sealed at their next accepted code or by ``keys rewrap`` (check 8): sealing needs the key
provider, which a migration does not open.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 09:45:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('user_credentials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_key_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('totp_wrapped_key', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('totp_sealed', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # Sealed secrets cannot go back into the plaintext column without the key provider:
    # users whose second factor was sealed enrol again after a downgrade.
    with op.batch_alter_table('user_credentials', schema=None) as batch_op:
        batch_op.drop_column('totp_sealed')
        batch_op.drop_column('totp_wrapped_key')
        batch_op.drop_column('totp_key_id')
