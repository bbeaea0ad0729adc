"""organisation boundary: footage, holds and SARs belong to an organisation; derived copies
name every recording they were made from

- ``sites``: a site (estate, building) and the organisation that runs its cameras.
- ``sources.organisation``: the organisation whose footage a source records (NULL: the vault's
  own organisation, ``settings.organisation``; in a vault with none set, a single-organisation
  vault, every organisation's).
- ``recording_origins``: for each derived recording (clip, redacted copy, export package), every
  *original* recording it was made from, flattened through derived parents. A derived
  recording is visible only to those who may see every origin (``vault/casework/policy.py``).
  Filled here from each derived recording's provenance.
- ``holds.organisation`` and ``subject_access_requests.organisation``: the organisation whose
  hold / request it is (filled from the creator's user row, else the case's owner).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 06:00:00
"""
from __future__ import annotations

import json
from typing import Any

from alembic import op
import sqlalchemy as sa
import vault.storage.catalog


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sites',
        sa.Column('name', sa.String(length=256), nullable=False),
        sa.Column('organisation', sa.String(length=256), nullable=False),
        sa.Column('created_at', vault.storage.catalog.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_sites')),
    )
    with op.batch_alter_table('sources') as batch:
        batch.add_column(sa.Column('organisation', sa.String(length=256), nullable=True))
        batch.create_index('ix_sources_organisation', ['organisation'], unique=False)
    op.create_table(
        'recording_origins',
        sa.Column('recording_id', sa.String(length=36), nullable=False),
        sa.Column('origin_id', sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'],
                                name=op.f('fk_recording_origins_recording_id_recordings')),
        sa.ForeignKeyConstraint(['origin_id'], ['recordings.id'],
                                name=op.f('fk_recording_origins_origin_id_recordings')),
        sa.PrimaryKeyConstraint('recording_id', 'origin_id', name=op.f('pk_recording_origins')),
    )
    op.create_index('ix_recording_origins_origin_id', 'recording_origins', ['origin_id'])
    with op.batch_alter_table('holds') as batch:
        batch.add_column(sa.Column('organisation', sa.String(length=256), nullable=True))
        batch.create_index('ix_holds_organisation', ['organisation'], unique=False)
    with op.batch_alter_table('subject_access_requests') as batch:
        batch.add_column(sa.Column('organisation', sa.String(length=256), nullable=True))
        batch.create_index('ix_subject_access_requests_organisation', ['organisation'],
                           unique=False)
    _backfill()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _backfill() -> None:
    conn = op.get_bind()
    recordings = sa.table('recordings', sa.column('id', sa.String),
                          sa.column('parent_id', sa.String), sa.column('provenance', sa.JSON))
    origins = sa.table('recording_origins', sa.column('recording_id', sa.String),
                       sa.column('origin_id', sa.String))
    rows = conn.execute(sa.select(recordings.c.id, recordings.c.parent_id,
                                  recordings.c.provenance)).all()
    parents = {rid: (parent, _json(prov) or {}) for rid, parent, prov in rows}

    def direct(rid: str) -> list[str]:
        parent, prov = parents[rid]
        named = prov.get('recording_ids') or [s.get('id') for s in prov.get('sources') or ()
                                              if isinstance(s, dict)]
        found = [str(x) for x in named if x and str(x) in parents]
        if parent and parent not in found:
            found.append(parent)
        return found

    def flatten(rid: str, seen: frozenset[str] = frozenset()) -> set[str]:
        out: set[str] = set()
        for p in direct(rid):
            if p in seen:
                continue
            out |= flatten(p, seen | {rid}) if direct(p) else {p}
        return out

    for rid, (parent, _prov) in parents.items():
        if parent is None:
            continue
        for origin in sorted(flatten(rid)):
            conn.execute(origins.insert().values(recording_id=rid, origin_id=origin))

    users = sa.table('users', sa.column('name', sa.String), sa.column('organisation', sa.String))
    orgs = dict(conn.execute(sa.select(users.c.name, users.c.organisation)).all())
    owners: dict[str, str] = dict(
        conn.execute(sa.text('SELECT case_id, organisation FROM case_owners')).all())
    holds = sa.table('holds', sa.column('id', sa.String), sa.column('case_id', sa.String),
                     sa.column('created_by', sa.String), sa.column('organisation', sa.String))
    for hid, case_id, by in conn.execute(
            sa.select(holds.c.id, holds.c.case_id, holds.c.created_by)).all():
        org = owners.get(case_id) or orgs.get(by)
        if org:
            conn.execute(holds.update().where(holds.c.id == hid).values(organisation=org))
    sars = sa.table('subject_access_requests', sa.column('id', sa.String),
                    sa.column('created_by', sa.String), sa.column('organisation', sa.String))
    for sid, by in conn.execute(sa.select(sars.c.id, sars.c.created_by)).all():
        if orgs.get(by):
            conn.execute(sars.update().where(sars.c.id == sid).values(organisation=orgs[by]))


def downgrade() -> None:
    with op.batch_alter_table('subject_access_requests') as batch:
        batch.drop_index('ix_subject_access_requests_organisation')
        batch.drop_column('organisation')
    with op.batch_alter_table('holds') as batch:
        batch.drop_index('ix_holds_organisation')
        batch.drop_column('organisation')
    op.drop_index('ix_recording_origins_origin_id', table_name='recording_origins')
    op.drop_table('recording_origins')
    with op.batch_alter_table('sources') as batch:
        batch.drop_index('ix_sources_organisation')
        batch.drop_column('organisation')
    op.drop_table('sites')
