"""CLI commands for the keyring: list its key-encryption keys, rotate, move data keys onto
the current one. Each change is a custody event by the local operator."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from vault.actors import Actor
from vault.casework.rekey import describe_keys, destroy, live_counts, rewrap, rotate
from vault.vault import Vault

from ._common import JsonOpt, load_settings, print_json, progress_bar, reports_errors

keys_app = typer.Typer(
    help="The keyring that wraps every recording's data key: list, rotate, rewrap.",
    no_args_is_help=True,
)

@keys_app.command("list")
@reports_errors
def keys_list(json_out: JsonOpt = False) -> None:
    """Key-encryption keys, oldest first: state, dates, and how many live recordings each wraps."""
    with Vault.open(load_settings()) as vault:
        counts = live_counts(vault)
        rows = [{**asdict(k), "recordings": counts.get(k.key_id, 0)} for k in describe_keys(vault)]
    if json_out:
        print_json(rows)
        return
    for row in rows:
        when = row["destroyed"] or row["retired"] or row["created"]
        typer.echo(f"{row['key_id']:<16} {row['state']:<10} {row['recordings']:>8} recordings"
                   f"  {when}")


@keys_app.command("rotate")
@reports_errors
def keys_rotate(
    reason: Annotated[str, typer.Option(help="Why (recorded in the custody log).")],
    rewrap_now: Annotated[
        bool,
        typer.Option("--rewrap/--no-rewrap", help="Also move existing data keys onto the new key."),
    ] = True,
    json_out: JsonOpt = False,
) -> None:
    """Make a new key-encryption key current (new footage uses it at once), then rewrap.

    Earlier keys still unwrap, so an interrupted rewrap is finished by 'keys rewrap'. The
    footage itself is not re-encrypted: its data keys stay the same.
    """
    actor = Actor.local_operator()
    report = None
    with Vault.open(load_settings()) as vault:
        change = rotate(vault, actor=actor, reason=reason)
        if rewrap_now:
            with progress_bar("rewrap", json_out) as progress:
                report = rewrap(vault, actor=actor, progress=progress)
    if json_out:
        print_json({**change, **({"rewrap": report.to_dict()} if report else {})})
        return
    typer.echo(f"keyring key rotated: {change['old_key_id']} -> {change['new_key_id']}")
    if report is not None:
        typer.echo(f"data keys moved onto {change['new_key_id']}: {report.rewrapped}")


@keys_app.command("rewrap")
@reports_errors
def keys_rewrap(json_out: JsonOpt = False) -> None:
    """Move every live recording's data key onto the current key-encryption key."""
    with Vault.open(load_settings()) as vault, progress_bar("rewrap", json_out) as progress:
        report = rewrap(vault, actor=Actor.local_operator(), progress=progress)
    if json_out:
        print_json(report.to_dict())
        return
    typer.echo(
        f"{report.rewrapped} data keys moved onto {report.key_id}"
        f" ({report.already_current} already on it, {report.deleted_meanwhile} deleted meanwhile)"
    )


@keys_app.command("destroy")
@reports_errors
def keys_destroy(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="A retired key, e.g. local-1.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the custody log).")],
    json_out: JsonOpt = False,
) -> None:
    """Destroy a retired key-encryption key for good.

    Refused while any live recording still uses it (run 'keys rewrap' first) and within an
    hour of its retirement. Afterwards the data keys it wrapped, including those of deleted
    footage kept in old catalog backups, can never be opened again.
    """
    with Vault.open(load_settings()) as vault:
        result = destroy(vault, key_id, actor=Actor.local_operator(), reason=reason)
    if json_out:
        print_json(result)
        return
    typer.echo(f"key {key_id} destroyed (retired {result['retired']})")


__all__ = ["keys_app"]
