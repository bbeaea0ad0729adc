"""Between the frames and the plan: per-frame mask boxes gathered into plan tracks with their
review spans (:class:`PlanBuilder`), and a plan's tracks swept back into per-frame masks
(:class:`PlanMasks`).

:mod:`redaction.pipeline` runs the stages and calls these once per frame; they hold no
thread or codec of their own, so they are the plan's bookkeeping apart from its concurrency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from redaction.identity import AppearanceLog
from redaction.plan import RedactionPlan, ReviewSpan, TrackPlan
from redaction.track import MaskBox

__all__ = ["IntBox", "PlanBuilder", "PlanMasks"]

IntBox = tuple[int, int, int, int]


class PlanMasks:
    """Per-frame masks of a plan, found by sweeping tracks in start order."""

    def __init__(self, plan: RedactionPlan) -> None:
        self._plan = plan
        self._pending = sorted((t for t in plan.tracks if not t.keep), key=lambda t: t.start)
        self._active: list[TrackPlan] = []
        self._pos = 0

    def __call__(self, index: int) -> tuple[list[IntBox], list[IntBox]]:
        """(track boxes, manual boxes) to mask on frame ``index``."""
        while self._pos < len(self._pending) and self._pending[self._pos].start <= index:
            self._active.append(self._pending[self._pos])
            self._pos += 1
        self._active = [t for t in self._active if t.end >= index]
        out = [b for t in self._active for b in t.boxes_at(index)]
        manual = [b for m in self._plan.manual if (b := m.box_at(index)) is not None]
        return out, manual


class PlanBuilder:
    """Collects the per-frame mask boxes of each track into plan tracks and review spans."""

    def __init__(self, review_confidence: float, merge_frames: int = 12) -> None:
        self.review_confidence = review_confidence
        # Flagged runs closer than this are one span: a reviewer checks a stretch of
        # footage, not every flicker of the detector's score.
        self.merge_frames = merge_frames
        self.times: list[float] = []
        self.appearance = AppearanceLog()
        self._tracks: dict[int, tuple[int, list[Any], list[bool]]] = {}

    def add(self, index: int, t: float, boxes: Sequence[MaskBox], image: Any = None) -> None:
        """Record frame ``index`` (at ``t`` seconds) with its mask ``boxes``; ``image`` (the
        decoded frame), when given, is sampled for the tracks' appearance."""
        self.times.append(t)
        if image is not None:
            self.appearance.add(index, image, boxes)
        for m in boxes:
            entry = self._tracks.get(m.track_id)
            if entry is None:
                entry = (index, [], [])
                self._tracks[m.track_id] = entry
            start, rows, bridged = entry
            while start + len(rows) < index:
                rows.append(None)
                bridged.append(False)
            rows.append([*m.box, m.confidence])
            bridged.append(m.bridged)

    @property
    def track_count(self) -> int:
        """How many tracks have had a box so far."""
        return len(self._tracks)

    def _spans(self, tid: int, start: int, flags: list[bool], reason: str,
               rows: list[Any]) -> Iterable[ReviewSpan]:
        i = 0
        while i < len(flags):
            if not flags[i]:
                i += 1
                continue
            j = i
            while True:
                while j + 1 < len(flags) and flags[j + 1]:
                    j += 1
                nxt = next((k for k in range(j + 1, min(len(flags), j + 2 + self.merge_frames))
                            if flags[k]), None)
                if nxt is None:
                    break
                j = nxt
            confs = [r[4] for r in rows[i:j + 1] if r is not None]
            a, b = start + i, start + j
            yield ReviewSpan(track_id=tid, start=a, end=b, start_time=round(self.times[a], 3),
                             end_time=round(self.times[b], 3), reason=reason,  # type: ignore[arg-type]
                             min_confidence=min(confs) if confs else 0.0)
            i = j + 1

    def tracks(self) -> tuple[list[TrackPlan], list[ReviewSpan]]:
        """The plan tracks, by track id, and their review spans: runs of boxes under
        ``review_confidence`` (``low_confidence``) and of boxes bridged across a detector
        miss (``gap``), runs within ``merge_frames`` of each other being one span."""
        tracks: list[TrackPlan] = []
        review: list[ReviewSpan] = []
        for tid in sorted(self._tracks):
            start, rows, bridged = self._tracks[tid]
            tracks.append(TrackPlan(id=tid, start=start, boxes=rows))
            low = [r is not None and r[4] < self.review_confidence for r in rows]
            review += self._spans(tid, start, low, "low_confidence", rows)
            review += self._spans(tid, start, bridged, "gap", rows)
        review.sort(key=lambda r: (r.start, r.track_id, r.reason))
        return tracks, review
