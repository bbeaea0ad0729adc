"""Benchmark: masking a crowd's faces in one 1080p frame, ours beside the old boolean-index
ellipse (the anchor), same boxes, same run.

    python benchmarks/masks.py               # 190 faces, best of 7
    python benchmarks/masks.py --faces 400 --repeat 11

Why: cProfile of the crowd clip (issue #13) had the render thread spend about 117 ms a frame in
``apply_mask`` over ~190 ellipses, most of it copying each ellipse's pixels by boolean
indexing; ``redaction/render.py`` now copies them in with ``cv2.copyTo``. The unit test
(``tests/redaction/test_render.py``) holds that both give the very same pixels; this measures
the time, which a unit test must not. Ends with one summary line.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# The package, not benchmarks/redaction.py beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redaction.plan import MaskShape, MaskSpec  # noqa: E402
from redaction.render import _ellipse, apply_mask  # noqa: E402

Box = tuple[int, int, int, int]


def old_ellipse(image: np.ndarray, box: Box, spec: MaskSpec) -> None:
    """apply_mask's ellipse before issue #13's speed work: box hidden, ellipse copied by index."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    if x1 <= x0 or y1 <= y0:
        return
    roi = image[y0:y1, x0:x1]
    hidden = roi.copy()
    apply_mask(hidden, (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0), spec, MaskShape.BOX)
    inside = _ellipse(box, (x0, y0, x1, y1))
    roi[inside] = hidden[inside]


def best_of(repeat: int, frame: np.ndarray, boxes: list[Box],
            fn: Callable[[np.ndarray, Box], None]) -> float:
    times = []
    for _ in range(repeat):
        image = frame.copy()
        t0 = time.perf_counter()
        for box in boxes:
            fn(image, box)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=190)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    boxes = [(int(x), int(y), int(x) + int(s), int(y) + int(1.2 * s))
             for x, y, s in zip(rng.uniform(-20, 1900, args.faces), rng.uniform(-20, 1060, args.faces),
                                rng.uniform(18, 60, args.faces), strict=True)]
    spec = MaskSpec()
    ours = best_of(args.repeat, frame, boxes, lambda im, b: apply_mask(im, b, spec, MaskShape.ELLIPSE))
    anchor = best_of(args.repeat, frame, boxes, lambda im, b: old_ellipse(im, b, spec))
    square = best_of(args.repeat, frame, boxes, lambda im, b: apply_mask(im, b, spec, MaskShape.BOX))
    print(f"masks: {args.faces} faces at 1080p, ellipse {ours * 1e3:.1f} ms/frame, "
          f"old ellipse (anchor) {anchor * 1e3:.1f} ms, box {square * 1e3:.1f} ms, "
          f"ellipse/anchor {ours / anchor:.2f}")


if __name__ == "__main__":
    main()
