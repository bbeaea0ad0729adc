"""What moved: the scanner's background model, on a still or a moving camera.

:class:`MotionMap` keeps a low-resolution grey picture of the scene (the motion map) and, at
each look, returns boxes around what differs from it: the motion regions that
:class:`redaction.scan.FrameScanner` searches for faces. On a still camera the model follows
slow light changes, absorbs whatever has stopped moving, and leaves no trail behind a
passer-by; given the camera's motion (:mod:`redaction.motion`) it is moved with the picture,
and when the camera pans, zooms or rolls between looks the previous look, carried onto this
one, is the reference, so only what moves in the scene shows, plus what came into view.
"""

from __future__ import annotations

import math
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from redaction.motion import CameraMotion

__all__ = ["MotionMap", "clip_box"]

Image = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]

#: Spacing (motion-map px) of the grid of points whose flow measures the camera's motion.
_FLOW_STEP = 16
#: A zoom (or roll) smaller than this between two looks, with a pan under half a
#: motion-map pixel, is a still camera.
_STILL_ZOOM = 0.002
#: What comes into view on a moving camera is cut into pieces this many motion-map px wide.
_CUT = 32
#: What came into view within this many smallest faces of an edge is searched as far again
#: further in. Between two looks a body-worn camera's shake or a slow pan brings in a strip
#: of 10-25 px, narrower than a face, so a person standing at the edge of the scene came in
#: a slice at a time and was never searched whole until the sweep came round (10 s).
#: Measured in docs/redaction.md ("Into view, cut edges and parts of a face").
_INTO_VIEW_DEPTH = 2.0


def clip_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` rounded outwards to whole pixels and clipped to a ``width`` x ``height`` frame."""
    x0, y0, x1, y1 = box
    return (max(0, math.floor(x0)), max(0, math.floor(y0)),
            min(width, math.ceil(x1)), min(height, math.ceil(y1)))


class MotionMap:
    """The background model of one video, fed the frames of successive looks in order.

    ``map_width``: the motion map's width (px); ``threshold``: the grey-level difference from
    the background that counts as motion; ``background_seconds``: the model's time constant;
    ``min_face``: the smallest face of interest (px), the margin a box gets around a blob.
    """

    def __init__(self, *, width: int, height: int, fps: float, map_width: int, threshold: int,
                 background_seconds: float, min_face: float,
                 motion: CameraMotion | None = None) -> None:
        self.width, self.height = width, height
        self.threshold = threshold
        self.min_face = min_face
        self._mw = min(map_width, width)
        self._mh = max(1, round(height * self._mw / width))
        self._background: npt.NDArray[np.float32] | None = None
        # With camera motion, the background model is moved with the picture before each
        # comparison, so a pan or a shake is not "motion" everywhere.
        self._motion = motion
        self._background_offset = (0.0, 0.0)
        self._previous: npt.NDArray[np.float32] | None = None
        # The previous look's picture as it was (8-bit, not moved with the camera): the
        # reference for the optical flow that measures a zoom.
        self._previous_grey: Image | None = None
        # The background absorbs change with time constant background_seconds.
        self._tc_frames = max(1.0, background_seconds * fps)

    def _follow_camera(self, index: int) -> None:
        """Move the background model (and the previous look) with the camera to frame
        ``index``; what comes into view is taken from the nearest edge and shows as motion
        only where it differs."""
        if self._motion is None or self._background is None or self._previous is None:
            return
        ox, oy = self._motion.offset(index)
        # Whole motion-map pixels only: a sub-pixel resampling blurs the model a little
        # more at every look until it no longer matches any sharp frame; the remainder is
        # carried to the next look.
        dx = round((ox - self._background_offset[0]) * self._mw / self.width)
        dy = round((oy - self._background_offset[1]) * self._mh / self.height)
        if dx == 0 and dy == 0:
            return
        self._background_offset = (self._background_offset[0] + dx * self.width / self._mw,
                                   self._background_offset[1] + dy * self.height / self._mh)
        m = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        size = (self._mw, self._mh)
        self._background = cv2.warpAffine(self._background, m, size,  # type: ignore[assignment]
                                          flags=cv2.INTER_NEAREST,
                                          borderMode=cv2.BORDER_REPLICATE)
        self._previous = cv2.warpAffine(self._previous, m, size,  # type: ignore[assignment]
                                        flags=cv2.INTER_NEAREST,
                                        borderMode=cv2.BORDER_REPLICATE)

    def _camera_transform(self, grey: Image, index: int,
                          elapsed: int) -> npt.NDArray[np.float64] | None:
        """The similarity (2x3, motion-map px) taking the previous look's picture onto this
        one, or ``None`` when the camera held still (or the estimate failed).

        :mod:`redaction.motion` gives the pan between frames, not the zoom; but a PTZ zoom
        or a body-worn camera walking forward moves the edges of the picture by several
        motion-map pixels between two looks, which a translation leaves as "motion" all over
        a textured scene (issue #13: the whole frame was one motion region, searched below
        the scale that finds small faces). So the look measures the camera's pan, zoom and
        roll itself: the optical flow of a grid of points (started at the measured pan) and
        a RANSAC fit that ignores the people moving through the picture.
        """
        if self._motion is None or self._previous_grey is None:
            return None
        prev = self._previous_grey
        step = _FLOW_STEP
        ys, xs = np.mgrid[step // 2:self._mh - step // 2:step, step // 2:self._mw - step // 2:step]
        pts = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)[:, None]
        if len(pts) < 8:
            return None
        # Start each point where the frame-to-frame estimate (pan and zoom) puts it.
        (ax, ay), za = self._motion.offset(index - elapsed), self._motion.zoom(index - elapsed)
        (bx, by), zb = self._motion.offset(index), self._motion.zoom(index)
        fx, fy = self.width / self._mw, self._mh / self.height
        k = zb / za
        guess = np.empty_like(pts)
        guess[..., 0] = ((pts[..., 0] * fx - ax) * k + bx) / fx
        guess[..., 1] = ((pts[..., 1] / fy - ay) * k + by) * fy
        # Should the flow fail (a flash, a cut), the frame-to-frame estimate stands in.
        fallback = None if (ax, ay, za) == (bx, by, zb) else np.array(
            [[k, 0.0, (bx - ax * k) / fx], [0.0, k, (by - ay * k) * fy]], np.float64)
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(
            prev, grey, pts, guess.copy(), winSize=(15, 15), maxLevel=2,
            flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        ok = status[:, 0] == 1
        if ok.sum() < len(pts) // 4:
            return fallback
        m, inliers = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC,
                                                 ransacReprojThreshold=1.0)
        if m is None or inliers is None or int(inliers.sum()) < len(pts) // 4:
            return fallback
        zoom = math.hypot(m[0, 0], m[1, 0])
        if abs(zoom - 1) < _STILL_ZOOM and abs(m[1, 0]) < _STILL_ZOOM and \
                math.hypot(m[0, 2], m[1, 2]) < 0.5:
            return None
        return cast("npt.NDArray[np.float64]", m)

    def boxes(self, image: Image, elapsed: int, index: int = 0, *,
              keep: bool = False) -> list[tuple[int, int, int, int]]:
        """Boxes (frame px) around what moved against the background model since the look
        ``elapsed`` frames ago. With ``keep`` the model is left as it was (a look between
        the regular ones): the next look compares with the same reference.

        On a moving camera (pan, zoom, shake: :meth:`_camera_transform`) the reference is the
        previous look's picture carried onto this one, both slightly smoothed (the shutter's
        smear changes with the camera's speed); what came into view since then counts as
        motion, so faces the camera pans onto are searched at once.
        """
        small = cv2.resize(image, (self._mw, self._mh), interpolation=cv2.INTER_AREA)
        grey8 = cast(Image, cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        grey = grey8.astype(np.float32)
        if self._background is None:
            self._background = grey
            self._previous = grey.copy()
            self._previous_grey = grey8
            if self._motion is not None:
                self._background_offset = self._motion.offset(index)
            return []
        camera = self._camera_transform(grey8, index, elapsed)
        if camera is not None:
            assert self._previous_grey is not None and self._motion is not None
            size = (self._mw, self._mh)
            carried = cv2.warpAffine(self._previous_grey, camera, size, flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
            seen = cv2.warpAffine(np.ones((self._mh, self._mw), np.uint8), camera, size,
                                  flags=cv2.INTER_NEAREST, borderValue=0)
            diff = cv2.absdiff(cv2.GaussianBlur(grey8, (0, 0), 1.0),
                               cv2.GaussianBlur(carried, (0, 0), 1.0))
            mask = (diff > self.threshold).astype(np.uint8)
            # What came into view is an L or a ring along the edges, whose bounding box is
            # the whole frame: cut it into pieces, which the scanner joins along each
            # edge again where that saves pixels.
            unseen = (seen == 0).astype(np.uint8)
            # (Not along the first row and column: a strip one pixel wide came in there.)
            unseen[:, _CUT::_CUT] = 0
            unseen[_CUT::_CUT, :] = 0
            if keep:
                return self._blob_boxes(mask) + self._blob_boxes(unseen, into_view=True)
            # The still camera's model restarts from this picture when the camera stops.
            self._background = grey
            self._previous = grey.copy()
            self._previous_grey = grey8
            self._background_offset = self._motion.offset(index)
            return self._blob_boxes(mask) + self._blob_boxes(unseen, into_view=True)
        self._follow_camera(index)
        alpha = min(1.0, elapsed / self._tc_frames)
        diff = cv2.absdiff(grey, self._background)
        mask = (diff > self.threshold).astype(np.uint8)
        if keep:
            return self._blob_boxes(mask)
        # The background follows the scene slowly where it matches (light, shadows), quickly
        # where it differs but nothing moved since the last look (a parked car, the place a
        # person stood in the first frame), and hardly where something moves, so a passer-by
        # leaves no trail. A person who stops is absorbed too; the tracker follows them.
        assert self._previous is not None
        settled = (cv2.absdiff(grey, self._previous) < self.threshold / 2).astype(np.uint8)
        moving = mask & (1 - settled)
        cv2.accumulateWeighted(grey, self._background, alpha, mask=1 - mask)
        cv2.accumulateWeighted(grey, self._background, 0.5, mask=mask & settled)
        cv2.accumulateWeighted(grey, self._background, alpha / 10, mask=moving)
        self._previous = grey
        self._previous_grey = grey8
        return self._blob_boxes(mask)

    def _blob_boxes(self, mask: npt.NDArray[np.uint8], *,
                    into_view: bool = False) -> list[tuple[int, int, int, int]]:
        """Boxes (frame px) around the blobs of a motion-map mask, with a face's margin.

        Motion blobs a few pixels apart are joined first. ``into_view``: the mask is what
        came into view on a moving camera, already cut into pieces along the edges; each
        piece within :data:`_INTO_VIEW_DEPTH` smallest faces of an edge is searched as far
        again further in."""
        if not into_view:
            mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=2)  # type: ignore[assignment]
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        fx = self.width / self._mw
        fy = self.height / self._mh
        deep = _INTO_VIEW_DEPTH * self.min_face
        boxes: list[tuple[int, int, int, int]] = []
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < 6:  # isolated noise pixels, grown by the dilation
                continue
            bx0, by0, bx1, by1 = x * fx, y * fy, (x + w) * fx, (y + h) * fy
            # Enough margin that a face at the blob's edge is whole in the region.
            m = max(0.6 * self.min_face, 0.1 * max(bx1 - bx0, by1 - by0))
            x0, y0, x1, y1 = bx0 - m, by0 - m, bx1 + m, by1 + m
            if into_view:
                # A piece within ``deep`` of an edge (the cut lines may have split the
                # strip along it) is searched ``deep`` further in.
                if bx1 < deep:
                    x1 = max(x1, bx1 + deep)
                if bx0 > self.width - deep:
                    x0 = min(x0, bx0 - deep)
                if by1 < deep:
                    y1 = max(y1, by1 + deep)
                if by0 > self.height - deep:
                    y0 = min(y0, by0 - deep)
            boxes.append(clip_box((x0, y0, x1, y1), self.width, self.height))
        return boxes
