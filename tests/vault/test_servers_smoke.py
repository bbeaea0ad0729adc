"""The servers tests/servers.py starts answer real clients (so a broken server fails here first)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from minio import Minio
from minio.error import S3Error

from tests.servers import S3Server


@pytest.mark.postgres
def test_postgres_url_is_a_fresh_database(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            database = conn.execute(sa.text("select current_database()")).scalar_one()
            version = conn.execute(sa.text("show server_version")).scalar_one()
    finally:
        engine.dispose()
    assert str(database).startswith("vault_test_")
    assert int(str(version).split(".")[0]) >= 16


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("minio", marks=pytest.mark.minio),
        pytest.param("seaweedfs", marks=pytest.mark.seaweedfs),
    ],
)
def test_s3_server_checks_signatures(request: pytest.FixtureRequest, name: str) -> None:
    server: S3Server = request.getfixturevalue(f"{name}_server")
    good = Minio(server.endpoint, server.access_key, server.secret_key, secure=False)
    good.list_buckets()
    bad = Minio(server.endpoint, server.access_key, "not-the-secret", secure=False)
    with pytest.raises(S3Error, match="SignatureDoesNotMatch|AccessDenied"):
        bad.list_buckets()
