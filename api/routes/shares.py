"""Share routes: staff create, list and revoke shares; recipients use ``/share/{token}/...``.

Recipient routes need no account: the share token in the link is the credential (only its hash
is stored). Every recipient request, allowed or refused, is a custody event; a revoked, expired
or used-up share answers 410 with the reason. Streams take Range like the evidence routes and
never count as downloads; each download counts one against the share's limit.

A share stream is for watching, not for taking a copy (issue #11 finding 4): one stream
response carries at most :data:`SHARE_STREAM_WINDOW` bytes and never more than half the
recording, however the request is made (no ``Range``, ``bytes=0-``, a wide range): it answers 206
with ``Content-Range`` and a player asks for the next piece. So neither a view-only share nor a
share whose downloads are used up hands over a whole recording in one request, and each piece
is its own ``streamed`` event with its byte range.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from vault.casework import shares as share_ops
from vault.storage.catalog import Recording
from vault.ledger.custody import Action
from vault.casework.policy import (
    ALL_ORGANISATIONS,
    Permission,
    is_scoped,
)

from .._streaming import footage_response
from ..deps import ContextDep, ClientAddrDep, DenialsDep, RouteDep, VaultDep
from ..errors import responses
from ..schemas import (
    UUID_PATTERN,
    ShareCreate,
    ShareCreated,
    SharedRecording,
    SharePublic,
    ShareRecipientView,
    ShareRevoke,
)
from .evidence import RangeHeader

router = APIRouter(tags=["shares"])
recipient_router = APIRouter(tags=["share recipients"])

DEFAULT_SHARE_DAYS = 14
#: The most bytes one share stream response carries (a few seconds of CCTV at 4-8 Mbit/s).
SHARE_STREAM_WINDOW = 4 * 1024 * 1024
ShareId = Annotated[str, Path(pattern=UUID_PATTERN, description="Share id (UUID).")]
ShareToken = Annotated[
    str, Path(min_length=1, max_length=128, description="The share token from the link.")
]
RecordingId = Annotated[str, Path(pattern=UUID_PATTERN, description="Recording id (UUID).")]
_FOOTAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The footage"},
    206: {"description": "The requested byte range"},
}


@router.post(
    "/shares",
    summary="Share recordings",
    description="Grant a named recipient (person and organisation) access to recordings for a "
    "purpose and lawful basis, until an expiry, view-only or with a download limit. Returns the "
    "link once; only its hash is kept. Logged as `shared`.",
    status_code=201,
    response_model=ShareCreated,
    responses=responses(400, 401, 403, 404),
)
def create(ctx: ContextDep, body: ShareCreate) -> ShareCreated:
    ctx.require(Permission.SHARE_CREATE)
    for rid in dict.fromkeys(body.recording_ids):
        ctx.require_recording(Permission.SHARE_CREATE, rid)
    expires_at = body.expires_at or ctx.vault.clock() + dt.timedelta(days=DEFAULT_SHARE_DAYS)
    created = share_ops.create_share(
        ctx.vault,
        actor=ctx.principal.actor,
        recipient=body.recipient,
        recipient_org=body.recipient_org,
        purpose=body.purpose,
        lawful_basis=body.lawful_basis,
        reference=body.reference,
        recording_ids=body.recording_ids,
        expires_at=expires_at,
        allow_download=body.allow_download,
        max_downloads=body.max_downloads,
    )
    return ShareCreated(
        share=SharePublic.of(created.share, list(created.recording_ids), ctx.vault.clock()),
        token=created.token,
        url=f"/share/{created.token}",
    )


@router.get(
    "/shares",
    summary="List shares",
    description="Shares newest first: your own for ASB officers, your organisation's for other "
    "roles, all for administrators.",
    response_model=list[SharePublic],
    responses=responses(401, 403),
)
def list_shares(
    ctx: ContextDep,
    recording_id: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None,
    active: Annotated[bool, Query(description="Only shares still usable.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[SharePublic]:
    ctx.require(Permission.SHARE_READ)
    created_by, org = None, None
    if is_scoped(ctx.principal):
        created_by = ctx.principal.name
    elif ctx.principal.role not in ALL_ORGANISATIONS:
        org = ctx.principal.organisation
    rows = share_ops.list_shares(
        ctx.vault, created_by=created_by, organisation=org, recording_id=recording_id,
        active_only=active, limit=limit, offset=offset,
    )
    now = ctx.vault.clock()
    return [SharePublic.of(s, ids, now) for s, ids in rows]


@router.get(
    "/shares/{share_id}",
    summary="Share details",
    description="One share and its state (active, revoked, expired, exhausted).",
    response_model=SharePublic,
    responses=responses(401, 403, 404),
)
def get_share(ctx: ContextDep, share_id: ShareId) -> SharePublic:
    found = share_ops.get_share(ctx.vault, share_id)
    share = ctx.require_share(Permission.SHARE_READ, found[0] if found else None,
                          share_id)
    return SharePublic.of(share, found[1] if found else [], ctx.vault.clock())


@router.post(
    "/shares/{share_id}/revoke",
    summary="Revoke a share",
    description="The link stops working at once (410 for the recipient). Logged as "
    "`share_revoked` with the reason.",
    response_model=SharePublic,
    responses=responses(400, 401, 403, 404),
)
def revoke(
    ctx: ContextDep, share_id: ShareId, body: ShareRevoke
) -> SharePublic:
    found = share_ops.get_share(ctx.vault, share_id)
    ctx.require_share(Permission.SHARE_REVOKE, found[0] if found else None,
                  share_id)
    share = share_ops.revoke_share(ctx.vault, share_id, actor=ctx.principal.actor, reason=body.reason)
    return SharePublic.of(share, found[1] if found else [], ctx.vault.clock())


# --- recipients ------------------------------------------------------------------------------


@recipient_router.get(
    "/share/{token}",
    summary="What a share grants (recipient)",
    description="For the recipient of a share link: who it is for, why, until when, and the "
    "recordings with their SHA-256 and links. No account needed; logged as `share_accessed`.",
    response_model=ShareRecipientView,
    responses=responses(403, 404, 410),
)
def recipient_view(
    vault: VaultDep, route: RouteDep, addr: ClientAddrDep, denials: DenialsDep, token: ShareToken
) -> ShareRecipientView:
    grant = share_ops.access_share(
        vault, token, share_ops.ShareAccess.METADATA, client_addr=addr, route=route,
        throttle=denials,
    )
    share = grant.share
    left = None if share.max_downloads is None else max(0, share.max_downloads - share.downloads)
    return ShareRecipientView(
        recipient=share.recipient,
        recipient_org=share.recipient_org,
        purpose=share.purpose,
        reference=share.reference,
        expires_at=share.expires_at,
        allow_download=share.allow_download,
        downloads_left=left,
        recordings=[
            SharedRecording(
                id=r.id, media_kind=r.media_kind, captured_start=r.captured_start,
                captured_end=r.captured_end, size=r.size, sha256=r.sha256,
                content_type=r.content_type,
                stream_url=f"/share/{token}/recordings/{r.id}/stream",
                download_url=f"/share/{token}/recordings/{r.id}/download"
                if share.allow_download else None,
            )
            for r in grant.recordings
        ],
    )


def _recording(grant: share_ops.ShareGrant, recording_id: str) -> Recording:
    return next(r for r in grant.recordings if r.id == recording_id)


def stream_window(size: int) -> int:
    """The most bytes one share stream response of a ``size``-byte recording carries: at most
    :data:`SHARE_STREAM_WINDOW`, and at most half the recording, so no single request is a copy."""
    return max(1, min(SHARE_STREAM_WINDOW, size // 2))


@recipient_router.get(
    "/share/{token}/recordings/{recording_id}/stream",
    summary="Play a shared recording (recipient, HTTP Range)",
    description="Inline footage for a player; Range seeks (206/416). Does not count as a "
    "download. Each response carries at most 4 MiB and at most half the recording (206 with "
    "`Content-Range`, also without `Range`): players fetch the rest piece by piece. Each "
    "request is logged (`share_accessed`, then `streamed` with the range).",
    response_class=StreamingResponse,
    responses={**_FOOTAGE, **responses(403, 404, 410, 416)},
)
def recipient_stream(
    vault: VaultDep, route: RouteDep, addr: ClientAddrDep, denials: DenialsDep, token: ShareToken,
    recording_id: RecordingId, range_header: RangeHeader = None,
) -> StreamingResponse:
    grant = share_ops.access_share(
        vault, token, share_ops.ShareAccess.STREAM, recording_id=recording_id,
        client_addr=addr, route=route, throttle=denials,
    )
    recording = _recording(grant, recording_id)
    return footage_response(
        vault, recording, actor=grant.actor, purpose=grant.purpose,
        range_header=range_header, action=Action.STREAMED, attachment=False,
        window=stream_window(recording.size),
    )


@recipient_router.get(
    "/share/{token}/recordings/{recording_id}/download",
    summary="Download a shared recording (recipient)",
    description="The whole file as an attachment, if the share allows downloads; each counts "
    "against its limit (410 once used up). `Repr-Digest` carries the SHA-256.",
    response_class=StreamingResponse,
    responses={200: _FOOTAGE[200], **responses(403, 404, 410)},
)
def recipient_download(
    vault: VaultDep, route: RouteDep, addr: ClientAddrDep, denials: DenialsDep, token: ShareToken,
    recording_id: RecordingId,
) -> StreamingResponse:
    grant = share_ops.access_share(
        vault, token, share_ops.ShareAccess.DOWNLOAD, recording_id=recording_id,
        client_addr=addr, route=route, throttle=denials,
    )
    return footage_response(
        vault, _recording(grant, recording_id), actor=grant.actor, purpose=grant.purpose,
        range_header=None, action=Action.DOWNLOADED, attachment=True,
    )


__all__ = ["SHARE_STREAM_WINDOW", "recipient_router", "router", "stream_window"]
