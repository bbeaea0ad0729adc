"""The app as a whole: health, clear errors, path tricks, uploads, and a useful /docs."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.errors import STATUS, status_for
from tests.api.conftest import World
from vault import errors
from vault.config import Settings
from vault.casework.retention import run_retention


def test_health_and_readiness(world: World) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok"}
    ready = world.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"catalog": "ok", "store": "ok", "queue": "ok"}


def test_create_app_opens_a_fresh_vault(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "fresh")
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/me").status_code == 401
    assert (tmp_path / "fresh" / "catalog.sqlite3").exists()


@pytest.mark.parametrize(
    ("authorization", "fragment"),
    [
        (None, None),
        ("Bearer evt_" + "x" * 43, "unknown bearer token"),
        ("Bearer not-a-token", "malformed bearer token"),
        ("Basic dXNlcjpwYXNz", None),  # not a bearer token at all
    ],
)
def test_401_says_why_with_www_authenticate(
    world: World, authorization: str | None, fragment: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = world.client.get("/me", headers=headers)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer")
    if fragment:
        assert fragment in response.json()["detail"]
        assert 'error="invalid_token"' in challenge


def test_expired_and_revoked_tokens_say_so(world: World) -> None:
    expired = world.client.get("/me", headers=world.headers("expired"))
    assert expired.status_code == 401 and "expired on" in expired.json()["detail"]
    revoked = world.client.get("/me", headers=world.headers("revoked"))
    assert revoked.status_code == 401 and "revoked on" in revoked.json()["detail"]
    assert world.vault.ledger.events(action="access_denied")[-1].event.details["reason"] == (
        "authentication: revoked"
    )


def test_token_hash_only_at_rest(world: World) -> None:
    import sqlite3

    world.vault.engine.dispose()
    with sqlite3.connect(world.vault.settings.home_dir / "catalog.sqlite3") as conn:
        dump = "\n".join(conn.iterdump())
    token = world.tokens["admin"]
    assert token and token not in dump
    assert hashlib.sha256(token.encode()).hexdigest() in dump


def test_missing_purpose_names_the_header(world: World) -> None:
    url = f"/recordings/{world.rec['rec_case'].id}/stream"
    response = world.client.get(url, headers=world.headers("admin", purpose=False))
    assert response.status_code == 400
    assert response.json()["header"] == "X-Purpose"
    assert "X-Purpose" in response.json()["detail"]
    blank = world.client.get(url, headers=world.headers("admin", purpose=False, **{"X-Purpose": "  "}))
    assert blank.status_code == 400
    long_ref = world.headers("admin", **{"X-Reference": "r" * 300})
    assert world.client.get(url, headers=long_ref).json()["header"] == "X-Reference"


@pytest.mark.parametrize(
    "path",
    [
        "/recordings/..%2F..%2Fkeyring.json/stream",
        "/recordings/../../etc/passwd",
        "/recordings/not-a-uuid/stream",
        "/recordings/" + "a" * 5000,
        "/cases/%00",
        "/custody/events/-1",
    ],
)
def test_path_tricks_never_reach_the_vault(world: World, path: str) -> None:
    response = world.client.get(path, headers=world.headers("admin"))
    assert response.status_code in (404, 422), response.text


def test_unknown_recording_is_404_for_unscoped_403_for_scoped(world: World) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert world.client.get(f"/recordings/{missing}", headers=world.headers("admin")).status_code == 404
    # A scoped officer cannot tell a missing id from one outside their scope.
    assert world.client.get(f"/recordings/{missing}", headers=world.headers("asb")).status_code == 403


def test_upload_round_trip_and_name_checks(world: World) -> None:
    data = os.urandom(300_000)
    params = {"source": "dock-2", "captured_at": "2026-11-25T09:00:00+01:00", "name": "bwv 0042.mp4",
              "media_kind": "video", "source_kind": "staff_device"}
    headers = world.headers("ingest", **{"Content-Type": "application/octet-stream"})
    created = world.client.post("/recordings", params=params, content=data, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["size"] == len(data)
    assert body["captured_start"] == "2026-11-25T08:00:00Z"
    got = world.client.get(f"/recordings/{body['id']}/download", headers=world.headers("admin"))
    assert got.content == data
    assert "filename=\"bwv 0042.mp4\"" in got.headers["Content-Disposition"]
    for bad in ("../../x.mp4", "a/b.mp4", "x\r\nSet-Cookie: y", ".."):
        refused = world.client.post(
            "/recordings", params={**params, "name": bad}, content=b"x", headers=headers
        )
        assert refused.status_code == 400, bad
    # A time with no offset is UK local time (finding 26); one the clocks skip is refused.
    skipped = world.client.post(
        "/recordings", params={**params, "captured_at": "2026-03-29T01:30:00"}, content=b"x",
        headers=headers,
    )
    assert skipped.status_code == 422 and "does not exist in UK time" in skipped.text


def test_shredded_footage_is_410(world: World) -> None:
    run_retention(world.vault, now=world.clock() + dt.timedelta(days=40))
    rid = world.rec["rec_other"].id
    gone = world.client.get(f"/recordings/{rid}/stream", headers=world.headers("admin"))
    assert gone.status_code == 410 and "deleted" in gone.json()["detail"]
    meta = world.client.get(f"/recordings/{rid}", headers=world.headers("admin"))
    assert meta.status_code == 200 and meta.json()["deleted_at"] is not None


def test_every_vault_error_has_a_status() -> None:
    assert status_for(errors.NotFound("x")) == (404, "not_found")
    assert status_for(errors.Shredded("x"))[0] == 410
    assert status_for(errors.StorageError("x"))[0] == 503
    assert status_for(errors.LedgerError("x"))[0] == 409
    assert status_for(errors.AccessDenied("x"))[0] == 403
    classes = {cls for cls, _, _ in STATUS}
    assert errors.VaultError in classes


def test_every_operation_is_documented(world: World) -> None:
    schema = world.client.get("/openapi.json").json()
    assert "BearerToken" in schema["components"]["securitySchemes"]
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            assert op.get("summary"), f"{method.upper()} {path} has no summary"
            assert op.get("description"), f"{method.upper()} {path} has no description"
    assert world.client.get("/docs").status_code == 200


def test_search_filters(world: World) -> None:
    h = world.headers("admin")
    def ids(**params: str) -> set[str]:
        response = world.client.get("/recordings", params=params, headers=h)
        assert response.status_code == 200, response.text
        return {r["id"] for r in response.json()["items"]}

    rec = world.rec
    assert ids(site="Riverside") == {rec["rec_site"].id}
    assert ids(source="cam-oak-3") == {rec["rec_other"].id}
    assert ids(case_id=world.case_id) == {rec["rec_case"].id}
    start = rec["rec_case"].captured_start
    # A window inside a recording's capture still finds it (overlap, not start time).
    inside = {"since": (start + dt.timedelta(minutes=5)).isoformat(),
              "until": (start + dt.timedelta(minutes=6)).isoformat()}
    assert ids(**inside) == {r.id for r in rec.values()}
    later = {"since": (start + dt.timedelta(hours=1)).isoformat()}
    assert ids(**later) == set()
    # Evidence on an open case is held without a separate hold (issue #11 finding 20).
    assert ids(held="true") == {rec["rec_case"].id}
    world.client.post("/holds", json={"kind": "police", "reason": "request",
                                      "recording_id": rec["rec_site"].id}, headers=h)
    assert ids(held="true") == {rec["rec_case"].id, rec["rec_site"].id}
    assert ids(held="false") == {rec["rec_other"].id}
    world.client.post(f"/cases/{world.case_id}/close", json={"reason": "resolved"},
                      headers=world.headers("admin", purpose=False))
    assert ids(held="true") == {rec["rec_site"].id}
    world.client.post(f"/cases/{world.case_id}/reopen", json={"reason": "new report"},
                      headers=world.headers("admin", purpose=False))
    assert ids(held="true") == {rec["rec_case"].id, rec["rec_site"].id}
    assert ids(media_kind="audio") == set()
    searched = world.vault.ledger.events(action="searched")[-1].event
    assert searched.details["criteria"]["media_kind"] == "audio"
    bad = world.client.get("/recordings", params={"since": inside["until"], "until": inside["since"]},
                           headers=h)
    assert bad.status_code == 400
