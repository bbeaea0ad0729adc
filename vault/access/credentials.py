"""Credentials of local users for the web app: a password and a TOTP second factor.

Passwords (Argon2id, RFC 9106, through ``argon2-cffi``)
    1. Only the Argon2id hash is stored (``user_credentials.password_hash``), with its own salt
       and cost parameters; a hash made with older parameters is upgraded at the next sign-in.
    2. A password is 12-1024 characters (long pass-phrases welcome; the upper bound keeps one
       sign-in from costing the server more than any other).
    3. An unknown user name costs the same hash as a known one, so timing does not tell which
       names exist.

Second factor (TOTP, RFC 6238: SHA-1, 6 digits, 30-second steps, through ``pyotp``)
    4. A 160-bit secret (RFC 4226 section 4's recommended length) is generated at enrolment and
       becomes active only when the user proves their authenticator holds it with one code.
    5. A code is accepted for the current step and one step either side (clock drift), and
       each step at most once: a code seen on the wire cannot be replayed.

Lock-out
    6. After :data:`MAX_FAILURES` failed passwords or codes in a row the account is locked for
       :data:`LOCKOUT`: an online guess of a 6-digit code becomes impractical. A successful
       sign-in clears the count; an administrator clears it with a new password.

Second-factor secrets at rest (format ``evidence-vault/totp-secret/v1``)
    7. A TOTP secret is a password equivalent, so the catalog never holds it in the clear: it
       is sealed under a random 256-bit data key of its own, and that key is wrapped by the
       vault's key-encryption key (:mod:`vault.storage.keys`), exactly as footage is::

           totp_key_id       the KEK that wrapped the data key
           totp_wrapped_key  KeyProvider.wrap(data key, context="totp:" + user id)
           totp_sealed       0x01 || nonce (12) || AES-256-GCM(data key, nonce, secret, AD)
           AD = b"evidence-vault/totp-secret/v1" || UTF-8 user id

       A copy of the catalog without the keyring opens no second factor, and a sealed secret
       moved to another user's row does not open (both the wrap and the seal name the user).
    8. Rows written before sealing (``totp_secret``, base32 in the clear) still work: they are
       sealed at the next accepted code, or all at once by :func:`seal_second_factors`
       (``keys rewrap`` runs it), and the plaintext column is cleared.
    9. Rotating the KEK moves these data keys too (:func:`rewrap_second_factors`, called by
       :func:`vault.casework.rekey.rewrap`), and :func:`vault.casework.rekey.in_use_counts` counts them, so a
       retired KEK that still wraps a second factor is never destroyed under it.

Recovery is the administrator's (``evidence-vault admin user set-password`` and ``reset-2fa``),
each a ``user_changed`` custody event. Refusals raise :class:`~vault.errors.Unauthenticated`;
the web app logs them as ``access_denied`` (the API does the same for bad tokens).
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from vault.actors import Actor
from vault.storage.catalog import Base
from vault.ledger.custody import Action
from vault.ledger.events import UserChanged
from vault.errors import CiphertextError, InvalidInput, NotFound, Unauthenticated
from .identity import User
from vault.storage.keys import WrappedKey
from vault.storage.keys import rewrap as rewrap_key
from vault.storage.db import get_or_not_found
from .web_sessions import WebSession

if TYPE_CHECKING:
    from vault.vault import Vault

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
TOTP_SECRET_BYTES = 20  # 160 bits (RFC 4226 section 4)
TOTP_STEP_S = 30
TOTP_DIGITS = 6
TOTP_DRIFT_STEPS = 1
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
SEAL_LABEL = b"evidence-vault/totp-secret/v1"  # check 7
SEAL_VERSION = 1
SEAL_NONCE_SIZE = 12
SEAL_KEY_SIZE = 32
SEAL_CONTEXT_PREFIX = "totp:"

_hasher = PasswordHasher()  # argon2-cffi's defaults: RFC 9106's low-memory Argon2id profile
# A real hash of a random password, verified against for unknown names (check 3).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Credential(Base):
    """A local user's password hash and TOTP second factor."""

    __tablename__ = "user_credentials"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    password_set_at: Mapped[dt.datetime | None]
    # Base32 TOTP secret in the clear: rows written before check 7 only (check 8).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The sealed secret (check 7); pending until totp_confirmed_at is set (check 4).
    totp_key_id: Mapped[str | None] = mapped_column(String(128))
    totp_wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_confirmed_at: Mapped[dt.datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]

    @property
    def has_second_factor(self) -> bool:
        """Whether a TOTP secret (sealed, or a plaintext row of before check 7) is stored."""
        return self.totp_sealed is not None or bool(self.totp_secret)


def _seal_ad(user_id: str) -> bytes:
    return SEAL_LABEL + user_id.encode("utf-8")


def _sealed(vault: Vault, user_id: str, secret: str) -> tuple[str, bytes, bytes]:
    """Check 7: (KEK id, wrapped data key, sealed secret) for user ``user_id``."""
    dek = AESGCM.generate_key(bit_length=SEAL_KEY_SIZE * 8)
    wrapped = vault.keys.wrap(dek, context=SEAL_CONTEXT_PREFIX + user_id)
    nonce = os.urandom(SEAL_NONCE_SIZE)
    sealed = AESGCM(dek).encrypt(nonce, secret.encode("ascii"), _seal_ad(user_id))
    return wrapped.key_id, wrapped.blob, bytes([SEAL_VERSION]) + nonce + sealed


def _seal(vault: Vault, row: Credential, secret: str,
          parts: tuple[str, bytes, bytes] | None = None) -> None:
    """Store ``secret`` sealed on ``row`` (``parts``: sealed already) and nothing in the clear."""
    row.totp_key_id, row.totp_wrapped_key, row.totp_sealed = (
        parts or _sealed(vault, row.user_id, secret))
    row.totp_secret = None


def _clear_secret(row: Credential) -> None:
    row.totp_secret = row.totp_key_id = row.totp_wrapped_key = row.totp_sealed = None


def _open_secret(vault: Vault, row: Credential) -> str | None:
    """The row's TOTP secret: unsealed (check 7), or a plaintext row's (check 8), or None.

    Raises KeyUnavailable when the data key does not unwrap, CiphertextError when the sealed
    secret was altered or belongs to another user's row.
    """
    if row.totp_sealed is None:
        return row.totp_secret or None
    if row.totp_key_id is None or row.totp_wrapped_key is None:
        raise CiphertextError(f"the second factor of user {row.user_id} has no wrapped key")
    dek = vault.keys.unwrap(WrappedKey(row.totp_key_id, row.totp_wrapped_key),
                            context=SEAL_CONTEXT_PREFIX + row.user_id)
    blob = bytes(row.totp_sealed)
    if len(blob) <= 1 + SEAL_NONCE_SIZE or blob[0] != SEAL_VERSION:
        raise CiphertextError(f"the sealed second factor of user {row.user_id} is malformed")
    try:
        plain = AESGCM(dek).decrypt(blob[1:1 + SEAL_NONCE_SIZE], blob[1 + SEAL_NONCE_SIZE:],
                                    _seal_ad(row.user_id))
    except InvalidTag:
        raise CiphertextError(
            f"the sealed second factor of user {row.user_id} does not open: altered, or "
            "copied from another user's row") from None
    return plain.decode("ascii")


def seal_second_factors(vault: Vault) -> int:
    """Check 8: seal every second factor still stored in the clear; returns how many."""
    with vault.sessions.begin() as session:
        rows = list(session.scalars(select(Credential).where(
            Credential.totp_secret.is_not(None), Credential.totp_sealed.is_(None))))
        for row in rows:
            _seal(vault, row, str(row.totp_secret))
    return len(rows)


def rewrap_second_factors(vault: Vault) -> int:
    """Check 9: move every sealed second factor's data key onto the current KEK (the secret
    stays sealed under the same data key); returns how many moved. Raises KeyUnavailable."""
    current = vault.keys.current_key_id()
    moved = 0
    with vault.sessions.begin() as session:
        for row in session.scalars(select(Credential).where(
                Credential.totp_sealed.is_not(None), Credential.totp_key_id != current)):
            assert row.totp_key_id is not None and row.totp_wrapped_key is not None
            wrapped = rewrap_key(vault.keys, WrappedKey(row.totp_key_id, row.totp_wrapped_key),
                                 context=SEAL_CONTEXT_PREFIX + row.user_id)
            row.totp_key_id, row.totp_wrapped_key = wrapped.key_id, wrapped.blob
            moved += 1
    return moved


def second_factor_key_counts(vault: Vault) -> dict[str, int]:
    """How many sealed second factors each KEK wraps (check 9); KEKs wrapping none absent."""
    with vault.sessions() as session:
        return {str(key_id): int(n) for key_id, n in session.execute(
            select(Credential.totp_key_id, func.count())
            .where(Credential.totp_sealed.is_not(None))
            .group_by(Credential.totp_key_id))}


@dataclass(frozen=True)
class PasswordCheck:
    """A user whose password was right: who, and whether a second factor is enrolled yet."""

    user_id: str
    name: str
    enrolled: bool


@dataclass(frozen=True)
class Enrolment:
    """A new TOTP secret to show once: ``secret`` (base32) and ``uri`` (otpauth://, for apps)."""

    secret: str
    uri: str


def check_password_strength(password: str) -> None:
    """Raise InvalidInput unless ``password`` is 12-1024 characters and not all one character."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            f"a password is {MIN_PASSWORD}-{MAX_PASSWORD} characters; a pass-phrase of a few "
            "unrelated words is easy to remember and hard to guess"
        )
    if len(set(password)) < 4:
        raise InvalidInput("a password needs at least 4 different characters")


def _user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def _credential(session: Session, user_id: str) -> Credential:
    row = session.get(Credential, user_id)
    if row is None:
        row = Credential(user_id=user_id, failed_attempts=0)
        session.add(row)
    return row


def _end_sessions(session: Session, user_id: str, now: dt.datetime) -> int:
    """End the user's web sessions: a recovery must shut out whoever had the old credentials."""
    result = session.execute(
        update(WebSession).where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
        .values(ended_at=now, end_reason="credentials_changed"))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def set_password(vault: Vault, name: str, password: str, *, actor: Actor) -> None:
    """Set (or replace) user ``name``'s password, clear any lock-out and end their web
    sessions. Logs ``user_changed``.

    Raises NotFound for an unknown user, InvalidInput for a weak password.
    """
    check_password_strength(password)
    hashed = _hasher.hash(password)
    with vault.sessions.begin() as session:
        user = _user(session, name)
        row = _credential(session, user.id)
        row.password_hash = hashed
        row.password_set_at = vault.clock()
        row.failed_attempts = 0
        row.locked_until = None
        ended = _end_sessions(session, user.id, vault.clock())
        vault.ledger.append(session, Action.USER_CHANGED, actor=actor, object_ids=[user.id],
                            details=UserChanged(
                                change="password_set", user=name, web_sessions_ended=ended,
                            ))
    vault.ledger.maybe_checkpoint()


def reset_second_factor(vault: Vault, name: str, *, actor: Actor) -> None:
    """Forget user ``name``'s TOTP secret and end their web sessions: they enrol a new one at
    their next sign-in (the recovery path for a lost phone). Logs ``user_changed``. Raises
    NotFound."""
    with vault.sessions.begin() as session:
        user = _user(session, name)
        row = _credential(session, user.id)
        _clear_secret(row)
        row.totp_confirmed_at = None
        row.totp_last_step = None
        row.failed_attempts = 0
        row.locked_until = None
        ended = _end_sessions(session, user.id, vault.clock())
        vault.ledger.append(session, Action.USER_CHANGED, actor=actor, object_ids=[user.id],
                            details=UserChanged(
                                change="second_factor_reset", user=name, web_sessions_ended=ended,
                            ))
    vault.ledger.maybe_checkpoint()


def _refuse_locked(row: Credential, now: dt.datetime) -> None:
    if row.locked_until is not None and row.locked_until > now:
        raise Unauthenticated(
            f"too many failed attempts: this account is locked until "
            f"{row.locked_until:%H:%M} UTC, or until an administrator sets a new password",
            reason="locked",
        )


def _fail(vault: Vault, user_id: str) -> None:
    """Count a failure in a transaction of its own (it must stick although we raise)."""
    with vault.sessions.begin() as session:
        row = _credential(session, user_id)
        row.failed_attempts = (row.failed_attempts or 0) + 1
        if row.failed_attempts >= MAX_FAILURES:
            row.locked_until = vault.clock() + LOCKOUT
            row.failed_attempts = 0


def check_password(vault: Vault, name: str, password: str) -> PasswordCheck:
    """The user, if ``password`` is theirs (the first factor).

    Raises Unauthenticated with ``reason`` ``unknown-user``, ``no-password``, ``disabled``,
    ``locked`` or ``wrong-password``; the caller logs the refusal.
    """
    now = vault.clock()
    password = password if isinstance(password, str) else ""
    with vault.sessions() as session:
        user = session.scalars(select(User).where(User.name == name)).first()
        row = session.get(Credential, user.id) if user is not None else None
        stored = row.password_hash if row is not None else None
        locked = row is not None and row.locked_until is not None and row.locked_until > now
        if row is not None and locked:
            _refuse_locked(row, now)
    if len(password) > MAX_PASSWORD:
        password = password[:MAX_PASSWORD + 1]  # still wrong, at a bounded cost
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)  # check 3: same cost either way
        matched = stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        matched = False
    if user is None:
        raise Unauthenticated("wrong user name or password", reason="unknown-user")
    if stored is None:
        raise Unauthenticated("wrong user name or password", reason="no-password")
    if not matched:
        _fail(vault, user.id)
        raise Unauthenticated("wrong user name or password", reason="wrong-password")
    if not user.active:
        raise Unauthenticated(f"user {name!r} is disabled", reason="disabled")
    assert row is not None
    if _hasher.check_needs_rehash(stored):
        with vault.sessions.begin() as session:
            _credential(session, user.id).password_hash = _hasher.hash(password)
    return PasswordCheck(user_id=user.id, name=user.name,
                         enrolled=row.totp_confirmed_at is not None and row.has_second_factor)


def _matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step (check 5) whose code is ``code``, within the drift allowed, or None."""
    code = "".join(code.split())
    if len(code) != TOTP_DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_S)
    current = int(now.timestamp()) // TOTP_STEP_S
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def begin_enrolment(vault: Vault, user_id: str, *, issuer: str) -> Enrolment:
    """A new pending TOTP secret for a user who has none confirmed (check 4).

    Raises InvalidInput if a second factor is already enrolled (only an administrator's
    ``reset-2fa`` replaces one), NotFound for an unknown user.
    """
    secret = pyotp.random_base32(length=TOTP_SECRET_BYTES * 8 // 5)
    # Sealed before the transaction: a key provider may be a network service (KMS, transit).
    parts = _sealed(vault, user_id, secret)
    with vault.sessions.begin() as session:
        user = get_or_not_found(session, User, user_id, noun="user")
        row = _credential(session, user_id)
        if row.totp_confirmed_at is not None and row.has_second_factor:
            raise InvalidInput("a second factor is already set up; an administrator can reset it")
        _seal(vault, row, secret, parts)
        name = user.name
    uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_S).provisioning_uri(
        name=name, issuer_name=issuer)
    return Enrolment(secret=secret, uri=uri)


def check_code(vault: Vault, user_id: str, code: str, *, enrolling: bool = False) -> None:
    """Accept a TOTP code for the user (the second factor), once (check 5).

    With ``enrolling``, the code proves a pending secret and confirms it. Logs
    ``user_changed`` (``second_factor_enrolled``) on enrolment. Raises Unauthenticated
    (``locked``, ``no-second-factor``, ``wrong-code``).
    """
    now = vault.clock()
    with vault.sessions() as session:
        row = session.get(Credential, user_id)
        user = session.get(User, user_id)
        if row is None or user is None or not row.has_second_factor:
            raise Unauthenticated("no second factor is set up; sign in again",
                                  reason="no-second-factor")
        _refuse_locked(row, now)
        confirmed = row.totp_confirmed_at is not None
        if confirmed == enrolling:
            raise Unauthenticated("sign in again", reason="no-second-factor")
        last, legacy = row.totp_last_step, row.totp_sealed is None
    # Unsealed outside the read session: a key provider may be a network service (check 7).
    secret = _open_secret(vault, row)
    if secret is None:
        raise Unauthenticated("no second factor is set up; sign in again",
                              reason="no-second-factor")
    step = _matching_step(secret, code, now)
    if step is None or (last is not None and step <= last):
        _fail(vault, user_id)
        raise Unauthenticated("that code is wrong or was already used; wait for the next one",
                              reason="wrong-code")
    with vault.sessions.begin() as session:
        row = _credential(session, user_id)
        # A concurrent sign-in with the same code loses here (check 5, under the write lock).
        if row.totp_last_step is not None and step <= row.totp_last_step:
            raise Unauthenticated("that code was already used; wait for the next one",
                                  reason="wrong-code")
        row.totp_last_step = step
        row.failed_attempts = 0
        row.locked_until = None
        if legacy and row.totp_sealed is None and row.totp_secret == secret:
            _seal(vault, row, secret)  # check 8: a row of before sealing, sealed now
        if enrolling:
            row.totp_confirmed_at = now
            vault.ledger.append(
                session, Action.USER_CHANGED,
                actor=Actor(user=user.name, role=user.role, organisation=user.organisation),
                object_ids=[user_id],
                details=UserChanged(change="second_factor_enrolled", user=user.name),
            )
    vault.ledger.maybe_checkpoint()


__all__ = [
    "LOCKOUT",
    "MAX_FAILURES",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "Credential",
    "Enrolment",
    "PasswordCheck",
    "begin_enrolment",
    "check_code",
    "check_password",
    "check_password_strength",
    "reset_second_factor",
    "rewrap_second_factors",
    "seal_second_factors",
    "second_factor_key_counts",
    "set_password",
]
