"""Arithmetic on boxes ``(x0, y0, x1, y1)`` in pixels, shared by the tracker, the grouping of
tracks into people and the merge of chunk plans, which must agree on what overlap means."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["TRACK_ONLY", "centre", "iou", "size"]

#: A look's boxes (:meth:`redaction.scan.FrameScanner.scan`) carry a sixth column, at this
#: index: 1 where the face was found only in the crops searched around tracks, 0 where a
#: region that looks for new faces (motion, the sweep) found it too.
TRACK_ONLY = 5


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union; 0 for boxes that do not overlap."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centre(b: Sequence[float]) -> tuple[float, float]:
    """The box's centre."""
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def size(b: Sequence[float]) -> float:
    """The box's larger side, at least one pixel."""
    return max(b[2] - b[0], b[3] - b[1], 1.0)
