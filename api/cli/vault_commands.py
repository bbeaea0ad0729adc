"""CLI commands over the vault core: init, put, get, ls (registered on the top-level app in
``api/cli/__init__.py``), and the custody ledger."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vault.actors import Actor, Purpose
from vault.storage.catalog import Recording, SourceKind
from vault.casework.holds import held_ids
from vault.ledger.incremental_verify import verify_incremental
from vault.casework.retention import clock_note
from vault.casework.search import RecordingQuery, page_cursor
from vault.casework.search import list_recordings as search_list
from vault.vault import ByteRange, Vault
from vault.capture import Capture

from ._common import JsonOpt, load_settings, parse_time, print_json, reports_errors

# Rows per catalog read when ls lists everything.
_LS_PAGE = 500


def recording_dict(recording: Recording, *, held: bool = False) -> dict[str, Any]:
    """The public description of a recording (no key material); ``held``: something keeps it
    past ``retain_until`` now, so ``kept_until`` is null (vault/casework/holds.py)."""
    return {
        "id": recording.id,
        "source": recording.source_id,
        "media_kind": recording.media_kind.value,
        "captured_start": recording.captured_start,
        "captured_end": recording.captured_end,
        "received_at": recording.received_at,
        "original_name": recording.original_name,
        "size": recording.size,
        "sha256": recording.sha256,
        "key_id": recording.key_id,
        "retain_until": recording.retain_until,
        "held": held,
        "kept_until": None if held or recording.deleted_at else recording.retain_until,
        "deleted_at": recording.deleted_at,
        "parent_id": recording.parent_id,
        "clock_flagged": recording.clock_flagged,
        "clock_note": clock_note(recording),
    }


def _open_vault() -> Vault:
    return Vault.open(load_settings())


@reports_errors
def init(json_out: JsonOpt = False) -> None:
    """Create the vault's data directory, keyring, signing key and catalog (safe to re-run)."""
    settings = load_settings()
    with Vault.init(settings) as vault:
        info = {
            "home": str(settings.home_dir),
            "catalog": vault.engine.url.render_as_string(hide_password=True),
            "store": settings.store_backend,
            "key_id": vault.keys.current_key_id(),
            "ledger_verifier_key": vault.ledger.verifier_key(),
            "ledger_origin": vault.ledger.origin,
        }
    if json_out:
        print_json(info)
    else:
        typer.echo(f"vault ready at {info['home']}")
        for name, value in info.items():
            typer.echo(f"  {name}: {value}")


@reports_errors
def put(
    file: Annotated[Path, typer.Argument(help="File to store.", show_default=False)],
    source: Annotated[str, typer.Option("--source", "-s", help="Camera, device or route id.")],
    captured_at: Annotated[
        Optional[str],
        typer.Option(help="Capture start, ISO-8601 with timezone (default: file mtime)."),
    ] = None,
    kind: Annotated[
        SourceKind, typer.Option(help="Source kind (sets the retention rule).")
    ] = SourceKind.UPLOAD,
    site: Annotated[Optional[str], typer.Option(help="Site or estate name.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Store one file: hash, encrypt, store, catalog and log custody."""
    with _open_vault() as vault:
        recording = vault.put_file(
            file,
            Capture(
                source_id=source,
                source_kind=kind,
                site=site,
                captured_at=parse_time(captured_at, option="--captured-at"),
            ),
            actor=Actor.local_operator(),
        )
    if json_out:
        print_json(recording_dict(recording))
    else:
        typer.echo(f"stored {file} as {recording.id} (sha256 {recording.sha256})")
    note = clock_note(recording)
    if note:
        # Stored, not refused (refusing loses evidence), but the operator must hear of it.
        typer.echo(
            f"warning: {note}; kept until {recording.retain_until:%Y-%m-%d %H:%M}Z unless held",
            err=True,
        )


@reports_errors
def get(
    recording_id: Annotated[str, typer.Argument(metavar="ID", help="Recording id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the file.")],
    byte_range: Annotated[
        Optional[str],
        typer.Option("--range", help="Inclusive byte range A-B, A- or -N, as in HTTP."),
    ] = None,
    purpose: Annotated[
        str, typer.Option(help="Why you need the footage (recorded in the custody log).")
    ] = "retrieval by vault operator",
    reference: Annotated[
        Optional[str], typer.Option(help="Case, crime or SAR reference.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Decrypt a recording to a file, verifying its hash; the access is logged."""
    with _open_vault() as vault:
        recording = vault.export_file(
            recording_id,
            output,
            actor=Actor.local_operator(),
            purpose=Purpose(purpose=purpose, reference=reference),
            byte_range=ByteRange.parse(byte_range) if byte_range else None,
        )
    if json_out:
        print_json({**recording_dict(recording), "output": str(output), "range": byte_range})
    else:
        typer.echo(f"wrote {output} ({'range ' + byte_range if byte_range else 'verified'})")


@reports_errors
def list_recordings(
    source: Annotated[Optional[str], typer.Option(help="Only this source.")] = None,
    since: Annotated[Optional[str], typer.Option(
        help="Capture ends at or after (ISO-8601).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Captured before (ISO-8601).")] = None,
    deleted: Annotated[bool, typer.Option(help="Include deleted recordings.")] = False,
    limit: Annotated[Optional[int], typer.Option(
        min=1, help="Show at most this many (default: all of them, read a page at a time).")
    ] = None,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    after: Annotated[Optional[str], typer.Option(
        help="Start after this cursor (the one a cut listing names): as fast at any depth, "
        "where --offset makes the catalog skip every earlier row.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List recordings, oldest capture first, a page at a time; with --limit, says so when
    more match than it shows and how to go on."""
    query = RecordingQuery(
        source_id=source, include_deleted=deleted, offset=offset, after=after,
        since=parse_time(since, option="--since"), until=parse_time(until, option="--until"))
    with _open_vault() as vault:
        rows, kept, cursor = _listing(vault, query, limit)
    if cursor is not None:
        # Never a silent cut: a list that stops at its limit looks like all there is.
        typer.echo(f"showing {len(rows)} from {offset}; more match: "
                   f"use --offset {offset + len(rows)}, or --after {cursor} (as fast at any "
                   "depth)", err=True)
    if json_out:
        print_json([recording_dict(r, held=r.id in kept) for r in rows])
        return
    if not rows:
        typer.echo("no recordings")
    for r in rows:
        state = ("deleted" if r.deleted_at else "held" if r.id in kept
                 else f"keep until {r.retain_until:%Y-%m-%d}")
        typer.echo(
            f"{r.id}  {r.source_id:<16} {r.captured_start:%Y-%m-%d %H:%M:%S}Z "
            f"{r.media_kind.value:<5} {r.size:>12} B  {state}"
        )


def _listing(
    vault: Vault, query: RecordingQuery, limit: int | None
) -> tuple[list[Recording], set[str], str | None]:
    """The recordings ``query`` matches, at most ``limit`` of them, read a page at a time; the
    ids of those held; and the cursor to go on from when more match than were read."""
    rows: list[Recording] = []
    kept: set[str] = set()
    cursor, skip = query.after, query.offset
    while limit is None or len(rows) < limit:
        # One row more than needed: whether anything follows the last one shown.
        want = _LS_PAGE if limit is None else min(_LS_PAGE, limit - len(rows))
        page = search_list(vault, replace(query, limit=want + 1, offset=skip, after=cursor))
        skip, more = 0, len(page) > want
        page = page[:want]
        rows.extend(page)
        kept |= held_ids(vault, (r.id for r in page))
        if not more:
            return rows, kept, None
        cursor = page_cursor(page[-1])
    return rows, kept, cursor


custody_app = typer.Typer(help="The tamper-evident chain-of-custody ledger.", no_args_is_help=True)


@custody_app.command("log")
@reports_errors
def custody_log(
    recording_id: Annotated[
        Optional[str], typer.Argument(metavar="[ID]", help="Only events about this item.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 1000,
    json_out: JsonOpt = False,
) -> None:
    """Show custody events, oldest first."""
    with _open_vault() as vault:
        events = vault.ledger.events(object_id=recording_id, limit=limit)
    if json_out:
        print_json([e.to_dict() for e in events])
        return
    for e in events:
        typer.echo(e.summary())


@custody_app.command("verify")
@reports_errors
def custody_verify(
    json_out: JsonOpt = False,
    trusted: Annotated[
        Optional[Path],
        typer.Option(
            "--trusted-checkpoint",
            exists=True,
            dir_okay=False,
            readable=True,
            help="A signed checkpoint saved earlier outside the vault (e.g. by an auditor): the "
            "ledger must still contain it.",
        ),
    ] = None,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Check only the events appended since the last verified checkpoint (the "
            "scheduled check; the first run checks everything). Skips the catalog comparison.",
        ),
    ] = False,
) -> None:
    """Recompute every event, hash link, Merkle root and signed checkpoint, and compare
    every catalog row (source, capture times, size, SHA-256, retention date) with the ledger.

    Says how many events no signature covers yet (at most a minute's worth: sensitive events
    are signed at once). Exits 0 only when everything verifies; otherwise names the first bad
    event, or the recordings whose rows differ from the ledger or lost their row.
    """
    note = trusted.read_text(encoding="utf-8") if trusted is not None else None
    with _open_vault() as vault:
        if incremental:
            report = verify_incremental(vault.ledger, trusted_checkpoint=note)
        else:
            report = vault.ledger.verify(trusted_checkpoint=note)
    if json_out:
        print_json(report.to_dict())
    else:
        typer.echo(f"custody ledger verified: {report.summary()}")


@custody_app.command("proof")
@reports_errors
def custody_proof(
    seq: Annotated[int, typer.Argument(metavar="EVENT", help="Event sequence number.")],
) -> None:
    """Print the inclusion proof of one event (JSON), checkable offline against a checkpoint."""
    with _open_vault() as vault:
        print_json(vault.ledger.inclusion_proof(seq))


@custody_app.command("rotate-key")
@reports_errors
def custody_rotate_key(
    reason: Annotated[
        str, typer.Option(help="Why (recorded in the ledger), e.g. 'annual rotation'.")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Hand the custody ledger to a new signing key.

    The old key signs a checkpoint ending with a key_rotated event that names the new key, and
    the new key cosigns it, so holders of the old verifier key can follow the hand-over. The old
    signing key is destroyed (its MAC key is kept to verify earlier events). Give recipients the
    new verifier key; running API and agent processes take it up on their next event.
    """
    with _open_vault() as vault:
        result = vault.ledger.rotate_key(actor=Actor.local_operator(), reason=reason)
    if json_out:
        print_json(result)
        return
    typer.echo(f"custody signing key rotated at event {result['seq']}")
    typer.echo(f"  old verifier key: {result['old_key']}")
    typer.echo(f"  new verifier key: {result['new_key']}")
    typer.echo("hand-over checkpoint (signed by both keys):")
    typer.echo(result["checkpoint"], nl=False)
