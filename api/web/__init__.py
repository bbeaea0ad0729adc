"""The officers' web app, served at ``/`` beside the API by :func:`api.app.create_app`.

Server-rendered pages (Jinja2, ``templates/``) styled with the GOV.UK Design System
(``govuk-frontend``, vendored in ``static/``, built without the crown and the GOV.UK font, as
councils use it; versions and licences in ``static/VENDORED.md``). Nothing is loaded from
another site, so it works on an air-gapped council network. Pages call the same vault
functions and policy checks as the API (``routes.py``); sessions, CSRF and headers are
``_security.py``; UK local time is ``uktime.py``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import admin, casework, exports, recipient, retention, sar, sar_people, signin
from ._oidc import OidcClient
from .routes import router

STATIC = Path(__file__).parent / "static"
STATIC_PATH = "/static/web"


def mount_web(app: FastAPI) -> None:
    """Add the web pages and their static assets to ``app`` (the API's routes are untouched)."""
    app.state.web_oidc = OidcClient.from_settings(app.state.settings)  # None: passwords only
    app.include_router(router)
    app.include_router(signin.router)
    app.include_router(casework.router)
    app.include_router(recipient.router)
    app.include_router(retention.router)
    app.include_router(sar.router)
    app.include_router(sar_people.router)
    app.include_router(exports.router)
    app.include_router(admin.router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="web-static")


__all__ = ["STATIC_PATH", "mount_web"]
