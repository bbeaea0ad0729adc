"""web credentials: local users' password hashes and TOTP second factors, and web sessions

``user_credentials`` (vault/access/credentials.py) and ``web_sessions`` (vault/access/web_sessions.py), for
the officers' web app. Sessions live in the catalog so every API instance sees the same ones.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 06:00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import vault.storage.catalog


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'user_credentials',
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('password_hash', sa.String(length=256), nullable=True),
        sa.Column('password_set_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=True),
        sa.Column('totp_secret', sa.String(length=64), nullable=True),
        sa.Column('totp_confirmed_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=True),
        sa.Column('totp_last_step', sa.BigInteger(), nullable=True),
        sa.Column('failed_attempts', sa.Integer(), nullable=False),
        sa.Column('locked_until', vault.storage.catalog.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
        sa.PrimaryKeyConstraint('user_id'),
    )
    op.create_table(
        'web_sessions',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('stage', sa.String(length=16), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ended_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=True),
        sa.Column('end_reason', sa.String(length=32), nullable=True),
        sa.Column('client_addr', sa.String(length=64), nullable=True),
        sa.Column('purposes', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_sessions_user_id'))
    op.drop_table('web_sessions')
    op.drop_table('user_credentials')
