"""Diagnostic: what makes up the redaction benchmark's spill, track by track.

For one benchmark clip (``benchmarks/redaction.py``'s scenes), redacts it with our pipeline
(one pass, as the benchmark does) and, for every track the tracker made, records:

- ``real``: the share of its observations that overlap a ground-truth face box (IoU >= 0.3);
  a track under a half is a *texture* (a detection where there is no face);
- its detector scores (max, median), size (px), aspect (height / width of its boxes), how
  far it moved (the largest distance of a centre from the first, in its own sizes, scene
  coordinates), how many looks found it and over how many frames;
- ``spill``: the visibly changed pixels away from every face (the benchmark's measure, half
  resolution) inside its mask boxes, shared equally where masks overlap;
- ``rescore``: for its unsure observations (under 0.45), the best score of a box
  overlapping it with the picture rescaled so the box is 20, 28, 40 and 56 px tall (a
  confirming look at another scale), in the decoded source.

Prints the tracks that spill most, the texture tracks and the unsure real ones side by side
(so a rule separating them can be read off), and ends with one summary line. ``--births``
also counts where tracks began (which regions of which look found their first detection),
as docs/redaction.md "Crowd spill again" reads them. Run:
``python benchmarks/redaction_spill.py --only crowd --seconds 3``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redaction.pipeline  # noqa: E402
import _redaction_bench  # noqa: E402  (beside this script)
from redaction import redact_video  # noqa: E402
from redaction.boxes import iou as _iou  # noqa: E402
from redaction.detect import CenterFace  # noqa: E402
from redaction.media import iter_frames  # noqa: E402
from redaction.synthetic import away_map, changed_map  # noqa: E402
from redaction.track import Observation, Track, Tracker  # noqa: E402


_B = _redaction_bench.load()
scenes, scene_clip = _B.scenes, _B.scene_clip
RESCALES = (20, 28, 40, 56)
UNSURE = 0.45


class _RecordingTracker(Tracker):
    """The pipeline's tracker, remembered so its tracks can be read after the run."""

    last: _RecordingTracker | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _RecordingTracker.last = self


redaction.pipeline.Tracker = _RecordingTracker  # type: ignore[attr-defined]


def rescore(det: CenterFace, image: np.ndarray, box: tuple[float, ...], face_px: float) -> float:
    """Best score of a box overlapping ``box`` (IoU >= 0.3) with the picture scaled so
    ``box`` is ``face_px`` tall, in a crop of 1.5 box sizes around it."""
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
    best = 0.0
    for f in det.detect(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.uint8)):
        fb = (f[0] / k + cx0, f[1] / k + cy0, f[2] / k + cx0, f[3] / k + cy0)
        if _iou(fb, box) >= 0.3:
            best = max(best, float(f[4]))
    return best


def _size(b: tuple[float, ...]) -> float:
    return max(b[2] - b[0], b[3] - b[1], 1.0)


def _births(tracks: list[Track], real: dict[int, bool],
            frame_box: dict[int, tuple[float, ...]]) -> None:
    """Print how many tracks (real / texture) began in each way, by 3 s of the clip."""
    from redaction_misses import LOOKS

    tally: dict[tuple[str, int, str, str, str], int] = {}
    for t in tracks:
        o = t.observations[0]
        kinds = {r[5] for r in LOOKS.holding(o.frame, frame_box[id(o)])}
        key = ("real" if real[t.id] else "texture", o.frame // 75,
               LOOKS.kind.get(o.frame, "?"),
               "track crops only" if kinds == {"track"} else "+".join(sorted(kinds)) or "none",
               "sure" if o.score >= 0.4 else "unsure")
        tally[key] = tally.get(key, 0) + 1
    for key in sorted(tally):
        label, third, look, where, sure = key
        print(f"  births: {label:7s} {3 * third:2d}-{3 * third + 3:2d} s  {look:7s} look  "
              f"{where:24s} {sure:6s} {tally[key]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--only", default="crowd")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    ap.add_argument("--top", type=int, default=30, help="tracks listed by spill")
    ap.add_argument("--seed", type=int, default=0,
                    help="added to the clip's noise seed: the same scene, other sensor noise "
                         "(how much of the spill is the detector's luck)")
    ap.add_argument("--ident", action="store_true",
                    help="also measure identifiable faces left visible, as the benchmark does")
    ap.add_argument("--observations", action="store_true",
                    help="list the observations of the tracks listed by spill")
    ap.add_argument("--births", action="store_true",
                    help="where tracks began, by 3 s of the clip: at a full or partial look, "
                         "found only in the crops around tracks or also by a region that "
                         "looks for new faces (motion, the sweep), unsure (< 0.4) or sure")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.births:
        import redaction_misses  # noqa: F401  (beside this script: records each look's regions)
    det = CenterFace(threshold=0.01)
    for k, scene in enumerate(scenes(args.seconds)):
        if scene.name not in args.only.split(","):
            continue
        tag = f"_n{args.seed}" if args.seed else ""
        clip = scene_clip(k, scene, args.seconds, args.out, args.seed)
        src = clip.path
        out = args.out / f"{scene.name}{tag}_spill.mp4"
        redact_video(src, out)
        tracker = _RecordingTracker.last
        assert tracker is not None
        tracks: list[Track] = list(tracker.tracks)
        frame_box = {id(o): tracker._to_frame(o.box, o.frame)
                     for t in tracks for o in t.observations}
        unsure_at: dict[int, list[tuple[Track, Observation]]] = {}
        for t in tracks:
            for o in t.observations:
                if o.score < UNSURE:
                    unsure_at.setdefault(o.frame, []).append((t, o))
        spill = {t.id: 0.0 for t in tracks}
        spill_pad = {t.id: 0.0 for t in tracks}
        by_id = {t.id: t for t in tracks}
        real_obs = {t.id: 0 for t in tracks}
        scores: dict[int, list[tuple[float, ...]]] = {t.id: [] for t in tracks}
        changed_away = away_total = 0.0
        for i, (a, b) in enumerate(zip(iter_frames(src), iter_frames(out), strict=True)):
            gt = [box for _, box in clip.gt[i]]
            changed = changed_map(a.image, b.image)
            away = away_map(changed.shape[:2], gt)
            hit = changed & away
            changed_away += float(hit.sum())
            away_total += float(away.sum())
            masks = [(t.id, m.box) for t in tracks if (m := tracker._mask(t, i)) is not None]
            if hit.any() and masks:
                cover = np.zeros(hit.shape, np.float32)
                for _, (x0, y0, x1, y1) in masks:
                    cover[y0 // 2:(y1 + 1) // 2, x0 // 2:(x1 + 1) // 2] += 1
                share = np.where(cover > 0, hit / np.maximum(cover, 1), 0)
                for tid, (x0, y0, x1, y1) in masks:
                    here = float(share[y0 // 2:(y1 + 1) // 2, x0 // 2:(x1 + 1) // 2].sum())
                    spill[tid] += here
                    if not by_id[tid].first <= i <= by_id[tid].last:
                        spill_pad[tid] += here
            for t in tracks:
                for o in t.observations:
                    if o.frame == i and any(_iou(frame_box[id(o)], g) >= 0.3 for g in gt):
                        real_obs[t.id] += 1
            for t, o in unsure_at.get(i, []):
                fb = frame_box[id(o)]
                scores[t.id].append(tuple(rescore(det, a.image, fb, px) for px in RESCALES))
        rows = []
        for t in tracks:
            obs = t.observations
            c0 = ((obs[0].box[0] + obs[0].box[2]) / 2, (obs[0].box[1] + obs[0].box[3]) / 2)
            size = statistics.median(_size(o.box) for o in obs)
            moved = max(math.hypot((o.box[0] + o.box[2]) / 2 - c0[0],
                                   (o.box[1] + o.box[3]) / 2 - c0[1]) for o in obs) / size
            aspect = statistics.median((o.box[3] - o.box[1]) / max(1.0, o.box[2] - o.box[0])
                                       for o in obs)
            sizes = [_size(o.box) for o in obs]
            resc = scores[t.id]
            rows.append({
                "id": t.id, "real": real_obs[t.id] / len(obs), "n": len(obs),
                "frames": t.last - t.first, "max": t.max_score,
                "med": statistics.median(o.score for o in obs),
                "size": size, "sizevar": (max(sizes) - min(sizes)) / size,
                "aspect": aspect, "moved": moved,
                "spill": spill[t.id], "pad": spill_pad[t.id],
                **{f"r{px}": (statistics.median(r[j] for r in resc) if resc else -1.0)
                   for j, px in enumerate(RESCALES)},
                **{f"rmax{px}": (max(r[j] for r in resc) if resc else -1.0)
                   for j, px in enumerate(RESCALES)},
            })

        def fmt(r: dict[str, float]) -> str:
            return " ".join(f"{key}={v:.2f}" if isinstance(v, float) else f"{key}={v}"
                            for key, v in r.items())

        total_spill = sum(spill.values())
        print(f"clip {scene.name}: spill {100 * changed_away / max(1.0, away_total):.3f} % "
              f"({changed_away:.0f} of {away_total:.0f} half-res px), {len(tracks)} tracks, "
              f"{tracker.withdrawn} withdrawn; {total_spill:.0f} px inside track masks")
        texture = [r for r in rows if r["real"] < 0.5]
        unsure_real = [r for r in rows if r["real"] >= 0.5 and r["max"] < 0.5]
        tex_spill = sum(r["spill"] for r in texture)
        print(f"  texture tracks: {len(texture)}, spill {tex_spill:.0f} px "
              f"({100 * tex_spill / max(1.0, changed_away):.0f} % of the clip's spill); "
              f"real tracks: {len(rows) - len(texture)}, spill "
              f"{total_spill - tex_spill:.0f} px")
        pad = sum(spill_pad.values())
        print(f"  spill before a track's first or after its last look: {pad:.0f} px "
              f"({100 * pad / max(1.0, changed_away):.0f} % of the clip's spill)")
        print(f"  top {args.top} tracks by spill:")
        for r in sorted(rows, key=lambda r: -r["spill"])[:args.top]:
            print("   ", fmt(r))
            if args.observations:
                for o in by_id[int(r["id"])].observations:
                    fb = frame_box[id(o)]
                    gt = [g for _, g in clip.gt[o.frame]]
                    best = max((_iou(fb, g) for g in gt), default=0.0)
                    print(f"        frame {o.frame:3d} box {tuple(round(v) for v in fb)} "
                          f"score {o.score:.2f} iou {best:.2f}")
        print(f"  unsure real tracks (max score < 0.5): {len(unsure_real)}")
        for r in sorted(unsure_real, key=lambda r: r["max"]):
            print("   ", fmt(r))
        if args.births:
            _births(tracks, {int(r["id"]): r["real"] >= 0.5 for r in rows}, frame_box)
        if args.ident:
            score = _B.measure(clip, out, 0.0)
            print(f"  ident (the benchmark's measure): "
                  f"{100 * score.identifiable_visible_share:.2f} % of identifiable face boxes "
                  f"left visible")
        print(f"summary {scene.name}: spill {100 * changed_away / max(1.0, away_total):.3f} %, "
              f"{len(texture)} texture tracks ({100 * tex_spill / max(1.0, changed_away):.0f} "
              f"% of spill), {len(unsure_real)} unsure real tracks")


if __name__ == "__main__":
    main()
