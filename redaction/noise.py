"""How noisy a picture is, and the picture the detector should see when it is noisy: the
frame averaged with the two before it, aligned by optical flow (:func:`aligned_mean`), and
smoothed (:func:`smoothed`).

Issue #13 (night): on the benchmark's infrared night clip at 12 s, 10.7 % of the
identifiable face boxes were left visible, and 215 of the 272 misses were faces CenterFace
never scored 0.1 at any scale. The faces were sharp enough to recognise; the sensor noise
(grey, flat, about 7 grey levels) was what the detector could not see through. The scanner
enlarges small faces 1.4x for the detector, and enlarges the noise's grain with them:
at that scale 47 % of the night faces scored under 0.1 (median 0.10). Smoothed with a 3x3
Gaussian first, 16 % did (median 0.44); contrast stretching and CLAHE did nothing or harm
(the detector normalises contrast itself), non-local means lost detail. The same smoothing
on the day clips, noise about 3, lifted the still clip's faces a little and lowered the
small faces of the crowd (under 0.3: 7.7 -> 11.1 %), so it is done only where the picture
is noisy, and there as a second view beside the picture as it is: smoothing also loses
small faces whose features are as fine as itself. Averaging three frames aligned along
their motion before smoothing took the 12 s clip's faces left visible from 1.45 % to
0.43 % (three noise seeds). Measurements: docs/redaction.md, "Night".

The noise is estimated by Immerkær's method (J. Immerkær, *Fast Noise Variance
Estimation*, CVIU 64(2), 1996): a 3x3 kernel that is the difference of two Laplacians
cancels every picture that is locally a plane, so what it returns is noise. Immerkær
averages its absolute response over the frame; here its median is taken instead
(a robust estimate, as edges and texture are the response's outliers), scaled so that
white noise of standard deviation sigma gives sigma.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["RecentFrames", "aligned_mean", "noise_sigma", "smoothed"]

Image = npt.NDArray[np.uint8]

#: Frames averaged for the smoothed view of a noisy picture: the looked-at one and the two
#: before it (five measured worse: the optical flow errs further back; see
#: :func:`aligned_mean`).
_AVERAGED = 3

_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
#: For white noise of standard deviation s the kernel's response has standard deviation
#: 6s (the square root of its squared weights' sum, 36), and a normal variable's median
#: absolute value is 0.6745 of its standard deviation.
_TO_SIGMA = 1.0 / (6.0 * 0.6745)


def noise_sigma(image: Image) -> float:
    """The sensor noise of ``image`` (BGR or grey), as a standard deviation in grey levels.

    Measured on the benchmark's decoded clips (x264 crf 26): 0.3-0.5 on the moving
    cameras, 3.0 on the still and crowd clips (noise 4 before compression), 6.4-9.1 on
    the infrared night clip (noise 10 on a picture of 0.6 contrast).
    """
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    response = cv2.filter2D(grey.astype(np.float32), -1, _KERNEL)[1:-1, 1:-1]
    # Every other row and column: the noise is independent pixel to pixel, and a quarter
    # of a 1080p frame's half a million responses pins the median as well as all of them.
    return float(np.median(np.abs(response[::2, ::2]))) * _TO_SIGMA


def smoothed(crop: Image) -> Image:
    """``crop`` with its pixel-to-pixel noise smoothed for the detector: a 3x3 Gaussian
    (sigma 0.8), which leaves a face's features (several pixels wide at 20 px) in place."""
    return cv2.GaussianBlur(crop, (3, 3), 0)  # type: ignore[return-value]


#: How much the grey pictures the optical flow compares are blurred (sigma, px): the flow
#: must follow a face, not the grain (sigma 1.0 and 1.5 measured alike; see aligned_mean).
_FLOW_BLUR = 1.5

#: DIS's medium preset compares 12 px patches: a smaller picture is left as it is.
_FLOW_LEAST = 12


def aligned_mean(current: Image, earlier: Sequence[Image], *, straight: bool = True) -> Image:
    """``current`` averaged with ``earlier`` pictures of the same place (crops of the frames
    just before it, oldest first, one frame apart), each first moved onto ``current``.

    Sensor noise is independent frame to frame and a face is not, so the mean of three
    frames has the noise of one divided by the square root of three, if every face is where
    it is in ``current``. A walker moves 2-9 px in two frames, a third of a small face, and
    averaging frames as they are smeared them out of the detector's reach (faces scored
    0.1+: 75 -> 35 %). DIS optical flow (Kroeger et al., ECCV 2016; OpenCV's
    ``DISOpticalFlow``, medium preset) on the blurred grey pictures finds where each pixel
    of ``current`` was in an earlier picture.

    With ``straight`` (a still camera, or one moving steadily: over two frames a walker's
    path is a straight line), one flow to the oldest picture is computed and a picture
    between is moved by its share of it, which halves the cost and measured the same. On a
    shaking camera the picture's path bends frame to frame, and that shortcut left a face
    up to 2.5 times as far from the clean picture as the frame alone (a body-worn walk,
    noise 10): there each earlier picture gets a flow of its own.

    Measured on 282 faces of the 12 s night clip (noise seeds 0 and 1; each scored at 28 px
    tall, smoothed, as the scanner's second view sees it), scored 0.1 or more: one frame
    70.9 %; three frames aligned by the true positions (seed 0) 85.8 %, by a flow to each
    83.4 %, by one flow to the oldest 83.3 %; two frames 78.7 %; a cheaper flow (no
    variational refinement, patch stride 6) 79.1 %; five frames 81.6 % (the flow errs
    further back).
    """
    h, w = current.shape[:2]
    if not earlier or max(h, w) < _FLOW_LEAST:
        return current
    grey = _flow_grey(current)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    flow = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    total = current.astype(np.float32)
    moved: npt.NDArray[np.float32] | None = None
    for back, before in zip(range(len(earlier), 0, -1), earlier, strict=True):
        if moved is None or not straight:
            # Flow from current to this picture (the oldest first): where each of current's
            # pixels was there.
            moved = flow.calc(grey, _flow_grey(before), None)  # type: ignore[call-overload]
        share = back / len(earlier) if straight else 1.0
        total += cv2.remap(before, gx + share * moved[..., 0], gy + share * moved[..., 1],
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    total *= 1.0 / (1 + len(earlier))
    return np.rint(total).astype(np.uint8)


def _flow_grey(image: Image) -> Image:
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.GaussianBlur(grey, (0, 0), _FLOW_BLUR)  # type: ignore[return-value]


class RecentFrames:
    """The :data:`_AVERAGED` - 1 frames before the one being looked at, copied (the render
    thread masks frames in place), for :func:`aligned_mean`; kept only while the picture
    is noisy."""

    def __init__(self) -> None:
        self._frames: list[tuple[int, Image]] = []  # (index, picture), oldest first

    def add(self, index: int, image: Image, *, keep: bool) -> None:
        """Frame ``index`` has passed; ``keep``: the picture is noisy."""
        if not keep:
            self._frames.clear()
            return
        self._frames.append((index, image.copy()))
        del self._frames[:-(_AVERAGED - 1)]

    def before(self, index: int) -> list[Image]:
        """The frames kept from just before frame ``index``, oldest first."""
        return [b for i, b in self._frames if index - _AVERAGED < i < index]
