"""The stored Merkle tree (vault/ledger/stored_tree.py): proofs and exports read O(log n) rows, on
SQLite and PostgreSQL; the nodes equal the reference tree's; old ledgers are filled in lazily
and resumably; a wrong stored node gives a refused proof, never a false one (issue #15)."""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from vault import Actor, Purpose, Role, Vault
from vault.capture import Capture
from vault.ledger.checkpoint import LedgerSigner, load_or_create_signing_key
from vault.config import Settings
from vault.ledger.custody import Action, CustodyEvent, CustodyLedger
from vault.storage.db import session_factory
from vault.casework.disclosure import build_export, verify_export
from vault.errors import LedgerError
from vault.ledger.merkle import consistency_proof, inclusion_proof
from vault.ledger import stored_tree
from vault.ledger.merkle import leaf_hash
from vault.ledger.tables import unpack_entry

from ._counting import Counter, counting_engine

ORIGIN = "vault.test/stored-tree"
T0 = dt.datetime(2026, 11, 20, 22, 5, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def counted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Counter]]:
    """An empty catalog whose engine counts the rows every SELECT returns."""
    engine, counter = counting_engine(request, tmp_path)
    yield engine, counter
    engine.dispose()


@pytest.fixture
def signer(tmp_path: Path) -> LedgerSigner:
    return load_or_create_signing_key(tmp_path / "ledger.key", ORIGIN)


def _ledger(engine: Engine, signer: LedgerSigner) -> CustodyLedger:
    return CustodyLedger(session_factory(engine), signer, origin=ORIGIN, checkpoint_every=10**9)


def _grow(ledger: CustodyLedger, n: int, *, batch: int = 500) -> None:
    done = 0
    while done < n:
        k = min(batch, n - done)
        ledger.record_many(
            CustodyEvent(action=Action.VIEWED, actor="officer", ts=T0,
                         object_ids=(f"rec-{(done + i) % 7}",))
            for i in range(k)
        )
        done += k


def _reference_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    from vault.ledger.merkle import root_hash

    nodes = {}
    level = stored_tree.LOWEST_STORED_LEVEL
    while 1 << level <= len(leaves):
        for i in range(len(leaves) >> level):
            nodes[(level, i)] = root_hash(leaves[i << level : (i + 1) << level])
        level += 1
    return nodes


def _leaves(engine: Engine) -> list[bytes]:
    with engine.connect() as conn:
        return [leaf_hash(unpack_entry(e)) for e in conn.execute(
            text("SELECT entry FROM custody_events ORDER BY seq")).scalars()]


def _nodes(engine: Engine) -> dict[tuple[int, int], bytes]:
    with engine.connect() as conn:
        return dict(stored_tree.nodes_in(conn))


# --- O(log n) reads ----------------------------------------------------------------------------


def test_proofs_read_logarithmically_many_rows(
    counted: tuple[Engine, Counter], signer: LedgerSigner
) -> None:
    """Issue #15 build 2: an inclusion or consistency proof reads a few rows whatever the
    ledger's size (it read every leaf hash of the tree, and rehashed them, per proof)."""
    engine, counter = counted
    ledger = _ledger(engine, signer)
    n = 3000
    _grow(ledger, n)
    ledger.checkpoint()
    vkey = ledger.verifier_key()
    for seq in (0, 1, 1234, n - 2, n - 1):
        counter.rows = 0
        proof = ledger.inclusion_proof(seq)
        assert counter.rows < 80, (seq, counter.rows)
        CustodyLedger.verify_inclusion_proof(proof, vkey)
    for m in (1, 7, 1024, 2999):
        counter.rows = 0
        cproof = ledger.consistency_proof(m, n)
        assert counter.rows < 80, (m, counter.rows)
        CustodyLedger.verify_consistency_proof(cproof)
    ledger.close()


def test_stored_nodes_and_proofs_match_the_reference_tree_at_every_size(
    counted: tuple[Engine, Counter], signer: LedgerSigner
) -> None:
    """Issue #15 build 2: the stored tree is RFC 6962's (the reference proofs of
    tests/vault/test_merkle.py), appended one, several and many events at a time."""
    engine, _counter = counted
    ledger = _ledger(engine, signer)
    sizes = [1, 2, 3, 4, 5, 8, 9, 16, 17, 31, 32, 33, 64, 65, 100, 129]
    for size in sizes:
        _grow(ledger, size - ledger.size(), batch=3)
        leaves = _leaves(engine)
        assert _nodes(engine) == _reference_nodes(leaves)
        with engine.connect() as conn:
            tree_root, paths = stored_tree.inclusion_proofs(conn, range(size), size)
            for i in range(size):
                assert paths[i] == inclusion_proof(i, leaves), (i, size)
            for m in range(size + 1):
                _old, _new, path = stored_tree.consistency(conn, m, size)
                assert path == consistency_proof(m, size, leaves), (m, size)
    ledger.close()


def test_a_wrong_stored_node_gives_a_refused_proof_not_a_false_one(
    counted: tuple[Engine, Counter], signer: LedgerSigner
) -> None:
    """Issue #15 build 2: stored nodes are derived data; the proof is checked against the signed
    checkpoint before it is handed out, so a tampered node is refused."""
    engine, _counter = counted
    ledger = _ledger(engine, signer)
    _grow(ledger, 40)
    ledger.checkpoint()
    with engine.begin() as conn:
        conn.execute(text("UPDATE custody_tree_nodes SET hash = :h WHERE level = 5 AND idx = 0"),
                     {"h": b"\x07" * 32})
    with pytest.raises(LedgerError, match="stored tree does not match checkpoint 40"):
        ledger.inclusion_proof(39)
    ledger.close()


# --- filling in ledgers from before the stored tree --------------------------------------------


def test_a_ledger_without_stored_nodes_is_filled_in_lazily_and_resumably(
    counted: tuple[Engine, Counter], signer: LedgerSigner
) -> None:
    """Issue #15 build 2: a ledger from before migration 0010 (no nodes) gets them in committed
    batches when a proof first needs them; a run cut short resumes where it stopped."""
    engine, _counter = counted
    ledger = _ledger(engine, signer)
    _grow(ledger, 1000)
    ledger.checkpoint()
    expected = _nodes(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_tree_nodes"))
    calls = 0

    def flaky_lock(session: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError("interrupted")

    with pytest.raises(OSError):
        stored_tree.catch_up(session_factory(engine), flaky_lock, 1000, batch=256)
    with engine.connect() as conn:
        assert stored_tree.covered(conn) == 512  # two committed batches survive
    proof = ledger.inclusion_proof(999)  # resumes, then proves
    CustodyLedger.verify_inclusion_proof(proof, ledger.verifier_key())
    assert _nodes(engine) == expected
    ledger.close()


def test_appending_fills_a_gap_and_follows_a_removed_tail(
    counted: tuple[Engine, Counter], signer: LedgerSigner
) -> None:
    """Issue #15 build 2: an append after nodes went missing fills them in its transaction; an
    append after events were removed from the end (which verify reports) drops the nodes of
    the removed events, so the stored tree always describes the events as they are."""
    engine, _counter = counted
    ledger = _ledger(engine, signer)
    _grow(ledger, 300)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_tree_nodes WHERE idx > 3"))
    _grow(ledger, 1)
    assert _nodes(engine) == _reference_nodes(_leaves(engine))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_event_objects WHERE seq >= 150"))
        conn.execute(text("DELETE FROM custody_events WHERE seq >= 150"))
    _grow(ledger, 5)
    assert len(_leaves(engine)) == 155
    assert _nodes(engine) == _reference_nodes(_leaves(engine))
    ledger.close()


# --- exports -----------------------------------------------------------------------------------


ACTOR = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Northgate Housing")
PURPOSE = Purpose(purpose="evidence for prosecution", lawful_basis="DPA 2018 s35",
                  reference="CRIME/2026/4411")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def big_prefix_vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Vault]:
    options: dict[str, Any] = {"home": tmp_path / "home"}
    if request.param == "postgres":
        options["database_url"] = request.getfixturevalue("fresh_postgres_url")
    with Vault.init(Settings(**options)) as v:
        yield v


def test_an_export_reads_only_the_nodes_its_proofs_need(
    big_prefix_vault: Vault, tmp_path: Path
) -> None:
    """Issue #15 build 2: an export builds all its proofs against one checkpoint in one pass of
    the stored tree. The ledger's prefix is made unreadable to a whole-ledger path (its
    entries overwritten after their nodes were stored, all but the head, which the next append
    reads for its hash link): the export still builds and verifies,
    where reading and rehashing every leaf (as before) refused it."""
    vault = big_prefix_vault
    _grow(vault.ledger, 2048)
    vault.ledger.checkpoint()
    with vault.engine.begin() as conn:
        conn.execute(text("UPDATE custody_events SET entry = :h WHERE seq < 2047"),
                     {"h": b"\xff"})
    ids = [
        vault.put_stream(
            io.BytesIO(os.urandom(5000)),
            Capture(
                source_id="cam-03",
                captured_at=T0 + dt.timedelta(minutes=i),
                original_name=f"seg{i}.mp4",
            ),
            actor=ACTOR,
        ).id
        for i in range(3)
    ]
    out = tmp_path / "export.zip"
    build_export(vault, ids, out, actor=ACTOR, purpose=PURPOSE, recipient="DC Amy Shaw",
                 recipient_org="West Yorkshire Police")
    summary = verify_export(out, vault.ledger.verifier_key())
    assert summary


def test_a_rolled_back_append_and_a_second_appender_leave_the_tree_right(
    counted: tuple[Engine, Counter], signer: LedgerSigner
) -> None:
    """Issue #15 build 2: an appender reuses the frontier it left only when the head is the one
    it wrote; after a rolled-back append, or another process's appends, it reads the stored
    frontier, so the stored nodes always equal the reference tree of the events committed."""
    engine, _counter = counted
    first, second = _ledger(engine, signer), _ledger(engine, signer)
    _grow(first, 10, batch=3)
    with pytest.raises(RuntimeError), session_factory(engine).begin() as session:
        first.append(session, Action.VIEWED, actor="officer")
        first.append(session, Action.VIEWED, actor="officer")
        raise RuntimeError("the caller's transaction fails after the appends")
    _grow(first, 5, batch=2)
    for _ in range(4):
        _grow(second, 3, batch=1)
        _grow(first, 2, batch=1)
    assert len(_leaves(engine)) == 35
    assert _nodes(engine) == _reference_nodes(_leaves(engine))
    first.close()
    second.close()


def test_proof_and_verify_statements_never_scan_the_ledger(tmp_path: Path, signer: LedgerSigner) -> None:
    """Issue #15 build 2: counting rows returned misses a statement that *scans* a table to
    return a few (SQLite read a row-value ``(level, idx) IN (VALUES ...)`` by scanning every
    stored node); every statement a proof, an export's proofs or an incremental verify makes
    looks its rows up by index (SQLite's query plan: no SCAN of a custody table)."""
    from sqlalchemy import event as sa_event

    from vault.ledger.incremental_verify import verify_incremental

    from ._counting import _counting_sqlite

    engine, _counter = _counting_sqlite(tmp_path / "plans.sqlite3")
    from vault.storage.catalog import Base

    Base.metadata.create_all(engine)
    ledger = CustodyLedger(session_factory(engine), signer, origin=ORIGIN, checkpoint_every=10**9,
                           witness_path=tmp_path / "w" / "latest.checkpoint")
    _grow(ledger, 1500)
    ledger.checkpoint()
    verify_incremental(ledger)
    _grow(ledger, 300)
    ledger.checkpoint()
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, *_a: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    sa_event.listen(engine, "before_cursor_execute", capture)
    ledger.inclusion_proof(700)
    ledger.consistency_proof(333, 1800)
    with engine.connect() as conn:
        stored_tree.inclusion_proofs(conn, [1, 500, 1799], 1800)
    verify_incremental(ledger)
    sa_event.remove(engine, "before_cursor_execute", capture)
    assert seen
    with engine.connect() as conn:
        for statement, params in seen:
            plan = [str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                              params).all()]
            # An index walked in order under a LIMIT (the head: ORDER BY seq DESC LIMIT 1)
            # reads what the limit says, as does the events table walked in seq order (seq is
            # its rowid since storage layout 2); checkpoints are one per 256 events.
            in_order = "ORDER BY custody_events.seq" in statement
            scans = [p for p in plan if p.startswith("SCAN custody_")
                     and not p.startswith("SCAN custody_checkpoints")
                     and not ("LIMIT" in statement
                              and ("INDEX" in p or (in_order and p == "SCAN custody_events")))]
            assert not scans, (statement, plan)
    ledger.close()
    engine.dispose()
