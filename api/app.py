"""The HTTP API: ``create_app(settings)`` builds it; nothing is read or opened at import time.

Routers, one per resource (``api/routes/``): evidence (search, metadata, stream, download,
upload), cases and holds, shares and share recipients, custody, users, health. Later work
(incident clips, disclosure exports, subject access requests, redaction jobs) adds routers here.

Authentication is a bearer token (``Authorization: Bearer evt_...``, see :mod:`vault.access.identity`);
authorisation is :mod:`vault.casework.policy`; every refusal and every footage access is a custody event.
Errors are JSON ``{"error", "detail"}`` with the status from :mod:`api.errors`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vault.config import Settings
from vault.access.denials import DenialThrottle
from vault.access.oidc import OidcVerifier
from vault.access.identity import log_denial_summaries
from vault.vault import Vault

from . import _openapi, errors
from ._body import BodyGate
from ._localtime import AssumedZoneHeader
from ._docs import install_docs
from .routes import cases, custody, evidence, health, shares, users
from .routes import clips, sar
from .routes import exports, jobs
from .routes import pulls, thumbnails
from .web import mount_web

API_VERSION = "0.1.0"

DESCRIPTION = """\
Evidence vault for CCTV and body-worn camera footage.

* Authenticate with `Authorization: Bearer <token>` (issued by `evidence-vault admin token issue`),
  or, where the vault is set up for it, a token from the organisation's OpenID Connect provider.
* Footage routes need `X-Purpose` (why; recorded), and take `X-Reference` (case, crime or SAR
  reference) and `X-Lawful-Basis`.
* Every view, stream, download, search, share access and refusal is a custody event.
* Players seek with `Range: bytes=A-B` (206), and only the segments covering the range are
  decrypted. A share stream answers at most a window per request (206 with `Content-Range`).
* Times are ISO-8601. One without a UTC offset is read as UK local time (Europe/London, GMT or
  BST) and `X-Assumed-Time-Zone` says how it was read; a time the clocks skip or repeat is
  refused with the offsets to choose from. Responses and the custody log are in UTC.
* Request bodies are read only after the bearer token is checked, and are limited per route
  (413 with the limit).
"""


def flush_denials(app: FastAPI) -> None:
    """Log the refusals the throttle still holds as summaries (at shutdown: none is lost)."""
    log_denial_summaries(app.state.vault, app.state.denials.flush())


def create_app(settings: Settings, *, vault: Vault | None = None) -> FastAPI:
    """The API on ``settings``; with ``vault``, serve that vault (tests), else open one at startup
    (``Vault.init``: creates the embedded default if absent) and close it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if vault is not None:
            try:
                yield
            finally:
                flush_denials(app)
            return
        opened = Vault.init(settings)
        app.state.vault = opened
        try:
            yield
        finally:
            flush_denials(app)
            opened.close()

    app = FastAPI(
        title="Evidence vault",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is served from the package (api/_docs.py); FastAPI's own pages load a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.denials = DenialThrottle(burst=settings.denial_burst,
                                       window=dt.timedelta(seconds=settings.denial_window_s))
    app.state.oidc = OidcVerifier.from_settings(settings)  # None: API tokens only
    if vault is not None:
        app.state.vault = vault
    errors.install(app)
    _openapi.install(app)  # required headers shown as required
    app.add_middleware(BodyGate)
    app.add_middleware(AssumedZoneHeader)  # which zone offset-less times were read in
    install_docs(app)  # /docs from the package: no CDN (air-gapped networks)
    app.include_router(health.router)
    app.include_router(users.router)
    app.include_router(evidence.router)
    app.include_router(thumbnails.router)
    app.include_router(cases.router)
    app.include_router(shares.router)
    app.include_router(shares.recipient_router)
    app.include_router(custody.router)
    app.include_router(clips.router)
    app.include_router(sar.router)
    app.include_router(jobs.router)
    app.include_router(exports.router)
    app.include_router(pulls.router)
    mount_web(app)  # the officers' web app at /: pages call the same vault code as the routes
    return app


__all__ = ["API_VERSION", "create_app"]
