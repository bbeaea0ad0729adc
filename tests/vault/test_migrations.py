"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import vault.casework.jobs  # noqa: F401  (every table module registers on Base.metadata)
import vault.casework.intermediates  # noqa: F401
import vault.casework.sar  # noqa: F401
import vault.casework.shares  # noqa: F401
import vault.access.credentials  # noqa: F401
import vault.access.web_sessions  # noqa: F401
from vault.storage.catalog import Base
from vault.storage.db import make_engine, upgrade
from vault.config import Settings
from vault.errors import ConfigError
from vault.vault import Vault


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


def test_origins_and_organisations_are_filled_from_earlier_rows(db_url: str) -> None:
    """Migration 0006 (issue #11 findings 1-3): derived recordings made before it get their
    origins from their provenance (a redacted copy of a clip names the clip's segments), and
    holds and requests made before it get the organisation of the case or of who made them."""
    import datetime as dt
    import json

    from sqlalchemy import text

    engine = make_engine(db_url)
    upgrade(engine, "0005")
    now = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
    with engine.begin() as c:
        c.execute(text("INSERT INTO sources (id, kind, created_at) VALUES ('cam-1', 'CCTV', :t)"),
                  {"t": now})

        def rec(rid: str, parent: str | None = None, prov: object = None) -> None:
            c.execute(text(
                "INSERT INTO recordings (id, source_id, media_kind, captured_start, received_at, "
                "size, sha256, object_key, stored_size, enc_format, key_id, retain_until, "
                "parent_id, provenance, clock_flagged) VALUES (:id, 'cam-1', 'VIDEO', :t, :t, 1, "
                "'x', :id, 1, 'evs1', 'k', :t, :parent, :prov, false)"),
                {"id": rid, "t": now, "parent": parent,
                 "prov": None if prov is None else json.dumps(prov)})

        rec("seg-1")
        rec("seg-2")
        rec("clip", "seg-1", {"kind": "clip", "sources": [{"id": "seg-1"}, {"id": "seg-2"}]})
        rec("redacted", "clip", {"kind": "redaction"})
        rec("package", "seg-1", {"kind": "export", "recording_ids": ["seg-1", "redacted"]})
        c.execute(text("INSERT INTO users (id, name, role, organisation, created_at, active) "
                       "VALUES ('u1', 'ig.one', 'IG_OFFICER', 'Northgate', :t, true)"), {"t": now})
        c.execute(text("INSERT INTO cases (id, reference, status, created_at) VALUES "
                       "('c1', 'ASB/1', 'OPEN', :t)"), {"t": now})
        c.execute(text("INSERT INTO case_owners (case_id, organisation) VALUES ('c1', 'Partner')"))
        for hid, case, by in (("h1", "c1", None), ("h2", None, "ig.one"), ("h3", None, "gone")):
            c.execute(text("INSERT INTO holds (id, kind, reason, case_id, recording_id, created_by, "
                           "created_at) VALUES (:id, 'CASE', 'r', :case, 'seg-1', :by, :t)"),
                      {"id": hid, "case": case, "by": by, "t": now})
        c.execute(text("INSERT INTO subject_access_requests (id, reference, requester_name, "
                       "received_on, due_on, extension_months, status, created_by, created_at) "
                       "VALUES ('s1', 'SAR-1', 'A', :d, :d, 0, 'OPEN', 'ig.one', :t)"),
                  {"d": now.date(), "t": now})
    upgrade(engine)
    with engine.connect() as c:
        origins: dict[str, set[str]] = {}
        for rid, origin in c.execute(text("SELECT recording_id, origin_id FROM recording_origins")):
            origins.setdefault(rid, set()).add(origin)
        holds = dict(c.execute(text("SELECT id, organisation FROM holds")).all())
        sars = dict(c.execute(text("SELECT id, organisation FROM subject_access_requests")).all())
    engine.dispose()
    assert origins == {"clip": {"seg-1", "seg-2"}, "redacted": {"seg-1", "seg-2"},
                       "package": {"seg-1", "seg-2"}}
    assert holds == {"h1": "Partner", "h2": "Northgate", "h3": None}
    assert sars == {"s1": "Northgate"}


def test_opening_a_catalog_a_schema_behind_says_to_run_init(tmp_path: Path) -> None:
    """A software update that adds a migration: ``Vault.open`` on the old catalog names the
    revisions and the command to run, instead of failing later on a missing table; ``init``
    upgrades it and the vault opens."""
    from alembic import command
    from alembic.config import Config

    from vault.storage.db import MIGRATIONS_DIR, head_revision, make_engine

    settings = Settings(home=tmp_path / "home")
    Vault.init(settings).close()
    engine = make_engine(settings.catalog_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "-1")
    engine.dispose()
    with pytest.raises(ConfigError, match=f"needs {head_revision()}: run 'evidence-vault init'"):
        Vault.open(settings)
    Vault.init(settings).close()
    Vault.open(settings).close()
