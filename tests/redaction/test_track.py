"""Tracking: linking, gap filling, padding, widening, and when boxes are final."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redaction.track import Tracker, TrackParams


def det(x: float, y: float, size: float = 24, score: float = 0.9) -> np.ndarray:
    return np.array([[x, y, x + size, y + size, score]], np.float32)


NONE = np.empty((0, 5), np.float32)


def covers(box: tuple[int, int, int, int], x: float, y: float, size: float = 24) -> bool:
    return box[0] <= x and box[1] <= y and box[2] >= x + size and box[3] >= y + size


def test_moving_face_is_one_track_covered_on_every_frame() -> None:
    tr = Tracker(TrackParams(), fps=25, width=640, height=480, stride=3)
    for f in range(0, 60, 3):
        tr.update(f, det(20 + 6 * f, 100 + 2 * f))
    tr.finish()
    assert len(tr.tracks) == 1
    for f in range(58):
        (m,) = tr.boxes_at(f)
        assert covers(m.box, 20 + 6 * f, 100 + 2 * f)


def test_two_crossing_faces_keep_their_ids() -> None:
    tr = Tracker(TrackParams(), fps=25, width=640, height=480, stride=2)
    for f in range(0, 40, 2):
        a, b = det(10 + 5 * f, 100), det(400 - 5 * f, 100)
        tr.update(f, np.concatenate([a, b]))
    assert len(tr.tracks) == 2
    first = tr.tracks[0].observations
    assert all(o2.box[0] > o1.box[0] for o1, o2 in itertools.pairwise(first))


def test_gap_is_bridged_and_flagged_and_start_end_are_padded() -> None:
    p = TrackParams(max_gap_seconds=1.0, pad_seconds=0.4)
    tr = Tracker(p, fps=25, width=640, height=480, stride=2)
    for f in range(20, 80, 2):
        tr.update(f, NONE if 40 <= f < 56 else det(100 + f, 200))
    tr.finish()
    assert len(tr.tracks) == 1
    for f in range(20, 79):
        (m,) = tr.boxes_at(f)
        assert covers(m.box, 100 + f, 200)
        assert m.bridged == (38 < f < 56)
    assert tr.boxes_at(20 - tr.pad_frames) and not tr.boxes_at(19 - tr.pad_frames)
    assert tr.boxes_at(78 + tr.pad_frames) and not tr.boxes_at(79 + tr.pad_frames)


def test_a_gap_longer_than_the_limit_starts_a_new_track() -> None:
    tr = Tracker(TrackParams(max_gap_seconds=0.2), fps=25, width=640, height=480, stride=2)
    for f in range(0, 60, 2):
        tr.update(f, NONE if 10 <= f < 30 else det(100, 100))
    assert len(tr.tracks) == 2


def test_boxes_are_final_after_the_lookahead() -> None:
    """What single-pass rendering masks equals what the finished plan records."""
    rng = np.random.default_rng(5)
    seen = {}
    tr = Tracker(TrackParams(), fps=25, width=640, height=480, stride=2)
    for f in range(0, 200, 2):
        d = det(100 + 2 * f, 100) if rng.random() > 0.3 else NONE
        tr.update(f, d)
        for g in range(200):
            if g <= tr.final_through() and g not in seen:
                seen[g] = tr.boxes_at(g)
    tr.finish()
    for g, boxes in seen.items():
        assert boxes == tr.boxes_at(g)


@settings(max_examples=40, deadline=None)
@given(vx=st.floats(-8, 8), vy=st.floats(-8, 8), size=st.floats(18, 60),
       stride=st.integers(1, 4), miss=st.sets(st.integers(0, 30), max_size=6))
def test_linear_motion_is_always_covered(vx: float, vy: float, size: float, stride: int,
                                         miss: set[int]) -> None:
    """Any constant-velocity face, any look spacing, a few blinks: no frame uncovered."""
    tr = Tracker(TrackParams(), fps=25, width=3000, height=3000, stride=stride)
    pos = [(1000 + vx * f, 1000 + vy * f) for f in range(121)]
    for f in range(0, 121, stride):
        look = f // stride
        tr.update(f, NONE if look in miss and 0 < f < 120 - stride else det(*pos[f], size))
    tr.finish()
    for f in range(121):
        boxes = tr.boxes_at(f)
        assert any(covers(m.box, *pos[f], size) for m in boxes), f


def test_frames_must_rise() -> None:
    tr = Tracker(TrackParams(), fps=25, width=64, height=64)
    tr.update(3, NONE)
    with pytest.raises(ValueError):
        tr.update(3, NONE)


def _schedule_after(path: list[tuple[int, float, float]]) -> int:
    """Feed one face's detections (frame, x, y); return when its next look is due."""
    tr = Tracker(TrackParams(), fps=25, width=2000, height=2000, stride=6)
    for f, x, y in path:
        tr.update(f, det(x, y, 30))
        tr.schedule(f, tr.live_ids(f), 3, 6, 0.1)
    last = path[-1][0]
    due = [f for f in range(last + 1, last + 7) if tr.due(f)]
    return due[0] - last


def test_a_steady_walker_is_looked_at_every_stride() -> None:
    assert _schedule_after([(f, 100 + 5 * f, 300) for f in (0, 6, 12, 18)]) == 6


def test_a_new_face_is_looked_at_soon() -> None:
    assert _schedule_after([(0, 100, 300)]) == 3
    assert _schedule_after([(0, 100, 300), (6, 130, 300)]) == 3


def test_a_swerving_face_is_looked_at_soon() -> None:
    # Right at 5 px a frame, then down at 5 px a frame: acceleration |(-5, 5)| / 6 = 1.18
    # px/frame², so a 30 px face strays 0.1 of its size in sqrt(8 * 3 / 1.18) = 4.5 frames.
    assert _schedule_after([(0, 100, 300), (6, 130, 300), (12, 130, 330)]) == 4
    # Doubling back is sharper still: the shortest interval.
    assert _schedule_after([(0, 100, 300), (6, 130, 300), (12, 100, 300)]) == 3


def test_a_missed_face_is_looked_for_soon() -> None:
    tr = Tracker(TrackParams(), fps=25, width=2000, height=2000, stride=6)
    for f in (0, 6, 12):
        tr.update(f, det(100 + 5 * f, 300, 30))
        tr.schedule(f, tr.live_ids(f), 3, 6, 0.1)
    tr.update(18, NONE)
    tr.schedule(18, tr.live_ids(18), 3, 6, 0.1)
    assert not tr.due(20)
    ((tid, box),) = tr.due(21)
    # The search goes where the face should be by now.
    assert box[0] == pytest.approx(100 + 5 * 21, abs=0.5)


def _mask_area_ratio(speed: float, stride: int) -> float:
    """Largest mask box area over the face box's, for a 30 px face moving in a straight
    line at ``speed`` px a frame, looked at every ``stride`` frames."""
    tr = Tracker(TrackParams(), fps=25, width=4000, height=2000, stride=stride)
    for f in range(0, 100, stride):
        tr.update(f, det(100 + speed * f, 500, 30))
    tr.finish()
    worst = 0.0
    for f in range(10, 90):
        (m,) = tr.boxes_at(f)
        worst = max(worst, (m.box[2] - m.box[0]) * (m.box[3] - m.box[1]) / 900)
    return worst


def test_mask_margin_follows_uncertainty_not_speed() -> None:
    """Issue #13 finding 2: masks grew with motion (half the distance moved between looks on
    every side), so a fast pan or a walker far from the camera blurred bodies around them.
    A face on a straight line is exactly where interpolation puts it however fast it moves:
    its mask is the head around it, barely larger than a still face's."""
    still_face = _mask_area_ratio(0.0, 6)
    assert still_face <= 2.4
    assert _mask_area_ratio(12.0, 6) <= still_face * 1.35


def test_a_swerving_face_gets_the_margin_its_own_path_shows() -> None:
    """Issue #13 finding 2: the margin comes from the track's acceleration, so a face that
    zig-zags between looks is still covered on every frame."""
    tr = Tracker(TrackParams(), fps=25, width=4000, height=2000, stride=6)

    def pos(f: int) -> tuple[float, float]:
        phase = (f / 24) % 1.0
        tri = 4 * phase - 1 if phase < 0.5 else 3 - 4 * phase
        return 100 + 6 * f, 500 + 30 * tri

    for f in range(0, 121, 3):
        tr.update(f, det(*pos(f), 30))
    tr.finish()
    for f in range(121):
        assert any(covers(m.box, *pos(f), 30) for m in tr.boxes_at(f)), f


def test_an_unconfirmed_track_missed_on_a_sharp_picture_is_withdrawn() -> None:
    """Issue #13 (crowd spill 3.06 %): a texture the detector scored 0.1 once started a track
    whose mask was padded a second either side, growing to three times a face; in the
    benchmark's crowd 175 of 372 tracks never scored 0.3 and held 42 % of all masks. A track
    never scored ``confirm_score`` (0.3 here; off by default) that two looks in a row search
    for on a still camera and
    do not find is withdrawn: no mask from then on. A confirmed face missed the same way
    keeps its track (a face that turned away is still there)."""
    tr = Tracker(TrackParams(confirm_score=0.3), fps=25, width=640, height=480, stride=6)
    tr.update(0, np.concatenate([det(100, 100, score=0.12), det(400, 100, score=0.6)]))
    tr.update(6, NONE)
    assert len(tr.tracks) == 2
    tr.update(12, NONE)
    assert [t.observations[0].score for t in tr.tracks] == [pytest.approx(0.6)]
    assert tr.withdrawn == 1
    assert [m.box[0] > 300 for m in tr.boxes_at(13)] == [True]


def test_a_track_missed_while_the_camera_smears_the_picture_is_kept() -> None:
    """Issue #13: on a fast pan the shutter smears a face so that the detector cannot find
    it, so such a miss is no evidence that the face was a texture: an unconfirmed track
    missed only on smeared pictures (camera moving more than a tenth of the face's size a
    frame) stays, and keeps its mask."""
    from redaction.motion import CameraMotion
    from redaction.synthetic import render_frame

    base = render_frame(640, 480, 0.0, [], 1, 3.0, "coffee")
    motion = CameraMotion(640, 480)
    for i in range(13):
        # A pan of 8 px a frame (a third of a 24 px face).
        motion.update(i, np.roll(base, 8 * i, axis=1))
    tr = Tracker(TrackParams(confirm_score=0.3), fps=25, width=640, height=480, stride=6,
                 motion=motion)
    tr.update(0, det(100, 100, score=0.12))
    tr.update(6, NONE)
    tr.update(12, NONE)
    assert len(tr.tracks) == 1 and tr.withdrawn == 0
    assert tr.boxes_at(12)


def test_unsure_detections_far_from_a_track_do_not_chain_into_it() -> None:
    """Issue #13 (crowd spill 1.19 %): a track linked any detection near its *prediction*,
    and a track seen once any detection within half its size per frame, so texture
    detections scored 0.1-0.4 in a crowd chained into tracks hopping up to 25 face sizes
    across the picture, each hop masked as a box swept between the two places. An unsure
    detection now links only where the face could have moved (0.3 of its size a frame, plus
    half its size); one further off starts its own track, so it is masked all the same. A
    sure one still links as before."""
    tr = Tracker(TrackParams(), fps=25, width=1920, height=1080, stride=6)
    tr.update(0, det(400, 400, 20, 0.15))
    # 4 sizes away after 6 frames: within the old once-seen gate (1.5 + 0.5 * 6 sizes).
    tr.update(6, det(480, 400, 20, 0.2))
    assert len(tr.tracks) == 2
    tr.finish()
    # No mask sweeps the 80 px between the two textures.
    for f in range(0, 7):
        for m in tr.boxes_at(f):
            assert not (covers(m.box, 400, 400, 20) and covers(m.box, 480, 400, 20)), (f, m.box)


def flagged(d: np.ndarray, *track_only: bool) -> np.ndarray:
    """``d`` as a full look returns it: each box found only in the crops around tracks, or
    not."""
    return np.column_stack([d, np.array(track_only, np.float32)])


def test_an_unsure_box_found_only_around_a_track_starts_no_track() -> None:
    """Issue #13 (crowd spill 1.23 % on 12 s): a full look searches a crop around each
    track, and textures beside the tracked face, scored 0.1-0.4 there, started 208 of the
    12 s crowd's 298 texture tracks, each adding a crop of its own to the next look. Such a
    box starts no track, as a partial look's never do; the tracked face's own box still
    links, and a box the motion regions or the sweep found too, or a sure one, still starts
    its track."""
    tr = Tracker(TrackParams(), fps=25, width=1920, height=1080, stride=6)
    tr.update(0, flagged(det(400, 400, 24, 0.8), False))
    tr.update(6, flagged(np.concatenate([
        det(402, 400, 24, 0.3),    # the tracked face, unsure at this look
        det(440, 400, 24, 0.2),    # a texture beside it, in its crop only
        det(900, 400, 24, 0.2),    # an unsure face a motion region found
        det(400, 440, 24, 0.6),    # a sure face beside the tracked one, in its crop only
    ]), True, True, False, True))
    tr.update(12, flagged(det(1300, 400, 24, 0.2), False))  # found by the sweep
    tr.update(18, flagged(det(1360, 400, 24, 0.2), True))   # beside the face found at 12
    starts = sorted((t.first, round(t.observations[0].box[0]), round(t.observations[0].box[1]))
                    for t in tr.tracks)
    assert starts == [(0, 400, 400), (6, 400, 440), (6, 900, 400), (12, 1300, 400)]
    assert [round(o.box[0]) for o in tr.tracks[0].observations] == [400, 402]
    # Without the flag (boxes as the tracker took them before), every box starts a track.
    tr = Tracker(TrackParams(), fps=25, width=1920, height=1080, stride=6)
    tr.update(0, det(400, 400, 24, 0.8))
    tr.update(6, np.concatenate([det(402, 400, 24, 0.3), det(440, 400, 24, 0.2)]))
    assert len(tr.tracks) == 2


def test_a_sure_fast_face_and_an_unsure_slow_one_keep_their_tracks() -> None:
    """Issue #13 (crowd spill): the link rule for unsure detections leaves real faces alone:
    a face found sure at 0.4 of its size a frame (a run, a pan with no camera motion
    measured) stays one track, and so does a walker found unsure at 0.1 of its size a
    frame (a face in infrared noise scored 0.1-0.2)."""
    tr = Tracker(TrackParams(), fps=25, width=4000, height=2000, stride=6)
    for f in range(0, 60, 6):
        tr.update(f, np.concatenate([det(100 + 12 * f, 500, 30, 0.8),
                                     det(100 + 2 * f, 1200, 20, 0.12)]))
    tr.finish()
    assert len(tr.tracks) == 2


def test_a_walker_seen_over_a_stride_is_still_extrapolated_along_its_path() -> None:
    """Issue #13 (crowd spill, a guard): most of the crowd's spill is masks extrapolated
    before a track's first look and after its last; any rule that trims them must leave a
    walker found at frames 30, 36 and 42 and lost masked along its path for
    ``pad_seconds`` either side."""
    tr = Tracker(TrackParams(), fps=25, width=1920, height=1080, stride=6)
    for f in (30, 36, 42):
        tr.update(f, det(400 + 3 * f, 500, 24, 0.9))
    tr.finish()
    for f in range(30 - tr.pad_frames, 42 + tr.pad_frames + 1):
        assert any(covers(m.box, 400 + 3 * f, 500) for m in tr.boxes_at(f)), f


def test_a_walker_found_unsure_first_keeps_its_velocity_before_the_track() -> None:
    """Issue #13 (crowd spill, a guard): crowd tracks that begin with a texture scored 0.1
    beside the face are extrapolated along the texture's offset; a rule that distrusts an
    unsure first look must still mask a walker found unsure (0.15) at its first look and
    sure after, moving 3 px a frame throughout, along its path for ``pad_seconds`` before
    that look. (Taking the slower of the first two strides' velocities past an unsure end
    look passed this and cut the crowd's spill 0.91 -> 0.86 %, but left seven more
    identifiable boxes of walkers visible on the body-worn clip: not built.)"""
    tr = Tracker(TrackParams(), fps=25, width=1920, height=1080, stride=6)
    for f in (30, 36, 42, 48, 54):
        tr.update(f, det(400 + 3 * f, 500, 24, 0.15 if f == 30 else 0.8))
    tr.finish()
    for f in range(30 - tr.pad_frames, 31):
        assert any(covers(m.box, 400 + 3 * f, 500) for m in tr.boxes_at(f)), f


def test_an_unsure_box_is_masked_for_the_error_such_boxes_have() -> None:
    """Issue #13: the detector's box for a face it scores 0.1-0.2 is itself off. Measured
    against ground truth on the benchmark's clips, such boxes are 0.76-0.82 of the face's
    height and their centre off by up to a fifth of it (90th percentile); the bodycam's misses
    included a face found and tracked at 0.12-0.18 whose mask left a third of it visible.
    Such a face's mask covers it wherever its boxes put it within that error; a sure face's
    mask stays as tight as before (the counterweight)."""
    face = 40.0
    for dx, dy in itertools.product((-0.2, 0.2), (-0.2, 0.2)):
        tr = Tracker(TrackParams(), fps=25, width=640, height=480, stride=3)
        for f in range(0, 30, 3):
            x, y = 200 + 2 * f, 200
            side = 0.78 * face
            # The unsure box: undersized, and off-centre alternately to either side.
            s = 1 if (f // 3) % 2 else -1
            cx, cy = x + face / 2 + s * dx * face, y + face / 2 + s * dy * face
            tr.update(f, np.array([[cx - side / 2, cy - side / 2, cx + side / 2,
                                    cy + side / 2, 0.15]], np.float32))
        tr.finish()
        for f in range(28):
            (m,) = tr.boxes_at(f)
            assert covers(m.box, 200 + 2 * f, 200, face), (f, dx, dy, m.box)
    # The counterweight: the same face found sure keeps the mask it had.
    assert _mask_area_ratio(0.0, 6) <= 2.4
