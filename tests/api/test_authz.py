"""The authorization matrix: every route x every principal gets exactly the expected answer, and
every refusal is an ``access_denied`` custody event.

``ALLOWED`` below is the single table of expectations: for each route, the principals that get
a 2xx. Everyone else is refused: 401 for the three token failures (none, expired, revoked) with
``WWW-Authenticate``, 403 for a role or need-to-know refusal. A test also checks that the table
names every authenticated route the app has, so a new route cannot skip the matrix.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import OPERATOR, World
from vault import cases, shares
from vault.catalog import HoldKind
from vault.holds import place_hold
from vault.identity import principal_for

PRINCIPALS = [
    "admin", "asb", "asb_other_org", "ig", "police", "auditor", "ingest",
    "no_token", "expired", "revoked",
]
UNAUTHENTICATED = {"no_token", "expired", "revoked"}
STAFF = {"admin", "asb", "ig", "police"}  # footage roles in scope
UNSCOPED = {"admin", "ig", "police"}  # footage roles without need-to-know limits
CUSTODY = {"admin", "ig", "auditor"}
EVERY_ROLE = {"admin", "asb", "asb_other_org", "ig", "police", "auditor", "ingest"}


@dataclass(frozen=True)
class Call:
    method: str
    route: str  # the route template, as FastAPI names it
    path: Callable[[World], str]
    json: Callable[[World], Any] | None = None
    content: Callable[[World], bytes] | None = None
    params: Callable[[World], dict[str, str]] | None = None


def _share_by_asb(w: World) -> str:
    created = shares.create_share(
        w.vault, actor=principal_for(w.vault, "asb").actor, recipient="DC Smith",
        recipient_org="Met Police", purpose="investigation", lawful_basis="DPA 2018 s.35",
        recording_ids=[w.rec["rec_case"].id], expires_at=w.clock() + dt.timedelta(days=7),
    )
    return created.share.id


def _linked(w: World) -> str:
    cases.link_recording(w.vault, w.case_id, w.rec["rec_site"].id, actor=OPERATOR)
    return f"/cases/{w.case_id}/recordings/{w.rec['rec_site'].id}"


def _hold(w: World) -> str:
    hold = place_hold(w.vault, kind=HoldKind.CASE, reason="case", actor=OPERATOR, case_id=w.case_id)
    return f"/holds/{hold.id}/release"


CALLS: dict[str, Call] = {
    "me": Call("GET", "/me", lambda w: "/me"),
    "search": Call("GET", "/recordings", lambda w: "/recordings"),
    "metadata in scope": Call(
        "GET", "/recordings/{recording_id}", lambda w: f"/recordings/{w.rec['rec_case'].id}"),
    "metadata out of scope": Call(
        "GET", "/recordings/{recording_id}", lambda w: f"/recordings/{w.rec['rec_other'].id}"),
    "stream by site": Call(
        "GET", "/recordings/{recording_id}/stream",
        lambda w: f"/recordings/{w.rec['rec_site'].id}/stream"),
    "stream out of scope": Call(
        "GET", "/recordings/{recording_id}/stream",
        lambda w: f"/recordings/{w.rec['rec_other'].id}/stream"),
    "download by case": Call(
        "GET", "/recordings/{recording_id}/download",
        lambda w: f"/recordings/{w.rec['rec_case'].id}/download"),
    "upload": Call(
        "POST", "/recordings", lambda w: "/recordings", content=lambda w: os.urandom(1000),
        params=lambda w: {"source": "dock-1", "captured_at": "2026-11-25T10:00:00Z"}),
    "list cases": Call("GET", "/cases", lambda w: "/cases"),
    "create case": Call(
        "POST", "/cases", lambda w: "/cases", json=lambda w: {"reference": f"C-{uuid.uuid4()}"}),
    "get case": Call("GET", "/cases/{case_id}", lambda w: f"/cases/{w.case_id}"),
    "link recording": Call(
        "POST", "/cases/{case_id}/recordings", lambda w: f"/cases/{w.case_id}/recordings",
        json=lambda w: {"recording_id": w.rec["rec_site"].id}),
    "unlink recording": Call("DELETE", "/cases/{case_id}/recordings/{recording_id}", _linked),
    "add member": Call(
        "POST", "/cases/{case_id}/members", lambda w: f"/cases/{w.case_id}/members",
        json=lambda w: {"user": "police"}),
    "list holds": Call(
        "GET", "/holds", lambda w: "/holds", params=lambda w: {"case_id": w.case_id}),
    "place hold": Call(
        "POST", "/holds", lambda w: "/holds",
        json=lambda w: {"kind": "case", "reason": "evidence", "case_id": w.case_id}),
    "release hold": Call("POST", "/holds/{hold_id}/release", _hold, json=lambda w: {"reason": "closed"}),
    "list shares": Call("GET", "/shares", lambda w: "/shares"),
    "create share": Call(
        "POST", "/shares", lambda w: "/shares",
        json=lambda w: {
            "recipient": "DC Smith", "recipient_org": "Met Police", "purpose": "investigation",
            "lawful_basis": "DPA 2018 s.35", "recording_ids": [w.rec["rec_case"].id],
        }),
    "get share": Call("GET", "/shares/{share_id}", lambda w: f"/shares/{_share_by_asb(w)}"),
    "revoke share": Call(
        "POST", "/shares/{share_id}/revoke", lambda w: f"/shares/{_share_by_asb(w)}/revoke",
        json=lambda w: {"reason": "no longer needed"}),
    "custody events": Call("GET", "/custody/events", lambda w: "/custody/events"),
    "custody event": Call("GET", "/custody/events/{seq}", lambda w: "/custody/events/0"),
    "custody proof": Call("GET", "/custody/events/{seq}/proof", lambda w: "/custody/events/0/proof"),
    "custody verify": Call("GET", "/custody/verify", lambda w: "/custody/verify"),
    "custody checkpoint": Call("GET", "/custody/checkpoint", lambda w: "/custody/checkpoint"),
}

# The expectations: who gets a 2xx on each call. Everyone else is refused and logged.
ALLOWED: dict[str, set[str]] = {
    "me": EVERY_ROLE,
    "search": STAFF | {"asb_other_org"},  # allowed, but only their scope comes back
    "metadata in scope": STAFF,
    "metadata out of scope": UNSCOPED,
    "stream by site": STAFF,
    "stream out of scope": UNSCOPED,
    "download by case": STAFF,
    "upload": {"admin", "ingest"},
    "list cases": STAFF | {"asb_other_org"},  # filtered to their own cases
    "create case": STAFF | {"asb_other_org"},
    "get case": STAFF,
    "link recording": STAFF,
    "unlink recording": STAFF,
    "add member": STAFF,
    "list holds": STAFF,
    "place hold": STAFF,
    "release hold": STAFF,
    "list shares": STAFF | {"asb_other_org"},  # filtered to their own shares
    "create share": STAFF,
    "get share": STAFF,  # asb made it; ig and police share its organisation
    "revoke share": STAFF,
    "custody events": CUSTODY,
    "custody event": CUSTODY,
    "custody proof": CUSTODY,
    "custody verify": CUSTODY,
    "custody checkpoint": CUSTODY,
}

# Routes outside the matrix: no bearer token by design.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/share/{token}"),
    ("GET", "/share/{token}/recordings/{recording_id}/stream"),
    ("GET", "/share/{token}/recordings/{recording_id}/download"),
}


def test_matrix_covers_every_route(world: World) -> None:
    paths = world.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    covered = {(c.method, c.route) for c in CALLS.values()} | PUBLIC
    assert routes == covered
    assert set(ALLOWED) == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_authorization_matrix(world: World, name: str) -> None:
    call = CALLS[name]
    failures: list[str] = []
    for who in PRINCIPALS:
        path = call.path(world)  # fresh state per request (a share to revoke, a hold to release)
        before = world.denials()
        size_before = world.vault.ledger.size()
        response = world.client.request(
            call.method,
            path,
            headers=world.headers(who, **({"Content-Type": "application/octet-stream"}
                                           if call.content else {})),
            json=call.json(world) if call.json else None,
            content=call.content(world) if call.content else None,
            params=call.params(world) if call.params else None,
        )
        logged = world.vault.ledger.events(action="access_denied", offset=before, limit=10)
        if who in ALLOWED[name]:
            if not 200 <= response.status_code < 300 or logged:
                failures.append(f"{who}: expected 2xx, got {response.status_code} {response.text[:200]}")
            continue
        expected = 401 if who in UNAUTHENTICATED else 403
        if response.status_code != expected:
            failures.append(f"{who}: expected {expected}, got {response.status_code} {response.text[:200]}")
            continue
        if expected == 401 and "Bearer" not in response.headers.get("WWW-Authenticate", ""):
            failures.append(f"{who}: 401 without WWW-Authenticate: Bearer")
        if len(logged) != 1:
            failures.append(f"{who}: refusal logged {len(logged)} times")
            continue
        event = logged[0].event
        actor = {"no_token": "anonymous", "expired": "asb", "revoked": "ig"}.get(who, who)
        if event.actor != actor or event.details.get("route") != f"{call.method} {call.route}":
            failures.append(f"{who}: denial logged as {event.actor} {event.details}")
        if world.vault.ledger.size() < size_before + 1:
            failures.append(f"{who}: ledger did not grow")
    assert not failures, f"{name}:\n" + "\n".join(failures)


def test_scoped_search_returns_only_scope(world: World) -> None:
    def ids(who: str) -> set[str]:
        response = world.client.get("/recordings", headers=world.headers(who))
        assert response.status_code == 200
        return {r["id"] for r in response.json()["items"]}

    everything = {r.id for r in world.rec.values()}
    assert ids("admin") == everything
    assert ids("asb") == {world.rec["rec_case"].id, world.rec["rec_site"].id}
    assert ids("asb_other_org") == set()
    cases_seen = world.client.get("/cases", headers=world.headers("asb_other_org")).json()
    assert cases_seen == []


def test_case_membership_never_crosses_organisations(world: World) -> None:
    response = world.client.post(
        f"/cases/{world.case_id}/members", json={"user": "asb_other_org"}, headers=world.headers("admin")
    )
    assert response.status_code == 400
    assert "Partner Council" in response.json()["detail"]
