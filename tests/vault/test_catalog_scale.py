"""Catalog queries at council scale (issue #15): the live set's partial indexes serve search
orders, window bounds and the reaper; retention's hold and case-link lookups are indexed;
keyset paging (``after``) in the library, the API and ``ls``; reads take no write lock."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, inspect, select, text
from sqlalchemy.exc import OperationalError

from vault import Actor, InvalidInput, Role, Vault
from vault.capture import Capture
from vault.storage.catalog import Recording
from vault.config import Settings
from vault.storage.db import read_sessions
from vault.casework.holds import held_clause
from vault.casework.search import RecordingQuery, list_recordings, page_cursor, recordings_statement

ACTOR = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Northgate Housing")
T0 = dt.datetime(2026, 11, 20, 22, 0, tzinfo=dt.UTC)


def _put(vault: Vault, source: str, minute: int) -> str:
    return vault.put_stream(
        io.BytesIO(os.urandom(500)),
        Capture(
            source_id=source,
            captured_at=T0 + dt.timedelta(minutes=minute),
            original_name=f"{source}-{minute}.mp4",
        ),
        actor=ACTOR,
    ).id


def _plans(engine: Engine, run: Callable[[], Any]) -> list[str]:
    """SQLite's query plan of every statement ``run`` makes on recordings, holds or links."""
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, *_a: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and "recordings" in statement:
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = []
    with read_sessions(engine)() as session:
        conn = session.connection()
        for statement, params in seen:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            plans.append("\n".join(str(r[-1]) for r in rows))
    return plans


def test_searches_and_the_reaper_use_the_live_indexes(vault: Vault) -> None:
    """Issue #15 build 3: with no index on the sort order a no-filter search sorted every row
    (deleted ones too), a camera + window search scanned the camera's whole history, and the
    reaper's two queries walked every deleted row; each now reads a partial index of the live
    (or still-to-purge) set, in order, with no sort; the hold rule (one definition since issue
    #14, following parents) is driven by the active holds and open cases, not by every row."""
    for m in range(3):
        _put(vault, "cam-1", m)
    engine = vault.engine
    cases = {
        "no filter": (RecordingQuery(limit=10), "ix_recordings_live_start"),
        "camera": (RecordingQuery(source_id="cam-1", limit=10), "ix_recordings_live_source_"),
        "camera + window": (RecordingQuery(source_id="cam-1", since=T0, until=T0 + dt.timedelta(
            hours=1), limit=10), "ix_recordings_live_source_"),
        "deep keyset page": (RecordingQuery(limit=10, after=page_cursor(
            list_recordings(vault, RecordingQuery(limit=1))[0])), "ix_recordings_live_start"),
    }
    for name, (query, index) in cases.items():
        (plan,) = _plans(engine, lambda q=query: list_recordings(vault, q))
        assert index in plan, (name, plan)
        if "window" not in name:
            assert "TEMP B-TREE" not in plan, (name, plan)
    now = T0 + dt.timedelta(days=60)
    due = select(Recording.id).where(Recording.deleted_at.is_(None),
                                     Recording.retain_until <= now)
    pending = select(Recording.id).where(Recording.deleted_at.is_not(None),
                                         Recording.purged_at.is_(None))
    held = select(Recording.id).where(Recording.deleted_at.is_(None), held_clause())

    def reaper_queries() -> None:
        with read_sessions(engine)() as session:
            for q in (due, pending, held):
                session.execute(q).all()

    plans = _plans(engine, reaper_queries)
    assert "ix_recordings_live_retain_until" in plans[0], plans[0]
    assert "ix_recordings_purge_pending" in plans[1], plans[1]
    # The hold rule builds the held set from the active holds and open cases, reaching
    # recordings only through indexes; it never visits every recording.
    assert "ix_holds_active_source" in plans[2], plans[2]
    assert "ix_recordings_parent_id" in plans[2], plans[2]
    assert not re.search(r"SCAN recordings(?! USING)", plans[2]), plans[2]


@pytest.mark.postgres
def test_the_live_indexes_exist_on_postgresql(fresh_postgres_url: str, tmp_path: Path) -> None:
    """Issue #15 build 5: the same indexes on PostgreSQL, partial where it supports it."""
    with Vault.init(Settings(home=tmp_path / "home", database_url=fresh_postgres_url)) as vault:
        with vault.engine.connect() as conn:
            rows = dict(conn.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN"
                " ('recordings', 'holds', 'case_recordings', 'custody_event_objects')")).all())
    for name in ("ix_recordings_live_start", "ix_recordings_live_source_start",
                 "ix_recordings_live_source_end", "ix_recordings_live_retain_until",
                 "ix_holds_active_source"):
        assert "WHERE" in rows[name], rows[name]
    assert "coalesce" in rows["ix_recordings_live_source_end"].lower()
    assert "ix_case_recordings_recording_id" in rows
    assert "ix_custody_event_objects_seq" in rows


def test_keyset_pages_list_everything_once(vault: Vault) -> None:
    """Issue #15 build 3: paging with ``after`` returns every recording once, in order, the
    same as one long page; a cursor that is not one of ours is refused with a clear error."""
    ids = [_put(vault, f"cam-{m % 2}", m % 3) for m in range(7)]  # ties on capture time
    everything = [r.id for r in list_recordings(vault, RecordingQuery(limit=100))]
    assert sorted(everything) == sorted(ids)
    paged: list[str] = []
    after = None
    while True:
        page = list_recordings(vault, RecordingQuery(limit=3, after=after))
        paged += [r.id for r in page]
        if len(page) < 3:
            break
        after = page_cursor(page[-1])
    assert paged == everything
    import base64

    def b64(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode()

    for bad in ("not-a-cursor!", b64("yesterday|abc"), b64("2026-11-20T22:00:00|abc"),
                b64("2026-11-20T22:00:00+00:00|")):
        with pytest.raises(InvalidInput, match="bad paging cursor"):
            recordings_statement(RecordingQuery(after=bad))


def test_searches_read_without_the_write_lock(vault: Vault, tmp_path: Path) -> None:
    """Issue #15 build 3: every SQLite session began BEGIN IMMEDIATE, so a listing waited for
    (and held up) any writer; a read session now begins deferred and refuses writes."""
    _put(vault, "cam-1", 0)
    path = vault.engine.url.database
    assert path
    writer = sqlite3.connect(path, isolation_level=None, timeout=30)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of an append
    try:
        found: list[int] = []
        reader = threading.Thread(
            target=lambda: found.append(len(list_recordings(vault, RecordingQuery(limit=5)))))
        reader.start()
        reader.join(timeout=5)
        assert not reader.is_alive(), "the listing waited for the writer's lock"
        assert found == [1]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    with read_sessions(vault.engine)() as session, pytest.raises(OperationalError,
                                                                   match="readonly"):
        session.execute(text("DELETE FROM vault_meta"))
    # The pooled connection goes back to writing for ordinary sessions.
    with vault.sessions.begin() as session:
        session.execute(text("UPDATE vault_meta SET value = value WHERE key = 'x'"))
    assert inspect(vault.engine).has_table("recordings")
