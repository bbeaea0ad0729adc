"""Shares: named recipients' time-limited access to specific recordings (docs/design.md "Sharing").

A share grants one recipient (a person and their organisation: a police force, a partner ASB
team) access to listed recordings, for a stated purpose and lawful basis, until it expires, up to
a number of downloads, view-only or with download, until revoked. The recipient holds a share
token (``evs_`` + 256 random bits, base64url); only its SHA-256 is stored.

Every attempt to use a share is a custody event, logged before any byte is released:
``share_accessed`` when it succeeds (recipient, organisation, what and how), ``access_denied``
when it does not (unknown, revoked, expired, exhausted, view-only, item not in the share). The
bytes themselves are then read through :meth:`vault.vault.Vault.read`, which logs its own
``streamed``/``downloaded`` event for the byte range released.

A link that names no share (a guessed, mangled or junk token) costs its sender nothing, yet
each refusal is a signed ledger write: passed a :class:`~vault.access.denials.DenialThrottle` (the one
the API uses for bearer tokens), such refusals beyond the per-address burst are summed into one
event per window, exactly as anonymous bearer-token refusals are (issue #11 finding 9). A
refusal that names a share (revoked, expired, used up, view-only) is about one identifiable
link and is always logged on its own.

Checks on each access, in order:
    1. the token names a share (else NotFound);
    2. it was not revoked, 3. it has not expired (else ShareUnavailable, HTTP 410);
    4. the recording asked for is one of the share's items (else AccessDenied);
    5. a download needs a share that allows downloads (AccessDenied) and
    6. one that has downloads left, counted atomically (ShareUnavailable).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, cast

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import Base, Recording, new_id, utcnow
from vault.ledger.custody import Action
from vault.ledger.events import Shared, ShareRevoked
from vault.access.denials import DenialThrottle
from vault.errors import AccessDenied, InvalidInput, NotFound, ShareUnavailable
from vault.access.identity import hash_token, log_denial_summaries, new_token
from vault.storage.db import get_or_not_found
from vault.ending import Ending, end_record

if TYPE_CHECKING:
    from vault.vault import Vault

SHARE_TOKEN_PREFIX = "evs_"
MAX_SHARE_LIFETIME = dt.timedelta(days=366)
MAX_ITEMS = 500
RECIPIENT_ROLE = Role.SHARE_RECIPIENT

_SHARE_TOKEN_RE = re.compile(r"evs_[A-Za-z0-9_-]{43}")

#: A share ends by revocation, with a reason (:func:`revoke_share`).
SHARE_REVOCATION = Ending("share", "revoked", "revoked_at", "revoked_by", "revoke_reason")


class ShareAccess(str, enum.Enum):
    """What a recipient is doing with a share."""

    METADATA = "metadata"
    STREAM = "stream"
    DOWNLOAD = "download"


class Share(Base):
    """A grant of access to listed recordings for one named recipient."""

    __tablename__ = "shares"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    recipient: Mapped[str] = mapped_column(String(256))
    recipient_org: Mapped[str] = mapped_column(String(256))
    purpose: Mapped[str] = mapped_column(Text)
    lawful_basis: Mapped[str] = mapped_column(String(256))
    reference: Mapped[str | None] = mapped_column(String(256))
    allow_download: Mapped[bool] = mapped_column(Boolean, default=False)
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(256))
    created_org: Mapped[str | None] = mapped_column(String(256), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(256))
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class ShareItem(Base):
    """A recording a share grants."""

    __tablename__ = "share_items"

    share_id: Mapped[str] = mapped_column(ForeignKey("shares.id"), primary_key=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), primary_key=True)


@dataclass(frozen=True)
class CreatedShare:
    """A new share and its token: the only copy of the secret; hand it to the recipient once."""

    share: Share
    token: str
    recording_ids: tuple[str, ...]


@dataclass(frozen=True)
class ShareGrant:
    """What an access check allowed: the share, its recordings, and who/why for the read."""

    share: Share
    recordings: tuple[Recording, ...]
    actor: Actor
    purpose: Purpose


def recipient_actor(share: Share, client_addr: str | None = None) -> Actor:
    """The custody actor of a share's recipient: ``share:<id>`` in the recipient's organisation."""
    return Actor(
        user=f"share:{share.id}",
        role=Role.SHARE_RECIPIENT,
        organisation=share.recipient_org,
        client_addr=client_addr,
    )


def share_purpose(share: Share) -> Purpose:
    """The purpose, lawful basis and reference the share was made for."""
    return Purpose(purpose=share.purpose, lawful_basis=share.lawful_basis, reference=share.reference)


def _text(name: str, value: str | None, limit: int, *, required: bool = True) -> str | None:
    value = value.strip() if value is not None else None
    if not value:
        if required:
            raise InvalidInput(f"a share needs a {name}")
        return None
    if len(value) > limit:
        raise InvalidInput(f"a share's {name} is at most {limit} characters")
    return value


def create_share(
    vault: Vault,
    *,
    actor: Actor,
    recipient: str,
    recipient_org: str,
    purpose: str,
    lawful_basis: str,
    recording_ids: Sequence[str],
    expires_at: dt.datetime,
    reference: str | None = None,
    allow_download: bool = False,
    max_downloads: int | None = None,
) -> CreatedShare:
    """Share recordings with a named recipient; returns the share and its token.

    Logs ``shared`` (recipient, organisation, items and their hashes). Raises InvalidInput for a
    missing field, an expiry in the past or over a year away, or a bad download limit; NotFound
    for an unknown or deleted recording.
    """
    recipient = cast(str, _text("recipient", recipient, 256))
    recipient_org = cast(str, _text("recipient organisation", recipient_org, 256))
    purpose = cast(str, _text("purpose", purpose, 2000))
    lawful_basis = cast(str, _text("lawful basis", lawful_basis, 256))
    reference = _text("reference", reference, 256, required=False)
    ids = list(dict.fromkeys(recording_ids))
    if not ids or len(ids) > MAX_ITEMS:
        raise InvalidInput(f"a share names 1-{MAX_ITEMS} recordings")
    now = vault.clock()
    if expires_at.tzinfo is None:
        raise InvalidInput("a share's expiry must include a timezone")
    if expires_at <= now or expires_at - now > MAX_SHARE_LIFETIME:
        raise InvalidInput("a share must expire in the future and within 366 days")
    if max_downloads is not None:
        if not allow_download:
            raise InvalidInput("a download limit needs a share that allows downloads")
        if not 1 <= max_downloads <= 1000:
            raise InvalidInput("a download limit is 1-1000")
    token = new_token(SHARE_TOKEN_PREFIX)
    with vault.sessions.begin() as session:
        recordings = {r.id: r for r in session.scalars(select(Recording).where(Recording.id.in_(ids)))}
        for rid in ids:
            rec = recordings.get(rid)
            if rec is None:
                raise NotFound(f"no recording with id {rid}")
            if rec.deleted_at is not None:
                raise NotFound(f"recording {rid} was deleted on {rec.deleted_at:%Y-%m-%d}")
        share = Share(
            token_hash=hash_token(token),
            recipient=recipient,
            recipient_org=recipient_org,
            purpose=purpose,
            lawful_basis=lawful_basis,
            reference=reference,
            allow_download=allow_download,
            max_downloads=max_downloads,
            downloads=0,
            expires_at=expires_at,
            created_by=actor.user,
            created_org=actor.organisation,
            created_at=now,
        )
        session.add(share)
        session.flush()
        session.add_all(ShareItem(share_id=share.id, recording_id=rid) for rid in ids)
        vault.ledger.append(
            session,
            Action.SHARED,
            actor=actor,
            purpose=purpose,
            lawful_basis=lawful_basis,
            reference=reference,
            recipient=recipient,
            recipient_org=recipient_org,
            object_ids=[*ids, share.id],
            hashes={rid: recordings[rid].sha256 for rid in ids},
            details=Shared(
                share_id=share.id, expires_at=expires_at.isoformat(),
                allow_download=allow_download, max_downloads=max_downloads,
            ),
        )
    vault.ledger.maybe_checkpoint()
    return CreatedShare(share=share, token=token, recording_ids=tuple(ids))


def revoke_share(vault: Vault, share_id: str, *, actor: Actor, reason: str) -> Share:
    """Revoke a share now; returns it. Logs ``share_revoked``.

    Raises NotFound, InvalidInput if it was already revoked or no reason is given.
    """
    reason = cast(str, _text("reason for revoking", reason, 2000))
    with vault.sessions.begin() as session:
        share = get_or_not_found(session, Share, share_id, noun="share")
        end_record(
            vault, session, share, SHARE_REVOCATION, record_id=share_id, actor=actor,
            reason=reason, action=Action.SHARE_REVOKED, reference=share.reference,
            recipient=share.recipient, recipient_org=share.recipient_org,
            object_ids=[*_item_ids(session, share.id), share.id],
            details=ShareRevoked(share_id=share.id, reason=reason),
        )
    vault.ledger.maybe_checkpoint()
    return share


def _item_ids(session: Session, share_id: str) -> list[str]:
    return list(
        session.scalars(
            select(ShareItem.recording_id).where(ShareItem.share_id == share_id).order_by(
                ShareItem.recording_id
            )
        )
    )


def get_share(vault: Vault, share_id: str) -> tuple[Share, list[str]] | None:
    """A share and its recording ids, or None."""
    with vault.sessions() as session:
        share = session.get(Share, share_id)
        return (share, _item_ids(session, share.id)) if share else None


def list_shares(
    vault: Vault,
    *,
    created_by: str | None = None,
    organisation: str | None = None,
    recording_id: str | None = None,
    active_only: bool = False,
    limit: int = 1000,
    offset: int = 0,
) -> list[tuple[Share, list[str]]]:
    """Shares (newest first) with their recording ids, filtered as given."""
    query = select(Share).order_by(Share.created_at.desc(), Share.id).limit(limit).offset(offset)
    if created_by is not None:
        query = query.where(Share.created_by == created_by)
    if organisation is not None:
        query = query.where(Share.created_org == organisation)
    if recording_id is not None:
        query = query.where(
            Share.id.in_(select(ShareItem.share_id).where(ShareItem.recording_id == recording_id))
        )
    if active_only:
        query = query.where(Share.revoked_at.is_(None), Share.expires_at > vault.clock())
    with vault.sessions() as session:
        shares = list(session.scalars(query))
        return [(s, _item_ids(session, s.id)) for s in shares]


@dataclass(frozen=True)
class ShareStatus:
    """Where a share stands at one moment: ``state`` is ``active``, ``revoked``, ``expired``
    or ``exhausted``; ``message`` says so to its recipient (empty while active)."""

    state: str
    message: str = ""

    @property
    def opens(self) -> bool:
        """Whether the link opens at all (an exhausted share still streams)."""
        return self.state in ("active", "exhausted")


def share_status(share: Share, now: dt.datetime) -> ShareStatus:
    """The one decision of a share's state, used by the recipient's check
    (:func:`access_share`), the API's and the web app's listings.

    Revoked wins over expired, expired over exhausted; exhausted (no downloads left) still
    lets the recipient stream, and the download counter itself is checked atomically when a
    download is counted.
    """
    if share.revoked_at is not None:
        return ShareStatus("revoked", f"this share was revoked on {share.revoked_at:%Y-%m-%d %H:%M}Z")
    if share.expires_at <= now:
        return ShareStatus("expired", f"this share expired on {share.expires_at:%Y-%m-%d %H:%M}Z")
    if share.max_downloads is not None and share.downloads >= share.max_downloads:
        return ShareStatus("exhausted", _exhausted_message(share))
    return ShareStatus("active")


def _exhausted_message(share: Share) -> str:
    return f"this share's download limit ({share.max_downloads}) has been reached"


def share_state(share: Share, now: dt.datetime) -> str:
    """``active``, ``revoked``, ``expired`` or ``exhausted`` (:func:`share_status`)."""
    return share_status(share, now).state


def access_share(
    vault: Vault,
    token: str,
    access: ShareAccess,
    *,
    recording_id: str | None = None,
    client_addr: str | None = None,
    route: str | None = None,
    throttle: DenialThrottle | None = None,
) -> ShareGrant:
    """Check a recipient's use of a share and log it; returns what it grants.

    Logs ``share_accessed`` on success, ``access_denied`` otherwise (see the module's checks);
    with ``throttle``, refusals of links that name no share are summed beyond its burst.
    Raises NotFound (unknown token), ShareUnavailable (revoked, expired, out of downloads),
    AccessDenied (view-only share, recording not in the share).
    """
    now = vault.clock()
    with vault.sessions.begin() as session:
        # 1. The token names a share.
        share = _share_of_token(session, token)
        if share is None:
            failure: _Refusal | None = (
                NotFound, "no share with this link: check it was copied whole", "unknown"
            )
        else:
            items = _item_ids(session, share.id)
            failure = _refusal(session, share, items, access, recording_id, now)
            if failure is None:
                grant = _grant(vault, session, share, items, access, recording_id=recording_id,
                               client_addr=client_addr, route=route)
    if failure is None:
        vault.ledger.maybe_checkpoint()
        return grant
    _refuse(vault, share, failure, access, recording_id=recording_id, client_addr=client_addr,
            route=route, throttle=throttle, now=now)


#: Why a use of a share is refused: the error to raise, its message, the reason logged.
_Refusal = tuple[type[AccessDenied | NotFound], str, str]


def _share_of_token(session: Session, token: str) -> Share | None:
    if not (isinstance(token, str) and _SHARE_TOKEN_RE.fullmatch(token)):
        return None
    return session.scalars(select(Share).where(Share.token_hash == hash_token(token))).first()


def _refusal(
    session: Session, share: Share, items: Sequence[str], access: ShareAccess,
    recording_id: str | None, now: dt.datetime,
) -> _Refusal | None:
    # Checks 2 to 6 of the module's list; None when the use is allowed (and, for a download,
    # counted).
    status = share_status(share, now)
    if not status.opens:
        # 2. Not revoked. 3. Not expired.
        return (ShareUnavailable, status.message, status.state)
    if recording_id is not None and recording_id not in items:
        # 4. The item asked for is shared.
        return (AccessDenied, f"recording {recording_id} is not in this share", "not_shared")
    if access is not ShareAccess.DOWNLOAD:
        return None
    if not share.allow_download:
        # 5. Downloads allowed.
        return (AccessDenied, "this share is view-only: stream it instead", "view_only")
    # 6. Downloads left, counted atomically with the event that records the use (the row in
    # this session may be stale: another download may have taken the last one).
    counted = session.execute(
        update(Share)
        .where(Share.id == share.id)
        .where(or_(Share.max_downloads.is_(None), Share.downloads < Share.max_downloads))
        .values(downloads=Share.downloads + 1)
    )
    if counted.rowcount != 1:  # type: ignore[attr-defined]
        return (ShareUnavailable, _exhausted_message(share), "exhausted")
    session.refresh(share)
    return None


def _grant(
    vault: Vault, session: Session, share: Share, items: Sequence[str], access: ShareAccess, *,
    recording_id: str | None, client_addr: str | None, route: str | None,
) -> ShareGrant:
    # Logs share_accessed in the caller's transaction.
    recordings = tuple(
        session.scalars(select(Recording).where(Recording.id.in_(items)).order_by(
            Recording.captured_start, Recording.id))
    )
    actor = recipient_actor(share, client_addr)
    details: dict[str, object] = {"share_id": share.id, "access": access.value}
    if access is ShareAccess.DOWNLOAD:
        details["downloads"] = share.downloads
        details["max_downloads"] = share.max_downloads
    if route:
        details["route"] = route[:256]
    vault.ledger.append(
        session,
        Action.SHARE_ACCESSED,
        actor=actor,
        purpose=share_purpose(share),
        recipient=share.recipient,
        recipient_org=share.recipient_org,
        object_ids=[recording_id, share.id] if recording_id else [share.id],
        details=details,
    )
    return ShareGrant(share, recordings, actor, share_purpose(share))


def _refuse(
    vault: Vault, share: Share | None, refusal: _Refusal, access: ShareAccess, *,
    recording_id: str | None, client_addr: str | None, route: str | None,
    throttle: DenialThrottle | None, now: dt.datetime,
) -> NoReturn:
    # Logs access_denied (or, for a link naming no share, counts it in the throttle's
    # summary) and raises the refusal's error.
    error, message, reason = refusal
    if share is None and throttle is not None:
        alone, due = throttle.admit(client_addr, f"share: {reason}", now)
        log_denial_summaries(vault, due)
        if not alone:
            raise error(message)  # counted in the window's summary event instead
    details: dict[str, object] = {"reason": f"share: {reason}", "access": access.value}
    if route:
        details["route"] = route[:256]
    if share is not None:
        details["share_id"] = share.id
    vault.ledger.record(
        Action.ACCESS_DENIED,
        actor=f"share:{share.id}" if share else "share:unknown",
        actor_role=RECIPIENT_ROLE,
        actor_org=share.recipient_org if share else None,
        recipient=share.recipient if share else None,
        recipient_org=share.recipient_org if share else None,
        client_addr=client_addr,
        object_ids=[x for x in (recording_id, share.id if share else None) if x],
        details=details,
    )
    if error is ShareUnavailable:
        raise ShareUnavailable(message, reason=reason)
    raise error(message)


__all__ = [
    "RECIPIENT_ROLE",
    "SHARE_REVOCATION",
    "SHARE_TOKEN_PREFIX",
    "CreatedShare",
    "Share",
    "ShareAccess",
    "ShareGrant",
    "ShareStatus",
    "ShareItem",
    "ShareUnavailable",
    "access_share",
    "create_share",
    "get_share",
    "list_shares",
    "recipient_actor",
    "revoke_share",
    "share_purpose",
    "share_state",
    "share_status",
]
