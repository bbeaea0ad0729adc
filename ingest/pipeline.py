"""The ingest pipeline: spool -> probe -> store (hash, encrypt, upload, catalog, custody) ->
verify -> acknowledge.

Each step starts from the item's journalled state and ends by journalling the next one, so
:meth:`Pipeline.process` can be called again on any item after a crash and finishes it:

1. ``spooled``: probe the file (ingest/probe.py). Not media: ``rejected`` with the reason, and
   the source is told (the dock moves the file aside). Media: capture times, the device-clock
   check (ingest/clock.py) and the media summary are journalled: ``probed``.
2. ``probed``: :meth:`vault.vault.Vault.put_stream` hashes, encrypts, uploads, catalogs and
   logs the ``ingested`` custody event (with source, device, hash, size, agent host) in one
   call. The vault treats the same bytes from the same source as one recording, so repeating
   this step after a crash, or ingesting the same file twice, gives one recording: ``stored``.
3. ``stored``: the vault copy is read back, decrypted and its SHA-256 compared
   (:meth:`Vault.verify_recording`); the catalog is made durable (a SQLite catalog's WAL is
   fsynced: it runs ``synchronous=NORMAL``, and a power cut must not take back the row an
   original is deleted on); only then is the source acknowledged (the dock deletes its
   original), the spool copy removed: ``acknowledged``.

A store that is slow or down fails step 2 with StorageError; the item waits (journalled, with
a growing, jittered retry delay, so items do not retry in lock-step) and the spool grows until
sources feel back-pressure. Nothing is dropped. The agent wakes every waiting item as soon as
the store answers again (ingest/agent.py).

Duplicates: the vault keeps one recording per source and SHA-256, so the same bytes from the
same device twice are one recording (``duplicate`` on the item). The same bytes from two
*different* devices are kept as two recordings, each with its own custody, retention and
organisation, and flagged: an ``ingest.same_bytes`` custody event names both (see
docs/ingest-faults.md for why they are not merged).

Crash tests: setting ``EVIDENCE_VAULT_INGEST_CRASH_AT`` (or ``crash_at=``) to one of
:class:`CrashPoint` makes the process SIGKILL itself the first time an item reaches that point.
This is for tests only; it is off unless set.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
import random
import signal
import time
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from sqlalchemy import select

from vault.actors import Actor, Role
from vault.ledger.events import IngestRejected, IngestSameBytes, UndeclaredEvent
from vault.storage.catalog import MediaKind, Recording
from vault.storage.durable import sync_sqlite
from vault.ledger.custody import Action
from vault.errors import HashMismatch, StorageError, VaultError
from vault.vault import Vault
from vault.capture import Capture

from .clock import check_clock
from .errors import NotMedia
from .probe import probe
from .sources import Source
from .spool import ItemState, Spool, SpoolItem

CRASH_ENV = "EVIDENCE_VAULT_INGEST_CRASH_AT"

log = logging.getLogger("ingest.pipeline")


class CrashPoint(str, enum.Enum):
    """Where a crash test may kill the agent (see the module docstring)."""

    AFTER_SPOOL = "after_spool"  # spooled and journalled, not yet probed
    DURING_UPLOAD = "during_upload"  # part of the ciphertext sent to the store
    AFTER_UPLOAD = "after_upload"  # object stored, catalog row not yet written
    AFTER_CATALOG = "after_catalog"  # cataloged with its custody event, source not acknowledged
    # verified and the catalog made durable; the source's original not yet deleted
    BEFORE_SOURCE_DELETE = "before_source_delete"


def agent_actor(agent_name: str) -> Actor:
    """The custody actor of an ingest agent (role: ingest agent, write-only)."""
    return Actor(user=f"agent:{agent_name}", role=Role.INGEST_AGENT, client_addr=agent_name)


class Pipeline:
    """Moves spool items into the vault. Thread-safe: several workers may share one pipeline.

    ``sources`` maps agents-file source ids to the sources to call back; items from a source
    not in the map are stored but acknowledged to nobody.
    """

    def __init__(
        self,
        vault: Vault,
        spool: Spool,
        *,
        agent_name: str,
        clock_bound_s: float = 2.0,
        sources: Mapping[str, Source] | None = None,
        crash_at: CrashPoint | str | None = None,
        on_event: Callable[[str, str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.vault = vault
        self.spool = spool
        self.agent_name = agent_name
        self.actor = agent_actor(agent_name)
        self.clock_bound_s = clock_bound_s
        self.sources: dict[str, Source] = dict(sources or {})
        self.on_event = on_event
        crash = crash_at if crash_at is not None else os.environ.get(CRASH_ENV) or None
        self.crash_at = CrashPoint(crash) if crash else None
        if self.crash_at in (CrashPoint.DURING_UPLOAD, CrashPoint.AFTER_UPLOAD):
            vault.store = _CrashingStore(vault.store, self.crash_at)

    # -- the steps ---------------------------------------------------------------------------

    def process(self, item: SpoolItem) -> SpoolItem:
        """Run ``item`` through every remaining step; return it in its final state.

        Raises VaultError (StorageError, IntegrityError...) when a step fails; the item stays
        in the state before that step, ready to be retried.
        """
        if item.state == ItemState.SPOOLED:
            self._crash_point(CrashPoint.AFTER_SPOOL)
            item = self.probe(item)
        if item.state == ItemState.PROBED:
            item = self.store(item)
        if item.state == ItemState.STORED:
            item = self.acknowledge(item)
        return item

    def probe(self, item: SpoolItem) -> SpoolItem:
        """Step 1: probe the spooled file; ``probed`` or ``rejected``."""
        if item.meta.get("reject_reason"):
            return self.reject(item, str(item.meta["reject_reason"]))
        path = self.spool.path_of(item)
        try:
            info = probe(path, name=item.name)
        except NotMedia as refusal:
            return self.reject(item, refusal.reason)
        start, end, basis = item.captured_start, item.captured_end, item.time_basis
        if start is None and info.creation_time is not None:
            start, basis = info.creation_time, "container creation_time"
        if start is None and item.meta.get("mtime"):
            # A device writes the file until the recording stops: its mtime is the end.
            end = dt.datetime.fromisoformat(item.meta["mtime"])
            start = end - dt.timedelta(seconds=info.duration_s or 0)
            basis = "file modification time (end of recording)"
        if start is None:
            start, basis = item.received_at, "agent receipt time"
        if end is None and info.duration_s is not None:
            end = start + dt.timedelta(seconds=info.duration_s)
        clock = check_clock(
            received_at=item.received_at,
            bound_s=self.clock_bound_s,
            device_time=item.device_time,
            captured_end=end,
        )
        media_info = {**info.to_dict(), "clock": clock.to_dict(), "time_basis": basis}
        if clock.flagged:
            self._event(item, "clock", f"{item.name}: {clock.reason}", offset_s=clock.offset_s)
        return self.spool.update(
            item,
            state=ItemState.PROBED,
            captured_start=start,
            captured_end=end,
            time_basis=basis,
            media_info=media_info,
        )

    def reject(self, item: SpoolItem, reason: str) -> SpoolItem:
        """Refuse ``item`` (not media): journal the reason, tell the source, drop the spool copy."""
        source = self.sources.get(item.source)
        if source is not None:
            source.reject(item, reason)
        item = self.spool.update(item, state=ItemState.REJECTED, error=reason)
        item = self.spool.remove_file(item)
        self._event(item, "rejected", f"{item.name}: refused: {reason}", origin=item.origin)
        # Footage that reached an agent and was not stored leaves a trace in custody too.
        self.record_custody(
            "ingest.rejected",
            IngestRejected(
                ingest_source=item.source,
                device=item.vault_source,
                name=item.name,
                size=item.size,
                origin=item.origin,
                reason=reason,
                agent_host=self.agent_name,
            ),
        )
        return item

    def record_custody(self, action: Action | str, details: Mapping[str, Any]) -> None:
        """Append a custody event by this agent (no footage object); log if that fails."""
        try:
            with self.vault.sessions.begin() as session:
                self.vault.ledger.append(session, action, actor=self.actor, details=details)
            self.vault.ledger.maybe_checkpoint()
        except UndeclaredEvent:
            # A kind or detail the vocabulary does not declare is a defect in this code, not a
            # fault of the moment: logging it would lose every such event without a trace.
            raise
        except VaultError as error:  # the spool's local event log still has it
            log.error("could not record %s in the custody ledger: %s", action, error)

    def store(self, item: SpoolItem) -> SpoolItem:
        """Step 2: hash, encrypt, upload, catalog, custody; ``stored``."""
        media_info = dict(item.media_info or {})
        clock = media_info.get("clock") or {}
        details: dict[str, Any] = {
            "agent_host": self.agent_name,
            "ingest_source": item.source,
            "spool_item": item.id,
            "device": item.vault_source,
            "origin": item.origin,
            "received_at": item.received_at.isoformat(),
            "device_time": clock.get("device_time"),
            # Custody events are canonical JSON without floats: milliseconds.
            "clock_offset_ms": None
            if clock.get("offset_s") is None
            else round(clock["offset_s"] * 1000),
            "clock_flagged": bool(clock.get("flagged")),
            "time_basis": item.time_basis,
        }
        details.update(
            {
                k: v
                for k, v in item.meta.items()
                if k in ("wearer", "camera", "clip_id", "partial", "pull")
            }
        )
        assert item.captured_start is not None  # probed items always have one
        with self.spool.path_of(item).open("rb") as stream:
            recording = self.vault.put_stream(
                stream,
                Capture(
                    source_id=item.vault_source,
                    source_kind=item.source_kind,
                    captured_at=item.captured_start,
                    captured_end=item.captured_end,
                    media_kind=MediaKind(media_info.get("media_kind", MediaKind.OTHER.value)),
                    original_name=item.name,
                    site=item.meta.get("site"),
                    media_info=media_info,
                    details=details,
                    received_at=item.received_at,
                    device_time=item.device_time,
                    clock_offset_ms=details["clock_offset_ms"],
                    clock_flagged=details["clock_flagged"],
                    # Footage pulled from an NVR records what was asked for, of whom, by whom.
                    provenance=item.meta.get("pull"),
                ),
                actor=self.actor,
            )
        self._crash_point(CrashPoint.AFTER_CATALOG)
        # A recording this item made (now, or before a crash) carries the item's receipt
        # time; only one that doesn't may be another item's, which custody then tells.
        duplicate = (
            recording.received_at != item.received_at
            and self._first_ingested_by(recording.id) != item.id
        )
        if duplicate:
            self._event(
                item,
                "duplicate",
                f"{item.name}: same bytes as recording {recording.id}; no second copy kept",
                recording=recording.id,
            )
        else:
            self._flag_same_bytes(item, recording.id, recording.sha256, recording.source_id)
        return self.spool.update(
            item,
            state=ItemState.STORED,
            recording_id=recording.id,
            sha256=recording.sha256,
            duplicate=duplicate,
            error=None,
        )

    def acknowledge(self, item: SpoolItem) -> SpoolItem:
        """Step 3: verify the vault copy by hash, then acknowledge; ``acknowledged``.

        Raises HashMismatch / CiphertextError when the stored copy does not verify: nothing
        is acknowledged and the source keeps its original.
        """
        assert item.recording_id is not None
        recording = self.vault.verify_recording(item.recording_id)
        if item.sha256 is not None and recording.sha256 != item.sha256:
            raise HashMismatch(
                f"recording {recording.id}: catalog SHA-256 changed since spool item {item.id} was stored"
            )
        self._make_catalog_durable()
        self._crash_point(CrashPoint.BEFORE_SOURCE_DELETE)
        source = self.sources.get(item.source)
        if source is not None:
            source.acknowledge(item)
        item = self.spool.remove_file(item)
        item = self.spool.update(item, state=ItemState.ACKNOWLEDGED, error=None)
        log.info(
            "%s: %s -> recording %s (%s, sha256 %s)%s",
            item.source,
            item.name,
            item.recording_id,
            _size(item.size),
            (item.sha256 or "")[:16],
            " [duplicate]" if item.duplicate else "",
        )
        return item

    def fail(
        self, item: SpoolItem, error: BaseException, *, retry_min_s: float, retry_max_s: float
    ) -> SpoolItem:
        """Journal a failed attempt and when to try again (:func:`retry_delay`).

        Raises SpoolError when the journal itself cannot be written (a full disk).
        """
        attempts = item.attempts + 1
        delay = retry_delay(attempts, retry_min_s=retry_min_s, retry_max_s=retry_max_s)
        message = (
            str(error) if isinstance(error, VaultError) else f"{type(error).__name__}: {error}"
        )
        item = self.spool.update(
            item, attempts=attempts, error=message, next_try=time.time() + delay
        )
        self._event(
            item,
            "retry",
            f"{item.name}: {message} (attempt {attempts}; retrying in {delay:.0f} s)",
            state=item.state.value,
        )
        return item

    # -- helpers -----------------------------------------------------------------------------

    def _make_catalog_durable(self) -> None:
        url = self.vault.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return  # PostgreSQL commits are durable when they return (synchronous_commit)
        try:
            sync_sqlite(Path(str(url.database)))
        except OSError as error:
            raise StorageError(
                f"cannot make the catalog durable ({error.strerror}); originals are kept"
            ) from None

    def _flag_same_bytes(
        self, item: SpoolItem, recording_id: str, sha256: str, source_id: str
    ) -> None:
        """Flag a recording whose bytes another source's live recording already has."""
        with self.vault.sessions() as session:
            others = list(
                session.execute(
                    select(Recording.id, Recording.source_id).where(
                        Recording.sha256 == sha256,
                        Recording.source_id != source_id,
                        Recording.deleted_at.is_(None),
                    )
                )
            )
        if not others:
            return
        names = ", ".join(f"{rid} ({src})" for rid, src in others)
        self._event(
            item,
            "same_bytes",
            f"{item.name}: same bytes as {names} from another device; kept as its own "
            f"recording {recording_id} and flagged",
            recording=recording_id,
            others=[rid for rid, _ in others],
        )
        self.record_custody(
            "ingest.same_bytes",
            IngestSameBytes(
                recording_id=recording_id,
                device=source_id,
                sha256=sha256,
                same_as=[{"recording_id": rid, "device": src} for rid, src in others],
                agent_host=self.agent_name,
            ),
        )

    def _event(self, item: SpoolItem, kind: str, message: str, **details: Any) -> None:
        level = logging.WARNING if kind in ("clock", "rejected", "retry") else logging.INFO
        log.log(level, "%s: %s", item.source, message)
        self.spool.log_event(
            kind, message, source=item.source, details={"item": item.id, **details}
        )
        if self.on_event is not None:
            self.on_event(item.source, kind, message, {"item": item.id, **details})

    def _first_ingested_by(self, recording_id: str) -> str | None:
        """The spool item whose upload created ``recording_id`` (from its custody event).

        The vault answers a repeat of the same bytes with the first recording; a repeat by
        the *same* item (a restart after a crash) is not a duplicate, a different item is.
        """
        for record in self.vault.ledger.events(
            object_id=recording_id, action=Action.INGESTED, limit=1
        ):
            value = record.event.details.get("spool_item")
            return str(value) if value is not None else None
        return None

    def _crash_point(self, point: CrashPoint) -> None:
        if self.crash_at == point:
            _die(point)


def retry_delay(attempts: int, *, retry_min_s: float, retry_max_s: float) -> float:
    """Seconds before attempt ``attempts + 1``: exponential back-off with "equal jitter".

    Half the capped delay is fixed, half random, so the items that failed together in one
    outage do not all come back in the same second (and each still waits at least half its
    delay). The agent also wakes them early when the store answers again.
    """
    capped = min(retry_max_s, retry_min_s * float(2 ** min(max(attempts, 1) - 1, 16)))
    return capped / 2 + random.uniform(0, capped / 2)


def _die(point: CrashPoint) -> None:
    log.critical("crash test: killing the agent at %s", point.value)
    logging.shutdown()
    os.kill(os.getpid(), signal.SIGKILL)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} B"


class _CrashingStore:
    """Test hook: wraps the object store to die during or right after an upload."""

    def __init__(self, inner: Any, point: CrashPoint) -> None:
        self._inner = inner
        self._point = point

    def put(self, key: str, data: BinaryIO, *, length: int = -1) -> Any:
        if self._point == CrashPoint.DURING_UPLOAD:
            data = _DieAfter(data, 1, self._point)  # type: ignore[assignment]
        info = self._inner.put(key, data, length=length)
        if self._point == CrashPoint.AFTER_UPLOAD:
            _die(self._point)
        return info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _DieAfter:
    """Dies at the read after ``reads`` reads (``read`` or ``readinto``, as stores use)."""

    def __init__(self, inner: Any, reads: int, point: CrashPoint) -> None:
        self._inner = inner
        self._reads = reads
        self._point = point

    def read(self, size: int = -1) -> bytes:
        self._count()
        return bytes(self._inner.read(size))

    def readinto(self, buffer: Any) -> int:
        self._count()
        return int(self._inner.readinto(buffer))

    def _count(self) -> None:
        if self._reads <= 0:
            _die(self._point)
        self._reads -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


__all__ = ["CRASH_ENV", "CrashPoint", "Pipeline", "agent_actor", "retry_delay"]
