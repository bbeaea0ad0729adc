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
