"""Ingest and read rate through the vault: single-node MinIO beside a 4-node erasure-coded one.

Both stores are the real MinIO binary the test suite builds (tests/servers.py), on loopback on
this machine; the vault encrypts client-side (AES-256-GCM segments) as in production. The anchor
is the single node; the distributed layout pays for erasure coding (each object written as 2
data + 2 parity shards over four processes) and gains surviving a lost node.

    python benchmarks/minio_layouts.py --recordings 6 --size-mib 32

Ends with one summary line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr

from tests.servers import start_minio, start_minio_cluster
from vault import Settings, Vault
from vault.capture import Capture
from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import SourceKind

ACTOR = Actor(user="bench", role=Role.ADMINISTRATOR, organisation="Bench", client_addr=None)
PURPOSE = Purpose("benchmark", None, None)


def measure(endpoint: str, access: str, secret: str, home: Path, payloads: list[bytes]) -> tuple[float, float]:
    """MiB/s ingesting then reading every payload through a vault on ``endpoint``."""
    settings = Settings(home=home, store_backend="s3", s3_endpoint=endpoint,
                        s3_access_key=SecretStr(access), s3_secret_key=SecretStr(secret),
                        s3_bucket="bench", s3_object_lock=True)
    mib = sum(len(p) for p in payloads) / (1 << 20)
    with Vault.init(settings) as vault:
        started = time.perf_counter()
        ids = [vault.put_stream(
            io.BytesIO(p),
            Capture(
                source_id="cam-1",
                source_kind=SourceKind.CCTV,
                captured_at=dt.datetime.now(dt.UTC),
            ),
            actor=ACTOR,
        ).id
               for p in payloads]
        ingest = mib / (time.perf_counter() - started)
        started = time.perf_counter()
        for rid in ids:
            _, _, chunks = vault.read(rid, actor=ACTOR, purpose=PURPOSE)
            for _ in chunks:
                pass
        read = mib / (time.perf_counter() - started)
    return ingest, read


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=6)
    parser.add_argument("--size-mib", type=int, default=32)
    args = parser.parse_args()
    payloads = [os.urandom(args.size_mib << 20) for _ in range(args.recordings)]
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="minio-layouts-") as tmp:
        single = start_minio(Path(tmp) / "single")
        try:
            results["single node"] = measure(single.endpoint, single.access_key, single.secret_key,
                                             Path(tmp) / "home-single", payloads)
        finally:
            single.stop()
        cluster = start_minio_cluster(Path(tmp) / "cluster")
        try:
            results["4 nodes EC:2"] = measure(cluster.endpoint, cluster.access_key,
                                              cluster.secret_key, Path(tmp) / "home-cluster", payloads)
        finally:
            cluster.stop()
    anchor = results["single node"]
    for name, (ingest, read) in results.items():
        print(f"{name:13}  ingest {ingest:6.1f} MiB/s (x{ingest / anchor[0]:.2f})  "
              f"read {read:6.1f} MiB/s (x{read / anchor[1]:.2f})")
    print(f"MinIO layouts ({args.recordings} x {args.size_mib} MiB, encrypted, {os.cpu_count()} CPUs, "
          f"loopback): ingest single {anchor[0]:.0f} MiB/s vs distributed "
          f"{results['4 nodes EC:2'][0]:.0f} MiB/s; read {anchor[1]:.0f} vs "
          f"{results['4 nodes EC:2'][1]:.0f} MiB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
