"""What footage routes hand over, and how a browser may treat it (issue #11 findings 4, 6, 9).

Uploads are made through the API with the names an attacker would pick; shares are made and
used through the API; every check reads the real responses and the real custody ledger.
"""

from __future__ import annotations

import datetime as dt

import pytest

from api._streaming import OCTET_STREAM, served_type
from api.routes.shares import SHARE_STREAM_WINDOW, stream_window
from tests.api.conftest import SIZE, World

HTML = b"<!doctype html><script>fetch('/shares').then(r=>r.text()).then(alert)</script>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"/>'


def _upload(world: World, name: str, data: bytes) -> str:
    created = world.client.post(
        "/recordings",
        params={"source": "upload-1", "captured_at": "2026-11-25T10:00:00Z", "name": name,
                "site": "Elm Court"},
        content=data,
        headers=world.headers("ingest", **{"Content-Type": "application/octet-stream"}),
    )
    assert created.status_code == 201, created.text
    rid: str = created.json()["id"]
    return rid


def _share(world: World, rids: list[str], **overrides: object) -> str:
    body = {
        "recipient": "DC 4711 Patel", "recipient_org": "Metropolitan Police",
        "purpose": "investigation of criminal damage", "lawful_basis": "DPA 2018 s.35",
        "recording_ids": rids, "allow_download": True, "max_downloads": 1,
        "expires_at": (world.clock() + dt.timedelta(days=3)).isoformat(), **overrides,
    }
    response = world.client.post("/shares", json=body, headers=world.headers("admin", purpose=False))
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def _assert_not_a_page(response) -> None:  # type: ignore[no-untyped-def]
    assert response.headers["Content-Type"] == OCTET_STREAM
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert "no-store" in response.headers["Cache-Control"]


@pytest.mark.parametrize(("name", "data"), [("x.html", HTML), ("y.svg", SVG), ("z.htm", HTML),
                                            ("notes.xhtml", HTML), ("w.xml", SVG), ("a.pdf", b"%PDF")])
def test_stored_documents_are_never_served_as_pages(world: World, name: str, data: bytes) -> None:
    """Issue #11 finding 6: an upload named x.html or y.svg was served inline as text/html or
    image/svg+xml (on the staff routes and through share links), so it ran as a page of the
    vault's origin. Anything but audio/video is an octet-stream attachment, sandboxed, no-sniff."""
    rid = _upload(world, name, data)
    for path in (f"/recordings/{rid}/stream", f"/recordings/{rid}/download"):
        got = world.client.get(path, headers=world.headers("admin"))
        assert got.status_code in (200, 206), got.text
        _assert_not_a_page(got)
        assert got.content == data
    token = _share(world, [rid])
    for path in (f"/share/{token}/recordings/{rid}/stream", f"/share/{token}/recordings/{rid}/download"):
        got = world.client.get(path)
        assert got.status_code in (200, 206), got.text
        _assert_not_a_page(got)


def test_video_and_audio_stay_playable_inline(world: World) -> None:
    """Issue #11 finding 6 (the other side): players still get video/audio inline, sandboxed."""
    rid = world.rec["rec_site"].id
    got = world.client.get(f"/recordings/{rid}/stream", headers=world.headers("admin", Range="bytes=0-99"))
    assert got.status_code == 206 and got.headers["Content-Type"] == "video/mp4"
    assert got.headers["Content-Disposition"].startswith("inline;")
    assert got.headers["Content-Security-Policy"] == "sandbox"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    down = world.client.get(f"/recordings/{rid}/download", headers=world.headers("admin"))
    assert down.headers["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize(("stored", "served"), [
    ("video/mp4", "video/mp4"), ("audio/mpeg", "audio/mpeg"), ("Video/MP4", "video/mp4"),
    ("text/html", OCTET_STREAM), ("image/svg+xml", OCTET_STREAM), (None, OCTET_STREAM),
    ("video/mp4; charset=x\r\nSet-Cookie: a=b", OCTET_STREAM), ("video/", OCTET_STREAM),
    ("application/xhtml+xml", OCTET_STREAM), ("multipart/x-mixed-replace", OCTET_STREAM),
])
def test_served_type(stored: str | None, served: str) -> None:
    """Issue #11 finding 6: the one rule for the served Content-Type (a bare audio/video type)."""
    assert served_type(stored) == served


def test_share_stream_never_hands_over_a_whole_copy(world: World) -> None:
    """Issue #11 finding 4: after max_downloads was used up, and on a view-only share,
    ``GET /share/{t}/recordings/{id}/stream`` without Range returned the whole file. One share
    stream response now carries at most a window (and at most half the recording), however it
    is asked for; a player gets the rest piece by piece, each piece logged with its range."""
    rid = world.rec["rec_case"].id
    plaintext = world.data["rec_case"]
    window = stream_window(SIZE)
    assert window == SIZE // 2 < SIZE

    limited = _share(world, [rid], max_downloads=1)
    assert world.client.get(f"/share/{limited}/recordings/{rid}/download").status_code == 200
    assert world.client.get(f"/share/{limited}/recordings/{rid}/download").status_code == 410
    view_only = _share(world, [rid], allow_download=False, max_downloads=None)

    for token in (limited, view_only):
        url = f"/share/{token}/recordings/{rid}/stream"
        for headers in ({}, {"Range": "bytes=0-"}, {"Range": f"bytes=0-{SIZE - 1}"},
                        {"Range": "bytes=-999999"}, {"Range": "items=0-5"}):
            got = world.client.get(url, headers=headers)
            assert got.status_code == 206, (headers, got.text)
            assert len(got.content) <= window < SIZE, headers
            start = int(got.headers["Content-Range"].split()[1].split("-")[0])
            assert got.content == plaintext[start:start + len(got.content)]
            assert got.headers["Content-Range"].endswith(f"/{SIZE}")
        # A player following Content-Range gets it all, one logged piece at a time.
        rest = world.client.get(url, headers={"Range": f"bytes={window}-"})
        assert rest.status_code == 206 and rest.content == plaintext[window:2 * window]
        streamed = world.vault.ledger.events(action="streamed", limit=100_000)
        assert streamed[-1].event.details["range"] == [window, 2 * window - 1]


def test_stream_window_is_bounded_for_large_recordings() -> None:
    """Issue #11 finding 4: the window is at most SHARE_STREAM_WINDOW whatever the size."""
    assert stream_window(10 * SHARE_STREAM_WINDOW) == SHARE_STREAM_WINDOW
    assert stream_window(1) == 1 and stream_window(0) == 1


def test_junk_share_links_are_throttled_like_bearer_tokens(world: World) -> None:
    """Issue #11 finding 9: every junk share link wrote its own signed custody event,
    unthrottled (200 in 0.7 s). They now share the bearer tokens' per-address throttle: the
    first ``denial_burst`` are logged one by one, the rest summed into one event per window."""
    burst = world.vault.settings.denial_burst
    before = world.denials()
    for i in range(burst + 50):
        got = world.client.get(f"/share/evs_{i:043d}")
        assert got.status_code == 404 and got.json()["error"] == "not_found"
    assert world.denials() == before + burst
    # The window closes: the next refusal writes one summary of the 50 held back.
    world.clock.advance(seconds=world.vault.settings.denial_window_s + 1)
    world.client.get("/share/junk")
    summaries = [e.event for e in world.vault.ledger.events(action="access_denied", limit=100_000)
                 if "summary" in e.event.details]
    assert len(summaries) == 1
    assert summaries[0].details["summary"]["count"] == 50  # type: ignore[index]
    assert summaries[0].details["summary"]["by_reason"] == {"share: unknown": 50}  # type: ignore[index]
    # A real share's refusals name that share and are never summed.
    token = _share(world, [world.rec["rec_case"].id], allow_download=False, max_downloads=None)
    counted = world.denials()
    for _ in range(3):
        assert world.client.get(
            f"/share/{token}/recordings/{world.rec['rec_case'].id}/download").status_code == 403
    assert world.denials() == counted + 3
