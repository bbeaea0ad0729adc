"""Issue #16 item 2: storage that survives a lost node (4 real MinIO processes, erasure-coded).

The cluster is four MinIO processes on loopback, one drive each (EC:2: any two drives rebuild
an object, three make a write quorum). The vault talks to node 0, as it would to the load
balancer in front of a production cluster; the nodes killed are the others, with SIGKILL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.conftest import _server_or_skip
from tests.servers import MinioCluster, start_minio_cluster
from vault import Settings, Vault
from vault.capture import Capture
from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import Recording, SourceKind

ACTOR = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Housing", client_addr="10.0.0.7")
PURPOSE = Purpose("incident review", "DPA 2018 s.35", "CASE/9")
SIZE = 36 << 20  # three 16 MiB multipart parts

pytestmark = [pytest.mark.minio, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioCluster]:
    c = _server_or_skip("MinIO (4 nodes)",
                        lambda: start_minio_cluster(tmp_path_factory.mktemp("minio-cluster")))
    yield c
    c.stop()


@pytest.fixture
def vault(cluster: MinioCluster, tmp_path: Path) -> Iterator[Vault]:
    for i in range(len(cluster.nodes)):  # every test starts with the whole cluster up
        cluster.restart(i)
    cluster.wait_healthy()
    settings = Settings(
        home=tmp_path / "home", store_backend="s3", s3_endpoint=cluster.endpoint,
        s3_access_key=SecretStr(cluster.access_key), s3_secret_key=SecretStr(cluster.secret_key),
        s3_bucket=f"evidence-{os.urandom(4).hex()}", s3_object_lock=True,
    )
    with Vault.init(settings) as v:
        yield v


class _Footage(io.RawIOBase):
    """``size`` random bytes, read like a file; ``at_offset`` runs once when reading passes it."""

    def __init__(self, size: int, at_offset: int, action: Callable[[], None]) -> None:
        self._data = io.BytesIO(os.urandom(size))
        self.sha256 = hashlib.sha256(self._data.getvalue()).hexdigest()
        self._at, self._action, self._done = at_offset, action, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._done and self._data.tell() >= self._at:
            self._done = True
            self._action()
        return self._data.readinto(buffer)


def _put(vault: Vault, stream: io.RawIOBase) -> str:
    return vault.put_stream(
        io.BufferedReader(stream),
        Capture(
            source_id="cam-1", source_kind=SourceKind.CCTV, captured_at=dt.datetime.now(dt.UTC)
        ),
        actor=ACTOR,
    ).id


def _sha256_of(vault: Vault, rid: str, during: Callable[[], None] | None = None) -> str:
    _, _, chunks = vault.read(rid, actor=ACTOR, purpose=PURPOSE)
    digest = hashlib.sha256()
    for i, chunk in enumerate(chunks):
        if i == 1 and during is not None:
            during()
        digest.update(chunk)
    return digest.hexdigest()


def test_an_ingest_survives_a_node_killed_in_the_middle_of_it(vault: Vault, cluster: MinioCluster) -> None:
    """Issue #16 item 2: node 3 is killed (SIGKILL) 20 MiB into a 36 MiB ingest, after the
    first 16 MiB part was stored on all four nodes and before the rest: the multipart upload
    completes on the three nodes left (write quorum), and the footage reads back whole, with
    the node still down and again after it returns."""
    footage = _Footage(SIZE, 20 << 20, lambda: cluster.kill(3))
    rid = _put(vault, footage)
    assert cluster.nodes[3] is None  # it really was killed during the ingest
    with vault.sessions() as session:
        row = session.get(Recording, rid)
        assert row is not None and row.sha256 == footage.sha256
    assert _sha256_of(vault, rid) == footage.sha256
    cluster.restart(3)
    cluster.wait_healthy()
    assert _sha256_of(vault, rid) == footage.sha256


def test_a_read_survives_a_node_killed_in_the_middle_of_it(vault: Vault, cluster: MinioCluster) -> None:
    """Issue #16 item 2: node 2 is killed while a 36 MiB recording is being streamed; the
    stream goes on from the other drives (read quorum is 2 of 4) and every byte is right."""
    footage = _Footage(SIZE, SIZE + 1, lambda: None)
    rid = _put(vault, footage)
    assert _sha256_of(vault, rid, during=lambda: cluster.kill(2)) == footage.sha256
    assert cluster.nodes[2] is None
