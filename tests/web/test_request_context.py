"""One request context for every route (issue #14 item 3, "one request context dependency").

Every authenticated API route opens with :data:`api.deps.ContextDep` (vault, principal, route
and the policy's ``require*`` checks) and every signed-in web form with
:data:`api.web.routes.WebFormDep` (the same context, its session, and the CSRF check), instead
of each repeating those steps. Every signed-in web page (GET) opens with
:data:`api.web.routes.WebContextDep`, whose ``require*`` methods are the policy functions
themselves. These tests read the routes FastAPI built, so a route added later with its own
opening (a bare ``PrincipalDep`` or ``WebUserDep``, or a form that forgets the CSRF check)
fails here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import inspect
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api import deps
from api.routes import cases, clips, custody, evidence, exports, jobs, pulls, sar, shares, users
from api.web import admin, casework, recipient, retention, routes
from api.web import exports as web_exports
from api.web import sar as web_sar
from api.web import sar_people, signin

API_ROUTERS = [cases, clips, custody, evidence, exports, jobs, pulls, sar, shares, users]
WEB_ROUTERS = [routes, signin, casework, recipient, retention, web_sar, sar_people, web_exports,
               admin]
#: Forms posted before there is a signed-in session: each checks its own token (the sign-in
#: double-submit cookie, the pending session's token, the recipient's cookie).
PRE_SESSION = {"/sign-in", "/sign-in/code", "/sign-in/enrol",
               "/s/{token}/recordings/{recording_id}/download"}
#: Pages served before there is a signed-in session (``signin.py``: the start page, the
#: sign-in steps and the OIDC return; ``recipient.py``: the share link, which a recipient
#: opens with its token, not a session). They have no officer to build a context from.
PRE_SIGN_IN_PAGES = {"/", "/sign-in", "/sign-in/code", "/sign-in/enrol", "/sign-in/oidc",
                     "/sign-in/oidc/callback", "/s/{token}"}
#: The page's player (the video and its thumbnail sheet): a media element cannot follow the
#: redirect to sign in that ``web_context`` answers, so ``routes._player`` answers 401
#: instead; it builds the same :class:`api.deps.RequestContext` from the session and its
#: checks are that context's ``require*`` methods.
PLAYER = {"/watch/{recording_id}/media", "/watch/{recording_id}/thumbnails"}
#: Signed-in pages not yet converted, each named with the module that still owes it.
NOT_YET: set[str] = set()


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _routes(modules: list[Any]) -> list[APIRoute]:
    return [r for m in modules for r in m.router.routes if isinstance(r, APIRoute)]


def test_every_authenticated_api_route_opens_with_the_request_context() -> None:
    """Issue #14 item 3: no API route authenticates its caller except through
    ``request_context``; the principal is never taken as a bare dependency beside it."""
    authenticated = 0
    for route in _routes(API_ROUTERS):
        direct = [d.call for d in route.dependant.dependencies]
        assert deps.get_principal not in direct, f"{route.path}: takes PrincipalDep directly"
        if deps.get_principal in set(_calls(route.dependant)):
            authenticated += 1
            assert deps.request_context in direct, f"{route.path}: not through ContextDep"
    assert authenticated >= 40  # the suite sees the routes it means to


def test_every_signed_in_web_form_checks_csrf_through_the_one_dependency() -> None:
    """Issue #14 item 3 / issue #12 ("CSRF protection on every form"): every POST of the web
    app with a signed-in officer gets its context from ``web_form``, which checks the CSRF
    token before the handler runs; none reads the officer (``web_user``) another way."""
    forms = 0
    for route in _routes(WEB_ROUTERS):
        if "POST" not in route.methods or route.path in PRE_SESSION:
            continue
        forms += 1
        direct = [d.call for d in route.dependant.dependencies]
        assert routes.web_form in direct, f"POST {route.path}: not through WebFormDep"
        assert routes.web_user not in direct, f"POST {route.path}: reads the officer twice"
    assert forms >= 30


def test_every_signed_in_web_page_opens_with_the_web_request_context() -> None:
    """Issue #14 item 3 ("one request context dependency"): every signed-in GET of the web
    app takes ``web_context`` (:data:`~api.web.routes.WebContextDep`) as its opening and none
    reads the officer (``web_user``) beside it, so its checks are the context's ``require*``
    (the policy functions: same refusals, same custody) and there is no second path that
    builds vault, principal and route by hand (``_vault(request)``, ``_route(request)``)."""
    pages = 0
    for route in _routes(WEB_ROUTERS):
        if "GET" not in route.methods or route.path in PRE_SIGN_IN_PAGES | PLAYER | NOT_YET:
            continue
        pages += 1
        direct = [d.call for d in route.dependant.dependencies]
        assert routes.web_context in direct, f"GET {route.path}: not through WebContextDep"
        assert routes.web_user not in direct, f"GET {route.path}: reads the officer twice"
        body = inspect.getsource(route.endpoint)
        for by_hand in ("_vault(", "_route(", "Request,"):
            assert by_hand not in body, f"GET {route.path}: builds its context by hand ({by_hand})"
    assert pages >= 29  # the suite sees the pages it means to
