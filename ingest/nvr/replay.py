"""ONVIF replay over RTSP: one camera's recorded H.264 for a window, saved without re-encoding.

Implements the client side of the ONVIF Streaming Specification's "Playback" section (its
requirements are cited here by name: the section numbers move between versions):

1. **Requests.** ``DESCRIBE``, ``SETUP`` and ``PLAY`` each carry ``Require: onvif-replay``; a
   server that does not know the feature answers ``551 Option not supported`` (reported as
   :class:`~ingest.errors.NvrError`). Transport is RTP over the RTSP connection
   (``RTP/AVP/TCP;interleaved``), which ONVIF devices must support (RTP/RTSP/TCP) and which
   needs no port opened through a firewall. ``PLAY`` asks for the window in absolute time,
   ``Range: clock=20261124T210000.000Z-20261124T210500.000Z``, with ``Rate-Control: no`` (send
   as fast as the NVR can, not in real time: a pull is a download).
2. **Authentication.** RTSP Digest (RFC 2617, MD5, with or without ``qop=auth``) or Basic, as
   the NVR's ``WWW-Authenticate`` asks, with the ONVIF account's user and password. A second
   ``401`` is :class:`~ingest.errors.NvrAuthFailed`.
3. **Timestamps.** Each RTP packet's header extension ``0xABAC`` (the "replay header
   extension") carries the NTP time the frame was recorded, and the ``C`` (clean point), ``E``
   (end of a contiguous section), ``D`` (discontinuity: first packet after a gap) and ``T``
   (terminal: the last packet of the range) flags. Frame times come from it, never from the
   wall clock of the transfer; a stream without it is refused (it is not ONVIF replay).
4. **Frames.** RTP payloads are depacketised per RFC 6184 (single NAL unit, ``STAP-A``,
   ``FU-A``; ``packetization-mode`` 0 and 1) into access units. The stream must start at a
   keyframe to decode: frames before the first IDR frame are dropped, counted and reported
   (``waited_for_keyframe``), so a server that starts mid-GOP costs those frames, stated, instead
   of a file whose first second does not decode.
5. **Frame accuracy.** ONVIF servers start at the clean point at or before the requested start.
   The frames from that keyframe up to the start are kept (they are needed to decode) with
   negative presentation times, which the MP4 muxer turns into an edit list: players decode
   them and show the first frame at the window's start. Frames at or after the window's end are
   not kept.
6. **Resume.** Every access unit is appended to a journal beside the piece in the spool
   (``<part>.frames``) as it arrives, synced at each keyframe. When the connection drops, the
   journal is cut back to its last keyframe and ``PLAY`` asks again from that keyframe's time;
   frames the NVR sends again that the journal already holds are skipped. A killed process
   resumes the same way when the pull is run again.
7. **Gaps.** A ``D`` flag, or a jump in NTP time of more than a second beyond the frame interval,
   is a stretch the NVR holds no footage for inside the piece: reported with its times
   (:attr:`Replayed.gaps`), the frames either side kept with their true times.
8. **Saving.** The journal becomes one MP4 by a stream copy (PyAV/libavformat's MP4 muxer):
   the H.264 NAL units are written as received (length-prefixed, as MP4 stores them), never
   decoded or re-encoded.

Limits, stated: H.264 only (an H.265 recording is refused with an NvrError saying so); the video
track only (audio is not set up); streams with B-frames are not reordered (NVR recordings are
I/P; one with B-frames fails to save, with an NvrError); UDP transport and ``rtsps://`` are not
offered.

The RTSP client and RTP depacketiser (points 1 to 4) are in :mod:`ingest.nvr.rtsp_client`;
this module journals what it receives, resumes, and saves the window (points 5 to 8).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vault.plaintext import PRIVATE_FILE_MODE, private_partial

from ..errors import NvrAuthFailed, NvrError, NvrUnreachable
from .rtsp_client import (
    _CLOCK_RATE,
    _FLAG_D,
    NTP_UNIX_OFFSET,
    ONVIF_EXTENSION,
    RtspReplayClient,
    _Closed,
    _Depacketiser,
    clock_range,
    ntp_to_unix_ns,
    parse_rtp,
)

log = logging.getLogger("ingest.nvr.replay")

#: A jump in frame time this much beyond the frame interval is a gap in the recording.
GAP_S = 1.0
_JOURNAL_MAGIC = b"EVRJ1\n"
_RECORD = struct.Struct(">BqI")  # kind, unix time ns, payload length
_CONFIG, _FRAME, _KEYFRAME = 1, 2, 3


@dataclass
class Replayed:
    """What one replay of a window produced (for the report and the recording's provenance).

    ``first_frame`` and ``last_frame``: the recorded times of the first and last frame kept;
    ``preroll_frames``: frames before the window's start kept to decode from the keyframe (not
    shown); ``waited_for_keyframe``: frames dropped because the stream did not start at a
    keyframe, and ``first_keyframe`` the time of the first one kept; ``resumed_from``: the times
    a dropped connection was resumed from; ``gaps``: stretches inside the window the NVR's
    replay skipped (``D`` flag or time jump).
    """

    frames: int = 0
    preroll_frames: int = 0
    waited_for_keyframe: int = 0
    first_keyframe: dt.datetime | None = None
    first_frame: dt.datetime | None = None
    last_frame: dt.datetime | None = None
    attempts: int = 0
    resumed_from: list[dt.datetime] = field(default_factory=list)
    gaps: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    ended_by: str = ""
    rate_control: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready and custody-ready (no floats)."""

        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "protocol": "ONVIF replay over RTSP (Require: onvif-replay, Range: clock)",
            "frames": self.frames,
            "preroll_frames": self.preroll_frames,
            "waited_for_keyframe": self.waited_for_keyframe,
            "first_keyframe": iso(self.first_keyframe),
            "first_frame": iso(self.first_frame),
            "last_frame": iso(self.last_frame),
            "attempts": self.attempts,
            "resumed_from": [t.isoformat() for t in self.resumed_from],
            "gaps": [{"start": a.isoformat(), "end": b.isoformat()} for a, b in self.gaps],
            "ended_by": self.ended_by,
            "rate_control": self.rate_control,
        }


# -- times ---------------------------------------------------------------------------------


def _ns(when: dt.datetime) -> int:
    delta = when.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _from_ns(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)


# -- the journal ---------------------------------------------------------------------------


class FrameJournal:
    """Append-only record of the access units received for one piece (step 6).

    Records: ``kind`` (codec configuration, frame, keyframe), the frame's recorded time in Unix
    nanoseconds, and its bytes (Annex B). A torn last record (a killed process) is cut off when
    the journal is opened.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.config: bytes | None = None
        self.last_ns: int | None = None
        self.last_key_ns: int | None = None
        self._last_key_at: int | None = None
        self.frames = 0
        fresh = not path.exists() or path.stat().st_size < len(_JOURNAL_MAGIC)
        # Footage: created 0600 like every spool file (vault/plaintext.py's rule).
        fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        self._file = os.fdopen(fd, "r+b")
        if fresh:
            self._file.truncate(0)
            self._file.write(_JOURNAL_MAGIC)
        else:
            self._scan()
        self._file.seek(0, os.SEEK_END)

    def _scan(self) -> None:
        self._file.seek(0)
        if self._file.read(len(_JOURNAL_MAGIC)) != _JOURNAL_MAGIC:
            raise NvrError(f"{self.path.name} is not a replay journal; remove it to start again")
        good = len(_JOURNAL_MAGIC)
        for kind, ns, payload, offset in self._records(data=False):
            self._note(kind, ns, payload, offset)
            good = self._file.tell()
        self._file.truncate(good)  # a torn last record (a killed process)

    def _records(self, *, data: bool = True) -> Iterator[tuple[int, int, bytes, int]]:
        """(kind, ns, payload, offset) of each whole record; payloads skipped unless ``data``
        (configuration records are always read)."""
        size = self._file.seek(0, os.SEEK_END)
        self._file.seek(len(_JOURNAL_MAGIC))
        while True:
            offset = self._file.tell()
            head = self._file.read(_RECORD.size)
            if len(head) < _RECORD.size:
                return
            kind, ns, length = _RECORD.unpack(head)
            if kind not in (_CONFIG, _FRAME, _KEYFRAME) or offset + _RECORD.size + length > size:
                self._file.seek(offset)
                return
            if data or kind == _CONFIG:
                payload = self._file.read(length)
            else:
                payload = b""
                self._file.seek(length, os.SEEK_CUR)
            yield kind, ns, payload, offset

    def _note(self, kind: int, ns: int, payload: bytes, offset: int) -> None:
        if kind == _CONFIG:
            self.config = payload
            return
        self.frames += 1
        self.last_ns = ns
        if kind == _KEYFRAME:
            self.last_key_ns, self._last_key_at = ns, offset

    @property
    def size(self) -> int:
        """Bytes held (the journal's length): the progress of a replay."""
        return self._file.seek(0, os.SEEK_END)

    def set_config(self, config: bytes) -> None:
        """Record the stream's parameter sets (SPS, PPS) once, before the first frame."""
        if self.config is None:
            self._append(_CONFIG, 0, config)

    def add(self, ns: int, data: bytes, *, keyframe: bool) -> None:
        """Append one access unit; synced to disk at each keyframe (a resume point)."""
        if keyframe:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._append(_KEYFRAME if keyframe else _FRAME, ns, data)

    def _append(self, kind: int, ns: int, data: bytes) -> None:
        offset = self._file.tell()
        self._file.write(_RECORD.pack(kind, ns, len(data)) + data)
        self._note(kind, ns, data, offset)

    def cut_to_last_keyframe(self) -> int | None:
        """Drop the frames after the last keyframe *and* that keyframe (the GOP may be torn);
        return the keyframe's time to resume from, or None to start over."""
        self._file.flush()
        if self._last_key_at is None:
            # No keyframe yet: nothing decodable kept; keep only the configuration.
            self._file.seek(len(_JOURNAL_MAGIC))
            config = self.config
            self._file.truncate(len(_JOURNAL_MAGIC))
            self.config, self.frames, self.last_ns = None, 0, None
            if config is not None:
                self._append(_CONFIG, 0, config)
            return None
        resume_ns, at = self.last_key_ns, self._last_key_at
        self._file.truncate(at)
        self.config, self.frames, self.last_ns = None, 0, None
        self.last_key_ns = self._last_key_at = None
        for kind, ns, payload, offset in self._records(data=False):
            self._note(kind, ns, payload, offset)
        self._file.seek(0, os.SEEK_END)
        return resume_ns

    def frames_in_order(self, *, data: bool = True) -> Iterator[tuple[int, bytes, bool]]:
        """Every frame kept, read from disk one at a time: (Unix ns, Annex B bytes or b""
        without ``data``, keyframe). Do not append while iterating."""
        self._file.flush()
        for kind, ns, payload, _ in list(self._records(data=False)) if not data else \
                self._records():
            if kind != _CONFIG:
                yield ns, payload, kind == _KEYFRAME
        self._file.seek(0, os.SEEK_END)

    def close(self) -> None:
        """Sync and close."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


# -- the window -------------------------------------------------------------------------------


def replay_window(
    client_factory: Callable[[], RtspReplayClient],
    start: dt.datetime,
    end: dt.datetime,
    journal_path: Path,
    *,
    max_attempts: int,
    tell: Callable[[int, str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[FrameJournal, Replayed]:
    """Replay ``[start, end)`` into the journal at ``journal_path``, resuming after drops.

    Returns the (open) journal and what happened. Raises NvrAuthFailed at once; NvrUnreachable
    or NvrError after ``max_attempts`` attempts (the journal stays for a rerun).
    """
    journal = FrameJournal(journal_path)
    result = Replayed()
    start_ns, end_ns = _ns(start), _ns(end)
    try:
        for attempt in range(1, max_attempts + 1):
            result.attempts = attempt
            resume_ns = journal.cut_to_last_keyframe() if journal.frames else None
            if resume_ns is not None:
                result.resumed_from.append(_from_ns(resume_ns))
                tell(journal.size, f"resuming the replay from {_from_ns(resume_ns).isoformat()}")
            client = client_factory()
            try:
                _one_attempt(client, journal, result, start_ns, end_ns, resume_ns, tell)
                break
            except NvrAuthFailed:
                raise
            except NvrError as error:
                if attempt == max_attempts:
                    # Still an NvrUnreachable when it is one: the API answers it 502 as such.
                    kind = NvrUnreachable if isinstance(error, NvrUnreachable) else NvrError
                    raise kind(
                        f"{error} (attempt {attempt} of {max_attempts}; {journal.frames} frames "
                        "kept for a rerun)",
                        source_id=error.source_id,
                    ) from None
                delay = min(5.0, 0.25 * 2 ** (attempt - 1))
                tell(journal.size, f"replay dropped ({error}); retrying in {delay:.2f} s")
                log.warning("%s; attempt %d, retrying", error, attempt)
                sleep(delay)
            finally:
                client.close()
    except BaseException:
        journal.close()
        raise
    result.frames = journal.frames
    times = [ns for ns, _, _ in journal.frames_in_order(data=False)]
    shown = [ns for ns in times if ns >= start_ns]
    result.preroll_frames = len(times) - len(shown)
    if shown:
        result.first_frame, result.last_frame = _from_ns(shown[0]), _from_ns(shown[-1])
    return journal, result


def _one_attempt(
    client: RtspReplayClient,
    journal: FrameJournal,
    result: Replayed,
    start_ns: int,
    end_ns: int,
    resume_ns: int | None,
    tell: Callable[[int, str], None],
) -> None:
    ask_from = resume_ns if resume_ns is not None else start_ns
    track, rate_control = client.open(_from_ns(ask_from), _from_ns(end_ns))
    result.rate_control = rate_control
    if track.config:
        journal.set_config(track.config)
    depacketiser = _Depacketiser(client.nvr_id)
    waiting = journal.frames == 0  # no keyframe held yet
    interval: int | None = None
    try:
        for raw in client.packets(track):
            for ns, data, idr, flags in depacketiser.push(parse_rtp(raw, client.nvr_id)):
                if ns >= end_ns:
                    result.ended_by = "window end reached"
                    return
                if journal.last_ns is not None and ns <= journal.last_ns:
                    continue  # resent after a resume: already held
                if waiting and not idr:
                    result.waited_for_keyframe += 1
                    continue
                if waiting:
                    waiting = False
                    result.first_keyframe = _from_ns(ns)
                    if result.waited_for_keyframe:
                        log.warning(
                            "NVR %s: the replay did not start at a keyframe; %d frames before "
                            "the first keyframe (%s) were dropped", client.nvr_id,
                            result.waited_for_keyframe, result.first_keyframe.isoformat())
                if journal.last_ns is not None:
                    step = ns - journal.last_ns
                    if flags & _FLAG_D or (interval is not None
                                           and step > interval + GAP_S * 1e9):
                        result.gaps.append((_from_ns(journal.last_ns + (interval or 0)),
                                            _from_ns(ns)))
                    elif interval is None or step < interval:
                        interval = step
                journal.add(ns, data, keyframe=idr)
                if idr:
                    tell(journal.size, "receiving")  # the word progress printers skip
            if depacketiser.terminal:
                result.ended_by = "T flag (end of the range)"
                return
        result.ended_by = "RTCP BYE"
    except _Closed:
        # The NVR closing at the end of what it holds is an end; before it, a drop.
        last = journal.last_ns
        if depacketiser.terminal or (last is not None and last >= end_ns - 1_000_000_000):
            result.ended_by = "connection closed at the end"
            return
        raise


def mux(journal: FrameJournal, out: Path, start: dt.datetime, end: dt.datetime) -> int:
    """Write the journal's frames to ``out`` as MP4, copied (step 8); returns frames written.

    Times are relative to ``start``: pre-roll frames get negative times (an edit list hides
    them); the last frame lasts the frame interval, cut at ``end``. Raises NvrError when the
    journal holds no decodable frame.
    """
    import io
    from fractions import Fraction

    import av

    times = [ns for ns, _, _ in journal.frames_in_order(data=False)]
    if not times:
        raise NvrError("the NVR's replay sent no decodable frame for the window")
    start_ns, end_ns = _ns(start), _ns(end)
    steps = [b - a for a, b in itertools.pairwise(times) if b > a]
    typical = min(steps) if steps else 40_000_000
    time_base = Fraction(1, _CLOCK_RATE)
    first = next(journal.frames_in_order())[1]
    # The stream's parameters (size, SPS/PPS) as libavformat's H.264 parser reads them from the
    # first keyframe: a muxing template that opens no encoder (an encoder would write its own
    # parameter sets over the camera's).
    head = (journal.config or b"") + first
    partial, handle = private_partial(out)  # footage: 0600 from its creation
    try:
        with handle, av.open(io.BytesIO(head), format="h264") as probe:
            template = probe.streams.video[0]
            with av.open(handle, "w", format="mp4") as container:
                stream = container.add_stream_from_template(template)
                stream.time_base = time_base
                # One frame in memory at a time: a piece can be minutes of footage.
                for index, (ns, data, key) in enumerate(journal.frames_in_order()):
                    following = times[index + 1] if index + 1 < len(times) else min(
                        ns + typical, max(end_ns, ns + 1))
                    packet = av.Packet(data)
                    packet.stream = stream
                    packet.time_base = time_base
                    packet.pts = packet.dts = (ns - start_ns) * _CLOCK_RATE // 1_000_000_000
                    packet.duration = max(1, (following - ns) * _CLOCK_RATE // 1_000_000_000)
                    packet.is_keyframe = key
                    container.mux(packet)
        os.replace(partial, out)
    except av.error.FFmpegError as error:
        raise NvrError(f"the NVR's replayed H.264 could not be saved as MP4: {error}") from None
    finally:
        partial.unlink(missing_ok=True)
    return len(times)


__all__ = [
    "NTP_UNIX_OFFSET",
    "ONVIF_EXTENSION",
    "FrameJournal",
    "Replayed",
    "RtspReplayClient",
    "clock_range",
    "mux",
    "ntp_to_unix_ns",
    "parse_rtp",
    "replay_window",
]
