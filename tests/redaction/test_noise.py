"""A noisy (infrared night) picture is seen by the detector averaged with the frames before
it and smoothed; a day picture is not.

Issue #13: on the benchmark's night clip at 12 s, 10.7 % of the identifiable faces were left
visible, nearly all of them faces CenterFace never scored through the sensor noise.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from redaction import CenterFace
from redaction.boxes import iou
from redaction.noise import aligned_mean, noise_sigma
from redaction.regions import Region
from redaction.scan import FrameScanner, ScanParams
from redaction.motion import CameraMotion
from redaction.synthetic import Camera, Face, linear, render_frame, still, walk_shake

W, H = 960, 540


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
@pytest.mark.parametrize("picture", ["flat", "coffee", "rocket"])
def test_noise_is_measured_through_the_picture(picture: str, sigma: float) -> None:
    """White noise of a known deviation is read back within 15 %, on a flat grey picture
    and on the benchmark's textured backgrounds; the texture alone reads as a little noise
    (coffee's fine grain 1.7), far under the bar that smooths the picture."""
    base = (np.full((H, W, 3), 128, np.uint8) if picture == "flat"
            else render_frame(W, H, 0.0, [], seed=0, noise=0.0, background=picture))
    texture = noise_sigma(base)
    assert texture < 2.0, texture
    noise = np.random.default_rng(int(sigma)).normal(0, sigma, (H, W, 1))
    noisy = np.clip(base.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    assert noise_sigma(noisy) == pytest.approx(math.hypot(texture, sigma), rel=0.15)


def _crowd_of_strangers(rng: np.random.Generator) -> list[Face]:
    """18 different people, 22-36 px tall, standing in a 3x6 grid."""
    return [Face(still(80 + c * 160 + rng.uniform(-20, 20), 110 + r * 160 + rng.uniform(-20, 20)),
                 float(rng.uniform(22, 36)), identity=int(rng.integers(0, 100)),
                 gain=float(rng.uniform(0.85, 1.1)))
            for r in range(3) for c in range(6)]


def _first_look(detector: CenterFace, params: ScanParams, *, mono: bool, noise: float,
                ) -> tuple[int, int, int, FrameScanner]:
    """(faces found, faces, boxes over no face) at the first look of six scenes."""
    rng = np.random.default_rng(0)
    found = total = stray = 0
    for k in range(6):
        faces = _crowd_of_strangers(rng)
        img = render_frame(W, H, 0.0, faces, seed=k, noise=noise, background="coffee", mono=mono)
        scanner = FrameScanner(detector, params, width=W, height=H, fps=25, workers=1)
        boxes = scanner.scan(0, img, [])
        scanner.close()
        assert boxes is not None
        truth = [b for f in faces if (b := f.box(0.0)) is not None]
        total += len(truth)
        found += sum(any(iou(tuple(b[:4]), t) >= 0.3 for b in boxes) for t in truth)
        stray += sum(all(iou(tuple(b[:4]), t) < 0.1 for t in truth) for b in boxes)
    return found, total, stray, scanner


def test_night_faces_are_found_through_the_noise(detector: CenterFace) -> None:
    """On an infrared picture (grey, flat, noise 10) the first look finds three quarters of
    108 faces of different people; searched as a day picture is (once, as it is), two thirds.
    """
    found, total, stray, scanner = _first_look(detector, ScanParams(), mono=True, noise=10.0)
    assert scanner.stats.smoothed_looks == 1 and scanner.stats.noise > 8
    raw_found, _, raw_stray, _ = _first_look(detector, ScanParams(smooth_above=1e9),
                                             mono=True, noise=10.0)
    assert found >= 0.75 * total, (found, total, raw_found)
    assert raw_found <= found - 12, (raw_found, found)  # the smoothed view is what finds them
    # Counterweight: the second view finds a few textures more (measured: 7 boxes over no
    # face against 4), not a picture of them; the margin is for another CPU's last digits.
    assert stray <= raw_stray + 8, (stray, raw_stray)


def test_a_day_picture_is_not_smoothed(detector: CenterFace) -> None:
    """The benchmark's day noise (4 before compression) stays under the bar: smoothing
    lowers the small faces of a crowd, so it is kept for noisy pictures."""
    _, _, _, scanner = _first_look(detector, ScanParams(), mono=False, noise=4.0)
    assert scanner.stats.smoothed_looks == 0 and scanner.stats.noise < 5.0


class _Recorder:
    """A detector that returns fixed boxes (detector px) and keeps what it was shown."""

    def __init__(self, boxes: list[list[float]]) -> None:
        self.boxes = np.array(boxes, np.float32)
        self.seen: list[np.ndarray] = []

    def detect(self, rgb: np.ndarray, threads: int | None = None) -> np.ndarray:
        self.seen.append(rgb)
        return self.boxes.copy()


@pytest.mark.parametrize("noise", [4.0, 10.0])
def test_a_noisy_picture_is_searched_as_it_is_and_smoothed(noise: float) -> None:
    """On a noisy picture each region the detector sees at full size or enlarged is searched
    twice, as it is and smoothed: smoothing finds faces the noise hides and loses small
    faces as fine as itself, so the detector sees both. A shrunk region (the coarse pass)
    is searched once: shrinking averages the noise already. Smoothed, the night clip's
    coffee-shop wall scored 0.11-0.15 as a face 300 px tall (two tracks, 98 % of that
    clip's spill), so from a smoothed view an unsure box over four times ``detect_face`` is
    dropped; a sure one of that size, and an unsure one of a face's size, are kept. On a
    day picture each region is searched once, as it is, and nothing is dropped."""
    detector = _Recorder([[10, 10, 350, 430, 0.15],   # an unsure giant: 420 detector px
                          [10, 10, 350, 430, 0.6],    # a sure giant
                          [400, 300, 430, 340, 0.15]])  # an unsure face, 40 px
    img = render_frame(1920, 1080, 0.0, [], seed=1, noise=noise, background="coffee",
                       mono=True)
    scanner = FrameScanner(detector, ScanParams(), width=1920, height=1080, fps=25,  # type: ignore[arg-type]
                           workers=1)
    try:
        scanner._judge_noise(0, img)
        enlarged = Region(0, 0, 600, 500, 1.4, "motion")
        shrunk = Region(0, 0, 1920, 1080, 1 / 3, "coarse")
        from_enlarged = scanner._detect(img, [enlarged])
        calls = len(detector.seen)
        from_shrunk = scanner._detect(img, [shrunk])
        shown = [noise_sigma(rgb) for rgb in detector.seen]
    finally:
        scanner.close()
    as_it_is = noise_sigma(cv2.resize(img[:500, :600], (840, 700)))
    if noise > 5:
        assert [len(b) for b in from_enlarged] == [3, 2]  # as it is, then smoothed
        assert calls == 2 and shown[0] == pytest.approx(as_it_is, rel=0.05)
        assert shown[1] < 0.6 * as_it_is
    else:
        assert [len(b) for b in from_enlarged] == [3]
        assert calls == 1 and shown[0] == pytest.approx(as_it_is, rel=0.05)
    assert [len(b) for b in from_shrunk] == [3] and len(shown) == calls + 1


def _walking_face(t: float, seed: int, noise: float) -> np.ndarray:
    """A 40 px face walking right at 5 px a frame over the coffee shop (grey), at ``t``."""
    face = Face(linear(60, 80, 60 + 125 * 2, 80, 2.0), 40, identity=7)
    return render_frame(200, 160, t, [face], seed=seed, noise=noise, background="coffee",
                        mono=True)


def test_frames_are_averaged_where_the_face_is_now() -> None:
    """Averaged with the two frames before, each moved onto it by optical flow, a noisy
    picture of a walker comes out nearer the clean one than the picture alone (the noise
    divided by about the square root of three; measured 4.6 against 8.0 grey levels), and
    nearer than the same frames averaged as they are, which smear the walker by the 10 px
    it moved (8.9); without noise, the smear alone: 1.8 against 6.6."""
    clean = _walking_face(0.08, 0, 0.0).astype(np.float32)
    face = (slice(55, 105), slice(45, 100))  # the face at t = 0.08, with its edges

    def errors(noise: float) -> tuple[float, float, float]:
        frames = [_walking_face(k * 0.04, 10 + k, noise) for k in range(3)]  # oldest first
        out = []
        for picture in (aligned_mean(frames[2], frames[:2]), frames[2],
                        np.mean(np.stack(frames), axis=0)):
            out.append(float(np.abs(picture.astype(np.float32) - clean)[face].mean()))
        return out[0], out[1], out[2]

    aligned, alone, as_they_are = errors(10.0)
    assert aligned < 0.75 * alone, (aligned, alone)
    assert aligned < 0.7 * as_they_are, (aligned, as_they_are)
    aligned, _, as_they_are = errors(0.0)
    assert aligned < 0.4 * as_they_are, (aligned, as_they_are)
    # Nothing before it, or a picture too small for the flow's patches: left as it is.
    picture = _walking_face(0.0, 1, 10.0)
    assert aligned_mean(picture, []) is picture
    small = picture[:10, :10]
    assert aligned_mean(small, [small.copy()]) is small


def _walkers(rng: np.random.Generator) -> list[Face]:
    """18 different people, 22-36 px tall, walking left or right at 2-4 px a frame."""
    out = []
    for r in range(3):
        for c in range(6):
            x, y = 80 + c * 160 + rng.uniform(-20, 20), 110 + r * 160 + rng.uniform(-20, 20)
            v = float(rng.uniform(50, 100)) * (1 if rng.random() < 0.5 else -1)
            out.append(Face(linear(x, y, x + v, y, 1.0), float(rng.uniform(22, 36)),
                            identity=int(rng.integers(0, 100)),
                            gain=float(rng.uniform(0.85, 1.1))))
    return out


def _second_look(detector: CenterFace, *, keep_frames: bool,
                 masked_after: bool = False) -> tuple[int, int, int]:
    """(faces found, faces, boxes over no face) at the second full look (frame 6) of six
    scenes of walkers at night, with the scanner shown every frame before or not; with
    ``masked_after``, each frame is blacked out once shown, as the render thread masks
    frames in place."""
    rng = np.random.default_rng(1)
    found = total = stray = 0
    for k in range(6):
        faces = _walkers(rng)
        scanner = FrameScanner(detector, ScanParams(), width=W, height=H, fps=25, workers=1)
        try:
            for i in range(7):
                img = render_frame(W, H, i / 25, faces, seed=10 * k + i, noise=10.0,
                                   background="coffee", mono=True)
                boxes = scanner.scan(i, img, [])
                if keep_frames:
                    scanner.see(i, img)
                if masked_after:
                    img[:] = 0
        finally:
            scanner.close()
        assert boxes is not None and scanner.stats.smoothed_looks == 2
        truth = [b for f in faces if (b := f.box(6 / 25)) is not None]
        total += len(truth)
        found += sum(any(iou(tuple(b[:4]), t) >= 0.3 for b in boxes) for t in truth)
        stray += sum(all(iou(tuple(b[:4]), t) < 0.1 for t in truth) for b in boxes)
    return found, total, stray


def test_walkers_at_night_are_found_in_frames_averaged_along_their_motion(
        detector: CenterFace) -> None:
    """At a look after the first (motion regions: where the walkers are), the smoothed view
    averaged with the two frames before finds more of 108 walking faces of different people
    in noise 10 than the frame alone smoothed; the textures it scores are not many more."""
    found, total, stray = _second_look(detector, keep_frames=True)
    alone, _, alone_stray = _second_look(detector, keep_frames=False)
    # Measured: 97 of 108 against 88.
    assert found >= alone + 6 and found >= 0.85 * total, (found, alone, total)
    assert stray <= alone_stray + 4, (stray, alone_stray)


def test_frames_kept_for_averaging_are_the_pictures_as_decoded(detector: CenterFace) -> None:
    """The render thread masks each frame in place once it is planned; the scanner keeps
    copies of the frames it averages, so what it finds does not depend on what happens to
    a frame after it was shown."""
    assert _second_look(detector, keep_frames=True, masked_after=True) == \
        _second_look(detector, keep_frames=True)


def test_a_shaking_camera_s_frames_are_each_aligned_by_their_own_flow() -> None:
    """On a body-worn camera's walk (bob, sway and jitter) the picture's path bends from one
    frame to the next, so the middle frame is not half way: moved by half the flow to the
    oldest, a noisy face came out on average 7.0 grey levels from the clean one (the frame
    alone 8.0; the worst 1.4 times the frame alone). With a flow to each earlier frame:
    4.3, and never worse than the frame alone."""
    cam = walk_shake(640, 360, 2.0, seed=3)
    face = Face(linear(220, 180, 470, 180, 2.0), 40, identity=7)
    each, half, alone = [], [], []
    for k in range(0, 40, 3):
        t = (k + 2) / 25

        def frame(when: float, seed: int, noise: float) -> np.ndarray:
            return render_frame(640, 360, when, [face], seed=seed, noise=noise,
                                background="coffee", mono=True, camera=cam)

        clean = frame(t, 0, 0.0).astype(np.float32)
        fb = face.box(t)
        assert fb is not None
        b = cam.to_frame(fb, t)
        at = (slice(max(0, int(b[1]) - 5), int(b[3]) + 5), slice(max(0, int(b[0]) - 5), int(b[2]) + 5))
        frames = [frame(t - (2 - j) / 25, 10 + j + k, 10.0) for j in range(3)]

        def error(picture: np.ndarray) -> float:
            return float(np.abs(picture.astype(np.float32) - clean)[at].mean())

        each.append(error(aligned_mean(frames[2], frames[:2], straight=False)))
        half.append(error(aligned_mean(frames[2], frames[:2])))
        alone.append(error(frames[2]))
    assert np.mean(each) < 0.7 * np.mean(alone), (np.mean(each), np.mean(alone))
    assert max(e / a for e, a in zip(each, alone, strict=True)) < 0.9
    assert np.mean(half) > np.mean(each) + 1.0, (np.mean(half), np.mean(each))


@pytest.mark.parametrize(("camera", "straight"), [
    (None, True),                                              # a still camera
    (Camera((1280, 360), lambda t: (250 * t, 0.0, 1.0)), True),  # a steady pan, 10 px/frame
    (walk_shake(640, 360, 2.0, seed=3), False),                # a body-worn walk
])
def test_the_scanner_aligns_by_one_flow_only_where_the_camera_moves_steadily(
        camera: Camera | None, straight: bool) -> None:
    """The scanner tells the two apart by the camera's measured motion into the looked-at
    frame and into the one before (:class:`redaction.motion.CameraMotion`): within a pixel
    a frame of each other, one flow; otherwise one each. Most frames of the walk shake."""
    motion = CameraMotion(640, 360)
    scanner = FrameScanner(_Recorder([]), ScanParams(), width=640, height=360,  # type: ignore[arg-type]
                           fps=25, workers=1, motion=motion)
    verdicts = []
    try:
        for i in range(25):
            motion.update(i, render_frame(640, 360, i / 25, [], seed=i, noise=3.0,
                                          background="coffee", camera=camera))
            if i >= 2:
                verdicts.append(scanner._straight(i))
    finally:
        scanner.close()
    share = sum(verdicts) / len(verdicts)
    assert (share == 1.0) if straight else (share < 0.5), verdicts
