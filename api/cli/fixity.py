"""CLI command for fixity checks: prove stored footage is still the bytes that were ingested."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vault.actors import Actor
from vault.errors import IntegrityError
from vault.casework.fixity import check_fixity
from vault.vault import Vault

from ._common import (
    JsonOpt,
    exit_code_for,
    load_settings,
    print_json,
    progress_bar,
    reports_errors,
)

fixity_app = typer.Typer(
    help="Fixity checks: read stored footage back and prove it matches its SHA-256.",
    no_args_is_help=True,
)


@fixity_app.command("check")
@reports_errors
def fixity_check(
    recording_ids: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="[ID]...", help="Recordings to check (default: all still held)."),
    ] = None,
    sample: Annotated[
        Optional[int],
        typer.Option(min=1, help="Check this many recordings picked at random (daily spot checks)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Decrypt and hash stored recordings; log a fixity_checked custody event per batch.

    Exits 0 when every recording checked is intact, 4 when any is corrupt, missing or
    unreadable (the report names them; nothing is repaired or deleted).
    """
    with Vault.open(load_settings()) as vault:
        with progress_bar("fixity", json_out) as progress:
            report = check_fixity(vault, actor=Actor.local_operator(),
                                  recording_ids=recording_ids or None, sample=sample,
                                  progress=progress)
    if json_out:
        print_json(report.to_dict())
    else:
        for failure in report.failures:
            typer.echo(f"{failure.outcome}: {failure.recording_id}: {failure.reason}", err=True)
        typer.echo(report.summary())
    if not report.passed:
        raise typer.Exit(exit_code_for(IntegrityError("fixity")))


__all__ = ["fixity_app"]
