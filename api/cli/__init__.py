"""The ``evidence-vault`` command line: a thin layer that parses, calls the library, prints.

Every command has ``--help``; commands that report have ``--json`` for scripts. Errors from the
vault become one line on stderr and an exit status that names their class (see EXIT_CODES).
"""

from __future__ import annotations

import sys

import typer

from vault.errors import VaultError

from ._common import EXIT_CODES, exit_code_for

from .admin import admin_app
from .demo import demo
from .export import export_app
from .ingest import ingest_app
from .pull import pull_command
from .fixity import fixity_app
from .health import health_app
from .jobs import jobs_app
from .keys import keys_app
from .redact import redact_app
from .retention import retention_app
from .sar import sar_app
from .sites import site_app
from .serve import serve
from .worker import worker
from .vault_commands import custody_app, get, init, list_recordings, put

app = typer.Typer(
    name="evidence-vault",
    help="Evidence vault for CCTV and body-worn camera footage: encrypted storage, redaction, "
    "chain of custody and retention.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(init)
app.command()(put)
app.command()(get)
app.command("ls")(list_recordings)
app.add_typer(custody_app, name="custody")
app.add_typer(retention_app, name="retention")
app.add_typer(ingest_app, name="ingest")
ingest_app.command("pull")(pull_command)
app.add_typer(export_app, name="export")
app.add_typer(admin_app, name="admin")
admin_app.add_typer(site_app, name="site")
app.add_typer(keys_app, name="keys")
app.add_typer(fixity_app, name="fixity")
app.add_typer(sar_app, name="sar")
app.add_typer(jobs_app, name="jobs")
app.add_typer(health_app, name="health")
app.command()(worker)
app.command()(serve)
app.command()(demo)

app.add_typer(redact_app, name="redact")

def main() -> None:
    """Console-script entry point: run the app, turning vault errors into one-line messages."""
    try:
        status = app(standalone_mode=False)
    except VaultError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(exit_code_for(error))
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as error:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise
    sys.exit(status if isinstance(status, int) else 0)


__all__ = ["EXIT_CODES", "app", "exit_code_for", "main"]
