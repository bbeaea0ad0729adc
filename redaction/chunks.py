"""Chunked redaction: long footage split at keyframes, planned and rendered in parallel.

One long recording is cut into chunks at clean keyframes (stream copy: no decoding, no
re-encoding); each chunk is planned on its own (a worker thread here, or a job on the queue,
see :mod:`api.jobs`), with ``overlap`` seconds of footage planned on each side of its borders;
the chunk plans are merged into one plan of the whole recording; the plan is rendered chunk by
chunk in parallel and the rendered chunks are joined by copying their packets (no re-encode
at the joins)::

    frames   0 ............ b1 ............. b2 ............. N
    owned    [  chunk 0     )[   chunk 1      )[   chunk 2     )
    planned  [  chunk 0       ~~~)                               ~~~ overlap, planned twice
                         (~~~   chunk 1         ~~~)
                                             (~~~   chunk 2    )

Borders and how a person stays one track: each chunk *owns* the frames from its first
keyframe to the next chunk's, and its tracks' boxes on those frames are the plan's. On the
overlap, both neighbours planned the same frames; a track of one and a track of the other
whose boxes overlap there (mean IoU over the shared frames) are the same person and become
one track of the merged plan, so "keep person P" keeps them on both sides of the border. On a
frame it does not own, a chunk's box is kept only where the owner has no box over it (a face
the owner missed near its edge: a missed face is a breach, so the merge errs towards masking).
A person who leaves in one chunk and comes back in a later one, which no chunk planned both
ends of, is joined after the merge by identity's rules on faces sampled from the recording
(:func:`join_across_chunks`).

Cut points are keyframes where the stream splits cleanly: every packet before the keyframe
(in decode order) is shown before it and every packet after it is shown at or after it
(closed GOPs; open-GOP leading pictures would be lost). Footage without such keyframes near
the chunk length, footage with a display rotation, and footage shorter than one and a half
chunks is planned and rendered in one pass, as before.

Rendering: each chunk's frames are cut (stream copy) and rendered with the part of the plan
they own; the joined MP4's video packets are the chunks' packets, byte for byte, re-timed to
the source's frame times; the audio is carried once over the whole source (muted and bleeped
as the plan says). The join is checked before it is kept: exactly the source's frame count,
each frame at the source's time. Intermediate files live in a hidden folder beside the output
(the spool, for vault jobs) and are removed whatever happens; the output appears only when
complete.

Why this module is long: it is one concept, chunked redaction, in three steps (cut at
keyframes, merge at the borders, join by stream copy) that share the chunk layout and its frame
numbering; the rules at a border (which chunk owns a frame, which boxes are kept, where the
joined frames are shown) are read and reviewed together.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import itertools
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from redaction.boxes import iou as _iou
from redaction.detect import Detector
from redaction.errors import ChunkError, EncodeError, MediaError, PlanError, RedactionError
from redaction.identity import AppearanceLog, IdentityParams, group_people, merge_tracks
from redaction.media import _AudioCarrier, probe
from redaction.partition import Partition
from redaction.pipeline import (
    EncodeParams,
    Progress,
    ProgressCallback,
    plan_video,
    redact_video,
    render_plan,
    software_version,
)
from redaction.plan import (
    AudioEdit,
    BoxRun,
    Keyframe,
    ManualBox,
    MaskSpec,
    RedactionPlan,
    ReviewSpan,
    SourceInfo,
    TrackPlan,
)
from redaction.render import RenderResult
from redaction.scan import ScanParams
from redaction.thumbnail import frames_at
from redaction.track import MaskBox, Observation, Track, TrackParams

__all__ = [
    "JOIN_IOU",
    "Chunk",
    "ChunkLayout",
    "ChunkPlanner",
    "ChunkRenderer",
    "chunk_layout",
    "join_across_chunks",
    "merge_chunk_plans",
    "plan_chunk",
    "plan_chunked",
    "owned_plan",
    "redact_chunked",
    "render_chunk",
    "render_chunked",
    "source_info",
]

#: Two tracks on either side of a border are one person when their boxes on the frames both
#: chunks planned overlap by at least this mean IoU (the tracker's own association needs 0.3
#: between consecutive looks; the same frames planned twice agree far more closely).
JOIN_IOU = 0.3
#: A chunk's box on a frame it does not own is dropped when an owner's box covers it this well.
COVERED_IOU = 0.3
_TICKS = Fraction(1, 90_000)

FrameBox = tuple[int, int, int, int, float]
#: Plans every chunk of a layout and returns their plans in layout order: threads in this
#: process (the default), or chunk jobs on the queue that any worker runs (api.jobs).
ChunkPlanner = Callable[["ChunkLayout"], Sequence[RedactionPlan]]

# Defaults (immutable), as in redaction.pipeline.
_SCAN = ScanParams()
_TRACK = TrackParams()
_MASK = MaskSpec()
_IDENTITY = IdentityParams()


# --- where to cut ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Index:
    """The source's video packets, read without decoding: display-order frame times and the
    frames at which the stream can be cut cleanly."""

    times: list[float]  # seconds from the container start, display order
    pts: list[int]  # in ``tb``, display order
    tb: Fraction
    cuts: list[int]  # frame indices of clean cut points (0 included)
    rotation: int
    #: Where each video packet lies in the file, (start, end) bytes, in decode order, with
    #: its pts; empty for containers whose packets cannot be fetched by byte range (not MP4).
    spans: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)
    file_size: int = 0

    @property
    def frame_count(self) -> int:
        return len(self.times)


def _time_base(stream: Any) -> Fraction:
    if stream.time_base is None:
        raise MediaError("a video stream without a time base")
    return Fraction(stream.time_base)


def _index(source: Path) -> _Index:
    """Read the packet index. Raises MediaError for footage that cannot be read."""
    info = probe(source)  # the clear errors for a missing, empty or non-media file
    try:
        with av.open(str(source)) as container:
            vs = container.streams.video[0]
            if vs.time_base is None:
                raise MediaError(f"{source} has a video stream without a time base", path=source)
            tb = Fraction(vs.time_base)
            zero = 0 if container.start_time is None else Fraction(container.start_time,
                                                                    av.time_base)
            decode_order: list[tuple[int, bool]] = []
            spans: list[tuple[int, int, int]] = []
            # An MP4's index (moov) names every packet's bytes: a chunk job can fetch just
            # the header and its own packets (see chunk_ranges).
            ranged = "mp4" in (container.format.name or "").split(",")
            for packet in container.demux(vs):
                if packet.pts is None or packet.size == 0:
                    continue
                decode_order.append((int(packet.pts), bool(packet.is_keyframe)))
                if ranged and packet.pos is not None and packet.pos >= 0:
                    spans.append((int(packet.pos), int(packet.pos) + packet.size,
                                  int(packet.pts)))
                else:
                    ranged = False
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot read the packets of {source}: {exc}", path=source) from exc
    if not decode_order:
        raise MediaError(f"no video frames in {source}", path=source)
    pts = sorted(p for p, _ in decode_order)
    # A keyframe splits cleanly when nothing before it (decode order) shows after it and
    # nothing after it shows before it.
    n = len(decode_order)
    suffix_min = [0] * (n + 1)
    suffix_min[n] = 1 << 62
    for j in range(n - 1, -1, -1):
        suffix_min[j] = min(decode_order[j][0], suffix_min[j + 1])
    position = {p: i for i, p in enumerate(pts)}
    cuts: list[int] = []
    prefix_max = -(1 << 62)
    for j, (p, key) in enumerate(decode_order):
        if key and prefix_max < p and suffix_min[j] >= p:
            cuts.append(position[p])
        prefix_max = max(prefix_max, p)
    times = [float(p * tb - zero) for p in pts]
    return _Index(times=times, pts=pts, tb=tb, cuts=sorted(set(cuts)), rotation=info.rotation,
                  spans=spans if ranged else [], file_size=source.stat().st_size)


@dataclass(frozen=True)
class Chunk:
    """One chunk: it owns frames ``start`` to ``stop - 1`` and plans ``plan_start`` to
    ``plan_stop - 1`` (its frames and the overlap on each side). All four are cut points or
    the ends of the footage."""

    index: int
    start: int
    stop: int
    plan_start: int
    plan_stop: int
    #: The bytes of the recording a chunk job needs, (start, end) half-open, sorted (see
    #: :func:`chunk_ranges`); empty: the whole recording.
    ranges: tuple[tuple[int, int], ...] = ()

    def to_dict(self, *, ranges: bool = True) -> dict[str, Any]:
        """JSON-ready (a chunk job's params; without ``ranges`` for provenance)."""
        out: dict[str, Any] = {"index": self.index, "start": self.start, "stop": self.stop,
                               "plan_start": self.plan_start, "plan_stop": self.plan_stop}
        if ranges and self.ranges:
            out["ranges"] = [list(r) for r in self.ranges]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        """Read :meth:`to_dict`'s output. Raises ChunkError when it is not a chunk."""
        try:
            chunk = cls(**{k: int(data[k]) for k in ("index", "start", "stop", "plan_start",
                                                     "plan_stop")},
                        ranges=tuple((int(a), int(b)) for a, b in data.get("ranges") or ()))
        except (KeyError, TypeError, ValueError) as exc:
            raise ChunkError(f"not a chunk: {data!r}") from exc
        if any(not 0 <= a < b for a, b in chunk.ranges) or list(chunk.ranges) != sorted(
                chunk.ranges):
            raise ChunkError(f"chunk {chunk.index}: byte ranges out of order ({data!r})")
        if not (0 <= chunk.plan_start <= chunk.start < chunk.stop <= chunk.plan_stop):
            raise ChunkError(f"chunk {chunk.index}: frames out of order ({chunk.to_dict()})")
        return chunk


@dataclass(frozen=True)
class ChunkLayout:
    """How one recording is split: its frame count and its chunks, in order."""

    frame_count: int
    chunks: tuple[Chunk, ...]
    chunk_s: float
    overlap_s: float

    @property
    def borders(self) -> list[int]:
        """The first frame of every chunk after the first."""
        return [c.start for c in self.chunks[1:]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (provenance and job results)."""
        return {"frame_count": self.frame_count, "chunk_s": self.chunk_s,
                "overlap_s": self.overlap_s,
                "chunks": [c.to_dict(ranges=False) for c in self.chunks]}


def _layout(idx: _Index, chunk_s: float, overlap_s: float) -> ChunkLayout:
    n = idx.frame_count
    whole = ChunkLayout(n, (Chunk(0, 0, n, 0, n),), chunk_s, overlap_s)
    duration = idx.times[-1] - idx.times[0]
    if chunk_s <= 0 or idx.rotation or duration < 1.5 * chunk_s or len(idx.cuts) < 2:
        return whole
    cut_times = [idx.times[c] for c in idx.cuts]
    borders = [0]
    k = 1
    while True:
        target = idx.times[0] + k * chunk_s
        k += 1
        if target >= idx.times[-1]:
            break
        j = bisect.bisect_left(cut_times, target)
        near = [c for c in (j - 1, j) if 0 <= c < len(idx.cuts)]
        cut = min((idx.cuts[c] for c in near), key=lambda f: abs(idx.times[f] - target))
        # Chunks shorter than half the length cost more in overlap than they gain.
        if idx.times[cut] - idx.times[borders[-1]] < chunk_s / 2:
            continue
        if idx.times[-1] - idx.times[cut] < chunk_s / 2:
            break
        borders.append(cut)
    if len(borders) < 2:
        return whole
    stops = [*borders[1:], n]
    chunks = []
    for i, (start, stop) in enumerate(zip(borders, stops, strict=True)):
        lo = bisect.bisect_left(idx.times, idx.times[start] - overlap_s)
        hi = bisect.bisect_left(idx.times, idx.times[stop - 1] + overlap_s) + 1
        plan_start = max((c for c in idx.cuts if c <= lo), default=0)
        plan_stop = min((c for c in idx.cuts if c >= hi), default=n)
        chunk = Chunk(i, start, stop, min(plan_start, start), max(plan_stop, stop))
        chunks.append(dataclasses.replace(chunk, ranges=_ranges(idx, chunk)))
    return ChunkLayout(n, tuple(chunks), chunk_s, overlap_s)


#: Byte ranges closer than this are fetched as one (a custody event and a request fewer).
_RANGE_GAP = 64 * 1024


def _ranges(idx: _Index, chunk: Chunk) -> tuple[tuple[int, int], ...]:
    """The bytes a job planning ``chunk`` needs from the recording: the header (everything
    before the first video packet: ftyp, moov when it is at the front), the first packet
    (the keyframe :func:`~redaction.media.probe` decodes), the packets from the chunk's first
    planned keyframe to the packet after its last planned frame (audio between them comes
    along), and everything after the last video packet (moov when it is at the end). Empty
    when the container's packets cannot be fetched by byte range."""
    if not idx.spans:
        return ()
    at = {pts: j for j, (_, _, pts) in enumerate(idx.spans)}
    first = at[idx.pts[chunk.plan_start]]
    last = at[idx.pts[chunk.plan_stop]] if chunk.plan_stop < idx.frame_count \
        else len(idx.spans) - 1
    own = idx.spans[first:last + 1]
    data_start = min(a for a, _, _ in idx.spans)
    data_end = max(b for _, b, _ in idx.spans)
    wanted = sorted([(0, data_start), idx.spans[0][:2],
                     (min(a for a, _, _ in own), max(b for _, b, _ in own)),
                     (data_end, idx.file_size)])
    merged: list[tuple[int, int]] = []
    for a, b in wanted:
        if a >= b:
            continue
        if merged and a <= merged[-1][1] + _RANGE_GAP:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return tuple(merged)


def chunk_layout(source: str | Path, *, chunk_s: float, overlap_s: float) -> ChunkLayout:
    """Split ``source`` into chunks of about ``chunk_s`` seconds at clean keyframes, each
    planned with ``overlap_s`` seconds more on each side (widened to the nearest cut points).

    Returns a one-chunk layout when the footage cannot or need not be split (see the module
    docstring). Raises MediaError for footage that cannot be read.
    """
    if overlap_s < 0:
        raise ChunkError(f"chunk overlap must not be negative ({overlap_s} s)")
    return _layout(_index(Path(source)), chunk_s, overlap_s)


def _cut(source: Path, idx: _Index, first: int, stop: int, dest: Path,
         present: Sequence[tuple[int, int]] = ()) -> Path:
    """Copy the packets of frames ``first`` to ``stop - 1`` (a cut point to a cut point or the
    end) into an MP4, untouched. ``present``: the only bytes of ``source`` that hold the
    recording (a chunk job fetched just those); every packet copied must lie in them. Raises
    ChunkError when the copy is not exactly those frames, or a packet lies outside
    ``present``."""
    lo = idx.pts[first]
    hi = idx.pts[stop] if stop < idx.frame_count else None
    written = 0
    try:
        with av.open(str(source)) as inp, av.open(str(dest), mode="w", format="mp4") as out:
            vs = inp.streams.video[0]
            ovs = out.add_stream_from_template(vs)
            ovs.time_base = vs.time_base  # the source's clock, untouched
            inp.seek(lo, stream=vs, backward=True, any_frame=False)
            started = False
            for packet in inp.demux(vs):
                if packet.pts is None or packet.size == 0:
                    continue
                if not started:
                    if packet.pts != lo or not packet.is_keyframe:
                        continue
                    started = True
                if hi is not None and packet.pts >= hi:
                    break  # the next chunk's keyframe: a clean cut shows nothing after it
                pos = -1 if packet.pos is None else int(packet.pos)
                if present and not any(a <= pos and pos + packet.size <= b
                                       for a, b in present):
                    raise ChunkError(
                        f"frames {first}-{stop - 1} of {source.name}: a packet at byte "
                        f"{packet.pos} lies outside the byte ranges fetched for this chunk")
                packet.stream = ovs
                out.mux(packet)
                written += 1
    except av.error.FFmpegError as exc:
        raise ChunkError(f"cutting frames {first}-{stop - 1} of {source.name} failed: {exc}") \
            from exc
    if written != stop - first:
        raise ChunkError(f"cutting frames {first}-{stop - 1} of {source.name} copied {written} "
                         f"frames, not {stop - first}")
    return dest


# --- planning ------------------------------------------------------------------------------


def plan_chunk(source: str | Path, chunk: Chunk, *, work: str | Path,
               present: Sequence[tuple[int, int]] = (),
               scan: ScanParams = _SCAN, track: TrackParams = _TRACK,
               mask: MaskSpec = _MASK, caption: str | None = None,
               detector: Detector | None = None,
               progress: ProgressCallback | None = None) -> RedactionPlan:
    """Plan the frames ``chunk`` plans (its own and the overlap), cut from ``source`` into
    ``work`` (removed afterwards). The plan's frames count from ``chunk.plan_start``; its
    ``source`` is the cut, not the recording (:func:`merge_chunk_plans` puts it back).

    ``present``: where ``source`` holds only some bytes of the recording (a chunk job
    fetched ``chunk.ranges``), those bytes; a packet the cut needs outside them is an error.

    Raises MediaError, ChunkError (the cut is not the frames planned).
    """
    src = Path(source)
    idx = _index(src)
    if chunk.plan_stop > idx.frame_count:
        raise ChunkError(f"chunk {chunk.index} plans frames up to {chunk.plan_stop - 1}, "
                         f"{src.name} has {idx.frame_count}: the layout is for other footage")
    folder = Path(tempfile.mkdtemp(prefix=f".chunk-{chunk.index}-", dir=Path(work)))
    try:
        cut = _cut(src, idx, chunk.plan_start, chunk.plan_stop, folder / "plan.mp4", present)
        plan = plan_video(cut, scan=scan, track=track, mask=mask, caption=caption,
                          detector=detector, progress=progress)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if plan.source.frame_count != chunk.plan_stop - chunk.plan_start:
        raise ChunkError(f"chunk {chunk.index} decoded {plan.source.frame_count} frames, "
                         f"not {chunk.plan_stop - chunk.plan_start}")
    return plan


@dataclass
class _Piece:
    """One chunk's track, in the recording's frame numbers."""

    chunk: int
    track: TrackPlan
    boxes: dict[int, list[FrameBox]]  # frame -> the track's boxes (its own first)
    best_frame: int | None


def _pieces(i: int, plan: RedactionPlan, offset: int) -> list[_Piece]:
    out = []
    for t in plan.tracks:
        boxes: dict[int, list[FrameBox]] = {}
        runs = [(t.start, t.boxes), *((r.start, r.boxes) for r in t.extra)]
        for start, rows in runs:
            for k, b in enumerate(rows):
                if b is not None:
                    boxes.setdefault(offset + start + k, []).append(
                        (b[0], b[1], b[2], b[3], b[4]))
        out.append(_Piece(i, t, boxes, None if t.best_frame is None else offset + t.best_frame))
    return out


def _match(left: list[int], right: list[int], pieces: list[_Piece], frames: range,
           people: Partition) -> int:
    """Join the pieces of two neighbouring chunks that follow the same face over ``frames``
    (the frames both planned), best pairs first, each piece at most once. Returns the joins."""
    pairs: list[tuple[float, int, int]] = []
    for a in left:
        for b in right:
            ious = [_iou(pieces[a].boxes[f][0], pieces[b].boxes[f][0]) for f in frames
                    if f in pieces[a].boxes and f in pieces[b].boxes]
            if len(ious) >= 2 and (score := sum(ious) / len(ious)) >= JOIN_IOU:
                pairs.append((score, a, b))
    used: set[int] = set()
    joins = 0
    for _, a, b in sorted(pairs, reverse=True):
        if a in used or b in used:
            continue
        used.update((a, b))
        people.union(a, b)
        joins += 1
    return joins


def _runs(frames: dict[int, FrameBox]) -> list[BoxRun]:
    """Consecutive frames with a box, as runs."""
    runs: list[BoxRun] = []
    for f in sorted(frames):
        if runs and runs[-1].end == f - 1:
            last = runs[-1]
            runs[-1] = BoxRun(start=last.start, boxes=[*last.boxes, frames[f]])
        else:
            runs.append(BoxRun(start=f, boxes=[frames[f]]))
    return runs


def merge_chunk_plans(layout: ChunkLayout, plans: Sequence[RedactionPlan], *,
                      source: SourceInfo, times: Sequence[float],
                      audio: Sequence[AudioEdit] = ()) -> RedactionPlan:
    """One plan of the whole recording from the chunks' plans (in layout order).

    Each chunk's boxes on the frames it owns are kept; a chunk's box on a frame its
    neighbour owns is kept only where none of the owner's boxes covers it; tracks that follow
    one face across a border are one track (see the module docstring). Track ids are
    renumbered 1.. in order of first frame. ``times`` are the recording's frame times (review
    spans' times). Raises ChunkError when the plans do not fit the layout.
    """
    chunks = layout.chunks
    if len(plans) != len(chunks):
        raise ChunkError(f"{len(plans)} chunk plans for a layout of {len(chunks)} chunks")
    for c, p in zip(chunks, plans, strict=True):
        if p.source.frame_count != c.plan_stop - c.plan_start:
            raise ChunkError(f"chunk {c.index}'s plan has {p.source.frame_count} frames, the "
                             f"layout plans {c.plan_stop - c.plan_start}")
    pieces: list[_Piece] = []
    per_chunk: list[list[int]] = []
    for c, p in zip(chunks, plans, strict=True):
        mine = _pieces(c.index, p, c.plan_start)
        per_chunk.append(list(range(len(pieces), len(pieces) + len(mine))))
        pieces += mine
    owner = [0] * layout.frame_count
    for c in chunks:
        owner[c.start:c.stop] = [c.index] * (c.stop - c.start)

    people = Partition(range(len(pieces)))
    joins = 0
    for left, right in zip(chunks, chunks[1:], strict=False):
        shared = range(right.plan_start, left.plan_stop)
        joins += _match(per_chunk[left.index], per_chunk[right.index], pieces, shared, people)

    # Boxes kept per piece: its own frames, and a neighbour's frames where the neighbour
    # has nothing over the same face.
    owned_boxes: dict[int, list[FrameBox]] = {}
    for piece in pieces:
        for f, boxes in piece.boxes.items():
            if owner[f] == piece.chunk:
                owned_boxes.setdefault(f, []).extend(boxes)
    kept: list[dict[int, list[FrameBox]]] = []
    for piece in pieces:
        keep: dict[int, list[FrameBox]] = {}
        for f, boxes in piece.boxes.items():
            if owner[f] == piece.chunk:
                keep[f] = boxes
                continue
            rest = [b for b in boxes
                    if not any(_iou(b, o) >= COVERED_IOU for o in owned_boxes.get(f, []))]
            if rest:
                keep[f] = rest
        kept.append(keep)

    groups: dict[int, list[int]] = {}
    for n in range(len(pieces)):
        groups.setdefault(people.find(n), []).append(n)
    built: list[tuple[int, FrameBox, list[int], dict[int, list[FrameBox]]]] = []
    for members in groups.values():
        frames: dict[int, list[FrameBox]] = {}
        # The owning chunk's boxes first on each frame: they are the track's own.
        for n in sorted(members, key=lambda m: pieces[m].chunk):
            for f, boxes in kept[n].items():
                frames.setdefault(f, [])
                if owner[f] == pieces[n].chunk:
                    frames[f][:0] = boxes
                else:
                    frames[f] += boxes
        if frames:
            first = min(frames)
            built.append((first, frames[first][0], members, frames))
    built.sort(key=lambda b: (b[0], b[1][:4]))

    ids: dict[int, int] = {}
    tracks: list[TrackPlan] = []
    for new_id, (first, _, members, frames) in enumerate(built, start=1):
        for n in members:
            ids[n] = new_id
        last = max(frames)
        rows: list[FrameBox | None] = [frames[f][0] if f in frames else None
                                       for f in range(first, last + 1)]
        extra_frames: list[dict[int, FrameBox]] = []
        for f, boxes in frames.items():
            for k, b in enumerate(boxes[1:]):
                while len(extra_frames) <= k:
                    extra_frames.append({})
                extra_frames[k][f] = b
        extra = [run for layer in extra_frames for run in _runs(layer)]
        best = max((pieces[n] for n in members
                    if pieces[n].best_frame in frames and pieces[n].track.quality is not None),
                   key=lambda p: p.track.quality or 0.0, default=None)
        tracks.append(TrackPlan(
            id=new_id, start=first, boxes=rows, extra=extra,
            quality=None if best is None else best.track.quality,
            best_frame=None if best is None else best.best_frame))

    review: set[ReviewSpan] = set()
    for c, p in zip(chunks, plans, strict=True):
        local = {pieces[n].track.id: n for n in per_chunk[c.index]}
        for r in p.review:
            lo = max(c.start, c.plan_start + r.start)
            hi = min(c.stop - 1, c.plan_start + r.end)
            if lo > hi or r.track_id not in local or local[r.track_id] not in ids:
                continue
            related = None
            if r.related_track is not None and r.related_track in local:
                related = ids.get(local[r.related_track])
            tid = ids[local[r.track_id]]
            if r.reason == "identity" and (related is None or related == tid):
                continue  # the two were joined after all, or one was dropped
            review.add(ReviewSpan(track_id=tid, start=lo, end=hi,
                                  start_time=round(times[lo], 3), end_time=round(times[hi], 3),
                                  reason=r.reason, min_confidence=r.min_confidence,
                                  related_track=related))
    spans = sorted(review, key=lambda r: (r.start, r.track_id, r.reason, r.end))

    head = plans[0]
    stats: dict[str, int] = {}
    for p in plans:
        for k, v in (p.parameters.get("stats") or {}).items():
            if isinstance(v, int | float):
                stats[k] = stats.get(k, 0) + int(v)
    parameters = {**head.parameters, "stats": stats,
                  "chunks": {**layout.to_dict(), "joined_at_borders": joins,
                             "software_version": software_version()}}
    return RedactionPlan(source=source, mask=head.mask, caption=head.caption, tracks=tracks,
                         audio=list(audio), review=spans, parameters=parameters)


#: A mask box is the tracker's face box grown by a fifth of its size on each side
#: (``TrackParams.box_pad``): the face is this share of it, as identity reads mask boxes.
_FACE_OF_MASK = 1 / 1.4
#: Appearance samples read per track for the join across chunks, spread evenly over the
#: frames where its face is large enough to compare and wholly in the picture (at most what
#: a one-pass plan keeps per track, ``AppearanceLog.limit``). A face cut by the picture's
#: edge is not that face's texture: on the test footage, a face walking out of the bottom
#: measured 0.14 from its own return with those frames and 0.08 without (same-face threshold
#: after leaving 0.15), and its samples at the edge looked like a change of face.
SAMPLES_PER_TRACK = AppearanceLog.limit


def _unseen_pairs(plan: RedactionPlan, layout: ChunkLayout) -> list[tuple[int, int]]:
    """Pairs (earlier track id, later track id) where the earlier ends before the later
    starts and no chunk planned both the earlier's last frame and the later's first: no
    chunk's own identity join could have judged them."""
    pairs = []
    for a in plan.tracks:
        for b in plan.tracks:
            if a.end < b.start and not any(c.plan_start <= a.end and b.start < c.plan_stop
                                           for c in layout.chunks):
                pairs.append((a.id, b.id))
    return pairs


def _face(box: Sequence[float]) -> tuple[float, float, float, float]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * _FACE_OF_MASK / 2, (box[3] - box[1]) * _FACE_OF_MASK / 2
    return cx - hw, cy - hh, cx + hw, cy + hh


def join_across_chunks(source: str | Path, plan: RedactionPlan, layout: ChunkLayout, *,
                       times: Sequence[float], params: IdentityParams = _IDENTITY,
                       ) -> RedactionPlan:
    """Join the tracks of one person who left in one chunk and came back in a later one.

    Each chunk's plan joined its own tracks by appearance (:mod:`redaction.identity`), and
    :func:`merge_chunk_plans` joined tracks across each border by position; a person whose
    leaving and return no single chunk planned is still two tracks. For each such pair of
    tracks (:func:`_unseen_pairs`), both tracks' faces are sampled from ``source`` (frames
    read from the keyframe before them, :func:`redaction.thumbnail.frames_at`, not the whole
    recording), and :func:`~redaction.identity.group_people` decides over all the plan's
    tracks, with its one-pass rules (gap, speed, crowding, two places at once). Only its
    joins of such pairs are taken (what the chunks judged stays judged), and the joined
    tracks are merged losslessly (:func:`~redaction.identity.merge_tracks`); a pair it kept
    apart in doubt gets an ``identity`` review span on the later track, as one pass gives.
    ``times`` are the recording's frame times (review spans' times);
    ``parameters.chunks.joined_across_gaps`` counts the joins. Raises MediaError.
    """
    pairs = _unseen_pairs(plan, layout)
    chunks = dict(plan.parameters.get("chunks") or {})
    if not pairs:
        return plan.model_copy(update={"parameters": {
            **plan.parameters, "chunks": {**chunks, "joined_across_gaps": 0}}})
    by_id = {t.id: t for t in plan.tracks}
    width, height = plan.source.width, plan.source.height
    wanted: dict[int, list[tuple[int, TrackPlan]]] = {}
    for tid in sorted({i for pair in pairs for i in pair}):
        t = by_id[tid]
        frames = [t.start + k for k, b in enumerate(t.boxes)
                  if b is not None and (b[3] - b[1]) * _FACE_OF_MASK >= params.min_face
                  and b[0] > 0 and b[1] > 0 and b[2] < width and b[3] < height]
        step = max(1, len(frames) / SAMPLES_PER_TRACK)
        for f in sorted({frames[int(k * step)] for k in range(min(len(frames),
                                                                  SAMPLES_PER_TRACK))}):
            wanted.setdefault(f, []).append((tid, t))
    log = AppearanceLog(every=1, limit=SAMPLES_PER_TRACK, min_face=params.min_face)
    for read in frames_at(source, wanted):
        f = read.frame.index
        masks = []
        for tid, t in wanted[f]:
            b = t.boxes[f - t.start]
            if b is not None:
                masks.append(MaskBox(tid, (b[0], b[1], b[2], b[3]), b[4], False))
        log.add(f, read.frame.image, masks)
    tracklets = [Track(t.id, [Observation(t.start + k, _face(b), b[4])
                              for k, b in enumerate(t.boxes) if b is not None])
                 for t in plan.tracks]
    fps = float(Fraction(plan.source.fps))
    people = group_people(tracklets, log, fps=fps, params=params)
    unseen = {frozenset(pair) for pair in pairs}
    joined = Partition(range(len(plan.tracks)))
    slot = {t.id: n for n, t in enumerate(plan.tracks)}
    joins = 0
    # Swaps inside a chunk's window were that chunk's to cut; a piece group_people cut here
    # stands for its whole track (a join of any piece of x with any piece of y joins them).
    origin = {piece.id: tid for tid, parts in people.pieces.items() for _, piece in parts}
    for group in people.groups:
        members = sorted({origin.get(i, i) for i in group} & by_id.keys())
        for x, y in itertools.combinations(members, 2):
            if frozenset((x, y)) in unseen and joined.find(slot[x]) != joined.find(slot[y]):
                joined.union(slot[x], slot[y])
                joins += 1
    groups: dict[int, list[int]] = {}
    for t in plan.tracks:
        groups.setdefault(joined.find(slot[t.id]), []).append(t.id)
    tracks, mapping = merge_tracks(plan.tracks, list(groups.values()))
    review = [r.model_copy(update={
        "track_id": mapping[r.track_id],
        "related_track": None if r.related_track is None else mapping.get(r.related_track)})
        for r in plan.review if r.track_id in mapping]
    review = [r for r in review if not (r.reason == "identity"
                                        and r.related_track in (None, r.track_id))]
    new = {t.id: t for t in tracks}
    seen = {(r.track_id, r.related_track) for r in review if r.reason == "identity"}
    for x, y in ((origin.get(i, i), origin.get(j, j)) for i, j in people.doubts):
        if frozenset((x, y)) not in unseen or x not in mapping or y not in mapping:
            continue
        early, late = sorted((mapping[x], mapping[y]), key=lambda i: (new[i].start, i))
        if early == late or (late, early) in seen:
            continue
        seen.add((late, early))
        later = new[late]
        first = next(later.start + k for k, box in enumerate(later.boxes) if box is not None)
        last = min(later.end, first + max(1, round(fps)))
        confs = [box[4] for box in later.boxes[first - later.start:last - later.start + 1]
                 if box is not None]
        review.append(ReviewSpan(
            track_id=late, start=first, end=last, start_time=round(times[first], 3),
            end_time=round(times[last], 3), reason="identity",
            min_confidence=min(confs) if confs else 0.0, related_track=early))
    review.sort(key=lambda r: (r.start, r.track_id, r.reason, r.end))
    return plan.model_copy(update={"tracks": tracks, "review": review, "parameters": {
        **plan.parameters, "chunks": {**chunks, "joined_across_gaps": joins}}})


def source_info(source: str | Path, frame_count: int, times: Sequence[float]) -> SourceInfo:
    """The plan's record of ``source`` (name, SHA-256, size, frames, rate, duration), as a
    one-pass plan records it. Raises MediaError."""
    src = Path(source)
    info = probe(src)
    fps = Fraction(info.fps).limit_denominator(1_000_000) if info.fps else Fraction(25)
    duration = times[-1] + 1.0 / float(fps)
    if info.duration is not None and abs(info.duration - duration) < 2.0 / float(fps):
        duration = info.duration
    return SourceInfo(name=src.name, sha256=_sha256(src), width=info.width,
                      height=info.height, frame_count=frame_count,
                      fps=f"{fps.numerator}/{fps.denominator}", duration=round(duration, 6))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class _Cancelled(Exception):
    """Another chunk failed: stop this one at its next progress report."""


class _Combined:
    """One progress report over chunks running at once (frames done of the whole)."""

    def __init__(self, stage: str, total: int, progress: ProgressCallback | None) -> None:
        self.stage, self.total, self.progress = stage, total, progress
        self.done: dict[int, int] = {}
        self.lock = threading.Lock()
        self.failed = threading.Event()
        import time

        self._clock = time.perf_counter
        self.started = self._clock()

    def part(self, index: int) -> ProgressCallback:
        def report(p: Progress) -> None:
            if self.failed.is_set():
                raise _Cancelled
            with self.lock:
                self.done[index] = p.done
                done = sum(self.done.values())
            if self.progress is not None:
                self.progress(Progress(self.stage, min(done, self.total), self.total, p.tracks,
                                       self._clock() - self.started))
        return report


def _parallel(jobs: Sequence[Callable[[], Any]], workers: int, combined: _Combined) -> list[Any]:
    """Run ``jobs`` on ``workers`` threads; the first failure stops the rest and is raised."""
    with ThreadPoolExecutor(max_workers=max(1, workers),
                            thread_name_prefix="redaction-chunk") as pool:
        futures = [pool.submit(job) for job in jobs]
        errors: list[BaseException] = []
        results = []
        for fut in futures:
            try:
                results.append(fut.result())
            except _Cancelled:
                results.append(None)
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the rest stop
                combined.failed.set()
                errors.append(exc)
                results.append(None)
    if errors:
        raise errors[0]
    return results


def plan_chunked(source: str | Path, *, chunk_s: float, overlap_s: float, workers: int = 1,
                 scan: ScanParams = _SCAN, track: TrackParams = _TRACK,
                 mask: MaskSpec = _MASK, caption: str | None = None,
                 audio: Sequence[AudioEdit] = (), detector: Detector | None = None,
                 progress: ProgressCallback | None = None,
                 chunk_planner: ChunkPlanner | None = None) -> RedactionPlan:
    """Plan ``source`` in chunks on ``workers`` threads (or with ``chunk_planner``) and merge
    the chunk plans (one pass, as :func:`~redaction.pipeline.plan_video`, when the footage
    is not split).

    Nothing is written beside a hidden working folder next to ``source``, removed afterwards.
    Raises MediaError, ChunkError, and whatever ``chunk_planner`` raises.
    """
    src = Path(source)
    idx = _index(src)
    layout = _layout(idx, chunk_s, overlap_s)
    if len(layout.chunks) == 1:
        return plan_video(src, scan=scan, track=track, mask=mask, caption=caption, audio=audio,
                          detector=detector, progress=progress)
    if chunk_planner is not None:
        plans = list(chunk_planner(layout))
        merged = merge_chunk_plans(layout, plans,
                                   source=source_info(src, idx.frame_count, idx.times),
                                   times=idx.times, audio=audio)
        return join_across_chunks(src, merged, layout, times=idx.times)
    combined = _Combined("plan", sum(c.plan_stop - c.plan_start for c in layout.chunks),
                         progress)
    work = Path(tempfile.mkdtemp(prefix=f".{src.name}.chunks-", dir=src.parent))
    try:
        plans = _parallel([
            functools.partial(plan_chunk, src, c, work=work, scan=scan, track=track, mask=mask,
                              caption=caption, detector=detector,
                              progress=combined.part(c.index))
            for c in layout.chunks], workers, combined)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    merged = merge_chunk_plans(layout, plans,
                               source=source_info(src, idx.frame_count, idx.times),
                               times=idx.times, audio=audio)
    return join_across_chunks(src, merged, layout, times=idx.times)


# --- rendering -----------------------------------------------------------------------------


def owned_plan(plan: RedactionPlan, chunk: Chunk) -> RedactionPlan:
    """The part of ``plan`` that ``chunk`` owns, in the chunk's frame numbers: what a render
    of the chunk masks (a chunk render job's plan). Its ``source`` is still the recording's,
    with the chunk's frame count; :func:`render_chunk` binds it to the cut. Audio is carried
    at the join and review spans are for people, not the render, so neither is kept."""
    a, b = chunk.start, chunk.stop

    def window(start: int, rows: Sequence[Any]) -> tuple[int, list[Any]] | None:
        lo, hi = max(start, a), min(start + len(rows), b)
        if lo >= hi:
            return None
        part = list(rows[lo - start:hi - start])
        while part and part[0] is None:
            part.pop(0)
            lo += 1
        while part and part[-1] is None:
            part.pop()
        return (lo - a, part) if part else None

    # Each run of boxes (a track's own, each of its extra runs) is a track of the sub-plan:
    # the masks are the same, and no run can fall outside its track's trimmed frames.
    runs: list[tuple[int, Sequence[Any]]] = []
    for t in plan.tracks:
        if not t.keep:  # kept: nothing to mask
            runs += [(t.start, t.boxes), *((r.start, r.boxes) for r in t.extra)]
    parts = [w for start, rows in runs if (w := window(start, rows)) is not None]
    tracks = [TrackPlan(id=n, start=w[0], boxes=w[1]) for n, w in enumerate(parts, start=1)]
    manual = []
    for m in plan.manual:
        frames = [f for f in range(max(a, m.start), min(b, m.last + 1))]
        boxes = [(f - a, m.box_at(f)) for f in frames]
        keys = [Keyframe(frame=f, box=box) for f, box in boxes if box is not None]
        if keys:  # every frame a keyframe: the sub-plan masks exactly the plan's boxes
            manual.append(ManualBox(id=m.id, keyframes=keys))
    source = plan.source.model_copy(update={"frame_count": b - a})
    return plan.model_copy(update={"source": source, "tracks": tracks, "manual": manual,
                                   "audio": [], "review": []})


def render_chunk(source: str | Path, chunk: Chunk, owned: RedactionPlan, output: str | Path, *,
                 present: Sequence[tuple[int, int]] = (),
                 encode: EncodeParams = EncodeParams(),
                 progress: ProgressCallback | None = None) -> Path:
    """Cut ``chunk``'s frames from ``source`` (stream copy) and render ``owned``
    (:func:`owned_plan`) over them into ``output``: one part of a chunked render, joined by
    :func:`render_chunked`. ``present`` as for :func:`plan_chunk`. Raises ChunkError (the
    cut is not the chunk's frames, or the plan is another chunk's), and what
    :func:`~redaction.pipeline.render_plan` raises; on any error no output is left."""
    src = Path(source)
    return _render_chunk(src, _index(src), chunk, owned, Path(output), present=present,
                         encode=encode, progress=progress)


def _render_chunk(src: Path, idx: _Index, chunk: Chunk, owned: RedactionPlan, out: Path, *,
                  present: Sequence[tuple[int, int]], encode: EncodeParams,
                  progress: ProgressCallback | None) -> Path:
    """:func:`render_chunk` with the source's packet index already read (a render of every
    chunk on threads reads it once, not once a chunk)."""
    if owned.source.frame_count != chunk.stop - chunk.start:
        raise ChunkError(f"the plan given for chunk {chunk.index} covers "
                         f"{owned.source.frame_count} frames, the chunk "
                         f"{chunk.stop - chunk.start}: it is another chunk's")
    cut = out.with_name(f".{out.name}.cut.mp4")
    try:
        _cut(src, idx, chunk.start, chunk.stop, cut, present)
        info = probe(cut)
        bound = owned.model_copy(update={"source": owned.source.model_copy(update={
            "name": cut.name, "sha256": _sha256(cut), "width": info.width,
            "height": info.height})})
        render_plan(cut, bound, out, encode=encode, progress=progress)
    finally:
        cut.unlink(missing_ok=True)
    return out


#: Renders a layout's chunks elsewhere (chunk render jobs on the queue, see :mod:`api.jobs`):
#: given the layout, the whole plan, the encoder settings and a folder, it returns each
#: chunk's rendered part (:func:`render_chunk`'s output) in that folder, in chunk order.
ChunkRenderer = Callable[[ChunkLayout, RedactionPlan, EncodeParams, Path], Sequence[Path]]


def _join(parts: Sequence[Path], layout: ChunkLayout, idx: _Index, source: Path,
          plan: RedactionPlan, dest: Path) -> None:
    """Join the rendered chunks into ``dest`` (MP4): video packets copied, re-timed to the
    source's frames; audio carried over the whole source. Raises EncodeError."""
    try:
        with av.open(str(parts[0])) as first:
            template = first.streams.video[0]
            extradata = template.codec_context.extradata
            with av.open(str(dest), mode="w", format="mp4",
                         options={"movflags": "+faststart"}) as out:
                vout = out.add_stream_from_template(template)
                vout.time_base = _TICKS
                with av.open(str(source)) as s:
                    has_audio = bool(s.streams.audio)
                carrier = _AudioCarrier(
                    source, out, [(e.start, e.end) for e in plan.audio if e.action == "mute"],
                    [(e.start, e.end) for e in plan.audio if e.action == "bleep"],
                ) if has_audio else None
                last_dts: int | None = None
                try:
                    for part, chunk in zip(parts, layout.chunks, strict=True):
                        last_dts = _copy_part(part, chunk, idx, extradata, vout, out, carrier,
                                              last_dts)
                    if carrier is not None:
                        out.mux(list(carrier.packets_until(float("inf"))))
                finally:
                    if carrier is not None:
                        carrier.close()
    except av.error.FFmpegError as exc:
        raise EncodeError(f"joining the rendered chunks failed: {exc}") from exc


def _copy_part(part: Path, chunk: Chunk, idx: _Index, extradata: bytes | None, vout: Any,
               out: Any, carrier: _AudioCarrier | None, last_dts: int | None) -> int | None:
    with av.open(str(part)) as inp:
        vs = inp.streams.video[0]
        if vs.codec_context.extradata != extradata:
            # Every chunk is one encoder's output with the same settings; parameter sets that
            # differ would decode wrongly after the join, so it is refused, not hidden.
            raise EncodeError(f"chunk {chunk.index}'s H.264 parameter sets differ from the "
                              "first chunk's: its packets cannot be joined by copying")
        tb = _time_base(vs)
        packets = [(p, int(p.pts), int(p.pts if p.dts is None else p.dts))
                   for p in inp.demux(vs) if p.pts is not None and p.size > 0]
        order = {pts: k for k, pts in enumerate(sorted(pts for _, pts, _ in packets))}
        if len(order) != chunk.stop - chunk.start:
            raise EncodeError(f"chunk {chunk.index} rendered {len(order)} frames, not "
                              f"{chunk.stop - chunk.start}")
        for p, in_pts, in_dts in packets:
            # The k-th frame shown in this chunk is the source's frame start + k, shown at
            # the source's time; the encoder's reorder delay (pts - dts) is kept.
            pts = round(Fraction(idx.times[chunk.start + order[in_pts]]) / _TICKS)
            dts = pts - round((in_pts - in_dts) * tb / _TICKS)
            if last_dts is not None and dts <= last_dts:
                raise EncodeError(f"chunk {chunk.index}: timestamps do not rise at the join "
                                  f"({dts} after {last_dts})")
            last_dts = dts
            if carrier is not None:
                out.mux(list(carrier.packets_until(float(dts * _TICKS))))
            p.stream = vout
            p.time_base = _TICKS
            p.pts, p.dts = pts, dts
            out.mux(p)
    return last_dts


def _check_join(dest: Path, idx: _Index) -> None:
    """The joined file has every source frame once, each at its source time (to the tick)."""
    with av.open(str(dest)) as c:
        vs = c.streams.video[0]
        tb = _time_base(vs)
        zero = 0 if c.start_time is None else Fraction(c.start_time, av.time_base)
        got = sorted(float(p.pts * tb - zero) for p in c.demux(vs)
                     if p.pts is not None and p.size > 0)
    if len(got) != idx.frame_count:
        raise EncodeError(f"the joined copy has {len(got)} frames, the source "
                          f"{idx.frame_count}")
    base = idx.times[0]
    worst = max(abs(g - (t - base)) for g, t in zip(got, idx.times, strict=True))
    if worst > float(_TICKS) * 2:
        raise EncodeError(f"the joined copy's frame times are up to {worst * 1000:.2f} ms "
                          "off the source's")


def render_chunked(source: str | Path, plan: RedactionPlan, output: str | Path, *,
                   chunk_s: float, workers: int = 1, encode: EncodeParams = EncodeParams(),
                   progress: ProgressCallback | None = None,
                   chunk_renderer: ChunkRenderer | None = None) -> RenderResult:
    """Render ``plan`` over ``source`` in chunks of about ``chunk_s`` seconds on ``workers``
    threads (or by ``chunk_renderer``: chunk render jobs on the queue) and join them without
    re-encoding (one pass, as :func:`~redaction.pipeline.render_plan`, when the footage is
    not split).

    The copy shows the same masks on the same frames as :func:`render_plan`'s and keeps the
    source's frame count and frame times. Raises like :func:`render_plan`, and ChunkError;
    on any error no output file (and no intermediate) is left.
    """
    src, out = Path(source), Path(output)
    # The same refusals as render_plan's, in the same order.
    if out.resolve() == src.resolve():
        raise RedactionError("output must not overwrite the source footage")
    if not out.parent.is_dir():
        raise RedactionError(f"output directory does not exist: {out.parent}")
    idx = _index(src)
    layout = _layout(idx, chunk_s, 0.0)
    if len(layout.chunks) == 1:
        return render_plan(src, plan, out, encode=encode, progress=progress)
    digest = _sha256(src)
    if digest != plan.source.sha256:
        raise PlanError(f"plan is for {plan.source.name} (sha256 {plan.source.sha256[:12]}...), "
                        f"not {src.name} (sha256 {digest[:12]}...)")
    if idx.frame_count != plan.source.frame_count:
        raise PlanError(f"{src.name} has {idx.frame_count} frames, the plan "
                        f"{plan.source.frame_count}: the plan is for other footage")
    combined = _Combined("render", idx.frame_count, progress)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.chunks-", dir=out.parent))
    import time

    started = time.perf_counter()
    try:
        def render(chunk: Chunk) -> Path:
            return _render_chunk(src, idx, chunk, owned_plan(plan, chunk),
                                 work / f"part-{chunk.index}.mp4", present=(), encode=encode,
                                 progress=combined.part(chunk.index))

        if chunk_renderer is not None:
            parts = list(chunk_renderer(layout, plan, encode, work))
        else:
            parts = _parallel([functools.partial(render, c) for c in layout.chunks], workers,
                              combined)
        joined = work / "joined.mp4"
        _join(parts, layout, idx, src, plan, joined)
        _check_join(joined, idx)
        info = probe(joined)
        digest = _sha256(joined)
        joined.replace(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    return RenderResult(
        output=str(out), sha256=digest, plan_sha256=plan.sha256(),
        source_sha256=plan.source.sha256, software_version=software_version(),
        parameters={"mask": plan.mask.model_dump(mode="json"), "caption": plan.caption,
                    "audio": [a.model_dump(mode="json") for a in plan.audio],
                    "encode": encode.to_dict(), "plan_parameters": plan.parameters,
                    "chunks": {**layout.to_dict(), "workers": workers,
                               "join": "stream copy"}},
        frame_count=idx.frame_count,
        duration=round(info.duration if info.duration is not None else plan.source.duration, 6),
        stats={"fps": round(idx.frame_count / elapsed, 2) if elapsed else 0,
               "tracks": len(plan.tracks), "review_spans": len(plan.review),
               "seconds": round(elapsed, 3), "chunks": len(layout.chunks)})


def redact_chunked(source: str | Path, output: str | Path, *, chunk_s: float, overlap_s: float,
                   workers: int = 1, scan: ScanParams = _SCAN, track: TrackParams = _TRACK,
                   mask: MaskSpec = _MASK, caption: str | None = None,
                   audio: Sequence[AudioEdit] = (), encode: EncodeParams = EncodeParams(),
                   detector: Detector | None = None,
                   progress: ProgressCallback | None = None,
                   ) -> tuple[RedactionPlan, RenderResult]:
    """Plan and render ``source`` into ``output``: in chunks (:func:`plan_chunked`, then
    :func:`render_chunked`) when it is long enough to split, otherwise in one pass
    (:func:`~redaction.pipeline.redact_video`). Returns the plan and the render; raises like
    them, and on any error no output file is left."""
    src = Path(source)
    if chunk_s <= 0 or len(chunk_layout(src, chunk_s=chunk_s, overlap_s=overlap_s).chunks) == 1:
        return redact_video(src, output, scan=scan, track=track, mask=mask, caption=caption,
                            audio=audio, encode=encode, detector=detector, progress=progress)
    plan = plan_chunked(src, chunk_s=chunk_s, overlap_s=overlap_s, workers=workers, scan=scan,
                        track=track, mask=mask, caption=caption, audio=audio,
                        detector=detector, progress=progress)
    return plan, render_chunked(src, plan, output, chunk_s=chunk_s, workers=workers,
                                encode=encode, progress=progress)
