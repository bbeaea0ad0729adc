"""The durable local spool: footage waiting to reach the vault, with a small state journal.

Layout of a spool directory (one agent process per directory, enforced by a lock file)::

    journal.sqlite3   the journal: one row per item, plus a local event log
    files/            spooled plaintext, one file per item (mode 0600)
    incoming/         copies in progress (removed on restart)
    partial/          resumable downloads (kept across restarts)
    rtsp/             live recordings in progress (see ingest/rtsp.py)
    status.json       the running agent's status (see ingest/agent.py)
    .lock             flock held by the process using the spool

Item states and what a restart does with each::

    incoming       the row is written, the file is being placed  -> undone (source re-offers),
                                                                    or kept if a move finished
    spooled        the file is in files/                          -> probe
    probed         media checked, times and clock known           -> store (the vault dedups a
                                                                    repeat by source + SHA-256)
    stored         in the vault as recording_id                   -> verify, acknowledge
    acknowledged   verified, source told, spool file removed      (terminal)
    rejected       not media; the reason is in ``error``          (terminal)

The journal is written before the file is placed, and a state changes only after the work it
names is durable, so an agent killed at any instruction restarts with every item in a state it
can finish from. SQLite runs in WAL mode with ``synchronous=FULL``. A journal write that
fails (a full disk) is rolled back and raised as SpoolError, so the connection stays usable
and the item is retried once there is room.

Free space: besides ``limit_bytes`` (footage waiting), a spool keeps ``min_free_bytes`` free
on its disk, which the vault's own store and catalog need to take the footage off it. Intake
waits (:meth:`Spool.wait_for_room`) while a file would take the disk below that floor, and
:meth:`Spool.add` refuses a copy that would (SpoolFull).

Why this module is long: :class:`Spool` is the agent's one durable state store; adding,
placing, settling, recovering and the free-space floor all run in its SQLite transactions under
one directory lock, and the crash guarantees above hold only because they are read together.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import errno
import fcntl
import json
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from vault.storage.catalog import SourceKind
from vault.storage.durable import fsync_dir

from .errors import SourceChanged, SpoolError, SpoolFull, SpoolLocked

JOURNAL_NAME = "journal.sqlite3"
STATUS_NAME = "status.json"
LOCK_NAME = ".lock"
_COPY_CHUNK = 8 << 20

SpoolMode = Literal["copy", "link", "move"]


class ItemState(str, enum.Enum):
    """Where an item is in the pipeline (see the module docstring)."""

    INCOMING = "incoming"
    SPOOLED = "spooled"
    PROBED = "probed"
    STORED = "stored"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in (ItemState.ACKNOWLEDGED, ItemState.REJECTED)


def file_fingerprint(st: os.stat_result) -> str:
    """What identifies one version of a file: ``size:mtime_ns:inode:ctime_ns``.

    Any write changes the mtime and the ctime (which no process can set back), a replaced
    file has another inode: a source may let go of its original only while all four still
    match what was spooled.
    """
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"


def same_file(fingerprint: str | None, st: os.stat_result) -> bool:
    """Whether ``st`` is the version of the file that ``fingerprint`` names.

    Fingerprints journalled before ctime was part of them (three fields) compare on the
    fields they have. None (no fingerprint) never matches.
    """
    if not fingerprint:
        return False
    ours = file_fingerprint(st).split(":")
    theirs = fingerprint.split(":")
    return ours[: len(theirs)] == theirs


_ACTIVE = (ItemState.SPOOLED.value, ItemState.PROBED.value, ItemState.STORED.value)


@dataclass(frozen=True)
class SpoolItem:
    """One file in the spool and everything known about it so far."""

    id: str
    source: str  # the agents-file source id
    origin: str  # where it came from: dock path, clip id, segment name, uploaded path
    name: str  # the original file name
    vault_source: str  # camera or device id recorded in the vault
    source_kind: SourceKind
    state: ItemState
    received_at: dt.datetime  # the agent's clock when the source handed the file over
    file: str | None = None  # name under files/; None once removed
    size: int = 0
    mode: str = "copy"
    fingerprint: str | None = None
    device_time: dt.datetime | None = None  # the device's own clock at hand-over, if stated
    captured_start: dt.datetime | None = None
    captured_end: dt.datetime | None = None
    time_basis: str | None = None  # what the capture times come from
    meta: dict[str, Any] = field(default_factory=dict)  # device, wearer, site, source details
    media_info: dict[str, Any] | None = None
    recording_id: str | None = None
    sha256: str | None = None
    duplicate: bool = False
    error: str | None = None
    attempts: int = 0
    next_try: float = 0.0
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the item."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dt.datetime):
                value = value.isoformat()
            elif isinstance(value, enum.Enum):
                value = value.value
            out[f.name] = value
        return out


_COLUMNS = [f.name for f in fields(SpoolItem)]
_TIME_COLUMNS = {
    "received_at",
    "device_time",
    "captured_start",
    "captured_end",
    "created_at",
    "updated_at",
}
_JSON_COLUMNS = {"meta", "media_info"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    origin TEXT NOT NULL,
    name TEXT NOT NULL,
    vault_source TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    state TEXT NOT NULL,
    received_at TEXT NOT NULL,
    file TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    mode TEXT NOT NULL DEFAULT 'copy',
    fingerprint TEXT,
    device_time TEXT,
    captured_start TEXT,
    captured_end TEXT,
    time_basis TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    media_info TEXT,
    recording_id TEXT,
    sha256 TEXT,
    duplicate INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    created_at TEXT,
    updated_at TEXT
);
CREATE INDEX IF NOT EXISTS ix_items_origin ON items (source, origin);
CREATE INDEX IF NOT EXISTS ix_items_state ON items (state);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    source TEXT,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
);
"""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _encode(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _TIME_COLUMNS:
        return value.isoformat()
    if name in _JSON_COLUMNS:
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value


def _decode_row(row: sqlite3.Row) -> SpoolItem:
    values: dict[str, Any] = {}
    for name in _COLUMNS:
        value = row[name]
        if value is not None and name in _TIME_COLUMNS:
            value = dt.datetime.fromisoformat(value)
        elif value is not None and name in _JSON_COLUMNS:
            value = json.loads(value)
        values[name] = value
    values["state"] = ItemState(values["state"])
    values["source_kind"] = SourceKind(values["source_kind"])
    values["duplicate"] = bool(values["duplicate"])
    values["meta"] = values["meta"] or {}
    return SpoolItem(**values)


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.row_factory = sqlite3.Row
    return conn


class Spool:
    """A spool directory opened for writing by this process (holds its lock).

    Thread-safe: sources add items and pipeline workers advance them from several threads.
    """

    def __init__(
        self, root: Path, *, limit_bytes: int | None = None, min_free_bytes: int = 0
    ) -> None:
        self.root = Path(root).expanduser()
        self.limit_bytes = limit_bytes
        self.min_free_bytes = min_free_bytes
        self.files_dir = self.root / "files"
        self.incoming_dir = self.root / "incoming"
        self.partial_dir = self.root / "partial"
        self._lock = threading.RLock()
        self._room = threading.Condition(self._lock)
        self._lock_fd: int | None = None
        self._placing: set[str] = set()  # incoming items this process is placing right now
        try:
            for d in (self.root, self.files_dir, self.incoming_dir, self.partial_dir):
                d.mkdir(parents=True, exist_ok=True)
                os.chmod(d, 0o700)
        except OSError as error:
            raise SpoolError(f"cannot create spool {self.root}: {error.strerror}") from None
        self._take_lock()
        self._db = _connect(self.root / JOURNAL_NAME)
        self._db.executescript(_SCHEMA)
        self.backpressure = False

    # -- lifecycle ---------------------------------------------------------------------------

    def _take_lock(self) -> None:
        path = self.root / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EAGAIN, errno.EACCES):
                holder = path.read_text().strip() or "another process"
                raise SpoolLocked(
                    f"spool {self.root} is in use by process {holder}; one agent per spool"
                ) from None
            raise SpoolError(f"cannot lock spool {self.root}: {error.strerror}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def close(self) -> None:
        """Close the journal and release the lock."""
        with self._lock:
            self._db.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # A COMMIT that fails (SQLITE_FULL on a full disk) leaves the transaction open; without
        # the rollback every later BEGIN fails too and the agent is stuck until restarted.
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise SpoolError(
                    f"spool journal {self.root / JOURNAL_NAME} cannot be written: {error}"
                ) from None

    # -- adding files ------------------------------------------------------------------------

    def path_of(self, item: SpoolItem) -> Path:
        """The spooled file of ``item``. Raises SpoolError once it has been removed."""
        if item.file is None:
            raise SpoolError(f"spool item {item.id} has no file (already removed)")
        return self.files_dir / item.file

    def add(
        self,
        src: Path,
        *,
        source: str,
        origin: str,
        vault_source: str,
        source_kind: SourceKind,
        mode: SpoolMode = "copy",
        name: str | None = None,
        received_at: dt.datetime | None = None,
        fingerprint: str | None = None,
        device_time: dt.datetime | None = None,
        captured_start: dt.datetime | None = None,
        captured_end: dt.datetime | None = None,
        time_basis: str | None = None,
        meta: dict[str, Any] | None = None,
        unchanged_since: os.stat_result | None = None,
    ) -> SpoolItem:
        """Place ``src`` in the spool and journal it as ``spooled``; return the item.

        ``mode``: ``copy`` (fsynced), ``link`` (a hard link; falls back to copy across disks)
        or ``move`` (rename; for files the agent itself wrote inside the spool directory).

        ``unchanged_since``: the stat the source judged the file complete by. The file is
        stat'ed again once placed; if its size, mtime or inode moved the placement is undone
        and SourceChanged raised (a writer came back). The item's ``fingerprint`` is then
        the file as placed (:func:`file_fingerprint`), which the source compares before it
        deletes its original.

        Raises SpoolFull if a copy would take the disk below ``min_free_bytes``, SpoolError
        if the file cannot be placed; nothing is left half-done.
        """
        src = Path(src)
        now = _utcnow()
        item_id = str(uuid.uuid4())
        suffix = "".join(Path(name or src.name).suffixes[-1:]).lower()[:16]
        try:
            size = src.stat().st_size
        except OSError as error:
            raise SpoolError(f"cannot read {src}: {error.strerror}") from None
        if mode == "copy" or (mode == "link" and not _same_device(src, self.files_dir)):
            self._check_floor(size)
        item = SpoolItem(
            id=item_id,
            source=source,
            origin=origin,
            name=name or src.name,
            vault_source=vault_source,
            source_kind=source_kind,
            state=ItemState.INCOMING,
            received_at=received_at or now,
            file=f"{item_id}{suffix}",
            size=size,
            mode=mode,
            fingerprint=fingerprint,
            device_time=device_time,
            captured_start=captured_start,
            captured_end=captured_end,
            time_basis=time_basis,
            meta=meta or {},
            created_at=now,
            updated_at=now,
        )
        # 1. The row first, so a file is never in files/ without a row naming it.
        self._placing.add(item_id)  # before the row exists, so clean_incoming() never sees it
        try:
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO items ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                    [_encode(c, getattr(item, c)) for c in _COLUMNS],
                )
            return self._finish_add(item, src, mode, fingerprint, unchanged_since)
        finally:
            self._placing.discard(item_id)

    def _finish_add(
        self,
        item: SpoolItem,
        src: Path,
        mode: SpoolMode,
        fingerprint: str | None,
        unchanged_since: os.stat_result | None,
    ) -> SpoolItem:
        item_id = item.id
        dst = self.files_dir / str(item.file)
        try:
            # 2. The file, durably.
            actual_mode = self._place(src, dst, mode)
            if unchanged_since is not None:
                placed = src.stat() if actual_mode != "move" else dst.stat()
                if _changed(unchanged_since, placed) or (
                    actual_mode == "copy" and dst.stat().st_size != placed.st_size
                ):
                    dst.unlink(missing_ok=True)
                    raise SourceChanged(
                        f"{src} changed while it was being spooled "
                        f"({unchanged_since.st_size} -> {placed.st_size} bytes); "
                        "it is offered again once it settles"
                    )
                fingerprint = file_fingerprint(placed)
        except (OSError, SourceChanged) as error:
            # On a full disk this delete can fail too; clean_incoming() retries it, so the
            # row does not make its source think the file is in the pipeline for ever.
            with contextlib.suppress(SpoolError):
                with self._tx() as db:
                    db.execute("DELETE FROM items WHERE id = ?", (item_id,))
            if isinstance(error, SourceChanged):
                raise
            raise SpoolError(f"cannot spool {src}: {error.strerror}") from None
        # 3. Only now is it spooled.
        return self.update(
            item, state=ItemState.SPOOLED, mode=actual_mode, fingerprint=fingerprint
        )

    def _place(self, src: Path, dst: Path, mode: SpoolMode) -> str:
        if mode == "move":
            os.replace(src, dst)
            fsync_dir(self.files_dir)
            return "move"
        if mode == "link":
            try:
                os.link(src, dst)
                fsync_dir(self.files_dir)
                return "link"
            except OSError as error:
                if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
        tmp = self.incoming_dir / f"{dst.name}.{os.getpid()}.tmp"
        try:
            with (
                src.open("rb") as fin,
                open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fout,
            ):
                shutil.copyfileobj(fin, fout, _COPY_CHUNK)
                fout.flush()
                os.fsync(fout.fileno())
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.files_dir)
        return "copy"

    # -- reading and updating ----------------------------------------------------------------

    def get(self, item_id: str) -> SpoolItem:
        """The item ``item_id``. Raises SpoolError if the journal has no such item."""
        with self._lock:
            row = self._db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise SpoolError(f"no spool item {item_id}")
        return _decode_row(row)

    def update(self, item: SpoolItem, **changes: Any) -> SpoolItem:
        """Write ``changes`` to the journal (durably) and return the updated item."""
        changes["updated_at"] = _utcnow()
        new = replace(item, **changes)
        names = sorted(changes)
        with self._tx() as db:
            db.execute(
                f"UPDATE items SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
                [_encode(n, getattr(new, n)) for n in names] + [item.id],
            )
        if "state" in changes or "file" in changes:
            with self._room:
                self._room.notify_all()
        return new

    def remove_file(self, item: SpoolItem) -> SpoolItem:
        """Delete the spooled file of ``item`` (the vault copy is verified) and journal it."""
        if item.file is not None:
            (self.files_dir / item.file).unlink(missing_ok=True)
            fsync_dir(self.files_dir)
        return self.update(item, file=None)

    def find(self, source: str, origin: str) -> SpoolItem | None:
        """The newest item from ``source`` with ``origin``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM items WHERE source = ? AND origin = ? ORDER BY created_at DESC LIMIT 1",
                (source, origin),
            ).fetchone()
        return _decode_row(row) if row else None

    def items(
        self,
        *,
        states: tuple[ItemState, ...] | None = None,
        source: str | None = None,
        limit: int = 10_000,
    ) -> list[SpoolItem]:
        """Items, oldest first, optionally only in ``states`` or from ``source``."""
        query = "SELECT * FROM items WHERE 1=1"
        args: list[Any] = []
        if states:
            query += f" AND state IN ({', '.join('?' * len(states))})"
            args += [s.value for s in states]
        if source:
            query += " AND source = ?"
            args.append(source)
        query += " ORDER BY created_at, id LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [_decode_row(r) for r in rows]

    def pending(self) -> list[SpoolItem]:
        """Items the pipeline still has to finish, oldest first."""
        return self.items(states=(ItemState.SPOOLED, ItemState.PROBED, ItemState.STORED))

    def clean_incoming(self) -> int:
        """Undo placements that failed and could not be undone at the time (a full disk):
        ``incoming`` rows this process is not placing now. Returns how many were undone;
        their sources offer the files again. Raises SpoolError if the journal still refuses.
        """
        undone = 0
        for item in self.items(states=(ItemState.INCOMING,)):
            if item.id not in self._placing and self._settle_incoming(item):
                undone += 1
        return undone

    def _settle_incoming(self, item: SpoolItem) -> bool:
        """Keep a placement that finished (a move, or a complete copy) as ``spooled``;
        undo any other. Returns True when undone."""
        dst = self.files_dir / str(item.file)
        if dst.exists() and (item.mode == "move" or dst.stat().st_size == item.size):
            changes: dict[str, Any] = {"state": ItemState.SPOOLED}
            placed = dst.stat()
            if item.mode == "link" and item.fingerprint and same_file(
                ":".join(item.fingerprint.split(":")[:3]), placed
            ):
                # The link itself moved the ctime after the source judged the file complete;
                # the file is otherwise the version it judged, so record it as linked.
                changes["fingerprint"] = file_fingerprint(placed)
            self.update(item, **changes)
            return False
        dst.unlink(missing_ok=True)
        with self._tx() as db:
            db.execute(
                "DELETE FROM items WHERE id = ? AND state = ?", (item.id, ItemState.INCOMING.value)
            )
        return True

    def retry_now(self) -> int:
        """Make every unfinished item waiting out a retry delay due now; returns how many."""
        now = _time()
        with self._tx() as db:
            cursor = db.execute(
                f"UPDATE items SET next_try = 0 WHERE next_try > ? "
                f"AND state IN ({', '.join('?' * len(_ACTIVE))})",
                (now, *_ACTIVE),
            )
            return int(cursor.rowcount)

    def counts(self) -> dict[str, int]:
        """How many items are in each state."""
        with self._lock:
            return _counts(self._db)

    # -- the local event log -----------------------------------------------------------------

    def log_event(
        self,
        kind: str,
        message: str,
        *,
        source: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append to the spool's local event log (gaps, rejections, back-pressure)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (at, source, kind, message, details) VALUES (?, ?, ?, ?, ?)",
                (
                    _utcnow().isoformat(),
                    source,
                    kind,
                    message,
                    json.dumps(details or {}, default=str),
                ),
            )

    def events(self, *, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest local events (newest last)."""
        with self._lock:
            return _events(self._db, kind=kind, limit=limit)

    # -- back-pressure -----------------------------------------------------------------------

    def used_bytes(self) -> int:
        """Bytes of footage in the spool that have not reached the vault and been verified."""
        with self._lock:
            return _used(self._db)

    def free_bytes(self) -> int:
        """Free bytes on the spool's disk (for unprivileged users)."""
        try:
            return shutil.disk_usage(self.root).free
        except OSError:
            return 0

    def above_floor(self, size: int) -> bool:
        """Whether the disk keeps ``min_free_bytes`` free after ``size`` more bytes."""
        return self.min_free_bytes <= 0 or self.free_bytes() - size >= self.min_free_bytes

    def _check_floor(self, size: int) -> None:
        if not self.above_floor(size):
            free = self.free_bytes()
            raise SpoolFull(
                f"spool disk {self.root} has {free >> 20} MiB free; a {size >> 20} MiB file "
                f"would take it below the {self.min_free_bytes >> 20} MiB floor (min_free_mb) "
                "that the vault's store and catalog need",
                used=self.used_bytes(),
                limit=self.limit_bytes or 0,
            )

    def has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit: under the limit (a lone file always does) and
        above the disk's free-space floor (``min_free_bytes``)."""
        if not self.above_floor(size):
            return False
        if self.limit_bytes is None:
            return True
        used = self.used_bytes()
        return used == 0 or used + size <= self.limit_bytes

    def wait_for_room(
        self, size: int, stop: threading.Event, *, timeout: float | None = None
    ) -> bool:
        """Block until ``size`` bytes fit (back-pressure); False if ``stop`` is set or timed out.

        While blocked, :attr:`backpressure` is True so the status view says so.
        """
        deadline = None if timeout is None else _monotonic() + timeout
        with self._room:
            while not self.has_room(size):
                self.backpressure = True
                if stop.is_set():
                    return False
                wait = 0.5 if deadline is None else min(0.5, deadline - _monotonic())
                if wait <= 0:
                    return False
                self._room.wait(wait)
            self.backpressure = False
            return True

    def check_room(self, size: int) -> None:
        """Raise SpoolFull unless ``size`` bytes fit under the limit and the floor."""
        self._check_floor(size)
        if not self.has_room(size):
            used = self.used_bytes()
            limit = self.limit_bytes or 0
            raise SpoolFull(
                f"spool {self.root} is full ({used >> 20} of {limit >> 20} MiB waiting for the vault)",
                used=used,
                limit=limit,
            )

    # -- recovery ----------------------------------------------------------------------------

    def recover(self) -> list[SpoolItem]:
        """Bring the spool back to a consistent state after a crash; return the items undone.

        ``incoming`` rows whose file did not arrive are removed (their source still holds the
        original and offers it again); a finished move is kept as ``spooled``. Temporary copies
        and files that no row names are deleted. Items whose spool file vanished before they
        reached the vault are logged loudly and left for the operator.
        """
        undone: list[SpoolItem] = []
        for item in self.items(states=(ItemState.INCOMING,)):
            if self._settle_incoming(item):
                undone.append(item)
        for tmp in self.incoming_dir.iterdir():
            tmp.unlink(missing_ok=True)
        with self._lock:
            named = {
                r["file"] for r in self._db.execute("SELECT file FROM items WHERE file IS NOT NULL")
            }
        for path in self.files_dir.iterdir():
            if path.name not in named:
                path.unlink(missing_ok=True)
        for item in self.items(states=(ItemState.SPOOLED, ItemState.PROBED)):
            if item.file is None or not (self.files_dir / item.file).exists():
                self.log_event(
                    "missing",
                    f"spool file of {item.name} ({item.id}) is missing before it reached the vault",
                    source=item.source,
                    details={"item": item.id, "origin": item.origin},
                )
        return undone


def _same_device(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def _changed(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_size, before.st_mtime_ns, before.st_ino) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    )


def _time() -> float:
    import time

    return time.time()


def _monotonic() -> float:
    import time

    return time.monotonic()


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    counts = {s.value: 0 for s in ItemState}
    for row in db.execute("SELECT state, COUNT(*) AS n FROM items GROUP BY state"):
        counts[row["state"]] = row["n"]
    return counts


def _used(db: sqlite3.Connection) -> int:
    row = db.execute(
        f"SELECT COALESCE(SUM(size), 0) AS used FROM items WHERE file IS NOT NULL "
        f"AND state IN ('incoming', {', '.join('?' * len(_ACTIVE))})",
        _ACTIVE,
    ).fetchone()
    return int(row["used"])


def _events(db: sqlite3.Connection, *, kind: str | None, limit: int) -> list[dict[str, Any]]:
    query = "SELECT * FROM events"
    args: list[Any] = []
    if kind:
        query += " WHERE kind = ?"
        args.append(kind)
    query += " ORDER BY seq DESC LIMIT ?"
    args.append(limit)
    rows = db.execute(query, args).fetchall()
    return [
        {
            "seq": r["seq"],
            "at": r["at"],
            "source": r["source"],
            "kind": r["kind"],
            "message": r["message"],
            "details": json.loads(r["details"]),
        }
        for r in reversed(rows)
    ]


@dataclass(frozen=True)
class SpoolSnapshot:
    """What a spool holds, read without taking its lock (for ``ingest status``)."""

    root: Path
    counts: dict[str, int]
    used_bytes: int
    events: list[dict[str, Any]]
    items: list[SpoolItem]


def inspect_spool(root: Path, *, events: int = 20, items: int = 50) -> SpoolSnapshot:
    """Read a spool's journal read-only. Raises SpoolError when there is no journal."""
    path = Path(root).expanduser() / JOURNAL_NAME
    if not path.exists():
        raise SpoolError(f"no spool journal at {path}")
    db = _connect(path, readonly=True)
    try:
        rows = db.execute(
            "SELECT * FROM items WHERE state NOT IN ('acknowledged') ORDER BY created_at LIMIT ?",
            (items,),
        ).fetchall()
        return SpoolSnapshot(
            root=Path(root),
            counts=_counts(db),
            used_bytes=_used(db),
            events=_events(db, kind=None, limit=events),
            items=[_decode_row(r) for r in rows],
        )
    finally:
        db.close()


__all__ = [
    "ItemState",
    "file_fingerprint",
    "same_file",
    "Spool",
    "SpoolItem",
    "SpoolSnapshot",
    "inspect_spool",
]
