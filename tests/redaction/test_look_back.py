"""Looking back: a face first found late is searched for in the frames before it
(redaction/look_back.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import redaction.pipeline
from redaction import CenterFace, redact_video
from redaction.look_back import _off_line
from redaction.synthetic import Camera, Clip, Face, linear
from redaction.track import Tracker, TrackParams
from tests.redaction.test_pipeline import leaks

FPS = 25
SECONDS = 1.6


def _beside_the_wearer() -> list[Face]:
    """A person walking beside a camera that pans right at 4 px a frame, so that they stay
    in one place in the picture, out of sight until frame 5, then behind something on each
    of the stride's looks (frames 6, 12, 18 and 24), and out of sight again after frame
    31: found at one look only (frame 30), as the benchmark's face at the frame's edge was.
    One :class:`Face` for each span in sight, all of the one person."""
    x, y = 1200.0, 520.0
    path = linear(x, y, x + 4 * FPS * SECONDS, y, SECONDS)
    spans = [(5, 6), (7, 12), (13, 18), (19, 24), (25, 32)]
    return [Face(path, 30, start=(a - 0.5) / FPS, end=(b - 0.5) / FPS, identity=37)
            for a, b in spans]


def _pan() -> Camera:
    return Camera((3840, 1080), lambda t: (300 + 4 * FPS * t, 0.0, 1.0))


@pytest.fixture
def beside_clip(clip_factory: Callable[..., Clip]) -> Clip:
    return clip_factory("beside.mp4", _beside_the_wearer(), width=1920, height=1080,
                        seconds=SECONDS, crf=23, shutter=0.01, background="coffee",
                        camera=_pan(), noise=3.0)


def test_a_face_carried_along_by_the_camera_is_found_in_the_frames_before(
        beside_clip: Clip, tmp_path: Path, detector: CenterFace,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #13 (bodycam, noise seeds 0, 2, 3 and 5): a face first found at frame 30 had
    its mask extrapolated back as still in the scene; the face, carried along with the
    camera, stayed in the picture while the mask slid 4 px a frame away from it, and was
    left visible on the frames before. The frames since are still held unmasked, so the
    detector looks back at them around both guesses (still in the scene, still in the
    picture) and the track gets the detections it finds: no frame of the face is left
    visible. Without the look back, the frames before its first detection are."""
    out = tmp_path / "out.mp4"
    plan, _ = redact_video(beside_clip.path, out, detector=detector)
    assert leaks(beside_clip, out) == []
    assert len(plan.tracks) == 1
    assert plan.parameters["stats"]["back_looks"] >= 4  # frames 27, 21, 15 and 9, in the record

    monkeypatch.setattr(redaction.pipeline, "look_back", lambda *args, **kwargs: 0)
    blind = tmp_path / "blind.mp4"
    redact_video(beside_clip.path, blind, detector=detector)
    missed = {frame for frame, _, _ in leaks(beside_clip, blind)}
    assert missed and max(missed) < 30, missed


def test_a_detection_belongs_to_the_track_near_the_line_between_its_guesses() -> None:
    assert _off_line((5.0, 3.0), (0.0, 0.0), (10.0, 0.0)) == pytest.approx(3.0)
    assert _off_line((-4.0, 3.0), (0.0, 0.0), (10.0, 0.0)) == pytest.approx(5.0)
    assert _off_line((13.0, 4.0), (0.0, 0.0), (10.0, 0.0)) == pytest.approx(5.0)
    assert _off_line((2.0, 2.0), (0.0, 0.0), (0.0, 0.0)) == pytest.approx(8.0 ** 0.5)


def test_detections_added_before_a_track_leave_final_frames_as_they_were() -> None:
    """A look back adds detections on frames not yet rendered; the frames before them, up
    to a second back, may be: their masks were final when the renderer took them, so the
    track's mask range must not reach further back than it did (Track.floor), while the
    masks inside it follow the detections found."""
    tracker = Tracker(TrackParams(), fps=25, width=640, height=480, stride=6)
    tracker.update(30, np.array([[300, 200, 330, 236, 0.9]], np.float32))
    (track,) = tracker.born(30)
    before = [f for f in range(40) if tracker._mask(track, f) is not None]
    assert before[0] == 5
    tracker.add_before(track, 9, (200.0, 200.0, 230.0, 236.0), 0.5)
    after = [f for f in range(40) if tracker._mask(track, f) is not None]
    assert after == before
    mask = tracker._mask(track, 9)
    assert mask is not None and mask.box[0] < 200 < mask.box[2]
    with pytest.raises(ValueError):
        tracker.add_before(track, 9, (200.0, 200.0, 230.0, 236.0), 0.5)


def test_a_face_is_looked_back_for_only_where_it_could_have_walked_from() -> None:
    """The guess that the face was carried along by the camera holds for a person walking
    beside a body-worn camera's wearer, not on a PTZ pan faster than anyone runs (the
    benchmark's pan moves its 25 px faces 31 px a frame): there it is not searched."""
    tracker = Tracker(TrackParams(), fps=25, width=1920, height=1080, stride=6)
    tracker.update(30, np.array([[900, 500, 930, 536, 0.9]], np.float32))
    (track,) = tracker.born(30)
    hundred_px_off = (1000.0, 500.0, 1030.0, 536.0)
    assert not tracker.could_reach(track, 27, hundred_px_off)  # 33 px a frame
    assert tracker.could_reach(track, 9, hundred_px_off)  # 5 px a frame
