"""Subject access requests (UK GDPR Art. 15): register, hold the footage, extend, disclose, close.

The lifecycle
    1. ``register_sar``: the requester, the date received and the deadline, one calendar month
       later (:func:`due_date`).
    2. ``attach_window``: a camera and a time window the requester describes. This places a SAR
       hold (``vault/casework/holds.py``) at once, so the 23-day deletion cannot destroy the footage
       while the request is answered; footage that arrives later in the window is held too.
    3. redaction jobs cut each held window and make a copy of it with third parties blurred
       and the requester kept visible; ``record_disclosure`` records which copies went to
       the requester, when and how, and refuses an unredacted recording or footage outside
       the windows unless an override reason is given (and logged).
    4. ``close_sar`` (or refusing it) releases its holds: footage past its retention date goes
       on the next retention run.
Every step is a custody event (``sar.*``; the holds add their own ``held``/``released``).

The deadline (ICO guidance, "Time limits for responding")
    Day one is the day of receipt; the deadline is the corresponding calendar date in the next
    month, or the last day of that month when it has no such date (received 31 January: due 28
    or 29 February). It may be extended by up to two further months when the request is complex
    or one of several, with a reason. Weekends and bank holidays are not skipped, so the date
    shown is never later than the legal one.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ColumnElement, Date, Enum, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from vault.actors import Actor
from vault.ledger.events import SarClosed, SarExtended, SarRegistered, SarWindowAttached
from vault.storage.catalog import Base, Hold, HoldKind, MediaKind, Recording, Source, new_id, utcnow
from vault.errors import InvalidInput, NotFound
from vault.storage.db import get_or_not_found
from .holds import covered_recordings, place_hold, release_hold

if TYPE_CHECKING:
    from vault.vault import Vault

__all__ = [
    "MAX_EXTENSION_MONTHS",
    "DisclosureNeedsOverride",
    "SarDisclosure",
    "SarStatus",
    "SarView",
    "SarWindow",
    "SubjectAccessRequest",
    "add_months",
    "attach_window",
    "close_sar",
    "due_date",
    "due_soon",
    "extend_sar",
    "get_sar",
    "list_sars",
    "record_disclosure",
    "redaction_windows",
    "register_sar",
    "sar_recordings",
]

RESPONSE_MONTHS = 1
MAX_EXTENSION_MONTHS = 2
#: Custody actions (dotted extension names).
REGISTERED = "sar.registered"
WINDOW_ATTACHED = "sar.window_attached"
EXTENDED = "sar.extended"
DISCLOSED = "sar.disclosed"
CLOSED = "sar.closed"


class SarStatus(str, enum.Enum):
    OPEN = "open"
    EXTENDED = "extended"
    DISCLOSED = "disclosed"
    CLOSED = "closed"
    REFUSED = "refused"


ACTIVE = (SarStatus.OPEN, SarStatus.EXTENDED, SarStatus.DISCLOSED)  # still holding footage
PENDING = (SarStatus.OPEN, SarStatus.EXTENDED)  # still owed a response


class SubjectAccessRequest(Base):
    """One subject access request."""

    __tablename__ = "subject_access_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    reference: Mapped[str] = mapped_column(String(128), unique=True)
    requester_name: Mapped[str] = mapped_column(String(256))
    requester_contact: Mapped[str | None] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text)
    received_on: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date] = mapped_column(Date)  # one calendar month after receipt
    extension_months: Mapped[int] = mapped_column(Integer, default=0)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[SarStatus] = mapped_column(
        Enum(SarStatus, native_enum=False, length=16), default=SarStatus.OPEN, index=True
    )
    created_by: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(256))
    close_reason: Mapped[str | None] = mapped_column(Text)
    # The organisation whose request it is (its IG team's); no other organisation sees it.
    organisation: Mapped[str | None] = mapped_column(String(256), index=True)

    @property
    def deadline(self) -> dt.date:
        """The response deadline, extensions included."""
        return add_months(self.received_on, RESPONSE_MONTHS + self.extension_months)


class SarWindow(Base):
    """A source and capture window attached to a request, and the SAR hold it placed."""

    __tablename__ = "sar_windows"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sar_id: Mapped[str] = mapped_column(ForeignKey("subject_access_requests.id"), index=True)
    hold_id: Mapped[str] = mapped_column(ForeignKey("holds.id"))
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    window_start: Mapped[dt.datetime]
    window_end: Mapped[dt.datetime]
    note: Mapped[str | None] = mapped_column(Text)
    added_by: Mapped[str | None] = mapped_column(String(256))
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SarDisclosure(Base):
    """What was disclosed to the requester, when and how."""

    __tablename__ = "sar_disclosures"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sar_id: Mapped[str] = mapped_column(ForeignKey("subject_access_requests.id"), index=True)
    recording_ids: Mapped[list[str]] = mapped_column(JSON)
    method: Mapped[str] = mapped_column(String(256))
    notes: Mapped[str | None] = mapped_column(Text)
    disclosed_at: Mapped[dt.datetime]
    disclosed_by: Mapped[str | None] = mapped_column(String(256))
    # Why an unredacted recording, or footage outside the request's windows, went anyway.
    override_reason: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class SarView:
    """A request with its windows (and whether each hold is still active) and disclosures."""

    sar: SubjectAccessRequest
    windows: list[tuple[SarWindow, Hold]]
    disclosures: list[SarDisclosure]


# --- the deadline ----------------------------------------------------------------------------


def add_months(day: dt.date, months: int) -> dt.date:
    """The corresponding calendar date ``months`` later, or that month's last day if it has
    none (31 January + 1 month = 28 or 29 February)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def due_date(received_on: dt.date, extension_months: int = 0) -> dt.date:
    """When a request received on ``received_on`` must be answered (ICO: one calendar month,
    plus up to two further months when extended)."""
    if not 0 <= extension_months <= MAX_EXTENSION_MONTHS:
        raise InvalidInput(f"a request may be extended by at most {MAX_EXTENSION_MONTHS} months")
    return add_months(received_on, RESPONSE_MONTHS + extension_months)


# --- operations ------------------------------------------------------------------------------


def _text(name: str, value: str | None, limit: int, *, required: bool = False) -> str | None:
    value = (value or "").strip() or None
    if value is None and required:
        raise InvalidInput(f"a subject access request needs a {name}")
    if value is not None and len(value) > limit:
        raise InvalidInput(f"the {name} is longer than {limit} characters")
    return value


def _load(session: Any, sar_id: str) -> SubjectAccessRequest:
    sar = session.get(SubjectAccessRequest, sar_id)
    if sar is None:
        sar = session.scalars(
            select(SubjectAccessRequest).where(SubjectAccessRequest.reference == sar_id)
        ).first()
    if sar is None:
        raise NotFound(f"no subject access request {sar_id}")
    return sar  # type: ignore[no-any-return]


def _require_active(sar: SubjectAccessRequest, doing: str) -> None:
    if sar.status not in ACTIVE:
        raise InvalidInput(f"subject access request {sar.reference} is {sar.status.value}; cannot {doing}")


def register_sar(
    vault: Vault,
    *,
    reference: str,
    requester_name: str,
    received_on: dt.date,
    actor: Actor,
    requester_contact: str | None = None,
    description: str | None = None,
) -> SubjectAccessRequest:
    """Register a request; its deadline is one calendar month after ``received_on``.

    Raises InvalidInput (empty reference or name, a receipt date in the future, a reference
    already used).
    """
    ref = _text("reference", reference, 128, required=True)
    name = _text("requester name", requester_name, 256, required=True)
    assert ref is not None and name is not None
    if received_on > vault.clock().date():
        raise InvalidInput(f"a request cannot be received in the future ({received_on})")
    with vault.sessions.begin() as session:
        if session.scalars(
            select(SubjectAccessRequest.id).where(SubjectAccessRequest.reference == ref)
        ).first():
            raise InvalidInput(f"a subject access request {ref} already exists")
        sar = SubjectAccessRequest(
            reference=ref,
            requester_name=name,
            requester_contact=_text("requester contact", requester_contact, 512),
            description=_text("description", description, 4000),
            received_on=received_on,
            due_on=due_date(received_on),
            extension_months=0,
            status=SarStatus.OPEN,
            created_by=actor.user,
            created_at=vault.clock(),
            organisation=actor.organisation,
        )
        session.add(sar)
        session.flush()
        # The requester's name and contact stay in the table, which can be erased later; the
        # permanent custody log carries only the reference.
        vault.ledger.append(
            session, REGISTERED, actor=actor, reference=ref, object_ids=[sar.id],
            details=SarRegistered(
                sar_id=sar.id, received_on=received_on.isoformat(), due_on=sar.due_on.isoformat(),
            ),
        )
    vault.checkpoint_if_due()
    return sar


def attach_window(
    vault: Vault,
    sar_id: str,
    *,
    source_id: str,
    start: dt.datetime,
    end: dt.datetime,
    actor: Actor,
    note: str | None = None,
) -> SarWindow:
    """Attach a camera and capture window to an active request, holding the matching footage
    (including footage that arrives later) until the request closes.

    Raises NotFound (request, source), InvalidInput (closed request, bad window).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("window times must include a timezone (e.g. 2026-11-25T14:32:00Z)")
    if end <= start:
        raise InvalidInput("a window must end after it starts")
    with vault.sessions() as session:
        sar = _load(session, sar_id)
        _require_active(sar, "attach footage")
        if session.get(Source, source_id) is None:
            raise NotFound(f"no source {source_id}: attach windows on cameras or devices the vault knows")
    hold = place_hold(
        vault, kind=HoldKind.SAR, reason=f"subject access request {sar.reference}",
        actor=actor, reference=sar.reference, source_id=source_id, window=(start, end),
        organisation=sar.organisation,
    )
    with vault.sessions.begin() as session:
        window = SarWindow(
            sar_id=sar.id, hold_id=hold.id, source_id=source_id, window_start=start,
            window_end=end, note=_text("note", note, 2000), added_by=actor.user,
            added_at=vault.clock(),
        )
        session.add(window)
        session.flush()
        held = covered_recordings(session, hold)
        vault.ledger.append(
            session, WINDOW_ATTACHED, actor=actor, reference=sar.reference,
            object_ids=[sar.id] + [r.id for r in held],
            details=SarWindowAttached(
                sar_id=sar.id, hold_id=hold.id, source=source_id,
                window=[start.isoformat(), end.isoformat()], recordings=len(held),
            ),
        )
    vault.checkpoint_if_due()
    return window


def extend_sar(vault: Vault, sar_id: str, *, months: int, reason: str, actor: Actor) -> SubjectAccessRequest:
    """Extend the deadline by ``months`` (at most two in all), with the reason. Returns the
    request. Raises NotFound, InvalidInput (no reason, too long, closed or disclosed)."""
    why = _text("reason for the extension", reason, 2000, required=True)
    if months < 1:
        raise InvalidInput("extend by at least one month")
    with vault.sessions.begin() as session:
        sar = _load(session, sar_id)
        if sar.status not in PENDING:
            raise InvalidInput(f"subject access request {sar.reference} is {sar.status.value}; cannot extend it")
        total = sar.extension_months + months
        if total > MAX_EXTENSION_MONTHS:
            raise InvalidInput(
                f"a request may be extended by at most {MAX_EXTENSION_MONTHS} further months "
                f"({sar.reference} is already extended by {sar.extension_months})")
        sar.extension_months = total
        sar.extension_reason = why if not sar.extension_reason else f"{sar.extension_reason}; {why}"
        sar.status = SarStatus.EXTENDED
        vault.ledger.append(
            session, EXTENDED, actor=actor, reference=sar.reference, object_ids=[sar.id],
            details=SarExtended(
                sar_id=sar.id, months=months, extension_months=total,
                deadline=sar.deadline.isoformat(), reason=why,
            ),
        )
    vault.checkpoint_if_due()
    return sar


class DisclosureNeedsOverride(InvalidInput):
    """A disclosure to a requester that would hand over an unredacted recording, or footage
    outside the request's windows, and states no override reason.

    ``unredacted`` and ``outside_windows`` name the recordings at fault (ids).
    """

    def __init__(self, message: str, *, unredacted: list[str], outside_windows: list[str]) -> None:
        super().__init__(message)
        self.unredacted = unredacted
        self.outside_windows = outside_windows


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _within(recording: Recording, windows: Sequence[SarWindow]) -> bool:
    """Whether the whole capture of ``recording`` lies in one window of its source. A
    recording whose end is unknown cannot be shown to lie inside."""
    if recording.captured_end is None:
        return False
    start, end = _utc(recording.captured_start), _utc(recording.captured_end)
    return any(
        w.source_id == recording.source_id
        and _utc(w.window_start) <= start and end <= _utc(w.window_end)
        for w in windows
    )


def _is_redacted(recording: Recording) -> bool:
    return (recording.provenance or {}).get("kind") == "redaction"


def record_disclosure(
    vault: Vault,
    sar_id: str,
    *,
    recording_ids: Sequence[str],
    method: str,
    actor: Actor,
    notes: str | None = None,
    override_reason: str | None = None,
) -> SarDisclosure:
    """Record that these recordings (redacted copies of the request's windows) were disclosed
    to the requester, and how. Returns the disclosure.

    The safety rails: every recording must be a redacted copy (third parties masked) whose
    whole capture lies inside one of the request's windows, on the window's source. A
    recording that is not (an unredacted master or clip; a copy of a whole recording that
    runs past the window; footage of another camera) is accepted only with
    ``override_reason`` (e.g. "the requester is alone in frame"), which the ``sar.disclosed``
    event and the disclosure record carry with the ids it covered.

    Raises NotFound (request, recording), DisclosureNeedsOverride (a rail crossed with no
    reason), InvalidInput (no recordings, closed request, an over-long reason).
    """
    how = _text("disclosure method", method, 256, required=True)
    override = _text("override reason", override_reason, 2000)
    ids = list(dict.fromkeys(recording_ids))
    if not ids:
        raise InvalidInput("name the recordings disclosed")
    with vault.sessions.begin() as session:
        sar = _load(session, sar_id)
        _require_active(sar, "record a disclosure")
        recordings = []
        for rid in ids:
            recording = get_or_not_found(session, Recording, rid, noun="recording")
            recordings.append(recording)
        windows = list(session.scalars(select(SarWindow).where(SarWindow.sar_id == sar.id)))
        unredacted = [r.id for r in recordings if not _is_redacted(r)]
        outside = [r.id for r in recordings if not _within(r, windows)]
        if (unredacted or outside) and override is None:
            problems = []
            if unredacted:
                problems.append(f"not redacted: {', '.join(unredacted)}")
            if outside:
                problems.append(f"not inside the request's windows: {', '.join(outside)}")
            raise DisclosureNeedsOverride(
                f"disclosure to the requester of {sar.reference} refused ({'; '.join(problems)}): "
                "disclose redacted copies of the held windows (POST /sars/{id}/redaction-jobs), or "
                "state why these may go as they are (override_reason); nothing was recorded",
                unredacted=unredacted, outside_windows=outside,
            )
        crossed = bool(unredacted or outside)
        disclosure = SarDisclosure(
            sar_id=sar.id, recording_ids=ids, method=how, notes=_text("notes", notes, 4000),
            disclosed_at=vault.clock(), disclosed_by=actor.user,
            override_reason=override if crossed else None,
        )
        session.add(disclosure)
        sar.status = SarStatus.DISCLOSED
        session.flush()
        details: dict[str, Any] = {
            "sar_id": sar.id, "disclosure_id": disclosure.id, "method": how,
            "redacted_copies": [r.id for r in recordings if r.parent_id is not None],
        }
        if crossed:
            details["override"] = {"reason": override, "unredacted": unredacted,
                                   "outside_windows": outside}
        vault.ledger.append(
            session, DISCLOSED, actor=actor, reference=sar.reference,
            # The permanent log names the requester by the request only: their name stays in the
            # request's row, which can be erased when the request's own retention ends.
            recipient=f"the requester of {sar.reference}", object_ids=ids,
            hashes={r.id: r.sha256 for r in recordings}, details=details,
        )
    vault.checkpoint_if_due()
    return disclosure


def close_sar(
    vault: Vault, sar_id: str, *, reason: str, actor: Actor, refused: bool = False
) -> SubjectAccessRequest:
    """Close (or refuse) a request and release its holds: footage past its retention date goes
    on the next retention run. Returns the request. Raises NotFound, InvalidInput (closed)."""
    why = _text("reason", reason, 2000, required=True)
    with vault.sessions() as session:
        sar = _load(session, sar_id)
        _require_active(sar, "close it again")
        hold_ids = list(session.scalars(
            select(SarWindow.hold_id).join(Hold, Hold.id == SarWindow.hold_id)
            .where(SarWindow.sar_id == sar.id, Hold.released_at.is_(None))
        ))
    for hold_id in hold_ids:
        release_hold(vault, hold_id, actor=actor, sar_closing=True,
                     reason=f"subject access request {sar.reference} closed: {why}")
    with vault.sessions.begin() as session:
        sar = _load(session, sar.id)
        sar.status = SarStatus.REFUSED if refused else SarStatus.CLOSED
        sar.closed_at = vault.clock()
        sar.closed_by = actor.user
        sar.close_reason = why
        vault.ledger.append(
            session, CLOSED, actor=actor, reference=sar.reference, object_ids=[sar.id],
            details=SarClosed(
                sar_id=sar.id, status=sar.status.value, reason=why, holds_released=hold_ids,
            ),
        )
    vault.checkpoint_if_due()
    return sar


# --- reading ---------------------------------------------------------------------------------


def get_sar(vault: Vault, sar_id: str) -> SarView:
    """A request (by id or reference) with its windows and disclosures. Raises NotFound."""
    with vault.sessions() as session:
        sar = _load(session, sar_id)
        windows = [(w, h) for w, h in session.execute(
            select(SarWindow, Hold).join(Hold, Hold.id == SarWindow.hold_id)
            .where(SarWindow.sar_id == sar.id).order_by(SarWindow.added_at, SarWindow.id)
        )]
        disclosures = list(session.scalars(
            select(SarDisclosure).where(SarDisclosure.sar_id == sar.id)
            .order_by(SarDisclosure.disclosed_at, SarDisclosure.id)
        ))
    return SarView(sar=sar, windows=windows, disclosures=disclosures)


def sar_recordings(vault: Vault, sar_id: str) -> list[Recording]:
    """The footage a request covers: the live original recordings (not derived copies, not
    audio-only) that its windows hold, oldest capture first. Raises NotFound."""
    with vault.sessions() as session:
        sar = _load(session, sar_id)
        found: dict[str, Recording] = {}
        for _window, hold in session.execute(
            select(SarWindow, Hold).join(Hold, Hold.id == SarWindow.hold_id)
            .where(SarWindow.sar_id == sar.id)
        ):
            for recording in covered_recordings(session, hold):
                if recording.parent_id is None and recording.media_kind != MediaKind.AUDIO:
                    found[recording.id] = recording
    return sorted(found.values(), key=lambda r: (r.captured_start, r.id))


def redaction_windows(vault: Vault, sar_id: str) -> list[tuple[SarWindow, list[Recording]]]:
    """The request's windows still held, each with the live original video recordings it
    covers (oldest first): what a SAR redaction job cuts and redacts, window by window, so
    that nothing outside a window is rendered or disclosed. Windows holding no video are
    left out. Raises NotFound."""
    with vault.sessions() as session:
        sar = _load(session, sar_id)
        found: list[tuple[SarWindow, list[Recording]]] = []
        for window, hold in session.execute(
            select(SarWindow, Hold).join(Hold, Hold.id == SarWindow.hold_id)
            .where(SarWindow.sar_id == sar.id, Hold.released_at.is_(None))
            .order_by(SarWindow.window_start, SarWindow.id)
        ):
            videos = sorted(
                (r for r in covered_recordings(session, hold)
                 if r.parent_id is None and r.media_kind != MediaKind.AUDIO),
                key=lambda r: (r.captured_start, r.id))
            if videos:
                found.append((window, videos))
    return found


def list_sars(
    vault: Vault,
    *,
    status: SarStatus | None = None,
    due_within_days: int | None = None,
    now: dt.datetime | None = None,
    scope: ColumnElement[bool] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[SubjectAccessRequest]:
    """Requests, soonest deadline first, within ``scope`` (:func:`vault.casework.policy.visible_sars`).
    With ``due_within_days``, only those still owed a response whose deadline is at most that
    many days after ``now`` (overdue ones included)."""
    query = select(SubjectAccessRequest)
    if scope is not None:
        query = query.where(scope)
    if status is not None:
        query = query.where(SubjectAccessRequest.status == status)
    with vault.sessions() as session:
        rows = list(session.scalars(query))
    if due_within_days is not None:
        if due_within_days < 0:
            raise InvalidInput("due_within_days must not be negative")
        today = (now or vault.clock()).date()
        horizon = today + dt.timedelta(days=due_within_days)
        rows = [r for r in rows if r.status in PENDING and r.deadline <= horizon]
    rows.sort(key=lambda r: (r.status not in PENDING, r.deadline, r.reference))
    return rows[offset:offset + limit]


def due_soon(vault: Vault, within_days: int, now: dt.datetime | None = None) -> list[SubjectAccessRequest]:
    """Requests still owed a response whose deadline falls within ``within_days`` of ``now``
    (the vault's clock by default), overdue ones first."""
    return list_sars(vault, due_within_days=within_days, now=now, limit=1_000_000)
