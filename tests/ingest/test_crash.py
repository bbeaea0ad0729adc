"""Crash test: SIGKILL the agent at each pipeline stage in turn; on restart every file is in
the vault exactly once and its hash matches.

The agent runs as a real process (``evidence-vault ingest run``); the pipeline's crash hook
(``EVIDENCE_VAULT_INGEST_CRASH_AT``, see ingest/pipeline.py) makes it SIGKILL itself the first
time an item reaches the named stage.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.pipeline import CRASH_ENV, CrashPoint
from ingest.spool import inspect_spool
from tests.ingest.media import copy
from vault.config import Settings
from vault.ledger.custody import Action
from vault.vault import Vault

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

AGENTS = """
[agent]
name = "crash-test-agent"
spool_dir = "{spool}"
workers = 2
retry_min_s = 0.2
shutdown_grace_s = 20

[[sources]]
id = "dock-1"
kind = "dock"
path = "{dock}"
layout = "{{device}}/{{file}}"
stable_seconds = 0.3
poll_interval_s = 0.2
"""


def _agent(home: Path, config: Path, log: Path, crash: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "EVIDENCE_VAULT_HOME": str(home)}
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    code = "import sys; from api.cli.ingest import ingest_app; sys.exit(ingest_app(['run', '--config', sys.argv[1]]))"
    out = log.open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-c", code, str(config)], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    finally:
        out.close()


def _drained(spool: Path, dock: Path) -> bool:
    if any(p.is_file() for p in dock.rglob("*")):
        return False
    try:
        snap = inspect_spool(spool)
    except Exception:
        return False
    return not any(snap.counts[s] for s in ("incoming", "spooled", "probed", "stored"))


@pytest.mark.parametrize("stage", [p.value for p in CrashPoint])
def test_agent_killed_at_each_stage_finishes_on_restart(
    tmp_path: Path, clips: dict[str, Path], stage: str
) -> None:
    home, dock, spool = tmp_path / "home", tmp_path / "dock", tmp_path / "spool"
    settings = Settings(home=home)
    Vault.init(settings).close()
    files = [
        copy(clips["video"], dock / "bwv-01" / "clip.mp4"),
        copy(clips["wav"], dock / "bwv-01" / "rec.wav"),
        copy(clips["mp3"], dock / "bwv-02" / "rec.mp3"),
    ]
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    config = tmp_path / "agents.toml"
    config.write_text(AGENTS.format(spool=spool, dock=dock))
    log = tmp_path / "agent.log"

    # 1. The agent dies at the stage.
    first = _agent(home, config, log, crash=stage)
    try:
        assert first.wait(90) == -signal.SIGKILL, log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert "crash test: killing the agent at " + stage in log.read_text()
    # Nothing was deleted from the dock by a run that never verified anything.
    assert all(p.exists() for p in files) or stage == CrashPoint.AFTER_CATALOG.value

    # 2. Restarted, it finishes everything.
    second = _agent(home, config, log, crash=None)
    try:
        deadline = time.monotonic() + 90
        while not _drained(spool, dock):
            assert second.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()

    # 3. Every file exactly once, hash matching, custody intact.
    with Vault.init(settings) as vault:
        recordings = vault.recordings(limit=100)
        assert sorted(r.original_name for r in recordings) == sorted(hashes)
        for rec in recordings:
            assert rec.sha256 == hashes[rec.original_name]
            vault.verify_recording(rec.id)
        ingested = vault.ledger.events(action=Action.INGESTED, limit=100)
        assert len(ingested) == 3
        vault.ledger.verify()
