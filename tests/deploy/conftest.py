"""Fixtures for the scale-out deployment tests: the engines a multi-machine vault runs on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _server_or_skip
from tests.servers import RedisServer, start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server (Debian's redis-server) on loopback for the whole session."""
    server = _server_or_skip("Redis", lambda: start_redis(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()
