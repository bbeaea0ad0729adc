"""Disclosure exports: the package a police force or partner receives.

A package is a ZIP holding
    masters/    the native recordings, byte for byte as ingested (the master exhibits)
    redacted/   redacted copies made by the vault, where the export includes them
    playable/   playable copies (H.264 MP4) of masters that are not, made by a caller hook
    manifest.json             every file with its SHA-256, size, recording and role
    SHA256SUMS                the same hashes in ``sha256sum -c`` form
    custody-certificate.json  a C2SP signed note (Ed25519, the custody key) naming the
                              manifest's SHA-256, with every custody event of the items and
                              each event's RFC 6962 inclusion proof against a signed checkpoint
    verify_export.py          a standard-library-only checker (see vault/_export_verifier.py)
    VERIFY.txt                how to check the package with sha256sum and Python 3

The export is itself a custody event (``exported``: items, recipient, purpose, manifest hash),
and its inclusion proof is in the certificate. The package is built in the spool directory and
moved into place only when complete, so a failure leaves no partial package.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _export_verifier
from .access import Actor, Purpose
from .catalog import MediaKind, Recording, new_id
from .custody import Action, canonical_json
from .errors import InvalidInput, IntegrityError, NotFound

if TYPE_CHECKING:
    from .vault import Vault

PACKAGE_FORMAT = "evidence-vault/disclosure-package/v1"
# Makes a playable copy of a master at the first path, written to the second; None when the
# master already plays in ordinary players.
PlayableHook = Callable[[Path, Path], bool]


@dataclass(frozen=True)
class ExportResult:
    """A finished package: where it is, its id and hash, and the manifest."""

    export_id: str
    path: Path
    sha256: str
    manifest: dict[str, Any]
    event_seq: int


def _verify_text(export_id: str, vkey: str) -> str:
    return f"""Evidence vault disclosure package {export_id}

This package holds recordings disclosed to you and everything needed to check them
without the vault's software.

1. Check every file against the manifest's SHA-256 hashes (Linux, macOS, WSL):

       sha256sum -c SHA256SUMS

   Every line must end in "OK". The masters are the native recordings, byte for byte as
   ingested; redacted copies and playable copies are separate files with their own hashes.

2. Check the signed custody certificate and every custody event (Python 3, nothing else):

       python3 verify_export.py PACKAGE.zip --key '{vkey}'

   Ask the disclosing organisation to confirm the key above through another channel (phone,
   letter): it is their custody-log verifier key. The script checks that the certificate
   is signed by that key (Ed25519), names this manifest, and that every event (ingest, each
   access, redaction, this export) is included in their append-only custody log (RFC 6962
   Merkle proofs against a signed checkpoint). It prints OK or the first failure.
"""


def build_export(
    vault: Vault,
    recording_ids: Sequence[str],
    destination: Path,
    *,
    actor: Actor,
    purpose: Purpose,
    recipient: str,
    recipient_org: str,
    playable: PlayableHook | None = None,
) -> ExportResult:
    """Build a disclosure package of ``recording_ids`` (masters and redacted copies).

    Every item is decrypted and its SHA-256 checked against the catalog before it goes in.
    Raises NotFound, Shredded, HashMismatch, InvalidInput (no items, destination exists).
    """
    if not recording_ids:
        raise InvalidInput("an export needs at least one recording")
    if len(set(recording_ids)) != len(recording_ids):
        raise InvalidInput("an export names a recording twice")
    if not recipient.strip() or not recipient_org.strip():
        raise InvalidInput("an export needs a recipient person and organisation")
    destination = Path(destination)
    if destination.exists():
        raise InvalidInput(f"{destination} already exists; choose a new file name")
    recordings = [vault.recording(rid) for rid in recording_ids]
    export_id = new_id()
    spool = vault.settings.spool_dir
    spool.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="export-", dir=spool))
    try:
        files = _gather(vault, recordings, work, actor=actor, purpose=purpose, playable=playable)
        manifest = {
            "format": PACKAGE_FORMAT,
            "export_id": export_id,
            "created_at": vault.clock().isoformat(),
            "recipient": recipient,
            "recipient_org": recipient_org,
            "purpose": purpose.purpose,
            "lawful_basis": purpose.lawful_basis,
            "reference": purpose.reference,
            "disclosed_by": actor.user,
            "files": files,
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
        with vault.sessions.begin() as session:
            record = vault.ledger.append(
                session,
                Action.EXPORTED,
                actor=actor,
                purpose=purpose,
                recipient=recipient,
                recipient_org=recipient_org,
                object_ids=[r.id for r in recordings],
                hashes={r.id: r.sha256 for r in recordings},
                details={"export_id": export_id, "manifest_sha256": manifest_sha256, "files": len(files)},
            )
        vault.ledger.checkpoint()
        certificate = _certificate(vault, recordings, manifest_sha256, export_id)
        vkey = vault.ledger.verifier_key()
        partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
        try:
            with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
                for f in files:
                    archive.write(work / f["path"], f["path"])
                archive.writestr("manifest.json", manifest_bytes)
                archive.writestr(
                    "SHA256SUMS", "".join(f"{f['sha256']}  {f['path']}\n" for f in files)
                )
                archive.writestr("custody-certificate.json", json.dumps(certificate, indent=2) + "\n")
                archive.write(_export_verifier.__file__, "verify_export.py")
                archive.writestr("VERIFY.txt", _verify_text(export_id, vkey))
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)
        return ExportResult(export_id, destination, _sha256_file(destination), manifest, record.seq)
    finally:
        # Decrypted footage exists only in the spool, and only while the package is built.
        shutil.rmtree(work, ignore_errors=True)


def _gather(
    vault: Vault,
    recordings: list[Recording],
    work: Path,
    *,
    actor: Actor,
    purpose: Purpose,
    playable: PlayableHook | None,
) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = []
    for recording in recordings:
        role = "redacted" if (recording.provenance or {}).get("kind") == "redaction" else "master"
        name = _safe_name(recording.original_name or "recording")
        rel = f"{'redacted' if role == 'redacted' else 'masters'}/{recording.id}-{name}"
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        vault.export_file(recording.id, target, actor=actor, purpose=purpose, action=Action.EXPORTED)
        files.append(_file_entry(rel, target, recording, role))
        if role == "master" and recording.media_kind == MediaKind.VIDEO and playable is not None:
            rel_play = f"playable/{recording.id}-{Path(name).stem}.mp4"
            out = work / rel_play
            out.parent.mkdir(parents=True, exist_ok=True)
            if playable(target, out):
                files.append(_file_entry(rel_play, out, recording, "playable"))
    return files


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_entry(rel: str, path: Path, recording: Recording, role: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": rel,
        "sha256": _sha256_file(path),
        "size": path.stat().st_size,
        "recording_id": recording.id,
        "role": role,
        "source": recording.source_id,
        "captured_start": recording.captured_start.isoformat(),
        "captured_end": recording.captured_end.isoformat() if recording.captured_end else None,
    }
    if role != "playable" and entry["sha256"] != recording.sha256:
        raise IntegrityError(f"recording {recording.id}: exported bytes differ from the catalog hash")
    if recording.parent_id:
        entry["parent_id"] = recording.parent_id
    if role == "playable":
        entry["made_from_sha256"] = recording.sha256
    return entry


def _safe_name(name: str) -> str:
    # Names come from devices and uploads: keep them readable but never a path.
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(name).name)
    return cleaned.lstrip(".") or "recording"


def _certificate(
    vault: Vault, recordings: list[Recording], manifest_sha256: str, export_id: str
) -> dict[str, Any]:
    seqs: set[int] = set()
    for recording in recordings:
        seqs.update(e.seq for e in vault.ledger.events(object_id=recording.id, limit=100_000))
        if recording.parent_id:
            # A redacted copy's history starts with its master's.
            seqs.update(e.seq for e in vault.ledger.events(object_id=recording.parent_id, limit=100_000))
    if not seqs:
        raise NotFound("no custody events for the exported recordings")
    payload = {
        "format": "evidence-vault/custody-certificate/v1",
        "export_id": export_id,
        "manifest_sha256": manifest_sha256,
        "origin": vault.ledger.origin,
        "events": [vault.ledger.inclusion_proof(seq) for seq in sorted(seqs)],
    }
    header = _export_verifier.CERTIFICATE_HEADER
    note = vault.signer.sign_note(f"{header}\n{canonical_json(payload).decode()}\n")
    return {
        "certificate": payload,
        "signed_note": note,
        "verifier_key": vault.ledger.verifier_key(),
        # Lets a recipient who holds an earlier published key follow it to this one.
        "key_handovers": vault.ledger.handovers(),
    }


def verify_export(path: Path, verifier_key: str | None = None) -> dict[str, Any]:
    """Check a package offline (the same code as its ``verify_export.py``).

    Returns a summary; raises IntegrityError naming the first failed check.
    """
    try:
        return _export_verifier.verify_package(str(path), verifier_key)
    except _export_verifier.VerificationError as exc:
        raise IntegrityError(f"export package {path}: {exc}") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise IntegrityError(f"export package {path} is malformed: {exc!r}") from None
