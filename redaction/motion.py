"""Camera motion: how far the whole picture moved from frame to frame.

A panning PTZ camera or a walking body-worn camera moves every face in the picture by the
same amount at once. Left in the faces' own motion, that shift looks like acceleration and
sudden turns (a shake reverses direction several times a second), so the tracker would need
wide margins and would lose faces between looks. Measured once for the whole frame and taken
out, faces move as they do in front of a still camera.

:class:`CameraMotion` estimates the translation between consecutive frames by phase
correlation (``cv2.phaseCorrelate``, with a Hann window) on a small grey copy of each frame
(about ``analysis_width`` px wide, reduced by a whole factor: about 4 ms a frame at 1080p on
a busy core), in each tile of a 4x3 grid, and takes the median: people walking through part
of the picture move their own tiles, not the median. It accumulates the shifts into each
frame's *offset*: where a point that is still in the scene appears, relative to where it
appeared on the first frame. A point at ``p`` on frame ``i`` is at ``p - offset(i)`` in *scene*
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
Box = tuple[float, float, float, float]

#: Least phase-correlation response trusted as a real shift (0-1; a still, textured scene
#: gives about 0.3-0.9, unrelated frames under 0.05).
_MIN_RESPONSE = 0.08
#: Shifts under this (frame px) count as none: people walking past a still camera pull the
#: estimate by a fraction of a pixel a frame, which would add up to a drift of tens of
#: pixels; a camera that really moves moves more than this.
_DEADBAND = 0.5
#: A zoom step under this between two frames (0.2 %: a quarter pixel at the edge of the
#: analysis copy) counts as none: people walking past a still camera fake about 0.1 %.
_ZOOM_DEADBAND = 0.002
#: Tiles (columns, rows) of the small grey copy, each correlated on its own.
_GRID = (4, 3)


def _dft_size(n: int) -> int:
    """The largest even size up to ``n`` that the FFT needs no padding for."""
    while n > 2 and (n % 2 or cv2.getOptimalDFTSize(n) != n):
        n -= 1
    return n


class CameraMotion:
    """Accumulated camera translation per frame (frame px), from consecutive frames.

    Call :meth:`update` with every frame in order; :meth:`offset` answers any frame seen.
    """

    def __init__(self, width: int, height: int, *, analysis_width: int = 240) -> None:
        self.width, self.height = width, height
        # An integer reduction: OpenCV's area averaging by a whole factor is ~50x faster than
        # by a fraction (0.2 ms instead of 10 at 1080p).
        self._factor = max(1, width // analysis_width)
        self._aw, self._ah = max(8, width // self._factor), max(8, height // self._factor)
        self._scale = float(self._factor)
        # The estimate is the median over a grid of tiles: people walking through part of
        # the picture move their tiles, not the median of all of them.
        # Tiles of sizes the FFT takes as they are: OpenCV's phase correlation reads a
        # half-pixel shift into inputs it pads (a still 1080p camera "moved" 4 px a frame
        # with 44- or 45-row tiles).
        cols, rows = _GRID
        tw, th = _dft_size(self._aw // cols), _dft_size(self._ah // rows)
        self._tiles = [(tw * c, th * r, tw * (c + 1), th * (r + 1))
                       for r in range(rows) for c in range(cols)]
        self._window = cv2.createHanningWindow((tw, th), cv2.CV_32F)
        self._previous: npt.NDArray[np.float32] | None = None
        self._offsets: list[tuple[float, float]] = []
        self._zooms: list[float] = []

    def update(self, index: int, image: Image) -> tuple[float, float]:
        """Measure frame ``index`` (BGR; frames in order from 0) and return its offset."""
        if index != len(self._offsets):
            raise ValueError(f"frames must come in order: expected {len(self._offsets)}, "
                             f"got {index}")
        f = self._factor
        small = cv2.resize(image[:self._ah * f, :self._aw * f], (self._aw, self._ah),
                           interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if self._previous is None:
            offset, zoom = (0.0, 0.0), 1.0
        else:
            shifts = []
            tw, th = self._window.shape[1], self._window.shape[0]
            for x0, y0, _, _ in self._tiles:
                (sx, sy), response = cv2.phaseCorrelate(
                    self._previous[y0:y0 + th, x0:x0 + tw], grey[y0:y0 + th, x0:x0 + tw],
                    self._window)
                if response >= _MIN_RESPONSE:
                    shifts.append((x0 + tw / 2, y0 + th / 2, sx, sy))
            dx = dy = k = 0.0
            if len(shifts) * 2 > len(self._tiles):  # else most of the picture gives no
                # answer: a cut, a flash
                dx, dy, k = self._fit(shifts)
            if max(abs(dx), abs(dy)) < _DEADBAND and abs(k) < _ZOOM_DEADBAND:
                dx = dy = k = 0.0
            # A scene point seen at p on the previous frame is at (1 + k)(p - c) + c + d now
            # (c: the frame's centre): the accumulated zoom and offset follow.
            cx, cy = self.width / 2, self.height / 2
            (lx, ly), lz = self._offsets[-1], self._zooms[-1]
            offset = ((1 + k) * (lx - cx) + cx + dx, (1 + k) * (ly - cy) + cy + dy)
            zoom = lz * (1 + k)
        self._previous = grey
        self._offsets.append(offset)
        self._zooms.append(zoom)
        return offset

    def _fit(self, shifts: list[tuple[float, float, float, float]]) -> tuple[float, float, float]:
        """Pan (dx, dy: frame px, at the frame's centre) and zoom step ``k`` from the tiles'
        shifts (tile centre x, y and shift, analysis px).

        A zoom moves each tile away from the centre in proportion to its distance, so the
        shifts are fitted as ``d + k * (tile centre - c)``; tiles a person walked through
        disagree with the rest and are dropped (more than a pixel off), then the fit is
        redone. A zoom step under :data:`_ZOOM_DEADBAND` is none: the pan is then the
        tiles' median, as robust as it was before zoom was modelled.
        """
        a = np.array(shifts, np.float64)
        rx, ry = a[:, 0] - self._aw / 2, a[:, 1] - self._ah / 2
        keep = np.ones(len(a), bool)
        k = 0.0
        for _ in range(2):
            if keep.sum() < 4:
                break
            # Least squares for (dx, dy, k) over the kept tiles' x and y equations.
            rows = np.concatenate([np.stack([np.ones(keep.sum()), np.zeros(keep.sum()),
                                             rx[keep]], 1),
                                   np.stack([np.zeros(keep.sum()), np.ones(keep.sum()),
                                             ry[keep]], 1)])
            rhs = np.concatenate([a[keep, 2], a[keep, 3]])
            sol, *_ = np.linalg.lstsq(rows, rhs, rcond=None)
            k = float(sol[2])
            res = np.hypot(a[:, 2] - sol[0] - k * rx, a[:, 3] - sol[1] - k * ry)
            keep = res <= max(1.0, 2 * float(np.median(res)))
        if abs(k) < _ZOOM_DEADBAND:
            k = 0.0
            ex, ey = float(np.median(a[:, 2])), float(np.median(a[:, 3]))
        else:
            ex = float(np.median(a[keep, 2] - k * rx[keep])) if keep.any() else 0.0
            ey = float(np.median(a[keep, 3] - k * ry[keep])) if keep.any() else 0.0
        return ex * self._scale, ey * self._scale, k

    def offset(self, index: int) -> tuple[float, float]:
        """Offset of frame ``index``; frames past the last measured hold the last offset."""
        if not self._offsets:
            return 0.0, 0.0
        return self._offsets[min(max(0, index), len(self._offsets) - 1)]

    def zoom(self, index: int) -> float:
        """Zoom of frame ``index`` against the first (frame px per scene px)."""
        if not self._zooms:
            return 1.0
        return self._zooms[min(max(0, index), len(self._zooms) - 1)]

    def to_scene(self, box: Box, index: int) -> Box:
        """A box on frame ``index`` (frame px) in scene coordinates."""
        (ox, oy), z = self.offset(index), self.zoom(index)
        return (box[0] - ox) / z, (box[1] - oy) / z, (box[2] - ox) / z, (box[3] - oy) / z

    def to_frame(self, box: Box, index: int) -> Box:
        """A box in scene coordinates as seen on frame ``index`` (frame px)."""
        (ox, oy), z = self.offset(index), self.zoom(index)
        return box[0] * z + ox, box[1] * z + oy, box[2] * z + ox, box[3] * z + oy

    def velocity(self, index: int, at: tuple[float, float] | None = None,
                 ) -> tuple[float, float]:
        """Camera motion (px/frame) into frame ``index`` at the point ``at`` of that frame
        (default: the frame's centre; a zoom moves the edges more)."""
        x, y = at if at is not None else (self.width / 2, self.height / 2)
        a = self.to_frame(self.to_scene((x, y, x, y), index), index - 1)
        return x - a[0], y - a[1]
