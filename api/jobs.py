"""The job queue as the API and the worker build it: the vault's handlers plus redaction's.

:mod:`vault.casework.jobs` owns the jobs table, the Huey wiring and the vault's own handlers (export,
retention); the redaction handlers live here because they import :mod:`redaction`, a layer the
vault must not import. ``evidence-vault worker`` and the API both call :func:`open_job_queue`,
so every process registers the same tasks under the same names.

Redaction jobs (params: ``recording_ids``, ``mask`` {style, strength}, ``caption``,
``keep_tracks``, and optionally ``window`` {source_id, start, end}):

- ``redaction_plan``: decrypt the recording into the spool, detect and track faces, keep the
  named tracks visible; the plan is saved on the job for review (``GET/PUT /jobs/{id}/plan``).
  With a ``window`` (a subject access request's held window; ``recording_ids`` are the
  recordings it holds), the job first cuts exactly that window into a clip
  (:func:`redaction.clips.assemble_clip`, a derived recording) and plans the clip: nothing
  outside the window is planned, rendered or disclosed. ``result.recording_id`` names the
  recording the plan is for (the clip, or the one recording).
- ``redaction_render``: render the plan saved on the job (a copy of the reviewed plan taken
  when the render was asked for) into a redacted copy stored as a derived recording. The job
  is bound to that plan's SHA-256 (``params.plan_sha256``): if its copy no longer hashes to it,
  or the plan job's plan was edited after the render was queued, the render is refused
  (:class:`vault.casework.jobs.PlanChanged`) and the reviewer asks for a new one.
- ``redact``: plan and render in one job; one pass over the footage when no track is kept.

Long footage (settings ``redaction_chunk_s``, ``redaction_chunk_overlap_s``,
``redaction_workers``; :mod:`redaction.chunks`): the plan or redact job is the *parent*. It
lays the recording out in chunks at keyframes and submits one ``redaction_chunk`` child job
per chunk (``parent_id``; params ``chunk`` and the recording's ``sha256``), which any worker
on any host runs: decrypt only the chunk's byte ranges of the recording (the MP4 header and
index and the chunk's packets, ``chunk.ranges``; the whole recording for other containers) into
a sparse 0600 file in its own spool, plan the chunk with its overlap, save the chunk plan on
the child row. While it waits, the parent runs up to ``redaction_workers`` queued children
itself, so one worker alone still finishes (and N workers share the chunks); its progress is
the children's together. It then merges the chunk plans into one plan (tracks joined across
the borders) and, for a redact or render job, submits one ``redaction_chunk_render`` child per
chunk: it decrypts the chunk's byte ranges, renders the part of the plan the chunk owns (on its
row, bound by ``params.plan_sha256``) and stores the rendered chunk as an encrypted
intermediate of the parent (:mod:`vault.casework.intermediates`), which the parent fetches
and joins without re-encoding, then destroys. A child that fails (after its own retries)
fails the parent with the child's error, the other children are cancelled and nothing is
stored: submitting the job again starts afresh. Cancelling the parent cancels its
children; a parent requeued after its worker died first cancels the chunk jobs its earlier
attempt left.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select

from redaction import CenterFace, MaskSpec, Progress, RedactionPlan
from redaction.chunks import (
    Chunk,
    ChunkLayout,
    ChunkPlanner,
    ChunkRenderer,
    owned_plan,
    plan_chunk,
    plan_chunked,
    render_chunk,
)
from redaction.clips import assemble_clip
from redaction.pipeline import EncodeParams
from redaction.errors import ChunkError
from redaction.redacted_copy import redact_recording
from vault.config import Settings
from vault.actors import Actor, Purpose
from vault.ledger.custody import Action
from vault.errors import InvalidInput
from vault.casework.jobs import (
    Job,
    JobContext,
    JobKind,
    JobQueue,
    JobState,
    PlanChanged,
    cancel_job,
    get_job,
    job_statuses,
    open_queue,
    spool_dir,
)
from vault.casework.intermediates import discard_intermediates, fetch_intermediate, store_intermediate
from vault.storage.catalog import Recording
from vault.vault import ByteRange, Vault


def open_job_queue(settings: Settings, *, immediate: bool = False, vault: Vault | None = None) -> JobQueue:
    """The queue for ``settings`` with every handler (vault's and redaction's) registered.

    ``immediate=True`` runs jobs synchronously inside ``submit`` (tests); ``vault`` is the vault
    jobs run against (default: one opened from settings on first use).
    """
    queue = open_queue(settings, immediate=immediate, vault=vault)
    queue.register(JobKind.REDACTION_PLAN, run_redaction_plan)
    queue.register(JobKind.REDACTION_RENDER, run_redaction_render)
    queue.register(JobKind.REDACT, run_redact)
    queue.register(JobKind.REDACTION_CHUNK, run_redaction_chunk)
    queue.register(JobKind.REDACTION_CHUNK_RENDER, run_redaction_chunk_render)
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


def _target(ctx: JobContext) -> tuple[str, dict[str, Any]]:
    """The recording to plan and render, and what the result should say about it: the job's
    recording, or, for a job with a ``window``, a clip of exactly that window (cut here)."""
    window = ctx.params.get("window")
    if not window:
        return _recording_id(ctx), {}
    try:
        start = dt.datetime.fromisoformat(str(window["start"]))
        end = dt.datetime.fromisoformat(str(window["end"]))
        source_id = str(window["source_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"job {ctx.job.id} has a malformed window: {exc}") from None
    ctx.progress(0.0, "cutting the held window", force=True)
    clip = assemble_clip(ctx.vault, source_id, start, end, actor=ctx.actor, purpose=ctx.purpose,
                         max_window=max(end - start, dt.timedelta(seconds=1)))
    return clip.recording.id, {
        "window": {"source_id": source_id, "start": start.isoformat(), "end": end.isoformat()},
        "clip_recording_id": clip.recording.id, "clip_sources": list(clip.source_ids),
    }


def _detector(ctx: JobContext) -> CenterFace:
    """The face detector on the device the settings name (``redaction_device``). Raises
    DetectorUnavailable (``cuda`` without a CUDA build), which fails the job at once: a retry
    on the same worker would fail the same way."""
    return CenterFace(device=ctx.vault.settings.redaction_device)


def _plan(ctx: JobContext, rid: str, *, span: float) -> RedactionPlan:
    """Detect and track faces in recording ``rid``; the named tracks are kept visible."""
    vault = ctx.vault
    recording = vault.recording(rid)
    with spool_dir(vault, "plan-") as work:
        source = work / "master.mp4"
        ctx.progress(0.0, "decrypting the recording", force=True)
        vault.export_file(rid, source, actor=ctx.actor, purpose=ctx.purpose,
                          action=Action.REDACTION_PLANNED)
        settings = vault.settings
        plan = plan_chunked(source, chunk_s=settings.redaction_chunk_s,
                            overlap_s=settings.redaction_chunk_overlap_s,
                            workers=settings.redaction_workers, mask=_mask(ctx),
                            caption=ctx.params.get("caption"),
                            progress=_reporter(ctx, 0.0, span),
                            chunk_planner=_chunk_jobs(ctx, rid, recording.sha256, span=span),
                            detector=_detector(ctx))
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
    """Plan only: the result summarises the tracks and names the recording planned; the plan
    is saved on the job."""
    rid, cut = _target(ctx)
    plan = _plan(ctx, rid, span=1.0)
    ctx.plan = plan.to_dict()
    return {"recording_id": rid, **cut, **_summary(plan)}


def _render(ctx: JobContext, rid: str, plan: RedactionPlan | None, *, start: float) -> dict[str, Any]:
    settings = ctx.vault.settings
    span = 1.0 - start
    # Without a plan, long footage is planned by chunk jobs (the first half of the bar) and
    # then rendered in chunks (the second); short footage in one pass (the whole bar).
    plan_report, render_report = _reporter(ctx, start, span / 2), _reporter(
        ctx, start + span / 2, span / 2)
    whole = _reporter(ctx, start, span)
    sha256 = ctx.vault.recording(rid).sha256

    def report(p: Progress) -> None:
        if plan is None and p.stage == "plan":
            plan_report(p)
        elif plan is None and p.stage == "render":
            render_report(p)
        else:
            whole(p)

    copy = redact_recording(
        ctx.vault, rid, actor=ctx.actor, purpose=ctx.purpose, plan=plan,
        mask=_mask(ctx), caption=ctx.params.get("caption"), progress=report,
        chunk_s=settings.redaction_chunk_s, overlap_s=settings.redaction_chunk_overlap_s,
        workers=settings.redaction_workers,
        chunk_planner=_chunk_jobs(ctx, rid, sha256, start=start, span=span / 2),
        # Rendered by chunk render jobs: the second half of the bar without a plan, the
        # whole bar with one.
        chunk_renderer=_chunk_render_jobs(
            ctx, rid, sha256, start=start if plan is not None else start + span / 2,
            span=span if plan is not None else span / 2),
        detector=_detector(ctx) if plan is None else None,
    )
    ctx.plan = copy.plan.to_dict()
    return {
        "recording_id": rid,
        "redacted_recording_id": copy.recording.id,
        "redacted_sha256": copy.recording.sha256,
        **_summary(copy.plan),
    }


def bound_plan(ctx: JobContext) -> RedactionPlan:
    """The plan a render job was queued with, after checking it is still that plan.

    The render is bound to ``params.plan_sha256`` when it is queued. It is refused when the
    job's copy no longer hashes to it, or when the plan job it came from (``plan_job_id``)
    was edited after it was queued: a reviewer's later edit (a face found missing) must not
    be silently left out of the copy. Raises PlanError (no plan, invalid plan), PlanChanged.
    """
    from redaction import PlanError

    if ctx.plan is None:
        raise PlanError(f"job {ctx.job.id} has no plan to render")
    plan = RedactionPlan.model_validate(ctx.plan)
    bound = ctx.params.get("plan_sha256")
    if not bound:
        raise PlanChanged(f"render job {ctx.job.id} was queued without the SHA-256 of its plan; "
                          "ask for the render again (POST /jobs/{plan_job_id}/render)")
    if plan.sha256() != bound:
        raise PlanChanged(f"render job {ctx.job.id}: its plan (sha256 {plan.sha256()[:12]}...) "
                          f"is not the one it was queued with ({str(bound)[:12]}...); nothing was "
                          "rendered: ask for the render again")
    source_job = ctx.params.get("plan_job_id")
    if source_job:
        current = get_job(ctx.vault, str(source_job)).plan
        now = RedactionPlan.model_validate(current).sha256() if current is not None else None
        if now != bound:
            raise PlanChanged(
                f"render job {ctx.job.id}: the plan of job {source_job} was edited after this "
                f"render was queued (queued {str(bound)[:12]}..., now {str(now)[:12]}...); nothing "
                f"was rendered: render the edited plan with POST /jobs/{source_job}/render")
    return plan


def run_redaction_render(ctx: JobContext) -> dict[str, Any]:
    """Render the plan the job was queued with (see :func:`bound_plan`)."""
    return _render(ctx, _recording_id(ctx), bound_plan(ctx), start=0.0)


def run_redact(ctx: JobContext) -> dict[str, Any]:
    """Plan and render; one pass over the footage unless tracks are to be kept (or a window
    is to be cut first, which the plan then covers)."""
    rid, cut = _target(ctx)
    if ctx.params.get("keep_tracks"):
        plan = _plan(ctx, rid, span=0.5)
        return {**_render(ctx, rid, plan, start=0.5), **cut}
    return {**_render(ctx, rid, None, start=0.0), **cut}


# --- chunked planning on the queue ---------------------------------------------------------------

#: How often a parent looks at its children while they run elsewhere.
_POLL_S = 0.5


def _cancel_children(ctx: JobContext, kind: JobKind, *,
                     ids: Sequence[str] | None = None) -> None:
    """Cancel this job's ``kind`` children that are still queued or running: ``ids``, or
    (``None``) those an earlier attempt of this job left (its worker died, the sweep requeued
    it): their work would not be used."""
    if ids is None:
        with ctx.vault.sessions() as session:
            ids = list(session.scalars(select(Job.id).where(
                Job.parent_id == ctx.job.id, Job.kind == kind,
                Job.state.in_([JobState.QUEUED, JobState.RUNNING]))))
    for child_id in ids:
        try:
            cancel_job(ctx.vault, child_id)
        except InvalidInput:
            pass  # finished meanwhile


def _fan_out(ctx: JobContext, queue: JobQueue, kind: JobKind, rid: str, layout: ChunkLayout,
             params: Callable[[Chunk], tuple[dict[str, Any], dict[str, Any] | None]], *,
             stage: str, start: float, span: float) -> list[Job]:
    """Submit one ``kind`` child per chunk (``params`` gives its params and plan) and wait for
    them all (:func:`_gather`); returns the finished rows in chunk order. If this does not
    return (a child failed, this job was cancelled), no child goes on working for it."""
    _cancel_children(ctx, kind)
    children: list[str] = []
    done = False
    try:
        for chunk in layout.chunks:
            more, plan = params(chunk)
            child = queue.submit(
                kind, actor=ctx.actor, purpose=ctx.purpose, vault=ctx.vault,
                parent_id=ctx.job.id, plan=plan,
                params={"recording_ids": [rid], "chunk": chunk.to_dict(),
                        "chunks": len(layout.chunks), **more})
            children.append(child.id)
            if child.state in (JobState.FAILED, JobState.CANCELLED):
                break  # run at once (immediate queue) and failed: the rest is wasted
        rows = _gather(ctx, queue, children, layout, stage=stage, start=start, span=span)
        done = True
        return rows
    finally:
        if not done:
            _cancel_children(ctx, kind, ids=children)


def _chunk_jobs(ctx: JobContext, rid: str, sha256: str, *, start: float = 0.0,
                span: float) -> ChunkPlanner | None:
    """Plan the chunks of recording ``rid`` as child jobs of ``ctx``'s job (see the module
    docstring); ``None`` where the job runs without a queue (chunks are then planned on
    threads here)."""
    queue = ctx.queue
    if queue is None:
        return None

    def plan_chunks(layout: ChunkLayout) -> Sequence[RedactionPlan]:
        assert queue is not None
        rows = _fan_out(ctx, queue, JobKind.REDACTION_CHUNK, rid, layout, lambda chunk: (
            {"sha256": sha256, "mask": ctx.params.get("mask"),
             "caption": ctx.params.get("caption")}, None),
            stage="plan", start=start, span=span)
        return [RedactionPlan.model_validate(row.plan) for row in rows]

    return plan_chunks


def _chunk_render_jobs(ctx: JobContext, rid: str, sha256: str, *, start: float,
                       span: float) -> ChunkRenderer | None:
    """Render the chunks of recording ``rid`` as child jobs of ``ctx``'s job, each on any
    worker on any host: the child renders its part of the plan into an encrypted intermediate
    (:mod:`vault.casework.intermediates`), which this job fetches to join. ``None`` where the
    job runs without a queue (chunks are then rendered on threads here). This job's
    intermediates are discarded when it has them, or fails."""
    queue = ctx.queue
    if queue is None:
        return None

    def render_chunks(layout: ChunkLayout, plan: RedactionPlan, encode: EncodeParams,
                      work: Path) -> list[Path]:
        assert queue is not None

        def child(chunk: Chunk) -> tuple[dict[str, Any], dict[str, Any]]:
            owned = owned_plan(plan, chunk)
            return ({"sha256": sha256, "plan_sha256": owned.sha256(),
                     "encode": dataclasses.asdict(encode)}, owned.to_dict())

        try:
            rows = _fan_out(ctx, queue, JobKind.REDACTION_CHUNK_RENDER, rid, layout, child,
                            stage="render", start=start, span=span)
            ctx.progress(start + span, "joining the rendered chunks", force=True)
            return [fetch_intermediate(ctx.vault, str((row.result or {}).get("intermediate_id")),
                                       work / f"part-{chunk.index}.mp4", owner_job_id=ctx.job.id)
                    for row, chunk in zip(rows, layout.chunks, strict=True)]
        finally:
            discard_intermediates(ctx.vault, ctx.job.id)

    return render_chunks


def _gather(ctx: JobContext, queue: JobQueue, children: list[str], layout: ChunkLayout, *,
            stage: str, start: float, span: float) -> list[Job]:
    """Wait for the child jobs, running up to ``redaction_workers`` queued ones here at once
    (claimed conditionally: a child another worker took first is left to it); return their
    rows in order. Raises ChunkError naming the first child that failed or was cancelled."""
    workers = max(1, ctx.vault.settings.redaction_workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"chunk-{stage}")
    here: dict[str, Future[None]] = {}
    try:
        while True:
            rows = job_statuses(ctx.vault, children)
            for n, row in enumerate(rows):
                if row.state in (JobState.FAILED, JobState.CANCELLED):
                    chunk = layout.chunks[n]
                    raise ChunkError(
                        f"chunk {n + 1} of {len(layout.chunks)} (frames {chunk.start}-"
                        f"{chunk.stop - 1}, job {row.id}) {row.state.value}: "
                        f"{row.error or row.message}; nothing was stored: run the job again")
            finished = sum(row.state == JobState.SUCCEEDED for row in rows)
            running = sum(row.state == JobState.RUNNING for row in rows)
            # Progress of the whole: every chunk's own, weighted by its frames.
            frames = [c.plan_stop - c.plan_start for c in layout.chunks[:len(rows)]]
            share = sum(f * (1.0 if r.state == JobState.SUCCEEDED else r.progress)
                        for f, r in zip(frames, rows, strict=True)) / sum(frames)
            ctx.progress(start + span * share,
                         f"{stage}: {len(rows)} chunks, {finished} done, {running} running",
                         force=True)
            if finished == len(rows):
                return [get_job(ctx.vault, child_id) for child_id in children]
            here = {k: f for k, f in here.items() if not f.done()}
            waiting = next((row for row in rows
                            if row.state == JobState.QUEUED and row.id not in here), None)
            if waiting is not None and len(here) < workers:
                here[waiting.id] = pool.submit(_run_here, queue, waiting.id)
                continue
            time.sleep(_POLL_S)
    finally:
        # On success every child is done; otherwise the caller cancels them, and the ones
        # running here stop at their next progress report: do not wait for them.
        pool.shutdown(wait=False, cancel_futures=True)


def _run_here(queue: JobQueue, job_id: str) -> None:
    try:
        # Claimed conditionally: if another worker took it first, this returns at once.
        queue.run(job_id, retries_left=1)
    except Exception:  # noqa: BLE001 - the child was requeued for another attempt
        pass


def fetch_chunk(vault: Vault, rid: str, chunk: Chunk, dest: Path, *, actor: Actor,
                purpose: Purpose, details: dict[str, Any]) -> int:
    """Decrypt only ``chunk.ranges`` of recording ``rid`` into ``dest`` at their offsets.

    ``dest`` is created 0600 (in the job's 0700 spool folder, removed afterwards) and sized
    as the recording, a sparse file: the bytes not fetched read as zeros and take no disk.
    The MP4's index is among the ranges, so the chunk's packets are found where they were;
    :func:`redaction.chunks.plan_chunk` refuses a cut that needs a byte not fetched. Each
    range is one read, one custody event (``redaction_planned``) naming its bytes and
    ``details``. Returns the bytes decrypted. Raises ChunkError when a range is not within
    the recording (a layout for other footage), and what :meth:`Vault.read` raises.
    """
    size = vault.recording(rid).size
    if chunk.ranges[-1][1] > size:
        raise ChunkError(f"chunk {chunk.index} asks for bytes up to {chunk.ranges[-1][1]} of "
                         f"recording {rid}, which has {size}: the layout is for other footage")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    fetched = 0
    try:
        os.ftruncate(fd, size)
        for a, b in chunk.ranges:
            _, _, parts = vault.read(rid, actor=actor, purpose=purpose,
                                     byte_range=ByteRange(a, b - 1),
                                     action=Action.REDACTION_PLANNED, details=details)
            at = a
            for part in parts:
                os.pwrite(fd, part, at)
                at += len(part)
            if at != b:
                raise ChunkError(f"chunk {chunk.index}: read {at - a} bytes of recording "
                                 f"{rid} at {a}, not {b - a}")
            fetched += b - a
        os.fsync(fd)
    finally:
        os.close(fd)
    return fetched


def _chunk_of(ctx: JobContext) -> tuple[Chunk, str, Recording]:
    """A chunk job's chunk and recording. Raises ChunkError when the recording is not the
    footage the chunk was laid out for."""
    chunk = Chunk.from_dict(ctx.params.get("chunk") or {})
    rid = _recording_id(ctx)
    recording = ctx.vault.recording(rid)
    if recording.sha256 != ctx.params.get("sha256"):
        raise ChunkError(f"{ctx.job.kind.value} job {ctx.job.id} was laid out for other "
                         f"footage than recording {rid}")
    return chunk, rid, recording


def _decrypt_chunk(ctx: JobContext, chunk: Chunk, recording: Recording, source: Path,
                   details: dict[str, Any]) -> int:
    """Decrypt what a chunk job needs of ``recording`` into ``source``: the chunk's byte
    ranges (:func:`fetch_chunk`, each read a custody event with ``details``), or the whole
    recording for a container that names none. Returns the bytes decrypted."""
    if not chunk.ranges:
        ctx.progress(0.0, "decrypting the recording", force=True)
        ctx.vault.export_file(recording.id, source, actor=ctx.actor, purpose=ctx.purpose,
                              action=Action.REDACTION_PLANNED)
        return recording.size
    ctx.progress(0.0, "decrypting the chunk's part of the recording", force=True)
    return fetch_chunk(ctx.vault, recording.id, chunk, source, actor=ctx.actor,
                       purpose=ctx.purpose,
                       details={"job_id": ctx.job.id, "chunk": chunk.index, **details})


def run_redaction_chunk(ctx: JobContext) -> dict[str, Any]:
    """Plan one chunk of a recording (a child of a plan or redact job): the chunk plan is
    saved on the job, in the chunk's own frame numbers."""
    chunk, rid, recording = _chunk_of(ctx)
    total = ctx.params.get("chunks")
    with spool_dir(ctx.vault, "chunk-") as work:
        source = work / "master.mp4"
        fetched = _decrypt_chunk(ctx, chunk, recording, source, {})
        plan = plan_chunk(source, chunk, work=work, present=chunk.ranges, mask=_mask(ctx),
                          caption=ctx.params.get("caption"), progress=_reporter(ctx, 0.0, 1.0),
                          detector=_detector(ctx))
    ctx.plan = plan.to_dict()
    return {"recording_id": rid, "chunk": chunk.index, "chunks": total,
            "frames": [chunk.plan_start, chunk.plan_stop], "owns": [chunk.start, chunk.stop],
            "tracks": len(plan.tracks),
            # Bytes of the recording this job decrypted (of "size").
            "decrypted_bytes": fetched, "size": recording.size,
            # Which worker planned it (host:pid): chunks of one video spread over machines.
            "worker": f"{socket.gethostname()}:{os.getpid()}"}


def run_redaction_chunk_render(ctx: JobContext) -> dict[str, Any]:
    """Render one chunk of a recording (a child of a render or redact job): decrypt the
    chunk's bytes of the recording, render the part of the plan it owns (the plan saved on
    this job, bound by ``params.plan_sha256``), and store the rendered chunk as an encrypted
    intermediate of the parent, which joins the chunks. The result names the intermediate;
    its key stays in the catalog."""
    from redaction import PlanError

    chunk, rid, recording = _chunk_of(ctx)
    vault = ctx.vault
    parent = ctx.job.parent_id
    if parent is None:
        raise ChunkError(f"chunk render job {ctx.job.id} has no parent job to render for")
    if ctx.plan is None:
        raise PlanError(f"chunk render job {ctx.job.id} has no plan to render")
    owned = RedactionPlan.model_validate(ctx.plan)
    if owned.sha256() != ctx.params.get("plan_sha256"):
        raise PlanChanged(f"chunk render job {ctx.job.id}: its plan is not the one it was "
                          "queued with; nothing was rendered: run the job again")
    encode = EncodeParams(**(ctx.params.get("encode") or {}))
    with spool_dir(vault, "chunk-render-") as work:
        source = work / "master.mp4"
        fetched = _decrypt_chunk(ctx, chunk, recording, source, {"stage": "render"})
        part = render_chunk(source, chunk, owned, work / f"part-{chunk.index}.mp4",
                            present=chunk.ranges, encode=encode,
                            progress=_reporter(ctx, 0.0, 0.95))
        ctx.progress(0.95, "storing the rendered chunk encrypted", force=True)
        stored = store_intermediate(vault, part, owner_job_id=parent, made_by_job_id=ctx.job.id,
                                    recording_id=rid, name=f"chunk-{chunk.index}")
    return {"recording_id": rid, "chunk": chunk.index, "chunks": ctx.params.get("chunks"),
            "owns": [chunk.start, chunk.stop], "intermediate_id": stored.id,
            "sha256": stored.sha256, "size": stored.size,
            "decrypted_bytes": fetched, "recording_size": recording.size,
            "worker": f"{socket.gethostname()}:{os.getpid()}"}


__all__ = [
    "JobQueueDep",
    "bound_plan",
    "fetch_chunk",
    "get_job_queue",
    "open_job_queue",
    "run_redact",
    "run_redaction_chunk",
    "run_redaction_chunk_render",
    "run_redaction_plan",
    "run_redaction_render",
]
