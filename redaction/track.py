"""Linking detections into tracks and turning tracks into per-frame mask boxes.

Detections arrive only on the frames the scanner looks at. The tracker links them by
predicted overlap (constant-velocity motion model, IoU, then centre distance for small fast
faces whose boxes no longer overlap), keeps a track alive through missed detections for up
to ``max_gap_seconds``, and ends it after that. Given the camera's motion
(:class:`redaction.motion.CameraMotion`), it links, predicts and interpolates in scene
coordinates, with the camera's pan or shake taken out, so that a face keeps its track and
its tight mask on a moving camera as on a still one.

A track's mask box on any frame is a pure function of its observations (so a plan records
exactly what single-pass rendering masked). It is the *head* around the face box: the face
box grown by ``box_pad`` of its size on every side (hair, ears, a turned profile), plus a
margin for what the tracker does not know, and no more:

- between two observations: linear interpolation. The face strays from that line by at most
  ``a * s**2 / 8`` px over a span of ``s`` frames (``a``: its acceleration, px/frame², from
  the observations either side), so that, at mid-span, is the margin: a steady walker or a
  smooth camera pan gets almost none however fast it moves, a swerving face or a shaking
  body-worn camera gets what its own track shows. A track seen fewer than three times has no
  acceleration yet: it gets half the distance moved. Across a detector miss a little more
  (the face may have turned); the miss is listed for review rather than masked wider;
- before the first / after the last observation: ``pad_seconds`` of extrapolation along the
  track's velocity, growing slowly as the guess gets older;
- always: the detector's own jitter (a few per cent of the size), the error of an unsure
  box (a face scored 0.15 is boxed smaller and further off its centre than a sure one: up
  to 0.15 of its size more each side, measured by ``benchmarks/redaction_boxes.py``) and
  half a frame's motion (a face moves while the shutter is open), rounded outwards to whole
  pixels.

When the tracker is unsure it asks the scanner to look again (:meth:`Tracker.schedule`) rather
than growing the box; a track a look has just started, on a moving camera, is looked for in
the frames before it (:mod:`redaction.look_back`). The renderer draws the mask as the
ellipse inscribed in the box.

A box for frame ``t`` is final once detection has passed frame ``t + lookahead``; the
pipeline renders that far behind detection.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from redaction.boxes import TRACK_ONLY, centre as _centre, iou as _iou, size as _size
from redaction.motion import CameraMotion

__all__ = ["MaskBox", "Observation", "Track", "TrackParams", "Tracker"]

Box = tuple[float, float, float, float]
IntBox = tuple[int, int, int, int]


#: The fastest a face moves, in its own sizes a frame (scene coordinates: the camera's motion
#: taken out). A walker at 1.8 m/s crossing close to the camera moves about 0.15; this is
#: twice that (a run, a turn of the head, the camera-motion estimate's error).
_MAX_SPEED = 0.3
#: A detection scored at least this is a face, not a texture: the crowd clip's texture
#: tracks never scored above 0.41, 90 % of them under 0.36.
_SURE = 0.4


@dataclass(frozen=True)
class TrackParams:
    """How tracks are linked and padded. Recorded in every plan.

    - ``max_gap_seconds``: a track survives this long without a detection.
    - ``pad_seconds``: mask this long before a track's first and after its last detection.
    - ``box_pad``: grow each side of a face box by this fraction of its width/height: the
      head (hair, ears, profile) around the face the detector boxes.
    - ``min_iou``: least predicted overlap to link a detection to a track.
    - ``max_distance``: else link when centres are within this many box sizes.
    - ``review_confidence``: frames scored below this are listed for human review.
    - ``confirm_score``: a track never scored this high is *unconfirmed*: it is withdrawn
      once ``withdraw_misses`` looks in a row searched where it should be, on a picture the
      camera did not smear, and found nothing (a texture the detector scored once, not a
      face: a face in plain view is found again). Off (0) by default: at 0.3 it took the
      benchmark's crowd spill from 3.06 % to 0.66 %, but on the night clip faces scored
      0.1-0.15 in infrared noise are found as intermittently as textures, and 15 % of them
      were left visible (2.3 % without it). Measured again with today's scanner
      (docs/redaction.md, "Crowd spill again"): crowd 0.73 -> 0.48 %, night unchanged, but
      the still clip's walkers the detector sees once are withdrawn (0.03 -> 0.21 % left
      visible). A missed face is a breach; spill is not.
    """

    max_gap_seconds: float = 1.0
    pad_seconds: float = 1.0
    box_pad: float = 0.2
    min_iou: float = 0.05
    max_distance: float = 1.5
    review_confidence: float = 0.5
    confirm_score: float = 0.0
    withdraw_misses: int = 2

    def __post_init__(self) -> None:
        if self.max_gap_seconds < 0 or self.pad_seconds < 0 or self.box_pad < 0:
            raise ValueError("max_gap_seconds, pad_seconds and box_pad must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Observation:
    """A detection linked to a track: frame index, box (frame px) and score."""

    frame: int
    box: Box
    score: float


@dataclass
class Track:
    """A face followed through the video: its id and its observations, in frame order."""

    id: int
    observations: list[Observation] = field(default_factory=list)
    #: Looks that searched where the track was expected, on a picture sharp enough to find
    #: it, and found nothing (see :meth:`Tracker.update`).
    sharp_misses: int = 0
    #: The earliest frame its mask may cover (0 for most tracks). A look back
    #: (:mod:`redaction.look_back`) adds observations before the first, on frames not yet
    #: rendered; the mask range stays where it began, so frames already final keep theirs.
    floor: int = 0

    @property
    def first(self) -> int:
        """Frame of the first observation."""
        return self.observations[0].frame

    @property
    def last(self) -> int:
        """Frame of the last observation."""
        return self.observations[-1].frame

    @property
    def max_score(self) -> float:
        """Best detection score of the track."""
        return max(o.score for o in self.observations)


@dataclass(frozen=True)
class MaskBox:
    """A track's mask on one frame: integer box, confidence and whether it bridges a miss."""

    track_id: int
    box: IntBox
    confidence: float
    bridged: bool


def _velocity(a: Observation, b: Observation) -> tuple[float, float]:
    """Centre velocity (px/frame) from observation a to b."""
    dt = b.frame - a.frame
    if dt <= 0:
        return 0.0, 0.0
    (ax, ay), (bx, by) = _centre(a.box), _centre(b.box)
    return (bx - ax) / dt, (by - ay) / dt


def _accel(a: Observation, b: Observation, c: Observation) -> float:
    """Acceleration (px/frame²) about ``b`` from three observations."""
    (v1x, v1y), (v2x, v2y) = _velocity(a, b), _velocity(b, c)
    return math.hypot(v2x - v1x, v2y - v1y) / max(1.0, (c.frame - a.frame) / 2)


#: The detector's box wobbles by a few per cent of the face's size from look to look.
_JITTER = 0.05
#: An unsure detection's box is itself off: measured against ground truth on the benchmark's
#: five clips (docs/redaction.md, "Unsure boxes"), boxes scored under 0.2 are 0.76-0.82 of
#: the face's height (sure ones 0.91-0.96) and their centre is off by 0.12-0.22 of it at the
#: 90th percentile, up to 0.34 at the 98th (sure: 0.08-0.11 at the 90th). Up to this share of
#: the size is added to the margin on every side, from nothing at :data:`_SURE` to all of it
#: at :data:`_UNSURE_FLOOR`.
_UNSURE_BOX = 0.15
_UNSURE_FLOOR = 0.15


def _box_error(score: float) -> float:
    """How far off (a share of the face's size, each side) a box scored ``score`` may be."""
    return _UNSURE_BOX * min(1.0, max(0.0, (_SURE - score) / (_SURE - _UNSURE_FLOOR)))


def _shift(b: Box, dx: float, dy: float) -> Box:
    return b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy


def _grow(b: Box, m: float) -> Box:
    return b[0] - m, b[1] - m, b[2] + m, b[3] + m


class Tracker:
    """Links per-look detections into tracks and answers per-frame mask boxes.

    Feed :meth:`update` with each look's detections in frame order, call :meth:`finish` at
    the end; :meth:`boxes_at` is final for frames up to ``processed - lookahead``.
    """

    def __init__(self, params: TrackParams, *, fps: float, width: int, height: int,
                 stride: int = 1, motion: CameraMotion | None = None) -> None:
        self.params = params
        self.stride = max(1, stride)
        self.fps = fps if fps > 0 else 25.0
        self.width, self.height = width, height
        self.gap_frames = max(1, math.ceil(params.max_gap_seconds * self.fps))
        self.pad_frames = math.ceil(params.pad_seconds * self.fps)
        self.lookahead = max(self.gap_frames, self.pad_frames) + 2
        self._next_id = 1
        self._live: list[Track] = []
        self.tracks: list[Track] = []
        self._searchable: list[Track] = []
        #: Unconfirmed tracks withdrawn (see :meth:`_withdraw_unconfirmed`).
        self.withdrawn = 0
        self._due: dict[int, int] = {}
        self._finished = False
        self._last_frame = -1
        # Observations are kept in scene coordinates (camera motion taken out, see
        # redaction.motion): frame boxes go in through _to_scene and out through _to_frame.
        self.motion = motion

    def _to_scene(self, box: Box, frame: int) -> Box:
        return box if self.motion is None else self.motion.to_scene(box, frame)

    def _to_frame(self, box: Box, frame: int) -> Box:
        return box if self.motion is None else self.motion.to_frame(box, frame)

    def _zoom(self, frame: int) -> float:
        """Frame px per scene px on ``frame`` (a PTZ zoom, a body-worn camera walking on)."""
        return 1.0 if self.motion is None else self.motion.zoom(frame)

    # -- linking -----------------------------------------------------------------------

    def _predict(self, track: Track, frame: int) -> Box:
        obs = track.observations
        last = obs[-1]
        if len(obs) == 1:
            return last.box
        vx, vy = _velocity(obs[-2], last)
        dt = frame - last.frame
        return _shift(last.box, vx * dt, vy * dt)

    def predicted(self, frame: int) -> list[Box]:
        """Where live tracks are expected on ``frame`` (for the scanner's track regions)."""
        return [self._to_frame(self._predict(t, frame), frame) for t in self._live
                if frame - t.last <= self.gap_frames]

    def update(self, frame: int, detections: npt.NDArray[np.float32], *,
               only: Collection[int] | None = None) -> None:
        """Link the detections ``(N, 5)`` or ``(N, 6)`` found on ``frame`` (frames in rising
        order; the sixth column, where given, is :data:`redaction.boxes.TRACK_ONLY`).

        ``only``: the look searched just around these tracks (ids); detections link to them
        alone and start no track. Finding new faces is the full looks' job: a partial look's
        small crops, scored at the low threshold, would otherwise start spurious tracks.

        The same holds for the crops a full look searches around its tracks: an unsure
        detection (under :data:`_SURE`) found only there (:data:`redaction.boxes.TRACK_ONLY`)
        that no track takes starts none. Issue #13 (crowd spill, docs/redaction.md "Crowd
        spill again"): on the 12 s crowd, 208 of 298 texture tracks began so, beside a
        tracked face, and each added a crop of its own to the next look; a new face is
        searched by the look's motion regions and sweep, at their own scales.
        """
        if frame <= self._last_frame:
            raise ValueError("frames must be given in rising order")
        self._last_frame = frame
        p = self.params
        # Tracks whose gap ran out are over.
        self._live = [t for t in self._live if frame - t.last <= self.gap_frames]
        live = {t.id for t in self._live}
        self._due = {k: v for k, v in self._due.items() if k in live}
        dets = [(self._to_scene(tuple(float(v) for v in d[:4]), frame),  # type: ignore[arg-type]
                 float(d[4])) for d in detections]
        candidates: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._live):
            if only is not None and track.id not in only:
                continue
            pred = self._predict(track, frame)
            psize = _size(pred)
            pc = _centre(pred)
            for di, (box, _) in enumerate(dets):
                dsize = _size(box)
                ratio = dsize / psize
                if not 0.5 <= ratio <= 2.0:
                    continue
                iou = _iou(pred, box)
                dc = _centre(box)
                dist = math.hypot(dc[0] - pc[0], dc[1] - pc[1]) / max(psize, dsize)
                # A track seen once has no velocity yet: allow for the distance a fast face
                # covers between looks.
                gate = p.max_distance + (0.5 * (frame - track.last) if len(track.observations)
                                         == 1 else 0.0)
                if iou < p.min_iou and dist > gate:
                    continue
                if dets[di][1] < _SURE and not self._reachable(track.observations[-1], box,
                                                                 frame):
                    continue
                candidates.append((1.0 - iou + 0.5 * dist, ti, di))
        candidates.sort()
        used_t: set[int] = set()
        used_d: set[int] = set()
        for _, ti, di in candidates:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            box, score = dets[di]
            self._live[ti].observations.append(Observation(frame, box, score))
            self._live[ti].sharp_misses = 0
        self._withdraw_unconfirmed(frame, [t for ti, t in enumerate(self._live)
                                           if ti not in used_t and t.last < frame
                                           and (only is None or t.id in only)])
        track_only = (detections[:, TRACK_ONLY] > 0 if detections.shape[1] > TRACK_ONLY
                      else np.zeros(len(detections), bool))
        for di, (box, score) in enumerate(dets):
            if di in used_d or only is not None or (score < _SURE and track_only[di]):
                continue
            track = Track(self._next_id, [Observation(frame, box, score)])
            self._next_id += 1
            self._live.append(track)
            self.tracks.append(track)
            self._searchable.append(track)

    def _reachable(self, last: Observation, box: Box, frame: int) -> bool:
        """Whether a face at ``last`` could be at ``box`` on ``frame`` (scene px): moved at
        most :data:`_MAX_SPEED` of its size a frame, plus half its size for the detector's
        jitter and a turn of the head. Asked only of unsure detections (under
        :data:`_SURE`): a sure face links as the prediction allows, however fast (a sprinter,
        a pan with no camera motion measured); an unsure one far off starts its own track,
        which masks it just the same.

        Issue #13 (crowd spill 1.19 %): a track links by overlap with its *prediction*,
        which a wrong link's velocity throws far ahead; and a track seen once accepted a
        detection up to half its size per frame away. So texture detections (0.1-0.4) in a
        crowd were chained into tracks that hopped up to 25 face sizes across the picture,
        and each hop was masked as a box swept along the line between the two places. Real
        faces on the benchmark's crowd moved a median 0.02 and at the 95th percentile
        0.06 sizes a frame between looks; the chained textures a median 0.37.
        """
        size = max(_size(last.box), _size(box))
        (ax, ay), (bx, by) = _centre(last.box), _centre(box)
        return math.hypot(bx - ax, by - ay) <= (_MAX_SPEED * (frame - last.frame) + 0.5) * size

    def _withdraw_unconfirmed(self, frame: int, missed: list[Track]) -> None:
        """Count a miss against each ``missed`` track (searched at this look, not found)
        where the picture was sharp, and withdraw unconfirmed tracks missed too often.

        Issue #13 (crowd spill): a texture scored 0.1 once started a track whose mask was
        padded a second either side, growing to three times a face; in a crowd such tracks
        were half of all tracks and most of the spill. A face in plain view is found again
        when looked for; a face smeared by the camera's motion may not be, so a look counts
        against a track only when the camera moved less than a tenth of the face's size in
        the frame interval (the shutter smears it by less than that).
        """
        p = self.params
        gone: set[int] = set()
        for track in missed:
            size = _size(self._to_frame(track.observations[-1].box, frame))
            if self.motion is not None:
                x0, y0, x1, y1 = self._to_frame(self._predict(track, frame), frame)
                if math.hypot(*self.motion.velocity(frame, ((x0 + x1) / 2, (y0 + y1) / 2))) \
                        > 0.1 * size:
                    continue
            track.sharp_misses += 1
            if track.sharp_misses >= p.withdraw_misses and track.max_score < p.confirm_score:
                gone.add(track.id)
        if gone:
            self._live = [t for t in self._live if t.id not in gone]
            self._searchable = [t for t in self._searchable if t.id not in gone]
            self.tracks = [t for t in self.tracks if t.id not in gone]
            self.withdrawn += len(gone)

    def _interval(self, track: Track, frame: int, shortest: int, longest: int,
                  tolerance: float) -> int:
        obs = track.observations
        if track.last != frame or len(obs) < 3:
            return shortest
        a, b, c = obs[-3:]
        (v1x, v1y), (v2x, v2y) = _velocity(a, b), _velocity(b, c)
        accel = math.hypot(v2x - v1x, v2y - v1y) / max(1.0, (c.frame - a.frame) / 2)
        if accel <= 0:
            return longest
        return max(shortest, min(longest, int(math.sqrt(8 * tolerance * _size(c.box) / accel))))

    def schedule(self, frame: int, looked: Sequence[int], shortest: int, longest: int,
                 tolerance: float) -> None:
        """After a look at ``frame`` that searched around the tracks ``looked`` (ids), set
        when each of them, and each track started by the look, must be looked at again.

        Between two looks a mask follows the straight line from one detection to the next,
        widened for the distance moved. A face that turns or speeds up strays from that line
        by about ``a * s**2 / 8`` px over ``s`` frames (``a``: its acceleration, px/frame²,
        from its last three detections), so its interval is the longest that keeps the stray
        within ``tolerance`` of its size. A face seen fewer than three times (no acceleration
        yet) or missed at this look gets ``shortest``: a new, lost or erratic face is looked
        at often, a steady walker less.
        """
        ids = set(looked)
        for track in self._live:
            if track.id in ids or track.first == frame:  # looked at, or started by, this look
                self._due[track.id] = frame + self._interval(track, frame, shortest, longest,
                                                             tolerance)

    def due(self, frame: int) -> list[tuple[int, Box]]:
        """Live tracks due for a look by ``frame``: (id, predicted box on ``frame``)."""
        return [(t.id, self._to_frame(self._predict(t, frame), frame)) for t in self._live
                if frame - t.last <= self.gap_frames and self._due.get(t.id, frame) <= frame]

    def born(self, frame: int) -> list[Track]:
        """Tracks started by the look at ``frame`` (seen once, there)."""
        return [t for t in self._live if t.first == frame and len(t.observations) == 1]

    def still_or_carried(self, track: Track, frame: int) -> tuple[Box, Box]:
        """Where ``track``'s face was on ``frame``, before its first observation, on two
        guesses (frame px): still in the scene (as the mask extrapolates a face seen once)
        and still in the picture (a person walking with the camera, or the camera-motion
        estimate wrong there)."""
        first = track.observations[0]
        return self._to_frame(first.box, frame), self._to_frame(first.box, first.frame)

    def could_reach(self, track: Track, frame: int, box: Box) -> bool:
        """Whether ``track``'s face could have been at ``box`` (frame px) on ``frame``,
        before its first observation, moving as fast as a face does (:meth:`_reachable`)."""
        first = track.observations[0]
        # The same distance over the same time, the other way round.
        then = Observation(frame, first.box, first.score)
        return self._reachable(then, self._to_scene(box, frame), first.frame)

    def add_before(self, track: Track, frame: int, box: Box, score: float) -> None:
        """Add a detection (frame px) on ``frame``, before ``track``'s first, found by a
        look back. Its mask range does not move earlier (:attr:`Track.floor`)."""
        if frame >= track.first:
            raise ValueError("a look back adds observations before the track's first")
        if track.floor == 0:
            track.floor = max(0, track.first - self.pad_frames)
        track.observations.insert(0, Observation(frame, self._to_scene(box, frame), score))

    def live_ids(self, frame: int) -> list[int]:
        """Ids of the tracks alive on ``frame`` (as searched by :meth:`predicted`)."""
        return [t.id for t in self._live if frame - t.last <= self.gap_frames]

    def finish(self) -> None:
        """Mark the end of the video: every box is final from now on."""
        self._finished = True
        self._live = []

    # -- masks -------------------------------------------------------------------------

    def _raw(self, track: Track, t: int) -> tuple[Box, float, float, bool]:
        """Face box, margin for uncertainty (px), confidence and bridged flag of ``track``
        at ``t``."""
        obs = track.observations
        first, last = obs[0], obs[-1]
        if t <= first.frame or t >= last.frame:
            # Extrapolation: along the velocity, growing slowly as the guess gets older. A
            # face seen once has no velocity, so its box grows as a slow walker moves.
            if t <= first.frame:
                o, far = first, next((x for x in obs if x.frame - first.frame >= self.stride),
                                     obs[-1])
            else:
                o, far = last, next((x for x in reversed(obs)
                                     if last.frame - x.frame >= self.stride), obs[0])
            dt = abs(t - o.frame)
            size = _size(o.box)
            if far is o:
                v = (0.0, 0.0)
                grow = 0.15 * size * dt
            else:
                # Velocity over at least a stride: two looks a few frames apart give a
                # velocity as noisy as the detector's boxes, and a long extrapolation of it
                # flies off. It is still uncertain by about half.
                v = _velocity(far, o) if far.frame < o.frame else _velocity(o, far)
                grow = dt * 0.5 * math.hypot(*v)
            # However old the guess, the face is not further than a head's size from the
            # line: beyond that the next look (or the track's end) answers, not a wider box.
            grow = min(grow + 0.3 * size * dt / max(1, self.pad_frames)
                       + _box_error(o.score) * size, 1.0 * size)
            step = t - o.frame
            return _shift(o.box, v[0] * step, v[1] * step), grow, o.score, False
        # Binary search for the observations either side of t.
        lo, hi = 0, len(obs) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if obs[mid].frame <= t:
                lo = mid
            else:
                hi = mid
        a, b = obs[lo], obs[hi]
        span = b.frame - a.frame
        u = (t - a.frame) / span
        box = tuple(av + (bv - av) * u for av, bv in zip(a.box, b.box, strict=False))
        bump = 4 * u * (1 - u)
        accel = [_accel(obs[i - 1], obs[i], obs[i + 1]) for i in (lo, hi)
                 if 0 < i < len(obs) - 1]
        (ax, ay), (bx, by) = _centre(a.box), _centre(b.box)
        moved = math.hypot(bx - ax, by - ay)
        if accel:
            # The straight line strays from a path of acceleration `a` by a * s**2 / 8.
            grow = max(accel) * span * span / 8 * bump
        else:
            grow = 0.5 * moved * bump
        # Each end's own box error, carried along the line.
        grow += ((1 - u) * _box_error(a.score) * _size(a.box)
                 + u * _box_error(b.score) * _size(b.box))
        bridged = span > self.stride and t != a.frame
        if bridged:
            grow += 0.15 * max(_size(a.box), _size(b.box)) * bump
        return box, grow, min(a.score, b.score), bridged  # type: ignore[return-value]

    def _speed(self, track: Track, t: int) -> float:
        """Speed (px/frame) of ``track`` in the frame about ``t``: its own and the camera's."""
        obs = track.observations
        vx = vy = 0.0
        if self.motion is not None:
            # A zoom moves a face at the edge of the picture more than one at the centre.
            x0, y0, x1, y1 = self._to_frame(obs[min(len(obs) - 1, bisect.bisect_right(
                obs, t, key=lambda o: o.frame))].box, t)
            vx, vy = self.motion.velocity(t, ((x0 + x1) / 2, (y0 + y1) / 2))
        if len(obs) >= 2:
            # The pair of observations around t (binary search: tracks can be long).
            i = min(max(0, bisect.bisect_right(obs, t, key=lambda o: o.frame) - 1),
                    len(obs) - 2)
            ux, uy = _velocity(obs[i], obs[i + 1])
            z = self._zoom(t)
            vx, vy = vx + ux * z, vy + uy * z
        return math.hypot(vx, vy)

    def _range(self, track: Track) -> tuple[int, int]:
        return max(0, track.first - self.pad_frames, track.floor), track.last + self.pad_frames

    def _mask(self, track: Track, t: int) -> MaskBox | None:
        lo, hi = self._range(track)
        if not lo <= t <= hi:
            return None
        box, grow, conf, bridged = self._raw(track, t)
        box = self._to_frame(box, t)
        grow *= self._zoom(t)  # the margin was worked out in scene px
        w, h = box[2] - box[0], box[3] - box[1]
        # A face is never much narrower or flatter than 4:5 (a box clipped at the edge of a
        # detector tile, or smeared by motion, can be): widen such a box about its centre.
        if w < 0.8 * h or h < 0.8 * w:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            w, h = max(w, 0.8 * h), max(h, 0.8 * w)
            box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        # Detector jitter, and the smear of a face moving while the shutter is open (half a
        # frame interval, half of it either side).
        grow += _JITTER * max(w, h) + 0.25 * self._speed(track, t)
        pw = self.params.box_pad * w + grow
        ph = self.params.box_pad * h + grow
        ix0 = max(0, math.floor(box[0] - pw))
        iy0 = max(0, math.floor(box[1] - ph))
        ix1 = min(self.width, math.ceil(box[2] + pw))
        iy1 = min(self.height, math.ceil(box[3] + ph))
        if ix1 <= ix0 or iy1 <= iy0:
            return None
        return MaskBox(track.id, (ix0, iy0, ix1, iy1), round(conf, 3), bridged)

    def best(self, track: Track) -> tuple[int, float]:
        """The frame of ``track``'s best view of the face and its quality (0-1): detector
        score times the face's size up to 48 px (a large, sure face makes a recognisable
        thumbnail; a 16 px one does not)."""
        def quality(o: Observation) -> float:
            return o.score * min(1.0, _size(o.box) / 48.0)

        best = max(track.observations, key=lambda o: (quality(o), -o.frame))
        return best.frame, round(quality(best), 3)

    def final_through(self) -> int:
        """Last frame whose boxes can no longer change."""
        if self._finished:
            return 1 << 62
        return self._last_frame - self.lookahead

    def boxes_at(self, t: int) -> list[MaskBox]:
        """Mask boxes of every track on frame ``t`` (final once ``t <= final_through()``)."""
        out = []
        for track in self._searchable:
            m = self._mask(track, t)
            if m is not None:
                out.append(m)
        return out

    def forget_before(self, t: int) -> None:
        """Stop searching tracks whose masks end before frame ``t`` (rendering is past them).

        They stay in :attr:`tracks`.
        """
        live = {id(x) for x in self._live}
        self._searchable = [x for x in self._searchable
                            if self._range(x)[1] >= t or id(x) in live]
