"""device clock: the device's stated time at hand-over, its offset and flag, as columns

Ingest agents already recorded the clock check in ``media_info["clock"]``; these columns make
it searchable (``GET /recordings?clock_flagged=true``) and are filled from it for recordings
ingested before this revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 16:10:00
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from alembic import op
import sqlalchemy as sa
import vault.storage.catalog


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recordings') as batch:
        batch.add_column(sa.Column('device_time', vault.storage.catalog.UTCDateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('clock_offset_ms', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('clock_flagged', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.create_index('ix_recordings_clock_flagged', ['clock_flagged'], unique=False)
    with op.batch_alter_table('recordings') as batch:
        batch.alter_column('clock_flagged', server_default=None)
    _backfill()


def _backfill() -> None:
    conn = op.get_bind()
    recordings = sa.table('recordings', sa.column('id', sa.String),
                          sa.column('media_info', sa.JSON),
                          sa.column('device_time', vault.storage.catalog.UTCDateTime(timezone=True)),
                          sa.column('clock_offset_ms', sa.BigInteger),
                          sa.column('clock_flagged', sa.Boolean))
    rows = conn.execute(sa.select(recordings.c.id, recordings.c.media_info)
                        .where(recordings.c.media_info.is_not(None))).all()
    for rid, info in rows:
        if isinstance(info, str):
            info = json.loads(info)
        clock: dict[str, Any] = (info or {}).get('clock') or {}
        if not clock:
            continue
        device = clock.get('device_time')
        offset = clock.get('offset_s')
        conn.execute(recordings.update().where(recordings.c.id == rid).values(
            device_time=dt.datetime.fromisoformat(device) if device else None,
            clock_offset_ms=None if offset is None else round(float(offset) * 1000),
            clock_flagged=bool(clock.get('flagged'))))


def downgrade() -> None:
    with op.batch_alter_table('recordings') as batch:
        batch.drop_index('ix_recordings_clock_flagged')
        batch.drop_column('clock_flagged')
        batch.drop_column('clock_offset_ms')
        batch.drop_column('device_time')
