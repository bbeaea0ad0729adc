"""Incident clips: "camera 3, 14:32 to 14:40" cut from the segments that cover it.

An officer names a source and a capture window; the clip is assembled from every recording of
that source whose capture overlaps the window, across segment boundaries, and stored as a
derived recording with provenance (each source's id, SHA-256 and the offsets used, the window,
the method, the software version) and a ``clip.assembled`` custody event. Each source's
decryption is a ``clip.cut`` custody event with the officer's purpose.

Which frames: a source frame captured at ``T`` (the recording's ``captured_start`` plus the
frame's time from the container start) is in the clip when ``start <= T < end``. So the first
frame is at most one frame interval after ``start`` and the last at most one before ``end``.
The clip's clock starts at its first frame; a gap between recordings stays a gap in time.

How (method ``stream-copy+edge-reencode``), per source recording:

    frames in window:   a .... K1 ================== K2 .... b
                        |head  |   stream copy      | tail |
                        re-encode (libx264)          re-encode

``K1`` is the first keyframe at or after the window's first frame and ``K2`` the last keyframe
(or the end of the file) with everything before it inside the window. The untouched H.264
packets between them are copied bit for bit; only the head and tail are re-encoded, so the clip
starts and ends on the requested frames without re-encoding the hour around them. All parts go
into one MPEG-TS stream (Annex B, so every part carries its own SPS/PPS in band), audio is cut
sample-exactly and re-encoded to AAC, and the result is remuxed to an MP4 with the index at the
front (``faststart``).

Fallback (method ``reencode``): the smart path needs H.264 sources of one picture size and
monotonic timestamps at each join; when a source is something else (HEVC, MJPEG) or the
assembled file does not decode to exactly the frames planned, the whole window is re-encoded
instead. The method used is in the provenance. Either way the clip is H.264/AAC MP4.

Plaintext exists only in a spool directory for the duration of the call and is removed whatever
happens. Audio-only sources are refused (InvalidInput): download the recording instead.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from sqlalchemy import or_, select

from vault import Actor, MediaKind, NotFound, Purpose, Recording, Vault
from vault.capture import Capture
from vault.errors import InvalidInput

from .errors import EncodeError, MediaError
from .pipeline import software_version

__all__ = [
    "CLIP_ASSEMBLED",
    "CLIP_CUT",
    "MAX_WINDOW",
    "METHOD_REENCODE",
    "METHOD_SMART",
    "IncidentClip",
    "assemble_clip",
    "clip_sources",
]

#: The longest window one clip may span.
MAX_WINDOW = dt.timedelta(hours=2)
METHOD_SMART = "stream-copy+edge-reencode"
METHOD_REENCODE = "reencode"
#: Custody actions (dotted extension names, see vault.ledger.custody.parse_action).
CLIP_CUT = "clip.cut"  # a source recording decrypted to cut a clip from it
CLIP_ASSEMBLED = "clip.assembled"  # the clip stored as a derived recording

_TB = Fraction(1, 90_000)  # MPEG-TS clock: every intermediate time is in these ticks
_CRF = 18  # edges are re-encoded close to visually lossless
_PRESET = "veryfast"
_AAC_BIT_RATE = 128_000


@dataclass(frozen=True)
class IncidentClip:
    """A clip stored in the vault: the derived recording, how it was made, its frame count."""

    recording: Recording
    method: str
    frame_count: int
    source_ids: tuple[str, ...]


def clip_sources(vault: Vault, source_id: str, start: dt.datetime, end: dt.datetime) -> list[Recording]:
    """The live original recordings of ``source_id`` whose capture overlaps [start, end),
    oldest first (derived copies, earlier clips included, are never cut again)."""
    query = (
        select(Recording)
        .where(
            Recording.source_id == source_id,
            Recording.deleted_at.is_(None),
            Recording.parent_id.is_(None),
            Recording.captured_start < end,
            # A recording without an end time is taken to last until the next check (probe).
            or_(Recording.captured_end.is_(None), Recording.captured_end > start),
        )
        .order_by(Recording.captured_start, Recording.id)
    )
    with vault.sessions() as session:
        return list(session.scalars(query))


# --- planning ---------------------------------------------------------------------------------


@dataclass
class _Piece:
    """One source recording's share of the clip, in its own container clock (seconds)."""

    recording: Recording
    path: Path
    offset: Fraction  # the recording's captured_start, in seconds after the clip's origin base
    codec: str
    width: int
    height: int
    fps: Fraction
    frames: list[Fraction]  # display times of the frames in the window
    keyframes: list[Fraction]  # display times of every keyframe in the file
    file_end: Fraction  # time just after the last frame of the file
    has_audio: bool
    parts: list[tuple[str, Fraction, Fraction]] = field(default_factory=list)


def _seconds(delta: dt.timedelta) -> Fraction:
    return Fraction(delta // dt.timedelta(microseconds=1), 1_000_000)


def _timebase(item: Any) -> Fraction:
    if item.time_base is None:
        raise MediaError("a stream or frame without a time base")
    return Fraction(item.time_base)


def _start_time(container: Any) -> Fraction:
    return Fraction(0) if container.start_time is None else Fraction(container.start_time, av.time_base)


def _analyse(recording: Recording, path: Path, base: dt.datetime, lo: Fraction,
             hi: Fraction) -> _Piece | None:
    """Read packet times (no decoding) and pick the frames with lo <= time < hi."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"recording {recording.id} is not a readable media file", path=path) from exc
    with container:
        if not container.streams.video:
            raise InvalidInput(
                f"recording {recording.id} has no video: audio-only footage cannot be clipped; "
                "download the recording instead")
        vs = container.streams.video[0]
        tb = _timebase(vs)
        zero = _start_time(container)
        times: list[Fraction] = []
        keys: list[Fraction] = []
        for packet in container.demux(vs):
            if packet.pts is None:
                continue
            t = packet.pts * tb - zero
            times.append(t)
            if packet.is_keyframe:
                keys.append(t)
        times.sort()
        if not times:
            raise MediaError(f"recording {recording.id} has no video frames", path=path)
        fps = Fraction(vs.average_rate or vs.guessed_rate or 25)
        step = times[-1] - times[-2] if len(times) > 1 else 1 / fps
        piece = _Piece(
            recording=recording, path=path,
            offset=_seconds(recording.captured_start - base),
            codec=str(vs.codec_context.name), width=int(vs.codec_context.width),
            height=int(vs.codec_context.height), fps=fps,
            frames=[t for t in times if lo <= t < hi], keyframes=sorted(keys),
            file_end=times[-1] + step, has_audio=bool(container.streams.audio),
        )
    return piece if piece.frames else None


def _plan_smart(piece: _Piece, hi: Fraction) -> None:
    """Split the piece into head (encode), middle (copy) and tail (encode)."""
    first = piece.frames[0]
    k1 = next((k for k in piece.keyframes if k >= first), None)
    # K2: the latest cut point whose preceding frames all lie in the window.
    ends = [k for k in piece.keyframes if k1 is not None and k1 < k <= hi]
    if k1 is not None and piece.file_end <= hi:  # the rest of the file is in the window
        ends.append(piece.file_end)
    if k1 is None or not ends:
        piece.parts = [("encode", first, piece.frames[-1])]
        return
    k2 = max(ends)
    parts: list[tuple[str, Fraction, Fraction]] = []
    if first < k1:
        parts.append(("encode", first, max(t for t in piece.frames if t < k1)))
    parts.append(("copy", k1, k2))
    tail = [t for t in piece.frames if t >= k2]
    if tail:
        parts.append(("encode", tail[0], tail[-1]))
    piece.parts = parts


# --- writing ----------------------------------------------------------------------------------


class _SmartCutFailed(Exception):
    """The stream-copy assembly cannot be done or did not verify; re-encode instead."""


class _VideoOut:
    """One MPEG-TS video stream fed with copied packets and with re-encoded runs."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, delay: int) -> None:
        self.container = av.open(str(path), mode="w", format="mpegts")
        self.stream = self.container.add_stream("libx264", rate=fps)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = _TB
        self.width, self.height, self.fps = width, height, fps
        self.delay = delay  # ticks dts runs behind pts (the copied parts' reorder delay)
        self.encoder: Any = None
        self.last_dts: int | None = None
        self.frames = 0

    def _mux(self, packet: Any, pts: int, dts: int) -> None:
        if self.last_dts is not None and dts <= self.last_dts:
            raise _SmartCutFailed(f"timestamps do not rise at a join ({dts} after {self.last_dts})")
        self.last_dts = dts
        packet.stream = self.stream
        packet.time_base = _TB
        packet.pts, packet.dts = pts + self.delay, dts + self.delay
        self.container.mux(packet)

    def copy(self, packet: Any, pts: int, dts: int) -> None:
        self._mux(packet, pts, dts)
        self.frames += 1

    def encode(self, frame: Any, pts: int) -> None:
        if self.encoder is None:
            enc = av.CodecContext.create("libx264", "w")
            enc.width, enc.height = self.width, self.height
            enc.pix_fmt = "yuv420p"
            enc.time_base = _TB
            enc.framerate = self.fps
            # No B-frames: dts == pts, so an encoded run joins a copied one without reordering.
            enc.options = {"preset": _PRESET, "crf": str(_CRF), "bf": "0"}
            self.encoder = enc
        image = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        image.pts = pts
        image.time_base = _TB
        for packet in self.encoder.encode(image):
            self._mux(packet, int(packet.pts), int(packet.pts) - self.delay)
        self.frames += 1

    def end_run(self) -> None:
        """Flush the current encoder; the next encoded run starts a new IDR with SPS/PPS."""
        if self.encoder is not None:
            for packet in self.encoder.encode(None):
                self._mux(packet, int(packet.pts), int(packet.pts) - self.delay)
            self.encoder = None

    def close(self) -> None:
        self.end_run()
        self.container.close()


def _ticks(seconds: Fraction) -> int:
    return round(seconds / _TB)


def _decode_range(path: Path, first: Fraction, last: Fraction) -> Iterator[tuple[Fraction, Any]]:
    """Decoded frames with first <= time <= last (container clock), seeking to the keyframe
    before ``first`` rather than decoding from the top of an hour-long segment."""
    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        tb = _timebase(vs)
        zero = _start_time(container)
        target = int((first + zero) / tb)
        container.seek(target, stream=vs, backward=True, any_frame=False)
        for frame in container.decode(vs):
            if frame.pts is None:
                continue
            t = frame.pts * tb - zero
            if t < first:
                continue
            if t > last:
                break
            yield t, frame


def _copy_range(piece: _Piece, start: Fraction, stop: Fraction, out: _VideoOut) -> None:
    """Copy the packets shown in [start, stop), in decode order, as Annex B."""
    from av.bitstream import BitStreamFilterContext

    with av.open(str(piece.path)) as container:
        vs = container.streams.video[0]
        tb = _timebase(vs)
        zero = _start_time(container)
        bsf = BitStreamFilterContext("h264_mp4toannexb", vs)
        container.seek(int((start + zero) / tb), stream=vs, backward=True, any_frame=False)
        started = False
        for packet in container.demux(vs):
            if packet.pts is None or packet.dts is None:
                continue
            t = packet.pts * tb - zero
            if not started:
                if t != start or not packet.is_keyframe:
                    continue
                started = True
            if t >= stop:
                if packet.is_keyframe:
                    break  # closed GOPs: nothing after the next keyframe shows before it
                continue
            pts = _ticks(piece.offset + t)
            dts = _ticks(piece.offset + packet.dts * tb - zero)
            for filtered in bsf.filter(packet):
                out.copy(filtered, pts, dts)
        if not started:
            raise _SmartCutFailed(f"keyframe at {float(start):.3f}s not found in {piece.recording.id}")


def _reorder_delay(pieces: Sequence[_Piece]) -> int:
    """The largest pts - dts of the copied packets (0 without B-frames), in ticks."""
    delay = 0
    for piece in pieces:
        with av.open(str(piece.path)) as container:
            vs = container.streams.video[0]
            tb = _timebase(vs)
            for n, packet in enumerate(container.demux(vs)):
                if packet.pts is not None and packet.dts is not None:
                    delay = max(delay, _ticks((packet.pts - packet.dts) * tb))
                if n > 300:  # the reorder depth shows within the first GOPs
                    break
    return delay


def _write_video(pieces: Sequence[_Piece], ts: Path, smart: bool) -> int:
    """Write every piece into ``ts``; returns the number of frames written."""
    first = pieces[0]
    delay = _reorder_delay(pieces) if smart else 0
    out = _VideoOut(ts, first.width, first.height, first.fps, delay)
    try:
        for piece in pieces:
            parts = piece.parts if smart else [("encode", piece.frames[0], piece.frames[-1])]
            for kind, a, b in parts:
                if kind == "copy":
                    out.end_run()
                    _copy_range(piece, a, b, out)
                    continue
                for t, frame in _decode_range(piece.path, a, b):
                    out.encode(frame, _ticks(piece.offset + t))
                if smart:
                    out.end_run()
    finally:
        out.close()
    return out.frames


def _write_audio(pieces: Sequence[_Piece], path: Path, base: Fraction) -> bool:
    """Cut each piece's first audio track to the clip's frames, re-encoded to AAC (Matroska,
    which keeps the timestamps of any gap). Returns False when no piece has audio."""
    with_audio = [p for p in pieces if p.has_audio]
    if not with_audio:
        return False
    rate = 0
    with av.open(str(with_audio[0].path)) as c:
        rate = int(c.streams.audio[0].codec_context.sample_rate or 48_000)
        layout = "mono" if (c.streams.audio[0].codec_context.channels or 2) == 1 else "stereo"
    with av.open(str(path), mode="w", format="matroska") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = layout
        stream.bit_rate = _AAC_BIT_RATE
        tb = Fraction(1, rate)
        for piece in with_audio:
            lo = piece.frames[0]
            hi = piece.frames[-1] + (piece.frames[-1] - piece.frames[-2] if len(piece.frames) > 1
                                     else 1 / piece.fps)
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            next_sample = round((piece.offset + lo - base) * rate)
            with av.open(str(piece.path)) as c:
                zero = _start_time(c)
                src = c.streams.audio[0]
                c.seek(max(0, int((lo + zero - 1) / _timebase(src))), stream=src)
                done = False
                for frame in c.decode(src):
                    if frame.pts is None:
                        continue
                    t_in = Fraction(frame.pts) * _timebase(frame) - zero
                    for res in resampler.resample(frame):
                        t0 = (Fraction(res.pts) * Fraction(res.time_base) - zero
                              if res.pts is not None and res.time_base is not None else t_in)
                        data = res.to_ndarray()
                        times_lo = round((t0 - lo) * rate)
                        keep_from = max(0, -times_lo)
                        keep_to = min(data.shape[1], round((hi - t0) * rate))
                        if keep_to <= 0:
                            done = True
                            break
                        if keep_from >= keep_to:
                            continue
                        chunk = av.AudioFrame.from_ndarray(
                            data[:, keep_from:keep_to].copy(), format="fltp", layout=layout)
                        chunk.sample_rate = rate
                        start_sample = round((piece.offset + t0 - base) * rate) + keep_from
                        chunk.pts = max(start_sample, next_sample)
                        chunk.time_base = tb
                        next_sample = chunk.pts + chunk.samples
                        for packet in stream.encode(chunk):
                            out.mux(packet)
                    if done:
                        break
        for packet in stream.encode(None):
            out.mux(packet)
    return True


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _remux(video: Path, audio: Path | None, output: Path) -> None:
    """MPEG-TS (+ audio) -> MP4 with the index at the front, streams copied."""
    cmd = [_ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(video)]
    if audio is not None:
        cmd += ["-i", str(audio)]
    cmd += ["-map", "0:v:0"] + (["-map", "1:a:0"] if audio is not None else [])
    cmd += ["-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(output)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EncodeError(f"assembling the clip failed: {done.stderr.strip()[-500:]}")


def _decoded_frames(path: Path) -> int:
    """Decode the whole file (the "it plays" check); returns its frame count."""
    try:
        with av.open(str(path)) as container:
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            return sum(1 for _ in container.decode(vs))
    except (av.error.FFmpegError, IndexError) as exc:
        raise _SmartCutFailed(f"the assembled clip does not decode: {exc}") from exc


def _assemble(pieces: Sequence[_Piece], work: Path, base: Fraction, smart: bool) -> tuple[Path, int]:
    video, audio, output = work / "video.ts", work / "audio.mka", work / "clip.mp4"
    for stale in (video, audio, output):
        stale.unlink(missing_ok=True)
    try:
        written = _write_video(pieces, video, smart)
    except av.error.FFmpegError as exc:
        if smart:
            raise _SmartCutFailed(str(exc)) from exc
        raise EncodeError(f"encoding the clip failed: {exc}") from exc
    has_audio = _write_audio(pieces, audio, base)
    _remux(video, audio if has_audio else None, output)
    expected = sum(len(p.frames) for p in pieces)
    decoded = _decoded_frames(output)
    if written != expected or decoded != expected:
        message = f"clip has {decoded} decodable frames, {expected} planned"
        if smart:
            raise _SmartCutFailed(message)
        raise EncodeError(message)
    video.unlink(missing_ok=True)
    audio.unlink(missing_ok=True)
    return output, expected


# --- the operation ----------------------------------------------------------------------------


def assemble_clip(
    vault: Vault,
    source_id: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    actor: Actor,
    purpose: Purpose,
    method: str = "auto",
    max_window: dt.timedelta = MAX_WINDOW,
) -> IncidentClip:
    """Cut [start, end) of ``source_id``'s footage into one clip, stored as a derived recording.

    ``method``: ``"auto"`` (stream copy with re-encoded edges, falling back to a full
    re-encode when that cannot be done or does not verify) or ``"reencode"``.
    Returns the stored clip. Raises InvalidInput (naive times, end <= start, a window longer
    than ``max_window``, an audio-only source, an unknown method), NotFound (no footage of
    the source in the window), Shredded, MediaError, EncodeError. Nothing is stored on error
    and the spool is left clean.
    """
    _check_window(start, end, method=method, max_window=max_window)
    recordings = _clip_recordings(vault, source_id, start, end)
    spool = vault.settings.spool_dir
    spool.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="clip-", dir=spool))
    try:
        pieces, origin = _cut(vault, source_id, recordings, work, start, end, actor=actor,
                              purpose=purpose)
        output, frames, used, fallback = _encode(
            pieces, work, method=method, stop=_seconds(end - start) - origin)
        last = pieces[-1]
        first_at = start + dt.timedelta(seconds=float(origin))
        last_at = start + dt.timedelta(
            seconds=float(origin + last.offset + last.frames[-1] + 1 / last.fps))
        provenance = _provenance(source_id, start, end, pieces, method=used, frames=frames,
                                 first_at=first_at, fallback=fallback)
        stamp = start.strftime("%Y%m%dT%H%M%SZ")
        clip = vault.put_file(
            output,
            Capture(
                source_id=source_id,
                captured_at=first_at,
                captured_end=last_at,
                media_kind=MediaKind.VIDEO,
                original_name=f"{source_id}-{stamp}-clip.mp4",
                parent_id=pieces[0].recording.id,
                derived_from=[p.recording.id for p in pieces],
                provenance=provenance,
                details={
                    "sources": [p.recording.id for p in pieces],
                    "window": [start.isoformat(), end.isoformat()],
                    "method": used,
                    "frames": frames,
                    "purpose": purpose.purpose,
                    **({"reference": purpose.reference} if purpose.reference else {}),
                },
                action=CLIP_ASSEMBLED,
            ),
            actor=actor,
        )
        return IncidentClip(recording=clip, method=used, frame_count=frames,
                            source_ids=tuple(p.recording.id for p in pieces))
    finally:
        # Plaintext leaves the spool as soon as the clip is stored or has failed.
        shutil.rmtree(work, ignore_errors=True)


def _check_window(
    start: dt.datetime, end: dt.datetime, *, method: str, max_window: dt.timedelta
) -> None:
    # Raises InvalidInput for a window or method assemble_clip cannot cut.
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("clip window times must include a timezone (e.g. 2026-11-25T14:32:00Z)")
    if end <= start:
        raise InvalidInput(f"the clip window must end after it starts ({start.isoformat()} to {end.isoformat()})")
    if end - start > max_window:
        raise InvalidInput(
            f"the clip window is {end - start}; at most {max_window} may be clipped at once")
    if method not in ("auto", METHOD_REENCODE):
        raise InvalidInput(f"unknown clip method {method!r}: use 'auto' or 'reencode'")


def _clip_recordings(
    vault: Vault, source_id: str, start: dt.datetime, end: dt.datetime
) -> list[Recording]:
    # The recordings the window overlaps; NotFound for none, InvalidInput for audio-only ones.
    recordings = clip_sources(vault, source_id, start, end)
    if not recordings:
        raise NotFound(f"no footage from source {source_id} between {_window(start, end)}")
    audio_only = [r.id for r in recordings if r.media_kind == MediaKind.AUDIO]
    if audio_only:
        raise InvalidInput(
            f"source {source_id} has audio-only recordings in the window ({', '.join(audio_only)}); "
            "clips are cut from video: download the recordings instead")
    return recordings


def _window(start: dt.datetime, end: dt.datetime) -> str:
    return f"{start.isoformat()} to {end.isoformat()}"


def _cut(
    vault: Vault, source_id: str, recordings: Sequence[Recording], work: Path,
    start: dt.datetime, end: dt.datetime, *, actor: Actor, purpose: Purpose,
) -> tuple[list[_Piece], Fraction]:
    """Decrypt each recording into ``work`` (a ``clip.cut`` event each) and find the frames
    of the window in it; returns the pieces, on the clip's clock (0 at its first frame), and
    that first frame's time after ``start``. Raises NotFound when no recording has a frame
    in the window."""
    pieces: list[_Piece] = []
    covered = Fraction(0)  # a later (overlapping) recording starts where the last ended
    for n, recording in enumerate(recordings):
        suffix = Path(recording.original_name or "").suffix or ".mp4"
        path = work / f"source-{n}{suffix}"
        vault.export_file(recording.id, path, actor=actor, purpose=purpose, action=CLIP_CUT)
        # Times in the plan are seconds after the window's start.
        offset = _seconds(recording.captured_start - start)
        lo = max(Fraction(0), covered) - offset
        hi = _seconds(end - start) - offset
        piece = _analyse(recording, path, start, lo, hi)
        if piece is None:
            continue
        pieces.append(piece)
        covered = piece.offset + piece.frames[-1] + Fraction(1, 1_000_000)
    if not pieces:
        raise NotFound(f"no footage from source {source_id} between "
                       f"{_window(start, end)} (the recordings that overlap it have no frames "
                       "there)")
    origin = pieces[0].offset + pieces[0].frames[0]
    for piece in pieces:  # the clip's clock: 0 at its first frame
        piece.offset -= origin
    return pieces, origin


def _encode(
    pieces: Sequence[_Piece], work: Path, *, method: str, stop: Fraction
) -> tuple[Path, int, str, str | None]:
    """Write the clip: stream copy with re-encoded edges where ``method`` is ``auto`` and
    every piece is H.264 of one size, else (or when the smart cut fails) a full re-encode.
    ``stop`` is the window's end on the clip's clock. Returns the file, its frame count, the
    method used and why the smart cut fell back, if it did."""
    smart = method == "auto" and all(
        p.codec == "h264" and (p.width, p.height) == (pieces[0].width, pieces[0].height)
        for p in pieces)
    used = METHOD_SMART if smart else METHOD_REENCODE
    if smart:
        for piece in pieces:
            _plan_smart(piece, stop - piece.offset)
        if not any(kind == "copy" for p in pieces for kind, _, _ in p.parts):
            used = METHOD_REENCODE  # the window lies inside one GOP: nothing to copy
    try:
        output, frames = _assemble(pieces, work, Fraction(0), used == METHOD_SMART)
    except _SmartCutFailed as why:
        output, frames = _assemble(pieces, work, Fraction(0), False)
        return output, frames, METHOD_REENCODE, str(why)
    return output, frames, used, None


def _provenance(
    source_id: str, start: dt.datetime, end: dt.datetime, pieces: Sequence[_Piece], *,
    method: str, frames: int, first_at: dt.datetime, fallback: str | None,
) -> dict[str, object]:
    # What the clip was made from and how, stored with it (docs/redaction.md).
    step = 1 / pieces[-1].fps
    sources = [
        {
            "id": p.recording.id,
            "sha256": p.recording.sha256,
            "captured_start": p.recording.captured_start.isoformat(),
            "from_ms": int((p.frames[0]) * 1000),
            "to_ms": int((p.frames[-1] + step) * 1000),
            "frames": len(p.frames),
            "parts": [[kind, int(a * 1000), int(b * 1000)] for kind, a, b in p.parts]
            if method == METHOD_SMART else [["encode", int(p.frames[0] * 1000),
                                             int(p.frames[-1] * 1000)]],
        }
        for p in pieces
    ]
    provenance: dict[str, object] = {
        "kind": "clip",
        "source_id": source_id,
        "sources": sources,
        "window": [start.isoformat(), end.isoformat()],
        "first_frame_at": first_at.isoformat(),
        "method": method,
        "frame_count": frames,
        "software_version": software_version(),
        "parameters": {"codec": "libx264", "crf": _CRF, "preset": _PRESET,
                       "audio": "aac" if any(p.has_audio for p in pieces) else None},
    }
    if fallback:
        provenance["fallback_reason"] = fallback
    return provenance
