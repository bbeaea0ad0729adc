"""Search: find recordings by source, site, capture window, media kind, case and hold state.

The catalog query behind "find the clip of the incident": a recording matches a time window when
its capture *overlaps* the window (a one-hour file starting at 14:00 matches 14:32-14:35). The
caller passes the principal's scope (:func:`vault.casework.policy.visible_recordings`), so a search never
returns what the searcher may not see. A search is a custody event (``searched``, with its
criteria and the number of results), because who looked for footage of whom is itself personal
data processing.

Paging is by keyset (:mod:`vault.storage.paging`): each page ends with a cursor
(:func:`page_cursor`, the last row's capture start and id) that the next request passes as ``after``, so a deep page costs what the first
does (an ``offset`` makes the database sort and skip every earlier row). The live set's partial
indexes (migration 0010) serve the order, the camera + window bounds (the window's lower bound
through the index on where a capture ends) and the keyset. Searches read through
:func:`vault.storage.db.read_sessions`: on SQLite they take no write lock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, func, select, true

from vault.actors import Actor
from vault.ledger.events import Searched
from vault.storage.catalog import CaseRecording, MediaKind, Recording, Source
from vault.ledger.custody import Action
from vault.storage.db import read_sessions
from vault.errors import InvalidInput
from vault.storage.hold_rule import held_clause
from vault.storage.paging import after_clause, page_cursor

if TYPE_CHECKING:
    from vault.vault import Vault

MAX_LIMIT = 1000


@dataclass(frozen=True)
class RecordingQuery:
    """Search criteria; every one given must match."""

    source_id: str | None = None
    site: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    media_kind: MediaKind | None = None
    case_id: str | None = None
    held: bool | None = None
    clock_flagged: bool | None = None
    include_deleted: bool = False
    limit: int = 100
    offset: int = 0
    #: Keyset cursor: only recordings after the one :func:`page_cursor` made it from.
    after: str | None = None

    def criteria(self) -> dict[str, Any]:
        """The criteria given, JSON-ready (for the custody event)."""
        out: dict[str, Any] = {}
        for name in ("source_id", "site", "case_id", "held", "clock_flagged", "include_deleted"):
            value = getattr(self, name)
            if value not in (None, False):
                out[name] = value
        if self.since:
            out["since"] = self.since.isoformat()
        if self.until:
            out["until"] = self.until.isoformat()
        if self.media_kind:
            out["media_kind"] = self.media_kind.value
        out["limit"], out["offset"] = self.limit, self.offset
        if self.after:
            out["after"] = self.after
        return out


def recordings_statement(
    query: RecordingQuery, scope: ColumnElement[bool] | None = None
) -> Select[Recording]:
    """The SELECT behind a search: ``query``'s criteria within ``scope``, oldest capture first.

    Raises InvalidInput for a window that ends before it starts, a time without a timezone, a
    bad limit or a bad cursor.
    """
    if not 1 <= query.limit <= MAX_LIMIT or query.offset < 0:
        raise InvalidInput(f"limit is 1-{MAX_LIMIT} and offset at least 0")
    if query.since and query.until and query.until <= query.since:
        raise InvalidInput("the search window must end after it starts")
    for when in (query.since, query.until):
        if when is not None and when.tzinfo is None:
            raise InvalidInput("search times must include a timezone")
    stmt = (
        select(Recording)
        .where(scope if scope is not None else true())
        .order_by(Recording.captured_start, Recording.id)
        .limit(query.limit)
        .offset(query.offset)
    )
    if query.after:
        stmt = stmt.where(after_clause(query.after))
    if query.source_id:
        stmt = stmt.where(Recording.source_id == query.source_id)
    if query.site:
        stmt = stmt.where(Recording.source_id.in_(select(Source.id).where(Source.site == query.site)))
    if query.until:
        stmt = stmt.where(Recording.captured_start < query.until)
    if query.since:
        # The same expression as ix_recordings_live_source_end, so the bound is an index range.
        stmt = stmt.where(func.coalesce(Recording.captured_end, Recording.captured_start) >= query.since)
    if query.media_kind:
        stmt = stmt.where(Recording.media_kind == query.media_kind)
    if query.case_id:
        stmt = stmt.where(
            Recording.id.in_(
                select(CaseRecording.recording_id).where(CaseRecording.case_id == query.case_id)
            )
        )
    if query.held is not None:
        stmt = stmt.where(held_clause() if query.held else ~held_clause())
    if query.clock_flagged is not None:
        stmt = stmt.where(Recording.clock_flagged.is_(query.clock_flagged))
    if not query.include_deleted:
        stmt = stmt.where(Recording.deleted_at.is_(None))
    return stmt


def list_recordings(vault: Vault, query: RecordingQuery) -> list[Recording]:
    """Recordings matching ``query``, oldest capture first, read without the write lock and
    without a custody event (the local operator's listing; people search through
    :func:`search_recordings`). Raises InvalidInput as :func:`recordings_statement`."""
    stmt = recordings_statement(query)
    with read_sessions(vault.engine)() as session:
        return list(session.scalars(stmt))


def search_recordings(
    vault: Vault,
    query: RecordingQuery,
    *,
    actor: Actor,
    scope: ColumnElement[bool] | None = None,
) -> list[Recording]:
    """Recordings matching ``query`` within ``scope``, oldest capture first. Logs ``searched``.

    Raises InvalidInput for a window that ends before it starts, a bad limit or cursor.
    """
    stmt = recordings_statement(query, scope)
    with read_sessions(vault.engine)() as session:
        found = list(session.scalars(stmt))
    vault.ledger.record(
        Action.SEARCHED,
        actor=actor,
        reference=None,
        details=Searched(criteria=query.criteria(), results=len(found)),
    )
    return found


__all__ = [
    "MAX_LIMIT",
    "RecordingQuery",
    "held_clause",
    "list_recordings",
    "page_cursor",
    "recordings_statement",
    "search_recordings",
]  # held_clause: vault/storage/hold_rule.py; page_cursor: vault/storage/paging.py
