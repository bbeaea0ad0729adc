"""The OpenAPI description tells a client every header a route requires.

Some headers are parsed as optional but required by the route: ``X-Purpose`` on footage routes
(:data:`api.deps.PurposeDep`) is checked only after the caller's access is, so that a refused
caller is logged as refused whether or not they said why. FastAPI would describe such a header
as optional, and a client written from ``/openapi.json`` would leave it out and get a 400.

The fix is one rule, applied to the generated description rather than route by route:
:data:`REQUIRED_HEADERS` maps a dependency to the headers it requires, and
:func:`document_required_headers` marks those header parameters ``required: true`` on every
operation whose dependency tree includes it. A route that takes the dependency is documented
correctly without doing anything; ``tests/api/test_openapi_headers.py`` checks every route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from .deps import get_purpose

#: Dependency -> the request headers (lower case) it requires, though it parses them as optional.
REQUIRED_HEADERS: dict[Callable[..., Any], frozenset[str]] = {
    get_purpose: frozenset({"x-purpose"}),
}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def api_routes(app: FastAPI) -> Iterator[tuple[APIRoute, str, set[str], bool]]:
    """Every API route of ``app`` as (route, path as documented, methods, in the schema),
    included routers and their prefixes resolved (FastAPI >= 0.165 includes them lazily)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:  # older FastAPI: included routes are copied into app.routes
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route, route.path_format, set(route.methods or ()), route.include_in_schema
        return
    for context in contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            yield (route, str(context.path_format), set(context.methods or ()),
                   bool(getattr(context, "include_in_schema", route.include_in_schema)))


def required_headers(route: APIRoute) -> frozenset[str]:
    """The headers ``route`` requires through its dependencies (lower case)."""
    found: set[str] = set()
    for call in _calls(route.dependant):
        found |= REQUIRED_HEADERS.get(call, frozenset())
    return frozenset(found)


def document_required_headers(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Mark, in the OpenAPI ``schema`` of ``app``, each required header ``required: true`` and
    say so in its description. Returns the schema (changed in place)."""
    paths = schema.get("paths", {})
    for route, path, methods, documented in api_routes(app):
        needed = required_headers(route)
        if not documented or not needed:
            continue
        for method in methods:
            operation = paths.get(path, {}).get(method.lower())
            if operation is None:
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and parameter.get("name", "").lower() in needed:
                    parameter["required"] = True
    return schema


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json`` and ``/docs``) document required headers."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return document_required_headers(app, generate())

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["REQUIRED_HEADERS", "api_routes", "document_required_headers", "install", "required_headers"]
