"""Catalog database: engines, sessions and schema migrations.

The schema is owned by Alembic (``vault/storage/migrations``); :func:`upgrade` brings any database, new
or old, to the current revision. SQLite gets WAL and a busy timeout so that an agent and the API
can share the embedded catalog.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from vault.errors import ConfigError, NotFound

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``).

    Raises ConfigError when the URL names a directory that does not exist.
    """
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) not in ("", ":memory:") and not path.parent.exists():
            raise ConfigError(f"catalog directory {path.parent} does not exist; run 'evidence-vault init'")
        # pysqlite's own transaction handling is switched off so that every transaction starts
        # with BEGIN IMMEDIATE: a writer takes the lock before it reads the ledger head, so two
        # processes can never both extend the same head (no forked chain, no SQLITE_BUSY_SNAPSHOT).
        # Sessions from read_sessions() begin a deferred, query-only transaction instead.
        engine = create_engine(
            url, connect_args={"timeout": 30, "isolation_level": None}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers work while a writer appends; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Crypto-shredding must not leave the wrapped data key in free pages of the file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


#: Execution option marking a connection whose transactions only read (see read_sessions).
READ_ONLY = "evidence_vault_read_only"


def _sqlite_begin(connection: Any) -> None:
    # A read takes no write lock: BEGIN (deferred) is a snapshot in WAL mode, so a slow search
    # never holds up ingest or custody appends. query_only makes SQLite refuse any write in it,
    # so a read session can never become the unlocked read-then-write that IMMEDIATE prevents.
    # The flag lives on the pooled DBAPI connection; it is switched only when it changes.
    read_only = bool(connection.get_execution_options().get(READ_ONLY))
    info = connection.connection.info
    if info.get(READ_ONLY, False) != read_only:
        connection.exec_driver_sql(f"PRAGMA query_only = {'ON' if read_only else 'OFF'}")
        info[READ_ONLY] = read_only
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def scrub_freed_pages(engine: Engine, *, attempts: int = 50, wait_s: float = 0.1) -> bool:
    """After key material was destroyed in a SQLite catalog, leave no copy of it in its files.

    SQLite writes every changed page to ``<catalog>-wal`` first; the page as it was before
    (holding, say, a wrapped data key just set to NULL) stays in the main file until a
    checkpoint overwrites it, and older frames stay in the WAL file, which is reused, not
    shrunk. ``secure_delete`` (set on every connection) zeroes freed content in the main file;
    this checkpoints the WAL into it and truncates the WAL to zero bytes.

    Returns True when done, or when there is nothing to do (PostgreSQL, an in-memory
    database); False when other connections kept reading an older snapshot through every
    attempt (call again later). PostgreSQL keeps old row versions until VACUUM and in its WAL
    archives: there, destroying the key-encryption key is the shred point (docs/ledger.md).
    """
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return True
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for attempt in range(attempts):
            busy, _log, _done = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy == 0:
                return True
            if attempt + 1 < attempts:
                time.sleep(wait_s)
        return False
    finally:
        raw.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def read_sessions(engine: Engine) -> sessionmaker[Session]:
    """A factory of sessions that only read: on SQLite each begins a deferred transaction (a
    WAL snapshot, no write lock) with writes refused (``PRAGMA query_only``), so searches and
    listings never wait for, or hold up, ingest and custody appends; on PostgreSQL reads never
    block writers anyway, and the sessions are ordinary ones.

    A write through such a session raises (SQLite: "attempt to write a readonly database").
    """
    if engine.dialect.name != "sqlite":
        return session_factory(engine)
    return sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations on ``engine`` up to ``revision``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


@functools.cache
def head_revision() -> str:
    """The schema revision this code expects: the head of ``vault/storage/migrations``."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None, "the migrations have one head (tests/vault/test_migrations.py)"
    return head


def schema_revision(engine: Engine) -> str | None:
    """The revision the catalog's schema is at (``None``: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


_Row = TypeVar("_Row")


def get_or_not_found(session: Session, model: type[_Row], key: Any, *, noun: str) -> _Row:
    """``session.get(model, key)``, or :class:`~vault.errors.NotFound` saying "no <noun> with
    id <key>": the one lookup the casework and access modules make (issue #14 item 3)."""
    found = session.get(model, key)
    if found is None:
        raise NotFound(f"no {noun} with id {key}")
    return found
