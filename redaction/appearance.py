"""A face's appearance: the descriptor that says whether two tracks show one face.

:func:`describe` turns the face inside a mask box into uniform local-binary-pattern
histograms (texture, not brightness or size, so it survives lighting and distance);
:func:`distance` compares two of them (or their means over a track); :class:`AppearanceLog`
samples each track's faces as the frames stream past, in bounded memory. Which tracks are one
person, given these, is :mod:`redaction.grouping`'s decision; this module only measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from redaction.track import MaskBox

__all__ = ["MIN_FACE", "AppearanceLog", "Image", "Vector", "describe", "distance"]

Image = npt.NDArray[np.uint8]
Vector = npt.NDArray[np.float32]

#: Faces smaller than this (px) are not compared by appearance: too little of their texture
#: survives compression. :class:`redaction.grouping.IdentityParams` defaults to it.
MIN_FACE = 32.0

#: The face inside a mask box: the tracker grows the face box by ``box_pad`` (a fifth) of
#: its size on each side, plus a margin; the middle 64 % is the face without hair or edge.
_INNER = 0.18
#: A face box is about this share of the mask box around it (``box_pad`` of 0.2 a side).
_FACE_OF_MASK = 1 / 1.4
#: The face is resampled to this square, and its local binary patterns counted in a
#: _GRID x _GRID grid of cells (the layout of a face: eyes, nose, mouth), as in LBPH face
#: recognition (Ahonen, Hadid and Pietikäinen, ECCV 2004).
_SIDE, _GRID = 32, 4


def _uniform_lut() -> npt.NDArray[np.int32]:
    # The 58 "uniform" 8-bit patterns (at most two 0/1 transitions round the circle: edges,
    # corners, spots) each get a bin; every other pattern (noise) shares bin 58.
    lut = np.full(256, 58, np.int32)
    n = 0
    for v in range(256):
        bits = [(v >> i) & 1 for i in range(8)]
        if sum(bits[i] != bits[(i + 1) % 8] for i in range(8)) <= 2:
            lut[v] = n
            n += 1
    return lut


_LUT = _uniform_lut()
_BINS = 59
_CELL = (_SIDE - 2) // _GRID
#: Each pixel's cell (row-major), times the bins a cell takes.
_CELL_OF = ((np.arange(_SIDE - 2)[:, None] // _CELL) * _GRID
            + np.arange(_SIDE - 2)[None, :] // _CELL).clip(0, _GRID * _GRID - 1) * _BINS
_RING = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))


def _inner(box: tuple[int, int, int, int], width: int, height: int
           ) -> tuple[int, int, int, int] | None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    ix0, iy0 = max(0, round(x0 + _INNER * w)), max(0, round(y0 + _INNER * h))
    ix1, iy1 = min(width, round(x1 - _INNER * w)), min(height, round(y1 - _INNER * h))
    if ix1 - ix0 < 6 or iy1 - iy0 < 6:
        return None
    return ix0, iy0, ix1, iy1


def describe(image: Image, box: tuple[int, int, int, int]) -> Vector | None:
    """The appearance descriptor of the face in mask box ``box`` of ``image`` (BGR), or
    ``None`` when too little of it is in the frame: uniform local-binary-pattern histograms
    of the face resampled to 32 px, in a 4x4 grid of cells (each cell's histogram sums to
    1/16). It describes texture, not brightness or size, so it survives lighting and
    distance.

    Colour is not used: on this project's faces (LFW, each person tinted a skin tone), the
    hue-saturation histogram of the same person at two places differed as much as two
    people's (Hellinger 0.17 against 0.13-0.20), as a face's colour does under real light.
    """
    h, w = image.shape[:2]
    inner = _inner(box, w, h)
    if inner is None:
        return None
    x0, y0, x1, y1 = inner
    grey = cv2.resize(cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY), (_SIDE, _SIDE),
                      interpolation=cv2.INTER_AREA).astype(np.int16)
    centre = grey[1:-1, 1:-1]
    n = centre.shape[0]
    code = np.zeros((n, n), np.int32)
    for k, (dy, dx) in enumerate(_RING):
        code |= (grey[dy:dy + n, dx:dx + n] >= centre).astype(np.int32) << k
    cell = n // _GRID
    m = cell * _GRID
    # One histogram over (cell, pattern) pairs: the 16 cells' histograms side by side.
    hists = np.bincount((_CELL_OF[:m, :m] + _LUT[code[:m, :m]]).ravel(),
                        minlength=_GRID * _GRID * _BINS).astype(np.float32)
    hists /= cell * cell * _GRID * _GRID
    return hists


def distance(a: Vector, b: Vector) -> float:
    """Appearance distance of two descriptors (or their means over a track's samples):
    the chi-square distance of the histograms, ``0.5 * sum((a - b)² / (a + b))``, from 0
    (alike) to 1 (nothing in common)."""
    s = a + b
    nz = s > 0
    return float(0.5 * np.sum((a[nz] - b[nz]) ** 2 / s[nz]))


@dataclass
class AppearanceLog:
    """Appearance samples of each track, taken from the frames as they stream past.

    :meth:`add` is given each frame with its mask boxes (frame pixels); every ``every``-th
    frame of a track is described, at most ``limit`` samples a track (then every other one
    is dropped and the spacing doubles), so memory stays small on long footage.
    """

    every: int = 3
    limit: int = 96
    #: Faces smaller than this (px) are not described: :func:`redaction.grouping.group_people`
    #: does not compare them (``IdentityParams.min_face``, the same default), and a crowd of
    #: them would cost the most.
    min_face: float = MIN_FACE
    _samples: dict[int, list[tuple[int, Vector]]] = field(default_factory=dict)
    _step: dict[int, int] = field(default_factory=dict)

    def add(self, index: int, image: Image, boxes: Sequence[MaskBox]) -> None:
        """Describe the faces in mask ``boxes`` of frame ``index`` that are due a sample."""
        for m in boxes:
            step = self._step.get(m.track_id, self.every)
            if index % step or (m.box[3] - m.box[1]) * _FACE_OF_MASK < self.min_face:
                continue
            d = describe(image, m.box)
            if d is None:
                continue
            samples = self._samples.setdefault(m.track_id, [])
            samples.append((index, d))
            if len(samples) > self.limit:
                del samples[1::2]
                self._step[m.track_id] = step * 2

    def samples(self, track_id: int, first: int, last: int) -> list[tuple[int, Vector]]:
        """The samples (frame, descriptor) of ``track_id`` over frames ``first``-``last``."""
        return [(f, v) for f, v in self._samples.get(track_id, ()) if first <= f <= last]

    def mean(self, track_id: int, first: int, last: int) -> tuple[Vector | None, int]:
        """Mean descriptor of ``track_id`` over frames ``first``-``last`` (where the track
        was seen, not extrapolated) and how many samples it averages (``None``, 0: none).
        A mean is what is compared: one sample is as much the detector's framing of the
        face as the face, and the framing averages out over a track."""
        vs = [v for f, v in self._samples.get(track_id, ()) if first <= f <= last]
        if not vs:
            return None, 0
        return cast(Vector, np.mean(vs, axis=0).astype(np.float32)), len(vs)
