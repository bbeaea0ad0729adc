"""Shared pieces of the CLI commands: settings, error reporting, JSON output."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from vault.config import Settings
from vault.localtime import Edge, parse_instant
from vault.errors import (
    AccessDenied,
    ConfigError,
    IntegrityError,
    InvalidInput,
    KeyUnavailable,
    NotFound,
    StorageError,
    VaultError,
)

P = ParamSpec("P")
R = TypeVar("R")

# Exit statuses: 1 any other vault error, 2 usage (click), then one per error class.
#: The ``--json`` flag every reporting command takes.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

EXIT_CODES: list[tuple[type[VaultError], int]] = [
    (NotFound, 3),
    (IntegrityError, 4),
    (StorageError, 5),
    (KeyUnavailable, 6),
    (AccessDenied, 7),
    (InvalidInput, 8),
    (ConfigError, 9),
]


def exit_code_for(error: VaultError) -> int:
    """The exit status the CLI uses for ``error``."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return 1


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a VaultError into one line on stderr and the exit status for its class.

    A file or directory the process may not write or read (a root-owned volume, a read-only
    output folder) is an error of the setup, not of the program: one line naming the path
    and the user, exit 9 (configuration), instead of a traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except VaultError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(exit_code_for(error)) from None
        except PermissionError as error:
            where = f" {error.filename}" if error.filename else ""
            typer.echo(f"error: permission denied{where} for uid {os.geteuid()}: make it "
                       "accessible to this user or choose another path", err=True)
            raise typer.Exit(exit_code_for(ConfigError(str(error)))) from None

    return wrapper


def load_settings() -> Settings:
    """Settings from the environment (EVIDENCE_VAULT_*), built once per command."""
    try:
        return Settings()
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"invalid settings: {error}") from None


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, default=_default, ensure_ascii=False))


def parse_time(text: str | None, *, option: str, edge: Edge | None = None) -> dt.datetime | None:
    """Parse a time typed on the command line (:func:`vault.localtime.parse_instant`): ISO-8601
    with an offset as given, without one as UK local time, saying so on stderr. Returns UTC.

    ``edge`` (a window's start or end) settles the hour the clocks repeat in autumn so that the
    window covers both; without it that hour is refused. Raises InvalidInput naming ``option``
    for text that is not a time, or a UK time that the clocks skip (or repeat, without edge).
    """
    if text is None:
        return None
    parsed = parse_instant(text, field=option, edge=edge)
    note = parsed.note(option)
    if note is not None:
        # stderr: --json output on stdout stays parseable.
        typer.echo(f"note: {note}", err=True)
    return parsed.utc


@contextmanager
def progress_bar(label: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """``update(done, total)`` for a progress bar on a terminal; None when piped or --json."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def parse_interval(text: str) -> dt.timedelta:
    """``15m``, ``1h``, ``30s``, ``1d`` -> timedelta. Raises InvalidInput."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"bad interval {text!r}: use a number and s, m, h or d (e.g. 15m)")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return dt.timedelta(**{unit: int(match.group(1))})
