"""One request context for every route (issue #14 item 3, "one request context dependency").

Every authenticated API route opens with :data:`api.deps.ContextDep` (vault, principal, route
and the policy's ``require*`` checks) and every signed-in web form with
:data:`api.web.routes.WebFormDep` (the same context, its session, and the CSRF check), instead
of each repeating those steps. These tests read the routes FastAPI built, so a route added
later with its own opening (a bare ``PrincipalDep``, or a form that forgets the CSRF check)
fails here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
