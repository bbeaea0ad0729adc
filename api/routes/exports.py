"""Disclosure export routes: build a package on the job queue, then download it.

    POST /exports                    -> 202 an export job (see GET /jobs/{id} for progress)
    GET  /exports/{job_id}/package   the finished ZIP (masters, derived copies, manifest,
                                     signed custody certificate, offline verifier)

The package (see :mod:`vault.casework.disclosure`) is kept under ``<home>/exports`` with owner-only
permissions. Making one needs ``shares.create`` (it discloses footage to a named recipient) and
``recordings.download`` on every recording in it (need-to-know); the export itself is an
``exported`` custody event, and each download of the package is a ``downloaded`` event naming
the recordings, the export and the package hash.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from vault.actors import Purpose
from vault.ledger.custody import Action
from vault.casework.jobs import JobKind, package_recording_id
from vault.casework.policy import Permission

from ..deps import ContextDep, PurposeDep
from .._streaming import footage_response
from ..errors import responses
from ..jobs import JobQueueDep
from ..schemas import UUID_PATTERN, Id, LongText, ShortText
from .evidence import RangeHeader
from .jobs import JobPublic

router = APIRouter(tags=["exports"])

JobId = Annotated[str, Path(pattern=UUID_PATTERN, description="Export job id (UUID).")]


class ExportCreate(BaseModel):
    """A disclosure: what, to whom, why."""

    model_config = ConfigDict(extra="forbid")

    recording_ids: list[Id] = Field(min_length=1, max_length=500)
    recipient: ShortText = Field(description="The person receiving the package.")
    recipient_org: ShortText = Field(description="Their organisation (police force, ASB team).")
    purpose: LongText
    lawful_basis: ShortText = Field(description="e.g. 'DPA 2018 s.35 law enforcement'.")
    reference: ShortText | None = Field(default=None, description="Case, crime or SAR reference.")


@router.post(
    "/exports",
    summary="Build a disclosure package",
    description="Queue a job that builds a disclosure package of the recordings for the named "
    "recipient: native masters and derived copies (clips, redacted copies, earlier packages, "
    "each naming its sources' SHA-256 and how it was made), SHA-256 manifest, signed custody "
    "certificate with inclusion proofs, and an offline verifier. The certificate holds every "
    "custody event of the items and their sources, but shows the recipient only what concerns "
    "them: other recipients and purposes, SAR requesters, client addresses and refusals are "
    "withheld, their events still proven in the log (docs/disclosure.md). Download it from "
    "GET /exports/{job_id}/package once the job has succeeded.",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses=responses(400, 401, 403, 404),
)
def create_export(
    ctx: ContextDep, queue: JobQueueDep, body: ExportCreate,
) -> JobPublic:
    ctx.require(Permission.SHARE_CREATE)
    ids = list(dict.fromkeys(body.recording_ids))
    for rid in ids:
        ctx.require_recording(Permission.DOWNLOAD, rid)
    job = queue.submit(
        JobKind.EXPORT, actor=ctx.principal.actor, vault=ctx.vault,
        purpose=Purpose(purpose=body.purpose, lawful_basis=body.lawful_basis, reference=body.reference),
        params={"recording_ids": ids, "recipient": body.recipient, "recipient_org": body.recipient_org},
    )
    return JobPublic.of(job)


@router.get(
    "/exports/{job_id}/package",
    summary="Download a disclosure package",
    description="The finished package (ZIP) of an export job; 404 until the job has succeeded. "
    "Needs `X-Purpose`; logged as `downloaded` with the package's SHA-256.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The package"},
               **responses(400, 401, 403, 404)},
)
def download_package(
    ctx: ContextDep, purpose: PurposeDep, job_id: JobId,
    range_header: RangeHeader = None,
) -> StreamingResponse:
    job = ctx.require_job(Permission.DOWNLOAD, job_id)
    stated = purpose.require()
    result = job.result or {}
    # Decrypted as it streams (Range resumes a large package); the read is the custody event.
    return footage_response(
        ctx.vault, ctx.vault.recording(package_recording_id(job)), actor=ctx.principal.actor,
        purpose=stated, range_header=range_header, action=Action.DOWNLOADED, attachment=True,
        details={"job_id": job.id, "export_id": result.get("export_id"),
                 "recording_ids": job.recording_ids, "route": ctx.route},
    )


__all__ = ["ExportCreate", "router"]
