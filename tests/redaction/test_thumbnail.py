"""Each track carries its best view (frame and quality); its thumbnail is cut on demand."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from redaction import CenterFace, PlanError, plan_video
from redaction.synthetic import Clip
from redaction.thumbnail import thumbnail


def test_tracks_name_their_best_view_and_the_thumbnail_shows_it(
        people_clip: Clip, detector: CenterFace) -> None:
    """Issue #13 finding 4: each track in the plan carries a quality score and its best
    frame, for the gallery of people; the thumbnail is cropped from the footage on demand,
    so the plan (stored and shown as JSON) holds no picture of anyone."""
    plan = plan_video(people_clip.path, detector=detector)
    real = [t for t in plan.tracks if t.quality is not None and t.quality > 0.3]
    assert len(real) >= 2
    for t in plan.tracks:
        assert t.best_frame is not None and t.box_at(t.best_frame) is not None
        assert t.quality is not None and 0 <= t.quality <= 1
    assert "thumbnail" not in plan.to_json() and "base64" not in plan.to_json()
    best = max(plan.tracks, key=lambda t: t.quality or 0.0)
    jpeg = thumbnail(people_clip.path, plan, best.id)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[0] == 64
    # The crop is the face: a face detector finds one in it.
    rgb = cv2.cvtColor(cv2.resize(image, (image.shape[1] * 2, 128)), cv2.COLOR_BGR2RGB)
    big = cv2.copyMakeBorder(rgb, 32, 32, 32, 32, cv2.BORDER_REPLICATE)
    assert len(detector.detect(big)) >= 1


def test_thumbnail_of_an_unknown_track_is_refused(people_clip: Clip, tmp_path: Path,
                                                  detector: CenterFace) -> None:
    plan = plan_video(people_clip.path, detector=detector)
    with pytest.raises(PlanError, match="no such track"):
        thumbnail(people_clip.path, plan, 999)
