"""Cases: the need-to-know boundary for ASB officers.

A case (``vault.catalog.Case``) belongs to one organisation and has members. An ASB officer sees
the recordings linked to the cases they are a member of (see :mod:`vault.policy`). Creating a
case, linking or unlinking a recording and adding or removing a member are custody events; each
names the case id among its object ids, so ``events(object_id=case_id)`` is the case's history.

Membership never crosses organisations: a partner's officer gets footage through a share
(:mod:`vault.shares`), not by joining another organisation's case.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .access import Actor, Purpose
from .catalog import Base, Case, CaseRecording, Recording, utcnow
from .custody import Action
from .errors import InvalidInput, NotFound
from .identity import User

if TYPE_CHECKING:
    from .vault import Vault

MEMBER_ADDED = "case.member_added"
MEMBER_REMOVED = "case.member_removed"


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
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"no case with id {case_id}")
    return case


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
            details={
                "case_id": case.id,
                "organisation": organisation,
                "members": list(member_ids),
                **({"crime_number": crime_number} if crime_number else {}),
            },
        )
    vault.ledger.maybe_checkpoint()
    return case


def _add_member(
    session: Session, case: Case, organisation: str, user_id: str, actor: Actor, now: dt.datetime
) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
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
            details={"case_id": case.id, "user": user.name},
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
            details={"case_id": case.id, "user": user.name},
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

    Logs ``case_linked`` (only when a new link is made). Raises NotFound.
    """
    with vault.sessions.begin() as session:
        case = _case(session, case_id)
        recording = session.get(Recording, recording_id)
        if recording is None:
            raise NotFound(f"no recording with id {recording_id}")
        link = session.get(CaseRecording, (case.id, recording.id))
        if link is not None:
            return link
        link = CaseRecording(
            case_id=case.id, recording_id=recording.id, linked_by=actor.user[:128],
            linked_at=vault.clock(),
        )
        session.add(link)
        vault.ledger.append(
            session,
            Action.CASE_LINKED,
            actor=actor,
            purpose=purpose,
            reference=case.reference,
            object_ids=[recording.id, case.id],
            hashes={recording.id: recording.sha256},
            details={"case_id": case.id},
        )
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
            details={"case_id": case.id},
        )
    vault.ledger.maybe_checkpoint()


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
    "create_case",
    "get_case",
    "link_recording",
    "list_cases",
    "remove_member",
    "unlink_recording",
]
