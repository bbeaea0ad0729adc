"""The officers' web pages: sign in (password, then a TOTP code), state a purpose, find, watch.

Every page asks the same questions of the same code as the API routes: :mod:`vault.casework.policy`
decides (``require``, ``require_recording``, ``visible_recordings``), :mod:`vault.casework.search`
searches (a ``searched`` event), and the player streams through the API's decrypting Range
path (:func:`api._streaming.footage_response`, a ``streamed`` event with the purpose stated
for the task). The only difference is how the caller is known: a session cookie instead of a
bearer token (vault/access/web_sessions.py). Sign-ins and sign-outs are ``web.signed_in`` and
``web.signed_out`` custody events; each refused password or code is ``access_denied``.

Every page is a plain ``def``: each reads the catalog (and sign-in hashes a password), so
FastAPI runs it in a worker thread rather than on the event loop.

Why this module is long: it holds who is asking for every page (the session, the request
context, the CSRF check every other page module imports) beside the pages that establish it
(sign in, second factor, identity provider, purpose) and the find and watch pages that first
use it; splitting the sign-in pages off is the next step when it grows.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from vault.access import credentials, web_sessions
from vault.actors import Purpose
from vault.storage.catalog import Recording, Source
from vault.config import Settings
from vault.ledger.custody import Action
from vault.errors import AccessDenied, InvalidInput, NotFound, Unauthenticated
from vault.access.identity import ANONYMOUS, Principal, User, authenticate, log_denial_summaries
from vault.casework.policy import (
    Permission,
    allowed,
    case_scope,
    require,
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
from ._oidc import PENDING_COOKIE, PENDING_MAX_AGE, PENDING_PATH, OidcClient, Pending
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


# --- sign in ---------------------------------------------------------------------------------


def _refusal(vault: Vault, request: Request, error: Unauthenticated, *, name: str | None,
             user_id: str | None = None) -> None:
    """Log a refused sign-in step as ``access_denied``. Refusals that name no known user go
    through the API's denial throttle (vault/access/denials.py), so a script guessing names from one
    address is summed into one event per window instead of flooding the ledger."""
    user = None
    if user_id is not None:
        with vault.sessions() as session:
            user = session.get(User, user_id)
    elif name and error.reason != "unknown-user":
        with vault.sessions() as session:
            user = session.scalars(select(User).where(User.name == name)).first()
    addr = client_addr(request)
    if user is None:
        throttle = request.app.state.denials
        alone, due = throttle.admit(addr, f"sign-in: {error.reason}", vault.clock())
        log_denial_summaries(vault, due)
        if not alone:
            return
    vault.ledger.record(
        Action.ACCESS_DENIED,
        actor=user.name if user else ANONYMOUS,
        actor_role=user.role.value if user else None,
        actor_org=user.organisation if user else None,
        client_addr=addr,
        object_ids=[user.id] if user else [],
        # Never the name typed for an unknown user: people type passwords into that field.
        details={"reason": f"sign-in: {error.reason}", "route": _route(request)},
    )


@router.get("/")
def home(request: Request) -> Response:
    active = _session(request)
    return sec.redirect("/find" if active and active.stage is Stage.SIGNED_IN else "/sign-in")


@router.get("/sign-in")
def sign_in_form(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None,
                 signed_out: bool = False) -> Response:
    settings = _settings(request)
    token = request.cookies.get(sec.csrf_cookie_name(settings)) or sec.new_csrf_token()
    response = page(request, "sign_in.html", {
        "csrf": token, "next": sec.safe_next(next), "signed_out": signed_out, "error": None,
        "username": "", "oidc": _oidc(request) is not None})
    sec.set_cookie(response, settings, sec.csrf_cookie_name(settings), token)
    return response


@router.post("/sign-in")
def sign_in(
    request: Request,
    csrf_token: CsrfField = None,
    username: Annotated[str, Form(max_length=_MAX_NAME)] = "",
    password: Annotated[str, Form(max_length=credentials.MAX_PASSWORD + 1)] = "",
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    settings, vault = _settings(request), _vault(request)
    cookie = request.cookies.get(sec.csrf_cookie_name(settings))
    sec.check_csrf(request, csrf_token, cookie)
    target = sec.safe_next(next)
    try:
        found = credentials.check_password(vault, username.strip(), password)
    except Unauthenticated as error:
        _refusal(vault, request, error, name=username.strip())
        return page(request, "sign_in.html", {
            "csrf": cookie, "next": target, "error": str(error), "signed_out": False,
            "username": username, "oidc": _oidc(request) is not None}, status=401)
    previous = _session(request)
    started = web_sessions.start_session(
        vault, found.user_id, Stage.SECOND_FACTOR if found.enrolled else Stage.ENROL,
        absolute=dt.timedelta(hours=settings.web_session_absolute_hours),
        client_addr=client_addr(request), replaces=previous.id if previous else None)
    step = "/sign-in/code" if found.enrolled else "/sign-in/enrol"
    response = sec.redirect(f"{step}?{urllib.parse.urlencode({'next': target})}"
                            if target != "/find" else step)
    sec.set_cookie(response, settings, sec.session_cookie_name(settings), started.token)
    return response


def _pending(request: Request, stage: Stage) -> ActiveSession:
    active = _session(request)
    if active is None or active.stage is not stage:
        raise sec.SignInRequired("/find")
    return active


@router.get("/sign-in/code")
def code_form(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    active = _pending(request, Stage.SECOND_FACTOR)
    return page(request, "code.html", {"csrf": active.csrf_token, "next": sec.safe_next(next),
                                       "error": None})


@router.get("/sign-in/enrol")
def enrol_form(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    active = _pending(request, Stage.ENROL)
    enrolment = credentials.begin_enrolment(_vault(request), active.user_id,
                                            issuer=_settings(request).web_totp_issuer)
    return page(request, "enrol.html", {
        "csrf": active.csrf_token, "next": sec.safe_next(next), "error": None,
        "secret": enrolment.secret, "uri": enrolment.uri,
        "secret_groups": [enrolment.secret[i:i + 4] for i in range(0, len(enrolment.secret), 4)]})


def _second_factor(request: Request, stage: Stage, csrf_token: str | None, code: str,
                         next: str | None) -> Response:
    settings, vault = _settings(request), _vault(request)
    active = _pending(request, stage)
    sec.check_csrf(request, csrf_token, active.csrf_token)
    target = sec.safe_next(next)
    try:
        credentials.check_code(vault, active.user_id, code, enrolling=stage is Stage.ENROL)
    except Unauthenticated as error:
        _refusal(vault, request, error, name=None, user_id=active.user_id)
        if stage is Stage.ENROL:
            raise InvalidInput(f"{error}: start again from the sign-in page") from None
        return page(request, "code.html", {"csrf": active.csrf_token, "next": target,
                                           "error": str(error)}, status=401)
    # Check 3 of vault/access/web_sessions.py: signed in under a new token; the pending one ends.
    started = web_sessions.start_session(
        vault, active.user_id, Stage.SIGNED_IN,
        absolute=dt.timedelta(hours=settings.web_session_absolute_hours),
        client_addr=client_addr(request), replaces=active.id)
    principal = web_sessions.session_principal(vault, started.session,
                                               client_addr=client_addr(request))
    vault.ledger.record(SIGNED_IN, actor=principal.actor, object_ids=[principal.user_id],
                        details={"session_id": started.session.id, "method": "password+totp",
                                 "enrolled_now": stage is Stage.ENROL})
    response = sec.redirect(target)
    sec.set_cookie(response, settings, sec.session_cookie_name(settings), started.token)
    sec.clear_cookie(response, settings, sec.csrf_cookie_name(settings))
    return response


@router.post("/sign-in/code")
def sign_in_code(
    request: Request,
    csrf_token: CsrfField = None,
    code: Annotated[str, Form(max_length=16)] = "",
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    return _second_factor(request, Stage.SECOND_FACTOR, csrf_token, code, next)


@router.post("/sign-in/enrol")
def sign_in_enrol(
    request: Request,
    csrf_token: CsrfField = None,
    code: Annotated[str, Form(max_length=16)] = "",
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    return _second_factor(request, Stage.ENROL, csrf_token, code, next)


def _oidc(request: Request) -> OidcClient | None:
    client: OidcClient | None = getattr(request.app.state, "web_oidc", None)
    return client


@router.get("/sign-in/oidc")
def oidc_start(request: Request,
               next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    """Send the browser to the identity provider (vault/_oidc.py check 1)."""
    client = _oidc(request)
    if client is None:
        raise NotFound("sign-in through an identity provider is not set up on this vault")
    settings = _settings(request)
    url, pending = client.start(client.redirect_uri(str(request.base_url)), sec.safe_next(next))
    response = sec.redirect(url)
    response.set_cookie(PENDING_COOKIE, pending.to_cookie(), max_age=PENDING_MAX_AGE,
                        path=PENDING_PATH, httponly=True, samesite="lax",
                        secure=settings.web_cookie_secure)
    return response


@router.get("/sign-in/oidc/callback")
def oidc_callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=256)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """The provider's answer: exchange the code, let vault.access.identity decide who it is."""
    client = _oidc(request)
    if client is None:
        raise NotFound("sign-in through an identity provider is not set up on this vault")
    vault, settings = _vault(request), _settings(request)
    pending = Pending.from_cookie(request.cookies.get(PENDING_COOKIE))
    try:
        id_token = client.finish(pending, state=state, code=code, error=error,
                                 redirect_uri=client.redirect_uri(str(request.base_url)))
    except Unauthenticated as refused:
        _refusal(vault, request, refused, name=None)
        raise
    assert pending is not None  # finish refuses a missing one
    # The same decision as for an API caller presenting this token (logged when refused).
    principal = authenticate(vault, id_token, client_addr=client_addr(request),
                             route=_route(request), throttle=request.app.state.denials,
                             oidc=request.app.state.oidc)
    try:
        client.check_nonce(id_token, pending)
    except Unauthenticated as refused:
        _refusal(vault, request, refused, name=None, user_id=principal.user_id)
        raise
    previous = _session(request)
    started = web_sessions.start_session(
        vault, principal.user_id, Stage.SIGNED_IN,
        absolute=dt.timedelta(hours=settings.web_session_absolute_hours),
        client_addr=client_addr(request), replaces=previous.id if previous else None)
    vault.ledger.record(SIGNED_IN, actor=principal.actor, object_ids=[principal.user_id],
                        details={"session_id": started.session.id, "method": "oidc",
                                 "issuer": client.issuer})
    response = sec.redirect(sec.safe_next(pending.next_path))
    sec.set_cookie(response, settings, sec.session_cookie_name(settings), started.token)
    response.delete_cookie(PENDING_COOKIE, path=PENDING_PATH, httponly=True, samesite="lax",
                           secure=settings.web_cookie_secure)
    return response


@router.post("/sign-out")
def sign_out(ctx: WebFormDep,
             everywhere: Annotated[bool, Form()] = False) -> Response:
    vault, settings = ctx.vault, _settings(ctx.request)
    if everywhere:
        ended = web_sessions.end_all_sessions(vault, ctx.principal.user_id)
    else:
        ended = int(web_sessions.end_session(vault, ctx.user.session.id))
    vault.ledger.record(SIGNED_OUT, actor=ctx.principal.actor, object_ids=[ctx.principal.user_id],
                        details={"session_id": ctx.user.session.id, "everywhere": everywhere,
                                 "sessions_ended": ended})
    response = sec.redirect("/sign-in?signed_out=true")
    sec.clear_cookie(response, settings, sec.session_cookie_name(settings))
    return response


@router.get("/account")
def account(request: Request, user: WebUserDep) -> Response:
    sessions = web_sessions.live_sessions(_vault(request), user.principal.user_id)
    return page(request, "account.html", {"csrf": user.csrf, "sessions": sessions,
                                          "current": user.session.id})


# --- purpose ---------------------------------------------------------------------------------


@router.get("/purpose")
def purpose_form(request: Request, user: WebUserDep,
                 next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    current = user.session.purpose
    return page(request, "purpose.html", {
        "csrf": user.csrf, "next": sec.safe_next(next), "errors": {},
        "values": {"purpose": "", "reference": "", "lawful_basis": ""},
        "current": current, "earlier": user.session.purposes})


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
    request: Request,
    user: WebUserDep,
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
    require(_vault(request), user.principal, Permission.SEARCH, route=_route(request))
    return _find_page(request, user, _find_form(site, camera, case, day, start, end),
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
