"""Intermediates (vault/casework/intermediates.py): a job's work product another job on another
machine picks up (a chunked render's rendered chunks), kept as footage is kept: encrypted at
rest, checked when fetched, gone when its job ends and forgotten with its recording."""

from __future__ import annotations

import datetime as dt
import io
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from vault.actors import Actor, Role
from vault.capture import Capture
from vault.casework.intermediates import (
    PREFIX,
    IntermediateSweep,
    JobIntermediate,
    discard_intermediates,
    fetch_intermediate,
    store_intermediate,
    sweep_intermediates,
)
from vault.casework.jobs import Job, JobKind, JobState, ended_jobs
from vault.casework.retention import run_retention
from vault.errors import CiphertextError, NotFound
from vault.storage.catalog import Recording, SourceKind
from vault.storage.objectstore.local import LocalStore
from vault.vault import Vault

ACTOR = Actor(user="ig-1", role=Role.IG_OFFICER, organisation="Housing")
T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
#: What a plaintext chunk would show if it were stored as it is.
MARKER = b"FACE-OF-A-THIRD-PARTY:"


def _recording(vault: Vault) -> Recording:
    return vault.put_stream(io.BytesIO(os.urandom(5000)), Capture(
        source_id="cam-01", source_kind=SourceKind.CCTV, captured_at=T0), actor=ACTOR)


def _job(vault: Vault, kind: JobKind, *, state: JobState = JobState.RUNNING,
         parent_id: str | None = None) -> str:
    job = Job(kind=kind, state=state, params={}, created_by=ACTOR.user,
              created_role=ACTOR.role.value, created_org=ACTOR.organisation,
              parent_id=parent_id)
    with vault.sessions.begin() as session:
        session.add(job)
        session.flush()
        return job.id


def _part(tmp_path: Path, name: str = "part.mp4") -> Path:
    path = tmp_path / name
    path.write_bytes((MARKER + os.urandom(64)) * 400)
    return path


def _finish(vault: Vault, job_id: str) -> None:
    with vault.sessions.begin() as session:
        row = session.get(Job, job_id)
        assert row is not None
        row.state = JobState.SUCCEEDED


def _rows(vault: Vault) -> list[str]:
    with vault.sessions() as session:
        return list(session.scalars(select(JobIntermediate.id)))


def _sweep(vault: Vault, *, now: dt.datetime) -> IntermediateSweep:
    return sweep_intermediates(vault, ended=lambda ids: ended_jobs(vault, ids), now=now)


def _stored(vault: Vault, tmp_path: Path) -> tuple[str, str, Recording]:
    """A running parent, a chunk render child and the intermediate it stored."""
    rec = _recording(vault)
    parent = _job(vault, JobKind.REDACT)
    child = _job(vault, JobKind.REDACTION_CHUNK_RENDER, parent_id=parent)
    stored = store_intermediate(vault, _part(tmp_path), owner_job_id=parent,
                                made_by_job_id=child, recording_id=rec.id, name="chunk-0")
    return parent, stored.id, rec


def test_an_intermediate_is_encrypted_at_rest_and_comes_back_byte_for_byte(
        any_vault: Vault, tmp_path: Path) -> None:
    """On every store backend: the object under ``intermediates/<owner job>/`` is ciphertext
    (the plaintext's marker is nowhere in it), and the owner job fetches exactly the bytes
    stored, into a 0600 file."""
    vault = any_vault
    part = _part(tmp_path)
    parent, iid, _ = _stored(vault, tmp_path)
    (key,) = list(vault.store.list(f"{PREFIX}{parent}/"))
    with vault.store.open(key) as f:
        ciphertext = f.read()
    assert MARKER not in ciphertext and len(ciphertext) > part.stat().st_size
    out = fetch_intermediate(vault, iid, tmp_path / "back.mp4", owner_job_id=parent)
    assert out.read_bytes() == part.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_another_jobs_or_a_tampered_intermediate_is_refused_and_leaves_no_file(
        vault: Vault, tmp_path: Path) -> None:
    """An intermediate is fetched only by the job it was stored for; one whose ciphertext
    changed in the store fails authentication; neither leaves a file behind."""
    parent, iid, _ = _stored(vault, tmp_path)
    other = _job(vault, JobKind.REDACT)
    dest = tmp_path / "out" / "back.mp4"
    dest.parent.mkdir()
    with pytest.raises(NotFound, match="has no intermediate"):
        fetch_intermediate(vault, iid, dest, owner_job_id=other)
    assert isinstance(vault.store, LocalStore)
    (key,) = list(vault.store.list(PREFIX))
    path = vault.store.root.joinpath(*key.split("/"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    with pytest.raises(CiphertextError):
        fetch_intermediate(vault, iid, dest, owner_job_id=parent)
    assert list(dest.parent.iterdir()) == []


def test_discarding_destroys_the_key_and_the_object(vault: Vault, tmp_path: Path) -> None:
    parent, iid, _ = _stored(vault, tmp_path)
    assert discard_intermediates(vault, parent) == [iid]
    assert _rows(vault) == [] and list(vault.store.list(PREFIX)) == []
    with pytest.raises(NotFound):
        fetch_intermediate(vault, iid, tmp_path / "back.mp4", owner_job_id=parent)


def test_the_sweep_removes_what_ended_jobs_left_and_nothing_in_use(
        vault: Vault, tmp_path: Path) -> None:
    """A worker that died after storing leaves an intermediate whose owner job later ends:
    the sweep destroys it then, not while the owner runs. An object with no row (a store
    killed between object and row) is removed once an hour old, not before: a store in
    flight writes its object first."""
    parent, iid, _ = _stored(vault, tmp_path)
    now = dt.datetime.now(dt.UTC)
    assert _sweep(vault, now=now).discarded == []
    assert _rows(vault) == [iid]
    vault.store.put(f"{PREFIX}{parent}/half-stored", io.BytesIO(b"ciphertext"))
    assert _sweep(vault, now=now).orphans == []
    _finish(vault, parent)
    swept = _sweep(vault, now=now + dt.timedelta(hours=2))
    assert swept.discarded == [iid]
    assert swept.orphans == [f"{PREFIX}{parent}/half-stored"]
    assert _rows(vault) == [] and list(vault.store.list(PREFIX)) == []


def test_the_job_queues_sweep_removes_them_too(vault: Vault, tmp_path: Path) -> None:
    """The sweep every worker runs each minute (``JobQueue.sweep``) includes the
    intermediates' sweep."""
    from vault.casework.jobs import open_queue

    parent, iid, _ = _stored(vault, tmp_path)
    _finish(vault, parent)
    queue = open_queue(vault.settings, vault=vault)
    try:
        report = queue.sweep()
    finally:
        queue.close()
    assert report.intermediates == [iid] and _rows(vault) == []
    # The child (no heartbeat: its worker is gone) is a kind this vault-only queue has no
    # handler for: left to a queue that has one, not enqueued where nothing can run it.
    assert report.requeued == []


def test_retention_deleting_the_recording_destroys_its_intermediates_keys(
        clocked_vault: Vault, tmp_path: Path) -> None:
    """Forget: 23 days after capture the recording's key is destroyed, and in the same
    transaction the keys of intermediates made from it, however long their job runs; their
    objects are then orphans the sweep removes."""
    vault = clocked_vault
    parent, iid, rec = _stored(vault, tmp_path)
    report = run_retention(vault, now=T0 + dt.timedelta(days=23))
    assert rec.id in [d.recording_id for d in report.deleted]
    assert _rows(vault) == []
    with pytest.raises(NotFound):
        fetch_intermediate(vault, iid, tmp_path / "back.mp4", owner_job_id=parent)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    assert len(_sweep(vault, now=later).orphans) == 1
    assert list(vault.store.list(PREFIX)) == []
