"""Thumbnail frames of a recording, as one sprite sheet: timelines and scrubbing (issue #12).

A thumbnail is footage, so it is treated as footage:

1. **The same decision as watching.** :func:`thumbnail_sheet` asks
   :meth:`~api.deps.RequestContext.require_recording` for ``recordings.view``, the check the
   player's stream makes (``GET /recordings/{id}/stream`` and the web player), so whoever may
   not watch a recording gets no frame of it, across any organisation or site boundary, and the
   refusal is logged the same way.
2. **The same decryption, audited once per sheet.** The frames are decoded from the recording
   opened by :meth:`vault.vault.Vault.open_reader`, which logs as :meth:`Vault.read` (the
   function the player's stream reads through) does: one ``viewed`` custody event (with the
   purpose stated for the task and ``details.thumbnails``, the number of frames) before any
   byte is released. The reader decrypts only the segments the demuxer reads, so a sheet of a
   long recording reads its index and the keyframes it shows, not the whole file. One sheet holds
   every frame a timeline or a scrub bar shows, and the page asks for it once: scrubbing draws
   tiles from the sheet already in the browser and asks the server nothing, so it writes no
   event per frame, while every decryption is still on the ledger with who, why and when.
   That is enough because the event names the whole recording: a sheet shows no more of it than
   the ``viewed`` event already admits was seen.
3. **Never stored.** Decrypted bytes stay in memory (the reader holds one segment); the sheet
   is built in memory and sent ``Cache-Control: no-store``. Nothing derived is cached, so there is nothing
   to keep encrypted at rest, to expire with the recording, or to shred with its key.

Tile ``i`` of ``n`` shows the recording at the middle of the ``i``-th of ``n`` equal parts of
its length (the keyframe at or before that time: a thumbnail needs no exact frame, and seeking
to keyframes decodes a long recording in a fraction of the time); the page maps a position
``t`` of a recording ``d`` seconds long to tile ``floor(t / d * n)``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Annotated, Any, BinaryIO

import av
import cv2
import numpy as np
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from redaction.errors import MediaError
from vault.actors import Purpose
from vault.casework.policy import Permission
from vault.errors import InvalidInput
from vault.ledger.custody import Action
from vault.storage.catalog import MediaKind

from ..deps import ContextDep, PurposeDep, RequestContext
from ..errors import responses
from ..schemas import UUID_PATTERN

router = APIRouter(tags=["evidence"])

#: Each tile's height in pixels; its width follows the footage's aspect ratio.
TILE_HEIGHT = 90
#: The most tiles one sheet may hold (a scrub bar needs no more to look continuous).
MAX_TILES = 60
#: Headers of a sheet: footage is never stored by a browser or a proxy, nor read cross-origin.
SHEET_HEADERS = {"Cache-Control": "no-store", "Cross-Origin-Resource-Policy": "same-origin",
                 "X-Content-Type-Options": "nosniff"}

RecordingId = Annotated[str, Path(pattern=UUID_PATTERN, description="Recording id (UUID).")]
Tiles = Annotated[int, Query(ge=1, le=MAX_TILES, description="How many frames the sheet holds.")]


def sprite_sheet(path: str | FilePath | io.RawIOBase | BinaryIO, tiles: int, *,
                 height: int = TILE_HEIGHT) -> bytes:
    """A JPEG of ``tiles`` frames of the video at ``path`` (a file name, or a seekable binary
    file such as :class:`vault.storage.seekable.DecryptedReader`) side by side, each ``height`` px
    tall: tile ``i`` is the keyframe at or before the middle of the ``i``-th of ``tiles``
    equal parts of the video. A part with no decodable frame repeats the one before.

    Raises MediaError when the file is not a video that decodes (corrupt, truncated, audio
    only) or ``tiles`` is not positive.
    """
    where = path if isinstance(path, (str, FilePath)) else None
    if tiles < 1:
        raise MediaError("a sheet needs at least one tile", path=where)
    try:
        container = av.open(path if where is None else str(path), mode="r")
    except (av.error.FFmpegError, OSError) as error:
        raise MediaError(f"cannot open the footage as video: {error}", path=where) from None
    with container:
        if not container.streams.video:
            raise MediaError("the recording has no video", path=where)
        stream = container.streams.video[0]
        duration = _duration(container, stream)
        frames: list[np.ndarray[Any, Any] | None] = []
        for i in range(tiles):
            frames.append(_frame_at(container, stream, duration * (i + 0.5) / tiles))
    if all(f is None for f in frames):
        raise MediaError("no frame of the footage decodes", path=where)
    first = next(f for f in frames if f is not None)
    width = max(1, round(first.shape[1] * height / max(1, first.shape[0])))
    sheet = np.zeros((height, width * tiles, 3), dtype=np.uint8)
    last = first
    for i, frame in enumerate(frames):
        last = frame if frame is not None else last
        sheet[:, i * width:(i + 1) * width] = cv2.resize(last, (width, height),
                                                          interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:  # pragma: no cover - OpenCV always encodes a non-empty image
        raise MediaError("cannot encode the sheet", path=where)
    return bytes(data.tobytes())


def _duration(container: Any, stream: Any) -> float:
    """The video's length in seconds (the stream's, else the container's; 0 when unknown)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration / av.time_base)
    return 0.0


def _frame_at(container: Any, stream: Any, seconds: float) -> np.ndarray[Any, Any] | None:
    """The first frame decoded after seeking to the keyframe at or before ``seconds``."""
    try:
        if stream.time_base is not None:
            container.seek(int(seconds / stream.time_base), stream=stream, backward=True,
                           any_frame=False)
        for frame in container.decode(stream):
            image: np.ndarray[Any, Any] = frame.to_ndarray(format="bgr24")
            return image
    except (av.error.FFmpegError, ValueError):
        return None
    return None


def thumbnail_sheet(ctx: RequestContext, recording_id: str, *, tiles: int,
                    purpose: Callable[[], Purpose],
                    details: dict[str, object] | None = None) -> bytes:
    """The sprite sheet of ``tiles`` frames of the recording, for ``ctx``'s principal.

    Decides as the stream does (``recordings.view`` on this recording, refusals logged), then
    asks ``purpose`` (so a refused caller is logged as refused whether or not they said why),
    opens the recording with :meth:`Vault.open_reader` (one ``viewed`` event, ``details``
    added), and builds the sheet in memory from the parts the demuxer reads. Raises AccessDenied, NotFound, InvalidInput
    (not a video recording, or no purpose), MediaError (the footage does not decode).
    """
    recording = ctx.require_recording(Permission.VIEW, recording_id)
    stated = purpose()
    if recording.media_kind is not MediaKind.VIDEO:
        raise InvalidInput(f"recording {recording.id} is {recording.media_kind.value}, not "
                           "video: it has no frames to show")
    _, reader = ctx.vault.open_reader(
        recording.id, actor=ctx.principal.actor, purpose=stated, action=Action.VIEWED,
        details={"thumbnails": tiles, **(details or {})})
    with reader:
        return sprite_sheet(reader, tiles)


def sheet_response(data: bytes) -> Response:
    """The sheet as a no-store JPEG response."""
    return Response(data, media_type="image/jpeg", headers=SHEET_HEADERS)


@router.get(
    "/recordings/{recording_id}/thumbnails",
    summary="Thumbnail frames (sprite sheet)",
    description="One JPEG holding `tiles` frames of the recording side by side: tile i shows "
    "the middle of the i-th of `tiles` equal parts of its length. The same access check as "
    "streaming (`recordings.view`, the purpose required); logged once per sheet as `viewed` "
    "with `details.thumbnails`. Never cached (no-store).",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The sheet"},
               **responses(400, 401, 403, 404, 410, 422, 503)},
)
def thumbnails(ctx: ContextDep, purpose: PurposeDep, recording_id: RecordingId,
               tiles: Tiles = 10) -> Response:
    return sheet_response(thumbnail_sheet(ctx, recording_id, tiles=tiles,
                                          purpose=purpose.require))


__all__ = ["MAX_TILES", "TILE_HEIGHT", "router", "sheet_response", "sprite_sheet",
           "thumbnail_sheet"]
