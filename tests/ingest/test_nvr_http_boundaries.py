"""The NVR export listing cannot steer the agent: credentials and requests stay on the listing's
origin, and clips land only under the cameras configured for the source.

Two real HTTP servers on loopback (two ports: two origins) record every request and whether
it carried an ``Authorization`` header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ingest.config import NvrHttpSourceConfig
from ingest.nvr_http import NvrHttpSource
from ingest.sources import SourceContext
from ingest.spool import Spool

TOKEN = "nvr-secret-token"
CLIP = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8


@dataclass
class Origin:
    """One loopback HTTP server: serves ``routes`` (path -> (status, headers, body))."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)

    def __post_init__(self) -> None:
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                origin.seen.append((self.path, self.headers.get("Authorization")))
                status, headers, body = origin.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def listing(self, clips: list[dict[str, Any]]) -> None:
        body = json.dumps({"clips": clips}).encode()
        self.routes["/exports"] = (200, {"Content-Type": "application/json"}, body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origins() -> Iterator[tuple[Origin, Origin]]:
    nvr, other = Origin(), Origin()
    other.routes["/steal.mp4"] = (200, {}, CLIP)
    nvr.routes["/clips/ok.mp4"] = (200, {}, CLIP)
    yield nvr, other
    nvr.close()
    other.close()


def _clip(cid: str, url: str, camera: str | None = "cam-01") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": cid,
        "url": url,
        "start": "2026-11-20T10:00:00Z",
        "end": "2026-11-20T10:00:02Z",
        "size": len(CLIP),
        "sha256": hashlib.sha256(CLIP).hexdigest(),
    }
    if camera is not None:
        entry["camera"] = camera
    return entry


def _source(
    spool: Spool, nvr: Origin, *, auth: str = "bearer", cameras: list[str] | None = None
) -> NvrHttpSource:
    config = NvrHttpSourceConfig(
        id="nvr-north",
        kind="nvr_http",
        url=f"{nvr.base}/exports",
        credentials="env:NVR_SECRET",
        auth=auth,  # type: ignore[arg-type]
        site="Northgate",
        cameras=["cam-01"] if cameras is None else cameras,
    )
    return NvrHttpSource(config, SourceContext(spool=spool))


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_a_clip_on_another_origin_is_refused_and_gets_no_credentials(
    tmp_path: Path,
    origins: tuple[Origin, Origin],
    monkeypatch: pytest.MonkeyPatch,
    auth: str,
) -> None:
    """Issue #11 finding 5: a listing entry whose URL is on another host (here: another port)
    received the NVR's Authorization header. It is refused before any request is sent there,
    the refusal is logged once (not on every poll), and the good clip is still taken."""
    nvr, other = origins
    monkeypatch.setenv("NVR_SECRET", "admin:" + TOKEN if auth == "basic" else TOKEN)
    nvr.listing(
        [
            _clip("evil-abs", f"{other.base}/steal.mp4"),
            _clip("evil-scheme", f"https://127.0.0.1:{nvr.server.server_address[1]}/x.mp4"),
            _clip("evil-userinfo", f"http://someone:pw@127.0.0.1:{nvr.server.server_address[1]}/clips/ok.mp4"),
            _clip("evil-rel", f"//127.0.0.1:{other.server.server_address[1]}/steal.mp4"),
            _clip("good", "/clips/ok.mp4"),
        ]
    )
    with Spool(tmp_path / "spool") as spool:
        source = _source(spool, nvr, auth=auth)
        assert source.poll_once() == 1
        assert source.poll_once() == 0
        refused = spool.events(kind="refused")
        spooled = [i.origin for i in spool.items()]
    assert other.seen == []  # nothing at all reached the other origin
    assert {path for path, _ in nvr.seen} == {"/exports", "/clips/ok.mp4"}
    expected = f"Bearer {TOKEN}" if auth == "bearer" else (
        "Basic " + base64.b64encode(f"admin:{TOKEN}".encode()).decode()
    )
    assert {header for _, header in nvr.seen} == {expected}  # the NVR still gets them
    assert spooled == ["good"]
    assert sorted(e["details"]["clip"] for e in refused) == [
        "evil-abs", "evil-rel", "evil-scheme", "evil-userinfo"
    ]
    assert all("origin" in e["message"] for e in refused)
    assert not any(TOKEN in e["message"] or "pw@" in e["message"] for e in refused)


def test_a_redirect_to_another_origin_is_not_followed(
    tmp_path: Path, origins: tuple[Origin, Origin], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #11 finding 5, redirects: a same-origin clip URL answering ``302`` to another
    origin is not followed (nothing is fetched there, with or without credentials); a
    redirect within the origin is followed and keeps its credentials."""
    nvr, other = origins
    monkeypatch.setenv("NVR_SECRET", TOKEN)
    nvr.routes["/clips/bounce.mp4"] = (302, {"Location": f"{other.base}/steal.mp4"}, b"")
    nvr.routes["/clips/moved.mp4"] = (301, {"Location": "/clips/ok.mp4"}, b"")
    nvr.listing([_clip("bounce", "/clips/bounce.mp4"), _clip("moved", "/clips/moved.mp4")])
    with Spool(tmp_path / "spool") as spool:
        source = _source(spool, nvr)
        assert source.poll_once() == 1
        errors = [e["message"] for e in spool.events(kind="error")]
        spooled = [i.origin for i in spool.items()]
    assert other.seen == []
    assert spooled == ["moved"]
    assert any("bounce" in m and "refused a request" in m for m in errors), errors
    assert ("/clips/ok.mp4", f"Bearer {TOKEN}") in nvr.seen


def test_the_listing_is_never_fetched_from_a_redirected_origin(
    tmp_path: Path, origins: tuple[Origin, Origin], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #11 finding 5: the listing itself redirecting elsewhere is an error, not a fetch."""
    nvr, other = origins
    monkeypatch.setenv("NVR_SECRET", TOKEN)
    nvr.routes["/exports"] = (307, {"Location": f"{other.base}/exports"}, b"")
    with Spool(tmp_path / "spool") as spool:
        source = _source(spool, nvr)
        from ingest.errors import SourceError

        with pytest.raises(SourceError, match="refused a request"):
            source.poll_once()
    assert other.seen == []


def test_clips_land_only_under_cameras_configured_for_the_source(
    tmp_path: Path, origins: tuple[Origin, Origin], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #11 finding 5: the listing's ``camera`` field planted footage under another
    site's camera. A clip naming a camera the source does not list is refused (nothing
    fetched); a listed camera is used; with one camera listed, a clip naming none takes it."""
    nvr, _ = origins
    monkeypatch.setenv("NVR_SECRET", TOKEN)
    nvr.routes["/clips/b.mp4"] = (200, {}, CLIP + b"b")
    nvr.routes["/clips/c.mp4"] = (200, {}, CLIP + b"c")
    nvr.listing(
        [
            _clip("planted", "/clips/ok.mp4", camera="southside-cam-09"),
            _clip("listed", "/clips/ok.mp4", camera="cam-01"),
            {**_clip("unnamed", "/clips/c.mp4", camera=None), "size": len(CLIP) + 1,
             "sha256": hashlib.sha256(CLIP + b"c").hexdigest()},
        ]
    )
    with Spool(tmp_path / "spool") as spool:
        source = _source(spool, nvr, cameras=["cam-01"])
        assert source.poll_once() == 2
        items = {i.origin: i for i in spool.items()}
        refused = spool.events(kind="refused")
    assert set(items) == {"listed", "unnamed"}
    assert {i.vault_source for i in items.values()} == {"cam-01"}
    assert [e["details"]["clip"] for e in refused] == ["planted"]
    assert "southside-cam-09" in refused[0]["message"] and "cameras" in refused[0]["message"]
    assert [p for p, _ in nvr.seen].count("/clips/ok.mp4") == 1  # the planted clip: no fetch


def test_without_configured_cameras_clips_are_filed_under_the_source(
    tmp_path: Path, origins: tuple[Origin, Origin], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #11 finding 5: with no ``cameras`` listed, the source's own id is the only camera:
    a clip naming none (or the source id) is filed under it, any other camera is refused."""
    nvr, _ = origins
    monkeypatch.setenv("NVR_SECRET", TOKEN)
    nvr.listing(
        [
            _clip("named", "/clips/ok.mp4", camera="cam-77"),
            _clip("plain", "/clips/ok.mp4", camera=None),
        ]
    )
    with Spool(tmp_path / "spool") as spool:
        source = _source(spool, nvr, cameras=[])
        assert source.poll_once() == 1
        items = spool.items()
        refused = spool.events(kind="refused")
    assert [(i.origin, i.vault_source) for i in items] == [("plain", "nvr-north")]
    assert [e["details"]["clip"] for e in refused] == ["named"]


def test_downloaded_clips_are_private_files(
    tmp_path: Path, origins: tuple[Origin, Origin], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #11 finding 11: a clip being downloaded is plaintext footage; its partial file is
    created 0600 (0666 before, under this umask), and so is the spooled copy it becomes."""
    import os
    import stat

    nvr, _ = origins
    monkeypatch.setenv("NVR_SECRET", TOKEN)
    nvr.listing([_clip("good", "/clips/ok.mp4")])
    old = os.umask(0)
    try:
        with Spool(tmp_path / "spool") as spool:
            assert _source(spool, nvr).poll_once() == 1
            (item,) = spool.items()
            assert stat.S_IMODE(spool.path_of(item).stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_credentials_in_the_listing_url_are_refused_at_load() -> None:
    """Issue #11 finding 5: credentials go only by reference, sent only to the listing's
    origin; a ``user:pass@`` listing URL is refused when the agents file is read."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="credentials"):
        NvrHttpSourceConfig(id="n", kind="nvr_http", url="http://admin:pw@10.0.0.9/exports")
