"""Fault drills against a real ingest agent (``evidence-vault ingest run``): kills, a full
disk, a store outage and files still being written. Issue #18's "Must show".

    python benchmarks/fault_drill.py                    # every drill this machine allows
    python benchmarks/fault_drill.py --files 40 --max-mb 20 --kills 30
    python benchmarks/fault_drill.py --drills kill,growing

Each drill has its own vault and dock of real media made with ffmpeg (WAV and H.264 MP4,
1 to ``--max-mb`` MB), and ends with a restart after ``sweep_after_s`` so the agent sweeps
what killed uploads left. Then it counts, from the dock, the catalog and the store:

- ``files``: distinct recordings offered (the same bytes under two names count once);
- ``ingested``: of those, how many the vault holds with the original's SHA-256;
- ``duplicates``: recordings beyond one per device and SHA-256;
- ``lost``: files that left the dock with no verified copy in the vault (and not refused
  into ``_rejected/``); a vault recording that is a *part* of an offered file counts too;
- ``orphans``: store objects with no catalog row, and unfinished uploads (temp files,
  multipart uploads), after the final start's sweep;
- ``recovery``: seconds from the end of a fault (space freed, store back) to an empty
  spool, with the agent never restarted.

The drills:

1. ``kill``: ``--kills`` SIGKILLs at random moments across the run, each followed by a
   restart; two names for the same bytes in the dock.
2. ``full-disk``: the vault home and the spool on a small tmpfs (root and ``mount`` needed),
   filled with ballast mid-ingest; the ballast is removed and the agent must finish alone.
3. ``store``: the vault on a real MinIO (``~/.cache/evidence-vault/bin/minio`` or
   ``$EVIDENCE_VAULT_MINIO_BIN``), frozen with SIGSTOP and later killed and restarted on
   the same port mid-ingest; the retry cap stays at its 60 s default, so recovery shows
   the wake-up when the store answers.
4. ``growing``: devices appending WAV and MP4 in chunks with pauses longer than the
   stable time, holding the file open or reopening it, while the agent runs in its own PID
   namespace (``unshare``, as in its container) where the machine allows.

Custody is verified after every drill. Ends with one summary line; lost, duplicates and
orphans must all be 0 (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest._ffmpeg import ffmpeg_exe  # noqa: E402
from ingest.errors import SpoolError  # noqa: E402
from ingest.spool import inspect_spool  # noqa: E402
from vault.config import Settings  # noqa: E402
from vault.storage.catalog import Recording  # noqa: E402
from vault.storage.paging import page_cursor  # noqa: E402
from vault.vault import Vault  # noqa: E402

MB = 1_000_000
DRILLS = ("kill", "full-disk", "store", "growing")
AGENT_CODE = (
    "import sys; from api.cli.ingest import ingest_app; "
    "sys.exit(ingest_app(['run', '--config', sys.argv[1]]))"
)


@dataclass
class Result:
    """What one drill counted."""

    drill: str
    files: int = 0
    ingested: int = 0
    duplicates: int = 0
    lost: int = 0
    orphans: int = 0
    recovery_s: list[float] = field(default_factory=list)
    note: str = ""
    seen: dict[str, int] = field(default_factory=dict)  # agent events: proof the fault hit

    def line(self) -> str:
        rec = ", ".join(f"{r:.1f} s" for r in self.recovery_s) or "-"
        seen = ", ".join(f"{k} {v}" for k, v in sorted(self.seen.items()))
        return (
            f"{self.drill:<10} files {self.files:3d}  ingested {self.ingested:3d}  duplicates "
            f"{self.duplicates}  lost {self.lost}  orphans {self.orphans}  recovery {rec}"
            + (f"  ({self.note})" if self.note else "")
            + (f"  [agent saw: {seen}]" if seen else "")
        )


# -- media ------------------------------------------------------------------------------------


def make_file(path: Path, index: int, size_mb: float) -> Path:
    """A real recording of about ``size_mb`` MB: WAV (48 kHz mono) or H.264 MP4, by index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".wav":
        seconds = max(1.0, size_mb * MB / 96_000)
        args = ["-f", "lavfi", "-i", f"sine=frequency={180 + 17 * index}:sample_rate=48000",
                "-ac", "1", "-t", f"{seconds:.2f}"]
    else:
        seconds = 4.0
        rate = int(size_mb * MB * 8 / seconds)
        args = ["-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={seconds}",
                "-f", "lavfi", "-i", f"sine=frequency={300 + 11 * index}:duration={seconds}",
                "-c:v", "libx264", "-preset", "ultrafast", "-b:v", str(rate),
                "-minrate", str(rate), "-maxrate", str(rate), "-bufsize", str(rate),
                "-x264-params", "nal-hrd=cbr", "-pix_fmt", "yuv420p", "-c:a", "aac",
                "-t", str(seconds)]
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args, str(path)],
                   check=True, capture_output=True, timeout=600)
    return path


def make_dock(root: Path, count: int, max_mb: float, seed: int) -> dict[Path, str]:
    """``count`` recordings under ``root/<device>/``; returns path -> SHA-256."""
    rng = random.Random(seed)
    files: dict[Path, str] = {}
    for i in range(count):
        ext = ".wav" if i % 2 else ".mp4"
        path = root / f"bwv-{i % 4:02d}" / f"rec-{seed}-{i:03d}{ext}"
        make_file(path, i + seed * 100, rng.uniform(1.0, max_mb))
        files[path] = sha256(path)
    return files


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- the agent --------------------------------------------------------------------------------


AGENTS = """
[agent]
name = "drill-agent"
spool_dir = "{spool}"
workers = 2
min_free_mb = {min_free}
retry_min_s = 1
store_probe_s = 1
sweep_after_s = 2
shutdown_grace_s = 30

[[sources]]
id = "dock"
kind = "dock"
path = "{dock}"
layout = "{{device}}/{{file}}"
stable_seconds = 1
poll_interval_s = 0.3
spool_mode = "{mode}"
"""


class Run:
    """One drill's vault, dock, spool and agent process."""

    def __init__(self, base: Path, env: dict[str, str], *, min_free: int = 64,
                 mode: str = "link", prefix: list[str] | None = None) -> None:
        self.base = base
        self.dock = base / "dock"
        self.dock.mkdir(parents=True, exist_ok=True)
        self.home = Path(env["EVIDENCE_VAULT_HOME"])
        self.spool = Path(env.get("DRILL_SPOOL", str(base / "spool")))
        self.env = {**os.environ, **env}
        self.prefix = prefix or []
        self.config = base / "agents.toml"
        self.config.write_text(AGENTS.format(spool=self.spool, dock=self.dock,
                                             min_free=min_free, mode=mode))
        self.log = base / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.settings = Settings(**_settings_from(env))  # type: ignore[arg-type]
        Vault.init(self.settings).close()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([*self.prefix, sys.executable, "-c", AGENT_CODE,
                                          str(self.config)], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=out)

    def wait_up(self, timeout: float = 60) -> None:
        """Wait until the agent started last has written its status file (it is working)."""
        started = time.time()
        status = self.spool / "status.json"
        while time.time() - started < timeout:
            with contextlib.suppress(OSError):
                if status.stat().st_mtime > started:
                    return
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for pid in _children(self.proc.pid) if self.prefix else [self.proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid in _children(self.proc.pid) if self.prefix else [self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.kill()

    def drained(self) -> bool:
        rejected = self.dock / "_rejected"
        for p in self.dock.rglob("*"):
            if p.is_file() and rejected not in p.parents and p.suffix != ".toml":
                return False
        try:
            snap = inspect_spool(self.spool)
        except SpoolError:
            return False
        return not any(snap.counts[s] for s in ("incoming", "spooled", "probed", "stored"))

    def wait_drained(self, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.drained():
                return time.monotonic() - start
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"not drained in {timeout:.0f} s; see {self.log}")

    def sweep_and_count(self, offered: dict[Path, str], result: Result) -> Result:
        """Restart once past sweep_after_s (the start sweeps), stop, then count."""
        self.stop()
        time.sleep(2.5)
        self.start()
        self.wait_drained(120)
        time.sleep(1.0)
        self.stop()
        return count(self, offered, result)


def _settings_from(env: dict[str, str]) -> dict[str, object]:
    out: dict[str, object] = {"home": Path(env["EVIDENCE_VAULT_HOME"])}
    if env.get("EVIDENCE_VAULT_STORE_BACKEND") == "s3":
        out.update(store_backend="s3", s3_endpoint=env["EVIDENCE_VAULT_S3_ENDPOINT"],
                   s3_access_key=env["EVIDENCE_VAULT_S3_ACCESS_KEY"],
                   s3_secret_key=env["EVIDENCE_VAULT_S3_SECRET_KEY"],
                   s3_bucket=env["EVIDENCE_VAULT_S3_BUCKET"])
    return out


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def count(run: Run, offered: dict[Path, str], result: Result) -> Result:
    """Compare what was offered with the dock, the catalog and the store (see the docstring)."""
    with Vault.open(run.settings) as vault:
        recordings: list[Recording] = []
        after = None
        while page := vault.recordings(after=after):
            recordings += page
            after = page_cursor(page[-1])
        by_device: dict[tuple[str, str], int] = {}
        for rec in recordings:
            by_device[(rec.source_id, rec.sha256)] = by_device.get((rec.source_id, rec.sha256), 0) + 1
        result.duplicates += sum(n - 1 for n in by_device.values())
        stored = set(by_device)
        wanted = {(p.parent.name, h) for p, h in offered.items()}
        result.files += len(wanted)
        result.ingested += len(wanted & stored)
        # A recording that is none of the offered files is a half-written copy: a loss.
        result.lost += len(stored - wanted)
        for device, digest in wanted - stored:
            still = [p for p, h in offered.items() if h == digest and p.exists()]
            refused = list((run.dock / "_rejected").rglob(f"*{device}*")) if (
                run.dock / "_rejected").exists() else []
            if not still and not refused:
                result.lost += 1
        now = vault.clock() + dt.timedelta(seconds=1)
        result.orphans += len(vault.orphans(older_than=dt.timedelta(0)))
        result.orphans += len(vault.store.partials(dt.timedelta(0), now=now))
        vault.ledger.verify()
    interesting = ("retry", "backpressure", "waiting", "changed", "swept", "resumed", "duplicate")
    for event in inspect_spool(run.spool, events=100_000).events:
        if event["kind"] in interesting:
            result.seen[event["kind"]] = result.seen.get(event["kind"], 0) + 1
    # On a full disk the spool's own event log cannot be written either: count the log.
    text = run.log.read_text(errors="replace")
    full = sum(text.count(m) for m in ("disk full", "disk is full", "No space left"))
    if full:
        result.seen["disk-full errors"] = full
    return result


# -- the drills -------------------------------------------------------------------------------


def drill_kill(base: Path, args: argparse.Namespace) -> Result:
    run = Run(base, {"EVIDENCE_VAULT_HOME": str(base / "home")})
    offered = make_dock(run.dock, args.files, args.max_mb, seed=1)
    first = next(iter(offered))
    twin = first.with_name("same-bytes-" + first.name)
    shutil.copy2(first, twin)
    offered[twin] = offered[first]
    rng = random.Random(7)
    run.start()
    for _ in range(args.kills):
        run.wait_up()  # kill a working agent, not one still importing
        time.sleep(rng.uniform(0.1, 1.5))
        run.kill()
        run.start()
    run.wait_drained(600)
    return run.sweep_and_count(offered, Result("kill", note=f"{args.kills} kill -9s"))


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[bool]:
    path.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                        capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def drill_full_disk(base: Path, args: argparse.Namespace) -> Result:
    dock_files = make_dock(base / "dock", args.files, args.max_mb, seed=2)
    footage = sum(p.stat().st_size for p in dock_files) // (1 << 20)
    disk = base / "disk"
    with tmpfs(disk, footage * 3 + 64) as mounted:
        if not mounted:
            return Result("full-disk", note="skipped: cannot mount a tmpfs here")
        run = Run(base, {"EVIDENCE_VAULT_HOME": str(disk / "home"),
                         "DRILL_SPOOL": str(disk / "spool")}, min_free=1, mode="copy")
        # Hide the dock, fill the disk, then let the devices offload into a full disk.
        hidden = base / "hidden"
        run.dock.rename(hidden)
        run.dock.mkdir()
        run.start()
        time.sleep(3)
        ballast = disk / "ballast"
        with ballast.open("wb") as f:
            # Room for one spool copy above the floor, not for its vault copy as well: the
            # store's write and the catalog's commit run out of space (ENOSPC).
            left = shutil.disk_usage(disk).free - int(args.max_mb * 1.6 * MB)
            while left > 0:
                f.write(b"\0" * min(left, 1 << 20))
                left -= 1 << 20
        for device in hidden.iterdir():
            device.rename(run.dock / device.name)
        offered = {run.dock / p.relative_to(base / "dock"): h for p, h in dock_files.items()}
        time.sleep(10)  # the agent runs into the full disk (and the floor) meanwhile
        ballast.unlink()
        recovery = run.wait_drained(600)
        return run.sweep_and_count(offered, Result("full-disk", recovery_s=[recovery],
                                                   note="no restart until the sweep check"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _minio_binary() -> str | None:
    explicit = os.environ.get("EVIDENCE_VAULT_MINIO_BIN")
    cached = Path.home() / ".cache" / "evidence-vault" / "bin" / "minio"
    for candidate in (explicit, str(cached), shutil.which("minio")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def drill_store(base: Path, args: argparse.Namespace) -> Result:
    binary = _minio_binary()
    if binary is None:
        return Result("store", note="skipped: no MinIO binary")
    port, data = _free_port(), base / "minio-data"
    data.mkdir(parents=True)
    minio_env = {**os.environ, "MINIO_ROOT_USER": "drill", "MINIO_ROOT_PASSWORD": "drill-secret-1",
                 "MINIO_BROWSER": "off"}

    def start_minio() -> subprocess.Popen[bytes]:
        log = (base / "minio.log").open("ab")
        proc = subprocess.Popen([binary, "server", str(data), "--address", f"127.0.0.1:{port}",
                                 "--quiet"], env=minio_env, stdout=log, stderr=log,
                                start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return proc
            time.sleep(0.2)
        raise RuntimeError("MinIO did not start")

    minio = start_minio()
    try:
        run = Run(base, {"EVIDENCE_VAULT_HOME": str(base / "home"),
                         "EVIDENCE_VAULT_STORE_BACKEND": "s3",
                         "EVIDENCE_VAULT_S3_ENDPOINT": f"127.0.0.1:{port}",
                         "EVIDENCE_VAULT_S3_ACCESS_KEY": "drill",
                         "EVIDENCE_VAULT_S3_SECRET_KEY": "drill-secret-1",
                         "EVIDENCE_VAULT_S3_BUCKET": "drill"})
        made = make_dock(base / "made", args.files, args.max_mb, seed=3)
        offered = {run.dock / p.relative_to(base / "made"): h for p, h in made.items()}
        half = len(made) // 2
        run.start()
        recovery = []
        while not (run.spool / "status.json").exists():
            time.sleep(0.2)
        # 1. Frozen (SIGSTOP): connections hang until the client's timeouts. The first half
        #    of the files arrives meanwhile.
        os.killpg(minio.pid, signal.SIGSTOP)
        for path in list(made)[:half]:
            (run.dock / path.parent.name).mkdir(exist_ok=True)
            shutil.move(str(path), run.dock / path.relative_to(base / "made"))
        time.sleep(args.outage_s)
        os.killpg(minio.pid, signal.SIGCONT)
        back = time.monotonic()
        run.wait_drained(600)
        recovery.append(time.monotonic() - back)
        # 2. Killed mid-ingest (connections refused), restarted on the same port.
        for path in list(made)[half:]:
            (run.dock / path.parent.name).mkdir(exist_ok=True)
            shutil.move(str(path), run.dock / path.relative_to(base / "made"))
        time.sleep(1.5)
        os.killpg(minio.pid, signal.SIGKILL)
        minio.wait()
        time.sleep(args.outage_s)
        minio = start_minio()
        back = time.monotonic()
        run.wait_drained(600)
        recovery.append(time.monotonic() - back)
        result = run.sweep_and_count(offered, Result(
            "store", recovery_s=recovery, note=f"frozen {args.outage_s:.0f} s, then down "
            f"{args.outage_s:.0f} s"))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(minio.pid, signal.SIGCONT)
            os.killpg(minio.pid, signal.SIGKILL)
        minio.wait()
    return result


def _unshare() -> list[str]:
    try:
        ok = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                            capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return ["unshare", "--pid", "--fork", "--mount-proc"] if ok else []


def _write_slowly(path: Path, data: bytes, *, hold_open: bool, pause: float) -> None:
    step = -(-len(data) // 4)
    chunks = [data[i:i + step] for i in range(0, len(data), step)]
    path.parent.mkdir(parents=True, exist_ok=True)
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


def drill_growing(base: Path, args: argparse.Namespace) -> Result:
    prefix = _unshare()
    run = Run(base, {"EVIDENCE_VAULT_HOME": str(base / "home")}, prefix=prefix)
    sources = make_dock(base / "made", 8, args.max_mb, seed=4)
    run.start()
    while not (run.spool / "status.json").exists():
        time.sleep(0.2)
    offered: dict[Path, str] = {}
    writers = []
    for n, (src, digest) in enumerate(sources.items()):
        target = run.dock / src.parent.name / src.name
        offered[target] = digest
        writers.append(threading.Thread(target=_write_slowly, args=(target, src.read_bytes()),
                                        kwargs={"hold_open": n % 4 < 2, "pause": 3.5}))
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    run.wait_drained(300)
    where = "agent in its own PID namespace" if prefix else "same PID namespace (no unshare)"
    return run.sweep_and_count(offered, Result("growing", note=f"pauses 3.5 s > stable 1 s; {where}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=16, help="recordings per drill")
    parser.add_argument("--max-mb", type=float, default=6.0, help="largest recording, MB")
    parser.add_argument("--kills", type=int, default=12, help="kill -9s in the kill drill")
    parser.add_argument("--outage-s", type=float, default=10.0, help="each store outage, s")
    parser.add_argument("--drills", default=",".join(DRILLS), help="comma-separated subset")
    parser.add_argument("--keep", type=Path, help="work in this new folder and keep it (logs)")
    args = parser.parse_args()
    chosen = [d.strip() for d in args.drills.split(",") if d.strip()]
    runners = {"kill": drill_kill, "full-disk": drill_full_disk, "store": drill_store,
               "growing": drill_growing}
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True)
            tmp = str(args.keep)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="fault-drill-"))
        for name in chosen:
            started = time.monotonic()
            result = runners[name](Path(tmp) / name, args)
            results.append(result)
            print(f"{result.line()}  [{time.monotonic() - started:.0f} s]", flush=True)
    total = Result("all")
    for r in results:
        total.files += r.files
        total.ingested += r.ingested
        total.duplicates += r.duplicates
        total.lost += r.lost
        total.orphans += r.orphans
        total.recovery_s += r.recovery_s
    worst = max(total.recovery_s, default=0.0)
    print(f"fault drill ({', '.join(r.drill for r in results if not r.note.startswith('skipped'))}): "
          f"files {total.files}, ingested {total.ingested}, duplicates {total.duplicates}, "
          f"lost {total.lost}, orphans {total.orphans}, recovery time {worst:.1f} s (worst), "
          "custody verified")
    return 0 if total.lost == total.duplicates == total.orphans == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
