"""Looking back: a face first found late is searched for in the frames before it.

A track's mask reaches ``pad_seconds`` before its first detection, placed where a face
seen once most likely was: still in the scene, the camera's motion taken out
(:meth:`redaction.track.Tracker._raw`). On a moving camera that guess can be wrong by more
than the mask's margin: a person walking beside a body-worn camera's wearer stays in the
same place *in the picture* while the scene moves past. Issue #13 (bodycam, noise seeds 0,
2, 3 and 5): a face at the frame's right edge, scored 0.3-0.5 on some frames and 0 on the
look frames, was found first at frame 30; its mask, extrapolated back as still in the
scene, slid off the frame's edge while the face stayed in view, identifiable, for frames
5-29.

The frames since the look ``pad_seconds`` ago are still held and unmasked (the renderer
works ``lookahead`` frames behind detection), so rather than grow the mask over both
guesses, the detector looks again: every ``step`` (a stride) frames back, halfway between
the stride's looks (those searched the frame and did not find it), around both guesses
from the earliest detection so far. What it finds is added to the track
(:meth:`redaction.track.Tracker.add_before`), which then has a velocity of its own.

It is not looked back for where it is not needed or cannot help: a track whose two
guesses lie within half its size of each other (a still camera, a slow pan: its mask's
margin covers both), and a frame where the carried guess is further than a face can move
(:meth:`redaction.track.Tracker.could_reach`: a PTZ pan faster than anyone runs). All the
tracks a look started are searched for together, one detector input a frame back.

Measured on the benchmark's 3 s clips (docs/redaction.md, "Looking back"): body-worn
identifiable faces left visible 1.30 -> 0.61 % over six noise seeds, for 3 % of its
speed. Searching the fast pan's frames as well took the PTZ clip's from 0.87 to 0.58 %,
but for 11 % of its speed, under its 20 fps target.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from redaction.boxes import centre, size
from redaction.scan import FrameScanner
from redaction.track import Box, Track, Tracker

__all__ = ["look_back"]

Image = npt.NDArray[np.uint8]

#: Guesses closer than this (in face sizes) are both inside the mask's margin.
_APART = 0.5
#: A detection belongs to the track within this distance (face sizes) of the line
#: between the two guesses, at 0.5-2 times its size.
_NEAR = 0.75


def _off_line(point: tuple[float, float], a: tuple[float, float], b: tuple[float, float],
              ) -> float:
    """Distance from ``point`` to the segment ``a``-``b``."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    span = dx * dx + dy * dy
    u = 0.0 if span == 0 else max(0.0, min(1.0, ((point[0] - a[0]) * dx
                                                 + (point[1] - a[1]) * dy) / span))
    return math.hypot(point[0] - a[0] - u * dx, point[1] - a[1] - u * dy)


def _wanted(tracker: Tracker, track: Track, lo: int) -> bool:
    """Whether ``track``, just started, is worth looking back for."""
    still, carried = tracker.still_or_carried(track, lo)
    (sx, sy), (cx, cy) = centre(still), centre(carried)
    return math.hypot(sx - cx, sy - cy) > _APART * size(carried)


def look_back(frame: int, tracker: Tracker, scanner: FrameScanner,
              picture: Callable[[int], Image], lock: threading.Condition, *, step: int,
              ) -> int:
    """After the full look at ``frame``, search the frames before it for the faces of the
    tracks that look started; ``picture(j)`` is frame ``j`` as decoded (not yet masked).
    Returns the number of detections added."""
    with lock:
        lo = max(0, frame - tracker.pad_frames, tracker.final_through() + 1)
        tracks = [t for t in tracker.born(frame) if _wanted(tracker, t, lo)]
    if not tracks:
        return 0
    added = 0
    # Halfway between the stride's looks: those looked at the frame and did not find it.
    for j in range(frame - step // 2, lo - 1, -step):
        wanted: list[tuple[Track, Box, Box]] = []
        with lock:
            for track in tracks:
                still, carried = tracker.still_or_carried(track, j)
                # Not where a camera faster than anyone runs (a PTZ pan) would have
                # carried a face.
                if tracker.could_reach(track, j, carried):
                    wanted.append((track, still, carried))
        if not wanted:
            continue
        # One search of the frame for every track: their crops packed together.
        guesses = [b for _, still, carried in wanted for b in (still, carried)]
        found = scanner.look_back(j, picture(j), guesses)[:, :5].tolist()
        taken: set[int] = set()
        for track, still, carried in wanted:
            face = size(carried)
            best: tuple[float, int] | None = None
            for k, (x0, y0, x1, y1, score) in enumerate(found):
                box = (x0, y0, x1, y1)
                if k in taken or not 0.5 <= size(box) / face <= 2.0:
                    continue
                if _off_line(centre(box), centre(still), centre(carried)) > _NEAR * face:
                    continue
                if best is None or score > best[0]:
                    best = (score, k)
            if best is not None:
                taken.add(best[1])
                x0, y0, x1, y1, score = found[best[1]]
                with lock:
                    tracker.add_before(track, j, (x0, y0, x1, y1), score)
                added += 1
    return added
