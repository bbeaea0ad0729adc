"""Probing: what is media and what is not, with a reason an operator can act on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ingest.errors import NotMedia
from ingest.probe import probe
from tests.ingest.media import copy, make_media, truncate
from vault.storage.catalog import MediaKind
from vault.errors import InvalidInput


def test_video_with_audio(clips: dict[str, Path]) -> None:
    info = probe(clips["video"])
    assert info.media_kind == MediaKind.VIDEO
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert info.video and info.video["codec"] == "h264" and info.video["width"] == 160
    assert info.audio and info.audio["codec"] == "aac"
    assert info.creation_time == dt.datetime(2026, 1, 15, 9, 30, tzinfo=dt.timezone.utc)
    assert info.to_dict()["height"] == 120


@pytest.mark.parametrize("kind", ["wav", "mp3", "m4a"])
def test_audio_only(clips: dict[str, Path], kind: str) -> None:
    info = probe(clips[kind])
    assert info.media_kind == MediaKind.AUDIO
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert info.video is None


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(NotMedia, match="empty file") as info:
        probe(tmp_path / "empty.mp4")
    assert isinstance(info.value, InvalidInput)


def test_text_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("incident notes\n" * 20)
    with pytest.raises(NotMedia, match="not a media file"):
        probe(tmp_path / "notes.txt")


def test_mp4_cut_off_before_its_index(clips: dict[str, Path], tmp_path: Path) -> None:
    clip = truncate(copy(clips["video"], tmp_path / "cut.mp4"))
    with pytest.raises(NotMedia, match="moov"):
        probe(clip)


def test_faststart_mp4_cut_off_in_its_media_data(tmp_path: Path) -> None:
    clip = make_media(tmp_path / "fs.mp4", seconds=3, extra=["-movflags", "+faststart"])
    probe(clip)  # whole: fine
    with pytest.raises(NotMedia, match="truncated: stream"):
        probe(truncate(clip, 0.7))


def test_name_is_used_in_messages(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"")
    with pytest.raises(NotMedia, match="^original.mp4: "):
        probe(tmp_path / "x", name="original.mp4")
