"""Probe a file with PyAV (libavformat): is it media, what is in it, when was it captured.

Only containers and packets are read, nothing is decoded, so probing costs a read of the
file's index (and, for MP4/MOV, one pass over the packet table), not a decode.

Refusals (:class:`~ingest.errors.NotMedia`), each with a reason an operator can act on:

1. an empty file (0 bytes);
2. a file libavformat cannot open as any container ("not a media file");
3. an MP4/MOV whose index (``moov``) is missing: the write was cut off before the end;
4. a container with no audio or video stream;
5. an MP4/MOV whose media data ends before its index says it does (truncated after a
   fast-start index): fewer packets on disk than the index lists;
6. a WAV (RIFF/RF64) whose header declares more bytes than the file holds: a device wrote the
   header with the final sizes and was cut off (or is still writing). libavformat plays such
   a file happily, so without this check half a recording would pass.

:func:`incomplete_reason` is the cheap structural part of these checks (headers and box sizes
only, no demuxing). The dock asks it before taking a file, so a file that *looks* cut off but
was written to recently is treated as still being written, not refused.

A refusal leaves the file where it is; the source decides where it goes (ingest/dock.py moves
it aside with the reason written beside it).
"""

from __future__ import annotations

import datetime as dt
import os
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vault.storage.catalog import MediaKind

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
    # 6. a RIFF header promising more than the file holds (libavformat would not notice)
    riff = incomplete_reason(path)
    if riff is not None and _is_wav(path) and not riff.startswith(_UNFINALISED):
        raise NotMedia(label, f"truncated: {riff}")
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


def _is_wav(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(12)
    return head[:4] in _RIFF_IDS and head[8:12] == b"WAVE"


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


# -- structural completeness (headers only) ---------------------------------------------------

# RIFF/RF64 and ISO BMFF (MP4/MOV/3GP/M4A) box headers: sizes are big enough to read cheaply.
_RIFF_IDS = (b"RIFF", b"RF64")
_BMFF_TOP = {
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"moof", b"mfra", b"meta",
    b"pdin", b"styp", b"sidx", b"prft", b"emsg",
}
# An RF64 file and a streaming writer's placeholder both put 0xFFFFFFFF (or 0) in a 32-bit
# size until the end of the recording: the header is not final yet.
_PLACEHOLDERS = (0, 0xFFFFFFFF)
_UNFINALISED = "header not finalised"


def incomplete_reason(path: Path | int) -> str | None:
    """Why a file looks cut off or still being written, from its headers; None if it does not.

    ``path`` is a path or an open file descriptor (read with ``pread``, so a caller holding a
    lease on the file does not open it a second time). Checks (structure only, small reads):

    1. WAV (RIFF/RF64): the RIFF size and the ``data`` chunk size are set (not a writer's
       placeholder) and fit in the file;
    2. MP4/MOV (ISO BMFF): every top-level box fits in the file, and an index (``moov``) is
       present (a file still being written by a moov-at-end muxer has none yet).

    Other containers (MPEG-TS, MP3...) declare no size and return None. Raises nothing: an
    unreadable file returns None and the probe reports it.
    """
    if isinstance(path, int):
        return _reason_fd(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        return _reason_fd(fd)
    finally:
        os.close(fd)


def _reason_fd(fd: int) -> str | None:
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, 12, 0)
        if len(head) >= 12 and head[:4] in _RIFF_IDS and head[8:12] == b"WAVE":
            return _riff_reason(fd, size)
        if len(head) >= 8 and head[4:8] in _BMFF_TOP:
            return _bmff_reason(fd, size)
    except (OSError, struct.error):
        return None
    return None


def _riff_reason(fd: int, size: int) -> str | None:
    head = os.pread(fd, 12, 0)
    if len(head) < 12 or head[:4] not in _RIFF_IDS or head[8:12] != b"WAVE":
        return None
    riff_size = int(struct.unpack("<I", head[4:8])[0])
    data_size: int | None = None
    data_at = 0
    ds64: tuple[int, int] | None = None
    pos = 12
    while pos + 8 <= size:
        chunk = os.pread(fd, 8, pos)
        if len(chunk) < 8:
            break
        cid, csize = chunk[:4], int(struct.unpack("<I", chunk[4:8])[0])
        if cid == b"ds64":
            body = os.pread(fd, 16, pos + 8)
            if len(body) == 16:
                ds64 = struct.unpack("<QQ", body)
        if cid == b"data":
            data_size, data_at = csize, pos + 8
            break
        pos += 8 + csize + (csize & 1)  # chunks are padded to even sizes
    if head[:4] == b"RF64" and ds64 is not None:
        riff_size = ds64[0]
        if data_size == 0xFFFFFFFF:
            data_size = ds64[1]
    elif riff_size in _PLACEHOLDERS:
        return f"{_UNFINALISED}: the RIFF size is a placeholder ({riff_size:#x})"
    if riff_size + 8 > size:
        return f"the RIFF header declares {riff_size + 8} bytes; the file holds {size}"
    if data_size is None:
        return "no data chunk yet"
    if data_size in _PLACEHOLDERS and head[:4] == b"RIFF":
        return f"{_UNFINALISED}: the data chunk size is a placeholder ({data_size:#x})"
    if data_at + data_size > size:
        return f"the data chunk declares {data_size} bytes; the file holds {size - data_at}"
    return None


def _bmff_reason(fd: int, size: int) -> str | None:
    boxes: list[bytes] = []
    pos = 0
    while pos + 8 <= size:
        header = os.pread(fd, 16, pos)
        box_size, kind = struct.unpack(">I4s", header[:8])
        name = kind.decode("latin-1")
        if box_size == 1:
            if len(header) < 16:
                return f"the {name!r} box header is cut off"
            box_size = struct.unpack(">Q", header[8:16])[0]
        elif box_size == 0:
            # "Extends to the end of the file": a muxer's placeholder until it closes the file.
            boxes.append(kind)
            if kind == b"mdat" and b"moov" not in boxes:
                return "media data still open (mdat size not written yet, no moov index)"
            pos = size
            break
        if box_size < 8:
            return f"damaged box header at byte {pos}"
        boxes.append(kind)
        if pos + box_size > size:
            return f"the {name!r} box at byte {pos} declares {box_size} bytes; the file holds {size - pos}"
        pos += box_size
    if pos < size:
        return f"{size - pos} stray bytes after the last box (a box header is cut off)"
    if b"moov" not in boxes:
        return "no moov index yet"
    return None


__all__ = ["MediaInfo", "incomplete_reason", "probe"]
