"""The job queue as the API and the worker build it: the vault's handlers plus redaction's.

:mod:`vault.jobs` owns the jobs table, the Huey wiring and the vault's own handlers (export,
retention); the redaction handlers live here because they import :mod:`redaction`, a layer the
vault must not import. ``evidence-vault worker`` and the API both call :func:`open_job_queue`,
so every process registers the same tasks under the same names.

Redaction jobs (params: ``recording_ids`` [one], ``mask`` {style, strength}, ``caption``,
``keep_tracks``):

- ``redaction_plan``: decrypt the master into the spool, detect and track faces, keep the named
  tracks visible; the plan is saved on the job for review (``GET/PUT /jobs/{id}/plan``).
- ``redaction_render``: render the plan saved on the job (a copy of the reviewed plan taken
  when the render was asked for) into a redacted copy stored as a derived recording.
- ``redact``: both in one job; one pass over the footage when no track is kept.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from redaction import MaskSpec, Progress, RedactionPlan, plan_video
from redaction.redacted_copy import redact_recording
from vault.config import Settings
from vault.custody import Action
from vault.jobs import JobContext, JobKind, JobQueue, open_queue, spool_dir
from vault.vault import Vault


def open_job_queue(settings: Settings, *, immediate: bool = False, vault: Vault | None = None) -> JobQueue:
    """The queue for ``settings`` with every handler (vault's and redaction's) registered.

    ``immediate=True`` runs jobs synchronously inside ``submit`` (tests); ``vault`` is the vault
    jobs run against (default: one opened from settings on first use).
    """
    queue = open_queue(settings, immediate=immediate, vault=vault)
    queue.register(JobKind.REDACTION_PLAN, run_redaction_plan)
    queue.register(JobKind.REDACTION_RENDER, run_redaction_render)
    queue.register(JobKind.REDACT, run_redact)
    return queue


def get_job_queue(request: Request) -> JobQueue:
    """The app's job queue, built on first use from its settings (``app.state.jobs``)."""
    state = request.app.state
    queue: JobQueue | None = getattr(state, "jobs", None)
    if queue is None:
        queue = open_job_queue(state.settings, vault=state.vault)
        state.jobs = queue
    return queue


JobQueueDep = Annotated[JobQueue, Depends(get_job_queue)]


# --- handlers ---------------------------------------------------------------------------------


def _reporter(ctx: JobContext, start: float, span: float):  # type: ignore[no-untyped-def]
    def report(p: Progress) -> None:
        fraction = p.done / p.total if p.total else 0.0
        total = f"/{p.total}" if p.total else ""
        ctx.progress(start + span * min(fraction, 1.0), f"{p.stage}: frame {p.done}{total}, {p.tracks} tracks")

    return report


def _mask(ctx: JobContext) -> MaskSpec:
    return MaskSpec.model_validate(ctx.params.get("mask") or {})


def _recording_id(ctx: JobContext) -> str:
    return str(ctx.params["recording_ids"][0])


def _plan(ctx: JobContext, *, span: float) -> RedactionPlan:
    """Detect and track faces in the job's recording; the named tracks are kept visible."""
    vault, rid = ctx.vault, _recording_id(ctx)
    recording = vault.recording(rid)
    with spool_dir(vault, "plan-") as work:
        source = work / "master.mp4"
        ctx.progress(0.0, "decrypting the master", force=True)
        vault.export_file(rid, source, actor=ctx.actor, purpose=ctx.purpose,
                          action=Action.REDACTION_PLANNED)
        plan = plan_video(source, mask=_mask(ctx), caption=ctx.params.get("caption"),
                          progress=_reporter(ctx, 0.0, span))
    keep = {int(t) for t in ctx.params.get("keep_tracks") or []}
    if keep:
        plan = plan.with_keep(keep)
    plan = plan.model_copy(update={"source": plan.source.model_copy(
        update={"name": recording.original_name or recording.id})})
    vault.ledger.record(
        Action.REDACTION_PLANNED, actor=ctx.actor, purpose=ctx.purpose, object_ids=[rid],
        hashes={rid: recording.sha256},
        details={"job_id": ctx.job.id, "plan_sha256": plan.sha256(), "tracks": len(plan.tracks),
                 "kept": sorted(keep), "review_spans": len(plan.review)},
    )
    return plan


def _summary(plan: RedactionPlan) -> dict[str, Any]:
    return {
        "plan_sha256": plan.sha256(),
        "tracks": [{"id": t.id, "start": t.start, "end": t.end, "keep": t.keep} for t in plan.tracks],
        "review_spans": len(plan.review),
    }


def run_redaction_plan(ctx: JobContext) -> dict[str, Any]:
    """Plan only: the result summarises the tracks; the plan is saved on the job."""
    plan = _plan(ctx, span=1.0)
    ctx.plan = plan.to_dict()
    return {"recording_id": _recording_id(ctx), **_summary(plan)}


def _render(ctx: JobContext, plan: RedactionPlan | None, *, start: float) -> dict[str, Any]:
    copy = redact_recording(
        ctx.vault, _recording_id(ctx), actor=ctx.actor, purpose=ctx.purpose, plan=plan,
        mask=_mask(ctx), caption=ctx.params.get("caption"),
        progress=_reporter(ctx, start, 1.0 - start),
    )
    ctx.plan = copy.plan.to_dict()
    return {
        "recording_id": _recording_id(ctx),
        "redacted_recording_id": copy.recording.id,
        "redacted_sha256": copy.recording.sha256,
        **_summary(copy.plan),
    }


def run_redaction_render(ctx: JobContext) -> dict[str, Any]:
    """Render the plan saved on the job (validated again: it may have been edited)."""
    if ctx.plan is None:
        from redaction import PlanError

        raise PlanError(f"job {ctx.job.id} has no plan to render")
    plan = RedactionPlan.model_validate(ctx.plan)
    return _render(ctx, plan, start=0.0)


def run_redact(ctx: JobContext) -> dict[str, Any]:
    """Plan and render; one pass over the footage unless tracks are to be kept."""
    if ctx.params.get("keep_tracks"):
        plan = _plan(ctx, span=0.5)
        return _render(ctx, plan, start=0.5)
    return _render(ctx, None, start=0.0)


__all__ = [
    "JobQueueDep",
    "get_job_queue",
    "open_job_queue",
    "run_redact",
    "run_redaction_plan",
    "run_redaction_render",
]
