"""Signing in to the web app: password, then a TOTP code (or enrolling one), or the
organisation's identity provider (OpenID Connect, :mod:`api.web._oidc`); signing out.

Split from :mod:`api.web.routes` by concept: that module says who is asking for every page
(the session, :class:`api.web.routes.WebContext`, the CSRF check); this one establishes it.
Sign-ins and sign-outs are ``web.signed_in`` and ``web.signed_out`` custody events; each
refused password or code is ``access_denied`` (refusals naming no known user go through the
API's denial throttle). A new session token is issued at each step, so a session id fixed
before sign-in is worthless after it (vault/access/web_sessions.py check 3).
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from vault.access import credentials, web_sessions
from vault.errors import InvalidInput, NotFound, Unauthenticated
from vault.access.identity import User, authenticate, log_denial_summaries, record_refusal
from vault.vault import Vault
from vault.access.web_sessions import ActiveSession, Stage

from ..deps import client_addr
from . import _security as sec
from ._oidc import PENDING_COOKIE, PENDING_MAX_AGE, PENDING_PATH, OidcClient, Pending

from .routes import (
    SIGNED_IN,
    SIGNED_OUT,
    _MAX_NAME,
    CsrfField,
    WebContextDep,
    WebFormDep,
    _route,
    _session,
    _settings,
    _vault,
    page,
    templates,
)

router = APIRouter(route_class=sec.make_route_class(templates), include_in_schema=False)


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
    record_refusal(vault, user, f"sign-in: {error.reason}", client_addr=addr,
                   route=_route(request))


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
def account(ctx: WebContextDep) -> Response:
    sessions = web_sessions.live_sessions(ctx.vault, ctx.principal.user_id)
    return page(ctx.request, "account.html", {"csrf": ctx.user.csrf, "sessions": sessions,
                                              "current": ctx.session.id})


__all__ = ["router"]
