"""Live RTSP recording: a camera (or NVR channel) recorded continuously in fixed-length segments.

ffmpeg copies the stream (no re-encode) into segments of ``segment_seconds`` under
``<spool>/rtsp/<source>/<run>/``, one ``run`` per connection, and appends a line
``file,start,end`` to the run's ``list.csv`` as each segment closes. The agent moves each
closed segment into the spool as an item of the camera.

Capture times (the agent's clock): ffmpeg reports, several times a second, how much stream time
it has written (``-progress``). A packet cannot be written before it was captured, so
``wall clock - stream time`` is never less than the wall-clock time of stream time zero; its
minimum over the run is that anchor (plus the network delay). A segment's capture start and end
are the anchor plus the start and end that ``list.csv`` gives, so consecutive segments abut
exactly and durations are the stream's own. The anchor is saved in the run folder, so segments
left by a crashed agent get the same times.

Drops: when ffmpeg exits without being asked (server gone, stream ended, no packets for
``timeout_s``), the source reconnects with exponential back-off (``reconnect_min_s`` doubling
to ``reconnect_max_s``) and, once footage flows again, records a ``gap`` event from the end of
the last segment to the start of the first new one. Stopping (SIGTERM) asks ffmpeg to finish
(``q``), so the segment in progress is closed and ingested; a killed agent's ffmpeg gets
SIGTERM from the kernel and closes its segment, which :meth:`RtspSource.recover` picks up.

Credentials (issue #11 finding 12): ffmpeg only takes RTSP credentials inside the URL, and a
command line is world-readable (``ps``, ``/proc/<pid>/cmdline``). So the URL never goes on the
command line: ffmpeg reads a one-entry ffconcat script (``-f concat -i /dev/fd/N``) from a pipe
the agent writes and closes before ffmpeg starts. The script carries the URL with its
credentials and the RTSP options (``option rtsp_transport``, ``option timeout``), nothing
touches the disk, and the pipe is readable only by ffmpeg. ffmpeg's own log lines can repeat
the URL, so its stderr is read through the agent and credentials are masked before the log
file is written. Segments are plaintext footage: run folders are created 0700. The script's
``option`` lines need ffmpeg 5.0 or later (the bundled imageio-ffmpeg build is newer).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from vault.plaintext import open_private, private_dir

from ._ffmpeg import die_with_parent, ffmpeg_exe
from .config import RtspSourceConfig
from .errors import SourceError, SpoolError
from .sources import Source, SourceContext

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_LIST = "list.csv"
_SEGMENTS = "seg[0-9][0-9][0-9][0-9][0-9][0-9].*"
_ANCHOR = "anchor.json"
_PID = "ffmpeg.pid"
_LOG = "ffmpeg.log"
# What ffmpeg may open: the input script (read as /dev/fd/N through the file protocol) and
# what RTSP itself needs (TCP control, RTP over UDP or interleaved, TLS for rtsps). No HTTP.
_PROTOCOLS = "file,rtp,tcp,udp,tls"
_USERINFO = re.compile(r"(rtsps?://)[^@/\s'\"]+@")


def mask_credentials(text: str) -> str:
    """``text`` with the user information of every rtsp(s):// URL replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", text)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


class _Progress:
    """Reads ffmpeg's ``-progress`` output and keeps the stream's wall-clock anchor."""

    def __init__(self, stream: IO[bytes], run_dir: Path) -> None:
        self.anchor: float | None = None
        self.last_out_time: float = -1.0
        self.last_advance = time.monotonic()
        self._run_dir = run_dir
        self._thread = threading.Thread(
            target=self._read, args=(stream,), daemon=True, name="rtsp-progress"
        )
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        out_time: float | None = None
        for raw in iter(stream.readline, b""):
            line = raw.decode("ascii", "replace").strip()
            key, _, value = line.partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                out_time = int(value) / 1e6
            elif key == "progress" and out_time is not None and out_time > 0:
                wall = time.time()
                if out_time > self.last_out_time:
                    self.last_out_time = out_time
                    self.last_advance = time.monotonic()
                candidate = wall - out_time
                if self.anchor is None or candidate < self.anchor:
                    self.anchor = candidate
                    _write_json(self._run_dir / _ANCHOR, {"anchor": candidate})

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read_anchor(run_dir: Path) -> float | None:
    try:
        return float(json.loads((run_dir / _ANCHOR).read_text())["anchor"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _listed(run_dir: Path) -> list[tuple[str, float, float]]:
    try:
        with (run_dir / _LIST).open(newline="") as f:
            rows = list(csv.reader(f))
    except OSError:
        return []
    out = []
    for row in rows:
        if len(row) >= 3:
            try:
                out.append((row[0], float(row[1]), float(row[2])))
            except ValueError:
                continue
    return out


def _child_env(credentials: str | None) -> dict[str, str]:
    """The agent's environment without the variable holding this source's credentials:
    ffmpeg gets them through its pipe and has no use for a second copy."""
    scheme, _, name = (credentials or "").partition(":")
    return {k: v for k, v in os.environ.items() if not (scheme == "env" and k == name)}


def _copy_log(stream: IO[bytes], path: Path) -> None:
    """Copy ffmpeg's stderr into ``path`` (0600) line by line, credentials masked."""
    with open_private(path, append=True) as log:
        for raw in iter(stream.readline, b""):
            log.write(mask_credentials(raw.decode("utf-8", "replace")).encode())
            log.flush()


class RtspSource(Source):
    """Records one RTSP stream in segments; see the module docstring."""

    kind = "rtsp"
    config: RtspSourceConfig

    def __init__(self, config: RtspSourceConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self.root = context.spool.root / "rtsp" / _SAFE.sub("_", config.id)
        self._proc: subprocess.Popen[bytes] | None = None
        self._gap_from: dt.datetime | None = None  # end of the last footage before a drop
        self._gap_reason: str | None = None
        self._attempts = 0
        self._last_end: dt.datetime | None = None  # end of the newest segment spooled
        self.gaps: list[dict[str, Any]] = []
        self._log_thread: threading.Thread | None = None

    # -- ffmpeg ------------------------------------------------------------------------------

    def _url(self) -> str:
        secret = self.config.secret()
        if secret is None:
            return self.config.url
        user, _, password = secret.get_secret_value().partition(":")
        scheme, rest = self.config.url.split("://", 1)
        return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"

    def input_script(self) -> bytes:
        """The ffconcat script ffmpeg reads from its pipe: the stream URL (with credentials)
        and its RTSP options. Raises SourceError for a URL that would break out of its line."""
        url = self._url()
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
            raise SourceError(f"{self.id}: the RTSP URL contains control characters", source_id=self.id)
        quoted = "'" + url.replace("'", "'\\''") + "'"  # ffconcat (av_get_token) quoting
        return (
            "ffconcat version 1.0\n"
            f"file {quoted}\n"
            f"option rtsp_transport {self.config.transport}\n"
            f"option timeout {int(self.config.timeout_s * 1_000_000)}\n"
        ).encode()

    def command(self, run_dir: Path, input_fd: int) -> list[str]:
        """The ffmpeg command line for one connection, reading its input from ``input_fd``.

        Holds no credentials: the URL is in :meth:`input_script`, written to that pipe.
        """
        ext = "ts" if self.config.container == "mpegts" else "mp4"
        cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "warning",
            "-protocol_whitelist",
            _PROTOCOLS,
            "-f",
            "concat",
            "-safe",
            "0",  # the script names a URL, which "safe" mode refuses; we wrote the script
            "-i",
            # /dev/fd/N, not pipe:N: ffmpeg stops reading "q" from stdin when an input is
            # named pipe:, and "q" is how a segment is closed cleanly on stop.
            f"/dev/fd/{input_fd}",
            "-map",
            "0:v?",
            "-map",
            "0:a?",
            "-c",
            "copy",
            "-f",
            "segment",
            "-segment_time",
            f"{self.config.segment_seconds:g}",
            "-segment_format",
            self.config.container,
            "-reset_timestamps",
            "1",
            "-segment_list",
            str(run_dir / _LIST),
            "-segment_list_type",
            "csv",
        ]
        if self.config.container == "mp4":
            # Fragmented, so a segment cut off by a crash still plays up to the cut.
            cmd += [
                "-segment_format_options",
                "movflags=+frag_keyframe+empty_moov+default_base_moof",
            ]
        cmd += [
            "-progress",
            "pipe:1",
            "-stats_period",
            "0.25",
            "-nostats",
            str(run_dir / f"seg%06d.{ext}"),
        ]
        return cmd

    def _start(self, run_dir: Path) -> tuple[subprocess.Popen[bytes], _Progress]:
        script = self.input_script()
        read_fd, write_fd = os.pipe()
        try:
            # A pipe holds 64 KiB at least; the script is a few hundred bytes, so this never
            # blocks, and closing the write end now gives ffmpeg a clean end of file.
            os.write(write_fd, script)
            os.close(write_fd)
            write_fd = -1
            proc = subprocess.Popen(
                self.command(run_dir, read_fd),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(read_fd,),
                env=_child_env(self.config.credentials),
                preexec_fn=die_with_parent,
            )
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        (run_dir / _PID).write_text(str(proc.pid))
        assert proc.stdout is not None and proc.stderr is not None
        self._log_thread = threading.Thread(
            target=_copy_log, args=(proc.stderr, run_dir / _LOG), daemon=True, name="rtsp-log"
        )
        self._log_thread.start()
        return proc, _Progress(proc.stdout, run_dir)

    def _finish(self, proc: subprocess.Popen[bytes], grace: float) -> None:
        """Ask ffmpeg to close its segment and exit; insist if it does not."""
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(b"q")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    # -- harvesting closed segments ----------------------------------------------------------

    def _harvest(self, run_dir: Path, *, final: bool, anchor: float | None = None) -> int:
        """Spool the closed segments of ``run_dir`` (all segments when ``final``)."""
        anchor = anchor if anchor is not None else _read_anchor(run_dir)
        listed = _listed(run_dir)
        names = {name for name, _, _ in listed}
        entries: list[tuple[str, float | None, float | None, bool]] = [
            (name, start, end, False) for name, start, end in listed
        ]
        if final:
            # Segments ffmpeg never closed (it was killed): keep them, marked partial.
            last_end = listed[-1][2] if listed else 0.0
            for path in sorted(run_dir.glob(_SEGMENTS)):
                if path.name not in names and path.stat().st_size > 0:
                    entries.append((path.name, last_end, None, True))
        n = 0
        for name, start, end, partial in entries:
            path = run_dir / name
            origin = f"{run_dir.name}/{name}"
            if not path.exists() or self.context.spool.find(self.id, origin) is not None:
                continue
            capture_start: dt.datetime | None
            capture_end: dt.datetime | None
            if anchor is None:
                # No progress report survived: the file's own times are the best evidence.
                st = path.stat()
                capture_end = _utc(st.st_mtime)
                capture_start = None
                basis = "segment file modification time (approximate)"
            else:
                capture_start = _utc(anchor + (start or 0.0))
                capture_end = _utc(anchor + end) if end is not None else None
                basis = "agent clock at RTSP receipt"
            self._spool_segment(path, origin, capture_start, capture_end, basis, partial=partial)
            n += 1
        return n

    def _spool_segment(
        self,
        path: Path,
        origin: str,
        start: dt.datetime | None,
        end: dt.datetime | None,
        basis: str,
        *,
        partial: bool,
    ) -> None:
        camera = self.config.camera_id
        stamp = (start or end or self.context.clock()).strftime("%Y%m%dT%H%M%S.%fZ")[:-4] + "Z"
        name = f"{camera}_{stamp}{path.suffix}"
        meta: dict[str, Any] = {"site": self.config.site, "camera": camera, "run": path.parent.name}
        if partial:
            meta["partial"] = True
        if self._gap_from is not None and start is not None:
            self._record_gap(start)
        try:
            item = self.context.spool.add(
                path,
                source=self.id,
                origin=origin,
                name=name,
                vault_source=camera,
                source_kind=self.vault_kind,
                mode="move",
                received_at=self.context.clock(),
                captured_start=start,
                captured_end=end,
                time_basis=basis,
                meta=meta,
            )
        except SpoolError as error:
            self.context.event(self.id, "error", f"cannot spool segment {origin}: {error}")
            return
        self.count_file(item.size)
        self.set_status(last_segment_end=end.isoformat() if end else None)
        if end is not None:
            self._last_end = end
        self.context.on_spooled(item)

    def _record_gap(self, resumed: dt.datetime) -> None:
        start = self._gap_from
        assert start is not None
        seconds = round((resumed - start).total_seconds(), 3)
        gap = {
            "camera": self.config.camera_id,
            "start": start.isoformat(),
            "end": resumed.isoformat(),
            "duration_ms": round(seconds * 1000),  # custody events hold no floats
            "reason": self._gap_reason,
            "reconnect_attempts": self._attempts,
        }
        self.gaps.append(gap)
        self._gap_from = None
        self.context.event(
            self.id,
            "gap",
            f"no footage from {self.config.camera_id} between {start:%H:%M:%S.%f}"[:-3]
            + f" and {resumed:%H:%M:%S.%f}"[:-3]
            + f" UTC ({seconds:.1f} s): {self._gap_reason}; reconnected after {self._attempts} attempt(s)",
            **gap,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def recover(self) -> None:
        """Spool the segments of runs a crashed agent left, then remove those run folders."""
        if not self.root.is_dir():
            return
        for run_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            self._wait_for_orphan_ffmpeg(run_dir)
            n = self._harvest(run_dir, final=True)
            if n:
                self.context.event(
                    self.id,
                    "recovered",
                    f"{n} segment(s) left by an earlier run spooled",
                    run=run_dir.name,
                )
            self._remove_run(run_dir)

    def _wait_for_orphan_ffmpeg(self, run_dir: Path) -> None:
        try:
            pid = int((run_dir / _PID).read_text())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if b"ffmpeg" not in cmdline or str(run_dir).encode() not in cmdline:
            return
        try:
            os.kill(pid, signal.SIGTERM)  # our own child from before the crash: close the segment
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)

    def _remove_run(self, run_dir: Path) -> None:
        leftovers = [p for p in run_dir.glob(_SEGMENTS)]
        if leftovers:
            return  # something could not be spooled: keep it for the next start
        shutil.rmtree(run_dir, ignore_errors=True)

    def _free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self.context.spool.root).free
        except OSError:
            return 1 << 62

    def run(self) -> None:
        """Record until stopped, reconnecting with back-off; see the module docstring."""
        private_dir(self.root)
        delay = self.config.reconnect_min_s
        stop = self.context.stop
        runs = 0
        while not stop.is_set():
            min_free = int(self.context.agent.min_free_mb * (1 << 20))
            if self._free_bytes() < min_free:
                if self._gap_from is None:
                    self._gap_from = self._last_end or self.context.clock()
                    self._gap_reason = "spool disk full: recording paused"
                    self.context.event(
                        self.id, "backpressure", "spool disk below min_free_mb: recording paused"
                    )
                self.set_status(state="paused: spool disk full")
                stop.wait(2)
                continue
            runs += 1
            run_dir = self.root / f"{self.context.clock():%Y%m%dT%H%M%S}-{os.getpid()}-{runs}"
            private_dir(run_dir)  # ffmpeg creates segments 0644: the folder keeps them private
            self._attempts += 1
            self.set_status(state="connecting", url=self.config.url, attempts=self._attempts)
            proc, progress = self._start(run_dir)
            self._proc = proc
            spooled = 0
            reason = "stream ended"
            while True:
                if stop.is_set():
                    self._finish(proc, self.context.agent.shutdown_grace_s)
                    break
                if proc.poll() is not None:
                    reason = self._exit_reason(run_dir, proc.returncode)
                    break
                if progress.anchor is not None:
                    self.set_status(state="recording")
                if (
                    progress.anchor is not None
                    and time.monotonic() - progress.last_advance > self.config.timeout_s
                ):
                    reason = f"no packets for {self.config.timeout_s:g} s"
                    self._finish(proc, 2)
                    break
                spooled += self._harvest(run_dir, final=False, anchor=progress.anchor)
                if spooled:
                    delay = self.config.reconnect_min_s
                    self._attempts = 0
                stop.wait(0.2)
            progress.join(5)
            self._proc = None
            spooled += self._harvest(run_dir, final=True, anchor=progress.anchor)
            self._remove_run(run_dir)
            if stop.is_set():
                break
            # The stream dropped: remember where footage stopped, then back off and retry.
            if self._gap_from is None:
                self._gap_from = self._last_end or self.context.clock()
                self._gap_reason = reason
                self.context.event(
                    self.id, "disconnected", f"stream lost: {reason}; reconnecting", reason=reason
                )
            self.set_status(state=f"reconnecting in {delay:g} s ({reason})", last_error=reason)
            stop.wait(delay)
            delay = min(self.config.reconnect_max_s, delay * 2)
        self.set_status(state="stopped")

    def _exit_reason(self, run_dir: Path, code: int | None) -> str:
        if self._log_thread is not None:
            self._log_thread.join(2)  # ffmpeg has exited: its last lines are on their way
        try:
            text = (run_dir / _LOG).read_text(errors="replace").strip().splitlines()
        except OSError:
            text = []
        lines = [t for t in text if t.strip() and "Last message repeated" not in t]
        last = lines[-1].strip()[:200] if lines else ""
        last = mask_credentials(last)  # the log is masked already; an error must not rely on it
        if code == 0 and not last:
            return "the server ended the stream"
        return f"ffmpeg exited with status {code}" + (f": {last}" if last else "")

    def interrupt(self) -> None:
        """Second signal: stop ffmpeg now; its segments are spooled on the next start."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)


__all__ = ["RtspSource", "mask_credentials"]
