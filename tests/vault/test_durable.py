"""Durable writes: direct I/O where the file system takes it, buffered otherwise; same bytes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from vault.storage import durable
from vault.storage.durable import ALIGN, STAGE_SIZE, StagingPool, write_stream

SIZES = [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, STAGE_SIZE - 1, STAGE_SIZE, STAGE_SIZE + 1,
         3 * STAGE_SIZE + 12345]


def _direct_supported(directory: Path) -> bool:
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    probe = directory / "probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | flag, 0o600)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return True


class ReadOnly:
    """A source with ``read`` and no ``readinto`` (a socket-like stream)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._inner.read(size)


class Dribble(io.RawIOBase):
    """A ``readinto`` source that hands over at most 1000 bytes a call (a pipe, a socket)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._inner.readinto(memoryview(buffer)[:1000])


SOURCES = {"readinto": io.BytesIO, "read": ReadOnly, "short readinto": Dribble}


def _write(path: Path, data: bytes, *, chunk: int = 1 << 20, length: int = -1,
           pool: StagingPool | None = None, source: str = "readinto") -> tuple[int, bool]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        return write_stream(fd, SOURCES[source](data), chunk=chunk, length=length, pool=pool)
    finally:
        os.close(fd)


@pytest.mark.parametrize("source", ["readinto", "read"])
@pytest.mark.parametrize("size", SIZES)
def test_bytes_on_disk_are_the_bytes_given(tmp_path: Path, size: int, source: str) -> None:
    data = os.urandom(size)
    # An odd chunk size: the stream's pieces never line up with blocks or buffers.
    written, direct = _write(tmp_path / "f", data, chunk=(1 << 20) + 16, source=source)
    assert written == size
    assert (tmp_path / "f").read_bytes() == data
    assert direct == _direct_supported(tmp_path)


def test_short_reads_fill_whole_blocks(tmp_path: Path) -> None:
    data = os.urandom(STAGE_SIZE // 100 + ALIGN + 7)
    assert _write(tmp_path / "f", data, source="short readinto")[0] == len(data)
    assert (tmp_path / "f").read_bytes() == data


@pytest.mark.parametrize("size", [0, ALIGN + 1, STAGE_SIZE + 1])
def test_buffered_fallback_writes_the_same_bytes(tmp_path: Path, size: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable, "_set_direct", lambda fd, on: False)
    monkeypatch.setattr(durable, "FLUSH_EVERY", ALIGN)  # exercise the background flushes
    data = os.urandom(size)
    assert _write(tmp_path / "f", data) == (size, False)
    assert (tmp_path / "f").read_bytes() == data


@pytest.mark.parametrize("source", ["readinto", "read"])
@pytest.mark.parametrize("length", [0, STAGE_SIZE, STAGE_SIZE + 1])
def test_length_limits_what_is_read(tmp_path: Path, source: str, length: int) -> None:
    data = os.urandom(STAGE_SIZE + 100)
    stream = SOURCES[source](data)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        assert write_stream(fd, stream, chunk=1 << 20, length=length)[0] == length
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data[:length]
    assert stream.read() == data[length:]  # nothing past the length was taken


def test_staging_buffers_are_reused_and_bounded(tmp_path: Path) -> None:
    pool = StagingPool(keep=2)
    for i in range(3):
        _write(tmp_path / f"f{i}", os.urandom(ALIGN * 3), pool=pool)
    if _direct_supported(tmp_path):
        assert len(pool._free) == 2
    a, b, c = pool.take(), pool.take(), pool.take()
    for buf in (a, b, c):
        pool.give(buf)
    assert len(pool._free) == 2 and c.closed


class Unplugged:
    """A source that fails after six reads, like a device pulled out mid-copy."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, size: int = -1, /) -> bytes:
        self.reads += 1
        if self.reads > 6:
            raise RuntimeError("unplugged")
        return b"x" * size


def test_a_failing_source_leaves_the_error_and_no_stuck_thread(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(RuntimeError, match="unplugged"):
            write_stream(fd, Unplugged(), chunk=1 << 20)
    finally:
        os.close(fd)


def test_a_source_that_over_reads_is_refused(tmp_path: Path) -> None:
    class Greedy:
        def read(self, size: int = -1, /) -> bytes:
            return b"x" * (size + 1)

    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if _direct_supported(tmp_path):
            with pytest.raises(ValueError, match="asked for"):
                write_stream(fd, Greedy(), chunk=1 << 20)
    finally:
        os.close(fd)


def test_a_refused_direct_write_goes_on_through_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A device whose blocks are larger than ALIGN refuses the writes (EINVAL), not the flag.
    import errno

    real = os.pwrite
    calls = {"refused": 0}

    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        if calls["refused"] < 1:
            calls["refused"] += 1
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(durable.os, "pwrite", pwrite)
    data = os.urandom(2 * STAGE_SIZE + 5)
    assert _write(tmp_path / "f", data)[0] == len(data)
    assert (tmp_path / "f").read_bytes() == data
    assert calls["refused"] == 1
