"""Web sessions: who is signed in to the web app, stored server-side in the catalog.

A session is what the browser's cookie stands for; the cookie holds only a random token.

1. The token is 256 random bits (``evs_`` + base64url); only its SHA-256 is stored, so a copy
   of the catalog signs nobody in (as for API tokens, :mod:`vault.access.identity`).
2. Sessions live in the catalog, not in a process: every API instance behind the proxy sees
   the same ones, and "sign out everywhere" ends them all at once.
3. A session has a stage: ``second_factor`` or ``enrol`` after the password (it opens only the
   code page, for :data:`PENDING_LIFETIME`), then ``signed_in``. Each step up ends the old
   session and starts a new one with a new token: a token planted before sign-in (session
   fixation) is worth nothing after it.
4. A session ends after ``idle`` without a request, ``absolute`` after it began whatever
   happens, at sign-out, or when its user is disabled.
5. Each session carries its own CSRF token (the synchroniser-token pattern) for its forms.
6. The purposes the officer stated during the session (why, reference, lawful basis) are kept
   with it, newest first, so footage is shown once a purpose is stated for the task.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from vault.actors import Purpose
from vault.storage.catalog import Base, new_id
from .identity import Principal, User, new_token, principal_for

if TYPE_CHECKING:
    from vault.vault import Vault

TOKEN_PREFIX = "evs_"
PENDING_LIFETIME = dt.timedelta(minutes=5)
MAX_PURPOSES = 20
# last_seen_at is written at most this often: every Range request of a playing video would
# otherwise be a write, and on SQLite a write takes the one write lock.
TOUCH_EVERY = dt.timedelta(seconds=60)


class Stage(str, enum.Enum):
    """How far through sign-in a session is (check 3)."""

    SECOND_FACTOR = "second_factor"
    ENROL = "enrol"
    SIGNED_IN = "signed_in"


class WebSession(Base):
    """One browser's session."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    purposes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


@dataclass(frozen=True)
class ActiveSession:
    """A live session as the web app sees it."""

    id: str
    user_id: str
    stage: Stage
    csrf_token: str
    created_at: dt.datetime
    expires_at: dt.datetime
    purposes: tuple[Purpose, ...]

    @property
    def purpose(self) -> Purpose | None:
        """The purpose of the current task (the one stated last), or None."""
        return self.purposes[0] if self.purposes else None


@dataclass(frozen=True)
class StartedSession:
    """A new session: ``token`` goes into the cookie and is not stored."""

    token: str
    session: ActiveSession


def hash_session_token(token: str) -> str:
    """SHA-256 hex of a session token (check 1)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _purposes(raw: list[dict[str, Any]] | None) -> tuple[Purpose, ...]:
    return tuple(Purpose(purpose=p["purpose"], reference=p.get("reference"),
                         lawful_basis=p.get("lawful_basis")) for p in raw or [])


def _active(row: WebSession) -> ActiveSession:
    return ActiveSession(id=row.id, user_id=row.user_id, stage=Stage(row.stage),
                         csrf_token=row.csrf_token, created_at=row.created_at,
                         expires_at=row.expires_at, purposes=_purposes(row.purposes))


def start_session(
    vault: Vault,
    user_id: str,
    stage: Stage,
    *,
    absolute: dt.timedelta,
    client_addr: str | None = None,
    replaces: str | None = None,
) -> StartedSession:
    """A new session with a new token (check 3); ``replaces`` (a session id) ends that one.

    A pending stage lasts :data:`PENDING_LIFETIME`; a signed-in session ``absolute``, counted
    from the password step of the sign-in it completes.
    """
    now = vault.clock()
    token = new_token(TOKEN_PREFIX)
    with vault.sessions.begin() as session:
        began = now
        if replaces is not None:
            old = session.get(WebSession, replaces)
            if old is not None:
                began = old.created_at
                if old.ended_at is None:
                    old.ended_at, old.end_reason = now, "rotated"
        lifetime = absolute if stage is Stage.SIGNED_IN else PENDING_LIFETIME
        row = WebSession(
            token_hash=hash_session_token(token), user_id=user_id, stage=stage.value,
            csrf_token=secrets.token_urlsafe(32), created_at=began, last_seen_at=now,
            expires_at=min(began + absolute, now + lifetime), client_addr=client_addr,
            purposes=[],
        )
        session.add(row)
        session.flush()
        active = _active(row)
    return StartedSession(token=token, session=active)


def find_session(vault: Vault, token: str | None, *, idle: dt.timedelta) -> ActiveSession | None:
    """The live session ``token`` stands for, or None (unknown, ended, idle, past its absolute
    expiry, or its user disabled: check 4). Ends a session found expired."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 64:
        return None
    now = vault.clock()
    with vault.sessions() as session:
        found = session.execute(
            select(WebSession, User.active).join(User, User.id == WebSession.user_id)
            .where(WebSession.token_hash == hash_session_token(token))
        ).first()
    if found is None:
        return None
    row, active = found
    if row.ended_at is not None:
        return None
    reason = ("expired" if row.expires_at <= now else "idle" if row.last_seen_at + idle <= now
              else "disabled" if not active else None)
    if reason is not None:
        _end(vault, [row.id], reason)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        with vault.sessions.begin() as session:
            session.execute(update(WebSession).where(WebSession.id == row.id)
                            .values(last_seen_at=now))
    return _active(row)


def _end(vault: Vault, ids: list[str], reason: str) -> int:
    if not ids:
        return 0
    with vault.sessions.begin() as session:
        result = session.execute(
            update(WebSession).where(WebSession.id.in_(ids), WebSession.ended_at.is_(None))
            .values(ended_at=vault.clock(), end_reason=reason))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def end_session(vault: Vault, session_id: str, *, reason: str = "signed_out") -> bool:
    """End one session; returns whether it was live."""
    return _end(vault, [session_id], reason) == 1


def end_all_sessions(vault: Vault, user_id: str, *, reason: str = "signed_out_everywhere") -> int:
    """End every live session of a user (sign out everywhere); returns how many ended."""
    with vault.sessions() as session:
        ids = list(session.scalars(select(WebSession.id).where(
            WebSession.user_id == user_id, WebSession.ended_at.is_(None))))
    return _end(vault, ids, reason)


def live_sessions(vault: Vault, user_id: str) -> list[WebSession]:
    """A user's sessions that have not ended, newest first (expired ones may still be listed
    until they are next presented)."""
    with vault.sessions() as session:
        return list(session.scalars(
            select(WebSession).where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
            .order_by(WebSession.created_at.desc())))


def state_purpose(vault: Vault, session_id: str, purpose: Purpose) -> None:
    """Make ``purpose`` the session's current task (check 6): first in its list, replacing an
    earlier statement for the same reference."""
    entry = {"purpose": purpose.purpose, "reference": purpose.reference,
             "lawful_basis": purpose.lawful_basis}
    with vault.sessions.begin() as session:
        row = session.get(WebSession, session_id)
        if row is None:
            return
        kept = [p for p in row.purposes or []
                if not (p.get("reference") == purpose.reference
                        and (purpose.reference is not None or p == entry))]
        row.purposes = [entry, *kept][:MAX_PURPOSES]


def session_principal(vault: Vault, active: ActiveSession, *,
                      client_addr: str | None = None) -> Principal:
    """The principal a signed-in session stands for (their role and sites as of now)."""
    with vault.sessions() as session:
        user = session.get(User, active.user_id)
        name = user.name if user is not None else ""
    return principal_for(vault, name, client_addr=client_addr)


__all__ = [
    "PENDING_LIFETIME",
    "TOKEN_PREFIX",
    "ActiveSession",
    "Stage",
    "StartedSession",
    "WebSession",
    "end_all_sessions",
    "end_session",
    "find_session",
    "hash_session_token",
    "live_sessions",
    "start_session",
    "state_purpose",
    "session_principal",
]
