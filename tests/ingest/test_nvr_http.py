"""NVR clip export over HTTP: new clips are found by polling, downloads resume with HTTP Range,
checksums are checked where offered, and each clip is taken once."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ingest.config import NvrHttpSourceConfig
from ingest.errors import SourceError
from ingest.nvr_http import NvrHttpSource
from ingest.pipeline import Pipeline
from ingest.sources import SourceContext
from ingest.spool import ItemState, Spool
from vault.vault import Vault

TOKEN = "nvr-token-123"


class FakeNvr:
    """An export endpoint: listing at /exports, clips at /clips/<id>; drops one download."""

    def __init__(self, clips: dict[str, dict[str, Any]], clock_offset_s: float = 0.0) -> None:
        self.clips = clips
        self.clock_offset_s = clock_offset_s
        self.requests: list[tuple[str, str | None]] = []
        self.drop_once: set[str] = set()
        nvr = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.send_error(401)
                    return
                nvr.requests.append((self.path, self.headers.get("Range")))
                if self.path == "/exports":
                    now = dt.datetime.now(dt.timezone.utc) + dt.timedelta(
                        seconds=nvr.clock_offset_s
                    )
                    body = json.dumps(
                        {
                            "server_time": now.isoformat(),
                            "clips": [
                                {k: v for k, v in c.items() if k != "data"}
                                for c in nvr.clips.values()
                            ],
                        }
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                clip_id = self.path.rsplit("/", 1)[-1].split(".")[0]
                data: bytes = nvr.clips[clip_id]["data"]
                start = 0
                rng = self.headers.get("Range")
                if rng and self.headers.get("If-Range") in (None, f'"{clip_id}"'):
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("ETag", f'"{clip_id}"')
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if clip_id in nvr.drop_once:
                    nvr.drop_once.discard(clip_id)
                    self.wfile.write(data[start : start + len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data[start:])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/exports"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def nvr(clips: dict[str, Path]) -> Iterator[FakeNvr]:
    def clip(cid: str, camera: str, path: Path, sha: str | None = "auto") -> dict[str, Any]:
        data = path.read_bytes()
        return {
            "id": cid,
            "camera": camera,
            "start": "2026-11-20T10:00:00Z",
            "end": "2026-11-20T10:00:02Z",
            "url": f"/clips/{cid}.mp4",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest() if sha == "auto" else sha,
            "data": data,
        }

    server = FakeNvr(
        {
            "c1": clip("c1", "cam-01", clips["video"]),
            "c2": clip(
                "c2", "cam-02", clips["video2"], sha="0" * 64
            ),  # the NVR's checksum is wrong
            "c3": clip("c3", "cam-01", clips["video2"], sha=None),  # no checksum offered
        },
        clock_offset_s=-30,
    )
    server.drop_once.add("c1")
    yield server
    server.close()


def test_poll_download_resume_checksum_and_once_only(
    tmp_path: Path, vault: Vault, nvr: FakeNvr, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NVR_TOKEN", TOKEN)
    config = NvrHttpSourceConfig(
        id="nvr-1",
        kind="nvr_http",
        url=nvr.url,
        credentials="env:NVR_TOKEN",
        site="Northgate",
        cameras=["cam-01", "cam-02"],
    )
    with Spool(tmp_path / "spool") as spool:
        context = SourceContext(spool=spool)
        source = NvrHttpSource(config, context)
        pipeline = Pipeline(
            vault, spool, agent_name="agent-1", clock_bound_s=2.0, sources={"nvr-1": source}
        )

        # First poll: c1 drops half-way (kept for resume), c2 fails its checksum, c3 arrives.
        assert source.poll_once() == 1
        errors = [e["message"] for e in spool.events(kind="error")]
        assert any("c1" in m and "interrupted" in m for m in errors), errors
        assert any("c2" in m and "differs from the listing" in m for m in errors), errors
        # Second poll: c1 resumes from where it stopped.
        assert source.poll_once() == 1
        ranges = [r for path, r in nvr.requests if path == "/clips/c1.mp4"]
        assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
        assert int(ranges[1].split("=")[1].rstrip("-")) > 0
        # Third poll: nothing new (c2 still fails, loudly).
        assert source.poll_once() == 0

        for item in spool.pending():
            pipeline.process(item)
        done = spool.items(states=(ItemState.ACKNOWLEDGED,))
        assert sorted(i.origin for i in done) == ["c1", "c3"]

    recs = {r.sha256: r for r in vault.recordings()}
    c1 = recs[hashlib.sha256(nvr.clips["c1"]["data"]).hexdigest()]
    assert c1.source_id == "cam-01"
    assert c1.captured_start == dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.timezone.utc)
    assert c1.captured_end == dt.datetime(2026, 11, 20, 10, 0, 2, tzinfo=dt.timezone.utc)
    clock = c1.media_info["clock"]  # type: ignore[index]
    assert clock["flagged"] and clock["offset_s"] == pytest.approx(-30, abs=2)
    assert len(recs) == 2  # c2 never entered the vault: its download failed its checksum
    vault.verify_recording(c1.id)


def test_wrong_token_is_reported_not_fatal(
    tmp_path: Path, nvr: FakeNvr, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NVR_TOKEN", "wrong")
    config = NvrHttpSourceConfig(
        id="nvr-1", kind="nvr_http", url=nvr.url, credentials="env:NVR_TOKEN"
    )
    with Spool(tmp_path / "spool") as spool:
        source = NvrHttpSource(config, SourceContext(spool=spool))
        with pytest.raises(SourceError, match="401") as info:
            source.poll_once()
        assert "wrong" not in str(info.value)
