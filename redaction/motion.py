"""Camera motion: how far the whole picture moved from frame to frame.

A panning PTZ camera or a walking body-worn camera moves every face in the picture by the
same amount at once. Left in the faces' own motion, that shift looks like acceleration and
sudden turns (a shake reverses direction several times a second), so the tracker would need
wide margins and would lose faces between looks. Measured once for the whole frame and taken
out, faces move as they do in front of a still camera.

:class:`CameraMotion` estimates the translation between consecutive frames by phase
correlation (``cv2.phaseCorrelate``, with a Hann window) on a small grey copy of each frame
(``width`` px wide, about 1 ms a frame at 1080p), and accumulates it into each frame's
*offset*: where a point that is still in the scene appears, relative to where it appeared on
the first frame. A point at ``p`` on frame ``i`` is at ``p - offset(i)`` in *scene*
coordinates, in which the tracker links, predicts and interpolates.

Rotation and zoom are not modelled: both are slow on real cameras (a zoom changes face sizes
over seconds, which the tracker's boxes follow), and a translation is what a pan, a tilt and
a shake are. A frame whose correlation peak is weak (a cut, a flash, a frame of pure noise)
counts as still, so a bad estimate never throws the offsets far; so does a shift under half
a pixel, which on a still camera is people walking by, not the camera.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["CameraMotion"]

Image = npt.NDArray[np.uint8]

#: Least phase-correlation response trusted as a real shift (0-1; a still, textured scene
#: gives about 0.3-0.9, unrelated frames under 0.05).
_MIN_RESPONSE = 0.08
#: Shifts under this (frame px) count as none: people walking past a still camera pull the
#: estimate by a fraction of a pixel a frame, which would add up to a drift of tens of
#: pixels; a camera that really moves moves more than this.
_DEADBAND = 0.5


class CameraMotion:
    """Accumulated camera translation per frame (frame px), from consecutive frames.

    Call :meth:`update` with every frame in order; :meth:`offset` answers any frame seen.
    """

    def __init__(self, width: int, height: int, *, analysis_width: int = 256) -> None:
        self.width, self.height = width, height
        self._aw = min(analysis_width, width)
        self._ah = max(8, round(height * self._aw / width))
        self._scale = width / self._aw
        self._window = cv2.createHanningWindow((self._aw, self._ah), cv2.CV_32F)
        self._previous: npt.NDArray[np.float32] | None = None
        self._offsets: list[tuple[float, float]] = []

    def update(self, index: int, image: Image) -> tuple[float, float]:
        """Measure frame ``index`` (BGR; frames in order from 0) and return its offset."""
        if index != len(self._offsets):
            raise ValueError(f"frames must come in order: expected {len(self._offsets)}, "
                             f"got {index}")
        small = cv2.resize(image, (self._aw, self._ah), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if self._previous is None:
            offset = (0.0, 0.0)
        else:
            (dx, dy), response = cv2.phaseCorrelate(self._previous, grey, self._window)
            dx, dy = dx * self._scale, dy * self._scale
            if response < _MIN_RESPONSE or max(abs(dx), abs(dy)) < _DEADBAND:
                dx = dy = 0.0
            last = self._offsets[-1]
            offset = (last[0] + dx, last[1] + dy)
        self._previous = grey
        self._offsets.append(offset)
        return offset

    def offset(self, index: int) -> tuple[float, float]:
        """Offset of frame ``index``; frames past the last measured hold the last offset."""
        if not self._offsets:
            return 0.0, 0.0
        return self._offsets[min(max(0, index), len(self._offsets) - 1)]

    def velocity(self, index: int) -> tuple[float, float]:
        """Camera motion (px/frame) into frame ``index``."""
        a, b = self.offset(index - 1), self.offset(index)
        return b[0] - a[0], b[1] - a[1]
