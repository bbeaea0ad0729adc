"""One person, one track: joining the tracks that the tracker split or doubled.

The tracker links detections frame to frame. It splits one person into several tracks when
the detector misses them for longer than ``max_gap_seconds`` (a turned head, an occlusion,
someone leaving the picture and coming back), and it doubles a face when a second detection
of it (another scale, a low-scoring box around the head) is not linked to the first. For a
subject access request that is the difference between keeping the requester visible and
blurring them in half their frames. After tracking, :func:`join_people` groups tracks into
people, in this order:

1. **Swaps**: a track whose face changes part way (the tracker swapped two faces where they
   crossed: the mean appearance of the samples either side differs by ``different``) is
   cut there, halfway between its last detection of one face and first of the other.
2. **Same place, same time** (duplicates): two tracks seen at the same time whose face boxes
   are one box (``duplicate_iou``), or an unsure (or too small to compare) box lying inside
   a sure face's box (``inside``: a part of the face detected again at another scale), at
   most of the looks they share
   (``duplicate_share``) are one face, unless their pictures are plainly different, either
   track's detections (sure or not) stray more than ``stray`` face sizes from the other's
   face while both are seen (the tracker jumped from somebody else), either is also where
   a third person's track is, or is over a track both before and after it was cut at a
   change of face (a crossing: position alone cannot say whose face is whose), or, where
   appearance cannot compare them, one slides across the other by more than ``drift``
   face sizes (a person passing in front).
3. **Two places at once** (a person cannot be): two tracks seen at the same time in
   different places (overlapping at under ``apart_share`` of shared looks) are two people,
   and no later join may put them into one person.
4. **Split by a gap** (misses, occlusion, leaving and returning): a person's last look in one
   group and first look in a later one are joined when their faces match (local binary
   pattern texture, :func:`describe`, averaged over each track) and, for a gap shorter than
   ``short_gap_seconds``, the head could have moved that far (at most ``max_speed`` face
   sizes a second) and nobody else within that reach looks like them. After a longer gap a
   person may come back anywhere, so the face alone decides, with a stricter threshold.

Identity is judged on each track's *sure* detections (``sure_score``): the tracker often
links a low-scoring box beside the face (an ear, hair, a collar) before or after the face
itself, and judged on those one person's two tracks look apart. A track with no sure
detection is mostly not a face; it joins a person only as a duplicate, never across a gap.
Faces under ``min_face`` px are not compared by appearance at all.

Joining two different people would expose the wrong person when one is kept, so the join is
conservative: when the evidence is mixed, the tracks stay apart and the plan gets a review
span (``reason: identity``, ``related_track``) asking a person to check them. Not joining
one person's tracks costs a reviewer a click; joining two people costs a breach.

The joined track is lossless: where two of its tracks overlap in time, the plan keeps both
boxes (``TrackPlan.extra``), so rendering the plan masks exactly what one-pass rendering did
and keeping the person keeps every box of theirs. Appearance is measured on the face only:
a body descriptor cannot be checked on this project's synthetic footage, which has no bodies,
and an untested feature would decide identities unmeasured.

The face descriptor and its per-track samples are :mod:`redaction.appearance`.

The rules are :mod:`redaction.grouping` (:func:`group_people` decides which tracks are one
person); this module applies the decision to the plan (:func:`join_people`,
:func:`merge_tracks`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from redaction.appearance import AppearanceLog, describe, distance
from redaction.grouping import IdentityParams, People, group_people
from redaction.plan import BoxRun, ReviewSpan, TrackPlan
from redaction.track import Track

__all__ = ["AppearanceLog", "IdentityParams", "People", "describe", "distance", "group_people",
           "join_people", "merge_tracks"]

# The default (immutable), shared by join_people's signature.
_IDENTITY = IdentityParams()


# -- the plan: one TrackPlan per person --------------------------------------------------


def merge_tracks(tracks: Sequence[TrackPlan], groups: Sequence[Sequence[int]]
                 ) -> tuple[list[TrackPlan], dict[int, int]]:
    """One plan track per group of ``tracks`` (ids), numbered 1.. in order of first frame;
    returns them and the map from old track id to new.

    Nothing is lost: on each frame the joined track's box is that of its best-quality
    member seen there; the other members' boxes on frames where it already has one go to
    ``extra``. Its ``best_frame``/``quality`` are its best member's, ``keep`` is any
    member's. Tracks in no group stay as they are (renumbered).
    """
    by_id = {t.id: t for t in tracks}
    grouped = {i for g in groups for i in g}
    all_groups = [list(g) for g in groups if any(i in by_id for i in g)]
    all_groups += [[t.id] for t in tracks if t.id not in grouped]
    all_groups = [[i for i in g if i in by_id] for g in all_groups]
    all_groups.sort(key=lambda g: (min(by_id[i].start for i in g), min(g)))
    out: list[TrackPlan] = []
    mapping: dict[int, int] = {}
    for new_id, group in enumerate(all_groups, start=1):
        members = sorted((by_id[i] for i in group),
                         key=lambda t: (-(t.quality or 0.0), t.start, t.id))
        for m in members:
            mapping[m.id] = new_id
        if len(members) == 1:
            out.append(members[0].model_copy(update={"id": new_id}))
            continue
        start = min(m.start for m in members)
        end = max(m.end for m in members)
        rows: list[Any] = [None] * (end - start + 1)
        extra: list[BoxRun] = []
        for m in members:
            run_start: int | None = None
            run: list[Any] = []
            for i, b in enumerate(m.boxes):
                f = m.start + i
                taken = b is not None and rows[f - start] is not None
                if b is not None and not taken:
                    rows[f - start] = b
                if taken:
                    if run_start is None:
                        run_start = f
                    run.append(b)
                elif run_start is not None:
                    extra.append(BoxRun(start=run_start, boxes=run))
                    run_start, run = None, []
            if run_start is not None:
                extra.append(BoxRun(start=run_start, boxes=run))
        best = members[0]
        out.append(TrackPlan(
            id=new_id, start=start, boxes=rows, keep=any(m.keep for m in members),
            label=next((m.label for m in members if m.label), None), quality=best.quality,
            best_frame=best.best_frame, extra=sorted(extra, key=lambda r: r.start)))
    return out, mapping


def _doubt_span(track: TrackPlan, other: int, times: Sequence[float], fps: float,
                at: int | None = None) -> ReviewSpan:
    first = next(i for i, b in enumerate(track.boxes) if b is not None) + track.start
    if at is not None and track.start <= at <= track.end:
        first = at
    last = min(track.end, first + max(1, round(fps)))
    confs = [b[4] for f in range(first, last + 1)
             if (b := track.boxes[f - track.start]) is not None]
    return ReviewSpan(track_id=track.id, start=first, end=last,
                      start_time=round(times[first], 3) if first < len(times) else 0.0,
                      end_time=round(times[last], 3) if last < len(times) else 0.0,
                      reason="identity", min_confidence=min(confs) if confs else 0.0,
                      related_track=other)


def _cut_plan(tracks: Sequence[TrackPlan], review: Sequence[ReviewSpan],
              pieces: dict[int, list[tuple[int, Track]]],
              best: Callable[[Track], tuple[int, float]] | None,
              ) -> tuple[list[TrackPlan], list[ReviewSpan]]:
    """Plan tracks and review spans cut where :func:`group_people` cut the tracks: a piece
    runs from its first observation (the track's start, for the first piece) to the next
    piece's; its best view is its own (``best``: the tracker's rule)."""
    out: list[TrackPlan] = []
    spans = [r for r in review if r.track_id not in pieces]
    for t in tracks:
        parts = pieces.get(t.id)
        if not parts:
            out.append(t)
            continue
        starts = [t.start] + [lo for lo, _ in parts[1:]] + [t.end + 1]
        for (_, part), lo, hi in zip(parts, starts, starts[1:], strict=False):
            rows = t.boxes[lo - t.start:hi - t.start]
            keep = [i for i, b in enumerate(rows) if b is not None]
            if not keep:
                continue
            first, last = keep[0], keep[-1]
            frame, quality = best(part) if best is not None else (None, None)
            if frame is None or not lo + first <= frame <= lo + last \
                    or rows[frame - lo] is None:
                frame, quality = None, None
            out.append(t.model_copy(update={
                "id": part.id, "start": lo + first, "boxes": rows[first:last + 1],
                "best_frame": frame, "quality": quality}))
            for r in review:
                if r.track_id == t.id and r.start < hi and r.end >= lo:
                    spans.append(r.model_copy(update={
                        "track_id": part.id, "start": max(r.start, lo + first),
                        "end": min(r.end, lo + last)}))
    return out, spans


def join_people(tracks: Sequence[TrackPlan], review: Sequence[ReviewSpan],
                tracklets: Sequence[Track], appearance: AppearanceLog, *,
                times: Sequence[float], fps: float,
                params: IdentityParams = _IDENTITY,
                best: Callable[[Track], tuple[int, float]] | None = None,
                ) -> tuple[list[TrackPlan], list[ReviewSpan]]:
    """The plan's ``tracks`` joined into one per person (:func:`group_people`,
    :func:`merge_tracks`), and ``review`` renumbered with a span (``identity``) for each pair
    kept apart in doubt, on the later track's first second. ``tracklets`` are the tracker's
    tracks (same ids as ``tracks``); ``times`` each frame's presentation time (s); ``best``
    gives a piece of a cut track its best view (frame, quality)."""
    people = group_people(tracklets, appearance, fps=fps, params=params)
    tracks, review = _cut_plan(tracks, review, people.pieces, best)
    merged, mapping = merge_tracks(tracks, people.groups)
    by_new = {t.id: t for t in merged}
    spans = [r.model_copy(update={"track_id": mapping[r.track_id]})
             for r in review if r.track_id in mapping]
    seen: set[tuple[int, int]] = set()
    # Where a track was cut, the doubt is at the cut, on the person the later piece joined.
    cut_at = {(a.id, b.id): lo for parts in people.pieces.values()
              for (_, a), (lo, b) in itertools.pairwise(parts)}
    for x, y in people.doubts:
        if x not in mapping or y not in mapping:
            continue
        a, b = sorted((mapping[x], mapping[y]), key=lambda i: (by_new[i].start, i))
        at = cut_at.get((x, y))
        if at is not None:
            a, b = mapping[x], mapping[y]
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        spans.append(_doubt_span(by_new[b], a, times, fps, at))
    spans.sort(key=lambda r: (r.start, r.track_id, r.reason))
    return merged, spans
