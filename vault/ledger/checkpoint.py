"""Signed custody checkpoints: C2SP signed-note v1 carrying a C2SP tlog-checkpoint v1 body.

A checkpoint commits to the custody ledger's Merkle tree (RFC 6962) at one size::

    <origin>\\n
    <size, decimal>\\n
    <base64 root hash>\\n
    [extension lines\\n]

The signed note appends a blank line and one line per signature,
``— <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>``, signing the body bytes.
The key id is the first four bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte public key),
0x01 naming the Ed25519 algorithm. A verifier key is the text ``<name>+<hex key id>+<base64(0x01
|| public key)>``, the form Go's ``golang.org/x/mod/sumdb/note`` and other C2SP tools read, so a
recipient can check our checkpoints with standard tools.

Opening a note ignores signatures by keys it does not know (witness cosignatures, say), as the
signed-note spec requires, but fails on a bad signature by the known key or when the known key
did not sign at all. Notes are parsed as strictly as the spec and its reference implementation
(``golang.org/x/mod/sumdb/note``): valid UTF-8 with no control character but newline anywhere,
every signature line well formed whoever signed it (a key name without spaces or ``+``, base64
of at least a 4-byte key id and one signature byte), at most 100 signatures. Every failure is a
:class:`~vault.errors.LedgerError`.

The origin names the log (C2SP tlog-checkpoint: unique per log). :func:`new_origin` derives one
for each new vault; the key name of the vault's signing key is its origin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.storage.durable import create_file
from vault.errors import ConfigError, KeyUnavailable, LedgerError

ALG_ED25519 = 0x01
KEY_ID_SIZE = 4
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32
ROOT_HASH_SIZE = 32
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100  # the signed-note spec lets verifiers refuse notes with more
#: The origin every vault had before each derived its own at ``init``; older vaults keep it.
LEGACY_ORIGIN = "evidence-vault.local/custody"
KEY_FILE_MODE = 0o600

_SIZE_RE = re.compile(r"(0|[1-9][0-9]{0,19})")
_B64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")


@dataclass(frozen=True)
class Checkpoint:
    """One tlog-checkpoint: the log's origin, its tree size and the Merkle root at that size.

    Raises LedgerError when built with fields the format cannot carry.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or not _is_line(self.origin):
            raise LedgerError("checkpoint origin must be one non-empty line of text")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise LedgerError("checkpoint size must be a non-negative integer")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != ROOT_HASH_SIZE:
            raise LedgerError(f"checkpoint root hash must be {ROOT_HASH_SIZE} bytes")
        for line in self.extensions:
            if not line or not _is_line(line):
                raise LedgerError("checkpoint extension lines must be non-empty single lines")

    def body(self) -> str:
        """The note text: ``<origin>\\n<size>\\n<base64 root>\\n`` and any extension lines."""
        root = base64.b64encode(self.root_hash).decode()
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (the text of a signed note). Raises LedgerError."""
        if not text.endswith("\n"):
            raise LedgerError("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise LedgerError("checkpoint body needs origin, size and root hash lines")
        origin, size_line, root_line, *extensions = lines
        if not _SIZE_RE.fullmatch(size_line):
            raise LedgerError("checkpoint size is not a decimal number without leading zeros")
        checkpoint = cls(
            origin, int(size_line), _b64decode(root_line, "checkpoint root hash"), tuple(extensions)
        )
        # One checkpoint, one text: refuse non-canonical base64 and other re-encodings.
        if checkpoint.body() != text:
            raise LedgerError("checkpoint body is not in canonical form")
        return checkpoint


class LedgerSigner:
    """An Ed25519 key that signs custody checkpoints under a key name (usually the log origin).

    Raises LedgerError when the name is not a valid signed-note key name.
    """

    def __init__(self, private_key: Ed25519PrivateKey, name: str) -> None:
        _check_key_name(name)
        self._private_key = private_key
        self.name = name
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(name, self.public_key)

    def __repr__(self) -> str:
        return f"LedgerSigner(name={self.name!r}, key_id={self.key_id.hex()})"

    @classmethod
    def generate(cls, name: str) -> LedgerSigner:
        """A signer with a fresh random key."""
        return cls(Ed25519PrivateKey.generate(), name)

    def sign_note(self, text: str) -> str:
        """Sign arbitrary note text; returns the whole signed note. Raises LedgerError."""
        _check_note_text(text)
        signature = self._private_key.sign(text.encode("utf-8"))
        blob = base64.b64encode(self.key_id + signature).decode()
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {blob}\n"

    def sign(self, checkpoint: Checkpoint) -> str:
        """The signed note of ``checkpoint``: body, blank line, one signature line."""
        return self.sign_note(checkpoint.body())

    def cosign(self, note: str) -> str:
        """Add this key's signature line to a signed note (the same text, one more signer).

        Raises LedgerError when ``note`` is not a signed note.
        """
        text, _block = _split_note(note)
        signed = self.sign_note(text)
        return note + signed[len(text) + 1 :]

    def to_pem(self) -> bytes:
        """The private key as PKCS#8 PEM, for the key file."""
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def verifier_key(self) -> str:
        """The C2SP verifier key: ``<name>+<hex key id>+<base64(0x01 || public key)>``."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def derive_key(self, context: str) -> bytes:
        """A 32-byte secret bound to this signing key and ``context`` (HKDF-SHA256).

        For keyed checks that only the holder of the signing key can make (the custody ledger's
        entry MACs); never the signing key itself.
        """
        seed = self._private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=f"evidence-vault {context}".encode(),
        )
        return hkdf.derive(seed)


def key_id(name: str, public_key: bytes) -> bytes:
    """The signed-note key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key)
    return digest.digest()[:KEY_ID_SIZE]


@dataclass(frozen=True)
class VerifierKey:
    """A parsed C2SP verifier key: name, key id and Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse ``<name>+<hex key id>+<base64 key>``. Raises LedgerError."""
        parts = vkey.strip().split("+")
        # base64 itself may contain '+': the name and id never do, so split off two fields.
        if len(parts) < 3:
            raise LedgerError("verifier key is not <name>+<key id>+<key>")
        name, hex_id, encoded = parts[0], parts[1], "+".join(parts[2:])
        _check_key_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise LedgerError("verifier key id is not 8 lowercase hex digits")
        raw = _b64decode(encoded, "verifier key")
        if len(raw) != 1 + PUBLIC_KEY_SIZE or raw[0] != ALG_ED25519:
            raise LedgerError("verifier key is not an Ed25519 key")
        public_key = raw[1:]
        if key_id(name, public_key) != bytes.fromhex(hex_id):
            raise LedgerError("verifier key id does not match its name and key")
        return cls(name, bytes.fromhex(hex_id), public_key)


def open_note(note: str, vkey: str | VerifierKey) -> str:
    """Check a signed note against one verifier key; returns the note text (the signed body).

    Signatures by other keys are ignored (C2SP signed-note); raises LedgerError when the note is
    malformed, when the known key's signature does not verify, or when it did not sign.
    """
    verifier = vkey if isinstance(vkey, VerifierKey) else VerifierKey.parse(vkey)
    # 1. The whole note (signatures too) is valid Unicode with no control character but
    #    newline; split the text from the signature block at the last blank line.
    _check_note_text(note)
    text, block = _split_note(note)
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise LedgerError(f"signed note carries more than {MAX_SIGNATURES} signatures")
    public = Ed25519PublicKey.from_public_bytes(verifier.public_key)
    verified = False
    for line in lines:
        # 2. Every line must be a well-formed signature line, known key or not.
        if not line.startswith(SIGNATURE_PREFIX):
            raise LedgerError("signed note has a malformed signature line")
        name, sep, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep or not _valid_key_name(name) or not encoded:
            raise LedgerError("signed note has a malformed signature line")
        blob = _b64decode(encoded, "note signature")
        if len(blob) < KEY_ID_SIZE + 1:  # a key id and at least one byte of signature
            raise LedgerError("signed note has a truncated signature")
        # 3. Ignore other keys; the known key's signature must verify over the text bytes.
        if name != verifier.name or blob[:KEY_ID_SIZE] != verifier.key_id:
            continue
        signature = blob[KEY_ID_SIZE:]
        if len(signature) != SIGNATURE_SIZE:
            raise LedgerError(f"signature by {name} has the wrong length")
        try:
            public.verify(signature, text.encode("utf-8"))
        except InvalidSignature:
            raise LedgerError(f"signature by {name} does not verify") from None
        verified = True
    # 4. The known key must have signed.
    if not verified:
        raise LedgerError(f"note is not signed by {verifier.name}")
    return text


def _split_note(note: str) -> tuple[str, str]:
    """(text, signature block) of a signed note, split at its last blank line."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n") or split + 2 == len(note):
        raise LedgerError("signed note has no signature block")
    return note[: split + 1], note[split + 2 :]


def new_origin(host: str | None = None) -> str:
    """A fresh, unique log origin: ``<host>/evidence-vault/<random id>``.

    ``host`` defaults to this machine's name (lower case, reduced to the characters a host
    name may hold); the random part makes two vaults on one host differ too.
    """
    name = (host if host is not None else socket.gethostname()).lower()
    name = re.sub(r"[^a-z0-9.-]+", "-", name).strip("-.") or "vault"
    return f"{name[:63]}/evidence-vault/{secrets.token_hex(8)}"


def peek_checkpoint(note: str) -> Checkpoint:
    """The checkpoint a signed note carries, its signatures *not* checked: only to choose the
    key that must open it (with :func:`open_checkpoint`). Raises LedgerError."""
    return Checkpoint.from_body(_split_note(note)[0])


def open_checkpoint(note: str, vkey: str | VerifierKey, *, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint note and parse its body.

    With ``origin``, also require the checkpoint to name that log. Returns the Checkpoint;
    raises LedgerError on any bad signature, format or origin.
    """
    checkpoint = Checkpoint.from_body(open_note(note, vkey))
    if origin is not None and checkpoint.origin != origin:
        raise LedgerError(f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def load_or_create_signing_key(path: Path | str, name: str) -> LedgerSigner:
    """The signer whose key is stored at ``path``, creating a new key file (mode 0600) if none.

    The file holds a PKCS#8 PEM Ed25519 key (a bare 32-byte seed is also read). Creation is
    atomic and never replaces a key another process wrote first. Raises ConfigError when the
    file is readable by group or others, KeyUnavailable when it holds no Ed25519 key.
    """
    path = Path(path)
    if not path.exists():
        _create_key_file(path)
    check_private(path, "ledger signing key")
    data = path.read_bytes()
    private_key: object
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            private_key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyUnavailable(f"ledger signing key {path} cannot be read") from exc
    elif len(data) == 32:
        private_key = Ed25519PrivateKey.from_private_bytes(data)
    else:
        raise KeyUnavailable(f"ledger signing key {path} is neither PEM nor a 32-byte seed")
    if not isinstance(private_key, Ed25519PrivateKey):
        raise KeyUnavailable(f"ledger signing key {path} is not an Ed25519 key")
    return LedgerSigner(private_key, name)


def check_private(path: Path, what: str) -> None:
    """Refuse (ConfigError) a secret file that group or others can read (POSIX)."""
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ConfigError(f"{what} {path} is readable by others; chmod 600 it")


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # If another process created the key meanwhile, theirs stands and both processes load it.
    create_file(path, LedgerSigner.generate("key").to_pem(), mode=KEY_FILE_MODE)


def _valid_key_name(name: str) -> bool:
    # C2SP signed-note: non-empty UTF-8 without Unicode spaces or '+'; we also refuse other
    # unprintable characters (controls, format characters) that would hide in a name.
    return bool(name) and name.isprintable() and not any(c.isspace() or c == "+" for c in name)


def _check_key_name(name: str) -> None:
    if not _valid_key_name(name):
        raise LedgerError("signed-note key names are non-empty, without spaces or '+'")


def _check_note_text(text: str) -> None:
    # Signed-note text: UTF-8, ends in a newline, no control characters but newline.
    if not isinstance(text, str) or not text.endswith("\n"):
        raise LedgerError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise LedgerError("note text must not contain control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise LedgerError("note text is not valid Unicode") from None


def _is_line(value: str) -> bool:
    return isinstance(value, str) and not any(ord(c) < 0x20 for c in value)


def _b64decode(value: str, what: str) -> bytes:
    # Standard alphabet with padding, nothing else (binascii alone skips stray characters).
    if not _B64_RE.fullmatch(value) or len(value) % 4:
        raise LedgerError(f"{what} is not base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise LedgerError(f"{what} is not base64") from None


__all__ = [
    "ALG_ED25519",
    "LEGACY_ORIGIN",
    "Checkpoint",
    "LedgerSigner",
    "VerifierKey",
    "check_private",
    "key_id",
    "load_or_create_signing_key",
    "new_origin",
    "open_checkpoint",
    "open_note",
    "peek_checkpoint",
]
