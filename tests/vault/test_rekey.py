"""Keyring rotation and rewrap: footage stays readable, deleted footage stays deleted, and
every step is in the custody log."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os

import pytest
from sqlalchemy import select

from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import Recording
from vault.ledger.custody import Action
from vault.errors import InvalidInput, KeyUnavailable, Shredded
from vault.storage.keys import LocalKeyring, WrappedKey
from vault.casework.rekey import DESTROYED, REWRAPPED, destroy, maintain, rewrap, rotate
from vault.casework.retention import run_retention
from vault.vault import Vault
from vault.capture import Capture

from .conftest import T0

ADMIN = Actor(user="admin", role=Role.ADMINISTRATOR)
WHY = Purpose(purpose="check after key rotation")


def _put(vault: Vault, n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        data = os.urandom(9000 + i)
        rec = vault.put_stream(
            io.BytesIO(data),
            Capture(source_id="cam-01", captured_at=T0 + dt.timedelta(minutes=i)),
            actor=ADMIN,
        )
        out.append((rec.id, data))
    return out


def _read(vault: Vault, rid: str) -> bytes:
    return b"".join(vault.read(rid, actor=ADMIN, purpose=WHY)[2])


def _key_ids(vault: Vault) -> dict[str, str]:
    with vault.sessions() as session:
        return dict(session.execute(select(Recording.id, Recording.key_id)).all())  # type: ignore[arg-type]


def test_rotate_then_rewrap_moves_every_data_key_and_footage_still_reads(vault: Vault) -> None:
    stored = _put(vault, 5)
    before = vault.keys.current_key_id()
    change = rotate(vault, actor=ADMIN, reason="annual rotation")
    assert change == {"old_key_id": before, "new_key_id": vault.keys.current_key_id()}
    new = change["new_key_id"]
    # New footage uses the new key at once; old footage is still under the old one.
    (fresh, fresh_data), = _put(vault, 1)
    assert _key_ids(vault)[fresh] == new
    assert {_key_ids(vault)[rid] for rid, _ in stored} == {before}

    report = rewrap(vault, actor=ADMIN, batch=2)
    assert (report.rewrapped, report.already_current, report.deleted_meanwhile) == (5, 1, 0)
    assert set(_key_ids(vault).values()) == {new}
    for rid, data in [*stored, (fresh, fresh_data)]:
        assert _read(vault, rid) == data
    # A second pass has nothing to do.
    assert rewrap(vault, actor=ADMIN).rewrapped == 0

    rotated = vault.ledger.events(action=Action.KEY_ROTATED)
    assert rotated[-1].event.details == {
        "key": "keyring", "old_key_id": before, "new_key_id": new, "reason": "annual rotation",
    }
    passes = vault.ledger.events(action=REWRAPPED)
    assert [p.event.details["rewrapped"] for p in passes] == [5, 0]
    vault.ledger.verify()


def test_rewrap_never_brings_back_a_deleted_recordings_key(vault: Vault) -> None:
    stored = dict(_put(vault, 2))
    first, second = sorted(stored)  # the pass goes in id order
    rotate(vault, actor=ADMIN, reason="annual rotation")

    def shred_the_next(done: int, total: int) -> None:
        # Retention crypto-shreds the second recording while the pass is under way.
        if done == 1:
            with vault.sessions.begin() as session:
                session.get(Recording, second).wrapped_dek = None  # type: ignore[union-attr]

    report = rewrap(vault, actor=ADMIN, batch=1, progress=shred_the_next)
    assert (report.rewrapped, report.deleted_meanwhile) == (1, 1)
    with vault.sessions() as session:
        assert session.get(Recording, second).wrapped_dek is None  # type: ignore[union-attr]
    assert _read(vault, first) == stored[first]


def test_rewrap_after_retention_skips_deleted_footage(vault: Vault) -> None:
    (old, _), = _put(vault, 1)
    run_retention(vault, now=T0 + dt.timedelta(days=23, hours=1))
    rotate(vault, actor=ADMIN, reason="annual rotation")
    report = rewrap(vault, actor=ADMIN)
    assert report.rewrapped == 0
    with pytest.raises(Shredded):
        _read(vault, old)


def test_a_data_key_that_does_not_unwrap_stops_the_batch_and_writes_nothing(vault: Vault) -> None:
    stored = _put(vault, 3)
    rotate(vault, actor=ADMIN, reason="annual rotation")
    bad = stored[1][0]
    with vault.sessions.begin() as session:
        row = session.get(Recording, bad)
        assert row is not None and row.wrapped_dek is not None
        row.wrapped_dek = bytes([row.wrapped_dek[0] ^ 1]) + row.wrapped_dek[1:]
    before = _key_ids(vault)
    with pytest.raises(KeyUnavailable):
        rewrap(vault, actor=ADMIN, batch=10)
    assert _key_ids(vault) == before  # the whole batch rolled back
    assert not vault.ledger.events(action=REWRAPPED)


def test_rotation_needs_a_reason(vault: Vault) -> None:
    with pytest.raises(InvalidInput, match="reason"):
        rotate(vault, actor=ADMIN, reason="  ")
    assert len(vault.keys.key_ids()) == 1


def test_ciphertext_is_untouched_by_a_rewrap(vault: Vault) -> None:
    (rid, _), = _put(vault, 1)
    recording = vault.recording(rid)
    with vault.store.open(recording.object_key) as f:
        before = hashlib.sha256(f.read()).hexdigest()
    rotate(vault, actor=ADMIN, reason="annual rotation")
    rewrap(vault, actor=ADMIN)
    with vault.store.open(recording.object_key) as f:
        assert hashlib.sha256(f.read()).hexdigest() == before


def test_destroying_a_retired_key_makes_old_catalog_backups_useless(vault: Vault) -> None:
    # A deleted recording's wrapped data key survives in last week's catalog backup; once
    # its KEK is destroyed, that copy no longer opens. Live footage is unaffected.
    (gone, _), (kept, data) = _put(vault, 2)
    with vault.sessions() as session:
        row = session.get(Recording, gone)
        assert row is not None and row.wrapped_dek is not None
        backup = WrappedKey(row.key_id, row.wrapped_dek)
    run_retention(vault, now=T0 + dt.timedelta(days=30))  # both deleted by the 23-day rule...
    (kept, data), = _put(vault, 1)  # ...and new footage arrives
    old = rotate(vault, actor=ADMIN, reason="monthly rotation")["old_key_id"]
    assert vault.keys.unwrap(backup, context=gone)  # the backup still opens before destroy

    with pytest.raises(InvalidInput, match="wait until"):
        destroy(vault, old, actor=ADMIN, reason="monthly")  # retired moments ago
    with pytest.raises(InvalidInput, match="1 recordings still use"):
        destroy(vault, old, actor=ADMIN, reason="monthly", grace=dt.timedelta(0))
    rewrap(vault, actor=ADMIN)
    destroy(vault, old, actor=ADMIN, reason="monthly", grace=dt.timedelta(0))

    with pytest.raises(KeyUnavailable, match="destroyed"):
        vault.keys.unwrap(backup, context=gone)
    assert _read(vault, kept) == data
    assert old not in vault.keys.key_ids()
    stored = {k["id"]: k for k in json.loads(vault.settings.keyring_file.read_text())["keys"]}
    assert stored[old]["state"] == "destroyed" and "key" not in stored[old]
    (event,) = vault.ledger.events(action=DESTROYED)
    assert event.event.details["key_id"] == old
    # Reopened from the file, the keyring says the same.
    reopened = LocalKeyring.open(vault.settings.keyring_file)
    with pytest.raises(KeyUnavailable, match="destroyed"):
        reopened.unwrap(backup, context=gone)


def test_the_current_or_an_unknown_key_cannot_be_destroyed(vault: Vault) -> None:
    current = vault.keys.current_key_id()
    with pytest.raises(InvalidInput, match="current key"):
        destroy(vault, current, actor=ADMIN, reason="x", grace=dt.timedelta(0))
    with pytest.raises(InvalidInput, match="no key"):
        destroy(vault, "local-99", actor=ADMIN, reason="x", grace=dt.timedelta(0))
    with pytest.raises(InvalidInput, match="current key"):
        vault.keys.destroy(current)


def test_scheduled_maintenance_rotates_rewraps_and_destroys_in_turn(vault: Vault) -> None:
    (rid, data), = _put(vault, 1)
    first = vault.keys.current_key_id()
    month = dt.timedelta(days=30)
    # A young key: nothing to do.
    assert maintain(vault, actor=ADMIN, rotate_every=month) == {
        "rotated": None, "rewrapped": 0, "destroyed": []}
    # Due: rotate and rewrap; the old key waits out its grace period.
    due = maintain(vault, actor=ADMIN, rotate_every=dt.timedelta(0))
    assert due["rotated"]["old_key_id"] == first and due["rewrapped"] == 1
    assert due["destroyed"] == []
    # Past the grace period (none here), the next round destroys it.
    later = maintain(vault, actor=ADMIN, rotate_every=month, grace=dt.timedelta(0))
    assert later == {"rotated": None, "rewrapped": 0, "destroyed": [first]}
    assert _read(vault, rid) == data
    assert [k.state for k in vault.keys.describe()] == ["destroyed", "active"]  # type: ignore[attr-defined]
