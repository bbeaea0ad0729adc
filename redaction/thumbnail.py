"""A track's thumbnail: the face at its best view, cropped from the footage on demand.

The web app's gallery of people shows one small picture per track. The plan names the frame
(``TrackPlan.best_frame``) but holds no picture: plans are stored and shown as JSON, while
footage (and so any crop of it) stays encrypted at rest. The caller decrypts the recording
to a spool file as it does for playback, and asks for the crop.

Reaching the frame costs one group of pictures, not the recording up to it: the packet index
(read without decoding) maps the frame's display-order number to its timestamp and names the
keyframe it can be decoded from; decoding starts there. H.264/HEVC decoding from a keyframe
whose group refers to nothing before it gives the same pixels as decoding from the start, so
the crop is the one the decode-from-start path gave. Footage the index cannot map safely
(packets without timestamps, repeated timestamps, a keyframe the demuxer does not seek to)
is decoded from the start, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.error
import cv2

from redaction.errors import MediaError, PlanError
from redaction.media import Frame, iter_frames, probe
from redaction.plan import RedactionPlan

__all__ = ["FrameRead", "frame_at", "frames_at", "thumbnail"]

_ROTATE = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180,
           270: cv2.ROTATE_90_CLOCKWISE}


@dataclass(frozen=True)
class FrameRead:
    """One frame read by :func:`frame_at`, and how many frames were decoded to reach it
    (``seeked``: decoding started at a keyframe near it rather than at the start)."""

    frame: Frame
    decoded: int
    seeked: bool


class _Packets:
    """The video packets of a file, read without decoding: display-order pts, and for each
    frame the keyframe it can be decoded from."""

    def __init__(self, read: Sequence[tuple[int, bool]]) -> None:
        self.decode_order = list(read)
        self.display = sorted(p for p, _ in read)
        self.position = {p: i for i, (p, _) in enumerate(read)}
        # Suffix minimum of pts over decode order: a keyframe with nothing after it shown
        # before it refers to nothing before it (no open-group leading pictures).
        n = len(read)
        self.suffix_min = [0] * (n + 1)
        self.suffix_min[n] = 1 << 62
        for j in range(n - 1, -1, -1):
            self.suffix_min[j] = min(read[j][0], self.suffix_min[j + 1])

    def key_for(self, target: int) -> int | None:
        """The pts of the keyframe to decode ``target`` (a pts) from: the last keyframe at or
        before it in decode order that is shown no later than it and whose group needs
        nothing earlier; None when there is none (decode from the start)."""
        for i in range(self.position[target], -1, -1):
            pts, key = self.decode_order[i]
            if key and pts <= target and self.suffix_min[i] >= pts:
                return pts
        return None


def _image(vf: Any) -> Any:
    image = vf.to_ndarray(format="bgr24")
    rotation = round(vf.rotation or 0) % 360
    if rotation in _ROTATE:
        image = cv2.rotate(image, _ROTATE[rotation])
    return image


def _decode_from(container: Any, vs: Any, key: int) -> Iterator[Any]:
    """Decoded frames from keyframe ``key`` on, after a seek to it; nothing when the seek
    landed past it. The demuxer may land on an earlier keyframe: packets before the chosen
    one are skipped (the chosen keyframe's group needs none of them)."""
    started = False
    for packet in container.demux(vs):
        if not started:
            if packet.pts is None or packet.pts > key:
                return
            if packet.pts != key or not packet.is_keyframe:
                continue
            started = True
        yield from packet.decode()  # the final, empty packet flushes the decoder


def _from_start(source: Path, wanted: Sequence[int]) -> Iterator[FrameRead]:
    todo = set(wanted)
    for n, frame in enumerate(iter_frames(source), start=1):
        if frame.index in todo:
            todo.discard(frame.index)
            yield FrameRead(frame, n, False)
            if not todo:
                return
    raise MediaError(f"{source.name} ends before frame {min(todo)}", path=source)


def frames_at(source: str | Path, indices: Iterable[int]) -> Iterator[FrameRead]:
    """Frames ``indices`` (display order, as :func:`~redaction.media.iter_frames` numbers
    them) of ``source``'s first video stream, in rising order, each once, each decoded from
    the keyframe before it or, where that keyframe is already behind, by decoding on.

    The pixels, time and index are those :func:`~redaction.media.iter_frames` yields for
    each frame. Raises :class:`MediaError` when the footage cannot be read or ends before a
    frame.
    """
    src = Path(source)
    wanted = sorted(set(indices))
    if not wanted:
        return
    if wanted[0] < 0:
        raise MediaError(f"no frame {wanted[0]}: frames count from 0", path=src)
    probe(src)  # the clear errors for a missing, empty or non-media file
    try:
        with av.open(str(src)) as container:
            vs = container.streams.video[0]
            read = [(p.pts, bool(p.is_keyframe)) for p in container.demux(vs) if p.size > 0]
            index = _Packets([(int(pts), key) for pts, key in read if pts is not None])
            display = index.display
            if (len(display) != len(read) or len(set(display)) != len(display)
                    or vs.time_base is None):
                yield from _from_start(src, wanted)  # the index cannot name frames safely
                return
            if wanted[-1] >= len(display):
                raise MediaError(f"{src.name} ends before frame {wanted[-1]} "
                                 f"({len(display)} frames)", path=src)
            zero = 0.0 if container.start_time is None else container.start_time / av.time_base
            vs.thread_type = "AUTO"
            frames: Iterator[Any] = iter(())
            last: int | None = None  # pts of the last frame decoded
            for k, frame_index in enumerate(wanted):
                target = display[frame_index]
                key = index.key_for(target)
                if key is None:
                    yield from _from_start(src, wanted[k:])
                    return
                if last is None or key > last:
                    # Its keyframe is ahead: seek there (decoding on would cost more).
                    container.seek(key, stream=vs, backward=True, any_frame=False)
                    frames = _decode_from(container, vs, key)
                decoded = 0
                found = None
                for vf in frames:
                    decoded += 1
                    last = vf.pts
                    if vf.pts == target:
                        found = vf
                        break
                    if vf.pts is None or vf.pts > target:
                        break  # passed it: the demuxer and the index disagree
                if found is None:
                    yield from _from_start(src, wanted[k:])
                    return
                yield FrameRead(Frame(frame_index, float(found.pts * found.time_base) - zero,
                                      _image(found)), decoded, True)
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot read {src.name}: {exc}", path=src) from exc


def frame_at(source: str | Path, index: int) -> FrameRead:
    """Frame ``index`` of ``source`` decoded from the keyframe before it (:func:`frames_at`).
    Raises :class:`MediaError` when the footage cannot be read or ends before the frame."""
    return next(frames_at(source, [index]))


def thumbnail(source: str | Path, plan: RedactionPlan, track_id: int, *,
              height: int = 64) -> bytes:
    """JPEG of track ``track_id``'s best view in ``source`` (its mask box), ``height`` px tall.

    The frame is decoded from the keyframe before it (:func:`frame_at`), not from the start.
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
    image = frame_at(source, track.best_frame).frame.image
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1]
    width = max(1, round(crop.shape[1] * height / max(1, crop.shape[0])))
    small = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:  # pragma: no cover - OpenCV always encodes a non-empty image
        raise MediaError("cannot encode the thumbnail", path=source)
    return data.tobytes()
