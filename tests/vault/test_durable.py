"""Durable writes: direct I/O where the file system takes it, buffered otherwise; same bytes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from vault import durable
from vault.durable import ALIGN, STAGE_SIZE, StagingPool, write_stream

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


def _write(path: Path, data: bytes, *, chunk: int = 1 << 20, length: int = -1,
           pool: StagingPool | None = None) -> tuple[int, bool]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        return write_stream(fd, io.BytesIO(data).read, chunk=chunk, length=length, pool=pool)
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", SIZES)
def test_bytes_on_disk_are_the_bytes_given(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    # An odd chunk size: the stream's pieces never line up with blocks or buffers.
    written, direct = _write(tmp_path / "f", data, chunk=(1 << 20) + 16)
    assert written == size
    assert (tmp_path / "f").read_bytes() == data
    assert direct == _direct_supported(tmp_path)


@pytest.mark.parametrize("size", [0, ALIGN + 1, STAGE_SIZE + 1])
def test_buffered_fallback_writes_the_same_bytes(tmp_path: Path, size: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable, "_set_direct", lambda fd, on: False)
    monkeypatch.setattr(durable, "FLUSH_EVERY", ALIGN)  # exercise the background flushes
    data = os.urandom(size)
    assert _write(tmp_path / "f", data) == (size, False)
    assert (tmp_path / "f").read_bytes() == data


def test_length_limits_what_is_read(tmp_path: Path) -> None:
    data = os.urandom(STAGE_SIZE + 100)
    assert _write(tmp_path / "f", data, length=STAGE_SIZE + 1)[0] == STAGE_SIZE + 1
    assert (tmp_path / "f").read_bytes() == data[:STAGE_SIZE + 1]


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


def test_a_failing_source_leaves_the_error_and_no_stuck_thread(tmp_path: Path) -> None:
    def read(n: int, _state: list[int] = [0]) -> bytes:  # noqa: B006 - per-test state
        _state[0] += 1
        if _state[0] > 6:
            raise RuntimeError("unplugged")
        return b"x" * n

    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(RuntimeError, match="unplugged"):
            write_stream(fd, read, chunk=1 << 20)
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
