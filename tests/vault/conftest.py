"""Vault fixtures: a fresh vault per test, on the embedded default or on real servers."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.config import Settings
from vault.vault import Vault

SMALL_SEGMENT = 4096  # small segments make boundary cases cheap to test
T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


class Clock:
    """The vault's clock in tests: starts at T0 and moves only when told (``clock.now += ...``)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked_vault(tmp_path: Path, clock: Clock) -> Iterator[Vault]:
    """A vault on the embedded default whose clock is ``clock``."""
    with Vault.init(Settings(home=tmp_path / "home", segment_size=SMALL_SEGMENT),
                    clock=clock) as v:
        yield v


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    """A vault on the embedded default: SQLite, local store, local keyring."""
    with Vault.init(Settings(home=tmp_path / "home", segment_size=SMALL_SEGMENT)) as v:
        yield v


@pytest.fixture(
    params=[
        "sqlite-local",
        pytest.param("postgres-local", marks=pytest.mark.postgres),
        pytest.param("sqlite-minio", marks=pytest.mark.minio),
        pytest.param("sqlite-seaweedfs", marks=pytest.mark.seaweedfs),
    ]
)
def any_vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Vault]:
    """A vault on each catalog and object-store backend the suite can start."""
    db, store = request.param.split("-")
    options: dict[str, object] = {"home": tmp_path / "home", "segment_size": SMALL_SEGMENT}
    if db == "postgres":
        options["database_url"] = request.getfixturevalue("fresh_postgres_url")
    if store != "local":
        server = request.getfixturevalue(f"{store}_server")
        options.update(
            store_backend="s3",
            s3_endpoint=server.endpoint,
            s3_access_key=server.access_key,
            s3_secret_key=server.secret_key,
            s3_bucket=f"vault-{uuid.uuid4().hex[:12]}",
        )
    with Vault.init(Settings(**options)) as v:  # type: ignore[arg-type]
        yield v
