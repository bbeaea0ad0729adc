"""Benchmark: concurrent seeking (HTTP Range) in one large recording, through a real uvicorn.

    python benchmarks/api.py                       # 256 MiB recording, 50 clients, 1 MiB ranges
    python benchmarks/api.py --size 1GiB --clients 50 --requests 40 --range-size 512KiB

A vault is created in a temporary directory with one recording of ``--size`` bytes (a random
1 MiB block repeated, generated as it is stored). One uvicorn process serves ``create_app`` on
loopback; ``--clients`` concurrent httpx clients each make ``--requests`` GETs of
``/recordings/{id}/stream`` with a random ``Range: bytes=A-B`` of ``--range-size`` bytes, as a
seeking player does. Every request authenticates (bearer token), checks the access policy,
appends a ``streamed`` custody event and decrypts only the covering segments.

The anchor, same run, same server process and same client load: the plaintext of the same
recording served from a plain file by Starlette's ``FileResponse`` (Range support, no auth, no
custody, no decryption): what a bare file server on this machine does.

Reports per row: requests/s, p50/p99 latency and MB/s of body bytes; checks every response's
bytes; ends with one summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 1 << 20
BLOCK = 1 << 20
_SIZE_RE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?", re.IGNORECASE)
_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 10**3, "mb": 10**6, "gb": 10**9}


def parse_size(text: str) -> int:
    match = _SIZE_RE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 256MiB, 1GiB)")
    return int(match.group(1)) * _UNITS[(match.group(2) or "b").lower()]


class Generated(io.RawIOBase):
    """``size`` bytes of ``block`` repeated, produced as they are read."""

    def __init__(self, block: bytes, size: int) -> None:
        self.block, self.size, self.pos = block, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), self.size - self.pos)
        view = memoryview(buffer)
        done = 0
        while done < n:
            offset = (self.pos + done) % len(self.block)
            take = min(n - done, len(self.block) - offset)
            view[done : done + take] = self.block[offset : offset + take]
            done += take
        self.pos += n
        return n


def expected(block: bytes, start: int, end: int) -> bytes:
    out = bytearray()
    pos = start
    while pos <= end:
        offset = pos % len(block)
        take = min(end - pos + 1, len(block) - offset)
        out += block[offset : offset + take]
        pos += take
    return bytes(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- server (a child process) ------------------------------------------------------------------


def run_server(home: str, plain: str, port: int) -> None:
    import uvicorn
    from starlette.responses import FileResponse

    from api.app import create_app
    from vault.config import Settings

    app = create_app(Settings(home=Path(home)))

    @app.get("/plain", include_in_schema=False)
    def plain_file() -> FileResponse:
        return FileResponse(plain, media_type="application/octet-stream")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- client ------------------------------------------------------------------------------------


async def load(
    url: str, headers: dict[str, str], *, size: int, clients: int, requests: int,
    range_size: int, block: bytes, seed: int,
) -> tuple[list[float], int, float]:
    import httpx

    rng = random.Random(seed)
    plan = [
        [rng.randrange(0, size - range_size) for _ in range(requests)] for _ in range(clients)
    ]
    latencies: list[float] = []
    total = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one_client(starts: list[int]) -> None:
            nonlocal total
            for start in starts:
                end = start + range_size - 1
                t0 = time.perf_counter()
                response = await client.get(url, headers={**headers, "Range": f"bytes={start}-{end}"})
                body = response.content
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 206 or body != expected(block, start, end):
                    raise SystemExit(f"BAD RESPONSE {response.status_code} for {start}-{end}")
                total += len(body)

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(p) for p in plan))
        elapsed = time.perf_counter() - t0
    return latencies, total, elapsed


def row(name: str, latencies: list[float], total: int, elapsed: float) -> dict[str, float]:
    qs = statistics.quantiles(latencies, n=100)
    stats = {
        "rps": len(latencies) / elapsed,
        "p50": qs[49] * 1000,
        "p99": qs[98] * 1000,
        "mbs": total / elapsed / 1e6,
    }
    print(
        f"  {name:<44} {stats['rps']:>8.1f} req/s  p50 {stats['p50']:>7.1f} ms  "
        f"p99 {stats['p99']:>7.1f} ms  {stats['mbs']:>8.1f} MB/s"
    )
    return stats


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit("server exited early")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=256 * MiB, help="recording size (256MiB)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--requests", type=int, default=20, help="requests per client (20)")
    parser.add_argument("--range-size", type=parse_size, default=MiB, help="bytes per range (1MiB)")
    parser.add_argument("--segment-size", type=parse_size, default=MiB, help="vault segment size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", nargs=3, metavar=("HOME", "PLAIN", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(args.serve[0], args.serve[1], int(args.serve[2]))
        return 0

    import datetime as dt

    from vault.access import identity
    from vault.actors import Actor, Role
    from vault.storage.catalog import MediaKind
    from vault.config import Settings
    from vault.vault import Vault
    from vault.capture import Capture

    tmp = tempfile.TemporaryDirectory(prefix="bench-api-")
    home = Path(tmp.name) / "home"
    block = os.urandom(BLOCK)
    settings = Settings(home=home, segment_size=args.segment_size)
    os.environ["EVIDENCE_VAULT_SEGMENT_SIZE"] = str(args.segment_size)
    op = Actor(user="bench", role=Role.ADMINISTRATOR)
    t0 = time.perf_counter()
    with Vault.init(settings) as vault:
        recording = vault.put_stream(
            Generated(block, args.size),  # type: ignore[arg-type]
            Capture(
                source_id="bench-cam",
                media_kind=MediaKind.VIDEO,
                captured_at=dt.datetime.now(dt.UTC),
                original_name="bench.mp4",
            ),
            actor=op,
        )
        identity.create_user(vault, name="viewer", role=Role.IG_OFFICER, organisation="Bench", actor=op)
        token = identity.issue_token(vault, "viewer", actor=op).token
    put_s = time.perf_counter() - t0
    plain = Path(tmp.name) / "plain.bin"
    with plain.open("wb") as f:
        source: BinaryIO = Generated(block, args.size)  # type: ignore[assignment]
        while chunk := source.read(8 * MiB):
            f.write(chunk)

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(home), str(plain), str(port)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_ready(port, proc)
        print(
            f"api range benchmark: {args.size / MiB:.0f} MiB recording ({args.segment_size // 1024} KiB "
            f"segments, stored in {put_s:.1f} s), {args.clients} clients x {args.requests} requests "
            f"of {args.range_size // 1024} KiB, one uvicorn process, {os.cpu_count()} CPUs"
        )
        kw = {"size": args.size, "clients": args.clients, "requests": args.requests,
                  "range_size": args.range_size, "block": block}
        auth = {"Authorization": f"Bearer {token}", "X-Purpose": "benchmark"}
        base = f"http://127.0.0.1:{port}"
        # Warm both paths (connections, page cache), then measure, interleaved.
        asyncio.run(load(f"{base}/plain", {}, seed=0, **{**kw, "requests": 2}))  # type: ignore[arg-type]
        asyncio.run(load(f"{base}/recordings/{recording.id}/stream", auth, seed=0, **{**kw, "requests": 2}))  # type: ignore[arg-type]
        anchor = row("anchor: plain file, FileResponse",
                     *asyncio.run(load(f"{base}/plain", {}, seed=args.seed, **kw)))  # type: ignore[arg-type]
        ours = row("vault stream: auth+policy+custody+decrypt",
                   *asyncio.run(load(f"{base}/recordings/{recording.id}/stream", auth, seed=args.seed, **kw)))  # type: ignore[arg-type]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        tmp.cleanup()
    print(
        f"SUMMARY api Range {args.clients} clients x {args.range_size // 1024} KiB in "
        f"{args.size / MiB:.0f} MiB: {ours['mbs']:.0f} MB/s ({ours['mbs'] / anchor['mbs']:.0%} of a "
        f"plain-file server's {anchor['mbs']:.0f} MB/s), {ours['rps']:.0f} req/s, p50 "
        f"{ours['p50']:.0f} ms, p99 {ours['p99']:.0f} ms (plain: p50 {anchor['p50']:.0f}, p99 "
        f"{anchor['p99']:.0f} ms); every response checked, every request a custody event"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
