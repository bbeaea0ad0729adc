"""The spool journal: durable placement, recovery after a crash, one process per spool,
and back-pressure."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ingest.errors import SpoolFull, SpoolLocked
from ingest.spool import ItemState, Spool, inspect_spool
from vault.storage.catalog import SourceKind


def _add(spool: Spool, src: Path, origin: str = "a", **kw: object):  # type: ignore[no-untyped-def]
    return spool.add(
        src,
        source="dock-1",
        origin=origin,
        vault_source="bwv-1",
        source_kind=SourceKind.STAFF_DEVICE,
        **kw,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["copy", "link", "move"])
def test_add_places_the_file_and_journals_it(tmp_path: Path, mode: str) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"x" * 1000)
    with Spool(tmp_path / "spool") as spool:
        item = _add(spool, src, mode=mode)
        assert item.state == ItemState.SPOOLED
        assert spool.path_of(item).read_bytes() == b"x" * 1000
        assert (os.stat(spool.path_of(item)).st_mode & 0o777) in (0o600, 0o644)
        assert src.exists() == (mode != "move")
        assert spool.get(item.id) == item
        assert spool.find("dock-1", "a") == item
        assert spool.used_bytes() == 1000


def test_journal_survives_reopening(tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"abc")
    with Spool(tmp_path / "spool") as spool:
        item = _add(spool, src, meta={"device": "bwv-1"})
        spool.update(item, state=ItemState.PROBED, media_info={"duration_s": 2.0})
    with Spool(tmp_path / "spool") as spool:
        again = spool.get(item.id)
        assert again.state == ItemState.PROBED
        assert again.media_info == {"duration_s": 2.0} and again.meta == {"device": "bwv-1"}
        assert [i.id for i in spool.pending()] == [item.id]


def test_one_process_per_spool(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool"):
        with pytest.raises(SpoolLocked, match="in use by process"):
            Spool(tmp_path / "spool")


def test_recover_undoes_a_half_placed_copy_and_keeps_a_finished_move(tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"abc")
    moved = tmp_path / "seg.ts"
    moved.write_bytes(b"segment")
    with Spool(tmp_path / "spool") as spool:
        # A crash after the journal row, before the copy landed:
        half = _add(spool, src, origin="half")
        spool.update(half, state=ItemState.INCOMING)
        spool.path_of(half).unlink()
        # A crash after a move landed, before the state changed:
        done = _add(spool, moved, origin="moved", mode="move")
        spool.update(done, state=ItemState.INCOMING)
        # A stray file no row names:
        (spool.files_dir / "stray.bin").write_bytes(b"?")
        (spool.incoming_dir / "x.tmp").write_bytes(b"?")
        undone = spool.recover()
        assert [i.id for i in undone] == [half.id]
        assert spool.find("dock-1", "half") is None
        assert spool.get(done.id).state == ItemState.SPOOLED
        assert not (spool.files_dir / "stray.bin").exists()
        assert list(spool.incoming_dir.iterdir()) == []


def test_backpressure_waits_for_room_then_resumes(tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"x" * 600)
    with Spool(tmp_path / "spool", limit_bytes=1000) as spool:
        first = _add(spool, src, origin="1")
        assert not spool.has_room(600)
        with pytest.raises(SpoolFull, match="full"):
            spool.check_room(600)
        stop = threading.Event()
        assert spool.wait_for_room(600, stop, timeout=0.3) is False
        assert spool.backpressure
        # The vault catches up: the first item is acknowledged and its file removed.
        threading.Timer(
            0.2, lambda: spool.update(spool.remove_file(first), state=ItemState.ACKNOWLEDGED)
        ).start()
        assert spool.wait_for_room(600, stop, timeout=5) is True
        assert not spool.backpressure


def test_a_lone_file_larger_than_the_limit_still_fits(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool", limit_bytes=10) as spool:
        assert spool.has_room(10_000)


def test_inspect_reads_without_the_lock(tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"abc")
    with Spool(tmp_path / "spool") as spool:
        _add(spool, src)
        spool.log_event("gap", "no footage", source="cam-1", details={"seconds": 3})
        snap = inspect_spool(tmp_path / "spool")
        assert snap.counts["spooled"] == 1 and snap.used_bytes == 3
        assert snap.events[-1]["kind"] == "gap" and snap.events[-1]["details"] == {"seconds": 3}
