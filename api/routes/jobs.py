"""Redaction job routes: plan, review and edit the plan, render; and any job's state.

    POST /recordings/{id}/redaction-jobs   plan (or plan and render) a recording  -> 202 job
    GET  /jobs/{id}                        state, progress, result
    GET  /jobs/{id}/plan                   the plan, once planned
    PUT  /jobs/{id}/plan                   a reviewer's edited plan (validated; 422 if not)
    POST /jobs/{id}/render                 render the saved plan -> 202 a render job

Work runs on the job queue (``evidence-vault worker``), never in the request. Who may touch a
job follows need-to-know (:func:`vault.casework.jobs.require_job`): the recordings it reads must be in
the caller's scope, and the job must be their organisation's. Planning and rendering decrypt
footage, so they need ``recordings.download`` and ``X-Purpose``, recorded with each access.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from redaction import MaskStyle, PlanError, RedactionPlan
from vault.actors import Purpose
from vault.ledger.custody import Action
from vault.errors import InvalidInput, NotFound
from vault.casework.jobs import (
    Job,
    JobKind,
    JobQueue,
    JobState,
    get_job,
    job_has_plan,
    planned_recording_id,
    set_plan,
)
from vault.casework.policy import Permission

from ..deps import ContextDep, RequestContext, PurposeDep
from ..errors import responses
from ..jobs import JobQueueDep
from ..schemas import UUID_PATTERN

router = APIRouter(tags=["jobs"])

RecordingId = Annotated[str, Path(pattern=UUID_PATTERN, description="Recording id (UUID).")]
JobId = Annotated[str, Path(pattern=UUID_PATTERN, description="Job id (UUID).")]
MAX_PLAN_BYTES = 64 << 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MaskParams(_Model):
    """How faces are hidden."""

    style: MaskStyle = MaskStyle.BLUR
    strength: int = Field(default=8, ge=1, le=10, description="1-10; higher keeps less detail.")


class RedactionJobCreate(_Model):
    """What to do with the recording."""

    render: bool = Field(
        default=False,
        description="false: plan only (review the plan, then POST /jobs/{id}/render); "
        "true: plan and render in one job.",
    )
    mask: MaskParams = MaskParams()
    keep_tracks: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list, max_length=1000,
        description="Track ids to leave visible (e.g. a SAR requester), from an earlier plan.",
    )
    caption: str | None = Field(default=None, max_length=200, description="Text burned into every frame.")


class JobPublic(BaseModel):
    """A job as its requester sees it."""

    id: str
    kind: JobKind
    state: JobState
    progress: float = Field(description="0 to 1.")
    message: str | None
    recording_ids: list[str]
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempts: int
    error: str | None
    result: dict[str, Any] | None
    parent_id: str | None
    has_plan: bool

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        """The public view of a job row."""
        return cls(
            id=job.id, kind=job.kind, state=job.state, progress=job.progress, message=job.message,
            recording_ids=job.recording_ids, created_by=job.created_by, created_at=job.created_at,
            started_at=job.started_at, finished_at=job.finished_at, attempts=job.attempts,
            error=job.error, result=job.result, parent_id=job.parent_id,
            has_plan=job_has_plan(job),
        )


def plan_rejected(message: str) -> JSONResponse:
    """422 with the validation message (the plan was well-formed JSON but not a valid plan)."""
    return JSONResponse({"error": "invalid_plan", "detail": message}, status_code=422,
                        headers={"Cache-Control": "no-store"})


@router.post(
    "/recordings/{recording_id}/redaction-jobs",
    summary="Plan (or plan and render) a redaction",
    description="Queue a job that detects and tracks faces in the recording and saves an "
    "editable plan; with `render: true` the same job also renders the redacted copy, stored as "
    "a derived recording. Needs `X-Purpose` (the master is decrypted for the job; logged).",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses=responses(400, 401, 403, 404),
)
def create_redaction_job(
    ctx: ContextDep, queue: JobQueueDep,
    purpose: PurposeDep, recording_id: RecordingId, body: RedactionJobCreate,
) -> JobPublic:
    ctx.require_recording(Permission.DOWNLOAD, recording_id)
    stated = purpose.require()
    kind = JobKind.REDACT if body.render else JobKind.REDACTION_PLAN
    job = queue.submit(
        kind, actor=ctx.principal.actor, purpose=stated, vault=ctx.vault,
        params={"recording_ids": [recording_id], "mask": body.mask.model_dump(mode="json"),
                "keep_tracks": sorted(set(body.keep_tracks)), "caption": body.caption},
    )
    return JobPublic.of(job)


@router.get(
    "/jobs/{job_id}",
    summary="A job's state and progress",
    description="State (queued, running, succeeded, failed, cancelled), progress 0-1 with a "
    "message, attempts, and the result (plan summary, redacted recording id, package hash) or "
    "the error. Poll it after any 202.",
    response_model=JobPublic,
    responses=responses(401, 403, 404),
)
def read_job(ctx: ContextDep, job_id: JobId) -> JobPublic:
    # Polled while a job runs: the row without its plan (megabytes of JSON on long footage).
    return JobPublic.of(ctx.require_job(Permission.READ, job_id, with_plan=False))


@router.get(
    "/jobs/{job_id}/plan",
    summary="A job's redaction plan",
    description="The plan (format `evidence-vault/redaction-plan` v1) once the job has made "
    "one: tracks with a box per frame, tracks kept visible, manual boxes, audio edits, and "
    "spans flagged for review. 404 until then.",
    responses=responses(401, 403, 404),
)
def read_plan(ctx: ContextDep, job_id: JobId) -> dict[str, Any]:
    job = ctx.require_job(Permission.READ, job_id)
    if job.plan is None:
        raise NotFound(f"job {job_id} has no plan yet ({job.state.value})")
    return job.plan


@router.put(
    "/jobs/{job_id}/plan",
    summary="Save an edited redaction plan",
    description="Replace the plan of a finished plan job with a reviewer's edit (keep a track "
    "visible, add a manual box, mute audio). The plan must validate and belong to the job's "
    "recording (422 naming the problem otherwise). Logged as `redaction_planned` with the new "
    "plan's hash. Render it with POST /jobs/{id}/render; a render queued before this edit is "
    "refused when it runs. Needs `X-Purpose` (400 without it).",
    response_model=JobPublic,
    responses=responses(400, 401, 403, 404, 422),
)
def edit_plan(
    ctx: ContextDep, purpose: PurposeDep,
    job_id: JobId, plan: Annotated[dict[str, Any], Body(description="The edited plan.")],
) -> Any:
    # Decided in the order the route always had: who may (logged), why, what state, the plan.
    _editable(ctx.require_job(Permission.DOWNLOAD, job_id))
    stated = purpose.require()
    text = json.dumps(plan)
    if len(text) > MAX_PLAN_BYTES:
        return plan_rejected(f"plan is larger than {MAX_PLAN_BYTES} bytes")
    try:
        parsed = RedactionPlan.from_json(text)
        updated = save_edited_plan(ctx, job_id, parsed, purpose=stated)
    except PlanError as error:
        return plan_rejected(str(error))
    return JobPublic.of(updated)


def _editable(job: Job) -> Job:
    """``job`` if it is a finished plan job, whose plan may be edited. Raises InvalidInput."""
    if job.kind != JobKind.REDACTION_PLAN or job.state != JobState.SUCCEEDED:
        raise InvalidInput(f"job {job.id} is a {job.kind.value} job in state {job.state.value}: "
                           "only a finished redaction_plan job's plan can be edited")
    return job


def save_edited_plan(
    ctx: RequestContext, job_id: str, plan: RedactionPlan, *, purpose: Purpose,
) -> Job:
    """Replace a finished plan job's plan with a reviewer's edit (``PUT /jobs/{id}/plan`` and
    the web app's SAR workspace both call this). Returns the job as saved.

    Decides and logs as the route documents: ``recordings.download`` on the job
    (:func:`vault.casework.jobs.require_job`); the edit is a ``redaction_planned`` event with the new
    plan's hash and the one it replaced. Raises AccessDenied (logged), NotFound,
    InvalidInput (not a finished plan job), PlanError (a plan for other footage).
    """
    job = _editable(ctx.require_job(Permission.DOWNLOAD, job_id))
    recording = ctx.vault.recording(planned_recording_id(job))
    if plan.source.sha256 != recording.sha256:
        raise PlanError(
            f"plan is for footage with sha256 {plan.source.sha256[:12]}..., not recording "
            f"{recording.id} (sha256 {recording.sha256[:12]}...)")
    previous = (job.result or {}).get("plan_sha256")
    updated = set_plan(ctx.vault, job_id, plan.to_dict(), edited_by=ctx.principal.name)
    ctx.vault.ledger.record(
        Action.REDACTION_PLANNED, actor=ctx.principal.actor, purpose=purpose,
        object_ids=[recording.id], hashes={recording.id: recording.sha256},
        details={"job_id": job_id, "edited": True, "plan_sha256": plan.sha256(),
                 "previous_plan_sha256": previous, "route": ctx.route},
    )
    return updated


@router.post(
    "/jobs/{job_id}/render",
    summary="Render a job's plan",
    description="Queue a job rendering the plan saved on a finished plan job (as it stands now, "
    "edits included) into a redacted copy, stored as a derived recording whose provenance names "
    "the plan's hash. The render is bound to that hash: if the plan is edited before the render "
    "runs, the render fails (`PlanChanged`, nothing rendered) and is asked for again. For a "
    "plan job that cut a window (a SAR's), the clip of the window is rendered. Needs `X-Purpose`.",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses=responses(400, 401, 403, 404),
)
def render(
    ctx: ContextDep, queue: JobQueueDep,
    purpose: PurposeDep, job_id: JobId,
) -> JobPublic:
    ctx.require_job(Permission.DOWNLOAD, job_id)  # before X-Purpose
    stated = purpose.require()
    return JobPublic.of(queue_render(ctx, queue, job_id, purpose=stated))


def queue_render(
    ctx: RequestContext, queue: JobQueue, job_id: str, *, purpose: Purpose,
) -> Job:
    """Queue the render of a finished plan job's plan as it stands now (``POST
    /jobs/{id}/render`` and the web app's SAR workspace both call this). Returns the render
    job. Raises AccessDenied (logged), NotFound, InvalidInput (not a finished plan job)."""
    job = ctx.require_job(Permission.DOWNLOAD, job_id)
    if job.kind != JobKind.REDACTION_PLAN or job.state != JobState.SUCCEEDED or job.plan is None:
        raise InvalidInput(f"job {job_id} is a {job.kind.value} job in state {job.state.value}: "
                           "only a finished redaction_plan job's plan can be rendered")
    plan = RedactionPlan.model_validate(job.plan)
    # The render is bound to this plan's hash (api.jobs.bound_plan checks it before rendering)
    # and renders the recording the plan is for (for a SAR window, the clip of the window,
    # never cut again).
    params = {k: v for k, v in job.params.items() if k != "window"}
    rendered = queue.submit(
        JobKind.REDACTION_RENDER, actor=ctx.principal.actor, purpose=purpose, vault=ctx.vault,
        params={**params, "recording_ids": [planned_recording_id(job)],
                "plan_sha256": plan.sha256(), "plan_job_id": job.id},
        plan=job.plan, parent_id=job.id,
    )
    return get_job(ctx.vault, rendered.id)


__all__ = ["JobPublic", "RedactionJobCreate", "plan_rejected", "queue_render", "router",
           "save_edited_plan"]
