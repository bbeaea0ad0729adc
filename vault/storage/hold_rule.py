"""Which recordings a hold keeps: the one definition, beside the hold table.

A recording is *held* when an unreleased hold covers it or any recording it was derived from
(a clip or redacted copy of a held master is kept with it), or when it is evidence on an open
case. A hold covers a recording when

1. it names the recording (``Hold.recording_id``), or
2. it names a case the recording is linked to (``Hold.case_id``), or
3. it names the recording's source and a capture window that overlaps the recording. Windows
   are half-open, ``[window_start, window_end)``; a recording without an end time is the
   instant it started. A window that ends where a recording starts, or starts where it ends,
   does not cover it.

Both forms the vault asks for follow these rules, with the window rule (:func:`overlaps`)
written once: :func:`held_clause`, an SQL condition on ``Recording`` (listings, search,
retention), built from the holds' side so that it reads only what is held; and
:func:`active_holds`, the list of holds that keep one recording and why (retention reports,
storage legal holds). ``tests/vault/test_hold_rule.py`` checks that the two agree. Until issue #14 the
two were written separately and disagreed: the SQL form ignored the parent rule and counted a
window that only touched a recording's end. Placing and releasing holds, which are custody
events, live in :mod:`vault.casework.holds`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from vault.storage.catalog import Case, CaseRecording, CaseStatus, Hold, HoldKind, Recording


def overlaps(start: Any, end: Any) -> ColumnElement[bool]:
    """True for a ``Recording`` whose capture overlaps ``[start, end)`` (values or columns)."""
    return and_(
        Recording.captured_start < end,
        or_(
            and_(Recording.captured_end.is_(None), Recording.captured_start >= start),
            Recording.captured_end > start,
        ),
    )


def covers() -> ColumnElement[bool]:
    """True for a ``Hold`` and a ``Recording`` (both in the enclosing query) when the hold is
    unreleased and covers the recording itself (rules 1-3 above; not its parents)."""
    return and_(
        Hold.released_at.is_(None),
        or_(
            Hold.recording_id == Recording.id,
            Hold.case_id.in_(
                select(CaseRecording.case_id)
                .where(CaseRecording.recording_id == Recording.id)
                .correlate(Recording)  # the outer recording, not every recording
            ),
            and_(Hold.source_id == Recording.source_id, overlaps(Hold.window_start, Hold.window_end)),
        ),
    )


def held_clause() -> ColumnElement[bool]:
    """True for a ``Recording`` that something keeps now: a hold on it or on a recording it was
    derived from (any number of generations), or an open case it or an ancestor is on.

    The held set is built from the holds and open-case links (a council has a few thousand),
    each branch reaching recordings through an index (the hold's recording, the case's links,
    the source and capture start), then down ``parent_id`` to the copies. Asking "does a hold
    cover this recording?" of every recording instead made each search and retention round
    read the whole catalog, deleted rows included (issue #15)."""
    active = Hold.released_at.is_(None)
    named = select(Hold.recording_id.label("id")).where(active, Hold.recording_id.is_not(None))
    by_case_hold = (
        select(CaseRecording.recording_id.label("id"))
        .join(Hold, Hold.case_id == CaseRecording.case_id)
        .where(active)
    )
    by_window = (
        select(Recording.id.label("id"))
        .join(Hold, Hold.source_id == Recording.source_id)
        .where(active, overlaps(Hold.window_start, Hold.window_end))
    )
    by_open_case = (
        select(CaseRecording.recording_id.label("id"))
        .join(Case, Case.id == CaseRecording.case_id)
        .where(Case.status == CaseStatus.OPEN)
    )
    directly = named.union(by_case_hold, by_window, by_open_case).subquery("directly_held")
    held = select(directly.c.id).cte("held_recordings", recursive=True)
    # Down to every copy; UNION (not UNION ALL) drops repeats, so even a corrupt parent cycle ends.
    children = select(Recording.id.label("id")).join(held, Recording.parent_id == held.c.id)
    held = held.union(children)
    return Recording.id.in_(select(held.c.id))


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


def active_holds(session: Session, recording: Recording) -> list[Hold]:
    """The unreleased holds that keep ``recording``: its own, its cases', its windows', those
    of each recording it was derived from, and, as a hold of its own, each **open case** it or
    an ancestor is evidence on (:func:`open_case_holds`). Empty exactly when
    :func:`held_clause` is false for the recording."""
    holds: list[Hold] = []
    seen: set[str] = set()
    current: Recording | None = recording
    while current is not None and current.id not in seen:
        seen.add(current.id)
        holds.extend(session.scalars(
            select(Hold).join(Recording, Recording.id == current.id).where(covers())
        ))
        # An explicit hold on the same case already says why; one line per reason.
        explicit = {h.case_id for h in holds if h.case_id is not None}
        holds.extend(h for h in open_case_holds(session, current.id) if h.case_id not in explicit)
        current = session.get(Recording, current.parent_id) if current.parent_id else None
    return holds


def is_held(session: Session, recording: Recording) -> bool:
    """Whether anything keeps ``recording`` past its retention date now."""
    return bool(active_holds(session, recording))


__all__ = [
    "active_holds", "covers", "held_clause", "is_held", "open_case_holds",
    "overlaps",
]
