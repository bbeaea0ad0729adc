"""Diagnostic: how far off the detector's boxes are, by score, in the real pipeline.

For each benchmark clip (``benchmarks/redaction.py``'s scenes) and noise seed, plans the clip
with our pipeline and records every detection the scanner hands the tracker. Each one is
matched to the ground-truth face box it overlaps most (IoU >= 0.1; fewer are textures), and
its error is read in that face's height: the centre's distance, and the box's height over
the face's. Printed by score band, per clip:

- ``centre``: the median, 90th and 98th percentile centre error (share of the face height);
- ``size``: the median, 10th and 90th percentile of the box's height over the face's.

The tracker's margin for an unsure box (``redaction/track.py`` ``_box_error``) is read off
this table: see docs/redaction.md, "Unsure boxes". Ends with one summary line. Run:
``python benchmarks/redaction_boxes.py --only bodycam,ptz --noise-seeds 3``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _redaction_bench  # noqa: E402  (beside this script)
from redaction import track as _track  # noqa: E402
from redaction.boxes import iou as _iou  # noqa: E402
from redaction.pipeline import plan_video  # noqa: E402

_B = _redaction_bench.load()
BANDS = ((0.0, 0.2), (0.2, 0.3), (0.3, 0.45), (0.45, 0.7), (0.7, 1.01))


def _recorded_plan(path: Path) -> list[tuple[int, tuple[float, ...]]]:
    """Plan ``path``; return every (frame, detection) the tracker was given."""
    seen: list[tuple[int, tuple[float, ...]]] = []
    update = _track.Tracker.update

    def recording(self: _track.Tracker, frame: int, detections: np.ndarray,
                  **kwargs: object) -> None:
        seen.extend((frame, tuple(float(v) for v in d[:5])) for d in detections)
        update(self, frame, detections, **kwargs)  # type: ignore[arg-type]

    _track.Tracker.update = recording  # type: ignore[method-assign]
    try:
        plan_video(path)
    finally:
        _track.Tracker.update = update  # type: ignore[method-assign]
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--only", default="still,ptz,bodycam,crowd,night")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--noise-seeds", type=int, default=1, metavar="N")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for k, scene in enumerate(_B.scenes(args.seconds)):
        if scene.name not in args.only.split(","):
            continue
        rows = []
        for seed in range(args.noise_seeds):
            clip = _B.scene_clip(k, scene, args.seconds, args.out, seed)
            for frame, d in _recorded_plan(clip.path):
                truth = [b for _, b in clip.gt[frame]]
                if not truth:
                    continue
                g = max(truth, key=lambda b: _iou(d[:4], b))
                if _iou(d[:4], g) < 0.1:
                    continue
                h = g[3] - g[1]
                dx = ((d[0] + d[2]) - (g[0] + g[2])) / 2 / h
                dy = ((d[1] + d[3]) - (g[1] + g[3])) / 2 / h
                rows.append((d[4], float(np.hypot(dx, dy)), (d[3] - d[1]) / h))
        a = np.array(rows, float).reshape(-1, 3)
        for lo, hi in BANDS:
            band = a[(a[:, 0] >= lo) & (a[:, 0] < hi)]
            if not len(band):
                continue
            c, s = band[:, 1], band[:, 2]
            print(f"{scene.name:8s} score {lo:.2f}-{min(hi, 1):.2f}  n={len(band):5d}  "
                  f"centre {np.median(c):.3f} p90 {np.percentile(c, 90):.3f} "
                  f"p98 {np.percentile(c, 98):.3f}  size {np.median(s):.2f} "
                  f"p10 {np.percentile(s, 10):.2f} p90 {np.percentile(s, 90):.2f}")
        unsure, sure = a[a[:, 0] < 0.2], a[a[:, 0] >= 0.45]
        if len(unsure) and len(sure):
            summary.append(f"{scene.name} centre p90 {np.percentile(unsure[:, 1], 90):.2f}"
                           f"/{np.percentile(sure[:, 1], 90):.2f} size "
                           f"{np.median(unsure[:, 2]):.2f}/{np.median(sure[:, 2]):.2f}")
    print("summary (boxes scored under 0.2 / 0.45 and over): " + "; ".join(summary))


if __name__ == "__main__":
    main()
