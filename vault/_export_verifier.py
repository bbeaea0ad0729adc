#!/usr/bin/env python3
"""Check an evidence-vault disclosure package offline, with nothing but Python 3.

    python3 verify_export.py PACKAGE.zip [--key VERIFIER_KEY]

This file is copied unchanged into every package as ``verify_export.py`` and is also what
``evidence-vault export verify`` runs, so it imports only the standard library. It checks:

  1. the package holds manifest.json, SHA256SUMS and custody-certificate.json;
  2. every file the manifest lists is present with the stated size and SHA-256, and nothing
     else is in the package (apart from the package's own notes);
  3. SHA256SUMS agrees with the manifest (so ``sha256sum -c SHA256SUMS`` checks the same thing);
  4. the custody certificate is a C2SP signed note, signed with Ed25519 (RFC 8032) by the
     vault's custody key, and names this manifest by its SHA-256 (a key given with ``--key``
     that the vault has since rotated leads to the current key through the certificate's
     hand-overs, each signed by both keys);
  5. every custody event in the certificate is proven to be in the vault's append-only log by
     an RFC 6962 inclusion proof against a checkpoint signed by the same key;
  6. every master in the manifest has an ``ingested`` (or ``redaction_rendered``) event
     recording the same SHA-256, and the ``exported`` event names this manifest.

Pass ``--key`` with the verifier key the vault publishes (from its operator, not from the
package): without it the key inside the package is used, which proves integrity but not origin.
Exit status 0 means every check passed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zipfile
from typing import Any

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
CERTIFICATE = "custody-certificate.json"
NOTES = {"VERIFY.txt", "verify_export.py"}
CERTIFICATE_HEADER = "evidence-vault custody certificate v1"
SIGNATURE_PREFIX = "\u2014 "  # em dash and a space, as in C2SP signed-note


class VerificationError(Exception):
    """One check failed; the message says which and where."""


# -- Ed25519 verification (RFC 8032, section 6 reference algorithm) ---------------------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 % _P == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _add(p: tuple[int, int, int, int], q: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, p: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _equal(p: tuple[int, int, int, int], q: tuple[int, int, int, int]) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


def _decompress(data: bytes) -> tuple[int, int, int, int] | None:
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
assert _GX is not None
_G = (_GX, _GY, 1, _GX * _GY % _P)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s Ed25519 signature of ``message``."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decompress(public_key)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % _L
    return _equal(_mul(s, _G), _add(r, _mul(h, a)))


# -- C2SP signed notes and RFC 6962 proofs -----------------------------------------------------


def parse_verifier_key(vkey: str) -> tuple[str, bytes, bytes]:
    """``<name>+<hex key id>+<base64(0x01 || public key)>`` -> (name, key id, public key)."""
    try:
        name, key_id_hex, encoded = vkey.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
        key_id = bytes.fromhex(key_id_hex)
    except ValueError:
        raise VerificationError("the verifier key is malformed") from None
    if len(raw) != 33 or raw[0] != 0x01 or len(key_id) != 4:
        raise VerificationError("the verifier key is not an Ed25519 signed-note key")
    public = raw[1:]
    expected = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    if expected != key_id:
        raise VerificationError("the verifier key's id does not match its name and public key")
    return name, key_id, public


def open_note(note: str, vkey: str) -> str:
    """The text of a signed note if ``vkey`` signed it; raises VerificationError otherwise."""
    name, key_id, public = parse_verifier_key(vkey)
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise VerificationError("signed note has no signature block")
    text, block = note[: split + 1], note[split + 2 : -1]
    for line in block.split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise VerificationError("signed note has a malformed signature line")
        signer, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise VerificationError("signed note has a malformed signature") from None
        if signer == name and blob[:4] == key_id:
            if ed25519_verify(public, text.encode("utf-8"), blob[4:]):
                return text
            raise VerificationError(f"the signature by {name} does not verify")
    raise VerificationError(f"the note is not signed by {name}")


def _leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> None:
    """RFC 9162 section 2.1.3.2; raises VerificationError."""
    if index >= size or index < 0:
        raise VerificationError("inclusion proof index is outside the tree")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise VerificationError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = _node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise VerificationError("inclusion proof does not lead to the signed root")


def check_event_proof(proof: dict[str, Any], vkey: str) -> dict[str, Any]:
    """Check one event's inclusion proof; returns the event."""
    return _event_in_tree(proof, *_signed_tree(proof["checkpoint"], vkey))


def _signed_tree(note: str, vkey: str) -> tuple[int, bytes]:
    """(size, root hash) of a checkpoint note signed by ``vkey``."""
    lines = open_note(note, vkey).split("\n")
    if len(lines) < 4:
        raise VerificationError("checkpoint body is malformed")
    return int(lines[1]), base64.b64decode(lines[2])


def _event_in_tree(proof: dict[str, Any], size: int, root: bytes) -> dict[str, Any]:
    """The event of ``proof``, once its audit path leads to ``root`` of a tree of ``size``."""
    entry = proof["entry"].encode("utf-8")
    data = json.loads(entry)
    if data.get("seq") != proof["leaf_index"]:
        raise VerificationError("event position differs from the proof's")
    verify_inclusion(_leaf_hash(entry), proof["leaf_index"], size, [bytes.fromhex(h) for h in proof["proof"]], root)
    return dict(data["event"])


def follow_handovers(vkey: str, handovers: list[dict[str, Any]]) -> str:
    """The custody key ``vkey`` hands over to, through the rotations listed (oldest first).

    A hand-over counts only when the key already trusted signed a checkpoint whose last event
    is a ledger ``key_rotated`` event from that key to the next, and the next key cosigned it.
    """
    for handover in handovers:
        if handover["old_key"] != vkey:
            continue
        proof = handover["proof"]
        size, root = _signed_tree(proof["checkpoint"], vkey)
        event = _event_in_tree(proof, size, root)
        open_note(proof["checkpoint"], handover["new_key"])
        details = event.get("details", {})
        if (
            event.get("action") != "key_rotated"
            or details.get("key") != "ledger"
            or details.get("old_key") != vkey
            or details.get("new_key") != handover["new_key"]
            or proof["leaf_index"] != size - 1
        ):
            raise VerificationError("a key hand-over in the certificate does not match its event")
        vkey = handover["new_key"]
    return vkey


# -- the package ---------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_package(path: str, vkey: str | None = None) -> dict[str, Any]:
    """Run every check on the package at ``path``; returns a summary or raises VerificationError."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise VerificationError(f"{path} is not a readable ZIP package: {exc}") from None
    with archive:
        names = set(archive.namelist())
        # 1. The package's own records are there.
        for required in (MANIFEST, SUMS, CERTIFICATE):
            if required not in names:
                raise VerificationError(f"the package has no {required}")
        manifest_bytes = archive.read(MANIFEST)
        manifest = json.loads(manifest_bytes)
        # 2. Every listed file is present and intact; nothing unlisted was added.
        listed = {f["path"]: f for f in manifest["files"]}
        for name, entry in listed.items():
            if name not in names:
                raise VerificationError(f"{name} is listed in the manifest but missing")
            digest = hashlib.sha256()
            size = 0
            with archive.open(name) as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
                    size += len(chunk)
            if digest.hexdigest() != entry["sha256"] or size != entry["size"]:
                raise VerificationError(f"{name} has been modified (SHA-256 or size differs)")
        extra = names - set(listed) - {MANIFEST, SUMS, CERTIFICATE} - NOTES
        extra = {n for n in extra if not n.endswith("/")}
        if extra:
            raise VerificationError(f"files not in the manifest: {sorted(extra)}")
        # 3. SHA256SUMS says the same as the manifest.
        sums = {}
        for line in archive.read(SUMS).decode().splitlines():
            digest_text, _, name = line.partition("  ")
            sums[name] = digest_text
        if sums != {n: e["sha256"] for n, e in listed.items()}:
            raise VerificationError("SHA256SUMS does not agree with the manifest")
        document = json.loads(archive.read(CERTIFICATE))
    # 4. The certificate is signed by the custody key and names this manifest. A key the
    #    recipient was given before the vault rotated its key leads to the current one through
    #    the package's hand-overs.
    key = follow_handovers(vkey, document.get("key_handovers", [])) if vkey else ""
    key = key or document.get("verifier_key", "")
    text = open_note(document["signed_note"], key)
    header, _, body = text.partition("\n")
    if header != CERTIFICATE_HEADER:
        raise VerificationError("custody-certificate.json is not an evidence-vault custody certificate")
    payload = json.loads(body)
    if payload != document.get("certificate"):
        raise VerificationError("the certificate differs from what was signed")
    if payload["manifest_sha256"] != _sha256(manifest_bytes):
        raise VerificationError("the certificate is for a different manifest")
    # 5. Every event is in the signed, append-only log.
    events = [check_event_proof(p, key) for p in payload["events"]]
    # 6. The log recorded the same hashes the files have, and this export.
    recorded: dict[str, set[str]] = {}
    for event in events:
        if event["action"] in ("ingested", "redaction_rendered"):
            for oid, digest in event["hashes"].items():
                recorded.setdefault(oid, set()).add(digest)
    for name, entry in listed.items():
        rid = entry.get("recording_id")
        if entry.get("role") in ("master", "redacted") and entry["sha256"] not in recorded.get(rid, set()):
            raise VerificationError(f"{name}: no custody event records SHA-256 {entry['sha256']}")
    exports = [e for e in events if e["action"] == "exported" and e["details"].get("manifest_sha256") == payload["manifest_sha256"]]
    if not exports:
        raise VerificationError("no 'exported' custody event names this manifest")
    return {
        "export_id": manifest.get("export_id"),
        "files": len(listed),
        "events": len(events),
        "key": "given" if vkey else "from the package (compare it with the vault's published key)",
    }


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--key")]
    key = None
    for i, a in enumerate(argv):
        if a == "--key" and i + 1 < len(argv):
            key = argv[i + 1]
            args.remove(key)
        elif a.startswith("--key="):
            key = a.split("=", 1)[1]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        summary = verify_package(args[0], key)
    except VerificationError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except (KeyError, ValueError, TypeError) as exc:
        print(f"FAILED: the package is malformed ({exc!r})", file=sys.stderr)
        return 1
    print(
        f"OK: {summary['files']} files and {summary['events']} custody events verified "
        f"(signing key {summary['key']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
