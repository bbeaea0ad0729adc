"""Counting the rows a code path reads from the catalog, on SQLite and PostgreSQL (issue #15:
proof and verify paths must not read the whole ledger)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event

from vault.storage.catalog import Base
from vault.storage.db import make_engine


class Counter:
    """Rows handed back by the database to the application (SELECT results)."""

    def __init__(self) -> None:
        self.rows = 0


_SQLITE_COUNTER = Counter()


class _CountingCursor(sqlite3.Cursor):
    def fetchone(self) -> Any:
        row = super().fetchone()
        _SQLITE_COUNTER.rows += row is not None
        return row

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = super().fetchmany() if size is None else super().fetchmany(size)
        _SQLITE_COUNTER.rows += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows = super().fetchall()
        _SQLITE_COUNTER.rows += len(rows)
        return rows


class _CountingConnection(sqlite3.Connection):
    def cursor(self, factory: Any = _CountingCursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)


def _counting_sqlite(path: Path) -> tuple[Engine, Counter]:
    # The URL names no file, so the ledger reads through this engine too (its snapshot twin is
    # only made for file URLs); the file comes from the creator.
    engine = create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(
            str(path), factory=_CountingConnection, isolation_level=None,
            check_same_thread=False, timeout=30,
        ),
    )

    @event.listens_for(engine, "connect")
    def _wal(dbapi: Any, _record: Any) -> None:
        dbapi.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def _immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    _SQLITE_COUNTER.rows = 0
    return engine, _SQLITE_COUNTER


def _counting_postgres(url: str) -> tuple[Engine, Counter]:
    engine = make_engine(url)
    counter = Counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _count(_c: Any, cursor: Any, statement: str, *_args: Any) -> None:
        # psycopg's client-side cursor holds the whole result: rowcount is what was read.
        if statement.lstrip().upper().startswith("SELECT") and cursor.rowcount > 0:
            counter.rows += cursor.rowcount

    return engine, counter


def counting_engine(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Engine, Counter]:
    """An empty catalog (``request.param``: sqlite or postgres) whose engine counts the rows
    every SELECT returns."""
    if request.param == "sqlite":
        engine, counter = _counting_sqlite(tmp_path / "catalog.sqlite3")
    else:
        engine, counter = _counting_postgres(request.getfixturevalue("fresh_postgres_url"))
    Base.metadata.create_all(engine)
    return engine, counter
