"""``evidence-vault serve``: the HTTP API on uvicorn (loopback by default).

Starts with no setup: the vault is created on first run (``Vault.init``). Share links carry
their token in the path, so the access log shows ``/share/<redacted>`` instead.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

import typer

from ._common import load_settings, reports_errors

_SHARE_PATH = re.compile(r"/share/[^/?\s\"]+")


class RedactShareTokens(logging.Filter):
    """Replace share tokens in uvicorn's access-log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SHARE_PATH.sub("/share/<redacted>", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SHARE_PATH.sub("/share/<redacted>", record.msg)
        return True


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (docs at /docs). Creates the vault on first run."""
    import uvicorn

    from api.app import create_app

    settings = load_settings()
    app = create_app(settings)
    logging.getLogger("uvicorn.access").addFilter(RedactShareTokens())
    typer.echo(
        f"serving {settings.home_dir} on http://{host}:{port} (web app: /, API docs: /docs); "
        "add users with 'evidence-vault admin user add', then 'admin user set-password' "
        "(web) or 'admin token issue' (API)",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)


__all__ = ["RedactShareTokens", "serve"]
