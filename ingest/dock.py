"""Staff-worn device dock: a folder devices are offloaded into, watched for complete files.

Layout: ``layout`` in the agents file says where the device id (and optionally the wearer)
sit in a file's path below the dock, e.g. ``{device}/{wearer}/{file}``. A sidecar JSON file
beside the media (``clip.mp4.json`` or ``clip.json``) may state any of::

    {"device": "bwv-0142", "wearer": "officer 5521", "device_time": "2026-11-25T15:02:11Z",
     "captured_at": "2026-11-25T14:32:00Z", "captured_end": "2026-11-25T14:35:10Z"}

and wins over the path. ``device_time`` is the device's clock at offload (for the clock check,
see ingest/clock.py). Files whose names start with ``.`` or end in ``.part``, ``.tmp``,
``.partial`` or ``~`` are never taken, nor ``.json`` files (sidecars). Devices (and offload
tools) that write ``<name>.part`` and rename it when done are never seen half-written; that is
the contract we ask device vendors for (docs/ingest-faults.md).

A file is handed to the spool only once it is complete:

1. its size and modification time have not changed for ``stable_seconds``;
2. (``check_open``, Linux) no process has it open for writing. A read lease
   (``F_SETLEASE``) is refused while any writer has the file open, in any PID namespace (a
   containerised agent cannot see a host writer in its own ``/proc``); where leases are not
   available (not the file's owner and no ``CAP_LEASE``, NFS) the agent falls back to
   scanning ``/proc``, which sees only its own namespace, and says so once in the log;
3. its headers do not say it is cut off (ingest/probe.py :func:`incomplete_reason`: a WAV
   whose RIFF/data sizes exceed the file, an MP4 box that runs past the end or no index). A
   file that looks cut off but was modified within ``incomplete_wait_s`` is "not yet
   complete" and waited for, not refused; after that the probe refuses it with the reason.

The spool records the file as placed (size, mtime, inode, ctime; see ingest/spool.py
:func:`file_fingerprint`), and refuses the placement if the file moved meanwhile. After the
pipeline has verified the vault copy by hash, :meth:`DockSource.acknowledge` deletes the dock
file (and its sidecar) only while holding a lease that keeps writers out, and only if the
file is still that version (all four match). A
refused file moves to ``<dock>/_rejected/`` with ``<name>.reason.txt`` beside it. Nothing in
the dock is deleted before its vault copy verifies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DockSourceConfig
from .errors import SourceChanged, SpoolError
from .probe import incomplete_reason
from .sources import Source, SourceContext
from .spool import ItemState, SpoolItem, file_fingerprint, same_file

log = logging.getLogger("ingest.dock")

_SKIP_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", "~", ".json", ".reason.txt")


@dataclass(frozen=True)
class _Seen:
    size: int
    mtime_ns: int
    since: float  # monotonic time this (size, mtime) was first seen


# F_SETSIG is missing from older Pythons' fcntl; 10 is its value on every Linux ABI.
_F_SETSIG = getattr(fcntl, "F_SETSIG", 10)


@contextlib.contextmanager
def write_excluded(fd: int) -> Iterator[bool | None]:
    """Hold a read lease on the open file ``fd`` for the ``with`` block.

    Yields True while it holds the lease: no process anywhere has the file open for writing,
    and a writer that opens it now waits until the block ends. Yields False when a writer
    has it open, None when leases are unavailable here (not the file's owner and no
    CAP_LEASE, a network or FUSE file system, leases disabled). ``fd`` must be read-only.
    """
    try:
        # A writer opening the file breaks the lease with a signal to us: SIGIO by default,
        # which would end the process. SIGURG is ignored unless handled.
        fcntl.fcntl(fd, _F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as error:
        yield False if error.errno in (errno.EAGAIN, errno.EBUSY) else None
        return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def open_for_writing(path: Path) -> bool | None:
    """Whether any process, in any PID namespace, has ``path`` open for writing.

    None when this cannot be told by a lease (see :func:`write_excluded`); the caller may
    fall back to :func:`open_by_any_process`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        with write_excluded(fd) as held:
            return None if held is None else not held
    finally:
        os.close(fd)


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a time without a zone is not evidence of when; ignore it
    return parsed.astimezone(dt.timezone.utc)


def open_by_any_process(path: Path) -> bool:
    """Whether any process (that we may inspect) has ``path`` open, via /proc/*/fd."""
    target = os.path.realpath(path)
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = os.listdir(pid_dir / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(pid_dir / "fd" / fd) == target:
                    return True
            except OSError:
                continue
    return False


class DockSource(Source):
    """Watches a dock folder; see the module docstring."""

    kind = "dock"
    config: DockSourceConfig

    def __init__(self, config: DockSourceConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self.root = Path(config.path).expanduser()
        self._seen: dict[str, _Seen] = {}
        self._waiting: dict[str, str] = {}  # path -> why it looks incomplete (logged once)
        self._lease_warned = False

    # -- finding complete files --------------------------------------------------------------

    def _candidates(self) -> list[Path]:
        rejected = self.root / self.config.rejected_dir
        out: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and here / d != rejected
            )
            for name in sorted(filenames):
                if name.startswith(".") or name.lower().endswith(_SKIP_SUFFIXES):
                    continue
                out.append(here / name)
        return out

    def _complete(self, path: Path, st: os.stat_result, now: float) -> bool:
        key = str(path)
        seen = self._seen.get(key)
        if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
            self._seen[key] = _Seen(st.st_size, st.st_mtime_ns, now)
            if self.config.stable_seconds > 0:
                return False
            seen = self._seen[key]
        if now - seen.since < self.config.stable_seconds:
            return False
        if self.config.check_open and self._open_for_writing(path):
            return False
        reason = incomplete_reason(path)
        if reason is not None and time.time() - st.st_mtime < self.config.incomplete_wait_s:
            # Looks cut off but was written to lately: a device flushing slowly, not a refusal.
            if self._waiting.get(key) != reason:
                self._waiting[key] = reason
                self.context.event(
                    self.id,
                    "waiting",
                    f"{path.relative_to(self.root).as_posix()} looks incomplete ({reason}); "
                    f"waiting for its writer (up to {self.config.incomplete_wait_s:.0f} s "
                    "after its last change)",
                )
            return False
        self._waiting.pop(key, None)
        return True

    def _open_for_writing(self, path: Path) -> bool:
        held = open_for_writing(path)
        if held is not None:
            return held
        if not self._lease_warned:
            self._lease_warned = True
            log.warning(
                "%s: file leases are not available on %s (the agent needs to own the files or "
                "have CAP_LEASE); the open-file check falls back to /proc, which sees writers "
                "only in the agent's own PID namespace. Have devices write *.part and rename.",
                self.id,
                self.root,
            )
        return open_by_any_process(path)

    def scan_once(self) -> list[SpoolItem]:
        """Look at the dock once; spool every file that is complete; return the new items."""
        spooled: list[SpoolItem] = []
        now = time.monotonic()
        present: set[str] = set()
        for path in self._candidates():
            if self.context.stop.is_set():
                break
            try:
                st = path.stat()
            except OSError:
                continue
            present.add(str(path))
            if not self._complete(path, st, now):
                continue
            rel = path.relative_to(self.root).as_posix()
            latest = self.context.spool.find(self.id, rel)
            if latest is not None and (
                not latest.state.terminal
                or (latest.state == ItemState.REJECTED and same_file(latest.fingerprint, st))
            ):
                continue  # in the pipeline already (or refused and not yet moved aside)
            if not self.wait_for_room(st.st_size):
                break
            item = self._spool(path, rel, st)
            if item is not None:
                spooled.append(item)
        for key in list(self._seen):
            if key not in present:
                del self._seen[key]
                self._waiting.pop(key, None)
        return spooled

    def _spool(self, path: Path, rel: str, st: os.stat_result) -> SpoolItem | None:
        sidecar_path, sidecar = self._sidecar(path)
        from_path = self._from_layout(rel)
        device = str(sidecar.get("device") or from_path.get("device") or "")
        wearer = sidecar.get("wearer") or from_path.get("wearer")
        meta: dict[str, Any] = {
            "device": device,
            "site": self.config.site,
            "dock_path": str(path),
            "mtime": dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).isoformat(),
        }
        if wearer:
            meta["wearer"] = str(wearer)
        if sidecar_path is not None:
            meta["sidecar"] = sidecar_path.name
        if not device:
            # Refuse rather than guess whose footage it is.
            meta["reject_reason"] = (
                f"no device id: the path does not match the layout {self.config.layout!r} "
                "and no sidecar names the device"
            )
        start = _parse_time(sidecar.get("captured_at"))
        end = _parse_time(sidecar.get("captured_end"))
        try:
            item = self.context.spool.add(
                path,
                source=self.id,
                origin=rel,
                vault_source=device or f"{self.id}:unknown-device",
                source_kind=self.vault_kind,
                mode=self.config.spool_mode,
                received_at=self.context.clock(),
                fingerprint=file_fingerprint(st),
                unchanged_since=st,
                device_time=_parse_time(sidecar.get("device_time")),
                captured_start=start,
                captured_end=end,
                time_basis="sidecar" if start else None,
                meta=meta,
            )
        except SourceChanged as error:
            self._seen.pop(str(path), None)  # quiet time starts again
            self.context.event(self.id, "changed", str(error))
            return None
        except SpoolError as error:
            self.context.event(self.id, "error", f"cannot spool {rel}: {error}")
            return None
        self.count_file(st.st_size)
        self.context.log.info(
            "%s: spooled %s (%d bytes, device %s)", self.id, rel, st.st_size, device
        )
        self.context.on_spooled(item)
        return item

    def _sidecar(self, path: Path) -> tuple[Path | None, dict[str, Any]]:
        for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
            if candidate.is_file():
                try:
                    data = json.loads(candidate.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    self.context.event(
                        self.id, "error", f"unreadable sidecar {candidate.name}; ignored"
                    )
                    return None, {}
                return (candidate, data) if isinstance(data, dict) else (None, {})
        return None, {}

    def _from_layout(self, rel: str) -> dict[str, str]:
        parts = rel.split("/")
        layout = self.config.layout.split("/")
        if len(parts) != len(layout):
            return {}
        out: dict[str, str] = {}
        for pattern, value in zip(layout, parts, strict=False):
            if pattern in ("{device}", "{wearer}"):
                out[pattern[1:-1]] = value
        return out

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Scan the dock every ``poll_interval_s`` until stopped."""
        if not self.root.is_dir():
            self.set_status(state=f"error: dock folder {self.root} does not exist")
            self.context.event(self.id, "error", f"dock folder {self.root} does not exist")
        self.set_status(state="watching")
        while not self.context.stop.is_set():
            try:
                if self.root.is_dir():
                    self.scan_once()
                    self.set_status(state="watching", last_scan=self.context.clock().isoformat())
            except Exception as error:  # one bad scan must not end the watch
                self.set_status(state=f"error: {error}")
                self.context.log.exception("%s: scan failed", self.id)
            self.context.stop.wait(self.config.poll_interval_s)
        self.set_status(state="stopped")

    # -- pipeline callbacks ------------------------------------------------------------------

    def acknowledge(self, item: SpoolItem) -> None:
        """Delete the dock file (the vault copy verified) if it is certainly that copy.

        Kept, with an event saying why, when a writer has it open or when it changed since
        it was spooled (size, mtime, inode or ctime); it is then offered again.
        """
        path = self.root / item.origin
        kept = self._delete_if_unchanged(path, item)
        if kept is None:
            return  # already gone (acknowledged before a crash)
        if kept:
            self.context.event(
                self.id,
                "changed",
                f"{item.origin} {kept}; kept in the dock and offered again",
                item=item.id,
            )
            return
        sidecar = item.meta.get("sidecar")
        if sidecar:
            (path.parent / sidecar).unlink(missing_ok=True)
        self.context.log.info(
            "%s: removed %s from the dock (vault copy %s verified)",
            self.id,
            item.origin,
            item.recording_id,
        )

    def _delete_if_unchanged(self, path: Path, item: SpoolItem) -> str | None:
        """Unlink ``path`` if it is the verified version; '' when deleted, the reason it was
        kept otherwise, None when it is already gone."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        try:
            # Every check below runs under the lease, so no writer can open the file between
            # the last check and the unlink.
            with write_excluded(fd) as held:
                if held is False:
                    return "is open for writing"
                if held is None and self.config.check_open and self._open_for_writing(path):
                    return "is open for writing"
                st = os.fstat(fd)
                if not same_file(item.fingerprint, st):
                    return "changed since its verified copy was made"
                try:
                    if os.stat(path).st_ino != st.st_ino:
                        return "was replaced by another file"
                    path.unlink()
                except FileNotFoundError:
                    return None
                return ""
        finally:
            os.close(fd)

    def reject(self, item: SpoolItem, reason: str) -> None:
        """Move a refused file to the rejected folder with the reason beside it."""
        path = self.root / item.origin
        target = self.root / self.config.rejected_dir / item.origin
        if not path.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target = target.with_name(f"{target.stem}.{item.id[:8]}{target.suffix}")
        os.replace(path, target)
        sidecar = item.meta.get("sidecar")
        if sidecar and (path.parent / sidecar).exists():
            os.replace(path.parent / sidecar, target.parent / sidecar)
        target.with_name(target.name + ".reason.txt").write_text(
            f"{reason}\nrefused by the ingest agent at {self.context.clock().isoformat()} "
            f"(spool item {item.id})\n",
            encoding="utf-8",
        )


__all__ = ["DockSource", "open_by_any_process", "open_for_writing", "write_excluded"]
