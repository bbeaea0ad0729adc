"""The custody ledger: entry format, chain, checkpoints, proofs, attacks on the database, and
concurrent appenders, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import logging
import multiprocessing
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url

from vault.actors import Actor, Purpose, Role
from vault.ledger.events import VOCABULARY, UndeclaredEvent
from vault.storage.catalog import Base
from vault.ledger.checkpoint import LedgerSigner, load_or_create_signing_key, open_checkpoint
from vault.ledger.custody import (
    GENESIS_PREV,
    Action,
    CustodyEvent,
    CustodyLedger,
    entry_bytes,
    parse_entry,
)
from vault.storage.db import make_engine, session_factory
from vault.errors import InvalidInput, LedgerError, NotFound
from vault.ledger.merkle import leaf_hash, root_hash
from vault.ledger.rfc8785 import canonical_json
from vault.ledger.tables import CustodyEventRow, pack_entry

from .ledger_sql import edit_entries, entry_hash, put_entry, stored_entry

ORIGIN = "vault.test/custody"
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
SHA = "ab" * 32


class FakeClock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(microseconds=1)
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty catalog database: a SQLite file, or a new database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        return
    base = request.getfixturevalue("postgres_url")
    name = f"custody_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def signer(tmp_path: Path) -> LedgerSigner:
    return load_or_create_signing_key(tmp_path / "ledger.key", ORIGIN)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def witness(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints" / "latest.checkpoint"


@pytest.fixture
def ledger(engine: Engine, signer: LedgerSigner, clock: FakeClock, witness: Path) -> CustodyLedger:
    return CustodyLedger(
        session_factory(engine),
        signer,
        origin=ORIGIN,
        checkpoint_every=4,
        clock=clock,
        witness_path=witness,
    )


def fill(ledger: CustodyLedger, n: int) -> None:
    for i in range(n):
        ledger.record(
            Action.VIEWED if i % 2 else Action.INGESTED,
            actor=f"officer-{i % 3}",
            actor_role="asb_officer",
            object_ids=[f"rec-{i % 4}"],
            hashes={f"rec-{i % 4}": SHA},
            purpose="investigation",
            reference=f"ASB/{i % 2}",
            client_addr="10.0.0.7",
            details={"i": i},
        )


def sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def row(engine: Engine, seq: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM custody_events WHERE seq = :s"), {"s": seq}).one()


def expect_bad(ledger: CustodyLedger, seq: int | None, **kwargs: Any) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        ledger.verify(**kwargs)
    assert info.value.seq == seq, str(info.value)
    return info.value


def delete_from(engine: Engine, first_seq: int, *, checkpoints_above: int | None = None) -> None:
    sql(engine, "DELETE FROM custody_events WHERE seq >= :s", s=first_seq)
    sql(engine, "DELETE FROM custody_event_objects WHERE seq >= :s", s=first_seq)
    if checkpoints_above is not None:
        sql(engine, "DELETE FROM custody_checkpoints WHERE size > :s", s=checkpoints_above)


def other_ledger(ledger: CustodyLedger, **kwargs: Any) -> CustodyLedger:
    options: dict[str, Any] = {"origin": ORIGIN, "checkpoint_every": 4, "clock": ledger._clock}
    options.update(kwargs)
    return CustodyLedger(ledger._engine, ledger._signer, **options)


# --- canonical JSON and the event model ------------------------------------------------------


def test_canonical_json_sorts_by_utf16_and_drops_whitespace() -> None:
    # RFC 8785 section 3.2.3: U+1F600 (a surrogate pair) sorts before U+FB33 in UTF-16.
    value = {
        "\u20ac": 1,
        "\r": 2,
        "\ufb33": 3,
        "1": 4,
        "\U0001f600": 5,
        "\u0080": 6,
        "\u00f6": 7,
    }
    out = canonical_json(value).decode("utf-8")
    keys = [k for k, _ in json.loads(out, object_pairs_hook=lambda p: p)]
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical_json({"b": [1, True, None], "a": "x\u00e9\n\u001f"}) == (
        b'{"a":"x\xc3\xa9\\n\\u001f","b":[1,true,null]}'
    )


@pytest.mark.parametrize(
    "bad",
    [
        1.5,
        {"x": 0.0},
        float("nan"),
        2**53,
        -(2**53),
        {1: "int key"},
        {"s": {1, 2}},
        b"bytes",
        "\ud800",
    ],
)
def test_canonical_json_refuses_what_has_no_single_text(bad: Any) -> None:
    with pytest.raises(InvalidInput):
        canonical_json(bad)


def make_event(**overrides: Any) -> CustodyEvent:
    fields: dict[str, Any] = {
        "action": Action.SHARED,
        "actor": "officer-1",
        "ts": dt.datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=dt.UTC),
        "event_id": "e-1",
        "object_ids": ["rec-1"],
        "hashes": {"rec-1": SHA},
        "recipient": "DC Smith",
        "recipient_org": "Police",
        "details": {"expires": "2024-06-01"},
    }
    fields.update(overrides)
    return CustodyEvent(**fields)


def test_event_round_trips_through_canonical_bytes() -> None:
    ev = make_event(details={"z": [1, {"b": None, "a": "ü"}], "a": True})
    assert CustodyEvent.from_bytes(ev.to_bytes()) == ev
    assert ev.to_bytes() == canonical_json(ev.to_dict())


def test_entry_format_is_exact() -> None:
    ev = make_event()
    expected = (
        '{"event":{"action":"shared","actor":"officer-1","actor_org":null,"actor_role":null,'
        '"client_addr":null,"details":{"expires":"2024-06-01"},"event_id":"e-1",'
        f'"hashes":{{"rec-1":"{SHA}"}},"lawful_basis":null,"object_ids":["rec-1"],'
        '"purpose":null,"recipient":"DC Smith","recipient_org":"Police","reference":null,'
        f'"ts":"2024-05-01T12:00:00.000005Z"}},"prev":"{GENESIS_PREV}","seq":0,"v":1}}'
    ).encode()
    assert entry_bytes(0, GENESIS_PREV, ev) == expected
    assert parse_entry(expected) == (0, GENESIS_PREV, ev)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b.replace(b'"seq":0', b'"seq": 0'),  # whitespace
        lambda b: b.replace(b'"seq":0,"v":1', b'"v":1,"seq":0'),  # key order
        lambda b: b.replace(b'"v":1}', b'"v":1,"v":1}'),  # duplicate key
        lambda b: b.replace(b'"seq":0', b'"seq":-0'),
        lambda b: b.replace(b'"seq":0', b'"seq":0.0'),
        lambda b: b.replace(b'"v":1', b'"v":2'),
        lambda b: b.replace(SHA.encode(), SHA.upper().encode()),
        lambda b: b.replace(b'"actor_org":null,', b""),  # missing field
        lambda b: b.replace(b'"actor_org":null', b'"actor_org":""'),  # empty is null
        lambda b: b.replace(b'"action":"shared"', b'"action":"sharred"'),  # unknown action
        lambda b: b.replace(b".000005Z", b"Z"),  # time not in the one format
        lambda b: b.replace(b"DC Smith", b"DC \\u0053mith"),  # needless escape
        lambda b: b.replace(b"DC Smith", b"DC \xff"),  # not UTF-8
        lambda b: b + b"\n",
    ],
)
def test_non_canonical_entries_are_refused(mangle: Any) -> None:
    good = entry_bytes(0, GENESIS_PREV, make_event())
    bad = mangle(good)
    assert bad != good
    with pytest.raises(LedgerError):
        parse_entry(bad)


def test_event_validation() -> None:
    with pytest.raises(InvalidInput):
        make_event(action="sharred")
    assert make_event(action="ingest.spool_gap").action == "ingest.spool_gap"
    assert make_event(action="viewed").action is Action.VIEWED
    for bad in (
        {"actor": ""},
        {"ts": dt.datetime(2024, 1, 1)},  # naive
        {"object_ids": "rec-1"},  # a string is not a list of ids
        {"object_ids": ["a", "a"]},
        {"hashes": {"rec-1": "not-hex"}},
        {"details": {"ratio": 0.5}},
    ):
        with pytest.raises(InvalidInput):
            make_event(**bad)
    assert make_event(purpose="").purpose is None
    local = dt.timezone(dt.timedelta(hours=2))
    assert make_event(ts=dt.datetime(2024, 5, 1, 14, 0, tzinfo=local)).ts == T0


def test_event_copies_mutable_input() -> None:
    details: dict[str, Any] = {"list": [1]}
    ev = make_event(details=details)
    details["list"].append(2)
    assert ev.details == {"list": [1]}
    assert CustodyEvent.from_bytes(ev.to_bytes()) == ev


# --- appending and reading -------------------------------------------------------------------


def test_chain_links_hashes_and_leaves(ledger: CustodyLedger) -> None:
    fill(ledger, 6)
    records = ledger.events()
    assert [r.seq for r in records] == list(range(6))
    prev = GENESIS_PREV
    for r in records:
        assert r.prev_hash == prev
        assert r.entry_hash == hashlib.sha256(r.entry).hexdigest()
        assert r.leaf_hash == leaf_hash(r.entry).hex()
        assert parse_entry(r.entry)[:2] == (r.seq, prev)
        prev = r.entry_hash


def test_append_commits_with_the_callers_transaction(ledger: CustodyLedger, engine: Engine) -> None:
    sessions = session_factory(engine)
    with pytest.raises(RuntimeError), sessions.begin() as session:
        ledger.append(session, Action.VIEWED, actor="officer-1")
        raise RuntimeError("catalog change failed")
    assert ledger.events() == []
    with sessions.begin() as session:
        rec = ledger.append(session, Action.VIEWED, actor="officer-1")
    assert rec.seq == 0
    assert [r.event for r in ledger.events()] == [rec.event]
    ledger.verify()


def test_appends_around_a_rolled_back_savepoint_stay_contiguous(
    ledger: CustodyLedger, engine: Engine
) -> None:
    with session_factory(engine).begin() as session:
        ledger.append(session, Action.VIEWED, actor="a")
        nested = session.begin_nested()
        ledger.append(session, Action.VIEWED, actor="rolled-back")
        nested.rollback()
        ledger.append(session, Action.VIEWED, actor="b")
        with session.begin_nested():
            ledger.append(session, Action.VIEWED, actor="c")
        ledger.append(session, Action.VIEWED, actor="d")
    assert [(r.seq, r.actor) for r in ledger.events()] == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]
    ledger.verify()


def test_append_many_and_record_many(ledger: CustodyLedger, engine: Engine) -> None:
    events = [ledger.event(Action.SEARCHED, actor="ig-1", details={"results": i}) for i in range(10)]
    recs = ledger.record_many(events)
    assert [r.seq for r in recs] == list(range(10))
    with session_factory(engine).begin() as session:
        more = ledger.append_many(session, events[:0] + [ledger.event(Action.VIEWED, actor="x")])
    assert more[0].seq == 10
    assert ledger.verify().events == 11


def test_events_filters(ledger: CustodyLedger, clock: FakeClock) -> None:
    fill(ledger, 8)
    assert [r.seq for r in ledger.events(object_id="rec-1")] == [1, 5]
    assert [r.seq for r in ledger.events(actor="officer-0")] == [0, 3, 6]
    assert [r.seq for r in ledger.events(action=Action.INGESTED)] == [0, 2, 4, 6]
    assert [r.seq for r in ledger.events(action="viewed", reference="ASB/1")] == [1, 3, 5, 7]
    assert [r.seq for r in ledger.events(limit=3, offset=2)] == [2, 3, 4]
    middle = ledger.get(4).ts
    assert [r.seq for r in ledger.events(since=middle)] == [4, 5, 6, 7]
    assert [r.seq for r in ledger.events(until=middle)] == [0, 1, 2, 3]
    assert ledger.events(object_id="nothing") == []
    with pytest.raises(NotFound):
        ledger.get(99)


def test_actor_and_purpose_fill_who_and_why(ledger: CustodyLedger) -> None:
    actor = Actor(user="jo", role=Role.POLICE_LIAISON, organisation="Force", client_addr="10.1.1.1")
    purpose = Purpose("disclosure", lawful_basis="DPA 2018 s.35", reference="CR/123")
    rec = ledger.record(Action.EXPORTED, actor=actor, purpose=purpose, recipient="CPS")
    ev = rec.event
    assert (ev.actor, ev.actor_role, ev.actor_org, ev.client_addr) == (
        "jo",
        "police_liaison",
        "Force",
        "10.1.1.1",
    )
    assert (ev.purpose, ev.lawful_basis, ev.reference) == ("disclosure", "DPA 2018 s.35", "CR/123")
    assert ledger.events(reference="CR/123")[0].event == ev
    assert "exported" in rec.summary() and rec.to_dict()["event"]["recipient"] == "CPS"


def test_unknown_action_refused(ledger: CustodyLedger) -> None:
    with pytest.raises(InvalidInput):
        ledger.record("vieweed", actor="x")
    assert ledger.record("ingest.pull", actor="agent").action == "ingest.pull"


def test_undeclared_event_kind_or_detail_refused_and_nothing_written(ledger: CustodyLedger) -> None:
    """Issue #14 (one vocabulary of custody events): a dotted kind that vault/ledger/events.py
    does not declare, or an undeclared ``details`` key on a closed kind, is refused at append
    time, before anything is written; both were accepted before."""
    before = len(ledger.events())
    with pytest.raises(UndeclaredEvent, match="ingest.gap_found"):
        ledger.record("ingest.gap_found", actor="agent")
    with pytest.raises(UndeclaredEvent, match="colour"):
        ledger.record(Action.SHARE_REVOKED, actor="x", details={"share_id": "s", "colour": "red"})
    assert len(ledger.events()) == before
    ledger.record(Action.SHARE_REVOKED, actor="x", details={"share_id": "s", "reason": "done"})
    ledger.record(Action.VIEWED, actor="x", details={"anything": 1})  # an open kind


def test_every_action_is_declared_once_and_entry_bytes_are_unchanged(ledger: CustodyLedger) -> None:
    """Issue #14: every Action member has exactly one declaration, and checking an event
    changes no byte of its entry (custody entry format v1)."""
    names = [kind.name for kind in VOCABULARY]
    assert len(names) == len(set(names))
    assert {a.value for a in Action} <= set(names)
    rec = ledger.record(
        Action.SEARCHED, actor="x", ts=dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc),
        event_id="e-1", details={"criteria": {"site": "A"}, "results": 2},
    )
    # The bytes the code before the vocabulary (commit 8b47096) wrote for the same event.
    before = (
        b'{"action":"searched","actor":"x","actor_org":null,"actor_role":null,"client_addr":null,'
        b'"details":{"criteria":{"site":"A"},"results":2},"event_id":"e-1","hashes":{},'
        b'"lawful_basis":null,"object_ids":[],"purpose":null,"recipient":null,'
        b'"recipient_org":null,"reference":null,"ts":"2026-12-06T09:00:00.000000Z"}'
    )
    assert rec.event.to_bytes() == before
    assert rec.entry == b'{"event":' + before + b',"prev":"' + rec.prev_hash.encode() + (
        b'","seq":' + str(rec.seq).encode() + b',"v":1}')


# --- checkpoints -----------------------------------------------------------------------------


def checkpoint_sizes(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(text("SELECT size FROM custody_checkpoints ORDER BY size")).scalars()
        )


def test_checkpoint_every_n_events(ledger: CustodyLedger, engine: Engine, witness: Path) -> None:
    fill(ledger, 10)
    assert checkpoint_sizes(engine) == [4, 8]
    cp = open_checkpoint(witness.read_text(), ledger.verifier_key(), origin=ORIGIN)
    assert cp.size == 8
    leaves = [bytes.fromhex(r.leaf_hash) for r in ledger.events()]
    assert cp.root_hash == root_hash(leaves[:8])
    assert ledger.maybe_checkpoint() is None
    note = ledger.checkpoint()
    assert open_checkpoint(note, ledger.verifier_key()).size == 10
    assert ledger.checkpoint() == note  # nothing new: the same checkpoint
    assert checkpoint_sizes(engine) == [4, 8, 10]


def test_checkpoint_inside_the_callers_transaction(
    ledger: CustodyLedger, engine: Engine, witness: Path
) -> None:
    with session_factory(engine).begin() as session:
        ledger.append(session, Action.HELD, actor="ig-1", reference="SAR/7")
        note = ledger.checkpoint(session)
    assert not witness.exists()  # written only once the caller has committed:
    ledger.witness(note)
    assert open_checkpoint(witness.read_text(), ledger.verifier_key()).size == 1
    assert ledger.verify().witnessed == 1


def test_checkpoint_interval_uses_the_clock(
    engine: Engine, signer: LedgerSigner, clock: FakeClock
) -> None:
    ledger = CustodyLedger(
        engine,
        signer,
        origin=ORIGIN,
        checkpoint_every=1000,
        checkpoint_interval=dt.timedelta(seconds=60),
        clock=clock,
    )
    ledger.record(Action.VIEWED, actor="a")
    assert checkpoint_sizes(engine) == [1]  # the first event is never left unsigned for long
    clock.advance(30)
    ledger.record(Action.VIEWED, actor="a")
    assert checkpoint_sizes(engine) == [1]
    clock.advance(31)
    ledger.record(Action.VIEWED, actor="a")
    assert checkpoint_sizes(engine) == [1, 3]


def test_witness_file_only_moves_forward(ledger: CustodyLedger, witness: Path) -> None:
    fill(ledger, 4)
    old = witness.read_text()
    fill(ledger, 4)
    new = witness.read_text()
    ledger.witness(old)
    assert witness.read_text() == new
    forked = ledger._signer.sign(
        open_checkpoint(new, ledger.verifier_key()).__class__(ORIGIN, 8, bytes(32))
    )
    with pytest.raises(LedgerError, match="forked"):
        ledger.witness(forked)


# --- verify: the untouched ledger ------------------------------------------------------------


def test_untouched_ledger_verifies(ledger: CustodyLedger) -> None:
    assert ledger.verify().events == 0
    fill(ledger, 10)
    report = ledger.verify()
    leaves = [leaf_hash(r.entry) for r in ledger.events()]
    assert (report.events, report.checkpoints, report.latest_checkpoint, report.witnessed) == (
        10,
        2,
        8,
        8,
    )
    assert report.root_hash == root_hash(leaves).hex()
    assert "10 events" in report.summary() and report.to_dict()["events"] == 10


# --- verify: attacks on the database ---------------------------------------------------------


def test_payload_edited(ledger: CustodyLedger, engine: Engine) -> None:
    fill(ledger, 10)
    edit_entries(engine, lambda e: e.replace("officer-2", "officer-1"), where="seq = 5")
    expect_bad(ledger, 5)


def test_payload_edited_and_hashes_recomputed_without_key(
    ledger: CustodyLedger, engine: Engine
) -> None:
    # The unsigned tail (after checkpoint 8) rewritten consistently: only the MAC catches it.
    # (Storage layout 2 keeps no hash columns: every hash is recomputed from the entry.)
    fill(ledger, 10)
    forged = stored_entry(engine, 9).replace('"details":{"i":9}', '"details":{"i":99}')
    put_entry(engine, 9, forged)
    err = expect_bad(ledger, 9)
    assert "MAC" in str(err)


def test_payload_reformatted(ledger: CustodyLedger, engine: Engine) -> None:
    fill(ledger, 6)
    put_entry(engine, 2, stored_entry(engine, 2).replace('"seq":2', '"seq": 2'))
    expect_bad(ledger, 2)


def test_event_deleted(ledger: CustodyLedger, engine: Engine) -> None:
    fill(ledger, 10)
    sql(engine, "DELETE FROM custody_events WHERE seq = 3")
    assert "missing" in str(expect_bad(ledger, 3))


def test_events_swapped(ledger: CustodyLedger, engine: Engine) -> None:
    fill(ledger, 10)
    sql(engine, "UPDATE custody_events SET seq = -1 WHERE seq = 2")
    sql(engine, "UPDATE custody_events SET seq = 2 WHERE seq = 6")
    sql(engine, "UPDATE custody_events SET seq = 6 WHERE seq = -1")
    expect_bad(ledger, 2)


def test_forged_event_inserted_in_the_middle(ledger: CustodyLedger, engine: Engine) -> None:
    fill(ledger, 10)
    sql(engine, "UPDATE custody_events SET seq = -seq - 100 WHERE seq >= 5")
    sql(engine, "UPDATE custody_events SET seq = -seq - 99 WHERE seq < 0")
    _insert_forged(engine, 5, prev=entry_hash(engine, 4))
    expect_bad(ledger, 5)


def _insert_forged(engine: Engine, seq: int, *, prev: str) -> None:
    ev = CustodyEvent(action=Action.DELETED, actor="officer-1", ts=T0, event_id=f"forged-{seq}")
    entry = entry_bytes(seq, prev, ev)
    with engine.begin() as conn:
        conn.execute(
            insert(CustodyEventRow),
            [{"seq": seq, "entry": pack_entry(entry), "entry_mac": bytes(32), "ts": T0,
              "action": "deleted", "actor": "officer-1", "reference": None, "binds_catalog": 1}],
        )


def test_forged_event_appended_with_valid_chain(
    ledger: CustodyLedger, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    fill(ledger, 10)
    _insert_forged(engine, 10, prev=entry_hash(engine, 9))
    expect_bad(ledger, 10)
    # ... and the ledger refuses to sign a checkpoint over it.
    with pytest.raises(LedgerError) as info:
        ledger.checkpoint()
    assert info.value.seq == 10
    # record() keeps recording (the event commits) and logs the refused checkpoint.
    with caplog.at_level(logging.ERROR, logger="vault.ledger.custody"):
        for _ in range(4):
            ledger.record(Action.VIEWED, actor="officer-1")
    assert "checkpoint refused" in caplog.text
    assert checkpoint_sizes(engine) == [4, 8]


def test_index_column_edited_to_hide_event(ledger: CustodyLedger, engine: Engine) -> None:
    fill(ledger, 6)
    sql(engine, "UPDATE custody_events SET actor = 'nobody' WHERE seq = 2")
    expect_bad(ledger, 2)


def test_object_index_row_deleted_to_hide_event(ledger: CustodyLedger, engine: Engine) -> None:
    fill(ledger, 6)
    sql(engine, "DELETE FROM custody_event_objects WHERE seq = 3")
    assert ledger.events(object_id="rec-3") == []  # hidden from the query...
    assert "hides" in str(expect_bad(ledger, 3))  # ...but not from verify


def test_object_index_row_added_to_misattribute(ledger: CustodyLedger, engine: Engine) -> None:
    fill(ledger, 6)
    sql(engine, "INSERT INTO custody_event_objects (object_id, seq) VALUES ('rec-9', 1)")
    expect_bad(ledger, 1)


def test_checkpoint_note_forged(ledger: CustodyLedger, engine: Engine) -> None:
    fill(ledger, 10)
    impostor = LedgerSigner.generate(ORIGIN)
    note = impostor.sign(open_checkpoint(ledger.checkpoint(), ledger.verifier_key()))
    sql(engine, "UPDATE custody_checkpoints SET note = :n WHERE size = 10", n=note)
    with pytest.raises(LedgerError, match="checkpoint 10 does not verify"):
        ledger.verify()


def test_checkpoint_root_column_edited(ledger: CustodyLedger, engine: Engine) -> None:
    fill(ledger, 10)
    sql(engine, "UPDATE custody_checkpoints SET root_hash = :r WHERE size = 4", r="00" * 32)
    with pytest.raises(LedgerError, match="checkpoint 4"):
        ledger.verify()


def test_checkpoint_rolled_back_by_deleting_its_events(
    ledger: CustodyLedger, engine: Engine
) -> None:
    fill(ledger, 10)
    delete_from(engine, 6)
    assert "removed" in str(expect_bad(ledger, 6))


def test_rollback_of_events_and_checkpoints_caught_by_witness_file(
    ledger: CustodyLedger, engine: Engine
) -> None:
    fill(ledger, 10)
    delete_from(engine, 5, checkpoints_above=4)
    # The database alone is self-consistent after a wholesale rollback...
    other_ledger(ledger).verify()
    # ...but the witness file, kept outside it, remembers checkpoint 8.
    assert "witnessed" in str(expect_bad(ledger, 5))


def test_rollback_then_regrowth_caught_by_witness_file(
    ledger: CustodyLedger, engine: Engine, witness: Path
) -> None:
    fill(ledger, 10)
    delete_from(engine, 5, checkpoints_above=4)
    saved = witness.read_text()
    fill(ledger, 6)  # new events past the old size; the ledger refuses to checkpoint them
    assert witness.read_text() == saved
    with pytest.raises(LedgerError, match="witnessed"):
        ledger.checkpoint()
    # A root cannot tell which event changed: the error names the range it covers.
    assert "0..7" in str(expect_bad(ledger, 0))


def test_rollback_caught_by_trusted_checkpoint(ledger: CustodyLedger, engine: Engine) -> None:
    plain = other_ledger(ledger)  # no witness file
    fill(plain, 10)
    saved = plain.checkpoint()  # e.g. printed in an export certificate
    delete_from(engine, 7, checkpoints_above=4)
    plain.verify()
    assert "trusted" in str(expect_bad(plain, 7, trusted_checkpoint=saved))
    with pytest.raises(LedgerError):
        plain.verify(trusted_checkpoint=saved.replace("\n10\n", "\n11\n"))


def test_history_rewritten_with_signing_key_caught_by_witness_file(
    ledger: CustodyLedger, engine: Engine
) -> None:
    # Someone with the signing key rewrites history from event 3 on, re-signs everything, and
    # deletes the old checkpoints: only a checkpoint kept outside the database can tell.
    fill(ledger, 10)
    delete_from(engine, 3, checkpoints_above=0)
    rewriter = other_ledger(ledger)
    fill(rewriter, 7)
    rewriter.verify()
    expect_bad(ledger, 0)  # witnessed checkpoint 8 does not match events 0..7


def test_verify_reads_a_snapshot_without_blocking_sqlite_writers(
    tmp_path: Path, signer: LedgerSigner
) -> None:
    path = tmp_path / "snapshot.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    ledger = CustodyLedger(engine, signer, origin=ORIGIN, checkpoint_every=4)
    fill(ledger, 3)
    with ledger._snapshot() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM custody_events")).scalar() == 3
        # A writer (which takes the write lock) gets it while the reader's snapshot is open...
        writer = sqlite3.connect(path, timeout=1, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM custody_event_objects WHERE seq = 0")
        writer.execute("COMMIT")
        writer.close()
        # ... and the snapshot does not see the writer's change.
        count = conn.execute(text("SELECT COUNT(*) FROM custody_event_objects")).scalar()
        assert count == 3
    engine.dispose()


# --- proofs ----------------------------------------------------------------------------------


def test_inclusion_proofs_verify_offline(ledger: CustodyLedger) -> None:
    fill(ledger, 10)
    vkey = ledger.verifier_key()
    for seq in range(10):
        proof = json.loads(json.dumps(ledger.inclusion_proof(seq)))
        # Events 0-7 prove against checkpoint 8; event 8 gets a checkpoint signed for it.
        assert proof["tree_size"] == (8 if seq < 8 else 10)
        CustodyLedger.verify_inclusion_proof(proof, vkey, origin=ORIGIN)
        record = parse_entry(proof["entry"].encode())
        assert record[0] == seq
    with pytest.raises(NotFound):
        ledger.inclusion_proof(10)


def _tampered_proofs(proof: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield {**proof, "entry": proof["entry"].replace("officer", "offlcer")}
    yield {**proof, "leaf_index": proof["leaf_index"] + 1}
    yield {**proof, "proof": proof["proof"][:-1]}
    yield {**proof, "proof": [*proof["proof"], proof["root_hash"]]}
    first = proof["proof"][0]
    flipped = first[:-1] + ("1" if first[-1] == "0" else "0")  # always a different hash
    yield {**proof, "proof": [flipped] + proof["proof"][1:]}
    yield {**proof, "tree_size": proof["tree_size"] + 1}
    yield {**proof, "root_hash": "00" * 32}
    size = proof["tree_size"]
    yield {**proof, "checkpoint": proof["checkpoint"].replace(f"\n{size}\n", f"\n{size + 1}\n")}
    yield {**proof, "format": "something else"}
    yield {k: v for k, v in proof.items() if k != "checkpoint"}


def test_tampered_inclusion_proofs_fail(ledger: CustodyLedger) -> None:
    fill(ledger, 10)
    proof = ledger.inclusion_proof(3)
    for bad in _tampered_proofs(proof):
        assert bad != proof
        with pytest.raises(LedgerError):
            CustodyLedger.verify_inclusion_proof(bad, ledger.verifier_key())
    with pytest.raises(LedgerError):
        CustodyLedger.verify_inclusion_proof(proof, LedgerSigner.generate(ORIGIN).verifier_key())
    with pytest.raises(LedgerError):
        CustodyLedger.verify_inclusion_proof(proof, ledger.verifier_key(), origin="other/log")


def test_consistency_proofs(ledger: CustodyLedger) -> None:
    fill(ledger, 10)
    ledger.checkpoint()
    for old in range(11):
        proof = ledger.consistency_proof(old, 10)
        CustodyLedger.verify_consistency_proof(proof)
    signed = ledger.consistency_proof(4, 8)
    CustodyLedger.verify_consistency_proof(signed, ledger.verifier_key())
    with pytest.raises(LedgerError):
        CustodyLedger.verify_consistency_proof({**signed, "new_root": signed["old_root"]})
    with pytest.raises(LedgerError):
        CustodyLedger.verify_consistency_proof({**signed, "proof": signed["proof"][1:]})
    with pytest.raises(LedgerError):  # no signed checkpoint of size 5
        CustodyLedger.verify_consistency_proof(
            ledger.consistency_proof(5, 8), ledger.verifier_key()
        )
    with pytest.raises(InvalidInput):
        ledger.consistency_proof(5, 11)


# --- concurrency -----------------------------------------------------------------------------

APPENDERS = 3
EVENTS_EACH = 200


def _append_worker(url: str, key_path: str, witness: str, tag: str, go: Any) -> None:
    engine = make_engine(url)
    ledger = CustodyLedger(
        session_factory(engine),
        load_or_create_signing_key(Path(key_path), ORIGIN),
        origin=ORIGIN,
        checkpoint_every=25,
        witness_path=Path(witness),
    )
    go.wait(60)  # every process is up: start appending together
    for i in range(EVENTS_EACH):
        ledger.record(Action.VIEWED, actor=tag, object_ids=[f"rec-{i % 5}"], details={"i": i})
    engine.dispose()


def test_concurrent_appenders_keep_one_chain(
    db_url: str, engine: Engine, signer: LedgerSigner, tmp_path: Path, witness: Path
) -> None:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [
        ctx.Process(
            target=_append_worker,
            args=(db_url, str(tmp_path / "ledger.key"), str(witness), f"proc-{k}", go),
        )
        for k in range(APPENDERS)
    ]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * APPENDERS
    ledger = CustodyLedger(engine, signer, origin=ORIGIN, witness_path=witness)
    report = ledger.verify()
    assert report.events == APPENDERS * EVENTS_EACH
    assert report.witnessed is not None and report.checkpoints >= 1
    for k in range(APPENDERS):
        mine = ledger.events(actor=f"proc-{k}", limit=10_000)
        assert [r.event.details["i"] for r in mine] == list(range(EVENTS_EACH))
    actors = [r.actor for r in ledger.events(limit=10_000)]
    switches = sum(a != b for a, b in itertools.pairwise(actors))
    assert switches >= APPENDERS, "the appenders never overlapped: nothing was tested"
