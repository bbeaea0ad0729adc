"""A key provider over PKCS#11: key-encryption keys that live in an HSM and never leave it.

Implements :class:`vault.storage.keys.KeyProvider` on any PKCS#11 v2.40 token (a network HSM, a
smart-card HSM, SoftHSM2 in the tests) through ``python-pkcs11``. Each KEK is an AES-256
secret-key object generated *inside* the token with ``CKA_SENSITIVE`` true and
``CKA_EXTRACTABLE`` false, so the token refuses to reveal or export it; wrapping a data key is
``C_Encrypt`` with ``CKM_AES_GCM`` inside the token, unwrapping is ``C_Decrypt``. Neither the
app's volume nor its memory ever holds the KEK.

Format, version 1.

Wrapped DEK (``WrappedKey.blob``, 61 bytes)::

    offset  size  field
    0       1     version     0x01
    1       12    nonce       from the token's random generator (C_GenerateRandom)
    13      32    ciphertext  AES-256-GCM(KEK, nonce, DEK, AD), computed in the token
    45      16    tag
    AD = b"evidence-vault/pkcs11-wrap-dek/v1" || uint16(len(key_id)) || key_id || UTF-8 context

KEK objects on the token (one per key id ``pkcs11-N``)::

    CKA_CLASS=CKO_SECRET_KEY  CKA_KEY_TYPE=CKK_AES  CKA_VALUE_LEN=32  CKA_TOKEN=true
    CKA_PRIVATE=true  CKA_SENSITIVE=true  CKA_EXTRACTABLE=false  CKA_ENCRYPT=CKA_DECRYPT=true
    CKA_WRAP=CKA_UNWRAP=false  CKA_MODIFIABLE=false  CKA_ID=uint32(N, big-endian)
    CKA_LABEL="<prefix>/<N>/<created, RFC 3339 UTC>"     prefix: settings.pkcs11_key_label

The label carries the creation time because PKCS#11 has no timestamp attribute (CKA_START_DATE
is a date), and key rotation (:mod:`vault.casework.rekey`) needs it for its grace period. The current
KEK is the one with the highest N; the others are retired (a key is retired when its successor
is created) and still unwrap. Destroying a KEK is ``C_DestroyObject``: it leaves no trace on
the token, so :meth:`Pkcs11Keys.describe` lists live keys only.

Not supported: two processes rotating at the same moment could both create ``pkcs11-N+1``;
rotate from one place (the retention worker's schedule or an administrator). A PKCS#11 library
initialised before ``fork()`` is unusable in the child; this provider re-initialises the
library the first time it is used in a new process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import os
import re
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vault.errors import ConfigError, InvalidInput, KeyUnavailable
from .keys import KEY_SIZE, NONCE_SIZE, TAG_SIZE, KeyInfo, KeyProvider, WrappedKey

if TYPE_CHECKING:
    from vault.config import Settings

__all__ = ["PKCS11_KEY_PREFIX", "Pkcs11Keys"]

WRAP_VERSION = 1
WRAP_LABEL = b"evidence-vault/pkcs11-wrap-dek/v1"
WRAPPED_SIZE = 1 + NONCE_SIZE + KEY_SIZE + TAG_SIZE
PKCS11_KEY_PREFIX = "pkcs11-"
DEFAULT_LABEL = "evidence-vault-kek"
GCM_TAG_BITS = TAG_SIZE * 8

_KEY_ID = re.compile(r"^pkcs11-([1-9][0-9]*)$")
# (module, token label) -> SHA-256 of the PIN this process logged in with (see _open_session).
_LOGINS: dict[tuple[str, str], bytes] = {}

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _wrap_ad(key_id: str, context: str) -> bytes:
    kid = key_id.encode()
    return WRAP_LABEL + struct.pack(">H", len(kid)) + kid + context.encode()


def _timestamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _Kek:
    number: int
    created: str
    handle: Any  # pkcs11.SecretKey: a handle to the object in the token, never its value

    @property
    def key_id(self) -> str:
        return f"{PKCS11_KEY_PREFIX}{self.number}"


class Pkcs11Keys(KeyProvider):
    """KEKs in a PKCS#11 token. Build with :meth:`open` (or :meth:`from_settings`).

    One logged-in read/write session is kept open; calls are serialised on it with a lock
    (a PKCS#11 session runs one operation at a time).
    """

    def __init__(self, module: Path, token_label: str, pin: str, *, key_label: str = DEFAULT_LABEL,
                 clock: Clock = _utcnow) -> None:
        self.module = module
        self.token_label = token_label
        self.key_label = key_label
        self._pin = pin
        self._clock = clock
        self._lock = threading.Lock()
        self._lib: Any = None
        self._session: Any = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"Pkcs11Keys(module={str(self.module)!r}, token={self.token_label!r}, label={self.key_label!r})"

    # -- construction -------------------------------------------------------------------

    @classmethod
    def open(cls, module: str | os.PathLike[str], token_label: str, pin: str, *,
             key_label: str = DEFAULT_LABEL, create: bool = False, clock: Clock = _utcnow) -> Pkcs11Keys:
        """Log in to token ``token_label`` through the PKCS#11 library ``module``.

        With ``create=True`` a token holding no KEK under ``key_label`` gets its first one,
        ``pkcs11-1`` (what ``init`` does). Returns the provider. Raises ConfigError when the
        library cannot be loaded or the token is not there, KeyUnavailable when the PIN is
        refused or (without ``create``) the token holds no KEK under ``key_label``.
        """
        keys = cls(Path(module), token_label, pin, key_label=key_label, clock=clock)
        with keys._lock:
            keks = keys._keks()
            if not keks:
                if not create:
                    raise KeyUnavailable(
                        f"token {token_label!r} holds no key labelled {key_label!r}: run "
                        "'evidence-vault init' with key_provider=pkcs11, or check "
                        "EVIDENCE_VAULT_PKCS11_TOKEN_LABEL"
                    )
                keys._generate(1)
        return keys

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = False) -> Pkcs11Keys:
        """:meth:`open` with ``pkcs11_module``, ``pkcs11_token_label`` and ``pkcs11_pin``.

        Raises ConfigError naming the first of them that is unset.
        """
        for name in ("pkcs11_module", "pkcs11_token_label", "pkcs11_pin"):
            if getattr(settings, name) is None:
                raise ConfigError(
                    f"key_provider=pkcs11 needs EVIDENCE_VAULT_{name.upper()} (docs/deployment.md)"
                )
        assert settings.pkcs11_module and settings.pkcs11_token_label and settings.pkcs11_pin
        return cls.open(settings.pkcs11_module, settings.pkcs11_token_label,
                        settings.pkcs11_pin.get_secret_value(), key_label=settings.pkcs11_key_label,
                        create=create)

    def close(self) -> None:
        """Log out and close the session (the provider reopens one if used again)."""
        with self._lock:
            if self._session is not None:
                # Closing a session the token already dropped must not mask anything.
                with contextlib.suppress(Exception):
                    self._session.close()
                self._session = None

    # -- the token ----------------------------------------------------------------------

    def _open_session(self) -> Any:
        import pkcs11
        from pkcs11 import exceptions as p11

        if self._session is not None and self._pid == os.getpid():
            return self._session
        try:
            if self._lib is None:
                self._lib = pkcs11.lib(str(self.module))
            elif self._pid != os.getpid():
                # A PKCS#11 library initialised before fork() must be initialised again in the
                # child (PKCS#11 base specification, "Applications and processes"): the
                # parent's session is not ours.
                self._lib.reinitialize()
        except (OSError, RuntimeError, p11.PKCS11Error) as exc:
            raise ConfigError(f"cannot load the PKCS#11 library {self.module}: {exc}") from None
        try:
            token = self._lib.get_token(token_label=self.token_label)
        except (p11.NoSuchToken, p11.MultipleTokensReturned) as exc:
            raise ConfigError(f"PKCS#11 token {self.token_label!r} not found through {self.module} "
                              f"({type(exc).__name__}); check EVIDENCE_VAULT_PKCS11_TOKEN_LABEL") from None
        try:
            try:
                self._session = token.open(rw=True, user_pin=self._pin)
            except p11.UserAlreadyLoggedIn:
                # Login is per application and token, shared by all its sessions (PKCS#11
                # base specification, "Sessions"): another provider in this process (another
                # Vault) holds a logged-in session, which ours shares.
                # The token checks no PIN now, so ours must match the one it accepted.
                accepted = _LOGINS.get((str(self.module), self.token_label))
                if accepted is not None and not hmac.compare_digest(accepted, self._pin_digest()):
                    raise p11.PinIncorrect() from None
                self._session = token.open(rw=True)
        except (p11.PinIncorrect, p11.PinLenRange, p11.PinInvalid, p11.PinLocked, p11.PinExpired) as exc:
            raise KeyUnavailable(f"PKCS#11 token {self.token_label!r} refused the PIN "
                                 f"({type(exc).__name__}); check EVIDENCE_VAULT_PKCS11_PIN") from None
        except p11.PKCS11Error as exc:
            raise KeyUnavailable(f"cannot log in to PKCS#11 token {self.token_label!r}: "
                                 f"{type(exc).__name__}") from None
        _LOGINS[(str(self.module), self.token_label)] = self._pin_digest()
        self._pid = os.getpid()
        return self._session

    def _pin_digest(self) -> bytes:
        return hashlib.sha256(self._pin.encode()).digest()

    def _keks(self) -> list[_Kek]:
        """Every KEK under ``key_label`` on the token, oldest first (caller holds the lock)."""
        from pkcs11 import Attribute, KeyType, ObjectClass

        session = self._open_session()
        found: dict[int, _Kek] = {}
        prefix = self.key_label + "/"
        for obj in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                         Attribute.KEY_TYPE: KeyType.AES}):
            label = str(obj.label or "")
            if not label.startswith(prefix):
                continue
            number, _, created = label[len(prefix):].partition("/")
            if number.isdigit() and created:
                found[int(number)] = _Kek(int(number), created, obj)
        return [found[n] for n in sorted(found)]

    def _find(self, key_id: str) -> _Kek | None:
        match = _KEY_ID.match(key_id)
        if match is None:
            return None
        return next((k for k in self._keks() if k.number == int(match.group(1))), None)

    def _generate(self, number: int) -> _Kek:
        from pkcs11 import Attribute, KeyType, MechanismFlag

        created = _timestamp(self._clock())
        handle = self._open_session().generate_key(
            KeyType.AES, KEY_SIZE * 8, id=struct.pack(">I", number),
            label=f"{self.key_label}/{number}/{created}", store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={
                # The KEK never leaves the token: not readable, not exportable, and not usable
                # to wrap other keys out of it either.
                Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False, Attribute.WRAP: False, Attribute.UNWRAP: False,
                Attribute.MODIFIABLE: False,
            },
        )
        return _Kek(number, created, handle)

    def _current(self) -> _Kek:
        keks = self._keks()
        if not keks:
            raise KeyUnavailable(f"token {self.token_label!r} holds no key labelled {self.key_label!r}")
        return keks[-1]

    # -- KeyProvider ---------------------------------------------------------------------

    def current_key_id(self) -> str:
        """Return the id of the current KEK (``pkcs11-N``, the highest N on the token)."""
        with self._lock:
            return self._current().key_id

    def key_ids(self) -> list[str]:
        """Return the id of every KEK on the token under this label, oldest first."""
        with self._lock:
            return [k.key_id for k in self._keks()]

    def describe(self) -> list[KeyInfo]:
        """Every KEK on the token under this label, oldest first (destroyed ones are gone)."""
        with self._lock:
            keks = self._keks()
        return [
            KeyInfo(key_id=k.key_id, state="active" if i == len(keks) - 1 else "retired",
                    created=k.created, retired=keks[i + 1].created if i + 1 < len(keks) else None,
                    destroyed=None)
            for i, k in enumerate(keks)
        ]

    def wrap(self, dek: bytes, *, context: str) -> WrappedKey:
        """Wrap ``dek`` under the current KEK inside the token, bound to ``context``.

        Returns the WrappedKey to store. Raises InvalidInput unless ``dek`` is 32 bytes and
        ``context`` a non-empty string; KeyUnavailable if the token refuses.
        """
        from pkcs11 import Mechanism
        from pkcs11 import exceptions as p11
        from pkcs11.mechanisms import GCMParams

        if not isinstance(dek, (bytes, bytearray)) or len(dek) != KEY_SIZE:
            raise InvalidInput(f"data key must be {KEY_SIZE} bytes")
        if not isinstance(context, str) or not context:
            raise InvalidInput("wrap context (object id) must be a non-empty string")
        with self._lock:
            kek = self._current()
            try:
                nonce = bytes(self._open_session().generate_random(NONCE_SIZE * 8))
                sealed = kek.handle.encrypt(
                    bytes(dek), mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, _wrap_ad(kek.key_id, context), GCM_TAG_BITS))
            except p11.PKCS11Error as exc:
                raise KeyUnavailable(f"token {self.token_label!r} refused to wrap with "
                                     f"{kek.key_id}: {type(exc).__name__}") from None
        return WrappedKey(key_id=kek.key_id, blob=bytes([WRAP_VERSION]) + nonce + bytes(sealed))

    def unwrap(self, wrapped: WrappedKey, *, context: str) -> bytes:
        """Return the data key in ``wrapped``, unwrapped inside the token.

        Raises KeyUnavailable when the KEK is not on the token (destroyed, another token or
        label), or the blob does not open (altered, wrapped for another object id).
        """
        from pkcs11 import Mechanism
        from pkcs11 import exceptions as p11
        from pkcs11.mechanisms import GCMParams

        if not isinstance(context, str) or not context:
            raise InvalidInput("wrap context (object id) must be a non-empty string")
        blob = bytes(wrapped.blob)
        if len(blob) != WRAPPED_SIZE or blob[0] != WRAP_VERSION:
            raise KeyUnavailable(f"wrapped data key for {context!r} is malformed ({len(blob)} "
                                 "bytes); the catalog row was altered")
        with self._lock:
            kek = self._find(wrapped.key_id)
            if kek is None:
                raise KeyUnavailable(
                    f"key {wrapped.key_id!r} is not on token {self.token_label!r} under label "
                    f"{self.key_label!r}: destroyed, or the wrong token")
            nonce, sealed = blob[1:1 + NONCE_SIZE], blob[1 + NONCE_SIZE:]
            try:
                return bytes(kek.handle.decrypt(
                    sealed, mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, _wrap_ad(kek.key_id, context), GCM_TAG_BITS)))
            except p11.PKCS11Error:
                raise KeyUnavailable(
                    f"wrapped data key for {context!r} does not open with {kek.key_id} on token "
                    f"{self.token_label!r}: altered, or it belongs to another object") from None

    def rotate(self) -> str:
        """Generate a new KEK in the token and make it current; the others still unwrap."""
        with self._lock:
            keks = self._keks()
            return self._generate((keks[-1].number if keks else 0) + 1).key_id

    def destroy(self, key_id: str) -> None:
        """Destroy retired KEK ``key_id`` in the token (``C_DestroyObject``): every data key it
        wrapped stops opening. Raises InvalidInput for the current KEK or an unknown id."""
        with self._lock:
            keks = self._keks()
            kek = next((k for k in keks if k.key_id == key_id), None)
            if kek is None:
                raise InvalidInput(f"no key {key_id!r} on token {self.token_label!r}")
            if kek is keks[-1]:
                raise InvalidInput(f"key {key_id} is the current key: rotate before destroying it")
            kek.handle.destroy()
