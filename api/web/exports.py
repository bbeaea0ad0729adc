"""Case export with progress: a disclosure package of a case's evidence, built on the job queue.

    GET  /casework/{case}/export                            the form: to whom, why, lawful basis
    POST /casework/{case}/export                            queue the job -> the job's page
    GET  /casework/{case}/exports/{job}                     progress, then the download or the error
    GET  /casework/{case}/exports/{job}/progress            the same as JSON (static/progress.js)
    GET  /casework/{case}/exports/{job}/package             the finished ZIP (no-store)

The decisions are the API's (``POST /exports``, ``GET /jobs/{id}``, ``GET
/exports/{id}/package``), asked of the same functions, plus sight of the case:

1. Starting one needs ``cases.read`` on the case (:func:`vault.casework.policy.require_case`: members
   for ASB officers, the organisation's for others), ``shares.create`` (it discloses footage)
   and ``recordings.download`` on **every** item (:func:`vault.casework.policy.require_recording`).
   Any refusal is an ``access_denied`` event and nothing is queued.
2. Seeing the job, its progress or its package needs sight of the case again and
   :func:`vault.casework.jobs.require_job` (the job's organisation, every recording it reads within
   the caller's scope); a job of another case or kind is "not found" under this case, so the
   URL cannot be used to reach someone else's job.
3. The package is the API's stream (:func:`api._streaming.footage_response`): a
   ``downloaded`` custody event with the task's stated purpose, the export and job ids,
   ``Cache-Control: no-store``. The job itself logs ``exported`` when it builds the package.

A job that fails says what happened in words a person can act on (an item deleted meanwhile,
an integrity failure to report, the store unreachable), and a job nobody is draining says that
no worker is running.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from vault.casework import cases as case_ops
from vault import errors as vault_errors
from vault.actors import Purpose
from vault.storage.catalog import Case, Recording
from vault.ledger.custody import Action
from vault.errors import InvalidInput, NotFound
from vault.casework.jobs import (
    Job,
    JobKind,
    JobState,
    package_recording_id,
    queue_health,
)
from vault.casework.policy import Permission, allowed
from vault.vault import Vault

from .._streaming import footage_response
from ..deps import MAX_FIELD, MAX_PURPOSE, RequestContext
from ..jobs import get_job_queue
from ..schemas import UUID_PATTERN
from . import _security as sec
from .routes import (
    WebFormDep,
    WebUser,
    WebContextDep,
    page,
    templates,
)

router = APIRouter(route_class=sec.make_route_class(templates), include_in_schema=False)

CaseId = Annotated[str, Path(pattern=UUID_PATTERN)]
JobId = Annotated[str, Path(pattern=UUID_PATTERN)]
#: A queued job with no live worker after this long gets the "no worker is running" warning.
WORKER_WAIT = dt.timedelta(seconds=20)
#: The progress JSON asks the browser to poll again after this many milliseconds.
POLL_MS = 1000
_FIELDS = ("recipient", "recipient_org", "purpose", "reference", "lawful_basis")


def _live_items(vault: Vault, case_id: str) -> list[Recording]:
    """The case's items that still exist, in the case's order (deleted footage cannot go)."""
    _case, _org, ids, _members = case_ops.case_details(vault, case_id)
    with vault.sessions() as session:
        rows = {r.id: r for r in session.scalars(select(Recording).where(Recording.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows and rows[i].deleted_at is None]


def _authorise_start(ctx: RequestContext, case_id: str) -> tuple[Case, list[Recording]]:
    """Check 1: sight of the case, the right to disclose, and download on every item."""
    case = ctx.require_case(Permission.CASE_READ, case_id)
    ctx.require(Permission.SHARE_CREATE, object_ids=[case_id])
    items = _live_items(ctx.vault, case_id)
    for item in items:
        ctx.require_recording(Permission.DOWNLOAD, item.id)
    return case, items


def _form(request: Request, user: WebUser, case: Case, items: list[Recording],
          values: dict[str, str], errors: dict[str, str], status: int = 200) -> Response:
    return page(request, "export_new.html", {"csrf": user.csrf, "case": case, "items": items,
                                             "values": values, "errors": errors}, status=status)


@router.get("/casework/{case_id}/export")
def export_form(ctx: WebContextDep, case_id: CaseId) -> Response:
    case, items = _authorise_start(ctx, case_id)
    stated = ctx.session.purpose
    values = {"recipient": "", "recipient_org": "", "purpose": "", "lawful_basis": "",
              "reference": case.crime_number or case.reference
              or (stated.reference if stated else "") or ""}
    return _form(ctx.request, ctx.user, case, items, values, {})


@router.post("/casework/{case_id}/export")
def start_export(
    ctx: WebFormDep,
    case_id: CaseId,
    recipient: Annotated[str, Form(max_length=MAX_FIELD + 1)] = "",
    recipient_org: Annotated[str, Form(max_length=MAX_FIELD + 1)] = "",
    purpose: Annotated[str, Form(max_length=MAX_PURPOSE + 1)] = "",
    reference: Annotated[str, Form(max_length=MAX_FIELD + 1)] = "",
    lawful_basis: Annotated[str, Form(max_length=MAX_FIELD + 1)] = "",
) -> Response:
    """Queue the export job (the API's ``POST /exports``) and go to its page."""
    case, items = _authorise_start(ctx, case_id)
    values = dict(zip(_FIELDS, (v.strip() for v in (recipient, recipient_org, purpose,
                                                    reference, lawful_basis)), strict=True))
    if not items:
        raise InvalidInput("This case has no evidence to export: add a recording or clip to it "
                           "first, then export it")
    errors: dict[str, str] = {}
    if not values["recipient"]:
        errors["recipient"] = "Enter the name of the person receiving the package"
    if not values["recipient_org"]:
        errors["recipient_org"] = "Enter their organisation, for example the police force"
    if not values["purpose"]:
        errors["purpose"] = "Say why the footage is disclosed; it is written into the package"
    if not values["lawful_basis"]:
        errors["lawful_basis"] = "Enter the lawful basis, for example DPA 2018 s.35 law enforcement"
    limits = {"purpose": MAX_PURPOSE, **{f: MAX_FIELD for f in _FIELDS if f != "purpose"}}
    for name, limit in limits.items():
        if len(values[name]) > limit:
            errors[name] = f"Use at most {limit} characters"
    if errors:
        return _form(ctx.request, ctx.user, case, items, values, errors, status=400)
    job = get_job_queue(ctx.request).submit(
        JobKind.EXPORT, actor=ctx.principal.actor, vault=ctx.vault,
        purpose=Purpose(purpose=values["purpose"], lawful_basis=values["lawful_basis"],
                        reference=values["reference"] or None),
        # case_id ties the job to this case's pages (check 2); the rest is the API's params.
        params={"recording_ids": [r.id for r in items], "recipient": values["recipient"],
                "recipient_org": values["recipient_org"], "case_id": case_id},
    )
    return sec.redirect(f"/casework/{case_id}/exports/{job.id}")


def _export_job(ctx: RequestContext, case_id: str, job_id: str,
                permission: Permission) -> tuple[Case, Job]:
    """Check 2: sight of the case, then the API's job decision; the job must be this case's
    export (anything else is not found here)."""
    case = ctx.require_case(Permission.CASE_READ, case_id)
    job = ctx.require_job(permission, job_id)
    if job.kind != JobKind.EXPORT or (job.params or {}).get("case_id") != case_id:
        raise NotFound(f"case {case.reference} has no export job {job_id}")
    return case, job


#: What a person can do about a failed export, by the kind of error that stopped it.
_ADVICE: tuple[tuple[type[vault_errors.VaultError], str], ...] = (
    (vault_errors.Shredded, (
     "An item on this case was deleted after the export was started, so it cannot go into a "
     "package. Check the case's evidence, then start the export again.")),
    (vault_errors.NotFound, (
     "An item on this case is missing from the vault. Check the case's evidence, then start "
     "the export again; if the item should be there, tell your administrator.")),
    (vault_errors.IntegrityError, (
     "An item failed its integrity check, so nothing was disclosed. Do not send footage from "
     "another copy: tell your administrator, quoting the job reference below, so they can run "
     "'evidence-vault fixity check'.")),
    (vault_errors.KeyUnavailable, (
     "The vault could not open an item's encryption key. Tell your administrator, quoting the "
     "job reference below (the keyring may be the wrong one).")),
    (vault_errors.StorageError, (
     "The vault's storage could not be reached. Wait a few minutes, then start the export "
     "again.")),
)


def failure_advice(error: str | None) -> str:
    """What the officer should do about a failed export, from the job's error text
    (``"ClassName: message"``, as :class:`vault.casework.jobs.JobQueue` records it)."""
    name = (error or "").split(":", 1)[0].strip()
    kind = getattr(vault_errors, name, None)
    if isinstance(kind, type) and issubclass(kind, vault_errors.VaultError):
        for base, advice in _ADVICE:
            if issubclass(kind, base):
                return advice
    return ("The package could not be made. Start the export again; if it fails again, tell "
            "your administrator, quoting the job reference below.")


def _progress(vault: Vault, case_id: str, job: Job) -> dict[str, Any]:
    """The job as the page and static/progress.js show it."""
    finished = job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
    waiting = None
    if job.state is JobState.QUEUED:
        health = queue_health(vault, warn_after=WORKER_WAIT, fail_after=dt.timedelta(days=1))
        if health.live_workers == 0:
            waiting = ("No job worker is running, so the export is waiting. Ask your "
                       "administrator to start 'evidence-vault worker'; it then starts by itself.")
    result = job.result or {}
    return {
        "state": job.state.value,
        "percent": round((1.0 if job.state is JobState.SUCCEEDED else job.progress) * 100),
        "message": {"queued": "Waiting to start", "running": "Running", "done": "Done",
                    "failed": "Failed"}.get(job.message or "", job.message or ""),
        "finished": finished,
        "waiting": waiting,
        "advice": failure_advice(job.error) if job.state is JobState.FAILED else None,
        "package": (f"/casework/{case_id}/exports/{job.id}/package"
                    if job.state is JobState.SUCCEEDED else None),
        "sha256": result.get("sha256"),
        "size": result.get("size"),
        "files": result.get("files"),
    }


@router.get("/casework/{case_id}/exports/{job_id}")
def export_job(ctx: WebContextDep, case_id: CaseId, job_id: JobId) -> Response:
    case, job = _export_job(ctx, case_id, job_id, Permission.READ)
    return page(ctx.request, "export_job.html", {
        "case": case, "job": job, "progress": _progress(ctx.vault, case_id, job),
        "params": job.params or {}, "purpose": job.purpose, "poll_ms": POLL_MS,
        "can_restart": allowed(ctx.principal.role, Permission.SHARE_CREATE)})


@router.get("/casework/{case_id}/exports/{job_id}/progress")
def export_progress(ctx: WebContextDep, case_id: CaseId, job_id: JobId) -> Response:
    """The job's progress as JSON for static/progress.js (the page itself works without it)."""
    _case, job = _export_job(ctx, case_id, job_id, Permission.READ)
    return JSONResponse({**_progress(ctx.vault, case_id, job), "poll_ms": POLL_MS},
                        headers=sec.PAGE_HEADERS)


@router.get("/casework/{case_id}/exports/{job_id}/package")
def export_package(
    ctx: WebContextDep,
    case_id: CaseId,
    job_id: JobId,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """The finished package (the API's ``GET /exports/{id}/package``), a ``downloaded``
    event with the task's purpose."""
    vault = ctx.vault
    _case, job = _export_job(ctx, case_id, job_id, Permission.DOWNLOAD)
    stated = ctx.session.purpose
    if stated is None:
        return sec.redirect(f"/purpose?next=/casework/{case_id}/exports/{job_id}")
    result = job.result or {}
    return footage_response(
        vault, vault.recording(package_recording_id(job)), actor=ctx.principal.actor,
        purpose=stated, range_header=range_header, action=Action.DOWNLOADED, attachment=True,
        details={"job_id": job.id, "export_id": result.get("export_id"),
                 "recording_ids": job.recording_ids, "case_id": case_id, "via": "web",
                 "route": ctx.route},
    )


__all__ = ["POLL_MS", "WORKER_WAIT", "failure_advice", "router"]
