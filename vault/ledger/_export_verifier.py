#!/usr/bin/env python3
"""Check an evidence-vault disclosure package offline, with nothing but Python 3.

    python3 verify_export.py PACKAGE.zip [--key VERIFIER_KEY] [--origin LOG_ORIGIN] [--opening PROOF.json]

This file is copied unchanged into every package as ``verify_export.py`` and is also what
``evidence-vault export verify`` runs, so it imports only the standard library. It checks:

  1. the package holds manifest.json, SHA256SUMS and custody-certificate.json, and every ZIP
     entry is a plain file with a safe, unique name (no duplicates, which ``unzip`` and this
     script could read differently, no directories, absolute names, ``..`` or backslashes);
  2. every file the manifest lists is present with the stated size and SHA-256, and nothing
     else is in the package (apart from the package's own notes);
  3. SHA256SUMS agrees with the manifest (so ``sha256sum -c SHA256SUMS`` checks the same thing);
  4. the custody certificate is a C2SP signed note, signed with Ed25519 (RFC 8032) by the
     vault's custody key, and names this manifest by its SHA-256 (a key given with ``--key``
     that the vault has since rotated leads to the current key through the certificate's
     hand-overs, each signed by both keys);
  5. every custody event in the certificate is proven to be in the vault's append-only log by
     an RFC 6962 inclusion proof against a checkpoint signed by the same key for the vault's
     log (its origin line; ``--origin`` names the one expected, default the certificate's);
  6. the log recorded each file's SHA-256 when the file was made: every master by its
     ``ingested`` event; every derived copy (clip, redacted copy, earlier package) by the
     event that made it, which names the sources the manifest lists, each of them made or
     ingested with the SHA-256 the manifest gives, down to the masters; and the
     ``exported`` event names this manifest.

Events the recipient has no business seeing in full are *redacted* in the certificate (a
view without client addresses, other disclosures, purposes of others' access) or *withheld*
(refusals): their leaf hashes are still proven in the log, and the vault can produce the full
entries to a court: ``--opening PROOF.json`` (the vault's ``evidence-vault custody proof N``
output) checks, after every check above, that the entry is the one event N's leaf hash commits
to and that the certificate's view of it left out nothing but what it says it withheld.

Pass ``--key`` with the verifier key the vault publishes (from its operator, not from the
package): without it the key inside the package is used, which proves integrity but not origin.
Exit status 0 means every check passed.

Why this module is long: it is copied unchanged into every package as one file and must run
with nothing but the standard library, so its Ed25519 check, signed-note parser, RFC 6962
proofs and package checks cannot be split into modules a recipient would have to carry too.
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
MAX_SIGNATURES = 100  # C2SP signed-note lets verifiers refuse notes with more
KEY_HASH_SIZE = 4


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
        raw = _b64(encoded)
        key_id = bytes.fromhex(key_id_hex) if len(key_id_hex) == 8 else b""
    except ValueError:
        raise VerificationError("the verifier key is malformed") from None
    if not _valid_key_name(name):
        raise VerificationError("the verifier key's name is not a signed-note key name")
    if len(raw) != 33 or raw[0] != 0x01 or len(key_id) != 4:
        raise VerificationError("the verifier key is not an Ed25519 signed-note key")
    public = raw[1:]
    expected = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    if expected != key_id:
        raise VerificationError("the verifier key's id does not match its name and public key")
    return name, key_id, public


def _valid_key_name(name: str) -> bool:
    # C2SP signed-note: non-empty, no Unicode space, no '+' (nor, here, other unprintables).
    return bool(name) and name.isprintable() and not any(c.isspace() or c == "+" for c in name)


def _b64(text: str) -> bytes:
    # Standard alphabet, padded, nothing else: binascii alone would skip stray characters.
    if len(text) % 4 or not all(c.isascii() and (c.isalnum() or c in "+/=") for c in text):
        raise ValueError("not base64")
    return base64.b64decode(text, validate=True)


def open_note(note: str, vkey: str) -> str:
    """The text of a signed note if ``vkey`` signed it; raises VerificationError otherwise.

    Parsed as strictly as C2SP signed-note and golang.org/x/mod/sumdb/note: every line of the
    signature block, by a known key or not, must be well formed.
    """
    name, key_id, public = parse_verifier_key(vkey)
    # 1. Valid Unicode with no control character but newline, anywhere in the note.
    if not isinstance(note, str) or any(c < " " and c != "\n" for c in note):
        raise VerificationError("signed note contains control characters")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise VerificationError("signed note is not valid Unicode") from None
    # 2. Text, blank line, then one or more signature lines, each ending in a newline.
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n") or split + 2 == len(note):
        raise VerificationError("signed note has no signature block")
    text, block = note[: split + 1], note[split + 2 : -1]
    lines = block.split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(f"signed note carries more than {MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        # 3. "— <key name> <base64(4-byte key hash || signature)>", the signature non-empty.
        if not line.startswith(SIGNATURE_PREFIX):
            raise VerificationError("signed note has a malformed signature line")
        signer, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            blob = _b64(encoded)
        except ValueError:
            raise VerificationError("signed note has a malformed signature") from None
        if not _valid_key_name(signer) or len(blob) < KEY_HASH_SIZE + 1:
            raise VerificationError("signed note has a malformed signature line")
        # 4. Other keys' signatures are ignored; the known key's must verify.
        if signer == name and blob[:KEY_HASH_SIZE] == key_id:
            if not ed25519_verify(public, text.encode("utf-8"), blob[KEY_HASH_SIZE:]):
                raise VerificationError(f"the signature by {name} does not verify")
            verified = True
    if not verified:
        raise VerificationError(f"the note is not signed by {name}")
    return text


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


def check_event_proof(proof: dict[str, Any], vkey: str, origin: str | None = None) -> dict[str, Any]:
    """Check one event's inclusion proof (its checkpoint for log ``origin``); returns the event."""
    return _event_in_tree(proof, *_signed_tree(proof["checkpoint"], vkey, origin))


def _signed_tree(note: str, vkey: str, origin: str | None = None) -> tuple[int, bytes]:
    """(size, root hash) of a C2SP tlog-checkpoint note signed by ``vkey`` for log ``origin``."""
    lines = open_note(note, vkey).split("\n")
    # <origin>, <decimal size without leading zeros>, <base64 32-byte root>, [extensions], "".
    size_line = lines[1] if len(lines) >= 4 else ""
    if not size_line.isdigit() or not size_line.isascii() or size_line != str(int(size_line)):
        raise VerificationError("checkpoint body is malformed")
    try:
        root = _b64(lines[2])
    except ValueError:
        root = b""
    if len(root) != 32 or any(not line for line in lines[3:-1]):
        raise VerificationError("checkpoint body is malformed")
    if not lines[0] or (origin is not None and lines[0] != origin):
        raise VerificationError(f"a checkpoint is for log {lines[0]!r}, not {origin!r}")
    return int(size_line), root


def _event_in_tree(proof: dict[str, Any], size: int, root: bytes) -> dict[str, Any]:
    """The event of ``proof``, once its audit path leads to ``root`` of a tree of ``size``."""
    entry = proof["entry"].encode("utf-8")
    data = json.loads(entry)
    if data.get("seq") != proof["leaf_index"]:
        raise VerificationError("event position differs from the proof's")
    verify_inclusion(_leaf_hash(entry), proof["leaf_index"], size, [bytes.fromhex(h) for h in proof["proof"]], root)
    return dict(data["event"])


def follow_handovers(vkey: str, handovers: list[dict[str, Any]], origin: str | None = None) -> str:
    """The custody key ``vkey`` hands over to, through the rotations listed (oldest first).

    A hand-over counts only when the key already trusted signed a checkpoint whose last event
    is a ledger ``key_rotated`` event from that key to the next, and the next key cosigned it.
    """
    for handover in handovers:
        if handover["old_key"] != vkey:
            continue
        proof = handover["proof"]
        size, root = _signed_tree(proof["checkpoint"], vkey, origin)
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


# -- what a certificate discloses, and the checks on derived copies -----------------------------
#
# A certificate (format v2) holds each custody event about the package's items and their
# sources in one of three forms (see vault/casework/disclosure.py and docs/disclosure.md):
#   "full"      the ledger entry; its leaf hash is recomputed here;
#   "redacted"  a view (redact_event below) with the entry's leaf hash and inclusion proof;
#               the view is covered by the certificate's signature, and the leaf hash commits
#               to the entry, which check_opening checks once the vault produces it;
#   "withheld"  the leaf hash and proof alone (refusals: every field is someone else's).
# redact_event is the one statement of that policy: the vault builds views with it, and a
# court checks an opened entry against a view with it.

CERTIFICATE_FORMATS = ("evidence-vault/custody-certificate/v1", "evidence-vault/custody-certificate/v2")
# Roles whose holders handle footage for the organisation: their names are the continuity of
# evidence a recipient may see. Anyone else (a share's recipient, an anonymous caller) is
# another party, withheld.
STAFF_ROLES = frozenset(
    {"administrator", "asb_officer", "ig_officer", "police_liaison", "auditor", "ingest_agent"}
)
# Refusals name the refused person and their address, and nothing the recipient's items need.
WITHHELD_ACTIONS = frozenset({"access_denied"})
# Details that describe the footage and how it was made; everything else in ``details``
# (reasons, routes, purposes, search criteria, job ids, free text) is withheld.
DISCLOSED_DETAILS = frozenset({
    "source", "size", "original_name", "captured_start", "captured_end", "parent_id",
    "sources", "window", "first_frame_at", "method", "frames", "frame_count",
    "plan_sha256", "tracks", "review_spans", "export_id", "manifest_sha256", "files",
})
# Why someone acted and for whom: shown only on the event of this very export.
_OWN_EXPORT_FIELDS = ("purpose", "lawful_basis", "reference", "recipient", "recipient_org")
_ACTOR_FIELDS = ("actor", "actor_role", "actor_org")


def redact_event(event: dict[str, Any], seq: int, scope: set[str], export_seq: int | None) -> tuple[str, dict[str, Any]]:
    """(form, view) of custody ``event`` at ``seq`` for a recipient whose items and their
    sources are ``scope``; ``export_seq`` is the position of this export's own event.

    The view names what it leaves out in ``withheld`` (field names, sorted); the form is
    "full" when nothing is left out, "withheld" for a refusal, "redacted" otherwise.
    """
    if event.get("action") in WITHHELD_ACTIONS:
        return "withheld", {"seq": seq, "withheld": ["*"]}
    view: dict[str, Any] = {"seq": seq}
    withheld: set[str] = set()
    for name in ("action", "ts", "event_id"):
        view[name] = event.get(name)
    own = seq == export_seq
    for name in _ACTOR_FIELDS:
        if own or event.get("actor_role") in STAFF_ROLES:
            view[name] = event.get(name)
        elif event.get(name) is not None:
            withheld.add(name)
    for name in _OWN_EXPORT_FIELDS:
        if own:
            view[name] = event.get(name)
        elif event.get(name) is not None:
            withheld.add(name)
    if event.get("client_addr") is not None:
        withheld.add("client_addr")
    ids = [o for o in event.get("object_ids", []) if o in scope]
    if len(ids) != len(event.get("object_ids", [])):
        withheld.add("object_ids")
    view["object_ids"] = ids
    hashes = {k: v for k, v in event.get("hashes", {}).items() if k in scope}
    if len(hashes) != len(event.get("hashes", {})):
        withheld.add("hashes")
    view["hashes"] = hashes
    details = {k: v for k, v in event.get("details", {}).items() if k in DISCLOSED_DETAILS}
    if len(details) != len(event.get("details", {})):
        withheld.add("details")
    view["details"] = details
    view["withheld"] = sorted(withheld)
    return ("redacted" if withheld else "full"), view


def _hash32(text: Any) -> bytes:
    raw = bytes.fromhex(text) if isinstance(text, str) and len(text) == 64 else b""
    if len(raw) != 32:
        raise VerificationError("a leaf or proof hash is not 32 bytes of hex")
    return raw


def certificate_event(item: dict[str, Any], key: str, origin: str | None,
                      trees: dict[str, tuple[int, bytes]] | None = None) -> dict[str, Any]:
    """Check one certificate event against its signed checkpoint; returns the event as the
    recipient may see it (with ``seq`` and ``form``). Raises VerificationError.

    ``trees`` caches checkpoints already opened (the same note signs many events).
    """
    note = item["checkpoint"]
    tree = trees.get(note) if trees is not None else None
    if tree is None:
        tree = _signed_tree(note, key, origin)
        if trees is not None:
            trees[note] = tree
    size, root = tree
    form = item.get("disclosure", "full")
    index = item["leaf_index"]
    if form == "full":
        event = _event_in_tree(item, size, root)
        event.update(seq=index, form="full")
        return event
    if form not in ("redacted", "withheld"):
        raise VerificationError(f"custody event {index} has an unknown form {form!r}")
    view = dict(item["event"])
    if view.get("seq") != index or isinstance(index, bool):
        raise VerificationError("event position differs from the proof's")
    verify_inclusion(_hash32(item["leaf_hash"]), index, size, [_hash32(h) for h in item["proof"]], root)
    if form == "withheld":
        return {"seq": index, "form": "withheld"}
    view["form"] = "redacted"
    return view


def check_opening(item: dict[str, Any], entry: str, scope: set[str], export_seq: int | None) -> None:
    """Check a full ledger ``entry`` the vault produced for a redacted certificate event:
    it must hash to the event's leaf, sit at its position, and redact to exactly its view.
    Raises VerificationError."""
    data = json.loads(entry)
    if _leaf_hash(entry.encode("utf-8")).hex() != item["leaf_hash"]:
        raise VerificationError(f"the entry given for event {item['leaf_index']} is not the one logged")
    if data.get("seq") != item["leaf_index"]:
        raise VerificationError("the entry is for another position in the log")
    _, view = redact_event(data["event"], data["seq"], scope, export_seq)
    if item.get("disclosure") == "redacted" and view != item["event"]:
        raise VerificationError(f"the view of event {item['leaf_index']} does not match its entry")


def open_event(path: str, proof: dict[str, Any]) -> int:
    """Check a full entry the vault produced (``proof``: its ``custody proof`` output, with
    ``entry`` and ``leaf_index``) against the certificate of the package at ``path``, which
    :func:`verify_package` has checked. Returns the event's position; raises VerificationError."""
    with zipfile.ZipFile(path) as archive:
        payload = json.loads(archive.read(CERTIFICATE))["certificate"]
    index = proof["leaf_index"]
    item = next((i for i in payload["events"] if i["leaf_index"] == index), None)
    if item is None:
        raise VerificationError(f"the certificate has no event {index}")
    check_opening(item, proof["entry"], set(payload.get("scope", [])), payload.get("export_seq"))
    return int(index)


class _History:
    """The certificate's events by the recordings they name, oldest first."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.by_object: dict[str, list[dict[str, Any]]] = {}
        for event in sorted(events, key=lambda e: e["seq"]):
            for oid in event.get("object_ids", []):
                self.by_object.setdefault(oid, []).append(event)
        self.events = events

    def creation(self, rid: str, sha256: str, what: str) -> dict[str, Any]:
        """The event that made recording ``rid``: the first to name it (nothing can name a
        recording before it exists). It must record ``sha256``."""
        named = self.by_object.get(rid)
        if not named:
            raise VerificationError(f"{what}: no custody event names recording {rid}")
        first = named[0]
        if first.get("hashes", {}).get(rid) != sha256:
            raise VerificationError(f"{what}: no custody event records SHA-256 {sha256} when recording {rid} was made")
        return first

    def check_master(self, rid: str, sha256: str, what: str) -> None:
        """A master: ingested with this SHA-256, byte for byte."""
        if self.creation(rid, sha256, what).get("action") != "ingested":
            raise VerificationError(f"{what}: recording {rid} is not an ingested master")

    def check_derived(self, rid: str, sha256: str, derivation: dict[str, Any], what: str, depth: int = 0) -> None:
        """A derived copy: made with this SHA-256 from the sources named, each of which was
        itself made (or ingested) with the SHA-256 the manifest gives, down to the masters."""
        if depth > 16:
            raise VerificationError(f"{what}: derivation chain too deep")
        made = self.creation(rid, sha256, what)
        if made.get("action") == "ingested":
            raise VerificationError(f"{what}: recording {rid} was ingested, not derived")
        details = made.get("details", {})
        kind = derivation.get("kind")
        sources = derivation.get("sources") or []
        if not sources:
            raise VerificationError(f"{what}: a derived copy names no sources")
        if kind == "export":
            # An earlier package: its own 'exported' event recorded what it held.
            held = [e for e in self.events if e.get("action") == "exported"
                    and e.get("details", {}).get("export_id") == derivation.get("export_id")]
            logged: dict[str, str] = held[0].get("hashes", {}) if held else {}
            for src in sources:
                if logged.get(src["recording_id"]) != src["sha256"]:
                    raise VerificationError(f"{what}: export {derivation.get('export_id')} is not logged as holding {src['recording_id']}")
        else:
            named = set(details.get("sources") or []) | {details.get("parent_id")}
            for src in sources:
                if src["recording_id"] not in named:
                    raise VerificationError(f"{what}: the custody log does not record {rid} as made from {src['recording_id']}")
        for field in {"clip": ("window", "method"), "redaction": ("plan_sha256",)}.get(str(kind), ()):
            if field in derivation and details.get(field) != derivation[field]:
                raise VerificationError(f"{what}: the manifest's {field} differs from the custody log's")
        for src in sources:
            if src.get("derivation"):
                self.check_derived(src["recording_id"], src["sha256"], src["derivation"], what, depth + 1)
            else:
                self.check_master(src["recording_id"], src["sha256"], what)


# -- the package ---------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_names(archive: zipfile.ZipFile) -> set[str]:
    """The entry names of a package, each a plain file with a safe name that occurs once.

    A ZIP may hold two entries of one name: ``unzip`` extracts one, Python reads the other, so a
    forged copy could pass here while the recipient watches another. Directory entries,
    absolute names, drive letters, ``.``/``..`` parts and backslashes (a path separator on
    Windows) could likewise write outside the folder or name one file two ways. Raises
    VerificationError for any of them.
    """
    names: set[str] = set()
    for info in archive.infolist():
        name = info.filename
        parts = name.split("/")
        if name in names:
            raise VerificationError(f"the package holds {name!r} twice")
        if info.is_dir():
            raise VerificationError(f"the package holds a directory entry {name!r}")
        if (
            not name
            or "\\" in name
            or name.startswith("/")
            or (len(name) > 1 and name[1] == ":")
            or any(part in ("", ".", "..") for part in parts)
            or any(c < " " for c in name)
        ):
            raise VerificationError(f"the package holds an unsafe entry name {name!r}")
        names.add(name)
    return names


def verify_package(path: str, vkey: str | None = None, origin: str | None = None) -> dict[str, Any]:
    """Run every check on the package at ``path``; returns a summary or raises VerificationError.

    ``origin``, when given, is the log the checkpoints must name (default: the certificate's).
    """
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise VerificationError(f"{path} is not a readable ZIP package: {exc}") from None
    with archive:
        names = package_names(archive)
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
    # The log's origin: the recipient's, else the certificate's (checked as signed below).
    origin = origin or document["certificate"].get("origin")
    key = follow_handovers(vkey, document.get("key_handovers", []), origin) if vkey else ""
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
    if payload.get("format", CERTIFICATE_FORMATS[0]) not in CERTIFICATE_FORMATS:
        raise VerificationError(f"unknown certificate format {payload.get('format')!r}")
    # 5. Every event is in the signed, append-only log: a full entry by its recomputed leaf,
    #    a redacted or withheld one by the leaf hash the signed certificate gives.
    trees: dict[str, tuple[int, bytes]] = {}
    events = [certificate_event(p, key, origin, trees) for p in payload["events"]]
    # 6. The log recorded each file's SHA-256 when the file was made: a master at ingest; a
    #    derived copy (clip, redacted copy, earlier package) when made, from the sources the
    #    manifest names, each of them back to an ingested master. And it logged this export.
    history = _History([e for e in events if e["form"] != "withheld"])
    for name, entry in listed.items():
        rid, role = entry.get("recording_id"), entry.get("role")
        if role == "master":
            history.check_master(rid, entry["sha256"], name)
        elif role == "derived":
            history.check_derived(rid, entry["sha256"], entry.get("derivation") or {}, name)
        elif role == "redacted":  # a v1 package's redacted copy
            history.creation(rid, entry["sha256"], name)
        elif role != "playable":
            raise VerificationError(f"{name}: unknown role {role!r}")
    exports = [e for e in events if e.get("action") == "exported"
               and e.get("details", {}).get("manifest_sha256") == payload["manifest_sha256"]]
    if not exports:
        raise VerificationError("no 'exported' custody event names this manifest")
    withheld = sum(1 for e in events if e["form"] != "full")
    return {
        "export_id": manifest.get("export_id"),
        "files": len(listed),
        "events": len(events),
        "redacted_events": withheld,
        "key": "given" if vkey else "from the package (compare it with the vault's published key)",
    }


def main(argv: list[str]) -> int:
    args: list[str] = []
    options: dict[str, str] = {}
    rest = iter(argv)
    for a in rest:
        flag, eq, value = a.partition("=")
        if flag in ("--key", "--origin", "--opening"):
            options[flag] = value if eq else next(rest, "")
        else:
            args.append(a)
    if len(args) != 1 or "" in options.values():
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        summary = verify_package(args[0], options.get("--key"), options.get("--origin"))
    except VerificationError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except (KeyError, ValueError, TypeError) as exc:
        print(f"FAILED: the package is malformed ({exc!r})", file=sys.stderr)
        return 1
    print(
        f"OK: {summary['files']} files and {summary['events']} custody events verified, "
        f"{summary['redacted_events']} of them redacted for you "
        f"(signing key {summary['key']})"
    )
    if "--opening" in options:
        try:
            with open(options["--opening"], encoding="utf-8") as f:
                seq = open_event(args[0], json.load(f))
        except (OSError, VerificationError, KeyError, ValueError, TypeError) as exc:
            print(f"FAILED: the opening does not match: {exc}", file=sys.stderr)
            return 1
        print(f"OK: event {seq} opened: the entry is the one logged and the certificate's view of it is faithful")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
