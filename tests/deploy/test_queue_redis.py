"""Issue #16 item 1: jobs on a queue engine that spans machines (Huey on a real Redis).

Worker processes here are real ``python`` processes running a Huey consumer as
``evidence-vault worker`` does; they share nothing with the test but Redis and the catalog.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import RedisServer, stop_workers
from vault import Settings, Vault
from vault.actors import Actor, Role
from vault.casework.jobs import Job, JobContext, JobKind, JobState, get_job, open_queue, queue_path

ACTOR = Actor(user="ig-1", role=Role.IG_OFFICER, organisation="Housing", client_addr="10.0.0.5")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _settings(home: Path, redis_url: str, *, resend_after_s: int = 300) -> Settings:
    from pydantic import SecretStr

    return Settings(home=home, segment_size=4096, queue_url=SecretStr(redis_url),
                    queue_resend_after_s=resend_after_s)


def _timed(ctx: JobContext) -> dict[str, Any]:
    """A job that takes ``params.seconds`` and says which process ran it; with
    ``params.runs``, it also appends a line to that file each time it starts (a count of runs
    no retry or resend can hide)."""
    if ctx.params.get("runs"):
        with open(ctx.params["runs"], "a") as runs:
            runs.write(f"{os.getpid()} attempt {ctx.attempt}\n")
    seconds = float(ctx.params.get("seconds", 0))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.progress(1 - (deadline - time.monotonic()) / seconds, "working", force=True)
        time.sleep(0.05)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


def worker_main(home: str, redis_url: str, resend_after_s: int = 300) -> None:
    """A worker process as ``evidence-vault worker`` runs it: every handler registered (the
    retention kind replaced by :func:`_timed`), a sweep on start, then the consumer with its
    periodic sweeper."""
    from api.jobs import open_job_queue

    queue = open_job_queue(_settings(Path(home), redis_url, resend_after_s=resend_after_s))
    queue.register(JobKind.RETENTION, _timed)
    queue.sweep()
    queue.close()
    queue.consumer(workers=1, periodic=True).run()


def _start_worker(home: Path, redis_url: str, log: Path, *,
                  resend_after_s: int = 300) -> subprocess.Popen[bytes]:
    code = (f"from tests.deploy.test_queue_redis import worker_main; "
            f"worker_main({str(home)!r}, {redis_url!r}, {resend_after_s})")
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
    stop_workers(procs)


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


# --- lost messages (Redis restarted without persistence, FLUSHALL) ------------------------------


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_workers([proc])


def test_a_job_whose_message_was_flushed_from_redis_runs_exactly_once_more_and_completes(
        vault: Vault, redis_server: RedisServer, tmp_path: Path) -> None:
    """Issue #16 (lost messages): a job is queued, then Redis loses every message (FLUSHALL,
    as a restart without persistence does). The row stays ``queued``; within the grace
    nothing is resent; past it, a worker's sweep finds no message naming the job, enqueues
    it again, and the job runs exactly once (one run, attempt 1) and succeeds; afterwards no
    message is left and a further sweep resends nothing."""
    import redis

    runs = tmp_path / "runs.txt"
    queue = open_queue(vault.settings, vault=vault)
    queue.register(JobKind.RETENTION, _timed)
    worker: subprocess.Popen[bytes] | None = None
    try:
        job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={"seconds": 0.2, "runs": str(runs)})
        assert queue.huey.pending_count() == 1
        redis.Redis.from_url(redis_server.url).flushall()
        assert queue.huey.pending_count() == 0 and get_job(vault, job.id).state == JobState.QUEUED
        assert queue.sweep(resend_after=dt.timedelta(minutes=5)).resent == []  # within the grace
        time.sleep(1.2)  # past the worker's grace of 1 s
        worker = _start_worker(vault.settings.home_dir, redis_server.url, tmp_path / "worker.log",
                               resend_after_s=1)
        done = _wait(vault, job.id, lambda j: j.state == JobState.SUCCEEDED, 90, "succeeded")
        assert done.attempts == 1 and done.result is not None and done.result["pid"] == worker.pid
        time.sleep(1.5)  # a duplicate message, had one been sent, would have been taken by now
        assert queue.sweep(resend_after=dt.timedelta(seconds=1)).resent == []
        assert queue.huey.pending_count() == 0
    finally:
        queue.close()
        if worker is not None:
            _stop(worker)
    assert runs.read_text().splitlines() == [f"{done.result['pid']} attempt 1"]
    assert get_job(vault, job.id).state == JobState.SUCCEEDED


def test_the_sweep_resends_only_messages_that_are_gone_and_only_once(
        vault: Vault, redis_server: RedisServer) -> None:
    """Issue #16 (lost messages): of queued jobs past the grace, only those no message names
    are enqueued again: a job still waiting in a long queue, and one whose retry waits in
    Huey's schedule, are not duplicated. Two sweeps at the same moment (two workers) resend a
    lost job once between them; the grace starts again from the resend."""
    import redis

    queue = open_queue(vault.settings, vault=vault)
    other = open_queue(vault.settings, vault=vault)  # a second worker's sweeper
    try:
        lost = [queue.submit(JobKind.RETENTION, actor=ACTOR, params={"dry_run": True}) for _ in range(2)]
        redis.Redis.from_url(redis_server.url).flushall()
        waiting = queue.submit(JobKind.RETENTION, actor=ACTOR, params={"dry_run": True})
        retrying = queue.submit(JobKind.RETENTION, actor=ACTOR, params={"dry_run": True})
        # Its message moves to the schedule, as a failed attempt's retry does.
        message = queue.huey.dequeue()
        while message is not None and retrying.id not in message.args:
            queue.huey.enqueue(message)
            message = queue.huey.dequeue()
        assert message is not None
        message.eta = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
        queue.huey.add_schedule(message)

        later = vault.clock() + dt.timedelta(minutes=10)
        assert queue.sweep(now=vault.clock(), resend_after=dt.timedelta(minutes=5)).resent == []
        first = queue.sweep(now=later, resend_after=dt.timedelta(minutes=5))
        second = other.sweep(now=later, resend_after=dt.timedelta(minutes=5))
        assert sorted(first.resent) == sorted(j.id for j in lost) and second.resent == []
        named = [task.args[0] for task in queue.huey.pending()]
        assert sorted(named) == sorted([*(j.id for j in lost), waiting.id])  # one message each
        assert [task.args[0] for task in queue.huey.scheduled()] == [retrying.id]
        # The grace restarts at the resend: lost again at once, the resent jobs wait their
        # turn; the job last enqueued at submit, 11 minutes before, goes again now.
        redis.Redis.from_url(redis_server.url).delete(queue.huey.storage.queue_key)
        assert queue.sweep(now=later + dt.timedelta(minutes=1),
                           resend_after=dt.timedelta(minutes=5)).resent == [waiting.id]
        assert all(get_job(vault, j.id).state == JobState.QUEUED for j in [*lost, waiting, retrying])
    finally:
        queue.close()
        other.close()
