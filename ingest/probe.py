"""Probe a file with PyAV (libavformat): is it media, what is in it, when was it captured.

Only containers and packets are read, nothing is decoded, so probing costs a read of the
file's index (and, for MP4/MOV, one pass over the packet table), not a decode.

Refusals (:class:`~ingest.errors.NotMedia`), each with a reason an operator can act on:

1. an empty file (0 bytes);
2. a file libavformat cannot open as any container ("not a media file");
3. an MP4/MOV whose index (``moov``) is missing: the write was cut off before the end;
4. a container with no audio or video stream;
5. an MP4/MOV whose media data ends before its index says it does (truncated after a
   fast-start index): fewer packets on disk than the index lists.

A refusal leaves the file where it is; the source decides where it goes (ingest/dock.py moves
it aside with the reason written beside it).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vault.catalog import MediaKind

from .errors import NotMedia

# Containers whose index lists every packet, so a packet count below it means truncation.
_INDEXED = ("mov", "mp4", "m4a", "3gp", "matroska")


@dataclass(frozen=True)
class MediaInfo:
    """What a probe found in a media file."""

    container: str
    media_kind: MediaKind
    duration_s: float | None
    streams: list[dict[str, Any]] = field(default_factory=list)
    creation_time: dt.datetime | None = None  # the container's own capture-time tag, if any
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def video(self) -> dict[str, Any] | None:
        """The first video stream's description, or None."""
        return next((s for s in self.streams if s["type"] == "video"), None)

    @property
    def audio(self) -> dict[str, Any] | None:
        """The first audio stream's description, or None."""
        return next((s for s in self.streams if s["type"] == "audio"), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (stored as the recording's ``media_info``)."""
        out: dict[str, Any] = {
            "container": self.container,
            "media_kind": self.media_kind.value,
            "duration_s": self.duration_s,
            "streams": self.streams,
        }
        video = self.video
        if video:
            out.update(
                video_codec=video["codec"],
                width=video.get("width"),
                height=video.get("height"),
                fps=video.get("fps"),
            )
        audio = self.audio
        if audio:
            out.update(audio_codec=audio["codec"], sample_rate=audio.get("sample_rate"))
        if self.creation_time:
            out["creation_time"] = self.creation_time.isoformat()
        return out


def _float(value: Fraction | float | int | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _parse_tag_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)  # ISO BMFF stores UTC
    # 1904-01-01 / 1970-01-01 are what cameras write when their clock was never set.
    if value.year < 1990:
        return None
    return value.astimezone(dt.timezone.utc)


def probe(path: Path, *, name: str | None = None) -> MediaInfo:
    """Probe ``path``; return its MediaInfo.

    ``name`` is the file's original name, used in messages. Raises NotMedia with the reason
    (see the module docstring for the checks, numbered).
    """
    path = Path(path)
    label = name or path.name
    # 1. empty
    try:
        size = os.stat(path).st_size
    except OSError as error:
        raise NotMedia(label, f"cannot read the file: {error.strerror}") from None
    if size == 0:
        raise NotMedia(label, "empty file (0 bytes)")
    # 2. / 3. not a container, or an MP4 cut off before its index
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as error:
        raise NotMedia(label, _open_reason(path, error)) from None
    with container:
        fmt = container.format.name
        streams: list[dict[str, Any]] = []
        kinds: set[str] = set()
        for stream in container.streams:
            if stream.type not in ("video", "audio"):
                continue
            kinds.add(stream.type)
            ctx: Any = stream.codec_context  # video or audio context; PyAV types it as the base
            entry: dict[str, Any] = {
                "index": stream.index,
                "type": stream.type,
                "codec": ctx.name if ctx is not None else None,
                "duration_s": _float(stream.duration * stream.time_base)
                if stream.duration is not None and stream.time_base is not None
                else None,
            }
            if stream.type == "video":
                entry.update(width=ctx.width or None, height=ctx.height or None)
                rate = stream.average_rate or stream.base_rate
                entry["fps"] = _float(rate) if rate else None
            else:
                entry.update(sample_rate=ctx.sample_rate or None, channels=ctx.channels or None)
            if stream.frames:
                entry["frames"] = stream.frames
            streams.append(entry)
        # 4. no audio or video
        if not kinds:
            raise NotMedia(label, f"no audio or video stream in this {fmt} file")
        duration = (
            _float(Fraction(container.duration, av.time_base)) if container.duration else None
        )
        tags = {str(k): str(v) for k, v in (container.metadata or {}).items()}
        # 5. index promises more than the file holds
        if any(f in fmt.split(",") for f in _INDEXED):
            _check_complete(container, streams, label)
        if duration is None:
            durations = [s["duration_s"] for s in streams if s.get("duration_s")]
            duration = max(durations) if durations else None
    creation = _parse_tag_time(tags.get("creation_time") or tags.get("date"))
    return MediaInfo(
        container=fmt,
        media_kind=MediaKind.VIDEO if "video" in kinds else MediaKind.AUDIO,
        duration_s=duration,
        streams=streams,
        creation_time=creation,
        tags={
            k: v
            for k, v in tags.items()
            if k
            in (
                "creation_time",
                "encoder",
                "make",
                "model",
                "location",
                "com.apple.quicktime.make",
                "com.apple.quicktime.model",
            )
        },
    )


def _open_reason(path: Path, error: av.FFmpegError) -> str:
    with path.open("rb") as f:
        head = f.read(12)
    if head[4:8] in (b"ftyp", b"mdat", b"free", b"wide", b"moov"):
        return "truncated or damaged MP4/MOV: its index (moov atom) is missing or unreadable"
    return f"not a media file libavformat can read ({error.strerror or type(error).__name__})"


def _check_complete(container: Any, streams: list[dict[str, Any]], label: str) -> None:
    expected = {s["index"]: s["frames"] for s in streams if s.get("frames")}
    if not expected:
        return
    seen = dict.fromkeys(expected, 0)
    try:
        for packet in container.demux():
            if packet.size and packet.stream.index in seen:
                seen[packet.stream.index] += 1
    except av.FFmpegError as error:
        raise NotMedia(
            label, f"truncated or damaged: reading packets failed ({error.strerror})"
        ) from None
    for index, frames in expected.items():
        if seen[index] < frames:
            raise NotMedia(
                label,
                f"truncated: stream {index} has {seen[index]} of the {frames} packets its index lists",
            )


__all__ = ["MediaInfo", "probe"]
