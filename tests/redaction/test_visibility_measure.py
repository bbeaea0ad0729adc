"""The redaction benchmark's breach measure (benchmarks/redaction.py, issue #13).

A face counts against the target ("identifiable faces left visible") when the camera showed
it recognisably and the output keeps its detail. These tests pin that the measure cannot be
met by harm: a sharp face left unmasked counts, a blurred one does not, and only a face the
camera itself smeared beyond recognition leaves the denominator, decided from the input
alone.
"""

from __future__ import annotations

import importlib
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import cv2
import pytest

from redaction.media import VideoWriter, iter_frames
from redaction.synthetic import Clip, Face, linear, make_clip, still

ROOT = Path(__file__).resolve().parents[2]
SECONDS, W, H, FPS = 0.4, 640, 360, 25
#: 1500 px/s at a 1/50 s shutter: a 30 px smear across a 31 px face (a fast pan; the ptz
#: clip smears by a median 17 px).
SMEAR_SPEED = 1500.0


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """benchmarks/redaction.py, through the benchmarks' own loader
    (benchmarks/_redaction_bench.py: the script shares the package's name)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        loader = importlib.import_module("_redaction_bench")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    module: ModuleType = loader.load()
    return module


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """Three people at the benchmark's camera settings (1/50 s shutter, noise 4, crf 26):
    0 stands still (sharp), 1 runs past (smeared by the shutter), 2 stands still (sharp)."""
    x0 = 20.0
    faces = [
        Face(still(120, 260), 31, identity=0),
        Face(linear(x0, 90, x0 + SMEAR_SPEED * SECONDS, 90, SECONDS), 31, identity=1),
        Face(still(520, 260), 31, identity=2),
    ]
    return make_clip(tmp_path_factory.mktemp("measure") / "three.mp4", faces, width=W,
                     height=H, fps=FPS, seconds=SECONDS, seed=7, noise=4.0, crf=26,
                     audio=False, shutter=0.02, background="rocket")


def _blur_face(clip: Clip, out: Path, face: int) -> None:
    """Write the decoded input with ``face``'s box (grown by half its size) blurred hard."""
    writer = VideoWriter(out, width=W, height=H, fps=Fraction(FPS))
    for i, frame in enumerate(iter_frames(clip.path)):
        image = frame.image.copy()
        for k, (x0, y0, x1, y1) in clip.gt[i]:
            if k != face:
                continue
            m = 0.5 * (y1 - y0)
            a, b = max(0, int(x0 - m)), max(0, int(y0 - m))
            c, d = min(W, int(x1 + m) + 1), min(H, int(y1 + m) + 1)
            image[b:d, a:c] = cv2.GaussianBlur(image[b:d, a:c], (0, 0), 8)
        writer.write(image, frame.time)
    writer.close()


def test_identifiable_flag_from_input(bench: ModuleType, clip: Clip) -> None:
    """Issue #13 (visible measure): a sharp face in the input is identifiable and a face the
    camera's shutter smeared 20 px is not, on every frame; the flag reads only the input."""
    scores = bench.identifiable_scores(clip)
    assert len(scores) == clip.frame_count
    for i, row in enumerate(scores):
        by_face = {k: v for (k, _), v in zip(clip.gt[i], row, strict=True)}
        assert by_face[0] > bench.IDENTIFIABLE, (i, by_face)
        assert by_face[2] > bench.IDENTIFIABLE, (i, by_face)
        if 1 in by_face:
            assert by_face[1] <= bench.IDENTIFIABLE, (i, by_face)


def test_measure_counts_left_faces_and_not_blurred_ones(bench: ModuleType, clip: Clip,
                                                       tmp_path: Path) -> None:
    """Issue #13 (visible measure): with face 2 blurred and faces 0 and 1 left as they were,
    the old measure counts 0 and 1 visible (1 only because its smear survives); the new one
    counts face 0, the identifiable face left visible, and not face 2, which is hidden: half
    the identifiable faces, so the target's measure fails on the harm it exists to catch."""
    out = tmp_path / "face2_blurred.mp4"
    _blur_face(clip, out, face=2)
    score = bench.measure(clip, out, 1.0)
    n = clip.frame_count
    smeared = sum(1 for g in clip.gt for k, _ in g if k == 1)
    assert score.boxes == 2 * n + smeared
    assert score.visible == n + smeared  # face 0, and face 1's smear
    assert score.identifiable == 2 * n  # faces 0 and 2
    assert score.identifiable_visible == n  # face 0 only
    assert score.identifiable_visible_share == pytest.approx(0.5)


def test_measure_is_met_only_by_hiding_identifiable_faces(bench: ModuleType, clip: Clip,
                                                         tmp_path: Path) -> None:
    """Issue #13 (visible measure): the unmasked input scores 100 % identifiable faces
    visible; blurring both sharp faces brings it to 0 % while leaving the smear untouched."""
    untouched = bench.measure(clip, clip.path, 1.0)
    assert untouched.identifiable_visible_share == 1.0
    out = tmp_path / "sharp_blurred.mp4"
    writer_in = tmp_path / "face0_blurred.mp4"
    _blur_face(clip, writer_in, face=0)
    blurred0 = Clip(writer_in, clip.width, clip.height, clip.fps, clip.times, clip.faces,
                    clip.seed, clip.noise, clip.background, clip.shutter, clip.camera,
                    clip.mono, clip.gt)
    _blur_face(blurred0, out, face=2)
    score = bench.measure(clip, out, 1.0)
    assert score.identifiable == 2 * clip.frame_count
    assert score.identifiable_visible == 0
