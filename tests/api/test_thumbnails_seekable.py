"""Thumbnail sheets decode only what they need (issue #12, thumbnails of long footage).

A sheet used to decrypt the whole recording to a spool file first (a find page asks for up to
25 sheets; an hour of footage made that minutes). It now reads through
:meth:`vault.vault.Vault.open_reader`, a seekable decrypting file PyAV seeks in: the same
pixels as before, the same single ``viewed`` event, and only the parts of the object the
demuxer reads are fetched from the store.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from api.routes.thumbnails import sprite_sheet, thumbnail_sheet
from api.deps import RequestContext
from ingest._ffmpeg import ffmpeg_exe
from tests.api.conftest import OPERATOR, World
from vault.access.identity import principal_for
from vault.actors import Purpose
from vault.capture import Capture
from vault.ledger.custody import Action
from vault.storage.catalog import MediaKind, Recording, SourceKind

PURPOSE = Purpose(purpose="investigating ASB incident", reference="ASB/1", lawful_basis="b")


def _long_video(world: World, tmp_path: Path, seconds: int) -> Recording:
    """``seconds`` of 320x240 H.264 (a keyframe every 2 s, index first), stored in the world's
    4 KiB segments."""
    media = tmp_path / "long.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size=320x240:rate=25:duration={seconds}", "-c:v", "libx264", "-preset",
         "ultrafast", "-pix_fmt", "yuv420p", "-g", "50", "-movflags", "+faststart", str(media)],
        check=True, capture_output=True, timeout=120)
    start = world.clock() - dt.timedelta(hours=2)
    with media.open("rb") as f:
        return world.vault.put_stream(f, Capture(
            source_id="cam-long", source_kind=SourceKind.CCTV, site="Riverside",
            captured_at=start, captured_end=start + dt.timedelta(seconds=seconds),
            media_kind=MediaKind.VIDEO, original_name="long.mp4"), actor=OPERATOR)


@pytest.fixture
def long_video(world: World, tmp_path: Path) -> Recording:
    return _long_video(world, tmp_path, 60)


def test_a_sheet_reads_a_small_part_of_a_long_recording_and_logs_once(
    world: World, long_video: Recording, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #12 (thumbnails decode only what they need): a 10-tile sheet of a minute of
    footage fetches under a fifth of its stored bytes from the store (it fetched all of them),
    is the same JPEG, pixel for pixel, as the sheet of the fully decrypted file, and is one
    ``viewed`` event with ``details.thumbnails``."""
    store = world.vault.store
    fetched: list[int] = []
    read_at = store.read_at

    def counting(key: str, offset: int, length: int) -> bytes:
        fetched.append(length)
        return read_at(key, offset, length)

    monkeypatch.setattr(store, "read_at", counting)
    ctx = RequestContext(vault=world.vault, principal=principal_for(world.vault, "asb"),
                         route="GET /recordings/{recording_id}/thumbnails")
    before = len(_viewed(world, long_video.id))
    sheet = thumbnail_sheet(ctx, long_video.id, tiles=10, purpose=lambda: PURPOSE)
    assert sum(fetched) < long_video.stored_size / 5, (sum(fetched), long_video.stored_size)
    events = _viewed(world, long_video.id)[before:]
    assert [e["thumbnails"] for e in events] == [10]

    monkeypatch.setattr(store, "read_at", read_at)
    whole = tmp_path / "whole.mp4"
    world.vault.export_file(long_video.id, whole, actor=OPERATOR, purpose=PURPOSE)
    assert sheet == sprite_sheet(whole, 10)


def _viewed(world: World, recording_id: str) -> list[dict[str, object]]:
    return [e.event.details for e in world.vault.ledger.events(action=Action.VIEWED.value,
                                                               limit=100_000)
            if recording_id in e.event.object_ids]
