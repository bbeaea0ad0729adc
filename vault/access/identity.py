"""Identity: people and agents who use the vault, and the bearer tokens they present.

Users
    A user has a unique name, one role (:class:`vault.actors.Role`), an organisation, and the
    sites they are assigned to (the need-to-know scope of an ASB officer, authorised by an
    administrator). Creating a user, changing their sites and issuing or revoking a token are
    ``user_changed`` custody events.

Bearer tokens (format ``evt_`` + 43 characters of base64url, 256 random bits)
    1. The token is generated with :func:`secrets.token_bytes` (32 bytes) and shown once.
    2. Only SHA-256(token) is stored (``api_tokens.token_hash``): a copy of the catalog does not
       let anyone authenticate. A 256-bit random secret needs no salt or slow hash.
    3. Every token has an expiry; a revoked or expired token, or one whose user is disabled,
       authenticates nobody.
    4. Every refusal is an ``access_denied`` custody event naming the reason (never the token).

Identity-provider accounts (OpenID Connect, vault/access/oidc.py)
    A provider's token names its account by issuer (``iss``) and subject (``sub``): the pair
    OpenID Connect Core 1.0 section 5.7 says is the only stable, unique identifier. Claims
    such as ``preferred_username`` or ``email`` can be changed by the account holder or a
    provider administrator and must not decide who someone is (issue #11 finding 10). So:

    1. A vault user signs in through a provider only through an :class:`OidcLink` naming that
       issuer and subject, made by an administrator (``admin user link-oidc``).
    2. An administrator may instead allow one first-use bind (``admin user allow-oidc``): the
       next valid token from that issuer whose username claim is the user's name binds its
       subject, once, before the allowance expires. From then on only that subject matches.
    3. A token whose subject is linked to nobody never signs in, whatever its username claim
       says; in particular, renaming an account to another user's name takes over nothing.
    4. Linking, allowing, binding and unlinking are ``user_changed`` custody events.

Why this module is long: users, API tokens and identity-provider links are one concept (who
the caller is) and share the authenticate path; the token checks of OpenID Connect are in
``oidc.py`` and the refusal throttle in ``denials.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Enum, ForeignKey, String, UniqueConstraint, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from vault.actors import Actor, Role
from vault.storage.catalog import Base, new_id, utcnow
from vault.ledger.custody import Action
from vault.ledger.events import AccessDenied, UserChanged
from vault.ending import Ending, end_record
from .denials import DenialSummary, DenialThrottle
from vault.errors import InvalidInput, NotFound, Unauthenticated
from .oidc import OidcIdentity, OidcRefused, OidcVerifier, looks_like_jwt

if TYPE_CHECKING:
    from vault.vault import Vault

TOKEN_PREFIX = "evt_"
TOKEN_BYTES = 32  # 256 bits
DEFAULT_TOKEN_LIFETIME = dt.timedelta(days=30)
MAX_TOKEN_LIFETIME = dt.timedelta(days=366)
ANONYMOUS = "anonymous"

_TOKEN_RE = re.compile(r"evt_[A-Za-z0-9_-]{43}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_MAX_ORG = 256
_MAX_SITE = 256
_MAX_ISSUER = 512
_MAX_SUBJECT = 255  # OpenID Connect Core 1.0 section 2: "MUST NOT exceed 255 ASCII characters"
DEFAULT_BIND_WINDOW = dt.timedelta(days=7)


# --- tables ----------------------------------------------------------------------------------


class User(Base):
    """A person or agent allowed to use the vault."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=32))
    organisation: Mapped[str] = mapped_column(String(_MAX_ORG))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UserSite(Base):
    """A site a user is assigned to: an ASB officer sees that site's footage (need-to-know)."""

    __tablename__ = "user_sites"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    site: Mapped[str] = mapped_column(String(_MAX_SITE), primary_key=True)


#: A token ends by revocation (:func:`revoke_token`); the table keeps no reason.
TOKEN_REVOCATION = Ending("token", "revoked", "revoked_at", "revoked_by")


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(256))


class OidcLink(Base):
    """A vault user's account at an OpenID Connect provider: ``issuer`` + ``subject``.

    ``subject`` is None while a first-use bind is allowed but has not happened (until
    ``bind_until``); ``bound_at`` says when the subject was set by such a bind.
    """

    __tablename__ = "oidc_links"
    __table_args__ = (
        UniqueConstraint("issuer", "subject", name="uq_oidc_links_issuer_subject"),
        UniqueConstraint("user_id", "issuer", name="uq_oidc_links_user_issuer"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    issuer: Mapped[str] = mapped_column(String(_MAX_ISSUER))
    subject: Mapped[str | None] = mapped_column(String(_MAX_SUBJECT))
    created_by: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    bind_until: Mapped[dt.datetime | None]
    bound_at: Mapped[dt.datetime | None]


# --- principals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """An authenticated user, as the access policy sees them."""

    user_id: str
    name: str
    role: Role
    organisation: str
    sites: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None
    client_addr: str | None = None

    @property
    def actor(self) -> Actor:
        """Who this is, as the custody ledger records it."""
        return Actor(
            user=self.name,
            role=self.role,
            organisation=self.organisation,
            client_addr=self.client_addr,
        )


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: ``token`` is the only copy of the secret; show it once."""

    token: str
    token_id: str
    user: str
    expires_at: dt.datetime


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: what the catalog stores and looks up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(prefix: str = TOKEN_PREFIX) -> str:
    """A new random 256-bit token (``prefix`` + unpadded base64url)."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).rstrip(b"=").decode()
    return prefix + raw


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"user name {name!r} is not valid: 1-128 letters, digits, '.', '_', '@' or '-',"
            " starting with a letter or digit"
        )
    return name


def _check_sites(sites: Iterable[str]) -> list[str]:
    clean: list[str] = []
    for site in sites:
        site = site.strip()
        if not site or len(site) > _MAX_SITE:
            raise InvalidInput(f"a site name is 1-{_MAX_SITE} characters")
        if site not in clean:
            clean.append(site)
    return clean


def _principal(session: Session, user: User, token_id: str | None, client_addr: str | None) -> Principal:
    sites = session.scalars(select(UserSite.site).where(UserSite.user_id == user.id))
    return Principal(
        user_id=user.id,
        name=user.name,
        role=user.role,
        organisation=user.organisation,
        sites=frozenset(sites),
        token_id=token_id,
        client_addr=client_addr,
    )


# --- users -----------------------------------------------------------------------------------


def create_user(
    vault: Vault,
    *,
    name: str,
    role: Role | str,
    organisation: str,
    actor: Actor,
    sites: Sequence[str] = (),
) -> User:
    """Create a user; returns the row. Logs ``user_changed``.

    Raises InvalidInput for a bad name, role or organisation, or a name already taken.
    """
    _check_name(name)
    user_roles = [r for r in Role if r is not Role.SHARE_RECIPIENT]
    try:
        role = Role(role)
        if role is Role.SHARE_RECIPIENT:
            raise ValueError
    except ValueError:
        roles = ", ".join(r.value for r in user_roles)
        raise InvalidInput(f"unknown role {role!r}; roles are: {roles}") from None
    organisation = organisation.strip()
    if not organisation or len(organisation) > _MAX_ORG:
        raise InvalidInput(f"an organisation is required (at most {_MAX_ORG} characters)")
    site_list = _check_sites(sites)
    with vault.sessions.begin() as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise InvalidInput(f"a user named {name!r} already exists")
        user = User(
            name=name,
            role=role,
            organisation=organisation,
            active=True,
            created_by=actor.user,
            created_at=vault.clock(),
        )
        session.add(user)
        session.flush()
        session.add_all(UserSite(user_id=user.id, site=s) for s in site_list)
        vault.ledger.append(
            session,
            Action.USER_CHANGED,
            actor=actor,
            object_ids=[user.id],
            details=UserChanged(
                change="user_created", user=name, role=role.value, organisation=organisation,
                sites=site_list,
            ),
        )
    vault.ledger.maybe_checkpoint()
    return user


def set_sites(vault: Vault, name: str, sites: Sequence[str], *, actor: Actor) -> list[str]:
    """Replace a user's site assignments; returns them. Logs ``user_changed``. Raises NotFound."""
    site_list = _check_sites(sites)
    with vault.sessions.begin() as session:
        user = _user_by_name(session, name)
        for row in session.scalars(select(UserSite).where(UserSite.user_id == user.id)):
            session.delete(row)
        session.flush()
        session.add_all(UserSite(user_id=user.id, site=s) for s in site_list)
        vault.ledger.append(
            session,
            Action.USER_CHANGED,
            actor=actor,
            object_ids=[user.id],
            details=UserChanged(change="sites_set", user=name, sites=site_list),
        )
    vault.ledger.maybe_checkpoint()
    return site_list


def set_active(vault: Vault, name: str, active: bool, *, actor: Actor) -> User:
    """Enable or disable a user (a disabled user's tokens stop working). Raises NotFound."""
    with vault.sessions.begin() as session:
        user = _user_by_name(session, name)
        user.active = active
        vault.ledger.append(
            session,
            Action.USER_CHANGED,
            actor=actor,
            object_ids=[user.id],
            details=UserChanged(change="enabled" if active else "disabled", user=name),
        )
    vault.ledger.maybe_checkpoint()
    return user


def set_role(vault: Vault, name: str, role: Role | str, *, actor: Actor) -> User:
    """Give user ``name`` another role; returns the row. Logs ``user_changed`` with the old
    and new role. Takes effect at their next request (tokens and web sessions look the role
    up each time). Raises NotFound, InvalidInput for an unknown role or the recipients' role.
    """
    try:
        role = Role(role)
        if role is Role.SHARE_RECIPIENT:
            raise ValueError
    except ValueError:
        roles = ", ".join(r.value for r in Role if r is not Role.SHARE_RECIPIENT)
        raise InvalidInput(f"unknown role {role!r}; roles are: {roles}") from None
    with vault.sessions.begin() as session:
        user = _user_by_name(session, name)
        previous = user.role
        user.role = role
        vault.ledger.append(
            session,
            Action.USER_CHANGED,
            actor=actor,
            object_ids=[user.id],
            details=UserChanged(
                change="role_set", user=name, role=role.value, previous_role=previous.value,
            ),
        )
    vault.ledger.maybe_checkpoint()
    return user


def _user_by_name(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def get_user(vault: Vault, name: str) -> User:
    """The user called ``name``. Raises NotFound."""
    with vault.sessions() as session:
        return _user_by_name(session, name)


def principal_for(vault: Vault, name: str, *, client_addr: str | None = None) -> Principal:
    """The principal of a user by name (for the CLI and tests). Raises NotFound."""
    with vault.sessions() as session:
        return _principal(session, _user_by_name(session, name), None, client_addr)


def list_users(vault: Vault) -> list[tuple[User, list[str]]]:
    """Every user with their sites, by name."""
    with vault.sessions() as session:
        users = list(session.scalars(select(User).order_by(User.name)))
        sites: dict[str, list[str]] = {}
        for row in session.scalars(select(UserSite).order_by(UserSite.site)):
            sites.setdefault(row.user_id, []).append(row.site)
    return [(u, sites.get(u.id, [])) for u in users]


# --- tokens ----------------------------------------------------------------------------------


def issue_token(
    vault: Vault,
    name: str,
    *,
    actor: Actor,
    expires_in: dt.timedelta = DEFAULT_TOKEN_LIFETIME,
    label: str | None = None,
) -> IssuedToken:
    """Issue a bearer token for user ``name``; returns it (the secret is not stored).

    Logs ``user_changed`` with the token id. Raises NotFound for an unknown user, InvalidInput
    for a lifetime that is not positive or longer than a year.
    """
    if expires_in <= dt.timedelta(0) or expires_in > MAX_TOKEN_LIFETIME:
        raise InvalidInput("a token lifetime must be positive and at most 366 days")
    if label is not None and len(label) > 256:
        raise InvalidInput("a token label is at most 256 characters")
    token = new_token()
    now = vault.clock()
    with vault.sessions.begin() as session:
        user = _user_by_name(session, name)
        if not user.active:
            raise InvalidInput(f"user {name!r} is disabled")
        row = ApiToken(
            user_id=user.id,
            token_hash=hash_token(token),
            label=label,
            created_at=now,
            expires_at=now + expires_in,
        )
        session.add(row)
        session.flush()
        vault.ledger.append(
            session,
            Action.USER_CHANGED,
            actor=actor,
            object_ids=[user.id],
            details=UserChanged(
                change="token_issued", user=name, token_id=row.id,
                expires_at=row.expires_at.isoformat(),
            ),
        )
    vault.ledger.maybe_checkpoint()
    return IssuedToken(token=token, token_id=row.id, user=name, expires_at=row.expires_at)


def revoke_token(vault: Vault, token_id: str, *, actor: Actor) -> ApiToken:
    """Revoke a token by id (or by the token itself); returns its row. Logs ``user_changed``.

    Raises NotFound for an unknown token, InvalidInput if it was already revoked.
    """
    with vault.sessions.begin() as session:
        if token_id.startswith(TOKEN_PREFIX):
            row = session.scalars(
                select(ApiToken).where(ApiToken.token_hash == hash_token(token_id))
            ).first()
        else:
            row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFound(f"no token with id {token_id[:36]!r}")
        end_record(
            vault, session, row, TOKEN_REVOCATION, record_id=row.id, actor=actor,
            action=Action.USER_CHANGED, object_ids=[row.user_id],
            details=UserChanged(change="token_revoked", token_id=row.id),
        )
    vault.ledger.maybe_checkpoint()
    return row


def list_tokens(vault: Vault, name: str | None = None) -> list[tuple[ApiToken, str]]:
    """Tokens (never their secrets) with their user's name, newest first."""
    query = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id)
    if name is not None:
        query = query.where(User.name == name)
    with vault.sessions() as session:
        return [(t, n) for t, n in session.execute(query.order_by(ApiToken.created_at.desc()))]


# --- identity-provider accounts ------------------------------------------------------------


def _check_issuer(issuer: str) -> str:
    issuer = issuer.strip()
    if not issuer.startswith(("https://", "http://")) or len(issuer) > _MAX_ISSUER:
        raise InvalidInput(
            f"issuer {issuer[:80]!r} is not valid: the provider's 'iss' URL, as in its tokens "
            "(the oidc_issuer setting)"
        )
    return issuer


def _check_subject(subject: str) -> str:
    if not subject or len(subject) > _MAX_SUBJECT or any(ord(c) < 0x20 for c in subject):
        raise InvalidInput(
            f"subject must be the account's 'sub' claim: 1-{_MAX_SUBJECT} characters"
        )
    return subject


def link_oidc(vault: Vault, name: str, *, issuer: str, subject: str, actor: Actor) -> OidcLink:
    """Link user ``name`` to the provider account ``issuer`` + ``subject``; returns the link.

    Replaces the user's earlier link to that issuer (an account moved). Logs ``user_changed``.
    Raises NotFound for an unknown user, InvalidInput for a bad issuer or subject, or a
    subject already linked to another user (unlink it there first).
    """
    issuer, subject = _check_issuer(issuer), _check_subject(subject)
    with vault.sessions.begin() as session:
        user = _user_by_name(session, name)
        taken = session.scalars(
            select(OidcLink).where(OidcLink.issuer == issuer, OidcLink.subject == subject)
        ).first()
        if taken is not None and taken.user_id != user.id:
            other = session.get(User, taken.user_id)
            raise InvalidInput(
                f"subject {subject!r} of {issuer} is already linked to user "
                f"{other.name if other else taken.user_id!r}; unlink it there first"
            )
        link = _link_row(session, user.id, issuer)
        previous = link.subject
        link.subject, link.bind_until, link.bound_at = subject, None, None
        link.created_by, link.created_at = actor.user, vault.clock()
        vault.ledger.append(
            session,
            Action.USER_CHANGED,
            actor=actor,
            object_ids=[user.id],
            details=UserChanged(
                change="oidc_linked", user=name, issuer=issuer, subject=subject,
                replaced_subject=previous,
            ),
        )
    vault.ledger.maybe_checkpoint()
    return link


def allow_oidc_bind(
    vault: Vault,
    name: str,
    *,
    issuer: str,
    actor: Actor,
    valid_for: dt.timedelta = DEFAULT_BIND_WINDOW,
) -> OidcLink:
    """Let the next valid token from ``issuer`` whose username claim is ``name`` bind its
    subject to user ``name``, once, within ``valid_for``; returns the pending link.

    For the first sign-in of a user whose subject the administrator does not know. Logs
    ``user_changed``. Raises NotFound for an unknown user, InvalidInput when the user is
    already linked to a subject of that issuer (unlink first) or for a bad window.
    """
    issuer = _check_issuer(issuer)
    if valid_for <= dt.timedelta(0) or valid_for > dt.timedelta(days=31):
        raise InvalidInput("a first-use bind may be allowed for at most 31 days")
    with vault.sessions.begin() as session:
        user = _user_by_name(session, name)
        link = _link_row(session, user.id, issuer)
        if link.subject is not None:
            raise InvalidInput(
                f"user {name!r} is already linked to subject {link.subject!r} of {issuer}; "
                "unlink it first ('admin user unlink-oidc') to allow a new account"
            )
        now = vault.clock()
        link.bind_until, link.created_by, link.created_at = now + valid_for, actor.user, now
        vault.ledger.append(
            session,
            Action.USER_CHANGED,
            actor=actor,
            object_ids=[user.id],
            details=UserChanged(
                change="oidc_bind_allowed", user=name, issuer=issuer,
                bind_until=link.bind_until.isoformat(),
            ),
        )
    vault.ledger.maybe_checkpoint()
    return link


def unlink_oidc(vault: Vault, name: str, *, issuer: str, actor: Actor) -> None:
    """Remove user ``name``'s link (or allowance) for ``issuer``: that account no longer signs
    them in. Logs ``user_changed``. Raises NotFound when there is none."""
    issuer = issuer.strip()
    with vault.sessions.begin() as session:
        user = _user_by_name(session, name)
        link = session.scalars(
            select(OidcLink).where(OidcLink.user_id == user.id, OidcLink.issuer == issuer)
        ).first()
        if link is None:
            raise NotFound(f"user {name!r} has no link to {issuer}")
        session.delete(link)
        vault.ledger.append(
            session,
            Action.USER_CHANGED,
            actor=actor,
            object_ids=[user.id],
            details=UserChanged(
                change="oidc_unlinked", user=name, issuer=issuer, subject=link.subject,
            ),
        )
    vault.ledger.maybe_checkpoint()


def list_oidc_links(vault: Vault, name: str | None = None) -> list[tuple[OidcLink, str]]:
    """Identity-provider links (and pending allowances) with their user's name."""
    query = select(OidcLink, User.name).join(User, User.id == OidcLink.user_id)
    if name is not None:
        query = query.where(User.name == name)
    with vault.sessions() as session:
        return [(link, n) for link, n in session.execute(query.order_by(User.name, OidcLink.issuer))]


def _link_row(session: Session, user_id: str, issuer: str) -> OidcLink:
    link = session.scalars(
        select(OidcLink).where(OidcLink.user_id == user_id, OidcLink.issuer == issuer)
    ).first()
    if link is None:
        link = OidcLink(user_id=user_id, issuer=issuer)
        session.add(link)
    return link


def _bind_first_use(vault: Vault, user: User, identity: OidcIdentity) -> bool:
    """Set the subject of ``user``'s pending link to ``identity``'s; False if it is gone.

    The update only matches a link still pending and unexpired, so two first sign-ins at
    once bind one subject, and the other is refused.
    """
    now = vault.clock()
    with vault.sessions.begin() as session:
        result = session.execute(
            update(OidcLink)
            .where(
                OidcLink.user_id == user.id,
                OidcLink.issuer == identity.issuer,
                OidcLink.subject.is_(None),
                OidcLink.bind_until > now,
            )
            .values(subject=identity.subject, bound_at=now, bind_until=None)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        vault.ledger.append(
            session,
            Action.USER_CHANGED,
            actor=Actor(user=user.name, role=user.role, organisation=user.organisation),
            object_ids=[user.id],
            details=UserChanged(
                change="oidc_bound", user=user.name, issuer=identity.issuer,
                subject=identity.subject, username_claim=identity.username,
            ),
        )
    vault.ledger.maybe_checkpoint()
    return True


def authenticate(
    vault: Vault,
    token: str | None,
    *,
    client_addr: str | None = None,
    route: str | None = None,
    throttle: DenialThrottle | None = None,
    oidc: OidcVerifier | None = None,
) -> Principal:
    """The principal a bearer token stands for: a vault API token, or, with ``oidc``, a token
    from the organisation's identity provider naming an active vault user (vault/access/oidc.py).

    Raises Unauthenticated (after logging ``access_denied``) for no token, a malformed or
    unknown one, an expired or revoked one, or one whose user is disabled. With ``throttle``,
    anonymous refusals beyond its per-address budget are summed into one event per window
    (see vault/access/denials.py) instead of one each.
    """
    now = vault.clock()
    # An identity provider's token is checked before the read session: checking may fetch
    # the provider's keys, and on SQLite a session holds the write lock.
    identity: OidcIdentity | None = None
    refused: OidcRefused | None = None
    if token and oidc is not None and not _TOKEN_RE.fullmatch(token) and looks_like_jwt(token):
        try:
            identity = oidc.verify(token)
        except OidcRefused as exc:
            refused = exc
    # Decide inside a read session, log outside it: on SQLite every transaction takes the
    # write lock, so the refusal's own transaction must not nest inside this one.
    with vault.sessions() as session:
        # 1. A token is there and has the right shape (cheap refusal of junk).
        if not token:
            decision = _Decision(failure=("no bearer token", "missing"))
        elif refused is not None:
            decision = _Decision(failure=(str(refused), refused.reason))
        elif identity is not None:
            decision = _decide_oidc(session, identity, now, client_addr)
        elif not _TOKEN_RE.fullmatch(token):
            decision = _Decision(failure=("malformed bearer token", "malformed"))
        else:
            decision = _decide_api_token(session, token, now, client_addr)
    if decision.bind_user is not None and identity is not None:
        decision = _bind(vault, decision.bind_user, identity, client_addr)
    if decision.principal is not None:
        if throttle is not None:
            log_denial_summaries(vault, throttle.flush(now))
        return decision.principal
    assert decision.failure is not None
    message, reason = decision.failure
    if decision.user is None and throttle is not None:
        alone, due = throttle.admit(client_addr, reason, now)
        log_denial_summaries(vault, due)
        if not alone:
            raise Unauthenticated(message, reason=reason)
    record_refusal(vault, decision.user, f"authentication: {reason}", client_addr=client_addr,
                   route=route, token_id=decision.token_id, target=decision.denied_target)
    raise Unauthenticated(message, reason=reason)


@dataclass
class _Decision:
    """What :func:`authenticate` decided in its read session: a principal, or a failure
    (message, reason) with what the refusal names; or a first-use OIDC bind still to write."""

    principal: Principal | None = None
    failure: tuple[str, str] | None = None
    user: User | None = None  # the user the token named, refused or not
    token_id: str | None = None
    denied_target: str | None = None  # the user whose account another tried to take
    bind_user: User | None = None


def _decide_api_token(
    session: Session, token: str, now: dt.datetime, client_addr: str | None
) -> _Decision:
    # 2. Its hash names a stored token.
    found = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(token))
    ).first()
    if found is None:
        return _Decision(failure=("unknown bearer token", "unknown"))
    row, user = found
    named = _Decision(user=user, token_id=row.id)
    # 3. Not revoked, not expired, and its user still enabled.
    if row.revoked_at is not None:
        named.failure = (f"token {row.id} was revoked on {row.revoked_at:%Y-%m-%d %H:%M}Z", "revoked")
    elif row.expires_at <= now:
        named.failure = (f"token {row.id} expired on {row.expires_at:%Y-%m-%d %H:%M}Z", "expired")
    elif not user.active:
        named.failure = (f"user {user.name!r} is disabled", "disabled")
    else:
        named.principal = _principal(session, user, row.id, client_addr)
    return named


def _decide_oidc(
    session: Session, identity: OidcIdentity, now: dt.datetime, client_addr: str | None
) -> _Decision:
    # 2'. The provider vouches for an account (issuer + subject); a link names its user.
    link = session.scalars(
        select(OidcLink).where(
            OidcLink.issuer == identity.issuer, OidcLink.subject == identity.subject
        )
    ).first()
    if link is not None:
        user = session.get(User, link.user_id)
        assert user is not None  # a foreign key
        if not user.active:
            return _Decision(failure=(f"user {user.name!r} is disabled", "disabled"), user=user,
                             token_id=identity.token_id)
        return _Decision(principal=_principal(session, user, identity.token_id, client_addr),
                         user=user, token_id=identity.token_id)
    # 3'. No link: the username claim counts only for a bind an admin allowed.
    unlinked = _Decision(token_id=identity.token_id)
    named = None if identity.username is None else session.scalars(
        select(User).where(User.name == identity.username)
    ).first()
    pending = None if named is None else session.scalars(
        select(OidcLink).where(OidcLink.user_id == named.id, OidcLink.issuer == identity.issuer)
    ).first()
    how = (f"account {identity.subject!r} of {identity.issuer}"
           f" (username claim {identity.username!r})")
    if named is None:
        unlinked.failure = (f"{how} signed in through OIDC but is not a vault user",
                            "oidc-unknown-user")
    elif pending is not None and pending.subject is not None:
        # A changed username claim naming someone else's account: no takeover.
        unlinked.failure = (f"{how} is not the account linked to user {named.name!r}",
                            "oidc-subject-mismatch")
        unlinked.denied_target = named.id
    elif pending is None or pending.bind_until is None or pending.bind_until <= now:
        unlinked.failure = (
            f"{how} is not linked to a vault user; an administrator links it with"
            f" 'evidence-vault admin user link-oidc {named.name} --issuer"
            f" {identity.issuer} --subject {identity.subject}'",
            "oidc-unlinked",
        )
    elif not named.active:
        unlinked.failure = (f"user {named.name!r} is disabled", "disabled")
    else:
        unlinked.bind_user = named
    return unlinked


def _bind(
    vault: Vault, user: User, identity: OidcIdentity, client_addr: str | None
) -> _Decision:
    # A first-use bind the administrator allowed: write it (its own transaction, after the
    # read session), then sign in through the link it made.
    decided = _Decision(token_id=identity.token_id)
    if _bind_first_use(vault, user, identity):
        with vault.sessions() as session:
            decided.principal = _principal(session, user, identity.token_id, client_addr)
    else:
        decided.failure = (f"the first-use bind for user {user.name!r} was already used",
                           "oidc-unlinked")
    return decided


def log_denial_summaries(vault: Vault, summaries: list[DenialSummary]) -> None:
    """Record each summary of throttled refusals as one ``access_denied`` event."""
    for s in summaries:
        vault.ledger.record(Action.ACCESS_DENIED, actor=ANONYMOUS, client_addr=s.client_addr,
                            details=s.details())


def record_refusal(
    vault: Vault,
    user: User | None,
    reason: str,
    *,
    client_addr: str | None,
    route: str | None,
    token_id: str | None = None,
    target: str | None = None,
) -> None:
    """Log a refused sign-in or authentication as ``access_denied``: as ``user`` when the
    refusal names a known one (their role and organisation too, the object their id), else as
    ``ANONYMOUS`` about ``target``; never the name typed for an unknown user, since people type
    passwords into that field. ``route`` is cut to 256 characters."""
    details = AccessDenied(reason=reason)
    if route:
        details["route"] = route[:256]
    if token_id:
        details["token_id"] = token_id
    vault.ledger.record(
        Action.ACCESS_DENIED,
        actor=user.name if user else ANONYMOUS,
        actor_role=user.role.value if user else None,
        actor_org=user.organisation if user else None,
        client_addr=client_addr,
        object_ids=[user.id] if user else [target] if target else [],
        details=details,
    )


__all__ = [
    "ANONYMOUS",
    "DEFAULT_BIND_WINDOW",
    "DEFAULT_TOKEN_LIFETIME",
    "TOKEN_PREFIX",
    "ApiToken",
    "IssuedToken",
    "OidcLink",
    "Principal",
    "Unauthenticated",
    "User",
    "UserSite",
    "allow_oidc_bind",
    "authenticate",
    "create_user",
    "get_user",
    "hash_token",
    "issue_token",
    "link_oidc",
    "list_oidc_links",
    "list_tokens",
    "list_users",
    "log_denial_summaries",
    "new_token",
    "principal_for",
    "record_refusal",
    "revoke_token",
    "set_active",
    "set_role",
    "set_sites",
    "unlink_oidc",
]
