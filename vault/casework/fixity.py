"""Fixity checks: is every stored recording still the bytes that were ingested?

Footage can rot or be altered where it is stored (a failing disk, a bucket someone else can
write to, a restore from the wrong backup). A fixity check reads each recording back, decrypts
it (every segment's AES-GCM tag must verify) and compares its SHA-256 with the catalog's, the
same check an ingest agent makes before it deletes a source copy (:meth:`Vault.verify_recording`).

Results go into the custody ledger as ``fixity_checked`` events, one per batch of recordings,
naming every recording checked (so a recording's custody history shows when it was last proven
intact) with the hash each one matched, and each failure with its reason. Nothing is repaired
or deleted: a failure is for a person to look into (another copy, the source device, the
police), and the report says which recordings and why.

Outcomes per recording: ``ok``; ``corrupt`` (hash or authentication fails: altered or damaged
bytes); ``missing`` (the store has no object, or a shorter one); ``unreadable`` (its data key
does not unwrap, or the store cannot be reached).

Bytes that match the catalog prove little if the catalog itself was edited, so every run also
compares every catalog row with the custody ledger's record of it (source, capture times,
size, SHA-256, retention date, deletion: :mod:`vault.ledger.catalog_binding`), whatever recordings
were named or sampled. Rows that differ, rows no event created and live recordings whose row
is gone are failures too, with the outcome ``catalog_`` + the problem (``catalog_altered``,
``catalog_row_missing``, ...), recorded in the first ``fixity_checked`` event.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from vault.actors import Actor
from vault.storage.catalog import Recording
from vault.ledger.custody import Action
from vault.ledger.events import FixityChecked
from vault.errors import IntegrityError, InvalidInput, KeyUnavailable, NotFound, StorageError

if TYPE_CHECKING:
    from vault.vault import Vault

#: Recordings named per ``fixity_checked`` event.
BATCH = 100


@dataclass(frozen=True)
class FixityFailure:
    """One recording that did not prove intact."""

    recording_id: str
    outcome: str  # corrupt, missing or unreadable
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"recording_id": self.recording_id, "outcome": self.outcome, "reason": self.reason}


@dataclass
class FixityReport:
    """What one fixity run found."""

    checked: int = 0
    ok: int = 0
    bytes_checked: int = 0
    failures: list[FixityFailure] = field(default_factory=list)
    events: list[int] = field(default_factory=list)  # custody seqs of the fixity_checked events

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "ok": self.ok,
            "bytes_checked": self.bytes_checked,
            "failures": [f.to_dict() for f in self.failures],
            "custody_events": self.events,
            "passed": self.passed,
        }

    def summary(self) -> str:
        head = f"{self.ok} of {self.checked} recordings intact ({self.bytes_checked / 1e6:.1f} MB)"
        if self.passed:
            return head
        kinds: dict[str, int] = {}
        for f in self.failures:
            kinds[f.outcome] = kinds.get(f.outcome, 0) + 1
        return head + "; FAILED: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))


def live_recordings(vault: Vault) -> list[str]:
    """Ids of every recording whose footage is still held (not deleted), oldest capture first."""
    with vault.sessions() as session:
        return list(
            session.scalars(
                select(Recording.id)
                .where(Recording.deleted_at.is_(None))
                .order_by(Recording.captured_start, Recording.id)
            )
        )


def check_fixity(
    vault: Vault,
    *,
    actor: Actor,
    recording_ids: Sequence[str] | None = None,
    sample: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FixityReport:
    """Check ``recording_ids`` (default: every recording still held), or a random ``sample``
    of that many, and every catalog row against the ledger; log ``fixity_checked`` events;
    return the report.

    Raises NotFound for a named recording the catalog does not have, Shredded for a named
    recording already deleted. Failures of the footage itself are reported, not raised.
    """
    if recording_ids:
        ids = list(dict.fromkeys(recording_ids))
        for rid in ids:
            vault.ensure_not_deleted(vault.recording(rid))
    else:
        ids = live_recordings(vault)
    if sample is not None and sample < len(ids):
        ids = sorted(random.SystemRandom().sample(ids, sample))
    report = FixityReport()
    binding = vault.ledger.check_catalog()
    catalog_failed: dict[str, dict[str, str]] = {}
    for problem in binding.problems:
        failure = FixityFailure(problem.recording_id, f"catalog_{problem.kind}", problem.detail)
        report.failures.append(failure)
        catalog_failed.setdefault(problem.recording_id, failure.to_dict())
    if not ids and catalog_failed:
        vault.ledger.record(Action.FIXITY_CHECKED, actor=actor, details=FixityChecked(
            checked=0, ok=0, failed={}, catalog_rows=binding.recordings,
            catalog_failed=catalog_failed))
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        hashes: dict[str, str] = {}
        failed: dict[str, dict[str, str]] = {}
        for rid in batch:
            outcome = _check_one(vault, rid)
            report.checked += 1
            if isinstance(outcome, FixityFailure):
                report.failures.append(outcome)
                failed[rid] = {"outcome": outcome.outcome, "reason": outcome.reason}
            else:
                report.ok += 1
                report.bytes_checked += outcome.size
                hashes[rid] = outcome.sha256
            if progress is not None:
                progress(report.checked, len(ids))
        record = vault.ledger.record(
            Action.FIXITY_CHECKED,
            actor=actor,
            object_ids=batch,
            hashes=hashes,
            details=_batch_details(batch, hashes, failed, binding.recordings if start == 0
                                   else None, catalog_failed),
        )
        report.events.append(record.seq)
    return report


def _batch_details(
    batch: Sequence[str], hashes: dict[str, str], failed: dict[str, dict[str, str]],
    catalog_rows: int | None, catalog_failed: dict[str, dict[str, str]],
) -> FixityChecked:
    # One batch's event; the first (``catalog_rows`` given) also carries the catalog check.
    details = FixityChecked(checked=len(batch), ok=len(hashes), failed=failed)
    if catalog_rows is not None:
        details["catalog_rows"] = catalog_rows
        details["catalog_failed"] = catalog_failed
    return details


def _check_one(vault: Vault, rid: str) -> Recording | FixityFailure:
    try:
        return vault.verify_recording(rid)
    except NotFound as exc:
        return FixityFailure(rid, "missing", str(exc))
    except (IntegrityError, InvalidInput) as exc:
        # A short object reads as a range past its end: say it is missing bytes when it is.
        return FixityFailure(rid, _short_or_corrupt(vault, rid), str(exc))
    except (KeyUnavailable, StorageError) as exc:
        return FixityFailure(rid, "unreadable", str(exc))


def _short_or_corrupt(vault: Vault, rid: str) -> str:
    recording = vault.recording(rid)
    try:
        size = vault.store.stat(recording.object_key).size
    except (NotFound, StorageError):
        return "missing"
    return "missing" if size < (recording.stored_size or 0) else "corrupt"


__all__ = ["BATCH", "FixityFailure", "FixityReport", "check_fixity", "live_recordings"]
