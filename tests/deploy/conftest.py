"""Fixtures for the scale-out deployment tests: the engines a multi-machine vault runs on."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import _server_or_skip
from tests.servers import RedisServer, SoftHsm, start_redis, start_softhsm


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server (Debian's redis-server) on loopback for the whole session."""
    server = _server_or_skip("Redis", lambda: start_redis(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A SoftHSM2 token for the whole session. ``SOFTHSM2_CONF`` is set for the session: the
    library reads it once per process, so one token store serves every test (each test keeps
    its keys apart with its own key label)."""
    hsm = _server_or_skip("SoftHSM2", lambda: start_softhsm(tmp_path_factory.mktemp("softhsm")))
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    yield hsm
    if before is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = before
