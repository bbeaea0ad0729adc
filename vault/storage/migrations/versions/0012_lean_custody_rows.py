"""a leaner custody ledger row (issue #15 item 4): storage layout 2 (vault/ledger/tables.py,
docs/decisions/0009-ledger-storage-layout-2.md). Entry format v1 is unchanged; only where its
bytes are kept changes.

``custody_events`` is rebuilt: the entry once, compressed (codec byte + raw DEFLATE with a
preset dictionary), the MAC as 32 raw bytes, ``ts`` as integer microseconds, a
``binds_catalog`` flag; ``prev_hash``, ``entry_hash``, ``leaf_hash`` (derivable from the entry)
and ``event_id`` (in the entry, never queried) are dropped with their indexes. On SQLite,
``seq`` becomes the rowid and ``custody_event_objects`` a WITHOUT ROWID table.

Rows are converted in batches of 5,000 (memory stays one batch) inside the migration's one
transaction, so a failure leaves the old table as it was. The dropped columns were checked by
``custody verify`` against the entry; so that dropping them cannot hide a tampered one, each
is checked here the same way first, and a row whose copy disagrees stops the upgrade
(LedgerError naming its seq; nothing changes): run ``custody verify`` with the release before
this one and deal with what it reports.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 13:00:00
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from alembic import op
import sqlalchemy as sa

from vault.errors import LedgerError
from vault.ledger.tables import Micros, binds_catalog, pack_entry, unpack_entry


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_BATCH = 5000
_SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_HAS_REFERENCE = sa.text('reference IS NOT NULL')

_V1 = sa.table(
    'custody_events',
    sa.column('seq', sa.BigInteger()), sa.column('event_id', sa.String()),
    sa.column('ts', sa.DateTime()), sa.column('action', sa.String()),
    sa.column('actor', sa.String()), sa.column('reference', sa.String()),
    sa.column('payload', sa.Text()), sa.column('prev_hash', sa.String()),
    sa.column('entry_hash', sa.String()), sa.column('leaf_hash', sa.String()),
    sa.column('entry_mac', sa.String()),
)


def _v2(name: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column('seq', sa.BigInteger()), sa.column('entry', sa.LargeBinary()),
        sa.column('entry_mac', sa.LargeBinary()), sa.column('ts', Micros()),
        sa.column('action', sa.String()), sa.column('actor', sa.String()),
        sa.column('reference', sa.String()), sa.column('binds_catalog', sa.SmallInteger()),
    )


def _batches(conn: sa.Connection, source: sa.TableClause, columns: list[str]
             ) -> Any:
    """The rows of ``source`` in seq order, a batch at a time (keyset: no offset rescans)."""
    last = -1
    while True:
        rows = conn.execute(
            sa.select(*(source.c[c] for c in columns))
            .where(source.c.seq > last).order_by(source.c.seq).limit(_BATCH)
        ).all()
        if not rows:
            return
        yield rows
        last = rows[-1].seq


def _check_dropped(row: Any, payload: bytes) -> None:
    """The columns being dropped say what the entry says (verify's old checks 3, 4 and 6)."""
    problems = []
    if row.entry_hash != hashlib.sha256(payload).hexdigest():
        problems.append('entry_hash')
    if row.leaf_hash != hashlib.sha256(b'\x00' + payload).hexdigest():
        problems.append('leaf_hash')
    try:
        data = json.loads(payload)
        prev, event_id = data['prev'], data['event']['event_id']
    except (ValueError, KeyError, TypeError):
        prev = event_id = None  # a corrupt entry is kept as is: custody verify names it
    if prev is not None and row.prev_hash != prev:
        problems.append('prev_hash')
    if event_id is not None and row.event_id != event_id:
        problems.append('event_id')
    if problems:
        raise LedgerError(
            f"custody event {row.seq}'s {', '.join(problems)} column differs from its entry:"
            " the ledger was altered. Nothing was migrated; run 'evidence-vault custody verify'"
            " with the previous release and resolve what it reports before upgrading",
            seq=row.seq,
        )


def _mac_bytes(value: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except (ValueError, TypeError):
        return str(value).encode('utf-8')  # not hex: kept, so verify reports a bad MAC


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def upgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == 'sqlite'
    op.create_table('custody_events_v2',
    sa.Column('seq', _SEQ, autoincrement=False, nullable=False),
    sa.Column('entry', sa.LargeBinary(), nullable=False),
    sa.Column('entry_mac', sa.LargeBinary(length=32), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=256), nullable=False),
    sa.Column('reference', sa.String(length=256), nullable=True),
    sa.Column('binds_catalog', sa.SmallInteger(), nullable=True),
    sa.PrimaryKeyConstraint('seq', name='custody_events_v2_pkey'),
    )
    target = _v2('custody_events_v2')
    columns = ['seq', 'event_id', 'ts', 'action', 'actor', 'reference', 'payload', 'prev_hash',
               'entry_hash', 'leaf_hash', 'entry_mac']
    for rows in _batches(conn, _V1, columns):
        out = []
        for row in rows:
            payload = row.payload.encode('utf-8')
            _check_dropped(row, payload)
            out.append({
                'seq': row.seq, 'entry': pack_entry(payload),
                'entry_mac': _mac_bytes(row.entry_mac), 'ts': _aware(row.ts),
                'action': row.action, 'actor': row.actor, 'reference': row.reference,
                'binds_catalog': binds_catalog(row.action, payload),
            })
        conn.execute(sa.insert(target), out)
    op.drop_table('custody_events')
    op.rename_table('custody_events_v2', 'custody_events')
    if not sqlite:
        op.execute('ALTER INDEX custody_events_v2_pkey RENAME TO custody_events_pkey')
    op.create_index('ix_custody_events_ts', 'custody_events', ['ts'])
    op.create_index('ix_custody_events_action', 'custody_events', ['action'])
    op.create_index('ix_custody_events_actor', 'custody_events', ['actor'])
    op.create_index('ix_custody_events_reference', 'custody_events', ['reference'],
                    sqlite_where=_HAS_REFERENCE, postgresql_where=_HAS_REFERENCE)
    if sqlite:
        _rebuild_links(with_rowid=False)


def _rebuild_links(*, with_rowid: bool) -> None:
    # SQLite cannot change a table's rowid-ness in place: copy it (one statement, no rows in
    # Python), then swap.
    op.create_table('custody_event_objects_new',
    sa.Column('object_id', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('object_id', 'seq'),
    sqlite_with_rowid=with_rowid,
    )
    op.execute('INSERT INTO custody_event_objects_new (object_id, seq)'
               ' SELECT object_id, seq FROM custody_event_objects')
    op.drop_table('custody_event_objects')
    op.rename_table('custody_event_objects_new', 'custody_event_objects')
    op.create_index('ix_custody_event_objects_seq', 'custody_event_objects', ['seq'])


def downgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == 'sqlite'
    op.create_table('custody_events_v1',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('ts', sa.DateTime(), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=256), nullable=False),
    sa.Column('reference', sa.String(length=256), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.Column('leaf_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_mac', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name='custody_events_v1_pkey'),
    sa.UniqueConstraint('event_id'),
    )
    target = sa.table('custody_events_v1', *(sa.column(c.name, c.type) for c in _V1.columns))
    source = _v2('custody_events')
    columns = ['seq', 'entry', 'entry_mac', 'ts', 'action', 'actor', 'reference']
    for rows in _batches(conn, source, columns):
        out = []
        for row in rows:
            payload = unpack_entry(row.entry, row.seq)
            data = json.loads(payload)
            out.append({
                'seq': row.seq, 'event_id': data['event']['event_id'],
                'ts': row.ts.astimezone(dt.UTC).replace(tzinfo=None), 'action': row.action,
                'actor': row.actor, 'reference': row.reference,
                'payload': payload.decode('utf-8'), 'prev_hash': data['prev'],
                'entry_hash': hashlib.sha256(payload).hexdigest(),
                'leaf_hash': hashlib.sha256(b'\x00' + payload).hexdigest(),
                'entry_mac': bytes(row.entry_mac).hex(),
            })
        conn.execute(sa.insert(target), out)
    op.drop_table('custody_events')
    op.rename_table('custody_events_v1', 'custody_events')
    if not sqlite:
        op.execute('ALTER INDEX custody_events_v1_pkey RENAME TO custody_events_pkey')
    for name in ('action', 'actor', 'reference', 'ts'):
        op.create_index(f'ix_custody_events_{name}', 'custody_events', [name])
    if sqlite:
        _rebuild_links(with_rowid=True)
