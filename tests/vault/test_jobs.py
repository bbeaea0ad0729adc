"""Jobs: the table's life cycle, retries, fencing, and a real Huey consumer surviving a kill."""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vault import Settings, Vault
from vault.capture import Capture
from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import SourceKind
from vault.casework.disclosure import verify_export
from vault.errors import InvalidInput, NotFound
from vault.casework.jobs import (
    Job,
    JobContext,
    JobKind,
    JobQueue,
    JobState,
    cancel_job,
    get_job,
    list_jobs,
    open_queue,
    package_recording_id,
    queue_path,
)

ACTOR = Actor(user="ig-1", role=Role.IG_OFFICER, organisation="Housing", client_addr="10.0.0.5")
PURPOSE = Purpose("disclosure to police", "DPA 2018 s.35", "CRIME/7")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.init(Settings(home=tmp_path / "home", segment_size=4096)) as v:
        yield v


@pytest.fixture
def queue(vault: Vault) -> Iterator[JobQueue]:
    q = open_queue(vault.settings, immediate=True, vault=vault)
    yield q
    q.close()


def _put(vault: Vault, data: bytes) -> str:
    return vault.put_stream(
        io.BytesIO(data),
        Capture(
            source_id="cam-1", source_kind=SourceKind.CCTV, captured_at=dt.datetime.now(dt.UTC)
        ),
        actor=ACTOR,
    ).id


def test_export_job_stores_the_package_encrypted_and_it_verifies(vault: Vault, queue: JobQueue, tmp_path: Path) -> None:
    rid = _put(vault, os.urandom(20_000))
    job = queue.submit(JobKind.EXPORT, actor=ACTOR, purpose=PURPOSE, params={
        "recording_ids": [rid], "recipient": "DC Jones", "recipient_org": "Met Police"})
    assert job.state == JobState.SUCCEEDED and job.progress == 1.0 and job.attempts == 1
    assert job.started_at and job.finished_at and job.worker is None and job.error is None
    package_id = package_recording_id(job)
    stored = vault.recording(package_id)
    assert stored.parent_id == rid and (stored.provenance or {})["kind"] == "export"
    path = tmp_path / "package.zip"
    vault.export_file(package_id, path, actor=ACTOR, purpose=PURPOSE)
    assert verify_export(path, vault.ledger.verifier_key())["export_id"] == job.result["export_id"]
    # The export event names who asked (the job acts for them) and why.
    event = vault.ledger.events(action="exported", limit=10)[-1].event
    assert event.actor == "ig-1" and event.recipient_org == "Met Police"
    assert event.reference == "CRIME/7"
    # No plaintext package is left anywhere under the vault's home (spool included).
    assert list(vault.settings.home_dir.rglob("*.zip")) == []


def test_retention_job_reports(vault: Vault, queue: JobQueue) -> None:
    job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={"dry_run": True})
    assert job.state == JobState.SUCCEEDED and job.result and job.result["dry_run"] is True


def test_a_vault_error_fails_at_once_with_the_reason(vault: Vault, queue: JobQueue) -> None:
    job = queue.submit(JobKind.EXPORT, actor=ACTOR, purpose=PURPOSE, params={
        "recording_ids": ["00000000-0000-4000-8000-000000000000"], "recipient": "DC Jones",
        "recipient_org": "Met Police"})
    assert job.state == JobState.FAILED and job.attempts == 1
    assert job.error and job.error.startswith("NotFound")
    with pytest.raises(NotFound):
        package_recording_id(job)


def test_an_unexpected_error_is_retried_by_huey(vault: Vault, queue: JobQueue) -> None:
    calls: list[int] = []

    def flaky(ctx: JobContext) -> dict[str, Any]:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise OSError("disk full")
        return {"ok": True}

    queue.register(JobKind.RETENTION, flaky)
    job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={})
    assert calls == [1, 2]
    assert job.state == JobState.SUCCEEDED and job.attempts == 2 and job.result == {"ok": True}


def test_retries_stop_at_max_attempts(vault: Vault, queue: JobQueue) -> None:
    def broken(ctx: JobContext) -> dict[str, Any]:
        raise OSError(f"disk full (attempt {ctx.attempt})")

    queue.register(JobKind.RETENTION, broken)
    job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={})
    assert job.state == JobState.FAILED and job.attempts == 3
    assert job.error == "OSError: disk full (attempt 3)"


def test_progress_is_recorded_and_throttled(vault: Vault, queue: JobQueue) -> None:
    seen: list[tuple[float, str | None]] = []

    def counting(ctx: JobContext) -> dict[str, Any]:
        for i in range(1000):
            ctx.progress(i / 1000, "counting")
        ctx.progress(0.5, "halfway", force=True)
        row = get_job(ctx.vault, ctx.job.id)
        seen.append((row.progress, row.message))
        return {}

    queue.register(JobKind.RETENTION, counting)
    queue.submit(JobKind.RETENTION, actor=ACTOR, params={})
    assert seen == [(0.5, "halfway")]


def test_cancelled_job_stops_and_stays_cancelled(vault: Vault, queue: JobQueue) -> None:
    def cancels_itself(ctx: JobContext) -> dict[str, Any]:
        cancel_job(ctx.vault, ctx.job.id)
        ctx.progress(0.9, "still going?", force=True)  # raises JobAborted
        raise AssertionError("not reached")

    queue.register(JobKind.RETENTION, cancels_itself)
    job = get_job(vault, queue.submit(JobKind.RETENTION, actor=ACTOR, params={}).id)
    assert job.state == JobState.CANCELLED and job.result is None
    with pytest.raises(InvalidInput, match="already finished"):
        cancel_job(vault, job.id)


def test_a_cancelled_queued_job_is_never_run(vault: Vault) -> None:
    queue = open_queue(vault.settings, vault=vault)  # stored, not run
    job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={})
    cancel_job(vault, job.id)
    queue.run(job.id)  # what a worker would do on delivery
    assert get_job(vault, job.id).state == JobState.CANCELLED
    assert list_jobs(vault, state=JobState.CANCELLED)[0].id == job.id
    queue.close()


def _running_row(vault: Vault, *, worker: str, attempts: int, heartbeat: dt.datetime) -> str:
    job = Job(kind=JobKind.RETENTION, state=JobState.RUNNING, progress=0.4,
              params={"dry_run": True}, created_by="ig-1", created_role="ig_officer",
              created_org="Housing", created_at=heartbeat, started_at=heartbeat,
              heartbeat_at=heartbeat, attempts=attempts, max_attempts=3, worker=worker)
    with vault.sessions.begin() as s:
        s.add(job)
    return job.id


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_requeues_a_dead_workers_job_and_gives_up_after_max_attempts(vault: Vault, queue: JobQueue) -> None:
    import socket

    now = vault.clock()
    dead = f"{socket.gethostname()}:{_dead_pid()}"
    alive = f"{socket.gethostname()}:{os.getpid()}"
    retry = _running_row(vault, worker=dead, attempts=1, heartbeat=now)
    spent = _running_row(vault, worker=dead, attempts=3, heartbeat=now)
    busy = _running_row(vault, worker=alive, attempts=1, heartbeat=now)
    elsewhere = _running_row(vault, worker="other-host:1", attempts=1, heartbeat=now)
    silent = _running_row(vault, worker="other-host:2", attempts=1,
                          heartbeat=now - dt.timedelta(hours=1))

    report = queue.sweep()
    assert sorted(report.requeued) == sorted([retry, silent]) and report.failed == [spent]
    # Requeued jobs ran again (immediately, in this queue) as their second attempt.
    for job_id in (retry, silent):
        job = get_job(vault, job_id)
        assert job.state == JobState.SUCCEEDED and job.attempts == 2
    failed = get_job(vault, spent)
    assert failed.state == JobState.FAILED and "giving up" in (failed.error or "")
    # A live worker's job, and a job on another machine with a fresh heartbeat, are left alone.
    assert get_job(vault, busy).state == JobState.RUNNING
    assert get_job(vault, elsewhere).state == JobState.RUNNING


def test_a_stale_attempt_cannot_overwrite_the_current_one(vault: Vault, queue: JobQueue) -> None:
    """Fencing: a worker that lost its job (requeued under it) cannot record a result."""
    from vault.casework.jobs import JobAborted

    stale: list[JobContext] = []

    def slow(ctx: JobContext) -> dict[str, Any]:
        stale.append(ctx)
        return {"attempt": ctx.attempt}

    queue.register(JobKind.RETENTION, slow)
    job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={})
    assert get_job(vault, job.id).result == {"attempt": 1}
    with pytest.raises(JobAborted):
        stale[0].progress(0.1, "late", force=True)


# --- a real consumer ---------------------------------------------------------------------------


def _slow(ctx: JobContext) -> dict[str, Any]:
    for i in range(1200):
        ctx.progress(i / 1200, f"step {i}", force=True)
        time.sleep(0.05)
    return {"slow": True}


def worker_main(home: str, slow: bool) -> None:
    """A worker process as ``evidence-vault worker`` runs it (optionally with a slow handler)."""
    settings = Settings(home=Path(home), segment_size=4096)
    queue = open_queue(settings)
    if slow:
        queue.register(JobKind.RETENTION, _slow)
    queue.sweep()
    queue.close()
    queue.consumer(workers=1, periodic=False).run()


def _start_worker(home: Path, *, slow: bool) -> subprocess.Popen[bytes]:
    code = f"from tests.vault.test_jobs import worker_main; worker_main({str(home)!r}, {slow})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(vault: Vault, job_id: str, state: JobState, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(vault, job_id)
        if job.state == state:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {get_job(vault, job_id).state} after {timeout}s")


def test_a_real_worker_runs_queued_jobs_and_a_killed_workers_job_is_retried(vault: Vault) -> None:
    queue = open_queue(vault.settings, vault=vault)
    assert queue_path(vault.settings).exists()

    # A worker takes the queued job and dies in the middle of it (SIGKILL: no clean-up at all).
    job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={"dry_run": True})
    assert job.state == JobState.QUEUED and queue.huey.pending_count() == 1
    doomed = _start_worker(vault.settings.home_dir, slow=True)
    try:
        running = _wait_for(vault, job.id, JobState.RUNNING)
        assert running.worker and running.worker.endswith(f":{doomed.pid}") and running.attempts == 1
        deadline = time.monotonic() + 30
        while get_job(vault, job.id).progress == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get_job(vault, job.id).progress > 0  # it reports progress as it goes
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    assert get_job(vault, job.id).state == JobState.RUNNING  # left behind...
    assert queue.huey.pending_count() == 0  # ...and gone from Huey's queue

    # A new worker sweeps on start: the job is requeued as attempt 2 and completes.
    second = queue.submit(JobKind.RETENTION, actor=ACTOR, params={"dry_run": True})
    worker = _start_worker(vault.settings.home_dir, slow=False)
    try:
        done = _wait_for(vault, job.id, JobState.SUCCEEDED)
        assert done.attempts == 2 and done.result and done.result["dry_run"] is True
        other = _wait_for(vault, second.id, JobState.SUCCEEDED)
        assert other.attempts == 1
    finally:
        worker.send_signal(signal.SIGINT)  # graceful stop
        assert worker.wait(timeout=30) == 0
    queue.close()


def test_a_stored_package_goes_with_the_first_of_its_recordings_to_go(
        vault: Vault, queue: JobQueue) -> None:
    from vault.casework.retention import run_retention

    now = dt.datetime.now(dt.UTC)
    later = vault.put_stream(
        io.BytesIO(os.urandom(9_000)),
        Capture(source_id="cam-1", source_kind=SourceKind.CCTV, captured_at=now),
        actor=ACTOR,
    ).id
    earlier = vault.put_stream(
        io.BytesIO(os.urandom(9_000)),
        Capture(
            source_id="cam-2", source_kind=SourceKind.CCTV, captured_at=now - dt.timedelta(days=5)
        ),
        actor=ACTOR,
    ).id
    # The package's catalog parent is its first item, the later recording.
    job = queue.submit(JobKind.EXPORT, actor=ACTOR, purpose=PURPOSE, params={
        "recording_ids": [later, earlier], "recipient": "DC Jones", "recipient_org": "Met Police"})
    package = package_recording_id(job)
    assert vault.recording(package).parent_id == later
    # Day 19 after the later capture: the earlier recording's 23 days are up, so the package
    # (which holds a copy of it) goes too; the later recording stays.
    report = run_retention(vault, now=now + dt.timedelta(days=19))
    gone = {d.recording_id: d.reason for d in report.deleted}
    assert set(gone) == {earlier, package}
    assert gone[package] == f"disclosure package holding a copy of {earlier}, which was deleted"
    assert vault.recording(later).deleted_at is None


def test_status_reads_leave_the_plan_in_the_catalog(any_vault: Vault) -> None:
    """A plan is megabytes of JSON on long footage, and job status is polled: a parent reads
    its children's statuses twice a second, clients poll ``GET /jobs/{id}``. Those reads
    (``job_statuses``, ``list_jobs``, ``require_job(with_plan=False)``) load no plan:
    reading it raises rather than loading it behind the caller's back, and ``has_plan`` is
    read in SQL, right for a plan, for none (stored as JSON null) and for an edited row."""
    from sqlalchemy.exc import SQLAlchemyError

    from vault.access.identity import Principal
    from vault.casework.jobs import Job, job_has_plan, job_statuses, list_jobs, require_job
    from vault.casework.policy import Permission

    vault = any_vault  # SQLite and PostgreSQL store a JSON null differently from SQL NULL

    with vault.sessions.begin() as session:
        for job_id, plan in (("with-plan", {"tracks": [1] * 1000}), ("without-plan", None)):
            session.add(Job(id=job_id, kind=JobKind.REDACTION_PLAN, state=JobState.SUCCEEDED,
                            params={}, plan=plan, created_by="ig-1", created_role="administrator"))
    rows = {j.id: j for j in list_jobs(vault)}
    assert {i: job_has_plan(j) for i, j in rows.items()} == {"with-plan": True,
                                                             "without-plan": False}
    with pytest.raises(SQLAlchemyError):
        _ = rows["with-plan"].plan
    admin = Principal(user_id="admin-1", name="Admin", role=Role.ADMINISTRATOR, organisation="Housing")
    polled = require_job(vault, admin, Permission.READ, "with-plan", with_plan=False)
    assert job_has_plan(polled)
    with pytest.raises(SQLAlchemyError):
        _ = polled.plan
    assert require_job(vault, admin, Permission.READ, "with-plan").plan == {"tracks": [1] * 1000}
    assert [s.state for s in job_statuses(vault, ["without-plan", "with-plan"])] == [
        JobState.SUCCEEDED, JobState.SUCCEEDED]
    with pytest.raises(NotFound):
        job_statuses(vault, ["with-plan", "no-such-job"])
