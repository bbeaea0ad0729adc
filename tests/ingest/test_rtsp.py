"""Live RTSP recording against a real RTSP server process (mediamtx) on loopback.

Records at least three segments through the agent and finds them in the vault with the right
durations and hashes; then kills the server mid-segment, brings it back, and checks that the
agent reconnected and recorded the gap (local event log and custody ledger).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.agent import Agent
from ingest.config import AgentsFile
from ingest.spool import ItemState
from tests.ingest.conftest import RtspServer
from vault.config import Settings
from vault.ledger.custody import Action
from vault.vault import Vault

pytestmark = [pytest.mark.rtsp, pytest.mark.slow]

SEGMENT = 2.0


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _agents(tmp_path: Path, url: str) -> AgentsFile:
    return AgentsFile.from_dict(
        {
            "agent": {
                "name": "rtsp-agent",
                "spool_dir": str(tmp_path / "spool"),
                "shutdown_grace_s": 15,
            },
            "sources": [
                {
                    "id": "cam-03",
                    "kind": "rtsp",
                    "site": "Northgate",
                    "url": url,
                    "segment_seconds": SEGMENT,
                    "reconnect_min_s": 0.5,
                    "reconnect_max_s": 2,
                    "timeout_s": 3,
                }
            ],
        }
    )


def _acknowledged(agent: Agent) -> int:
    return len(agent.spool.items(states=(ItemState.ACKNOWLEDGED,)))


def test_records_segments_reconnects_and_logs_the_gap(
    tmp_path: Path, vault: Vault, settings: Settings, rtsp_server: RtspServer
) -> None:
    agent = Agent(settings, _agents(tmp_path, rtsp_server.url("cam1")), vault=vault)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        # 1. Three closed segments reach the vault.
        wait_for(lambda: _acknowledged(agent) >= 3, 40, "three segments in the vault")
        before = _acknowledged(agent)

        # 2. The server dies mid-segment; the stream is gone for a while; it comes back.
        time.sleep(SEGMENT / 2)
        rtsp_server.kill()
        killed_at = time.time()
        wait_for(
            lambda: agent.sources["cam-03"].status()["state"].startswith("reconnecting"),
            20,
            "the drop to be noticed",
        )
        time.sleep(2.0)
        rtsp_server.start()
        wait_for(lambda: bool(agent.sources["cam-03"].gaps), 40, "the gap to be recorded")
        wait_for(lambda: _acknowledged(agent) >= before + 2, 40, "segments after the reconnect")
    finally:
        agent.request_stop()
        thread.join(60)
    assert not thread.is_alive()

    recordings = vault.recordings(source_id="cam-03", limit=1000)
    assert len(recordings) >= 5
    items = {i.recording_id: i for i in agent.spool.items(states=(ItemState.ACKNOWLEDGED,))}
    full = []
    for rec in recordings:
        # Hash: the vault copy decrypts to bytes whose SHA-256 is the catalog's.
        vault.verify_recording(rec.id)
        assert rec.size > 0 and len(rec.sha256) == 64
        assert rec.media_kind.value == "video"
        assert rec.captured_end is not None and rec.captured_end > rec.captured_start
        info = rec.media_info or {}
        wall = (rec.captured_end - rec.captured_start).total_seconds()
        # Duration: the probed media duration matches the capture window.
        assert info["duration_s"] == pytest.approx(wall, abs=0.25)
        item = items[rec.id]
        if not item.meta.get("partial") and wall < SEGMENT * 1.5 and item is not None:
            full.append(wall)
    # Closed segments are the configured length (the cut falls on a keyframe, 1 s apart here).
    assert len(full) >= 3
    assert sum(abs(w - SEGMENT) <= 0.6 for w in full) >= 3

    # Consecutive segments of one connection abut; capture times increase.
    starts = [r.captured_start for r in recordings]
    assert starts == sorted(starts)

    # The gap: from the end of the last footage before the kill to the first after it.
    (gap,) = agent.sources["cam-03"].gaps
    assert gap["duration_ms"] >= 2000
    assert gap["start"] <= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(killed_at + 1))
    assert gap["reason"]
    events = agent.spool.events(kind="gap")
    assert events and events[-1]["details"]["duration_ms"] == gap["duration_ms"]
    ledger = vault.ledger.events(action=Action.GAP_RECORDED, limit=10)
    assert len(ledger) == 1 and ledger[0].event.details["camera"] == "cam-03"
    ingested = vault.ledger.events(action=Action.INGESTED, limit=1000)
    assert len(ingested) == len(recordings)
    vault.ledger.verify()
    # The stop closed the segment in progress: nothing left in the spool.
    assert not agent.spool.pending()
    assert not list((agent.spool.root / "rtsp").rglob("seg0*"))
    agent.close()


def test_segment_hash_matches_the_recorded_file(
    tmp_path: Path, vault: Vault, settings: Settings, rtsp_server: RtspServer
) -> None:
    """The bytes in the vault are the bytes ffmpeg wrote (checked before the spool lets go)."""
    agent = Agent(settings, _agents(tmp_path, rtsp_server.url("cam1")), vault=vault)
    seen: dict[str, str] = {}
    real_store = agent.pipeline.store

    def store(item):  # type: ignore[no-untyped-def]
        seen[item.id] = hashlib.sha256(agent.spool.path_of(item).read_bytes()).hexdigest()
        return real_store(item)

    agent.pipeline.store = store  # type: ignore[method-assign]
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: _acknowledged(agent) >= 2, 40, "two segments")
    finally:
        agent.request_stop()
        thread.join(60)
    for item in agent.spool.items(states=(ItemState.ACKNOWLEDGED,)):
        assert vault.recording(item.recording_id).sha256 == seen[item.id]  # type: ignore[arg-type]
    agent.close()
