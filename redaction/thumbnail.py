"""A track's thumbnail: the face at its best view, cropped from the footage on demand.

The web app's gallery of people shows one small picture per track. The plan names the frame
(``TrackPlan.best_frame``) but holds no picture: plans are stored and shown as JSON, while
footage (and so any crop of it) stays encrypted at rest. The caller decrypts the recording
to a spool file as it does for playback, and asks for the crop.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from redaction.errors import MediaError, PlanError
from redaction.media import iter_frames
from redaction.plan import RedactionPlan

__all__ = ["thumbnail"]


def thumbnail(source: str | Path, plan: RedactionPlan, track_id: int, *,
              height: int = 64) -> bytes:
    """JPEG of track ``track_id``'s best view in ``source`` (its mask box), ``height`` px tall.

    Raises :class:`PlanError` for an unknown track, one without a ``best_frame`` (a
    version 1 plan) or whose box on that frame a reviewer removed; :class:`MediaError` when
    the footage cannot be read or ends before that frame.
    """
    track = next((t for t in plan.tracks if t.id == track_id), None)
    if track is None:
        raise PlanError(f"no such track: {track_id}")
    if track.best_frame is None:
        raise PlanError(f"track {track_id} has no best_frame (plan version {plan.version})")
    box = track.box_at(track.best_frame)
    if box is None:
        # A reviewer's edit may shorten a track; its best view then no longer exists.
        raise PlanError(f"track {track_id} has no box on its best_frame {track.best_frame}")
    for frame in iter_frames(source):
        if frame.index == track.best_frame:
            x0, y0, x1, y1 = box
            crop = frame.image[y0:y1, x0:x1]
            width = max(1, round(crop.shape[1] * height / max(1, crop.shape[0])))
            small = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:  # pragma: no cover - OpenCV always encodes a non-empty image
                raise MediaError("cannot encode the thumbnail", path=source)
            return data.tobytes()
    raise MediaError(f"{Path(source).name} ends before frame {track.best_frame}", path=source)
