"""Masking frames, burning in the caption, and what a render reports.

A track's mask is the ellipse inscribed in its box (``MaskShape.ELLIPSE``, the shape of a
head: the tracker sizes the box so that the ellipse covers the head) or the whole box
(``MaskShape.BOX``, version 1 plans); manual boxes are always whole rectangles. Each style
destroys the detail inside the mask rather than hiding it reversibly:

- ``blur``: the box is shrunk to a few cells (``12 - strength`` across its longer side) and
  smoothly enlarged again, then smoothed twice with a box filter a cell wide - no feature
  smaller than a cell survives;
- ``pixelate``: the same cells, enlarged as flat blocks;
- ``solid``: black.

Everything is integer arithmetic on the same inputs, so rendering a plan is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from redaction.plan import MaskShape, MaskSpec, MaskStyle

__all__ = ["FrameMasker", "RenderResult", "apply_mask", "burn_caption"]

Image = npt.NDArray[np.uint8]
IntBox = tuple[int, int, int, int]


def _cells(strength: int) -> int:
    return max(2, 12 - strength)


def _ellipse(box: IntBox, clipped: IntBox) -> npt.NDArray[np.bool_]:
    """The ellipse inscribed in ``box``, over the part ``clipped`` of it inside the frame."""
    x0, y0, x1, y1 = clipped
    # Centre and semi-axes in the clipped region's pixels; pixel centres are at +0.5.
    cx = (box[0] + box[2]) / 2 - x0
    cy = (box[1] + box[3]) / 2 - y0
    rx = max(0.5, (box[2] - box[0]) / 2)
    ry = max(0.5, (box[3] - box[1]) / 2)
    xs = (np.arange(x1 - x0, dtype=np.float32) + 0.5 - cx) / rx
    ys = (np.arange(y1 - y0, dtype=np.float32) + 0.5 - cy) / ry
    return (ys[:, None] ** 2 + xs[None, :] ** 2) <= 1.0


def apply_mask(image: Image, box: IntBox, spec: MaskSpec,
               shape: MaskShape = MaskShape.BOX) -> None:
    """Hide ``box`` of ``image`` (BGR, changed in place) in the style of ``spec``: the whole
    box, or the ellipse inscribed in it (``shape``)."""
    h, w = image.shape[:2]
    x0, y0 = max(0, box[0]), max(0, box[1])
    x1, y1 = min(w, box[2]), min(h, box[3])
    if x1 <= x0 or y1 <= y0:
        return
    roi = image[y0:y1, x0:x1]
    bw, bh = x1 - x0, y1 - y0
    if spec.style is MaskStyle.SOLID:
        hidden: Image = np.zeros_like(roi)
    else:
        cells = _cells(spec.strength)
        longer = max(bw, bh)
        cw = max(1, round(cells * bw / longer))
        ch = max(1, round(cells * bh / longer))
        small = cv2.resize(roi, (cw, ch), interpolation=cv2.INTER_AREA)
        if spec.style is MaskStyle.PIXELATE:
            hidden = cast(Image, cv2.resize(small, (bw, bh), interpolation=cv2.INTER_NEAREST))
        else:
            big = cv2.resize(small, (bw, bh), interpolation=cv2.INTER_LINEAR)
            # Two box filters about half a cell wide: a near-Gaussian smoothing of the cell
            # seams (OpenCV's GaussianBlur is ~60x slower on these small regions).
            k = max(3, (longer // cells) | 1)
            hidden = cast(Image, cv2.blur(cv2.blur(big, (k, k)), (k, k)))
    if shape is MaskShape.ELLIPSE:
        inside = _ellipse(box, (x0, y0, x1, y1)).view(np.uint8)
        # A masked copy, not boolean indexing (``roi[inside] = hidden[inside]``): the same
        # pixels, but indexing gathers and scatters every pixel through index arrays, about
        # 0.45 ms a 36x42 mask; with ~190 masks a frame on the crowd clip that alone was
        # 85 ms of the render thread's frame (issue #13, speed: cProfile of the crowd).
        done = cv2.copyTo(hidden, inside, roi)
        if done is not roi:  # OpenCV wrote a new array instead of into the view
            roi[:] = done
    else:
        roi[:] = hidden


def burn_caption(image: Image, text: str) -> None:
    """Write ``text`` in a black band across the top of ``image`` (in place)."""
    h = image.shape[0]
    scale = max(0.35, h / 1080 * 0.9)
    thickness = max(1, round(scale * 2))
    (_, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    band = min(h, th + base + 2 * max(4, int(8 * scale)))
    image[:band] = 0
    cv2.putText(image, text, (max(4, int(8 * scale)), band - base - max(2, int(4 * scale))),
                cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)


class FrameMasker:
    """Applies one plan's mask style and caption to frames."""

    def __init__(self, spec: MaskSpec, caption: str | None = None) -> None:
        self.spec = spec
        self.caption = caption

    def __call__(self, image: Image, boxes: list[IntBox],
                 rectangles: Sequence[IntBox] = ()) -> Image:
        """Mask ``boxes`` (tracks: in the spec's shape) and ``rectangles`` (manual boxes:
        whole) and burn the caption into ``image`` (in place); return it.

        Boxes are masked in sorted order: where masks overlap, the pixels depend on the
        order, and the same boxes must give the same picture whether they come from the
        tracker in one pass or from a plan whose tracks were joined into people."""
        for box in sorted(boxes):
            apply_mask(image, box, self.spec, self.spec.shape)
        for box in rectangles:
            apply_mask(image, box, self.spec, MaskShape.BOX)
        if self.caption:
            burn_caption(image, self.caption)
        return image


@dataclass(frozen=True)
class RenderResult:
    """What a render produced, for the vault's provenance record.

    ``output`` is the file written, ``sha256`` its hash; ``plan_sha256`` the hash of the plan
    rendered; ``source_sha256`` the hash of the footage read; ``software_version`` this
    package's version; ``parameters`` everything that shaped the output (mask, encoder,
    detector); ``frame_count``/``duration`` those of the output.
    """

    output: str
    sha256: str
    plan_sha256: str
    source_sha256: str
    software_version: str
    parameters: dict[str, Any]
    frame_count: int
    duration: float
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            "output": self.output, "sha256": self.sha256, "plan_sha256": self.plan_sha256,
            "source_sha256": self.source_sha256, "software_version": self.software_version,
            "parameters": self.parameters, "frame_count": self.frame_count,
            "duration": self.duration, "stats": self.stats,
        }
