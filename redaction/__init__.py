"""Face redaction for disclosure: decode, detect, track, plan, render.

    plan = plan_video("clip.mp4")                        # detect + track -> RedactionPlan
    save_plan(plan, "clip.plan.json")                    # review / edit as JSON
    result = render_plan("clip.mp4", load_plan("clip.plan.json"), "clip.redacted.mp4")
    plan, result = redact_video("clip.mp4", "clip.redacted.mp4")   # both, in one pass

Modules: :mod:`~redaction.media` (probe, decode, encode), :mod:`~redaction.detect`
(detectors), :mod:`~redaction.scan` (where to look), :mod:`~redaction.motion` (camera
motion), :mod:`~redaction.track` (tracks and mask boxes), :mod:`~redaction.identity` (one
track per person), :mod:`~redaction.grouping` (which tracks are one person),
:mod:`~redaction.appearance` (the face descriptor they compare), :mod:`~redaction.plan`
(the JSON plan), :mod:`~redaction.render` (masks, caption, result),
:mod:`~redaction.thumbnail` (a track's picture, on demand),
:mod:`~redaction.pipeline` (concurrent stages), :mod:`~redaction.chunks` (long footage in
parallel chunks), :mod:`~redaction.errors`.
"""

from redaction.chunks import plan_chunked, redact_chunked, render_chunked
from redaction.detect import CenterFace, Detector
from redaction.errors import (
    ChunkError,
    DetectorUnavailable,
    EncodeError,
    MediaError,
    PlanError,
    RedactionError,
)
from redaction.media import VideoInfo, probe
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
    PLAN_SCHEMA,
    PLAN_VERSION,
    AudioEdit,
    Keyframe,
    ManualBox,
    MaskShape,
    MaskSpec,
    MaskStyle,
    RedactionPlan,
    ReviewSpan,
    SourceInfo,
    TrackPlan,
    load_plan,
    save_plan,
)
from redaction.render import RenderResult
from redaction.scan import ScanParams
from redaction.track import TrackParams

__all__ = [
    "AudioEdit",
    "CenterFace",
    "ChunkError",
    "Detector",
    "DetectorUnavailable",
    "EncodeError",
    "EncodeParams",
    "Keyframe",
    "ManualBox",
    "MaskShape",
    "MaskSpec",
    "MaskStyle",
    "MediaError",
    "PLAN_SCHEMA",
    "PLAN_VERSION",
    "PlanError",
    "Progress",
    "ProgressCallback",
    "RedactionError",
    "RedactionPlan",
    "RenderResult",
    "ReviewSpan",
    "ScanParams",
    "SourceInfo",
    "TrackParams",
    "TrackPlan",
    "VideoInfo",
    "load_plan",
    "plan_chunked",
    "plan_video",
    "probe",
    "redact_chunked",
    "redact_video",
    "render_chunked",
    "render_plan",
    "save_plan",
    "software_version",
]
