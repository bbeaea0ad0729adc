"""Packing many small detector inputs into one image (a mosaic), wasting few pixels.

The detector's cost grows with the pixels it is given, and every call also pays a fixed
overhead and rounds its input up to a multiple of 32. So the scanner packs the small
regions of one look into a single image. Every pixel of that image that is not a region
(gutters, ragged shelf ends, alignment) is paid for and searches nothing, so the packing is
worth doing well:

- a **skyline** packer places each rectangle, tallest first, at the lowest free position
  along the top edge of what is already placed (bottom-left rule), so short rectangles fill
  the gaps beside tall ones instead of starting a new shelf;
- it is tried at every 32-aligned width from the widest rectangle up to about twice the
  square root of the total area, and the packing with the smallest aligned area is kept.
  Each try costs time in the number of rectangles, so many rectangles are tried at fewer
  widths (at least :data:`MIN_WIDTHS`, spread evenly): a dense crowd's look (150 regions,
  80 widths) spent 50 ms of Python holding the GIL here, and 16 widths pack it with 1.6 %
  more pixels (issue #13, measured on the benchmark's crowd clip). A few regions keep every
  width: where a crop lands moves the detector's scores a little, and the smeared faces of
  a fast pan, scored near the bar, were found less often with fewer widths.

Long strips are packed apart from the rest (:func:`by_shape`).

Rectangles are separated by ``gutter`` pixels (the scanner leaves them black) so that what
the detector finds can be told apart by region. Positions are deterministic for the same
input sizes in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MIN_WIDTHS", "Packing", "by_shape", "pack"]

#: Fewest widths a packing is tried at; more while rectangles x widths stays under
#: :data:`_WORK` (see the module's docstring).
MIN_WIDTHS = 16
_WORK = 1_200


@dataclass(frozen=True)
class Packing:
    """Where each rectangle went: ``positions[i]`` is the (x, y) of ``sizes[i]``'s top-left
    corner; the mosaic is ``width`` x ``height`` (both multiples of ``align``)."""

    width: int
    height: int
    positions: list[tuple[int, int]]

    @property
    def area(self) -> int:
        """Pixels of the mosaic."""
        return self.width * self.height


def _align(n: int, align: int) -> int:
    return -(-n // align) * align


def _skyline(sizes: Sequence[tuple[int, int]], order: Sequence[int], width: int,
             gutter: int) -> tuple[int, list[tuple[int, int]]]:
    """Bottom-left skyline packing of ``sizes`` (w, h) into ``width``; (height, positions).

    The skyline is a list of (x, y, w) segments covering [0, width + gutter): the height
    already used above each stretch of the mosaic. Each rectangle occupies its size plus a
    gutter on its right and bottom sides; the gutter past the mosaic's edge is free.
    """
    full = width + gutter
    sky: list[list[int]] = [[0, 0, full]]
    positions: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    for i in order:
        w, h = sizes[i][0] + gutter, sizes[i][1] + gutter
        best: tuple[int, int, int] | None = None  # (y, x, segment index)
        for s in range(len(sky)):
            x = sky[s][0]
            if x + w > full:
                break
            # The rectangle rests on the highest segment it spans.
            y, reach, k = 0, x + w, s
            while k < len(sky) and sky[k][0] < reach:
                y = max(y, sky[k][1])
                k += 1
            if best is None or (y, x) < best[:2]:
                best = (y, x, s)
        if best is None:
            raise ValueError(f"a {sizes[i][0]} px wide region does not fit in {width} px")
        y, x, s = best
        positions[i] = (x, y)
        # Replace the stretch [x, x + w) of the skyline by the rectangle's bottom edge.
        new: list[list[int]] = []
        for seg in sky:
            sx, sy, sw = seg
            end = sx + sw
            if end <= x or sx >= x + w:
                new.append(seg)
                continue
            if sx < x:
                new.append([sx, sy, x - sx])
            if end > x + w:
                new.append([x + w, sy, end - (x + w)])
        new.append([x, y + h, w])
        new.sort()
        # Merge neighbours at the same height, so later searches see one wide floor.
        sky = []
        for seg in new:
            if sky and sky[-1][1] == seg[1] and sky[-1][0] + sky[-1][2] == seg[0]:
                sky[-1][2] += seg[2]
            else:
                sky.append(seg)
    height = max((positions[i][1] + sizes[i][1] for i in order), default=0)
    return height, positions


def pack(sizes: Sequence[tuple[int, int]], *, gutter: int = 16, align: int = 32) -> Packing:
    """Pack rectangles of ``sizes`` (width, height) into the smallest aligned mosaic found.

    Raises ``ValueError`` for an empty list or a non-positive size.
    """
    if not sizes:
        raise ValueError("nothing to pack")
    if any(w <= 0 or h <= 0 for w, h in sizes):
        raise ValueError("sizes must be positive")
    # Tallest first (then widest): the skyline stays flat and short pieces fill beside it.
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i][1], -sizes[i][0], i))
    widest = max(w for w, _ in sizes)
    area = sum((w + gutter) * (h + gutter) for w, h in sizes)
    lo = _align(widest, align)
    hi = max(lo, _align(int(2 * math.sqrt(area)), align))
    widths = list(range(lo, hi + 1, align))
    most = max(MIN_WIDTHS, _WORK // len(sizes))
    if len(widths) > most:
        widths = sorted({widths[round(k * (len(widths) - 1) / (most - 1))]
                         for k in range(most)})
    best: Packing | None = None
    for width in widths:
        height, positions = _skyline(sizes, order, width, gutter)
        used = max(x + sizes[i][0] for i, (x, _) in enumerate(positions))
        candidate = Packing(_align(used, align), _align(height, align), positions)
        # Smallest area; between equals the squarer one (fewer padded edge cells).
        if best is None or (candidate.area, abs(candidate.width - candidate.height)) < (
                best.area, abs(best.width - best.height)):
            best = candidate
    assert best is not None
    return best


#: A rectangle whose long side exceeds this many times its short side, and _LONG_SIDE px,
#: is packed apart from the others (see :func:`by_shape`).
_THIN = 4
_LONG_SIDE = 256


def by_shape(sizes: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Indices of ``sizes`` (w, h) split into those of ordinary shape, long wide strips and
    long tall strips; empty groups left out. Each group is packed into its own mosaics.

    Issue #13 (moving-camera speed): a panning camera's motion includes the strip of scene
    it has just uncovered (2342x24 detector px along an edge), and the smeared pass repeats
    a walker's whole height (78x741). Packed with the look's other crops, one such strip
    sets the mosaic's width or height on its own and the rest are packed around it: on the
    benchmark's pan the mosaics held 3.2 detector pixels for each pixel of picture. Strips
    pack well with each other (stacked or side by side), so each shape gets its own mosaic.
    Every crop is searched whole, as before.
    """
    groups: list[list[int]] = [[], [], []]
    for k, (w, h) in enumerate(sizes):
        if w > max(_THIN * h, _LONG_SIDE):
            groups[1].append(k)
        elif h > max(_THIN * w, _LONG_SIDE):
            groups[2].append(k)
        else:
            groups[0].append(k)
    return [g for g in groups if g]
