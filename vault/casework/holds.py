"""Holds: reasons to keep footage past its retention date (case, police request, SAR, legal).

A hold names one recording, every recording linked to a case, or a source and a capture window
("camera 3, 14:00-15:00"). A window hold also covers footage that arrives after the hold was
placed (an agent that was offline), which is why holds are matched when retention runs rather
than copied onto recordings when placed. A held recording keeps its derived copies too.

Placing and releasing a hold are custody events. On an S3 bucket with object lock the held
objects also get an S3 legal hold, so storage-side lifecycle rules cannot race the vault.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from vault.actors import Actor
from vault.storage.catalog import Case, CaseRecording, CaseStatus, Hold, HoldKind, Recording
from vault.ledger.custody import Action
from vault.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from vault.vault import Vault


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
        hold = session.get(Hold, hold_id)
        if hold is None:
            raise NotFound(f"no hold with id {hold_id}")
        if hold.kind == HoldKind.SAR and not sar_closing and _sar_of(session, hold.id):
            raise InvalidInput(
                f"hold {hold_id} keeps footage for a subject access request ({hold.reference}); "
                "it ends when that request is closed or refused, not on its own"
            )
        if hold.released_at is not None:
            raise InvalidInput(f"hold {hold_id} was already released on {hold.released_at:%Y-%m-%d}")
        hold.released_at = vault.clock()
        hold.released_by = actor.user
        hold.release_reason = reason
        released = covered_recordings(session, hold)
        vault.ledger.append(
            session,
            Action.RELEASED,
            actor=actor,
            reference=hold.reference,
            object_ids=[r.id for r in released],
            details={**_hold_details(hold), "release_reason": reason},
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


def _hold_details(hold: Hold) -> dict[str, object]:
    details: dict[str, object] = {"hold_id": hold.id, "kind": hold.kind.value, "reason": hold.reason}
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
            _overlaps(hold.window_start, hold.window_end),
        )
    return list(session.scalars(query))


def _overlaps(start: dt.datetime, end: dt.datetime):  # type: ignore[no-untyped-def]
    # A recording without an end time is treated as the instant it started.
    return and_(
        Recording.captured_start < end,
        or_(
            and_(Recording.captured_end.is_(None), Recording.captured_start >= start),
            Recording.captured_end > start,
        ),
    )


def active_holds(session: Session, recording: Recording) -> list[Hold]:
    """The unreleased holds that keep ``recording``: its own, its cases', its windows', those
    of the recording it was derived from, and, as a hold of its own, each **open case** it is
    evidence on (:func:`open_case_holds`)."""
    holds: list[Hold] = []
    seen: set[str] = set()
    current: Recording | None = recording
    while current is not None and current.id not in seen:
        seen.add(current.id)
        case_ids = select(CaseRecording.case_id).where(CaseRecording.recording_id == current.id)
        window = and_(
            Hold.source_id == current.source_id,
            Hold.window_start < (current.captured_end or current.captured_start + dt.timedelta(microseconds=1)),
            Hold.window_end > current.captured_start,
        )
        holds.extend(
            session.scalars(
                select(Hold).where(
                    Hold.released_at.is_(None),
                    or_(Hold.recording_id == current.id, Hold.case_id.in_(case_ids), window),
                )
            )
        )
        # An explicit hold on the same case already says why; one line per reason.
        explicit = {h.case_id for h in holds if h.case_id is not None}
        holds.extend(h for h in open_case_holds(session, current.id) if h.case_id not in explicit)
        current = session.get(Recording, current.parent_id) if current.parent_id else None
    return holds


def open_case_holds(session: Session, recording_id: str) -> list[Hold]:
    """One hold per open case the recording is linked to, as the rule "evidence on an open case
    is kept" reads: derived from the link, never stored, so it cannot drift from it. It ends
    when the recording is unlinked or the case is closed (both custody events). The holds are
    transient (id ``case:<case id>``), for reports; they are not catalog rows."""
    rows = session.execute(
        select(Case.id, Case.reference)
        .join(CaseRecording, CaseRecording.case_id == Case.id)
        .where(CaseRecording.recording_id == recording_id, Case.status == CaseStatus.OPEN)
        .order_by(Case.reference)
    ).all()
    return [
        Hold(id=f"case:{case_id}", kind=HoldKind.CASE, case_id=case_id, reference=reference,
             reason=f"evidence on open case {reference}")
        for case_id, reference in rows
    ]


def on_open_case() -> ColumnElement[bool]:
    """True for a ``Recording`` linked to an open case (kept by the open-case rule)."""
    return Recording.id.in_(
        select(CaseRecording.recording_id)
        .join(Case, Case.id == CaseRecording.case_id)
        .where(Case.status == CaseStatus.OPEN)
    )


def is_held(session: Session, recording: Recording) -> bool:
    """Whether anything keeps ``recording`` past its retention date now."""
    return bool(active_holds(session, recording))


def held_clause() -> ColumnElement[bool]:
    """True for a recording an active hold covers (its own, its case's or its window's) or that
    is evidence on an open case (vault/casework/holds.py)."""
    end = func.coalesce(Recording.captured_end, Recording.captured_start)
    return on_open_case() | (
        exists()
        .where(
            Hold.released_at.is_(None),
            or_(
                Hold.recording_id == Recording.id,
                Hold.case_id.in_(
                    select(CaseRecording.case_id)
                    .where(CaseRecording.recording_id == Recording.id)
                    .correlate(Recording)  # the outer recording, not every recording
                ),
                and_(
                    Hold.source_id == Recording.source_id,
                    Hold.window_start <= end,
                    Hold.window_end > Recording.captured_start,
                ),
            ),
        )
        .correlate(Recording)
    )


def held_ids(vault: Vault, recording_ids: Iterable[str]) -> set[str]:
    """Which of ``recording_ids`` something keeps now (one query; for listings, so that what
    they show as "kept until" tells the truth)."""
    ids = list(dict.fromkeys(recording_ids))
    if not ids:
        return set()
    with vault.sessions() as session:
        return set(session.scalars(
            select(Recording.id).where(Recording.id.in_(ids), held_clause())))
