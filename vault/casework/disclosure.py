"""Disclosure exports: the package a police force or partner receives.

A package is a ZIP holding
    masters/    native recordings, byte for byte as ingested (the master exhibits)
    clips/      incident clips cut from masters (derived: re-encoded edges, stream-copied middle)
    redacted/   redacted copies made by the vault (derived)
    packages/   earlier disclosure packages, when one is disclosed again (derived)
    playable/   playable copies (H.264 MP4) of masters that are not, made by a caller hook
    manifest.json             every file with its SHA-256, size, recording and role; a derived
                              file also names how it was made and from what (its sources'
                              SHA-256 and, for a clip, the cut), down to the masters
    SHA256SUMS                the same hashes in ``sha256sum -c`` form
    custody-certificate.json  a C2SP signed note (Ed25519, the custody key) naming the
                              manifest's SHA-256, with the custody events of the items and
                              their sources and each event's RFC 6962 inclusion proof
    verify_export.py          a standard-library-only checker (see vault/ledger/_export_verifier.py)
    VERIFY.txt                how to check the package with sha256sum and Python 3

What the certificate tells the recipient (certificate format v2, see docs/disclosure.md)
    A recipient needs the history of *its* items and nothing of anyone else's business. The
    certificate holds every custody event that names an item or one of its sources, each in
    one of three forms:

    ``full``      the event's ledger entry as logged. The verifier recomputes its leaf hash
                  (SHA-256(0x00 || entry)) and walks the inclusion proof to the signed root.
                  Used when every field of the event may go to this recipient.
    ``redacted``  a *view*: the fields this recipient may see (what was done, when, to which
                  of its items, with which SHA-256, and, for staff, who: continuity of
                  evidence), plus the event's leaf hash and inclusion proof. The fields
                  withheld are named, never shown: client addresses, other disclosures'
                  recipients and purposes, purposes and references of staff access (which
                  can name a SAR requester or another case), free-text details, ids of
                  other objects. The verifier checks the leaf hash is in the signed tree at
                  the view's position; the view itself is covered by the certificate's
                  signature. The leaf hash commits to the whole entry: the vault can open it
                  to a court or auditor by producing the entry, which anyone then checks with
                  ``verify_export.check_opening`` (the entry must hash to the leaf and agree
                  with the view). Entries carry a random 122-bit event id and the previous
                  entry's hash, so the withheld text cannot be guessed from the leaf hash.
    ``withheld``  position only (leaf hash and proof): refusals (``access_denied``), whose
                  every field is about someone else.

    Why not recompute every leaf: a v1 ledger entry is one canonical JSON text hashed whole,
    so no field can be left out of it without losing the hash; salting fields one by one
    would need a new ledger entry format. The certificate therefore never shows a field it
    cannot stand behind: a ``full`` entry is checked byte for byte, a ``redacted`` view is
    signed by the vault and bound to a leaf it must later be able to open.

docs/disclosure.md states the design in full, with the field-by-field table.

The export is itself a custody event (``exported``: items and their SHA-256, recipient,
purpose, manifest hash), written with nothing the recipient may not read, so that it is in the
certificate in ``full`` form: the recipient recomputes its leaf. (The discloser's address is in
the ledger all the same, on each item's ``exported`` read that comes just before it.) The package is built in
the spool directory and moved into place only when complete, so a failure leaves no partial
package.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import textwrap
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from vault.ledger import _export_verifier, stored_tree
from vault.actors import Actor, Purpose
from vault.ledger.events import Exported
from vault.storage.catalog import MediaKind, Recording, new_id
from vault.ledger.custody import Action, CustodyEventRow
from vault.ledger.tables import unpack_entry
from vault.ledger.rfc8785 import canonical_json
from vault.errors import InvalidInput, IntegrityError, LedgerError, NotFound
from vault.ledger.merkle import leaf_hash, verify_inclusion
from vault.plaintext import private_dir, private_partial

if TYPE_CHECKING:
    from vault.vault import Vault

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


def _what_is_inside(files: Sequence[dict[str, Any]]) -> str:
    """The guide's account of the files, true of this package: masters are called masters
    only when there are some, and derived copies are always called derived."""
    roles = {f["role"] for f in files}
    lines = []
    if "master" in roles:
        lines.append("Files under masters/ are the native recordings, byte for byte as ingested.")
    if "derived" in roles:
        lines.append(
            "Files under clips/, redacted/ and packages/ are DERIVED copies made by the vault, "
            "not the recordings as ingested: manifest.json names, for each, how it was made (a "
            "clip's cut: the window and the offsets taken from each source; a redaction's plan) "
            "and the SHA-256 of every recording it was made from, back to the masters.")
    if "playable" in roles:
        lines.append("Files under playable/ are playable copies of masters, with their own hashes.")
    return textwrap.fill(" ".join(lines), width=88, initial_indent="   ", subsequent_indent="   ")


def _verify_text(export_id: str, vkey: str, files: Sequence[dict[str, Any]]) -> str:
    return f"""Evidence vault disclosure package {export_id}

This package holds recordings disclosed to you and everything needed to check them
without the vault's software.

1. Check every file against the manifest's SHA-256 hashes (Linux, macOS, WSL):

       sha256sum -c SHA256SUMS

   Every line must end in "OK".
{_what_is_inside(files)}

2. Check the signed custody certificate and every custody event (Python 3, nothing else):

       python3 verify_export.py PACKAGE.zip --key '{vkey}'

   Ask the disclosing organisation to confirm the key above through another channel (phone,
   letter): it is their custody-log verifier key. The script checks that the certificate
   is signed by that key (Ed25519), names this manifest, that every event (ingest, each
   access, each derivation, this export) is included in their append-only custody log
   (RFC 6962 Merkle proofs against a signed checkpoint), that the log recorded each file's
   SHA-256 when it was made, and that each derived copy was logged as made from the
   sources the manifest names. It prints OK or the first failure.

   Some events are shown redacted: the certificate gives you what concerns your items
   (who handled them, when, what was done) but not other people's business (their
   addresses, other disclosures, refusals). Each redacted event still carries its position
   and hash in the log; the disclosing organisation can produce it in full to a court.
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
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Build a disclosure package of ``recording_ids`` (masters and derived copies: clips,
    redacted copies, earlier packages) at ``destination``; returns the finished package.

    ``progress(done, total)`` is called after each item is in (a job's progress bar).
    Every item is decrypted and its SHA-256 checked against the catalog before it goes in;
    a derived item's manifest entry names its sources (with their SHA-256) down to the
    masters. Raises NotFound, Shredded, HashMismatch, InvalidInput (no items, destination
    exists).
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
    if not destination.parent.is_dir():
        raise InvalidInput(f"{destination.parent} is not a folder; create it first")
    recordings = [vault.recording(rid) for rid in recording_ids]
    export_id = new_id()
    spool = private_dir(vault.settings.spool_dir)
    work = Path(tempfile.mkdtemp(prefix="export-", dir=spool))  # 0700: decrypted footage
    try:
        files = _gather(vault, recordings, work, actor=actor, purpose=purpose, playable=playable,
                        progress=progress)
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
            # The export's own event is the one the recipient checks byte for byte (its leaf
            # recomputed), so it holds only what they may read. The discloser's address is
            # not lost: each item's read just above is logged with it.
            record = vault.ledger.append(
                session,
                Action.EXPORTED,
                actor=dataclasses.replace(actor, client_addr=None),
                purpose=purpose,
                recipient=recipient,
                recipient_org=recipient_org,
                object_ids=[r.id for r in recordings],
                hashes={r.id: r.sha256 for r in recordings},
                details=Exported(export_id=export_id, manifest_sha256=manifest_sha256,
                                 files=len(files)),
            )
        vault.ledger.checkpoint()
        certificate = _certificate(vault, recordings, manifest_sha256, export_id, record.seq)
        vkey = vault.ledger.verifier_key()
        # The package holds plaintext footage: 0600 from creation (vault/plaintext.py).
        partial, handle = private_partial(destination)
        try:
            with handle, zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
                for f in files:
                    archive.write(work / f["path"], f["path"])
                archive.writestr("manifest.json", manifest_bytes)
                archive.writestr(
                    "SHA256SUMS", "".join(f"{f['sha256']}  {f['path']}\n" for f in files)
                )
                archive.writestr("custody-certificate.json", json.dumps(certificate, indent=2) + "\n")
                archive.write(_export_verifier.__file__, "verify_export.py")
                archive.writestr("VERIFY.txt", _verify_text(export_id, vkey, files))
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)
        return ExportResult(export_id, destination, _sha256_file(destination), manifest, record.seq)
    finally:
        # Decrypted footage exists only in the spool, and only while the package is built.
        shutil.rmtree(work, ignore_errors=True)


# Folder and derivation kind of each kind of derived recording (provenance "kind").
_DERIVED_FOLDERS = {"clip": "clips", "redaction": "redacted", "export": "packages"}


def _gather(
    vault: Vault,
    recordings: list[Recording],
    work: Path,
    *,
    actor: Actor,
    purpose: Purpose,
    playable: PlayableHook | None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = []
    for done, recording in enumerate(recordings, start=1):
        derived = _is_derived(recording)
        name = _safe_name(recording.original_name or "recording")
        kind = str((recording.provenance or {}).get("kind") or "derived")
        folder = _DERIVED_FOLDERS.get(kind, "derived") if derived else "masters"
        rel = f"{folder}/{recording.id}-{name}"
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        vault.export_file(recording.id, target, actor=actor, purpose=purpose, action=Action.EXPORTED)
        entry = _file_entry(rel, target, recording, "derived" if derived else "master")
        if derived:
            entry["derivation"] = _derivation(vault, recording)
        files.append(entry)
        if not derived and recording.media_kind == MediaKind.VIDEO and playable is not None:
            rel_play = f"playable/{recording.id}-{Path(name).stem}.mp4"
            out = work / rel_play
            out.parent.mkdir(parents=True, exist_ok=True)
            if playable(target, out):
                files.append(_file_entry(rel_play, out, recording, "playable"))
        if progress is not None:
            progress(done, len(recordings))
    return files


def _is_derived(recording: Recording) -> bool:
    return recording.parent_id is not None or bool((recording.provenance or {}).get("kind"))


def _source_ids(recording: Recording) -> list[str]:
    """The recordings ``recording`` was made from, as its provenance names them."""
    prov = recording.provenance or {}
    kind = prov.get("kind")
    if kind == "clip":
        ids = [str(s["id"]) for s in prov.get("sources", [])]
    elif kind == "export":
        ids = [str(i) for i in prov.get("recording_ids", [])]
    elif kind == "redaction":
        ids = [str(prov.get("parent_id") or recording.parent_id)]
    else:
        ids = []
    if not ids and recording.parent_id:
        ids = [recording.parent_id]
    return list(dict.fromkeys(ids))


def _derivation(vault: Vault, recording: Recording, depth: int = 0) -> dict[str, Any]:
    """How a derived recording was made and from what, recursively down to the masters.

    Each source carries its SHA-256 as the catalog holds it (which the verifier checks
    against the source's own creation event in the certificate) and, for a clip, the cut
    taken from it. Raises IntegrityError for a derivation chain that does not end.
    """
    if depth > 16:
        raise IntegrityError(f"recording {recording.id}: derivation chain deeper than 16 copies")
    prov = recording.provenance or {}
    kind = str(prov.get("kind") or "derived")
    cuts = {str(s.get("id")): s for s in prov.get("sources", [])} if kind == "clip" else {}
    sources: list[dict[str, Any]] = []
    for sid in _source_ids(recording):
        source = vault.recording(sid)  # a shredded source keeps its row and hash
        item: dict[str, Any] = {"recording_id": source.id, "sha256": source.sha256}
        if sid in cuts:
            cut = cuts[sid]
            item["cut"] = {k: cut[k] for k in ("captured_start", "from_ms", "to_ms", "frames", "parts")
                           if k in cut}
        if _is_derived(source):
            item["derivation"] = _derivation(vault, source, depth + 1)
        sources.append(item)
    out: dict[str, Any] = {"kind": kind, "sources": sources}
    keep = {
        "clip": ("window", "first_frame_at", "method", "frame_count", "software_version"),
        "redaction": ("plan_sha256", "software_version", "frame_count"),
        "export": ("export_id",),
    }.get(kind, ())
    out.update({k: prov[k] for k in keep if k in prov})
    return out


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


CERTIFICATE_FORMAT = "evidence-vault/custody-certificate/v2"


def _scope(vault: Vault, recordings: list[Recording]) -> set[str]:
    """The items and every recording they were made from, recursively."""
    scope: set[str] = set()
    todo = list(recordings)
    while todo:
        recording = todo.pop()
        if recording.id in scope:
            continue
        scope.add(recording.id)
        todo.extend(vault.recording(sid) for sid in _source_ids(recording) if sid not in scope)
    return scope


def certificate_events(
    vault: Vault, scope: set[str], export_seq: int | None
) -> list[dict[str, Any]]:
    """Every custody event naming a recording in ``scope``, oldest first, each in the form the
    recipient may see (:func:`vault.ledger._export_verifier.redact_event`) with its inclusion proof.

    A ``full`` event carries its ledger entry; a ``redacted`` one its view and leaf hash; a
    ``withheld`` one its leaf hash alone. Raises NotFound when no event names the scope.
    """
    seqs: set[int] = set()
    for rid in scope:
        seqs.update(e.seq for e in vault.ledger.events(object_id=rid, limit=1_000_000))
    if not seqs:
        raise NotFound("no custody events for the exported recordings")
    items: list[dict[str, Any]] = []
    for seq, proof in _inclusion_proofs(vault, sorted(seqs)).items():
        event = json.loads(proof["entry"])["event"]
        form, view = _export_verifier.redact_event(event, seq, scope, export_seq)
        if form == "full":
            items.append({"disclosure": "full", **proof})
            continue
        del proof["entry"]  # the leaf hash stands for it
        items.append({"disclosure": form, **proof, "event": view})
    return items


def event_proofs(vault: Vault, seqs: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Inclusion proofs of custody events ``seqs`` against one signed checkpoint, reading and
    hashing the tree once (the web app's "verified" marks use it as packages do).

    Returns proofs in :meth:`CustodyLedger.inclusion_proof`'s form keyed by seq (empty for no
    seqs). Raises NotFound for an unknown seq, LedgerError as :func:`_inclusion_proofs`.
    """
    return _inclusion_proofs(vault, sorted(set(seqs))) if seqs else {}


def _inclusion_proofs(vault: Vault, seqs: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Inclusion proofs of events ``seqs`` (ascending) against one signed checkpoint, in the
    form :meth:`CustodyLedger.inclusion_proof` gives, reading and hashing the tree once.

    The ledger proves the last event itself (signing a checkpoint if none covers it yet, and
    checking the stored tree against it); the rest share that checkpoint. Raises LedgerError
    when a stored entry or leaf disagrees with the checkpoint.
    """
    anchor = vault.ledger.inclusion_proof(seqs[-1])
    size, root = anchor["tree_size"], bytes.fromhex(anchor["root_hash"])
    # Every path from one read of the stored tree: O(k log n) nodes, never the whole ledger.
    with vault.sessions() as session:
        conn = session.connection()
        tree_root, paths = stored_tree.inclusion_proofs(conn, seqs, size)
        entries: dict[int, str] = {}
        for start in range(0, len(seqs), 5000):
            rows = conn.execute(select(CustodyEventRow.seq, CustodyEventRow.entry)
                                .where(CustodyEventRow.seq.in_(seqs[start:start + 5000])))
            entries.update((row.seq, unpack_entry(row.entry, row.seq).decode()) for row in rows)
    if tree_root != root:
        raise LedgerError(f"the stored tree does not match checkpoint {size}; run custody verify")
    proofs: dict[int, dict[str, Any]] = {}
    for seq in seqs:
        if seq not in entries:
            raise NotFound(f"no custody event {seq}")
        leaf = leaf_hash(entries[seq].encode("utf-8"))
        try:
            verify_inclusion(leaf, seq, size, paths[seq], root)
        except LedgerError:
            raise LedgerError(f"custody event {seq} does not match its leaf; run custody verify",
                              seq=seq) from None
        proofs[seq] = {**anchor, "entry": entries[seq], "leaf_index": seq,
                       "leaf_hash": leaf.hex(), "proof": [h.hex() for h in paths[seq]]}
    return proofs


def _certificate(
    vault: Vault, recordings: list[Recording], manifest_sha256: str, export_id: str,
    export_seq: int,
) -> dict[str, Any]:
    scope = _scope(vault, recordings)
    payload = {
        "format": CERTIFICATE_FORMAT,
        "export_id": export_id,
        "manifest_sha256": manifest_sha256,
        "origin": vault.ledger.origin,
        # What the views were made for: check_opening needs both to redact an opened entry.
        "scope": sorted(scope),
        "export_seq": export_seq,
        "events": certificate_events(vault, scope, export_seq),
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
