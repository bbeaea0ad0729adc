"""Which tracks are one person: the joining rules, on the tracker's tracks and their faces.

:func:`group_people` applies the rules that :mod:`redaction.identity` specifies, in its
order (swaps, duplicates, two places at once, gaps), to the tracker's tracks and their
appearance samples (:mod:`redaction.appearance`), and returns the groups, the cuts at swaps
and the pairs kept apart in doubt (:class:`People`). It decides; it does not touch the plan:
:func:`redaction.identity.join_people` applies the decision to the plan's tracks.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np

from redaction.boxes import centre as _centre, iou as _iou, size as _size
from redaction.appearance import MIN_FACE, AppearanceLog, Vector, distance
from redaction.partition import Partition
from redaction.track import Observation, Track

__all__ = ["IdentityParams", "People", "group_people"]

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class IdentityParams:
    """How tracks are joined into people. Recorded in every plan.

    - ``overlap``: least shared area over the smaller face box for "the same place".
    - ``duplicate_share``: share of shared looks at the same place for two tracks to be one
      face (duplicates).
    - ``duplicate_iou``: least overlap (intersection over union) of two boxes of one face.
    - ``inside``: a box with at least this share of its area inside a sure track's face
      box, and at most 0.7 of its size, is a part of that face (the face detected again at
      another scale: the eyes and nose, the lower face), though the two boxes are not one
      box. Used for a track that is unsure, or whose face cannot be compared (too small,
      too briefly seen). Only inside: a box *around* a face may be around a neighbour's
      too.
    - ``drift``: a duplicate moves with the face: over the looks the two tracks share, the
      place of one relative to the other's face may drift by at most this many face sizes
      (a person passing in front of another slides across their face). Applied where
      appearance cannot compare the two (either is unsure, or their faces are too small
      or too briefly seen): position is then all there is.
    - ``stray``: a duplicate's detections, sure or not, stay within this many face sizes of
      the other track's face while both are seen (further off, the tracker jumped).
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
    - ``min_face``: faces smaller than this (px, median of a track's) are not compared by
      appearance: too little of their texture survives compression.
    - ``sure_score``: detections scoring this or more are surely a face. Identity is judged
      on them; a track with none (mostly not a face) joins a person only as a duplicate over
      their face, and never across a gap.
    """

    overlap: float = 0.5
    duplicate_share: float = 0.7
    duplicate_iou: float = 0.5
    inside: float = 0.8
    drift: float = 0.25
    stray: float = 2.0
    apart_share: float = 0.3
    same: float = 0.18
    same_after_leaving: float = 0.15
    different: float = 0.24
    max_speed: float = 4.0
    short_gap_seconds: float = 2.0
    sure_score: float = 0.3
    min_face: float = MIN_FACE
    min_samples: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.same_after_leaving <= self.same <= self.different <= 1:
            raise ValueError("need 0 <= same_after_leaving <= same <= different <= 1")

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-ready dict."""
        return asdict(self)


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
    return cast(Box, tuple(x + (y - x) * u for x, y in zip(a.box, b.box, strict=False)))


def _containment(a: Box, b: Box) -> float:
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def _inside(inner: Box, outer: Box) -> float:
    """Share of ``inner``'s area that lies inside ``outer``."""
    ix = min(inner[2], outer[2]) - max(inner[0], outer[0])
    iy = min(inner[3], outer[3]) - max(inner[1], outer[1])
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return ix * iy / area if ix > 0 and iy > 0 and area > 0 else 0.0


def _part_of(inner: Box, outer: Box, params: IdentityParams) -> bool:
    """``inner`` is a part of the face in ``outer``: inside it (``params.inside``) and at
    most 0.7 of its size (a box of about its size is the face itself, or another's)."""
    return _size(inner) <= 0.7 * _size(outer) and _inside(inner, outer) >= params.inside


def _drift(pairs: Sequence[tuple[int, Box, Box]]) -> float:
    """How far the first box of each ``(frame, box, box)`` moves relative to the second
    over the frames, in face sizes (the larger box's): the trend of their centres' offset (the
    Theil-Sen slope, the median of the slopes between every two frames) times the frames
    it spans. A trend, not the spread, so that the detector's jitter of a box about a face
    does not count as moving; a median, so that one odd box (half a face at the edge of a
    look, an interpolation across a curve) does not either. 0 for fewer than two frames."""
    if len(pairs) < 2:
        return 0.0
    frames = np.array([f for f, _, _ in pairs], np.float64)
    # In the larger box's sizes: that is the face (the other may be a part of it).
    offsets = np.array([[(_centre(u)[0] - _centre(v)[0]) / max(_size(u), _size(v)),
                         (_centre(u)[1] - _centre(v)[1]) / max(_size(u), _size(v))]
                        for _, u, v in pairs])
    i, j = np.triu_indices(len(pairs), k=1)
    slopes = (offsets[j] - offsets[i]) / (frames[j] - frames[i])[:, None]
    slope = np.median(slopes, axis=0)
    return float(np.hypot(*slope) * (frames[-1] - frames[0]))


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
    every: list[Observation]  # all of them, sure or not

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]


def _tracklet(track: Track, appearance: AppearanceLog, params: IdentityParams,
              source: int | None = None) -> _Tracklet:
    # A track's ends are often a low-scoring detection beside the face (an ear, hair, a
    # texture) that the tracker linked before or after the face itself: judged on those,
    # one person's two tracks look apart and two people's look joined.
    sure = [o for o in track.observations if o.score >= params.sure_score]
    obs = sure or track.observations
    frames = [o.frame for o in obs]
    # Appearance over all of the track's looks: a stray box beside the face adds a few
    # samples to many, and a face the detector is unsure of is still that face.
    look, samples = appearance.mean(track.id if source is None else source, track.first,
                                    track.last)
    # A small face's texture is mostly the encoder's: on the benchmark's crowd (faces up
    # to 30 px, x264 crf 26) two neighbours measured closer than one face at two times.
    if statistics.median(_size(o.box) for o in obs) < params.min_face:
        look, samples = None, 0
    return _Tracklet(track.id, obs, frames, look, samples, bool(sure), track.observations)


@dataclass(frozen=True)
class People:
    """Which tracks are one person (``groups``: track ids, each group sorted), and the
    pairs of tracks kept apart though they may be one person (``doubts``: earlier track,
    later track), for a reviewer to check."""

    groups: list[list[int]]
    doubts: list[tuple[int, int]]
    #: Tracks cut where the face changed (the tracker swapped faces at a crossing): the
    #: track's id -> its pieces: (first frame, track in the same coordinates), the first
    #: piece keeping the id. A piece's frames run to the next piece's first frame.
    pieces: dict[int, list[tuple[int, Track]]] = field(default_factory=dict)


def _shared_looks(a: _Tracklet, b: _Tracklet) -> list[int]:
    lo, hi = max(a.first, b.first), min(a.last, b.last)
    if lo > hi:
        return []
    return sorted({f for f in a.frames + b.frames if lo <= f <= hi})


def _change_points(samples: Sequence[tuple[int, Vector]], params: IdentityParams
                   ) -> list[int]:
    """Frames where a track's face changes: where the mean of the ``2 * min_samples``
    samples before differs from that of those after by ``different`` or more (the
    strongest such change, then recursively either side of it)."""
    w = 2 * params.min_samples
    if len(samples) < 2 * w:
        return []
    vs = np.stack([v for _, v in samples])
    best, at = 0.0, 0
    for k in range(w, len(samples) - w + 1):
        d = distance(vs[k - w:k].mean(axis=0), vs[k:k + w].mean(axis=0))
        if d > best:
            best, at = d, k
    if best < params.different:
        return []
    # The swap happened between these two samples; cut halfway.
    cut = (samples[at - 1][0] + samples[at][0] + 1) // 2
    return [*_change_points(samples[:at], params), cut, *_change_points(samples[at:], params)]


def _cut(tracks: Sequence[Track], appearance: AppearanceLog, params: IdentityParams
         ) -> tuple[list[Track], dict[int, int], dict[int, list[tuple[int, Track]]]]:
    """Tracks cut where their face changes: (all pieces, piece id -> track id, track id ->
    its pieces for the tracks that were cut). Later pieces get new ids after the largest."""
    out: list[Track] = []
    source: dict[int, int] = {}
    pieces: dict[int, list[tuple[int, Track]]] = {}
    next_id = max((t.id for t in tracks), default=0) + 1
    for t in tracks:
        if not t.observations:
            continue
        # Judged where the face is sure: a stray box at either end is not a change of face.
        sure = [o.frame for o in t.observations if o.score >= params.sure_score]
        if not sure:
            out.append(t)
            source[t.id] = t.id
            continue
        cuts = _change_points(appearance.samples(t.id, sure[0], sure[-1]), params)
        # Between the last detection of one face and the first of the other the mask slid
        # from one to the other: the half nearer each face goes with it.
        frames = [o.frame for o in t.observations]
        for i, c in enumerate(cuts):
            k = bisect.bisect_left(frames, c)
            if 0 < k < len(frames):
                cuts[i] = (frames[k - 1] + frames[k] + 1) // 2
        bounds = [t.first, *cuts, t.last + 1]
        parts = [(lo, [o for o in t.observations if lo <= o.frame < hi])
                 for lo, hi in itertools.pairwise(bounds)]
        parts = [(lo, part) for lo, part in parts if part]
        if len(parts) == 1:
            out.append(t)
            source[t.id] = t.id
            continue
        cut_track = []
        for i, (lo, part) in enumerate(parts):
            pid = t.id if i == 0 else next_id
            next_id += i > 0
            piece = Track(pid, part)
            cut_track.append((lo, piece))
            out.append(piece)
            source[pid] = t.id
        pieces[t.id] = cut_track
    return out, source, pieces


def group_people(tracks: Sequence[Track], appearance: AppearanceLog, *, fps: float,
                 params: IdentityParams = IdentityParams()) -> People:
    """Decide which of ``tracks`` (the tracker's, observations in scene coordinates) are one
    person, by the rules in the module docstring. A track whose face changes part way (the
    tracker swapped two faces where they crossed) is first cut there (``People.pieces``).
    Every track, or piece, is in exactly one group."""
    p = params
    fps = fps if fps > 0 else 25.0
    cut, source, pieces = _cut(tracks, appearance, p)
    ts = [_tracklet(t, appearance, p, source[t.id]) for t in cut]
    by_id = {t.id: t for t in ts}
    groups = Partition(t.id for t in ts)
    doubts: list[tuple[int, int]] = []

    def uncompared(t: _Tracklet) -> bool:
        # Unsure, or sure but too small or too briefly seen for its face to be compared:
        # its place is all there is to judge it by.
        return not t.sure or t.look is None or t.samples < p.min_samples

    def look_distance(a: _Tracklet, b: _Tracklet) -> float | None:
        if a.look is None or b.look is None or min(a.samples, b.samples) < p.min_samples:
            return None
        return distance(a.look, b.look)

    # 1 and 2: tracks seen at the same time are the same face or two people.
    shares: dict[tuple[int, int], float] = {}
    # Of the shared looks: how many at the same place and of the same size (one face), and
    # how many looks were shared at all.
    one_face: dict[tuple[int, int], float] = {}
    # How many shared looks each pair had, and at how many they were at the same place.
    looks_of: dict[tuple[int, int], int] = {}
    placed: dict[tuple[int, int], int] = {}
    # How far each pair's boxes slid past each other over their shared looks (face sizes).
    drift: dict[tuple[int, int], float] = {}
    # (inner, outer): inner's boxes were parts of outer's sure, compared face (another
    # scale of it, its lower half) at this share of their shared looks.
    part: dict[tuple[int, int], float] = {}
    extent = {t.id: (min(o.box[0] for o in t.every), min(o.box[1] for o in t.every),
                     max(o.box[2] for o in t.every), max(o.box[3] for o in t.every))
              for t in ts}
    # Which sure tracks each track's detections, sure or not, ever land on: a track that
    # was on one person's face and then on another's (the tracker jumped) belongs to
    # neither, even if its sure detections were all on one of them.
    touches: dict[int, set[int]] = {t.id: set() for t in ts}

    for i, a in enumerate(ts):
        for b in ts[i + 1:]:
            looks = _shared_looks(a, b)
            if not looks:
                continue
            if _containment(extent[a.id], extent[b.id]) == 0.0:
                shares[a.id, b.id] = shares[b.id, a.id] = 0.0  # never near each other
                continue
            for u, v in ((a, b), (b, a)):
                # A small box inside u's face (a part of that face detected on its own)
                # is not u landing on somebody else.
                if v.sure and any((vb := _box_at(v.obs, v.frames, o.frame)) is not None
                                  and _containment(o.box, vb) >= p.overlap
                                  and not _part_of(vb, o.box, p) for o in u.every):
                    touches[u.id].add(v.id)
            same_place = same_face = a_in_b = b_in_a = 0
            paired: list[tuple[int, Box, Box]] = []
            for f in looks:
                ba, bb = _box_at(a.obs, a.frames, f), _box_at(b.obs, b.frames, f)
                assert ba is not None and bb is not None
                paired.append((f, ba, bb))
                if _containment(ba, bb) >= p.overlap:
                    same_place += 1
                    # A box around two neighbours' faces contains each of them: it is at
                    # their place, but it is neither face. One face is one box, or an
                    # unsure box inside a sure face (another scale of that face: all it
                    # covers is that face's).
                    a_part = uncompared(a) and _part_of(ba, bb, p)
                    b_part = uncompared(b) and _part_of(bb, ba, p)
                    same_face += (_iou(ba, bb) >= p.duplicate_iou
                                  or (b.sure and a_part) or (a.sure and b_part))
                    # (A part only of a face whose picture was compared: a box around
                    # two neighbours' faces has each of them inside it.)
                    a_in_b += a_part and not uncompared(b)
                    b_in_a += b_part and not uncompared(a)
            shares[a.id, b.id] = shares[b.id, a.id] = same_place / len(looks)
            placed[a.id, b.id] = placed[b.id, a.id] = same_place
            looks_of[a.id, b.id] = looks_of[b.id, a.id] = len(looks)
            one_face[a.id, b.id] = one_face[b.id, a.id] = same_face / len(looks)
            drift[a.id, b.id] = drift[b.id, a.id] = _drift(paired)
            part[a.id, b.id], part[b.id, a.id] = a_in_b / len(looks), b_in_a / len(looks)
    # Two parts of one sure face found on their own (its middle at another scale, its
    # chin cut by a crop's edge) are apart from each other and are both that face: on the
    # SAR journey's footage the chin stayed a track of its own, forbidden the person its
    # face's middle had joined (issue #13).
    parts_of: dict[int, set[int]] = {}
    for (inner, outer), share in part.items():
        if share >= p.duplicate_share:
            parts_of.setdefault(inner, set()).add(outer)
    apart = {(x, y) for (x, y), v in shares.items() if v < p.apart_share
             and not parts_of.get(x, set()) & parts_of.get(y, set())}
    for x, y in apart:
        groups.forbid(x, y)

    # Which tracks are often where each track is: at its place for a share of *its* looks
    # (not only of the few they share), so that a short partial box inside one face (its
    # lower half, seen twice) does not make that face's whole track look like a box
    # around two people.
    near: dict[int, list[int]] = {}
    for (x, y), share in shares.items():
        if share >= p.apart_share and (placed[x, y] / max(len(by_id[x].frames), looks_of[x, y])
                                       >= p.apart_share):
            near.setdefault(x, []).append(y)

    def strayed(u: _Tracklet, v: _Tracklet) -> bool:
        # u's detections, sure or not, while v was seen: beside v's face (an ear, hair) is
        # the same head; further off, u was on somebody else before or after.
        for o in u.every:
            vb = _box_at(v.obs, v.frames, o.frame)
            if vb is not None:
                (ux, uy), (vx, vy) = _centre(o.box), _centre(vb)
                if math.hypot(ux - vx, uy - vy) > p.stray * _size(vb):
                    return True
        return False

    def ambiguous(x: int, y: int) -> bool:
        # y is also often where a third track is, and that track is somebody other than
        # x (a crossing): position alone cannot say whose face y followed. Or y is where
        # x's track was cut because the face there changed (one face passed in front of
        # another), before and after the cut: y was on whichever face was in front.
        return any(c != x and ((x, c) in apart or source[c] == source[x])
                   for c in (*near.get(y, ()), *touches[y]))

    duplicates: list[tuple[float, int, int]] = []
    for (x, y), share in shares.items():
        if x > y or share < p.apart_share:
            continue
        a, b = by_id[x], by_id[y]
        face_share = one_face[x, y]
        if not (a.sure or b.sure):
            continue  # two unsure tracks: neither is known to be a face, let alone whose
        # An unsure track's picture is mostly not a face: only its place counts.
        d = look_distance(a, b) if a.sure and b.sure else None
        # A duplicate stays on the face it doubles; a track that slides across it is a
        # person passing in front, however long their boxes coincide. Where the faces
        # can be compared, they decide: a sure detection's box shape (half a face at the
        # frame's edge, a turned head) moves its centre more than a slow walker does.
        if (face_share >= p.duplicate_share and (d is not None or drift[x, y] <= p.drift)
                and not ambiguous(x, y) and not ambiguous(y, x)
                and not strayed(a, b) and not strayed(b, a)
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

    def crowded(a: _Tracklet, b: _Tracklet, gap: int) -> bool:
        # Somebody else is where a could have got to when b appears (people crossing, a
        # crowd): a's end could as well have become them. Only a face plainly unlike a's
        # there leaves b as the one a became.
        ea = a.obs[-1].box
        (ax, ay), reach = _centre(ea), (1.5 + p.max_speed * gap / fps) * _size(ea)
        gb = groups.find(b.id)
        for c in ts:
            if c.id in (a.id, b.id) or not c.sure or groups.find(c.id) == gb:
                continue
            cb = _box_at(c.obs, c.frames, b.first)
            if cb is not None and math.hypot(_centre(cb)[0] - ax, _centre(cb)[1] - ay) <= reach:
                d = look_distance(a, c)
                if d is None or d < p.different:
                    return True
        return False

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
                if crowded(a, b, gap):
                    gap_doubts.append((a.id, b.id))
                    continue
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
    # A cut is a doubt too: a person should see that the face changed there.
    doubts += [(a.id, b.id) for parts in pieces.values()
               for (_, a), (_, b) in itertools.pairwise(parts)]
    kept_apart = [(x, y) for x, y in dict.fromkeys(doubts) if groups.find(x) != groups.find(y)]
    return People(out, kept_apart, pieces)
