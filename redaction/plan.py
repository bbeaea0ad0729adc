"""The redaction plan: what to mask, where, on which frames, and what to do with the audio.

Format ``evidence-vault/redaction-plan``, version 2: a JSON object

- ``schema``, ``version``: ``"evidence-vault/redaction-plan"``, ``2`` (version 1 plans are
  read as they were written: see ``mask.shape``).
- ``source``: the recording it was made for (``name``, ``sha256``, ``width``, ``height``,
  ``frame_count``, ``fps`` as ``"num/den"``, ``duration`` s). Rendering refuses other footage.
- ``mask``: ``style`` (``blur`` | ``pixelate`` | ``solid``), ``strength`` 1-10 (higher
  leaves less detail) and ``shape`` of a track's mask: ``ellipse`` (version 2's default: the
  ellipse inscribed in each box, the shape of a head) or ``box`` (the whole rectangle; what a
  version 1 plan, which has no ``shape``, always meant). Manual boxes are always rectangles.
- ``caption``: text burned into every frame (``null``: none), e.g. a reference and
  ``REDACTED COPY``.
- ``tracks``: detected faces. ``id`` (>= 1), ``start`` (first frame), ``boxes`` - one entry
  per frame from ``start``: ``[x0, y0, x1, y1, confidence]`` in pixels of the upright frame
  (``x1``/``y1`` exclusive), or ``null`` for a frame without a mask - ``keep`` (``true``: leave
  this face visible, e.g. the requester of a subject access request), an optional
  ``label``, and (version 2) ``quality`` (0-1: how good the track's best view of the face
  is) and ``best_frame`` (that view's frame, where a gallery crops its thumbnail from the
  footage; the plan itself holds no picture). A track is one person
  (:mod:`redaction.identity` joins the tracker's pieces of them); where two pieces overlap
  in time the second one's boxes are kept in the optional ``extra``: runs of ``start`` and
  ``boxes`` (as above) within the track's frames, masked and kept with the track. A plan
  without ``extra`` reads as before; software that does not know ``extra`` refuses the plan
  rather than mask less than it says.
- ``manual``: boxes drawn by a person: ``id``, ``keyframes`` (``frame``, ``box``; positions
  between keyframes are interpolated linearly) and ``end`` (last frame, default the last
  keyframe's). One keyframe plus ``end`` is a static box.
- ``audio``: ``start``/``end`` seconds and ``action`` (``mute`` | ``bleep``).
- ``review``: spans a person should check: ``track_id``, ``start``/``end`` frames (inclusive),
  ``start_time``/``end_time`` s, ``reason`` (``low_confidence``: the detector was unsure;
  ``gap``: the detector missed the face and the mask was interpolated; ``identity``: this
  track may be the same person as ``related_track``, but the evidence was mixed, so they were
  kept apart: check both before keeping either) and ``min_confidence``.
- ``parameters``: detector, scan and tracking settings that produced it (provenance).

The plan hash is the SHA-256 of the canonical JSON encoding (keys sorted, no whitespace,
UTF-8), so re-formatting a plan file does not change its hash and any edit does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from redaction.errors import PlanError

__all__ = [
    "PLAN_SCHEMA",
    "PLAN_VERSION",
    "AudioEdit",
    "BoxRun",
    "Keyframe",
    "ManualBox",
    "MaskShape",
    "MaskSpec",
    "MaskStyle",
    "RedactionPlan",
    "ReviewSpan",
    "SourceInfo",
    "TrackPlan",
    "load_plan",
    "save_plan",
]

PLAN_SCHEMA = "evidence-vault/redaction-plan"
PLAN_VERSION: Final = 2
#: Versions this software reads. Version 1 has no ``mask.shape``: its masks are rectangles.
READ_VERSIONS = (1, 2)

IntBox = tuple[int, int, int, int]
NonNeg = Annotated[int, Field(ge=0)]
FrameBox = tuple[NonNeg, NonNeg, NonNeg, NonNeg, Annotated[float, Field(ge=0.0, le=1.0)]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MaskStyle(str, Enum):
    """How a masked region is hidden."""

    BLUR = "blur"
    PIXELATE = "pixelate"
    SOLID = "solid"


class MaskShape(str, Enum):
    """The shape a track's mask takes within its box."""

    ELLIPSE = "ellipse"
    BOX = "box"


class MaskSpec(_Model):
    """Mask style, strength (1-10; higher keeps less detail) and the shape of track masks."""

    style: MaskStyle = MaskStyle.BLUR
    strength: int = Field(default=8, ge=1, le=10)
    shape: MaskShape = MaskShape.ELLIPSE


class SourceInfo(_Model):
    """The recording a plan belongs to."""

    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    frame_count: int = Field(gt=0)
    fps: str = Field(pattern=r"^\d+/\d+$")
    duration: float = Field(ge=0)

    @property
    def rate(self) -> Fraction:
        """The average frame rate as a fraction."""
        return Fraction(self.fps)


def _check_box(box: tuple[Any, ...], what: str) -> None:
    if not (box[0] < box[2] and box[1] < box[3]):
        raise ValueError(f"{what}: empty box {list(box[:4])} (need x0 < x1 and y0 < y1)")


class BoxRun(_Model):
    """More mask boxes of a track, one per frame from ``start``, on frames where the track
    already has a box: a second detection of the same person's face, followed separately
    by the tracker and joined to the person afterwards."""

    start: int = Field(ge=0)
    boxes: list[FrameBox | None] = Field(min_length=1)

    @field_validator("boxes")
    @classmethod
    def _boxes_nonempty(cls, boxes: list[FrameBox | None]) -> list[FrameBox | None]:
        for i, b in enumerate(boxes):
            if b is not None:
                _check_box(b, f"extra box {i}")
        return boxes

    @property
    def end(self) -> int:
        """Last frame of the run."""
        return self.start + len(self.boxes) - 1

    def box_at(self, frame: int) -> IntBox | None:
        """The box on ``frame``, or ``None``."""
        i = frame - self.start
        if 0 <= i < len(self.boxes):
            b = self.boxes[i]
            return None if b is None else (b[0], b[1], b[2], b[3])
        return None


class TrackPlan(_Model):
    """A detected person's face: a mask box for each frame from ``start`` (``None``: no
    mask), and ``extra`` boxes where two detections of them overlapped in time."""

    id: int = Field(ge=1)
    start: int = Field(ge=0)
    boxes: list[FrameBox | None] = Field(min_length=1)
    keep: bool = False
    label: str | None = None
    #: How good the track's best view of the face is (0-1: detector score times how large
    #: the face is, up to 48 px), for ordering a gallery of people. ``None`` in older plans.
    quality: float | None = Field(default=None, ge=0, le=1)
    #: The frame of that best view. A gallery crops its thumbnail from the (encrypted)
    #: footage on demand (:func:`redaction.thumbnail.thumbnail`), so the plan, stored and
    #: shown as JSON, never holds a picture of anyone.
    best_frame: int | None = Field(default=None, ge=0)
    #: The boxes of this person's other tracks on frames where ``boxes`` already has one
    #: (see :class:`BoxRun`). Empty in most tracks and in older plans.
    extra: list[BoxRun] = Field(default_factory=list)

    @model_validator(mode="after")
    def _extra_within(self) -> TrackPlan:
        for r in self.extra:
            if r.start < self.start or r.end > self.end:
                raise ValueError(f"track {self.id}: extra boxes {r.start}-{r.end} outside "
                                 f"the track's frames {self.start}-{self.end}")
        return self

    @field_validator("boxes")
    @classmethod
    def _boxes_nonempty(cls, boxes: list[FrameBox | None]) -> list[FrameBox | None]:
        for i, b in enumerate(boxes):
            if b is not None:
                _check_box(b, f"box {i}")
        return boxes

    @property
    def end(self) -> int:
        """Last frame of the track."""
        return self.start + len(self.boxes) - 1

    def box_at(self, frame: int) -> IntBox | None:
        """The mask box on ``frame``, or ``None``."""
        i = frame - self.start
        if 0 <= i < len(self.boxes):
            b = self.boxes[i]
            return None if b is None else (b[0], b[1], b[2], b[3])
        return None

    def boxes_at(self, frame: int) -> list[IntBox]:
        """Every mask box of this person on ``frame``: the track's own, then ``extra``."""
        out = [] if (b := self.box_at(frame)) is None else [b]
        out += [x for r in self.extra if (x := r.box_at(frame)) is not None]
        return out


class Keyframe(_Model):
    """A manual box's position on one frame."""

    frame: int = Field(ge=0)
    box: tuple[NonNeg, NonNeg, NonNeg, NonNeg]

    @field_validator("box")
    @classmethod
    def _nonempty(cls, box: IntBox) -> IntBox:
        _check_box(box, "keyframe")
        return box


class ManualBox(_Model):
    """A box a person drew: static (one keyframe and ``end``) or moving (keyframes)."""

    id: str = Field(min_length=1)
    keyframes: list[Keyframe] = Field(min_length=1)
    end: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ManualBox:
        frames = [k.frame for k in self.keyframes]
        if any(b <= a for a, b in itertools.pairwise(frames)):
            raise ValueError(f"manual box {self.id}: keyframes must be in rising frame order")
        if self.end is not None and self.end < frames[-1]:
            raise ValueError(f"manual box {self.id}: end is before the last keyframe")
        return self

    @property
    def start(self) -> int:
        """First frame."""
        return self.keyframes[0].frame

    @property
    def last(self) -> int:
        """Last frame (inclusive)."""
        return self.end if self.end is not None else self.keyframes[-1].frame

    def box_at(self, frame: int) -> IntBox | None:
        """The box on ``frame`` (interpolated between keyframes, held after the last)."""
        if not self.start <= frame <= self.last:
            return None
        ks = self.keyframes
        if frame >= ks[-1].frame:
            return ks[-1].box
        for a, b in itertools.pairwise(ks):
            if a.frame <= frame <= b.frame:
                u = (frame - a.frame) / (b.frame - a.frame)
                # Outward rounding: an interpolated box never shrinks below its keyframes.
                lo = [min(x, y) for x, y in zip(a.box, b.box, strict=False)]
                hi = [max(x, y) for x, y in zip(a.box, b.box, strict=False)]
                vals = [x + (y - x) * u for x, y in zip(a.box, b.box, strict=False)]
                x0 = max(lo[0], int(vals[0]))
                y0 = max(lo[1], int(vals[1]))
                x1 = min(hi[2], -int(-vals[2] // 1))
                y1 = min(hi[3], -int(-vals[3] // 1))
                return (x0, y0, x1, y1)
        return ks[-1].box  # pragma: no cover - unreachable: frames are ordered


class AudioEdit(_Model):
    """A range of audio (seconds) to mute or bleep."""

    start: float = Field(ge=0)
    end: float
    action: Literal["mute", "bleep"] = "mute"

    @model_validator(mode="after")
    def _ordered(self) -> AudioEdit:
        if self.end <= self.start:
            raise ValueError("audio edit end must be after start")
        return self


class ReviewSpan(_Model):
    """Frames of a track a person should look at before disclosure."""

    track_id: int
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    start_time: float = Field(ge=0)
    end_time: float = Field(ge=0)
    reason: Literal["low_confidence", "gap", "identity"]
    min_confidence: float = Field(ge=0, le=1)
    #: For ``identity``: the other track that may be the same person.
    related_track: int | None = None


class RedactionPlan(_Model):
    """A complete, versioned redaction plan (see the module docstring for the format)."""

    schema_: Literal["evidence-vault/redaction-plan"] = Field(
        default="evidence-vault/redaction-plan", alias="schema")
    version: Literal[1, 2] = PLAN_VERSION
    source: SourceInfo
    mask: MaskSpec = MaskSpec()
    caption: str | None = Field(default=None, max_length=200)
    tracks: list[TrackPlan] = Field(default_factory=list)
    manual: list[ManualBox] = Field(default_factory=list)
    audio: list[AudioEdit] = Field(default_factory=list)
    review: list[ReviewSpan] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _version_1_masks_are_boxes(cls, data: Any) -> Any:
        # A version 1 plan was reviewed, hashed and rendered with rectangular masks: read it
        # so, or the same plan would hide less than it did when it was approved.
        if isinstance(data, dict) and data.get("version") == 1:
            mask = data.get("mask")
            if mask is None or (isinstance(mask, dict) and "shape" not in mask):
                data = {**data, "mask": {**(mask or {}), "shape": MaskShape.BOX.value}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RedactionPlan:
        src = self.source
        ids = [t.id for t in self.tracks]
        if len(ids) != len(set(ids)):
            raise ValueError("track ids must be unique")
        manual_ids = [m.id for m in self.manual]
        if len(manual_ids) != len(set(manual_ids)):
            raise ValueError("manual box ids must be unique")
        for t in self.tracks:
            if t.end >= src.frame_count:
                raise ValueError(f"track {t.id} runs past the last frame ({src.frame_count - 1})")
            for b in [*t.boxes, *(x for r in t.extra for x in r.boxes)]:
                if b is not None and (b[2] > src.width or b[3] > src.height):
                    raise ValueError(f"track {t.id} has a box outside the "
                                     f"{src.width}x{src.height} frame")
        for m in self.manual:
            if m.last >= src.frame_count:
                raise ValueError(f"manual box {m.id} runs past the last frame")
            for k in m.keyframes:
                if k.box[2] > src.width or k.box[3] > src.height:
                    raise ValueError(f"manual box {m.id} is outside the frame")
        known = set(ids)
        for r in self.review:
            if r.track_id not in known:
                raise ValueError(f"review span names unknown track {r.track_id}")
            if r.related_track is not None and r.related_track not in known:
                raise ValueError(f"review span names unknown related track {r.related_track}")
        return self

    # -- encoding ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data."""
        data = self.model_dump(mode="json", by_alias=True)
        # Fields added to version 2 are written only when used, so that a plan which does
        # not use them encodes, and hashes, exactly as it did before they existed.
        for t in data["tracks"]:
            if not t["extra"]:
                del t["extra"]
        for r in data["review"]:
            if r["related_track"] is None:
                del r["related_track"]
        return data

    def canonical_bytes(self) -> bytes:
        """The canonical encoding hashed by :meth:`sha256`."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False).encode("utf-8")

    def sha256(self) -> str:
        """Hex SHA-256 of the canonical encoding: the plan's identity in provenance."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def to_json(self) -> str:
        """A readable encoding for people who edit plans: indented, one box per line."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)
        # Keep each innermost number list ([x0, y0, x1, y1, conf]) on one line.
        return re.sub(r"\[\s+([-0-9.eE,\s]+?)\s+\]",
                      lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
                      text) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> RedactionPlan:
        """Parse and validate a plan. Raises :class:`PlanError` naming what is wrong."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"plan is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise PlanError("plan must be a JSON object")
        if data.get("schema") != PLAN_SCHEMA:
            raise PlanError(f"not a redaction plan (schema must be {PLAN_SCHEMA!r})")
        if data.get("version") not in READ_VERSIONS:
            raise PlanError(f"unsupported plan version {data.get('version')!r} "
                            f"(this software reads versions "
                            f"{', '.join(str(v) for v in READ_VERSIONS)})")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']}"
                for e in exc.errors()[:5])
            raise PlanError(f"invalid plan: {problems}") from exc

    # -- queries -----------------------------------------------------------------------

    def masks_at(self, frame: int) -> list[IntBox]:
        """Boxes to mask on ``frame``: every track not kept, and every manual box."""
        out = []
        for t in self.tracks:
            if not t.keep:
                out += t.boxes_at(frame)
        for m in self.manual:
            b = m.box_at(frame)
            if b is not None:
                out.append(b)
        return out

    def with_keep(self, track_ids: set[int]) -> RedactionPlan:
        """A copy in which the given tracks are kept visible: each is one person, so every
        box of theirs (``extra`` included) is left unmasked. Raises :class:`PlanError`."""
        unknown = track_ids - {t.id for t in self.tracks}
        if unknown:
            raise PlanError(f"no such track: {sorted(unknown)}")
        tracks = [t.model_copy(update={"keep": t.keep or t.id in track_ids})
                  for t in self.tracks]
        return self.model_copy(update={"tracks": tracks})


def load_plan(path: str | Path) -> RedactionPlan:
    """Read and validate a plan file. Raises :class:`PlanError`."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read plan {p}: {exc.strerror}") from exc
    return RedactionPlan.from_json(text)


def save_plan(plan: RedactionPlan, path: str | Path) -> str:
    """Write ``plan`` to ``path`` (atomically). Returns the plan hash."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.partial")
    tmp.write_text(plan.to_json(), encoding="utf-8")
    tmp.replace(p)
    return plan.sha256()
