"""The subject access (SAR) workspace: register a request, hold its camera windows, find the
people in them, keep the requester visible, render, review and record the disclosure.

One authorisation path. Every page and image asks :func:`vault.casework.policy.require_sar` first
(``sars.read`` to look, ``sars.write`` to change: information-governance officers and
administrators of the request's organisation; anyone else is refused and the refusal is an
``access_denied`` event), then the question the API asks of the thing touched:
:func:`vault.casework.jobs.require_job` for a redaction job, :func:`vault.casework.policy.require_source` for a
camera, :func:`vault.casework.policy.require_recording` for footage. Changes go through the functions
the API routes call: :mod:`vault.casework.sar` (``sar.*`` events, the hold a window places),
:func:`api.routes.sar.queue_sar_redactions` (one plan job per held window, the request as its
purpose), :func:`api.routes.jobs.save_edited_plan` (a ``redaction_planned`` event with the new
plan's hash) and :func:`api.routes.jobs.queue_render` (a render bound to that hash).

Pictures of people are made on demand and never stored: a gallery thumbnail is the track's
best view cropped by :func:`redaction.thumbnail.thumbnail`, a preview is one frame with the
plan's masks applied by :class:`redaction.render.FrameMasker`; for each, the clip is decrypted
into a private spool directory (a ``viewed`` event with the request as purpose), read, and
removed, and the answer is ``Cache-Control: no-store``.

Job progress: the request page lists its jobs with a ``<progress>`` bar; ``static/sar.js``
polls ``/subject-access/{id}/progress`` (JSON) and reloads when a job finishes; without
script, a "Refresh progress" link does the same.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated

import av
import cv2
import numpy as np
from fastapi import APIRouter, Form, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import defer

from redaction import AudioEdit, Keyframe, ManualBox, PlanError, RedactionPlan
from redaction.errors import MediaError
from redaction.media import iter_frames
from redaction.plan import IntBox
from redaction.render import FrameMasker
from redaction.thumbnail import thumbnail
from vault.casework import sar as sars
from vault.storage.catalog import Recording
from vault.ledger.custody import Action
from vault.errors import InvalidInput, NotFound
from vault.access.identity import Principal
from vault.casework.jobs import FINISHED, Job, JobKind, JobState, spool_dir
from vault.casework.jobs import require_job as _require_job
from vault.casework.policy import (
    Permission,
    allowed,
    require,
    require_recording,
    require_sar,
    visible_sars,
)
from vault.casework.sar import MAX_EXTENSION_MONTHS, PENDING, SarView, SubjectAccessRequest
from vault.vault import Vault

from .._streaming import footage_response
from ..jobs import JobQueueDep
from ..routes.jobs import queue_render, save_edited_plan
from ..routes.sar import queue_sar_redactions, sar_purpose
from ..schemas import UUID_PATTERN
from . import _security as sec
from .routes import (
    _cameras,
    page,
    _route,
    templates,
    _vault,
    WebContext,
    WebFormDep,
    WebUser,
    WebUserDep,
)
from .uktime import UK, parse_uk

router = APIRouter(route_class=sec.make_route_class(templates), include_in_schema=False)

BASE = "/subject-access"
SarId = Annotated[str, Path(pattern=UUID_PATTERN)]
JobId = Annotated[str, Path(pattern=UUID_PATTERN)]
RecordingId = Annotated[str, Path(pattern=UUID_PATTERN)]
#: Thumbnail height in pixels (the gallery shows them at this size).
THUMB_HEIGHT = 96
#: The waveform picture's size in pixels.
WAVE_WIDTH, WAVE_HEIGHT = 800, 120
#: A preview is never larger than this on its longer side (the page scales it anyway).
PREVIEW_MAX = 960
_SECONDS = re.compile(r"^(?:(\d{1,3}):)?(\d{1,5}(?:\.\d{1,3})?)$")
_EMPTY_WINDOW = {"camera": "", "day": "", "start": "", "end": "", "note": ""}
_EMPTY_BOX = {"first": "", "last": "", "x0": "", "y0": "", "x1": "", "y1": ""}
_EMPTY_AUDIO = {"audio_start": "", "audio_end": "", "action": "mute"}


# --- who may, and what belongs to the request -------------------------------------------------


def _request(vault: Vault, user: WebUser, sar_id: str, permission: Permission,
             route: str) -> SarView:
    """The request, if the officer may ``permission`` it (refusals are logged)."""
    require_sar(vault, user.principal, permission, sar_id, route=route)
    return sars.get_sar(vault, sar_id)


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


def _plan_job(vault: Vault, user: WebUser, view: SarView, job_id: str, permission: Permission,
              route: str) -> Job:
    """The request's plan job ``job_id``, if the officer may ``permission`` it: the API's
    job decision (need-to-know over the recordings it reads, the organisation). A job of
    another request answers 404, as an unknown one does."""
    job = _require_job(vault, user.principal, permission, job_id, route=route)
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
def requests(request: Request, user: WebUserDep,
             show: Annotated[str, Query(pattern="^(open|all)$")] = "open") -> Response:
    """The organisation's requests (``vault.casework.policy.visible_sars``), soonest deadline first:
    the open ones, or all (``show=all``)."""
    vault, principal = _vault(request), user.principal
    require(vault, principal, Permission.SAR_READ, route=_route(request))
    rows = sars.list_sars(vault, scope=visible_sars(principal), limit=500)
    if show == "open":
        rows = [r for r in rows if r.status in sars.ACTIVE]
    return page(request, "sars.html", {
        "rows": [(r, _days_left(vault, r)) for r in rows], "show": show,
        "pending": PENDING, "can_write": allowed(principal.role, Permission.SAR_WRITE)})


def _register_page(request: Request, user: WebUser, values: dict[str, str],
                   errors: dict[str, str], status: int = 200) -> Response:
    return page(request, "sar_new.html", {"csrf": user.csrf, "values": values, "errors": errors},
                status=status)


@router.get(f"{BASE}/new")
def new_request(request: Request, user: WebUserDep) -> Response:
    """The register form, received today (UK date) unless changed."""
    vault = _vault(request)
    require(vault, user.principal, Permission.SAR_WRITE, route=_route(request))
    today = vault.clock().astimezone(UK).date()
    return _register_page(request, user, {"reference": "", "requester_name": "",
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
def request_detail(request: Request, user: WebUserDep, sar_id: SarId) -> Response:
    """One request (``sars.read``)."""
    view = _request(_vault(request), user, sar_id, Permission.SAR_READ, _route(request))
    return request_page(request, user, view)


@router.get(f"{BASE}/{{sar_id}}/progress")
def progress(request: Request, user: WebUserDep, sar_id: SarId) -> Response:
    """The request's redaction jobs, for ``static/sar.js`` to poll (no-store JSON)."""
    vault = _vault(request)
    view = _request(vault, user, sar_id, Permission.SAR_READ, _route(request))
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
    view = _request(ctx.vault, ctx.user, sar_id, Permission.SAR_WRITE, ctx.route)
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
    view = _request(ctx.vault, ctx.user, sar_id, Permission.SAR_WRITE, ctx.route)
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
    view = _request(ctx.vault, ctx.user, sar_id, Permission.SAR_WRITE, ctx.route)
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
    view = _request(ctx.vault, ctx.user, sar_id, Permission.SAR_WRITE, ctx.route)
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
    view = _request(ctx.vault, ctx.user, sar_id, Permission.SAR_WRITE, ctx.route)
    if not reason.strip():
        return request_page(ctx.request, ctx.user, view, errors={
            "close-reason": "Say why the request is being closed"}, status=400)
    sars.close_sar(ctx.vault, view.sar.id, reason=reason, refused=refused, actor=ctx.principal.actor)
    return sec.redirect(f"{BASE}/{view.sar.id}")


# --- the people in a window: gallery, preview, boxes, audio, render ----------------------------


def _plan(job: Job) -> RedactionPlan:
    if job.state is not JobState.SUCCEEDED or job.plan is None:
        raise InvalidInput(f"the search for people in this window is {job.state.value}: wait "
                           "for it to finish, or start it again from the request's page")
    return RedactionPlan.model_validate(job.plan)


def _clip_id(job: Job) -> str:
    rid = (job.result or {}).get("recording_id")
    if not rid:
        raise NotFound(f"job {job.id} has not cut its window yet")
    return str(rid)


def _seconds(frame: int, plan: RedactionPlan) -> float:
    return float(frame / plan.source.rate) if plan.source.rate else 0.0


def _clock(seconds: float) -> str:
    """``1:02.4``: a time in the clip as minutes and seconds."""
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


templates.env.filters["clip_clock"] = _clock


def people_page(request: Request, user: WebUser, view: SarView, job: Job, *,
                frame: int | None = None, box_form: dict[str, str] | None = None,
                audio_form: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                status: int = 200) -> Response:
    """A window's people: the gallery (best view, quality, keep), preview at a frame, a box
    over a missed face, audio ranges, render and the rendered copies."""
    vault, principal = _vault(request), user.principal
    plan = _plan(job)
    window = next(w for w, _ in view.windows if w.id == job.params["window"]["sar_window_id"])
    jobs = _jobs(vault, view)
    renders = jobs.renders_of(job)
    latest = jobs.latest.get(window.id)
    tracks = sorted(plan.tracks, key=lambda t: (-(t.quality or 0.0), t.id))
    last = plan.source.frame_count - 1
    if frame is None:
        frame = next((t.best_frame for t in tracks if t.best_frame is not None), 0)
    frame = max(0, min(last, frame))
    # Tracks the tracker could not tell apart: "check both before keeping either".
    related: dict[int, set[int]] = {}
    for span in plan.review:
        if span.reason == "identity" and span.related_track is not None:
            related.setdefault(span.track_id, set()).add(span.related_track)
            related.setdefault(span.related_track, set()).add(span.track_id)
    return page(request, "sar_people.html", {
        "related": {k: sorted(v) for k, v in related.items()},
        "csrf": user.csrf, "sar": view.sar, "job": job, "plan": plan, "window": window,
        "tracks": tracks, "frame": frame, "last": last, "seconds": _seconds(frame, plan),
        "rate": float(plan.source.rate), "at": lambda f: _seconds(f, plan),
        "renders": renders, "running": [r for r in renders if r.state not in FINISHED],
        "superseded": latest is not None and latest.id != job.id,
        "box": dict(box_form or _EMPTY_BOX), "audio": dict(audio_form or _EMPTY_AUDIO),
        "errors": errors or {}, "base": BASE, "stamp": _stamp(),
        "can_write": allowed(principal.role, Permission.SAR_WRITE)
        and view.sar.status in sars.ACTIVE,
        # The newest copy (or render asked for) was made from another version of the plan.
        "stale": bool(renders) and renders[0].params.get("plan_sha256") != plan.sha256(),
    }, status=status)


@router.get(f"{BASE}/{{sar_id}}/people/{{job_id}}")
def people(request: Request, user: WebUserDep, sar_id: SarId, job_id: JobId,
           frame: Annotated[int | None, Query(ge=0, le=10_000_000)] = None) -> Response:
    """A window's people (``sars.read`` on the request, ``recordings.view`` on the job),
    previewed at ``frame`` (default: the best view of the best face)."""
    vault = _vault(request)
    view = _request(vault, user, sar_id, Permission.SAR_READ, _route(request))
    job = _plan_job(vault, user, view, job_id, Permission.VIEW, _route(request))
    return people_page(request, user, view, job, frame=frame)


@contextmanager
def _decrypted(vault: Vault, principal: Principal, view: SarView, job: Job,
               route: str) -> Iterator[FilePath]:
    """The window's clip decrypted into a private spool directory (a ``viewed`` event with
    the request as purpose), removed afterwards whatever happens."""
    recording = require_recording(vault, principal, Permission.VIEW, _clip_id(job), route=route)
    with spool_dir(vault, "sar-view-") as work:
        path = work / "clip.mp4"
        vault.export_file(recording.id, path, actor=principal.actor,
                          purpose=sar_purpose(view.sar), action=Action.VIEWED)
        yield path


def _jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={
        **sec.PAGE_HEADERS, "Cross-Origin-Resource-Policy": "same-origin"})


@router.get(f"{BASE}/{{sar_id}}/people/{{job_id}}/thumbnails/{{track_id}}")
def person_thumbnail(request: Request, user: WebUserDep, sar_id: SarId, job_id: JobId,
                     track_id: Annotated[int, Path(ge=1, le=1_000_000)]) -> Response:
    """One person's best view, cropped from the clip now (never stored), no-store."""
    vault = _vault(request)
    view = _request(vault, user, sar_id, Permission.SAR_READ, _route(request))
    job = _plan_job(vault, user, view, job_id, Permission.VIEW, _route(request))
    plan = _plan(job)
    if not any(t.id == track_id for t in plan.tracks):
        raise NotFound(f"there is no person {track_id} in this window")
    with _decrypted(vault, user.principal, view, job, _route(request)) as clip:
        try:
            return _jpeg(thumbnail(clip, plan, track_id, height=THUMB_HEIGHT))
        except PlanError as error:
            raise NotFound(f"no picture of person {track_id}: {error}") from None


def preview_masks(plan: RedactionPlan, frame: int) -> tuple[list[IntBox], list[IntBox]]:
    """(track boxes, manual boxes) the render masks on ``frame``: every box of each person not
    kept (``TrackPlan.boxes_at``: their own and the ``extra`` of a joined track), and every
    manual box, so the preview hides exactly what the copy will."""
    tracks = [b for t in plan.tracks if not t.keep for b in t.boxes_at(frame)]
    manual = [b for m in plan.manual if (b := m.box_at(frame)) is not None]
    return tracks, manual


@router.get(f"{BASE}/{{sar_id}}/people/{{job_id}}/frames/{{frame}}")
def preview(request: Request, user: WebUserDep, sar_id: SarId, job_id: JobId,
            frame: Annotated[int, Path(ge=0, le=10_000_000)],
            masked: Annotated[bool, Query()] = True) -> Response:
    """Frame ``frame`` of the clip as it is (``masked=false``) or as the plan will render it
    (every track not kept and every manual box masked, the caption burned in), no-store."""
    vault = _vault(request)
    view = _request(vault, user, sar_id, Permission.SAR_READ, _route(request))
    job = _plan_job(vault, user, view, job_id, Permission.VIEW, _route(request))
    plan = _plan(job)
    if frame >= plan.source.frame_count:
        raise NotFound(f"the clip has frames 0 to {plan.source.frame_count - 1}")
    with _decrypted(vault, user.principal, view, job, _route(request)) as clip:
        try:
            image = next(f.image for f in iter_frames(clip) if f.index == frame)
        except StopIteration:
            raise NotFound(f"the clip ends before frame {frame}") from None
        except MediaError as error:
            raise NotFound(f"frame {frame} cannot be read: {error}") from None
    if masked:
        FrameMasker(plan.mask, plan.caption)(image, *preview_masks(plan, frame))
    height, width = image.shape[:2]
    scale = min(1.0, PREVIEW_MAX / max(height, width))
    shown = image if scale == 1.0 else cv2.resize(
        image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", shown, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:  # pragma: no cover - OpenCV always encodes a decoded frame
        raise MediaError("cannot encode the preview")
    return _jpeg(data.tobytes())


def _waveform(path: FilePath, plan: RedactionPlan) -> bytes:
    """PNG of the clip's sound: the peak level in each column (time runs left to right over
    the clip's duration), the ranges to mute or bleep shaded, a tick each second."""
    width, height, mid = WAVE_WIDTH, WAVE_HEIGHT, WAVE_HEIGHT // 2
    duration = max(plan.source.duration, 1e-3)
    image = np.full((height, width, 3), 255, np.uint8)
    for edit in plan.audio:
        x0, x1 = (int(min(width, max(0.0, t / duration * width))) for t in (edit.start, edit.end))
        image[:, x0:max(x0 + 1, x1)] = (200, 200, 200) if edit.action == "mute" else (160, 220, 255)
    peaks = np.zeros(width, np.float32)
    with av.open(str(path)) as container:
        if not container.streams.audio:
            cv2.putText(image, "no sound in this clip", (8, mid + 6), cv2.FONT_HERSHEY_SIMPLEX,
                        0.6, (11, 12, 12), 1, cv2.LINE_AA)
        else:
            stream = container.streams.audio[0]
            done = 0
            for frame in container.decode(stream):
                data = frame.to_ndarray()
                scale = 32768.0 if data.dtype == np.int16 else (
                    2147483648.0 if data.dtype == np.int32 else 1.0)
                channels = len(frame.layout.channels)
                level = np.abs(data.astype(np.float32) / scale)
                # Planar audio is one row per channel; packed audio interleaves them in one.
                if level.shape[0] == channels and channels > 1:
                    level = level.max(axis=0)
                else:
                    level = level.reshape(-1)[:frame.samples * channels].reshape(-1, channels)
                    level = level.max(axis=1)
                rate = frame.sample_rate or 48_000
                cols = ((done + np.arange(level.shape[0])) / rate / duration * width).astype(int)
                np.maximum.at(peaks, np.clip(cols, 0, width - 1), level)
                done += level.shape[0]
    for x, peak in enumerate(np.minimum(peaks, 1.0)):
        reach = round(float(peak) * (mid - 4))
        cv2.line(image, (x, mid - reach), (x, mid + reach), (11, 12, 12), 1)
    for second in range(int(duration) + 1):
        x = min(width - 1, int(second / duration * width))
        cv2.line(image, (x, height - 8), (x, height - 1), (80, 90, 95), 1)
    ok, data_png = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV always encodes an image it drew
        raise MediaError("cannot encode the waveform")
    return bytes(data_png.tobytes())


@router.get(f"{BASE}/{{sar_id}}/people/{{job_id}}/waveform")
def waveform(request: Request, user: WebUserDep, sar_id: SarId, job_id: JobId) -> Response:
    """The clip's sound as a picture, with the ranges to hide shaded, no-store."""
    vault = _vault(request)
    view = _request(vault, user, sar_id, Permission.SAR_READ, _route(request))
    job = _plan_job(vault, user, view, job_id, Permission.VIEW, _route(request))
    plan = _plan(job)
    with _decrypted(vault, user.principal, view, job, _route(request)) as clip:
        try:
            picture = _waveform(clip, plan)
        except av.error.FFmpegError as error:
            raise NotFound(f"the clip's sound cannot be read: {error}") from None
    return Response(picture, media_type="image/png", headers={
        **sec.PAGE_HEADERS, "Cross-Origin-Resource-Policy": "same-origin"})


def _edit(ctx: WebContext, view: SarView, job: Job, plan: RedactionPlan) -> Response:
    """Save the edited plan through the API's path and go back to the gallery."""
    save_edited_plan(ctx, job.id, plan, purpose=sar_purpose(view.sar))
    return sec.redirect(f"{BASE}/{view.sar.id}/people/{job.id}")


def _writable(ctx: WebContext, sar_id: str, job_id: str) -> tuple[SarView, Job, RedactionPlan]:
    """The request, plan job and plan a form edits (its CSRF token already checked)."""
    vault, user, route = ctx.vault, ctx.user, ctx.route
    view = _request(vault, user, sar_id, Permission.SAR_WRITE, route)
    if view.sar.status not in sars.ACTIVE:
        raise InvalidInput(f"subject access request {view.sar.reference} is "
                           f"{view.sar.status.value}: its redactions can no longer change")
    job = _plan_job(vault, user, view, job_id, Permission.DOWNLOAD, route)
    return view, job, _plan(job)


@router.post(f"{BASE}/{{sar_id}}/people/{{job_id}}/keep")
def keep(ctx: WebFormDep, sar_id: SarId, job_id: JobId,
         track: Annotated[list[int], Form(max_length=10_000)] = []) -> Response:  # noqa: B006
    """Keep exactly the ticked people visible (the requester); everyone else is masked."""
    view, job, plan = _writable(ctx, sar_id, job_id)
    chosen = set(track)
    unknown = chosen - {t.id for t in plan.tracks}
    if unknown:
        raise InvalidInput(f"there is no person {min(unknown)} in this window: reload the page")
    edited = plan.model_copy(update={"tracks": [
        t.model_copy(update={"keep": t.id in chosen}) for t in plan.tracks]})
    return _edit(ctx, view, job, edited)


def _frame_number(text: str, field: str, last: int) -> int:
    if not text.strip().isdigit():
        raise InvalidInput(f"{field}: enter a frame number from 0 to {last}")
    value = int(text)
    if value > last:
        raise InvalidInput(f"{field}: the clip's last frame is {last}")
    return value


@router.post(f"{BASE}/{{sar_id}}/people/{{job_id}}/boxes")
def add_box(
    ctx: WebFormDep,
    sar_id: SarId,
    job_id: JobId,
    first: Annotated[str, Form(max_length=12)] = "",
    last: Annotated[str, Form(max_length=12)] = "",
    x0: Annotated[str, Form(max_length=8)] = "",
    y0: Annotated[str, Form(max_length=8)] = "",
    x1: Annotated[str, Form(max_length=8)] = "",
    y1: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Mask a face the detector missed: a box (frame pixels) over a range of frames, added to
    the plan as a manual box."""
    view, job, plan = _writable(ctx, sar_id, job_id)
    form = {"first": first.strip(), "last": last.strip(), "x0": x0.strip(), "y0": y0.strip(),
            "x1": x1.strip(), "y1": y1.strip()}
    end = plan.source.frame_count - 1
    errors: dict[str, str] = {}
    frames: list[int] = []
    for name, label in (("first", "First frame"), ("last", "Last frame")):
        try:
            frames.append(_frame_number(form[name], label, end))
        except InvalidInput as error:
            errors[f"box-{name}"] = str(error)
    if len(frames) == 2 and frames[1] < frames[0]:
        errors["box-last"] = "Last frame: the box must end on or after its first frame"
    coords: list[int] = []
    limits = {"x0": plan.source.width, "x1": plan.source.width,
              "y0": plan.source.height, "y1": plan.source.height}
    for name in ("x0", "y0", "x1", "y1"):
        if not form[name].isdigit() or int(form[name]) > limits[name]:
            errors[f"box-{name}"] = (f"Box {name}: a whole number of pixels from 0 to "
                                     f"{limits[name]}")
        else:
            coords.append(int(form[name]))
    if len(coords) == 4 and not (coords[0] < coords[2] and coords[1] < coords[3]):
        errors["box-x1"] = "Box: the right edge must be right of the left, the bottom below the top"
    if errors:
        return people_page(ctx.request, ctx.user, view, job, box_form=form, errors=errors, status=400)
    taken = {m.id for m in plan.manual}
    number = next(n for n in range(1, len(taken) + 2) if f"web-{n}" not in taken)
    box = ManualBox(id=f"web-{number}",
                    keyframes=[Keyframe(frame=frames[0], box=(coords[0], coords[1], coords[2],
                                                              coords[3]))],
                    end=frames[1])
    return _edit(ctx, view, job, plan.model_copy(update={"manual": [*plan.manual, box]}))


@router.post(f"{BASE}/{{sar_id}}/people/{{job_id}}/boxes/{{box_id}}/remove")
def remove_box(ctx: WebFormDep, sar_id: SarId, job_id: JobId,
               box_id: Annotated[str, Path(max_length=64)]) -> Response:
    """Take a manual box out of the plan."""
    view, job, plan = _writable(ctx, sar_id, job_id)
    kept = [m for m in plan.manual if m.id != box_id]
    if len(kept) == len(plan.manual):
        raise NotFound(f"there is no box {box_id} in this plan")
    return _edit(ctx, view, job, plan.model_copy(update={"manual": kept}))


def _clip_seconds(text: str, field: str, duration: float) -> float:
    """Seconds into the clip from ``12.5`` or ``0:12.5``. Raises InvalidInput."""
    match = _SECONDS.fullmatch(text.strip())
    if not match:
        raise InvalidInput(f"{field}: enter seconds into the clip, for example 1.5 or 0:01.5")
    value = int(match.group(1) or 0) * 60 + float(match.group(2))
    if value > duration + 0.001:
        raise InvalidInput(f"{field}: the clip is {duration:.1f} seconds long")
    return value


@router.post(f"{BASE}/{{sar_id}}/people/{{job_id}}/audio")
def add_audio(
    ctx: WebFormDep,
    sar_id: SarId,
    job_id: JobId,
    audio_start: Annotated[str, Form(max_length=16)] = "",
    audio_end: Annotated[str, Form(max_length=16)] = "",
    action: Annotated[str, Form(max_length=8)] = "mute",
) -> Response:
    """Mute or bleep a range of the clip's sound (someone other than the requester speaking)."""
    view, job, plan = _writable(ctx, sar_id, job_id)
    form = {"audio_start": audio_start.strip(), "audio_end": audio_end.strip(), "action": action}
    errors: dict[str, str] = {}
    bounds: list[float] = []
    for name, label in (("audio_start", "From"), ("audio_end", "To")):
        try:
            bounds.append(_clip_seconds(form[name], label, plan.source.duration))
        except InvalidInput as error:
            errors[name] = str(error)
    if len(bounds) == 2 and bounds[1] <= bounds[0]:
        errors["audio_end"] = "To: the range must end after it starts"
    if action not in ("mute", "bleep"):
        errors["action-mute"] = "Choose mute (silence) or bleep (a tone)"
    if errors:
        return people_page(ctx.request, ctx.user, view, job, audio_form=form, errors=errors, status=400)
    edit = AudioEdit(start=bounds[0], end=bounds[1], action="bleep" if action == "bleep" else "mute")
    return _edit(ctx, view, job, plan.model_copy(update={"audio": [*plan.audio, edit]}))


@router.post(f"{BASE}/{{sar_id}}/people/{{job_id}}/audio/{{index}}/remove")
def remove_audio(ctx: WebFormDep, sar_id: SarId, job_id: JobId,
                 index: Annotated[int, Path(ge=0, le=10_000)]) -> Response:
    """Take an audio range out of the plan."""
    view, job, plan = _writable(ctx, sar_id, job_id)
    if index >= len(plan.audio):
        raise NotFound("there is no such audio range in this plan")
    audio = [a for i, a in enumerate(plan.audio) if i != index]
    return _edit(ctx, view, job, plan.model_copy(update={"audio": audio}))


@router.post(f"{BASE}/{{sar_id}}/people/{{job_id}}/render")
def render(ctx: WebFormDep, queue: JobQueueDep, sar_id: SarId, job_id: JobId) -> Response:
    """Render the plan as it stands (the API's render job, bound to the plan's hash)."""
    view, job, _plan_now = _writable(ctx, sar_id, job_id)
    queue_render(ctx, queue, job.id, purpose=sar_purpose(view.sar))
    return sec.redirect(f"{BASE}/{view.sar.id}/people/{job.id}#renders")


@router.get(f"{BASE}/{{sar_id}}/copies/{{recording_id}}/media")
def copy_media(request: Request, user: WebUserDep, sar_id: SarId, recording_id: RecordingId,
               range_header: Annotated[str | None, Header(alias="Range")] = None) -> Response:
    """A redacted copy of the request, for review in the page's player: the API's decrypting
    Range stream (a ``streamed`` event per request, the request as purpose), no-store."""
    vault = _vault(request)
    view = _request(vault, user, sar_id, Permission.SAR_READ, _route(request))
    if recording_id not in {rid for _, rid in _jobs(vault, view).copies()}:
        raise NotFound(f"subject access request {view.sar.reference} has no copy {recording_id}")
    recording: Recording = require_recording(vault, user.principal, Permission.VIEW, recording_id,
                                             route=_route(request))
    response = footage_response(
        vault, recording, actor=user.principal.actor, purpose=sar_purpose(view.sar),
        range_header=range_header, action=Action.STREAMED, attachment=False,
        details={"via": "web", "session_id": user.session.id, "sar_id": view.sar.id})
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


__all__ = ["BASE", "THUMB_HEIGHT", "people_page", "preview_masks", "request_page", "router"]
