"""A loopback ONVIF replay server (RTSP) for the pull tests, written here, following the ONVIF
Streaming Specification's "Playback" section. It is not GStreamer's ONVIF RTSP server nor a
commercial NVR; docs/nvr-pull.md says why (GStreamer's replay was not made to work in time) and
what that leaves untested.

What it does, as the specification asks of a replay server:

1. ``DESCRIBE``, ``SETUP`` and ``PLAY`` must carry ``Require: onvif-replay``, else ``551 Option
   not supported`` with ``Unsupported: onvif-replay``; only RTP over the RTSP connection
   (``RTP/AVP/TCP;interleaved``) is offered (``461`` otherwise);
2. RTSP Digest authentication (RFC 2617, MD5, ``qop=auth``): every request without a valid
   ``Authorization`` is answered ``401`` with a fresh challenge;
3. ``PLAY`` with ``Range: clock=<start>-<end>`` starts at the keyframe at or before ``start``
   (the clean point), runs across the recording's files in order and stops before ``end``;
   ``Rate-Control: no`` is granted (as fast as it can);
4. every RTP packet carries the replay header extension (profile ``0xABAC``): the frame's
   recorded NTP time, ``C`` on keyframes, ``E`` on the last packet before a gap between files,
   ``D`` on the first after it, ``T`` on the last packet of the range (then an RTCP BYE);
5. H.264 is packetised per RFC 6184 (single NAL units, ``FU-A`` above 1200 bytes) from real
   MP4 files made by ffmpeg, the bytes copied from the files.

Faults for the tests: ``drop_after`` closes the connection after that many frames of the first
``PLAY``; ``start_exact`` starts at the first frame at or after ``start`` (not a keyframe), as
the prototype's server did; ``down`` refuses connections by not listening.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import os
import re
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from ingest.nvr.rtsp_client import NTP_UNIX_OFFSET, ONVIF_EXTENSION

REALM = "onvif-replay"
_MTU = 1200


@dataclass(frozen=True)
class Frame:
    """One stored frame: its recorded time (Unix ns), NAL units, keyframe, and whether a gap
    in the recording comes right before it."""

    ns: int
    nals: tuple[bytes, ...]
    key: bool
    after_gap: bool


def load_recording(files: list[tuple[dt.datetime, Path]]) -> tuple[list[Frame], bytes, bytes]:
    """The frames of the recording files (each with its recorded start), SPS and PPS."""
    frames: list[Frame] = []
    sps = pps = b""
    previous_end: int | None = None
    for start, path in files:
        base = int(start.timestamp() * 1_000_000) * 1000
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            extra = bytes(stream.codec_context.extradata or b"")
            sps, pps = _avcc_parameter_sets(extra)
            interval = int(1e9 / float(stream.average_rate or 25))
            first = True
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                ns = base + int(packet.pts * packet.time_base * 1_000_000_000)  # Fraction: exact
                gap = previous_end is not None and first and ns - previous_end > interval * 2
                frames.append(Frame(ns, tuple(_avcc_nals(bytes(packet))), packet.is_keyframe,
                                    gap))
                first = False
                previous_end = ns + interval
    return frames, sps, pps


def _avcc_parameter_sets(extra: bytes) -> tuple[bytes, bytes]:
    count, offset = extra[5] & 0x1F, 6
    sps = b""
    for _ in range(count):
        size = struct.unpack(">H", extra[offset:offset + 2])[0]
        sps, offset = extra[offset + 2:offset + 2 + size], offset + 2 + size
    count, offset = extra[offset], offset + 1
    size = struct.unpack(">H", extra[offset:offset + 2])[0]
    return sps, extra[offset + 2:offset + 2 + size]


def _avcc_nals(data: bytes) -> list[bytes]:
    nals, offset = [], 0
    while offset + 4 <= len(data):
        size = struct.unpack(">I", data[offset:offset + 4])[0]
        nals.append(data[offset + 4:offset + 4 + size])
        offset += 4 + size
    return nals


def _parse_clock(text: str) -> int:
    stamp = dt.datetime.strptime(text.rstrip("Z").split(".")[0], "%Y%m%dT%H%M%S").replace(
        tzinfo=dt.UTC)
    fraction = text.rstrip("Z").partition(".")[2]
    ns = int(stamp.timestamp()) * 1_000_000_000
    return ns + (int((fraction + "000000000")[:9]) if fraction else 0)


@dataclass
class OnvifReplayServer:
    """The server (see the module docstring) replaying ``token``'s recording files."""

    token: str
    files: list[tuple[dt.datetime, Path]]
    user: str
    password: str
    drop_after: int | None = None
    start_exact: bool = False
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    plays: list[str] = field(default_factory=list)
    port: int = 0
    _server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.frames, self.sps, self.pps = load_recording(self.files)
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    _Connection(owner, self.request).serve()
                except (ConnectionError, OSError):
                    return

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Connection:
    def __init__(self, owner: OnvifReplayServer, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self.buffer = b""
        self.nonce = os.urandom(8).hex()
        self.session = os.urandom(4).hex()

    def serve(self) -> None:
        while True:
            request = self._read()
            if request is None:
                return
            method, url, headers = request
            self.owner.requests.append((method, headers))
            if not self._authorized(method, headers):
                self.nonce = os.urandom(8).hex()
                self._answer(headers, 401, "Unauthorized", {
                    "WWW-Authenticate": f'Digest realm="{REALM}", nonce="{self.nonce}", '
                                        'qop="auth", algorithm="MD5"'})
                continue
            if method in ("DESCRIBE", "SETUP", "PLAY") and \
                    "onvif-replay" not in headers.get("require", ""):
                self._answer(headers, 551, "Option not supported",
                             {"Unsupported": "onvif-replay"})
                continue
            if method == "OPTIONS":
                self._answer(headers, 200, "OK", {
                    "Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"})
            elif method == "DESCRIBE":
                if not url.rstrip("/").endswith("/" + self.owner.token):
                    self._answer(headers, 404, "Not Found", {})
                    continue
                self._answer(headers, 200, "OK", {
                    "Content-Type": "application/sdp", "Content-Base": url.rstrip("/") + "/"},
                    self._sdp().encode())
            elif method == "SETUP":
                if "TCP" not in headers.get("transport", "").upper():
                    self._answer(headers, 461, "Unsupported transport", {})
                    continue
                self._answer(headers, 200, "OK", {
                    "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1",
                    "Session": f"{self.session};timeout=60"})
            elif method == "PLAY":
                match = re.match(r"clock=([0-9TZ.]+)-([0-9TZ.]*)", headers.get("range", ""))
                if not match:
                    self._answer(headers, 457, "Invalid Range", {})
                    continue
                self.owner.plays.append(headers["range"])
                self._answer(headers, 200, "OK", {
                    "Session": self.session, "Range": headers["range"], "Rate-Control": "no"})
                first_play = len(self.owner.plays) == 1
                start = _parse_clock(match[1])
                end = _parse_clock(match[2]) if match[2] else 2**62
                cseq = int(headers.get("cseq", "0")) & 0xFF
                if not self._stream(start, end, cseq, first_play):
                    return
            elif method in ("TEARDOWN",):
                self._answer(headers, 200, "OK", {"Session": self.session})
                return
            else:
                self._answer(headers, 200, "OK", {"Session": self.session})

    # RTSP ------------------------------------------------------------------------------

    def _read(self) -> tuple[str, str, dict[str, str]] | None:
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        method, url, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return method, url, headers

    def _answer(self, request: dict[str, str], status: int, reason: str,
                headers: dict[str, str], body: bytes = b"") -> None:
        lines = [f"RTSP/1.0 {status} {reason}", f"CSeq: {request.get('cseq', '0')}",
                 *(f"{k}: {v}" for k, v in headers.items()), f"Content-Length: {len(body)}"]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _authorized(self, method: str, headers: dict[str, str]) -> bool:
        value = headers.get("authorization", "")
        if not value.startswith("Digest "):
            return False
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', value[7:]))
        if fields.get("username") != self.owner.user or fields.get("nonce") != self.nonce:
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()  # RFC 2617 fixes MD5

        ha1 = md5(f"{self.owner.user}:{REALM}:{self.owner.password}")
        ha2 = md5(f"{method}:{fields.get('uri', '')}")
        expected = md5(f"{ha1}:{self.nonce}:{fields.get('nc', '')}:{fields.get('cnonce', '')}"
                       f":auth:{ha2}")
        return fields.get("response") == expected

    def _sdp(self) -> str:
        sprop = ",".join(base64.b64encode(x).decode() for x in (self.owner.sps, self.owner.pps))
        return (
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=ONVIF replay\r\nt=0 0\r\na=control:*\r\n"
            "a=range:clock=19700101T000000Z-\r\n"
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
            f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={sprop}\r\n"
            "a=control:track1\r\n"
        )

    # RTP -------------------------------------------------------------------------------

    def _stream(self, start: int, end: int, cseq: int, first_play: bool) -> bool:
        frames = self.owner.frames
        index = next((i for i, f in enumerate(frames) if f.ns >= start), len(frames))
        if not self.owner.start_exact:
            # 3. the clean point at or before the start, unless the start lies in a gap
            keys = [i for i, f in enumerate(frames[:index + 1]) if f.key and f.ns <= start]
            if keys and not any(f.after_gap for f in frames[keys[-1] + 1:index + 1]):
                index = keys[-1]
        chosen = [f for f in frames[index:] if f.ns < end]
        base = chosen[0].ns if chosen else 0
        sequence = 1
        for number, frame in enumerate(chosen):
            if first_play and self.owner.drop_after is not None and number == self.owner.drop_after:
                self.sock.shutdown(socket.SHUT_RDWR)
                return False
            last_frame = number == len(chosen) - 1
            before_gap = not last_frame and chosen[number + 1].after_gap
            packets = _packetise(frame.nals)
            for i, (payload, marker) in enumerate(packets):
                flags = 0x80 if frame.key else 0
                if frame.after_gap and number and i == 0:
                    flags |= 0x20
                if before_gap and i == len(packets) - 1:
                    flags |= 0x40
                if last_frame and i == len(packets) - 1:
                    flags |= 0x10
                timestamp = ((frame.ns - base) * 90_000 // 1_000_000_000) & 0xFFFFFFFF
                rtp = _rtp(sequence, timestamp, marker, payload, frame.ns, flags, cseq)
                sequence += 1
                self.sock.sendall(b"$\x00" + struct.pack(">H", len(rtp)) + rtp)
        bye = struct.pack(">BBHI", 0x81, 203, 1, 0x1234)
        self.sock.sendall(b"$\x01" + struct.pack(">H", len(bye)) + bye)
        return True


def _packetise(nals: tuple[bytes, ...]) -> list[tuple[bytes, bool]]:
    out: list[tuple[bytes, bool]] = []
    for nal in nals:
        if len(nal) <= _MTU:
            out.append((nal, False))
            continue
        indicator = (nal[0] & 0xE0) | 28
        body = nal[1:]
        pieces = [body[i:i + _MTU] for i in range(0, len(body), _MTU)]
        for i, piece in enumerate(pieces):
            header = (nal[0] & 0x1F) | (0x80 if i == 0 else 0) | (
                0x40 if i == len(pieces) - 1 else 0)
            out.append((bytes([indicator, header]) + piece, False))
    if out:
        out[-1] = (out[-1][0], True)
    return out


def _rtp(sequence: int, timestamp: int, marker: bool, payload: bytes, ns: int, flags: int,
         cseq: int) -> bytes:
    seconds, rest = divmod(ns, 1_000_000_000)
    ntp = ((seconds + NTP_UNIX_OFFSET) << 32) | ((rest << 32) // 1_000_000_000)
    header = struct.pack(">BBHII", 0x90, (0x80 if marker else 0) | 96, sequence & 0xFFFF,
                         timestamp, 0x5EED)
    extension = struct.pack(">HHQBBH", ONVIF_EXTENSION, 3, ntp, flags, cseq, 0)
    return header + extension + payload


def make_recording(directory: Path, starts: list[tuple[dt.datetime, float]]) -> list[
        tuple[dt.datetime, Path]]:
    """Recording files made by ffmpeg (H.264, 25 fps, a keyframe every second), one per
    ``(start, seconds)``."""
    import subprocess

    from ingest._ffmpeg import ffmpeg_exe

    files = []
    for number, (start, seconds) in enumerate(starts):
        path = directory / f"rec-{number}.mp4"
        subprocess.run(
            [ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc=size=320x240:rate=25:duration={seconds}", "-c:v", "libx264",
             "-preset", "ultrafast", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p",
             str(path)], check=True)
        files.append((start, path))
    return files


#: The python that has GStreamer's introspection bindings (Debian python3-gi,
#: gir1.2-gst-rtsp-server-1.0); the test venv usually has not.
GST_PYTHON_ENV = "EVIDENCE_VAULT_TEST_GST_PYTHON"
_GST_CHECK = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "assert all(Gst.ElementFactory.find(e) for e in "
    "('appsrc', 'h264parse', 'rtph264pay', 'rtponviftimestamp'))"
)


@functools.lru_cache(maxsize=1)
def find_gst_python() -> str | None:
    """A python that can run GStreamer's ONVIF RTSP server (tests/ingest/
    gst_onvif_replay_server.py), or None."""
    import subprocess
    import sys

    candidates = [os.environ.get(GST_PYTHON_ENV), "/usr/bin/python3", sys.executable]
    for python in candidates:
        if python and os.access(python, os.X_OK) and subprocess.run(
                [python, "-c", _GST_CHECK], capture_output=True, timeout=30, check=False).returncode == 0:
            return python
    return None


@dataclass
class GstOnvifReplayServer:
    """GStreamer's ONVIF RTSP server (tests/ingest/gst_onvif_replay_server.py) replaying
    ``token``'s recording files, behind a loopback TCP proxy that records the requests the
    client sends (``requests``, ``plays``, as :class:`OnvifReplayServer` does) and, with
    ``drop_after_bytes``, cuts the first replay's connection after that many bytes from the
    server (a dropped link)."""

    python: str
    token: str
    files: list[tuple[dt.datetime, Path]]
    user: str
    password: str
    workdir: Path
    drop_after_bytes: int | None = None
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    plays: list[str] = field(default_factory=list)
    port: int = 0
    _process: Any = None
    _listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}"

    def start(self) -> None:
        import subprocess

        from ingest._ffmpeg import die_with_parent
        from tests.servers import free_port

        self.frames, sps, pps = load_recording(self.files)
        archive = self.workdir / "frames.bin"
        with archive.open("wb") as out:
            for frame in self.frames:
                # Parameter sets before each keyframe, as a camera sends them.
                nals = ((sps, pps) if frame.key else ()) + frame.nals
                data = b"".join(b"\x00\x00\x00\x01" + n for n in nals)
                out.write(struct.pack(">qBBI", frame.ns, frame.key, frame.after_gap, len(data))
                          + data)
        self.upstream = free_port()
        log = (self.workdir / "gst-server.log").open("ab")
        self._process = subprocess.Popen(
            [self.python, str(Path(__file__).with_name("gst_onvif_replay_server.py")),
             str(archive), str(self.upstream), self.user, self.password, self.token],
            stdout=subprocess.PIPE, stderr=log,
            preexec_fn=die_with_parent)  # noqa: PLW1509 - prctl only, before exec
        log.close()
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"GStreamer's RTSP server did not start: see {log.name}")
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
            except OSError:
                client.close()
                continue
            playing = threading.Event()
            threading.Thread(target=self._requests, args=(client, upstream, playing),
                             daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client, playing),
                             daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket,
                  playing: threading.Event) -> None:
        buffer = b""
        try:
            while data := client.recv(65536):
                upstream.sendall(data)
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    lines = head.decode("utf-8", "replace").split("\r\n")
                    headers = {}
                    for line in lines[1:]:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    method = lines[0].split(" ", 1)[0]
                    self.requests.append((method, headers))
                    if method == "PLAY" and "authorization" in headers:
                        self.plays.append(headers.get("range", ""))
                        playing.set()
        except OSError:
            pass
        finally:
            upstream.close()
            client.close()

    def _answers(self, upstream: socket.socket, client: socket.socket,
                 playing: threading.Event) -> None:
        sent = 0
        try:
            while data := upstream.recv(65536):
                if playing.is_set() and self.drop_after_bytes is not None and not self._cut:
                    sent += len(data)
                    if sent > self.drop_after_bytes:
                        self._cut = True
                        client.shutdown(socket.SHUT_RDWR)
                        return
                client.sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()
            client.close()


__all__ = [
    "GST_PYTHON_ENV",
    "Frame",
    "GstOnvifReplayServer",
    "OnvifReplayServer",
    "find_gst_python",
    "load_recording",
    "make_recording",
]
