"""CLI commands for disclosure packages: build one for a recipient, verify one offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vault.actors import Actor, Purpose
from vault.casework.disclosure import build_export, verify_export
from vault.vault import Vault

from ._common import JsonOpt, load_settings, print_json, reports_errors

export_app = typer.Typer(
    help="Disclosure packages for police and partners: masters, hashes, signed custody.",
    no_args_is_help=True,
)


@export_app.command("create")
@reports_errors
def create(
    recording_ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Recordings to disclose.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Package file to write (.zip).")],
    recipient: Annotated[str, typer.Option(help="The person receiving the package.")],
    recipient_org: Annotated[str, typer.Option(help="Their organisation (e.g. a police force).")],
    purpose: Annotated[str, typer.Option(help="Why the footage is disclosed.")],
    reference: Annotated[Optional[str], typer.Option(help="Crime, case or SAR reference.")] = None,
    lawful_basis: Annotated[Optional[str], typer.Option(help="Lawful basis for the disclosure.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Build a disclosure package (ZIP) and log the export in the custody ledger."""
    with Vault.open(load_settings()) as vault:
        result = build_export(
            vault,
            recording_ids,
            output,
            actor=Actor.local_operator(),
            purpose=Purpose(purpose=purpose, lawful_basis=lawful_basis, reference=reference),
            recipient=recipient,
            recipient_org=recipient_org,
        )
        vkey = vault.ledger.verifier_key()
    summary = {
        "export_id": result.export_id,
        "path": str(result.path),
        "sha256": result.sha256,
        "files": len(result.manifest["files"]),
        "custody_event": result.event_seq,
        "verifier_key": vkey,
    }
    if json_out:
        print_json(summary)
    else:
        typer.echo(f"wrote {result.path} ({summary['files']} files, sha256 {result.sha256})")
        typer.echo(f"recipient checks it with: python3 verify_export.py {result.path.name} --key '{vkey}'")


@export_app.command("verify")
@reports_errors
def verify(
    package: Annotated[Path, typer.Argument(help="A disclosure package (.zip).")],
    key: Annotated[
        Optional[str],
        typer.Option(help="The vault's verifier key, from a trusted source (default: the one in the package)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a package offline: file hashes, signed custody certificate, inclusion proofs."""
    summary = verify_export(package, key)
    if json_out:
        print_json(summary)
    else:
        typer.echo(f"OK: {summary['files']} files and {summary['events']} custody events verified, "
                   f"{summary.get('redacted_events', 0)} of them redacted for the recipient "
                   f"(key {summary['key']})")
