"""Lost queue messages on the embedded queue: the job row is the truth, not the message."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault import Settings, Vault
from vault.actors import Actor, Role
from vault.casework.jobs import JobKind, JobState, get_job, open_queue

ACTOR = Actor(user="ig-1", role=Role.IG_OFFICER, organisation="Housing")


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.init(Settings(home=tmp_path / "home", segment_size=4096)) as v:
        yield v


def test_a_job_whose_sqlite_queue_message_was_lost_is_enqueued_again_and_runs(vault: Vault) -> None:
    """Issue #16 (lost messages): the same sweep serves the embedded SQLite queue. A queued
    job whose message is gone (the queue file's messages lost) is enqueued again once
    ``queue_resend_after_s`` has passed, and a consumer then runs it once to success."""
    queue = open_queue(vault.settings, vault=vault)
    try:
        job = queue.submit(JobKind.RETENTION, actor=ACTOR, params={"dry_run": True})
        queue.huey.storage.flush_queue()
        assert queue.sweep().resent == []  # within the default grace (300 s)
        later = vault.clock() + dt.timedelta(seconds=vault.settings.queue_resend_after_s + 1)
        assert queue.sweep(now=later).resent == [job.id]
        assert [task.args[0] for task in queue.huey.pending()] == [job.id]
        task = queue.huey.dequeue()
        assert task is not None
        queue.huey.execute(task)
    finally:
        queue.close()
    done = get_job(vault, job.id)
    assert done.state == JobState.SUCCEEDED and done.attempts == 1
