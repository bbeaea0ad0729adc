"""Masks destroy the detail they cover; captions are burned in."""

from __future__ import annotations

import numpy as np
import pytest

from redaction import MaskSpec, MaskStyle
from redaction.render import FrameMasker, apply_mask
from redaction.synthetic import Face, face_visibility, render_frame, still


@pytest.fixture
def frame() -> np.ndarray:
    return render_frame(320, 240, 0.0, [Face(still(160, 120), 60)], 1, 2.0, "coffee")


@pytest.mark.parametrize("style", list(MaskStyle))
@pytest.mark.parametrize("strength", [1, 8, 10])
def test_each_style_hides_the_face(frame: np.ndarray, style: MaskStyle, strength: int) -> None:
    box = Face(still(160, 120), 60).box(0.0)
    assert box is not None
    out = frame.copy()
    apply_mask(out, (int(box[0]) - 4, int(box[1]) - 4, int(box[2]) + 4, int(box[3]) + 4),
               MaskSpec(style=style, strength=strength))
    assert face_visibility(frame, frame, box) == 1.0
    assert face_visibility(frame, out, box) < 0.3  # at most a block edge lines up
    # Nothing outside the box changes.
    assert np.array_equal(out[:, :100], frame[:, :100])


def test_boxes_outside_or_on_the_edge_are_clipped(frame: np.ndarray) -> None:
    out = frame.copy()
    apply_mask(out, (-20, -20, 10, 10), MaskSpec())
    apply_mask(out, (400, 400, 500, 500), MaskSpec())
    assert not np.array_equal(out[:10, :10], frame[:10, :10])
    assert np.array_equal(out[10:], frame[10:])


def test_masker_is_deterministic_and_burns_the_caption(frame: np.ndarray) -> None:
    masker = FrameMasker(MaskSpec(), caption="REF 1 REDACTED COPY")
    a = masker(frame.copy(), [(100, 60, 220, 180)])
    b = masker(frame.copy(), [(100, 60, 220, 180)])
    assert np.array_equal(a, b)
    assert a[:3].max() == 0 and a[:20].max() == 255  # a black band with white text


def test_ellipse_mask_hides_the_face_and_leaves_the_corners(frame: np.ndarray) -> None:
    """Issue #13 finding 2: masks are head-shaped. The ellipse inscribed in a track's box
    (the face box grown by a fifth on every side, as the tracker makes it) hides the face;
    the box's corners, which are background, are left as they were."""
    from redaction import MaskShape

    box = Face(still(160, 120), 60).box(0.0)
    assert box is not None
    w, h = box[2] - box[0], box[3] - box[1]
    mask = (int(box[0] - 0.2 * w), int(box[1] - 0.2 * h), int(box[2] + 0.2 * w) + 1,
            int(box[3] + 0.2 * h) + 1)
    out = frame.copy()
    apply_mask(out, mask, MaskSpec(), MaskShape.ELLIPSE)
    assert face_visibility(frame, out, box) < 0.3
    corner = 6
    for y, x in ((mask[1], mask[0]), (mask[1], mask[2] - corner),
                 (mask[3] - corner, mask[0]), (mask[3] - corner, mask[2] - corner)):
        assert np.array_equal(out[y:y + corner, x:x + corner], frame[y:y + corner, x:x + corner])
    changed = np.any(out != frame, axis=2).sum()
    area = (mask[2] - mask[0]) * (mask[3] - mask[1])
    assert changed < 0.8 * area  # about pi/4 of the box


def test_manual_boxes_stay_rectangles(frame: np.ndarray) -> None:
    """A person's manual box (a number plate, a document) is masked whole, whatever the
    shape of track masks."""
    out = FrameMasker(MaskSpec(style=MaskStyle.SOLID))(frame.copy(), [], [(10, 10, 50, 40)])
    assert out[10:40, 10:50].max() == 0
