"""Decoding and probing: containers, rotation, and every way footage can be unreadable."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from redaction import (
    CenterFace,
    MediaError,
    PlanError,
    plan_video,
    probe,
    redact_video,
    render_plan,
)
from redaction.media import iter_frames
from redaction.synthetic import Clip, Face, make_clip, still


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def test_probe_reads_stream_facts(people_clip: Clip) -> None:
    info = probe(people_clip.path)
    assert (info.width, info.height) == (320, 240)
    assert info.frame_count == people_clip.frame_count
    assert info.fps == 25
    assert info.video_codec == "h264" and info.audio_codec == "aac" and info.has_audio


def test_frames_come_with_times_in_order(people_clip: Clip) -> None:
    frames = list(iter_frames(people_clip.path))
    assert [f.index for f in frames] == list(range(people_clip.frame_count))
    assert np.allclose([f.time for f in frames], people_clip.times, atol=1e-3)
    diff = np.abs(frames[7].image.astype(int) - people_clip.frame(7).astype(int)).mean()
    assert diff < 4


@pytest.mark.parametrize("rotation", [90, 270])
def test_rotation_matches_ffmpeg_autorotate(clip_factory: Callable[..., Clip], rotation: int,
                                            tmp_path: Path) -> None:
    clip = clip_factory("r.mp4", [Face(still(100, 150), 30)], width=200, height=300,
                        seconds=0.2, rotation=rotation, audio=False)
    raw = tmp_path / "f.raw"
    subprocess.run([_ffmpeg(), "-v", "error", "-i", str(clip.path), "-frames:v", "1", "-f",
                    "rawvideo", "-pix_fmt", "bgr24", str(raw)], check=True)
    ref = np.fromfile(raw, np.uint8).reshape(300, 200, 3)
    ours = next(iter_frames(clip.path)).image
    assert ours.shape == ref.shape
    assert np.abs(ours.astype(int) - ref.astype(int)).mean() < 2


# -- footage that cannot be read: a clear MediaError, and no output left behind -----------


def _bad_inputs(tmp: Path, clip: Clip) -> dict[str, Path]:
    data = clip.path.read_bytes()
    zero = tmp / "zero.mp4"
    zero.write_bytes(b"")
    garbage = tmp / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(3).bytes(50_000))
    header = tmp / "header_corrupt.mp4"
    header.write_bytes(b"\0" * 4096 + data[4096:])
    truncated_moov = tmp / "truncated_moov_at_end.mp4"
    subprocess.run([_ffmpeg(), "-v", "error", "-i", str(clip.path), "-c", "copy",
                    str(tmp / "plain.mp4")], check=True)
    plain = (tmp / "plain.mp4").read_bytes()
    truncated_moov.write_bytes(plain[:len(plain) // 2])
    truncated = tmp / "truncated.mp4"
    subprocess.run([_ffmpeg(), "-v", "error", "-i", str(clip.path), "-c", "copy", "-movflags",
                    "+faststart", str(tmp / "fs.mp4")], check=True)
    fs = (tmp / "fs.mp4").read_bytes()
    truncated.write_bytes(fs[:len(fs) // 2])
    audio_only = tmp / "audio_only.m4a"
    subprocess.run([_ffmpeg(), "-v", "error", "-i", str(clip.path), "-vn", "-c:a", "copy",
                    str(audio_only)], check=True)
    return {"zero-length": zero, "not media": garbage, "corrupt header": header,
            "truncated (index at end)": truncated_moov, "truncated (index at start)": truncated,
            "no video stream": audio_only, "missing": tmp / "nope.mp4"}


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bad")
    clip = make_clip(tmp / "good.mp4", [Face(still(160, 120), 30)], seconds=2.0)
    return _bad_inputs(tmp, clip)


@pytest.mark.parametrize("kind", ["zero-length", "not media", "corrupt header",
                                  "truncated (index at end)", "truncated (index at start)",
                                  "no video stream", "missing"])
def test_bad_input_is_a_clear_error_with_no_partial_output(
        bad_inputs: dict[str, Path], kind: str, tmp_path: Path, detector: CenterFace) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError) as info:
        redact_video(bad_inputs[kind], out, detector=detector)
    assert str(bad_inputs[kind].name) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the output nor a .partial file


def test_bad_input_fails_planning_too(bad_inputs: dict[str, Path], detector: CenterFace) -> None:
    with pytest.raises(MediaError, match="no video stream"):
        plan_video(bad_inputs["no video stream"], detector=detector)
    with pytest.raises(MediaError, match="zero-length"):
        probe(bad_inputs["zero-length"])


def test_render_of_truncated_footage_leaves_nothing(bad_inputs: dict[str, Path],
                                                   people_clip: Clip, tmp_path: Path,
                                                   detector: CenterFace) -> None:
    plan = plan_video(people_clip.path, detector=detector)
    out = tmp_path / "out.mp4"
    with pytest.raises((MediaError, PlanError)):
        render_plan(bad_inputs["truncated (index at start)"], plan, out)
    assert list(tmp_path.iterdir()) == []
