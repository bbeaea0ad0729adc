"""Every error a web page can raise is an HTML page (issue #12: media errors on web pages).

The web routes' route class (:func:`api.web._security.make_route_class`) turns errors into
``error.html``; the API's handlers (:mod:`api.errors`) answer JSON. These tests raise every
error class the code defines (every :class:`vault.errors.VaultError` subclass, loaded with the
whole app, so a class added later is checked too), Starlette's HTTP errors, a malformed field
and an unexpected exception through a web route of a real app that has the API's handlers
installed, and hold that each comes back as the page, with the API's status.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Query
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException as StarletteHTTPException

import api.app  # noqa: F401 - loads every module that defines an error class
from api import errors
from api.web import _security as sec
from api.web import admin, casework, exports, recipient, retention, routes, sar, sar_people
from api.web import signin
from api.web.routes import templates
from redaction.errors import MediaError, PlanError
from vault.errors import VaultError

WEB_ROUTERS = [routes, signin, casework, recipient, retention, sar, sar_people, exports, admin]


def _subclasses(cls: type[VaultError]) -> Iterator[type[VaultError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _instance(cls: type[VaultError]) -> VaultError:
    """An instance of ``cls`` whatever its constructor takes (the handler reads its class and
    message only)."""
    try:
        return cls("the reason")
    except (TypeError, AttributeError):
        error = cls.__new__(cls)
        Exception.__init__(error, "the reason")
        return error


ERRORS: list[type[VaultError]] = sorted({VaultError, *_subclasses(VaultError)},
                                        key=lambda c: f"{c.__module__}.{c.__qualname__}")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = FastAPI()
    errors.install(app)  # the API's JSON handlers are there: the web route must not reach them
    router = APIRouter(route_class=sec.make_route_class(templates))
    raised: dict[str, BaseException] = {}

    @router.get("/boom/{name}")
    def boom(name: str, n: int = Query(default=0)) -> None:
        raise raised[name]

    app.include_router(router)
    app.state.raised = raised
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _page(client: TestClient, error: BaseException, query: str = "") -> Any:
    client.app.state.raised["e"] = error  # type: ignore[attr-defined]
    r = client.get(f"/boom/e{query}")
    assert r.headers["content-type"].startswith("text/html"), (type(error), r.text[:200])
    assert '"error"' not in r.text and "Internal Server Error" != r.text
    assert r.headers["Content-Security-Policy"] == sec.CSP
    return r


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__qualname__)
def test_every_vault_error_class_is_a_page_with_the_api_status(
    client: TestClient, cls: type[VaultError]
) -> None:
    """Issue #12 (media errors on web pages): no error class a web route can raise falls
    through to the API's JSON: each is the error page with the status the API gives it."""
    error = _instance(cls)
    r = _page(client, error)
    assert r.status_code == errors.status_for(error)[0]
    assert "the reason" in r.text


@pytest.mark.parametrize("error", [MediaError("recording r is not a readable media file"),
                                   PlanError("plan is for other footage")])
def test_media_and_plan_errors_say_what_to_do(client: TestClient, error: VaultError) -> None:
    """Issue #12: a media or plan error's page is 422 and carries advice a person can act on
    (:data:`api.web._security.ADVICE`), not only the vault's message."""
    r = _page(client, error)
    assert r.status_code == 422
    advice = sec.advice_for(error)
    assert advice and advice.split(":")[0] in r.text.replace("&#39;", "'")


@pytest.mark.parametrize("error", [StarletteHTTPException(405, "Method Not Allowed"),
                                   StarletteHTTPException(413, "Too large"),
                                   RuntimeError("a bug"), ValueError("another")])
def test_http_errors_and_unexpected_ones_are_pages(client: TestClient,
                                                   error: BaseException) -> None:
    """Issue #12: Starlette's errors (the API's handler would answer JSON) and exceptions nobody
    expected (Starlette would answer a bare text 500) are the error page too; a bug's text is
    not shown."""
    r = _page(client, error)
    expected = error.status_code if isinstance(error, StarletteHTTPException) else 500
    assert r.status_code == expected
    assert "a bug" not in r.text


def test_a_malformed_field_is_a_page(client: TestClient) -> None:
    """A query field that does not parse (the API answers 422 JSON) is the page (404)."""
    r = _page(client, RuntimeError("not reached"), "?n=not-a-number")
    assert r.status_code == 404


def test_every_web_route_uses_the_page_route_class() -> None:
    """Every route of the web routers is built by the route class that makes error pages, so
    the tests above cover them all."""
    web = [r for m in WEB_ROUTERS for r in m.router.routes if isinstance(r, APIRoute)]
    assert len(web) > 50
    for route in web:
        assert type(route).__name__ == "WebRoute", route.path
