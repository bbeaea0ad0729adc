"""Subject access request routes: register, list (``due_within_days``), read, attach a camera
window (which holds the footage at once), plan redactions of the footage it covers, extend,
record a disclosure, close.

Information-governance officers and administrators only (``sars.read``/``sars.write`` in
:mod:`vault.casework.policy`). Every change is a custody event under the request's reference
(:mod:`vault.casework.sar`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, Field, StringConstraints

from vault.casework import sar as sars
from vault.actors import Purpose
from vault.errors import InvalidInput
from vault.casework.jobs import Job, JobKind, JobQueue
from vault.casework.policy import (
    Permission,
    visible_sars,
)
from vault.casework.sar import MAX_EXTENSION_MONTHS, SarStatus, SarView, SubjectAccessRequest

from ..deps import ContextDep, RequestContext
from ..errors import responses
from ..jobs import JobQueueDep
from ..schemas import UUID_PATTERN, Id, Instant, LongText, ShortText, _Model
from .jobs import JobPublic, MaskParams

router = APIRouter(tags=["subject access requests"])

SarId = Annotated[str, Path(pattern=UUID_PATTERN, description="Subject access request id (UUID).")]


class SarCreate(_Model):
    """A request as received."""

    reference: Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
    requester_name: ShortText
    requester_contact: Annotated[str, StringConstraints(max_length=512)] | None = None
    received_on: dt.date = Field(description="Day of receipt (day one of the month to respond).")
    description: Annotated[str, StringConstraints(max_length=4000)] | None = Field(
        None, description="How the requester describes themselves and the occasion.")


class SarWindowCreate(_Model):
    """A camera or device and a capture window; the matching footage is held at once."""

    source_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    start: Instant
    end: Instant
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class SarExtend(_Model):
    """Extend the deadline (at most two further months in all), with the reason."""

    months: int = Field(ge=1, le=MAX_EXTENSION_MONTHS)
    reason: LongText


class SarDisclosureCreate(_Model):
    """Recordings (redacted copies of the request's windows) disclosed to the requester, and how."""

    recording_ids: list[Id] = Field(min_length=1, max_length=1000)
    method: ShortText = Field(description="How, e.g. 'secure download link', 'encrypted USB'.")
    notes: Annotated[str, StringConstraints(max_length=4000)] | None = None
    override_reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = Field(
        default=None,
        description="Required to disclose a recording that is not a redacted copy, or footage "
        "not wholly inside one of the request's windows: why it may go as it is (logged with "
        "the ids it covers). Without it such a disclosure is refused (400) and nothing is "
        "recorded.")


class SarClose(_Model):
    """Close the request (or refuse it); its holds are released."""

    reason: LongText
    refused: bool = False


class SarWindowPublic(BaseModel):
    id: str
    hold_id: str
    source_id: str
    start: dt.datetime
    end: dt.datetime
    note: str | None
    held: bool = Field(description="Whether its hold is still active.")
    added_by: str | None
    added_at: dt.datetime


class SarDisclosurePublic(BaseModel):
    id: str
    recording_ids: list[str]
    method: str
    notes: str | None
    disclosed_at: dt.datetime
    disclosed_by: str | None
    override_reason: str | None = Field(
        description="Why an unredacted recording or footage outside the windows went anyway.")


class SarPublic(BaseModel):
    """A subject access request."""

    id: str
    reference: str
    requester_name: str
    requester_contact: str | None
    description: str | None
    received_on: dt.date
    due_on: dt.date = Field(description="One calendar month after receipt.")
    deadline: dt.date = Field(description="The deadline with any extension.")
    extension_months: int
    extension_reason: str | None
    status: SarStatus
    created_by: str | None
    created_at: dt.datetime
    closed_at: dt.datetime | None
    closed_by: str | None
    close_reason: str | None

    @classmethod
    def of(cls, s: SubjectAccessRequest) -> SarPublic:
        return cls(
            id=s.id, reference=s.reference, requester_name=s.requester_name,
            requester_contact=s.requester_contact, description=s.description,
            received_on=s.received_on, due_on=s.due_on, deadline=s.deadline,
            extension_months=s.extension_months, extension_reason=s.extension_reason,
            status=s.status, created_by=s.created_by, created_at=s.created_at,
            closed_at=s.closed_at, closed_by=s.closed_by, close_reason=s.close_reason,
        )


class SarDetail(SarPublic):
    """A request with its windows and disclosures."""

    windows: list[SarWindowPublic]
    disclosures: list[SarDisclosurePublic]

    @classmethod
    def of_view(cls, view: SarView) -> SarDetail:
        return cls(
            **SarPublic.of(view.sar).model_dump(),
            windows=[
                SarWindowPublic(
                    id=w.id, hold_id=w.hold_id, source_id=w.source_id, start=w.window_start,
                    end=w.window_end, note=w.note, held=h.released_at is None,
                    added_by=w.added_by, added_at=w.added_at,
                )
                for w, h in view.windows
            ],
            disclosures=[
                SarDisclosurePublic(
                    id=d.id, recording_ids=list(d.recording_ids), method=d.method, notes=d.notes,
                    disclosed_at=d.disclosed_at, disclosed_by=d.disclosed_by,
                    override_reason=d.override_reason,
                )
                for d in view.disclosures
            ],
        )


def _detail(vault, sar_id: str) -> SarDetail:  # type: ignore[no-untyped-def]
    return SarDetail.of_view(sars.get_sar(vault, sar_id))


@router.post(
    "/sars",
    summary="Register a subject access request",
    description="Due one calendar month after receipt (the corresponding date, or the month's "
    "last day). Logged as `sar.registered`.",
    status_code=status.HTTP_201_CREATED,
    response_model=SarDetail,
    responses=responses(400, 401, 403),
)
def register(ctx: ContextDep, body: SarCreate) -> SarDetail:
    ctx.require(Permission.SAR_WRITE)
    sar = sars.register_sar(
        ctx.vault, reference=body.reference, requester_name=body.requester_name,
        requester_contact=body.requester_contact, received_on=body.received_on,
        description=body.description, actor=ctx.principal.actor,
    )
    return _detail(ctx.vault, sar.id)


@router.get(
    "/sars",
    summary="List subject access requests",
    description="Soonest deadline first. `due_within_days=N`: only requests still owed a response "
    "whose deadline is within N days (overdue ones included).",
    response_model=list[SarPublic],
    responses=responses(400, 401, 403),
)
def list_requests(
    ctx: ContextDep,
    due_within_days: Annotated[int | None, Query(ge=0, le=3660)] = None,
    status_: Annotated[SarStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[SarPublic]:
    ctx.require(Permission.SAR_READ)
    rows = sars.list_sars(ctx.vault, status=status_, due_within_days=due_within_days,
                          scope=visible_sars(ctx.principal), limit=limit, offset=offset)
    return [SarPublic.of(s) for s in rows]


@router.get(
    "/sars/{sar_id}",
    summary="Subject access request details",
    description="A request with its camera windows (and whether each is still held) and "
    "disclosures.",
    response_model=SarDetail,
    responses=responses(401, 403, 404),
)
def get_request(ctx: ContextDep, sar_id: SarId) -> SarDetail:
    ctx.require_sar(Permission.SAR_READ, sar_id)
    return _detail(ctx.vault, sar_id)


@router.post(
    "/sars/{sar_id}/windows",
    summary="Attach a camera window",
    description="Hold the footage of a source in a capture window until the request closes "
    "(footage arriving later in the window is held too). Logged as `held` and "
    "`sar.window_attached`.",
    status_code=status.HTTP_201_CREATED,
    response_model=SarDetail,
    responses=responses(400, 401, 403, 404),
)
def attach(
    ctx: ContextDep, sar_id: SarId, body: SarWindowCreate
) -> SarDetail:
    ctx.require_sar(Permission.SAR_WRITE, sar_id)
    ctx.require_source(Permission.HOLD_PLACE, body.source_id)
    sars.attach_window(ctx.vault, sar_id, source_id=body.source_id, start=body.start, end=body.end,
                       note=body.note, actor=ctx.principal.actor)
    return _detail(ctx.vault, sar_id)


@router.post(
    "/sars/{sar_id}/extend",
    summary="Extend the deadline",
    description="By up to two further months in all, with the reason. Logged as `sar.extended`.",
    response_model=SarDetail,
    responses=responses(400, 401, 403, 404),
)
def extend(
    ctx: ContextDep, sar_id: SarId, body: SarExtend
) -> SarDetail:
    ctx.require_sar(Permission.SAR_WRITE, sar_id)
    sars.extend_sar(ctx.vault, sar_id, months=body.months, reason=body.reason, actor=ctx.principal.actor)
    return _detail(ctx.vault, sar_id)


@router.post(
    "/sars/{sar_id}/disclosures",
    summary="Record a disclosure",
    description="Which recordings went to the requester, and how. Each must be a redacted "
    "copy wholly inside one of the request's windows (as `POST /sars/{id}/redaction-jobs` "
    "makes them); an unredacted recording, or footage outside the windows, is refused (400, "
    "naming the ids) unless `override_reason` says why it may go, which is logged. Logged as "
    "`sar.disclosed` with their hashes and the requester as recipient.",
    status_code=status.HTTP_201_CREATED,
    response_model=SarDetail,
    responses=responses(400, 401, 403, 404),
)
def disclose(
    ctx: ContextDep, sar_id: SarId,
    body: SarDisclosureCreate,
) -> SarDetail:
    ctx.require_sar(Permission.SAR_WRITE, sar_id)
    sars.record_disclosure(ctx.vault, sar_id, recording_ids=body.recording_ids, method=body.method,
                           notes=body.notes, override_reason=body.override_reason,
                           actor=ctx.principal.actor)
    return _detail(ctx.vault, sar_id)


class SarRedactions(_Model):
    """How the request's footage is to be redacted."""

    mask: MaskParams = MaskParams()
    caption: str | None = Field(
        default=None, max_length=200,
        description="Burned into every frame of the copies; default 'REDACTED COPY <reference>'.")


class SarRedactionJobs(BaseModel):
    """The plan jobs queued, one per held window."""

    sar_id: str
    jobs: list[JobPublic]


@router.post(
    "/sars/{sar_id}/redaction-jobs",
    summary="Plan redactions of the request's footage",
    description="Queue one redaction-plan job per window the request still holds: the job "
    "cuts exactly that window from the camera's footage (across segments; stored as a clip, a "
    "derived recording) and plans the redaction of the cut only, never the rest of the "
    "recordings. Then, per job: review the plan and mark the requester's track to keep "
    "visible (`PUT /jobs/{id}/plan`), render it (`POST /jobs/{id}/render`), and record the "
    "disclosure here. The purpose logged with each job is the request itself (reference, "
    "UK GDPR Article 15).",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SarRedactionJobs,
    responses=responses(400, 401, 403, 404),
)
def plan_redactions(
    ctx: ContextDep, queue: JobQueueDep,
    sar_id: SarId, body: SarRedactions,
) -> SarRedactionJobs:
    request, jobs = queue_sar_redactions(ctx, queue, sar_id, mask=body.mask,
                                         caption=body.caption)
    return SarRedactionJobs(sar_id=request.id, jobs=[JobPublic.of(j) for j in jobs])


def queue_sar_redactions(
    ctx: RequestContext, queue: JobQueue, sar_id: str, *,
    mask: MaskParams | None = None, caption: str | None = None,
) -> tuple[SubjectAccessRequest, list[Job]]:
    """Queue one redaction-plan job per window the request still holds (the route above and
    the web app's SAR workspace both call this). Returns the request and the jobs.

    Decides as the route documents: ``sars.write`` on the request, then ``recordings.download``
    on every recording a window holds (cutting decrypts them); the purpose logged with each
    job is the request itself. Raises AccessDenied (logged), NotFound, InvalidInput (no video
    held yet).
    """
    ctx.require_sar(Permission.SAR_WRITE, sar_id)
    request = sars.get_sar(ctx.vault, sar_id).sar
    windows = sars.redaction_windows(ctx.vault, request.id)
    if not windows:
        raise InvalidInput(f"subject access request {request.reference} holds no video yet: "
                           "attach a camera window first (POST /sars/{id}/windows)")
    for _, recordings in windows:
        for recording in recordings:
            # Cutting decrypts the footage: the caller must be allowed to, recording by recording.
            ctx.require_recording(Permission.DOWNLOAD, recording.id)
    purpose = sar_purpose(request)
    jobs = [
        queue.submit(JobKind.REDACTION_PLAN, actor=ctx.principal.actor, purpose=purpose, vault=ctx.vault,
                     params={"recording_ids": [r.id for r in recordings],
                             "window": {"source_id": window.source_id,
                                        "start": window.window_start.isoformat(),
                                        "end": window.window_end.isoformat(),
                                        "sar_window_id": window.id},
                             "mask": (mask or MaskParams()).model_dump(mode="json"),
                             "keep_tracks": [],
                             "caption": caption or f"REDACTED COPY {request.reference}"})
        for window, recordings in windows
    ]
    return request, jobs


def sar_purpose(request: SubjectAccessRequest) -> Purpose:
    """The purpose logged when a request's footage is touched: the request itself."""
    return Purpose(purpose=f"subject access request {request.reference}",
                   lawful_basis="UK GDPR Article 15", reference=request.reference)


@router.post(
    "/sars/{sar_id}/close",
    summary="Close or refuse a request",
    description="Releases its holds: footage past its retention date goes on the next retention "
    "run. Logged as `released` per hold and `sar.closed`.",
    response_model=SarDetail,
    responses=responses(400, 401, 403, 404),
)
def close(
    ctx: ContextDep, sar_id: SarId, body: SarClose
) -> SarDetail:
    ctx.require_sar(Permission.SAR_WRITE, sar_id)
    sars.close_sar(ctx.vault, sar_id, reason=body.reason, refused=body.refused, actor=ctx.principal.actor)
    return _detail(ctx.vault, sar_id)


__all__ = ["queue_sar_redactions", "router", "sar_purpose"]
