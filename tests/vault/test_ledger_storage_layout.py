"""Issue #15 item 4, a leaner ledger row: storage layout 2 (vault/ledger/tables.py, migration
0012). Entry format v1 is unchanged; old ledgers are converted and verify; the bytes per event
are at most half of layout 1's; the columns layout 2 keeps are checked against the entry."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from vault.config import Settings
from vault.errors import LedgerError
from vault.ledger.checkpoint import LedgerSigner, load_or_create_signing_key
from vault.ledger.custody import Action, CustodyEvent, CustodyLedger, entry_bytes
from vault.ledger.signing_keys import mac_key
from vault.ledger.tables import (
    CODEC_RAW,
    MAX_ENTRY_BYTES,
    pack_entry,
    unpack_entry,
)
from vault.storage.db import make_engine, session_factory, upgrade
from vault.vault import Vault

from .ledger_sql import put_entry, stored_entry
from .test_fixture_vault_v1 import FIXTURE, _home_copy

ORIGIN = "test.example/evidence-vault/layout"
T0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("fresh_postgres_url"))
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


@pytest.fixture
def signer(tmp_path: Path) -> LedgerSigner:
    return load_or_create_signing_key(tmp_path / "ledger.key", name=ORIGIN)


def _event(i: int) -> CustodyEvent:
    actions = [Action.INGESTED, Action.VIEWED, Action.HELD, Action.DELETED]
    details: dict[str, Any] = {"retain_until": "2027-01-01T00:00:00Z"} if i % 4 == 2 else {}
    return CustodyEvent(
        action=actions[i % 4], actor=f"officer-{i % 3}", ts=T0 + dt.timedelta(seconds=i),
        object_ids=(f"rec-{i % 5}",), reference=f"ASB/{i}" if i % 2 else None,
        purpose="investigating ASB incident", details=details,
    )


def _write_layout_1(engine: Engine, signer: LedgerSigner, n: int) -> list[bytes]:
    """``n`` events as the code before migration 0012 stored them (layout 1). Returns the entries."""
    key, prev, entries = mac_key(signer), "0" * 64, []
    with engine.begin() as conn:
        for seq in range(n):
            ev = _event(seq)
            entry = entry_bytes(seq, prev, ev)
            entry_hash = hashlib.sha256(entry).hexdigest()
            conn.execute(text(
                "INSERT INTO custody_events (seq, event_id, ts, action, actor, reference, payload,"
                " prev_hash, entry_hash, leaf_hash, entry_mac) VALUES (:seq, :eid, :ts, :action,"
                " :actor, :ref, :payload, :prev, :eh, :lh, :mac)"), {
                "seq": seq, "eid": ev.event_id, "ts": ev.ts.replace(tzinfo=None),
                "action": str(getattr(ev.action, "value", ev.action)), "actor": ev.actor,
                "ref": ev.reference, "payload": entry.decode(), "prev": prev, "eh": entry_hash,
                "lh": hashlib.sha256(b"\x00" + entry).hexdigest(),
                "mac": hmac.digest(key, entry, "sha256").hex()})
            for oid in ev.object_ids:
                conn.execute(text("INSERT INTO custody_event_objects (object_id, seq)"
                                  " VALUES (:o, :s)"), {"o": oid, "s": seq})
            entries.append(entry)
            prev = entry_hash
    return entries


def test_migration_0012_converts_a_layout_1_ledger_that_then_verifies(
    db_url: str, signer: LedgerSigner
) -> None:
    """Issue #15 item 4: a ledger written in layout 1 (payload text, hex hash columns) is
    converted by migration 0012, in batches, on SQLite and PostgreSQL; every entry keeps its
    exact bytes, and the ledger verifies (chain, MACs, index columns, object links)."""
    import importlib

    migration = importlib.import_module(
        "vault.storage.migrations.versions.0012_lean_custody_rows")
    engine = make_engine(db_url)
    upgrade(engine, "0011")
    n = 2 * migration._BATCH + 17  # more than one batch, and a partial last one
    entries = _write_layout_1(engine, signer, n)
    upgrade(engine)
    ledger = CustodyLedger(session_factory(engine), signer, origin=ORIGIN)
    assert [r.entry for r in ledger.events(limit=n + 1)] == entries
    ledger.checkpoint()
    report = ledger.verify(catalog=False)
    assert report.events == n and report.unsigned == 0
    assert [r.seq for r in ledger.events(object_id="rec-2", limit=n)] == list(range(2, n, 5))
    found = ledger.events(actor="officer-1", since=T0 + dt.timedelta(seconds=10),
                          until=T0 + dt.timedelta(seconds=20))
    assert [r.seq for r in found] == [10, 13, 16, 19]
    assert [r.seq for r in ledger.events(reference="ASB/7")] == [7]
    ledger.close()
    engine.dispose()


def test_migration_0012_refuses_a_ledger_whose_dropped_columns_were_tampered_with(
    db_url: str, signer: LedgerSigner
) -> None:
    """Issue #15 item 4: the columns layout 2 drops (entry_hash, leaf_hash, prev_hash,
    event_id) were checked by verify against the entry; a ledger where one disagrees stops the
    upgrade with an error naming the event, and nothing changes (the schema stays at 0011)."""
    engine = make_engine(db_url)
    upgrade(engine, "0011")
    _write_layout_1(engine, signer, 12)
    with engine.begin() as conn:
        conn.execute(text("UPDATE custody_events SET entry_hash = :h WHERE seq = 7"),
                     {"h": "ab" * 32})
    with pytest.raises(LedgerError, match="event 7's entry_hash column differs") as caught:
        upgrade(engine)
    assert caught.value.seq == 7
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0011"
        assert conn.execute(text("SELECT COUNT(*) FROM custody_events")).scalar() == 12
    engine.dispose()


def test_the_fixture_vault_converts_and_verifies_with_the_same_root(tmp_path: Path) -> None:
    """Issue #15 item 4 on a copy of tests/fixtures/vault-v1 (written by the code of 8b47096):
    after 'init' (migrations 0010-0012) every entry is stored in layout 2, byte for byte the
    entry signed before, and the ledger verifies against the checkpoint saved with it."""
    import json

    expected = json.loads((FIXTURE / "expected.json").read_text())
    home = _home_copy(tmp_path)
    before = sqlite3.connect(FIXTURE / "home" / "catalog.sqlite3")
    old = [row[0].encode() for row in before.execute("SELECT payload FROM custody_events ORDER BY seq")]
    before.close()
    settings = Settings(home=home)
    Vault.init(settings).close()
    with Vault.open(settings) as vault:
        assert [stored_entry(vault.engine, seq).encode() for seq in range(len(old))] == old
        report = vault.ledger.verify(trusted_checkpoint=expected["checkpoint"])
        assert report.root_hash == expected["root_hash"]
        with vault.engine.connect() as conn:
            columns = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(custody_events)")}
    assert columns == {"seq", "entry", "entry_mac", "ts", "action", "actor", "reference",
                       "binds_catalog"}


# --- the columns layout 2 keeps, and the stored entry itself, are checked ----------------------


@pytest.fixture
def ledger(tmp_path: Path, signer: LedgerSigner) -> CustodyLedger:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    upgrade(engine)
    led = CustodyLedger(session_factory(engine), signer, origin=ORIGIN, checkpoint_every=4)
    for i in range(8):
        led.record_many([_event(i)])
    return led


def _engine(ledger: CustodyLedger) -> Engine:
    return ledger._engine


def _sql(ledger: CustodyLedger, statement: str, **params: Any) -> None:
    with _engine(ledger).begin() as conn:
        conn.execute(text(statement), params)


def test_a_cleared_catalog_flag_is_detected(ledger: CustodyLedger) -> None:
    """Issue #15 item 4: ``binds_catalog`` chooses the events the catalog comparison reads; a
    flag cleared to hide a retention change or a deletion from it fails verify at that event."""
    _sql(ledger, "UPDATE custody_events SET binds_catalog = NULL WHERE seq = 2")
    with pytest.raises(LedgerError, match="index columns differ") as caught:
        ledger.verify(catalog=False)
    assert caught.value.seq == 2


def test_an_edited_time_column_is_detected(ledger: CustodyLedger) -> None:
    """Issue #15 item 4: ``ts`` (now integer microseconds) still says what the entry says."""
    _sql(ledger, "UPDATE custody_events SET ts = ts + 1 WHERE seq = 5")
    with pytest.raises(LedgerError, match="index columns differ") as caught:
        ledger.verify(catalog=False)
    assert caught.value.seq == 5


def test_an_edited_mac_is_detected(ledger: CustodyLedger) -> None:
    """Issue #15 item 4: the MAC, now 32 raw bytes, is compared as bytes (a hex or short
    value planted in the column fails too)."""
    for planted in (bytes(32), ("00" * 32).encode()):
        with _engine(ledger).begin() as conn:
            good = conn.execute(text("SELECT entry_mac FROM custody_events WHERE seq = 3")).scalar()
            conn.execute(text("UPDATE custody_events SET entry_mac = :m WHERE seq = 3"),
                         {"m": planted})
        with pytest.raises(LedgerError, match="bad entry MAC") as caught:
            ledger.verify(catalog=False)
        assert caught.value.seq == 3
        _sql(ledger, "UPDATE custody_events SET entry_mac = :m WHERE seq = 3", m=good)
    ledger.verify(catalog=False)


def test_a_corrupt_or_oversized_stored_entry_is_refused(ledger: CustodyLedger) -> None:
    """Issue #15 item 4: a stored entry that does not decode (an unknown codec, a damaged
    DEFLATE body, a compression bomb past MAX_ENTRY_BYTES) is reported at its event, never
    inflated without bound; the same entry stored raw (codec 0) verifies."""
    entry = stored_entry(_engine(ledger), 4)
    bomb = pack_entry(b" " * (MAX_ENTRY_BYTES + 1))
    assert len(bomb) < MAX_ENTRY_BYTES // 100
    for stored in (b"\x07" + entry.encode(), pack_entry(entry.encode())[:-3], bomb):
        _sql(ledger, "UPDATE custody_events SET entry = :e WHERE seq = 4", e=stored)
        with pytest.raises(LedgerError, match="event 4's stored entry") as caught:
            ledger.verify(catalog=False)
        assert caught.value.seq == 4
    _sql(ledger, "UPDATE custody_events SET entry = :e WHERE seq = 4",
         e=bytes((CODEC_RAW,)) + entry.encode())
    ledger.verify(catalog=False)
    put_entry(_engine(ledger), 4, entry)
    assert unpack_entry(pack_entry(entry.encode())) == entry.encode()
    ledger.verify(catalog=False)
