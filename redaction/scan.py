"""Where and how large to look for faces in each frame.

Running the detector on every full frame at a size that finds CCTV faces (20-40 px tall at
1080p) costs about a second a frame on two cores. Most of a CCTV frame is still, and a face
that comes into view moves, so the scanner looks, every ``stride``-th frame, only at:

1. **Motion regions** - where the frame differs from a background model (a low-resolution
   grey image that follows slow light changes, absorbs whatever has stopped moving, and
   leaves no trail behind a passer-by), expanded by a margin and scaled up so the smallest
   face of interest (``min_face`` px) reaches ``detect_face`` px, the size the detector
   finds with confidence (CenterFace scores a 24 px face about 0.75, a 16 px one about 0.1).
2. **Track regions** - around where each live track is predicted to be, so a face that
   stops moving keeps being seen.
3. **A sweep** - the whole frame at the same scale in the cheapest grid of overlapping
   tiles, one tile every few looks, so every part of the frame is searched at full
   sensitivity every ``sweep_seconds``;
   plus a coarse whole-frame pass for faces too large for one tile. The first frame is swept
   completely. The sweep catches faces that never moved since the video began and anything
   the motion model let through.

Between those full looks, a tracked face that is new, was missed at its last look, or
swerves gets partial looks (its track region alone) every ``min_stride`` frames; when is
the tracker's call (:meth:`redaction.track.Tracker.schedule`). So the detector looks hard
where the motion model cannot vouch for the straight-line path, and steady walkers cost
one look in ``stride`` frames.

Overlapping motion and track regions are merged, and the small ones are packed into one
mosaic image per look, so the detector runs once on them instead of once per region.

A moving camera would make the whole frame "motion": given the camera's motion
(:mod:`redaction.motion`), the background model is moved with the picture before each
comparison, so only what moves in the scene shows. When motion still covers most of the
frame (a light switched on, a zoom) the motion regions merge into large ones and cost grows
towards a full-frame scan: slower, never blind.

On a noisy picture (an infrared camera at night) the detector sees each region twice: as
it is, and averaged with the two frames before it (each moved onto it by optical flow)
and smoothed (:mod:`redaction.noise`): the noise's grain, enlarged with a small face,
hides faces the detector finds once it is averaged away.

The background model itself (what moved, on a still or a moving camera) is
:class:`redaction.motion_map.MotionMap`; this module decides where to look and runs the
detector there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from redaction.detect import Boxes, CenterFace, Detector, nms
from redaction.mosaic import by_shape, pack
from redaction.motion import CameraMotion
from redaction.motion_map import MotionMap, clip_box
from redaction.noise import RecentFrames, aligned_mean, noise_sigma, smoothed
from redaction.regions import Region, merge_overlapping, sweep_tiles

__all__ = ["FrameScanner", "ScanParams", "ScanStats"]

Image = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]

#: Regions up to this many detector pixels are packed into one mosaic per look.
_MOSAIC_ITEM_MAX = 200_000
#: Small crops worth at least this many detector pixels per mosaic are split over the pool.
_SPLIT_PIXELS = 300_000
#: A look's only detector input of at least this many pixels runs on the scanner's threads.
_WIDE_PIXELS = 300_000
#: Black gutter between packed regions (px): a few heat-map cells.
_GUTTER = 16
#: Boxes scored under this that touch a crop's cut edge are dropped (see _at_cut_edge).
_EDGE_SCORE = 0.3
#: ... and lie within this share of their own height of it (two to three heat-map cells).
_EDGE_NEAR = 0.4
#: Camera speed (px/frame, as a share of ``min_face``) above which a look also searches
#: its motion and track regions with faces shrunk to about ``min_face`` px (see
#: :meth:`FrameScanner._smeared`): at 10 px/frame a 1/50 s shutter smears 5 px, about what
#: the detector sees through at the enlarged scale. Lower, a body-worn camera's shake set
#: it off on most looks, and the extra pass found textures (three extra tracks).
_SMEAR_SPEED = 0.5
#: Camera speed (px/frame, as a share of ``min_face``) above which full looks come every
#: ``min_stride`` frames instead of every ``stride`` (see :meth:`FrameScanner._fast`): a
#: face's width a frame. The benchmark's 3 s PTZ pan runs over it on 72 % of its frames,
#: the body-worn walk's shake on 8 %, the 12 s pan never (median 31, 10 and 8 px/frame).
_FAST_SPEED = 1.0
#: Least score kept from that extra pass (see :meth:`FrameScanner._detect`).
_SMEARED_SCORE = 0.12
#: In a region the detector sees smoothed (a noisy picture), unsure boxes (under
#: _EDGE_SCORE) taller than this many times ``detect_face`` are dropped. Smoothed, the
#: night clip's coffee-shop wall scored 0.11-0.15 as a face 300 px tall, two tracks that
#: were 98 % of the clip's spill (issue #13); a face that large scores far higher, and the
#: same region's view as it is (searched beside the smoothed one) still sees it.
_SMOOTHED_FACE = 4
#: Change of the camera's motion (px/frame) from one frame to the next under which the
#: frames averaged for that view are aligned by one flow (a half-pixel error in the middle
#: frame at most); over it, a shaking camera, each gets its own.
_STRAIGHT = 1.0


@dataclass(frozen=True)
class ScanParams:
    """How hard to look. Recorded in every plan so a result can be reproduced.

    - ``min_face``: height (px, in the source) of the smallest face to find.
    - ``detect_face``: height that face is scaled to for the detector.
    - ``stride``: interval of full looks (frames); frames between are covered by the tracker.
    - ``min_stride``: interval of partial looks around a tracked face that is new, was missed
      at its last look, or swerves (see :meth:`redaction.track.Tracker.schedule`); and of
      full looks while the camera moves more than ``min_face`` px a frame
      (:meth:`FrameScanner.is_look`).
    - ``swerve_tolerance``: how far (fraction of its size) a face may stray from the straight
      line between two looks before looks come closer together.
    - ``sweep_seconds``: every part of the frame is searched at full scale this often.
    - ``motion_width``: width of the motion map (px).
    - ``motion_threshold``: grey-level difference from the background that counts as motion.
    - ``background_seconds``: time constant of the background model.
    - ``max_region_pixels``: largest detector input for one region or sweep tile; bigger
      motion regions are searched at a lower scale.
    - ``coarse_width``: width of the coarse whole-frame pass of the sweep.
    - ``smooth_above``: sensor noise (grey levels, estimated from the picture each second:
      :func:`redaction.noise.noise_sigma`) above which the detector sees every region it
      sees at full size or enlarged twice, as it is and smoothed
      (:func:`redaction.noise.smoothed`): an infrared night picture. 0 does so always.
    """

    min_face: int = 20
    detect_face: int = 28
    stride: int = 6
    min_stride: int = 3
    swerve_tolerance: float = 0.1
    sweep_seconds: float = 10.0
    motion_width: int = 480
    motion_threshold: int = 14
    background_seconds: float = 2.0
    max_region_pixels: int = 1_000_000
    coarse_width: int = 640
    smooth_above: float = 5.0

    def __post_init__(self) -> None:
        if self.min_face < 4 or self.detect_face < 8:
            raise ValueError("min_face must be >= 4 and detect_face >= 8")
        if not 1 <= self.min_stride <= self.stride:
            raise ValueError("strides must satisfy 1 <= min_stride <= stride")
        if self.swerve_tolerance <= 0:
            raise ValueError("swerve_tolerance must be > 0")
        if self.sweep_seconds <= 0 or self.background_seconds <= 0:
            raise ValueError("sweep_seconds and background_seconds must be > 0")

    @property
    def scale(self) -> float:
        """Detector scale for regions where any face may be (>= 1: small faces grow)."""
        return max(1.0, self.detect_face / self.min_face)

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-ready dict."""
        return asdict(self)


@dataclass
class ScanStats:
    """Counters for reports: full and partial looks, detector calls and input pixels."""

    looks: int = 0
    partial_looks: int = 0
    calls: int = 0
    pixels: int = 0
    sweeps: int = 0
    detections: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    #: Share of the frame in motion regions, summed over full looks (over ``looks``: the
    #: mean). Near 1 means the motion model saw the whole frame move: it vouches for nothing.
    motion_share: float = 0.0
    #: The sensor noise last estimated (grey levels), and the full looks whose regions the
    #: detector saw smoothed because it was over ``ScanParams.smooth_above``.
    noise: float = 0.0
    smoothed_looks: int = 0
    #: Searches of a frame already passed, around a new track (:mod:`redaction.look_back`).
    back_looks: int = 0


class FrameScanner:
    """Decides where to look in each frame and runs the detector there.

    Call :meth:`scan` for every frame in order (it keeps the background model); it returns
    the faces found, in frame pixels, or ``None`` on frames it does not look at. ``predicted``
    are the boxes where live tracks are expected in this frame.
    """

    def __init__(self, detector: Detector, params: ScanParams, *, width: int, height: int,
                 fps: float, workers: int = 2, motion: CameraMotion | None = None) -> None:
        self.detector = detector
        self.params = params
        self.width, self.height = width, height
        self.fps = fps if fps > 0 else 25.0
        self.stats = ScanStats()
        self._workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redaction-scan") \
            if workers > 1 else None
        self._motion = motion
        self._moved = MotionMap(width=width, height=height, fps=self.fps,
                                map_width=params.motion_width,
                                threshold=params.motion_threshold,
                                background_seconds=params.background_seconds,
                                min_face=params.min_face, motion=motion)
        self._sweep = self._sweep_regions()
        # Tiles per frame, fractional: a small frame is swept whole every few looks.
        self._per_frame = len(self._sweep) / max(1.0, params.sweep_seconds * self.fps)
        self._credit = 0.0
        self._sweep_pos = 0
        self._last_look = 0
        self._noise_at: int | None = None
        self._before = RecentFrames()

    # -- regions -----------------------------------------------------------------------

    def _sweep_regions(self) -> list[Region]:
        p = self.params
        scale = p.scale
        if self.width * self.height * scale * scale <= p.max_region_pixels:
            return [Region(0, 0, self.width, self.height, scale, "sweep")]
        regions: list[Region] = []
        if self.width > p.coarse_width:
            regions.append(Region(0, 0, self.width, self.height,
                                   p.coarse_width / self.width, "coarse"))
        # Neighbouring tiles share more than the smallest face the coarse pass finds, so
        # every face is whole in some tile or found by the coarse pass.
        overlap = int(1.2 * p.detect_face * max(1.0, self.width / p.coarse_width))
        for box in sweep_tiles(self.width, self.height, p.max_region_pixels / scale**2, overlap):
            regions.append(Region(*box, scale, "sweep"))
        return regions

    def _region_scale(self, x0: int, y0: int, x1: int, y1: int, scale: float) -> float:
        area = max(1, (x1 - x0) * (y1 - y0))
        return min(scale, math.sqrt(self.params.max_region_pixels / area))

    def _track_boxes(self, predicted: list[Box]) -> list[tuple[tuple[int, int, int, int], float]]:
        """Boxes around where live tracks should be, with the scale each needs."""
        p = self.params
        out = []
        for box in predicted:
            h = box[3] - box[1]
            size = max(box[2] - box[0], h, float(p.min_face))
            m = 0.6 * size + 0.5 * p.min_face
            r = clip_box((box[0] - m, box[1] - m, box[2] + m, box[3] + m), self.width, self.height)
            if r[2] <= r[0] or r[3] <= r[1]:
                continue
            # A tracked face needs only to reach ~40 detector px, never above the full scale.
            out.append((r, min(p.scale, max(1.0, 40.0 / max(h, 1.0)))))
        return out

    def _focus_regions(self, motion: list[tuple[int, int, int, int]],
                       tracks: list[tuple[tuple[int, int, int, int], float]],
                       sweep: list[Region]) -> list[Region]:
        """Motion and track boxes, overlapping ones merged where that saves pixels."""
        items = [(b, self.params.scale, "motion") for b in motion]
        for b, scale in tracks:
            # A sweep tile scanning this look at full scale already covers the track.
            if any(c.x0 <= b[0] and c.y0 <= b[1] and c.x1 >= b[2] and c.y1 >= b[3]
                   and c.scale >= scale for c in sweep):
                continue
            items.append((b, scale, "track"))

        items = merge_overlapping(items)
        return [Region(*b, self._region_scale(*b, scale), kind) for b, scale, kind in items]

    # -- detection ---------------------------------------------------------------------

    def _crop(self, image: Image, region: Region, before: Sequence[Image] = (),
              straight: bool = True) -> Image | None:
        """The region, scaled for the detector, as RGB; ``None`` if too small to search.
        A smoothed region is averaged with the same place in ``before`` first (see
        :func:`redaction.noise.aligned_mean` for ``straight``)."""
        crop = image[region.y0:region.y1, region.x0:region.x1]
        if crop.shape[0] < 8 or crop.shape[1] < 8:
            return None
        if region.smoothed:
            crop = smoothed(aligned_mean(
                crop, [b[region.y0:region.y1, region.x0:region.x1] for b in before],
                straight=straight))
        if abs(region.scale - 1.0) > 1e-3:
            w = max(8, round(crop.shape[1] * region.scale))
            h = max(8, round(crop.shape[0] * region.scale))
            interp = cv2.INTER_LINEAR if region.scale > 1 else cv2.INTER_AREA
            crop = cv2.resize(crop, (w, h), interpolation=interp)  # type: ignore[assignment]
        return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)  # type: ignore[return-value]

    def _count(self, rgb: Image, kinds: list[str]) -> None:
        self.stats.calls += 1
        self.stats.pixels += rgb.shape[0] * rgb.shape[1]
        for kind in kinds:
            self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1

    @staticmethod
    def _to_frame(found: Boxes, region: Region, crop: Image, ox: int, oy: int) -> Boxes:
        """Map boxes found at (ox, oy) of the detector input back to frame pixels."""
        sx = (region.x1 - region.x0) / crop.shape[1]
        sy = (region.y1 - region.y0) / crop.shape[0]
        out = found.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - ox) * sx + region.x0
        out[:, [1, 3]] = (out[:, [1, 3]] - oy) * sy + region.y0
        return out

    def _detect(self, image: Image, regions: list[Region], before: Sequence[Image] = (),
                straight: bool = True) -> list[Boxes]:
        """Run the detector over the regions: big ones alone, small ones packed together.

        Small regions are packed into one mosaic (:mod:`redaction.mosaic`, with black gutters
        wider than the detector's stride) and searched in one call: per-call overhead and the
        32-px alignment of every input otherwise cost more than the pixels themselves.
        The calls of one look run on two threads (the detector releases the GIL), so a core
        left idle by decoding and encoding - at the start, while the first frame is swept -
        is put to work.
        """
        regions = self._with_smoothed(regions)
        crops = [(r, c) for r in regions
                 if (c := self._crop(image, r, before, straight)) is not None]
        jobs: list[tuple[Image, list[tuple[Region, Image, int, int]]]] = []
        small = []
        for region, crop in crops:
            if crop.shape[0] * crop.shape[1] > _MOSAIC_ITEM_MAX:
                jobs.append((crop, [(region, crop, 0, 0)]))
            else:
                small.append((region, crop))
        for shape in by_shape([(c.shape[1], c.shape[0]) for _, c in small]):
            for group in self._mosaic_groups([small[k] for k in shape], busy=len(jobs)):
                jobs.append(self._mosaic(group))
        for rgb, placed in jobs:
            self._count(rgb, [r.kind for r, _, _, _ in placed])
        inputs = [rgb for rgb, _ in jobs]
        if len(inputs) > 1 and self._pool is not None:
            results = list(self._pool.map(self.detector.detect, inputs))
        elif (len(inputs) == 1 and self._workers > 1 and isinstance(self.detector, CenterFace)
              and inputs[0].shape[0] * inputs[0].shape[1] >= _WIDE_PIXELS):
            # One large input (a moving camera's motion region, up to a megapixel): split
            # the call's own work over the cores, or the look runs on one while the other
            # waits (issue #13: on a 12 s pan 70 % of detector pixels were such looks).
            results = [self.detector.detect(inputs[0], threads=self._workers)]
        else:
            results = [self.detector.detect(rgb) for rgb in inputs]
        out: list[Boxes] = []
        for (_, placed), found in zip(jobs, results, strict=True):
            if len(found) == 0:
                continue
            cx = (found[:, 0] + found[:, 2]) / 2
            cy = (found[:, 1] + found[:, 3]) / 2
            for region, crop, px, py in placed:
                inside = (cx >= px) & (cx < px + crop.shape[1]) & (cy >= py) & \
                    (cy < py + crop.shape[0])
                if inside.any():
                    mine = found[inside].copy()
                    # A box reaching into a gutter is clipped to its own crop.
                    mine[:, [0, 2]] = np.clip(mine[:, [0, 2]], px, px + crop.shape[1])
                    mine[:, [1, 3]] = np.clip(mine[:, [1, 3]], py, py + crop.shape[0])
                    mine = mine[~self._at_cut_edge(mine, region, crop, px, py)]
                    if region.kind == "smeared":
                        # Shrunk, a textured background scores like a face more often
                        # (0.10-0.11 on the body-worn test clip's coffee shop: extra
                        # tracks); the smeared faces this pass is for scored 0.12-0.4.
                        mine = mine[mine[:, 4] >= _SMEARED_SCORE]
                    if region.smoothed:
                        giant = _SMOOTHED_FACE * self.params.detect_face
                        mine = mine[(mine[:, 4] >= _EDGE_SCORE) | (mine[:, 3] - mine[:, 1] <= giant)]
                    if len(mine):
                        out.append(np.column_stack([
                            self._to_frame(mine, region, crop, px, py),
                            np.full(len(mine), region.kind == "track", np.float32)]))
        return out

    def _at_cut_edge(self, boxes: Boxes, region: Region, crop: Image, px: int,
                     py: int) -> npt.NDArray[np.bool_]:
        """Which unsure boxes (under :data:`_EDGE_SCORE`) touch an edge of their crop that
        is a cut through the picture, not the frame's own edge.

        Issue #13 (spill): the black edge of a crop makes the detector score textures
        beside it at 0.1-0.2; each such box started a track whose mask was padded a second
        either side. A face on a cut is whole in a neighbouring region (regions carry a
        face's margin, sweep tiles overlap) and a sure face is kept wherever it is. Track
        regions are exempt: there a box on the edge is the tracked face leaving the place it
        was predicted at (a swerve), and may be all the evidence of it.
        Near is 8-12 detector px by the box's size: 12 for all lost smeared pan faces, 0.4
        of any height lost night faces (docs/redaction.md, "Into view, cut edges...").
        """
        tol = np.clip(_EDGE_NEAR * (boxes[:, 3] - boxes[:, 1]), 8.0, 12.0)
        h, w = crop.shape[:2]
        cut = np.zeros(len(boxes), bool)
        if region.kind == "track":
            return cut
        if region.x0 > 0:
            cut |= boxes[:, 0] <= px + tol
        if region.y0 > 0:
            cut |= boxes[:, 1] <= py + tol
        if region.x1 < self.width:
            cut |= boxes[:, 2] >= px + w - tol
        if region.y1 < self.height:
            cut |= boxes[:, 3] >= py + h - tol
        return cut & (boxes[:, 4] < _EDGE_SCORE)

    def _mosaic_groups(self, small: list[tuple[Region, Image]],
                       busy: int) -> list[list[tuple[Region, Image]]]:
        """The small crops, split into as many mosaics as the pool has idle threads.

        One mosaic a look is one detector call on one core. On a dense crowd that call
        carried most of the look (2.3 M detector px) while the second core waited (issue
        #13: 5 fps). Crops are dealt largest first to the lighter mosaic, so the calls take
        about as long as each other. A look with little to search stays one mosaic: a call
        costs alignment padding and a fixed overhead.
        """
        if not small:
            return []
        area = sum(c.shape[0] * c.shape[1] for _, c in small)
        n = min(max(1, self._workers - busy), len(small), max(1, area // _SPLIT_PIXELS))
        if n == 1:
            return [small]
        groups: list[list[tuple[Region, Image]]] = [[] for _ in range(n)]
        load = [0] * n
        for item in sorted(small, key=lambda rc: -rc[1].shape[0] * rc[1].shape[1]):
            k = load.index(min(load))
            groups[k].append(item)
            load[k] += item[1].shape[0] * item[1].shape[1]
        return groups

    @staticmethod
    def _mosaic(small: list[tuple[Region, Image]],
                ) -> tuple[Image, list[tuple[Region, Image, int, int]]]:
        """Pack crops into one image; returns it and where each crop went."""
        packing = pack([(c.shape[1], c.shape[0]) for _, c in small], gutter=_GUTTER)
        mosaic = np.zeros((packing.height, packing.width, 3), np.uint8)
        placed = []
        for (region, crop), (px, py) in zip(small, packing.positions, strict=True):
            mosaic[py:py + crop.shape[0], px:px + crop.shape[1]] = crop
            placed.append((region, crop, px, py))
        return mosaic, placed

    def close(self) -> None:
        """Stop the scanner's worker threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def is_look(self, index: int) -> bool:
        """True for the frames of full looks: every ``stride``-th, from the first, and every
        ``min_stride``-th while the camera moves fast (:meth:`_fast`)."""
        p = self.params
        return index % p.stride == 0 or (index % p.min_stride == 0 and self._fast(index))

    def _fast(self, index: int) -> bool:
        """Whether the camera moves so fast that a face may come into view and leave it
        between two looks a stride apart. Issue #13 (ptz, 3 s): at a pan's turn, a walker at
        the frame's edge was in view for seven frames, smeared 23 px at the one look that
        fell among them (not found), sharp enough to recognise at the four after."""
        return self._camera_speed(index) > _FAST_SPEED * self.params.min_face

    def scan(self, index: int, image: Image, predicted: list[Box], *,
             full: bool = True) -> Boxes | None:
        """Look at frame ``index`` (BGR). Returns ``(N, 6)`` boxes (x0, y0, x1, y1, score,
        :data:`redaction.boxes.TRACK_ONLY`), or ``None`` if skipped.

        A full look (only on :meth:`is_look` frames) searches motion, the ``predicted``
        track boxes and its share of the sweep. A partial look (``full=False``, any frame)
        searches only around ``predicted``: the tracks due for an early look.
        """
        speed = self._camera_speed(index)
        if not full:
            self.stats.partial_looks += 1
            return self._around(image, predicted, speed, self._before.before(index),
                                self._straight(index))
        if not self.is_look(index):
            return None
        self.stats.looks += 1
        self._judge_noise(index, image)
        # A look between strides (a fast camera's) compares the picture with the last
        # stride look's and leaves the motion model as it was: a walker moves half as far
        # in half the frames, and a slow one compared over three frames fell under the
        # motion threshold and was searched at no look (ptz, noise seed 3: 9 % of
        # identifiable boxes visible). So such a look only adds to the stride's.
        between = index % self.params.stride != 0
        elapsed = index - self._last_look
        if not between:
            self._last_look = index
        motion = self._moved.boxes(image, elapsed, index, keep=between)
        self.stats.motion_share += sum((b[2] - b[0]) * (b[3] - b[1]) for b in motion) / (
            self.width * self.height)
        if index == 0:
            sweep = list(self._sweep)
        elif between:
            sweep = []
        else:
            self._credit += self._per_frame * elapsed
            take = int(self._credit)
            self._credit -= take
            sweep = [self._sweep[(self._sweep_pos + i) % len(self._sweep)] for i in range(take)]
            self._sweep_pos += take
            if self._sweep_pos >= len(self._sweep):
                self._sweep_pos -= len(self._sweep)
                self.stats.sweeps += 1
        regions = self._focus_regions(motion, self._track_boxes(predicted), sweep)
        regions += self._smeared(regions, speed) + sweep
        return self._finish_look(self._detect(image, regions, self._before.before(index),
                                              self._straight(index)))

    def look_back(self, index: int, image: Image, boxes: list[Box]) -> Boxes:
        """Search frame ``index`` (BGR), already passed, around ``boxes`` only."""
        self.stats.back_looks += 1
        return self._around(image, boxes, self._camera_speed(index))

    def _around(self, image: Image, boxes: list[Box], speed: float,
                before: Sequence[Image] = (), straight: bool = True) -> Boxes:
        """Search only around ``boxes`` (a partial look, a look back)."""
        regions = self._focus_regions([], self._track_boxes(boxes), [])
        regions += self._smeared(regions, speed)
        return self._finish_look(
            self._detect(image, regions, before, straight) if regions else [])

    def see(self, index: int, image: Image) -> None:
        """Show the scanner frame ``index`` (BGR), looked at or not, after any look at it:
        on a noisy picture the next look's smoothed view averages it in."""
        self._before.add(index, image, keep=self._noisy())

    def _straight(self, index: int) -> bool:
        """Whether the camera moved the picture the same way into frame ``index`` as into
        the one before (within :data:`_STRAIGHT` px): still, or panning steadily, so the
        frames before a look can be aligned by one flow (:func:`redaction.noise.aligned_mean`)."""
        if self._motion is None:
            return True
        (ax, ay), (bx, by) = self._motion.velocity(index - 1), self._motion.velocity(index)
        return math.hypot(bx - ax, by - ay) <= _STRAIGHT

    def _with_smoothed(self, regions: list[Region]) -> list[Region]:
        """On a noisy picture, each region the detector sees at full size or enlarged
        again, averaged with the frames before (:func:`redaction.noise.aligned_mean`) and
        smoothed. Smoothing finds faces the noise hides (the 12 s night clip's faces found
        at a look: 55 -> 78 %), and averaging aligned frames more (scored 0.1+, one frame
        smoothed 72 %, three 84 %), but smoothing loses small faces whose features are as
        fine as itself (a 22 px face in noise 6, found unsmoothed at some looks, at none
        smoothed), so the detector sees both. A shrunk region (the coarse pass, a large
        motion region) is averaged by the shrinking."""
        if not self._noisy():
            return regions
        return regions + [replace(r, smoothed=True) for r in regions if r.scale >= 1]

    def _judge_noise(self, index: int, image: Image) -> None:
        """Estimate the picture's noise about once a second; it changes with the light."""
        if self._noise_at is None or index - self._noise_at >= self.fps:
            self._noise_at = index
            self.stats.noise = noise_sigma(image)
        self.stats.smoothed_looks += self._noisy()

    def _noisy(self) -> bool:
        return self.stats.noise > self.params.smooth_above

    def _camera_speed(self, index: int) -> float:
        """How far (px/frame) the camera moved the picture's centre into frame ``index``."""
        if self._motion is None:
            return 0.0
        return math.hypot(*self._motion.velocity(index))

    def _smeared(self, regions: list[Region], speed: float) -> list[Region]:
        """On a fast-moving camera, the motion and track regions again, with faces brought
        to about ``min_face`` px instead of enlarged.

        Issue #13 (ptz): during a pan a sharp-enough face of 25-35 px, smeared by 7-20 px,
        was searched in a motion region enlarged 1.4x (sized for the smallest, 20 px face)
        and scored 0.02-0.07 there; the same face brought down to about 20 px scored
        0.2-0.4. Enlarging a smeared face enlarges the smear the detector must see through,
        shrinking it shrinks it. So above :data:`_SMEAR_SPEED` the look searches its motion
        and track regions at both scales (the extra pass costs a quarter of the first:
        half the scale), keeping only what the second pass scores at least
        :data:`_SMEARED_SCORE`.
        """
        p = self.params
        if speed <= _SMEAR_SPEED * p.min_face:
            return []
        small = 1.0 / p.scale
        return [Region(r.x0, r.y0, r.x1, r.y1, small, "smeared")
                for r in regions if r.kind in ("motion", "track") and r.scale > small * 1.2]

    def _finish_look(self, found: list[Boxes]) -> Boxes:
        boxes = np.concatenate(found) if found else np.empty((0, 6), np.float32)
        if len(boxes):
            # An unsure box well under the smallest face the scan is sized for is texture
            # (issue #13: an 11x14 px box scored 0.13 on a walking camera became a track
            # masked for two seconds); a sure one is kept whatever its size.
            size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            boxes = boxes[(boxes[:, 4] >= _EDGE_SCORE) | (size >= 0.75 * self.params.min_face)]
        boxes = nms(boxes) if len(boxes) else boxes
        self.stats.detections += len(boxes)
        return boxes
