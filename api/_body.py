"""Request bodies: authenticate before reading one, and never read more than the route takes.

FastAPI reads and parses a route's JSON body before it runs the route's dependencies, the
bearer-token check included, so anyone could make the server buffer and parse a body of any
size without a token (issue #11 finding 8: a 57 MB JSON body raised memory by 230 MB,
unauthenticated). :class:`BodyGate` is an ASGI middleware that stands between the server and
whatever reads the body. When the first piece of a body is asked for (routing is done by then,
so the route is known):

1. If the route needs a bearer token (it depends on :func:`api.deps.get_principal`) and nobody
   has authenticated the request yet, it is authenticated now, with the same check and the
   same denial throttle; a refusal answers 401 and the body is never read. The principal is
   kept for the route, which does not authenticate again.
2. A ``Content-Length`` above the route's limit answers 413 before any of it is read.
3. Otherwise the body is counted as it arrives; a body (chunked, or longer than it said) that
   passes the limit stops with 413 at that byte.

Limits are per route, in :data:`BODY_LIMITS` (``"METHOD /template"``); every other route takes
:data:`DEFAULT_BODY_LIMIT`. The raw upload streams into the encrypting writer and is bounded by
nothing here (``None``); its token is checked before its first byte is read all the same.
Refusals are raised as HTTP exceptions so the app's error handlers render them (``{"error":
"unauthenticated" | "too_large", "detail"}``); FastAPI passes those through its body parsing.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault.errors import Unauthenticated

from .deps import PRINCIPAL_STATE, authenticate_request, get_principal
from .errors import _handle_http_response, error_response

#: The most bytes a request body may have on a route not named in :data:`BODY_LIMITS`.
DEFAULT_BODY_LIMIT = 1024 * 1024
#: Routes whose bodies may be larger (None: unbounded, for the streamed upload).
BODY_LIMITS: dict[str, int | None] = {
    "POST /recordings": None,  # raw footage, encrypted as it streams in, never buffered
    "PUT /jobs/{job_id}/plan": 64 * 1024 * 1024,  # a redaction plan: boxes for every frame
}


class BodyTooLarge(HTTPException):
    """A request body over its route's limit (413, ``too_large``)."""

    def __init__(self, route: str, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {_size(limit)}, the most {route} accepts; "
            "nothing was stored: send a smaller body",
        )


def _size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    return f"{n} bytes"


def limit_for(route: str) -> int | None:
    """The body limit of ``"METHOD /template"`` in bytes (None: unbounded)."""
    return BODY_LIMITS.get(route, DEFAULT_BODY_LIMIT)


def _needs_principal(dependant: Dependant) -> bool:
    return any(d.call is get_principal or _needs_principal(d) for d in dependant.dependencies)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class EarlyRefusal(HTTPException):
    """A request refused by the gate before its body was read (401), as an HTTP exception."""

    def __init__(self, refused: Unauthenticated) -> None:
        response = error_response(refused)
        super().__init__(response.status_code, str(refused),
                         headers={"WWW-Authenticate": response.headers["WWW-Authenticate"]})


class BodyGate:
    """ASGI middleware: authenticate before the body, and cap the body per route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._principal_routes: dict[int, bool] = {}

    def _needs_principal(self, route: APIRoute) -> bool:
        known = self._principal_routes.get(id(route))
        if known is None:
            known = self._principal_routes[id(route)] = _needs_principal(route.dependant)
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length_text = _header(scope, b"content-length")
        try:
            declared = int(length_text) if length_text is not None else None
        except ValueError:
            declared = None  # the server refuses a malformed Content-Length before we see it
        seen = 0
        checked = False
        limit: int | None = None
        name = "this route"

        async def gated_receive() -> Message:
            nonlocal seen, checked, limit, name
            if not checked:
                checked = True
                route = scope.get("route")
                if isinstance(route, APIRoute):
                    name = f"{scope['method']} {route.path}"
                    # 1. Who is asking, before a byte of the body is read.
                    state = scope.setdefault("state", {})
                    if self._needs_principal(route) and PRINCIPAL_STATE not in state:
                        try:
                            state[PRINCIPAL_STATE] = await anyio.to_thread.run_sync(
                                _authenticate, scope, name)
                        except Unauthenticated as refused:
                            raise EarlyRefusal(refused) from None
                limit = limit_for(name)
                # 2. A declared length over the limit.
                if limit is not None and declared is not None and declared > limit:
                    raise BodyTooLarge(name, limit)
            message = await receive()
            if message["type"] == "http.request" and limit is not None:
                # 3. Count what actually arrives.
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(name, limit)
            return message

        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, gated_receive, watched_send)
        except HTTPException as refusal:
            # A body read outside the app's exception handlers (in a route's own stream):
            # answer here if nothing was sent yet.
            if started or not isinstance(refusal, (BodyTooLarge, EarlyRefusal)):
                raise
            await _handle_http_response(refusal)(scope, receive, send)


def _authenticate(scope: Scope, route: str) -> Any:
    return authenticate_request(Request(scope), route)


__all__ = ["BODY_LIMITS", "DEFAULT_BODY_LIMIT", "PRINCIPAL_STATE", "BodyGate", "BodyTooLarge",
           "EarlyRefusal", "limit_for"]
