"""``evidence-vault ingest``: run the ingest agent, upload files by hand, show agent status."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ingest import (
    Agent,
    AgentsFile,
    UploadResult,
    UploadSourceConfig,
    agent_spool_dir,
    ingest_files,
    load_agents_file,
    read_status,
)
from vault.errors import InvalidInput
from vault.vault import Vault

from ._common import JsonOpt, load_settings, parse_time, print_json, reports_errors

ingest_app = typer.Typer(
    help="Ingest footage: the agent (RTSP cameras, NVR exports, device docks) and uploads.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="Agents file (TOML or YAML) naming every source."),
]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@ingest_app.command("file")
@reports_errors
def ingest_file(
    paths: Annotated[list[Path], typer.Argument(help="Files to ingest.", show_default=False)],
    source: Annotated[
        str,
        typer.Option("--source", "-s", help="Upload route id (an 'upload' source in --config)."),
    ] = "upload",
    device: Annotated[
        Optional[str], typer.Option(help="Camera or device id the footage came from.")
    ] = None,
    site: Annotated[Optional[str], typer.Option(help="Site or estate name.")] = None,
    captured_at: Annotated[
        Optional[str], typer.Option(help="Capture start, ISO-8601; no offset: UK time (default: probed).")
    ] = None,
    device_time: Annotated[
        Optional[str],
        typer.Option(help="The device's clock reading now, for the clock-offset check."),
    ] = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ingest files that arrived by other routes (handed-in phone video, USB exports).

    Each file is copied to the spool, probed, hashed, encrypted, stored, verified and logged;
    the originals are not touched. The same file twice gives one recording. Exits 8 if any
    file was refused (not media).
    """
    settings = load_settings()
    agents = load_agents_file(config) if config else AgentsFile()
    upload = UploadSourceConfig(id=source, kind="upload", site=site)
    if config:
        configured = agents.source(source)
        if not isinstance(configured, UploadSourceConfig):
            raise InvalidInput(
                f"source {source!r} in {config} is a {configured.kind} source, not upload"
            )
        upload = configured if site is None else configured.model_copy(update={"site": site})

    def progress(result: UploadResult) -> None:
        if json_out:
            return
        info = result.to_dict()
        if result.ok:
            dup = " (already in the vault)" if info["duplicate"] else ""
            typer.echo(
                f"stored {result.path} as {info['recording_id']} (sha256 {info['sha256']}){dup}"
            )
            clock = info.get("clock") or {}
            if clock.get("flagged"):
                typer.echo(f"  clock flagged: {clock.get('reason')}", err=True)
        else:
            typer.echo(f"refused {result.path}: {info['error']}", err=True)

    with Vault.open(settings) as vault:
        results = ingest_files(
            vault,
            paths,
            config=upload,
            spool_dir=settings.spool_dir / "upload",
            agent_name=agents.agent.name,
            clock_bound_s=agents.agent.clock_offset_bound_s,
            device=device,
            captured_at=parse_time(captured_at, option="--captured-at"),
            device_time=parse_time(device_time, option="--device-time"),
            workers=agents.agent.workers,
            progress=progress,
            min_free_bytes=int(agents.agent.min_free_mb * (1 << 20)),
        )
    if json_out:
        print_json([r.to_dict() for r in results])
    failed = [r for r in results if not r.ok]
    if failed:
        raise typer.Exit(8)


@ingest_app.command("run")
@reports_errors
def ingest_run(
    config: Annotated[Path, typer.Option("--config", "-c", help="Agents file (TOML or YAML).")],
    duration: Annotated[
        Optional[float],
        typer.Option(help="Stop after this many seconds (catch-up runs, tests)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run every source in the agents file until SIGTERM (or --duration).

    Logs each file; `evidence-vault ingest status` shows health while it runs. SIGTERM stops
    intake and finishes in-flight work; a second SIGTERM abandons it (it resumes on restart).
    """
    _setup_logging(verbose)
    settings = load_settings()
    agents = load_agents_file(config)
    with Agent(settings, agents) as agent:
        restore = agent.install_signal_handlers()
        try:
            final = agent.run(duration=duration)
        finally:
            restore()
    if json_out:
        print_json(final)


def _human_status(status: dict[str, Any]) -> None:
    spool = status.get("spool") or {}
    journal = status.get("journal") or {}
    state = "running" if status.get("running") else "not running"
    workers = status.get("workers") or {}
    typer.echo(
        f"agent {status.get('agent', '?')}: {state} (pid {status.get('pid', '-')}, updated {status.get('updated_at', '-')}), "
        f"workers {status.get('live_workers', 0)} of {workers.get('configured', '?')} alive"
    )
    for problem in status.get("problems") or []:
        typer.echo(f"UNHEALTHY: {problem}")
    used = journal.get("used_bytes", spool.get("used_bytes", 0))
    limit = spool.get("limit_bytes") or 0
    pressure = "  BACK-PRESSURE: intake paused" if spool.get("backpressure") else ""
    typer.echo(
        f"spool {status.get('spool_dir')}: {used / 1e6:.1f} MB waiting"
        + (f" of {limit / 1e6:.0f} MB" if limit else "")
        + pressure
    )
    counts = journal.get("counts") or {}
    typer.echo("items: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    store = status.get("store") or {}
    if store and not store.get("ok", True):
        typer.echo(f"vault store failing: {store.get('last_error')}")
    for source in status.get("sources", []):
        typer.echo(
            f"  {source.get('id'):<20} {source.get('kind'):<9} {source.get('state')}  files {source.get('files', 0)}"
        )
    for event in (journal.get("recent") or [])[-10:]:
        typer.echo(f"  {event['at'][:19]}Z {event['kind']:<12} {event['message']}")


@ingest_app.command("status")
@reports_errors
def ingest_status(
    config: ConfigOpt = None,
    spool: Annotated[
        Optional[Path], typer.Option(help="Spool directory (default: from --config or settings).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the agent's health: workers, sources, spool use and back-pressure, waiting items,
    events.

    Exits 1 (after printing) when the agent is unhealthy: no agent process for this spool,
    no live pipeline worker, or a status file not rewritten for 10 intervals (a stuck agent or
    a full disk). Use it as the container healthcheck.
    """
    settings = load_settings()
    if spool is None:
        agents = load_agents_file(config) if config else AgentsFile()
        spool = agent_spool_dir(settings, agents)
    status = read_status(spool)
    if json_out:
        print_json(status)
    else:
        _human_status(status)
    if not status.get("healthy"):
        raise typer.Exit(1)


__all__ = ["ingest_app"]
