"""Issue #16 item 1: jobs on a queue engine that spans machines (Huey on a real Redis).

Worker processes here are real ``python`` processes running a Huey consumer as
``evidence-vault worker`` does; they share nothing with the test but Redis and the catalog.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import RedisServer
from vault import Settings, Vault
from vault.access import Actor, Role
from vault.jobs import Job, JobContext, JobKind, JobState, get_job, open_queue, queue_path

ACTOR = Actor(user="ig-1", role=Role.IG_OFFICER, organisation="Housing", client_addr="10.0.0.5")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _settings(home: Path, redis_url: str) -> Settings:
    from pydantic import SecretStr

    return Settings(home=home, segment_size=4096, queue_url=SecretStr(redis_url))


def _timed(ctx: JobContext) -> dict[str, Any]:
    """A job that takes ``params.seconds`` and says which process ran it."""
    seconds = float(ctx.params.get("seconds", 0))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.progress(1 - (deadline - time.monotonic()) / seconds, "working", force=True)
        time.sleep(0.05)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


def worker_main(home: str, redis_url: str) -> None:
    """A worker process as ``evidence-vault worker`` runs it: every handler registered (the
    retention kind replaced by :func:`_timed`), a sweep on start, then the consumer with its
    periodic sweeper."""
    from api.jobs import open_job_queue

    queue = open_job_queue(_settings(Path(home), redis_url))
    queue.register(JobKind.RETENTION, _timed)
    queue.sweep()
    queue.close()
    queue.consumer(workers=1, periodic=True).run()


def _start_worker(home: Path, redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    code = (f"from tests.deploy.test_queue_redis import worker_main; "
            f"worker_main({str(home)!r}, {redis_url!r})")
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


def _wait(vault: Vault, job_id: str, ok: Any, timeout: float, what: str) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(vault, job_id)
        if ok(job):
            return job
        time.sleep(0.1)
    job = get_job(vault, job_id)
    raise AssertionError(f"job {job_id} not {what} after {timeout}s: {job.state} {job.message}")


@pytest.fixture
def vault(tmp_path: Path, redis_server: RedisServer) -> Iterator[Vault]:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()  # one queue per test
    with Vault.init(_settings(tmp_path / "home", redis_server.url)) as v:
        yield v


@pytest.fixture
def workers(vault: Vault, tmp_path: Path, redis_server: RedisServer) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [_start_worker(vault.settings.home_dir, redis_server.url, tmp_path / f"worker-{i}.log")
             for i in range(3)]
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_queue_url_puts_the_queue_on_redis_not_on_the_local_disk(vault: Vault, redis_server: RedisServer) -> None:
    """Issue #16 item 1: with queue_url set, a submitted job's message is in Redis, where a
    worker on another machine can take it, and no SQLite queue file is made on this host."""
    import redis

    queue = open_queue(vault.settings, vault=vault)
    try:
        job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={"dry_run": True})
        assert job.state == JobState.QUEUED
        assert type(queue.huey).__name__ == "RedisHuey" and queue.huey.pending_count() == 1
        assert redis.Redis.from_url(redis_server.url).llen(queue.huey.storage.queue_key) == 1
        assert not queue_path(vault.settings).exists()
    finally:
        queue.close()


def test_several_worker_processes_drain_one_redis_queue(
        vault: Vault, workers: list[subprocess.Popen[bytes]]) -> None:
    """Issue #16 item 1: three worker processes share one queue: every job runs once, and the
    work is spread over more than one process."""
    queue = open_queue(vault.settings, vault=vault)
    try:
        jobs = [queue.submit(JobKind.RETENTION, actor=ACTOR, params={"seconds": 1.0}) for _ in range(9)]
        done = [_wait(vault, j.id, lambda job: job.state == JobState.SUCCEEDED, 120, "succeeded")
                for j in jobs]
    finally:
        queue.close()
    pids = {job.result["pid"] for job in done if job.result}
    assert pids <= {p.pid for p in workers} and len(pids) >= 2
    assert all(job.attempts == 1 for job in done)


def test_a_worker_killed_mid_job_loses_nothing_and_another_worker_finishes_it(
        vault: Vault, workers: list[subprocess.Popen[bytes]]) -> None:
    """Issue #16 item 1: kill -9 the worker running a job. Redis has already handed the
    message out and forgotten it; the job row (running, naming the dead worker) is the truth:
    a surviving worker's periodic sweep requeues it and another process runs attempt 2."""
    queue = open_queue(vault.settings, vault=vault)
    try:
        job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={"seconds": 6.0})
        running = _wait(vault, job.id, lambda j: j.state == JobState.RUNNING and j.progress > 0,
                        60, "running")
        assert running.worker is not None
        victim = next(p for p in workers if running.worker.endswith(f":{p.pid}"))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        left = get_job(vault, job.id)
        if left.state == JobState.RUNNING:  # (unless a sweep beat us to it, this very moment)
            # Left behind by the dead worker, and its message is gone from Redis.
            assert left.worker == running.worker
            assert not any(job.id in task.args for task in queue.huey.pending())
        # The sweeper runs every minute on each surviving worker.
        done = _wait(vault, job.id, lambda j: j.state == JobState.SUCCEEDED, 150, "succeeded")
    finally:
        queue.close()
    assert done.attempts == 2 and done.result is not None
    assert done.result["pid"] != victim.pid and done.result["attempt"] == 2
    assert done.result["pid"] in {p.pid for p in workers if p is not victim}


def test_the_real_worker_command_drains_the_redis_queue_from_settings_in_the_environment(
        vault: Vault, redis_server: RedisServer, tmp_path: Path) -> None:
    """Issue #16 item 1: ``evidence-vault worker`` with EVIDENCE_VAULT_QUEUE_URL in its
    environment (as compose sets it) takes a real retention job submitted to Redis by another
    process, and reports it done in the catalog."""
    env = {**os.environ, "EVIDENCE_VAULT_HOME": str(vault.settings.home_dir),
           "EVIDENCE_VAULT_SEGMENT_SIZE": "4096", "EVIDENCE_VAULT_QUEUE_URL": redis_server.url}
    queue = open_queue(vault.settings, vault=vault)
    log = tmp_path / "cli-worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "api", "worker"], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={"dry_run": True})
        done = _wait(vault, job.id, lambda j: j.state == JobState.SUCCEEDED, 90, "succeeded")
        assert done.result is not None and done.result["dry_run"] is True
        assert not queue_path(vault.settings).exists()  # nothing went through a local queue file
    finally:
        queue.close()
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert "swept" in log.read_text()
