"""A share's life through the API: create, use, exhaust, expire (explicit clock), revoke.

Each step, allowed or refused, must leave its custody event; the token never appears in the
catalog or the ledger.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from tests.api.conftest import SIZE, World


def _create(world: World, **overrides: object) -> dict:  # type: ignore[type-arg]
    body = {
        "recipient": "DC 4711 Patel",
        "recipient_org": "Metropolitan Police",
        "purpose": "investigation of criminal damage",
        "lawful_basis": "DPA 2018 s.35",
        "reference": "CRIME/2026/123",
        "recording_ids": [world.rec["rec_case"].id, world.rec["rec_site"].id],
        "allow_download": True,
        "max_downloads": 2,
        "expires_at": (world.clock() + dt.timedelta(days=3)).isoformat(),
        **overrides,
    }
    response = world.client.post("/shares", json=body, headers=world.headers("asb", purpose=False))
    assert response.status_code == 201, response.text
    return response.json()


def _last(world: World, action: str):  # type: ignore[no-untyped-def]
    return world.vault.ledger.events(action=action, limit=100000)[-1].event


def test_share_lifecycle(world: World) -> None:
    created = _create(world)
    token, share_id = created["token"], created["share"]["id"]
    assert created["url"] == f"/share/{token}"
    shared = _last(world, "shared")
    assert shared.recipient == "DC 4711 Patel" and shared.recipient_org == "Metropolitan Police"
    assert share_id in shared.object_ids and shared.lawful_basis == "DPA 2018 s.35"

    c = world.client
    rid = world.rec["rec_case"].id
    # Metadata: what the link grants.
    view = c.get(f"/share/{token}")
    assert view.status_code == 200
    assert {r["id"] for r in view.json()["recordings"]} == set(created["share"]["recording_ids"])
    assert view.json()["downloads_left"] == 2
    assert _last(world, "share_accessed").details["access"] == "metadata"

    # Streaming with Range never counts as a download.
    part = c.get(f"/share/{token}/recordings/{rid}/stream", headers={"Range": "bytes=-100"})
    assert part.status_code == 206 and part.content == world.data["rec_case"][-100:]
    streamed = _last(world, "streamed")
    assert streamed.actor == f"share:{share_id}" and streamed.actor_org == "Metropolitan Police"
    assert streamed.purpose == "investigation of criminal damage"

    # Two downloads, then the limit.
    for n in (1, 2):
        got = c.get(f"/share/{token}/recordings/{rid}/download")
        assert got.status_code == 200 and got.content == world.data["rec_case"]
        accessed = _last(world, "share_accessed")
        assert accessed.details["downloads"] == n and accessed.recipient == "DC 4711 Patel"
    denials = world.denials()
    exhausted = c.get(f"/share/{token}/recordings/{rid}/download")
    assert exhausted.status_code == 410
    assert "download limit (2)" in exhausted.json()["detail"]
    assert world.denials() == denials + 1
    assert _last(world, "access_denied").details["reason"] == "share: exhausted"
    # Still streamable, a window at a time: the limit is on downloads (finding 4).
    assert c.get(f"/share/{token}/recordings/{rid}/stream").status_code == 206

    # A recording not in the share.
    other = c.get(f"/share/{token}/recordings/{world.rec['rec_other'].id}/stream")
    assert other.status_code == 403 and "not in this share" in other.json()["detail"]

    # Revoke: the link stops at once, with the reason logged.
    revoked = c.post(
        f"/shares/{share_id}/revoke", json={"reason": "case closed"}, headers=world.headers("asb")
    )
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert _last(world, "share_revoked").details["reason"] == "case closed"
    gone = c.get(f"/share/{token}")
    assert gone.status_code == 410 and "revoked" in gone.json()["detail"]
    assert _last(world, "access_denied").details["reason"] == "share: revoked"
    again = c.post(f"/shares/{share_id}/revoke", json={"reason": "x"}, headers=world.headers("asb"))
    assert again.status_code == 400


def test_share_expires_on_the_clock(world: World) -> None:
    created = _create(world, expires_at=(world.clock() + dt.timedelta(hours=1)).isoformat())
    token = created["token"]
    assert world.client.get(f"/share/{token}").status_code == 200
    world.clock.advance(minutes=59)
    assert world.client.get(f"/share/{token}").status_code == 200
    world.clock.advance(minutes=1)
    expired = world.client.get(f"/share/{token}")
    assert expired.status_code == 410 and "expired" in expired.json()["detail"]
    assert _last(world, "access_denied").details["reason"] == "share: expired"
    listed = world.client.get(f"/shares/{created['share']['id']}", headers=world.headers("admin"))
    assert listed.json()["state"] == "expired"


def test_view_only_share_refuses_download(world: World) -> None:
    created = _create(world, allow_download=False, max_downloads=None)
    rid = world.rec["rec_site"].id
    refused = world.client.get(f"/share/{created['token']}/recordings/{rid}/download")
    assert refused.status_code == 403 and "view-only" in refused.json()["detail"]
    assert _last(world, "access_denied").details["reason"] == "share: view_only"
    ok = world.client.get(f"/share/{created['token']}/recordings/{rid}/stream")
    assert ok.status_code == 206 and 0 < len(ok.content) < SIZE  # never a whole copy (finding 4)


def test_unknown_and_mangled_tokens_are_logged(world: World) -> None:
    before = world.denials()
    for token in ("evs_" + "A" * 43, "nonsense", "..%20"):
        response = world.client.get(f"/share/{token}")
        assert response.status_code == 404, (token, response.text)
        assert response.json()["error"] == "not_found"
    assert world.denials() == before + 3
    # An encoded slash never reaches a route at all.
    assert world.client.get("/share/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert _last(world, "access_denied").actor == "share:unknown"


def test_token_is_not_stored_or_logged(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    token = _create(world)["token"]
    world.client.get(f"/share/{token}")
    world.vault.engine.dispose()
    db = world.vault.settings.home_dir / "catalog.sqlite3"
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert token not in dump
    assert token[4:] not in dump


def test_create_share_checks_scope_and_input(world: World) -> None:
    body = {
        "recipient": "x", "recipient_org": "y", "purpose": "p", "lawful_basis": "b",
        "recording_ids": [world.rec["rec_other"].id],
    }
    out_of_scope = world.client.post("/shares", json=body, headers=world.headers("asb"))
    assert out_of_scope.status_code == 403
    past = {**body, "recording_ids": [world.rec["rec_case"].id],
            "expires_at": (world.clock() - dt.timedelta(days=1)).isoformat()}
    assert world.client.post("/shares", json=past, headers=world.headers("asb")).status_code == 400
    skipped = {**past, "expires_at": "2027-03-28T01:30:00"}  # the hour the clocks skip
    assert world.client.post("/shares", json=skipped, headers=world.headers("asb")).status_code == 422
