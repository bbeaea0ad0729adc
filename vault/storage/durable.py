"""Writing a new file so that it is on disk when the call returns, at the disk's pace.

The local store writes every object once and reads it back rarely, and an object must be
on disk before the catalog names it. Through the page cache that costs twice: the kernel
copies every byte into freshly allocated cache pages (on a virtual machine whose memory is
backed lazily that is the slowest part: ~60 ms of kernel CPU per 25 MB measured on the
2-core CI kind, against ~13 ms for the whole direct write), then an fsync at the end waits
for all of it to reach the disk, after the hashing and encryption are done.

So :func:`write_stream` writes with ``O_DIRECT`` where the file system allows it:

- bytes are gathered into page-aligned staging buffers (``O_DIRECT`` needs aligned memory,
  sizes and offsets) and each full buffer goes straight to the device from a helper thread,
  while the caller fills the next one: the disk writes as the data is produced, and the
  caller's core is free for hashing and encryption. A source with ``readinto`` (the vault's
  encrypting reader, files) fills the staging buffer itself, one copy fewer per byte;
- the unaligned tail is written padded to the block size and the file is then truncated to
  its true length; a final ``fsync`` makes the size and metadata durable.

Where ``O_DIRECT`` is refused (tmpfs, some network and FUSE file systems, non-Linux), the
same function writes through the page cache, flushing in the background every
``FLUSH_EVERY`` bytes so the final fsync waits only for the tail. Either way the bytes on
disk are the bytes given; which path ran is returned for logs and benchmarks.
"""

from __future__ import annotations

import concurrent.futures
import errno
import fcntl
import mmap
import os
import tempfile
import threading
from pathlib import Path
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "ALIGN",
    "FLUSH_EVERY",
    "STAGE_SIZE",
    "StagingPool",
    "create_file",
    "fsync_dir",
    "replace_file",
    "sync_sqlite",
    "write_stream",
]

#: Alignment of buffers, sizes and offsets for direct I/O (a page: covers 512 B and 4 KiB
#: logical blocks).
ALIGN = 4096
#: Bytes per direct write (a write borrows two staging buffers of this size).
STAGE_SIZE = 4 << 20
#: Buffered fallback: flush to disk in the background every this many bytes.
FLUSH_EVERY = 16 << 20


class Source(Protocol):
    """What :func:`write_stream` reads from: ``read(n)``, and ``readinto`` where it has one."""

    def read(self, size: int = -1, /) -> bytes: ...


class StagingPool:
    """Page-aligned staging buffers kept for reuse between writes (thread-safe).

    Fresh anonymous memory is expensive where a virtual machine backs guest pages lazily
    (about 1.3 ms of kernel time per MiB on first touch, measured on the CI kind): two new
    4 MiB buffers per object would cost more than writing a 25 MB object. A store keeps one
    pool and each write borrows two buffers from it.
    """

    def __init__(self, keep: int = 4) -> None:
        self._free: list[mmap.mmap] = []
        self._keep = keep
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        """A ``STAGE_SIZE`` buffer, reused if one is free."""
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, STAGE_SIZE)

    def give(self, buffer: mmap.mmap) -> None:
        """Return ``buffer``; beyond ``keep`` free buffers it is unmapped."""
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buffer)
                return
        try:
            buffer.close()
        except BufferError:
            pass  # a source still holds a view of it (a failed read's traceback): unmapped with it


def _set_direct(fd: int, on: bool) -> bool:
    """Turn ``O_DIRECT`` on or off for ``fd``; False where the file system refuses it."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | flag) if on else (flags & ~flag))
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
            return False
        raise
    return True


def write_stream(fd: int, source: Source, *, chunk: int, length: int = -1,
                 pool: StagingPool | None = None) -> tuple[int, bool]:
    """Write what ``source`` yields (until the end, or ``length`` bytes if >= 0) to the empty
    file open for writing as ``fd``, and fsync it. ``chunk``: the most bytes asked of one
    ``read``.

    Returns (bytes written, whether direct I/O was used). ``fd`` stays open (the caller
    closes it). ``pool`` lends the staging buffers (a private one if not given). Raises
    OSError as the writes do (ENOSPC, EIO...).
    """
    if not _set_direct(fd, True):
        return _write_buffered(fd, source.read, chunk, length), False
    try:
        size = _write_direct(fd, _filler(source, chunk), length, pool or StagingPool(keep=0))
    finally:
        _set_direct(fd, False)
    os.ftruncate(fd, size)
    os.fsync(fd)
    return size, True


def _filler(source: Source, chunk: int) -> Callable[[memoryview], int]:
    """``fill(view)``: put the next bytes of ``source`` at the start of ``view``; how many
    (0 at the end). ``readinto`` where the source has a working one, else ``read`` and a copy."""
    readinto = getattr(source, "readinto", None)

    def copy(view: memoryview) -> int:
        data = source.read(min(chunk, len(view)))
        if len(data) > len(view):
            raise ValueError(f"the source returned {len(data)} bytes when asked for {len(view)}")
        view[: len(data)] = data
        return len(data)

    def fill(view: memoryview) -> int:
        nonlocal readinto
        if readinto is None:
            return copy(view)
        try:
            got = readinto(view)
        except NotImplementedError:  # io.RawIOBase subclasses that define only read()
            readinto = None
            return copy(view)
        if got is None:  # a non-blocking source with nothing to give
            raise BlockingIOError(errno.EAGAIN, "the source has no data ready")
        return int(got)

    return fill


def _next(read: Callable[[int], bytes], chunk: int, length: int, size: int) -> bytes:
    if length >= 0:
        if size >= length:
            return b""
        chunk = min(chunk, length - size)
    return read(chunk)


def _write_direct(fd: int, fill_from: Callable[[memoryview], int], length: int,
                  staging: StagingPool) -> int:
    buffers = [staging.take(), staging.take()]  # page-aligned
    views = [memoryview(b) for b in buffers]
    pending: list[concurrent.futures.Future[int] | None] = [None, None]
    which = fill = size = 0
    offset = 0

    def submit(pool: concurrent.futures.ThreadPoolExecutor, n: int) -> None:
        nonlocal offset, which, fill
        pending[which] = pool.submit(_pwrite_all, fd, views[which][:n], offset)
        offset += n
        which = 1 - which
        fill = 0
        waiting = pending[which]
        if waiting is not None:  # the other buffer must be on disk before it is refilled
            pending[which] = None
            waiting.result()

    try:
        # Leaving the executor waits for every write, failed or not: the buffers outlive them.
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store-write") as pool:
            while True:
                room = STAGE_SIZE - fill if length < 0 else min(STAGE_SIZE - fill, length - size)
                got = fill_from(views[which][fill:fill + room]) if room else 0
                if not got:
                    break
                fill += got
                size += got
                if fill == STAGE_SIZE:
                    submit(pool, STAGE_SIZE)
            if fill:
                # The tail, padded to the block size with zeros; truncated afterwards.
                padded = -(-fill // ALIGN) * ALIGN
                views[which][fill:padded] = bytes(padded - fill)
                submit(pool, padded)
        for p in pending:
            if p is not None:
                p.result()
    finally:
        for v in views:
            v.release()
        for b in buffers:
            staging.give(b)
    return size


def _pwrite_all(fd: int, data: memoryview, offset: int) -> int:
    """Write all of ``data`` at ``offset``. Should the device refuse a direct write
    (EINVAL: a block size above ``ALIGN``, or the unaligned rest of a short write), the
    file goes on through the page cache; the final fsync covers either."""
    done = 0
    while done < len(data):
        try:
            n = os.pwrite(fd, data[done:], offset + done)
        except OSError as exc:
            if exc.errno != errno.EINVAL or not _set_direct(fd, False):
                raise
            continue
        if n == 0:
            raise OSError(errno.EIO, f"write at offset {offset + done} made no progress")
        done += n
    return done


def _write_buffered(fd: int, read: Callable[[int], bytes], chunk: int, length: int) -> int:
    flushed = size = 0
    pending: concurrent.futures.Future[None] | None = None
    # Leaving the executor waits for the last flush, before the caller closes the descriptor.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store-flush") as pool:
        while data := _next(read, chunk, length, size):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            size += len(data)
            if size - flushed >= FLUSH_EVERY and (pending is None or pending.done()):
                if pending is not None:
                    pending.result()  # a failed flush (EIO, ENOSPC) fails the write
                pending = pool.submit(os.fdatasync, fd)
                flushed = size
    if pending is not None:
        pending.result()
    os.fsync(fd)
    return size


# -- small files: keys, checkpoints ---------------------------------------------------------


def replace_file(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, whole,
    and the new one is on disk when this returns: temp file, fsync, rename, fsync directory.
    Raises OSError."""
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(path.parent)


def create_file(path: Path, data: bytes, *, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data``, whole and on disk, unless it exists: a file another
    process created first is kept (a hard link never replaces). Returns whether this call
    created it. Raises OSError."""
    tmp = _write_temp(path, data, mode)
    try:
        try:
            os.link(tmp, path)
            created = True
        except FileExistsError:
            created = False
        except OSError:  # a file system without hard links
            created = not path.exists()
            if created:
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return created


def _write_temp(path: Path, data: bytes, mode: int) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def fsync_dir(directory: Path) -> None:
    """Make a rename or new name in ``directory`` durable (where the platform can)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - file systems that cannot sync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise  # EIO and friends: the new name may not be on disk
    finally:
        os.close(fd)


def sync_sqlite(database: Path) -> None:
    """Make every transaction committed to the SQLite file ``database`` durable now.

    The catalog runs WAL with ``synchronous=NORMAL``: a commit is in the ``-wal`` file's page
    cache and reaches the disk at the next checkpoint, so a power cut can take back a
    committed row. That is fine for the catalog alone, not when an original is about to be
    deleted on the row's word: fsyncing the WAL (and the database file and its directory,
    for a WAL created since the last checkpoint) makes what is committed durable before the
    delete. Raises OSError when the disk refuses (EIO): nothing may then be deleted.
    """
    database = Path(database)
    for path in (Path(f"{database}-wal"), database):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(database.parent)
