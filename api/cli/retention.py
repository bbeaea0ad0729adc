"""CLI commands for retention: run the reaper once or on a schedule, print deletion certificates."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from typing import Annotated, Optional

import typer

from vault.actors import Actor
from vault.errors import InvalidInput, LedgerError
from vault.casework.fixity import check_fixity
from vault.casework.rekey import maintain
from vault.casework.retention import RetentionReport, deletion_certificate, run_retention
from vault.ledger.incremental_verify import verify_incremental
from vault.vault import Vault

from ._common import load_settings, parse_time, print_json, reports_errors
from ._common import parse_interval
from .health import touch_retention_heartbeat

log = logging.getLogger("evidence_vault.retention")

retention_app = typer.Typer(
    help="Delete footage 23 days after capture unless held; prove what was deleted.",
    no_args_is_help=True,
)


def _print_report(report: RetentionReport, json_out: bool) -> None:
    if json_out:
        print_json(report.to_dict())
        return
    for d in report.deleted:
        typer.echo(f"{'would delete' if report.dry_run else 'deleted'} {d.recording_id} ({d.source}, captured {d.captured_start}): {d.reason}")
    for d in report.kept:
        typer.echo(f"kept {d.recording_id} ({d.source}, due {d.retain_until}): {d.reason}")
    for e in report.errors:
        typer.echo(f"error: {e}", err=True)
    typer.echo(report.summary())


#: How far ``--now`` may run ahead of the vault's clock without ``--drill-on-a-copy`` (clock skew
#: between the operator's typing and the run, not a way to delete early).
FUTURE_CLOCK_TOLERANCE = dt.timedelta(minutes=1)


def check_clock(now: dt.datetime | None, real: dt.datetime, *, dry_run: bool, drill: bool) -> None:
    """Refuse a ``--now`` ahead of the real clock for a run that deletes (issue #11 finding 23).

    A clock in the future makes footage look older than it is, so a real run with it deletes
    footage days early, held by nothing. A dry run changes nothing, and a drill on a copy of
    the vault is the one place a deleting run with a future clock is wanted. Raises
    InvalidInput naming both ways out.
    """
    if now is None or dry_run or drill or now <= real + FUTURE_CLOCK_TOLERANCE:
        return
    ahead = now - real
    raise InvalidInput(
        f"--now {now:%Y-%m-%dT%H:%MZ} is {_span(ahead)} ahead of the clock "
        f"({real.astimezone(dt.UTC):%Y-%m-%dT%H:%MZ}): a run with it would delete footage early. "
        "Nothing was deleted. Add --dry-run to see what would go, or --drill-on-a-copy if this "
        "vault is a copy made for a drill"
    )


def _span(delta: dt.timedelta) -> str:
    if delta >= dt.timedelta(days=2):
        return f"{delta.days} days"
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} hours" if hours >= 1 else f"{int(delta.total_seconds() // 60)} minutes"


@retention_app.command("run")
@reports_errors
def run(
    now: Annotated[
        Optional[str], typer.Option(help="Act as if it were this time (ISO-8601; no offset: UK "
                                    "time). A time ahead of the clock needs --dry-run or "
                                    "--drill-on-a-copy.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Report what would be deleted; change nothing.")] = False,
    drill_on_a_copy: Annotated[
        bool,
        typer.Option("--drill-on-a-copy",
                     help="This vault is a copy made for a drill: let a --now in the future "
                     "really delete (footage would otherwise go early)."),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Delete every due, unheld recording now and report what was deleted and kept, and why."""
    when = parse_time(now, option="--now")
    with Vault.open(load_settings()) as vault:
        check_clock(when, vault.clock(), dry_run=dry_run, drill=drill_on_a_copy)
        report = run_retention(vault, now=when, dry_run=dry_run)
    _print_report(report, json_out)
    if report.errors:
        raise typer.Exit(5)


@retention_app.command("worker")
@reports_errors
def worker(
    every: Annotated[str, typer.Option(help="How often to run (e.g. 15m, 1h).")] = "15m",
    fixity_sample: Annotated[
        int,
        typer.Option(min=0, help="After each run, fixity-check this many recordings picked at "
                     "random (0: none)."),
    ] = 0,
    rotate_keys_every: Annotated[
        Optional[str],
        typer.Option(help="Also rotate the keyring key this often (e.g. 30d), rewrap data keys "
                     "and destroy retired keys no live recording uses, an hour after their "
                     "retirement: catalog backups stop opening deleted footage's keys."),
    ] = None,
    verify_custody: Annotated[
        bool,
        typer.Option(help="After each run, verify the custody events appended since the last "
                     "verified checkpoint (the first round verifies the whole ledger). A "
                     "failure is logged as an error and stops the health heartbeat."),
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print each report as JSON.")] = False,
) -> None:
    """Run retention now and then on a schedule until stopped (SIGTERM/SIGINT stop it cleanly).

    With --fixity-sample, each round also proves a random sample of stored footage intact
    (see 'evidence-vault fixity check'); failures are logged as errors and in custody. After
    each round it records the time for 'evidence-vault health retention'.
    """
    interval = parse_interval(every)
    rotation = parse_interval(rotate_keys_every) if rotate_keys_every else None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with Vault.open(load_settings()) as vault:
        while not stop.is_set():
            # Each run finishes before a stop is honoured: a run is short and resumable anyway.
            intact = one_round(vault, fixity_sample=fixity_sample, rotate_keys_every=rotation,
                               json_out=json_out, verify_custody=verify_custody)
            # What 'evidence-vault health retention' (the container healthcheck) reads; a
            # ledger that failed its check leaves it stale, so the container turns unhealthy.
            if intact:
                touch_retention_heartbeat(vault.settings, dt.datetime.now(dt.UTC))
            stop.wait(interval.total_seconds())
    typer.echo("retention worker stopped")


def one_round(vault: Vault, *, fixity_sample: int = 0,
              rotate_keys_every: dt.timedelta | None = None, json_out: bool = False,
              verify_custody: bool = False) -> bool:
    """One round of the retention worker: the reaper, then the optional custody check, keyring
    schedule and fixity spot check. Returns False when the custody ledger failed its check."""
    _print_report(run_retention(vault), json_out)
    intact = True
    if verify_custody:
        intact = _verify_custody(vault, json_out)
    if rotate_keys_every is not None:
        keys = maintain(vault, actor=Actor.local_operator(), rotate_every=rotate_keys_every)
        if json_out:
            print_json({"keys": keys})
        elif keys["rotated"] or keys["rewrapped"] or keys["destroyed"]:
            typer.echo(f"keyring: rotated {keys['rotated'] or 'no'}, {keys['rewrapped']} data "
                       f"keys rewrapped, destroyed {', '.join(keys['destroyed']) or 'none'}")
    if not fixity_sample:
        return intact
    report = check_fixity(vault, actor=Actor.local_operator(), sample=fixity_sample)
    for failure in report.failures:
        log.error("fixity: %s %s: %s", failure.outcome, failure.recording_id, failure.reason)
    if json_out:
        print_json({"fixity": report.to_dict()})
    else:
        typer.echo(f"fixity spot check: {report.summary()}")
    return intact


def _verify_custody(vault: Vault, json_out: bool) -> bool:
    """The scheduled check of the custody ledger: what was appended since the last verified,
    witnessed checkpoint (``vault/ledger/incremental_verify.py``; the first round checks it
    all). A failure is logged as an error, not raised: the reaper keeps its schedule, and the
    worker's health check reports the ledger (see :func:`worker`)."""
    vault.ledger.checkpoint()  # the events of this round, signed, so the check reaches them
    try:
        report = verify_incremental(vault.ledger)
    except LedgerError as error:
        log.error("custody ledger check failed: %s", error)
        if json_out:
            print_json({"custody": {"ok": False, "error": str(error)}})
        else:
            typer.echo(f"custody ledger check FAILED: {error}", err=True)
        return False
    if json_out:
        print_json({"custody": {"ok": True, "events": report.events}})
    else:
        typer.echo(f"custody ledger: {report.events} events, verified to the latest checkpoint")
    return True


@retention_app.command("certificate")
@reports_errors
def certificate(
    recording_id: Annotated[str, typer.Argument(metavar="ID", help="A deleted recording's id.")],
) -> None:
    """Print a signed deletion certificate (JSON) with the inclusion proof of its custody event."""
    with Vault.open(load_settings()) as vault:
        print_json(deletion_certificate(vault, recording_id))
