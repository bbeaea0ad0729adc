"""The officers' web pages: who is asking (session, request context, CSRF), purpose, find,
watch. Signing in and out is :mod:`api.web.signin`.

Every page asks the same questions of the same code as the API routes: :mod:`vault.casework.policy`
decides (``require``, ``require_recording``, ``visible_recordings``), :mod:`vault.casework.search`
searches (a ``searched`` event), and the player streams through the API's decrypting Range
path (:func:`api._streaming.footage_response`, a ``streamed`` event with the purpose stated
for the task). The only difference is how the caller is known: a session cookie instead of a
bearer token (vault/access/web_sessions.py).

Every page is a plain ``def``: each reads the catalog (and sign-in hashes a password), so
FastAPI runs it in a worker thread rather than on the event loop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from vault.access import web_sessions
from vault.actors import Purpose
from vault.storage.catalog import Recording, Source
from vault.config import Settings
from vault.ledger.custody import Action
from vault.errors import AccessDenied, InvalidInput, NotFound, Unauthenticated
from vault.access.identity import Principal
from vault.casework.policy import (
    Permission,
    allowed,
    case_scope,
    visible_recordings,
)
from vault.casework.cases import list_cases
from vault.casework.search import RecordingQuery, page_cursor, search_recordings
from ingest.errors import AgentsFileError, NvrAuthFailed, NvrError, NvrUnreachable, SpoolLocked
from vault.vault import Vault
from vault.access.web_sessions import ActiveSession, Stage

from .._streaming import footage_response
from ..routes.pulls import PullPublic, configured_agents, pull_window, pullable_cameras
from ..routes.thumbnails import Tiles, sheet_response, thumbnail_sheet
from ..deps import MAX_FIELD, MAX_PURPOSE, RequestContext, client_addr, route_name
from ..schemas import UUID_PATTERN
from . import _security as sec
from .uktime import format_uk, parse_uk, zone_name

TEMPLATES = FilePath(__file__).parent / "templates"
PAGE_SIZE = 25
#: Frames per recording on the find page's timeline, and on the player's scrub bar.
TIMELINE_TILES, SCRUB_TILES = 4, 40
SIGNED_IN = "web.signed_in"
SIGNED_OUT = "web.signed_out"
_MAX_NAME = 128

templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters["uk"] = format_uk
templates.env.filters["uk_zone"] = zone_name
templates.env.filters["less_ms"] = lambda when, ms: when - dt.timedelta(milliseconds=ms)

router = APIRouter(route_class=sec.make_route_class(templates), include_in_schema=False)


# --- who is asking ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WebUser:
    """A signed-in officer: their session (CSRF token, purposes) and their principal."""

    session: ActiveSession
    principal: Principal

    @property
    def csrf(self) -> str:
        return self.session.csrf_token

    def can(self, permission: str) -> bool:
        """Whether their role holds ``permission`` (a :class:`Permission` value): which
        pages the menu offers. Each page still decides for itself."""
        return allowed(self.principal.role, Permission(permission))


def _vault(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _session(request: Request) -> ActiveSession | None:
    settings = _settings(request)
    token = request.cookies.get(sec.session_cookie_name(settings))
    return web_sessions.find_session(
        _vault(request), token, idle=dt.timedelta(minutes=settings.web_session_idle_minutes))


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def web_user(request: Request) -> WebUser:
    """The signed-in officer. Raises SignInRequired (a redirect to the sign-in page)."""
    active = _session(request)
    if active is None or active.stage is not Stage.SIGNED_IN:
        raise sec.SignInRequired(_here(request) if request.method == "GET" else "/find")
    principal = web_sessions.session_principal(_vault(request), active,
                                               client_addr=client_addr(request))
    user = WebUser(session=active, principal=principal)
    request.state.web = user
    return user


WebUserDep = Annotated[WebUser, Depends(web_user)]
CsrfField = Annotated[str | None, Form(alias=sec.CSRF_FIELD)]


_route = route_name


@dataclass(frozen=True)
class WebContext(RequestContext):
    """A signed-in officer's request: the API's :class:`~api.deps.RequestContext` (vault,
    principal, route, and the same ``require*`` policy checks) with their session and the
    request, for rendering pages. :data:`WebFormDep` gives it to a form's handler only after
    the form's CSRF token is checked."""

    request: Request
    user: WebUser

    @property
    def session(self) -> ActiveSession:
        return self.user.session


def web_context(request: Request, user: WebUserDep) -> WebContext:
    """The signed-in officer's context (a redirect to sign in without a live session)."""
    return WebContext(vault=_vault(request), principal=user.principal, route=_route(request),
                      request=request, user=user)


WebContextDep = Annotated[WebContext, Depends(web_context)]


def _checked(request: Request, user: WebUser, sent: str | None) -> None:
    """CSRF check for a signed-in form; a refusal is an ``access_denied`` event."""
    try:
        sec.check_csrf(request, sent, user.csrf)
    except sec.CsrfRefused as refused:
        _vault(request).ledger.record(
            Action.ACCESS_DENIED, actor=user.principal.actor,
            details={"reason": f"csrf: {refused}"[:256], "route": _route(request)})
        raise


def web_form(ctx: WebContextDep, csrf_token: CsrfField = None) -> WebContext:
    """:func:`web_context` for a form post, once its CSRF token is checked (a refusal is an
    ``access_denied`` event and nothing else runs). The one opening of every signed-in form."""
    _checked(ctx.request, ctx.user, csrf_token)
    return ctx


WebFormDep = Annotated[WebContext, Depends(web_form)]


def page(request: Request, name: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    """Render a template with the signed-in officer (if any) in ``web``."""
    context.setdefault("web", getattr(request.state, "web", None))
    response: HTMLResponse = templates.TemplateResponse(request, name, context, status_code=status)
    return response


# --- purpose ---------------------------------------------------------------------------------


@router.get("/purpose")
def purpose_form(ctx: WebContextDep,
                 next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    current = ctx.session.purpose
    return page(ctx.request, "purpose.html", {
        "csrf": ctx.user.csrf, "next": sec.safe_next(next), "errors": {},
        "values": {"purpose": "", "reference": "", "lawful_basis": ""},
        "current": current, "earlier": ctx.session.purposes})


@router.post("/purpose")
def purpose_submit(
    ctx: WebFormDep,
    purpose: Annotated[str, Form(max_length=MAX_PURPOSE + 1)] = "",
    reference: Annotated[str, Form(max_length=MAX_FIELD + 1)] = "",
    lawful_basis: Annotated[str, Form(max_length=MAX_FIELD + 1)] = "",
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    values = {"purpose": purpose.strip(), "reference": reference.strip(),
              "lawful_basis": lawful_basis.strip()}
    errors: dict[str, str] = {}
    if not values["purpose"]:
        errors["purpose"] = "Say why you need this footage; it is recorded with every view"
    if not values["reference"]:
        errors["reference"] = "Enter the case, crime or SAR reference this task is for"
    if not values["lawful_basis"]:
        errors["lawful_basis"] = "Enter the lawful basis, for example DPA 2018 s.35 law enforcement"
    limits = {"purpose": MAX_PURPOSE, "reference": MAX_FIELD, "lawful_basis": MAX_FIELD}
    for name, limit in limits.items():
        if len(values[name]) > limit:
            errors[name] = f"Use at most {limit} characters"
    if errors:
        return page(ctx.request, "purpose.html", {
            "csrf": ctx.user.csrf, "next": sec.safe_next(next), "errors": errors, "values": values,
            "current": ctx.user.session.purpose, "earlier": ctx.user.session.purposes}, status=400)
    web_sessions.state_purpose(ctx.vault, ctx.user.session.id, Purpose(**values))
    return sec.redirect(sec.safe_next(next))


# --- find ------------------------------------------------------------------------------------


def _cameras(vault: Vault, principal: Principal) -> list[tuple[str, str | None, str | None]]:
    """(source id, name, site) of every camera with footage the principal may see."""
    query = (select(Source.id, Source.name, Source.site).distinct()
             .join(Recording, Recording.source_id == Source.id)
             .where(visible_recordings(principal), Recording.deleted_at.is_(None))
             .order_by(Source.site, Source.id))
    with vault.sessions() as session:
        return [(r.id, r.name, r.site) for r in session.execute(query)]


@dataclass(frozen=True)
class _Bar:
    """One recording on a camera's timeline: where its bar starts and how wide it is, as
    percentages of the searched window (clipped to it: a file may start before or end after)."""

    recording: Recording
    left: float
    width: float


def _timeline(results: list[Recording], since: dt.datetime,
              until: dt.datetime) -> list[tuple[str, list[_Bar]]]:
    """The page's results grouped per camera (in order of each camera's first recording), each
    recording placed on the window ``since``-``until``. A bar is never narrower than 0.5 % so a
    one-second file in a day's window still shows."""
    span = (until - since).total_seconds()
    groups: dict[str, list[_Bar]] = {}
    for rec in results:
        begin = max(rec.captured_start, since)
        finish = min(rec.captured_end or rec.captured_start, until)
        left = max(0.0, (begin - since).total_seconds() / span * 100)
        width = max(0.5, (finish - begin).total_seconds() / span * 100)
        groups.setdefault(rec.source_id, []).append(
            _Bar(rec, round(left, 3), round(min(width, 100 - left), 3)))
    return list(groups.items())


def _find_cases(vault: Vault, principal: Principal) -> list[tuple[str, str]]:
    """(case id, label) of the cases the principal may filter by: those they may read (ASB
    officers: the ones they work). Empty without ``cases.read``."""
    if not allowed(principal.role, Permission.CASE_READ):
        return []
    member, org = case_scope(principal)
    rows = list_cases(vault, member_id=member, organisation=org, limit=200)
    return [(case.id, case.reference + (f": {case.title}" if case.title else ""))
            for case, _ in rows]


def _pull_offers(vault: Vault, principal: Principal,
                 cameras: list[tuple[str, str | None, str | None]]) -> list[tuple[str, str, str | None]]:
    """The NVR cameras the find page offers to pull from (api/routes/pulls.py decides)."""
    if vault.settings.agents_file is None:
        return []
    try:
        agents = configured_agents(vault)
    except AgentsFileError:
        return []  # the API route and the CLI report the file's fault; the search still works
    return pullable_cameras(principal, agents, {site for _, _, site in cameras if site})


def _find_page(request: Request, user: WebUser, form: dict[str, str], *,
               after: str | None = None, pulled: PullPublic | None = None,
               errors: dict[str, str] | None = None, status: int = 200) -> Response:
    """The find page for ``form`` (site, camera, case, day, from, to) and, with ``day``, the
    search's results from cursor ``after``, grouped per camera on the window's timeline."""
    vault, principal = _vault(request), user.principal
    cameras = _cameras(vault, principal)
    cases = _find_cases(vault, principal)
    offers = _pull_offers(vault, principal, cameras)
    # An NVR camera the vault has no footage of yet is still one to choose: to pull from.
    known = {source_id for source_id, _, _ in cameras}
    cameras += [(cam, None, site) for _, cam, site in offers if cam not in known]
    errors = dict(errors or {})
    context: dict[str, Any] = {
        "form": form, "sites": sorted({s for _, _, s in cameras if s}), "cameras": cameras,
        "cases": cases, "offers": offers, "errors": errors, "results": None, "after": after,
        "purpose": user.session.purpose, "pulled": pulled, "csrf": user.csrf,
        "thumb_tiles": TIMELINE_TILES,
    }
    if not form["day"]:
        return page(request, "find.html", context, status=status)
    try:
        since = parse_uk(form["day"], form["from"], field="From", edge="start")
        until = parse_uk(form["day"], form["to"], field="To", edge="end")
        if until <= since:
            raise InvalidInput("To: the window must end after it starts")
        if form["case"] and form["case"] not in {case_id for case_id, _ in cases}:
            raise InvalidInput("Case: choose one of the cases listed (cases you work on)")
        query = RecordingQuery(source_id=form["camera"] or None, site=form["site"] or None,
                               case_id=form["case"] or None, since=since, until=until,
                               limit=PAGE_SIZE + 1, after=after or None)
        found = search_recordings(vault, query, actor=principal.actor,
                                  scope=visible_recordings(principal))
    except InvalidInput as error:
        text = str(error)
        field = ("to" if text.startswith("To") else "case" if text.startswith("Case")
                 else "day")
        errors[field] = text
        return page(request, "find.html", context, status=400)
    shown = found[:PAGE_SIZE]
    query_form = {k: v for k, v in form.items() if v}
    context.update({
        "results": shown, "timeline": _timeline(shown, since, until), "since": since,
        "until": until, "zone": zone_name(since), "query": query_form,
        "next_after": page_cursor(shown[-1]) if len(found) > PAGE_SIZE else None,
    })
    return page(request, "find.html", context, status=status)


def _find_form(site: str | None, camera: str | None, case: str | None, day: str | None,
               start: str, end: str) -> dict[str, str]:
    return {"site": site or "", "camera": camera or "", "case": case or "", "day": day or "",
            "from": start, "to": end}


@router.get("/find")
def find(
    ctx: WebContextDep,
    site: Annotated[str | None, Query(max_length=256)] = None,
    camera: Annotated[str | None, Query(max_length=128)] = None,
    case: Annotated[str | None, Query(max_length=64)] = None,
    day: Annotated[str | None, Query(max_length=32)] = None,
    start: Annotated[str, Query(alias="from", max_length=16)] = "00:00",
    end: Annotated[str, Query(alias="to", max_length=16)] = "23:59",
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Find footage: cameras, cases, a window in UK time; results a page at a time (keyset:
    the Next link carries the last row's cursor as ``after``), grouped per camera on a
    timeline of the window, each with a Watch link."""
    ctx.require(Permission.SEARCH)
    return _find_page(ctx.request, ctx.user, _find_form(site, camera, case, day, start, end),
                      after=after)


@router.post("/find/pull")
def find_pull(
    ctx: WebFormDep,
    nvr: Annotated[str, Form(max_length=_MAX_NAME)],
    camera: Annotated[str, Form(max_length=_MAX_NAME)],
    day: Annotated[str, Form(max_length=32)],
    start: Annotated[str, Form(alias="from", max_length=16)],
    end: Annotated[str, Form(alias="to", max_length=16)],
    site: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Pull the searched window of one camera from its site's NVR: the body of
    ``POST /ingest/pulls`` (:func:`api.routes.pulls.pull_window`), with the task's stated
    purpose; the page shows what came (recordings, gaps, the NVR's clock) or why nothing did."""
    form = _find_form(site, camera, None, day, start, end)
    try:
        since = parse_uk(day, start, field="From", edge="start")
        until = parse_uk(day, end, field="To", edge="end")
    except InvalidInput as error:
        return _find_page(ctx.request, ctx.user, form, errors={"pull": str(error)}, status=400)

    def purpose() -> Purpose:
        if ctx.user.session.purpose is None:
            raise InvalidInput("state the purpose of this task before pulling footage")
        return ctx.user.session.purpose

    try:
        report = pull_window(ctx, nvr=nvr, camera=camera, start=since, end=until,
                             purpose=purpose)
    except (InvalidInput, NotFound) as error:
        return _find_page(ctx.request, ctx.user, form, errors={"pull": str(error)}, status=400)
    except SpoolLocked:
        return _find_page(ctx.request, ctx.user, form, errors={"pull": pull_busy(nvr)},
                          status=409)
    except NvrError as error:
        return _find_page(ctx.request, ctx.user, form, errors={"pull": pull_failed(nvr, error)},
                          status=502)
    # Read through the API's response model: the page shows what the route would answer.
    return _find_page(ctx.request, ctx.user, form, pulled=PullPublic.model_validate(report.to_dict()))


def pull_busy(nvr: str) -> str:
    """What the officer is told when another pull from ``nvr`` holds its spool (409). The
    spool's path stays in the server's log: it means nothing to them."""
    return (f"Another pull from the recorder {nvr} is still running, so this one did not start "
            "and nothing was pulled. Wait a few minutes for it to finish, then press Pull this "
            "window from the NVR again: the window is still filled in.")


def pull_failed(nvr: str, error: NvrError) -> str:
    """What the officer is told when the recorder failed the pull (502): what happened, what
    they can do, and the ingest error's own text for whoever they report it to."""
    if isinstance(error, NvrUnreachable):
        what = (f"The recorder {nvr} did not answer, so nothing was pulled. Try again in a few "
                "minutes; if it still does not answer, ask IT to check that it is switched on "
                "and connected to the network")
    elif isinstance(error, NvrAuthFailed):
        what = (f"The recorder {nvr} refused the vault's sign-in, so nothing was pulled. Ask "
                "your vault administrator to check the recorder's account in the agents file, "
                "then try again")
    else:
        what = (f"The recorder {nvr} answered with an error, so nothing was pulled. Try again; "
                "if it happens again, report it to IT")
    return f"{what}. Details for IT: {error}"


# --- watch -----------------------------------------------------------------------------------


RecordingId = Annotated[str, Path(pattern=UUID_PATTERN)]


def _player(request: Request) -> tuple[RequestContext, ActiveSession]:
    """The context of a request from the page's player (the video, its thumbnail sheet): the
    session's officer, refused with 401 rather than sent to sign in (a media element cannot
    follow a sign-in page)."""
    active = _session(request)
    if active is None or active.stage is not Stage.SIGNED_IN:
        raise Unauthenticated("sign in to the web app to play footage", reason="no-session")
    principal = web_sessions.session_principal(_vault(request), active,
                                               client_addr=client_addr(request))
    return RequestContext(vault=_vault(request), principal=principal,
                          route=_route(request)), active


def _task_purpose(active: ActiveSession) -> Purpose:
    if active.purpose is None:
        raise AccessDenied("state the purpose of this task before footage is shown")
    return active.purpose


@router.get("/watch/{recording_id}/media")
def watch_media(
    request: Request,
    recording_id: RecordingId,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """The footage for the page's player: the API's stream, authorised by the session."""
    ctx, active = _player(request)
    recording = ctx.require_recording(Permission.VIEW, recording_id)
    response = footage_response(
        ctx.vault, recording, actor=ctx.principal.actor, purpose=_task_purpose(active),
        range_header=range_header, action=Action.STREAMED, attachment=False,
        details={"via": "web", "session_id": active.id},
    )
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@router.get("/watch/{recording_id}/thumbnails")
def watch_thumbnails(request: Request, recording_id: RecordingId, tiles: Tiles = 10) -> Response:
    """The recording's thumbnail sheet for the find page's timeline and the player's scrub
    bar: :func:`api.routes.thumbnails.thumbnail_sheet` (the stream's access check, one
    ``viewed`` event per sheet with the task's purpose), authorised by the session."""
    ctx, active = _player(request)
    return sheet_response(thumbnail_sheet(
        ctx, recording_id, tiles=tiles, purpose=lambda: _task_purpose(active),
        details={"via": "web", "session_id": active.id}))


__all__ = ["PAGE_SIZE", "SIGNED_IN", "SIGNED_OUT", "WebContext", "WebContextDep", "WebFormDep",
           "WebUser", "router", "web_context", "web_form", "web_user"]
