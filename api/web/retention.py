"""The retention page (administrators and information governance): what the reaper will delete
in the next seven days and why, what holds keep, and the deletion certificates.

The forecast is :func:`vault.casework.retention.run_retention` as a dry run with its clock a week ahead:
the reaper's own decision, not a second implementation of it, so what the page says will go is
what the next runs delete unless a hold is placed first. Nothing is deleted or logged by looking.
The reader needs the roles' ``custody.read`` and ``holds.read`` (information governance,
administrators) and sees only recordings :func:`vault.casework.policy.visible_recordings` gives them:
another organisation's footage, holds and certificates stay out of sight. A certificate is
:func:`vault.casework.retention.deletion_certificate` (a signed note with the inclusion proof of the
``deleted`` event), as JSON to keep or hand over.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response
from sqlalchemy import select

from vault.storage.catalog import Recording
from vault.casework.holds import list_holds
from vault.casework.policy import Permission, visible_holds, visible_recordings
from vault.casework.retention import deletion_certificate, run_retention

from ..schemas import UUID_PATTERN
from . import _security as sec
from .routes import WebContextDep, page, templates

router = APIRouter(route_class=sec.make_route_class(templates), include_in_schema=False)

#: How far ahead the page looks.
HORIZON = dt.timedelta(days=7)
#: Deletion certificates listed (newest first).
CERTIFICATES_SHOWN = 100


@router.get("/retention")
def retention(ctx: WebContextDep) -> Response:
    vault, principal = ctx.vault, ctx.principal
    ctx.require(Permission.CUSTODY_READ)
    ctx.require(Permission.HOLD_READ)
    now = vault.clock()
    report = run_retention(vault, now=now + HORIZON, dry_run=True)
    ids = [d.recording_id for d in report.deleted + report.kept]
    with vault.sessions() as session:
        visible = set(session.scalars(select(Recording.id).where(
            Recording.id.in_(ids), visible_recordings(principal)))) if ids else set()
        deleted = list(session.scalars(
            select(Recording)
            .where(Recording.deleted_at.is_not(None), visible_recordings(principal))
            .order_by(Recording.deleted_at.desc(), Recording.id).limit(CERTIFICATES_SHOWN)))
    going = [d for d in report.deleted if d.recording_id in visible]
    kept = [d for d in report.kept if d.recording_id in visible]
    holds = list_holds(vault, active=True, scope=visible_holds(principal), limit=500)

    def when(value: str) -> dt.datetime:
        return dt.datetime.fromisoformat(value)

    return page(ctx.request, "retention.html", {
        "now": now, "until": now + HORIZON, "going": going, "kept": kept, "holds": holds,
        "deleted": deleted, "when": when, "days": HORIZON.days})


@router.get("/retention/certificates/{recording_id}")
def certificate(ctx: WebContextDep,
                recording_id: Annotated[str, Path(pattern=UUID_PATTERN)]) -> Response:
    """The signed deletion certificate of a deleted recording, as a JSON file."""
    ctx.require(Permission.CUSTODY_READ)
    ctx.require_recording(Permission.READ, recording_id)
    document = deletion_certificate(ctx.vault, recording_id)
    return Response(
        json.dumps(document, indent=2, sort_keys=True), media_type="application/json",
        headers={"Content-Disposition":
                 f'attachment; filename="deletion-certificate-{recording_id}.json"'})


__all__ = ["CERTIFICATES_SHOWN", "HORIZON", "router"]
