"""``evidence-vault worker``: run background jobs (redaction, exports, retention) from the queue.

The queue is Huey on the settings' storage (``<home>/jobs.sqlite3`` by default). On start the
worker sweeps jobs left ``running`` by a worker that died (requeued, or failed once their
attempts are spent) and jobs left ``queued`` whose message the queue lost (enqueued again after
``queue_resend_after_s``), then drains the queue; its scheduler repeats the sweep every minute. Run
more workers (``--workers N``, or more processes on more machines sharing the queue) to drain it
faster. Ctrl-C (SIGINT) stops after the jobs in hand; SIGTERM stops at once (the next worker's
sweep retries them).

While it runs, the worker's heartbeat (a ``job_workers`` row touched every 30 s, removed when it
stops) tells ``/readyz`` that someone is draining the queue.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ._common import load_settings, reports_errors


@reports_errors
def worker(
    workers: Annotated[int, typer.Option(help="Jobs run at once by this process.", min=1, max=64)] = 1,
    processes: Annotated[
        bool, typer.Option(help="Run each worker in its own process (CPU-bound redaction).")
    ] = False,
    log_level: Annotated[str, typer.Option(help="Log level (debug, info, warning).")] = "info",
) -> None:
    """Run queued jobs until stopped (Ctrl-C finishes the jobs in hand first)."""
    from api.jobs import open_job_queue
    from vault.casework.jobs import WorkerHeartbeat

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings()
    queue = open_job_queue(settings)
    report = queue.sweep()
    typer.echo(
        f"worker on {settings.home_dir}: {workers} {'process' if processes else 'thread'}(s), "
        f"kinds {', '.join(k.value for k in queue.kinds)}; swept {len(report.requeued)} "
        f"requeued, {len(report.failed)} failed, {len(report.resent)} lost message(s) resent",
        err=True,
    )
    # Each worker opens its own vault on first use (never one shared across a fork).
    queue.close()
    consumer = queue.consumer(workers=workers, worker_type="process" if processes else "thread")
    with WorkerHeartbeat(settings, kinds=[k.value for k in queue.kinds], threads=workers):
        consumer.run()


__all__ = ["worker"]
