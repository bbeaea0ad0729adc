"""``/docs`` works on an air-gapped network (issue #11 finding 25): every asset from the
package, no inline script, under a strict Content-Security-Policy, and it really renders in a
real headless Chromium that is refused every address but the vault's own."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api._docs import ASSETS, DOCS_CSP
from api.app import create_app
from tests.api.conftest import World
from vault.config import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def test_docs_page_loads_nothing_from_elsewhere(world: World) -> None:
    """Issue #11 finding 25: ``/docs`` loaded Swagger UI from a CDN (a blank page offline).
    The page now names only this server's paths, runs no inline script, carries a strict CSP,
    and every asset it names is served from the package with its type."""
    page = world.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == DOCS_CSP
    assert "script-src 'self'" in DOCS_CSP and "unsafe-inline" not in DOCS_CSP.split("script-src")[1].split(";")[0]
    text = page.text
    assert "cdn" not in text.lower() and "http://" not in text and "https://" not in text
    assert re.findall(r"<script>", text) == []  # no inline script: every one has a src
    referenced = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', text)
    assert len(referenced) == 4
    for path in referenced:
        asset = world.client.get(path)
        assert asset.status_code == 200, path
        assert asset.headers["Content-Type"].split(";")[0] == ASSETS[path.rsplit("/", 1)[1]][1]
        assert len(asset.content) > 0
    assert "SwaggerUIBundle" in world.client.get("/docs/assets/swagger-ui-bundle.js").text
    assert world.client.get("/docs/assets/..%2F__init__.py").status_code == 404
    assert world.client.get("/docs/assets/core.py").status_code == 404
    assert world.client.get("/redoc").status_code == 404  # it would load a CDN too
    assert world.client.get("/openapi.json").json()["info"]["title"] == "Evidence vault"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    import uvicorn

    app = create_app(Settings(home=tmp_path / "home"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_docs_render_in_a_browser_with_no_network(served: str) -> None:
    """Issue #11 finding 25: in a real browser allowed to reach only the vault, /docs renders
    Swagger UI with the API's title and routes, with no request refused and no CSP violation."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    refused: list[str] = []
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()

            def only_the_vault(route, request) -> None:  # type: ignore[no-untyped-def]
                if request.url.startswith(served + "/") or request.url.startswith("data:"):
                    route.continue_()
                else:
                    refused.append(request.url)
                    route.abort()

            page.route("**/*", only_the_vault)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(served + "/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            assert "Evidence vault" in page.inner_text(".swagger-ui .info .title")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert any("/recordings" in t for t in paths)
        finally:
            browser.close()
    assert refused == []
    assert [m for m in problems if "Content Security Policy" in m or "Refused" in m] == []
