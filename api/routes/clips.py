"""Incident clips: ``POST /clips`` cuts a source's footage between two times into one recording.

The clip needs what downloading the footage needs: the ``recordings.download`` permission,
need-to-know scope over every source recording it is cut from (ASB officers: their cases and
assigned sites), and ``X-Purpose``. Each source read is a ``clip.cut`` custody event and the
stored clip a ``clip.assembled`` one (:mod:`redaction.clips`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import Field, StringConstraints

from redaction.clips import MAX_WINDOW, assemble_clip, clip_sources
from vault.errors import InvalidInput
from vault.casework.policy import Permission

from ..deps import ContextDep, RequestContext, PurposeDep
from ..errors import responses
from ..schemas import Instant, RecordingPublic, _Model

router = APIRouter(tags=["clips"])


class ClipCreate(_Model):
    """A source (camera or device) and the capture window to cut from its footage."""

    source_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    start: Instant = Field(description="Window start (ISO-8601 with offset); the first frame is "
                           "the first captured at or after it.")
    end: Instant = Field(description="Window end; the last frame is the last captured before it.")
    method: str = Field("auto", pattern="^(auto|reencode)$", description="'auto': stream copy "
                        "with re-encoded edges (falls back to a full re-encode); 'reencode'.")


class ClipPublic(RecordingPublic):
    """The clip's recording, and how it was made."""

    method: str = Field(description="'stream-copy+edge-reencode' or 'reencode'.")
    frame_count: int
    source_recording_ids: list[str] = Field(description="The recordings it was cut from.")
    provenance: dict[str, object] | None


def authorise_clip(
    ctx: RequestContext, source_id: str, start: dt.datetime, end: dt.datetime,
) -> tuple[dt.datetime, dt.datetime]:
    """The one decision on cutting a clip, for this route and the web app's watch page: the
    window in UTC, if ``principal`` may cut it.

    Raises InvalidInput for a window that does not end after it starts; AccessDenied (logged)
    without the download permission, or when any recording the clip would show is outside the
    principal's need-to-know (or, for a scoped user, the source is at none of their sites).
    """
    ctx.require(Permission.DOWNLOAD)
    if end <= start:
        raise InvalidInput("the clip window must end after it starts")
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    if end - start <= MAX_WINDOW:
        sources = clip_sources(ctx.vault, source_id, start, end)
        for recording in sources:  # need-to-know over every recording the clip shows
            ctx.require_recording(Permission.DOWNLOAD, recording.id)
        if not sources:
            # An empty answer must not tell anyone about cameras outside their organisation
            # (or, for a scoped user, outside their sites).
            ctx.require_source(Permission.DOWNLOAD, source_id)
    return start, end


@router.post(
    "/clips",
    summary="Cut an incident clip",
    description="Assemble the footage of one source between `start` and `end` across segment "
    f"boundaries into one H.264 MP4 (at most {int(MAX_WINDOW.total_seconds() // 60)} minutes), "
    "stored as a derived recording whose provenance names every source recording and its hash. "
    "Needs `X-Purpose`; each source read is logged as `clip.cut`, the clip as `clip.assembled`.",
    status_code=status.HTTP_201_CREATED,
    response_model=ClipPublic,
    responses=responses(400, 401, 403, 404, 410, 422, 503),
)
def create_clip(
    ctx: ContextDep, purpose: PurposeDep, body: ClipCreate
) -> ClipPublic:
    start, end = authorise_clip(ctx, body.source_id, body.start, body.end)
    clip = assemble_clip(
        ctx.vault, body.source_id, start, end, actor=ctx.principal.actor, purpose=purpose.require(),
        method=body.method,
    )
    return ClipPublic(
        **RecordingPublic.of(clip.recording).model_dump(),
        method=clip.method,
        frame_count=clip.frame_count,
        source_recording_ids=list(clip.source_ids),
        provenance=clip.recording.provenance,
    )


__all__ = ["authorise_clip", "router"]
