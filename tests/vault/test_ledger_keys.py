"""Rotating the custody signing key: the hand-over, processes that follow it, a crash in the
middle, and what a retired or missing key can no longer do."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from vault.storage.catalog import Base
from vault.ledger.checkpoint import LedgerSigner, open_checkpoint
from vault.ledger.custody import (
    Action,
    CustodyEventRow,
    CustodyLedger,
    entry_bytes,
)
from vault.storage.db import make_engine
from vault.errors import InvalidInput, LedgerError
from vault.ledger.signing_keys import LedgerKeys, mac_key, next_path, retired_path
from vault.ledger.tables import pack_entry, unpack_entry

ORIGIN = "vault.test/custody"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        if request.param == "sqlite"
        else request.getfixturevalue("fresh_postgres_url")
    )
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "ledger-signing.key"


def ledger(engine: Engine, key_path: Path, **kw: object) -> CustodyLedger:
    """A ledger as a vault process opens it: with its key files."""
    options: dict[str, Any] = {"checkpoint_every": 3, **kw}
    return CustodyLedger(
        engine, LedgerKeys.load(key_path, ORIGIN), origin=ORIGIN,
        witness_path=key_path.parent / "witness.checkpoint", **options,
    )


def record(led: CustodyLedger, n: int, who: str = "officer") -> None:
    for i in range(n):
        led.record(Action.VIEWED, actor=who, object_ids=[f"rec-{i}"])


def test_rotation_hands_over_and_everything_still_verifies(engine: Engine, key_path: Path) -> None:
    led = ledger(engine, key_path)
    record(led, 5)
    before = led.checkpoint()
    old = led.verifier_key()

    handover = led.rotate_key(actor="admin", reason="annual rotation")
    new = handover["new_key"]
    assert handover["old_key"] == old and new != old and led.verifier_key() == new
    record(led, 5)

    report = led.verify(trusted_checkpoint=before)  # a checkpoint saved before still matches
    assert report.events == 11 and report.trusted == 5
    event = led.get(handover["seq"])
    assert event.action == Action.KEY_ROTATED
    assert event.event.details == {
        "key": "ledger", "old_key": old, "new_key": new, "reason": "annual rotation",
    }
    # The hand-over checkpoint ends with the rotation and is signed by both keys...
    cp = open_checkpoint(handover["checkpoint"], old, origin=ORIGIN)
    assert cp.size == handover["seq"] + 1
    assert open_checkpoint(handover["checkpoint"], new) == cp
    # ...later ones by the new key alone.
    latest = led.checkpoint()
    open_checkpoint(latest, new)
    with pytest.raises(LedgerError, match="not signed"):
        open_checkpoint(latest, old)
    # The key file now holds the new key; the old signing key is gone, its MAC key kept.
    on_disk = LedgerKeys.load(key_path, ORIGIN)
    assert on_disk.signer.verifier_key() == new and on_disk.successor is None
    assert not next_path(key_path).exists()
    assert stat.S_IMODE(retired_path(key_path).stat().st_mode) == 0o600
    retired = json.loads(retired_path(key_path).read_text())
    assert [k["verifier_key"] for k in retired["keys"]] == [old]
    assert "PRIVATE" not in retired_path(key_path).read_text()


def test_a_holder_of_the_old_key_can_follow_the_handover_offline(
        engine: Engine, key_path: Path) -> None:
    led = ledger(engine, key_path)
    record(led, 2)
    old = led.verifier_key()
    handover = led.rotate_key(actor="admin", reason="staff change")
    # A recipient who trusts only the old key checks that the old key signed a tree whose
    # last event is the rotation naming the new key.
    proof = led.inclusion_proof(handover["seq"])
    assert proof["checkpoint"] == handover["checkpoint"]
    CustodyLedger.verify_inclusion_proof(proof, old, origin=ORIGIN)
    CustodyLedger.verify_inclusion_proof(proof, handover["new_key"], origin=ORIGIN)
    assert json.loads(proof["entry"])["event"]["details"]["new_key"] == handover["new_key"]
    # Later proofs verify with the new key only.
    record(led, 4)
    later = led.inclusion_proof(0)
    assert later["verifier_key"] == handover["new_key"]
    CustodyLedger.verify_inclusion_proof(later, handover["new_key"], origin=ORIGIN)
    with pytest.raises(LedgerError):
        CustodyLedger.verify_inclusion_proof(later, old, origin=ORIGIN)


def test_another_process_takes_up_the_new_key(engine: Engine, key_path: Path) -> None:
    first, second = ledger(engine, key_path), ledger(engine, key_path)
    record(first, 2)
    record(second, 2)
    handover = first.rotate_key(actor="admin", reason="annual rotation")
    record(second, 3, who="agent")  # still holding the old key when it starts
    assert second.verifier_key() == handover["new_key"]
    assert second.verify().events == 8
    assert first.verify().events == 8


def test_a_checkpoint_by_a_process_that_missed_the_rotation_uses_the_new_key(
        engine: Engine, key_path: Path) -> None:
    first, second = ledger(engine, key_path), ledger(engine, key_path)
    old = second.verifier_key()
    handover = first.rotate_key(actor="admin", reason="annual rotation")
    record(first, 1)
    note = second.checkpoint()  # its first act since the rotation
    open_checkpoint(note, handover["new_key"])
    assert second.verifier_key() != old
    assert first.verify().events == 2


def test_a_process_without_the_new_key_is_refused(engine: Engine, key_path: Path,
                                                   tmp_path: Path) -> None:
    led = ledger(engine, key_path)
    record(led, 2)
    old_signer = led.signer
    led.rotate_key(actor="admin", reason="suspected compromise")
    # A process that kept only the old signing key (a copied key file, a stale container).
    stale = CustodyLedger(engine, old_signer, origin=ORIGIN)
    with pytest.raises(LedgerError, match="does not hold that key"):
        stale.record(Action.VIEWED, actor="intruder")
    assert led.verify().events == 3


def test_an_event_written_with_the_retired_key_fails_verification(
        engine: Engine, key_path: Path) -> None:
    led = ledger(engine, key_path)
    record(led, 2)
    old_signer = led.signer
    led.rotate_key(actor="admin", reason="suspected compromise")
    # Someone who stole the old key and can write the database appends a well-formed,
    # correctly chained event MACed with the old key.
    with engine.begin() as conn:
        head = conn.execute(
            select(CustodyEventRow.seq, CustodyEventRow.entry)
            .order_by(CustodyEventRow.seq.desc()).limit(1)
        ).one()
        ev = led.event(Action.DOWNLOADED, actor="intruder", object_ids=["rec-1"])
        head_hash = hashlib.sha256(unpack_entry(head.entry)).hexdigest()
        entry = entry_bytes(head.seq + 1, head_hash, ev)
        conn.execute(insert(CustodyEventRow), [{
            "seq": head.seq + 1, "entry": pack_entry(entry), "ts": ev.ts, "action": "downloaded",
            "actor": "intruder", "reference": None, "binds_catalog": None,
            "entry_mac": hmac.digest(mac_key(old_signer), entry, "sha256"),
        }])
    with pytest.raises(LedgerError, match="bad entry MAC") as caught:
        led.verify()
    assert caught.value.seq == head.seq + 1


def test_a_crash_before_the_key_file_moves_is_finished_by_the_next_event(
        engine: Engine, key_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    led = ledger(engine, key_path)
    record(led, 2)
    old = led.verifier_key()

    def crash(self: LedgerKeys, verifier_key: str) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(LedgerKeys, "adopt", crash)
    with pytest.raises(SystemExit):
        led.rotate_key(actor="admin", reason="annual rotation")
    monkeypatch.undo()
    # The ledger recorded the hand-over; the key file still holds the old key.
    assert LedgerKeys.load(key_path, ORIGIN).signer.verifier_key() == old
    assert next_path(key_path).exists()

    restarted = ledger(engine, key_path)
    record(restarted, 2)
    assert restarted.verifier_key() != old
    assert not next_path(key_path).exists()
    assert LedgerKeys.load(key_path, ORIGIN).signer.verifier_key() == restarted.verifier_key()
    assert restarted.verify().events == 5


def test_a_rotation_the_ledger_never_recorded_changes_nothing(
        engine: Engine, key_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    led = ledger(engine, key_path)
    record(led, 2)
    old = led.verifier_key()
    monkeypatch.setattr(CustodyLedger, "_append", lambda *a, **k: (_ for _ in ()).throw(
        SystemExit("killed")))
    with pytest.raises(SystemExit):
        led.rotate_key(actor="admin", reason="annual rotation")
    monkeypatch.undo()
    restarted = ledger(engine, key_path)
    record(restarted, 2)
    assert restarted.verifier_key() == old  # the orphan successor was never adopted
    assert restarted.verify().events == 4
    restarted.rotate_key(actor="admin", reason="second try")  # and a new rotation works
    assert restarted.verify().events == 5


def test_two_rotations(engine: Engine, key_path: Path) -> None:
    led = ledger(engine, key_path)
    keys = [led.verifier_key()]
    for n in range(2):
        record(led, 4)
        keys.append(led.rotate_key(actor="admin", reason=f"rotation {n}")["new_key"])
    record(led, 1)
    assert len(set(keys)) == 3
    assert ledger(engine, key_path).verify().events == 11
    retired = json.loads(retired_path(key_path).read_text())
    assert sorted(k["verifier_key"] for k in retired["keys"]) == sorted(keys[:2])


def test_losing_the_retired_keys_is_reported_not_ignored(engine: Engine, key_path: Path) -> None:
    led = ledger(engine, key_path)
    record(led, 2)
    led.rotate_key(actor="admin", reason="annual rotation")
    retired_path(key_path).unlink()
    with pytest.raises(LedgerError, match="does not hold") as caught:
        ledger(engine, key_path).verify()
    assert caught.value.seq == 0


def test_rotation_needs_key_files_and_a_reason(engine: Engine, key_path: Path) -> None:
    bare = CustodyLedger(engine, LedgerSigner.generate(ORIGIN), origin=ORIGIN)
    with pytest.raises(InvalidInput, match="key files"):
        bare.rotate_key(actor="admin", reason="x")
    with pytest.raises(InvalidInput):
        ledger(engine, key_path).rotate_key(actor="admin", reason="")


def test_retired_keys_file_readable_by_others_is_refused(engine: Engine, key_path: Path) -> None:
    led = ledger(engine, key_path)
    led.rotate_key(actor="admin", reason="annual rotation")
    os.chmod(retired_path(key_path), 0o644)
    from vault.errors import ConfigError

    with pytest.raises(ConfigError, match="chmod 600"):
        LedgerKeys.load(key_path, ORIGIN)


def test_a_handover_checkpoint_without_the_old_keys_signature_fails(
        engine: Engine, key_path: Path) -> None:
    # Only the old key can vouch for its successor: a hand-over signed by the new key alone
    # is what someone who slipped in a key of their own would produce.
    from vault.ledger.checkpoint import Checkpoint
    from vault.ledger.custody import CustodyCheckpointRow

    led = ledger(engine, key_path)
    record(led, 2)
    handover = led.rotate_key(actor="admin", reason="annual rotation")
    cp = open_checkpoint(handover["checkpoint"], handover["new_key"])
    alone = led.signer.sign(Checkpoint(cp.origin, cp.size, cp.root_hash))
    with engine.begin() as conn:
        conn.execute(
            CustodyCheckpointRow.__table__.update()  # type: ignore[attr-defined]
            .where(CustodyCheckpointRow.size == cp.size).values(note=alone)
        )
    with pytest.raises(LedgerError, match=f"checkpoint {cp.size} does not verify.*not signed"):
        led.verify()


def test_a_rotation_event_cannot_be_appended_by_hand(engine: Engine, key_path: Path) -> None:
    led = ledger(engine, key_path)
    other = LedgerSigner.generate(ORIGIN).verifier_key()
    with pytest.raises(InvalidInput, match="rotate_key only"):
        led.record(Action.KEY_ROTATED, actor="intruder", details={
            "key": "ledger", "old_key": led.verifier_key(), "new_key": other})
    # The keyring's own rotations are ordinary events.
    led.record(Action.KEY_ROTATED, actor="admin", details={"key": "keyring"})
    assert led.verify().events == 1


def test_a_full_disk_during_rotation_rotates_nothing(engine: Engine, key_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import vault.ledger.signing_keys as ledger_keys
    from vault.errors import ConfigError

    led = ledger(engine, key_path)
    record(led, 2)
    old = led.verifier_key()

    def full(path: Path, data: bytes, *, mode: int = 0o600) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ledger_keys, "replace_file", full)
    with pytest.raises(ConfigError, match="No space left.*nothing was rotated"):
        led.rotate_key(actor="admin", reason="annual rotation")
    monkeypatch.undo()
    assert led.verifier_key() == old and not led.events(action=Action.KEY_ROTATED)
    record(led, 1)
    assert ledger(engine, key_path).verify().events == 3


def test_a_consistency_proof_across_a_rotation_verifies_with_both_keys(
        engine: Engine, key_path: Path) -> None:
    led = ledger(engine, key_path)
    record(led, 3)
    old = led.verifier_key()
    new = led.rotate_key(actor="admin", reason="annual rotation")["new_key"]
    record(led, 3)
    led.checkpoint()
    proof = led.consistency_proof(3, led.size())
    CustodyLedger.verify_consistency_proof(proof, [old, new])
    for alone in (old, new):
        with pytest.raises(LedgerError):
            CustodyLedger.verify_consistency_proof(proof, alone)


def test_appends_read_the_rotation_history_only_when_it_grew(
        engine: Engine, key_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    led = ledger(engine, key_path, checkpoint_every=1000)
    led.rotate_key(actor="admin", reason="annual rotation")
    record(led, 1)  # the first append after the rotation confirms the key
    # key_rotated is sensitive (signed at once); this counts what appends alone read.
    monkeypatch.setattr(led, "maybe_checkpoint", lambda: None)
    calls = []
    real = CustodyLedger._epochs
    monkeypatch.setattr(CustodyLedger, "_epochs",
                        lambda self, conn: calls.append(1) or real(self, conn))
    record(led, 5)
    assert calls == []
    led.record(Action.KEY_ROTATED, actor="admin", details={"key": "keyring"})
    record(led, 1)
    assert calls == [1]  # a new key_rotated event: looked once
    assert led.verify().events == 9
