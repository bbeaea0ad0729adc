"""``evidence-vault jobs``: list and inspect background jobs, cancel one."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vault.casework.jobs import (
    Job,
    JobKind,
    JobState,
    cancel_job,
    get_job,
    job_has_plan,
    list_jobs,
)
from vault.vault import Vault

from ._common import JsonOpt, load_settings, print_json, reports_errors

jobs_app = typer.Typer(help="Background jobs: redaction, exports, retention runs.", no_args_is_help=True)
def _public(job: Job, *, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": job.id, "kind": job.kind, "state": job.state, "progress": round(job.progress, 3),
        "message": job.message, "recording_ids": job.recording_ids, "created_by": job.created_by,
        "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "attempts": job.attempts, "worker": job.worker,
        "error": job.error, "parent_id": job.parent_id,
    }
    if full:
        data["result"] = job.result
        data["has_plan"] = job_has_plan(job)
    return data


@jobs_app.command("list")
@reports_errors
def list_command(
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[JobKind | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Jobs, newest first."""
    with Vault.open(load_settings()) as vault:
        jobs = list_jobs(vault, state=state, kind=kind, limit=limit)
    if json_out:
        print_json([_public(j) for j in jobs])
        return
    for j in jobs:
        typer.echo(f"{j.id}  {j.kind.value:<16} {j.state.value:<9} {j.progress:>4.0%}  "
                   f"{j.created_by}  {j.created_at.isoformat()}  {j.message or ''}")
    typer.echo(f"{len(jobs)} job(s)")


@jobs_app.command("show")
@reports_errors
def show(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    json_out: JsonOpt = False,
) -> None:
    """One job: state, progress, attempts, result or error."""
    with Vault.open(load_settings()) as vault:
        job = get_job(vault, job_id)
    data = _public(job, full=True)
    if json_out:
        print_json(data)
        return
    for key, value in data.items():
        if value is not None and value != []:
            typer.echo(f"{key}: {value.value if hasattr(value, 'value') else value}")


@jobs_app.command("cancel")
@reports_errors
def cancel(job_id: Annotated[str, typer.Argument(help="The job id.")]) -> None:
    """Cancel a queued or running job (a running one stops at its next progress report)."""
    with Vault.open(load_settings()) as vault:
        job = cancel_job(vault, job_id)
    typer.echo(f"cancelled {job.id} ({job.kind.value})")


__all__ = ["jobs_app"]
