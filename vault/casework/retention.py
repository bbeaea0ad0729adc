"""Retention: footage is deleted 23 days after capture unless a hold keeps it.

The rule
    A recording falls due ``days`` after its capture start (:mod:`vault.storage.retention_rule`), where ``days`` is
    ``Settings.retention_days`` (23) or the override for its source kind
    (``Settings.retention_overrides``). Derived copies (redactions, clips) follow their parent:
    they are deleted with it unless separately held. A stored disclosure package holds copies
    of several recordings, so it goes with the first of them to go (unless held itself): a
    package must not keep footage past that footage's own retention. An active hold (see ``vault/storage/hold_rule.py``)
    keeps a recording however old it is; once released, the next run deletes it if due.

Deletion (NIST SP 800-88 "cryptographic erase", then object delete)
    1. In one transaction: destroy the wrapped data key, mark the recording deleted, and append
       a ``deleted`` custody event (id, hash, size, capture time, key id, policy, reason).
       From this commit on, no copy of the ciphertext, including backups, can be decrypted.
    2. Delete every stored version of the ciphertext (lifting an S3 legal hold first), then
       record ``purged_at``.
    A run killed between the two steps leaves a deleted-but-unpurged row; the next run purges
    it. Step 1 is guarded by ``deleted_at IS NULL`` inside the write lock, so two runs never
    log the same deletion twice. The run is idempotent and takes an explicit clock.

The reaper is the authority. S3 lifecycle rules and object lock are defence in depth only
(MinIO's lifecycle scanner can lag by days).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from vault.actors import Actor, Role
from vault.storage.catalog import Recording
from vault.casework.intermediates import forget_intermediates_of
from vault.ledger._export_verifier import VerificationError, follow_handovers
from vault.ledger.checkpoint import open_note
from vault.ledger.custody import Action, CustodyLedger
from vault.ledger.events import Deleted
from vault.ledger.rfc8785 import canonical_json
from vault.storage.db import scrub_freed_pages
from vault.errors import InvalidInput, LedgerError, NotFound, VaultError
from vault.storage.hold_rule import active_holds
from vault.storage.retention_rule import RetentionPolicy

if TYPE_CHECKING:
    from vault.vault import Vault

CERTIFICATE_FORMAT = "evidence-vault/deletion-certificate/v1"
_CERTIFICATE_HEADER = "evidence-vault deletion certificate v1"

REAPER = Actor(user="system:retention", role=Role.ADMINISTRATOR)


def clock_note(recording: Recording) -> str | None:
    """Why ``recording``'s capture times are flagged, for people; None when they are not.

    The reason recorded at ingest (``media_info["clock"]["reason"]``: a device clock off by
    more than the agent's bound, a capture time after receipt), or a generic one.
    """
    if not recording.clock_flagged:
        return None
    clock = (recording.media_info or {}).get("clock")
    reason = clock.get("reason") if isinstance(clock, dict) else None
    return str(reason) if reason else "the device clock was off: check the capture times"


@dataclass
class Decision:
    """What a retention run did with one recording, and why."""

    recording_id: str
    source: str
    captured_start: str
    retain_until: str
    outcome: str  # deleted | kept | would_delete
    reason: str
    holds: list[str] = field(default_factory=list)


@dataclass
class RetentionReport:
    """The result of one retention run."""

    now: str
    dry_run: bool
    deleted: list[Decision] = field(default_factory=list)
    kept: list[Decision] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"retention at {self.now}: {verb} {len(self.deleted)}, kept {len(self.kept)} under hold, "
            f"purged {len(self.purged)} stored objects, {len(self.errors)} errors"
        )


def run_retention(
    vault: Vault, *, now: dt.datetime | None = None, dry_run: bool = False, actor: Actor = REAPER
) -> RetentionReport:
    """Delete every due, unheld recording (and its unheld derived copies); report the rest.

    ``now`` defaults to the vault's clock. A storage failure on one object is reported in
    ``errors`` and retried on the next run; it never stops the run.
    """
    now = now or vault.clock()
    if now.tzinfo is None:
        raise InvalidInput("the retention clock must be timezone-aware")
    policy = RetentionPolicy.from_settings(vault.settings)
    report = RetentionReport(now=now.isoformat(), dry_run=dry_run)
    if not dry_run:
        _purge_pending(vault, report)

    deleted_ids: set[str] = set()
    with vault.sessions() as session:
        due = list(
            session.scalars(
                select(Recording)
                .where(Recording.deleted_at.is_(None), Recording.retain_until <= now)
                .order_by(Recording.retain_until, Recording.id)
            )
        )
    packages = _packages_by_item(vault)
    queue: list[tuple[str, str | None, str]] = [(r.id, None, "") for r in due]
    while queue:
        recording_id, parent_id, relation = queue.pop(0)
        decision = _decide_and_delete(vault, recording_id, parent_id, relation, now, policy,
                                      dry_run, actor)
        if decision is None:
            continue
        if decision.outcome == "kept":
            report.kept.append(decision)
            continue
        report.deleted.append(decision)
        deleted_ids.add(recording_id)
        # Derived copies follow their parent.
        with vault.sessions() as session:
            children = session.scalars(
                select(Recording.id).where(
                    Recording.parent_id == recording_id, Recording.deleted_at.is_(None)
                )
            ).all()
        queue.extend((child, recording_id, "derived from") for child in children
                     if child not in deleted_ids)
        queue.extend((package, recording_id, "disclosure package holding a copy of")
                     for package in packages.get(recording_id, ())
                     if package not in deleted_ids and package not in children)

    if not dry_run:
        _purge_pending(vault, report)
        vault.checkpoint_if_due()
        # The destroyed data keys must not outlive the run in the SQLite write-ahead log, where
        # a copy of the files would still hold them (issue #11 finding 15).
        if report.deleted and not scrub_freed_pages(vault.engine):
            report.errors.append(
                "the catalog's write-ahead log still holds pages from before the deletions"
                " (other connections kept it busy); run retention again to truncate it"
            )
    return report


def _packages_by_item(vault: Vault) -> dict[str, list[str]]:
    """Live stored disclosure packages, by each recording they hold a copy of."""
    out: dict[str, list[str]] = {}
    with vault.sessions() as session:
        for package in session.scalars(
            select(Recording).where(Recording.parent_id.is_not(None),
                                    Recording.deleted_at.is_(None))
        ):
            provenance = package.provenance or {}
            if provenance.get("kind") == "export":
                for item in provenance.get("recording_ids") or ():
                    out.setdefault(str(item), []).append(package.id)
    return out


def _decide_and_delete(
    vault: Vault,
    recording_id: str,
    parent_id: str | None,
    relation: str,
    now: dt.datetime,
    policy: RetentionPolicy,
    dry_run: bool,
    actor: Actor,
) -> Decision | None:
    # One transaction per recording: the key, the row and the event change together (step 1).
    with vault.sessions.begin() as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.deleted_at is not None:
            return None  # another run got there first
        holds = active_holds(session, recording)
        kind = recording.source.kind
        reason = (
            f"{relation} {parent_id}, which was deleted"
            if parent_id
            else policy.describe(kind)
        )
        decision = Decision(
            recording_id=recording.id,
            source=recording.source_id,
            captured_start=recording.captured_start.isoformat(),
            retain_until=recording.retain_until.isoformat(),
            outcome="kept" if holds else ("would_delete" if dry_run else "deleted"),
            reason=(
                "held: " + "; ".join(f"{h.kind.value} hold ({h.reference or h.reason})" for h in holds)
                if holds
                else reason
            ),
            holds=[h.id for h in holds],
        )
        if holds or dry_run:
            return decision
        key_id = recording.key_id
        recording.wrapped_dek = None
        # What jobs made from it and have not yet discarded goes with it (their keys now;
        # their objects are orphans the queue's sweep removes).
        forget_intermediates_of(session, recording.id)
        recording.deleted_at = now
        recording.deletion_reason = reason
        vault.ledger.append(
            session,
            Action.DELETED,
            actor=actor,
            object_ids=[recording.id],
            hashes={recording.id: recording.sha256},
            details=_deleted(recording, reason=reason, policy=policy.describe(kind),
                             key_id=key_id, parent_id=parent_id),
        )
    return decision


def _deleted(
    recording: Recording, *, reason: str, policy: str, key_id: str | None, parent_id: str | None
) -> Deleted:
    # The deleted event of one recording, read before its row was changed.
    details = Deleted(
        reason=reason,
        policy=policy,
        source=recording.source_id,
        size=recording.size,
        captured_start=recording.captured_start.isoformat(),
        retain_until=recording.retain_until.isoformat(),
        key_id=key_id,
        method="crypto-shred (wrapped data key destroyed) + delete of every stored version",
    )
    if parent_id:
        details["parent_id"] = parent_id
    return details


def _purge_pending(vault: Vault, report: RetentionReport) -> None:
    """Step 2: remove the ciphertext of recordings whose key is already destroyed."""
    with vault.sessions() as session:
        pending = session.scalars(
            select(Recording).where(Recording.deleted_at.is_not(None), Recording.purged_at.is_(None))
        ).all()
    for recording in pending:
        try:
            vault.store.set_legal_hold(recording.object_key, False)
            vault.store.delete(recording.object_key)
        except NotFound:
            pass
        except VaultError as error:
            report.errors.append(f"{recording.id}: {error}")
            continue
        with vault.sessions.begin() as session:
            row = session.get(Recording, recording.id)
            if row is not None and row.purged_at is None:
                row.purged_at = vault.clock()
        report.purged.append(recording.id)


def deletion_certificate(vault: Vault, recording_id: str) -> dict[str, Any]:
    """A signed certificate that ``recording_id`` was destroyed, with the inclusion proof of its
    ``deleted`` custody event.

    The certificate is a C2SP signed note (the ledger's Ed25519 key) whose text is a header
    line and the canonical JSON of the payload, so anyone holding the ledger's verifier key can
    check it offline. Raises NotFound when the recording does not exist or is not deleted.
    """
    recording = vault.recording(recording_id)
    if recording.deleted_at is None:
        raise NotFound(f"recording {recording_id} has not been deleted")
    events = [
        e for e in vault.ledger.events(object_id=recording_id, action=Action.DELETED, limit=10)
    ]
    if not events:
        raise NotFound(f"no deletion event for recording {recording_id}")
    event = events[0]
    proof = vault.ledger.inclusion_proof(event.seq)
    payload = {
        "format": CERTIFICATE_FORMAT,
        "recording_id": recording.id,
        "sha256": recording.sha256,
        "size": recording.size,
        "source": recording.source_id,
        "captured_start": recording.captured_start.isoformat(),
        "key_id": recording.key_id,
        "destroyed_at": recording.deleted_at.isoformat(),
        "purged_at": recording.purged_at.isoformat() if recording.purged_at else None,
        "reason": recording.deletion_reason,
        "event_seq": event.seq,
        "inclusion_proof": proof,
    }
    note = vault.signer.sign_note(f"{_CERTIFICATE_HEADER}\n{canonical_json(payload).decode()}\n")
    return {
        "certificate": payload,
        "signed_note": note,
        "verifier_key": vault.ledger.verifier_key(),
        "key_handovers": vault.ledger.handovers(),
    }


def verify_deletion_certificate(document: Mapping[str, Any], vkey: str) -> dict[str, Any]:
    """Check a deletion certificate offline against the ledger's verifier key.

    Checks: 1. the note's signature, by ``vkey`` or the key it was handed over to (the
    certificate's ``key_handovers``, each signed by both keys); 2. the note's payload equals
    the certificate shown; 3. the inclusion proof verifies against its signed checkpoint and
    its entry is the ``deleted`` event for this recording. Returns the payload; raises
    LedgerError.
    """
    try:
        vkey = follow_handovers(vkey, list(document.get("key_handovers") or []))
    except (VerificationError, KeyError, TypeError, ValueError) as exc:
        raise LedgerError(f"the certificate's key hand-overs do not verify: {exc}") from None
    text = open_note(str(document.get("signed_note", "")), vkey)
    header, _, body = text.partition("\n")
    if header != _CERTIFICATE_HEADER:
        raise LedgerError("not an evidence-vault deletion certificate")
    payload = json.loads(body)
    if payload != document.get("certificate"):
        raise LedgerError("certificate payload differs from the signed note")
    proof = payload["inclusion_proof"]
    CustodyLedger.verify_inclusion_proof(proof, vkey)
    entry = json.loads(proof["entry"])
    event = entry.get("event", entry)
    if event.get("action") != Action.DELETED.value or payload["recording_id"] not in event.get(
        "object_ids", []
    ):
        raise LedgerError("the proven custody event is not this recording's deletion")
    return dict(payload)
