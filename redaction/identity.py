"""One person, one track: joining the tracks that the tracker split or doubled.

The tracker links detections frame to frame. It splits one person into several tracks when
the detector misses them for longer than ``max_gap_seconds`` (a turned head, an occlusion,
someone leaving the picture and coming back), and it doubles a face when a second detection
of it (another scale, a low-scoring box around the head) is not linked to the first. For a
subject access request that is the difference between keeping the requester visible and
blurring them in half their frames. After tracking, :func:`join_people` groups tracks into
people with three kinds of evidence, in this order:

1. **Same place, same time** (duplicates): two tracks seen at the same time whose face boxes
   overlap (``overlap``: the shared area over the smaller box) at most of the looks they
   share (``duplicate_share``) are one face, unless their pictures are plainly different
   or a third track is in the same place at the same looks (a crossing: then nobody can
   say which face is which from position alone).
2. **Two places at once** (a person cannot be): two tracks seen at the same time in
   different places (overlapping at under ``apart_share`` of shared looks) are two people,
   and no later join may put them into one person.
3. **Split by a gap** (misses, occlusion, leaving and returning): a person's last look in one
   group and first look in a later one are joined when their appearance matches (a colour
   histogram and a gradient-orientation descriptor of the face: :class:`AppearanceLog`) and,
   for a gap shorter than ``short_gap_seconds``, the head could have moved that far (at most
   ``max_speed`` face sizes a second). After a longer gap a person may come back anywhere,
   so appearance alone decides, with a stricter threshold.

Joining two different people would expose the wrong person when one is kept, so the join is
conservative: when the evidence is mixed, the tracks stay apart and the plan gets a review
span (``reason: identity``, ``related_track``) asking a person to check them. Not joining
one person's tracks costs a reviewer a click; joining two people costs a breach.

The joined track is lossless: where two of its tracks overlap in time, the plan keeps both
boxes (``TrackPlan.extra``), so rendering the plan masks exactly what one-pass rendering did
and keeping the person keeps every box of theirs. Appearance is measured on the face only:
a body descriptor cannot be checked on this project's synthetic footage, which has no bodies,
and an untested feature would decide identities unmeasured.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from redaction.plan import BoxRun, ReviewSpan, TrackPlan
from redaction.track import MaskBox, Observation, Track

__all__ = ["AppearanceLog", "IdentityParams", "People", "group_people", "join_people",
           "merge_tracks"]

Image = npt.NDArray[np.uint8]
Vector = npt.NDArray[np.float32]
Box = tuple[float, float, float, float]

#: The face inside a mask box: the tracker grows the face box by ``box_pad`` (a fifth) of
#: its size on each side, plus a margin; the middle 64 % is the face without hair or edge.
_INNER = 0.18
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
_RING = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))


@dataclass(frozen=True)
class IdentityParams:
    """How tracks are joined into people. Recorded in every plan.

    - ``overlap``: least shared area over the smaller face box for "the same place".
    - ``duplicate_share``: share of shared looks at the same place for two tracks to be one
      face (duplicates).
    - ``apart_share``: tracks seen together at the same place at fewer of their shared looks
      than this are two people (a person cannot be in two places at once).
    - ``same``: appearance distance (0-1) at or below which tracks split by a short gap are
      one person; ``same_after_leaving`` the stricter one after a long gap.
    - ``different``: appearance distance at or above which tracks are two people (also
      vetoes a duplicate). Between the thresholds the tracks stay apart with a review span.
    - ``max_speed``: face sizes a second a head can move across a short gap.
    - ``short_gap_seconds``: gaps up to this long must be spatially plausible; after longer
      ones a person may have left and come back anywhere.
    - ``min_samples``: appearance samples each track needs before its appearance counts.
    - ``sure_score``: detections scoring this or more are surely a face. Identity is judged
      on them; a track with none (mostly not a face) joins a person only as a duplicate over
      their face, and never across a gap.
    """

    overlap: float = 0.5
    duplicate_share: float = 0.7
    apart_share: float = 0.3
    same: float = 0.18
    same_after_leaving: float = 0.15
    different: float = 0.24
    max_speed: float = 4.0
    short_gap_seconds: float = 2.0
    sure_score: float = 0.3
    min_samples: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.same_after_leaving <= self.same <= self.different <= 1:
            raise ValueError("need 0 <= same_after_leaving <= same <= different <= 1")

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-ready dict."""
        return asdict(self)


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
    code = _LUT[code]
    cell = n // _GRID
    hists = np.empty((_GRID, _GRID, _BINS), np.float32)
    for gy in range(_GRID):
        for gx in range(_GRID):
            c = code[gy * cell:(gy + 1) * cell, gx * cell:(gx + 1) * cell]
            hists[gy, gx] = np.bincount(c.ravel(), minlength=_BINS)
    hists /= hists.sum(axis=2, keepdims=True) * (_GRID * _GRID)
    return cast(Vector, hists.ravel())


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
    _samples: dict[int, list[tuple[int, Vector]]] = field(default_factory=dict)
    _step: dict[int, int] = field(default_factory=dict)

    def add(self, index: int, image: Image, boxes: Sequence[MaskBox]) -> None:
        """Describe the faces in mask ``boxes`` of frame ``index`` that are due a sample."""
        for m in boxes:
            step = self._step.get(m.track_id, self.every)
            if index % step:
                continue
            d = describe(image, m.box)
            if d is None:
                continue
            samples = self._samples.setdefault(m.track_id, [])
            samples.append((index, d))
            if len(samples) > self.limit:
                del samples[1::2]
                self._step[m.track_id] = step * 2

    def mean(self, track_id: int, first: int, last: int) -> tuple[Vector | None, int]:
        """Mean descriptor of ``track_id`` over frames ``first``-``last`` (where the track
        was seen, not extrapolated) and how many samples it averages (``None``, 0: none).
        A mean is what is compared: one sample is as much the detector's framing of the
        face as the face, and the framing averages out over a track."""
        vs = [v for f, v in self._samples.get(track_id, ()) if first <= f <= last]
        if not vs:
            return None, 0
        return cast(Vector, np.mean(vs, axis=0).astype(np.float32)), len(vs)


# -- geometry of tracklets (scene coordinates: the tracker's observations) ----------------


def _box_at(obs: Sequence[Observation], frames: Sequence[int], f: int) -> Box | None:
    """The face box at ``f``, interpolated between observations; ``None`` outside them."""
    if not frames or f < frames[0] or f > frames[-1]:
        return None
    i = bisect.bisect_left(frames, f)
    if frames[i] == f:
        return obs[i].box
    a, b = obs[i - 1], obs[i]
    u = (f - a.frame) / (b.frame - a.frame)
    return cast(Box, tuple(x + (y - x) * u for x, y in zip(a.box, b.box)))


def _containment(a: Box, b: Box) -> float:
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def _size(b: Box) -> float:
    return max(b[2] - b[0], b[3] - b[1], 1.0)


def _centre(b: Box) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


@dataclass
class _Tracklet:
    """A track as identity sees it: its sure looks (or all, when it has none) and its
    mean appearance over them."""

    id: int
    obs: list[Observation]
    frames: list[int]
    look: Vector | None
    samples: int
    sure: bool

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]


def _tracklet(track: Track, appearance: AppearanceLog, sure_score: float) -> _Tracklet:
    # A track's ends are often a low-scoring detection beside the face (an ear, hair, a
    # texture) that the tracker linked before or after the face itself: judged on those,
    # one person's two tracks look apart and two people's look joined.
    sure = [o for o in track.observations if o.score >= sure_score]
    obs = sure or track.observations
    frames = [o.frame for o in obs]
    look, samples = appearance.mean(track.id, frames[0], frames[-1])
    return _Tracklet(track.id, obs, frames, look, samples, bool(sure))


@dataclass(frozen=True)
class People:
    """Which tracks are one person (``groups``: track ids, each group sorted), and the
    pairs of tracks kept apart though they may be one person (``doubts``: earlier track,
    later track), for a reviewer to check."""

    groups: list[list[int]]
    doubts: list[tuple[int, int]]


class _Groups:
    """Union-find over track ids, with "never the same person" constraints between groups."""

    def __init__(self, ids: Sequence[int]) -> None:
        self.parent = {i: i for i in ids}
        self.apart: dict[int, set[int]] = {i: set() for i in ids}

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def forbid(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        self.apart[ra].add(rb)
        self.apart[rb].add(ra)

    def allowed(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        return ra == rb or (rb not in {self.find(x) for x in self.apart[ra]})

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        self.apart[ra] |= self.apart.pop(rb)
        for s in self.apart.values():
            if rb in s:
                s.discard(rb)
                s.add(ra)

    def members(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in self.parent:
            out.setdefault(self.find(i), []).append(i)
        return out


def _shared_looks(a: _Tracklet, b: _Tracklet) -> list[int]:
    lo, hi = max(a.first, b.first), min(a.last, b.last)
    if lo > hi:
        return []
    return sorted({f for f in a.frames + b.frames if lo <= f <= hi})


def group_people(tracks: Sequence[Track], appearance: AppearanceLog, *, fps: float,
                 params: IdentityParams = IdentityParams()) -> People:
    """Decide which of ``tracks`` (the tracker's, observations in scene coordinates) are one
    person, by the rules in the module docstring. Every track is in exactly one group."""
    p = params
    fps = fps if fps > 0 else 25.0
    ts = [_tracklet(t, appearance, p.sure_score) for t in tracks if t.observations]
    by_id = {t.id: t for t in ts}
    groups = _Groups([t.id for t in ts])
    doubts: list[tuple[int, int]] = []

    def look_distance(a: _Tracklet, b: _Tracklet) -> float | None:
        if a.look is None or b.look is None or min(a.samples, b.samples) < p.min_samples:
            return None
        return distance(a.look, b.look)

    # 1 and 2: tracks seen at the same time are the same face or two people.
    shares: dict[tuple[int, int], float] = {}
    extent = {t.id: (min(o.box[0] for o in t.obs), min(o.box[1] for o in t.obs),
                     max(o.box[2] for o in t.obs), max(o.box[3] for o in t.obs)) for t in ts}
    for i, a in enumerate(ts):
        for b in ts[i + 1:]:
            looks = _shared_looks(a, b)
            if not looks:
                continue
            if _containment(extent[a.id], extent[b.id]) == 0.0:
                shares[a.id, b.id] = shares[b.id, a.id] = 0.0  # never near each other
                continue
            same_place = 0
            for f in looks:
                ba, bb = _box_at(a.obs, a.frames, f), _box_at(b.obs, b.frames, f)
                assert ba is not None and bb is not None
                same_place += _containment(ba, bb) >= p.overlap
            shares[a.id, b.id] = shares[b.id, a.id] = same_place / len(looks)
    apart = {k for k, v in shares.items() if v < p.apart_share}
    for x, y in apart:
        groups.forbid(x, y)

    near: dict[int, list[int]] = {}
    for (x, y), v in shares.items():
        if v >= p.apart_share:
            near.setdefault(x, []).append(y)

    def ambiguous(x: int, y: int) -> bool:
        # y is also often where a third track is, and that track is somebody other than
        # x (a crossing): position alone cannot say whose face y followed.
        return any(c != x and (x, c) in apart for c in near.get(y, ()))

    duplicates: list[tuple[float, int, int]] = []
    for (x, y), share in shares.items():
        if x > y or share < p.apart_share:
            continue
        a, b = by_id[x], by_id[y]
        if not (a.sure or b.sure):
            continue  # two unsure tracks: neither is known to be a face, let alone whose
        # An unsure track's picture is mostly not a face: only its place counts.
        d = look_distance(a, b) if a.sure and b.sure else None
        if (share >= p.duplicate_share and not ambiguous(x, y) and not ambiguous(y, x)
                and (d is None or d < p.different)):
            duplicates.append((1.0 - share, x, y))
        elif not (a.sure and b.sure):
            groups.forbid(x, y)
        else:
            # Together for a while and apart for a while (one track jumped to another
            # face), or together among others: keep apart, and say so.
            doubts.append((x, y) if a.first <= b.first else (y, x))
            groups.forbid(x, y)
    for _, x, y in sorted(duplicates):
        if groups.allowed(x, y):
            groups.union(x, y)

    # 3: tracks split by a gap, best matches first, each end joined at most once.
    short_gap = p.short_gap_seconds * fps
    candidates: list[tuple[float, int, int]] = []
    gap_doubts: list[tuple[int, int]] = []
    for a in ts:
        for b in ts:
            if a.last >= b.first or not (a.sure and b.sure):
                continue
            gap = b.first - a.last
            ea, sb = a.obs[-1].box, b.obs[0].box
            if not 0.4 <= _size(sb) / _size(ea) <= 2.5:
                continue
            if gap <= short_gap:
                (ax, ay), (bx, by) = _centre(ea), _centre(sb)
                moved = math.hypot(bx - ax, by - ay) / max(_size(ea), _size(sb))
                if moved > 1.5 + p.max_speed * gap / fps:
                    continue  # nobody moves that fast
                threshold = p.same
            else:
                threshold = p.same_after_leaving
            d = look_distance(a, b)
            if d is not None and d <= threshold:
                candidates.append((d, a.id, b.id))
            elif (d is None and gap <= short_gap) or (d is not None and d < p.different):
                gap_doubts.append((a.id, b.id))
    candidates.sort()
    joined_after: set[int] = set()
    joined_before: set[int] = set()
    for _, x, y in candidates:
        gx, gy = groups.find(x), groups.find(y)
        if gx == gy or x in joined_after or y in joined_before or not groups.allowed(x, y):
            continue
        # A person cannot be in two places at once: the groups' looks must not interleave
        # (their duplicates were joined in step 1, so an overlap here is another person).
        members = groups.members()
        spans_x = [(by_id[m].first, by_id[m].last) for m in members[gx]]
        spans_y = [(by_id[m].first, by_id[m].last) for m in members[gy]]
        if any(s0 <= t1 and t0 <= s1 for s0, s1 in spans_x for t0, t1 in spans_y):
            continue
        groups.union(x, y)
        joined_after.add(x)
        joined_before.add(y)
    # A doubt about an end that found its match is no doubt.
    doubts += [(x, y) for x, y in gap_doubts if x not in joined_after and y not in joined_before]
    members = groups.members()
    out = sorted((sorted(g) for g in members.values()), key=lambda g: (by_id[g[0]].first, g))
    kept_apart = [(x, y) for x, y in dict.fromkeys(doubts) if groups.find(x) != groups.find(y)]
    return People(out, kept_apart)


# -- the plan: one TrackPlan per person --------------------------------------------------


def merge_tracks(tracks: Sequence[TrackPlan], groups: Sequence[Sequence[int]]
                 ) -> tuple[list[TrackPlan], dict[int, int]]:
    """One plan track per group of ``tracks`` (ids), numbered 1.. in order of first frame;
    returns them and the map from old track id to new.

    Nothing is lost: on each frame the joined track's box is that of its best-quality
    member seen there; the other members' boxes on frames where it already has one go to
    ``extra``. Its ``best_frame``/``quality`` are its best member's, ``keep`` is any
    member's. Tracks in no group stay as they are (renumbered).
    """
    by_id = {t.id: t for t in tracks}
    grouped = {i for g in groups for i in g}
    all_groups = [list(g) for g in groups if any(i in by_id for i in g)]
    all_groups += [[t.id] for t in tracks if t.id not in grouped]
    all_groups = [[i for i in g if i in by_id] for g in all_groups]
    all_groups.sort(key=lambda g: (min(by_id[i].start for i in g), min(g)))
    out: list[TrackPlan] = []
    mapping: dict[int, int] = {}
    for new_id, group in enumerate(all_groups, start=1):
        members = sorted((by_id[i] for i in group),
                         key=lambda t: (-(t.quality or 0.0), t.start, t.id))
        for m in members:
            mapping[m.id] = new_id
        if len(members) == 1:
            out.append(members[0].model_copy(update={"id": new_id}))
            continue
        start = min(m.start for m in members)
        end = max(m.end for m in members)
        rows: list[Any] = [None] * (end - start + 1)
        extra: list[BoxRun] = []
        for m in members:
            run_start: int | None = None
            run: list[Any] = []
            for i, b in enumerate(m.boxes):
                f = m.start + i
                taken = b is not None and rows[f - start] is not None
                if b is not None and not taken:
                    rows[f - start] = b
                if taken:
                    if run_start is None:
                        run_start = f
                    run.append(b)
                elif run_start is not None:
                    extra.append(BoxRun(start=run_start, boxes=run))
                    run_start, run = None, []
            if run_start is not None:
                extra.append(BoxRun(start=run_start, boxes=run))
        best = members[0]
        out.append(TrackPlan(
            id=new_id, start=start, boxes=rows, keep=any(m.keep for m in members),
            label=next((m.label for m in members if m.label), None), quality=best.quality,
            best_frame=best.best_frame, extra=sorted(extra, key=lambda r: r.start)))
    return out, mapping


def _doubt_span(track: TrackPlan, other: int, times: Sequence[float], fps: float
                ) -> ReviewSpan:
    first = next(i for i, b in enumerate(track.boxes) if b is not None) + track.start
    last = min(track.end, first + max(1, round(fps)))
    confs = [b[4] for f in range(first, last + 1)
             if (b := track.boxes[f - track.start]) is not None]
    return ReviewSpan(track_id=track.id, start=first, end=last,
                      start_time=round(times[first], 3) if first < len(times) else 0.0,
                      end_time=round(times[last], 3) if last < len(times) else 0.0,
                      reason="identity", min_confidence=min(confs) if confs else 0.0,
                      related_track=other)


def join_people(tracks: Sequence[TrackPlan], review: Sequence[ReviewSpan],
                tracklets: Sequence[Track], appearance: AppearanceLog, *,
                times: Sequence[float], fps: float,
                params: IdentityParams = IdentityParams(),
                ) -> tuple[list[TrackPlan], list[ReviewSpan]]:
    """The plan's ``tracks`` joined into one per person (:func:`group_people`,
    :func:`merge_tracks`), and ``review`` renumbered with a span (``identity``) for each pair
    kept apart in doubt, on the later track's first second. ``tracklets`` are the tracker's
    tracks (same ids as ``tracks``); ``times`` each frame's presentation time (s)."""
    people = group_people(tracklets, appearance, fps=fps, params=params)
    merged, mapping = merge_tracks(tracks, people.groups)
    by_new = {t.id: t for t in merged}
    spans = [r.model_copy(update={"track_id": mapping[r.track_id]})
             for r in review if r.track_id in mapping]
    seen: set[tuple[int, int]] = set()
    for x, y in people.doubts:
        if x not in mapping or y not in mapping:
            continue
        a, b = sorted((mapping[x], mapping[y]), key=lambda i: (by_new[i].start, i))
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        spans.append(_doubt_span(by_new[b], a, times, fps))
    spans.sort(key=lambda r: (r.start, r.track_id, r.reason))
    return merged, spans
