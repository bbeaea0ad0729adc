"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import vault.jobs  # noqa: F401  (every table module registers on Base.metadata)
import vault.sar  # noqa: F401
import vault.shares  # noqa: F401
import vault.credentials  # noqa: F401
import vault.web_sessions  # noqa: F401
from vault.catalog import Base
from vault.db import make_engine, upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("fresh_postgres_url"))
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


def test_migrations_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine)  # running again is a no-op
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_device_clock_columns_are_filled_from_earlier_ingests(db_url: str) -> None:
    import datetime as dt
    import json

    from sqlalchemy import text

    engine = make_engine(db_url)
    upgrade(engine, "0004")
    clock = {"device_time": "2026-11-20T10:01:30+00:00", "received_at": "2026-11-20T10:00:00+00:00",
             "offset_s": 90.0, "bound_s": 2.0, "flagged": True, "reason": "fast"}
    now = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
    with engine.begin() as c:
        c.execute(text("INSERT INTO sources (id, kind, created_at) VALUES ('bwv-1', 'BODY_WORN', :t)"),
                  {"t": now})
        for rid, info in (("r1", {"clock": clock}), ("r2", {"container": "mp4"}), ("r3", None)):
            c.execute(text(
                "INSERT INTO recordings (id, source_id, media_kind, captured_start, received_at, "
                "size, sha256, object_key, stored_size, enc_format, key_id, retain_until, "
                "media_info) VALUES (:id, 'bwv-1', 'VIDEO', :t, :t, 1, 'x', :id, 1, 'evs1', 'k', "
                ":t, :info)"), {"id": rid, "t": now, "info": None if info is None else json.dumps(info)})
    upgrade(engine)
    with engine.connect() as c:
        rows = {r.id: r for r in c.execute(text(
            "SELECT id, device_time, clock_offset_ms, clock_flagged FROM recordings"))}
    engine.dispose()
    assert rows["r1"].clock_offset_ms == 90_000 and rows["r1"].clock_flagged
    assert rows["r1"].device_time is not None
    assert not rows["r2"].clock_flagged and rows["r2"].clock_offset_ms is None
    assert not rows["r3"].clock_flagged
