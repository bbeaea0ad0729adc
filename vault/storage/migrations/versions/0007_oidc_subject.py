"""oidc subject: a vault user signs in through an identity provider by issuer + subject

``oidc_links`` binds a vault user to an OpenID Connect account by its issuer (``iss``) and
subject (``sub``), the pair OpenID Connect Core 1.0 section 5.7 calls the only stable
identifier; before this, users were matched by the changeable ``preferred_username`` claim
(issue #11 finding 10). A row with no subject is a first-use bind an administrator allowed
until ``bind_until``.

Upgrading links nobody: a user who signed in through the provider before needs
``evidence-vault admin user link-oidc NAME --issuer ISS --subject SUB`` (or ``allow-oidc`` for
one first-use bind) before their next provider sign-in. Vault API tokens are unaffected.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 06:00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import vault.storage.catalog


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'oidc_links',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('issuer', sa.String(length=512), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=True),
        sa.Column('created_by', sa.String(length=256), nullable=True),
        sa.Column('created_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=False),
        sa.Column('bind_until', vault.storage.catalog.UTCDateTime(timezone=True), nullable=True),
        sa.Column('bound_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('issuer', 'subject', name='uq_oidc_links_issuer_subject'),
        sa.UniqueConstraint('user_id', 'issuer', name='uq_oidc_links_user_issuer'),
    )
    with op.batch_alter_table('oidc_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_links_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('oidc_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_links_user_id'))
    op.drop_table('oidc_links')
