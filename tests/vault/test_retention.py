"""Retention: the 23-day rule, holds, derived copies, crash safety and deletion certificates."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import CaseRecording, Case, HoldKind, Recording, SourceKind
from vault.ledger.custody import Action
from vault.errors import InvalidInput, LedgerError, NotFound, Shredded
from vault.casework.holds import place_hold, release_hold
from vault.storage.retention_rule import RetentionPolicy
from vault.casework.retention import (
    deletion_certificate,
    run_retention,
    verify_deletion_certificate,
)
from vault.vault import Vault
from vault.capture import Capture

ACTOR = Actor(user="ig-1", role=Role.IG_OFFICER, organisation="Housing")
PURPOSE = Purpose(purpose="check")
T0 = dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.timezone.utc)


def _put(vault: Vault, tag: str, *, at: dt.datetime = T0, source: str = "cam-01", **kw) -> Recording:  # type: ignore[no-untyped-def]
    return vault.put_stream(
        io.BytesIO(tag.encode() * 500 + os.urandom(16)),
        Capture(source_id=source, captured_at=at,
                source_kind=kw.pop("source_kind", SourceKind.CCTV), **kw),
        actor=ACTOR,
    )


def test_kept_at_22_days_23_hours_deleted_at_23_days(vault: Vault) -> None:
    rec = _put(vault, "a")
    report = run_retention(vault, now=T0 + dt.timedelta(days=22, hours=23))
    assert report.deleted == [] and report.kept == []
    assert vault.recording(rec.id).deleted_at is None

    report = run_retention(vault, now=T0 + dt.timedelta(days=23))
    assert [d.recording_id for d in report.deleted] == [rec.id]
    assert report.purged == [rec.id]
    row = vault.recording(rec.id)
    assert row.deleted_at == T0 + dt.timedelta(days=23)
    assert row.wrapped_dek is None
    assert not vault.store.exists(rec.object_key)


def test_dry_run_changes_nothing(vault: Vault) -> None:
    rec = _put(vault, "a")
    report = run_retention(vault, now=T0 + dt.timedelta(days=30), dry_run=True)
    assert [d.outcome for d in report.deleted] == ["would_delete"]
    assert vault.recording(rec.id).deleted_at is None
    assert vault.store.exists(rec.object_key)


def test_per_kind_override(tmp_path: Path) -> None:
    from vault.config import Settings

    with Vault.init(Settings(home=tmp_path / "h", retention_overrides={"staff_device": 31})) as v:
        cctv = _put(v, "c")
        device = _put(v, "d", source="bwv-7", source_kind=SourceKind.STAFF_DEVICE)
        assert cctv.retain_until == T0 + dt.timedelta(days=23)
        assert device.retain_until == T0 + dt.timedelta(days=31)
    with pytest.raises(InvalidInput, match="unknown source kind"):
        RetentionPolicy.from_settings(Settings(home=tmp_path, retention_overrides={"drone": 3}))


def test_held_footage_kept_at_day_100_then_deleted_after_release(vault: Vault) -> None:
    rec = _put(vault, "held")
    other = _put(vault, "other", source="cam-02")
    hold = place_hold(
        vault, kind=HoldKind.SAR, reason="subject access request", reference="SAR-2026-0042",
        source_id="cam-01", window=(T0 - dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=5)), actor=ACTOR,
    )
    report = run_retention(vault, now=T0 + dt.timedelta(days=100))
    assert [d.recording_id for d in report.kept] == [rec.id]
    assert "SAR-2026-0042" in report.kept[0].reason
    assert [d.recording_id for d in report.deleted] == [other.id]

    release_hold(vault, hold.id, actor=ACTOR, reason="disclosed")
    report = run_retention(vault, now=T0 + dt.timedelta(days=101))
    assert [d.recording_id for d in report.deleted] == [rec.id]
    with pytest.raises(InvalidInput, match="already released"):
        release_hold(vault, hold.id, actor=ACTOR, reason="again")


def test_case_hold_keeps_linked_footage(vault: Vault) -> None:
    rec = _put(vault, "case")
    with vault.sessions.begin() as s:
        case = Case(reference="ASB-1")
        s.add(case)
        s.flush()
        s.add(CaseRecording(case_id=case.id, recording_id=rec.id))
        case_id = case.id
    place_hold(vault, kind=HoldKind.CASE, reason="ASB case", case_id=case_id, actor=ACTOR)
    report = run_retention(vault, now=T0 + dt.timedelta(days=60))
    assert [d.recording_id for d in report.kept] == [rec.id]


def test_derived_copies_follow_their_parent_unless_separately_held(vault: Vault) -> None:
    parent = _put(vault, "parent")
    child = _put(vault, "redacted", parent_id=parent.id, provenance={"kind": "redaction"})
    held_child = _put(vault, "clip", parent_id=parent.id, provenance={"kind": "clip"})
    # Derived copies keep their own (later) date: the parent's deletion takes them.
    with vault.sessions.begin() as s:
        for rid in (child.id, held_child.id):
            s.get(Recording, rid).retain_until = T0 + dt.timedelta(days=400)  # type: ignore[union-attr]
    place_hold(vault, kind=HoldKind.POLICE, reason="police request", recording_id=held_child.id, actor=ACTOR)
    report = run_retention(vault, now=T0 + dt.timedelta(days=23))
    assert {d.recording_id for d in report.deleted} == {parent.id, child.id}
    assert "derived from" in next(d.reason for d in report.deleted if d.recording_id == child.id)
    assert [d.recording_id for d in report.kept] == [held_child.id]


def test_shredded_recording_cannot_be_read_even_from_a_restored_backup(vault: Vault) -> None:
    rec = _put(vault, "secret")
    backup = (vault.settings.objects_dir / rec.object_key).read_bytes()
    run_retention(vault, now=T0 + dt.timedelta(days=24))
    # Restore the ciphertext object from "backup": the key is gone, so it stays unreadable.
    path = vault.settings.objects_dir / rec.object_key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(backup)
    with pytest.raises(Shredded, match="deleted on 2026-10-25"):
        vault.read(rec.id, actor=ACTOR, purpose=PURPOSE)


def test_rerun_is_idempotent_and_custody_still_verifies(vault: Vault) -> None:
    recs = [_put(vault, f"r{i}") for i in range(3)]
    run_retention(vault, now=T0 + dt.timedelta(days=30))
    again = run_retention(vault, now=T0 + dt.timedelta(days=31))
    assert again.deleted == [] and again.purged == []
    deleted_events = vault.ledger.events(action=Action.DELETED)
    assert sorted(e.object_ids[0] for e in deleted_events) == sorted(r.id for r in recs)
    vault.ledger.verify()
    # Deleting footage never deletes its events.
    assert vault.ledger.events(object_id=recs[0].id, action=Action.INGESTED)


def test_interrupted_purge_is_finished_by_the_next_run(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _put(vault, "x")
    from vault.errors import StorageError

    def broken_delete(key: str) -> int:
        raise StorageError("cannot reach S3 endpoint 127.0.0.1:1: refused")

    monkeypatch.setattr(vault.store, "delete", broken_delete)
    report = run_retention(vault, now=T0 + dt.timedelta(days=30))
    assert [d.recording_id for d in report.deleted] == [rec.id]
    assert report.errors and "cannot reach" in report.errors[0]
    assert vault.recording(rec.id).purged_at is None
    monkeypatch.undo()
    report = run_retention(vault, now=T0 + dt.timedelta(days=31))
    assert report.deleted == [] and report.purged == [rec.id]
    assert not vault.store.exists(rec.object_key)
    assert len(vault.ledger.events(action=Action.DELETED)) == 1


def test_reaper_killed_midway_loses_nothing_and_never_doubles(vault: Vault, tmp_path: Path) -> None:
    recs = [_put(vault, f"k{i}") for i in range(6)]
    home = vault.settings.home_dir
    # A child process runs retention and is killed (os._exit) right after its third deletion
    # commits, before purging: a crash at the worst moment.
    script = textwrap.dedent(
        f"""
        import datetime as dt, os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from vault.config import Settings
        from vault.vault import Vault
        from vault.casework import retention
        vault = Vault.open(Settings(home={str(home)!r}, segment_size=4096))
        count = 0
        real = retention._decide_and_delete
        def crashing(*a, **k):
            global count
            d = real(*a, **k)
            count += 1
            if count == 3:
                os._exit(9)
            return d
        retention._decide_and_delete = crashing
        retention.run_retention(vault, now=dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert len(vault.ledger.events(action=Action.DELETED)) == 3
    report = run_retention(vault, now=dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc))
    assert len(report.deleted) == 3
    assert sorted(report.purged) == sorted(r.id for r in recs)
    events = vault.ledger.events(action=Action.DELETED)
    assert sorted(e.object_ids[0] for e in events) == sorted(r.id for r in recs)
    vault.ledger.verify()


def test_deletion_certificate_verifies_offline_and_detects_tampering(vault: Vault) -> None:
    rec = _put(vault, "cert")
    with pytest.raises(NotFound, match="has not been deleted"):
        deletion_certificate(vault, rec.id)
    run_retention(vault, now=T0 + dt.timedelta(days=23))
    doc = deletion_certificate(vault, rec.id)
    vkey = vault.ledger.verifier_key()
    payload = verify_deletion_certificate(doc, vkey)
    assert payload["recording_id"] == rec.id and payload["sha256"] == rec.sha256
    assert payload["key_id"] == rec.key_id

    forged = {**doc, "certificate": {**doc["certificate"], "sha256": "0" * 64}}
    with pytest.raises(LedgerError):
        verify_deletion_certificate(forged, vkey)
    bad_note = {**doc, "signed_note": doc["signed_note"].replace(rec.sha256, "1" * 64)}
    with pytest.raises(LedgerError):
        verify_deletion_certificate(bad_note, vkey)


def test_deletion_certificate_after_a_key_rotation_verifies_with_the_earlier_key(
        vault: Vault) -> None:
    rec = _put(vault, "rotated")
    old = vault.ledger.verifier_key()
    run_retention(vault, now=T0 + dt.timedelta(days=23))
    new = vault.ledger.rotate_key(actor="admin", reason="annual rotation")["new_key"]
    doc = deletion_certificate(vault, rec.id)
    assert doc["verifier_key"] == new
    for key in (old, new):
        assert verify_deletion_certificate(doc, key)["recording_id"] == rec.id
    with pytest.raises(LedgerError):
        verify_deletion_certificate({**doc, "key_handovers": []}, old)
