"""Benchmark: our redaction pipeline beside deface on the same synthetic 1080p CCTV clips.

Generates 1080p clips with small moving faces (20-40 px tall, real face images from
scikit-image composited at known positions; sensor noise, 1/50 s shutter motion blur and
recorder-like x264 crf 26 compression), then redacts each with

- ours (``redaction.redact_video``, default settings: plan + render in one pass),
- ``deface`` at its default settings,
- ``deface --scale 640x360`` (its documented speed setting),

and prints, for each: wall-clock fps (whole run: decode, detect, encode), speed-up over
``deface --scale 640x360``, and the share of ground-truth face boxes left visible in the
output (a box counts as visible when the face's detail survives: high-pass correlation with
the unredacted frame above 0.3). Ends with one summary line.

Run: ``python benchmarks/redaction.py [--seconds 5] [--clips 2] [--skip-deface]``.
Clips and outputs go to ``benchmarks/out/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redaction import redact_video
from redaction.synthetic import (
    Clip,
    Face,
    circle,
    face_visibility,
    linear,
    make_clip,
    read_frames,
    still,
)

VISIBLE = 0.3


def street(seconds: float) -> list[Face]:
    """People crossing a wide scene at walking pace, faces 20-40 px, one standing still."""
    return [
        Face(linear(100, 400, 1800, 520, seconds), 20),
        Face(linear(1850, 300, 150, 350, seconds), 24, mirror=True),
        Face(linear(300, 900, 1500, 700, seconds), 28, gain=0.85),
        Face(linear(1700, 850, 900, 950, seconds), 32, mirror=True, gain=1.1),
        Face(circle(960, 540, 150, 4.0), 36),
        Face(linear(600, 150, 1300, 250, seconds), 40, mirror=True),
        Face(still(1500, 150), 30, gain=0.9),
        Face(linear(1200, 620, 500, 560, seconds), 20, mirror=True, gain=0.9),
        Face(linear(150, 700, 700, 1000, seconds), 22),
    ]


def lobby(seconds: float) -> list[Face]:
    """People entering late, loitering on small circles and leaving early."""
    return [
        Face(linear(200, 700, 900, 650, seconds * 0.5), 22, start=seconds * 0.2),
        Face(circle(1400, 500, 40, 3.0), 26, mirror=True),
        Face(circle(500, 300, 25, 2.0, phase=1.0), 20, gain=0.9),
        Face(linear(1800, 950, 1000, 800, seconds), 34, end=seconds * 0.7),
        Face(linear(960, 100, 960, 1000, seconds), 30, mirror=True, gain=1.1),
        Face(circle(1650, 250, 60, 5.0, phase=2.0), 40, start=seconds * 0.3),
        Face(still(300, 900), 21, gain=0.95),
    ]


def visible_share(clip: Clip, output: Path) -> tuple[float, int, int]:
    """Share of ground-truth face boxes left visible in ``output``: (share, visible, total)."""
    frames = read_frames(output)
    n = min(len(frames), clip.frame_count)
    visible = total = 0
    for i in range(n):
        src = clip.frame(i)
        out = frames[i]
        if out.shape[:2] != src.shape[:2]:
            # deface writes through imageio, which rescales 1080 to 1088 rows (a multiple
            # of 16); undo that so the ground-truth boxes line up again.
            out = cv2.resize(out, (src.shape[1], src.shape[0]), interpolation=cv2.INTER_AREA)
        for _, box in clip.gt[i]:
            total += 1
            if face_visibility(src, out, box) > VISIBLE:
                visible += 1
    # Frames missing from an output count as leaks of nothing, but say so.
    if len(frames) != clip.frame_count or frames[0].shape[:2] != (clip.height, clip.width):
        print(f"  note: {output.name} is {frames[0].shape[1]}x{frames[0].shape[0]}, "
              f"{len(frames)} frames; source {clip.width}x{clip.height}, {clip.frame_count}")
    return (visible / total if total else 0.0), visible, total


def run_deface(src: Path, out: Path, extra: list[str]) -> float:
    exe = shutil.which("deface")
    if exe is None:
        raise SystemExit("deface is not installed (pip install deface)")
    t0 = time.perf_counter()
    subprocess.run([exe, str(src), "-o", str(out), *extra], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each clip")
    ap.add_argument("--clips", type=int, default=2, choices=(1, 2), help="how many clips")
    ap.add_argument("--skip-deface", action="store_true", help="run only our pipeline")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load0[0]:.2f} {load0[1]:.2f} "
          f"{load0[2]:.2f} at start")

    scenes = [("street", street), ("lobby", lobby)][:args.clips]
    runs = {"ours": [0.0, 0, 0, 0], "deface": [0.0, 0, 0, 0],
            "deface --scale 640x360": [0.0, 0, 0, 0]}  # seconds, frames, visible, boxes
    for k, (name, scene) in enumerate(scenes):
        src = args.out / f"{name}_1080p.mp4"
        # CCTV-like: sensor noise, a 1/50 s shutter (motion blur) and the compression of a
        # recorder (x264 crf 26).
        clip = make_clip(src, scene(args.seconds), width=1920, height=1080, fps=25,
                         seconds=args.seconds, seed=100 + k, noise=4.0, crf=26, audio=True,
                         shutter=0.02)
        print(f"clip {name}: 1920x1080, {clip.frame_count} frames, "
              f"{sum(len(g) for g in clip.gt)} ground-truth face boxes")
        variants: list[tuple[str, list[str] | None]] = [("ours", None)]
        if not args.skip_deface:
            variants += [("deface", []), ("deface --scale 640x360", ["--scale", "640x360"])]
        for label, extra in variants:
            out = args.out / f"{name}_{label.replace(' ', '_').replace('-', '')}.mp4"
            if extra is None:
                t0 = time.perf_counter()
                redact_video(src, out)
                secs = time.perf_counter() - t0
            else:
                secs = run_deface(src, out, extra)
            share, vis, total = visible_share(clip, out)
            r = runs[label]
            r[0] += secs
            r[1] += clip.frame_count
            r[2] += vis
            r[3] += total
            print(f"  {label:24s} {clip.frame_count / secs:6.2f} fps  "
                  f"visible {vis}/{total} = {100 * share:5.2f}%")

    base = runs["deface --scale 640x360"]
    base_fps = base[1] / base[0] if base[0] else None
    print()
    print(f"{'pipeline':24s} {'fps':>7s} {'speed-up':>9s} {'GT boxes visible':>17s}")
    for label, (secs, frames, vis, total) in runs.items():
        if not secs:
            continue
        fps = frames / secs
        up = f"{fps / base_fps:8.2f}x" if base_fps else "      n/a"
        print(f"{label:24s} {fps:7.2f} {up} {100 * vis / max(1, total):16.2f}%")
    load1 = os.getloadavg()
    print(f"load average {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at end")
    ours = runs["ours"]
    ours_fps = ours[1] / ours[0]
    summary = f"summary: ours {ours_fps:.1f} fps, {100 * ours[2] / max(1, ours[3]):.2f}% visible"
    if base_fps:
        d = runs["deface"]
        summary += (f"; deface {d[1] / d[0]:.2f} fps, {100 * d[2] / max(1, d[3]):.2f}% visible; "
                    f"deface --scale 640x360 {base_fps:.2f} fps, "
                    f"{100 * base[2] / max(1, base[3]):.2f}% visible; "
                    f"speed-up {ours_fps / base_fps:.1f}x")
    print(summary)


if __name__ == "__main__":
    main()
