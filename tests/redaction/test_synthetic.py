"""The synthetic footage the tests and the benchmark measure against: ground truth is exact."""

from __future__ import annotations

import numpy as np
import pytest

from redaction.synthetic import (
    Face,
    linear,
    pan_zoom,
    render_frame,
    still,
    walk_shake,
)


def drawn_box(with_face: np.ndarray, without: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(np.abs(with_face.astype(int) - without.astype(int)).max(axis=2) > 30)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("camera", [None, "ptz", "bodycam"])
def test_ground_truth_box_is_where_the_face_is_drawn(camera: str | None) -> None:
    """Issue #13 finding 1 (the measure): with a still or a moving camera, the face box the
    benchmark scores against is the face that was drawn."""
    cam = {None: None, "ptz": pan_zoom(640, 360, 2.0),
           "bodycam": walk_shake(640, 360, 2.0, seed=1)}[camera]
    wx, wy = (320, 180) if cam is None else (cam.world[0] / 2, cam.world[1] / 2)
    face = Face(linear(wx - 40, wy, wx + 40, wy + 10, 2.0), 40, identity=7)
    for t in (0.0, 0.7, 1.3):
        a = render_frame(640, 360, t, [face], 1, 0.0, "coffee", camera=cam)
        b = render_frame(640, 360, t, [], 1, 0.0, "coffee", camera=cam)
        box = face.box(t)
        assert box is not None
        if cam is not None:
            box = cam.to_frame(box, t)
        x0, y0, x1, y1 = drawn_box(a, b)
        # The face box lies inside the drawn head, which is little larger than it.
        assert x0 <= box[0] + 3 and y0 <= box[1] + 3 and x1 >= box[2] - 3 and y1 >= box[3] - 3
        assert (x1 - x0) * (y1 - y0) < 1.6 * (box[2] - box[0]) * (box[3] - box[1])


def test_identities_are_different_people() -> None:
    """Issue #13 finding 1: the benchmark's faces are many different real people, not one
    image repeated."""
    crops = []
    for k in range(6):
        img = render_frame(200, 200, 0.0, [Face(still(100, 100), 120, identity=k)], 1, 0.0,
                           "coffee")
        crops.append(img[50:150, 60:140].astype(float).ravel())
    for i in range(len(crops)):
        for j in range(i + 1, len(crops)):
            assert np.corrcoef(crops[i], crops[j])[0, 1] < 0.95
