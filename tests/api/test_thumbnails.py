"""Thumbnail sheets (issue #12: "a per-camera timeline with thumbnail frames", "thumbnails
while scrubbing"): footage, so the stream's access check, one custody event per sheet, no-store,
nothing kept. Real footage made with ffmpeg; the web pages' use is tested in
tests/web/test_thumbnails.py, the boundary for every generated role in
tests/api/test_boundary_model.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import cv2
import numpy as np
import pytest

from api.routes.thumbnails import TILE_HEIGHT, sprite_sheet
from redaction.errors import MediaError
from tests.api.conftest import OPERATOR, World
from tests.web.conftest import make_footage
from vault.capture import Capture
from vault.ledger.custody import Action
from vault.storage.catalog import MediaKind, Recording, SourceKind


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def _video(world: World, tmp_path: Path, source: str, site: str) -> Recording:
    media = make_footage(tmp_path / f"{source}.mp4", seconds=4)
    start = world.clock() - dt.timedelta(hours=1)
    with media.open("rb") as f:
        return world.vault.put_stream(f, Capture(
            source_id=source, source_kind=SourceKind.CCTV, site=site, captured_at=start,
            captured_end=start + dt.timedelta(seconds=4), media_kind=MediaKind.VIDEO,
            original_name=f"{source}.mp4"), actor=OPERATOR)


def _viewed(world: World, recording_id: str) -> list[dict[str, object]]:
    return [e.event.details for e in world.vault.ledger.events(action=Action.VIEWED.value,
                                                               limit=100_000)
            if recording_id in e.event.object_ids]


def test_sprite_sheet_holds_one_tile_per_part_of_the_footage(tmp_path: Path) -> None:
    """Issue #12 (thumbnails): a sheet of n tiles, each TILE_HEIGHT tall at the footage's
    aspect ratio, taken from different points of the recording (testsrc2 changes every frame,
    so tiles from different times differ)."""
    media = make_footage(tmp_path / "f.mp4", seconds=4)
    sheet = _decode(sprite_sheet(media, 4))
    width = round(320 * TILE_HEIGHT / 240)
    assert sheet.shape == (TILE_HEIGHT, 4 * width, 3)
    tiles = [sheet[:, i * width:(i + 1) * width].astype(int) for i in range(4)]
    assert all(np.abs(a - b).mean() > 5 for a, b in zip(tiles, tiles[1:], strict=False))


def test_sprite_sheet_refuses_what_is_not_video(tmp_path: Path) -> None:
    """Issue #12 (thumbnails): bytes that are no video are a MediaError naming the file, never a
    blank sheet."""
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 5000)
    with pytest.raises(MediaError) as raised:
        sprite_sheet(junk, 3)
    assert raised.value.path == str(junk)


def test_a_sheet_is_the_streams_decision_one_viewed_event_and_no_store(
    world: World, tmp_path: Path
) -> None:
    """Issue #12 (thumbnails are footage): an officer who may watch the recording gets a
    no-store JPEG; the access is one ``viewed`` event with the stated purpose and the number of
    frames; nothing is left in the spool."""
    rec = _video(world, tmp_path, "cam-river-9", "Riverside")
    r = world.client.get(f"/recordings/{rec.id}/thumbnails", params={"tiles": 5},
                         headers=world.headers("asb"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert "no-store" in r.headers["cache-control"]
    assert _decode(r.content).shape[0] == TILE_HEIGHT
    viewed = [e for e in world.vault.ledger.events(action=Action.VIEWED.value, limit=1000)
              if rec.id in e.event.object_ids]
    assert len(viewed) == 1
    assert viewed[0].event.actor == "asb"
    assert viewed[0].event.purpose == "investigating ASB incident"
    assert viewed[0].event.details["thumbnails"] == 5
    spool = world.vault.settings.spool_dir
    # Nothing decrypted touches the disk (the reader decrypts into memory).
    assert not spool.exists() or not any(p.name.startswith("thumbnails-")
                                         for p in spool.iterdir())


def test_a_sheet_is_refused_as_the_stream_is(world: World, tmp_path: Path) -> None:
    """Issue #12 (thumbnails never cross the boundary): outside the officer's sites, another
    organisation's officer, an auditor (no footage role) and no token are refused exactly as
    the stream refuses them, each refusal logged and nothing decrypted; a missing purpose is a
    400 after the access check; a recording that is no video a 422."""
    rec = _video(world, tmp_path, "cam-oak-9", "Oak Park")
    path = f"/recordings/{rec.id}/thumbnails"
    for who in ("asb", "asb_other_org", "auditor", "no_token"):
        before = world.denials()
        sheet = world.client.get(path, headers=world.headers(who))
        stream = world.client.get(f"/recordings/{rec.id}/stream", headers=world.headers(who))
        assert sheet.status_code == stream.status_code and sheet.status_code in (401, 403), who
        assert world.denials() >= before + 2, who
    assert _viewed(world, rec.id) == []
    missing = world.client.get(path, headers=world.headers("ig", purpose=False))
    assert missing.status_code == 400 and "X-Purpose" in missing.text
    noise = world.client.get(f"/recordings/{world.rec['rec_site'].id}/thumbnails",
                             headers=world.headers("asb"))
    assert noise.status_code == 422, noise.text
