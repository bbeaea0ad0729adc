"""Synthetic footage with known faces: real face images from scikit-image, moved on paths.

Used by the demo, the tests and the benchmarks; scikit-image comes with deface.

A clip is a background photograph with sensor noise, and heads composited with a soft
elliptical edge at known positions and sizes on every frame. The ground-truth face box of
each head on each frame is exact, so a test can check that every face is masked on every
frame of a redacted copy. Frames are regenerated on demand from the seed, so no media file
is stored in the repository.

Faces come from two real sources, both shipped inside the scikit-image wheel (nothing is
downloaded):

- ``skimage.data.astronaut()``: Eileen Collins (NASA, public domain), colour; the default
  (``Face.identity=None``), optionally mirrored and re-lit;
- ``skimage.data.lfw_subset()``: 100 different people from *Labeled Faces in the Wild*
  (Huang et al., University of Massachusetts Amherst; 25x25 grey crops, redistributed in
  scikit-image under its BSD-3-Clause licence; LFW itself is published for research without
  a separate licence). ``Face.identity=k`` (0-99) picks person ``k``; each is tinted with its
  own skin tone so that a colour descriptor can tell people apart as it would on real
  footage.

A clip may also be filmed by a moving camera (:class:`Camera`): faces then move on paths in a
*world* (the background scaled to ``world`` size), and each frame shows the part of the world
the camera sees at that time: a pan, a zoom, a body-worn camera's walk and shake. Ground
truth is in frame pixels. ``mono=True`` renders a night-time infrared picture (grey, low
contrast, heavy sensor noise).
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


#: LFW crops are enlarged once to this size (bicubic) so that heads are drawn by area
#: averaging, as a camera would, rather than from 25 px.
_LFW_SIZE = 100
#: CenterFace's own face box on the enlarged crops (median over the 100 people).
_LFW_FACE = (8, 1, 81, 95)
#: Skin tones (BGR multipliers of the grey crop), from pale to dark, cycled over identities.
_TONES = ((0.80, 0.88, 1.05), (0.70, 0.80, 1.00), (0.62, 0.74, 0.95), (0.50, 0.62, 0.82),
          (0.42, 0.52, 0.70), (0.32, 0.40, 0.55), (0.75, 0.85, 0.98), (0.58, 0.66, 0.90))
IDENTITIES = 100


@lru_cache(maxsize=IDENTITIES)
def _lfw_rgba(identity: int) -> tuple[Image, Image]:
    from skimage import data

    if not 0 <= identity < IDENTITIES:
        raise ValueError(f"identity must be 0-{IDENTITIES - 1}")
    grey = (data.lfw_subset()[identity] * 255).astype(np.float32)  # type: ignore[no-untyped-call]
    grey = cv2.resize(grey, (_LFW_SIZE, _LFW_SIZE), interpolation=cv2.INTER_CUBIC)
    tone = np.array(_TONES[identity % len(_TONES)], np.float32)
    head = np.clip(grey[..., None] * tone, 0, 255).astype(np.uint8)
    alpha = np.zeros((_LFW_SIZE, _LFW_SIZE), np.float32)
    c = _LFW_SIZE // 2
    cv2.ellipse(alpha, (c, c), (int(0.47 * _LFW_SIZE), int(0.5 * _LFW_SIZE)), 0, 0, 360, 1.0, -1)
    alpha = cast("npt.NDArray[np.float32]", cv2.GaussianBlur(alpha, (0, 0), 3))
    return head, (alpha * 255).astype(np.uint8)


def _source(identity: int | None) -> tuple[Image, Image, tuple[int, int, int, int],
                                             tuple[int, int, int, int]]:
    """Head image, alpha, face box and head box (in the image it was cut from)."""
    if identity is None:
        head, alpha = _head_rgba()
        return head, alpha, _FACE, _HEAD
    head, alpha = _lfw_rgba(identity)
    return head, alpha, _LFW_FACE, (0, 0, _LFW_SIZE, _LFW_SIZE)


def _aspect(identity: int | None) -> float:
    face = _FACE if identity is None else _LFW_FACE
    return (face[2] - face[0]) / (face[3] - face[1])


@lru_cache(maxsize=1)
def _texture() -> npt.NDArray[np.float32]:
    """Fine detail (high-pass gravel) laid over enlarged backgrounds: a photograph enlarged
    threefold is smoother than any real scene, and blurring smooth areas changes nothing, so
    a test of how much of the picture a redaction changes would be too kind."""
    from skimage import data

    g = data.gravel().astype(np.float32)  # type: ignore[no-untyped-call]
    return cast("npt.NDArray[np.float32]", g - cv2.GaussianBlur(g, (0, 0), 3))


@lru_cache(maxsize=8)
def _background(width: int, height: int, name: str) -> Image:
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    bgr = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR)
    enlarge = max(width / bgr.shape[1], height / bgr.shape[0])
    out = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA if enlarge <= 1
                     else cv2.INTER_CUBIC)
    if enlarge > 1.5:
        tex = _texture()
        reps = (-(-height // tex.shape[0]), -(-width // tex.shape[1]))
        detail = np.tile(tex, reps)[:height, :width, None] * 0.3
        out = np.clip(out.astype(np.float32) + detail, 0, 255).astype(np.uint8)
    return cast(Image, out)


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
    #: ``None``: the astronaut; ``0``-``99``: that person of ``skimage.data.lfw_subset()``.
    identity: int | None = None

    def box(self, t: float) -> Box | None:
        """The face box at ``t`` (world pixels, which are frame pixels for a still camera)."""
        if not self.start <= t < self.end:
            return None
        cx, cy = self.path(t)
        aspect = _aspect(self.identity)
        fw = aspect * self.size
        return cx - fw / 2, cy - self.size / 2, cx + fw / 2, cy + self.size / 2


View = Callable[[float], tuple[float, float, float]]


@dataclass(frozen=True)
class Camera:
    """A moving camera over a ``world`` (w, h px): ``view(t)`` is ``(x, y, zoom)``, the world
    point at the frame's top-left corner and frame pixels per world pixel, so that a world
    point ``p`` is seen at ``zoom * (p - (x, y))``. No rotation: boxes stay upright."""

    world: tuple[int, int]
    view: View

    def to_frame(self, box: Box, t: float) -> Box:
        """A world box as seen in the frame at ``t``."""
        x, y, z = self.view(t)
        return (box[0] - x) * z, (box[1] - y) * z, (box[2] - x) * z, (box[3] - y) * z

    def point(self, p: tuple[float, float], t: float) -> tuple[float, float]:
        """A world point as seen in the frame at ``t``."""
        x, y, z = self.view(t)
        return (p[0] - x) * z, (p[1] - y) * z


def pan_zoom(width: int, height: int, seconds: float, *, world: float = 1.6,
             zoom: float = 1.4) -> Camera:
    """A PTZ camera: pans across a world ``world`` times the frame's size and back,
    zooming in to ``zoom`` halfway and out again (smooth, as an operator's joystick)."""
    ww, wh = round(width * world), round(height * world)

    def view(t: float) -> tuple[float, float, float]:
        u = 0.5 - 0.5 * math.cos(2 * math.pi * min(1.0, max(0.0, t / seconds)))  # 0 -> 1 -> 0
        z = 1.0 + (zoom - 1.0) * u
        vw, vh = width / z, height / z  # world px in view
        cx = vw / 2 + (ww - vw) * (0.15 + 0.7 * min(1.0, 2 * t / seconds) if t < seconds / 2
                                   else 0.85 - 0.5 * (2 * t / seconds - 1))
        cy = wh / 2 + 0.15 * (wh - vh) * math.sin(math.pi * t / seconds)
        return cx - vw / 2, cy - vh / 2, z

    return Camera((ww, wh), view)


def walk_shake(width: int, height: int, seconds: float, *, seed: int = 0,
               shake: float = 12.0) -> Camera:
    """A body-worn camera on someone walking: steady forward progress (a slow zoom into the
    scene), the bob and sway of each step (about 2 Hz up and down, 1 Hz side to side), and
    hand-free jitter of a few pixels (a sum of incommensurate sines, so it is reproducible)."""
    ww, wh = round(width * 1.3), round(height * 1.3)
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * math.pi, 6)

    def view(t: float) -> tuple[float, float, float]:
        z = 1.0 + 0.25 * min(1.0, max(0.0, t / seconds))
        vw, vh = width / z, height / z
        bob = shake * math.sin(2 * math.pi * 1.9 * t + phases[0])
        sway = 0.8 * shake * math.sin(2 * math.pi * 0.95 * t + phases[1])
        jx = 0.3 * shake * (math.sin(2 * math.pi * 7.3 * t + phases[2])
                            + math.sin(2 * math.pi * 11.9 * t + phases[3]))
        jy = 0.3 * shake * (math.sin(2 * math.pi * 6.1 * t + phases[4])
                            + math.sin(2 * math.pi * 13.7 * t + phases[5]))
        cx = ww / 2 + sway + jx + 0.1 * width * math.sin(math.pi * t / seconds)
        cy = wh / 2 + bob + jy
        return cx - vw / 2, cy - vh / 2, z

    return Camera((ww, wh), view)


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
    camera: Camera | None = None
    mono: bool = False
    gt: list[list[tuple[int, Box]]] = field(default_factory=list)

    @property
    def frame_count(self) -> int:
        return len(self.times)

    def frame(self, i: int) -> Image:
        """The exact picture of frame ``i`` before encoding (BGR)."""
        return render_frame(self.width, self.height, self.times[i], self.faces, self.seed + i,
                            self.noise, self.background, self.shutter, camera=self.camera,
                            mono=self.mono)

    def face_box(self, face: Face, t: float) -> Box | None:
        """Where ``face`` is in the frame at ``t`` (``None``: not there or out of view)."""
        box = face.box(t)
        if box is None:
            return None
        if self.camera is not None:
            box = self.camera.to_frame(box, t)
        return _visible_box(box, self.width, self.height)


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


def _visible_box(box: Box, width: int, height: int) -> Box | None:
    """``box`` if any of it is inside the frame, else ``None``."""
    if box[2] <= 0 or box[3] <= 0 or box[0] >= width or box[1] >= height:
        return None
    return box


def _draw_head(img: Image, face: Face, box: Box, motion: tuple[float, float]) -> None:
    """Composite ``face``'s head so that its face box lands on ``box`` (frame px), blurred
    along ``motion`` (px moved in the frame while the shutter was open)."""
    height, width = img.shape[:2]
    head, alpha, fbox, hbox = _source(face.identity)
    s = (box[3] - box[1]) / (fbox[3] - fbox[1])
    hw, hh = head.shape[1] * s, head.shape[0] * s
    # Head origin so that the face box lands on `box`.
    ox = box[0] - (fbox[0] - hbox[0]) * s
    oy = box[1] - (fbox[1] - hbox[1]) * s
    src = head[:, ::-1] if face.mirror else head
    a = alpha[:, ::-1] if face.mirror else alpha
    if face.mirror:
        ox = box[0] - (hbox[2] - fbox[2]) * s
    # Sub-pixel placement: warp with an affine transform into the frame.
    m = np.array([[s, 0, ox], [0, s, oy]], np.float32)
    x0, y0 = max(0, int(ox) - 1), max(0, int(oy) - 1)
    x1, y1 = min(width, int(ox + hw) + 2), min(height, int(oy + hh) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    m[0, 2] -= x0
    m[1, 2] -= y0
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(src, m, size, flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    wa = cv2.warpAffine(a, m, size, flags=cv2.INTER_LINEAR).astype(np.float32)
    kernel = _motion_kernel(*motion)
    if kernel is not None:
        warped = cv2.filter2D(warped, -1, kernel)
        wa = cast("npt.NDArray[np.float32]", cv2.filter2D(wa, -1, kernel))
    wa = wa[..., None]
    wa /= 255.0
    roi = img[y0:y1, x0:x1].astype(np.float32)
    mixed = roi * (1 - wa) + warped.astype(np.float32) * face.gain * wa
    img[y0:y1, x0:x1] = np.clip(mixed, 0, 255).astype(np.uint8)


def render_frame(width: int, height: int, t: float, faces: Sequence[Face], seed: int,
                 noise: float, background: str, shutter: float = 0.0, *,
                 camera: Camera | None = None, mono: bool = False) -> Image:
    """The picture at ``t`` (BGR): background, heads, motion blur, then sensor noise.

    With a ``camera``, the world (background and face paths) is seen through its view at
    ``t``; its own motion during the ``shutter`` blurs the whole picture.
    """
    if camera is None:
        img = _background(width, height, background).copy()
    else:
        x, y, z = camera.view(t)
        world = _background(camera.world[0], camera.world[1], background)
        m = np.array([[z, 0, -x * z], [0, z, -y * z]], np.float32)
        img = cast(Image, cv2.warpAffine(world, m, (width, height), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT))
        if shutter > 0:
            c = (camera.world[0] / 2, camera.world[1] / 2)
            (ax, ay), (bx, by) = camera.point(c, t - shutter / 2), camera.point(c, t + shutter / 2)
            kernel = _motion_kernel(bx - ax, by - ay)
            if kernel is not None:
                img = cast(Image, cv2.filter2D(img, -1, kernel))
    for face in faces:
        box = face.box(t)
        if box is None:
            continue
        if camera is not None:
            box = camera.to_frame(box, t)
        if _visible_box(box, width, height) is None:
            continue
        motion = (0.0, 0.0)
        if shutter > 0:
            (ax, ay), (bx, by) = face.path(t - shutter / 2), face.path(t + shutter / 2)
            if camera is not None:
                (ax, ay), (bx, by) = (camera.point((ax, ay), t - shutter / 2),
                                      camera.point((bx, by), t + shutter / 2))
            motion = (bx - ax, by - ay)
        _draw_head(img, face, box, motion)
    if mono:
        # Infrared night picture: grey, flat (the IR lamp lights everything alike).
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        grey = 40 + 0.6 * grey
        img = cast(Image, cv2.cvtColor(np.clip(grey, 0, 255).astype(np.uint8),
                                       cv2.COLOR_GRAY2BGR))
    if noise > 0:
        rng = np.random.default_rng(seed)
        n = rng.normal(0, noise, (height, width, 1)).astype(np.float32)
        img = np.clip(img.astype(np.float32) + n, 0, 255).astype(np.uint8)
    return img


def make_clip(path: str | Path, faces: Sequence[Face], *, width: int = 320, height: int = 240,
              fps: int = 25, seconds: float = 2.0, codec: str = "libx264",
              audio: bool = True, tone_hz: float = 440.0, seed: int = 1, noise: float = 2.0,
              background: str = "coffee", crf: int = 16, vfr: bool = False,
              rotation: int = 0, audio_rate: int = 48_000, pix_fmt: str | None = None,
              shutter: float = 0.0, camera: Camera | None = None, mono: bool = False,
              gop: int | None = None) -> Clip:
    """Write a clip to ``path`` (container from the suffix) and return its ground truth.

    ``vfr``: frame intervals alternate between 0.6x and 1.4x the nominal one.
    ``shutter``: exposure time (s); moving faces are blurred along their path as a camera
    would (0: sharp).
    ``pix_fmt``: e.g. ``yuv444p`` for odd sizes (4:2:0 needs even ones).
    ``camera``: a moving camera (faces' paths are then in its world); ``mono``: an infrared
    night picture. ``gop``: keyframe interval (recorders use about 2 s).
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
    clip = Clip(p, width, height, Fraction(fps), times, faces, seed, noise, background, shutter,
                camera, mono)
    for t in times:
        clip.gt.append([(k, b) for k, f in enumerate(faces)
                        if (b := clip.face_box(f, t)) is not None])
    tb = Fraction(1, 90_000)
    with av.open(str(p), mode="w") as out:
        vs = cast("av.video.stream.VideoStream", out.add_stream(codec, rate=fps))
        coded_w, coded_h = (height, width) if rotation in (90, 270) else (width, height)
        vs.width, vs.height = coded_w, coded_h
        vs.pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")
        if codec in ("libx264", "libx265"):
            vs.options = {"crf": str(crf), "preset": "ultrafast"}
            if gop is not None:
                vs.options = {**vs.options, "g": str(gop)}
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


#: Mean grey difference (5x5 window, half resolution) above which a pixel counts as visibly
#: changed by a redaction: well above what re-encoding leaves (the benchmark's floor row).
CHANGED_LEVEL = 10.0


def changed_map(source: Image, output: Image) -> npt.NDArray[np.uint8]:
    """Where ``output`` visibly differs from ``source`` (BGR, same size): a 0/1 map at half
    resolution (mean absolute grey difference over 5x5 above :data:`CHANGED_LEVEL`)."""
    half = (source.shape[1] // 2, source.shape[0] // 2)
    ga = cv2.cvtColor(cv2.resize(source, half, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    gb = cv2.cvtColor(cv2.resize(output, half, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    diff = cv2.blur(cv2.absdiff(ga, gb).astype(np.float32), (5, 5))
    return cast("npt.NDArray[np.uint8]", (diff > CHANGED_LEVEL).astype(np.uint8))


def away_map(shape: tuple[int, int], boxes: Sequence[Box]) -> npt.NDArray[np.uint8]:
    """1 where a half-resolution frame of ``shape`` (h, w) is *away from every face*: outside
    each face box (full-resolution px) grown by its own width and height on every side."""
    away = np.ones(shape, np.uint8)
    for box in boxes:
        x0, y0, x1, y1 = (v / 2 for v in box)
        bw, bh = x1 - x0, y1 - y0
        away[max(0, math.floor(y0 - bh)):max(0, math.ceil(y1 + bh)),
             max(0, math.floor(x0 - bw)):max(0, math.ceil(x1 + bw))] = 0
    return away


def spill(source: Image, output: Image, boxes: Sequence[Box]) -> tuple[int, int]:
    """Spill of one frame: (visibly changed pixels away from every face, pixels away from
    every face), at half resolution. Their ratio is the share of the picture a redaction
    hid that was not a face: bodies, hands, background - the evidence."""
    changed = changed_map(source, output)
    away = away_map((changed.shape[0], changed.shape[1]), boxes)
    return int((changed & away).sum()), int(away.sum())
