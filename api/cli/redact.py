"""``evidence-vault redact``: blur faces in footage for disclosure.

    evidence-vault redact INPUT -o OUTPUT [--plan-out plan.json] [--mode blur]
    evidence-vault redact plan INPUT -o plan.json
    evidence-vault redact render INPUT plan.json -o OUTPUT

The bare form plans and renders in one pass; ``plan`` writes a reviewable JSON plan;
``render`` applies a (reviewed, edited) plan. With ``--chunk-s`` (or the setting
``redaction_chunk_s``), long footage is planned and rendered in chunks on ``--workers``
threads and joined without re-encoding (:mod:`redaction.chunks`). A thin layer: parse, call
:mod:`redaction`, print. ``--json`` prints a machine-readable summary instead of the progress
bar.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from redaction import (
    AudioEdit,
    CenterFace,
    EncodeParams,
    MaskSpec,
    MaskStyle,
    Progress,
    RedactionError,
    ScanParams,
    load_plan,
    plan_chunked,
    redact_chunked,
    render_chunked,
    save_plan,
)
from redaction.plan import RedactionPlan
from redaction.render import RenderResult
from ._common import load_settings, reports_errors

__all__ = ["redact_app"]

_ENCODE = EncodeParams()


class _DefaultToRun(TyperGroup):
    """A group whose first argument, when it names no subcommand, goes to ``run``.

    So ``redact INPUT -o OUT`` works beside ``redact plan ...`` and ``redact render ...``.
    """

    default_command = "run"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


redact_app = typer.Typer(
    cls=_DefaultToRun,
    help="Blur faces in footage for disclosure. `redact INPUT -o OUTPUT` plans and renders in "
    "one pass; `redact plan` writes a reviewable JSON plan; `redact render` applies one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Mode(str, Enum):
    """Mask style choices on the command line."""

    blur = "blur"
    pixelate = "pixelate"
    solid = "solid"


def _parse_time(text: str) -> float:
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3:
        raise ValueError(text)
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


def _ranges(values: list[str], action: str) -> list[AudioEdit]:
    edits = []
    for value in values:
        try:
            start, end = value.split("-", 1)
            edits.append(AudioEdit(start=_parse_time(start), end=_parse_time(end),
                                   action=action))  # type: ignore[arg-type]
        except ValueError as exc:
            raise typer.BadParameter(
                f"{value!r}: give START-END in seconds or [HH:]MM:SS, e.g. 12.5-14") from exc
    return edits


def _fail(error: RedactionError) -> typer.Exit:
    from ._common import exit_code_for

    typer.echo(f"error: {error}", err=True)
    return typer.Exit(exit_code_for(error))


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[Callable[[Progress], None] | None]:
    """A rich progress bar on a terminal; nothing when piped or with --json."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    with Bar(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
             TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn(),
             console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None, fps=0.0)

        def update(p: Progress) -> None:
            bar.update(task, completed=p.done, total=p.total, fps=p.fps)

        yield update


def _summary(plan: RedactionPlan | None, result: RenderResult | None,
             plan_path: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if plan is not None:
        stats = plan.parameters.get("stats", {})
        out.update({
            "frames": plan.source.frame_count,
            "faces": stats.get("detections", sum(1 for _ in plan.tracks)),
            "tracks": len(plan.tracks),
            "review_spans": len(plan.review),
            "review": [r.model_dump(mode="json") for r in plan.review],
            "plan_sha256": plan.sha256(),
            "source_sha256": plan.source.sha256,
        })
    if plan_path is not None:
        out["plan"] = str(plan_path)
    if result is not None:
        out.update({
            "frames": result.frame_count,
            "output": result.output,
            "sha256": result.sha256,
            "plan_sha256": result.plan_sha256,
            "duration": result.duration,
            "fps": result.stats.get("fps"),
            "software_version": result.software_version,
        })
    return out


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    parts = [f"{k}: {summary[k]}" for k in ("frames", "tracks", "review_spans", "fps", "output",
                                           "plan") if summary.get(k) is not None]
    typer.echo(", ".join(parts))
    for r in summary.get("review", [])[:20]:
        typer.echo(f"  review track {r['track_id']} {r['start_time']:.2f}-{r['end_time']:.2f}s "
                   f"({r['reason']}, min confidence {r['min_confidence']:.2f})")


InputArg = Annotated[Path, typer.Argument(help="Footage file (MP4, MKV, AVI, TS ...).",
                                          show_default=False)]
ModeOpt = Annotated[Mode, typer.Option("--mode", "-m", help="How faces are hidden.")]
StrengthOpt = Annotated[int, typer.Option("--strength", min=1, max=10,
                                          help="1-10; higher leaves less detail.")]
CaptionOpt = Annotated[str | None, typer.Option(
    "--caption", help='Text burned into every frame, e.g. "REF 24/1234 - REDACTED COPY".')]
MuteOpt = Annotated[list[str] | None, typer.Option(
    "--mute", help="Silence audio START-END (seconds or [HH:]MM:SS); repeatable.")]
BleepOpt = Annotated[list[str] | None, typer.Option(
    "--bleep", help="Replace audio START-END with a tone; repeatable.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON summary (no progress bar).")]
PresetOpt = Annotated[str, typer.Option("--preset", help="x264 preset of the output.")]
CrfOpt = Annotated[int, typer.Option("--crf", min=0, max=51, help="x264 quality (lower: better).")]
MinFaceOpt = Annotated[int, typer.Option(
    "--min-face", min=4, help="Smallest face to find, in pixels tall.")]
ChunkOpt = Annotated[float | None, typer.Option(
    "--chunk-s", min=0, show_default=False,
    help="Split footage longer than 1.5 chunks into chunks of about this many seconds at "
    "keyframes, planned and rendered in parallel (0: one pass). Default: the "
    "redaction_chunk_s setting.")]
OverlapOpt = Annotated[float | None, typer.Option(
    "--overlap-s", min=0, show_default=False,
    help="Seconds each chunk plans beyond its borders. Default: redaction_chunk_overlap_s.")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", min=1, show_default=False,
    help="Chunks planned or rendered at once. Default: redaction_workers.")]


class Device(str, Enum):
    """Where the face detector may run (redaction.detect.execution_providers)."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


DeviceOpt = Annotated[Device | None, typer.Option(
    "--device", show_default=False,
    help="Where the face detector runs: auto (an NVIDIA GPU where onnxruntime-gpu is "
    "installed, else the CPU), cpu, or cuda (the GPU or an error). Default: the "
    "redaction_device setting.")]


def _detector(device: Device | None) -> CenterFace:
    """CenterFace on ``device``, or on the ``redaction_device`` setting. Raises
    DetectorUnavailable."""
    return CenterFace(device=load_settings().redaction_device if device is None
                      else device.value)


def _chunking(chunk_s: float | None, overlap_s: float | None,
              workers: int | None) -> tuple[float, float, int]:
    """The options given, the settings for the rest."""
    settings = load_settings()
    return (settings.redaction_chunk_s if chunk_s is None else chunk_s,
            settings.redaction_chunk_overlap_s if overlap_s is None else overlap_s,
            settings.redaction_workers if workers is None else workers)


_RECORDING_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@reports_errors
def _redact_vault_recording(recording_id: str, output: Path, *, plan_out: Path | None,
                            mask: MaskSpec, caption: str | None, audio: list[AudioEdit],
                            encode: EncodeParams, purpose: str, reference: str | None,
                            as_json: bool, chunking: tuple[float, float, int],
                            device: Device | None) -> None:
    from redaction.redacted_copy import redact_recording
    from vault import Actor, Purpose, Vault

    actor = Actor.local_operator()
    why = Purpose(purpose=purpose, reference=reference)
    with Vault.open(load_settings()) as vault, _progress("redact", as_json) as progress:
        copy = redact_recording(vault, recording_id, actor=actor, purpose=why, mask=mask,
                                caption=caption, audio=audio, encode=encode, progress=progress,
                                chunk_s=chunking[0], overlap_s=chunking[1],
                                workers=chunking[2], detector=_detector(device))
        vault.export_file(copy.recording.id, output, actor=actor, purpose=why)
    if plan_out is not None:
        save_plan(copy.plan, plan_out)
    summary = _summary(copy.plan, copy.render, plan_out)
    summary.update({"output": str(output), "recording_id": copy.recording.id,
                    "parent_id": recording_id})
    _print(summary, as_json)


@redact_app.command("run")
def run_cmd(
    input: InputArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Redacted MP4 to write.",
                                         show_default=False)],
    plan_out: Annotated[Path | None, typer.Option(
        "--plan-out", help="Also write the plan used, for review and re-rendering.")] = None,
    mode: ModeOpt = Mode.blur,
    strength: StrengthOpt = 8,
    caption: CaptionOpt = None,
    mute: MuteOpt = None,
    bleep: BleepOpt = None,
    min_face: MinFaceOpt = 20,
    preset: PresetOpt = _ENCODE.preset,
    crf: CrfOpt = _ENCODE.crf,
    purpose: Annotated[str, typer.Option(
        help="With a vault recording id: why it is redacted (custody log).")] = "redaction for disclosure",
    reference: Annotated[str | None, typer.Option(
        help="With a vault recording id: case, crime or SAR reference.")] = None,
    chunk_s: ChunkOpt = None,
    overlap_s: OverlapOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Detect, track and blur faces in INPUT and write a redacted H.264/AAC MP4 (one pass).

    INPUT is a footage file, or the id of a vault recording: then the redacted copy is also
    stored in the vault as a new recording with provenance, and the access is logged.
    """
    audio = _ranges(mute or [], "mute") + _ranges(bleep or [], "bleep")
    chunking = _chunking(chunk_s, overlap_s, workers)
    if not input.exists() and _RECORDING_ID.fullmatch(str(input)):
        _redact_vault_recording(str(input), output, plan_out=plan_out,
                                mask=MaskSpec(style=MaskStyle(mode.value), strength=strength),
                                caption=caption, audio=audio,
                                encode=EncodeParams(preset=preset, crf=crf),
                                purpose=purpose, reference=reference, as_json=as_json,
                                chunking=chunking, device=device)
        return
    scan = ScanParams(min_face=min_face)
    try:
        with _progress("redact", as_json) as progress:
            plan, result = redact_chunked(
                input, output, chunk_s=chunking[0], overlap_s=chunking[1],
                workers=chunking[2], scan=scan,
                mask=MaskSpec(style=MaskStyle(mode.value), strength=strength),
                caption=caption, audio=audio, encode=EncodeParams(preset=preset, crf=crf),
                detector=_detector(device), progress=progress)
        if plan_out is not None:
            save_plan(plan, plan_out)
    except RedactionError as error:
        raise _fail(error) from None
    _print(_summary(plan, result, plan_out), as_json)


@redact_app.command("plan")
def plan_cmd(
    input: InputArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Plan JSON to write.",
                                         show_default=False)],
    mode: ModeOpt = Mode.blur,
    strength: StrengthOpt = 8,
    caption: CaptionOpt = None,
    mute: MuteOpt = None,
    bleep: BleepOpt = None,
    min_face: MinFaceOpt = 20,
    chunk_s: ChunkOpt = None,
    overlap_s: OverlapOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Detect and track faces in INPUT and write a redaction plan to review and edit."""
    audio = _ranges(mute or [], "mute") + _ranges(bleep or [], "bleep")
    chunk, overlap, threads = _chunking(chunk_s, overlap_s, workers)
    try:
        with _progress("plan", as_json) as progress:
            plan = plan_chunked(input, chunk_s=chunk, overlap_s=overlap, workers=threads,
                                scan=ScanParams(min_face=min_face),
                                mask=MaskSpec(style=MaskStyle(mode.value), strength=strength),
                                caption=caption, audio=audio, detector=_detector(device),
                                progress=progress)
        save_plan(plan, output)
    except RedactionError as error:
        raise _fail(error) from None
    _print(_summary(plan, None, output), as_json)


@redact_app.command("render")
def render_cmd(
    input: InputArg,
    plan_path: Annotated[Path, typer.Argument(metavar="PLAN", help="Plan JSON to apply.",
                                              show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Redacted MP4 to write.",
                                         show_default=False)],
    keep: Annotated[list[int] | None, typer.Option(
        "--keep", help="Track id to leave visible (the data subject); repeatable.")] = None,
    preset: PresetOpt = _ENCODE.preset,
    crf: CrfOpt = _ENCODE.crf,
    chunk_s: ChunkOpt = None,
    workers: WorkersOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Render INPUT with the masks of PLAN into a redacted H.264/AAC MP4."""
    chunk, _, threads = _chunking(chunk_s, None, workers)
    try:
        plan = load_plan(plan_path)
        if keep:
            plan = plan.with_keep(set(keep))
        with _progress("render", as_json) as progress:
            result = render_chunked(input, plan, output, chunk_s=chunk, workers=threads,
                                    encode=EncodeParams(preset=preset, crf=crf),
                                    progress=progress)
    except RedactionError as error:
        raise _fail(error) from None
    _print(_summary(plan, result, None), as_json)
