"""Incremental verify (vault/ledger/incremental_verify.py): the scheduled check reads only what was
appended since the last verified checkpoint, and still catches every tamper in that range and
any rollback, on SQLite and PostgreSQL (issue #15)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from vault.ledger.checkpoint import LedgerSigner, load_or_create_signing_key
from vault.ledger.custody import Action, CustodyEvent, CustodyLedger
from vault.storage.db import session_factory
from vault.errors import LedgerError
from vault.ledger.incremental_verify import (
    read_verified_mark,
    verified_mark_path,
    verify_incremental,
)

from ._counting import Counter, counting_engine
from .ledger_sql import edit_entries

ORIGIN = "vault.test/incremental"
T0 = dt.datetime(2026, 11, 20, 22, 5, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def counted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Counter]]:
    engine, counter = counting_engine(request, tmp_path)
    yield engine, counter
    engine.dispose()


@pytest.fixture
def signer(tmp_path: Path) -> LedgerSigner:
    return load_or_create_signing_key(tmp_path / "ledger.key", ORIGIN)


def _ledger(engine: Engine, signer: LedgerSigner, witness: Path | None) -> CustodyLedger:
    return CustodyLedger(session_factory(engine), signer, origin=ORIGIN, checkpoint_every=256,
                         witness_path=witness)


def _grow(ledger: CustodyLedger, n: int, batch: int = 500) -> None:
    done = 0
    while done < n:
        k = min(batch, n - done)
        ledger.record_many(
            CustodyEvent(action=Action.VIEWED, actor="officer", ts=T0,
                         object_ids=(f"rec-{(done + i) % 7}",))
            for i in range(k)
        )
        done += k


def _sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def test_incremental_verify_reads_only_what_was_appended(
    counted: tuple[Engine, Counter], signer: LedgerSigner, tmp_path: Path
) -> None:
    """Issue #15 build 1: the scheduled verify checks only the events appended since the last
    verified, witnessed checkpoint (a full verify read every event and link each time)."""
    engine, counter = counted
    witness = tmp_path / "checkpoints" / "latest.checkpoint"
    ledger = _ledger(engine, signer, witness)
    _grow(ledger, 3000)
    ledger.checkpoint()
    first = verify_incremental(ledger)  # no mark yet: a full verify, which sets it
    assert first.events == 3000 and first.latest_checkpoint == 3000
    assert verified_mark_path(ledger) == witness.with_name("verified.checkpoint")
    assert "\n3000\n" in (read_verified_mark(ledger) or "")
    _grow(ledger, 100)
    ledger.checkpoint()
    counter.rows = 0
    report = verify_incremental(ledger)
    assert report.events == 3100 and report.unsigned == 0 and report.witnessed == 3100
    # 100 events, their 100 object links, a few checkpoints and lookups: not 3000 of anything.
    assert counter.rows < 400, counter.rows
    assert report.root_hash == ledger.verify(catalog=False).root_hash
    ledger.close()


def test_incremental_verify_catches_tampering_after_the_mark(
    counted: tuple[Engine, Counter], signer: LedgerSigner, tmp_path: Path
) -> None:
    """Issue #15 build 1: every tamper drill of the full verify in the appended range is still
    detected: an altered entry, a hidden object link, a removed tail with its checkpoints."""
    engine, _counter = counted
    witness = tmp_path / "checkpoints" / "latest.checkpoint"
    ledger = _ledger(engine, signer, witness)
    _grow(ledger, 600)
    ledger.checkpoint()
    verify_incremental(ledger)
    _grow(ledger, 300)
    ledger.checkpoint()
    # An altered entry after the mark.
    edit_entries(engine, lambda e: e.replace("officer", "officex"), where="seq = 700")
    with pytest.raises(LedgerError) as info:
        verify_incremental(ledger)
    assert info.value.seq == 700
    edit_entries(engine, lambda e: e.replace("officex", "officer"), where="seq = 700")
    # A hidden object link.
    with engine.connect() as conn:
        linked = conn.execute(text("SELECT object_id FROM custody_event_objects WHERE seq = 800"
                                   )).scalar_one()
    _sql(engine, "DELETE FROM custody_event_objects WHERE seq = 800")
    with pytest.raises(LedgerError, match="hides event 800"):
        verify_incremental(ledger)
    _sql(engine, "INSERT INTO custody_event_objects (object_id, seq) VALUES (:o, 800)", o=linked)
    verify_incremental(ledger)  # intact again: the mark moves to 900
    # A rollback: events and checkpoints after 650 removed; the witness file still says 900.
    _grow(ledger, 10)
    ledger.checkpoint()
    _sql(engine, "DELETE FROM custody_event_objects WHERE seq >= 650")
    _sql(engine, "DELETE FROM custody_events WHERE seq >= 650")
    _sql(engine, "DELETE FROM custody_checkpoints WHERE size > 650")
    with pytest.raises(LedgerError, match="not in the ledger: rolled back"):
        verify_incremental(ledger)
    ledger.close()


def test_a_forged_or_moved_mark_is_refused(
    counted: tuple[Engine, Counter], signer: LedgerSigner, tmp_path: Path
) -> None:
    """Issue #15 build 1: the mark must be a checkpoint this ledger signed that the database
    still holds with a frontier folding to its root; a forged mark, or a stored frontier edited
    to skip events, is refused rather than trusted."""
    engine, _counter = counted
    ledger = _ledger(engine, signer, None)  # no witness: the mark lives in vault_meta
    _grow(ledger, 512)
    ledger.checkpoint()
    verify_incremental(ledger)
    assert verified_mark_path(ledger) is None and read_verified_mark(ledger)
    _grow(ledger, 10)
    # A frontier edited in the database.
    with engine.connect() as conn:
        frontier = conn.execute(text("SELECT frontier FROM custody_checkpoints WHERE size = 512"
                                     )).scalar_one()
    _sql(engine, "UPDATE custody_checkpoints SET frontier = :f WHERE size = 512", f="ab" * 32)
    with pytest.raises(LedgerError, match="does not match its frontier"):
        verify_incremental(ledger)
    _sql(engine, "UPDATE custody_checkpoints SET frontier = :f WHERE size = 512", f=frontier)
    # A mark signed by another key.
    other = load_or_create_signing_key(tmp_path / "other.key", ORIGIN)
    from vault.ledger.checkpoint import Checkpoint

    forged = other.sign(Checkpoint(ORIGIN, 512, b"\x01" * 32))
    _sql(engine, "UPDATE vault_meta SET value = :v WHERE key = 'ledger_verified_checkpoint'",
         v=forged)
    with pytest.raises(LedgerError, match="verified mark does not verify"):
        verify_incremental(ledger)
    ledger.close()
