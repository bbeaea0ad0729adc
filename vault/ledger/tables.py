"""The custody ledger's tables, storage layout 2 (migration 0012,
docs/decisions/0009-ledger-storage-layout-2.md), and how an entry is kept in them.

The ledger's *format* is custody entry v1 (:mod:`vault.ledger.custody`): the canonical JSON that
is hashed, chained, MACed and proved, byte for byte as before. This module is only where those
bytes are kept, and it keeps each fact once:

- ``custody_events.entry``: the entry, stored as one codec byte and the codec's body
  (:func:`pack_entry`, :func:`unpack_entry`). Codec 1 is raw DEFLATE (RFC 1951) with the preset
  dictionary :data:`ENTRY_DICTIONARY_V1`, which holds the text every entry repeats (its keys,
  the common actions and roles), so a 640-byte entry takes about 260. Codec 0 is the entry
  itself. The dictionary is frozen: a new one is a new codec byte, and readers keep the old.
- ``entry_mac``: the HMAC-SHA256 of the entry, 32 raw bytes.
- no ``prev_hash``, ``entry_hash`` or ``leaf_hash``: the first is in the entry, the other two
  are hashes of it, recomputed wherever they are needed (verify recomputed them anyway).
- ``ts`` (microseconds since the Unix epoch, UTC), ``action``, ``actor`` and ``reference``:
  copies of entry fields, kept because queries filter on them (``CustodyLedger.events``: the
  API's ``user``, ``action``, ``since``/``until`` and ``reference`` filters and a case's
  history by reference; :func:`vault.casework.policy.visible_events` on ``actor``; every append
  finds the newest ``key_rotated`` on ``action``). Verify checks them against the entry.
- ``binds_catalog``: 1 when the entry may create, move or delete a recording (it names
  ``captured_start`` or ``retain_until``, or is a ``deleted`` event), else NULL: the catalog
  comparison reads only those (it used to search the entry text, which is now compressed).
  Verify checks it against the entry.
- ``custody_event_objects``: which events name which object, ``WITHOUT ROWID`` on SQLite (one
  B-tree for the key, one for the seq index, no rowid table beside them).

``event_id`` is no longer a column (nothing queried it; it is in the entry).
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any, cast

from sqlalchemy import BigInteger, Dialect, Index, Integer, LargeBinary, SmallInteger, String, Table, Text
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from vault.errors import LedgerError
from vault.storage.catalog import Base

MAX_ID = 128
MAX_NAME = 256
#: The largest entry :func:`unpack_entry` inflates (a bound against a planted compression bomb).
MAX_ENTRY_BYTES = 64 * 1024 * 1024

CODEC_RAW = 0
CODEC_DEFLATE_V1 = 1
#: Codec 1's preset dictionary. DEFLATE finds matches in it as if it preceded every entry;
#: the most common text sits at its end, where matches are cheapest. Never change it: a new
#: dictionary is a new codec.
ENTRY_DICTIONARY_V1 = (
    b'"access_denied""fixity_checked""redaction_planned""redaction_rendered""key_rotated"'
    b'"case_created""case_linked""case_unlinked""share_accessed""share_revoked""streamed"'
    b'"downloaded""searched""exported""released""deleted""ingested""shared""held"'
    b'"user_changed""gap_recorded""retain_until""captured_start""captured_end""catalog"'
    b'"source_id""sha256""size""parent""reason""spool_item""case_id""hold_id""share_id"'
    b'"administrator""information_governance""asb_officer""police_liaison""auditor""system"'
    b'"lawful_basis":null,"object_ids":[],"purpose":null,"recipient":null,'
    b'"recipient_org":null,"reference":null,"ts":"2026-'
    b'{"event":{"action":"viewed","actor":"","actor_org":null,"actor_role":null,'
    b'"client_addr":null,"details":{},"event_id":"","hashes":{},"lawful_basis":"",'
    b'"object_ids":["'
    b'"],"purpose":"","recipient":null,"recipient_org":null,"reference":"","ts":"2026-'
    b'Z"},"prev":"","seq":'
    b',"v":1}'
)
# Markers of an entry that may create, move or delete a recording (catalog_binding reads these).
_CATALOG_MARKERS = (b'"captured_start"', b'"retain_until"')


def pack_entry(entry: bytes) -> bytes:
    """``entry`` as stored: codec 1 (DEFLATE with the v1 dictionary)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY,
                               zdict=ENTRY_DICTIONARY_V1)
    return bytes((CODEC_DEFLATE_V1,)) + deflate.compress(entry) + deflate.flush()


def unpack_entry(stored: bytes | memoryview | None, seq: int | None = None) -> bytes:
    """The entry bytes kept in ``stored`` (:func:`pack_entry`). Raises LedgerError (naming
    ``seq``) for an unknown codec, a corrupt body, or an entry over :data:`MAX_ENTRY_BYTES`."""
    where = f"event {seq}'s" if seq is not None else "a"
    if not stored:
        raise LedgerError(f"{where} stored entry is empty", seq=seq)
    data = bytes(stored)
    if data[0] == CODEC_RAW:
        return data[1:]
    if data[0] != CODEC_DEFLATE_V1:
        raise LedgerError(f"{where} stored entry has unknown codec {data[0]}", seq=seq)
    inflate = zlib.decompressobj(-15, zdict=ENTRY_DICTIONARY_V1)
    try:
        entry = inflate.decompress(data[1:], MAX_ENTRY_BYTES)
    except zlib.error:
        raise LedgerError(f"{where} stored entry is corrupt", seq=seq) from None
    if not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
        raise LedgerError(f"{where} stored entry is corrupt or too large", seq=seq)
    return entry


def binds_catalog(action: str, entry: bytes) -> int | None:
    """The ``binds_catalog`` column of an entry: 1 or None (see the module text)."""
    if action == "deleted" or _CATALOG_MARKERS[0] in entry or _CATALOG_MARKERS[1] in entry:
        return 1
    return None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class Micros(TypeDecorator[dt.datetime]):
    """An aware datetime kept as integer microseconds since the Unix epoch, UTC (8 bytes and
    an integer comparison, where SQLite's text form takes 26). Naive values are taken as UTC."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError("a custody event time is a datetime")
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return (aware - _EPOCH) // _MICROSECOND

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else _EPOCH + int(value) * _MICROSECOND


# SQLite keeps an INTEGER PRIMARY KEY as the rowid itself: no second copy of seq in an index.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")
_HAS_REFERENCE = sql_text("reference IS NOT NULL")


class CustodyEventRow(Base):
    """One ledger entry (storage layout 2): the entry once, its MAC, and the columns queries
    filter on (see the module text)."""

    __tablename__ = "custody_events"
    __table_args__ = (
        # Most events name a reference; the others need no entry here.
        Index("ix_custody_events_reference", "reference",
              sqlite_where=_HAS_REFERENCE, postgresql_where=_HAS_REFERENCE),
    )

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    entry_mac: Mapped[bytes] = mapped_column(LargeBinary(32))
    ts: Mapped[dt.datetime] = mapped_column(Micros, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(MAX_NAME), index=True)
    reference: Mapped[str | None] = mapped_column(String(MAX_NAME))
    binds_catalog: Mapped[int | None] = mapped_column(SmallInteger)


class CustodyEventObjectRow(Base):
    """Which events name which object: the index behind ``events(object_id=...)``."""

    __tablename__ = "custody_event_objects"
    __table_args__ = {"sqlite_with_rowid": False}

    object_id: Mapped[str] = mapped_column(String(MAX_ID), primary_key=True)
    # Indexed alone too: verify streams the links in seq order from any point (migration 0010).
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False, index=True)


class CustodyCheckpointRow(Base):
    """A signed checkpoint; ``frontier`` lets the next one extend it without rereading the log."""

    __tablename__ = "custody_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    frontier: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]


EVENTS = cast(Table, CustodyEventRow.__table__)
OBJECTS = cast(Table, CustodyEventObjectRow.__table__)
CHECKPOINTS = cast(Table, CustodyCheckpointRow.__table__)

__all__ = [
    "CHECKPOINTS",
    "CODEC_DEFLATE_V1",
    "CODEC_RAW",
    "ENTRY_DICTIONARY_V1",
    "EVENTS",
    "MAX_ENTRY_BYTES",
    "OBJECTS",
    "CustodyCheckpointRow",
    "CustodyEventObjectRow",
    "CustodyEventRow",
    "Micros",
    "binds_catalog",
    "pack_entry",
    "unpack_entry",
]
