"""RTSP credentials stay out of the process list, the environment and the logs.

Against a real mediamtx that refuses readers without a user and password: the agent records
through it, and the running ffmpeg's ``/proc/<pid>/cmdline`` (what ``ps`` shows every user)
never holds the password.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.agent import Agent
from ingest.config import AgentsFile, RtspSourceConfig
from ingest.rtsp import RtspSource, mask_credentials
from ingest.sources import SourceContext
from ingest.spool import ItemState, Spool
from tests.conftest import on_ci
from tests.ingest.conftest import RtspServer, find_mediamtx
from vault.config import Settings
from vault.vault import Vault

USER = "viewer"
PASSWORD = "S3cret_Pa55.word"  # characters mediamtx accepts in a password


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[RtspServer]:
    """mediamtx whose readers must sign in as USER / PASSWORD."""
    binary = find_mediamtx()
    if binary is None:
        if on_ci():
            pytest.fail("mediamtx not found (CI=true: the RTSP server is required)")
        pytest.skip("mediamtx not found; run scripts/ensure-rtsp.sh")
    workdir = tmp_path / "rtsp-server"
    workdir.mkdir()
    server = RtspServer(binary=binary, workdir=workdir, reader=(USER, PASSWORD))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.rtsp
@pytest.mark.slow
def test_credentials_never_on_the_ffmpeg_command_line(
    tmp_path: Path,
    vault: Vault,
    settings: Settings,
    auth_server: RtspServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #11 finding 12: ``ffmpeg -i rtsp://user:pass@...`` showed the camera's password
    to every local user through ``ps``. The running ffmpeg's cmdline and environment hold
    neither the user nor the password, its log holds no password, and footage still arrives
    (so the credentials did reach the server, through the pipe)."""
    monkeypatch.setenv("CAM_RTSP", f"{USER}:{PASSWORD}")
    agents = AgentsFile.from_dict(
        {
            "agent": {"name": "rtsp-agent", "spool_dir": str(tmp_path / "spool")},
            "sources": [
                {
                    "id": "cam-07",
                    "kind": "rtsp",
                    "url": auth_server.url("cam1"),
                    "credentials": "env:CAM_RTSP",
                    "segment_seconds": 1,
                    "timeout_s": 3,
                }
            ],
        }
    )
    agent = Agent(settings, agents, vault=vault)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    source = agent.sources["cam-07"]
    assert isinstance(source, RtspSource)
    try:
        _wait(lambda: source._proc is not None, 20, "ffmpeg to start")
        proc = source._proc
        assert proc is not None
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        _wait(
            lambda: len(agent.spool.items(states=(ItemState.ACKNOWLEDGED,))) >= 1,
            40,
            "a segment recorded through the authenticated stream",
        )
        run_dirs = [p for p in source.root.iterdir() if p.is_dir()]
        modes = {p.name: p.stat().st_mode & 0o777 for p in [source.root, *run_dirs]}
    finally:
        agent.request_stop()
        thread.join(60)
    agent.close()

    assert b"ffmpeg" in cmdline and b"-i\0/dev/fd/" in cmdline
    assert PASSWORD.encode() not in cmdline and f"{USER}:".encode() not in cmdline
    assert PASSWORD.encode() not in environ
    assert vault.recordings(source_id="cam-07")
    # Issue #11 finding 11: segments are plaintext footage; their folders are private.
    assert set(modes.values()) == {0o700}, modes
    for path in (tmp_path / "spool").rglob("*"):
        if path.is_file() and path.suffix in (".log", ".json", ".csv", ".pid"):
            assert PASSWORD not in path.read_text(errors="replace"), path


@pytest.mark.rtsp
def test_a_refused_password_is_masked_in_the_log_and_the_reason(
    tmp_path: Path, auth_server: RtspServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #11 finding 12: ffmpeg repeats its input URL in errors ("Impossible to open
    'rtsp://user:pass@...'"); the log file and the reported reason show ``***`` instead."""
    monkeypatch.setenv("CAM_RTSP", f"{USER}:wrong-{PASSWORD}")
    config = RtspSourceConfig(
        id="cam-07", kind="rtsp", url=auth_server.url("cam1"), credentials="env:CAM_RTSP",
        timeout_s=3,
    )
    with Spool(tmp_path / "spool") as spool:
        source = RtspSource(config, SourceContext(spool=spool))
        run_dir = source.root / "run"
        run_dir.mkdir(parents=True)
        proc, _ = source._start(run_dir)
        code = proc.wait(30)
        source._finish(proc, 1)
        reason = source._exit_reason(run_dir, code)
        log = (run_dir / "ffmpeg.log").read_text()
    assert code != 0
    assert "401" in log or "nauthorized" in log, log
    assert PASSWORD not in log and PASSWORD not in reason
    assert (run_dir / "ffmpeg.log").stat().st_mode & 0o777 == 0o600


def test_input_script_quotes_the_url_and_refuses_control_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #11 finding 12: the URL travels in an ffconcat script, so a quote in it must not
    end the ``file`` line early and a newline in the password must not add a directive."""
    monkeypatch.setenv("CAM_RTSP", "us'er:pa ss\nfile 'rtsp://evil/'")
    config = RtspSourceConfig(
        id="cam-07", kind="rtsp", url="rtsp://10.0.0.5:554/it's", credentials="env:CAM_RTSP"
    )
    with Spool(tmp_path / "spool") as spool:
        script = RtspSource(config, SourceContext(spool=spool)).input_script().decode()
    lines = script.splitlines()
    assert lines[0] == "ffconcat version 1.0"
    assert lines[1] == (
        "file 'rtsp://us%27er:pa%20ss%0Afile%20%27rtsp%3A%2F%2Fevil%2F%27@10.0.0.5:554/it'\\''s'"
    )
    assert lines[2:] == ["option rtsp_transport tcp", "option timeout 5000000"]
    assert mask_credentials("open 'rtsps://u:p@h/x' and rtsp://h/y") == (
        "open 'rtsps://***@h/x' and rtsp://h/y"
    )
