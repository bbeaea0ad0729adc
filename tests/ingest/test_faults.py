"""Ingest under faults (issue #18): files still being written, a full disk, leftovers of
killed uploads, a power cut between the catalog commit and the dock delete, dead workers, a
store outage, and the same bytes from two devices.

Real parts throughout: the agent runs as a real process where a namespace or a kill matters
(``evidence-vault ingest run``, under ``unshare`` for another PID namespace, under ``strace``
for the power cut), media are made by ffmpeg on the fly, the full disk is a real tmpfs, the
outage is a real MinIO frozen with SIGSTOP.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.agent import Agent, read_status
from ingest.config import AgentsFile
from ingest.errors import SpoolError
from ingest.pipeline import CRASH_ENV, retry_delay
from ingest.spool import ItemState, inspect_spool
from tests.ingest.media import copy, make_media
from vault.config import Settings
from vault.errors import StorageError
from vault.storage.objectstore import S3Store
from vault.vault import Vault

ROOT = Path(__file__).resolve().parents[2]

AGENTS = """
[agent]
name = "fault-agent"
spool_dir = "{spool}"
workers = 2
retry_min_s = 0.2
retry_max_s = 2
store_probe_s = 0.5
shutdown_grace_s = 20
{extra}

[[sources]]
id = "dock-1"
kind = "dock"
path = "{dock}"
layout = "{{device}}/{{file}}"
stable_seconds = 0.5
poll_interval_s = 0.2
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_for(cond: Callable[[], bool], timeout: float = 60, what: str = "condition") -> float:
    """Wait until ``cond()``; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "true"],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _agent(
    home: Path,
    config: Path,
    log: Path,
    *,
    prefix: list[str] | None = None,
    crash: str | None = None,
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "EVIDENCE_VAULT_HOME": str(home)}
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    code = (
        "import sys; from api.cli.ingest import ingest_app; "
        "sys.exit(ingest_app(['run', '--config', sys.argv[1]]))"
    )
    out = log.open("ab")
    try:
        return subprocess.Popen(
            [*(prefix or []), sys.executable, "-c", code, str(config)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    finally:
        out.close()


@contextlib.contextmanager
def agent_process(
    home: Path, config: Path, log: Path, *, prefix: list[str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = _agent(home, config, log, prefix=prefix)
    try:
        yield proc
        # ``unshare --fork`` passes no signal on: stop the agent itself (its child).
        for pid in _children(proc.pid) if prefix else [proc.pid]:
            os.kill(pid, signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _drained(spool: Path, dock: Path) -> bool:
    if any(p.is_file() for p in dock.rglob("*")):
        return False
    try:
        snap = inspect_spool(spool)
    except SpoolError:
        return False
    return not any(snap.counts[s] for s in ("incoming", "spooled", "probed", "stored"))


# -- 1. files still being written ------------------------------------------------------------


def _write_slowly(path: Path, data: bytes, *, hold_open: bool, pause: float, parts: int) -> None:
    """A device flushing slowly: ``parts`` chunks with ``pause`` seconds between them, either
    through one open file or reopening it (append) for each chunk."""
    step = -(-len(data) // parts)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    if hold_open:
        with path.open("wb") as f:
            for n, chunk in enumerate(chunks):
                f.write(chunk)
                f.flush()
                if n < len(chunks) - 1:
                    time.sleep(pause)
        return
    for n, chunk in enumerate(chunks):
        with path.open("ab") as f:
            f.write(chunk)
        if n < len(chunks) - 1:
            time.sleep(pause)


@pytest.mark.slow
@pytest.mark.parametrize("namespace", ["same", "other"])
@pytest.mark.parametrize("hold_open", [True, False], ids=["held-open", "reopened"])
@pytest.mark.parametrize("fmt", ["wav", "mp4"])
def test_growing_file_is_ingested_whole_and_deleted_only_after(
    tmp_path: Path, clips: dict[str, Path], fmt: str, hold_open: bool, namespace: str
) -> None:
    """Issue #18 finding 1: a device file still being written, with pauses longer than the
    stable time, held open or reopened per chunk, seen from the writer's PID namespace or
    from another one (the agent under ``unshare``, as in its container), is ingested only
    when whole and deleted from the dock only after that; nothing is refused or lost."""
    prefix: list[str] = []
    if namespace == "other":
        if not _unshare_works():
            pytest.skip("unshare --pid --mount-proc is not permitted on this machine")
        # The agent in its own PID namespace with its own /proc: the writer (this test
        # process) is invisible to a /proc scan there, as a host writer is to a container.
        prefix = ["unshare", "--pid", "--fork", "--mount-proc"]
    home, dock, spool = tmp_path / "home", tmp_path / "dock", tmp_path / "spool"
    Vault.init(Settings(home=home)).close()
    source = make_media(tmp_path / f"full.{fmt}", seconds=4, frequency=523)
    data = source.read_bytes()
    target = dock / "bwv-07" / f"rec.{fmt}"
    target.parent.mkdir(parents=True)
    config = tmp_path / "agents.toml"
    config.write_text(AGENTS.format(spool=spool, dock=dock, extra=""))
    log = tmp_path / "agent.log"

    with agent_process(home, config, log, prefix=prefix):
        # The agent is up and scanning before the device starts writing.
        wait_for(lambda: (spool / "status.json").exists(), what="the agent to start")
        _write_slowly(target, data, hold_open=hold_open, pause=1.6, parts=3)
        wait_for(lambda: _drained(spool, dock), what="the finished file to be ingested")

    with Vault.open(Settings(home=home)) as vault:
        recordings = vault.recordings(source_id="bwv-07")
        assert [r.sha256 for r in recordings] == [sha256(data)], log.read_text()[-3000:]
        vault.verify_recording(recordings[0].id)
    assert not (dock / "_rejected").exists() or not any((dock / "_rejected").rglob("*"))
    snap = inspect_spool(spool)
    assert snap.counts["rejected"] == 0 and snap.counts["acknowledged"] == 1


def test_truncated_looking_file_modified_lately_waits_then_is_refused(
    tmp_path: Path, vault: Vault, settings: Settings, clips: dict[str, Path]
) -> None:
    """Issue #18 finding 1: a WAV whose header declares more data than it holds is "not yet
    complete" while it was modified within incomplete_wait_s (no refusal, nothing moved),
    and refused with the reason once that has passed; the probe refuses such a WAV too
    (libavformat alone plays it)."""
    from ingest.errors import NotMedia
    from ingest.probe import incomplete_reason, probe

    dock = tmp_path / "dock"
    half = dock / "bwv-03" / "half.wav"
    copy(clips["wav"], half)
    data = half.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    assert "declares" in (incomplete_reason(half) or "")
    with pytest.raises(NotMedia, match="truncated: the RIFF header declares"):
        probe(half)
    agents = AgentsFile.from_dict(
        {
            "agent": {"name": "t", "spool_dir": str(tmp_path / "spool")},
            "sources": [
                {
                    "id": "dock-1",
                    "kind": "dock",
                    "path": str(dock),
                    "stable_seconds": 0,
                    "incomplete_wait_s": 60,
                }
            ],
        }
    )
    with Agent(settings, agents, vault=vault) as agent:
        source = agent.sources["dock-1"]
        assert source.scan_once() == []  # type: ignore[attr-defined]
        waiting = agent.spool.events(kind="waiting")
        assert waiting and "looks incomplete" in waiting[-1]["message"]
        long_ago = time.time() - 120
        os.utime(half, (long_ago, long_ago))
        (item,) = source.scan_once()  # type: ignore[attr-defined]
        item = agent.pipeline.process(item)
        assert item.state == ItemState.REJECTED and "declares" in (item.error or "")
    assert (dock / "_rejected" / "bwv-03" / "half.wav").exists()


def test_dock_keeps_a_file_that_changed_after_its_copy_was_made(
    tmp_path: Path, vault: Vault, settings: Settings, clips: dict[str, Path]
) -> None:
    """Issue #18 finding 1: between the verified copy and the delete, a writer appends (or
    rewrites in place, same size): the dock keeps the file (size, mtime, inode and ctime are
    compared under a lease) and offers it again; the new version reaches the vault too."""
    dock = tmp_path / "dock"
    clip = copy(clips["wav"], dock / "bwv-04" / "a.wav")
    agents = AgentsFile.from_dict(
        {
            "agent": {"name": "t", "spool_dir": str(tmp_path / "spool")},
            "sources": [
                {"id": "dock-1", "kind": "dock", "path": str(dock), "stable_seconds": 0}
            ],
        }
    )
    with Agent(settings, agents, vault=vault) as agent:
        source = agent.sources["dock-1"]
        (item,) = source.scan_once()  # type: ignore[attr-defined]
        item = agent.pipeline.probe(item)
        item = agent.pipeline.store(item)
        # Same size, same mtime set back: only the ctime tells it changed.
        st = clip.stat()
        with clip.open("r+b") as f:
            f.seek(st.st_size - 2)
            f.write(b"\x01\x02")
        os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
        item = agent.pipeline.acknowledge(item)
        assert clip.exists()
        assert "changed since its verified copy" in agent.spool.events(kind="changed")[-1]["message"]
        (again,) = source.scan_once()  # type: ignore[attr-defined]
        again = agent.pipeline.process(again)
        assert again.state == ItemState.ACKNOWLEDGED and not clip.exists()
    assert len(vault.recordings(source_id="bwv-04")) == 2


# -- 2. a full disk, dead workers, the free-space floor ----------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A real small file system at ``path`` (root and ``mount -t tmpfs`` needed, else skip)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(disk: Path, leave_bytes: int) -> Path:
    """A ballast file that leaves about ``leave_bytes`` free on ``disk``."""
    ballast = disk / "ballast"
    free = shutil.disk_usage(disk).free
    with ballast.open("wb") as f:
        remaining = max(0, free - leave_bytes)
        while remaining:
            n = min(remaining, 1 << 20)
            f.write(b"\0" * n)
            remaining -= n
    return ballast


@pytest.mark.slow
def test_full_disk_workers_survive_and_recover_without_restart(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    """Issue #18 finding 2: the home (catalog, store) and the spool on a small file system
    that fills mid-ingest. The spool journal cannot be written ("database or disk is full"),
    yet no worker dies, and once space is freed everything is ingested without a restart."""
    with tmpfs(tmp_path / "disk", 48) as disk:
        settings = Settings(home=disk / "home")
        Vault.init(settings).close()
        dock = tmp_path / "dock"  # another disk: the devices' side
        files = [
            copy(clips["video"], dock / "bwv-01" / "a.mp4"),
            copy(clips["video2"], dock / "bwv-01" / "b.mp4"),
            copy(clips["wav"], dock / "bwv-02" / "c.wav"),
            copy(clips["mp3"], dock / "bwv-02" / "d.mp3"),
        ]
        hashes = sorted(sha256(p.read_bytes()) for p in files)
        agents = AgentsFile.from_dict(
            {
                "agent": {
                    "name": "t",
                    "spool_dir": str(disk / "spool"),
                    "min_free_mb": 0,  # let the disk really fill (the floor is tested below)
                    "retry_min_s": 0.2,
                    "retry_max_s": 30,
                    "store_probe_s": 0.3,
                },
                "sources": [
                    {
                        "id": "dock-1",
                        "kind": "dock",
                        "path": str(dock),
                        "stable_seconds": 0,
                        "poll_interval_s": 0.2,
                        "spool_mode": "copy",
                    }
                ],
            }
        )
        with Vault.open(settings) as vault, Agent(settings, agents, vault=vault) as agent:
            agent.spool  # journal created before the disk fills
            ballast = _fill(disk, 64 << 10)
            runner = threading.Thread(target=agent.run, daemon=True)
            runner.start()
            try:
                wait_for(lambda: agent.live_workers() == 2, what="workers")
                # Let the workers run into the full disk for a while.
                time.sleep(4)
                assert agent.live_workers() == 2, "a worker died on the full disk"
                assert all(p.exists() for p in files)  # nothing left the dock unverified
                ballast.unlink()
                freed = time.monotonic()
                wait_for(lambda: not any(p.exists() for p in files), 60, "recovery")
                wait_for(lambda: not agent.spool.pending(), 30, "an empty pipeline")
                recovery = time.monotonic() - freed
                assert agent.live_workers() == 2
            finally:
                agent.request_stop()
                runner.join(60)
            stored = sorted(r.sha256 for r in vault.recordings(limit=100))
            assert stored == hashes
            for rec in vault.recordings(limit=100):
                vault.verify_recording(rec.id)
            vault.ledger.verify()
        # The store probe woke the waiting items: well under the 30 s retry cap.
        assert recovery < 20, recovery


def test_worker_survives_a_failure_path_that_fails(
    tmp_path: Path, vault: Vault, settings: Settings, clips: dict[str, Path]
) -> None:
    """Issue #18 finding 2: the store fails and so does journalling the failure (the spool
    journal on a full disk): the worker lives on, holds the item in memory and finishes it
    once both answer. (The old loop let that second exception end the worker thread.)"""
    dock = tmp_path / "dock"
    clip = copy(clips["wav"], dock / "bwv-05" / "a.wav")
    agents = AgentsFile.from_dict(
        {
            "agent": {
                "name": "t",
                "spool_dir": str(tmp_path / "spool"),
                "workers": 1,
                "retry_min_s": 0.1,
                "retry_max_s": 0.5,
                "store_probe_s": 0.2,
            },
            "sources": [
                {"id": "dock-1", "kind": "dock", "path": str(dock), "stable_seconds": 0}
            ],
        }
    )
    agent = Agent(settings, agents, vault=vault)
    failures = {"store": 3, "journal": 3}
    real_store, real_fail = agent.pipeline.store, agent.pipeline.fail

    def store(item):  # type: ignore[no-untyped-def]
        if failures["store"] > 0:
            failures["store"] -= 1
            raise StorageError("cannot store object: disk full")
        return real_store(item)

    def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
        if failures["journal"] > 0:
            failures["journal"] -= 1
            raise SpoolError("spool journal cannot be written: database or disk is full")
        return real_fail(*args, **kwargs)

    agent.pipeline.store = store  # type: ignore[method-assign]
    agent.pipeline.fail = fail  # type: ignore[method-assign]
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: not clip.exists(), 30, "the file to be ingested")
        assert agent.live_workers() == 1
        assert failures == {"store": 0, "journal": 0}
    finally:
        agent.request_stop()
        runner.join(30)
        agent.close()


def test_status_is_unhealthy_without_live_workers(
    tmp_path: Path, vault: Vault, settings: Settings
) -> None:
    """Issue #18 finding 2: the status file counts live workers; ``read_status`` (and so
    ``ingest status``, the compose healthcheck, exit 1) calls an agent with none, or with a
    status file gone stale, unhealthy."""
    from typer.testing import CliRunner

    from api.cli.ingest import ingest_app

    agents = AgentsFile.from_dict({"agent": {"name": "t", "spool_dir": str(tmp_path / "sp")}})
    with Agent(settings, agents, vault=vault) as agent:
        agent.write_status()  # no worker threads started: none alive
        status = read_status(agent.spool.root)
        assert status["running"] and status["live_workers"] == 0 and not status["healthy"]
        assert "no live pipeline workers" in status["problems"][0]
        result = CliRunner().invoke(
            ingest_app,
            ["status", "--spool", str(agent.spool.root)],
            env={"EVIDENCE_VAULT_HOME": str(settings.home)},
        )
        assert result.exit_code == 1 and "UNHEALTHY" in result.stdout
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
        assert read_status(agent.spool.root, now=later)["stale"]


@pytest.mark.slow
def test_every_intake_keeps_the_free_space_floor(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    """Issue #18 finding 2: dock intake waits (back-pressure, logged) while spooling a file
    would take the spool disk below min_free_mb, instead of filling the disk the store needs,
    and resumes by itself once there is room."""
    with tmpfs(tmp_path / "disk", 24) as disk:
        settings = Settings(home=tmp_path / "home")
        Vault.init(settings).close()
        dock = tmp_path / "dock"
        clip = copy(clips["video2"], dock / "bwv-06" / "a.mp4")
        agents = AgentsFile.from_dict(
            {
                "agent": {"name": "t", "spool_dir": str(disk / "spool"), "min_free_mb": 8},
                "sources": [
                    {
                        "id": "dock-1",
                        "kind": "dock",
                        "path": str(dock),
                        "stable_seconds": 0,
                        "poll_interval_s": 0.2,
                        "spool_mode": "copy",
                    }
                ],
            }
        )
        with Vault.open(settings) as vault, Agent(settings, agents, vault=vault) as agent:
            ballast = _fill(disk, 6 << 20)  # 6 MiB free: below the 8 MiB floor
            runner = threading.Thread(target=agent.run, daemon=True)
            runner.start()
            try:
                wait_for(
                    lambda: bool(agent.spool.events(kind="backpressure")), 20, "back-pressure"
                )
                assert agent.spool.counts()["spooled"] == 0 and clip.exists()
                assert shutil.disk_usage(disk).free >= 5 << 20  # nothing copied in
                ballast.unlink()
                wait_for(lambda: not clip.exists(), 30, "intake to resume")
            finally:
                agent.request_stop()
                runner.join(30)
            assert len(vault.recordings(source_id="bwv-06")) == 1


# -- 3. leftovers of killed uploads -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["during_upload", "after_upload"])
def test_kill_leftovers_are_swept_at_agent_start(
    tmp_path: Path, clips: dict[str, Path], stage: str
) -> None:
    """Issue #18 finding 3: an agent killed during an upload leaves a ``.tmp-*`` partial in
    the local store, one killed after it an orphan object (no catalog row, unreadable);
    the next agent start sweeps both once older than sweep_after_s, logs it, and ingests
    the file once."""
    home, dock, spool = tmp_path / "home", tmp_path / "dock", tmp_path / "spool"
    settings = Settings(home=home)
    Vault.init(settings).close()
    clip = copy(clips["video2"], dock / "bwv-01" / "clip.mp4")
    data = clip.read_bytes()
    config = tmp_path / "agents.toml"
    config.write_text(AGENTS.format(spool=spool, dock=dock, extra="sweep_after_s = 1"))
    log = tmp_path / "agent.log"
    first = _agent(home, config, log, crash=stage)
    try:
        assert first.wait(90) == -signal.SIGKILL, log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    objects = settings.home / "objects"
    leftovers = [p for p in objects.rglob("*") if p.is_file()]
    assert leftovers, "the kill left nothing behind to sweep"
    time.sleep(1.2)  # older than sweep_after_s
    with agent_process(home, config, log):
        wait_for(lambda: _drained(spool, dock), what="the restart to finish")
        # A running agent with live workers is healthy: `ingest status` exits 0.
        status = subprocess.run(
            [sys.executable, "-c", "import sys; from api.cli.ingest import ingest_app; "
             "sys.exit(ingest_app(['status', '--spool', sys.argv[1], '--json']))", str(spool)],
            cwd=ROOT, env={**os.environ, "EVIDENCE_VAULT_HOME": str(home)},
            capture_output=True, text=True, timeout=60,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        assert '"live_workers": 2' in status.stdout
    for path in leftovers:
        assert not path.exists(), f"{path} was not swept"
    with Vault.open(settings) as vault:
        (rec,) = vault.recordings(source_id="bwv-01")
        assert rec.sha256 == sha256(data)
        assert vault.orphans(older_than=dt.timedelta(0)) == []
        kept = {r.object_key for r in vault.recordings(limit=10)}
    assert {p.relative_to(objects).as_posix() for p in objects.rglob("*") if p.is_file()} == kept
    assert "swept" in log.read_text()
    assert any(e["kind"] == "swept" for e in inspect_spool(spool, events=100).events)


def test_sweep_leaves_young_leftovers_alone(vault: Vault) -> None:
    """Issue #18 finding 3: a temp file or object younger than the threshold may be an
    upload in progress (another agent's): the sweep keeps it."""
    import io

    root = vault.store.root  # type: ignore[attr-defined]
    (root / "recordings").mkdir(parents=True, exist_ok=True)
    young = root / "recordings" / ".tmp-0123456789abcdef"
    young.write_bytes(b"x" * 100)
    vault.store.put("recordings/orphan-young", io.BytesIO(b"y" * 10))
    swept = vault.sweep_leftovers(older_than=dt.timedelta(minutes=5))
    assert swept.orphans == [] and swept.partials == []
    assert young.exists() and vault.store.exists("recordings/orphan-young")
    later = vault.sweep_leftovers(older_than=dt.timedelta(0))
    assert later.orphans == ["recordings/orphan-young"] and later.orphan_bytes == 10
    assert later.partials == ["recordings/.tmp-0123456789abcdef"] and later.partial_bytes == 100
    assert not young.exists()


def test_unfinished_multipart_uploads_are_swept(make_s3_store: Callable[..., S3Store]) -> None:
    """Issue #18 finding 3: on S3 a killed upload leaves an unfinished multipart upload
    (billed, invisible to listings); the sweep lists and aborts it once old enough."""
    store = make_s3_store()
    client = store._ready()
    upload_id = client._create_multipart_upload(store.bucket, "recordings/killed", {})
    client._upload_part(store.bucket, "recordings/killed", b"z" * (5 << 20), None, upload_id, 1)
    now = dt.datetime.now(dt.timezone.utc)
    assert store.partials(dt.timedelta(hours=1), now=now) == []
    (partial,) = store.partials(dt.timedelta(0), now=now + dt.timedelta(seconds=5))
    assert partial.key == "recordings/killed" and partial.handle == upload_id
    store.remove_partial(partial)
    assert store.partials(dt.timedelta(0), now=now + dt.timedelta(seconds=5)) == []
    store.remove_partial(partial)  # gone already: fine


# -- power cut between the catalog commit and the dock delete ---------------------------------

_WRITE = re.compile(r"pwrite64\((\d+)<([^>]*)>, .*?, (\d+), (\d+)\) = (\d+)")
_SYNC = re.compile(r"f(?:data)?sync\((\d+)<([^>]*)>\) = 0")


def _durable_length(trace: str, wal: str) -> int:
    """How many bytes of ``wal`` a power cut at the end of ``trace`` keeps: the extent of
    the writes before its last fsync/fdatasync (later writes were only in the page cache)."""
    extent = durable = 0
    for line in trace.splitlines():
        if (m := _WRITE.search(line)) and m.group(2) == wal:
            extent = max(extent, int(m.group(4)) + int(m.group(5)))
        elif (m := _SYNC.search(line)) and m.group(2) == wal:
            durable = extent
    return durable


@pytest.mark.slow
def test_power_cut_between_catalog_commit_and_dock_delete_loses_nothing(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    """Issue #18, power cut: the catalog runs ``synchronous=NORMAL``. The agent is killed
    right before the dock delete and the power cut is simulated by cutting the catalog's WAL
    back to what was fsynced (from an strace of the run): the recording's row must survive,
    or the dock would have deleted the only other copy of that footage."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    home, dock, spool = tmp_path / "home", tmp_path / "dock", tmp_path / "spool"
    settings = Settings(home=home)
    Vault.init(settings).close()
    clip = copy(clips["wav"], dock / "bwv-01" / "rec.wav")
    config = tmp_path / "agents.toml"
    config.write_text(AGENTS.format(spool=spool, dock=dock, extra=""))
    log, trace_path = tmp_path / "agent.log", tmp_path / "trace.txt"
    strace = ["strace", "-f", "-qq", "-y", "-s", "0", "-o", str(trace_path),
              "-e", "trace=pwrite64,fsync,fdatasync"]
    probe = subprocess.run([*strace, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.strip()[:200]}")
    agent = _agent(home, config, log, prefix=strace, crash="before_source_delete")
    try:
        agent.wait(120)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert "crash test: killing the agent at before_source_delete" in log.read_text()
    assert clip.exists()
    database = Path(settings.catalog_url.removeprefix("sqlite:///"))
    wal = Path(f"{database}-wal")
    # The power cut: the database file as it is (SQLite syncs it at every checkpoint), the
    # WAL cut back to its fsynced extent.
    cut = tmp_path / "after-power-cut"
    cut.mkdir()
    shutil.copy2(database, cut / database.name)
    if wal.exists():
        kept = _durable_length(trace_path.read_text(), str(wal.resolve()))
        (cut / wal.name).write_bytes(wal.read_bytes()[:kept])
    db = sqlite3.connect(cut / database.name)
    try:
        rows = db.execute("SELECT sha256 FROM recordings").fetchall()
    finally:
        db.close()
    assert rows == [(sha256(clip.read_bytes()),)], "the committed row did not survive the cut"


# -- store outage: jittered back-off, woken when the store answers ----------------------------


def test_retry_delay_is_jittered_and_capped() -> None:
    """Issue #18, store outage: retries after one outage are spread (equal jitter), each at
    least half and at most the capped exponential delay."""
    delays = [retry_delay(6, retry_min_s=1, retry_max_s=60) for _ in range(200)]
    assert all(16 <= d <= 32 for d in delays)
    assert len({round(d, 3) for d in delays}) > 100
    assert all(30 <= retry_delay(20, retry_min_s=1, retry_max_s=60) <= 60 for _ in range(50))


@pytest.mark.minio
@pytest.mark.slow
def test_store_outage_items_are_woken_when_the_store_answers(
    tmp_path: Path, minio_server: object, clips: dict[str, Path]
) -> None:
    """Issue #18, store outage: MinIO frozen (SIGSTOP) while three files arrive; each item
    fails and is given a long retry delay. When the store answers again every item is
    retried at once (the agent probes it), not after its own back-off."""
    from tests.servers import S3Server

    server = minio_server
    assert isinstance(server, S3Server) and server._process is not None
    settings = Settings(home=tmp_path / "home")
    Vault.init(settings).close()
    dock = tmp_path / "dock"
    agents = AgentsFile.from_dict(
        {
            "agent": {
                "name": "t",
                "spool_dir": str(tmp_path / "spool"),
                "retry_min_s": 40,
                "retry_max_s": 60,
                "store_probe_s": 0.5,
            },
            "sources": [
                {"id": "dock-1", "kind": "dock", "path": str(dock), "stable_seconds": 0}
            ],
        }
    )
    with Vault.open(settings) as vault:
        vault.store = S3Store(
            server.endpoint,
            server.access_key,
            server.secret_key,
            f"outage-{os.getpid()}-{time.monotonic_ns() % 10**6}",
            region=server.region,
            connect_timeout=1,
            read_timeout=1.5,
        )
        vault.store.check()
        agent = Agent(settings, agents, vault=vault)
        runner = threading.Thread(target=agent.run, daemon=True)
        runner.start()
        pgid = server._process.proc.pid
        os.killpg(pgid, signal.SIGSTOP)
        try:
            files = [
                copy(clips["wav"], dock / "bwv-01" / "a.wav"),
                copy(clips["mp3"], dock / "bwv-01" / "b.mp3"),
                copy(clips["m4a"], dock / "bwv-02" / "c.m4a"),
            ]
            wait_for(
                lambda: sum(1 for i in agent.spool.items() if i.attempts >= 1) == 3,
                60,
                "every item to fail once",
            )
        finally:
            os.killpg(pgid, signal.SIGCONT)
        back = time.monotonic()
        wait_for(lambda: not any(p.exists() for p in files), 30, "the items after the outage")
        recovery = time.monotonic() - back
        agent.request_stop()
        runner.join(30)
        agent.close()
        assert len(vault.recordings(limit=10)) == 3
    assert recovery < 15, f"items waited out their back-off ({recovery:.1f} s)"


# -- the same bytes from two devices -------------------------------------------------------------


def test_same_bytes_from_two_devices_are_kept_and_flagged(
    tmp_path: Path, vault: Vault, settings: Settings, clips: dict[str, Path]
) -> None:
    """Issue #18, cross-device duplicates: the same bytes offloaded from two devices stay two
    recordings (each device's custody, retention and organisation are its own), and the
    second is flagged: a ``same_bytes`` spool event and an ``ingest.same_bytes`` custody
    event naming the first."""
    dock = tmp_path / "dock"
    copy(clips["wav"], dock / "bwv-01" / "a.wav")
    agents = AgentsFile.from_dict(
        {
            "agent": {"name": "t", "spool_dir": str(tmp_path / "spool")},
            "sources": [
                {"id": "dock-1", "kind": "dock", "path": str(dock), "stable_seconds": 0}
            ],
        }
    )
    with Agent(settings, agents, vault=vault) as agent:
        source = agent.sources["dock-1"]
        (first,) = source.scan_once()  # type: ignore[attr-defined]
        first = agent.pipeline.process(first)
        copy(clips["wav"], dock / "bwv-02" / "a-copy.wav")
        (second,) = source.scan_once()  # type: ignore[attr-defined]
        second = agent.pipeline.process(second)
        assert not second.duplicate and second.recording_id != first.recording_id
        (event,) = agent.spool.events(kind="same_bytes")
        assert first.recording_id in event["message"]
    (flag,) = [e for e in vault.ledger.events(limit=100) if e.action == "ingest.same_bytes"]
    assert flag.event.details["recording_id"] == second.recording_id
    assert flag.event.details["same_as"] == [
        {"recording_id": first.recording_id, "device": "bwv-01"}
    ]
    vault.ledger.verify()


def test_upload_keeps_the_free_space_floor(
    tmp_path: Path, vault: Vault, clips: dict[str, Path]
) -> None:
    """Issue #18 finding 2: ``ingest file`` (uploads) keeps the floor too: a spool copy that
    would take the disk below min_free is not made, the result says why, the original stays."""
    from ingest.config import UploadSourceConfig
    from ingest.upload import ingest_files

    clip = copy(clips["wav"], tmp_path / "handed-in.wav")
    free = shutil.disk_usage(tmp_path).free
    (result,) = ingest_files(
        vault,
        [clip],
        config=UploadSourceConfig(id="upload", kind="upload"),
        spool_dir=tmp_path / "upload-spool",
        agent_name="t",
        min_free_bytes=free,  # any copy crosses it
    )
    assert not result.ok and "floor (min_free_mb)" in (result.error or "")
    assert clip.exists() and vault.recordings(limit=10) == []
    (ok,) = ingest_files(
        vault,
        [clip],
        config=UploadSourceConfig(id="upload", kind="upload"),
        spool_dir=tmp_path / "upload-spool",
        agent_name="t",
    )
    assert ok.ok
