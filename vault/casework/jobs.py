"""Background jobs: the ``jobs`` table and the Huey queue that runs them.

Long work (redaction plans and renders, disclosure packages, retention runs) is a *job*: a row
in the catalog's ``jobs`` table that people and the API read (state, progress, result), run by
a Huey task that carries only the job id. Huey is the queue engine (docs/design.md "Jobs and
scale-out"): SQLite storage at ``<home>/jobs.sqlite3`` by default (embedded, no server), so
``evidence-vault worker`` drains the queue with no setup; more worker processes, on this machine
or others sharing the storage, drain it faster.

Life of a job::

    queued --claim--> running --> succeeded | failed
       ^                 |
       +--- retry -------+  (an unexpected error with attempts left, or a worker that died)
    queued | running --cancel--> cancelled

1. :meth:`JobQueue.submit` commits the row (``queued``), then enqueues a Huey task naming it.
2. A worker *claims* the row: ``queued -> running`` in one conditional UPDATE that also counts
   the attempt and names the worker (``host:pid``). A second delivery of the same task, or a
   cancelled job, finds nothing to claim and does nothing.
3. While the handler runs, progress updates (throttled) and a heartbeat thread touch the row.
   Every write is conditional on the claimed attempt still being current (a fencing token):
   a worker whose job was requeued or cancelled under it is stopped at its next update
   (:class:`JobAborted`) and can never overwrite the newer attempt's result.
4. The outcome is one UPDATE: ``succeeded`` with the result JSON, or ``failed`` with the error.
   A :class:`~vault.errors.VaultError` (bad input, missing footage, an invalid plan) fails at
   once: trying again gives the same answer. Anything else (a full disk, a dropped database
   connection) is retried by Huey while attempts remain.
5. A worker killed mid-job leaves its row ``running``. :meth:`JobQueue.sweep`, run when a worker
   starts and every minute by its scheduler, finds rows whose worker is gone (its process is
   not alive on this host, or its heartbeat is older than ``stale_after``) and requeues them,
   or marks them failed once ``max_attempts`` is spent. No row stays ``running`` forever.
6. A queue message can be lost without any worker dying: Redis restarted without persistence,
   ``FLUSHALL``, a deleted SQLite queue file. The same sweep finds ``queued`` rows that have
   waited ``queue_resend_after_s`` since they were last enqueued and whose id is in no message
   the queue holds (pending or scheduled), and enqueues them again. No row stays ``queued``
   forever either; a message that turns out to be a duplicate finds nothing to claim.

Handlers are plain functions ``handler(ctx: JobContext) -> dict`` registered per
:class:`JobKind`; this module registers the vault's own (``export``, ``retention``) and
``api.jobs`` adds the redaction ones (which import ``redaction``, a layer above this one).

Why this module is long: the jobs table, its state machine and the Huey wiring share the
fencing rules numbered above; apart, the rules would sit in one file and their enforcement in
another.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import (
    JSON,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    and_,
    cast,
    func,
    inspect as sa_inspect,
    select,
    update,
)
from sqlalchemy.orm import Mapped, column_property, defer, mapped_column, undefer

from vault.actors import Actor, Purpose, Role
from vault.capture import Capture
from vault.storage.catalog import Base, MediaKind, new_id, utcnow
from vault.errors import InvalidInput, NotFound, VaultError
from vault.plaintext import private_dir
from vault.storage.db import get_or_not_found, read_sessions

from .intermediates import sweep_intermediates

if TYPE_CHECKING:
    from huey import Huey
    from huey.consumer import Consumer

    from vault.config import Settings
    from vault.access.identity import Principal
    from .policy import Permission
    from vault.vault import Vault

log = logging.getLogger("evidence_vault.jobs")

QUEUE_NAME = "evidence-vault"
QUEUE_FILE = "jobs.sqlite3"
DEFAULT_MAX_ATTEMPTS = 3
RETRY_DELAY_S = 5
HEARTBEAT_S = 30.0
STALE_AFTER = dt.timedelta(minutes=5)
# A worker whose heartbeat is three beats old is taken to be gone.
WORKER_STALE_AFTER = dt.timedelta(seconds=3 * HEARTBEAT_S)
PROGRESS_EVERY_S = 0.5
MAX_MESSAGE = 512
MAX_ERROR = 4000


class JobKind(str, enum.Enum):
    """What a job does."""

    REDACTION_PLAN = "redaction_plan"  # detect and track faces: an editable plan
    REDACTION_RENDER = "redaction_render"  # render a (reviewed) plan: a redacted copy
    REDACT = "redact"  # plan and render in one job
    REDACTION_CHUNK = "redaction_chunk"  # plan one chunk of a long recording (a child job)
    # render one chunk of a long recording into an encrypted intermediate (a child job)
    REDACTION_CHUNK_RENDER = "redaction_chunk_render"
    EXPORT = "export"  # build a disclosure package
    RETENTION = "retention"  # one run of the retention reaper


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class Job(Base):
    """One background job: what, for whom, how far it got, and what came of it."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_created", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[JobKind] = mapped_column(Enum(JobKind, native_enum=False, length=32))
    state: Mapped[JobState] = mapped_column(
        Enum(JobState, native_enum=False, length=16), default=JobState.QUEUED
    )
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(String(MAX_MESSAGE))
    # Inputs (never secrets or footage): recording ids, recipient, mask, tracks to keep...
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The editable document a job works on: a redaction plan (see redaction/plan.py).
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Whether there is a plan, read in SQL: a plan is megabytes of JSON on long footage, and
    # a status poll (GET /jobs/{id}, a job list) loads the row without it (``with_plan``).
    # A plan of None is stored as JSON null, not SQL NULL.
    # Deferred: a load with the plan reads it from the plan, not from a second cast of it.
    has_plan: Mapped[bool] = column_property(
        and_(plan.is_not(None), cast(plan, Text) != "null"), deferred=True)
    error: Mapped[str | None] = mapped_column(Text)
    # Who asked, as the custody ledger records them; the job acts on their behalf.
    created_by: Mapped[str] = mapped_column(String(128))
    created_role: Mapped[str] = mapped_column(String(32))
    created_org: Mapped[str | None] = mapped_column(String(256))
    client_addr: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    # The job's last sign of life: when it was last enqueued (``queued``) or its running
    # attempt last reported (``running``). The sweep reads both (lost messages, dead workers).
    heartbeat_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_ATTEMPTS)
    worker: Mapped[str | None] = mapped_column(String(256))
    # A render job names the plan job whose (edited) plan it renders.
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)

    @property
    def recording_ids(self) -> list[str]:
        """The recordings this job reads (its need-to-know scope)."""
        return [str(r) for r in (self.params or {}).get("recording_ids", [])]

    @property
    def actor(self) -> Actor:
        """The person the job acts for."""
        return Actor(
            user=self.created_by,
            role=Role(self.created_role),
            organisation=self.created_org,
            client_addr=self.client_addr,
        )

    @property
    def purpose(self) -> Purpose:
        """Why the job touches footage, as its creator stated it."""
        p = (self.params or {}).get("purpose") or {}
        return Purpose(
            purpose=str(p.get("purpose") or f"{self.kind.value} job {self.id}"),
            lawful_basis=p.get("lawful_basis"),
            reference=p.get("reference"),
        )


class JobWorker(Base):
    """A worker process that is draining the queue, as its heartbeat last reported it.

    ``evidence-vault worker`` adds its row on start, touches ``seen_at`` every
    ``HEARTBEAT_S`` seconds and removes the row when it stops; a row whose ``seen_at`` is
    older than :data:`WORKER_STALE_AFTER` is a worker that died without saying so.
    """

    __tablename__ = "job_workers"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)  # host:pid
    kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    threads: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[dt.datetime]
    seen_at: Mapped[dt.datetime] = mapped_column(index=True)


# --- errors ----------------------------------------------------------------------------------


class JobAborted(VaultError):
    """The running attempt is no longer current: the job was cancelled or requeued under it."""


class PlanChanged(InvalidInput):
    """A render job's plan is not the one it was queued with: its copy was changed, or the
    plan job it came from was edited after the render was queued. Nothing is rendered."""


# --- reading and changing rows ----------------------------------------------------------------


#: Load a job row without its plan, with ``has_plan``: reading ``job.plan`` then raises,
#: never lazily loads.
_WITHOUT_PLAN = (defer(Job.plan, raiseload=True), undefer(Job.has_plan))


def job_has_plan(job: Job) -> bool:
    """Whether ``job`` has a plan, from what its row loaded: the plan itself, or, for a row
    loaded without it, ``has_plan`` (a row whose plan was just changed has only the plan)."""
    if "plan" not in sa_inspect(job).unloaded:
        return job.plan is not None
    return bool(job.has_plan)


def get_job(vault: Vault, job_id: str) -> Job:
    """The job's row. Raises NotFound."""
    with vault.sessions() as session:
        job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return job


def list_jobs(
    vault: Vault,
    *,
    state: JobState | None = None,
    kind: JobKind | None = None,
    created_by: str | None = None,
    limit: int = 100,
) -> list[Job]:
    """Jobs, newest first, filtered by state, kind and creator; without their plans
    (``job.has_plan`` says whether there is one; reading ``job.plan`` raises)."""
    query = select(Job).options(*_WITHOUT_PLAN).order_by(
        Job.created_at.desc(), Job.id).limit(limit)
    if state is not None:
        query = query.where(Job.state == state)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if created_by is not None:
        query = query.where(Job.created_by == created_by)
    with vault.sessions() as session:
        return list(session.scalars(query))


@dataclass(frozen=True)
class JobStatus:
    """Where a job stands, without its params, plan or result (a plan is megabytes of JSON
    on long footage: a parent watching its children reads this twice a second)."""

    id: str
    state: JobState
    progress: float
    message: str | None
    error: str | None


def job_statuses(vault: Vault, job_ids: Sequence[str]) -> list[JobStatus]:
    """The status of each of ``job_ids``, in that order (a snapshot read: no write lock).
    Raises NotFound for an id with no job."""
    with read_sessions(vault.engine)() as session:
        rows = {r.id: JobStatus(id=r.id, state=r.state, progress=r.progress, message=r.message,
                                error=r.error)
                for r in session.execute(select(Job.id, Job.state, Job.progress, Job.message,
                                                Job.error).where(Job.id.in_(job_ids)))}
    missing = [i for i in job_ids if i not in rows]
    if missing:
        raise NotFound(f"no job with id {missing[0]}")
    return [rows[i] for i in job_ids]


def ended_jobs(vault: Vault, job_ids: Set[str]) -> set[str]:
    """Which of ``job_ids`` have finished (succeeded, failed or cancelled), or no longer exist."""
    with read_sessions(vault.engine)() as session:
        live = set(session.scalars(select(Job.id).where(
            Job.id.in_(job_ids), Job.state.not_in(FINISHED))))
    return set(job_ids) - live


def cancel_job(vault: Vault, job_id: str) -> Job:
    """Cancel a queued or running job (a running one stops at its next progress update).

    Returns the row. Raises NotFound, InvalidInput when the job has already finished.
    """
    with vault.sessions.begin() as session:
        job = get_or_not_found(session, Job, job_id, noun="job")
        if job.state in FINISHED:
            raise InvalidInput(f"job {job_id} has already finished ({job.state.value})")
        job.state = JobState.CANCELLED
        job.finished_at = vault.clock()
        job.message = "cancelled"
    return job


def set_plan(vault: Vault, job_id: str, plan: dict[str, Any], *, edited_by: str) -> Job:
    """Replace the plan of a finished plan job (a reviewer's edit). Returns the row.

    The caller validates the plan (this layer does not know the format). Raises NotFound,
    InvalidInput when the job is not a succeeded ``redaction_plan`` job.
    """
    with vault.sessions.begin() as session:
        job = get_or_not_found(session, Job, job_id, noun="job")
        if job.kind != JobKind.REDACTION_PLAN or job.state != JobState.SUCCEEDED:
            raise InvalidInput(
                f"job {job_id} is a {job.kind.value} job in state {job.state.value}: only a "
                "finished redaction_plan job's plan can be edited"
            )
        job.plan = plan
        edits = list((job.result or {}).get("edits", []))
        edits.append({"by": edited_by, "at": vault.clock().isoformat()})
        job.result = {**(job.result or {}), "edits": edits}
    return job


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _worker_gone(worker: str | None) -> bool:
    """Whether a ``host:pid`` worker on *this* host has exited (other hosts: unknown)."""
    if not worker:
        return True
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not _pid_alive(int(pid))


# --- running one job --------------------------------------------------------------------------


@dataclass
class JobContext:
    """What a handler gets: the job, the vault, and ways to report progress.

    ``plan`` starts as the row's plan; a handler that sets it saves the new plan with the
    result. ``progress`` is throttled, so handlers may call it on every frame.
    """

    job: Job
    vault: Vault
    attempt: int
    plan: dict[str, Any] | None = None
    #: The queue running the job: a handler that fans work out submits child jobs to it
    #: (``parent_id``) and may run queued ones itself while it waits.
    queue: JobQueue | None = field(default=None, repr=False)
    _last_write: float = field(default=0.0, repr=False)
    _last_message: str | None = field(default=None, repr=False)

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params or {}

    @property
    def actor(self) -> Actor:
        return self.job.actor

    @property
    def purpose(self) -> Purpose:
        return self.job.purpose

    def progress(self, fraction: float, message: str | None = None, *, force: bool = False) -> None:
        """Record how far the job is (0-1). Raises JobAborted if the job was cancelled or
        requeued under this attempt."""
        now = time.monotonic()
        if not force and message == self._last_message and now - self._last_write < PROGRESS_EVERY_S:
            return
        self._last_write, self._last_message = now, message
        fraction = min(1.0, max(0.0, float(fraction)))
        values: dict[str, Any] = {"progress": fraction, "heartbeat_at": self.vault.clock()}
        if message is not None:
            values["message"] = message[:MAX_MESSAGE]
        _fenced_update(self.vault, self.job.id, self.attempt, values)


def _rowcount(result: Any) -> int:
    # An UPDATE's result is a CursorResult; the typed API returns the Result base class.
    return int(getattr(result, "rowcount", 0))


def _fenced_update(vault: Vault, job_id: str, attempt: int, values: dict[str, Any]) -> None:
    with vault.sessions.begin() as session:
        done = _rowcount(session.execute(
            update(Job)
            .where(Job.id == job_id, Job.attempts == attempt, Job.state == JobState.RUNNING)
            .values(**values)
        ))
    if not done:
        raise JobAborted(f"job {job_id} attempt {attempt} is no longer current (cancelled or requeued)")


class _Heartbeat:
    """Touches the row every ``interval`` seconds while a handler runs (long silent stages)."""

    def __init__(self, vault: Vault, job_id: str, attempt: int, interval: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(vault, job_id, attempt, interval), daemon=True,
            name=f"job-heartbeat-{job_id[:8]}",
        )

    def _run(self, vault: Vault, job_id: str, attempt: int, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                _fenced_update(vault, job_id, attempt, {"heartbeat_at": vault.clock()})
            except JobAborted:
                return
            except Exception:  # a busy database: try again at the next beat
                log.warning("heartbeat of job %s failed", job_id, exc_info=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


Handler = Callable[[JobContext], dict[str, Any]]


@dataclass(frozen=True)
class SweepReport:
    """What a sweep found (job ids): running jobs requeued and given up on because their
    worker was gone, queued jobs enqueued again because their message was gone, and the
    intermediates (ids) and orphan intermediate objects (keys) that ended jobs left."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    intermediates: list[str] = field(default_factory=list)


class JobQueue:
    """Jobs on one Huey instance: submit, run, sweep. Build it with :func:`open_queue`.

    ``vault`` is the vault jobs run against: the caller's (the API's, tests'), or, when None,
    one opened from ``settings`` on first use and shared by this process's worker threads.
    """

    def __init__(self, settings: Settings, huey: Huey, *, vault: Vault | None = None,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.settings = settings
        self.huey = huey
        self.heartbeat_s = heartbeat_s
        self._vault = vault
        self._owns_vault = vault is None
        self._lock = threading.Lock()
        self._handlers: dict[JobKind, Handler] = {}
        self._tasks: dict[JobKind | str, Any] = {}

    # -- wiring ------------------------------------------------------------------------------

    @property
    def vault(self) -> Vault:
        """The vault jobs run against (opened from settings on first use)."""
        with self._lock:
            if self._vault is None:
                from vault.vault import Vault

                self._vault = Vault.open(self.settings)
            return self._vault

    def close(self) -> None:
        """Close the vault this queue opened (not one it was given) and the queue storage."""
        with self._lock:
            if self._owns_vault and self._vault is not None:
                self._vault.close()
                self._vault = None
        close = getattr(self.huey.storage, "close", None)
        if close is not None:
            close()

    def register(self, kind: JobKind, handler: Handler, *, retries: int = DEFAULT_MAX_ATTEMPTS - 1) -> None:
        """Run ``handler`` for jobs of ``kind`` (replacing any earlier handler of that kind).

        The Huey task is registered once per kind, under a stable name, so every process
        that builds its queue with the same handlers understands the same messages.
        """
        self._handlers[kind] = handler
        if kind in self._tasks:
            return

        def run_job(job_id: str, task: Any = None) -> None:
            self.run(job_id, retries_left=getattr(task, "retries", 0))

        run_job.__name__ = run_job.__qualname__ = f"job_{kind.value}"
        self._tasks[kind] = self.huey.task(
            retries=retries, retry_delay=0 if self.huey.immediate else RETRY_DELAY_S,
            context=True, name=f"job_{kind.value}",
        )(run_job)

    @property
    def kinds(self) -> list[JobKind]:
        """The kinds this queue can run."""
        return sorted(self._handlers, key=lambda k: k.value)

    # -- submitting --------------------------------------------------------------------------

    def submit(
        self,
        kind: JobKind,
        *,
        actor: Actor,
        params: dict[str, Any],
        purpose: Purpose | None = None,
        plan: dict[str, Any] | None = None,
        parent_id: str | None = None,
        vault: Vault | None = None,
    ) -> Job:
        """Record a queued job and enqueue it. Returns the row as it stands after enqueueing
        (in immediate mode, finished). Raises InvalidInput for a kind with no handler."""
        if kind not in self._handlers:
            raise InvalidInput(f"this queue has no handler for {kind.value} jobs")
        v = vault or self.vault
        params = dict(params)
        if purpose is not None:
            params["purpose"] = {
                "purpose": purpose.purpose,
                "lawful_basis": purpose.lawful_basis,
                "reference": purpose.reference,
            }
        job = Job(
            id=new_id(), kind=kind, state=JobState.QUEUED, progress=0.0, message="queued",
            params=params, plan=plan, created_by=actor.user, created_role=actor.role.value,
            created_org=actor.organisation, client_addr=actor.client_addr,
            created_at=v.clock(), heartbeat_at=v.clock(), attempts=0,
            max_attempts=DEFAULT_MAX_ATTEMPTS, parent_id=parent_id,
        )
        with v.sessions.begin() as session:
            session.add(job)
        self._enqueue(kind, job.id)
        return get_job(v, job.id)

    def _enqueue(self, kind: JobKind, job_id: str) -> None:
        self._tasks[kind](job_id)

    # -- running -----------------------------------------------------------------------------

    def run(self, job_id: str, *, retries_left: int = 0) -> None:
        """Claim and run one job (what a Huey task does). Never raises for the job's own
        failure: the outcome is in the row. Re-raises an unexpected error while Huey has
        retries left, so Huey runs it again."""
        vault = self.vault
        attempt = self._claim(vault, job_id)
        if attempt is None:
            return
        job = get_job(vault, job_id)
        ctx = JobContext(job=job, vault=vault, attempt=attempt, plan=job.plan, queue=self)
        handler = self._handlers.get(job.kind)
        try:
            if handler is None:
                raise InvalidInput(f"this worker has no handler for {job.kind.value} jobs")
            with _Heartbeat(vault, job_id, attempt, self.heartbeat_s):
                result = handler(ctx)
        except JobAborted:
            log.info("job %s attempt %d stopped: cancelled or requeued", job_id, attempt)
            return
        except VaultError as error:
            self._finish(vault, job_id, attempt, JobState.FAILED, error=f"{type(error).__name__}: {error}")
            return
        except Exception as error:
            log.exception("job %s attempt %d failed", job_id, attempt)
            text = f"{type(error).__name__}: {error}"
            if retries_left > 0 and attempt < job.max_attempts:
                self._requeue(vault, job_id, attempt, f"attempt {attempt} failed ({text}); retrying")
                raise
            self._finish(vault, job_id, attempt, JobState.FAILED, error=text)
            return
        self._finish(vault, job_id, attempt, JobState.SUCCEEDED, result=result, plan=ctx.plan)

    def _claim(self, vault: Vault, job_id: str) -> int | None:
        now = vault.clock()
        with vault.sessions.begin() as session:
            job = session.get(Job, job_id)
            if job is None or job.state != JobState.QUEUED:
                # Cancelled, or a duplicate delivery of a job another worker holds.
                return None
            attempt = job.attempts + 1
            claimed = _rowcount(session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == JobState.QUEUED, Job.attempts == attempt - 1)
                .values(state=JobState.RUNNING, attempts=attempt, worker=_worker_id(),
                        started_at=now, heartbeat_at=now, message="running", error=None)
            ))
            return attempt if claimed else None

    def _requeue(self, vault: Vault, job_id: str, attempt: int, message: str) -> bool:
        with vault.sessions.begin() as session:
            return bool(_rowcount(session.execute(
                update(Job)
                .where(Job.id == job_id, Job.attempts == attempt, Job.state == JobState.RUNNING)
                .values(state=JobState.QUEUED, message=message[:MAX_MESSAGE], worker=None,
                        error=message[:MAX_ERROR], heartbeat_at=vault.clock())
            )))

    def _finish(self, vault: Vault, job_id: str, attempt: int, state: JobState, *,
                result: dict[str, Any] | None = None, plan: dict[str, Any] | None = None,
                error: str | None = None) -> None:
        values: dict[str, Any] = {
            "state": state, "finished_at": vault.clock(), "worker": None,
            "message": "done" if state == JobState.SUCCEEDED else "failed",
        }
        if state == JobState.SUCCEEDED:
            values.update(progress=1.0, result=result or {}, plan=plan, error=None)
        else:
            values["error"] = (error or "failed")[:MAX_ERROR]
        with vault.sessions.begin() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.attempts == attempt, Job.state == JobState.RUNNING)
                .values(**values)
            )

    # -- recovering from dead workers -------------------------------------------------------

    def sweep(self, *, now: dt.datetime | None = None, stale_after: dt.timedelta = STALE_AFTER,
              resend_after: dt.timedelta | None = None) -> SweepReport:
        """Requeue (or fail, once attempts are spent) running jobs whose worker is gone, and
        enqueue again queued jobs whose message is gone.

        A worker is gone when its process no longer exists on this host, or when its
        heartbeat is older than ``stale_after`` (a worker on another machine). A message is
        gone when the job has been queued longer than ``resend_after`` (default: the
        settings' ``queue_resend_after_s``) and no pending or scheduled message names it.
        Safe to run from any number of workers at once: each change is conditional on the
        row as read. Returns what it changed.
        """
        vault = self.vault
        now = now or vault.clock()
        if resend_after is None:
            resend_after = dt.timedelta(seconds=self.settings.queue_resend_after_s)
        report = SweepReport(resent=self._resend_lost(vault, now, resend_after))
        with vault.sessions() as session:
            running = list(session.scalars(select(Job).where(Job.state == JobState.RUNNING)))
        for job in running:
            stale = job.heartbeat_at is None or now - job.heartbeat_at > stale_after
            if not (_worker_gone(job.worker) or stale) or job.kind not in self._tasks:
                continue  # alive, or a kind only a queue with its handler may requeue
            who = job.worker or "an unknown worker"
            if job.attempts < job.max_attempts:
                if self._requeue(vault, job.id, job.attempts,
                                 f"requeued: {who} stopped during attempt {job.attempts}"):
                    report.requeued.append(job.id)
                    self._enqueue(job.kind, job.id)
            else:
                self._finish(vault, job.id, job.attempts, JobState.FAILED,
                             error=f"{who} stopped during attempt {job.attempts} of "
                                   f"{job.max_attempts}; giving up")
                report.failed.append(job.id)
        for job_id in report.requeued + report.failed:
            log.warning("swept job %s (%s)", job_id, "requeued" if job_id in report.requeued else "failed")
        for job_id in report.resent:
            log.warning("swept job %s (queued, its message was lost: enqueued again)", job_id)
        left = sweep_intermediates(vault, ended=lambda ids: ended_jobs(vault, ids), now=now)
        report.intermediates.extend([*left.discarded, *left.orphans])
        if report.intermediates:
            log.warning("swept %d intermediate(s) left by jobs that ended without discarding "
                        "them", len(report.intermediates))
        return report

    def _resend_lost(self, vault: Vault, now: dt.datetime, resend_after: dt.timedelta) -> list[str]:
        """Enqueue again the queued jobs older than ``resend_after`` that no message names."""
        if self.huey.immediate:  # no storage: every job ran inside submit()
            return []
        cutoff = now - resend_after
        waited = func.coalesce(Job.heartbeat_at, Job.created_at) < cutoff
        with vault.sessions() as session:
            waiting = list(session.execute(
                select(Job.id, Job.kind).where(Job.state == JobState.QUEUED, waited)))
        if not waiting:
            return []
        # Rows first, messages second: a message enqueued in between is seen, so a job is
        # only taken for lost when no message for it existed after its row was read.
        in_queue = self._job_ids_in_queue()
        resent: list[str] = []
        for job_id, kind in waiting:
            if job_id in in_queue or kind not in self._tasks:
                continue  # a long queue, not a lost message (or a kind this process lacks)
            # Conditional on the row still waiting past the cutoff: of several workers
            # sweeping at once, one resends (and restarts the grace); the others see it moved.
            with vault.sessions.begin() as session:
                won = _rowcount(session.execute(
                    update(Job).where(Job.id == job_id, Job.state == JobState.QUEUED, waited)
                    .values(heartbeat_at=now, message="queued (message lost: enqueued again)")
                ))
            if won:
                self._enqueue(kind, job_id)
                resent.append(job_id)
        return resent

    def _job_ids_in_queue(self) -> set[str]:
        """Job ids named by a message the queue storage holds: pending, or scheduled (a retry
        waiting out its delay). Messages this process cannot read are skipped by Huey."""
        ids: set[str] = set()
        for task in [*self.huey.pending(), *self.huey.scheduled()]:
            ids.update(arg for arg in task.args if isinstance(arg, str))
        return ids

    # -- consuming ---------------------------------------------------------------------------

    def consumer(self, *, workers: int = 1, worker_type: str = "thread", periodic: bool = True) -> Consumer:
        """A Huey consumer draining this queue (``Consumer.run()`` blocks; see ``worker``)."""
        if periodic:
            self._register_sweeper()
        return self.huey.create_consumer(
            workers=workers, worker_type=worker_type, periodic=periodic, max_delay=2.0,
        )

    def _register_sweeper(self) -> None:
        if "sweeper" in self._tasks:
            return
        from huey import crontab

        def sweep_dead_workers() -> None:
            self.sweep()

        self._tasks["sweeper"] = self.huey.periodic_task(crontab(minute="*"), name="job_sweeper")(
            sweep_dead_workers
        )


# --- is anyone draining the queue? (``/readyz``) ------------------------------------------------


class WorkerHeartbeat:
    """Reports this worker process alive in ``job_workers`` while it runs (a context manager).

    It writes through an engine of its own that holds no connection between beats
    (``NullPool``), so process workers forked after it starts inherit no open connection.
    """

    def __init__(self, settings: Settings, *, kinds: Sequence[str], threads: int,
                 interval: float = HEARTBEAT_S, clock: Callable[[], dt.datetime] = utcnow) -> None:
        from sqlalchemy.pool import NullPool

        from vault.storage.db import make_engine

        self.worker_id = _worker_id()
        self._engine = make_engine(settings.catalog_url, poolclass=NullPool)
        self._kinds, self._threads, self._clock = list(kinds), threads, clock
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="worker-heartbeat")

    def beat(self) -> None:
        """Record that this worker is alive now (adding its row if it is missing)."""
        from sqlalchemy.orm import Session

        now = self._clock()
        with Session(self._engine) as session, session.begin():
            row = session.get(JobWorker, self.worker_id)
            if row is None:
                session.add(JobWorker(id=self.worker_id, kinds=self._kinds, threads=self._threads,
                                      started_at=now, seen_at=now))
            else:
                row.seen_at = now

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat()
            except Exception:  # a busy database: the next beat tries again
                log.warning("worker heartbeat failed", exc_info=True)

    def __enter__(self) -> Self:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import delete
        from sqlalchemy.orm import Session

        self._stop.set()
        self._thread.join(timeout=5)
        try:
            with Session(self._engine) as session, session.begin():
                session.execute(delete(JobWorker).where(JobWorker.id == self.worker_id))
        finally:
            self._engine.dispose()


@dataclass(frozen=True)
class QueueHealth:
    """Whether the queue is being drained: what ``/readyz`` reports.

    ``status`` is ``ok``; ``warn`` (jobs are queued and no worker is alive, or the oldest has
    waited past ``warn_after``); or ``fail`` (the oldest queued job has waited past
    ``fail_after``: nobody is doing the work people asked for).
    """

    status: str
    queued: int
    running: int
    oldest_queued_s: float | None
    live_workers: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"status": self.status, "queued": self.queued, "running": self.running,
                "oldest_queued_s": self.oldest_queued_s, "live_workers": self.live_workers,
                "message": self.message}


def queue_health(vault: Vault, *, warn_after: dt.timedelta, fail_after: dt.timedelta,
                 now: dt.datetime | None = None,
                 worker_stale_after: dt.timedelta = WORKER_STALE_AFTER) -> QueueHealth:
    """How the queue stands at ``now`` (the vault's clock by default): queued and running jobs,
    the age of the oldest queued one, and the workers whose heartbeat is fresh (a running job
    whose own heartbeat is fresh counts its worker alive too)."""
    now = now or vault.clock()
    alive_since = now - worker_stale_after
    with vault.sessions() as session:
        queued, oldest = session.execute(
            select(func.count(), func.min(Job.created_at)).where(Job.state == JobState.QUEUED)
        ).one()
        running_workers = set(session.scalars(
            select(Job.worker).where(Job.state == JobState.RUNNING, Job.heartbeat_at >= alive_since)))
        running = session.scalar(select(func.count()).where(Job.state == JobState.RUNNING)) or 0
        beating = set(session.scalars(select(JobWorker.id).where(JobWorker.seen_at >= alive_since)))
    live = len(beating | {w for w in running_workers if w})
    age = None
    if oldest is not None:
        oldest = oldest if oldest.tzinfo is not None else oldest.replace(tzinfo=dt.UTC)
        age = max(0.0, (now - oldest).total_seconds())
    status, message = "ok", f"{queued} queued, {running} running, {live} live worker(s)"
    if queued and age is not None and age > fail_after.total_seconds():
        status = "fail"
        message = (f"the oldest of {queued} queued job(s) has waited {int(age)} s (limit "
                   f"{int(fail_after.total_seconds())} s) with {live} live worker(s): start "
                   "'evidence-vault worker'")
    elif queued and (live == 0 or (age is not None and age > warn_after.total_seconds())):
        status = "warn"
        message = (f"{queued} job(s) queued, the oldest for {int(age or 0)} s, and "
                   f"{live} live worker(s)" + ("; start 'evidence-vault worker'" if not live else ""))
    return QueueHealth(status=status, queued=int(queued), running=int(running),
                       oldest_queued_s=None if age is None else round(age, 1), live_workers=live,
                       message=message)


# --- the queue, from settings -----------------------------------------------------------------


def queue_path(settings: Settings) -> Path:
    """Where the embedded (SQLite) queue storage lives: ``<home>/jobs.sqlite3``."""
    return settings.home_dir / QUEUE_FILE


def open_queue(settings: Settings, *, immediate: bool = False, vault: Vault | None = None) -> JobQueue:
    """The job queue for ``settings``, with the vault's own handlers (export, retention).

    Redis storage when ``settings.queue_url`` is set (workers on any host drain one queue);
    else SQLite storage at :func:`queue_path`; ``immediate=True`` runs each job synchronously
    inside ``submit`` (tests, one-shot CLI use) with no storage at all.
    """
    from huey import RedisHuey, SqliteHuey

    huey: Huey
    if immediate:
        huey = SqliteHuey(QUEUE_NAME, results=False, immediate=True)
    elif settings.queue_url is not None:
        # Redis hands each message to one worker and forgets it (no acknowledgement), so a
        # worker killed mid-job takes the message with it: the job row, not the message, is
        # the truth, and sweep() requeues the row's job once its worker is seen to be gone.
        huey = RedisHuey(QUEUE_NAME, results=False, url=settings.queue_url.get_secret_value())
    else:
        path = queue_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(QUEUE_NAME, results=False, filename=str(path), timeout=30)
        os.chmod(path, 0o600)
    queue = JobQueue(settings, huey, vault=vault)
    queue.register(JobKind.EXPORT, run_export)
    queue.register(JobKind.RETENTION, run_retention_job)
    return queue


# --- the vault's own handlers -----------------------------------------------------------------


def run_export(ctx: JobContext) -> dict[str, Any]:
    """Build a disclosure package and keep it in the vault, encrypted, until downloaded.

    The ZIP is built in the spool, then stored as a derived recording of the first item
    (retention deletes it with the first of its items to go, unless it is held) and the
    plaintext copy is removed: like footage, a package exists unencrypted only in the spool
    and only while it is built.
    """
    from .disclosure import build_export

    p = ctx.params
    spool = private_dir(ctx.vault.settings.spool_dir)
    # build_export writes the package 0600 (vault/plaintext.py): it holds plaintext footage.
    work = spool / f"export-job-{ctx.job.id}-{ctx.attempt}.zip"
    work.unlink(missing_ok=True)
    ctx.progress(0.05, "gathering and checking recordings", force=True)
    ids = [str(i) for i in p["recording_ids"]]
    try:
        result = build_export(
            ctx.vault, ids, work, actor=ctx.actor, purpose=ctx.purpose,
            recipient=str(p["recipient"]), recipient_org=str(p["recipient_org"]),
            # Items are most of the work: 5-85 % of the bar, one step per item.
            progress=lambda done, total: ctx.progress(
                0.05 + 0.8 * done / total, f"checked and added item {done} of {total}",
                force=True),
        )
        ctx.progress(0.9, "storing the package encrypted", force=True)
        first = ctx.vault.recording(ids[0])
        stored = ctx.vault.put_file(
            work,
            Capture(
                source_id=first.source_id,
                captured_at=first.captured_start,
                media_kind=MediaKind.OTHER,
                original_name=f"disclosure-{result.export_id}.zip",
                parent_id=first.id,
                derived_from=ids,
                provenance={
                    "kind": "export",
                    "export_id": result.export_id,
                    "recording_ids": ids,
                    "recipient": str(p["recipient"]),
                    "recipient_org": str(p["recipient_org"]),
                },
                details={"export_id": result.export_id, "job_id": ctx.job.id},
                action="export.stored",
            ),
            actor=ctx.actor,
        )
    finally:
        work.unlink(missing_ok=True)
    return {
        "export_id": result.export_id,
        "package_recording_id": stored.id,
        "sha256": result.sha256,
        "size": stored.size,
        "files": len(result.manifest.get("files", [])),
        "event_seq": result.event_seq,
    }


def planned_recording_id(job: Job) -> str:
    """The recording a plan job's plan is for: the clip it cut of a held window, or its one
    recording. Raises NotFound for a job that planned nothing."""
    rid = (job.result or {}).get("recording_id") or next(iter(job.recording_ids), None)
    if not rid:
        raise NotFound(f"job {job.id} names no recording")
    return str(rid)


def package_recording_id(job: Job) -> str:
    """The vault recording holding an export job's package. Raises NotFound while there is none."""
    if job.kind != JobKind.EXPORT:
        raise NotFound(f"job {job.id} is a {job.kind.value} job, not an export")
    if job.state != JobState.SUCCEEDED or not job.result:
        raise NotFound(f"export job {job.id} has no package yet ({job.state.value})")
    rid = job.result.get("package_recording_id")
    if not rid:
        raise NotFound(f"export job {job.id} has no stored package")
    return str(rid)


def run_retention_job(ctx: JobContext) -> dict[str, Any]:
    """One retention run (``params.dry_run``); the result is the reaper's report."""
    from .retention import run_retention

    ctx.progress(0.0, "running the retention reaper", force=True)
    report = run_retention(ctx.vault, dry_run=bool(ctx.params.get("dry_run", False)))
    data: dict[str, Any] = report.to_dict()
    return data


# --- access ----------------------------------------------------------------------------------


def require_job(
    vault: Vault, principal: Principal, permission: Permission, job_id: str, *,
    route: str | None = None, with_plan: bool = True,
) -> Job:
    """The job, if the principal may do ``permission`` to it (without ``with_plan``, its row
    without the plan: ``job.has_plan`` says whether there is one).

    Rules (need-to-know, as for footage): the role must hold ``permission``; every recording
    the job reads must be within the principal's scope; and, except for administrators, the
    job must have been created in the principal's organisation. A refusal is logged
    (``access_denied``) whether or not the job exists, so ids cannot be probed.
    Raises AccessDenied, NotFound.
    """
    from .policy import ALL_ORGANISATIONS, can_see_recording, deny, require

    require(vault, principal, permission, object_ids=[job_id], route=route)
    # (Every catalog transaction takes the write lock, so each read ends before a denial is
    # logged in a transaction of its own.)
    with vault.sessions() as session:
        job = session.get(Job, job_id, options=None if with_plan else list(_WITHOUT_PLAN))
        outside = [] if job is None else [
            r for r in job.recording_ids if not can_see_recording(session, principal, r)]
    if job is None:
        if principal.role not in ALL_ORGANISATIONS:
            deny(vault, principal, permission, f"job {job_id} is not one you may see",
                 object_ids=[job_id], route=route)
        raise NotFound(f"no job with id {job_id}")
    if principal.role not in ALL_ORGANISATIONS and job.created_org != principal.organisation:
        deny(vault, principal, permission, f"job {job_id} belongs to another organisation",
             object_ids=[job_id], route=route)
    if outside:
        deny(vault, principal, permission,
             f"job {job_id} reads recordings outside your cases and assigned sites",
             object_ids=[job_id, *outside], route=route)
    return job


@contextmanager
def spool_dir(vault: Vault, prefix: str) -> Iterator[Path]:
    """A private temporary directory in the spool, removed afterwards whatever happens."""
    import tempfile

    spool = private_dir(vault.settings.spool_dir)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=spool))  # 0700
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def job_summary(jobs: Sequence[Job]) -> dict[str, int]:
    """How many jobs are in each state."""
    counts = {s.value: 0 for s in JobState}
    for job in jobs:
        counts[job.state.value] += 1
    return counts


__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "FINISHED",
    "WORKER_STALE_AFTER",
    "Handler",
    "Job",
    "JobAborted",
    "JobContext",
    "JobKind",
    "JobQueue",
    "JobState",
    "JobStatus",
    "JobWorker",
    "PlanChanged",
    "QueueHealth",
    "SweepReport",
    "WorkerHeartbeat",
    "cancel_job",
    "ended_jobs",
    "get_job",
    "job_has_plan",
    "job_statuses",
    "job_summary",
    "list_jobs",
    "open_queue",
    "package_recording_id",
    "planned_recording_id",
    "queue_health",
    "queue_path",
    "require_job",
    "run_export",
    "run_retention_job",
    "set_plan",
    "spool_dir",
]
