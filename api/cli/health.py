"""``evidence-vault health``: is this host's long-running process alive? (container healthchecks)

The API has ``/readyz``; the job worker and the retention worker serve no HTTP, so their
healthchecks (docker-compose.yml) ask here instead, each about the process on *this* host
(a container's hostname is its own):

- ``health worker``: a job worker here has beaten its heartbeat (its ``job_workers`` row,
  touched every 30 s) within ``--max-age``.
- ``health retention``: the retention worker here finished a round within ``--max-age``
  (it touches ``<home>/heartbeats/retention-<host>`` after every round).

Exit 0 when healthy; otherwise 1 with one line saying what is stale or missing.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from vault.config import Settings
from vault.errors import VaultError

from ._common import load_settings, parse_interval, reports_errors

health_app = typer.Typer(
    help="Healthchecks for the long-running processes on this host (worker, retention worker).",
    no_args_is_help=True,
)

HEARTBEAT_DIR = "heartbeats"


class Unhealthy(VaultError):
    """The process asked about has not reported itself alive recently."""


def retention_heartbeat(settings: Settings, host: str | None = None) -> Path:
    """The file the retention worker on ``host`` (default: this one) touches after each round."""
    return settings.home_dir / HEARTBEAT_DIR / f"retention-{host or socket.gethostname()}"


def touch_retention_heartbeat(settings: Settings, now: dt.datetime) -> None:
    """Record that this host's retention worker finished a round at ``now``."""
    path = retention_heartbeat(settings)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(now.astimezone(dt.UTC).isoformat() + "\n")
    os.replace(temporary, path)  # a reader never sees a half-written time


def check_retention(settings: Settings, now: dt.datetime, max_age: dt.timedelta) -> str:
    """A line saying when this host's retention worker last finished a round.

    Raises Unhealthy when it never has, or not within ``max_age``.
    """
    path = retention_heartbeat(settings)
    try:
        last = dt.datetime.fromisoformat(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        raise Unhealthy(f"no retention round has finished on this host ({path} is missing)") from None
    age = now - last
    if age > max_age:
        raise Unhealthy(f"the last retention round on this host finished {int(age.total_seconds())} s "
                        f"ago (limit {int(max_age.total_seconds())} s)")
    return f"retention worker alive: last round {int(age.total_seconds())} s ago"


def check_worker(settings: Settings, now: dt.datetime, max_age: dt.timedelta) -> str:
    """A line naming this host's live job workers.

    Raises Unhealthy when none has beaten its heartbeat within ``max_age``.
    """
    from sqlalchemy import select
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import NullPool

    from vault.storage.db import make_engine
    from vault.casework.jobs import JobWorker

    engine = make_engine(settings.catalog_url, poolclass=NullPool)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(JobWorker.id, JobWorker.seen_at)
                .where(JobWorker.id.startswith(f"{socket.gethostname()}:"))
            ).all()
    finally:
        engine.dispose()
    fresh = [wid for wid, seen in rows
             if now - (seen if seen.tzinfo else seen.replace(tzinfo=dt.UTC)) <= max_age]
    if not fresh:
        raise Unhealthy(f"no job worker on this host has reported within "
                        f"{int(max_age.total_seconds())} s ({len(rows)} stale)")
    return f"job worker alive: {', '.join(sorted(fresh))}"


def _age(text: str) -> dt.timedelta:
    return parse_interval(text)


@health_app.command("worker")
@reports_errors
def worker(
    max_age: Annotated[str, typer.Option(help="Heartbeat older than this is unhealthy.")] = "2m",
) -> None:
    """Exit 0 if a job worker on this host beat its heartbeat within --max-age."""
    typer.echo(check_worker(load_settings(), dt.datetime.now(dt.UTC), _age(max_age)))


@health_app.command("retention")
@reports_errors
def retention(
    max_age: Annotated[str, typer.Option(help="A last round older than this is unhealthy.")] = "1h",
) -> None:
    """Exit 0 if the retention worker on this host finished a round within --max-age."""
    typer.echo(check_retention(load_settings(), dt.datetime.now(dt.UTC), _age(max_age)))


__all__ = ["Unhealthy", "check_retention", "check_worker", "health_app", "retention_heartbeat",
           "touch_retention_heartbeat"]
