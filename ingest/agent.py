"""The agent process: every source in the agents file, concurrently, feeding one pipeline.

Threads: one per source (finding footage), ``workers`` pipeline workers (both cores busy:
SHA-256 and AES-GCM release the GIL), a status writer that rewrites ``status.json`` in the
spool every ``status_interval_s`` for ``evidence-vault ingest status``, and a maintenance
thread (store probe and leftover sweep).

Start-up recovers first: the spool journal is made consistent (ingest/spool.py), each source
picks up what a crashed run left (RTSP segments of a killed recording), and every unfinished
item goes back through the pipeline from its journalled state. As the agent starts, and
every ``sweep_every_s`` after, the maintenance thread sweeps what killed uploads left in the
store (:meth:`vault.vault.Vault.sweep_leftovers`: orphan objects, temp files and multipart
uploads older than ``sweep_after_s``).

Faults: a worker survives every failure, its own failure path included (a journal that
cannot be written on a full disk holds the item in memory instead); the status file counts
live workers and ``ingest status`` fails when there are none. While the store or the disk
fails, the maintenance thread probes them every ``store_probe_s`` (jittered); the moment they
answer, every waiting item is retried at once instead of each waiting out its back-off.

Stopping: the first SIGTERM (or SIGINT) stops intake; RTSP sources close their segment in
progress; workers go on finishing spooled items for up to ``shutdown_grace_s`` and then leave
the rest in the spool for the next start. A second signal abandons in-flight work at once,
which is safe at any instruction because every step is journalled.

Events: gaps in a live stream are written to the custody ledger (``gap_recorded``), and so
are refusals (``ingest.rejected``): footage that reached an agent and was not stored leaves a
trace. Everything else (back-pressure, retries, clock flags) goes to the spool's local event
log and the log.

Why this module is long: the agent's threads (watchers, workers, maintenance, status)
share its stop event, spool and health state; spooling, the pipeline and the sources are in
their own modules.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from vault.storage.catalog import utcnow
from vault.config import Settings
from vault.ledger.custody import Action
from vault.errors import StorageError, VaultError
from vault.vault import Vault

from .config import AgentsFile, SourceConfig
from .dock import DockSource
from .errors import SpoolError
from .nvr_http import NvrHttpSource
from .pipeline import Pipeline
from .rtsp import RtspSource
from .sources import Source, SourceContext
from .spool import STATUS_NAME, ItemState, Spool, SpoolItem, inspect_spool
from .upload import UploadSource

log = logging.getLogger("ingest.agent")

SOURCE_TYPES: dict[str, type[Source]] = {
    "rtsp": RtspSource,
    "nvr_http": NvrHttpSource,
    "dock": DockSource,
    "upload": UploadSource,
}


def agent_spool_dir(settings: Settings, agents: AgentsFile) -> Path:
    """The spool directory an agent uses: the agents file's, or ``<spool_dir>/agent``."""
    return (agents.agent.spool_dir or settings.spool_dir / "agent").expanduser()


def build_source(config: SourceConfig, context: SourceContext) -> Source:
    """The source object for one agents-file entry."""
    return SOURCE_TYPES[config.kind](config, context)


class Agent:
    """Runs the sources of an agents file into a vault. Use :meth:`run` (blocks)."""

    def __init__(
        self,
        settings: Settings,
        agents: AgentsFile,
        *,
        vault: Vault | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.agents = agents
        self.options = agents.agent
        self.clock = clock
        self.stop = threading.Event()
        self._abort = threading.Event()
        self._owns_vault = vault is None
        self.vault = vault if vault is not None else Vault.open(settings)
        self.spool = Spool(
            agent_spool_dir(settings, agents),
            limit_bytes=int(self.options.spool_limit_mb * (1 << 20)),
            min_free_bytes=int(self.options.min_free_mb * (1 << 20)),
        )
        self.context = SourceContext(
            spool=self.spool,
            agent=self.options,
            stop=self.stop,
            log=logging.getLogger("ingest.sources"),
            clock=clock,
            on_spooled=self._wake,
            on_event=self._on_event,
        )
        self.sources: dict[str, Source] = {
            c.id: build_source(c, self.context) for c in agents.sources if c.enabled
        }
        self.pipeline = Pipeline(
            self.vault,
            self.spool,
            agent_name=self.options.name,
            clock_bound_s=self.options.clock_offset_bound_s,
            sources=self.sources,
        )
        self._work = threading.Condition()
        self._inflight: set[str] = set()
        # Items whose failure could not be journalled (a full disk): retry time kept here.
        self._held: dict[str, float] = {}
        self._degraded = threading.Event()  # the store or the disk failed; probe them
        self._outage_seen = False  # a probe failed since: its recovery wakes waiting items
        self._last_wake = float("-inf")
        # The first sweep runs as soon as the maintenance thread starts (listing a large
        # store takes a while; intake does not wait for it).
        self._last_sweep = float("-inf")
        self._threads: list[threading.Thread] = []
        self._started = utcnow()
        self._store: dict[str, Any] = {"ok": True, "last_error": None, "last_ok_at": None}
        self._done = 0
        self._stored_bytes = 0
        self._sources_done = threading.Event()

    # -- events ------------------------------------------------------------------------------

    def _wake(self, item: SpoolItem | None = None) -> None:
        with self._work:
            self._work.notify_all()

    def _on_event(self, source: str, kind: str, message: str, details: dict[str, Any]) -> None:
        if kind == "gap":
            self.pipeline.record_custody(
                Action.GAP_RECORDED,
                {
                    "ingest_source": source,
                    "message": message,
                    "agent_host": self.options.name,
                    **details,
                },
            )

    # -- workers -----------------------------------------------------------------------------

    def _claim(self) -> SpoolItem | None:
        now = time.time()
        for item in self.spool.pending():
            if (
                item.id in self._inflight
                or item.next_try > now
                or self._held.get(item.id, 0.0) > now
            ):
                continue
            self._inflight.add(item.id)
            return item
        return None

    def _worker(self, deadline: list[float]) -> None:
        # Nothing may end this loop but a stop: an exception escaping it would leave the
        # agent spooling with no one to drain the spool (issue #18, finding 2).
        while not self._abort.is_set():
            try:
                if not self._work_once(deadline):
                    return
            except Exception as error:
                log.exception("%s: failure outside any item; carrying on", _thread_name())
                if _environmental(error):
                    self._degraded.set()
                self._abort.wait(1.0)

    def _work_once(self, deadline: list[float]) -> bool:
        """Claim and process one item; False when the worker should end."""
        with self._work:
            item = self._claim()
            if item is None:
                if self.stop.is_set() and (
                    self._sources_done.is_set() and not self._inflight
                    or time.monotonic() > deadline[0]
                ):
                    return False
                self._work.wait(0.5)
                return True
        if self.stop.is_set() and time.monotonic() > deadline[0]:
            with self._work:
                self._inflight.discard(item.id)
            return False
        try:
            item = self.pipeline.process(item)
            if item.state == ItemState.ACKNOWLEDGED:
                self._done += 1
                self._stored_bytes += item.size
                self._store.update(ok=True, last_error=None, last_ok_at=utcnow().isoformat())
            self._held.pop(item.id, None)
        except VaultError as error:
            if isinstance(error, StorageError):
                self._store.update(ok=False, last_error=str(error))
            self._failed(item, error)
        except Exception as error:  # a bug must not lose the item: it stays journalled
            log.exception("%s: unexpected error on %s", item.source, item.name)
            self._failed(item, error)
        finally:
            with self._work:
                self._inflight.discard(item.id)
                self._work.notify_all()
        return True

    def _failed(self, item: SpoolItem, error: BaseException) -> None:
        """Journal a failed attempt; if even that fails, hold the item in memory instead."""
        if _environmental(error):
            self._degraded.set()
        try:
            self.pipeline.fail(
                self.spool.get(item.id),
                error,
                retry_min_s=self.options.retry_min_s,
                retry_max_s=self.options.retry_max_s,
            )
        except Exception as journal_error:
            # Typically "database or disk is full": the item keeps its journalled state and is
            # retried from it; the maintenance probe wakes it when the disk has room again.
            self._held[item.id] = time.time() + self.options.retry_max_s
            self._degraded.set()
            log.error(
                "%s: %s failed (%s) and the failure could not be journalled (%s); "
                "retrying when the disk and store answer",
                item.source,
                item.name,
                error,
                journal_error,
            )

    # -- maintenance -------------------------------------------------------------------------

    def _healthy_now(self) -> bool:
        """Whether the store answers and the spool disk is above its floor."""
        try:
            self.vault.store.check()
        except (VaultError, OSError) as error:
            self._store.update(ok=False, last_error=str(error))
            return False
        if not self.spool.above_floor(0):
            return False
        root = getattr(self.vault.store, "root", None)
        if isinstance(root, Path):
            # A local store answers a 5-byte probe long before it has room for footage:
            # wait until the smallest waiting item fits as well.
            sizes = [i.size for i in self.spool.pending() if i.attempts]
            try:
                free = shutil.disk_usage(root).free
            except OSError:
                return False
            if sizes and free < min(sizes) + self.spool.min_free_bytes:
                return False
        self._store.update(ok=True, last_error=None)
        return True

    def wake_waiting(self) -> int:
        """Retry every waiting item now (the store answers again); returns how many."""
        self._held.clear()
        try:
            woken = self.spool.retry_now()
        except VaultError as error:
            log.warning("could not release waiting items: %s", error)
            return 0
        if woken:
            log.info("store answers again: retrying %d waiting item(s) now", woken)
            self.spool.log_event("resumed", f"store answers again; {woken} item(s) retried now")
        self._wake()
        return woken

    def sweep(self) -> None:
        """Remove what killed uploads left in the store (logged; failures only logged)."""
        self._last_sweep = time.monotonic()
        try:
            swept = self.vault.sweep_leftovers(
                older_than=dt.timedelta(seconds=self.options.sweep_after_s)
            )
        except (VaultError, OSError) as error:
            log.warning("leftover sweep skipped: %s", error)
            return
        if swept.orphans or swept.partials:
            self.spool.log_event(
                "swept",
                f"removed {len(swept.orphans)} orphan object(s) ({swept.orphan_bytes} bytes) "
                f"and {len(swept.partials)} unfinished upload(s) ({swept.partial_bytes} bytes)",
                details={"orphans": swept.orphans, "partials": swept.partials},
            )

    def _maintenance(self) -> None:
        while not self._abort.is_set():
            try:
                if self._degraded.is_set():
                    if not self._healthy_now():
                        self._outage_seen = True
                    else:
                        self._degraded.clear()
                        # A failure the probe cannot see (one bad key, a full catalog disk
                        # with the store elsewhere) must not turn into a retry every probe:
                        # without an outage the probe saw end, wake at most every half
                        # retry_max_s and let the back-off do the rest.
                        quiet = self.options.retry_max_s / 2
                        if self._outage_seen or time.monotonic() - self._last_wake >= quiet:
                            self._outage_seen = False
                            self._last_wake = time.monotonic()
                            self.wake_waiting()
                undone = self.spool.clean_incoming()
                if undone:
                    log.info("undid %d spool placement(s) a full disk had left half-done", undone)
                if time.monotonic() - self._last_sweep >= self.options.sweep_every_s:
                    self.sweep()
            except Exception:
                log.exception("maintenance failed; carrying on")
            # Jitter: several agents probing one store after an outage do not do so in step.
            interval = self.options.store_probe_s
            self._abort.wait(interval * random.uniform(0.75, 1.25))

    # -- status ------------------------------------------------------------------------------

    def live_workers(self) -> int:
        """How many pipeline worker threads are alive."""
        return sum(1 for t in self._threads if t.name.startswith("worker") and t.is_alive())

    def status(self) -> dict[str, Any]:
        """The agent's health: workers, sources, spool, vault store, recent events (JSON-ready)."""
        used = self.spool.used_bytes()
        limit = self.spool.limit_bytes or 0
        return {
            "agent": self.options.name,
            "pid": os.getpid(),
            "started_at": self._started.isoformat(),
            "updated_at": utcnow().isoformat(),
            "status_interval_s": self.options.status_interval_s,
            "stopping": self.stop.is_set(),
            "workers": {"configured": self.options.workers, "alive": self.live_workers()},
            "sources": [s.status() for s in self.sources.values()],
            "spool": {
                "path": str(self.spool.root),
                "used_bytes": used,
                "limit_bytes": limit,
                "free_bytes": self.spool.free_bytes(),
                "min_free_bytes": self.spool.min_free_bytes,
                "backpressure": self.spool.backpressure or (limit > 0 and used >= limit),
                "counts": self.spool.counts(),
            },
            "store": dict(self._store),
            "ingested": {"files": self._done, "bytes": self._stored_bytes},
            "recent": self.spool.events(limit=20),
        }

    def write_status(self) -> None:
        """Rewrite ``status.json`` in the spool atomically."""
        path = self.spool.root / STATUS_NAME
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(), indent=2, default=str))
        os.replace(tmp, path)

    def _status_loop(self) -> None:
        while not self._sources_done.is_set() or any(
            t.is_alive() for t in self._threads if t.name.startswith("worker")
        ):
            try:
                self.write_status()
            except (OSError, VaultError, SpoolError) as error:
                # A full disk: the status goes stale, which `ingest status` reports.
                log.error("could not write the status file: %s", error)
            if self._abort.wait(self.options.status_interval_s):
                return

    # -- running -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin a clean stop (what SIGTERM does); a second call abandons in-flight work."""
        if self.stop.is_set():
            log.warning("second stop request: abandoning in-flight work (it resumes on restart)")
            self._abort.set()
            for source in self.sources.values():
                source.interrupt()
        else:
            log.info("stopping: no new footage taken; finishing in-flight work")
            self.stop.set()
        self._wake()

    def install_signal_handlers(self) -> Callable[[], None]:
        """SIGTERM and SIGINT request a stop (main thread only); returns a function that
        puts the previous handlers back."""

        def handler(signum: int, frame: Any) -> None:
            self.request_stop()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def recover(self) -> None:
        """Make the spool consistent and let sources pick up a crashed run's leftovers."""
        undone = self.spool.recover()
        for item in undone:
            log.info(
                "%s: %s was half-spooled when the agent stopped; its source offers it again",
                item.source,
                item.name,
            )
        for source in self.sources.values():
            source.recover()
        pending = self.spool.pending()
        if pending:
            log.info("resuming %d unfinished item(s) from the spool", len(pending))

    def run(self, *, duration: float | None = None) -> dict[str, Any]:
        """Run until stopped (signal, :meth:`request_stop`, or ``duration`` seconds).

        Returns the final status. Sources and workers run on threads; this thread waits.
        """
        self.recover()
        log.info(
            "agent %s: %d source(s), spool %s",
            self.options.name,
            len(self.sources),
            self.spool.root,
        )
        deadline = [float("inf")]
        source_threads = [
            threading.Thread(target=self._run_source, args=(s,), name=f"source-{s.id}", daemon=True)
            for s in self.sources.values()
        ]
        workers = [
            threading.Thread(target=self._worker, args=(deadline,), name=f"worker-{i}", daemon=True)
            for i in range(self.options.workers)
        ]
        self._threads = source_threads + workers
        for t in self._threads:
            t.start()
        status = threading.Thread(target=self._status_loop, name="status", daemon=True)
        status.start()
        threading.Thread(target=self._maintenance, name="maintenance", daemon=True).start()
        started = time.monotonic()
        try:
            while not self.stop.is_set():
                if duration is not None and time.monotonic() - started >= duration:
                    self.request_stop()
                    break
                self.stop.wait(0.2)
            deadline[0] = time.monotonic() + self.options.shutdown_grace_s
            for t in source_threads:
                t.join(max(0.0, deadline[0] - time.monotonic()) + 10)
            self._sources_done.set()
            self._wake()
            for t in workers:
                while t.is_alive() and not self._abort.is_set():
                    t.join(0.2)
        finally:
            self._sources_done.set()
            self._abort.set()
            status.join(5)
            final = self.status()
            try:
                self.write_status()
            except OSError:
                pass
            left = len(self.spool.pending())
            if left:
                log.info(
                    "stopped with %d item(s) left in the spool; they resume on the next start", left
                )
            log.info("agent stopped")
        return final

    def _run_source(self, source: Source) -> None:
        try:
            source.run()
        except Exception as error:  # a crashed source is reported, the others go on
            log.exception("%s: source stopped with an error", source.id)
            source.set_status(state=f"failed: {error}")
            self.context.event(source.id, "error", f"source stopped with an error: {error}")

    def close(self) -> None:
        """Release the spool lock (and the vault, if the agent opened it)."""
        self.spool.close()
        if self._owns_vault:
            self.vault.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _thread_name() -> str:
    return threading.current_thread().name


def _environmental(error: BaseException | None) -> bool:
    """Whether a failure may be the store's or the disk's (worth probing them for)."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, (StorageError, SpoolError, OSError, sqlite3.OperationalError)):
            return True
        if isinstance(error, SQLAlchemyError) and "disk" in str(error).lower():
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


#: A status file older than this many status intervals (and at least STALE_MIN_S) is stale.
STALE_INTERVALS = 10
STALE_MIN_S = 30.0


def read_status(spool_dir: Path, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """What ``ingest status`` shows: the last status file and the journal, read-only.

    ``running`` says whether the process that wrote the status file is still alive;
    ``live_workers`` how many pipeline workers it last reported alive; ``stale`` whether the
    file has not been rewritten for ``STALE_INTERVALS`` intervals (a stuck agent, or a disk
    too full to write it). ``healthy`` is running, not stale, with at least one live worker,
    and ``problems`` says what is wrong otherwise. Raises SpoolError when the directory holds
    no spool.
    """
    spool_dir = Path(spool_dir).expanduser()
    snapshot = inspect_spool(spool_dir)
    status: dict[str, Any] = {}
    path = spool_dir / STATUS_NAME
    if path.exists():
        try:
            status = json.loads(path.read_text())
        except ValueError:
            status = {}
    pid = status.get("pid")
    running = False
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
            running = True
        except (ProcessLookupError, PermissionError):
            running = False
    workers = status.get("workers")
    live = int(workers.get("alive", 0)) if isinstance(workers, dict) else 0
    stale = True
    updated = status.get("updated_at")
    if isinstance(updated, str):
        try:
            age = ((now or utcnow()) - dt.datetime.fromisoformat(updated)).total_seconds()
            interval = float(status.get("status_interval_s") or 1.0)
            stale = age > max(STALE_MIN_S, STALE_INTERVALS * interval)
        except ValueError:
            stale = True
    problems = []
    if not running:
        problems.append("no agent process is running for this spool")
    else:
        if live == 0:
            problems.append("the agent has no live pipeline workers: nothing leaves the spool")
        if stale:
            problems.append(f"the status file has not been rewritten since {updated}")
    status.update(
        running=running,
        live_workers=live,
        stale=stale,
        healthy=not problems,
        problems=problems,
        spool_dir=str(spool_dir),
        journal={
            "counts": snapshot.counts,
            "used_bytes": snapshot.used_bytes,
            "waiting": [
                {
                    k: i.to_dict()[k]
                    for k in ("id", "source", "name", "state", "size", "error", "attempts")
                }
                for i in snapshot.items
                if i.state != ItemState.REJECTED
            ],
            "recent": snapshot.events,
        },
    )
    return status


__all__ = ["Agent", "SOURCE_TYPES", "agent_spool_dir", "build_source", "read_status"]
