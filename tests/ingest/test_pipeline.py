"""The pipeline beyond the dock: idempotent uploads, a store that is down (back-pressure, no
loss), and the status view."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ingest.agent import Agent, read_status
from ingest.config import AgentsFile, UploadSourceConfig
from ingest.spool import ItemState
from ingest.upload import ingest_files
from tests.ingest.media import copy, make_media
from tests.ingest.test_dock import wait_for
from vault.config import Settings
from vault.errors import StorageError
from vault.vault import Vault


def test_same_file_twice_is_one_recording(
    tmp_path: Path, vault: Vault, clips: dict[str, Path]
) -> None:
    config = UploadSourceConfig(id="handed-in", kind="upload", site="Front desk")
    kwargs = dict(
        config=config, spool_dir=tmp_path / "spool", agent_name="desk-pc", device="phone-1"
    )
    (first,) = ingest_files(vault, [clips["video"]], **kwargs)  # type: ignore[arg-type]
    (second,) = ingest_files(vault, [clips["video"]], **kwargs)  # type: ignore[arg-type]
    assert first.ok and second.ok
    assert first.item and second.item
    assert first.item.recording_id == second.item.recording_id
    assert not first.item.duplicate and second.item.duplicate
    (rec,) = vault.recordings()
    assert rec.source_id == "phone-1" and rec.original_name == "video.mp4"
    assert clips["video"].exists()  # an upload never touches the original
    # The spool holds no plaintext once the vault copy is verified.
    assert list((tmp_path / "spool" / "files").iterdir()) == []


def test_upload_refuses_what_is_not_media(tmp_path: Path, vault: Vault) -> None:
    junk = tmp_path / "statement.docx"
    junk.write_bytes(b"PK\x03\x04 not a video")
    config = UploadSourceConfig(id="handed-in", kind="upload")
    (result,) = ingest_files(
        vault, [junk], config=config, spool_dir=tmp_path / "spool", agent_name="a"
    )
    assert not result.ok and "not a media file" in (result.error or result.to_dict()["error"])
    assert vault.recordings() == []


def test_store_down_applies_backpressure_and_loses_nothing(
    tmp_path: Path, vault: Vault, settings: Settings
) -> None:
    dock = tmp_path / "dock"
    files = [
        make_media(dock / "bwv-01" / f"rec{i}.wav", seconds=2, frequency=300 + 100 * i)
        for i in range(4)
    ]
    size = files[0].stat().st_size
    agents = AgentsFile.from_dict(
        {
            "agent": {
                "name": "a1",
                "spool_dir": str(tmp_path / "spool"),
                "spool_limit_mb": (size * 1.5) / (1 << 20),  # room for one file, not two
                "retry_min_s": 0.2,
                "retry_max_s": 0.5,
                "status_interval_s": 0.2,
            },
            "sources": [
                {
                    "id": "dock-1",
                    "kind": "dock",
                    "path": str(dock),
                    "stable_seconds": 0.2,
                    "poll_interval_s": 0.1,
                }
            ],
        }
    )
    real_put = vault.store.put
    down = threading.Event()
    down.set()

    def put(key, data, *, length=-1):  # type: ignore[no-untyped-def]
        if down.is_set():
            raise StorageError("object store unreachable: connection refused")
        return real_put(key, data, length=length)

    vault.store.put = put  # type: ignore[method-assign]
    agent = Agent(settings, agents, vault=vault)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: agent.spool.events(kind="backpressure") != [], 20, "back-pressure")
        time.sleep(0.5)
        status = read_status(agent.spool.root)
        assert status["spool"]["backpressure"] is True
        assert status["store"]["ok"] is False and "unreachable" in status["store"]["last_error"]
        assert "back-pressure" in agent.sources["dock-1"].status()["state"]
        # Only what fits was taken; the rest waits safely in the dock.
        assert len(agent.spool.items()) == 1
        assert all(f.exists() for f in files)
        down.clear()  # the store comes back
        wait_for(lambda: not any(f.exists() for f in files), 30, "the dock to drain")
        wait_for(lambda: not agent.spool.pending(), 30, "the pipeline to finish")
    finally:
        agent.request_stop()
        thread.join(30)
    assert len(vault.recordings()) == 4
    assert len(agent.spool.items(states=(ItemState.ACKNOWLEDGED,))) == 4
    assert agent.spool.events(kind="resumed")
    agent.close()
    status = read_status(tmp_path / "spool")
    assert status["journal"]["counts"]["acknowledged"] == 4


def test_sigterm_style_stop_finishes_in_flight_work(
    tmp_path: Path, vault: Vault, settings: Settings, clips: dict[str, Path]
) -> None:
    dock = tmp_path / "dock"
    copy(clips["video"], dock / "bwv-01" / "a.mp4")
    agents = AgentsFile.from_dict(
        {
            "agent": {"name": "a1", "spool_dir": str(tmp_path / "spool")},
            "sources": [
                {
                    "id": "dock-1",
                    "kind": "dock",
                    "path": str(dock),
                    "stable_seconds": 0,
                    "poll_interval_s": 0.1,
                }
            ],
        }
    )
    agent = Agent(settings, agents, vault=vault)
    # Stop as soon as the file is spooled: the agent still finishes it before exiting.
    real = agent.context.on_spooled

    def on_spooled(item):  # type: ignore[no-untyped-def]
        real(item)
        agent.request_stop()

    agent.context.on_spooled = on_spooled
    final = agent.run()
    assert final["spool"]["counts"]["acknowledged"] == 1
    assert not (dock / "bwv-01" / "a.mp4").exists()
    agent.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_many_files_each_once(
    tmp_path: Path, vault: Vault, clips: dict[str, Path], workers: int
) -> None:
    paths = [
        copy(clips[k], tmp_path / "in" / f"{k}.{clips[k].suffix.lstrip('.')}")
        for k in ("video", "video2", "wav", "mp3", "m4a")
    ]
    config = UploadSourceConfig(id="usb", kind="upload")
    results = ingest_files(
        vault,
        paths + paths,
        config=config,
        spool_dir=tmp_path / "spool",
        agent_name="a",
        workers=workers,
    )
    assert all(r.ok for r in results)
    assert len(vault.recordings()) == 5
    assert sum(bool(r.item and r.item.duplicate) for r in results) == 5
