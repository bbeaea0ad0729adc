"""Cutting frames out of recordings: the smart cut (stream copy with re-encoded edges) and
its fallback, a full re-encode, written to one H.264/AAC MP4.

This is the media half of an incident clip (:mod:`redaction.clips` holds the vault half:
which recordings, custody, provenance, storing). Given each source recording decrypted to a
file, :func:`analyse` finds the frames of the window from packet times alone, and
:func:`write_clip` writes them: per piece, the head and tail re-encoded (libx264) and the
whole GOPs between copied bit for bit, all joined in one MPEG-TS stream and remuxed to MP4,
then decoded again to check that it holds exactly the frames planned; any doubt re-encodes
the whole window instead (method ``reencode``). The method chosen is returned, for the
provenance.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from vault import Recording
from vault.errors import InvalidInput

from .errors import EncodeError, MediaError

__all__ = ["CRF", "METHOD_REENCODE", "METHOD_SMART", "PRESET", "Piece", "analyse", "seconds",
           "write_clip"]

#: The clip's method, as recorded in its provenance.
METHOD_SMART = "stream-copy+edge-reencode"
METHOD_REENCODE = "reencode"

_TB = Fraction(1, 90_000)  # MPEG-TS clock: every intermediate time is in these ticks
CRF = 18  # edges are re-encoded close to visually lossless
PRESET = "veryfast"
_AAC_BIT_RATE = 128_000


# --- planning ---------------------------------------------------------------------------------


@dataclass
class Piece:
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


def seconds(delta: dt.timedelta) -> Fraction:
    """``delta`` in seconds, exact to the microsecond (a timedelta's own resolution)."""
    return Fraction(delta // dt.timedelta(microseconds=1), 1_000_000)


def _timebase(item: Any) -> Fraction:
    if item.time_base is None:
        raise MediaError("a stream or frame without a time base")
    return Fraction(item.time_base)


def _start_time(container: Any) -> Fraction:
    return Fraction(0) if container.start_time is None else Fraction(container.start_time, av.time_base)


def analyse(recording: Recording, path: Path, base: dt.datetime, lo: Fraction,
             hi: Fraction) -> Piece | None:
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
        piece = Piece(
            recording=recording, path=path,
            offset=seconds(recording.captured_start - base),
            codec=str(vs.codec_context.name), width=int(vs.codec_context.width),
            height=int(vs.codec_context.height), fps=fps,
            frames=[t for t in times if lo <= t < hi], keyframes=sorted(keys),
            file_end=times[-1] + step, has_audio=bool(container.streams.audio),
        )
    return piece if piece.frames else None


def _plan_smart(piece: Piece, hi: Fraction) -> None:
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
            enc.options = {"preset": PRESET, "crf": str(CRF), "bf": "0"}
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


def _copy_range(piece: Piece, start: Fraction, stop: Fraction, out: _VideoOut) -> None:
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


def _reorder_delay(pieces: Sequence[Piece]) -> int:
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


def _write_video(pieces: Sequence[Piece], ts: Path, smart: bool) -> int:
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


def _write_audio(pieces: Sequence[Piece], path: Path, base: Fraction) -> bool:
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


def _assemble(pieces: Sequence[Piece], work: Path, base: Fraction, smart: bool) -> tuple[Path, int]:
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


def write_clip(
    pieces: Sequence[Piece], work: Path, *, method: str, stop: Fraction
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
