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

Why this module is long: it is one replay protocol, end to end: the frame journal that
makes a pull crash-safe, the RTSP client and RTP depacketiser that fill it and the mux that
reads it back share the journal's record format and the NVR's timing (RTP-Info, NTP). The
client and depacketiser (``_Response`` to ``_Depacketiser``, about 450 lines) can move to
``ingest/nvr/rtsp.py`` without a change of behaviour; that split is the next step.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import logging
import os
import re
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from vault.plaintext import PRIVATE_FILE_MODE, private_partial

from ..errors import NvrAuthFailed, NvrError, NvrUnreachable

log = logging.getLogger("ingest.nvr.replay")

#: RTP header extension profile of ONVIF replay (Streaming Spec, "RTP header extension").
ONVIF_EXTENSION = 0xABAC
_FLAG_C, _FLAG_E, _FLAG_D, _FLAG_T = 0x80, 0x40, 0x20, 0x10
#: Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 5905.
NTP_UNIX_OFFSET = 2_208_988_800
#: A jump in frame time this much beyond the frame interval is a gap in the recording.
GAP_S = 1.0
_CLOCK_RATE = 90_000
_JOURNAL_MAGIC = b"EVRJ1\n"
_RECORD = struct.Struct(">BqI")  # kind, unix time ns, payload length
_CONFIG, _FRAME, _KEYFRAME = 1, 2, 3
_START_CODE = b"\x00\x00\x00\x01"
_RECV = 1 << 16
#: Largest RTSP answer head and body accepted (an SDP is a few hundred bytes).
_MAX_HEAD, _MAX_BODY = 64 << 10, 1 << 20


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


def clock_range(start: dt.datetime, end: dt.datetime) -> str:
    """The ``Range`` value asking for ``[start, end)`` in absolute time (RFC 2326 3.7 ``clock``,
    UTC, with milliseconds as ONVIF servers accept them)."""

    def one(when: dt.datetime) -> str:
        when = when.astimezone(dt.UTC)
        return when.strftime("%Y%m%dT%H%M%S.") + f"{when.microsecond // 1000:03d}Z"

    return f"clock={one(start)}-{one(end)}"


def _ns(when: dt.datetime) -> int:
    delta = when.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _from_ns(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)


def ntp_to_unix_ns(ntp: int) -> int:
    """A 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low 32)
    as Unix nanoseconds."""
    seconds, fraction = ntp >> 32, ntp & 0xFFFFFFFF
    # Rounded, not floored: a server that floored ns to the 2**-32 s grid gets its ns back.
    return (seconds - NTP_UNIX_OFFSET) * 1_000_000_000 + (
        (fraction * 1_000_000_000 + (1 << 31)) >> 32)


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


# -- RTSP ----------------------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class RtspReplayClient:
    """One RTSP session replaying one recording (see the module docstring).

    ``uri`` is the NVR's ``GetReplayUri`` answer; ``user`` and ``password`` the ONVIF account.
    ``nvr_id`` and ``credentials_ref`` name the NVR and the credentials' reference in errors
    (never the secret).
    """

    def __init__(
        self,
        uri: str,
        *,
        user: str | None,
        password: str | None,
        timeout_s: float,
        nvr_id: str,
        credentials_ref: str | None,
    ) -> None:
        parts = urlsplit(uri)
        if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise NvrError(f"NVR {nvr_id}: replay URI {uri!r} is not rtsp://", source_id=nvr_id)
        if parts.scheme == "rtsps":
            raise NvrError(f"NVR {nvr_id}: rtsps:// replay is not supported by this version",
                           source_id=nvr_id)
        # Credentials inside the URI are never sent on the wire as part of the URL.
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.uri = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        self.host, self.port = parts.hostname, parts.port or 554
        if user is None and parts.username:
            user, password = parts.username, parts.password or ""
        self.user, self.password = user, password
        self.timeout_s = timeout_s
        self.nvr_id = nvr_id
        self.credentials_ref = credentials_ref
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._cseq = 0
        self._challenge: dict[str, str] | None = None
        self._session: str | None = None

    # connection -------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the TCP connection. Raises NvrUnreachable."""
        try:
            self._sock = socket.create_connection((self.host, self.port), self.timeout_s)
        except OSError as error:
            raise NvrUnreachable(
                f"NVR {self.nvr_id}: its replay server {self.host}:{self.port} did not answer "
                f"({type(error).__name__}: {error}): check that it is on and that RTSP is "
                "reachable from this host",
                source_id=self.nvr_id,
            ) from None
        self._buffer.clear()

    def close(self) -> None:
        """Say TEARDOWN if a session is open (best effort), then close the connection."""
        if self._sock is None:
            return
        try:
            if self._session:
                self._send("TEARDOWN", self.uri, {"Session": self._session})
        except OSError:
            pass
        finally:
            self._sock.close()
            self._sock = None
            self._session = None

    def _dropped(self, what: str) -> NvrError:
        return NvrError(f"NVR {self.nvr_id}: the replay connection broke off ({what})",
                        source_id=self.nvr_id)

    def _garbled(self, what: str) -> NvrError:
        # Said as what it is, not as a drop: the NVR (or what answers for it) is not speaking
        # RTSP; the retries will most likely meet the same.
        return NvrError(f"NVR {self.nvr_id}: its replay server sent {what}",
                        source_id=self.nvr_id)

    def _fill(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(_RECV)
        except TimeoutError:
            raise self._dropped(f"nothing received for {self.timeout_s:g} s") from None
        except OSError as error:
            raise self._dropped(f"{type(error).__name__}: {error}") from None
        if not data:
            raise _Closed(self._dropped("the NVR closed it"))
        self._buffer += data

    # requests ---------------------------------------------------------------------------

    def _send(self, method: str, url: str, headers: dict[str, str]) -> int:
        assert self._sock is not None
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}",
                 "User-Agent: evidence-vault"]
        authorization = self._authorization(method, url)
        if authorization:
            lines.append(f"Authorization: {authorization}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        return self._cseq

    def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> _Response:
        """Send one request and read its answer (after one authentication challenge).

        Raises NvrAuthFailed (a second 401), NvrError (any other failure status)."""
        headers = dict(headers or {})
        for attempt in (1, 2):
            cseq = self._send(method, url, headers)
            response = self._read_response(cseq)
            if response.status != 401:
                break
            challenge = _parse_challenge(response.header("www-authenticate"))
            if attempt == 2 or challenge is None or self.user is None:
                raise self._refused(method, response.status)
            self._challenge = challenge
        if response.status == 551:
            raise NvrError(
                f"NVR {self.nvr_id} does not support ONVIF replay at {self.uri} ({method}: 551 "
                f"Option not supported, Unsupported: {response.header('unsupported') or '?'})",
                source_id=self.nvr_id,
            )
        if response.status in (403,):
            raise self._refused(method, response.status)
        if response.status >= 300:
            raise NvrError(
                f"NVR {self.nvr_id} answered {method} {url} with {response.status} "
                f"{response.reason}",
                source_id=self.nvr_id,
            )
        return response

    def _refused(self, method: str, status: int) -> NvrAuthFailed:
        reference = self.credentials_ref or "(none given)"
        return NvrAuthFailed(
            f"NVR {self.nvr_id} refused the credentials {reference} for replay ({method}: RTSP "
            f"{status}): set the user and password of an ONVIF account allowed to replay "
            "recordings; nothing was pulled",
            source_id=self.nvr_id,
        )

    def _authorization(self, method: str, url: str) -> str | None:
        if self._challenge is None or self.user is None:
            return None
        password = self.password or ""
        if self._challenge["scheme"] == "basic":
            token = base64.b64encode(f"{self.user}:{password}".encode()).decode("ascii")
            return f"Basic {token}"
        realm, nonce = self._challenge.get("realm", ""), self._challenge.get("nonce", "")
        ha1 = _md5(f"{self.user}:{realm}:{password}")
        ha2 = _md5(f"{method}:{url}")
        fields = [f'username="{self.user}"', f'realm="{realm}"', f'nonce="{nonce}"',
                  f'uri="{url}"']
        if "auth" in self._challenge.get("qop", "").split(","):
            cnonce = os.urandom(8).hex()
            nc = f"{self._cseq:08x}"
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "opaque" in self._challenge:
            fields.append(f'opaque="{self._challenge["opaque"]}"')
        return "Digest " + ", ".join(fields) + ', algorithm="MD5"'

    def _read_response(self, cseq: int) -> _Response:
        while True:
            item = self._next()
            if isinstance(item, _Response) and item.header("cseq") in ("", str(cseq)):
                return item

    def _next(self) -> _Response | tuple[int, bytes]:
        """The next thing on the connection: an RTSP response, or (channel, packet)."""
        while True:
            if self._buffer[:1] == b"$":
                if len(self._buffer) >= 4:
                    channel, length = self._buffer[1], struct.unpack(">H", self._buffer[2:4])[0]
                    if len(self._buffer) >= 4 + length:
                        packet = bytes(self._buffer[4:4 + length])
                        del self._buffer[:4 + length]
                        return channel, packet
            elif self._buffer:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0 and len(self._buffer) > _MAX_HEAD:
                    raise self._garbled(f"no end of an RTSP answer's head in {_MAX_HEAD} bytes")
                if end >= 0:
                    head = self._buffer[:end].decode("utf-8", "replace").split("\r\n")
                    headers: dict[str, str] = {}
                    for line in head[1:]:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    try:
                        length = int(headers.get("content-length", "0") or 0)
                    except ValueError:
                        raise self._garbled("a Content-Length that is not a number") from None
                    if not 0 <= length <= _MAX_BODY:
                        raise self._garbled(f"a body of {length} bytes (at most {_MAX_BODY})")
                    if len(self._buffer) >= end + 4 + length:
                        body = bytes(self._buffer[end + 4:end + 4 + length])
                        del self._buffer[:end + 4 + length]
                        match = re.match(r"RTSP/1\.\d (\d{3}) ?(.*)", head[0])
                        if not match:
                            raise self._garbled(f"not an RTSP answer: {head[0][:80]!r}")
                        return _Response(int(match[1]), match[2], headers, body)
            self._fill()

    # the replay -------------------------------------------------------------------------

    def open(self, start: dt.datetime, end: dt.datetime) -> tuple[_Track, str]:
        """DESCRIBE, SETUP and PLAY ``[start, end)``; returns the video track and the
        ``Rate-Control`` the NVR granted. Raises NvrAuthFailed, NvrUnreachable, NvrError."""
        self.connect()
        described = self.request("DESCRIBE", self.uri, {
            "Accept": "application/sdp", "Require": "onvif-replay"})
        base = described.header("content-base") or described.header("content-location") \
            or self.uri
        track = _video_track(described.body.decode("utf-8", "replace"), base, self.nvr_id)
        setup = self.request("SETUP", track.control, {
            "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1", "Require": "onvif-replay"})
        self._session = setup.header("session").split(";")[0].strip() or None
        transport = setup.header("transport")
        match = re.search(r"interleaved=(\d+)", transport)
        track.channel = int(match[1]) if match else 0
        headers = {"Range": clock_range(start, end), "Require": "onvif-replay",
                   "Rate-Control": "no"}
        if self._session:
            headers["Session"] = self._session
        played = self.request("PLAY", track.session_url, headers)
        track.play_cseq = self._cseq & 0xFF
        return track, played.header("rate-control") or "yes"

    def packets(self, track: _Track) -> Iterator[bytes]:
        """The video track's RTP packets as they arrive; ends at an RTCP BYE. Raises
        _Closed (the NVR closed the connection), NvrError (a drop)."""
        keepalive = time.monotonic() + 20.0
        while True:
            item = self._next()
            if isinstance(item, _Response):
                continue  # the answer to a keep-alive
            channel, packet = item
            if channel == track.channel:
                yield packet
            elif channel == track.channel + 1 and _rtcp_bye(packet):
                return
            if time.monotonic() > keepalive and self._session:
                # Real-time servers (Rate-Control: yes) drop idle sessions after ~60 s.
                self._send("GET_PARAMETER", self.uri, {"Session": self._session})
                keepalive = time.monotonic() + 20.0


class _Closed(NvrError):
    """The NVR closed the replay connection: at the end of the range, or as a drop (the
    caller tells which from the frames held)."""

    def __init__(self, error: NvrError) -> None:
        super().__init__(str(error), source_id=error.source_id)


@dataclass
class _Track:
    control: str
    payload_type: int
    config: bytes
    session_url: str
    channel: int = 0
    play_cseq: int = 0


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _parse_challenge(value: str) -> dict[str, str] | None:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() not in ("digest", "basic"):
        return None
    fields = {k.lower(): v for k, v in re.findall(r'(\w+)="?([^",]*)"?', rest)}
    fields["scheme"] = scheme.lower()
    return fields


@dataclass
class _Media:
    line: str
    control: str | None = None
    rtpmap: dict[str, str] = field(default_factory=dict)
    fmtp: dict[str, str] = field(default_factory=dict)


def _video_track(sdp: str, base: str, nvr_id: str) -> _Track:
    """The first H.264 video track of ``sdp`` (RFC 4566, RFC 6184 ``fmtp``)."""
    session_control: str | None = None
    media: _Media | None = None
    found: list[_Media] = []
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            media = _Media(line[2:])
            found.append(media)
        elif line.startswith("a=control:"):
            if media is None:
                session_control = line[len("a=control:"):]
            else:
                media.control = line[len("a=control:"):]
        elif media is not None and line.startswith("a=rtpmap:"):
            pt, _, codec = line[len("a=rtpmap:"):].partition(" ")
            media.rtpmap[pt] = codec
        elif media is not None and line.startswith("a=fmtp:"):
            pt, _, params = line[len("a=fmtp:"):].partition(" ")
            media.fmtp[pt] = params
    for media in found:
        kind, _, rest = media.line.partition(" ")
        if kind != "video":
            continue
        for pt in rest.split()[2:]:
            codec = media.rtpmap.get(pt, "").upper()
            if codec.startswith(("H265", "HEVC")):
                raise NvrError(f"NVR {nvr_id}: the recording is H.265; this version replays "
                               "H.264 only", source_id=nvr_id)
            if not codec.startswith("H264"):
                continue
            config = b""
            match = re.search(r"sprop-parameter-sets=([^;\s]+)", media.fmtp.get(pt, ""))
            if match:
                for nal in match[1].split(","):
                    if nal:
                        config += _START_CODE + base64.b64decode(nal + "=" * (-len(nal) % 4))
            control = _resolve(base, media.control or session_control or "*")
            # PLAY goes to the session (aggregate) URL, RFC 2326 C.1.1.
            session_url = _resolve(base, session_control or "*")
            return _Track(control=control, payload_type=int(pt), config=config,
                          session_url=session_url)
    raise NvrError(f"NVR {nvr_id}: the replayed recording has no H.264 video track",
                   source_id=nvr_id)


def _resolve(base: str, control: str) -> str:
    if control == "*":
        return base
    if control.startswith(("rtsp://", "rtsps://")):
        return control
    return base.rstrip("/") + "/" + control.lstrip("/")


def _rtcp_bye(packet: bytes) -> bool:
    # A compound RTCP packet: walk its parts; 203 is BYE (RFC 3550 6.6).
    offset = 0
    while offset + 4 <= len(packet):
        kind, words = packet[offset + 1], struct.unpack(">H", packet[offset + 2:offset + 4])[0]
        if kind == 203:
            return True
        offset += 4 * (words + 1)
    return False


# -- RTP to frames ---------------------------------------------------------------------------


@dataclass
class _Packet:
    marker: bool
    sequence: int
    timestamp: int
    payload: bytes
    ntp_ns: int | None
    flags: int


def parse_rtp(packet: bytes, nvr_id: str) -> _Packet:
    """One RTP packet (RFC 3550 5.1) with its ONVIF replay extension, if any."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        raise NvrError(f"NVR {nvr_id}: not an RTP packet on the video channel",
                       source_id=nvr_id)
    padding, extension, csrcs = packet[0] & 0x20, packet[0] & 0x10, packet[0] & 0x0F
    marker = bool(packet[1] & 0x80)
    sequence, timestamp = struct.unpack(">HI", packet[2:8])
    offset = 12 + 4 * csrcs
    ntp_ns, flags = None, 0
    if extension:
        profile, words = struct.unpack(">HH", packet[offset:offset + 4])
        data = packet[offset + 4:offset + 4 + 4 * words]
        if profile == ONVIF_EXTENSION and len(data) >= 12:
            ntp_ns = ntp_to_unix_ns(struct.unpack(">Q", data[:8])[0])
            flags = data[8]
        offset += 4 + 4 * words
    end = len(packet) - (packet[-1] if padding else 0)
    return _Packet(marker, sequence, timestamp, packet[offset:end], ntp_ns, flags)


class _Depacketiser:
    """RFC 6184 H.264 payloads to access units (Annex B), with their recorded times."""

    def __init__(self, nvr_id: str) -> None:
        self.nvr_id = nvr_id
        self._nals: list[bytes] = []
        self._fu: bytearray | None = None
        self._timestamp: int | None = None
        self._ntp: int | None = None
        self._flags = 0
        self._sequence: int | None = None
        self._last_ntp: tuple[int, int] | None = None  # (rtp timestamp, ntp ns) of the last AU
        self.terminal = False

    def push(self, packet: _Packet) -> list[tuple[int, bytes, bool, int]]:
        """Feed one packet; return the access units it completed: (ns, bytes, idr, flags)."""
        done: list[tuple[int, bytes, bool, int]] = []
        if self._sequence is not None and packet.sequence != (self._sequence + 1) & 0xFFFF:
            raise NvrError(f"NVR {self.nvr_id}: RTP packets were lost ({self._sequence} then "
                           f"{packet.sequence})", source_id=self.nvr_id)
        self._sequence = packet.sequence
        if self._timestamp is not None and packet.timestamp != self._timestamp and self._nals:
            done.append(self._finish())
        if self._timestamp != packet.timestamp:
            self._timestamp, self._ntp, self._flags = packet.timestamp, None, 0
        if packet.ntp_ns is not None and self._ntp is None:
            self._ntp = packet.ntp_ns
        self._flags |= packet.flags
        if packet.flags & _FLAG_T:
            self.terminal = True
        self._payload(packet.payload)
        if packet.marker and self._nals:
            done.append(self._finish())
            # The marker ends the access unit even if the next has the same RTP timestamp
            # (a server may stamp pre-roll frames alike); its time comes from its own packets.
            self._timestamp = None
        return done

    def _payload(self, payload: bytes) -> None:
        if not payload:
            return
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._nals.append(payload)
        elif kind == 24:  # STAP-A
            offset = 1
            while offset + 2 <= len(payload):
                size = struct.unpack(">H", payload[offset:offset + 2])[0]
                self._nals.append(payload[offset + 2:offset + 2 + size])
                offset += 2 + size
        elif kind == 28:  # FU-A
            header = payload[1]
            if header & 0x80:
                self._fu = bytearray([(payload[0] & 0xE0) | (header & 0x1F)])
            if self._fu is None:
                return  # a fragment without its start: dropped with its frame below
            self._fu += payload[2:]
            if header & 0x40:
                self._nals.append(bytes(self._fu))
                self._fu = None
        else:
            raise NvrError(f"NVR {self.nvr_id}: RTP payload type {kind} (RFC 6184) is not "
                           "supported", source_id=self.nvr_id)

    def _finish(self) -> tuple[int, bytes, bool, int]:
        nals, self._nals = self._nals, []
        assert self._timestamp is not None
        ntp = self._ntp
        if ntp is None and self._last_ntp is not None:
            # No extension on this frame's packets: the RTP clock from the last stamped frame.
            ticks = (self._timestamp - self._last_ntp[0]) & 0xFFFFFFFF
            ntp = self._last_ntp[1] + ticks * 1_000_000_000 // _CLOCK_RATE
        if ntp is None:
            raise NvrError(
                f"NVR {self.nvr_id}: the replay carries no ONVIF timestamps (RTP header "
                "extension 0xABAC): it is not ONVIF replay, and the frames' recorded times "
                "cannot be known", source_id=self.nvr_id)
        self._last_ntp = (self._timestamp, ntp)
        idr = any(n and n[0] & 0x1F == 5 for n in nals)
        data = b"".join(_START_CODE + n for n in nals if n)
        return ntp, data, idr, self._flags


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
