"""Evidence routes: search recordings, read their metadata, stream (Range), download, upload.

Streaming and downloading need ``X-Purpose`` (and take ``X-Reference``, ``X-Lawful-Basis``);
each is a custody event (``streamed``/``downloaded`` with the byte range) logged before the
first byte leaves. A search is a ``searched`` event with its criteria. ASB officers see only
recordings linked to their cases or captured at their assigned sites (:mod:`vault.casework.policy`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated

import anyio.from_thread
from fastapi import APIRouter, Header, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from vault.storage.catalog import MediaKind, SourceKind
from vault.capture import Capture
from vault.ledger.custody import Action
from vault.errors import InvalidInput
from vault.casework.holds import held_ids
from vault.casework.policy import (
    Permission,
    visible_recordings,
)
from vault.casework.search import MAX_LIMIT, RecordingQuery, page_cursor, search_recordings

from .._streaming import footage_response
from ..deps import ContextDep, PurposeDep
from ..errors import responses
from ..schemas import UUID_PATTERN, Instant, RecordingList, RecordingPublic

router = APIRouter(tags=["evidence"])

RecordingId = Annotated[str, Path(pattern=UUID_PATTERN, description="Recording id (UUID).")]
RangeHeader = Annotated[
    str | None,
    Header(alias="Range", description="Byte range as browsers send it: bytes=A-B, A- or -N."),
]
_FOOTAGE_ERRORS = responses(400, 401, 403, 404, 410, 416, 503)
_MAX_NAME = 255


@router.get(
    "/recordings",
    summary="Search recordings",
    description="Recordings whose capture overlaps the window, oldest first, filtered by source, "
    "site, media kind, case, hold state and device-clock flag. Only what you may see is "
    "returned. The search and its criteria are logged.",
    response_model=RecordingList,
    responses=responses(400, 401, 403),
)
def search(
    ctx: ContextDep,
    source: Annotated[str | None, Query(max_length=128, description="Source id.")] = None,
    site: Annotated[str | None, Query(max_length=256, description="Site or estate.")] = None,
    since: Annotated[Instant | None, Query(description="Window start (ISO-8601).")] = None,
    until: Annotated[Instant | None, Query(description="Window end (ISO-8601).")] = None,
    media_kind: Annotated[MediaKind | None, Query()] = None,
    case_id: Annotated[str | None, Query(pattern=UUID_PATTERN, description="Linked to this case.")] = None,
    held: Annotated[bool | None, Query(description="Only held (true) or unheld (false).")] = None,
    clock_flagged: Annotated[bool | None, Query(
        description="Only recordings whose device clock was flagged (true) or not (false).")] = None,
    include_deleted: Annotated[bool, Query(description="Include crypto-shredded recordings.")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    after: Annotated[str | None, Query(max_length=200, description=(
        "Keyset cursor: the previous page's next_after. Pages stay fast at any depth, where "
        "offset makes the catalog skip every earlier row."))] = None,
) -> RecordingList:
    ctx.require(Permission.SEARCH)
    if case_id is not None:
        ctx.require_case(Permission.CASE_READ, case_id)
    query = RecordingQuery(
        source_id=source, site=site, since=since, until=until, media_kind=media_kind,
        case_id=case_id, held=held, clock_flagged=clock_flagged, include_deleted=include_deleted,
        limit=limit, offset=offset, after=after,
    )
    found = search_recordings(ctx.vault, query, actor=ctx.principal.actor, scope=visible_recordings(ctx.principal))
    kept = held_ids(ctx.vault, (r.id for r in found))
    return RecordingList(items=[RecordingPublic.of(r, held=r.id in kept) for r in found],
                         limit=limit, offset=offset,
                         next_after=page_cursor(found[-1]) if len(found) == limit else None)


@router.get(
    "/recordings/{recording_id}",
    summary="Recording metadata",
    description="The catalog entry of one recording: source, capture times, size, SHA-256, "
    "retention date. No footage is released.",
    response_model=RecordingPublic,
    responses=responses(401, 403, 404),
)
def metadata(
    ctx: ContextDep, recording_id: RecordingId
) -> RecordingPublic:
    recording = ctx.require_recording(Permission.READ, recording_id)
    return RecordingPublic.of(recording, held=bool(held_ids(ctx.vault, [recording.id])))


@router.get(
    "/recordings/{recording_id}/stream",
    summary="Play a recording (HTTP Range)",
    description="The footage inline, for a player: send `Range: bytes=A-B` to seek (206 with "
    "Content-Range; 416 outside the file). Needs `X-Purpose`; every request is logged as "
    "`streamed` with its byte range before any byte is sent. Only the encrypted segments "
    "covering the range are decrypted.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The footage"},
               206: {"description": "The requested byte range"}, **_FOOTAGE_ERRORS},
)
def stream(
    ctx: ContextDep,
    purpose: PurposeDep,
    recording_id: RecordingId,
    range_header: RangeHeader = None,
) -> StreamingResponse:
    recording = ctx.require_recording(Permission.VIEW, recording_id)
    return footage_response(
        ctx.vault, recording, actor=ctx.principal.actor, purpose=purpose.require(),
        range_header=range_header, action=Action.STREAMED, attachment=False,
    )


@router.get(
    "/recordings/{recording_id}/download",
    summary="Download a recording",
    description="The footage as an attachment (Range resumes a partial download). Needs "
    "`X-Purpose`; logged as `downloaded`. `Repr-Digest` carries the SHA-256 to check it against.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The footage"},
               206: {"description": "The requested byte range"}, **_FOOTAGE_ERRORS},
)
def download(
    ctx: ContextDep,
    purpose: PurposeDep,
    recording_id: RecordingId,
    range_header: RangeHeader = None,
) -> StreamingResponse:
    recording = ctx.require_recording(Permission.DOWNLOAD, recording_id)
    return footage_response(
        ctx.vault, recording, actor=ctx.principal.actor, purpose=purpose.require(),
        range_header=range_header, action=Action.DOWNLOADED, attachment=True,
    )


class _BodyReader:
    """A blocking ``read()`` over the request body, for the vault's encrypting reader.

    Runs in a worker thread; each read that needs more data asks the event loop for the next
    body chunk, so the upload is encrypted as it arrives and never lands on disk in plaintext.
    """

    def __init__(self, chunks: AsyncIterator[bytes], limit: int | None) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._done = False
        self._limit = limit
        self._seen = 0

    async def _pull(self) -> bytes:
        return await self._chunks.__anext__()

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            try:
                chunk = anyio.from_thread.run(self._pull)
            except StopAsyncIteration:
                self._done = True
                break
            self._seen += len(chunk)
            if self._limit is not None and self._seen > self._limit:
                raise InvalidInput("the body is longer than its Content-Length")
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


@router.post(
    "/recordings",
    summary="Upload a recording",
    description="Store the request body (raw bytes, `Content-Type: application/octet-stream`): "
    "hashed and encrypted as it streams in, cataloged and logged as `ingested`. Ingest agents and "
    "administrators only. The same bytes from the same source twice give one recording.",
    status_code=status.HTTP_201_CREATED,
    response_model=RecordingPublic,
    responses=responses(400, 401, 403, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload(
    request: Request,
    ctx: ContextDep,
    source: Annotated[str, Query(min_length=1, max_length=128, description="Source id.")],
    captured_at: Annotated[Instant, Query(description="Capture start (ISO-8601).")],
    captured_end: Annotated[Instant | None, Query(description="Capture end.")] = None,
    source_kind: Annotated[SourceKind, Query()] = SourceKind.UPLOAD,
    media_kind: Annotated[MediaKind, Query()] = MediaKind.OTHER,
    site: Annotated[str | None, Query(max_length=256)] = None,
    name: Annotated[str | None, Query(max_length=_MAX_NAME, description="Original file name.")] = None,
) -> RecordingPublic:
    await run_in_threadpool(ctx.require, Permission.UPLOAD)
    if name is not None and (
        not name.strip() or "/" in name or "\\" in name or name in (".", "..")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        raise InvalidInput("name must be a plain file name (no path, no control characters)")
    if captured_end is not None and captured_end < captured_at:
        raise InvalidInput("captured_end must not be before captured_at")
    length = request.headers.get("content-length")
    limit = int(length) if length and length.isdigit() else None
    reader = _BodyReader(request.stream().__aiter__(), limit)
    recording = await run_in_threadpool(
        lambda: ctx.vault.put_stream(
            reader,  # type: ignore[arg-type]
            Capture(
                source_id=source,
                captured_at=captured_at.astimezone(dt.UTC),
                captured_end=captured_end.astimezone(dt.UTC) if captured_end else None,
                source_kind=source_kind,
                media_kind=media_kind,
                original_name=name,
                site=site,
            ),
            actor=ctx.principal.actor,
        )
    )
    return RecordingPublic.of(recording)


__all__ = ["router"]
