"""Case routes (create, list, link recordings, members) and holds (place, list, release).

Each change is a custody event. ASB officers work only the cases they are members of; other
roles only their own organisation's cases (:mod:`vault.casework.policy`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from vault.casework import cases as case_ops
from vault.storage.catalog import HoldKind
from vault.errors import InvalidInput
from vault.casework.holds import list_holds, place_hold, release_hold
from vault.casework.policy import (
    Permission,
    case_scope,
    is_scoped,
    require_hold_target,
    visible_holds,
)

from ..deps import ContextDep, OptionalPurposeDep
from ..errors import responses
from ..schemas import (
    UUID_PATTERN,
    CaseClose,
    CaseCreate,
    CaseDetail,
    CaseLink,
    CaseMemberAdd,
    CasePublic,
    HoldCreate,
    HoldPublic,
    HoldRelease,
)

router = APIRouter(tags=["cases"])

CaseId = Annotated[str, Path(pattern=UUID_PATTERN, description="Case id (UUID).")]
HoldId = Annotated[str, Path(pattern=UUID_PATTERN, description="Hold id (UUID).")]
RecordingId = Annotated[str, Path(pattern=UUID_PATTERN, description="Recording id (UUID).")]


def _detail(vault, case_id: str) -> CaseDetail:  # type: ignore[no-untyped-def]
    case, org, recordings, members = case_ops.case_details(vault, case_id)
    return CaseDetail(**CasePublic.of(case, org).model_dump(), recording_ids=recordings, members=members)


@router.get(
    "/cases",
    summary="List cases",
    description="Cases you may see, newest first: your own for ASB officers, your organisation's "
    "for other roles.",
    response_model=list[CasePublic],
    responses=responses(401, 403),
)
def list_cases(
    ctx: ContextDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[CasePublic]:
    ctx.require(Permission.CASE_READ)
    member, org = case_scope(ctx.principal)
    rows = case_ops.list_cases(ctx.vault, member_id=member, organisation=org, limit=limit, offset=offset)
    return [CasePublic.of(c, o) for c, o in rows]


@router.post(
    "/cases",
    summary="Create a case",
    description="A new case owned by your organisation, with you (and any named colleagues of "
    "your organisation) as members. Logged as `case_created`.",
    status_code=status.HTTP_201_CREATED,
    response_model=CaseDetail,
    responses=responses(400, 401, 403, 404),
)
def create_case(
    ctx: ContextDep, body: CaseCreate
) -> CaseDetail:
    ctx.require(Permission.CASE_CREATE)
    from vault.access.identity import get_user

    members = [ctx.principal.user_id] + [
        u.id for u in (get_user(ctx.vault, name) for name in body.members) if u.id != ctx.principal.user_id
    ]
    case = case_ops.create_case(
        ctx.vault,
        reference=body.reference,
        organisation=ctx.principal.organisation,
        actor=ctx.principal.actor,
        title=body.title,
        crime_number=body.crime_number,
        member_ids=tuple(dict.fromkeys(members)),
    )
    return _detail(ctx.vault, case.id)


@router.get(
    "/cases/{case_id}",
    summary="Case details",
    description="A case with its linked recordings and members.",
    response_model=CaseDetail,
    responses=responses(401, 403, 404),
)
def get_case(ctx: ContextDep, case_id: CaseId) -> CaseDetail:
    ctx.require_case(Permission.CASE_READ, case_id)
    return _detail(ctx.vault, case_id)


@router.post(
    "/cases/{case_id}/recordings",
    summary="Link a recording to a case",
    description="Mark a recording as evidence for the case (which also brings it under the "
    "case's holds). Logged as `case_linked`, with `X-Purpose` if given. Linking twice is a no-op.",
    response_model=CaseDetail,
    responses=responses(400, 401, 403, 404),
)
def link_recording(
    ctx: ContextDep,
    purpose: OptionalPurposeDep,
    case_id: CaseId,
    body: CaseLink,
) -> CaseDetail:
    ctx.require_case(Permission.CASE_WRITE, case_id)
    ctx.require_recording(Permission.READ, body.recording_id)
    stated = purpose.require() if purpose.purpose else None
    case_ops.link_recording(ctx.vault, case_id, body.recording_id, actor=ctx.principal.actor, purpose=stated)
    return _detail(ctx.vault, case_id)


@router.delete(
    "/cases/{case_id}/recordings/{recording_id}",
    summary="Unlink a recording from a case",
    description="Logged as `case_unlinked`. The recording's own holds are unaffected.",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(401, 403, 404),
)
def unlink_recording(
    ctx: ContextDep, case_id: CaseId,
    recording_id: RecordingId,
) -> Response:
    ctx.require_case(Permission.CASE_WRITE, case_id)
    case_ops.unlink_recording(ctx.vault, case_id, recording_id, actor=ctx.principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/cases/{case_id}/members",
    summary="Add a case member",
    description="Give a colleague of the case's organisation need-to-know access to the case.",
    response_model=CaseDetail,
    responses=responses(400, 401, 403, 404),
)
def add_member(
    ctx: ContextDep, case_id: CaseId, body: CaseMemberAdd
) -> CaseDetail:
    ctx.require_case(Permission.CASE_WRITE, case_id)
    case_ops.add_member(ctx.vault, case_id, body.user, actor=ctx.principal.actor)
    return _detail(ctx.vault, case_id)


@router.post(
    "/cases/{case_id}/close",
    summary="Close a case",
    description="Evidence on an open case is kept; closing the case ends that (other holds and "
    "open cases still keep their footage; the rest goes on its retention date). Needs a reason. "
    "Logged as `case.closed`.",
    response_model=CaseDetail,
    responses=responses(400, 401, 403, 404),
)
def close_case(
    ctx: ContextDep, case_id: CaseId, body: CaseClose
) -> CaseDetail:
    ctx.require_case(Permission.CASE_WRITE, case_id)
    case_ops.close_case(ctx.vault, case_id, actor=ctx.principal.actor, reason=body.reason)
    return _detail(ctx.vault, case_id)


@router.post(
    "/cases/{case_id}/reopen",
    summary="Reopen a case",
    description="Its linked footage that still exists is kept again. Needs a reason. Logged as "
    "`case.reopened`.",
    response_model=CaseDetail,
    responses=responses(400, 401, 403, 404),
)
def reopen_case(
    ctx: ContextDep, case_id: CaseId, body: CaseClose
) -> CaseDetail:
    ctx.require_case(Permission.CASE_WRITE, case_id)
    case_ops.reopen_case(ctx.vault, case_id, actor=ctx.principal.actor, reason=body.reason)
    return _detail(ctx.vault, case_id)


# --- holds -----------------------------------------------------------------------------------


@router.get(
    "/holds",
    summary="List holds",
    description="Holds, newest first (active only unless `active=false` or `all=true`). ASB "
    "officers must name one of their cases.",
    response_model=list[HoldPublic],
    responses=responses(401, 403, 404),
)
def holds(
    ctx: ContextDep,
    case_id: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None,
    recording_id: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None,
    kind: Annotated[HoldKind | None, Query()] = None,
    active: Annotated[bool, Query(description="Active (true) or released (false).")] = True,
    all: Annotated[bool, Query(description="Both active and released.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[HoldPublic]:
    ctx.require(Permission.HOLD_READ)
    if is_scoped(ctx.principal) and case_id is None:
        raise InvalidInput("name a case (case_id) whose holds you want to see")
    if case_id is not None:
        ctx.require_case(Permission.HOLD_READ, case_id)
    rows = list_holds(
        ctx.vault, case_id=case_id, recording_id=recording_id, kind=kind,
        active=None if all else active, scope=visible_holds(ctx.principal), limit=limit,
        offset=offset,
    )
    return [HoldPublic.of(h) for h in rows]


@router.post(
    "/holds",
    summary="Place a hold",
    description="Keep footage past its retention date: one recording, every recording of a "
    "case, or a source and capture window (which also holds footage that arrives later). "
    "Logged as `held`.",
    status_code=status.HTTP_201_CREATED,
    response_model=HoldPublic,
    responses=responses(400, 401, 403, 404),
)
def place(ctx: ContextDep, body: HoldCreate) -> HoldPublic:
    require_hold_target(
        ctx.vault, ctx.principal, recording_id=body.recording_id, case_id=body.case_id,
        source_id=body.source_id, route=ctx.route,
    )
    if (body.window_start is None) != (body.window_end is None):
        raise InvalidInput("a hold window needs both window_start and window_end")
    if body.window_start is not None and body.source_id is None:
        raise InvalidInput("a hold window needs a source_id")
    if body.kind == HoldKind.SAR:
        raise InvalidInput("a subject access request holds footage by attaching a camera window "
                           "to the request (POST /sars/{id}/windows), which ends with it")
    window = (body.window_start, body.window_end) if body.window_start and body.window_end else None
    owner = case_ops.case_details(ctx.vault, body.case_id)[1] if body.case_id else None
    hold = place_hold(
        ctx.vault, kind=body.kind, reason=body.reason, actor=ctx.principal.actor,
        reference=body.reference, recording_id=body.recording_id, case_id=body.case_id,
        source_id=body.source_id, window=window, organisation=owner,
    )
    return HoldPublic.of(hold)


@router.post(
    "/holds/{hold_id}/release",
    summary="Release a hold",
    description="Footage past its date is deleted on the next retention run unless another hold "
    "keeps it. A hold is released by its own organisation only; a case hold by those who may "
    "change the case; a subject access request's hold only by closing the request. Needs a "
    "reason. Logged as `released` with the reason.",
    response_model=HoldPublic,
    responses=responses(400, 401, 403, 404),
)
def release(
    ctx: ContextDep, hold_id: HoldId, body: HoldRelease
) -> HoldPublic:
    ctx.require_hold(Permission.HOLD_RELEASE, hold_id)
    return HoldPublic.of(release_hold(ctx.vault, hold_id, actor=ctx.principal.actor, reason=body.reason))


__all__ = ["router"]
