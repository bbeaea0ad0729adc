"""Running decode, detection and encoding concurrently: plan, render, or both in one pass.

Three threads share a bounded window of decoded frames:

    decode ──frames──▶ [window: lookahead + a few frames] ──▶ render + encode (caller's thread)
                                   │                              ▲
                                   └──▶ scan + track ──boxes──────┘ (final `lookahead` frames
                                                                      behind detection)

The heavy work in each stage runs in C with the GIL released (FFmpeg's decoder threads,
onnxruntime, OpenCV, x264's own threads), so on two cores detection overlaps decoding and
encoding. Memory is bounded by the window, whatever the footage's length: about
``(lookahead + stride + 8)`` frames: 41 frames, about 260 MB, at 1080p and 25 fps with the
default one-second gap.

Outputs are written to a hidden ``.partial`` file beside the target and renamed into place
only when complete, so a failure never leaves a partial copy behind.

The per-frame bookkeeping between mask boxes and the plan (tracks, review spans, a plan's
masks per frame) is :mod:`redaction.plan_builder`; this module is the stages and their threads.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from redaction.detect import CenterFace, Detector
from redaction.errors import MediaError, PlanError, RedactionError
from redaction.identity import IdentityParams, join_people
from redaction.look_back import look_back
from redaction.media import Frame, VideoWriter, iter_frames, probe
from redaction.motion import CameraMotion
from redaction.plan import (
    AudioEdit,
    MaskSpec,
    RedactionPlan,
    SourceInfo,
)
from redaction.plan_builder import IntBox, PlanBuilder, PlanMasks
from redaction.render import FrameMasker, RenderResult
from redaction.scan import FrameScanner, ScanParams
from redaction.track import MaskBox, Tracker, TrackParams
from vault.plaintext import open_private

__all__ = [
    "EncodeParams",
    "Progress",
    "ProgressCallback",
    "plan_video",
    "redact_video",
    "render_plan",
    "software_version",
]


# Defaults (immutable), shared by the entry points' signatures.
_SCAN = ScanParams()
_TRACK = TrackParams()
_MASK = MaskSpec()


@dataclass(frozen=True)
class EncodeParams:
    """x264 settings of the redacted copy (``yuv420p`` H.264 in MP4, AAC audio)."""

    preset: str = "ultrafast"
    crf: int = 20
    threads: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the settings, with the fixed ones, as JSON-ready data."""
        return {"codec": "libx264", "pix_fmt": "yuv420p", "container": "mp4",
                "movflags": "faststart", "audio_codec": "aac", **asdict(self)}


@dataclass(frozen=True)
class Progress:
    """Where a run is: frames done of ``total`` (``None`` when the container does not say)."""

    stage: str
    done: int
    total: int | None
    tracks: int
    elapsed: float

    @property
    def fps(self) -> float:
        """Frames per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


def software_version() -> str:
    """This software's version, as recorded in provenance."""
    try:
        return importlib.metadata.version("evidence-vault")
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            for line in pyproject.read_text().splitlines():
                if line.startswith("version"):
                    return line.split("=", 1)[1].strip().strip('"') + "+src"
        except OSError:
            pass
        return "0+unknown"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class _Hasher(threading.Thread):
    """Hashes the source beside the pipeline (hashlib releases the GIL on large blocks)."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="redaction-hash", daemon=True)
        self.path = path
        self.digest: str | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.digest = _sha256_file(self.path)
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self.error = exc

    def result(self) -> str:
        self.join()
        if self.error is not None or self.digest is None:
            raise MediaError(f"cannot read {self.path}: {self.error}", path=self.path)
        return self.digest


class _Aborted(Exception):
    pass


class _Window:
    """Decoded frames shared by the stages; ``put`` blocks while ``capacity`` are held."""

    def __init__(self, capacity: int) -> None:
        self._frames: dict[int, Frame] = {}
        self._cond = threading.Condition()
        self._capacity = capacity
        self._released = -1
        self.total: int | None = None
        self.error: BaseException | None = None

    def put(self, frame: Frame) -> None:
        with self._cond:
            while (frame.index - self._released > self._capacity and self.error is None):
                self._cond.wait(0.5)
            if self.error is not None:
                raise _Aborted
            self._frames[frame.index] = frame
            self._cond.notify_all()

    def end(self, total: int) -> None:
        with self._cond:
            self.total = total
            self._cond.notify_all()

    def get(self, index: int) -> Frame | None:
        """Frame ``index``, waiting for it; ``None`` past the end."""
        with self._cond:
            while True:
                if self.error is not None:
                    raise _Aborted
                frame = self._frames.get(index)
                if frame is not None:
                    return frame
                if self.total is not None and index >= self.total:
                    return None
                self._cond.wait(0.5)

    def picture(self, index: int) -> npt.NDArray[np.uint8]:
        """Frame ``index``'s picture, held (a frame not yet rendered)."""
        frame = self.get(index)
        if frame is None:
            raise IndexError(f"frame {index} is past the end")
        return frame.image

    def release(self, index: int) -> None:
        with self._cond:
            self._frames.pop(index, None)
            self._released = index
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            if self.error is None:
                self.error = error
            self._cond.notify_all()


class _Detection:
    """Scanner + tracker, driven by the detection thread, read by the render thread."""

    def __init__(self, scanner: FrameScanner, tracker: Tracker,
                 motion: CameraMotion | None = None) -> None:
        self.scanner = scanner
        self.tracker = tracker
        self.motion = motion
        self.lock = threading.Condition()
        self.done = False

    def run(self, window: _Window) -> None:
        p = self.scanner.params
        i = 0
        while (frame := window.get(i)) is not None:
            if self.motion is not None:
                # Every frame, looked at or not: offsets accumulate frame to frame, and the
                # render thread asks the tracker for masks on every frame.
                with self.lock:
                    self.motion.update(i, frame.image)
            full = self.scanner.is_look(i)
            with self.lock:
                if full:
                    looked = self.tracker.live_ids(i)
                    predicted = self.tracker.predicted(i)
                else:
                    due = self.tracker.due(i)
                    looked = [tid for tid, _ in due]
                    predicted = [box for _, box in due]
            if full or looked:
                found = self.scanner.scan(i, frame.image, predicted, full=full)
                assert found is not None
                with self.lock:
                    self.tracker.update(i, found, only=None if full else looked)
                    self.tracker.schedule(i, looked, p.min_stride, p.stride,
                                          p.swerve_tolerance)
                    self.lock.notify_all()
                if full:
                    look_back(i, self.tracker, self.scanner, window.picture, self.lock,
                              step=p.stride)
            self.scanner.see(i, frame.image)
            i += 1
        self.scanner.close()
        with self.lock:
            self.tracker.finish()
            self.done = True
            self.lock.notify_all()

    def boxes_at(self, index: int, window: _Window) -> list[MaskBox]:
        with self.lock:
            while not self.done and self.tracker.final_through() < index:
                if window.error is not None:
                    raise _Aborted
                self.lock.wait(0.5)
            boxes = self.tracker.boxes_at(index)
            if index % 32 == 0:
                self.tracker.forget_before(index)
            return boxes


def _partial_path(output: Path) -> Path:
    # A redacted copy is still footage of people: its file exists 0600 before the encoder
    # opens it (opening truncates and keeps the mode), never world-readable (issue #11 f11).
    partial = output.with_name(f".{output.name}.partial")
    partial.unlink(missing_ok=True)  # a crashed render's leftover
    open_private(partial).close()
    return partial


def _format_fps(rate: Fraction) -> str:
    r = Fraction(rate).limit_denominator(1_000_000)
    return f"{r.numerator}/{r.denominator}"


def _run(source: Path, *, detection: _Detection | None, plan_masks: PlanMasks | None,
         builder: PlanBuilder | None, writer_factory: Callable[[Frame], VideoWriter] | None,
         masker: FrameMasker | None, stage: str, progress: ProgressCallback | None,
         total: int | None, window_size: int, expected_frames: int | None = None,
         ) -> tuple[int, float, float, dict[str, float]]:
    """Drive the threads over ``source``.

    Returns (frames, last frame time, elapsed s, CPU seconds of each stage's thread).
    """
    window = _Window(window_size)
    started = time.perf_counter()
    main_cpu = time.thread_time()
    errors: list[BaseException] = []

    cpu: dict[str, float] = {}

    def guard(fn: Callable[[], None], name: str) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
                cpu[name] = time.thread_time()
            except _Aborted:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                errors.append(exc)
                window.fail(exc)
        return run

    def decode() -> None:
        n = 0
        for frame in iter_frames(source):
            if expected_frames is not None and frame.index >= expected_frames:
                raise PlanError(f"{source} has more frames than the plan's "
                                f"{expected_frames}: the plan is for other footage")
            window.put(frame)
            n += 1
        window.end(n)

    threads = [threading.Thread(target=guard(decode, "decode"), name="redaction-decode",
                                daemon=True)]
    if detection is not None:
        threads.append(threading.Thread(target=guard(lambda: detection.run(window), "detect"),
                                        name="redaction-detect", daemon=True))
    for th in threads:
        th.start()

    writer: VideoWriter | None = None
    index = 0
    last_time = 0.0
    try:
        while (frame := window.get(index)) is not None:
            if detection is not None:
                mboxes = detection.boxes_at(index, window)
                if builder is not None:
                    builder.add(index, frame.time, mboxes, frame.image)
                boxes: list[IntBox] = [m.box for m in mboxes]
                manual: list[IntBox] = []
            elif plan_masks is not None:
                boxes, manual = plan_masks(index)
            else:
                boxes, manual = [], []
            if writer_factory is not None and masker is not None:
                if writer is None:
                    writer = writer_factory(frame)
                masker(frame.image, boxes, manual)
                writer.write(frame.image, frame.time)
            last_time = frame.time
            window.release(index)
            index += 1
            if progress is not None and (index % 8 == 0):
                progress(Progress(stage, index, total,
                                  builder.track_count if builder else 0,
                                  time.perf_counter() - started))
        if writer is not None:
            writer.close()
    except _Aborted:
        pass
    except BaseException as exc:
        window.fail(exc)
        if writer is not None:
            writer.abort()
        for th in threads:
            th.join()
        raise
    for th in threads:
        th.join()
    if errors:
        if writer is not None:
            writer.abort()
        raise errors[0]
    elapsed = time.perf_counter() - started
    cpu["render"] = time.thread_time() - main_cpu
    if progress is not None:
        progress(Progress(stage, index, total, builder.track_count if builder else 0, elapsed))
    return index, last_time, elapsed, cpu


def _check_output(output: Path, source: Path) -> None:
    if output.resolve() == source.resolve():
        raise RedactionError("output must not overwrite the source footage")
    if not output.parent.is_dir():
        raise RedactionError(f"output directory does not exist: {output.parent}")


def _library_versions() -> dict[str, str]:
    import onnxruntime

    return {"pyav": av.__version__, "libavcodec": ".".join(
        str(v) for v in av.library_versions.get("libavcodec", ())),
        "onnxruntime": onnxruntime.__version__}


def _detect_all(source: Path, *, scan: ScanParams, track: TrackParams,
                detector: Detector | None, encode_to: Path | None, encode: EncodeParams,
                mask: MaskSpec, caption: str | None, audio: Sequence[AudioEdit],
                progress: ProgressCallback | None, stage: str,
                ) -> tuple[RedactionPlan, int, float, dict[str, float]]:
    info = probe(source)
    hasher = _Hasher(source)
    fps = float(info.fps) if info.fps else 25.0
    det = detector if detector is not None else CenterFace()
    motion = CameraMotion(info.width, info.height)
    scanner = FrameScanner(det, scan, width=info.width, height=info.height, fps=fps,
                           motion=motion)
    tracker = Tracker(track, fps=fps, width=info.width, height=info.height, stride=scan.stride,
                      motion=motion)
    detection = _Detection(scanner, tracker, motion)
    builder = PlanBuilder(track.review_confidence, merge_frames=max(1, round(fps / 2)))
    masker = FrameMasker(mask, caption) if encode_to is not None else None
    factory = None
    if encode_to is not None:
        target = encode_to

        def factory(first: Frame) -> VideoWriter:
            h, w = first.image.shape[:2]
            return VideoWriter(target, width=w, height=h, fps=info.fps, audio_source=source,
                               mute=[(a.start, a.end) for a in audio if a.action == "mute"],
                               bleep=[(a.start, a.end) for a in audio if a.action == "bleep"],
                               preset=encode.preset, crf=encode.crf, threads=encode.threads)

    frames, last_time, elapsed, cpu = _run(
        source, detection=detection, plan_masks=None, builder=builder, writer_factory=factory,
        masker=masker, stage=stage, progress=progress, total=info.frame_count,
        window_size=tracker.lookahead + scan.stride + 8)
    tracks, review = builder.tracks()
    best = {t.id: tracker.best(t) for t in tracker.tracks}
    tracks = [t.model_copy(update={"best_frame": best[t.id][0], "quality": best[t.id][1]})
              if t.id in best and t.box_at(best[t.id][0]) is not None else t
              for t in tracks]
    # One person, one track: join the pieces the tracker split or doubled.
    tracklets = len(tracks)
    tracks, review = join_people(tracks, review, tracker.tracks, builder.appearance,
                                 times=builder.times, fps=fps, best=tracker.best)
    duration = last_time + 1.0 / fps
    if info.duration is not None and abs(info.duration - duration) < 2.0 / fps:
        duration = info.duration
    plan = RedactionPlan(
        source=SourceInfo(name=source.name, sha256=hasher.result(), width=info.width,
                          height=info.height, frame_count=frames, fps=_format_fps(info.fps),
                          duration=round(duration, 6)),
        mask=mask, caption=caption, tracks=tracks, audio=list(audio), review=review,
        parameters={"detector": getattr(det, "name", type(det).__name__),
                    "provider": getattr(det, "provider", None),
                    "threshold": getattr(det, "threshold", None),
                    "scan": scan.to_dict(), "track": track.to_dict(),
                    "identity": IdentityParams().to_dict(),
                    "software_version": software_version(), "libraries": _library_versions(),
                    "stats": {"looks": scanner.stats.looks,
                              "partial_looks": scanner.stats.partial_looks,
                              "detector_calls": scanner.stats.calls,
                              "detector_pixels": scanner.stats.pixels,
                              "detections": scanner.stats.detections,
                              # Looks a noisy picture had searched smoothed as well
                              # (redaction/noise.py): a night plan's cost, in the record.
                              "smoothed_looks": scanner.stats.smoothed_looks,
                              # Frames searched again for a face first found late
                              # (redaction/look_back.py).
                              "back_looks": scanner.stats.back_looks,
                              "tracklets": tracklets,
                              "withdrawn_tracks": tracker.withdrawn}})
    timing = {"seconds": elapsed, **{f"cpu_{k}": round(v, 3) for k, v in cpu.items()}}
    return plan, frames, last_time, timing


def plan_video(source: str | Path, *, scan: ScanParams = _SCAN,
               track: TrackParams = _TRACK, mask: MaskSpec = _MASK,
               caption: str | None = None, audio: Sequence[AudioEdit] = (),
               detector: Detector | None = None,
               progress: ProgressCallback | None = None) -> RedactionPlan:
    """Detect and track faces in ``source`` and return a :class:`RedactionPlan`.

    Nothing is written. Raises :class:`MediaError` for footage that cannot be read.
    """
    plan, _, _, _ = _detect_all(Path(source), scan=scan, track=track, detector=detector,
                                encode_to=None, encode=EncodeParams(), mask=mask,
                                caption=caption, audio=audio, progress=progress, stage="plan")
    return plan


def _finish(partial: Path, output: Path, *, plan: RedactionPlan, encode: EncodeParams,
            frames: int, timing: dict[str, float]) -> RenderResult:
    info = probe(partial)
    digest = _sha256_file(partial)
    partial.replace(output)
    duration = info.duration if info.duration is not None else plan.source.duration
    elapsed = timing["seconds"]
    return RenderResult(
        output=str(output), sha256=digest, plan_sha256=plan.sha256(),
        source_sha256=plan.source.sha256, software_version=software_version(),
        parameters={"mask": plan.mask.model_dump(mode="json"), "caption": plan.caption,
                    "audio": [a.model_dump(mode="json") for a in plan.audio],
                    "encode": encode.to_dict(), "plan_parameters": plan.parameters},
        frame_count=frames, duration=round(duration, 6),
        stats={"fps": round(frames / elapsed, 2) if elapsed else 0,
               "tracks": len(plan.tracks), "review_spans": len(plan.review),
               **{k: round(v, 3) for k, v in timing.items()}})


def render_plan(source: str | Path, plan: RedactionPlan, output: str | Path, *,
                encode: EncodeParams = EncodeParams(),
                progress: ProgressCallback | None = None) -> RenderResult:
    """Render ``plan`` over ``source`` into ``output`` (H.264/AAC MP4). Deterministic.

    Raises :class:`PlanError` if the plan was made for other footage (hash, size or frame
    count differ), :class:`MediaError` for unreadable footage, :class:`EncodeError` when
    writing fails. On any error no output file is left.
    """
    src, out = Path(source), Path(output)
    _check_output(out, src)
    info = probe(src)
    if (info.width, info.height) != (plan.source.width, plan.source.height):
        raise PlanError(f"plan is for {plan.source.width}x{plan.source.height} footage, "
                        f"{src.name} is {info.width}x{info.height}")
    digest = _sha256_file(src)
    if digest != plan.source.sha256:
        raise PlanError(f"plan is for {plan.source.name} (sha256 {plan.source.sha256[:12]}...), "
                        f"not {src.name} (sha256 {digest[:12]}...)")
    partial = _partial_path(out)
    masker = FrameMasker(plan.mask, plan.caption)

    def factory(first: Frame) -> VideoWriter:
        h, w = first.image.shape[:2]
        return VideoWriter(partial, width=w, height=h, fps=info.fps, audio_source=src,
                           mute=[(a.start, a.end) for a in plan.audio if a.action == "mute"],
                           bleep=[(a.start, a.end) for a in plan.audio if a.action == "bleep"],
                           preset=encode.preset, crf=encode.crf, threads=encode.threads)

    try:
        frames, _, elapsed, cpu = _run(src, detection=None, plan_masks=PlanMasks(plan), builder=None,
                                  writer_factory=factory, masker=masker, stage="render",
                                  progress=progress, total=plan.source.frame_count,
                                  window_size=8, expected_frames=plan.source.frame_count)
        if frames != plan.source.frame_count:
            raise PlanError(f"{src.name} has {frames} frames, the plan "
                            f"{plan.source.frame_count}: the plan is for other footage")
        return _finish(partial, out, plan=plan, encode=encode, frames=frames,
                       timing={"seconds": elapsed, **{f"cpu_{k}": v for k, v in cpu.items()}})
    finally:
        partial.unlink(missing_ok=True)


def redact_video(source: str | Path, output: str | Path, *, scan: ScanParams = _SCAN,
                 track: TrackParams = _TRACK, mask: MaskSpec = _MASK,
                 caption: str | None = None, audio: Sequence[AudioEdit] = (),
                 encode: EncodeParams = EncodeParams(), detector: Detector | None = None,
                 progress: ProgressCallback | None = None,
                 ) -> tuple[RedactionPlan, RenderResult]:
    """Plan and render in one pass: detect, track, mask and encode concurrently.

    Returns the plan (identical to :func:`plan_video`'s for the same inputs; rendering it with
    :func:`render_plan` gives the same file) and the :class:`RenderResult`. Raises like
    :func:`render_plan`; on any error no output file is left.
    """
    src, out = Path(source), Path(output)
    _check_output(out, src)
    partial = _partial_path(out)
    try:
        plan, frames, _, timing = _detect_all(
            src, scan=scan, track=track, detector=detector, encode_to=partial, encode=encode,
            mask=mask, caption=caption, audio=audio, progress=progress, stage="redact")
        result = _finish(partial, out, plan=plan, encode=encode, frames=frames, timing=timing)
        return plan, result
    finally:
        partial.unlink(missing_ok=True)

