"""Ingest fixtures: a fresh vault, generated media, and a real RTSP server (mediamtx).

The RTSP server binary is found at $EVIDENCE_VAULT_MEDIAMTX_BIN, then
~/.cache/evidence-vault/bin/mediamtx (where scripts/ensure-rtsp.sh builds it), then PATH.
When it is missing the RTSP tests skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ingest._ffmpeg import die_with_parent, ffmpeg_exe
from tests.conftest import on_ci
from tests.servers import free_port
from tests.ingest.media import make_media
from vault.config import Settings
from vault.vault import Vault

MEDIAMTX_ENV = "EVIDENCE_VAULT_MEDIAMTX_BIN"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", checkpoint_every=64)


@pytest.fixture
def vault(settings: Settings) -> Iterator[Vault]:
    """A vault on the embedded default: SQLite, local store, local keyring."""
    with Vault.init(settings) as v:
        yield v


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Test clips made once per session; copy them before changing them."""
    root = tmp_path_factory.mktemp("clips")
    return {
        "video": make_media(root / "video.mp4", seconds=2, creation_time="2026-01-15T09:30:00Z"),
        "video2": make_media(root / "video2.mp4", seconds=3, frequency=660),
        "wav": make_media(root / "audio.wav", seconds=2),
        "mp3": make_media(root / "audio.mp3", seconds=2, frequency=550),
        "m4a": make_media(root / "audio.m4a", seconds=2, frequency=770),
    }


# -- the RTSP server ------------------------------------------------------------------------


def find_mediamtx() -> str | None:
    explicit = os.environ.get(MEDIAMTX_ENV)
    if explicit and os.access(explicit, os.X_OK):
        return explicit
    cached = Path.home() / ".cache" / "evidence-vault" / "bin" / "mediamtx"
    if os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which("mediamtx")


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


@dataclass
class RtspServer:
    """mediamtx on loopback, plus an ffmpeg publishing a generated test stream into it."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None
    publisher: subprocess.Popen[bytes] | None = None
    #: ``(user, password)`` readers must present; publishing stays open to loopback.
    reader: tuple[str, str] | None = None

    def url(self, path: str = "cam1") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"

    def start(self) -> None:
        """Start the server and the publisher; wait until the stream is readable."""
        config = self.workdir / "mediamtx.yml"
        config.write_text(
            "logLevel: info\n"
            f"rtspAddress: 127.0.0.1:{self.port}\n"
            "rtspTransports: [tcp]\n"
            "rtmp: no\nhls: no\nwebrtc: no\nsrt: no\napi: no\nmetrics: no\nplayback: no\npprof: no\n"
            + self._auth()
            + "paths:\n  all_others:\n"
        )
        log = (self.workdir / "mediamtx.log").open("ab")
        self.server = subprocess.Popen(
            [self.binary, str(config)], stdout=log, stderr=log, preexec_fn=die_with_parent
        )
        log.close()
        if not _wait_port(self.port, 15):
            raise RuntimeError(f"mediamtx did not listen on {self.port}: {self.log_tail()}")
        self.start_publisher()

    def _auth(self) -> str:
        if self.reader is None:
            return ""
        user, password = self.reader
        return (
            "authInternalUsers:\n"
            "- {user: any, pass: '', ips: ['127.0.0.1/32'], permissions: [{action: publish}]}\n"
            f"- {{user: '{user}', pass: '{password}', ips: [], permissions: [{{action: read}}]}}\n"
        )

    def start_publisher(self, path: str = "cam1") -> None:
        log = (self.workdir / "publisher.log").open("ab")
        self.publisher = subprocess.Popen(
            [
                ffmpeg_exe(),
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=16000",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "25",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-f",
                "rtsp",
                "-rtsp_transport",
                "tcp",
                self.url(path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,
        )
        log.close()
        time.sleep(1.0)  # the publisher announces the stream

    def kill(self) -> None:
        """SIGKILL the server (an NVR losing power); the publisher goes with its connection."""
        for proc in (self.server, self.publisher):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)

    def stop(self) -> None:
        for proc in (self.publisher, self.server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def log_tail(self) -> str:
        try:
            return (self.workdir / "mediamtx.log").read_text()[-2000:]
        except OSError:
            return ""


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[RtspServer]:
    """A running RTSP server with a test stream at ``url('cam1')``; stopped afterwards."""
    binary = find_mediamtx()
    if binary is None:
        reason = (
            "mediamtx not found ($EVIDENCE_VAULT_MEDIAMTX_BIN, ~/.cache/evidence-vault/bin, PATH);"
            " run scripts/ensure-rtsp.sh"
        )
        if on_ci():
            pytest.fail(f"{reason} (CI=true: the RTSP server is required)")
        pytest.skip(reason)
    workdir = tmp_path / "rtsp-server"
    workdir.mkdir()
    server = RtspServer(binary=binary, workdir=workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
