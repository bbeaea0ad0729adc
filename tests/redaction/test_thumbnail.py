"""Each track carries its best view (frame and quality); its thumbnail is cut on demand."""

from __future__ import annotations

from pathlib import Path

import av
import av.video.frame
import cv2
import numpy as np
import pytest

from redaction import CenterFace, MediaError, PlanError, plan_video
from redaction.chunks import source_info
from redaction.media import iter_frames
from redaction.plan import RedactionPlan, TrackPlan
from redaction.synthetic import Clip, Face, linear, make_clip
from redaction.thumbnail import frame_at, frames_at, thumbnail


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


def _b_frame_clip(tmp_path: Path, gop: int) -> Path:
    """10 s of 320x240 H.264 with B-frames (veryfast, 3 B-frames) and a keyframe every ``gop``
    frames; a face walks in at 7 s."""
    clip = make_clip(tmp_path / "plain.mp4", [Face(linear(50, 80, 270, 150, 4.0), 30, start=7.0)],
                     seconds=10.0, audio=False)
    out = tmp_path / "bframes.mp4"
    with av.open(str(clip.path)) as src, av.open(str(out), mode="w") as dst:
        vs = dst.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
        vs.options = {"preset": "veryfast", "bframes": "3", "g": str(gop), "crf": "18"}
        for frame in src.decode(video=0):
            frame.pict_type = av.video.frame.PictureType.NONE
            for packet in vs.encode(frame):
                dst.mux(packet)
        for packet in vs.encode(None):
            dst.mux(packet)
    with av.open(str(out)) as c:
        reordered = [p for p in c.demux(video=0) if p.size and p.pts != p.dts]
    assert reordered, "the clip must have B-frames (frames shown after later ones)"
    return out


def test_best_view_is_decoded_from_the_keyframe_before_it(tmp_path: Path) -> None:
    """Issue #13 item 5 (K2 task 1): the gallery's thumbnail decoded the footage from the
    start to its best frame (about a second of decoding for a face 30 s in, one per person
    shown). frame_at seeks to the keyframe before the frame and decodes forward only from
    there: on footage with B-frames, every frame it returns is the decode-from-start frame,
    pixel for pixel and to the same time, after decoding at most one group of pictures; the
    thumbnail of a late face is the same JPEG as the decode-from-start crop."""
    gop = 50
    path = _b_frame_clip(tmp_path, gop)
    frames = list(iter_frames(path))
    for index in (0, 1, gop - 1, gop, gop + 1, 180, 199, 230, len(frames) - 1):
        read = frame_at(path, index)
        assert read.seeked
        assert read.frame.index == index
        assert np.array_equal(read.frame.image, frames[index].image), index
        assert read.frame.time == pytest.approx(frames[index].time, abs=1e-9)
        assert read.decoded <= gop, (index, read.decoded)
    # A hand-made plan: one track whose best view is frame 230 (9.2 s in).
    best, box = 230, (200, 100, 260, 170)
    plan = RedactionPlan(
        source=source_info(path, len(frames), [f.time for f in frames]),
        tracks=[TrackPlan(id=1, start=best - 1, boxes=[box + (0.9,)] * 3, best_frame=best,
                          quality=0.9)])
    crop = frames[best].image[box[1]:box[3], box[0]:box[2]]
    small = cv2.resize(crop, (round(crop.shape[1] * 64 / crop.shape[0]), 64),
                       interpolation=cv2.INTER_AREA)
    ok, expected = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok and thumbnail(path, plan, 1) == expected.tobytes()


def test_frame_past_the_end_is_refused(people_clip: Clip) -> None:
    with pytest.raises(MediaError, match="ends before frame 50"):
        frame_at(people_clip.path, 50)


def test_many_frames_are_read_in_one_walk(tmp_path: Path) -> None:
    """frames_at (the cross-chunk identity samples read through it) gives the
    decode-from-start frames for any set of indices, decoding on where the next frame's
    keyframe is behind and seeking where it is ahead: far fewer frames than the walk."""
    path = _b_frame_clip(tmp_path, 50)
    frames = list(iter_frames(path))
    wanted = [3, 7, 8, 60, 61, 149, 200, 201, 249]
    reads = list(frames_at(path, reversed(wanted)))
    assert [r.frame.index for r in reads] == wanted
    for r in reads:
        assert np.array_equal(r.frame.image, frames[r.frame.index].image)
    assert sum(r.decoded for r in reads) <= 4 * 50
