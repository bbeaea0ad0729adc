"""The one interface every source implements, and what the agent hands each source.

A source finds footage and places it in the spool (:meth:`Spool.add`); the pipeline takes it
from there and, once the vault copy is verified, calls the source back:
:meth:`Source.acknowledge` (the dock deletes its original) or :meth:`Source.reject` (the dock
moves a refused file aside with the reason). Sources never talk to the vault themselves, so
every file reaches it the same way.

    class Source:
        recover()            after a crash, before run(): pick up what was left half-done
        run()                find footage until context.stop is set (its own thread)
        acknowledge(item)    the vault holds a verified copy of item
        reject(item, reason) the pipeline refused item (not media)
        status()             a JSON-ready health summary for ``ingest status``
        interrupt()          stop at once (a second SIGTERM): abandon safely

Implementations: ingest/rtsp.py, ingest/nvr_http.py, ingest/dock.py, ingest/upload.py.
"""

from __future__ import annotations

import abc
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vault.storage.catalog import SourceKind, utcnow

from .config import AgentOptions, SourceConfig
from .spool import Spool, SpoolItem

EventSink = Callable[[str, str, str, dict[str, Any]], None]


def _no_events(source: str, kind: str, message: str, details: dict[str, Any]) -> None:
    return None


@dataclass
class SourceContext:
    """What the agent gives every source: the spool, a stop flag, a clock, logging, events."""

    spool: Spool
    agent: AgentOptions = field(default_factory=AgentOptions)
    stop: threading.Event = field(default_factory=threading.Event)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("ingest"))
    clock: Callable[[], dt.datetime] = utcnow
    # Called with each newly spooled item, so the pipeline starts on it at once.
    on_spooled: Callable[[SpoolItem], None] = lambda item: None
    # Records an event (gap, back-pressure, rejection): (source id, kind, message, details).
    on_event: EventSink = _no_events

    def event(self, source: str, kind: str, message: str, **details: Any) -> None:
        """Log an event locally (spool journal, log) and pass it to the agent's sink."""
        level = (
            logging.WARNING if kind in ("gap", "backpressure", "clock", "error") else logging.INFO
        )
        self.log.log(level, "%s: %s", source, message)
        self.spool.log_event(kind, message, source=source, details=details)
        self.on_event(source, kind, message, details)


class Source(abc.ABC):
    """A place footage comes from. Subclasses set ``kind`` and implement :meth:`run`."""

    kind: ClassVar[str]

    def __init__(self, config: SourceConfig, context: SourceContext) -> None:
        self.config = config
        self.context = context
        self._status: dict[str, Any] = {"state": "idle", "files": 0, "bytes": 0}
        self._status_lock = threading.Lock()

    @property
    def id(self) -> str:
        """The source id in the agents file."""
        return self.config.id

    @property
    def vault_kind(self) -> SourceKind:
        """The vault's source kind (sets the retention rule)."""
        return self.config.vault_kind

    def recover(self) -> None:  # noqa: B027 (an optional hook: doing nothing is right)
        """Pick up work a crashed run left behind (called before :meth:`run`)."""

    @abc.abstractmethod
    def run(self) -> None:
        """Find footage and spool it until ``context.stop`` is set."""

    def acknowledge(self, item: SpoolItem) -> None:  # noqa: B027 (an optional hook: doing nothing is right)
        """The vault holds a verified copy of ``item``; the source may let go of its original."""

    def reject(self, item: SpoolItem, reason: str) -> None:  # noqa: B027 (an optional hook: doing nothing is right)
        """The pipeline refused ``item``; keep the original safe and say why."""

    def interrupt(self) -> None:  # noqa: B027 (an optional hook: doing nothing is right)
        """Stop at once (second signal): abandon in-flight work in a state recover() handles."""

    # -- status ------------------------------------------------------------------------------

    def set_status(self, **values: Any) -> None:
        """Update this source's status fields (thread-safe)."""
        with self._status_lock:
            self._status.update(values)

    def count_file(self, size: int) -> None:
        """Count one more file handed to the spool."""
        with self._status_lock:
            self._status["files"] = int(self._status.get("files", 0)) + 1
            self._status["bytes"] = int(self._status.get("bytes", 0)) + size
            self._status["last_file_at"] = self.context.clock().isoformat()

    def status(self) -> dict[str, Any]:
        """A JSON-ready health summary."""
        with self._status_lock:
            return {"id": self.id, "kind": self.kind, "site": self.config.site, **self._status}

    def wait_for_room(self, size: int) -> bool:
        """Back-pressure: block until ``size`` bytes fit in the spool and keep its disk above
        the free-space floor (``min_free_mb``); False when stopping.

        Says so in the status and the event log while it waits.
        """
        spool = self.context.spool
        if spool.has_room(size):
            return True
        used, limit = spool.used_bytes(), spool.limit_bytes or 0
        if not spool.above_floor(size):
            free = spool.free_bytes()
            self.set_status(state="paused: spool disk below its free-space floor")
            message = (
                f"spool disk has {free >> 20} MiB free; a {size >> 20} MiB file would take it "
                f"below the {spool.min_free_bytes >> 20} MiB floor (min_free_mb); intake paused "
                "until there is room"
            )
        else:
            free = None
            self.set_status(state="paused: spool full (back-pressure)")
            message = (
                f"spool full ({used >> 20} of {limit >> 20} MiB waiting for the vault); "
                "intake paused until the store catches up"
            )
        self.context.event(self.id, "backpressure", message, used=used, limit=limit, free=free)
        ok = spool.wait_for_room(size, self.context.stop)
        if ok:
            self.context.event(self.id, "resumed", "spool has room again; intake resumed")
            self.set_status(state="running")
        return ok


__all__ = ["EventSink", "Source", "SourceContext"]
