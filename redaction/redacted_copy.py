"""Redacting footage the vault holds: the redacted copy becomes a new recording.

The master is never changed (NPCC/ACPO: the native recording is the master exhibit). The
officer's access to the master is a custody event with their purpose; the decrypted master and
the render's output exist only in the spool directory for the duration of the job, and are
removed whatever happens. The copy is stored encrypted like any recording, with provenance:
parent id and hash, plan hash, software version and every parameter, and a
``redaction_rendered`` custody event. It follows its parent for retention.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vault import Action, Actor, MediaKind, Purpose, Recording, Vault
from vault.capture import Capture

from .chunks import ChunkPlanner, ChunkRenderer, chunk_layout, plan_chunked, render_chunked
from .detect import Detector
from .pipeline import EncodeParams, ProgressCallback, redact_video, render_plan
from .plan import AudioEdit, MaskSpec, RedactionPlan, save_plan
from .render import RenderResult


@dataclass(frozen=True)
class RedactedCopy:
    """A redacted copy stored in the vault, the plan it was rendered from, and the render."""

    recording: Recording
    plan: RedactionPlan
    render: RenderResult


def redact_recording(
    vault: Vault,
    recording_id: str,
    *,
    actor: Actor,
    purpose: Purpose,
    plan: RedactionPlan | None = None,
    mask: MaskSpec | None = None,
    caption: str | None = None,
    audio: Sequence[AudioEdit] = (),
    encode: EncodeParams = EncodeParams(),
    progress: ProgressCallback | None = None,
    chunk_s: float = 0.0,
    overlap_s: float = 2.0,
    workers: int = 1,
    chunk_planner: ChunkPlanner | None = None,
    chunk_renderer: ChunkRenderer | None = None,
    detector: Detector | None = None,
) -> RedactedCopy:
    """Redact a vault recording and store the result as a derived recording.

    With ``plan`` (e.g. one a reviewer edited), renders exactly that plan; otherwise detects,
    tracks and renders in one pass. With ``chunk_s`` > 0, footage long enough to split is
    planned in chunks (on ``workers`` threads, or by ``chunk_planner``: chunk jobs on the
    queue) and rendered in chunks (on ``workers`` threads, or by ``chunk_renderer``: chunk
    render jobs) joined without re-encoding (:mod:`redaction.chunks`).
    ``detector``: the face detector to plan with (default: CenterFace on ``auto``).
    Returns the stored copy. Raises NotFound, Shredded,
    MediaError, PlanError, EncodeError; on any error nothing is stored and the spool is clean.
    """
    parent = vault.recording(recording_id)
    spool = vault.settings.spool_dir
    spool.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="redact-", dir=spool))
    try:
        suffix = Path(parent.original_name or "").suffix or ".mp4"
        source = work / f"master{suffix}"
        vault.export_file(
            recording_id, source, actor=actor, purpose=purpose, action=Action.REDACTION_PLANNED
        )
        output = work / "redacted.mp4"
        if plan is None and chunk_s > 0 and len(
                chunk_layout(source, chunk_s=chunk_s, overlap_s=overlap_s).chunks) > 1:
            plan = plan_chunked(source, chunk_s=chunk_s, overlap_s=overlap_s, workers=workers,
                                mask=mask or MaskSpec(), caption=caption, audio=audio,
                                progress=progress, chunk_planner=chunk_planner,
                                detector=detector)
        if plan is None:
            plan, render = redact_video(
                source, output, mask=mask or MaskSpec(), caption=caption, audio=audio,
                encode=encode, progress=progress, detector=detector,
            )
        elif chunk_s > 0:
            render = render_chunked(source, plan, output, chunk_s=chunk_s, workers=workers,
                                    encode=encode, progress=progress,
                                    chunk_renderer=chunk_renderer)
        else:
            render = render_plan(source, plan, output, encode=encode, progress=progress)
        save_plan(plan, work / "plan.json")
        stem = Path(parent.original_name or parent.id).stem
        copy = vault.put_file(
            output,
            Capture(
                source_id=parent.source_id,
                captured_at=parent.captured_start,
                captured_end=parent.captured_end,
                media_kind=MediaKind.VIDEO,
                original_name=f"{stem}-redacted.mp4",
                parent_id=parent.id,
                provenance={
                    "kind": "redaction",
                    "parent_id": parent.id,
                    "parent_sha256": parent.sha256,
                    "plan_sha256": render.plan_sha256,
                    "plan": plan.model_dump(mode="json"),
                    "software_version": render.software_version,
                    "parameters": render.parameters,
                    "frame_count": render.frame_count,
                    "duration": render.duration,
                },
                details={
                    "parent_id": parent.id,
                    "plan_sha256": render.plan_sha256,
                    "tracks": len(plan.tracks),
                    "review_spans": len(plan.review),
                    "purpose": purpose.purpose,
                },
                action=Action.REDACTION_RENDERED,
            ),
            actor=actor,
        )
        return RedactedCopy(recording=copy, plan=plan, render=render)
    finally:
        # Plaintext leaves the spool as soon as the job ends, success or not.
        shutil.rmtree(work, ignore_errors=True)
