"""The staff-device dock: video and audio files, a file still being written, a zero-byte file,
a truncated MP4, a non-media file and a duplicate each get the right outcome, and no dock file
is deleted before its vault copy verifies."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.agent import Agent
from ingest.config import AgentsFile
from ingest.spool import ItemState
from tests.ingest.media import copy, truncate
from vault.actors import Actor, Role
from vault.storage.catalog import Recording
from vault.config import Settings
from vault.ledger.custody import Action
from vault.errors import HashMismatch
from vault.casework.search import RecordingQuery, search_recordings
from vault.vault import Vault


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for(cond: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def dock_agents(tmp_path: Path, dock: Path, **agent: object) -> AgentsFile:
    return AgentsFile.from_dict(
        {
            "agent": {
                "name": "test-agent",
                "spool_dir": str(tmp_path / "spool"),
                "clock_offset_bound_s": 2.0,
                **agent,
            },
            "sources": [
                {
                    "id": "dock-1",
                    "kind": "dock",
                    "site": "Estate office",
                    "path": str(dock),
                    "layout": "{device}/{wearer}/{file}",
                    "stable_seconds": 0.5,
                    "poll_interval_s": 0.2,
                }
            ],
        }
    )


class Running:
    """An agent on a thread, stopped (cleanly) at the end; the agent stays open for checks."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.thread = threading.Thread(target=agent.run, daemon=True)

    def __enter__(self) -> Agent:
        self.thread.start()
        return self.agent

    def __exit__(self, *exc: object) -> None:
        self.agent.request_stop()
        self.thread.join(60)
        assert not self.thread.is_alive()


@pytest.fixture
def dock(tmp_path: Path) -> Path:
    d = tmp_path / "dock"
    d.mkdir()
    return d


def test_dock_outcomes(
    tmp_path: Path, dock: Path, vault: Vault, settings: Settings, clips: dict[str, Path]
) -> None:
    officer = dock / "bwv-01" / "officer-5521"
    other = dock / "bwv-02" / "officer-6000"
    files = {
        "clip": copy(clips["video"], officer / "clip1.mp4"),
        "wav": copy(clips["wav"], officer / "rec1.wav"),
        "mp3": copy(clips["mp3"], officer / "rec2.mp3"),
        "m4a": copy(clips["m4a"], other / "rec3.m4a"),
        "dup": copy(clips["video"], officer / "clip1-again.mp4"),
    }
    hashes = {k: sha256(p) for k, p in files.items()}
    # The device's clock ran 90 s fast at offload; its sidecar says so.
    (officer / "rec1.wav.json").write_text(
        json.dumps(
            {
                "device_time": (
                    dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=90)
                ).isoformat()
            }
        )
    )
    (officer / "empty.mp4").write_bytes(b"")
    # Cut off two hours ago: past incomplete_wait_s, so refused (a recent one is waited for).
    cut = truncate(copy(clips["video2"], officer / "cut.mp4"))
    long_ago = time.time() - 7200
    os.utime(cut, (long_ago, long_ago))
    (officer / "notes.txt").write_text("handover notes\n")
    # A file still being written: half of it now, kept open.
    growing_src = clips["video2"].read_bytes()
    growing = officer / "growing.mp4"
    writer = growing.open("wb")
    writer.write(growing_src[: len(growing_src) // 2])
    writer.flush()

    agent = Agent(settings, dock_agents(tmp_path, dock), vault=vault)
    source = agent.sources["dock-1"]
    verified: set[str] = set()
    real_verify = vault.verify_recording

    def verify(recording_id: str) -> Recording:
        rec = real_verify(recording_id)
        verified.add(recording_id)
        return rec

    real_ack = source.acknowledge

    def acknowledge(item):  # type: ignore[no-untyped-def]
        assert item.recording_id in verified, "dock file deleted before its vault copy verified"
        assert (dock / item.origin).exists()
        real_ack(item)

    vault.verify_recording = verify  # type: ignore[method-assign]
    source.acknowledge = acknowledge  # type: ignore[method-assign]

    with Running(agent):
        wait_for(
            lambda: (
                not files["m4a"].exists()
                and not files["dup"].exists()
                and not files["clip"].exists()
                and not files["wav"].exists()
                and not files["mp3"].exists()
            ),
            what="the complete files",
        )
        wait_for(
            lambda: (
                (dock / "_rejected" / "bwv-01" / "officer-5521" / "notes.txt").exists()
                and (dock / "_rejected" / "bwv-01" / "officer-5521" / "cut.mp4").exists()
                and (dock / "_rejected" / "bwv-01" / "officer-5521" / "empty.mp4").exists()
            ),
            what="the refusals",
        )
        # Still open for writing: not taken, however long it sits.
        time.sleep(1.5)
        assert growing.exists()
        assert agent.spool.find("dock-1", "bwv-01/officer-5521/growing.mp4") is None
        writer.write(growing_src[len(growing_src) // 2 :])
        writer.close()
        wait_for(lambda: not growing.exists(), what="the finished file")
        wait_for(lambda: not agent.spool.pending(), what="an empty pipeline")

    recordings = {r.original_name: r for r in vault.recordings(limit=100)}
    # The clip and its duplicate are one recording, named after whichever went first.
    first = "clip1.mp4" if "clip1.mp4" in recordings else "clip1-again.mp4"
    recordings["clip1.mp4"] = recordings.pop(first)
    assert set(recordings) == {"clip1.mp4", "rec1.wav", "rec2.mp3", "rec3.m4a", "growing.mp4"}
    assert recordings["clip1.mp4"].sha256 == hashes["clip"] == hashes["dup"]
    assert recordings["rec1.wav"].sha256 == hashes["wav"]
    assert recordings["rec2.mp3"].sha256 == hashes["mp3"]
    assert recordings["rec3.m4a"].sha256 == hashes["m4a"]
    assert recordings["growing.mp4"].sha256 == hashlib.sha256(growing_src).hexdigest()
    assert recordings["rec3.m4a"].source_id == "bwv-02"
    assert recordings["rec1.wav"].media_kind.value == "audio"
    assert recordings["clip1.mp4"].media_kind.value == "video"
    for rec in recordings.values():
        vault.verify_recording(rec.id)

    # The duplicate: one recording, and its dock file went only after that copy verified.
    pair = [
        agent.spool.find("dock-1", f"bwv-01/officer-5521/{n}")
        for n in ("clip1.mp4", "clip1-again.mp4")
    ]
    assert sorted(bool(i and i.duplicate) for i in pair) == [False, True]
    assert {i.recording_id for i in pair if i} == {recordings["clip1.mp4"].id}
    # Clock: both readings kept, the 90 s offset flagged.
    clock = recordings["rec1.wav"].media_info["clock"]  # type: ignore[index]
    assert clock["flagged"] and clock["offset_s"] == pytest.approx(90, abs=5)
    assert clock["device_time"] and clock["received_at"]
    # ... and in the catalog's own columns, searchable.
    wav_rec = recordings["rec1.wav"]
    assert wav_rec.clock_flagged and wav_rec.clock_offset_ms == pytest.approx(90_000, abs=5_000)
    assert wav_rec.device_time == dt.datetime.fromisoformat(clock["device_time"])
    assert wav_rec.received_at == dt.datetime.fromisoformat(clock["received_at"])
    assert not recordings["clip1.mp4"].clock_flagged
    flagged = search_recordings(vault, RecordingQuery(clock_flagged=True),
                                actor=Actor(user="t", role=Role.ADMINISTRATOR))
    assert [r.original_name for r in flagged] == ["rec1.wav"]
    assert not (officer / "rec1.wav.json").exists()  # the sidecar went with its file

    # Refusals: moved aside with the reason beside them, recorded, never deleted.
    rejected = dock / "_rejected" / "bwv-01" / "officer-5521"
    assert "empty file" in (rejected / "empty.mp4.reason.txt").read_text()
    assert "moov" in (rejected / "cut.mp4.reason.txt").read_text()
    assert "not a media file" in (rejected / "notes.txt.reason.txt").read_text()
    assert (rejected / "cut.mp4").stat().st_size > 0

    events = vault.ledger.events(limit=1000)
    ingested = [e for e in events if e.action == Action.INGESTED]
    assert len(ingested) == 5
    details = [dict(e.event.details) for e in ingested]
    wav = next(d for d in details if d["original_name"] == "rec1.wav")
    assert (
        wav["agent_host"] == "test-agent"
        and wav["device"] == "bwv-01"
        and wav["wearer"] == "officer-5521"
    )
    assert wav["clock_flagged"] is True
    refused = [e for e in events if e.action == "ingest.rejected"]
    assert sorted(e.event.details["name"] for e in refused) == ["cut.mp4", "empty.mp4", "notes.txt"]
    vault.ledger.verify()
    agent.close()


def test_dock_file_stays_when_the_vault_copy_does_not_verify(
    tmp_path: Path, dock: Path, vault: Vault, settings: Settings, clips: dict[str, Path]
) -> None:
    clip = copy(clips["video"], dock / "bwv-01" / "officer-1" / "clip.mp4")

    def broken_verify(recording_id: str) -> Recording:
        raise HashMismatch(f"recording {recording_id}: stored copy does not match its hash")

    vault.verify_recording = broken_verify  # type: ignore[method-assign]
    agent = Agent(
        settings, dock_agents(tmp_path, dock, retry_min_s=0.2, retry_max_s=0.5), vault=vault
    )
    with Running(agent):
        wait_for(lambda: any(i.attempts >= 2 for i in agent.spool.items()), what="retries")
        assert clip.exists()
        item = agent.spool.find("dock-1", "bwv-01/officer-1/clip.mp4")
        assert (
            item is not None
            and item.state == ItemState.STORED
            and "does not match" in (item.error or "")
        )
    assert clip.exists()
    agent.close()


def test_file_outside_the_layout_without_sidecar_is_refused(
    tmp_path: Path, dock: Path, vault: Vault, settings: Settings, clips: dict[str, Path]
) -> None:
    copy(clips["wav"], dock / "loose.wav")
    sidecar_named = copy(clips["mp3"], dock / "named.mp3")
    (dock / "named.mp3.json").write_text(json.dumps({"device": "bwv-09", "wearer": "officer 7"}))
    agent = Agent(settings, dock_agents(tmp_path, dock), vault=vault)
    with Running(agent):
        wait_for(
            lambda: (dock / "_rejected" / "loose.wav").exists() and not sidecar_named.exists(),
            what="both",
        )
    assert "no device id" in (dock / "_rejected" / "loose.wav.reason.txt").read_text()
    (rec,) = vault.recordings(source_id="bwv-09")
    assert rec.original_name == "named.mp3"
    agent.close()
