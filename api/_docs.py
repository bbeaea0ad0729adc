"""``/docs``: Swagger UI served from the package, for air-gapped networks (issue #11 finding 25).

FastAPI's default ``/docs`` page loads Swagger UI's script and stylesheet from a public CDN,
so on a council's air-gapped network it is a blank page (and it runs an inline script, so it
cannot sit under a strict Content-Security-Policy). Here every asset comes from the package:

- Swagger UI's ``swagger-ui-bundle.js``, ``swagger-ui.css`` and favicon from the
  ``fastapi-offline`` wheel (a maintained PyPI package that vendors Swagger UI 5.x, Apache 2.0;
  :data:`SWAGGER_ASSETS`), served under ``/docs/assets/``;
- the start-up script from ``api/static/swagger-init.js`` (no inline script);
- the page itself from :func:`docs_page`, with a CSP that allows only this origin
  (``data:`` images for Swagger UI's icons, inline style attributes it sets on elements).

ReDoc (``/redoc``) is not served: it would be a second CDN-loading page.
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
#: Where the vendored Swagger UI files are (the fastapi-offline wheel's static folder).
SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"
_OWN_ASSETS = Path(__file__).parent / "static"
# The files /docs/assets/ serves, by name: nothing else in either folder is reachable.
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (SWAGGER_ASSETS / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (SWAGGER_ASSETS / "swagger-ui.css", "text/css"),
    "favicon.png": (SWAGGER_ASSETS / "favicon.png", "image/png"),
    "swagger-init.js": (_OWN_ASSETS / "swagger-init.js", "text/javascript"),
}
#: The page's Content-Security-Policy: this origin only, no inline script, not framed.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def docs_page(title: str, openapi_url: str) -> str:
    """The ``/docs`` HTML: Swagger UI reading ``openapi_url``, with assets from this server."""
    t, url = html.escape(title), html.escape(openapi_url, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{t}</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{url}"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}/swagger-init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets on ``app`` (created with ``docs_url=None``)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS_PATH, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = docs_page(f"{app.title} - API", f"{root}{openapi_url}")
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP,
                                           "X-Content-Type-Options": "nosniff"})

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> FileResponse:
        found = ASSETS.get(name)
        if found is None:
            raise HTTPException(404, f"no documentation asset {name!r}")
        path, media_type = found
        return FileResponse(path, media_type=media_type, headers={
            "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})


__all__ = ["ASSETS", "DOCS_CSP", "DOCS_PATH", "SWAGGER_ASSETS", "docs_page", "install_docs"]
