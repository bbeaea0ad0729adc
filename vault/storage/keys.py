"""Key providers: the key-encryption keys (KEKs) that wrap every object's data key.

Envelope encryption (docs/design.md, "Encryption"): each stored object has its own random data key
(DEK, :func:`vault.storage.crypto.new_data_key`); a :class:`KeyProvider` wraps it under the current KEK
and the catalog keeps only the :class:`WrappedKey` (KEK id and blob). Destroying the wrapped DEK
shreds the object. The wrap is bound to a *context*, the object id, so a wrapped DEK copied to
another catalog row does not unwrap.

The embedded default is :class:`LocalKeyring`, a JSON file. This module implements its two
formats, version 1:

Wrapped DEK (``WrappedKey.blob``, 61 bytes)::

    offset  size  field
    0       1     version     0x01
    1       12    nonce       random
    13      32    ciphertext  AES-256-GCM(KEK, nonce, DEK, AD)
    45      16    tag
    AD = b"evidence-vault/wrap-dek/v1" || uint16(len(key_id)) || key_id || UTF-8 context

Keyring file (UTF-8 JSON, mode 0600, replaced atomically on every change)::

    {"format": "evidence-vault-keyring", "version": 1,
     "current": "local-2",
     "kdf": null | {"name": "scrypt", "salt": <base64, 16 bytes>, "n": 32768, "r": 8, "p": 1},
     "keys": [{"id": "local-1", "created": "2026-01-01T00:00:00Z", "state": "retired",
               "key": <base64 KEK>}                      -- without a passphrase
              {"id": "local-2", ..., "state": "active",
               "sealed": <base64 nonce(12) || AES-256-GCM(scrypt key, nonce, KEK, AD)>}]}
                                                         -- with one
    sealing AD = b"evidence-vault/keyring-kek/v1" || UTF-8 key id

Key states: ``active`` (the one current KEK: wraps and unwraps) and ``retired`` (unwraps only,
kept so that objects wrapped before a rotation stay readable until :func:`rewrap` moves them).

Why this module is long: the ``KeyProvider`` protocol, the wrap format and the keyring file
(the embedded default) are read together when key handling is reviewed; the HSM backend is in
``pkcs11.py`` and the choice between them in ``key_providers.py``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .durable import replace_file
from vault.errors import ConfigError, InvalidInput, KeyUnavailable

__all__ = [
    "KEYRING_FORMAT",
    "KeyInfo",
    "KeyProvider",
    "LocalKeyring",
    "WrappedKey",
    "rewrap",
]

KEYRING_FORMAT = "evidence-vault-keyring"
KEYRING_VERSION = 1
WRAP_VERSION = 1
WRAP_LABEL = b"evidence-vault/wrap-dek/v1"
SEAL_LABEL = b"evidence-vault/keyring-kek/v1"
KEY_SIZE = 32  # AES-256 KEKs and DEKs
NONCE_SIZE = 12
TAG_SIZE = 16
WRAPPED_SIZE = 1 + NONCE_SIZE + KEY_SIZE + TAG_SIZE
LOCAL_KEY_PREFIX = "local-"
STATE_ACTIVE = "active"
STATE_RETIRED = "retired"
STATE_DESTROYED = "destroyed"  # no key material left: what it wrapped is unreadable for good
FILE_MODE = 0o600
# scrypt cost: 2**15 * 8 * 128 bytes = 32 MiB and ~0.1 s per open; RFC 7914 / OWASP's
# interactive-login level. Stored in the file, so raising it later keeps old files readable.
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_SALT_SIZE = 16
_MAX_SCRYPT_N = 1 << 22  # refuse a file that would make open() take minutes and gigabytes

_LOCAL_ID = re.compile(r"^local-([1-9][0-9]*)$")

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped by key-encryption key ``key_id``; what the catalog stores."""

    key_id: str
    blob: bytes = field(repr=False)


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys under key-encryption keys that never leave the provider.

    The interface is the intersection of what a cloud KMS (AWS KMS ``Encrypt``/``Decrypt``
    with an encryption context, GCP KMS with additional authenticated data) and HashiCorp
    Vault's transit engine (``transit/encrypt``/``decrypt`` with ``context`` on a derived key,
    ``transit/keys/<name>/rotate``, ``transit/rewrap``) offer, so each can implement it without
    exposing its key material: ``key_id`` names the key and version that wrapped a blob (the
    KMS key ARN, or ``vault:v3``), ``blob`` is the provider's ciphertext, ``context`` is passed
    as encryption context / AAD. Implementations raise KeyUnavailable for anything that prevents
    unwrapping (unknown key, wrong context, unreachable service) and never log key material.
    """

    def current_key_id(self) -> str:
        """Return the id of the KEK that :meth:`wrap` uses now."""
        ...

    def wrap(self, dek: bytes, *, context: str) -> WrappedKey:
        """Return ``dek`` wrapped under the current KEK and bound to ``context`` (the object id).

        Raises InvalidInput for a malformed key or context, KeyUnavailable if no KEK is usable.
        """
        ...

    def unwrap(self, wrapped: WrappedKey, *, context: str) -> bytes:
        """Return the data key in ``wrapped``, which must have been wrapped for ``context``.

        Raises KeyUnavailable when the KEK is unknown or the blob does not open (altered, wrong
        context, wrong keyring).
        """
        ...

    def rotate(self) -> str:
        """Make a new KEK current and return its id; earlier KEKs still unwrap."""
        ...

    def key_ids(self) -> list[str]:
        """Return the ids of every KEK the provider can unwrap with, oldest first."""
        ...

    def destroy(self, key_id: str) -> None:
        """Destroy a retired KEK for good (AWS KMS ``ScheduleKeyDeletion``, transit ``trim``):
        every data key it wrapped, in the catalog or in any backup of it, stops opening.

        Raises InvalidInput for the current KEK or an unknown id.
        """
        ...


def rewrap(provider: KeyProvider, wrapped: WrappedKey, *, context: str) -> WrappedKey:
    """Move a wrapped data key to the provider's current KEK (after :meth:`KeyProvider.rotate`).

    Returns ``wrapped`` itself if it already uses the current KEK, else a new WrappedKey for
    the same data key and context. The object's ciphertext is untouched. Raises KeyUnavailable
    as :meth:`KeyProvider.unwrap` does.
    """
    if wrapped.key_id == provider.current_key_id():
        return wrapped
    dek = provider.unwrap(wrapped, context=context)
    return provider.wrap(dek, context=context)


def _wrap_ad(key_id: str, context: str) -> bytes:
    kid = key_id.encode("utf-8")
    # Length-prefixing the key id keeps (key id, context) pairs from colliding.
    return WRAP_LABEL + struct.pack(">H", len(kid)) + kid + context.encode("utf-8")


def _check_context(context: str) -> None:
    if not isinstance(context, str) or not context:
        raise InvalidInput("key wrap context (the object id) must be a non-empty string")
    try:
        context.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("key wrap context must be valid Unicode text") from exc


def _b64decode(value: Any, what: str, path: Path) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"keyring {path} is corrupt: {what} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"keyring {path} is corrupt: {what} is not valid base64") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class _Kdf:
    salt: bytes = field(repr=False)
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    def derive(self, passphrase: str) -> AESGCM:
        key = Scrypt(salt=self.salt, length=KEY_SIZE, n=self.n, r=self.r, p=self.p).derive(
            passphrase.encode("utf-8")
        )
        return AESGCM(key)

    def to_json(self) -> dict[str, Any]:
        return {"name": "scrypt", "salt": _b64(self.salt), "n": self.n, "r": self.r, "p": self.p}

    @classmethod
    def from_json(cls, data: Any, path: Path) -> _Kdf:
        if not isinstance(data, dict) or data.get("name") != "scrypt":
            raise ConfigError(f"keyring {path} is corrupt: unknown key derivation {data!r:.40}")
        n, r, p = data.get("n"), data.get("r"), data.get("p")
        if not all(isinstance(v, int) and v > 0 for v in (n, r, p)):
            raise ConfigError(f"keyring {path} is corrupt: bad scrypt parameters")
        assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
        if n & (n - 1) or n < 2 or n > _MAX_SCRYPT_N or r * p >= 1 << 30:
            raise ConfigError(f"keyring {path} is corrupt: scrypt parameters out of range")
        return cls(salt=_b64decode(data.get("salt"), "scrypt salt", path), n=n, r=r, p=p)


@dataclass(frozen=True)
class _Kek:
    key_id: str
    created: str
    state: str
    key: bytes = field(repr=False)
    destroyed: str | None = None


@dataclass(frozen=True)
class KeyInfo:
    """One key-encryption key as a keyring describes it (no key material)."""

    key_id: str
    state: str  # active, retired or destroyed
    created: str
    retired: str | None  # when its successor was created
    destroyed: str | None


class LocalKeyring(KeyProvider):
    """KEKs in a local JSON file: the embedded default :class:`KeyProvider`.

    Build with :meth:`create` (new file) or :meth:`open` (existing file). Every change is
    written to a temporary file, fsynced and renamed over the keyring, under an exclusive lock,
    after re-reading the file, so two processes rotating at once cannot lose a key. With a
    passphrase, each KEK is sealed under a key derived by scrypt; without one, the file's
    0600 mode and the data directory's 0700 are the only protection.
    """

    def __init__(
        self,
        path: Path,
        *,
        keys: list[_Kek],
        current: str,
        kdf: _Kdf | None,
        sealer: AESGCM | None,
        clock: Clock,
    ) -> None:
        """Use :meth:`create` or :meth:`open`; this constructor does no I/O and no checks."""
        self.path = path
        self._keys = {k.key_id: k for k in keys}
        self._order = [k.key_id for k in keys]
        self._current = current
        self._kdf = kdf
        self._sealer = sealer
        self._clock = clock
        # Guards the in-memory key table between threads; the file lock guards the file
        # between processes.
        self._lock = threading.RLock()
        # The file as last read or written (inode, mtime, size): wrap re-reads it when it
        # changed, so a rotation by another process applies to this one's next wrap too.
        self._seen: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"LocalKeyring({str(self.path)!r}, current={self._current!r})"

    # -- construction -------------------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], *, passphrase: str | None = None, clock: Clock = _utcnow
    ) -> LocalKeyring:
        """Create a keyring file at ``path`` holding one fresh KEK, ``local-1``.

        Returns the opened keyring. Raises ConfigError if the file already exists (replacing
        a keyring would shred every object it protects) or cannot be written, InvalidInput for
        an empty passphrase.
        """
        path = Path(path)
        if passphrase is not None and not passphrase:
            raise InvalidInput("keyring passphrase must not be empty; omit it for no passphrase")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        kdf = _Kdf(salt=os.urandom(SCRYPT_SALT_SIZE)) if passphrase is not None else None
        sealer = kdf.derive(passphrase) if kdf is not None and passphrase is not None else None
        first = _Kek(
            key_id=f"{LOCAL_KEY_PREFIX}1",
            created=_timestamp(clock()),
            state=STATE_ACTIVE,
            key=AESGCM.generate_key(bit_length=256),
        )
        keyring = cls(path, keys=[first], current=first.key_id, kdf=kdf, sealer=sealer, clock=clock)
        with keyring._locked():
            if path.exists():
                raise ConfigError(
                    f"keyring {path} already exists; open it instead (replacing it would make "
                    "every object it protects unreadable)"
                )
            keyring._write()
        return keyring

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, passphrase: str | None = None, clock: Clock = _utcnow
    ) -> LocalKeyring:
        """Open an existing keyring file.

        Returns the keyring. Raises ConfigError when the file is missing, unreadable, readable
        by other users, or corrupt, or when a passphrase is given for a keyring without one;
        KeyUnavailable when the passphrase is missing or wrong.
        """
        path = Path(path)
        data = _read_file(path)
        kdf = None if data.get("kdf") is None else _Kdf.from_json(data["kdf"], path)
        if kdf is None and passphrase is not None:
            raise ConfigError(
                f"keyring {path} has no passphrase but one was given; unset "
                "EVIDENCE_VAULT_KEYRING_PASSPHRASE or recreate the keyring with one"
            )
        if kdf is not None and passphrase is None:
            raise KeyUnavailable(
                f"keyring {path} is passphrase-protected; set EVIDENCE_VAULT_KEYRING_PASSPHRASE"
            )
        sealer = kdf.derive(passphrase) if kdf is not None and passphrase is not None else None
        keys, current = _parse_keys(data, path, sealer)
        return cls(path, keys=keys, current=current, kdf=kdf, sealer=sealer, clock=clock)

    # -- KeyProvider ---------------------------------------------------------------------

    def current_key_id(self) -> str:
        """Return the id of the active KEK (``local-N``)."""
        return self._current

    def key_ids(self) -> list[str]:
        """Return the id of every KEK that still unwraps (not destroyed), oldest first."""
        with self._lock:
            return [k for k in self._order if self._keys[k].state != STATE_DESTROYED]

    def describe(self) -> list[KeyInfo]:
        """Every KEK ever in this keyring, destroyed ones too, oldest first."""
        with self._lock:
            self._reload()
            keks = [self._keys[k] for k in self._order]
        return [
            KeyInfo(
                key_id=k.key_id,
                state=k.state,
                created=k.created,
                retired=keks[i + 1].created if i + 1 < len(keks) else None,
                destroyed=k.destroyed,
            )
            for i, k in enumerate(keks)
        ]

    def wrap(self, dek: bytes, *, context: str) -> WrappedKey:
        """Wrap ``dek`` under the active KEK, bound to ``context`` (the object id).

        Returns the WrappedKey to store in the catalog. Raises InvalidInput unless ``dek`` is
        32 bytes and ``context`` a non-empty string.
        """
        if not isinstance(dek, (bytes, bytearray)) or len(dek) != KEY_SIZE:
            raise InvalidInput(f"data key must be {KEY_SIZE} bytes")
        _check_context(context)
        with self._lock:
            if self._seen != _signature(self.path):
                self._reload()
            kek = self._keys[self._current]
        nonce = os.urandom(NONCE_SIZE)
        sealed = AESGCM(kek.key).encrypt(nonce, bytes(dek), _wrap_ad(kek.key_id, context))
        return WrappedKey(key_id=kek.key_id, blob=bytes([WRAP_VERSION]) + nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, *, context: str) -> bytes:
        """Return the data key in ``wrapped``.

        Raises KeyUnavailable when the KEK id is not in this keyring (after re-reading the file,
        in case another process rotated), or the blob does not open: wrapped for another object
        id, altered, or wrapped by another keyring file that reuses the same key id.
        """
        _check_context(context)
        with self._lock:
            kek = self._keys.get(wrapped.key_id)
            if kek is None:
                self._reload()
                kek = self._keys.get(wrapped.key_id)
        if kek is None:
            raise KeyUnavailable(
                f"key {wrapped.key_id!r} is not in keyring {self.path} (have: "
                f"{', '.join(self._order)}); is EVIDENCE_VAULT_KEYRING_PATH the right keyring?"
            )
        if kek.state == STATE_DESTROYED:
            raise KeyUnavailable(
                f"key {kek.key_id} of keyring {self.path} was destroyed on {kek.destroyed}: "
                f"the data key for {context!r} can no longer be opened"
            )
        blob = bytes(wrapped.blob)
        if len(blob) != WRAPPED_SIZE or blob[0] != WRAP_VERSION:
            raise KeyUnavailable(
                f"wrapped data key for {context!r} is malformed ({len(blob)} bytes); "
                "the catalog row was altered"
            )
        nonce, sealed = blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :]
        try:
            return AESGCM(kek.key).decrypt(nonce, sealed, _wrap_ad(kek.key_id, context))
        except InvalidTag:
            raise KeyUnavailable(
                f"wrapped data key for {context!r} does not open with {kek.key_id} from keyring "
                f"{self.path}: wrong keyring file, or the key belongs to another object"
            ) from None

    def rotate(self) -> str:
        """Add a fresh KEK, make it active, and retire the previous one (it still unwraps).

        Returns the new key id. Re-reads the file under the lock first, so a rotation by
        another process is kept. Raises ConfigError if the file cannot be written, and as
        :meth:`open` does if the file changed into something unreadable.
        """
        with self._lock, self._locked():
            self._reload()
            number = max(_key_number(kid) for kid in self._order) + 1
            new = _Kek(
                key_id=f"{LOCAL_KEY_PREFIX}{number}",
                created=_timestamp(self._clock()),
                state=STATE_ACTIVE,
                key=AESGCM.generate_key(bit_length=256),
            )
            for kid in self._order:
                old = self._keys[kid]
                if old.state == STATE_ACTIVE:
                    self._keys[kid] = _Kek(old.key_id, old.created, STATE_RETIRED, old.key)
            self._keys[new.key_id] = new
            self._order.append(new.key_id)
            self._current = new.key_id
            self._write()
        return new.key_id

    def destroy(self, key_id: str) -> None:
        """Remove a retired KEK's key material from the keyring file for good; its id, dates
        and state (``destroyed``) stay, so a blob wrapped by it fails with a clear reason.

        Re-reads the file under the lock first. Raises InvalidInput for the current KEK or an
        unknown id, ConfigError if the file cannot be written. Destroying twice is a no-op.
        """
        with self._lock, self._locked():
            self._reload()
            kek = self._keys.get(key_id)
            if kek is None:
                raise InvalidInput(f"no key {key_id!r} in keyring {self.path}")
            if key_id == self._current:
                raise InvalidInput(f"key {key_id} is the current key: rotate before destroying it")
            if kek.state == STATE_DESTROYED:
                return
            self._keys[key_id] = _Kek(
                kek.key_id, kek.created, STATE_DESTROYED, b"", destroyed=_timestamp(self._clock())
            )
            self._write()

    # -- file handling -------------------------------------------------------------------

    def _reload(self) -> None:
        seen = _signature(self.path)
        data = _read_file(self.path)
        kdf = None if data.get("kdf") is None else _Kdf.from_json(data["kdf"], self.path)
        if (kdf is None) != (self._kdf is None) or (
            kdf is not None and self._kdf is not None and kdf.salt != self._kdf.salt
        ):
            raise ConfigError(f"keyring {self.path} was replaced by another keyring; reopen it")
        keys, current = _parse_keys(data, self.path, self._sealer)
        self._keys = {k.key_id: k for k in keys}
        self._order = [k.key_id for k in keys]
        self._current = current
        self._seen = seen

    def _to_json(self) -> dict[str, Any]:
        entries = []
        for kid in self._order:
            kek = self._keys[kid]
            entry: dict[str, Any] = {"id": kek.key_id, "created": kek.created, "state": kek.state}
            if kek.state == STATE_DESTROYED:
                entry["destroyed"] = kek.destroyed
            elif self._sealer is None:
                entry["key"] = _b64(kek.key)
            else:
                nonce = os.urandom(NONCE_SIZE)
                sealed = self._sealer.encrypt(nonce, kek.key, SEAL_LABEL + kid.encode("utf-8"))
                entry["sealed"] = _b64(nonce + sealed)
            entries.append(entry)
        return {
            "format": KEYRING_FORMAT,
            "version": KEYRING_VERSION,
            "current": self._current,
            "kdf": None if self._kdf is None else self._kdf.to_json(),
            "keys": entries,
        }

    def _write(self) -> None:
        """Replace the keyring file atomically and durably."""
        payload = (json.dumps(self._to_json(), indent=2) + "\n").encode("utf-8")
        try:
            replace_file(self.path, payload, mode=FILE_MODE)
        except OSError as exc:
            raise ConfigError(f"cannot write keyring {self.path}: {exc.strerror}") from None
        self._seen = _signature(self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold an exclusive lock on ``<keyring>.lock`` (POSIX advisory lock)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
            yield
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise ConfigError(f"cannot lock keyring {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _signature(path: Path) -> tuple[int, int, int]:
    """What changes when the keyring file is replaced (every write renames a new file in)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"keyring {path} cannot be read: {exc.strerror}") from None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _timestamp(when: dt.datetime) -> str:
    if when.tzinfo is None:
        raise InvalidInput("keyring clock must return timezone-aware times")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_number(key_id: str) -> int:
    match = _LOCAL_ID.match(key_id)
    return int(match.group(1)) if match else 0


def _read_file(path: Path) -> dict[str, Any]:
    """Read and minimally check a keyring file. Raises ConfigError with what to do."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(
            f"keyring {path} does not exist; run 'evidence-vault init' or set "
            "EVIDENCE_VAULT_KEYRING_PATH to the existing keyring"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read keyring {path}: {exc.strerror}") from None
    if os.name == "posix" and st.st_mode & 0o077:
        # Like ssh with private keys: refuse rather than keep using keys others can read.
        raise ConfigError(
            f"keyring {path} is accessible by other users (mode {st.st_mode & 0o777:o}); "
            f"run: chmod 600 {path}"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read keyring {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"keyring {path} is corrupt (not JSON); restore it from backup") from None
    if not isinstance(data, dict) or data.get("format") != KEYRING_FORMAT:
        raise ConfigError(f"{path} is not an evidence-vault keyring; restore it from backup")
    if data.get("version") != KEYRING_VERSION:
        raise ConfigError(
            f"keyring {path} has version {data.get('version')!r}; this build reads "
            f"version {KEYRING_VERSION}"
        )
    return data


def _parse_keys(data: dict[str, Any], path: Path, sealer: AESGCM | None) -> tuple[list[_Kek], str]:
    """Return the KEKs (unsealed) and the current id. Raises ConfigError, KeyUnavailable."""
    corrupt = f"keyring {path} is corrupt"
    entries = data.get("keys")
    current = data.get("current")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{corrupt}: it holds no keys; restore it from backup")
    keys: list[_Kek] = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"{corrupt}: key entry {number} is not an object")
        kid, created, state = entry.get("id"), entry.get("created"), entry.get("state")
        if not isinstance(kid, str) or not kid or not isinstance(created, str):
            raise ConfigError(f"{corrupt}: key entry {number} has no id or creation time")
        if state not in (STATE_ACTIVE, STATE_RETIRED, STATE_DESTROYED):
            raise ConfigError(f"{corrupt}: key {kid} has unknown state {state!r:.20}")
        if any(k.key_id == kid for k in keys):
            raise ConfigError(f"{corrupt}: key {kid} appears twice")
        if state == STATE_DESTROYED:
            if "key" in entry or "sealed" in entry:
                raise ConfigError(f"{corrupt}: destroyed key {kid} still has key material")
            if not isinstance(entry.get("destroyed"), str):
                raise ConfigError(f"{corrupt}: destroyed key {kid} has no destruction time")
            keys.append(_Kek(kid, created, state, b"", destroyed=entry["destroyed"]))
            continue
        if sealer is None:
            if "key" not in entry:
                raise ConfigError(f"{corrupt}: key {kid} has no key material")
            key = _b64decode(entry["key"], f"key {kid}", path)
        else:
            if "sealed" not in entry:
                raise ConfigError(f"{corrupt}: key {kid} is not sealed by the passphrase")
            blob = _b64decode(entry["sealed"], f"key {kid}", path)
            try:
                key = sealer.decrypt(
                    blob[:NONCE_SIZE], blob[NONCE_SIZE:], SEAL_LABEL + kid.encode("utf-8")
                )
            except (InvalidTag, ValueError):
                raise KeyUnavailable(
                    f"wrong passphrase for keyring {path} (or its key {kid} was altered); "
                    "check EVIDENCE_VAULT_KEYRING_PASSPHRASE"
                ) from None
        if len(key) != KEY_SIZE:
            raise ConfigError(f"{corrupt}: key {kid} is not {KEY_SIZE} bytes")
        keys.append(_Kek(key_id=kid, created=created, state=state, key=key))
    active = [k.key_id for k in keys if k.state == STATE_ACTIVE]
    if active != [current]:
        raise ConfigError(f"{corrupt}: 'current' must name its one active key")
    assert isinstance(current, str)
    return keys, current
