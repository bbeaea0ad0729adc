"""Telling an API client which zone its offset-less times were read in (issue #11 finding 26).

:data:`api.schemas.Instant` reads a time without a UTC offset as UK local time
(:mod:`vault.localtime`). The response then says so: :class:`AssumedZoneHeader` (ASGI
middleware) gives each request a fresh list that the validator adds a note to, and puts the
notes in one response header, ``X-Assumed-Time-Zone``, e.g.::

    X-Assumed-Time-Zone: since 2026-11-25T14:32:00 read as Europe/London (GMT, +00:00) = 2026-11-25T14:32:00Z

Validation may run in a worker thread with a copy of the request's context; the list is
shared, not the variable, so a note made there is still seen here.
"""

from __future__ import annotations

import contextvars

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Assumed-Time-Zone"
_MAX_NOTES = 8  # a header stays short whatever the request holds

_notes: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "assumed_time_zone_notes", default=None)


def note_assumed(note: str) -> None:
    """Record that a time in this request was read in an assumed zone (no-op outside one)."""
    notes = _notes.get()
    if notes is not None and len(notes) < _MAX_NOTES:
        notes.append(note)


class AssumedZoneHeader:
    """ASGI middleware: ``X-Assumed-Time-Zone`` on responses to requests with such times."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        notes: list[str] = []
        token = _notes.set(notes)

        async def send_with_notes(message: Message) -> None:
            if message["type"] == "http.response.start" and notes:
                headers = MutableHeaders(scope=message)
                headers[HEADER] = "; ".join(dict.fromkeys(notes))
            await send(message)

        try:
            await self.app(scope, receive, send_with_notes)
        finally:
            _notes.reset(token)


__all__ = ["HEADER", "AssumedZoneHeader", "note_assumed"]
