"""Holds: reasons to keep footage past its retention date (case, police request, SAR, legal).

A hold names one recording, every recording linked to a case, or a source and a capture window
("camera 3, 14:00-15:00"). A window hold also covers footage that arrives after the hold was
placed (an agent that was offline), which is why holds are matched when retention runs rather
than copied onto recordings when placed. A held recording keeps its derived copies too. Which
recordings a hold keeps is decided once, in :mod:`vault.storage.hold_rule`.

Placing and releasing a hold are custody events. On an S3 bucket with object lock the held
objects also get an S3 legal hold, so storage-side lifecycle rules cannot race the vault.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from vault.actors import Actor
from vault.storage.catalog import CaseRecording, Hold, HoldKind, Recording
from vault.storage.hold_rule import held_clause, is_held, overlaps
from vault.ledger.custody import Action
from vault.ledger.events import Held, Released
from vault.errors import InvalidInput, NotFound
from vault.storage.db import get_or_not_found
from vault.ending import Ending, end_record

if TYPE_CHECKING:
    from vault.vault import Vault

#: A hold ends by release, with a reason (:func:`release_hold`).
HOLD_RELEASE = Ending("hold", "released", "released_at", "released_by", "release_reason")


def place_hold(
    vault: Vault,
    *,
    kind: HoldKind,
    reason: str,
    actor: Actor,
    reference: str | None = None,
    recording_id: str | None = None,
    case_id: str | None = None,
    source_id: str | None = None,
    window: tuple[dt.datetime, dt.datetime] | None = None,
    organisation: str | None = None,
) -> Hold:
    """Place a hold on one recording, a case, or a source and window; returns the hold.

    The hold belongs to ``organisation`` (a case hold: the case's owner; a SAR hold: the
    request's; default: the organisation of who placed it). Only that organisation sees it or
    releases it (vault/casework/policy.py).
    Raises InvalidInput unless exactly one target is named, NotFound for an unknown recording.
    """
    targets = [recording_id is not None, case_id is not None, source_id is not None]
    if sum(targets) != 1:
        raise InvalidInput("a hold names exactly one of: a recording, a case, or a source and window")
    if source_id is not None and window is None:
        raise InvalidInput("a hold on a source needs a capture window (start, end)")
    if window is not None and window[1] <= window[0]:
        raise InvalidInput("a hold window must end after it starts")
    if not reason.strip():
        raise InvalidInput("a hold needs a reason")
    with vault.sessions.begin() as session:
        if recording_id is not None and session.get(Recording, recording_id) is None:
            raise NotFound(f"no recording with id {recording_id}")
        hold = Hold(
            organisation=organisation or actor.organisation,
            kind=kind,
            reason=reason,
            reference=reference,
            recording_id=recording_id,
            case_id=case_id,
            source_id=source_id,
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
            created_by=actor.user,
            created_at=vault.clock(),
        )
        session.add(hold)
        session.flush()
        held = covered_recordings(session, hold)
        vault.ledger.append(
            session,
            Action.HELD,
            actor=actor,
            reference=reference,
            object_ids=[r.id for r in held],
            details=_hold_details(hold),
        )
    place_legal_holds(vault, [r.object_key for r in held])
    vault.checkpoint_if_due()
    return hold


def release_hold(
    vault: Vault, hold_id: str, *, actor: Actor, reason: str, sar_closing: bool = False
) -> Hold:
    """Release a hold, stating why; footage past its date goes on the next retention run.

    A SAR hold ends only when its request closes (:func:`vault.casework.sar.close_sar`, which passes
    ``sar_closing``): released on its own, the footage could be deleted while the requester
    still waits for it. Raises NotFound for an unknown hold, InvalidInput if it was already
    released, a SAR hold outside its SAR's closing, or no reason.
    """
    if not reason or not reason.strip():
        raise InvalidInput("say why the hold is released (a reason is required)")
    with vault.sessions.begin() as session:
        hold = get_or_not_found(session, Hold, hold_id, noun="hold")
        if hold.kind == HoldKind.SAR and not sar_closing and _sar_of(session, hold.id):
            raise InvalidInput(
                f"hold {hold_id} keeps footage for a subject access request ({hold.reference}); "
                "it ends when that request is closed or refused, not on its own"
            )
        released = covered_recordings(session, hold)
        end_record(
            vault, session, hold, HOLD_RELEASE, record_id=hold_id, actor=actor, reason=reason,
            action=Action.RELEASED, reference=hold.reference,
            object_ids=[r.id for r in released],
            details=Released(**_hold_details(hold), release_reason=reason),
        )
    lift_legal_holds(vault, [r.id for r in released])
    vault.checkpoint_if_due()
    return hold


def place_legal_holds(vault: Vault, object_keys: Iterable[str]) -> None:
    """Mirror a catalog hold in storage (an S3 legal hold), so lifecycle rules cannot race the
    vault; nothing where the store has no object lock."""
    if not vault.store.legal_holds:
        return
    for key in object_keys:
        vault.store.set_legal_hold(key, True)


def lift_legal_holds(vault: Vault, recording_ids: Iterable[str]) -> None:
    """Lift the storage-side legal hold of those of ``recording_ids`` that nothing keeps any
    more (another hold, case or window may still keep them)."""
    ids = list(recording_ids)
    if not vault.store.legal_holds or not ids:
        return
    with vault.sessions() as session:
        free = [
            r.object_key for r in session.scalars(
                select(Recording).where(Recording.id.in_(ids), Recording.deleted_at.is_(None)))
            if not is_held(session, r)
        ]
    for key in free:
        vault.store.set_legal_hold(key, False)


def _sar_of(session: Session, hold_id: str) -> str | None:
    # The SAR whose window placed this hold, if any. Read through the shared metadata: the SAR
    # module builds on this one, so this one must not import it.
    windows = Hold.metadata.tables["sar_windows"]
    return session.scalar(select(windows.c.sar_id).where(windows.c.hold_id == hold_id).limit(1))


def list_holds(
    vault: Vault,
    *,
    case_id: str | None = None,
    recording_id: str | None = None,
    kind: HoldKind | None = None,
    active: bool | None = True,
    scope: ColumnElement[bool] | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[Hold]:
    """Holds, newest first, filtered as given (``active=None``: active and released) and within
    ``scope`` (:func:`vault.casework.policy.visible_holds`)."""
    stmt = select(Hold).order_by(Hold.created_at.desc(), Hold.id).limit(limit).offset(offset)
    if scope is not None:
        stmt = stmt.where(scope)
    if case_id is not None:
        stmt = stmt.where(Hold.case_id == case_id)
    if recording_id is not None:
        stmt = stmt.where(Hold.recording_id == recording_id)
    if kind is not None:
        stmt = stmt.where(Hold.kind == kind)
    if active is True:
        stmt = stmt.where(Hold.released_at.is_(None))
    elif active is False:
        stmt = stmt.where(Hold.released_at.is_not(None))
    with vault.sessions() as session:
        return list(session.scalars(stmt))


def _hold_details(hold: Hold) -> Held:
    details = Held(hold_id=hold.id, kind=hold.kind.value, reason=hold.reason)
    if hold.case_id:
        details["case_id"] = hold.case_id
    if hold.source_id and hold.window_start and hold.window_end:
        details["source"] = hold.source_id
        details["window"] = [hold.window_start.isoformat(), hold.window_end.isoformat()]
    return details


def covered_recordings(session: Session, hold: Hold) -> list[Recording]:
    """The live recordings a hold covers now (not counting derived copies)."""
    query = select(Recording).where(Recording.deleted_at.is_(None))
    if hold.recording_id is not None:
        query = query.where(Recording.id == hold.recording_id)
    elif hold.case_id is not None:
        query = query.join(CaseRecording, CaseRecording.recording_id == Recording.id).where(
            CaseRecording.case_id == hold.case_id
        )
    else:
        assert hold.window_start is not None and hold.window_end is not None
        query = query.where(
            Recording.source_id == hold.source_id,
            overlaps(hold.window_start, hold.window_end),
        )
    return list(session.scalars(query))


def held_ids(vault: Vault, recording_ids: Iterable[str]) -> set[str]:
    """Which of ``recording_ids`` something keeps now (one query; for listings, so that what
    they show as "kept until" tells the truth)."""
    ids = list(dict.fromkeys(recording_ids))
    if not ids:
        return set()
    with vault.sessions() as session:
        return set(session.scalars(
            select(Recording.id).where(Recording.id.in_(ids), held_clause())))
