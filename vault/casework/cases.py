"""Cases: the need-to-know boundary for ASB officers.

A case (``vault.storage.catalog.Case``) belongs to one organisation and has members. An ASB officer sees
the recordings linked to the cases they are a member of (see :mod:`vault.casework.policy`). Creating a
case, linking or unlinking a recording and adding or removing a member are custody events; each
names the case id among its object ids, so ``events(object_id=case_id)`` is the case's history.

Membership never crosses organisations: a partner's officer gets footage through a share
(:mod:`vault.casework.shares`), not by joining another organisation's case.

Evidence on an open case is kept: a linked recording is held for as long as the link and the
case's open state last (:func:`vault.casework.holds.open_case_holds`), with no separate hold to place or
forget. Linking a derived copy (a clip, a redacted copy) links the recordings it was made from
too: the masters are what a court asks for, and a case member must be able to see every source
of a copy to see the copy (:func:`vault.casework.policy.visible_recordings`). Closing a case ends what
it kept; explicit holds on it stay until released.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from vault.actors import Actor, Purpose
from vault.storage.catalog import (
    Base,
    Case,
    CaseRecording,
    CaseStatus,
    Recording,
    RecordingOrigin,
    utcnow,
)
from vault.ledger.custody import Action
from vault.ledger.events import CaseCreated, CaseEnded, CaseMembership, CaseRef
from vault.errors import InvalidInput, NotFound
from .holds import lift_legal_holds, place_legal_holds
from vault.access.identity import User
from vault.storage.db import get_or_not_found

if TYPE_CHECKING:
    from vault.vault import Vault

MEMBER_ADDED = "case.member_added"
MEMBER_REMOVED = "case.member_removed"
CLOSED = "case.closed"
REOPENED = "case.reopened"


class CaseOwner(Base):
    """The organisation a case belongs to."""

    __tablename__ = "case_owners"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    organisation: Mapped[str] = mapped_column(String(256), index=True)


class CaseMember(Base):
    """A user working a case: an ASB officer sees the case's footage (need-to-know)."""

    __tablename__ = "case_members"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    added_by: Mapped[str | None] = mapped_column(String(256))
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def _case(session: Session, case_id: str) -> Case:
    return get_or_not_found(session, Case, case_id, noun="case")


def create_case(
    vault: Vault,
    *,
    reference: str,
    organisation: str,
    actor: Actor,
    title: str | None = None,
    crime_number: str | None = None,
    member_ids: tuple[str, ...] = (),
) -> Case:
    """Create a case owned by ``organisation`` with the given members; returns it.

    Logs ``case_created``. Raises InvalidInput for an empty or taken reference.
    """
    reference = reference.strip()
    if not reference or len(reference) > 128:
        raise InvalidInput("a case reference is required (at most 128 characters)")
    if title is not None and len(title) > 512:
        raise InvalidInput("a case title is at most 512 characters")
    if crime_number is not None and len(crime_number) > 128:
        raise InvalidInput("a crime number is at most 128 characters")
    with vault.sessions.begin() as session:
        if session.scalar(select(Case.id).where(Case.reference == reference)) is not None:
            raise InvalidInput(f"a case with reference {reference!r} already exists")
        now = vault.clock()
        case = Case(
            reference=reference,
            title=title,
            crime_number=crime_number,
            created_by=actor.user[:128],
            created_at=now,
        )
        session.add(case)
        session.flush()
        session.add(CaseOwner(case_id=case.id, organisation=organisation))
        for user_id in member_ids:
            _add_member(session, case, organisation, user_id, actor, now)
        vault.ledger.append(
            session,
            Action.CASE_CREATED,
            actor=actor,
            reference=reference,
            object_ids=[case.id],
            details=_created(case.id, organisation, list(member_ids), crime_number),
        )
    vault.ledger.maybe_checkpoint()
    return case


def _created(
    case_id: str, organisation: str, members: list[str], crime_number: str | None
) -> CaseCreated:
    details = CaseCreated(case_id=case_id, organisation=organisation, members=members)
    if crime_number:
        details["crime_number"] = crime_number
    return details


def _add_member(
    session: Session, case: Case, organisation: str, user_id: str, actor: Actor, now: dt.datetime
) -> User:
    user = get_or_not_found(session, User, user_id, noun="user")
    if user.organisation != organisation:
        raise InvalidInput(
            f"user {user.name!r} belongs to {user.organisation!r}, case {case.reference!r} to "
            f"{organisation!r}: share the footage instead"
        )
    if session.get(CaseMember, (case.id, user.id)) is None:
        session.add(CaseMember(case_id=case.id, user_id=user.id, added_by=actor.user, added_at=now))
    return user


def case_organisation(session: Session, case_id: str) -> str | None:
    """The organisation that owns a case (None for a case made outside this module)."""
    return session.scalar(select(CaseOwner.organisation).where(CaseOwner.case_id == case_id))


def add_member(vault: Vault, case_id: str, user_name: str, *, actor: Actor) -> None:
    """Add a user to a case. Raises NotFound, InvalidInput across organisations."""
    with vault.sessions.begin() as session:
        case = _case(session, case_id)
        user = session.scalars(select(User).where(User.name == user_name)).first()
        if user is None:
            raise NotFound(f"no user named {user_name!r}")
        org = case_organisation(session, case.id) or user.organisation
        _add_member(session, case, org, user.id, actor, vault.clock())
        vault.ledger.append(
            session,
            MEMBER_ADDED,
            actor=actor,
            reference=case.reference,
            object_ids=[case.id, user.id],
            details=CaseMembership(case_id=case.id, user=user.name),
        )
    vault.ledger.maybe_checkpoint()


def remove_member(vault: Vault, case_id: str, user_name: str, *, actor: Actor) -> None:
    """Remove a user from a case. Raises NotFound."""
    with vault.sessions.begin() as session:
        case = _case(session, case_id)
        user = session.scalars(select(User).where(User.name == user_name)).first()
        member = session.get(CaseMember, (case.id, user.id)) if user else None
        if user is None or member is None:
            raise NotFound(f"{user_name!r} is not a member of case {case.reference!r}")
        session.delete(member)
        vault.ledger.append(
            session,
            MEMBER_REMOVED,
            actor=actor,
            reference=case.reference,
            object_ids=[case.id, user.id],
            details=CaseMembership(case_id=case.id, user=user.name),
        )
    vault.ledger.maybe_checkpoint()


def link_recording(
    vault: Vault,
    case_id: str,
    recording_id: str,
    *,
    actor: Actor,
    purpose: Purpose | None = None,
) -> CaseRecording:
    """Mark a recording as evidence for a case; returns the link (the existing one if linked).

    A derived copy brings the recordings it was made from. Logs ``case_linked`` naming every
    recording newly linked (only when one is). On an S3 bucket with object lock each gets a
    legal hold while the case is open. Raises NotFound, InvalidInput for a closed case.
    """
    with vault.sessions.begin() as session:
        case = _case(session, case_id)
        recording = get_or_not_found(session, Recording, recording_id, noun="recording")
        if case.status != CaseStatus.OPEN:
            raise InvalidInput(f"case {case.reference!r} is closed: reopen it to add evidence")
        origins = session.scalars(
            select(RecordingOrigin.origin_id).where(RecordingOrigin.recording_id == recording.id)
        ).all()
        wanted = [recording.id, *sorted(origins)]
        added: list[Recording] = []
        link: CaseRecording | None = None
        for rid in wanted:
            existing = session.get(CaseRecording, (case.id, rid))
            if existing is None:
                existing = CaseRecording(
                    case_id=case.id, recording_id=rid, linked_by=actor.user[:128],
                    linked_at=vault.clock(),
                )
                session.add(existing)
                linked = recording if rid == recording.id else session.get(Recording, rid)
                assert linked is not None  # an origin row names an existing recording (FK)
                added.append(linked)
            link = link or existing
        assert link is not None
        if not added:
            return link
        details: dict[str, object] = {"case_id": case.id}
        if origins:
            details["made_from"] = sorted(origins)
        vault.ledger.append(
            session,
            Action.CASE_LINKED,
            actor=actor,
            purpose=purpose,
            reference=case.reference,
            object_ids=[r.id for r in added] + [case.id],
            hashes={r.id: r.sha256 for r in added},
            details=details,
        )
        keys = [r.object_key for r in added if r.deleted_at is None]
    place_legal_holds(vault, keys)
    vault.ledger.maybe_checkpoint()
    return link


def unlink_recording(vault: Vault, case_id: str, recording_id: str, *, actor: Actor) -> None:
    """Remove a recording from a case. Logs ``case_unlinked``. Raises NotFound."""
    with vault.sessions.begin() as session:
        case = _case(session, case_id)
        link = session.get(CaseRecording, (case.id, recording_id))
        if link is None:
            raise NotFound(f"recording {recording_id} is not linked to case {case.reference!r}")
        session.delete(link)
        vault.ledger.append(
            session,
            Action.CASE_UNLINKED,
            actor=actor,
            reference=case.reference,
            object_ids=[recording_id, case.id],
            details=CaseRef(case_id=case.id),
        )
    lift_legal_holds(vault, [recording_id])
    vault.ledger.maybe_checkpoint()


def close_case(vault: Vault, case_id: str, *, actor: Actor, reason: str) -> Case:
    """Close a case, stating why: its footage is no longer kept *because of this case* (other
    holds and open cases still keep it; the rest goes on its retention date). Logs
    ``case.closed``. Raises NotFound, InvalidInput when already closed or without a reason."""
    if not reason or not reason.strip():
        raise InvalidInput("say why the case is closed (a reason is required)")
    with vault.sessions.begin() as session:
        case = _case(session, case_id)
        if case.status == CaseStatus.CLOSED:
            raise InvalidInput(f"case {case.reference!r} is already closed")
        case.status = CaseStatus.CLOSED
        linked = list(session.scalars(
            select(CaseRecording.recording_id).where(CaseRecording.case_id == case.id)
        ))
        vault.ledger.append(
            session, CLOSED, actor=actor, reference=case.reference,
            object_ids=[case.id, *linked], details=CaseEnded(case_id=case.id, reason=reason),
        )
    lift_legal_holds(vault, linked)
    vault.ledger.maybe_checkpoint()
    return case


def reopen_case(vault: Vault, case_id: str, *, actor: Actor, reason: str) -> Case:
    """Reopen a closed case, stating why; its linked footage that still exists is kept again.
    Logs ``case.reopened``. Raises NotFound, InvalidInput when open or without a reason."""
    if not reason or not reason.strip():
        raise InvalidInput("say why the case is reopened (a reason is required)")
    with vault.sessions.begin() as session:
        case = _case(session, case_id)
        if case.status == CaseStatus.OPEN:
            raise InvalidInput(f"case {case.reference!r} is open")
        case.status = CaseStatus.OPEN
        keys = list(session.scalars(
            select(Recording.object_key)
            .join(CaseRecording, CaseRecording.recording_id == Recording.id)
            .where(CaseRecording.case_id == case.id, Recording.deleted_at.is_(None))
        ))
        vault.ledger.append(
            session, REOPENED, actor=actor, reference=case.reference,
            object_ids=[case.id], details=CaseEnded(case_id=case.id, reason=reason),
        )
    place_legal_holds(vault, keys)
    vault.ledger.maybe_checkpoint()
    return case


def get_case(vault: Vault, case_id: str) -> Case:
    """One case. Raises NotFound."""
    with vault.sessions() as session:
        return _case(session, case_id)


def case_details(vault: Vault, case_id: str) -> tuple[Case, str | None, list[str], list[str]]:
    """A case, its organisation, its recording ids and its members' names. Raises NotFound."""
    with vault.sessions() as session:
        case = _case(session, case_id)
        org = case_organisation(session, case.id)
        recordings = list(
            session.scalars(
                select(CaseRecording.recording_id)
                .where(CaseRecording.case_id == case.id)
                .order_by(CaseRecording.linked_at)
            )
        )
        members = list(
            session.scalars(
                select(User.name)
                .join(CaseMember, CaseMember.user_id == User.id)
                .where(CaseMember.case_id == case.id)
                .order_by(User.name)
            )
        )
    return case, org, recordings, members


def list_cases(
    vault: Vault,
    *,
    member_id: str | None = None,
    organisation: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[tuple[Case, str | None]]:
    """Cases (newest first) with their organisation, optionally only those ``member_id`` works
    or ``organisation`` owns."""
    query = (
        select(Case, CaseOwner.organisation)
        .outerjoin(CaseOwner, CaseOwner.case_id == Case.id)
        .order_by(Case.created_at.desc(), Case.id)
        .limit(limit)
        .offset(offset)
    )
    if member_id is not None:
        query = query.where(
            Case.id.in_(select(CaseMember.case_id).where(CaseMember.user_id == member_id))
        )
    if organisation is not None:
        query = query.where(CaseOwner.organisation == organisation)
    with vault.sessions() as session:
        return [(c, o) for c, o in session.execute(query)]


__all__ = [
    "CaseMember",
    "CaseOwner",
    "add_member",
    "case_details",
    "case_organisation",
    "close_case",
    "create_case",
    "get_case",
    "link_recording",
    "list_cases",
    "remove_member",
    "reopen_case",
    "unlink_recording",
]
