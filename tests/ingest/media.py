"""Small media files generated on the fly with ffmpeg's lavfi sources (no media in the repo)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ingest._ffmpeg import ffmpeg_exe

_ENCODE = {
    "mp4": [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-c:a",
        "aac",
    ],
    "ts": [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-c:a",
        "aac",
    ],
    "wav": [],
    "mp3": ["-c:a", "libmp3lame"],
    "m4a": ["-c:a", "aac"],
}


def make_media(
    path: Path,
    *,
    seconds: float = 2.0,
    size: str = "160x120",
    frequency: int = 440,
    creation_time: str | None = None,
    extra: list[str] | None = None,
) -> Path:
    """Write a test clip to ``path``; the container and codecs follow its extension.

    ``.mp4``/``.ts``: a testsrc picture with a sine tone; ``.wav``/``.mp3``/``.m4a``: audio only.
    ``frequency`` makes otherwise identical clips differ.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lstrip(".").lower()
    inputs: list[str] = []
    if ext in ("mp4", "ts"):
        inputs += ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=25:duration={seconds}"]
    inputs += [
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={frequency}:sample_rate=16000:duration={seconds}",
    ]
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *inputs, *_ENCODE[ext]]
    if creation_time:
        cmd += ["-metadata", f"creation_time={creation_time}"]
    cmd += [*(extra or []), "-t", str(seconds), str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


def truncate(path: Path, keep: float = 0.6) -> Path:
    """Cut ``path`` to ``keep`` of its size, as a device unplugged mid-offload would."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def copy(src: Path, dst: Path) -> Path:
    """Copy a clip (keeping its bytes identical: a duplicate)."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return Path(dst)
