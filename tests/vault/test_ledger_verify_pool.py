"""Issue #15 (incremental verify of 100k events under 10 s): the per-event checks run in worker
processes (vault/ledger/verify_pool.py) and canonical entries are recognised by a fast route
(vault/ledger/entries.py ``_fast_canonical``). Neither may accept what the exact checks refuse,
nor change which event a failure names or what it says."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from vault.errors import InvalidInput, LedgerError
from vault.ledger import verify_pool
from vault.ledger.checkpoint import load_or_create_signing_key
from vault.ledger.custody import Action, CustodyEvent, CustodyLedger
from vault.ledger.entries import _fast_canonical, entry_bytes, parse_entry
from vault.ledger.incremental_verify import verify_incremental
from vault.ledger.rfc8785 import DECODER, canonical_plain
from vault.ledger.verify import ChainChecker
from vault.storage.db import make_engine, session_factory, upgrade

from .ledger_sql import edit_entries

ORIGIN = "vault.test/verify-pool"
T0 = dt.datetime(2026, 11, 20, 22, 5, tzinfo=dt.UTC)
SHA = "ab" * 32


def _exact(entry: bytes) -> bool:
    """What the exact route says: strict JSON whose RFC 8785 text is ``entry`` itself."""
    try:
        return canonical_plain(DECODER.decode(entry.decode("utf-8"))) == entry
    except (UnicodeDecodeError, ValueError, InvalidInput, RecursionError):
        return False


def _event(**overrides: Any) -> CustodyEvent:
    fields: dict[str, Any] = {
        "action": Action.SHARED, "actor": "officer-1", "ts": T0, "event_id": "e-1",
        "object_ids": ["rec-1"], "hashes": {"rec-1": SHA}, "recipient": "DC Smith",
        "details": {"n": [1, -2, 9007199254740991], "at": "12:30:45.5", "note": "a,1.5"},
    }
    fields.update(overrides)
    return CustodyEvent(**fields)


GOOD = entry_bytes(3, "0" * 64, _event())
#: An entry with no number or text that merely looks risky: the fast route's to take.
PLAIN = entry_bytes(3, "0" * 64, _event(details={"n": [1, -2], "at": "12:30:45.5"}))


@pytest.mark.parametrize(
    "entry",
    [
        GOOD,
        PLAIN,
        GOOD.replace(b'"seq":3', b'"seq":3.0'),  # a float where an integer goes
        GOOD.replace(b'"seq":3', b'"seq":3e0'),
        GOOD.replace(b"[1,-2,", b"[1.5,-2,"),  # a float inside an array
        GOOD.replace(b"[1,-2,", b"[1,-2.0,"),
        GOOD.replace(b"9007199254740991", b"9007199254740992"),  # beyond 2**53-1
        GOOD.replace(b"9007199254740991", b"-9007199254740992"),
        GOOD.replace(b"9007199254740991", b"123456789012345678901234567890"),
        GOOD.replace(b'"seq":3', b'"seq":-0'),
        GOOD.replace(b'"v":1}', b'"v":1,"v":1}'),  # duplicate key
        GOOD.replace(b'"seq":3,"v":1', b'"v":1,"seq":3'),  # key order
        GOOD.replace(b'"seq":3', b'"seq": 3'),  # whitespace
        GOOD.replace(b"DC Smith", b"DC \\u0053mith"),  # needless escape
        GOOD.replace(b"DC Smith", b"DC\\nSmith"),  # an escape, canonical
        GOOD.replace(b"DC Smith", b"DC\\u001fSmith"),
        GOOD.replace(b"DC Smith", b"DC\x01Smith"),  # a raw control character
        GOOD.replace(b"DC Smith", "DC \u00e9".encode()),  # not ASCII, canonical
        GOOD.replace(b'"note"', '"\u00e9"'.encode()),  # a non-ASCII key out of place
        GOOD.replace(b"DC Smith", b"DC \xff"),  # not UTF-8
        GOOD.replace(b'"seq":3', b'"seq":NaN'),
        GOOD.replace(b'"seq":3', b'"seq":Infinity'),
        GOOD + b"\n",
        b"[" + GOOD + b"]",
        b"3.5",
    ],
)
def test_the_fast_route_accepts_only_what_the_exact_route_does(entry: bytes) -> None:
    """Issue #15: the fast canonical check (orjson) never accepts an entry the RFC 8785 route
    refuses, and parse_entry says the same of each entry either way."""
    fast = _fast_canonical(entry)
    if fast is not None:
        assert _exact(entry)
        assert fast == json.loads(entry)
    assert (entry == PLAIN) <= (fast is not None)  # an ordinary entry takes the fast route
    assert (entry == GOOD) <= _exact(entry)


def test_the_fast_route_agrees_on_random_mutations() -> None:
    """Issue #15: 20,000 random byte edits of a real entry (the characters JSON turns on):
    wherever the fast route accepts, the exact route accepts and both parse the same."""
    rng = random.Random(15)
    alphabet = b'{}[]:,."\\-+0123456789eE tfnul\x00\x1f\x7fa\xc3\xa9'
    accepted = 0
    for k in range(20_000):
        data = bytearray(PLAIN if k % 2 else GOOD)
        for _edit in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            kind = rng.randrange(3)
            if kind == 0:
                data[at] = rng.choice(alphabet)
            elif kind == 1:
                data.insert(at, rng.choice(alphabet))
            else:
                del data[at]
        entry = bytes(data)
        fast = _fast_canonical(entry)
        if fast is not None:
            accepted += 1
            assert _exact(entry), entry
            assert fast == DECODER.decode(entry.decode("utf-8"))
    assert accepted > 100  # edits inside strings stay canonical: the route was exercised


def test_parse_entry_messages_are_those_of_the_exact_route() -> None:
    """Issue #15: an entry the fast route passes on is judged by the exact route, whose
    messages say why (not strict JSON; not canonical)."""
    with pytest.raises(LedgerError, match="not strict JSON"):
        parse_entry(GOOD.replace(b'"seq":3', b'"seq":3.0'))
    with pytest.raises(LedgerError, match="not in canonical form"):
        parse_entry(GOOD.replace(b'"seq":3', b'"seq": 3'))
    assert parse_entry(GOOD)[0] == 3


# --- the worker pool -------------------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[CustodyLedger, Engine]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    upgrade(engine)
    signer = load_or_create_signing_key(tmp_path / "ledger.key", ORIGIN)
    led = CustodyLedger(session_factory(engine), signer, origin=ORIGIN, checkpoint_every=16,
                        witness_path=tmp_path / "checkpoints" / "latest.checkpoint")
    led.record_many(
        CustodyEvent(action=Action.VIEWED, actor="officer", ts=T0, object_ids=(f"rec-{i % 5}",))
        for i in range(60)
    )
    led.checkpoint()
    yield led, engine
    led.close()
    engine.dispose()


def _sql(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement))


TAMPERS: list[tuple[str, str]] = [
    ("bad MAC", "UPDATE custody_events SET entry_mac = zeroblob(32) WHERE seq = 41"),
    ("index column", "UPDATE custody_events SET actor = 'someone' WHERE seq = 42"),
    ("corrupt entry", "UPDATE custody_events SET entry = X'01FFFF' WHERE seq = 43"),
    ("gap", "DELETE FROM custody_events WHERE seq = 44"),
    ("hidden link", "DELETE FROM custody_event_objects WHERE seq = 45"),
    ("bad codec", "UPDATE custody_events SET entry = X'07' WHERE seq = 46"),
]


def _outcome(run: Callable[[], Any]) -> tuple[str, int | None]:
    try:
        run()
    except LedgerError as exc:
        return str(exc), exc.seq
    return "verified", None


@pytest.mark.parametrize("what,change", TAMPERS, ids=[t[0] for t in TAMPERS])
def test_workers_find_the_same_first_failure(
    ledger: tuple[CustodyLedger, Engine], monkeypatch: pytest.MonkeyPatch,
    what: str, change: str,
) -> None:
    """Issue #15: with the per-event checks in worker processes, every tamper drill is still
    detected, naming the same event with the same message as checking in one process."""
    led, engine = ledger
    monkeypatch.setattr(verify_pool, "BATCH", 7)  # many batches from a small ledger
    _sql(engine, change)
    if what == "gap":  # also an altered entry earlier: the first failure must be named
        edit_entries(engine, lambda e: e.replace("officer", "officex"), where="seq = 30")
    led.verify_workers = 1
    alone = _outcome(lambda: led.verify(catalog=False))
    led.verify_workers = 2
    pooled = _outcome(lambda: led.verify(catalog=False))
    assert alone == pooled
    assert alone[0] != "verified"


def test_workers_fold_the_events_and_verify_incrementally(
    ledger: tuple[CustodyLedger, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #15: events the workers checked are folded into the chain in the parent (not
    re-checked there), and the incremental verify takes the same route, with the same root."""
    led, engine = ledger
    monkeypatch.setattr(verify_pool, "BATCH", 7)
    folded: list[bool] = []
    real_fold = ChainChecker.fold

    def counting_fold(self: ChainChecker, facts: Any) -> bool:
        folded.append(real_fold(self, facts))
        return folded[-1]

    monkeypatch.setattr(ChainChecker, "fold", counting_fold)
    led.verify_workers = 1
    alone = led.verify(catalog=False)
    assert not any(folded)
    led.verify_workers = 2
    folded.clear()
    pooled = led.verify(catalog=False)
    assert pooled == alone and folded.count(True) == 60
    verify_incremental(led)  # sets the mark
    led.record_many(
        CustodyEvent(action=Action.VIEWED, actor="officer", ts=T0, object_ids=("rec-9",))
        for _ in range(30)
    )
    led.checkpoint()
    folded.clear()
    report = verify_incremental(led)
    assert report.events == 90 and folded.count(True) == 30
    edit_entries(engine, lambda e: e.replace("officer", "officex"), where="seq = 75")
    with pytest.raises(LedgerError) as info:
        led.verify(catalog=False)
    assert info.value.seq == 75


SCRIPT = """
import datetime as dt, sys
from pathlib import Path
from vault.ledger import verify_pool
from vault.ledger.checkpoint import load_or_create_signing_key
from vault.ledger.custody import Action, CustodyEvent, CustodyLedger
from vault.storage.db import make_engine, session_factory, upgrade
here = Path(sys.argv[1])
with open(here / "ran", "a") as marker:  # top-level side effect, no __main__ guard
    marker.write("ran\\n")
verify_pool.BATCH = 7
engine = make_engine(f"sqlite:///{here / 'ledger.sqlite3'}")
upgrade(engine)
led = CustodyLedger(session_factory(engine), load_or_create_signing_key(here / "k", "o.test/x"),
                    origin="o.test/x", verify_workers=2)
led.record_many(CustodyEvent(action=Action.VIEWED, actor="a", ts=dt.datetime.now(dt.UTC),
                             object_ids=("r",)) for _ in range(40))
print(led.verify(catalog=False).events)
"""


def test_workers_do_not_rerun_the_callers_script(tmp_path: Path) -> None:
    """Issue #15: a script that verifies with workers and has no ``__main__`` guard runs once;
    multiprocessing's spawn re-ran the caller's main script in every worker, side effects and
    all (a script that cleared its work directory at the top did so again under the ledger)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    script = tmp_path / "verify_script.py"
    script.write_text(SCRIPT)
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": repo})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["40"]
    assert (tmp_path / "ran").read_text() == "ran\n"
