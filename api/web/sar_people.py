"""The SAR workspace's second half: the people found in one held window (issue #12 item 8).

The gallery (one face per track, the best view), the before/after preview at any frame, boxes
drawn over a missed face, muted or bleeped audio ranges on a waveform picture, the render, and
the rendered copy's player. The request itself (register, windows, disclosure) is
:mod:`api.web.sar`, whose helpers decide who may see the request and its jobs; every page here
asks them first, with the same single authorisation path that module describes.

Pictures of people are made on demand and never stored: a gallery thumbnail is the track's
best view cropped by :func:`redaction.thumbnail.thumbnail`, a preview is one frame with the
plan's masks applied by :class:`redaction.render.FrameMasker`; for each, the clip is decrypted
into a private spool directory (a ``viewed`` event with the request as purpose), read, and
removed, and the answer is ``Cache-Control: no-store``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path as FilePath
from typing import Annotated

import av
import cv2
import numpy as np
from fastapi import APIRouter, Form, Header, Path, Query, Request
from fastapi.responses import Response

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
from vault.casework.jobs import FINISHED, Job, JobState, spool_dir
from vault.casework.policy import (
    Permission,
    allowed,
)
from vault.casework.sar import SarView

from .._streaming import footage_response
from ..jobs import JobQueueDep
from ..routes.jobs import queue_render, save_edited_plan
from ..routes.sar import sar_purpose
from . import _security as sec
from ..deps import RequestContext
from .routes import (
    page,
    templates,
    _vault,
    WebContext,
    WebFormDep,
    WebUser,
    WebContextDep,
)

from .sar import (
    BASE,
    JobId,
    RecordingId,
    SarId,
    _jobs,
    _plan_job,
    _request,
    _stamp,
)

router = APIRouter(route_class=sec.make_route_class(templates), include_in_schema=False)

#: Thumbnail height in pixels (the gallery shows them at this size).
THUMB_HEIGHT = 96
#: The waveform picture's size in pixels.
WAVE_WIDTH, WAVE_HEIGHT = 800, 120
#: A preview is never larger than this on its longer side (the page scales it anyway).
PREVIEW_MAX = 960
_SECONDS = re.compile(r"^(?:(\d{1,3}):)?(\d{1,5}(?:\.\d{1,3})?)$")
_EMPTY_BOX = {"first": "", "last": "", "x0": "", "y0": "", "x1": "", "y1": ""}
_EMPTY_AUDIO = {"audio_start": "", "audio_end": "", "action": "mute"}


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
def people(ctx: WebContextDep, sar_id: SarId, job_id: JobId,
           frame: Annotated[int | None, Query(ge=0, le=10_000_000)] = None) -> Response:
    """A window's people (``sars.read`` on the request, ``recordings.view`` on the job),
    previewed at ``frame`` (default: the best view of the best face)."""
    view = _request(ctx, sar_id, Permission.SAR_READ)
    job = _plan_job(ctx, view, job_id, Permission.VIEW)
    return people_page(ctx.request, ctx.user, view, job, frame=frame)


@contextmanager
def _decrypted(ctx: RequestContext, view: SarView, job: Job) -> Iterator[FilePath]:
    """The window's clip decrypted into a private spool directory (a ``viewed`` event with
    the request as purpose), removed afterwards whatever happens."""
    recording = ctx.require_recording(Permission.VIEW, _clip_id(job))
    with spool_dir(ctx.vault, "sar-view-") as work:
        path = work / "clip.mp4"
        ctx.vault.export_file(recording.id, path, actor=ctx.principal.actor,
                          purpose=sar_purpose(view.sar), action=Action.VIEWED)
        yield path


def _jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={
        **sec.PAGE_HEADERS, "Cross-Origin-Resource-Policy": "same-origin"})


@router.get(f"{BASE}/{{sar_id}}/people/{{job_id}}/thumbnails/{{track_id}}")
def person_thumbnail(ctx: WebContextDep, sar_id: SarId, job_id: JobId,
                     track_id: Annotated[int, Path(ge=1, le=1_000_000)]) -> Response:
    """One person's best view, cropped from the clip now (never stored), no-store."""
    view = _request(ctx, sar_id, Permission.SAR_READ)
    job = _plan_job(ctx, view, job_id, Permission.VIEW)
    plan = _plan(job)
    if not any(t.id == track_id for t in plan.tracks):
        raise NotFound(f"there is no person {track_id} in this window")
    with _decrypted(ctx, view, job) as clip:
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
def preview(ctx: WebContextDep, sar_id: SarId, job_id: JobId,
            frame: Annotated[int, Path(ge=0, le=10_000_000)],
            masked: Annotated[bool, Query()] = True) -> Response:
    """Frame ``frame`` of the clip as it is (``masked=false``) or as the plan will render it
    (every track not kept and every manual box masked, the caption burned in), no-store."""
    view = _request(ctx, sar_id, Permission.SAR_READ)
    job = _plan_job(ctx, view, job_id, Permission.VIEW)
    plan = _plan(job)
    if frame >= plan.source.frame_count:
        raise NotFound(f"the clip has frames 0 to {plan.source.frame_count - 1}")
    with _decrypted(ctx, view, job) as clip:
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
def waveform(ctx: WebContextDep, sar_id: SarId, job_id: JobId) -> Response:
    """The clip's sound as a picture, with the ranges to hide shaded, no-store."""
    view = _request(ctx, sar_id, Permission.SAR_READ)
    job = _plan_job(ctx, view, job_id, Permission.VIEW)
    plan = _plan(job)
    with _decrypted(ctx, view, job) as clip:
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
    view = _request(ctx, sar_id, Permission.SAR_WRITE)
    if view.sar.status not in sars.ACTIVE:
        raise InvalidInput(f"subject access request {view.sar.reference} is "
                           f"{view.sar.status.value}: its redactions can no longer change")
    job = _plan_job(ctx, view, job_id, Permission.DOWNLOAD)
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
def copy_media(ctx: WebContextDep, sar_id: SarId, recording_id: RecordingId,
               range_header: Annotated[str | None, Header(alias="Range")] = None) -> Response:
    """A redacted copy of the request, for review in the page's player: the API's decrypting
    Range stream (a ``streamed`` event per request, the request as purpose), no-store."""
    vault = ctx.vault
    view = _request(ctx, sar_id, Permission.SAR_READ)
    if recording_id not in {rid for _, rid in _jobs(vault, view).copies()}:
        raise NotFound(f"subject access request {view.sar.reference} has no copy {recording_id}")
    recording: Recording = ctx.require_recording(Permission.VIEW, recording_id)
    response = footage_response(
        vault, recording, actor=ctx.principal.actor, purpose=sar_purpose(view.sar),
        range_header=range_header, action=Action.STREAMED, attachment=False,
        details={"via": "web", "session_id": ctx.session.id, "sar_id": view.sar.id})
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


__all__ = ["THUMB_HEIGHT", "people_page", "preview_masks", "router"]
