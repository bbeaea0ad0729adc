"""Real NVRs on loopback for the pull tests: mediamtx recording a test stream, and a TCP proxy
that drops connections mid-transfer.

:class:`MediamtxNvrServer` runs mediamtx (the binary tests/ingest/conftest.py finds) with its
recorder (fMP4 segments of ``segment_s``) and its playback server (``/list``, ``/get``) behind
HTTP Basic authentication, and publishes a generated stream into it with ffmpeg in real time:
one stretch, a pause (a gap on the NVR), a second stretch. Its recordings are real files
written by the real recorder; nothing is faked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path

from ingest._ffmpeg import die_with_parent, ffmpeg_exe
from tests.ingest.conftest import free_port

USER, PASSWORD = "nvr-reader", "playback-secret"


@dataclass
class MediamtxNvrServer:
    """mediamtx recording ``cam1``, with its playback server on ``playback_port``."""

    binary: str
    workdir: Path
    segment_s: float = 3.0
    rtsp_port: int = field(default_factory=free_port)
    playback_port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.playback_port}"

    @property
    def recordings(self) -> Path:
        return self.workdir / "recordings"

    def start(self) -> None:
        config = self.workdir / "mediamtx.yml"
        config.write_text(
            "logLevel: info\n"
            f"rtspAddress: 127.0.0.1:{self.rtsp_port}\n"
            "rtspTransports: [tcp]\n"
            "rtmp: no\nhls: no\nwebrtc: no\nsrt: no\napi: no\nmetrics: no\npprof: no\n"
            f"playback: yes\nplaybackAddress: 127.0.0.1:{self.playback_port}\n"
            "authInternalUsers:\n"
            "- {user: any, pass: '', ips: ['127.0.0.1/32'], permissions: [{action: publish}]}\n"
            f"- {{user: '{USER}', pass: '{PASSWORD}', ips: [], permissions: [{{action: playback}}]}}\n"
            "pathDefaults:\n"
            "  record: yes\n"
            f"  recordPath: {self.recordings}/%path/%Y-%m-%d_%H-%M-%S-%f\n"
            "  recordFormat: fmp4\n"
            "  recordPartDuration: 200ms\n"
            f"  recordSegmentDuration: {self.segment_s:g}s\n"
            "  recordDeleteAfter: 0s\n"
            "paths:\n  all_others:\n"
        )
        log = (self.workdir / "mediamtx.log").open("ab")
        # The recorder names files in local time; UTC keeps the names and the index in step.
        self.server = subprocess.Popen(
            [self.binary, str(config)], stdout=log, stderr=log, preexec_fn=die_with_parent,
            env={**os.environ, "TZ": "UTC"},
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.playback_port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"mediamtx playback did not listen: {self.log_tail()}")

    def publish(self, seconds: float, path: str = "cam1") -> None:
        """Publish ``seconds`` of a 25 fps test picture with a tone, in real time; wait for it."""
        subprocess.run(
            [
                ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re",
                "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=25:duration={seconds}",
                "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}",
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", str(seconds),
                "-f", "rtsp", "-rtsp_transport", "tcp",
                f"rtsp://127.0.0.1:{self.rtsp_port}/{path}",
            ],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=seconds + 30, check=True,
            preexec_fn=die_with_parent,
        )

    def listing(self, path: str = "cam1") -> list[tuple[dt.datetime, dt.datetime]]:
        """What the playback server lists, straight from it (start, end) in UTC."""
        request = urllib.request.Request(f"{self.url}/list?path={path}")
        token = b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            entries = json.load(response)
        out = []
        for e in entries:
            head, _, frac = e["start"].rstrip("Z").partition(".")
            start = dt.datetime.fromisoformat(f"{head}.{(frac or '0')[:6]}").replace(tzinfo=dt.UTC)
            out.append((start, start + dt.timedelta(seconds=e["duration"])))
        return out

    def segment_files(self, path: str = "cam1") -> list[tuple[dt.datetime, Path]]:
        """The recorder's files, oldest first, with the start time their names state."""
        files = []
        for f in sorted((self.recordings / path).glob("*.mp4")):
            when = dt.datetime.strptime(f.stem, "%Y-%m-%d_%H-%M-%S-%f").replace(tzinfo=dt.UTC)
            files.append((when, f))
        return files

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def log_tail(self) -> str:
        try:
            return (self.workdir / "mediamtx.log").read_text()[-2000:]
        except OSError:
            return ""


class DroppingProxy:
    """A TCP proxy on loopback in front of ``upstream``: the first ``drops`` connections whose
    request asks for ``/get`` are cut after ``cut_after`` bytes of the answer (an NVR link
    dropping mid-transfer); everything else is relayed untouched."""

    def __init__(self, upstream_port: int, *, drops: int = 1, cut_after: int = 40_000) -> None:
        self.upstream_port = upstream_port
        self.drops = drops
        self.cut_after = cut_after
        self.cut = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        # Requests share a kept-alive connection: the cut is armed by the /get request itself,
        # and counts the answer's bytes from then on.
        armed = threading.Event()

        def requests() -> None:
            try:
                while data := client.recv(65536):
                    if b"GET /get" in data and not armed.is_set():
                        with self._lock:
                            if self.cut < self.drops:
                                self.cut += 1
                                armed.set()
                    upstream.sendall(data)
            except OSError:
                pass
            finally:
                _close(client, upstream)

        threading.Thread(target=requests, daemon=True).start()
        sent = 0
        try:
            while data := upstream.recv(65536):
                if armed.is_set():
                    if sent + len(data) >= self.cut_after:
                        client.sendall(data[: self.cut_after - sent])
                        break
                    sent += len(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, upstream)

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def _close(*sockets: socket.socket) -> None:
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
