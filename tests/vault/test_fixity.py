"""Fixity checks: intact footage passes; rotten, missing, truncated or unreadable footage is
named with the reason; every check is in the custody log."""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import pytest

from vault.casework import fixity
from vault.actors import Actor, Role
from vault.storage.catalog import Recording
from vault.ledger.custody import Action
from vault.errors import NotFound, Shredded
from vault.casework.fixity import check_fixity
from vault.storage.objectstore import LocalStore
from vault.casework.retention import run_retention
from vault.vault import Vault
from vault.capture import Capture

from .conftest import T0

AUDITOR = Actor(user="audit", role=Role.AUDITOR)


def _put(vault: Vault, n: int) -> list[Recording]:
    return [
        vault.put_stream(
            io.BytesIO(os.urandom(20_000 + i)),
            Capture(source_id="cam-01", captured_at=T0 + dt.timedelta(minutes=i)),
            actor=AUDITOR,
        )
        for i in range(n)
    ]


def _object_file(vault: Vault, recording: Recording) -> Path:
    assert isinstance(vault.store, LocalStore)
    return vault.store.root.joinpath(*recording.object_key.split("/"))


def test_intact_footage_passes_on_every_backend(any_vault: Vault) -> None:
    recs = _put(any_vault, 3)
    report = check_fixity(any_vault, actor=AUDITOR)
    assert (report.checked, report.ok, report.passed) == (3, 3, True)
    assert report.bytes_checked == sum(r.size for r in recs)
    (event,) = any_vault.ledger.events(action=Action.FIXITY_CHECKED)
    assert set(event.object_ids) == {r.id for r in recs}
    assert event.event.hashes == {r.id: r.sha256 for r in recs}
    # A recording's own history shows when it was last proven intact.
    history = [e.action for e in any_vault.ledger.events(object_id=recs[0].id)]
    assert history == [Action.INGESTED, Action.FIXITY_CHECKED]
    any_vault.ledger.verify()


def test_a_missing_object_is_reported_on_every_backend(any_vault: Vault) -> None:
    gone, kept = _put(any_vault, 2)
    any_vault.store.delete(gone.object_key)
    report = check_fixity(any_vault, actor=AUDITOR)
    assert report.ok == 1 and not report.passed
    (failure,) = report.failures
    assert (failure.recording_id, failure.outcome) == (gone.id, "missing")


def test_rotten_truncated_and_unreadable_footage_is_named(vault: Vault) -> None:
    rotten, short, locked, fine = _put(vault, 4)
    path = _object_file(vault, rotten)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit flipped on disk
    path.write_bytes(bytes(data))
    path = _object_file(vault, short)
    path.write_bytes(path.read_bytes()[:-100])
    with vault.sessions.begin() as session:
        row = session.get(Recording, locked.id)
        assert row is not None and row.wrapped_dek is not None
        row.wrapped_dek = row.wrapped_dek[:-1] + bytes([row.wrapped_dek[-1] ^ 1])

    report = check_fixity(vault, actor=AUDITOR)
    outcomes = {f.recording_id: f.outcome for f in report.failures}
    assert outcomes == {rotten.id: "corrupt", short.id: "missing", locked.id: "unreadable"}
    assert report.ok == 1 and "FAILED: 1 corrupt, 1 missing, 1 unreadable" in report.summary()
    (event,) = vault.ledger.events(action=Action.FIXITY_CHECKED)
    assert event.event.hashes == {fine.id: fine.sha256}
    assert set(event.event.details["failed"]) == set(outcomes)
    # Nothing was repaired or deleted: the next check finds the same.
    again = check_fixity(vault, actor=AUDITOR)
    assert {f.recording_id for f in again.failures} == set(outcomes)


def test_deleted_footage_is_not_checked_and_cannot_be_named(vault: Vault) -> None:
    old, = _put(vault, 1)
    run_retention(vault, now=T0 + dt.timedelta(days=23, hours=1))
    assert check_fixity(vault, actor=AUDITOR).checked == 0
    with pytest.raises(Shredded):
        check_fixity(vault, actor=AUDITOR, recording_ids=[old.id])
    with pytest.raises(NotFound):
        check_fixity(vault, actor=AUDITOR, recording_ids=["no-such-recording"])


def test_named_recordings_a_sample_and_batches(vault: Vault,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    recs = _put(vault, 5)
    named = check_fixity(vault, actor=AUDITOR, recording_ids=[recs[1].id, recs[1].id])
    assert named.checked == 1
    sampled = check_fixity(vault, actor=AUDITOR, sample=2)
    assert sampled.checked == 2
    monkeypatch.setattr(fixity, "BATCH", 2)
    seen: list[tuple[int, int]] = []
    batched = check_fixity(vault, actor=AUDITOR, progress=lambda d, t: seen.append((d, t)))
    assert batched.checked == 5 and len(batched.events) == 3
    assert seen[-1] == (5, 5)
