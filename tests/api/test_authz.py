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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import OPERATOR, ORG, World
from vault.casework import cases, shares
from vault.capture import Capture
from vault.storage.catalog import HoldKind
from vault.casework.holds import place_hold
from vault.access.identity import principal_for

PRINCIPALS = [
    "admin", "asb", "asb_other_org", "ig", "police", "auditor", "ingest",
    "no_token", "expired", "revoked",
]
UNAUTHENTICATED = {"no_token", "expired", "revoked"}
STAFF = {"admin", "asb", "ig", "police"}  # footage roles in scope
UNSCOPED = {"admin", "ig", "police"}  # footage roles without need-to-know limits
CUSTODY = {"admin", "ig", "auditor"}
EVERY_ROLE = {"admin", "asb", "asb_other_org", "ig", "police", "auditor", "ingest"}
SAR = {"admin", "ig"}  # information governance answers subject access requests


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


def _planned_job(w: World) -> str:
    """A finished redaction-plan job of the ASB officer's on rec_case, with a valid plan."""
    from redaction import RedactionPlan, SourceInfo, TrackPlan
    from vault.casework.jobs import Job, JobKind, JobState

    rec = w.rec["rec_case"]
    plan = RedactionPlan(
        source=SourceInfo(name="cam-elm-1.mp4", sha256=rec.sha256, width=320, height=240,
                          frame_count=10, fps="25/1", duration=0.4),
        tracks=[TrackPlan(id=1, start=0, boxes=[(10, 10, 50, 50, 0.9)] * 10)],
    )
    asb = principal_for(w.vault, "asb").actor
    job = Job(kind=JobKind.REDACTION_PLAN, state=JobState.SUCCEEDED, progress=1.0,
              params={"recording_ids": [rec.id]}, result={"plan_sha256": plan.sha256()},
              plan=plan.to_dict(), created_by=asb.user, created_role=asb.role.value,
              created_org=asb.organisation, created_at=w.clock(), attempts=1, max_attempts=3)
    with w.vault.sessions.begin() as session:
        session.add(job)
    return job.id


def _export_job(w: World) -> str:
    """A finished export job of the ASB officer's (rec_case), its package on disk."""
    from api.jobs import open_job_queue
    from vault.actors import Purpose
    from vault.casework.jobs import JobKind

    queue = open_job_queue(w.vault.settings, immediate=True, vault=w.vault)
    job = queue.submit(
        JobKind.EXPORT, actor=principal_for(w.vault, "asb").actor,
        purpose=Purpose("prosecution file", "DPA 2018 s.35"),
        params={"recording_ids": [w.rec["rec_case"].id], "recipient": "DC Smith",
                "recipient_org": "Met Police"},
    )
    return job.id


def _clip_footage(w: World) -> str:
    """Two real 4 s H.264 segments from a Riverside camera (the ASB officer's site), once."""
    if "clip_footage" not in w.data:
        from tests.redaction.test_clips import make_segment
        from vault.storage.catalog import SourceKind

        base = w.vault.settings.home_dir.parent
        for n in range(2):
            start = CLIP_T0 + dt.timedelta(seconds=4 * n)
            w.vault.put_file(
                make_segment(base / f"clip-seg{n}.mp4", 100 * n, audio=False),
                Capture(
                    source_id="cam-river-clip",
                    source_kind=SourceKind.CCTV,
                    site="Riverside",
                    captured_at=start,
                    captured_end=start + dt.timedelta(seconds=4),
                ),
                actor=OPERATOR,
            )
        w.data["clip_footage"] = b"1"
    return "/clips"


CLIP_T0 = dt.datetime(2026, 11, 25, 13, 0, tzinfo=dt.UTC)


def _video(w: World, site: str) -> str:
    """A real 2 s H.264 recording from a camera at ``site``, once per world (thumbnail sheets
    need footage that decodes)."""
    key = f"video {site}"
    if key not in w.data:
        from tests.web.conftest import make_footage
        from vault.storage.catalog import MediaKind, SourceKind

        media = make_footage(w.vault.settings.home_dir.parent / f"{uuid.uuid4()}.mp4", seconds=2)
        rec = w.vault.put_file(media, Capture(
            source_id=f"cam-{site.lower().replace(' ', '-')}-video", source_kind=SourceKind.CCTV,
            site=site, captured_at=CLIP_T0, captured_end=CLIP_T0 + dt.timedelta(seconds=2),
            media_kind=MediaKind.VIDEO), actor=OPERATOR)
        w.data[key] = rec.id.encode()
    return w.data[key].decode()


def _fresh_case(w: World, *, closed: bool = False) -> str:
    """A fresh case of the organisation with the ASB officer as member (open or closed)."""
    case = cases.create_case(w.vault, reference=f"ASB/{uuid.uuid4()}", organisation=ORG,
                             actor=OPERATOR, member_ids=(w.users["asb"].id,))
    if closed:
        cases.close_case(w.vault, case.id, actor=OPERATOR, reason="test")
    return f"/cases/{case.id}"


def _sar(w: World) -> str:
    """A fresh subject access request (so each principal may extend or close one)."""
    from vault.casework.sar import register_sar

    sar = register_sar(w.vault, reference=f"SAR-{uuid.uuid4()}", requester_name="A. Resident",
                       received_on=w.clock().date(), actor=OPERATOR)
    return f"/sars/{sar.id}"


def _sar_with_footage(w: World) -> str:
    """A fresh request holding the Elm Court camera around the case recording."""
    from vault.casework.sar import attach_window

    path = _sar(w)
    start = w.rec["rec_case"].captured_start
    attach_window(w.vault, path.rsplit("/", 1)[1], source_id="cam-elm-1",
                  start=start - dt.timedelta(minutes=5), end=start + dt.timedelta(minutes=5),
                  actor=OPERATOR)
    return path


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
    "thumbnails by site": Call(
        "GET", "/recordings/{recording_id}/thumbnails",
        lambda w: f"/recordings/{_video(w, 'Riverside')}/thumbnails"),
    "thumbnails out of scope": Call(
        "GET", "/recordings/{recording_id}/thumbnails",
        lambda w: f"/recordings/{_video(w, 'Oak Park')}/thumbnails"),
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
    "close case": Call(
        "POST", "/cases/{case_id}/close", lambda w: f"{_fresh_case(w)}/close",
        json=lambda w: {"reason": "no further action"}),
    "reopen case": Call(
        "POST", "/cases/{case_id}/reopen", lambda w: f"{_fresh_case(w, closed=True)}/reopen",
        json=lambda w: {"reason": "new report"}),
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
    "custody fixity": Call("POST", "/custody/fixity", lambda w: "/custody/fixity",
                           json=lambda w: {"sample": 1}),
    "create clip": Call(
        "POST", "/clips", _clip_footage,
        json=lambda w: {"source_id": "cam-river-clip", "start": "2026-11-25T13:00:03.3Z",
                        "end": "2026-11-25T13:00:04.7Z"}),
    "register sar": Call(
        "POST", "/sars", lambda w: "/sars",
        json=lambda w: {"reference": f"SAR-{uuid.uuid4()}", "requester_name": "A. Resident",
                        "received_on": w.clock().date().isoformat()}),
    "list sars": Call("GET", "/sars", lambda w: "/sars", params=lambda w: {"due_within_days": "30"}),
    "get sar": Call("GET", "/sars/{sar_id}", _sar),
    "attach sar window": Call(
        "POST", "/sars/{sar_id}/windows", lambda w: f"{_sar(w)}/windows",
        json=lambda w: {"source_id": "cam-elm-1", "start": "2026-11-25T12:00:00Z",
                        "end": "2026-11-25T13:00:00Z"}),
    "extend sar": Call(
        "POST", "/sars/{sar_id}/extend", lambda w: f"{_sar(w)}/extend",
        json=lambda w: {"months": 2, "reason": "complex: many cameras"}),
    "record sar disclosure": Call(
        "POST", "/sars/{sar_id}/disclosures", lambda w: f"{_sar(w)}/disclosures",
        json=lambda w: {"recording_ids": [w.rec["rec_case"].id], "method": "secure link",
                        # a master outside the windows: the stated, logged override (#11 f21)
                        "override_reason": "requester alone in frame"}),
    "plan sar redactions": Call(
        "POST", "/sars/{sar_id}/redaction-jobs", lambda w: f"{_sar_with_footage(w)}/redaction-jobs",
        json=lambda w: {}),
    "close sar": Call(
        "POST", "/sars/{sar_id}/close", lambda w: f"{_sar(w)}/close",
        json=lambda w: {"reason": "response sent"}),
    "create redaction job": Call(
        "POST", "/recordings/{recording_id}/redaction-jobs",
        lambda w: f"/recordings/{w.rec['rec_case'].id}/redaction-jobs", json=lambda w: {}),
    "get job": Call("GET", "/jobs/{job_id}", lambda w: f"/jobs/{_planned_job(w)}"),
    "get job plan": Call("GET", "/jobs/{job_id}/plan", lambda w: f"/jobs/{_planned_job(w)}/plan"),
    "edit job plan": Call(
        "PUT", "/jobs/{job_id}/plan", lambda w: f"/jobs/{_planned_job(w)}/plan",
        json=lambda w: w.client.get(  # the plan as the admin reads it
            f"/jobs/{_planned_job(w)}/plan", headers=w.headers("admin")).json()),
    "render job": Call("POST", "/jobs/{job_id}/render", lambda w: f"/jobs/{_planned_job(w)}/render"),
    "create export": Call(
        "POST", "/exports", lambda w: "/exports",
        json=lambda w: {
            "recording_ids": [w.rec["rec_case"].id], "recipient": "DC Smith",
            "recipient_org": "Met Police", "purpose": "prosecution file",
            "lawful_basis": "DPA 2018 s.35",
        }),
    "export package": Call(
        "GET", "/exports/{job_id}/package", lambda w: f"/exports/{_export_job(w)}/package"),
    "pull footage": Call(
        "POST", "/ingest/pulls", lambda w: "/ingest/pulls",
        json=lambda w: {"nvr": "nvr-river", "camera": "cam-river-pull",
                        "start": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat(),
                        "end": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()}),
}

# The expectations: who gets a 2xx on each call. Everyone else is refused and logged.
ALLOWED: dict[str, set[str]] = {
    "me": EVERY_ROLE,
    "search": STAFF | {"asb_other_org"},  # allowed, but only their scope comes back
    "metadata in scope": STAFF,
    "metadata out of scope": UNSCOPED,
    "stream by site": STAFF,
    "stream out of scope": UNSCOPED,
    "thumbnails by site": STAFF,
    "thumbnails out of scope": UNSCOPED,
    "download by case": STAFF,
    "upload": {"admin", "ingest"},
    "list cases": STAFF | {"asb_other_org"},  # filtered to their own cases
    "create case": STAFF | {"asb_other_org"},
    "get case": STAFF,
    "link recording": STAFF,
    "unlink recording": STAFF,
    "add member": STAFF,
    "close case": STAFF,
    "reopen case": STAFF,
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
    "custody fixity": CUSTODY,
    "create clip": STAFF,  # asb by site; asb_other_org has no site there
    "register sar": SAR,
    "list sars": SAR,
    "get sar": SAR,
    "attach sar window": SAR,
    "extend sar": SAR,
    "record sar disclosure": SAR,
    "plan sar redactions": SAR,
    "close sar": SAR,
    "create redaction job": STAFF,
    "get job": STAFF,  # asb made it; ig and police share its organisation
    "get job plan": STAFF,
    "edit job plan": STAFF,
    "render job": STAFF,
    "create export": STAFF,
    "export package": STAFF,
    "pull footage": STAFF,  # holds.place on the camera: asb by site (Riverside)
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


@pytest.fixture(scope="module")
def pull_nvr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real NVR for the pull route (mediamtx's playback server, holding no footage)."""
    from tests.conftest import on_ci
    from tests.ingest.conftest import find_mediamtx
    from tests.ingest.nvr_servers import PASSWORD, USER, MediamtxNvrServer

    binary = find_mediamtx()
    if binary is None:
        (pytest.fail if on_ci() else pytest.skip)("mediamtx not found; run scripts/ensure-rtsp.sh")
    server = MediamtxNvrServer(binary=binary, workdir=tmp_path_factory.mktemp("authz-nvr"))
    server.start()
    os.environ["AUTHZ_NVR_CREDENTIALS"] = f"{USER}:{PASSWORD}"
    try:
        yield server.url
    finally:
        os.environ.pop("AUTHZ_NVR_CREDENTIALS", None)
        server.stop()


def _configure_pulls(w: World, url: str) -> None:
    agents = w.vault.settings.home_dir / "agents.toml"
    agents.write_text(
        '[[nvrs]]\nid = "nvr-river"\nkind = "mediamtx"\nsite = "Riverside"\n'
        f'url = "{url}"\ncredentials = "env:AUTHZ_NVR_CREDENTIALS"\n'
        'cameras = { "cam-river-pull" = "cam1" }\n'
    )
    w.vault.settings.agents_file = agents


@pytest.mark.parametrize("name", sorted(CALLS))
def test_authorization_matrix(world: World, name: str, request: pytest.FixtureRequest) -> None:
    call = CALLS[name]
    if call.route == "/ingest/pulls":
        _configure_pulls(world, request.getfixturevalue("pull_nvr"))
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


def test_a_flood_of_anonymous_refusals_is_summed_not_lost(world: World) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = world.vault.settings.model_copy(update={"denial_burst": 3})
    before = len(world.vault.ledger.events(action="access_denied", limit=10_000))
    with TestClient(create_app(settings, vault=world.vault)) as client:
        for _ in range(12):
            assert client.get("/recordings").status_code == 401
        during = world.vault.ledger.events(action="access_denied", limit=10_000)[before:]
        assert len(during) == 3
    # Shut down: the other nine are in one summary event.
    after = world.vault.ledger.events(action="access_denied", limit=10_000)[before:]
    (summary,) = [e.event.details["summary"] for e in after if "summary" in e.event.details]
    assert summary["count"] == 9 and summary["by_reason"] == {"missing": 9}
