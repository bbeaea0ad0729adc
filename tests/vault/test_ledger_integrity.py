"""Tamper drills: evidence that cannot be quietly changed (issue #11 findings 13, 14, 15, 18).

Each drill does what an insider with write access to the catalog database would do (delete the
tail of the custody log, edit or drop a recording's row, restore a backup after a shred) and
shows it is detected or impossible, on a real vault: SQLite catalog, local encrypted store.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from vault import Actor, Purpose, Role, Vault
from vault.capture import Capture
from vault.storage.catalog import Recording, Setting
from vault.ledger.catalog_binding import RECORD_KEY
from vault.ledger.checkpoint import LEGACY_ORIGIN, open_checkpoint
from vault.config import Settings
from vault.ledger.custody import ORIGIN_META_KEY, Action, CustodyCheckpointRow
from vault.errors import CatalogMismatch, ConfigError, LedgerError, Shredded
from vault.casework.fixity import check_fixity
from vault.casework.retention import run_retention

OFFICER = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Northgate Housing")
AUDITOR = Actor(user="audit-1", role=Role.AUDITOR, organisation="Northgate Housing")
PURPOSE = Purpose(purpose="incident review", lawful_basis="DPA 2018 s35", reference="ASB/7")
T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def _settings(tmp_path: Path, **options: Any) -> Settings:
    options.setdefault("ledger_witness_dir", tmp_path / "witness-host")
    return Settings(home=tmp_path / "home", segment_size=4096, **options)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.init(_settings(tmp_path)) as v:
        yield v


def _put(vault: Vault, source: str = "cam-A1", minutes: int = 0, size: int = 6000) -> Recording:
    return vault.put_stream(
        io.BytesIO(os.urandom(size)),
        Capture(
            source_id=source,
            captured_at=T0 + dt.timedelta(minutes=minutes),
            original_name=f"{source}-{minutes}.mp4",
        ),
        actor=OFFICER,
    )


def _sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def _delete_tail(vault: Vault, count: int) -> None:
    """The attack: drop the newest ``count`` events and every checkpoint that covers them."""
    size = vault.ledger.size()
    first = size - count
    _sql(vault.engine, "DELETE FROM custody_event_objects WHERE seq >= :s", s=first)
    _sql(vault.engine, "DELETE FROM custody_events WHERE seq >= :s", s=first)
    _sql(vault.engine, "DELETE FROM custody_checkpoints WHERE size > :s", s=first)


def _signed_size(vault: Vault) -> int:
    with vault.sessions() as session:
        return session.scalar(select(func.max(CustodyCheckpointRow.size))) or 0


# --- finding 13: the unsigned tail --------------------------------------------------------------


@pytest.mark.parametrize("action", [Action.RELEASED, Action.ACCESS_DENIED, Action.SHARED,
                                    Action.EXPORTED, Action.DELETED, Action.KEY_ROTATED])
def test_a_sensitive_event_is_signed_at_once(vault: Vault, action: Action) -> None:
    """Issue #11 finding 13: denials, releases, shares, exports, deletions and key events are
    covered by a signed, witnessed checkpoint as soon as they commit (was: every 256 events)."""
    for _ in range(3):
        vault.ledger.record(Action.VIEWED, actor="asb-1")
    details = {"key": "keyring"} if action is Action.KEY_ROTATED else {}
    vault.ledger.record(action, actor="asb-1", details=details)
    assert _signed_size(vault) == vault.ledger.size()
    witnessed = open_checkpoint(vault.settings.witness_file.read_text(),
                                vault.ledger.verifier_key(), origin=vault.ledger.origin)
    assert witnessed.size == vault.ledger.size()


def test_an_appender_that_forgets_to_checkpoint_is_covered_too(vault: Vault) -> None:
    """Issue #11 finding 13: the checkpoint follows the commit of any transaction that appended
    a sensitive event, even when the caller never asks for one (the class, not one caller)."""
    with vault.sessions.begin() as session:
        vault.ledger.append(session, Action.RELEASED, actor="police-9", reference="HOLD/1")
    assert _signed_size(vault) == vault.ledger.size() == 1


def test_deleting_the_tail_with_a_release_and_a_download_is_detected(
    vault: Vault, tmp_path: Path
) -> None:
    """Issue #11 finding 13 drill: the review deleted the last 55 events (a cross-site download
    and hold releases among them) and verify stayed green. Now the witness, kept in another
    directory, holds a checkpoint the shortened ledger cannot match."""
    rec = _put(vault)
    for i in range(50):
        vault.ledger.record(Action.VIEWED, actor="asb-1", object_ids=[rec.id])
    vault.export_file(rec.id, tmp_path / "copy.mp4", actor=OFFICER, purpose=PURPOSE)
    for _ in range(4):
        vault.ledger.record(Action.RELEASED, actor="police-9", object_ids=[rec.id],
                            details={"reason": "case closed"})
    report = vault.ledger.verify()
    assert report.unsigned == 0 and report.witnessed == report.events
    _delete_tail(vault, 55)
    with pytest.raises(LedgerError, match="events were removed|rolled back"):
        vault.ledger.verify()


def test_a_quiet_tail_is_signed_within_the_interval(tmp_path: Path) -> None:
    """Issue #11 finding 13: with new events, a checkpoint comes at least every
    ``checkpoint_interval_s`` even if nothing else happens (a timer, not the next append)."""
    with Vault.init(_settings(tmp_path, checkpoint_interval_s=1)) as vault:
        vault.ledger.record(Action.VIEWED, actor="asb-1")
        vault.ledger.checkpoint()
        vault.ledger.record(Action.VIEWED, actor="asb-1")  # not sensitive: waits for the timer
        assert _signed_size(vault) == 1
        deadline = time.monotonic() + 10
        while _signed_size(vault) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _signed_size(vault) == 2
        assert vault.ledger.verify().unsigned == 0


def test_verify_counts_the_unsigned_events_and_close_signs_them(tmp_path: Path) -> None:
    """Issue #11 finding 13: ``custody verify`` says how many events no signature covers yet;
    closing the vault (a CLI command ending) signs them."""
    settings = _settings(tmp_path, checkpoint_interval_s=3600)
    with Vault.init(settings) as vault:
        vault.ledger.checkpoint()
        for _ in range(3):
            vault.ledger.record(Action.VIEWED, actor="asb-1")
        report = vault.ledger.verify()
        assert report.unsigned == 3
        assert "3 events not yet covered by a signature" in report.summary()
        assert report.to_dict()["unsigned"] == 3
    with Vault.open(settings) as vault:
        assert vault.ledger.verify().unsigned == 0


def test_the_witness_lives_in_the_directory_the_setting_names(vault: Vault, tmp_path: Path) -> None:
    """Issue #11 finding 13: ``ledger_witness_dir`` moves the witness off the data directory, so
    a rollback of the whole home directory's database is still caught by it."""
    vault.ledger.record(Action.DELETED, actor="reaper")
    assert vault.settings.witness_file == tmp_path / "witness-host" / "latest.checkpoint"
    assert vault.settings.witness_file.exists()
    assert not (vault.settings.home_dir / "checkpoints").exists()


# --- finding 14: the catalog bound to the ledger -------------------------------------------------


def test_new_recordings_record_their_catalog_row_in_the_ledger(vault: Vault) -> None:
    """Issue #11 finding 14: the creating event carries source, capture times, size, retention
    date and parent, so the row can be checked against it."""
    rec = _put(vault)
    (event,) = vault.ledger.events(object_id=rec.id)
    record = event.event.details[RECORD_KEY]
    assert record["source_id"] == "cam-A1" and record["size"] == 6000
    assert record["captured_start"] == "2026-11-25T12:00:00.000000Z"
    assert record["retain_until"].startswith("2026-12-18")
    assert vault.ledger.verify().recordings == 1


@pytest.mark.parametrize(
    "statement, field",
    [
        ("UPDATE recordings SET source_id = 'cam-B7' WHERE id = :id", "source_id"),
        ("UPDATE recordings SET captured_start = '2026-11-20 09:00:00.000000' WHERE id = :id",
         "captured_start"),
        ("UPDATE recordings SET retain_until = '2099-01-01 00:00:00.000000' WHERE id = :id",
         "retain_until"),
        ("UPDATE recordings SET size = size + 1 WHERE id = :id", "size"),
        ("UPDATE recordings SET sha256 = :zeros WHERE id = :id", "sha256"),
    ],
)
def test_editing_a_catalog_row_is_detected_by_verify_and_fixity(
    vault: Vault, statement: str, field: str
) -> None:
    """Issue #11 finding 14 drill: moving footage into another site's scope (source_id), out of
    retention (captured_start, retain_until) or swapping its hash is caught by ``custody
    verify`` and ``fixity check``, naming the recording, the field and the event."""
    _put(vault, "cam-B7", minutes=5)  # the other site's camera exists, as in a real vault
    rec = _put(vault)
    _sql(vault.engine, statement, id=rec.id, zeros="0" * 64)
    with pytest.raises(CatalogMismatch) as info:
        vault.ledger.verify()
    (problem,) = info.value.problems
    assert problem.recording_id == rec.id and problem.kind == "altered"  # type: ignore[attr-defined]
    assert field in problem.detail  # type: ignore[attr-defined]
    report = check_fixity(vault, actor=AUDITOR)
    assert not report.passed
    assert any(f.recording_id == rec.id and f.outcome == "catalog_altered" for f in report.failures)


def test_dropping_a_live_recordings_row_is_detected(vault: Vault) -> None:
    """Issue #11 finding 14 drill: a live recording whose row was deleted is reported missing
    (its footage would otherwise escape retention, holds and every listing unnoticed)."""
    keep, gone = _put(vault), _put(vault, minutes=1)
    _sql(vault.engine, "DELETE FROM recordings WHERE id = :id", id=gone.id)
    with pytest.raises(CatalogMismatch, match="row_missing") as info:
        vault.ledger.verify()
    assert [p.recording_id for p in info.value.problems] == [gone.id]  # type: ignore[attr-defined]
    report = check_fixity(vault, actor=AUDITOR, recording_ids=[keep.id])
    assert [(f.recording_id, f.outcome) for f in report.failures] == [
        (gone.id, "catalog_row_missing")]
    # The finding is itself in the custody log.
    (event,) = vault.ledger.events(action=Action.FIXITY_CHECKED)
    assert gone.id in event.event.details["catalog_failed"]


def test_a_row_no_event_created_and_an_unlogged_deletion_are_detected(vault: Vault) -> None:
    """Issue #11 finding 14: a row planted without an ingest event, and a row marked deleted
    with no deletion event (footage hidden from everyone), are both reported."""
    rec = _put(vault)
    other = _put(vault, minutes=2)
    _sql(vault.engine, "UPDATE recordings SET deleted_at = '2026-11-26 00:00:00' WHERE id = :id",
         id=other.id)
    with vault.engine.begin() as conn:
        row = dict(conn.execute(text("SELECT * FROM recordings WHERE id = :id"),
                                {"id": rec.id}).mappings().one())
        row.update(id="planted-0001", object_key="recordings/pl/planted-0001", parent_id=None)
        columns = ", ".join(row)
        conn.execute(text(f"INSERT INTO recordings ({columns}) VALUES "
                          f"({', '.join(':' + c for c in row)})"), row)
    with pytest.raises(CatalogMismatch) as info:
        vault.ledger.verify()
    kinds = {(p.recording_id, p.kind) for p in info.value.problems}  # type: ignore[attr-defined]
    assert kinds == {("planted-0001", "unrecorded"), (other.id, "deleted_unrecorded")}


def test_legitimate_changes_keep_the_catalog_bound(vault: Vault) -> None:
    """Issue #11 finding 14: what the vault itself does (derived copies, retention deletion,
    a retention date moved by an event that records it) verifies; only unrecorded edits fail."""
    parent = _put(vault)
    child = vault.put_stream(
        io.BytesIO(b"clip" * 500),
        Capture(source_id="cam-A1", captured_at=T0, parent_id=parent.id, action="clip.assembled"),
        actor=OFFICER,
    )
    run_retention(vault, now=T0 + dt.timedelta(days=60))
    assert vault.ledger.verify().recordings == 2
    fresh = _put(vault, minutes=3)
    new_date = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
    with vault.sessions.begin() as session:
        session.get(Recording, fresh.id).retain_until = new_date  # type: ignore[union-attr]
        vault.ledger.append(session, Action.HELD, actor="asb-1", object_ids=[fresh.id],
                            details={"retain_until": new_date.isoformat()})
    assert vault.ledger.verify().recordings == 3
    assert child.parent_id == parent.id


def test_rows_from_before_the_catalog_record_are_checked_on_what_they_have(vault: Vault) -> None:
    """Issue #11 finding 14: an ``ingested`` event written before catalog records existed still
    binds its source, start, size and hash."""
    rec_id = "legacy-0001"
    with vault.sessions.begin() as session:
        template = session.get(Recording, _put(vault).id)
        assert template is not None
        legacy = Recording(**{c.key: getattr(template, c.key)
                              for c in Recording.__table__.columns})  # type: ignore[attr-defined]
        legacy.id, legacy.object_key = rec_id, "recordings/le/legacy-0001"
        session.add(legacy)
        vault.ledger.append(session, Action.INGESTED, actor="agent", object_ids=[rec_id],
                            hashes={rec_id: template.sha256},
                            details={"source": "cam-A1", "size": template.size,
                                     "captured_start": T0.isoformat(), "original_name": "x"})
    assert vault.ledger.verify().recordings == 2
    _put(vault, "cam-Z", minutes=9)
    _sql(vault.engine, "UPDATE recordings SET source_id = 'cam-Z' WHERE id = :id", id=rec_id)
    with pytest.raises(CatalogMismatch, match="source_id"):
        vault.ledger.verify()


def test_the_catalog_check_streams(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #11 finding 14: the comparison reads rows and events in batches, in id order,
    holding one recording's events at a time (checked here on 300 recordings)."""
    import vault.ledger.catalog_binding as binding

    monkeypatch.setattr(binding, "_BATCH", 7)
    for i in range(300):
        vault.put_stream(
            io.BytesIO(i.to_bytes(4, "big")),
            Capture(source_id=f"cam-{i % 5}", captured_at=T0 + dt.timedelta(seconds=i)),
            actor=OFFICER,
        )
    report = vault.ledger.check_catalog()
    assert report.passed and report.recordings == 300


# --- finding 15: crypto-shredding leaves no key behind ------------------------------------------


def test_a_shredded_key_is_not_in_the_catalog_files_and_a_restored_backup_stays_unreadable(
    vault: Vault, tmp_path: Path
) -> None:
    """Issue #11 finding 15 drill: after retention shreds a recording, its wrapped data key is
    in none of catalog.sqlite3, -wal and -shm (the review recovered it from the WAL), so a
    restored backup of the ciphertext cannot be decrypted from the catalog's files."""
    rec = _put(vault, size=50_000)
    wrapped = bytes(rec.wrapped_dek or b"")
    assert len(wrapped) >= 32
    backup = tmp_path / "backup.bin"
    shutil.copyfile(vault.settings.objects_dir / rec.object_key, backup)
    report = run_retention(vault, now=T0 + dt.timedelta(days=30))
    assert [d.recording_id for d in report.deleted] == [rec.id] and not report.errors
    db = vault.settings.home_dir / "catalog.sqlite3"
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists():
            assert wrapped not in path.read_bytes(), f"wrapped data key found in {path.name}"
    # Restore the ciphertext from the "backup": still unreadable, the key is gone.
    target = vault.settings.objects_dir / rec.object_key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(backup, target)
    with pytest.raises(Shredded):
        vault.read(rec.id, actor=OFFICER, purpose=PURPOSE)


# --- finding 18: one origin per vault -------------------------------------------------------------


def test_each_new_vault_derives_and_keeps_its_own_origin(tmp_path: Path) -> None:
    """Issue #11 finding 18: every vault had the origin evidence-vault.local/custody; now init
    derives a unique one, stores it, and the signing key, checkpoints and reopenings use it."""
    first = _settings(tmp_path / "a")
    second = _settings(tmp_path / "b")
    with Vault.init(first) as a, Vault.init(second) as b:
        assert a.ledger.origin != b.ledger.origin
        assert "/evidence-vault/" in a.ledger.origin
        assert a.ledger.verifier_key().startswith(a.ledger.origin + "+")
        a.ledger.record(Action.DELETED, actor="reaper")
        origin = a.ledger.origin
    with Vault.init(first) as again, Vault.open(first) as opened:
        assert again.ledger.origin == opened.ledger.origin == origin
        assert opened.ledger.verify().events == 1
    with pytest.raises(ConfigError, match="fixed at init"):
        Vault.open(_settings(tmp_path / "a", ledger_origin="elsewhere/custody"))


def test_a_vault_from_before_origins_keeps_the_legacy_one(tmp_path: Path) -> None:
    """Issue #11 finding 18: an existing vault's checkpoints carry the old default origin; it
    keeps it (re-running init stores it) rather than orphaning its signed history."""
    settings = _settings(tmp_path)
    with Vault.init(settings) as vault:
        _sql(vault.engine, "DELETE FROM vault_meta WHERE key = :k", k=ORIGIN_META_KEY)
    with Vault.open(settings) as old:  # as an older release left it
        assert old.ledger.origin == LEGACY_ORIGIN
        old.ledger.record(Action.DELETED, actor="reaper")
    with Vault.init(settings) as upgraded:
        assert upgraded.ledger.origin == LEGACY_ORIGIN
        assert upgraded.ledger.verify().events == 1
        with upgraded.sessions() as session:
            assert session.get(Setting, ORIGIN_META_KEY).value == LEGACY_ORIGIN  # type: ignore[union-attr]


def test_catalog_binding_and_origin_on_every_backend(any_vault: Vault) -> None:
    """Issue #11 findings 14 and 18 on each catalog (SQLite, PostgreSQL: the id order both
    streams share is the code-point collation) and store: rows bound, an edit caught, the
    vault's own origin stored."""
    recs = {c: _put(any_vault, f"cam-{c}", minutes=i).id for i, c in enumerate("aBc-_Z9")}
    assert any_vault.ledger.verify().recordings == len(recs)
    assert any_vault.ledger.origin != LEGACY_ORIGIN
    _sql(any_vault.engine, "UPDATE recordings SET source_id = 'cam-a' WHERE id = :id", id=recs["c"])
    with pytest.raises(CatalogMismatch) as info:
        any_vault.ledger.verify()
    assert [p.recording_id for p in info.value.problems] == [recs["c"]]  # type: ignore[attr-defined]


def test_a_forked_worker_arms_its_own_timer(tmp_path: Path) -> None:
    """Issue #11 finding 13: a timer thread does not survive fork(); a worker process that
    inherited a ledger with a pending timer still signs its own quiet tail."""
    import threading

    with Vault.init(_settings(tmp_path, checkpoint_interval_s=1)) as vault:
        vault.ledger.checkpoint()
        inherited = threading.Timer(3600, lambda: None)  # never started: as after a fork
        vault.ledger._timer, vault.ledger._timer_pid = inherited, -1
        vault.ledger.record(Action.VIEWED, actor="asb-1")
        deadline = time.monotonic() + 10
        while _signed_size(vault) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _signed_size(vault) == 1


def test_the_checkpoint_follows_the_outer_commit_not_a_savepoint(vault: Vault) -> None:
    """Issue #11 finding 13: an event appended inside a savepoint is signed once the outer
    transaction commits; releasing the savepoint (the outer one still holding the appenders'
    lock) does not wait for that lock."""
    started = time.monotonic()
    with vault.sessions.begin() as session:
        with session.begin_nested():
            vault.ledger.append(session, Action.RELEASED, actor="police-9", reference="HOLD/1")
    assert time.monotonic() - started < 5
    assert _signed_size(vault) == vault.ledger.size() == 1
