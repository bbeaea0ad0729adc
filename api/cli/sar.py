"""CLI commands for subject access requests: register, attach a camera window (holds the
footage), list those nearing their deadline, extend, close. The operator acts as an
administrator; every step is a custody event (see :mod:`vault.casework.sar`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from vault.actors import Actor
from vault.errors import InvalidInput
from vault.casework.sar import (
    SarStatus,
    SubjectAccessRequest,
    attach_window,
    close_sar,
    extend_sar,
    get_sar,
    list_sars,
    register_sar,
)
from vault.vault import Vault

from ._common import load_settings, parse_time, print_json, reports_errors

sar_app = typer.Typer(
    help="Subject access requests: one calendar month to answer; their camera windows are held.",
    no_args_is_help=True,
)


def _row(s: SubjectAccessRequest) -> dict[str, Any]:
    return {
        "id": s.id, "reference": s.reference, "requester_name": s.requester_name,
        "received_on": s.received_on.isoformat(), "due_on": s.due_on.isoformat(),
        "deadline": s.deadline.isoformat(), "extension_months": s.extension_months,
        "status": s.status.value,
    }


def _line(s: SubjectAccessRequest) -> str:
    return f"{s.reference}  {s.status.value:<9}  due {s.deadline}  {s.requester_name}  ({s.id})"


def _date(text: str | None, option: str) -> dt.date:
    if text is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option}: {text!r} is not a date (YYYY-MM-DD)") from None


@sar_app.command("register")
@reports_errors
def register(
    reference: Annotated[str, typer.Argument(help="The request's reference, e.g. SAR-2026-14.")],
    requester: Annotated[str, typer.Option(help="The requester's name.")],
    received: Annotated[str | None, typer.Option(help="Day received (YYYY-MM-DD; default today).")] = None,
    contact: Annotated[str | None, typer.Option(help="How to reach the requester.")] = None,
    description: Annotated[str | None, typer.Option(help="How they describe themselves and the occasion.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register a request; it is due one calendar month after receipt."""
    with Vault.open(load_settings()) as vault:
        sar = register_sar(vault, reference=reference, requester_name=requester,
                           received_on=_date(received, "--received"), requester_contact=contact,
                           description=description, actor=Actor.local_operator())
    if json_out:
        print_json(_row(sar))
    else:
        typer.echo(f"registered {_line(sar)}")


@sar_app.command("attach")
@reports_errors
def attach(
    sar: Annotated[str, typer.Argument(help="Request id or reference.")],
    source: Annotated[str, typer.Option(help="Camera or device (source id).")],
    start: Annotated[str, typer.Option(help="Window start (ISO-8601; no offset: UK time).")],
    end: Annotated[str, typer.Option(help="Window end (ISO-8601; no offset: UK time).")],
    note: Annotated[str | None, typer.Option(help="What the window shows.")] = None,
) -> None:
    """Attach a camera window: its footage (and any that arrives later) is held until closing."""
    begin = parse_time(start, option="--start", edge="start")
    finish = parse_time(end, option="--end", edge="end")
    assert begin is not None and finish is not None
    with Vault.open(load_settings()) as vault:
        window = attach_window(vault, sar, source_id=source, start=begin, end=finish, note=note,
                               actor=Actor.local_operator())
    typer.echo(f"held {source} {begin.isoformat()} to {finish.isoformat()} (hold {window.hold_id})")


@sar_app.command("list")
@reports_errors
def list_cmd(
    due_within: Annotated[int | None, typer.Option(
        "--due-within", help="Only requests owed a response within this many days (overdue included).")] = None,
    status: Annotated[SarStatus | None, typer.Option(help="Only this status.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List requests, soonest deadline first."""
    with Vault.open(load_settings()) as vault:
        rows = list_sars(vault, status=status, due_within_days=due_within, limit=1_000_000)
    if json_out:
        print_json([_row(s) for s in rows])
        return
    for s in rows:
        typer.echo(_line(s))
    if not rows:
        typer.echo("no requests")


@sar_app.command("extend")
@reports_errors
def extend(
    sar: Annotated[str, typer.Argument(help="Request id or reference.")],
    months: Annotated[int, typer.Option(help="Further months (at most two in all).")],
    reason: Annotated[str, typer.Option(help="Why (a complex request, several requests).")],
) -> None:
    """Extend the deadline by up to two further months, with the reason."""
    with Vault.open(load_settings()) as vault:
        row = extend_sar(vault, sar, months=months, reason=reason, actor=Actor.local_operator())
    typer.echo(f"extended {_line(row)}")


@sar_app.command("close")
@reports_errors
def close(
    sar: Annotated[str, typer.Argument(help="Request id or reference.")],
    reason: Annotated[str, typer.Option(help="Outcome, e.g. 'response sent'.")],
    refused: Annotated[bool, typer.Option(help="The request was refused.")] = False,
) -> None:
    """Close (or refuse) a request and release its holds."""
    with Vault.open(load_settings()) as vault:
        row = close_sar(vault, sar, reason=reason, refused=refused, actor=Actor.local_operator())
        released = sum(1 for _, hold in get_sar(vault, row.id).windows if hold.released_at)
    typer.echo(f"{row.status.value} {row.reference}; released {released} hold(s)")
