"""One person, one track (issue #13 item 4): real LFW faces, real encode and decode.

Tried as an information-governance officer would on the demo's footage, two people came out
as 18 tracks (one a duplicate over the same face for 294 frames), so keeping the subject
access requester's track left them visible in only 43 % of their frames. These tests hold
the pipeline to one track per person, keep-the-requester working on every frame of theirs,
and the conservative side of the join: two different people are never made one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from redaction import (
    CenterFace,
    MaskSpec,
    PlanError,
    RedactionPlan,
    ReviewSpan,
    SourceInfo,
    TrackPlan,
    plan_video,
    redact_video,
    render_plan,
)
from redaction.identity import AppearanceLog, IdentityParams, group_people, merge_tracks
from redaction.plan import BoxRun
from redaction.render import FrameMasker
from redaction.synthetic import (
    Clip,
    Face,
    Path2D,
    circle,
    face_visibility,
    linear,
    make_clip,
    read_frames,
    render_frame,
    still,
)
from redaction.track import MaskBox, Observation, Track

VISIBLE = 0.3
W, H, SECONDS = 480, 270, 8.0


# -- footage -------------------------------------------------------------------------------


def _leave_and_return(x: float, y: float, out_by: float, back_at: float, x1: float,
                      y1: float, seconds: float) -> Path2D:
    """Walk down out of the bottom of the frame by ``out_by`` s, stay away, come back up
    at ``x1`` from ``back_at`` s."""
    away = H + 60

    def at(t: float) -> tuple[float, float]:
        if t < out_by:
            return x, y + (away - y) * t / out_by
        if t < back_at:
            return x, H + 200
        u = min(1.0, (t - back_at) / (seconds - back_at))
        return x1, away + (y1 - away) * u
    return at


#: Three different LFW people: the requester (0) walks right; another (1) walks left,
#: drawn over the requester as they cross (an occlusion); a third (2) leaves through the
#: bottom edge and comes back 2.5 s later somewhere else.
THREE = [
    Face(linear(40, 100, 440, 112, SECONDS), 44, identity=5),
    Face(linear(440, 124, 40, 116, SECONDS), 44, identity=12),
    Face(_leave_and_return(120, 200, 2.5, 5.0, 330, 190, SECONDS), 44, identity=30),
]

#: Two different people with the same skin tone (identities 3 and 11 share a tint): one
#: walks out of the left edge, the other walks in there 0.4 s later, on the same line. Only
#: the face itself tells them apart.
ALIKE = [
    Face(linear(200, 130, -60, 130, 3.0), 44, identity=3, end=3.0),
    Face(linear(-60, 130, 200, 130, 3.0), 44, identity=11, start=3.4),
]


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory, detector: CenterFace
          ) -> tuple[Clip, RedactionPlan]:
    clip = make_clip(tmp_path_factory.mktemp("identity") / "three.mp4", THREE, width=W,
                     height=H, seconds=SECONDS)
    return clip, plan_video(clip.path, detector=detector)


def _area(b: Sequence[float]) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _covers(box: Sequence[float] | None, face: Sequence[float]) -> bool:
    """A mask box covers most of a face box."""
    if box is None:
        return False
    inter = [max(box[0], face[0]), max(box[1], face[1]), min(box[2], face[2]),
             min(box[3], face[3])]
    return _area(inter) > 0.5 * _area(face)


def _people(clip: Clip, plan: RedactionPlan) -> dict[int, dict[int, int]]:
    """For each ground-truth face: how many of its frames each plan track covers."""
    out: dict[int, dict[int, int]] = {}
    for f, boxes in enumerate(clip.gt):
        for k, whole in boxes:
            # The part in the picture: a face leaving through the edge is partly outside.
            face = (max(0.0, whole[0]), max(0.0, whole[1]), min(clip.width, whole[2]),
                    min(clip.height, whole[3]))
            for t in plan.tracks:
                if any(_covers(b, face) for b in t.boxes_at(f)):
                    out.setdefault(k, {})
                    out[k][t.id] = out[k].get(t.id, 0) + 1
    return out


def _one_track_each(clip: Clip, plan: RedactionPlan) -> dict[int, int]:
    """Assert one track per person and return it (face -> track id).

    A person's track covers at least 90 % of the frames in which any track covers them;
    no other track covers them in more than 10 % (a low-scoring box beside the face, not
    known to be a face, may touch it briefly); no track is two people's.
    """
    mine: dict[int, int] = {}
    for k, counts in _people(clip, plan).items():
        total = sum(1 for boxes in clip.gt for j, _ in boxes if j == k)
        best = max(counts, key=lambda t: counts[t])
        assert counts[best] >= 0.9 * total, (k, counts, total)
        assert all(n <= 0.1 * total for t, n in counts.items() if t != best), (k, counts)
        mine[k] = best
    assert len(set(mine.values())) == len(mine), mine
    return mine


def _in_front(face: Sequence[float], others: Sequence[Sequence[float]]) -> bool:
    """Another person's head (face box and a fifth of it each side, as masked) covers a
    quarter or more of ``face``: hiding them hides part of this face too, and hiding the
    third party wins."""
    for o in others:
        w, h = o[2] - o[0], o[3] - o[1]
        head = (o[0] - 0.2 * w, o[1] - 0.2 * h, o[2] + 0.2 * w, o[3] + 0.2 * h)
        inter = [max(face[0], head[0]), max(face[1], head[1]), min(face[2], head[2]),
                 min(face[3], head[3])]
        if _area(inter) >= 0.25 * _area(face):
            return True
    return False


def _visibility(clip: Clip, output: Path, *, unoccluded: bool = False
                ) -> dict[int, tuple[int, int]]:
    """For each ground-truth face: (frames where its detail survives in ``output``, frames
    it is in; with ``unoccluded``, only frames where nobody's head is in front of it)."""
    frames = read_frames(output)
    assert len(frames) == clip.frame_count
    seen: dict[int, list[int]] = {}
    for i, boxes in enumerate(clip.gt):
        src = clip.frame(i)
        for k, box in boxes:
            if unoccluded and _in_front(box, [b for j, b in boxes if j != k]):
                continue
            v = face_visibility(src, frames[i], box)
            s = seen.setdefault(k, [0, 0])
            s[0] += v > VISIBLE
            s[1] += 1
    return {k: (v[0], v[1]) for k, v in seen.items()}


# -- the three people ----------------------------------------------------------------------


def test_three_people_crossing_and_leaving_are_three_tracks(
        three: tuple[Clip, RedactionPlan]) -> None:
    """Issue #13 item 4: three different real faces crossing, one occluding another, one
    leaving and coming back: one track per person (the one who came back is the same track
    before and after), and the join is recorded."""
    clip, plan = three
    mine = _one_track_each(clip, plan)
    assert set(mine) == {0, 1, 2}
    returning = next(t for t in plan.tracks if t.id == mine[2])
    assert any(2 not in dict(boxes) for boxes in clip.gt)  # they did leave
    before, after = 10, clip.frame_count - 1  # in full view, before leaving and after
    assert _covers(returning.box_at(before), dict(clip.gt[before])[2])
    assert _covers(returning.box_at(after), dict(clip.gt[after])[2])
    assert plan.parameters["stats"]["tracklets"] > len(plan.tracks)
    assert plan.parameters["identity"] == IdentityParams().to_dict()
    for t in plan.tracks:  # the merged track keeps its best view
        if t.best_frame is not None:
            assert t.box_at(t.best_frame) is not None


def test_keeping_the_requester_keeps_every_frame_of_theirs(
        three: tuple[Clip, RedactionPlan], tmp_path: Path) -> None:
    """Issue #13 item 4: "keep person P" keeps every frame of that person: the requester
    is visible in >= 99 % of their frames, everyone else hidden in 100 % of theirs.

    Where the other walker's head is in front of a quarter or more of the requester's face
    (15 of 200 frames), the other's mask must hide that part of the requester too; those
    frames are not counted for the requester (a third party hidden beats a requester
    shown), and the requester must still be visible in most of all 200."""
    clip, plan = three
    mine = _one_track_each(clip, plan)
    out = tmp_path / "kept.mp4"
    render_plan(clip.path, plan.with_keep({mine[0]}), out)
    seen = _visibility(clip, out)
    clear = _visibility(clip, out, unoccluded=True)
    visible, frames = clear[0]
    assert frames >= 0.9 * clip.frame_count
    assert visible >= 0.99 * frames, (clear, seen)
    assert seen[0][0] >= 0.95 * seen[0][1], seen
    assert seen[1][0] == 0 and seen[2][0] == 0, seen


def test_look_alike_people_are_not_joined(tmp_path: Path, detector: CenterFace) -> None:
    """Issue #13 item 4, the wrong-merge case: two different people who look alike in
    colour (the same skin tone), one leaving where the other comes in 0.4 s later, stay two
    tracks; keeping the first leaves the second hidden in every frame."""
    clip = make_clip(tmp_path / "alike.mp4", ALIKE, width=W, height=H, seconds=SECONDS)
    plan = plan_video(clip.path, detector=detector)
    mine = _one_track_each(clip, plan)
    assert mine[0] != mine[1]
    out = tmp_path / "kept.mp4"
    render_plan(clip.path, plan.with_keep({mine[0]}), out)
    assert _visibility(clip, out)[1][0] == 0


@pytest.mark.slow
def test_demo_footage_gives_one_track_per_person(tmp_path: Path, detector: CenterFace
                                                 ) -> None:
    """Issue #13 item 4: the demo's footage (api/demo.py's incident clip: 40 s at 640x360,
    one person walking across, another circling, both the astronaut, one mirrored) gave 18
    tracks for two people. Now each person is one track, and keeping either leaves them
    visible in >= 98 % of their frames (was 43 %) and the other hidden in all of theirs. The
    joins overlap in time (``extra`` boxes), and the plan still renders the one-pass file."""
    width, height, seconds = 640, 360, 40.0
    faces = [
        Face(linear(0.1 * width, 0.3 * height, 0.85 * width, 0.45 * height, seconds),
             0.09 * height),
        Face(circle(0.55 * width, 0.6 * height, 0.12 * height, seconds / 2), 0.11 * height,
             mirror=True, gain=0.9),
    ]
    clip = make_clip(tmp_path / "incident.mp4", faces, width=width, height=height,
                     seconds=seconds, seed=2)
    plan, one_pass = redact_video(clip.path, tmp_path / "one_pass.mp4", detector=detector)
    assert any(t.extra for t in plan.tracks)
    assert render_plan(clip.path, plan, tmp_path / "planned.mp4").sha256 == one_pass.sha256
    mine = _one_track_each(clip, plan)
    assert set(mine) == {0, 1}
    for k, other in ((0, 1), (1, 0)):
        out = tmp_path / f"kept{k}.mp4"
        render_plan(clip.path, plan.with_keep({mine[k]}), out)
        seen = _visibility(clip, out)
        assert seen[k][0] >= 0.98 * seen[k][1], seen
        assert seen[other][0] == 0, seen


# -- decisions, on the tracker's own records -------------------------------------------------


def _track(tid: int, points: Sequence[tuple[int, float, float]], size: float = 40.0,
           score: float = 0.9) -> Track:
    return Track(tid, [Observation(f, (x - size / 2, y - size / 2, x + size / 2, y + size / 2),
                                   score) for f, x, y in points])


def _walk(tid: int, frames: range, x0: float, y0: float, vx: float, vy: float = 0.0,
          **kw: float) -> Track:
    return _track(tid, [(f, x0 + vx * (f - frames[0]), y0 + vy * (f - frames[0]))
                        for f in frames], **kw)


def _log(faces: Sequence[tuple[int, Track]], frames: int) -> AppearanceLog:
    """An appearance log of real LFW faces (identity, track) drawn where the tracks are."""
    log = AppearanceLog(every=1)
    for f in range(frames):
        drawn: list[Face] = []
        boxes: list[MaskBox] = []
        for identity, t in faces:
            o = next((o for o in t.observations if o.frame == f), None)
            if o is None:
                continue
            cx, cy = (o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2
            drawn.append(Face(still(cx, cy), o.box[3] - o.box[1], identity=identity))
            pad = 0.25 * (o.box[3] - o.box[1])
            boxes.append(MaskBox(t.id, (math.floor(o.box[0] - pad), math.floor(o.box[1] - pad),
                                        math.ceil(o.box[2] + pad), math.ceil(o.box[3] + pad)),
                                 o.score, False))
        if boxes:
            log.add(f, render_frame(W, H, 0.0, drawn, f, 2.0, "coffee"), boxes)
    return log


def test_duplicate_over_the_same_face_is_joined_despite_a_stray_end() -> None:
    """Issue #13 item 4, the demo's duplicate: a second track followed the same face while
    the first was still on it, and the first then jumped to a low-scoring box beside the face
    before ending. Judged on its sure detections, it is one person with one track."""
    face = _walk(1, range(0, 120, 3), 100, 100, 1.0)
    stray = Observation(123, (170.0, 60.0, 185.0, 80.0), 0.15)  # beside the head
    face.observations.append(stray)
    second = _walk(2, range(96, 200, 3), 196, 100, 1.0)
    people = group_people([face, second], AppearanceLog(), fps=25)
    assert people.groups == [[1, 2]]


def test_a_person_cannot_be_in_two_places_at_once() -> None:
    """Issue #13 item 4: two tracks seen at the same time in different places are two
    people, however alike they look (here the same face: twins)."""
    a = _walk(1, range(0, 100, 3), 60, 100, 0.5)
    b = _walk(2, range(30, 100, 3), 300, 100, 0.5)
    log = _log([(5, a), (5, b)], 100)  # the same person's picture on both: a twin
    people = group_people([a, b], log, fps=25)
    assert people.groups == [[1], [2]]


def test_a_track_seen_only_where_two_people_cross_is_not_joined_to_either() -> None:
    """Issue #13 item 4, the wrong-merge case: two people cross; a short third track seen
    only while they overlap could be either face. Joining it to the requester would expose
    the other person when the requester is kept: it stays apart, with a doubt to review."""
    a = _walk(1, range(0, 100, 3), 100, 100, 2.0)  # left to right
    b = _walk(2, range(0, 100, 3), 298, 104, -2.0)  # right to left, crossing at frame ~50
    short = _walk(3, range(45, 55, 3), 190, 102, 0.0)
    people = group_people([a, b, short], AppearanceLog(), fps=25)
    assert [3] in people.groups
    assert any(3 in pair for pair in people.doubts)


def test_a_track_that_jumped_from_another_face_is_not_joined() -> None:
    """Issue #13 item 4, the wrong-merge case found on the crowd clip: the tracker linked a
    neighbour's faint detections and then, 100 px away, one sure detection on the
    requester's face. Joined as a duplicate, keeping the requester would have shown the
    neighbour for those frames: it stays apart, with or without a track for the neighbour."""
    requester = _walk(1, range(0, 60, 3), 100, 100, 0.0)
    neighbour = _walk(2, range(0, 60, 3), 220, 100, 0.0)
    jumped = _track(3, [(24, 220, 100), (27, 220, 101)], score=0.12)
    jumped.observations.append(Observation(36, (80.0, 80.0, 120.0, 120.0), 0.6))
    assert [3] in group_people([requester, neighbour, jumped], AppearanceLog(),
                               fps=25).groups
    assert [3] in group_people([requester, jumped], AppearanceLog(), fps=25).groups


def test_a_box_around_two_neighbours_is_neither() -> None:
    """Issue #13 item 4: a detection boxing two neighbours' faces contains each of them,
    but is not one face: it is joined to neither."""
    left = _walk(1, range(0, 60, 3), 100, 100, 0.0)
    right = _walk(2, range(0, 60, 3), 150, 100, 0.0)
    both = _track(3, [(30, 125, 100), (33, 125, 100)], size=95)
    assert [3] in group_people([left, right, both], AppearanceLog(), fps=25).groups


def test_two_parts_of_one_face_found_apart_both_join_it() -> None:
    """Issue #13 item 4, the SAR journey: a face's faint middle (found again at another
    scale) and its chin (a partial box where a crop's edge cut the face) are each inside
    the face and apart from each other. Both are that face. Before, the middle joined the
    person first and the chin, "somebody other" than the middle, stayed a track of its own
    whose padded mask covered the requester's face for a second."""
    frames = range(0, 60, 3)
    face = _walk(1, frames, 100, 100, 1.0, size=48.0)
    middle = _track(2, [(f, 100 + (f - frames[0]), 102) for f in frames], size=22.0,
                    score=0.15)
    x = 100 + 48
    chin = Track(3, [Observation(48, (x - 13, 110, x + 13, 122), 0.49)])
    log = _log([(5, face)], 60)
    assert group_people([face, middle, chin], log, fps=25).groups == [[1, 2, 3]]


def test_a_gap_too_far_to_walk_is_not_joined() -> None:
    """Issue #13 item 4: across a short gap a head can only move so far; the same face
    reappearing 300 px away 0.2 s later is somebody else (or needs a person to say so)."""
    a = _walk(1, range(0, 60, 3), 60, 100, 0.0)
    b = _walk(2, range(63, 120, 3), 400, 100, 0.0)
    log = _log([(5, a), (5, b)], 120)
    assert group_people([a, b], log, fps=25).groups == [[1], [2]]


def test_the_same_face_after_a_gap_is_joined_and_a_different_one_is_not() -> None:
    """Issue #13 item 4: split by a miss, the same face is joined; a different person in
    the same place after the same gap is not."""
    a = _walk(1, range(0, 60, 3), 100, 100, 1.0)
    same = _walk(2, range(90, 150, 3), 190, 100, 1.0)
    other = _walk(3, range(90, 150, 3), 190, 100, 1.0)
    assert group_people([a, same], _log([(5, a), (5, same)], 150),
                        fps=25).groups == [[1, 2]]
    assert group_people([a, other], _log([(5, a), (12, other)], 150),
                        fps=25).groups == [[1], [3]]


# -- faint duplicates and people passing in front (issue #13 item 4, the SAR journey) --------

#: tests/web/test_sar.py's window: the requester (0) walks right, person 1 stands, person 2
#: walks left.
SAR_FACES = [Face(linear(70, 110, 150, 120, 2.0), 44, identity=3),
             Face(still(235, 100), 40, identity=11, mirror=True),
             Face(linear(250, 185, 180, 180, 2.0), 38, identity=42)]


class _Doubling:
    """The real detector, plus a second, faint box (score 0.15) on the middle of every face
    it is sure of: a detection of the same face at another scale (half its size, a little
    low: the eyes, nose and mouth), overlapping the first too little (IoU 0.25) to be
    suppressed with it. The tracker gives it a track of its own, over that face."""

    name = "centerface+faint-inner"

    def __init__(self, detector: CenterFace) -> None:
        self._detector = detector
        self.threshold = detector.threshold

    def detect(self, image: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        found = self._detector.detect(image)
        inner = [(cx - w / 4, cy - h / 4 + h / 20, cx + w / 4, cy + h / 4 + h / 20, 0.15)
                 for x0, y0, x1, y1, score in found if score >= 0.3
                 for cx, cy, w, h in [((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)]]
        if not inner:
            return found
        return np.concatenate([found, np.array(inner, np.float32)])


def test_a_faint_second_box_on_each_face_joins_that_persons_track(
        tmp_path: Path, detector: CenterFace) -> None:
    """Issue #13 item 4, "one person, one track" on the SAR journey's footage: a faint
    duplicate tracklet over a face (a second detection of it at another scale, inside it)
    is that person. Before, it was a track of its own (six tracks for three people, three
    of them quality 0.07 in the gallery) and, not ticked, its mask hid the middle of the
    requester's face: kept, the requester was visible in 43 of 50 frames. Now each person
    is one track, the requester is visible in every frame and the others in none."""
    clip = make_clip(tmp_path / "sar.mp4", SAR_FACES, seconds=2.0, background="coffee")
    plan = plan_video(clip.path, detector=_Doubling(detector))  # type: ignore[arg-type]
    assert plan.parameters["stats"]["tracklets"] >= 2 * len(SAR_FACES)  # the doubles were made
    mine = _one_track_each(clip, plan)
    assert len(plan.tracks) == len(SAR_FACES), [(t.id, t.quality) for t in plan.tracks]
    out = tmp_path / "kept.mp4"
    render_plan(clip.path, plan.with_keep({mine[0]}), out)
    seen = _visibility(clip, out)
    assert seen[0][0] >= 0.99 * seen[0][1], seen
    assert seen[1][0] == 0 and seen[2][0] == 0, seen


def _gt_track(tid: int, clip: Clip, face: int, frames: range, score: float = 0.8,
              scale: float = 1.0, jitter: float = 0.0, seed: int = 0) -> Track:
    """A tracker's record of ground-truth ``face`` at ``frames`` (where it is in view): its
    box scaled by ``scale`` about the centre, moved at random by up to ``jitter`` of its
    size (a detector's framing)."""
    rng = np.random.default_rng(seed)
    obs: list[Observation] = []
    for f in frames:
        box = dict(clip.gt[f]).get(face)
        if box is None:
            continue
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        w, h = (box[2] - box[0]) * scale, (box[3] - box[1]) * scale
        dx, dy = rng.uniform(-jitter, jitter, 2) * max(w, h)
        obs.append(Observation(f, (cx + dx - w / 2, cy + dy - h / 2, cx + dx + w / 2,
                                   cy + dy + h / 2), score))
    return Track(tid, obs)


def _decoded_log(clip: Clip, tracks: Sequence[Track]) -> AppearanceLog:
    """The appearance log the pipeline would keep: each track's mask box (face box and a
    quarter each side) described on the decoded frames of the encoded clip."""
    log = AppearanceLog(every=1)
    frames = read_frames(clip.path)
    for f, image in enumerate(frames):
        boxes = []
        for t in tracks:
            o = next((o for o in t.observations if o.frame == f), None)
            if o is not None:
                pad = 0.25 * (o.box[3] - o.box[1])
                boxes.append(MaskBox(t.id, (math.floor(o.box[0] - pad),
                                            math.floor(o.box[1] - pad),
                                            math.ceil(o.box[2] + pad),
                                            math.ceil(o.box[3] + pad)), o.score, False))
        log.add(f, image, boxes)
    return log


def test_a_faint_duplicate_inside_the_requesters_face_joins_their_track(
        tmp_path: Path) -> None:
    """Issue #13 item 4: a faint tracklet (scores 0.15) on the requester's real face for
    60 of their 150 frames, at half the face's size and jittering about it as a detector's
    framing does, is the requester's: it joins their track (before, its boxes were not "one
    box" with the face's, IoU 0.25, and it stayed a track of its own, masked over the
    requester's face). A faint box around the requester and a neighbour, which also holds
    the requester's face, is joined to neither: it may be the neighbour's."""
    faces = [Face(linear(80, 120, 240, 120, 6.0), 48, identity=5),
             Face(still(400, 120), 48, identity=12)]
    clip = make_clip(tmp_path / "walk.mp4", faces, width=W, height=H, seconds=6.0)
    requester = _gt_track(1, clip, 0, range(0, 150, 3))
    neighbour = _gt_track(2, clip, 1, range(0, 150, 3))
    faint = _gt_track(3, clip, 0, range(45, 105, 3), score=0.15, scale=0.5, jitter=0.08,
                      seed=4)
    tracks = [requester, neighbour, faint]
    people = group_people(tracks, _decoded_log(clip, tracks), fps=25)
    assert people.groups == [[1, 3], [2]], people

    # The scan, looking again where the faint track is, finds another part of the face
    # (its lower right quarter, scored 0.31 once): a short box inside the requester's face
    # beside the faint one. It neither makes the requester's track "a box around two
    # people" nor keeps the faint duplicate from joining.
    quarter = []
    for f, score in ((60, 0.31), (63, 0.15)):
        x0, y0, x1, y1 = dict(clip.gt[f])[0]
        quarter.append(Observation(f, ((x0 + x1) / 2, (y0 + y1) / 2, x1, y1), score))
    tracks = [requester, neighbour, faint, Track(4, quarter)]
    people = group_people(tracks, _decoded_log(clip, tracks), fps=25)
    assert {1, 3} <= set(next(g for g in people.groups if 1 in g)), people

    # Beside each other: a faint box around both faces is neither person's.
    pair = [Face(still(200, 120), 48, identity=5), Face(still(256, 120), 48, identity=12)]
    clip = make_clip(tmp_path / "pair.mp4", pair, width=W, height=H, seconds=2.0)
    left, right = _gt_track(1, clip, 0, range(0, 50, 3)), _gt_track(2, clip, 1, range(0, 50, 3))
    around = Track(3, [Observation(f, (170.0, 90.0, 286.0, 150.0), 0.15)
                       for f in range(12, 40, 3)])
    tracks = [left, right, around]
    assert [3] in group_people(tracks, _decoded_log(clip, tracks), fps=25).groups


@pytest.mark.parametrize("size", [48, 28])
def test_a_person_passing_in_front_of_the_requester_is_not_joined_to_them(
        tmp_path: Path, size: int) -> None:
    """Issue #13 item 4, the wrong-merge case: another person (a different real face) walks
    slowly past in front of the requester, who stands still. While their faces overlap the
    detector is unsure of the passer-by, and the tracker gives those faint looks a piece of
    their own: for all of its life it is over the requester's face, one box with it (IoU
    0.5 or more). Before, that made it a duplicate of the requester, and keeping the
    requester showed the passer-by's face for the whole crossing. Now it is joined to
    neither person, and stays masked:

    - 48 px faces: the passer-by's face in front changes how the requester's box looks, so
      the requester's track is cut mid-crossing (a swap, as far as appearance can tell); the
      faint piece is over the requester's track both before and after that cut, so it may
      be either face;
    - 28 px faces (too small to compare by appearance, nothing is cut): the piece slides
      0.4 face sizes across the requester's face, which a duplicate of a face never does.
    """
    faces = [Face(still(240, 130), size, identity=5),
             Face(linear(140, 132, 340, 132, 8.0), size, identity=12)]  # 1 px a frame
    clip = make_clip(tmp_path / "passing.mp4", faces, width=W, height=H, seconds=8.0)
    frames = range(0, clip.frame_count, 3)

    def offset(f: int) -> float:
        a, b = dict(clip.gt[f])[0], dict(clip.gt[f])[1]
        return abs((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2)

    # The passer-by's face over the requester's, one box with it (IoU >= 0.5).
    over = [f for f in frames if offset(f) <= 10 * size / 48]
    assert len(over) >= 4
    requester = _gt_track(1, clip, 0, frames)
    before = _gt_track(2, clip, 1, range(0, over[0], 3))
    passing = _gt_track(3, clip, 1, range(over[0], over[-1] + 1, 3), score=0.15)
    after = _gt_track(4, clip, 1, range(over[-1] + 3, clip.frame_count, 3))
    tracks = [requester, before, passing, after]
    people = group_people(tracks, _decoded_log(clip, tracks), fps=25)
    assert [3] in people.groups, people
    assert bool(people.pieces) == (size >= 32), people.pieces  # cut by appearance, or not
    mine = next(g for g in people.groups if 1 in g)
    assert 2 not in mine and 4 not in mine, people


# -- the plan: lossless joins, backward compatible --------------------------------------------


def _plan(tracks: list[TrackPlan], review: Sequence[ReviewSpan] = ()) -> RedactionPlan:
    return RedactionPlan(source=SourceInfo(name="x.mp4", sha256="0" * 64, width=320, height=240,
                                           frame_count=100, fps="25/1", duration=4.0),
                         tracks=tracks, review=list(review))


def _tp(tid: int, start: int, boxes: Sequence[tuple[int, int, int, int] | None],
        quality: float | None = None, best: int | None = None) -> TrackPlan:
    return TrackPlan(id=tid, start=start, boxes=[None if b is None else (*b, 0.9) for b in boxes],
                     quality=quality, best_frame=best)


def test_joined_tracks_mask_exactly_what_their_pieces_did() -> None:
    """Issue #13 item 4: a joined track loses no box: where two pieces overlap in time the
    second's boxes go to ``extra``, so every frame masks the same boxes as before the join,
    and keeping the person keeps every one of them. The best view is the best piece's."""
    a = _tp(1, 0, [(10, 10, 40, 40)] * 30, quality=0.5, best=5)
    b = _tp(2, 20, [(12, 11, 42, 41)] * 40, quality=0.8, best=50)
    c = _tp(3, 70, [(100, 10, 130, 40)] * 10, quality=0.6, best=75)
    other = _tp(4, 0, [(200, 100, 240, 140)] * 100)
    before = _plan([a, b, c, other])
    merged, mapping = merge_tracks(before.tracks, [[1, 2, 3]])
    after = _plan(merged)
    assert len(after.tracks) == 2 and mapping[1] == mapping[2] == mapping[3]
    person = next(t for t in after.tracks if t.id == mapping[1])
    assert person.best_frame == 50 and person.quality == 0.8
    assert person.extra and all(isinstance(r, BoxRun) for r in person.extra)
    for f in range(100):
        assert sorted(after.masks_at(f)) == sorted(before.masks_at(f)), f
    kept = after.with_keep({person.id})
    for f in range(100):
        assert kept.masks_at(f) == [(200, 100, 240, 140)]


def test_mask_order_does_not_change_the_picture() -> None:
    """Issue #13 item 4: overlapping masks blur twice, so their order changes pixels; a
    joined plan lists a person's boxes together, the tracker in one pass by track. The
    masker sorts them, so rendering the plan gives the one-pass file."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = [(10, 10, 70, 70), (40, 30, 110, 100), (60, 5, 150, 80)]
    masker = FrameMasker(MaskSpec())
    one = masker(image.copy(), boxes)
    other = masker(image.copy(), boxes[::-1])
    assert np.array_equal(one, other)


def test_plans_without_the_new_fields_encode_as_before() -> None:
    """Issue #13 item 4: ``extra`` and ``related_track`` are written only when used, so a
    plan that does not use them has the same canonical bytes, and hash, as before."""
    plan = _plan([_tp(1, 0, [(10, 10, 40, 40)] * 3)],
                 [ReviewSpan(track_id=1, start=0, end=2, start_time=0, end_time=0.08,
                             reason="gap", min_confidence=0.5)])
    data = plan.to_dict()
    assert "extra" not in data["tracks"][0]
    assert "related_track" not in data["review"][0]
    assert RedactionPlan.from_json(plan.to_json()).sha256() == plan.sha256()


def test_joined_plan_round_trips_and_bad_extras_are_refused() -> None:
    """Issue #13 item 4: a plan with ``extra`` and an ``identity`` review span reads back
    identically; extra boxes outside the track's frames, or a review span naming an unknown
    related track, are refused with the field at fault."""
    merged, _ = merge_tracks([_tp(1, 0, [(10, 10, 40, 40)] * 10),
                              _tp(2, 5, [(12, 10, 42, 40)] * 10)], [[1, 2]])
    span = ReviewSpan(track_id=1, start=0, end=2, start_time=0, end_time=0.08,
                      reason="identity", min_confidence=0.9, related_track=1)
    plan = _plan(merged, [span])
    again = RedactionPlan.from_json(plan.to_json())
    assert again == plan and again.tracks[0].extra == plan.tracks[0].extra
    data = plan.to_dict()
    data["tracks"][0]["extra"] = [{"start": 12, "boxes": [[1, 1, 5, 5, 0.5]] * 8}]
    with pytest.raises(PlanError, match="extra boxes 12-19 outside"):
        RedactionPlan.from_json(json.dumps(data))
    data = plan.to_dict()
    data["review"][0]["related_track"] = 9
    with pytest.raises(PlanError, match="unknown related track 9"):
        RedactionPlan.from_json(json.dumps(data))
