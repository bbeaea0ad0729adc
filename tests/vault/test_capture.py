"""The one argument footage enters with: :class:`vault.capture.Capture` (issue #14 item 4)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import io
import os
from pathlib import Path

import pytest

from vault import Capture, MediaKind
from vault.actors import Actor, Role
from vault.errors import InvalidInput
from vault.vault import Vault

ACTOR = Actor(user="officer-1", role=Role.ASB_OFFICER, organisation="Housing")
T0 = dt.datetime(2026, 11, 1, 14, 32, tzinfo=dt.UTC)


def test_put_stream_takes_one_capture_not_seventeen_keywords() -> None:
    """Issue #14 item 4: put_stream had 17 keyword arguments; what is known about the footage
    is now one Capture, and only who stores it (the actor) stands beside it."""
    for method in (Vault.put_stream, Vault.put_file):
        params = list(inspect.signature(method).parameters)
        assert params[2:] == ["capture", "actor"], params


def test_put_file_fills_what_the_file_says(vault: Vault, tmp_path: Path) -> None:
    """A file's modification time, extension and name fill a capture that leaves them out;
    what the caller states wins."""
    path = tmp_path / "door.mp4"
    path.write_bytes(os.urandom(100))
    mtime = dt.datetime(2026, 10, 30, 9, 0, tzinfo=dt.UTC)
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    rec = vault.put_file(path, Capture(source_id="cam-01"), actor=ACTOR)
    assert rec.captured_start.replace(tzinfo=dt.UTC) == mtime
    assert rec.media_kind is MediaKind.VIDEO and rec.original_name == "door.mp4"

    stated = Capture(source_id="cam-02", captured_at=T0, media_kind=MediaKind.OTHER,
                     original_name="as-sent.bin")
    rec = vault.put_file(path, stated, actor=ACTOR)
    assert rec.captured_start.replace(tzinfo=dt.UTC) == T0
    assert (rec.media_kind, rec.original_name) == (MediaKind.OTHER, "as-sent.bin")


def test_put_stream_refuses_a_capture_without_a_time_and_stores_nothing(vault: Vault) -> None:
    """A stream says nothing about when it was captured: a capture without a time is refused
    with an actionable message before anything is uploaded."""
    with pytest.raises(InvalidInput, match="capture time is required"):
        vault.put_stream(io.BytesIO(b"x" * 10), Capture(source_id="cam-01"), actor=ACTOR)
    with pytest.raises(InvalidInput, match="timezone"):
        vault.put_stream(io.BytesIO(b"x" * 10),
                         Capture(source_id="cam-01", captured_at=T0.replace(tzinfo=None)),
                         actor=ACTOR)
    assert vault.recordings() == [] and vault.orphans(older_than=dt.timedelta(0)) == []


def test_a_capture_is_not_changed_by_storing_it(vault: Vault) -> None:
    """put_stream settles the receipt time and flags a future capture on its own copy: the
    caller's Capture (frozen) can be reused for the next file unchanged."""
    capture = Capture(source_id="cam-01", captured_at=T0 + dt.timedelta(days=3650))
    before = dataclasses.asdict(capture)
    rec = vault.put_stream(io.BytesIO(os.urandom(64)), capture, actor=ACTOR)
    assert rec.clock_flagged
    assert dataclasses.asdict(capture) == before
