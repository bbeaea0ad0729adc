"""Intermediates: a job's work product that another job on another machine picks up.

A long redaction is rendered in chunks, each by a job any worker on any host may run
(:mod:`api.jobs`); the parent job that joins them needs the rendered chunks back. A rendered
chunk is footage: faces masked by a plan nobody has reviewed yet, everything else as filmed.
So it is kept as footage is (docs/design.md, "Encryption"):

1. **Encrypted like a recording.** A fresh data key per intermediate, the same ``evs1``
   segmented AES-GCM bound to the intermediate's id (:mod:`vault.storage.crypto`), the key
   wrapped by the keyring and bound to the same id. The ciphertext goes to the object store
   under ``intermediates/<owner job>/<id>``, where every worker can read it; the wrapped key
   and the plaintext's SHA-256 go to the catalog (``job_intermediates``), never to a job's
   params or result, which the API shows.
2. **Checked when fetched.** The plaintext's SHA-256 must be the one recorded when it was
   stored, or the fetch fails and leaves no file.
3. **Gone when the job is.** The owner job discards its intermediates when it ends, whatever
   the outcome (row first: the key goes, so the ciphertext is unreadable even before the
   object is deleted). Whatever a dead worker left is removed by the queue's sweep: rows whose
   owner job finished, and objects under ``intermediates/`` without a row, once older than
   an hour (a store still in flight has no row yet).
4. **Forgotten with their recording.** Retention deleting a recording destroys the keys of
   the intermediates made from it in the same transaction (:mod:`vault.casework.retention`).

They are not recordings: not in the catalog of footage, not searchable, not shareable, with
no custody event of their own. The reads of the recording they were made from are custody
events of the job that made them, and what the owner job makes of them (a redacted copy) is
stored and logged as a recording.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from vault.errors import HashMismatch, NotFound, StorageError, VaultError
from vault.plaintext import private_partial
from vault.storage import crypto
from vault.storage.catalog import Base, new_id, utcnow
from vault.storage.keys import WrappedKey

if TYPE_CHECKING:
    from vault.vault import Vault

PREFIX = "intermediates/"

#: Objects under :data:`PREFIX` with no row are left alone this long: a store in flight
#: writes the object before its row.
ORPHAN_AFTER = dt.timedelta(hours=1)


class JobIntermediate(Base):
    """One encrypted intermediate: who made it, who will use it, and how to open it."""

    __tablename__ = "job_intermediates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # The job that uses it and discards it when it ends (a chunked render's parent).
    owner_job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    # The job that made it (a chunk render job).
    made_by_job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    # The recording it was made from: retention deleting it destroys this key too.
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    object_key: Mapped[str] = mapped_column(String(256))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_size: Mapped[int] = mapped_column(BigInteger)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class StoredIntermediate:
    """What a job that stored an intermediate may say about it (its result): no key."""

    id: str
    name: str
    size: int
    sha256: str


@dataclass
class IntermediateSweep:
    """What :func:`sweep_intermediates` removed: intermediate ids and orphan object keys."""

    discarded: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


def store_intermediate(vault: Vault, path: Path, *, owner_job_id: str, made_by_job_id: str,
                       recording_id: str, name: str) -> StoredIntermediate:
    """Encrypt the file at ``path`` into the object store for job ``owner_job_id``.

    Nothing half-stored: if the catalog row does not commit, the object is deleted.
    Raises StorageError, KeyUnavailable, NotFound (no such file).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no such file: {path}")
    intermediate_id = new_id()
    object_key = f"{PREFIX}{owner_job_id}/{intermediate_id}"
    dek = crypto.new_data_key()
    with path.open("rb") as f:
        reader = crypto.EncryptingReader(f, dek=dek, object_id=intermediate_id,
                                         segment_size=vault.settings.segment_size)
        try:
            info = vault.store.put(object_key, reader)  # type: ignore[arg-type]
        finally:
            reader.close()
    try:
        # The check Vault.put_stream makes of a recording: a short object is a failed store.
        expected = crypto.ciphertext_size(reader.plaintext_size, vault.settings.segment_size)
        if info.size != expected:
            raise StorageError(f"stored object {object_key} is {info.size} bytes, expected "
                               f"{expected}")
        wrapped = vault.keys.wrap(dek, context=intermediate_id)
        row = JobIntermediate(
            id=intermediate_id, owner_job_id=owner_job_id, made_by_job_id=made_by_job_id,
            recording_id=recording_id, name=name, object_key=object_key,
            size=reader.plaintext_size, sha256=reader.plaintext_sha256, stored_size=info.size,
            wrapped_dek=wrapped.blob, key_id=wrapped.key_id, created_at=vault.clock())
        with vault.sessions.begin() as session:
            session.add(row)
    except BaseException:
        with contextlib.suppress(VaultError):
            vault.store.delete(object_key)
        raise
    return StoredIntermediate(id=intermediate_id, name=name, size=reader.plaintext_size,
                              sha256=reader.plaintext_sha256)


def fetch_intermediate(vault: Vault, intermediate_id: str, destination: Path, *,
                       owner_job_id: str) -> Path:
    """Decrypt intermediate ``intermediate_id`` of job ``owner_job_id`` into ``destination``
    (created 0600, in place only once every byte decrypted and the SHA-256 is the one stored).

    Raises NotFound (no such intermediate for that job: discarded, or another job's),
    HashMismatch, CiphertextError, KeyUnavailable.
    """
    with vault.sessions() as session:
        row = session.get(JobIntermediate, intermediate_id)
    if row is None or row.owner_job_id != owner_job_id:
        raise NotFound(f"job {owner_job_id} has no intermediate {intermediate_id} (discarded "
                       "when its job ended, or another job's): run the job again")
    dek = vault.keys.unwrap(WrappedKey(key_id=row.key_id, blob=row.wrapped_dek), context=row.id)
    destination = Path(destination)
    tmp, out = private_partial(destination)
    try:
        with out, vault.store.open(row.object_key) as source:
            size, digest = crypto.decrypt_stream(source, out, dek=dek, object_id=row.id)
            out.flush()
            os.fsync(out.fileno())
        if (size, digest) != (row.size, row.sha256):
            raise HashMismatch(f"intermediate {row.name} of job {owner_job_id}: decrypted "
                               f"{size} bytes with SHA-256 {digest[:12]}..., stored {row.size} "
                               f"with {row.sha256[:12]}...")
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return destination


def _discard(vault: Vault, rows: list[JobIntermediate]) -> list[str]:
    # Rows (the wrapped keys) first: from that commit on the ciphertext cannot be opened,
    # even if deleting the object fails (the sweep retries it as an orphan).
    if not rows:
        return []
    with vault.sessions.begin() as session:
        session.execute(delete(JobIntermediate).where(
            JobIntermediate.id.in_([r.id for r in rows])))
    for row in rows:
        with contextlib.suppress(VaultError):
            vault.store.delete(row.object_key)
    return [r.id for r in rows]


def discard_intermediates(vault: Vault, owner_job_id: str) -> list[str]:
    """Destroy every intermediate of job ``owner_job_id`` (its keys, then its objects).
    Returns their ids."""
    with vault.sessions() as session:
        rows = list(session.scalars(select(JobIntermediate).where(
            JobIntermediate.owner_job_id == owner_job_id)))
    return _discard(vault, rows)


def forget_intermediates_of(session: Session, recording_id: str) -> None:
    """In the caller's transaction (retention deleting ``recording_id``): destroy the keys of
    the intermediates made from it. Their objects become orphans the sweep removes."""
    session.execute(delete(JobIntermediate).where(JobIntermediate.recording_id == recording_id))


def sweep_intermediates(vault: Vault, *, ended: Callable[[Set[str]], Set[str]],
                        now: dt.datetime | None = None,
                        orphan_after: dt.timedelta = ORPHAN_AFTER) -> IntermediateSweep:
    """Remove what jobs that ended without discarding (a dead worker) left: intermediates
    whose owner job has ended, and objects under :data:`PREFIX` with no row that are older
    than ``orphan_after``. ``ended``: which of the given job ids have ended (the queue's
    sweep passes its own reading of the jobs table). Safe to run from several workers at
    once."""
    now = now or vault.clock()
    report = IntermediateSweep()
    with vault.sessions() as session:
        rows = list(session.scalars(select(JobIntermediate)))
    finished = ended({r.owner_job_id for r in rows}) if rows else set()
    report.discarded = _discard(vault, [r for r in rows if r.owner_job_id in finished])
    known = {r.object_key for r in rows if r.owner_job_id not in finished}
    for key in vault.store.list(PREFIX):
        if key in known:
            continue
        try:
            info = vault.store.stat(key)
        except NotFound:
            continue
        if info.last_modified is not None and now - info.last_modified < orphan_after:
            continue
        with contextlib.suppress(NotFound):
            vault.store.delete(key)
        report.orphans.append(key)
    return report


__all__ = [
    "ORPHAN_AFTER",
    "PREFIX",
    "IntermediateSweep",
    "JobIntermediate",
    "StoredIntermediate",
    "discard_intermediates",
    "fetch_intermediate",
    "forget_intermediates_of",
    "store_intermediate",
    "sweep_intermediates",
]
