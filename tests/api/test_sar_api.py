"""Subject access requests over HTTP: register, hold a camera window, extend, disclose, close;
and an incident clip cut through ``POST /clips``."""

from __future__ import annotations

import datetime as dt

from tests.api.conftest import OPERATOR, T0, World
from vault.storage.catalog import SourceKind
from vault.casework.retention import run_retention
from vault.capture import Capture


def test_sar_lifecycle_over_http(world: World) -> None:
    ig = world.headers("ig", purpose=False)
    body = {"reference": "SAR-2026-14", "requester_name": "A. Resident",
            "requester_contact": "a.resident@example.org", "received_on": "2026-11-25"}
    created = world.client.post("/sars", json=body, headers=ig)
    assert created.status_code == 201, created.text
    sar = created.json()
    assert sar["due_on"] == sar["deadline"] == "2026-12-25" and sar["status"] == "open"
    assert world.client.post("/sars", json=body, headers=ig).status_code == 400  # reference taken

    rec = world.rec["rec_case"]  # cam-elm-1, captured T0-2h for 10 minutes
    window = {"source_id": "cam-elm-1", "start": (T0 - dt.timedelta(hours=3)).isoformat(),
              "end": (T0 - dt.timedelta(hours=1)).isoformat()}
    attached = world.client.post(f"/sars/{sar['id']}/windows", json=window, headers=ig)
    assert attached.status_code == 201, attached.text
    assert [w["held"] for w in attached.json()["windows"]] == [True]
    held = world.client.get("/recordings", params={"held": "true"}, headers=world.headers("ig")).json()
    assert rec.id in {r["id"] for r in held["items"]}

    soon = world.client.get("/sars", params={"due_within_days": 31}, headers=ig).json()
    assert [s["reference"] for s in soon] == ["SAR-2026-14"]
    assert world.client.get("/sars", params={"due_within_days": 7}, headers=ig).json() == []

    extended = world.client.post(f"/sars/{sar['id']}/extend",
                                 json={"months": 2, "reason": "many cameras"}, headers=ig)
    assert extended.json()["deadline"] == "2027-02-25" and extended.json()["status"] == "extended"
    too_far = world.client.post(f"/sars/{sar['id']}/extend", json={"months": 1, "reason": "more"},
                                headers=ig)
    assert too_far.status_code == 400 and "at most 2" in too_far.json()["detail"]

    disclosed = world.client.post(f"/sars/{sar['id']}/disclosures",
                                  json={"recording_ids": [rec.id], "method": "secure link",
                                        "override_reason": "requester alone in frame"}, headers=ig)
    assert disclosed.status_code == 201 and disclosed.json()["disclosures"][0]["recording_ids"] == [rec.id]

    # Retention 30 days on keeps the held footage; after closing, the next run deletes it.
    report = run_retention(world.vault, now=T0 + dt.timedelta(days=30))
    assert rec.id in {d.recording_id for d in report.kept}
    closed = world.client.post(f"/sars/{sar['id']}/close", json={"reason": "answered"}, headers=ig)
    assert closed.json()["status"] == "closed" and closed.json()["windows"][0]["held"] is False
    report = run_retention(world.vault, now=T0 + dt.timedelta(days=31))
    # rec_case is evidence on the open case ASB/1, which keeps it (issue #11 finding 20) ...
    kept = {d.recording_id: d.reason for d in report.kept}
    assert "case hold (ASB/1)" in kept[rec.id]
    # ... until the case is closed, with a reason.
    admin = world.headers("admin", purpose=False)
    assert world.client.post(f"/cases/{world.case_id}/close", json={"reason": "no further "
                             "action"}, headers=admin).json()["status"] == "closed"
    report = run_retention(world.vault, now=T0 + dt.timedelta(days=32))
    assert rec.id in {d.recording_id for d in report.deleted}

    got = world.client.get(f"/sars/{sar['id']}", headers=world.headers("admin", purpose=False))
    assert got.status_code == 200 and got.json()["close_reason"] == "answered"
    assert world.client.get(f"/sars/{sar['id']}", headers=world.headers("asb")).status_code == 403


def test_sar_input_errors(world: World) -> None:
    ig = world.headers("ig", purpose=False)
    future = {"reference": "SAR-F", "requester_name": "B", "received_on": "2027-01-01"}
    assert world.client.post("/sars", json=future, headers=ig).status_code == 400
    sar = world.client.post("/sars", json={**future, "received_on": "2026-11-01"}, headers=ig).json()
    assert sar["due_on"] == "2026-12-01"
    bad = world.client.post(f"/sars/{sar['id']}/extend", json={"months": 3, "reason": "x"}, headers=ig)
    assert bad.status_code == 422
    missing = world.client.post(
        f"/sars/{sar['id']}/windows", headers=ig,
        json={"source_id": "cam-none", "start": "2026-11-25T10:00:00Z", "end": "2026-11-25T11:00:00Z"})
    assert missing.status_code == 404
    unknown = "00000000-0000-4000-8000-000000000000"
    assert world.client.get(f"/sars/{unknown}", headers=ig).status_code == 404


def test_clip_over_http(world: World) -> None:
    from tests.redaction.test_clips import make_segment

    base = world.vault.settings.home_dir.parent
    start = T0 - dt.timedelta(minutes=30)
    for n in range(2):
        at = start + dt.timedelta(seconds=4 * n)
        world.vault.put_file(
            make_segment(base / f"s{n}.mp4", 100 * n, audio=False),
            Capture(
                source_id="cam-river-9",
                source_kind=SourceKind.CCTV,
                site="Riverside",
                captured_at=at,
                captured_end=at + dt.timedelta(seconds=4),
            ),
            actor=OPERATOR,
        )
    body = {"source_id": "cam-river-9", "start": (start + dt.timedelta(seconds=2.3)).isoformat(),
            "end": (start + dt.timedelta(seconds=6.5)).isoformat()}
    made = world.client.post("/clips", json=body, headers=world.headers("asb"))
    assert made.status_code == 201, made.text
    clip = made.json()
    assert clip["method"] == "stream-copy+edge-reencode" and clip["frame_count"] == 105
    assert len(clip["source_recording_ids"]) == 2 and clip["provenance"]["kind"] == "clip"
    assert world.client.post("/clips", json=body, headers=world.headers("asb", purpose=False)
                             ).status_code == 400  # X-Purpose is required
    empty = {**body, "source_id": "cam-river-9", "start": "2026-11-20T10:00:00Z",
             "end": "2026-11-20T10:01:00Z"}
    assert world.client.post("/clips", json=empty, headers=world.headers("asb")).status_code == 404
    backwards = {**body, "end": body["start"]}
    assert world.client.post("/clips", json=backwards, headers=world.headers("admin")).status_code == 400
    other = {**empty, "source_id": "cam-oak-3"}  # not the ASB officer's site: refused, not 404
    assert world.client.post("/clips", json=other, headers=world.headers("asb")).status_code == 403


def test_sar_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io

    import typer
    from typer.testing import CliRunner

    from api.cli.sar import sar_app
    from vault.config import Settings
    from vault.vault import Vault

    settings = Settings(home=tmp_path / "home")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with Vault.init(settings) as vault:
        vault.put_stream(
            io.BytesIO(b"x" * 100),
            Capture(
                source_id="cam-1",
                source_kind=SourceKind.CCTV,
                captured_at=now - dt.timedelta(hours=1),
                captured_end=now - dt.timedelta(minutes=50),
            ),
            actor=OPERATOR,
        )
    app = typer.Typer()
    app.add_typer(sar_app, name="sar")
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home")}

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(app, ["sar", *args], env=env)

    received = (now - dt.timedelta(days=25)).date()
    done = run("register", "SAR-7", "--requester", "A. Resident", "--received", received.isoformat())
    assert done.exit_code == 0, done.output
    assert "SAR-7" in done.output and "open" in done.output
    window = ["--source", "cam-1", "--start", (now - dt.timedelta(hours=2)).isoformat(),
              "--end", now.isoformat()]
    assert run("attach", "SAR-7", *window).exit_code == 0
    soon = run("list", "--due-within", "10")
    assert soon.exit_code == 0 and "SAR-7" in soon.output
    assert "no requests" in run("list", "--due-within", "0").output
    assert run("attach", "SAR-7", "--source", "cam-x", *window[2:]).exit_code == 3  # NotFound
    closed = run("close", "SAR-7", "--reason", "answered")
    assert closed.exit_code == 0 and "released 1 hold" in closed.output


def test_sar_footage_is_queued_for_redaction_under_the_request(world: World) -> None:
    from vault.casework.jobs import JobKind, get_job

    ig = world.headers("ig", purpose=False)
    sar = world.client.post("/sars", json={"reference": "SAR-2026-15", "requester_name": "B. Tenant",
                                           "received_on": "2026-11-25"}, headers=ig).json()
    empty = world.client.post(f"/sars/{sar['id']}/redaction-jobs", json={}, headers=ig)
    assert empty.status_code == 400 and "attach a camera window" in empty.json()["detail"]

    window = {"source_id": "cam-elm-1", "start": (T0 - dt.timedelta(hours=3)).isoformat(),
              "end": (T0 - dt.timedelta(hours=1)).isoformat()}
    assert world.client.post(f"/sars/{sar['id']}/windows", json=window, headers=ig).status_code == 201
    queued = world.client.post(f"/sars/{sar['id']}/redaction-jobs",
                               json={"mask": {"style": "pixelate"}}, headers=ig)
    assert queued.status_code == 202, queued.text
    jobs = queued.json()["jobs"]
    # Only the Elm Court recording is in the window; the other cameras are not touched.
    assert [j["recording_ids"] for j in jobs] == [[world.rec["rec_case"].id]]
    job = get_job(world.vault, jobs[0]["id"])
    assert job.kind is JobKind.REDACTION_PLAN
    assert job.params["purpose"] == {"purpose": "subject access request SAR-2026-15",
                                     "lawful_basis": "UK GDPR Article 15",
                                     "reference": "SAR-2026-15"}
    assert job.params["caption"] == "REDACTED COPY SAR-2026-15"
    assert job.params["mask"]["style"] == "pixelate" and job.params["keep_tracks"] == []
    # An ASB officer cannot start them.
    refused = world.client.post(f"/sars/{sar['id']}/redaction-jobs", json={},
                                headers=world.headers("asb", purpose=False))
    assert refused.status_code == 403
