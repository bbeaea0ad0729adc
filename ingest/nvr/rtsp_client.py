"""The RTSP client and RTP depacketiser of ONVIF replay: requests, authentication, timestamps,
frames (points 1 to 4 of :mod:`ingest.nvr.replay`, which journals, resumes and saves what this
module receives).

Implements the client side of the ONVIF Streaming Specification's "Playback" section over
RTSP (RFC 2326) with RTP over the RTSP connection, Digest or Basic authentication (RFC 2617),
the replay header extension ``0xABAC`` for each frame's recorded NTP time, and H.264
depacketisation per RFC 6184 (single NAL unit, ``STAP-A``, ``FU-A``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ..errors import NvrAuthFailed, NvrError, NvrUnreachable

#: RTP header extension profile of ONVIF replay (Streaming Spec, "RTP header extension").
ONVIF_EXTENSION = 0xABAC
_FLAG_C, _FLAG_E, _FLAG_D, _FLAG_T = 0x80, 0x40, 0x20, 0x10
#: Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 5905.
NTP_UNIX_OFFSET = 2_208_988_800
_CLOCK_RATE = 90_000
_START_CODE = b"\x00\x00\x00\x01"
_RECV = 1 << 16
#: Largest RTSP answer head and body accepted (an SDP is a few hundred bytes).
_MAX_HEAD, _MAX_BODY = 64 << 10, 1 << 20


def clock_range(start: dt.datetime, end: dt.datetime) -> str:
    """The ``Range`` value asking for ``[start, end)`` in absolute time (RFC 2326 3.7 ``clock``,
    UTC, with milliseconds as ONVIF servers accept them)."""

    def one(when: dt.datetime) -> str:
        when = when.astimezone(dt.UTC)
        return when.strftime("%Y%m%dT%H%M%S.") + f"{when.microsecond // 1000:03d}Z"

    return f"clock={one(start)}-{one(end)}"


def ntp_to_unix_ns(ntp: int) -> int:
    """A 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low 32)
    as Unix nanoseconds."""
    seconds, fraction = ntp >> 32, ntp & 0xFFFFFFFF
    # Rounded, not floored: a server that floored ns to the 2**-32 s grid gets its ns back.
    return (seconds - NTP_UNIX_OFFSET) * 1_000_000_000 + (
        (fraction * 1_000_000_000 + (1 << 31)) >> 32)


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


__all__ = [
    "NTP_UNIX_OFFSET",
    "ONVIF_EXTENSION",
    "RtspReplayClient",
    "clock_range",
    "ntp_to_unix_ns",
    "parse_rtp",
]
