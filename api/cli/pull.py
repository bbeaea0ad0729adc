"""``evidence-vault ingest pull``: fetch a past window of one camera from its site's NVR."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ingest import AgentsFile, PullProgress, PullReport, load_agents_file, pull, pull_spool_dir
from vault.actors import Actor, Purpose
from vault.config import Settings
from vault.errors import ConfigError, NotFound
from vault.vault import Vault

from ._common import JsonOpt, load_settings, parse_time, print_json, reports_errors


def agents_for_pull(settings: Settings, config: Path | None) -> AgentsFile:
    """The agents file naming the NVRs: ``--config``, else the ``agents_file`` setting.

    Raises ConfigError when neither is given, AgentsFileError when the file is unusable.
    """
    path = config or settings.agents_file
    if path is None:
        raise ConfigError(
            "no agents file names the NVRs: pass --config agents.toml or set "
            "EVIDENCE_VAULT_AGENTS_FILE (docs/nvr-pull.md)"
        )
    return load_agents_file(path)


def _human(report: PullReport) -> None:
    info = report.to_dict()
    window = info["window"]
    typer.echo(
        f"pull {report.id}: {report.camera} ({report.nvr_camera} on NVR {report.nvr['id']}) "
        f"{window['start']} .. {window['end']}: {report.state}"
    )
    for piece in info["recordings"]:
        again = " (already pulled)" if piece["already_pulled"] else ""
        resumed = f", resumed after a drop keeping {piece['resumed_bytes']} bytes" if piece[
            "resumed_bytes"] else ""
        typer.echo(
            f"  stored {piece['start']} .. {piece['end']} as {piece['recording_id']} "
            f"(sha256 {piece['sha256']}){again}{resumed}"
        )
        replay = piece.get("replay") or {}
        if replay.get("waited_for_keyframe"):
            typer.echo(f"    the replay did not start at a keyframe: "
                       f"{replay['waited_for_keyframe']} frames dropped, footage from "
                       f"{replay['first_keyframe']}", err=True)
        if replay.get("resumed_from"):
            typer.echo(f"    replay resumed after a drop from {', '.join(replay['resumed_from'])}",
                       err=True)
    for gap in info["gaps"]:
        typer.echo(f"  GAP {gap['start']} .. {gap['end']} ({gap['seconds']} s): {gap['message']}",
                   err=True)
    clock = info.get("clock") or {}
    if clock.get("flagged"):
        typer.echo(f"  NVR clock flagged: {clock.get('reason')}", err=True)


def pull_command(
    source: Annotated[
        str, typer.Option("--source", "-s", help="The NVR: its id in the agents file's nvrs list.")
    ],
    camera: Annotated[
        str, typer.Option("--camera", help="Vault camera id (mapped to the NVR's name for it).")
    ],
    from_: Annotated[
        str,
        typer.Option("--from", help="Window start, ISO-8601; no offset: UK time."),
    ],
    to: Annotated[str, typer.Option("--to", help="Window end, ISO-8601; no offset: UK time.")],
    purpose: Annotated[
        Optional[str], typer.Option(help="Why the footage is pulled (recorded in custody).")
    ] = None,
    reference: Annotated[
        Optional[str], typer.Option(help="Case, crime or SAR reference.")
    ] = None,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", "-c", help="Agents file naming the NVRs (default: the "
                     "agents_file setting)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Pull a past window of one camera from its site's NVR into the vault.

    Finds what the NVR holds of the camera in the window, fetches exactly that (from the
    keyframe before the start), and ingests it like any footage: hashed, encrypted, cataloged,
    with custody naming the NVR, the window and you. Parts of the window the NVR does not hold
    are reported as gaps with the reason. A dropped connection is retried and resumed; running
    the same pull again fetches only what is missing. Exits 3 when the NVR holds nothing in
    the window.
    """
    settings = load_settings()
    agents = agents_for_pull(settings, config)
    start = parse_time(from_, option="--from", edge="start")
    end = parse_time(to, option="--to", edge="end")
    assert start is not None and end is not None  # both options are required

    def progress(step: PullProgress) -> None:
        if json_out or step.message == "receiving":
            return
        typer.echo(f"  [{step.piece}/{step.pieces}] {step.message}", err=True)

    with Vault.open(settings) as vault:
        report = pull(
            vault, agents, nvr_id=source, camera=camera, start=start, end=end,
            requested_by=Actor.local_operator(),
            purpose=Purpose(purpose=purpose or "not stated", reference=reference)
            if purpose or reference else None,
            spool_dir=pull_spool_dir(settings, source), progress=progress,
        )
    if json_out:
        print_json(report.to_dict())
    else:
        _human(report)
    if report.state == "empty":
        raise NotFound(
            f"NVR {source} holds no footage of {camera} between {start.isoformat()} and "
            f"{end.isoformat()}"
        )


pull_command = reports_errors(pull_command)

__all__ = ["agents_for_pull", "pull_command"]
