"""``evidence-vault demo``: run the whole system once on the embedded default."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..demo import Step, run_demo
from ._common import print_json, reports_errors


@reports_errors
def demo(
    home: Annotated[
        Path, typer.Option(help="Directory for the demo's vault and outputs (re-created each run).")
    ] = Path("evidence-vault-demo"),
    segment_seconds: Annotated[float, typer.Option(help="Length of each synthetic CCTV segment.")] = 40.0,
    segments: Annotated[int, typer.Option(min=1, max=20, help="How many CCTV segments to make.")] = 3,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON at the end.")] = False,
) -> None:
    """Ingest, case, redact, share, export, verify and (24 days later) delete synthetic footage.

    Needs no server: SQLite catalog, local encrypted store and local keyring under --home.
    """
    started = time.perf_counter()
    count = 0

    def show(step: Step) -> None:
        nonlocal count
        count += 1
        if json_out:
            return
        typer.secho(f"[{count}] {step.name} ({step.seconds:.1f} s)", bold=True)
        for line in step.lines:
            typer.echo(f"    {line}")

    report = run_demo(home, segment_seconds=segment_seconds, segments=segments, on_step=show)
    if json_out:
        print_json(report.to_dict())
    else:
        typer.secho(
            f"demo finished in {time.perf_counter() - started:.0f} s; everything is under {report.home}",
            fg=typer.colors.GREEN,
        )
