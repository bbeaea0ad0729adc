"""Tamper drills' tools: read and rewrite custody entries as they are stored (storage layout 2,
vault/ledger/tables.py: compressed), the way someone with write access to the database would."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sqlalchemy import Engine, text

from vault.ledger.tables import pack_entry, unpack_entry


def stored_entry(engine: Engine, seq: int) -> str:
    """The entry of event ``seq`` as text."""
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT entry FROM custody_events WHERE seq = :s"), {"s": seq}
        ).scalar_one()
    return unpack_entry(stored).decode("utf-8")


def entry_hash(engine: Engine, seq: int) -> str:
    """SHA-256 hex of event ``seq``'s entry (what the next entry's ``prev`` names)."""
    return hashlib.sha256(stored_entry(engine, seq).encode("utf-8")).hexdigest()


def put_entry(engine: Engine, seq: int, entry: str) -> None:
    """Overwrite event ``seq``'s entry with ``entry``, stored as the ledger stores it."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE custody_events SET entry = :e WHERE seq = :s"),
            {"e": pack_entry(entry.encode("utf-8")), "s": seq},
        )


def edit_entries(engine: Engine, edit: Callable[[str], str], *, where: str = "1 = 1") -> int:
    """Apply ``edit`` to the text of every entry matching the SQL condition ``where``, as
    ``UPDATE ... SET payload = REPLACE(...)`` did on uncompressed entries. Returns how many
    entries changed."""
    with engine.begin() as conn:
        rows = conn.execute(text(f"SELECT seq, entry FROM custody_events WHERE {where}")).all()
        changed = 0
        for seq, stored in rows:
            before = unpack_entry(stored).decode("utf-8")
            after = edit(before)
            if after != before:
                conn.execute(
                    text("UPDATE custody_events SET entry = :e WHERE seq = :s"),
                    {"e": pack_entry(after.encode("utf-8")), "s": seq},
                )
                changed += 1
    return changed
