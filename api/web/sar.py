"""The subject access (SAR) workspace: register a request, hold its camera windows, find the
people in them, keep the requester visible, render, review and record the disclosure.

One authorisation path. Every page and image opens with the web request context
(:data:`api.web.routes.WebContextDep`; a form with :data:`~api.web.routes.WebFormDep`) and asks
its ``require_sar`` (:func:`vault.casework.policy.require_sar`) first (``sars.read`` to look,
``sars.write`` to change: information-governance officers and administrators of the request's
organisation; anyone else is refused and the refusal is an
``access_denied`` event), then the question the API asks of the thing touched:
:func:`vault.casework.jobs.require_job` for a redaction job, :func:`vault.casework.policy.require_source` for a
camera, :func:`vault.casework.policy.require_recording` for footage. Changes go through the functions
the API routes call: :mod:`vault.casework.sar` (``sar.*`` events, the hold a window places),
:func:`api.routes.sar.queue_sar_redactions` (one plan job per held window, the request as its
purpose), :func:`api.routes.jobs.save_edited_plan` (a ``redaction_planned`` event with the new
plan's hash) and :func:`api.routes.jobs.queue_render` (a render bound to that hash).

The people found in a window (gallery, previews, drawn boxes, audio edits, render, the copy's
player) are :mod:`api.web.sar_people`, the second half of the workspace, split off by concept.

Job progress: the request page lists its jobs with a ``<progress>`` bar; ``static/sar.js``
polls ``/subject-access/{id}/progress`` (JSON) and reloads when a job finishes; without
script, a "Refresh progress" link does the same.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import defer

from vault.casework import sar as sars
from vault.errors import InvalidInput, NotFound
from vault.casework.jobs import FINISHED, Job, JobKind, JobState
from vault.casework.policy import (
    Permission,
    allowed,
    visible_sars,
)
from vault.casework.sar import MAX_EXTENSION_MONTHS, PENDING, SarView, SubjectAccessRequest
from vault.vault import Vault

from ..jobs import JobQueueDep
from ..routes.sar import queue_sar_redactions
from ..schemas import UUID_PATTERN
from . import _security as sec
from ..deps import RequestContext
from .routes import (
    _cameras,
    page,
    templates,
    _vault,
    WebFormDep,
    WebUser,
    WebContextDep,
)
from .uktime import UK, parse_uk

router = APIRouter(route_class=sec.make_route_class(templates), include_in_schema=False)

BASE = "/subject-access"
SarId = Annotated[str, Path(pattern=UUID_PATTERN)]
JobId = Annotated[str, Path(pattern=UUID_PATTERN)]
RecordingId = Annotated[str, Path(pattern=UUID_PATTERN)]
_EMPTY_WINDOW = {"camera": "", "day": "", "start": "", "end": "", "note": ""}


# --- who may, and what belongs to the request -------------------------------------------------


def _request(ctx: RequestContext, sar_id: str, permission: Permission) -> SarView:
    """The request, if the officer may ``permission`` it (``ctx.require_sar``: refusals are
    logged)."""
    ctx.require_sar(permission, sar_id)
    return sars.get_sar(ctx.vault, sar_id)


def _window_ids(view: SarView) -> set[str]:
    return {w.id for w, _ in view.windows}


def _belongs(job: Job, view: SarView, plan_ids: set[str] | None = None) -> bool:
    """Whether ``job`` is one of the request's redaction jobs: a plan job cut from one of its
    windows, or a render of such a plan (``plan_ids``: the request's plan jobs)."""
    window = (job.params or {}).get("window")
    if job.kind is JobKind.REDACTION_PLAN:
        return isinstance(window, dict) and window.get("sar_window_id") in _window_ids(view)
    return job.kind is JobKind.REDACTION_RENDER and plan_ids is not None \
        and job.parent_id in plan_ids


def _plan_job(ctx: RequestContext, view: SarView, job_id: str, permission: Permission) -> Job:
    """The request's plan job ``job_id``, if the officer may ``permission`` it: the API's
    job decision (need-to-know over the recordings it reads, the organisation). A job of
    another request answers 404, as an unknown one does."""
    job = ctx.require_job(permission, job_id)
    if not _belongs(job, view):
        raise NotFound(f"subject access request {view.sar.reference} has no redaction job {job_id}")
    return job


@dataclass(frozen=True)
class SarJobs:
    """The request's redaction jobs: each window's latest plan job, every render (newest
    first, whichever plan it came from), and all of them in order (for the progress poll)."""

    latest: dict[str, Job | None]
    renders: list[Job]
    every: list[Job]

    def renders_of(self, plan_job: Job) -> list[Job]:
        """The renders of one plan job, newest first."""
        return [r for r in self.renders if r.parent_id == plan_job.id]

    def copies(self) -> list[tuple[Job, str]]:
        """(render job, redacted recording id) of every finished render of the request."""
        return [(r, str(r.result["redacted_recording_id"])) for r in self.renders
                if r.state is JobState.SUCCEEDED and r.result
                and r.result.get("redacted_recording_id")]


def _jobs(vault: Vault, view: SarView) -> SarJobs:
    """The request's plan jobs (those cut from its windows, whoever asked: an administrator's
    jobs carry the administrator's organisation) and the renders of those plans, without the plans themselves
    (each can be large; the progress poll reads this every second)."""
    query = (select(Job).options(defer(Job.plan))
             .where(Job.kind.in_([JobKind.REDACTION_PLAN, JobKind.REDACTION_RENDER]),
                    Job.created_at >= view.sar.created_at)
             .order_by(Job.created_at, Job.id))
    with vault.sessions() as session:
        rows = list(session.scalars(query))
    plans = [j for j in rows if _belongs(j, view)]
    plan_ids = {j.id for j in plans}
    renders = [j for j in rows if j.kind is JobKind.REDACTION_RENDER and _belongs(j, view, plan_ids)]
    latest: dict[str, Job | None] = {}
    for window, _hold in view.windows:
        mine = [j for j in plans if j.params["window"]["sar_window_id"] == window.id]
        latest[window.id] = mine[-1] if mine else None
    return SarJobs(latest=latest, renders=list(reversed(renders)), every=plans + renders)


# --- the list and the register form -----------------------------------------------------------


def _stamp() -> str:
    """A value that makes each "Refresh progress" link a new address: a link to the page's own
    address with the same ``#fragment`` only scrolls, where a new one loads the page again."""
    return secrets.token_hex(4)


def _days_left(vault: Vault, request: SubjectAccessRequest) -> int:
    """Whole days from today (UK date) to the deadline; negative when overdue."""
    today = vault.clock().astimezone(UK).date()
    return (request.deadline - today).days


def _countdown(days: int) -> str:
    if days > 1:
        return f"{days} days left"
    if days == 1:
        return "1 day left"
    if days == 0:
        return "due today"
    return f"overdue by {-days} day{'s' if days != -1 else ''}"


templates.env.filters["countdown"] = _countdown


@router.get(BASE)
def requests(ctx: WebContextDep,
             show: Annotated[str, Query(pattern="^(open|all)$")] = "open") -> Response:
    """The organisation's requests (``vault.casework.policy.visible_sars``), soonest deadline first:
    the open ones, or all (``show=all``)."""
    vault, principal = ctx.vault, ctx.principal
    ctx.require(Permission.SAR_READ)
    rows = sars.list_sars(vault, scope=visible_sars(principal), limit=500)
    if show == "open":
        rows = [r for r in rows if r.status in sars.ACTIVE]
    return page(ctx.request, "sars.html", {
        "rows": [(r, _days_left(vault, r)) for r in rows], "show": show,
        "pending": PENDING, "can_write": allowed(principal.role, Permission.SAR_WRITE)})


def _register_page(request: Request, user: WebUser, values: dict[str, str],
                   errors: dict[str, str], status: int = 200) -> Response:
    return page(request, "sar_new.html", {"csrf": user.csrf, "values": values, "errors": errors},
                status=status)


@router.get(f"{BASE}/new")
def new_request(ctx: WebContextDep) -> Response:
    """The register form, received today (UK date) unless changed."""
    ctx.require(Permission.SAR_WRITE)
    today = ctx.vault.clock().astimezone(UK).date()
    return _register_page(ctx.request, ctx.user, {"reference": "", "requester_name": "",
                                          "requester_contact": "", "received_on": f"{today:%Y-%m-%d}",
                                          "description": ""}, {})


@router.post(BASE)
def register(
    ctx: WebFormDep,
    reference: Annotated[str, Form(max_length=129)] = "",
    requester_name: Annotated[str, Form(max_length=257)] = "",
    requester_contact: Annotated[str, Form(max_length=513)] = "",
    received_on: Annotated[str, Form(max_length=32)] = "",
    description: Annotated[str, Form(max_length=4001)] = "",
) -> Response:
    """Register a request (``sar.registered``); its deadline is one calendar month on."""
    ctx.require(Permission.SAR_WRITE)
    values = {"reference": reference.strip(), "requester_name": requester_name.strip(),
              "requester_contact": requester_contact.strip(), "received_on": received_on.strip(),
              "description": description.strip()}
    errors: dict[str, str] = {}
    if not values["reference"]:
        errors["reference"] = "Enter the request's reference, for example SAR-2026-014"
    if not values["requester_name"]:
        errors["requester_name"] = "Enter the name of the person asking for their footage"
    received = None
    try:
        received = dt.date.fromisoformat(values["received_on"])
        if received > ctx.vault.clock().astimezone(UK).date():
            errors["received_on"] = "Date received: a request cannot be received in the future"
    except ValueError:
        errors["received_on"] = "Date received: enter it as YYYY-MM-DD, for example 2026-11-25"
    if errors or received is None:
        return _register_page(ctx.request, ctx.user, values, errors, status=400)
    try:
        made = sars.register_sar(
            ctx.vault, reference=values["reference"], requester_name=values["requester_name"],
            requester_contact=values["requester_contact"] or None, received_on=received,
            description=values["description"] or None, actor=ctx.principal.actor)
    except InvalidInput as error:
        field = "reference" if "reference" in str(error) or "exists" in str(error) else (
            "requester_name" if "name" in str(error) else "description")
        return _register_page(ctx.request, ctx.user, values, {field: str(error).capitalize()}, status=400)
    return sec.redirect(f"{BASE}/{made.id}")


# --- one request ------------------------------------------------------------------------------


def request_page(request: Request, user: WebUser, view: SarView, *,
                 window_form: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                 status: int = 200) -> Response:
    """The request: deadline, extension, windows (and the form to attach one), redaction jobs
    with their progress, the redacted copies, disclosures, closing."""
    vault, principal = _vault(request), user.principal
    jobs = _jobs(vault, view)
    form = dict(window_form or _EMPTY_WINDOW)
    if not form["day"]:
        form["day"] = f"{vault.clock().astimezone(UK) - dt.timedelta(days=1):%Y-%m-%d}"
    active = view.sar.status in sars.ACTIVE
    return page(request, "sar.html", {
        "csrf": user.csrf, "sar": view.sar, "windows": view.windows, "disclosures": view.disclosures,
        "days_left": _days_left(vault, view.sar), "latest": jobs.latest,
        "running": [j for j in jobs.every if j.state not in FINISHED],
        "copies": jobs.copies(), "cameras": _cameras(vault, principal), "form": form,
        "errors": errors or {}, "active": active, "pending": view.sar.status in PENDING,
        "can_write": allowed(principal.role, Permission.SAR_WRITE) and active,
        "max_extension": MAX_EXTENSION_MONTHS - view.sar.extension_months,
        "base": BASE, "stamp": _stamp(),
    }, status=status)


@router.get(f"{BASE}/{{sar_id}}")
def request_detail(ctx: WebContextDep, sar_id: SarId) -> Response:
    """One request (``sars.read``)."""
    view = _request(ctx, sar_id, Permission.SAR_READ)
    return request_page(ctx.request, ctx.user, view)


@router.get(f"{BASE}/{{sar_id}}/progress")
def progress(ctx: WebContextDep, sar_id: SarId) -> Response:
    """The request's redaction jobs, for ``static/sar.js`` to poll (no-store JSON)."""
    vault = ctx.vault
    view = _request(ctx, sar_id, Permission.SAR_READ)
    return JSONResponse({"jobs": [
        {"id": j.id, "state": j.state.value, "progress": round(j.progress, 3),
         "message": j.message or "", "finished": j.state in FINISHED}
        for j in _jobs(vault, view).every]},
        headers=sec.PAGE_HEADERS)


@router.post(f"{BASE}/{{sar_id}}/extend")
def extend(ctx: WebFormDep, sar_id: SarId,
           months: Annotated[str, Form(max_length=2)] = "",
           reason: Annotated[str, Form(max_length=2001)] = "") -> Response:
    """Extend the deadline by one or two months with the reason (``sar.extended``)."""
    view = _request(ctx, sar_id, Permission.SAR_WRITE)
    if months not in ("1", "2"):
        return request_page(ctx.request, ctx.user, view, errors={
            "months": "Choose how many months to extend by (at most two in all)"}, status=400)
    if not reason.strip():
        return request_page(ctx.request, ctx.user, view, errors={
            "extension-reason": "Say why the request needs longer, for example it is complex"},
            status=400)
    try:
        sars.extend_sar(ctx.vault, view.sar.id, months=int(months), reason=reason,
                        actor=ctx.principal.actor)
    except InvalidInput as error:
        return request_page(ctx.request, ctx.user, view, errors={"months": str(error).capitalize()},
                            status=400)
    return sec.redirect(f"{BASE}/{view.sar.id}")


@router.post(f"{BASE}/{{sar_id}}/windows")
def attach(
    ctx: WebFormDep,
    sar_id: SarId,
    camera: Annotated[str, Form(max_length=128)] = "",
    day: Annotated[str, Form(max_length=32)] = "",
    start: Annotated[str, Form(max_length=32)] = "",
    end: Annotated[str, Form(max_length=32)] = "",
    note: Annotated[str, Form(max_length=2001)] = "",
) -> Response:
    """Attach a camera window typed in UK time; its footage is held at once (``held`` and
    ``sar.window_attached``), as ``POST /sars/{id}/windows`` does."""
    view = _request(ctx, sar_id, Permission.SAR_WRITE)
    form = {"camera": camera.strip(), "day": day.strip(), "start": start.strip(),
            "end": end.strip(), "note": note.strip()}
    errors: dict[str, str] = {}
    if not form["camera"]:
        errors["camera"] = "Choose the camera the requester was seen on"
    since = until = None
    try:
        since = parse_uk(form["day"], form["start"], field="From", edge="start")
    except InvalidInput as error:
        errors["window-start"] = str(error)
    try:
        until = parse_uk(form["day"], form["end"], field="To", edge="end")
    except InvalidInput as error:
        errors["window-end"] = str(error)
    if since is not None and until is not None and until <= since:
        errors["window-end"] = "To: the window must end after it starts (over midnight: two windows)"
    if errors or since is None or until is None:
        return request_page(ctx.request, ctx.user, view, window_form=form, errors=errors, status=400)
    # The API's decision on the camera: the organisation's (and, for scoped roles, a site's).
    ctx.require_source(Permission.HOLD_PLACE, form["camera"])
    sars.attach_window(ctx.vault, view.sar.id, source_id=form["camera"], start=since, end=until,
                       note=form["note"] or None, actor=ctx.principal.actor)
    return sec.redirect(f"{BASE}/{view.sar.id}#windows")


@router.post(f"{BASE}/{{sar_id}}/redaction")
def find_people(ctx: WebFormDep, queue: JobQueueDep, sar_id: SarId) -> Response:
    """Queue one redaction-plan job per held window (the API's own decision and jobs)."""
    view = _request(ctx, sar_id, Permission.SAR_WRITE)
    try:
        queue_sar_redactions(ctx, queue, view.sar.id)
    except InvalidInput as error:
        return request_page(ctx.request, ctx.user, view, errors={"find-people": str(error)}, status=400)
    return sec.redirect(f"{BASE}/{view.sar.id}#redaction")


@router.post(f"{BASE}/{{sar_id}}/disclose")
def disclose(
    ctx: WebFormDep,
    sar_id: SarId,
    recording: Annotated[list[str], Form(max_length=100)] = [],  # noqa: B006
    method: Annotated[str, Form(max_length=257)] = "",
    notes: Annotated[str, Form(max_length=4001)] = "",
) -> Response:
    """Record which redacted copies went to the requester, how, and when (today): the
    ``sar.disclosed`` event with their hashes. Only the request's own rendered copies are
    offered; :func:`vault.casework.sar.record_disclosure` refuses anything else."""
    view = _request(ctx, sar_id, Permission.SAR_WRITE)
    ids = [r for r in recording if re.fullmatch(UUID_PATTERN, r)]
    errors: dict[str, str] = {}
    if not ids:
        errors["disclose-copies"] = "Choose the redacted copies you sent to the requester"
    if not method.strip():
        errors["method"] = "Say how they were sent, for example secure download link"
    if errors:
        return request_page(ctx.request, ctx.user, view, errors=errors, status=400)
    own = {rid for _, rid in _jobs(ctx.vault, view).copies()}
    if not set(ids) <= own:
        # A copy made for another request could pass the rails (redacted, inside a window of
        # the same camera) with other people kept visible: only this request's copies go.
        return request_page(ctx.request, ctx.user, view, errors={
            "disclose-copies": "Choose among the copies rendered for this request"}, status=400)
    for rid in ids:
        ctx.require_recording(Permission.READ, rid)
    try:
        sars.record_disclosure(ctx.vault, view.sar.id, recording_ids=ids, method=method,
                               notes=notes or None, actor=ctx.principal.actor)
    except InvalidInput as error:
        return request_page(ctx.request, ctx.user, view, errors={"disclose-copies": str(error)},
                            status=400)
    return sec.redirect(f"{BASE}/{view.sar.id}#disclosures")


@router.post(f"{BASE}/{{sar_id}}/close")
def close(ctx: WebFormDep, sar_id: SarId,
          reason: Annotated[str, Form(max_length=2001)] = "",
          refused: Annotated[bool, Form()] = False) -> Response:
    """Close (or refuse) the request; its holds are released (``released``, ``sar.closed``)."""
    view = _request(ctx, sar_id, Permission.SAR_WRITE)
    if not reason.strip():
        return request_page(ctx.request, ctx.user, view, errors={
            "close-reason": "Say why the request is being closed"}, status=400)
    sars.close_sar(ctx.vault, view.sar.id, reason=reason, refused=refused, actor=ctx.principal.actor)
    return sec.redirect(f"{BASE}/{view.sar.id}")


__all__ = ["BASE", "request_page", "router"]
