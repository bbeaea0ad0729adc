"""Access policy: which role may do what, and on which footage. The rules live here only.

Roles (docs/design.md "Access control") and what they may do:

=================  ======  ===  ==  ======  =======  ======
permission          admin  asb  ig  police  auditor  ingest
=================  ======  ===  ==  ======  =======  ======
recordings.search     x     s    x     x
recordings.read       x     s    x     x             (metadata)
recordings.view       x     s    x     x             (stream)
recordings.download   x     s    x     x
recordings.upload     x                                 x
cases.read            x     m    o     o
cases.create          x     x    x     x
cases.write           x     m    o     o             (link, unlink, members)
holds.read            x     m    x     x
holds.place           x     s    x     x
holds.release         x     m    x     x
shares.read           x     c    o     o
shares.create         x     s    x     x
shares.revoke         x     c    o     o
custody.read          x          x              x
custody.verify        x          x              x
sars.read             x          x
sars.write            x          x                    (register, windows, disclose, close)
users.manage          x                                 (users, roles, tokens, second factors)
sites.manage          x                                 (sites and their organisations)
self                  x     x    x     x        x       x
=================  ======  ===  ==  ======  =======  ======

``x`` allowed; ``s`` scoped: an ASB officer only touches recordings linked to a case they are a
member of, or captured at a site they are assigned to (need-to-know, authorised by an
administrator); ``m`` only cases they are a member of; ``o`` only their own organisation's cases
and shares; ``c`` only shares they created. Auditors read custody but never footage; ingest
agents only write. Footage access additionally needs a stated purpose (the API's headers).

Every refusal is an ``access_denied`` custody event naming who, what, the permission and why,
logged *before* :class:`~vault.errors.AccessDenied` is raised. A scoped user asking for an item
outside their scope is refused whether or not it exists, so ids cannot be probed.

Why this module is long: it is the whole access policy, the permission table and every
``require_*`` check beside it, so that the policy is reviewed in one file and no route decides
access on its own.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    and_,
    exists,
    false,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from vault.actors import Role
from .cases import CaseMember, CaseOwner
from vault.storage.catalog import (
    Case,
    CaseRecording,
    Hold,
    HoldKind,
    Recording,
    RecordingOrigin,
    Source,
)
from vault.ledger.custody import Action, CustodyEventObjectRow, CustodyEventRow
from vault.errors import AccessDenied, NotFound
from vault.access.identity import Principal, User
from .sar import SarWindow, SubjectAccessRequest
from .shares import Share

if TYPE_CHECKING:
    from vault.vault import Vault


class Permission(str, enum.Enum):
    """Something a principal may be allowed to do."""

    SEARCH = "recordings.search"
    READ = "recordings.read"
    VIEW = "recordings.view"
    DOWNLOAD = "recordings.download"
    UPLOAD = "recordings.upload"
    CASE_READ = "cases.read"
    CASE_CREATE = "cases.create"
    CASE_WRITE = "cases.write"
    HOLD_READ = "holds.read"
    HOLD_PLACE = "holds.place"
    HOLD_RELEASE = "holds.release"
    SHARE_READ = "shares.read"
    SHARE_CREATE = "shares.create"
    SHARE_REVOKE = "shares.revoke"
    CUSTODY_READ = "custody.read"
    CUSTODY_VERIFY = "custody.verify"
    SAR_READ = "sars.read"
    SAR_WRITE = "sars.write"
    USERS_MANAGE = "users.manage"
    SITES_MANAGE = "sites.manage"
    SELF = "self"


P = Permission
_FOOTAGE = {P.SEARCH, P.READ, P.VIEW, P.DOWNLOAD}
_CASES = {P.CASE_READ, P.CASE_CREATE, P.CASE_WRITE}
_HOLDS = {P.HOLD_READ, P.HOLD_PLACE, P.HOLD_RELEASE}
_SHARES = {P.SHARE_READ, P.SHARE_CREATE, P.SHARE_REVOKE}
_CUSTODY = {P.CUSTODY_READ, P.CUSTODY_VERIFY}
_SARS = {P.SAR_READ, P.SAR_WRITE}

ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.ADMINISTRATOR: frozenset(Permission),
    Role.ASB_OFFICER: frozenset(_FOOTAGE | _CASES | _HOLDS | _SHARES | {P.SELF}),
    Role.IG_OFFICER: frozenset(_FOOTAGE | _CASES | _HOLDS | _SHARES | _CUSTODY | _SARS | {P.SELF}),
    Role.POLICE_LIAISON: frozenset(_FOOTAGE | _CASES | _HOLDS | _SHARES | {P.SELF}),
    Role.AUDITOR: frozenset(_CUSTODY | {P.SELF}),
    Role.INGEST_AGENT: frozenset({P.UPLOAD, P.SELF}),
    # Recipients reach shared items through their share token only, never through these routes.
    Role.SHARE_RECIPIENT: frozenset(),
}

# Roles whose footage access is need-to-know (their cases and assigned sites only).
SCOPED_ROLES = frozenset({Role.ASB_OFFICER})
# Roles that see every organisation's cases and shares.
ALL_ORGANISATIONS = frozenset({Role.ADMINISTRATOR})


def allowed(role: Role, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission`` at all (scope is checked separately)."""
    return permission in ROLE_PERMISSIONS.get(role, frozenset())


def is_scoped(principal: Principal) -> bool:
    """Whether the principal's footage access is limited to their cases and sites."""
    return principal.role in SCOPED_ROLES


def deny(
    vault: Vault,
    principal: Principal,
    permission: Permission | str,
    reason: str,
    *,
    object_ids: Iterable[str] = (),
    route: str | None = None,
    error: type[AccessDenied] = AccessDenied,
) -> NoReturn:
    """Log an ``access_denied`` event, then raise ``error`` (AccessDenied) with ``reason``."""
    details: dict[str, object] = {
        "permission": permission.value if isinstance(permission, Permission) else permission,
        "reason": reason,
    }
    if route:
        details["route"] = route[:256]
    ids = list(dict.fromkeys(i for i in object_ids if i))
    vault.ledger.record(
        Action.ACCESS_DENIED, actor=principal.actor, object_ids=ids, details=details
    )
    raise error(reason)


def require(
    vault: Vault,
    principal: Principal,
    permission: Permission,
    *,
    object_ids: Iterable[str] = (),
    route: str | None = None,
) -> None:
    """Raise AccessDenied (logged) unless the principal's role holds ``permission``."""
    if not allowed(principal.role, permission):
        deny(
            vault,
            principal,
            permission,
            f"role {principal.role.value} may not {_verb(permission)}",
            object_ids=object_ids,
            route=route,
        )


def _verb(permission: Permission) -> str:
    return {
        P.SEARCH: "search recordings",
        P.READ: "read recording metadata",
        P.VIEW: "view footage",
        P.DOWNLOAD: "download footage",
        P.UPLOAD: "upload footage",
        P.CASE_READ: "read cases",
        P.CASE_CREATE: "create cases",
        P.CASE_WRITE: "change cases",
        P.HOLD_READ: "read holds",
        P.HOLD_PLACE: "place holds",
        P.HOLD_RELEASE: "release holds",
        P.SHARE_READ: "read shares",
        P.SHARE_CREATE: "share footage",
        P.SHARE_REVOKE: "revoke shares",
        P.CUSTODY_READ: "read the custody log",
        P.CUSTODY_VERIFY: "verify the custody log",
        P.SAR_READ: "read subject access requests",
        P.SAR_WRITE: "manage subject access requests",
        P.USERS_MANAGE: "manage users, roles, tokens and second factors",
        P.SITES_MANAGE: "manage sites and organisations",
        P.SELF: "use the vault",
    }[permission]


# --- need-to-know scope ----------------------------------------------------------------------


def member_case_ids(principal: Principal):  # type: ignore[no-untyped-def]
    """SELECT of the case ids the principal works, in their own organisation."""
    return (
        select(CaseMember.case_id)
        .join(CaseOwner, CaseOwner.case_id == CaseMember.case_id)
        .where(CaseMember.user_id == principal.user_id)
        .where(CaseOwner.organisation == principal.organisation)
    )


def in_organisation(
    principal: Principal, organisation: SQLColumnExpression[str | None]
) -> ColumnElement[bool]:
    """True where ``organisation`` is the principal's, or NULL: a source, hold or SAR made
    before the vault knew organisations, which in a single-organisation vault is everyone's
    (``settings.organisation`` unset; see docs/organisations.md)."""
    return or_(organisation == principal.organisation, organisation.is_(None))


def _original_visible(
    principal: Principal, recording_id: SQLColumnExpression[str],
    source_id: SQLColumnExpression[str], *,
    scoped: bool,
) -> ColumnElement[bool]:
    """Whether an *original* recording (identified by these columns) is the principal's to see:
    their organisation's footage, and for scoped roles only their cases' or their sites'."""
    org_sources = select(Source.id).where(in_organisation(principal, Source.organisation))
    in_org = source_id.in_(org_sources)
    if not scoped:
        return in_org
    by_case = recording_id.in_(
        select(CaseRecording.recording_id).where(
            CaseRecording.case_id.in_(member_case_ids(principal))
        )
    )
    if not principal.sites:
        return and_(in_org, by_case)
    by_site = source_id.in_(org_sources.where(Source.site.in_(sorted(principal.sites))))
    return and_(in_org, or_(by_case, by_site))


def visible_recordings(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``Recording`` selecting what the principal may see.

    An original recording is visible by its own source (organisation, site) and case links.
    A derived recording (clip, redacted copy, export package) is visible only when **every**
    recording it was made from is (``recording_origins``): its own source row, which is just
    where it was filed, grants nothing, so no package, clip or copy reaches past the boundary
    of what went into it.
    """
    if not allowed(principal.role, P.SEARCH):
        return false()
    return _recordings_of(principal, scoped=is_scoped(principal))


def _recordings_of(principal: Principal, *, scoped: bool) -> ColumnElement[bool]:
    if principal.role in ALL_ORGANISATIONS:
        return true()
    origin = aliased(Recording)
    derived = exists().where(RecordingOrigin.recording_id == Recording.id)
    hidden_origin = (
        exists()
        .where(RecordingOrigin.recording_id == Recording.id, origin.id == RecordingOrigin.origin_id)
        .where(~_original_visible(principal, origin.id, origin.source_id, scoped=scoped))
    )
    return or_(
        and_(~derived, _original_visible(principal, Recording.id, Recording.source_id,
                                         scoped=scoped)),
        and_(derived, ~hidden_origin),
    )


def visible_events(principal: Principal, *, narrowed: bool = False) -> ColumnElement[bool]:
    """A WHERE clause on custody events (``CustodyEventRow``) for readers of the custody log.

    Administrators read the whole log. Others (information governance, auditors) read their
    organisation's history: events by its users, and events naming anything it owns (its
    footage and copies made only of it, its cases, holds, shares, requests and users) and
    nothing another organisation owns. Another organisation's case history, requests and
    refusals stay out of sight; verifying the
    ledger as a whole (counts and hashes, no content) is open to every custody reader.

    Both forms select the same rows; ``narrowed`` says which is cheaper. Without it the clause
    builds, once per query, the set of events naming anything the organisation owns: right
    for scanning the log, where many events may be someone else's. With it each candidate
    event looks up its own few links (by seq) and the rows they name (by primary key): right
    when the query is already narrowed to a bounded set (one event, an item's or a case's
    history), whose cost then follows the candidates, not the size of the ledger.
    """
    if not allowed(principal.role, P.CUSTODY_READ):
        return false()
    if principal.role in ALL_ORGANISATIONS:
        return true()
    org = principal.organisation
    # (id column, condition) per kind of object an event can name.
    owned: list[tuple[SQLColumnExpression[str], ColumnElement[bool]]] = [
        (Recording.id, _recordings_of(principal, scoped=False)),
        (CaseOwner.case_id, CaseOwner.organisation == org),
        (Hold.id, in_organisation(principal, Hold.organisation)),
        (SubjectAccessRequest.id, in_organisation(principal, SubjectAccessRequest.organisation)),
        (Share.id, Share.created_org == org),
        (User.id, User.organisation == org),
    ]
    # An event about our footage that also names another organisation's case, request, hold,
    # share, user or footage is that organisation's history too: showing it would show theirs.
    foreign: list[tuple[SQLColumnExpression[str], ColumnElement[bool]]] = [
        (Recording.id, Recording.source_id.in_(select(Source.id).where(
            Source.organisation.is_not(None), Source.organisation != org))),
        (CaseOwner.case_id, CaseOwner.organisation != org),
        (Hold.id, and_(Hold.organisation.is_not(None), Hold.organisation != org)),
        (SubjectAccessRequest.id, and_(SubjectAccessRequest.organisation.is_not(None),
                                       SubjectAccessRequest.organisation != org)),
        (Share.id, Share.created_org != org),
        (User.id, User.organisation != org),
    ]

    def naming(kinds: list[tuple[SQLColumnExpression[str], ColumnElement[bool]]]
               ) -> ColumnElement[bool]:
        if narrowed:
            # Correlated on the event's seq only: its links on ix_custody_event_objects_seq,
            # then each named row by primary key (the plan is in docs/web.md, "Speed"). The
            # links are an alias correlated to nothing else, so a query that itself reads the
            # link table (one item's link of the event) still checks every object it names.
            link = aliased(CustodyEventObjectRow)
            return or_(*(exists().where(link.seq == CustodyEventRow.seq,
                                        link.object_id == column, condition)
                         .correlate(CustodyEventRow)
                         for column, condition in kinds))
        ids = union_all(*(select(column).where(condition) for column, condition in kinds))
        return CustodyEventRow.seq.in_(
            select(CustodyEventObjectRow.seq).where(CustodyEventObjectRow.object_id.in_(ids)))

    return or_(
        CustodyEventRow.actor.in_(select(User.name).where(User.organisation == org)),
        and_(naming(owned), ~naming(foreign)),
    )


def require_event(vault: Vault, principal: Principal, seq: int, *, route: str | None = None) -> None:
    """Raise AccessDenied (logged) unless the principal may read custody event ``seq``
    (:func:`visible_events`); NotFound when there is no such event."""
    require(vault, principal, P.CUSTODY_READ, route=route)
    with vault.sessions() as session:
        found = session.scalar(select(exists().where(CustodyEventRow.seq == seq)))
        visible = found and session.scalar(
            select(exists().where(CustodyEventRow.seq == seq,
                                  visible_events(principal, narrowed=True))))
    if found and not visible:
        deny(vault, principal, P.CUSTODY_READ,
             f"custody event {seq} is about another organisation", route=route)
    if not found:
        raise NotFound(f"no custody event {seq}")


def can_see_recording(session: Session, principal: Principal, recording_id: str) -> bool:
    """Whether the recording is within the principal's scope (True for administrators)."""
    if principal.role in ALL_ORGANISATIONS:
        return True
    query = select(
        exists().where(Recording.id == recording_id, visible_recordings(principal))
    )
    return bool(session.scalar(query))


def require_recording(
    vault: Vault,
    principal: Principal,
    permission: Permission,
    recording_id: str,
    *,
    route: str | None = None,
) -> Recording:
    """The recording, if the principal may do ``permission`` to it.

    Raises AccessDenied (logged) for the wrong role or out of scope (existing or not), NotFound
    for an unknown id asked for by an unscoped role.
    """
    require(vault, principal, permission, object_ids=[recording_id], route=route)
    with vault.sessions() as session:
        recording = session.get(Recording, recording_id)
        visible = can_see_recording(session, principal, recording_id)
    if recording is not None and not visible or recording is None and is_scoped(principal):
        deny(
            vault, principal, permission,
            f"recording {recording_id} is not linked to your cases or assigned sites"
            if is_scoped(principal) else
            f"recording {recording_id} is not your organisation's footage, or was made from "
            "footage that is not",
            object_ids=[recording_id], route=route,
        )
    if recording is None or not visible:
        raise NotFound(f"no recording with id {recording_id}")
    return recording


def _case_visible(session: Session, principal: Principal, case_id: str) -> bool:
    if principal.role in ALL_ORGANISATIONS:
        return True
    if is_scoped(principal):
        query = select(exists().where(CaseMember.case_id == case_id, CaseMember.case_id.in_(
            member_case_ids(principal))))
        return bool(session.scalar(query))
    org = session.scalar(select(CaseOwner.organisation).where(CaseOwner.case_id == case_id))
    return org is None or org == principal.organisation


def require_case(
    vault: Vault,
    principal: Principal,
    permission: Permission,
    case_id: str,
    *,
    route: str | None = None,
) -> Case:
    """The case, if the principal may do ``permission`` to it (member for ASB officers, own
    organisation for others). Raises AccessDenied (logged), NotFound."""
    require(vault, principal, permission, object_ids=[case_id], route=route)
    with vault.sessions() as session:
        visible = _case_visible(session, principal, case_id)
        case = session.get(Case, case_id) if visible else None
    if not visible:
        reason = (
            f"you are not a member of case {case_id}" if is_scoped(principal)
            else f"case {case_id} belongs to another organisation"
        )
        deny(vault, principal, permission, reason, object_ids=[case_id], route=route)
    if case is None:
        raise NotFound(f"no case with id {case_id}")
    return case


def case_scope(principal: Principal) -> tuple[str | None, str | None]:
    """(member_id, organisation) filters for listing cases the principal may see."""
    if principal.role in ALL_ORGANISATIONS:
        return None, None
    if is_scoped(principal):
        return principal.user_id, principal.organisation
    return None, principal.organisation


def require_hold_target(
    vault: Vault,
    principal: Principal,
    *,
    recording_id: str | None,
    case_id: str | None,
    source_id: str | None,
    route: str | None = None,
) -> None:
    """Raise AccessDenied (logged) unless the principal may place a hold on this target: a
    recording they may see, a case they may change, or a source of their organisation (at one
    of their sites, for scoped roles)."""
    require(vault, principal, P.HOLD_PLACE, route=route,
            object_ids=[x for x in (recording_id, case_id) if x])
    if recording_id is not None:
        require_recording(vault, principal, P.HOLD_PLACE, recording_id, route=route)
    if case_id is not None:
        require_case(vault, principal, P.HOLD_PLACE, case_id, route=route)
    if source_id is not None:
        require_source(vault, principal, P.HOLD_PLACE, source_id, route=route)


def visible_holds(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``Hold``: administrators every hold; scoped roles the holds on their
    cases; others their organisation's holds."""
    if not allowed(principal.role, P.HOLD_READ):
        return false()
    if principal.role in ALL_ORGANISATIONS:
        return true()
    if is_scoped(principal):
        return Hold.case_id.in_(member_case_ids(principal))
    return in_organisation(principal, Hold.organisation)


def require_hold(
    vault: Vault, principal: Principal, permission: Permission, hold_id: str, *,
    route: str | None = None,
) -> Hold:
    """The hold, if the principal may do ``permission`` (read/release) to it.

    A hold is its organisation's: scoped users touch only holds on their cases. Releasing a
    case hold takes the right to change that case (its managers); a SAR hold is never released
    on its own: it ends when its SAR is closed, by those with SAR rights (vault/casework/sar.py).
    Raises AccessDenied (logged), NotFound.
    """
    require(vault, principal, permission, object_ids=[hold_id], route=route)
    with vault.sessions() as session:
        hold = session.get(Hold, hold_id)
        visible = hold is not None and bool(session.scalar(
            select(exists().where(Hold.id == hold_id, visible_holds(principal)))))
    if not visible and (hold is not None or is_scoped(principal)):
        deny(vault, principal, permission,
             f"hold {hold_id} is not on a case you are a member of" if is_scoped(principal)
             else f"hold {hold_id} belongs to another organisation",
             object_ids=[hold_id], route=route)
    if hold is None:
        raise NotFound(f"no hold with id {hold_id}")
    if permission == P.HOLD_RELEASE:
        if hold.kind == HoldKind.SAR:
            with vault.sessions() as session:
                sar_id = session.scalar(select(SarWindow.sar_id).where(SarWindow.hold_id == hold_id))
            if sar_id is not None:
                deny(vault, principal, permission,
                     f"hold {hold_id} keeps footage for subject access request {hold.reference}: "
                     "it ends when that request is closed, by its information-governance team",
                     object_ids=[hold_id], route=route)
            require(vault, principal, P.SAR_WRITE, object_ids=[hold_id], route=route)
        if hold.case_id is not None:
            require_case(vault, principal, P.CASE_WRITE, hold.case_id, route=route)
    return hold


def require_source(
    vault: Vault, principal: Principal, permission: Permission, source_id: str, *,
    route: str | None = None,
) -> Source:
    """The source, if it records the principal's organisation's footage (and, for scoped roles,
    is at one of their sites). Raises AccessDenied (logged), NotFound."""
    require(vault, principal, permission, object_ids=[source_id], route=route)
    with vault.sessions() as session:
        source = session.get(Source, source_id)
    if principal.role not in ALL_ORGANISATIONS:
        if source is not None and source.organisation not in (None, principal.organisation):
            deny(vault, principal, permission,
                 f"source {source_id} records another organisation's footage",
                 object_ids=[source_id], route=route)
        if is_scoped(principal) and (source is None or source.site not in principal.sites):
            deny(vault, principal, permission,
                 f"source {source_id} is not at a site you are assigned to",
                 object_ids=[source_id], route=route)
    if source is None:
        raise NotFound(f"no source {source_id}: name a camera or device the vault knows")
    return source


def visible_sars(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``SubjectAccessRequest``: administrators all; those with SAR rights
    their organisation's; nobody else any (a request names its requester)."""
    if not allowed(principal.role, P.SAR_READ):
        return false()
    if principal.role in ALL_ORGANISATIONS:
        return true()
    return in_organisation(principal, SubjectAccessRequest.organisation)


def require_sar(
    vault: Vault, principal: Principal, permission: Permission, sar_id: str, *,
    route: str | None = None,
) -> None:
    """Raise AccessDenied (logged) unless the principal may do ``permission`` (read/write) to
    the request (by id or reference): their organisation's only. NotFound when unknown."""
    require(vault, principal, permission, object_ids=[sar_id], route=route)
    with vault.sessions() as session:
        found = session.scalars(select(SubjectAccessRequest).where(or_(
            SubjectAccessRequest.id == sar_id, SubjectAccessRequest.reference == sar_id))).first()
        visible = found is not None and bool(session.scalar(select(exists().where(
            SubjectAccessRequest.id == found.id, visible_sars(principal)))))
    if found is not None and not visible:
        deny(vault, principal, permission,
             f"subject access request {sar_id} belongs to another organisation",
             object_ids=[sar_id], route=route)
    if found is None:
        raise NotFound(f"no subject access request {sar_id}")


def require_share(
    vault: Vault, principal: Principal, permission: Permission, share: Share | None, share_id: str,
    *, route: str | None = None,
) -> Share:
    """The share, if the principal may do ``permission`` (read/revoke) to it: administrators
    any, ASB officers their own, others their organisation's. Raises AccessDenied, NotFound."""
    require(vault, principal, permission, object_ids=[share_id], route=route)
    if principal.role not in ALL_ORGANISATIONS:
        if is_scoped(principal):
            mine = share is not None and share.created_by == principal.name
            why = f"share {share_id} was not made by you"
        else:
            mine = share is not None and share.created_org == principal.organisation
            why = f"share {share_id} belongs to another organisation"
        if not mine:
            deny(vault, principal, permission, why, object_ids=[share_id], route=route)
    if share is None:
        raise NotFound(f"no share with id {share_id}")
    return share


__all__ = [
    "ALL_ORGANISATIONS",
    "ROLE_PERMISSIONS",
    "SCOPED_ROLES",
    "Permission",
    "allowed",
    "can_see_recording",
    "case_scope",
    "deny",
    "in_organisation",
    "is_scoped",
    "member_case_ids",
    "require",
    "require_case",
    "require_event",
    "require_hold",
    "require_hold_target",
    "require_recording",
    "require_sar",
    "require_share",
    "require_source",
    "visible_events",
    "visible_holds",
    "visible_recordings",
    "visible_sars",
]
