"""Diagnostic: why each face left visible by the redaction benchmark was missed.

For one benchmark clip (``benchmarks/redaction.py``'s scenes), redacts it with our pipeline
and, for every ground-truth face box whose detail survives (a *miss*), records:

- its height (px) and the share of the box inside the frame (a face entering at the edge);
- its motion blur: px moved in the frame while the shutter was open (face and camera);
- the best CenterFace score of a box overlapping it (IoU >= 0.3) on the decoded source,
  with the face scaled to 28 px (what the scanner's regions do) and to 64 px (a closer look);
- whether a planned track's mask box touched it on that frame (a track nearby), and the
  distance (in face sizes) from the nearest mask box's centre;
- the same scores for faces that were hidden, to compare;
- ``detail``: the face's identifiability in the input (the benchmark's flag: the decoded
  input against the same face drawn sharp), so misses split as its ``ident`` column does.
- ``look``: for an identifiable miss, what the nearest look at or before its frame did
  there (the scanner's regions and detections are recorded at every look): not searched
  (or cut by a region's edge), searched (by which kinds of region, at what face size) and
  not found, found but filtered out, or found and kept (then the track or its mask failed).

Prints a breakdown and ends with one summary line. Run:
``python benchmarks/redaction_misses.py --only ptz --seconds 2``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redaction.pipeline  # noqa: E402
import _redaction_bench  # noqa: E402  (beside this script)
from redaction import redact_video  # noqa: E402
from redaction.boxes import iou as _iou  # noqa: E402
from redaction.detect import Boxes, CenterFace  # noqa: E402
from redaction.media import iter_frames  # noqa: E402
from redaction.scan import FrameScanner  # noqa: E402
from redaction.synthetic import face_visibility  # noqa: E402


_B = _redaction_bench.load()
H, VISIBLE, W, scenes, scene_clip = _B.H, _B.VISIBLE, _B.W, _B.scenes, _B.scene_clip
IDENTIFIABLE, identifiability, sharp_frame = _B.IDENTIFIABLE, _B.identifiability, _B.sharp_frame


def best_score(det: CenterFace, image: np.ndarray, box: tuple[float, ...], face_px: float,
               ) -> float:
    """Best detector score overlapping ``box`` with the face scaled to ``face_px`` tall."""
    x0, y0, x1, y1 = box
    s = max(x1 - x0, y1 - y0)
    m = 1.5 * s
    cx0, cy0 = max(0, int(x0 - m)), max(0, int(y0 - m))
    cx1, cy1 = min(image.shape[1], int(x1 + m)), min(image.shape[0], int(y1 + m))
    crop = image[cy0:cy1, cx0:cx1]
    if crop.shape[0] < 8 or crop.shape[1] < 8:
        return 0.0
    k = face_px / max(1.0, y1 - y0)
    crop = cv2.resize(crop, (max(8, round(crop.shape[1] * k)), max(8, round(crop.shape[0] * k))),
                      interpolation=cv2.INTER_LINEAR if k > 1 else cv2.INTER_AREA)
    found = det.detect(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
    best = 0.0
    for f in found:
        fb = (f[0] / k + cx0, f[1] / k + cy0, f[2] / k + cx0, f[3] / k + cy0)
        if _iou(fb, box) >= 0.3:
            best = max(best, float(f[4]))
    return best


class _Looks:
    """What the scanner did on each frame it looked at: the regions it searched (frame px,
    scale, kind) and every box the detector returned there (frame px, score), before the
    look's own filters (cut edges, tiny unsure boxes, NMS)."""

    def __init__(self) -> None:
        self.kind: dict[int, str] = {}
        self.regions: dict[int, list[tuple[int, int, int, int, float, str]]] = {}
        self.found: dict[int, list[tuple[float, float, float, float, float]]] = {}
        self.kept: dict[int, list[tuple[float, float, float, float, float]]] = {}

    def holding(self, frame: int, box: tuple[float, ...]
                ) -> list[tuple[int, int, int, int, float, str]]:
        """The regions searched on ``frame`` that hold all of ``box`` (frame px)."""
        return [r for r in self.regions.get(frame, []) if r[0] <= box[0] and r[1] <= box[1]
                and r[2] >= box[2] and r[3] >= box[3]]


LOOKS = _Looks()


class _RecordingScanner(FrameScanner):
    """The pipeline's scanner, recording each look into :data:`LOOKS`."""

    _index = -1

    def scan(self, index: int, image: np.ndarray, predicted: list[tuple[float, float, float, float]],
             *, full: bool = True) -> Boxes | None:
        self._index = index
        out = super().scan(index, image, predicted, full=full)
        if out is not None:
            LOOKS.kind[index] = "full" if full else "partial"
            LOOKS.kept[index] = [tuple(map(float, b)) for b in out]  # type: ignore[misc]
        return out

    def _detect(self, image: np.ndarray, regions: list,  # type: ignore[type-arg]
                before: Sequence[np.ndarray] = (), straight: bool = True) -> list[Boxes]:
        LOOKS.regions[self._index] = [(r.x0, r.y0, r.x1, r.y1, r.scale, r.kind) for r in regions]
        # The raw detector output: run the parent with the filters switched off is not
        # possible, so record what each region's crop scores around the faces separately
        # (best_score) and what survived here.
        found = super()._detect(image, regions, before, straight)
        LOOKS.found[self._index] = [tuple(map(float, b)) for f in found for b in f]  # type: ignore[misc]
        return found


redaction.pipeline.FrameScanner = _RecordingScanner  # type: ignore[misc]


def _look_cause(i: int, box: tuple[float, ...], face_h: float) -> str:
    """Why the look nearest before frame ``i`` did not give a track over this face."""
    looks = [f for f in LOOKS.kind if f <= i]
    if not looks:
        return "no look yet"
    f = max(looks)
    regions = LOOKS.regions.get(f, [])
    inside = LOOKS.holding(f, box)
    if not inside:
        part = [r for r in regions if _iou((r[0], r[1], r[2], r[3]), box) > 0]
        return ("not searched" + (" (cut by a region's edge)" if part else "")
                + f" | look {f} ({LOOKS.kind[f]}, {i - f} back)")
    best = max(r[4] for r in inside) * face_h
    hits = [b for b in LOOKS.found.get(f, []) if _iou(b[:4], box) > 0.2]
    kept = [b for b in LOOKS.kept.get(f, []) if _iou(b[:4], box) > 0.2]
    if not hits:
        return (f"searched ({'/'.join(sorted({r[5] for r in inside}))}), not found"
                f" | look {f} ({LOOKS.kind[f]}, {i - f} back) at {best:.0f} px")
    if not kept:
        return f"found, filtered out | look {f}: {max(b[4] for b in hits):.2f}"
    return (f"found and kept (the track or its mask failed) | look {f} ({i - f} back): "
            f"{max(b[4] for b in kept):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--only", default="ptz")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    ap.add_argument("--hidden-sample", type=int, default=4,
                    help="score every n-th hidden face too (0: none)")
    ap.add_argument("--noise-seed", type=int, default=0, metavar="N",
                    help="the clip under noise seed N, as benchmarks/redaction.py "
                         "--noise-seeds makes it (0: the benchmark's own clip)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    det = CenterFace(threshold=0.01)
    for k, scene in enumerate(scenes(args.seconds)):
        if scene.name not in args.only.split(","):
            continue
        tag = f"_n{args.noise_seed}" if args.noise_seed else ""
        clip = scene_clip(k, scene, args.seconds, args.out, args.noise_seed)
        src = clip.path
        out = args.out / f"{scene.name}{tag}_diag.mp4"
        plan, _ = redact_video(src, out)
        rows: list[dict[str, float | int | str]] = []
        hidden: list[dict[str, float]] = []
        total = 0
        for i, (a, b) in enumerate(zip(iter_frames(src), iter_frames(out), strict=True)):
            pristine = clip.frame(i)
            t = clip.times[i]
            # How much of each face the camera showed recognisably: the benchmark's own
            # identifiable flag (decoded input against the face drawn sharp), so that a
            # miss here is counted as the benchmark's ``ident`` column counts it.
            sharp = sharp_frame(clip, i)
            masks = [bx for tr in plan.tracks if (bx := tr.box_at(i)) is not None]
            for fid, box in clip.gt[i]:
                total += 1
                vis = face_visibility(pristine, b.image, box)
                h = box[3] - box[1]
                inside = max(0.0, min(W, box[2]) - max(0, box[0])) * max(
                    0.0, min(H, box[3]) - max(0, box[1])) / max(1.0, (box[2] - box[0]) * h)
                face = scene.faces[fid]
                p0, p1 = face.path(t - 0.01), face.path(t + 0.01)
                if scene.camera is not None:
                    p0 = scene.camera.point(p0, t - 0.01)
                    p1 = scene.camera.point(p1, t + 0.01)
                blur = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
                near = [mb for mb in masks if _iou(tuple(map(float, mb)), box) > 0]
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                dist = min((math.hypot((mb[0] + mb[2]) / 2 - cx, (mb[1] + mb[3]) / 2 - cy) / h
                            for mb in masks), default=math.inf)
                detail = identifiability(sharp, a.image, box)
                if vis > VISIBLE:
                    rows.append({"detail": detail, "frame": i, "face": fid,
                                 "identity": face.identity or -1,
                                 "h": h, "inside": inside, "blur": blur,
                                 "s28": best_score(det, a.image, box, 28),
                                 "s64": best_score(det, a.image, box, 64),
                                 "touched": len(near), "dist": dist, "vis": vis,
                                 "look": _look_cause(i, box, h)})
                elif args.hidden_sample and total % args.hidden_sample == 0:
                    hidden.append({"detail": detail, "h": h, "blur": blur,
                                   "s28": best_score(det, a.image, box, 28),
                                   "s64": best_score(det, a.image, box, 64)})
        print(f"clip {scene.name}: {len(rows)} of {total} face boxes visible "
              f"({100 * len(rows) / max(1, total):.1f} %), {len(plan.tracks)} tracks")
        if not rows:
            continue

        def cls(r: dict[str, float | int | str]) -> str:
            if float(r["inside"]) < 0.5:
                return "mostly outside the frame"
            if int(r["touched"]):
                return "a mask touched it (mask too small or slid)"
            if float(r["s28"]) >= 0.1:
                return "detector finds it at 28 px (scan/track missed)"
            if float(r["s64"]) >= 0.1:
                return "found only at 64 px (closer look)"
            return "detector never scores it >= 0.1"

        causes = Counter(cls(r) for r in rows)
        ident = [r for r in rows if float(r["detail"]) > IDENTIFIABLE]
        print(f"  identifiable misses by the nearest look before them ({len(ident)}):")
        look_causes = Counter(str(r["look"]).split(" | ")[0] for r in ident)
        for cause, n in look_causes.most_common():
            print(f"    {n:4d}: {cause}")
        for r in ident:
            print("    ", " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in r.items()))
        smeared_out = sum(1 for r in rows if float(r["detail"]) <= IDENTIFIABLE)
        print(f"  {smeared_out} of {len(rows)} misses were not identifiable in the input "
              f"(identifiability <= {IDENTIFIABLE}: smear, noise, compression); identifiable "
              f"misses: {len(rows) - smeared_out} ({100 * (len(rows) - smeared_out) / total:.1f} "
              "% of face boxes)")
        for cause, n in causes.most_common():
            print(f"  {n:4d} ({100 * n / len(rows):4.1f} % of misses): {cause}")
        per_face = Counter(int(r["face"]) for r in rows)
        print("  misses per face (face id: boxes): "
              + ", ".join(f"{f}:{n}" for f, n in per_face.most_common()))
        for key in ("detail", "h", "blur", "s28", "s64", "inside", "dist"):
            vals = [float(r[key]) for r in rows if math.isfinite(float(r[key]))]
            hv = [float(r[key]) for r in hidden if key in r] if hidden else []
            print(f"  {key:6s} missed median {statistics.median(vals):7.3f} "
                  f"(min {min(vals):6.2f}, max {max(vals):6.2f})"
                  + (f"; hidden median {statistics.median(hv):7.3f}" if hv else ""))
        for r in rows[:: max(1, len(rows) // 25)]:
            print("   ", " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in r.items()))
        print(f"summary {scene.name}: {len(rows)} misses; "
              + "; ".join(f"{c}: {n}" for c, n in causes.most_common()))


if __name__ == "__main__":
    main()
