"""Seeking the way a browser's <video> element does, on a 13-segment recording.

Every answer's bytes must equal the plaintext; every request is a ``streamed`` event with its
range; nothing outside the covering segments is decrypted.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from tests.api.conftest import SEGMENT, SIZE, World
from vault.storage import crypto


def _stream(world: World, rng: str | None, who: str = "admin"):  # type: ignore[no-untyped-def]
    headers = world.headers(who)
    if rng is not None:
        headers["Range"] = rng
    return world.client.get(f"/recordings/{world.rec['rec_site'].id}/stream", headers=headers)


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-", 0, SIZE - 1),  # what a player sends first
        ("bytes=0-1", 0, 1),  # Safari's probe
        ("bytes=20000-", 20000, SIZE - 1),  # seek to the middle
        ("bytes=4095-4096", 4095, 4096),  # straddles a segment boundary
        ("bytes=12288-16383", 12288, 16383),  # exactly one whole segment
        ("bytes=-500", SIZE - 500, SIZE - 1),  # suffix: the last 500 bytes (moov atom)
        ("bytes=-999999", 0, SIZE - 1),  # a suffix longer than the file is the whole file
        ("bytes=49000-99999", 49000, SIZE - 1),  # an end past the file is clipped
        ("bytes=100-199, 300-399", 100, 399),  # several ranges coalesce into one
        ("bytes=100-199, 60000-", 100, 199),  # an unsatisfiable one in a set is dropped
        ("BYTES=5-9", 5, 9),  # the unit is case-insensitive
    ],
)
def test_range_returns_206_with_exact_bytes(world: World, header: str, start: int, end: int) -> None:
    plaintext = world.data["rec_site"]
    before = world.vault.ledger.size()
    response = _stream(world, header)
    assert response.status_code == 206, response.text
    assert response.content == plaintext[start : end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "video/mp4"
    events = world.vault.ledger.events(action="streamed", offset=0, limit=1000)
    assert world.vault.ledger.size() > before
    last = events[-1].event
    assert last.details["range"] == [start, end]
    assert last.purpose == "investigating ASB incident" and last.reference == "ASB/1"


def test_no_range_is_the_whole_file(world: World) -> None:
    response = _stream(world, None)
    assert response.status_code == 200
    assert response.content == world.data["rec_site"]
    assert response.headers["Accept-Ranges"] == "bytes"
    assert "Content-Range" not in response.headers
    digest = base64.b64encode(hashlib.sha256(world.data["rec_site"]).digest()).decode()
    assert response.headers["Repr-Digest"] == f"sha-256=:{digest}:"
    assert response.headers["ETag"] == f'"{world.rec["rec_site"].sha256}"'


def test_other_range_unit_is_ignored(world: World) -> None:
    response = _stream(world, "items=0-5")
    assert response.status_code == 200
    assert response.content == world.data["rec_site"]


@pytest.mark.parametrize(
    "header",
    [
        f"bytes={SIZE}-",  # starts at the end
        "bytes=999999-1000000",  # starts past the end
        "bytes=10-5",  # ends before it starts
        "bytes=abc",  # not a range
        "bytes=-0",  # an empty suffix
        "bytes=",  # nothing
        "bytes=" + ",".join(f"{i}-{i}" for i in range(20)),  # too many ranges
    ],
)
def test_unsatisfiable_or_invalid_range_is_416(world: World, header: str) -> None:
    before = len(world.vault.ledger.events(action="streamed", limit=1000))
    response = _stream(world, header)
    assert response.status_code == 416, response.text
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert response.json()["error"] == "range_not_satisfiable"
    # Nothing was released, so nothing was logged as streamed.
    assert len(world.vault.ledger.events(action="streamed", limit=1000)) == before


def test_download_resumes_with_range(world: World) -> None:
    url = f"/recordings/{world.rec['rec_case'].id}/download"
    first = world.client.get(url, headers=world.headers("admin", Range="bytes=0-29999"))
    rest = world.client.get(url, headers=world.headers("admin", Range="bytes=30000-"))
    assert first.status_code == rest.status_code == 206
    assert first.content + rest.content == world.data["rec_case"]
    assert first.headers["Content-Disposition"].startswith("attachment;")
    assert [e.event.details["range"] for e in world.vault.ledger.events(action="downloaded")] == [
        [0, 29999], [30000, SIZE - 1]
    ]


def test_range_decrypts_only_covering_segments(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    store = world.vault.store
    reads: list[tuple[int, int]] = []
    original = store.read_at

    def spy(key: str, offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return original(key, offset, length)

    monkeypatch.setattr(store, "read_at", spy)
    response = _stream(world, "bytes=20000-20099")  # inside segment 4 (16384-20479)
    assert response.status_code == 206
    assert response.content == world.data["rec_site"][20000:20100]
    stored = sum(length for _, length in reads)
    sealed = crypto.ciphertext_size(SEGMENT, SEGMENT)  # about one segment plus framing
    assert stored <= 2 * sealed, f"read {stored} stored bytes for a 100-byte range"


def test_empty_recording(world: World) -> None:
    created = world.client.post(
        "/recordings",
        params={"source": "dock-9", "captured_at": "2026-11-25T10:00:00Z"},
        content=b"",
        headers=world.headers("ingest", **{"Content-Type": "application/octet-stream"}),
    )
    assert created.status_code == 201, created.text
    url = f"/recordings/{created.json()['id']}/stream"
    whole = world.client.get(url, headers=world.headers("admin"))
    assert whole.status_code == 200 and whole.content == b""
    ranged = world.client.get(url, headers=world.headers("admin", Range="bytes=0-"))
    assert ranged.status_code == 416
    assert ranged.headers["Content-Range"] == "bytes */0"
