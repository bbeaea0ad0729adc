"""Pulling a past window from an NVR (issue #17), against a real mediamtx recorder and playback
server started by the suite (tests/ingest/nvr_servers.py).

The NVR records a live test stream in 3-second segment files: 7 s, a 3 s pause (a gap on the
NVR), then 5 s. Each test asks it for a window as an officer would and checks what reached the
vault: the recordings, their provenance and custody, the gaps reported, the clock check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from ingest.config import AgentsFile
from ingest.errors import NvrAuthFailed, NvrUnreachable
from ingest.pull import PULL_ACTION, GapReason, PullProgress, PullReport, pull
from tests.conftest import on_ci
from tests.ingest.conftest import find_mediamtx, free_port
from tests.ingest.nvr_servers import PASSWORD, USER, DroppingProxy, MediamtxNvrServer
from vault.actors import Actor, Purpose, Role
from vault.ledger.custody import Action
from vault.vault import Vault

pytestmark = [pytest.mark.rtsp, pytest.mark.slow]

FPS = 25
OFFICER = Actor(user="asb.jones", role=Role.ASB_OFFICER, organisation="Northgate Homes",
                client_addr="10.1.2.3")
WHY = Purpose(purpose="ASB report 4411: damage at the bin store", reference="ASB-4411")


@pytest.fixture(scope="module")
def nvr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediamtxNvrServer]:
    """A mediamtx NVR holding two stretches of footage of ``cam1`` with a gap between."""
    binary = find_mediamtx()
    if binary is None:
        reason = "mediamtx not found; run scripts/ensure-rtsp.sh"
        if on_ci():
            pytest.fail(f"{reason} (CI=true: the NVR server is required)")
        pytest.skip(reason)
    server = MediamtxNvrServer(binary=binary, workdir=tmp_path_factory.mktemp("nvr"))
    server.start()
    try:
        server.publish(7.0)
        import time

        time.sleep(3.0)
        server.publish(5.0)
        spans = server.listing()
        assert len(spans) == 2, f"expected two stretches with a gap, NVR lists {spans}"
        yield server
    finally:
        server.stop()


def agents(url: str, *, credentials: str = "env:NVR_TEST_CREDENTIALS", **extra: Any) -> AgentsFile:
    return AgentsFile.from_dict({
        "agent": {"name": "pull-test-agent"},
        "nvrs": [{
            "id": "nvr-north", "kind": "mediamtx", "site": "Northgate Estate", "url": url,
            "credentials": credentials, "cameras": {"cam-03": "cam1"}, **extra,
        }],
    })


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NVR_TEST_CREDENTIALS", f"{USER}:{PASSWORD}")


def run_pull(vault: Vault, tmp_path: Path, files: AgentsFile, start: dt.datetime,
             end: dt.datetime, **kw: Any) -> PullReport:
    return pull(vault, files, nvr_id="nvr-north", camera="cam-03", start=start, end=end,
                requested_by=OFFICER, purpose=WHY, spool_dir=tmp_path / "pull-spool", **kw)


def frames(path: Path) -> tuple[int, bool, float]:
    """(frames shown, whether the first packet is a keyframe, seconds shown) of a video file.

    Decoding every frame is the "it plays" check: a file that does not decode raises here.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
    first_key = packets[0].is_keyframe
    # mediamtx gives the frames before the window (from its keyframe) zero duration: they are
    # decoded, not shown. Shown frames are those with a distinct presentation time.
    with av.open(str(path)) as container:
        pts = [f.pts for f in container.decode(video=0)]
    shown = len(set(pts))
    return shown, first_key, shown / FPS


def export(vault: Vault, recording_id: str, tmp_path: Path) -> Path:
    out = tmp_path / f"{recording_id}.mp4"
    # export_file checks the SHA-256 of every byte against the catalog: the hash verifies.
    vault.export_file(recording_id, out, actor=OFFICER, purpose=WHY)
    return out


def test_window_over_two_files_is_cut_at_the_keyframe_with_the_window_in_provenance(
    nvr: MediamtxNvrServer, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 1 and 7: a window spanning two of the NVR's recording files is
    pulled exactly (from the keyframe before its start, frames shown from its start to its
    end), the exact window is in the recording's provenance, the footage plays, its hash
    verifies, and its custody events name the NVR and who asked."""
    files = nvr.segment_files()
    assert len(files) >= 4
    boundary = files[1][0]  # the second file starts here, inside the first stretch
    start = boundary - dt.timedelta(seconds=1.3)
    end = boundary + dt.timedelta(seconds=1.5)
    report = run_pull(vault, tmp_path, agents(nvr.url), start, end)

    assert report.state == "complete", report.to_dict()
    assert report.gaps == []
    [piece] = report.pieces
    assert (piece.start, piece.end) == (start, end)
    # 1. Exactly the window: 2.8 s at 25 fps, to the frame; decoding starts on a keyframe.
    shown, first_key, _ = frames(export(vault, piece.recording_id, tmp_path))
    assert first_key
    assert abs(shown - 2.8 * FPS) <= 1, shown
    # 2. The exact window, the NVR and the requester in provenance and the catalog's times.
    recording = vault.recording(piece.recording_id)
    assert recording.captured_start == start and recording.captured_end == end
    assert recording.source_id == "cam-03"
    pull_info = recording.provenance
    assert pull_info is not None
    assert pull_info["window"] == {"start": start.isoformat(), "end": end.isoformat()}
    assert pull_info["nvr"]["id"] == "nvr-north" and pull_info["nvr"]["kind"] == "mediamtx"
    assert pull_info["requested_by"]["user"] == "asb.jones"
    assert pull_info["nvr_camera"] == "cam1"
    # 3. The hash verifies (read back, decrypted, compared with the catalog).
    assert vault.verify_recording(piece.recording_id).sha256 == piece.sha256
    # 4. Custody: the ingested event names the NVR, the window and the requester; the pull
    # event is by the requester and names the recording.
    [ingested] = vault.ledger.events(object_id=piece.recording_id, action=Action.INGESTED)
    details = ingested.event.details
    assert details["pull"]["nvr"]["id"] == "nvr-north"
    assert details["pull"]["window"]["start"] == start.isoformat()
    assert details["pull"]["requested_by"]["user"] == "asb.jones"
    [closing] = vault.ledger.events(action=PULL_ACTION)
    assert closing.event.actor == "asb.jones"
    assert closing.event.actor_org == "Northgate Homes"
    assert closing.event.reference == "ASB-4411"
    assert list(closing.event.object_ids) == [piece.recording_id]
    assert closing.event.details["nvr"]["url"] == nvr.url
    assert closing.event.details["state"] == "complete"
    # The ledger with the new events verifies (raises IntegrityError otherwise).
    assert vault.ledger.verify().events >= 2


def test_window_with_a_gap_is_pulled_around_it_and_the_gap_reported(
    nvr: MediamtxNvrServer, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 2: a window over the NVR's gap gives a recording on each side and
    a gap, with its times and reason, in the report and the pull's custody event."""
    (_, first_end), (second_start, _) = nvr.listing()
    start = first_end - dt.timedelta(seconds=2)
    end = second_start + dt.timedelta(seconds=2)
    report = run_pull(vault, tmp_path, agents(nvr.url), start, end)

    assert report.state == "partial"
    assert [(p.start, p.end) for p in report.pieces] == [
        (start, pytest.approx(first_end, abs=dt.timedelta(milliseconds=1))),
        (pytest.approx(second_start, abs=dt.timedelta(milliseconds=1)), end),
    ]
    [gap] = report.gaps
    assert gap.reason == GapReason.NO_RECORDING
    assert abs((gap.start - first_end).total_seconds()) < 0.01
    assert abs((gap.end - second_start).total_seconds()) < 0.01
    for piece in report.pieces:
        shown, _, _ = frames(export(vault, piece.recording_id, tmp_path))
        assert abs(shown - 2 * FPS) <= 2
    [closing] = vault.ledger.events(action=PULL_ACTION)
    assert closing.event.details["gaps"][0]["reason"] == "no_recording"
    assert closing.event.details["state"] == "partial"


def test_dropped_connection_is_resumed_and_gives_the_same_bytes(
    nvr: MediamtxNvrServer, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 3: the connection drops mid-transfer (a proxy cuts it after 40 kB);
    the pull retries, keeps the bytes it held once the NVR's resend matches them, and stores
    exactly what the NVR sends in one piece."""
    (first_start, first_end), _ = nvr.listing()
    start, end = first_start + dt.timedelta(seconds=0.5), first_end - dt.timedelta(seconds=0.5)
    proxy = DroppingProxy(nvr.playback_port, drops=1, cut_after=40_000)
    seen: list[PullProgress] = []
    try:
        report = run_pull(vault, tmp_path, agents(proxy.url), start, end, progress=seen.append)
    finally:
        proxy.close()

    assert proxy.cut == 1
    [piece] = report.pieces
    assert piece.attempts == 2
    assert 0 < piece.resumed_bytes <= 40_000
    assert any("connection dropped" in p.message for p in seen)
    # What the NVR sends for the same window in one unbroken answer.
    params = {"path": "cam1", "start": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
              "duration": f"{(end - start).total_seconds():.6f}"}
    whole = httpx.get(f"{nvr.url}/get", params=params, auth=(USER, PASSWORD), timeout=30).content
    assert piece.sha256 == hashlib.sha256(whole).hexdigest()
    assert vault.verify_recording(piece.recording_id).sha256 == piece.sha256


def test_wrong_credentials_are_refused_with_a_clear_error_and_recorded(
    nvr: MediamtxNvrServer, vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #17 must-show 4: wrong NVR credentials fail the pull with NvrAuthFailed naming
    the credentials reference (never the secret); nothing is stored; the failed attempt is
    in custody by the requester."""
    monkeypatch.setenv("NVR_TEST_CREDENTIALS", f"{USER}:not-the-password")
    (start, end), _ = nvr.listing()
    with pytest.raises(NvrAuthFailed) as refused:
        run_pull(vault, tmp_path, agents(nvr.url), start, end)
    message = str(refused.value)
    assert "env:NVR_TEST_CREDENTIALS" in message and "not-the-password" not in message
    assert "HTTP 401" in message
    assert vault.recordings() == []
    [closing] = vault.ledger.events(action=PULL_ACTION)
    assert closing.event.actor == "asb.jones"
    assert closing.event.details["state"] == "failed"
    assert "refused the credentials" in closing.event.details["error"]


def test_an_nvr_that_is_down_fails_fast_and_says_so(vault: Vault, tmp_path: Path) -> None:
    """Issue #17 must-show 5: an NVR that does not answer fails the pull with NvrUnreachable
    naming the NVR and its address; nothing is stored; the attempt is in custody."""
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(NvrUnreachable) as down:
        run_pull(vault, tmp_path, agents(url), now - dt.timedelta(hours=2),
                 now - dt.timedelta(hours=1))
    assert "nvr-north" in str(down.value) and url in str(down.value)
    assert vault.recordings() == []
    [closing] = vault.ledger.events(action=PULL_ACTION)
    assert closing.event.details["state"] == "failed"


def test_a_window_longer_than_the_nvr_keeps_reports_the_part_before_its_retention(
    nvr: MediamtxNvrServer, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 6: a window starting an hour before the oldest footage the NVR
    keeps pulls what it holds and reports the rest as before its retention, naming when the
    NVR's footage starts."""
    (oldest, first_end), _ = nvr.listing()
    start = oldest - dt.timedelta(hours=1)
    end = first_end - dt.timedelta(seconds=3)
    report = run_pull(vault, tmp_path, agents(nvr.url), start, end)

    assert report.state == "partial"
    [gap] = report.gaps
    assert gap.reason == GapReason.BEFORE_RETENTION
    assert gap.start == start and abs((gap.end - oldest).total_seconds()) < 0.01
    assert report.oldest_held is not None
    assert abs((report.oldest_held - oldest).total_seconds()) < 0.01
    assert "keeps" in gap.message
    [piece] = report.pieces
    assert abs((piece.start - oldest).total_seconds()) < 0.01 and piece.end == end


def test_running_a_pull_again_fetches_nothing_twice(
    nvr: MediamtxNvrServer, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 (resume): a pull run again (after an interruption, or twice by mistake) finds
    the pieces it already stored in its spool journal and does not fetch them again; the
    window in pieces of 2 s gives the same recordings."""
    (first_start, first_end), _ = nvr.listing()
    start, end = first_start + dt.timedelta(seconds=0.2), first_end - dt.timedelta(seconds=0.2)
    files = agents(nvr.url, piece_seconds=2)
    first = run_pull(vault, tmp_path, files, start, end)
    again = run_pull(vault, tmp_path, files, start, end)
    assert len(first.pieces) >= 3
    assert [p.recording_id for p in again.pieces] == [p.recording_id for p in first.pieces]
    assert all(p.already_pulled for p in again.pieces)
    assert not any(p.already_pulled for p in first.pieces)
    # Consecutive pieces meet exactly: the window is covered without overlap.
    for a, b in zip(first.pieces, first.pieces[1:], strict=False):
        assert a.end == b.start


def test_the_nvr_clock_offset_is_recorded_and_flagged(
    nvr: MediamtxNvrServer, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 item 4: the NVR's stated time (its Date header) is compared with the vault's
    clock; an offset beyond the bound is recorded and flagged on the recording, in its custody
    event and in the pull's, as for docks. Here the vault's clock runs 30 s ahead."""
    (start, end), _ = nvr.listing()

    def vault_clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)

    report = run_pull(vault, tmp_path, agents(nvr.url), start + dt.timedelta(seconds=1),
                      start + dt.timedelta(seconds=3), clock=vault_clock)
    assert report.clock is not None and report.clock.flagged
    assert report.clock.offset_s is not None and -31.5 < report.clock.offset_s < -28.5
    assert "slow" in (report.clock.reason or "")
    [piece] = report.pieces
    recording = vault.recording(piece.recording_id)
    assert recording.clock_flagged
    assert recording.clock_offset_ms is not None and -31_500 < recording.clock_offset_ms < -28_500
    [closing] = vault.ledger.events(action=PULL_ACTION)
    assert closing.event.details["clock"]["flagged"] is True


# -- the same from the command line and the API ----------------------------------------------


def write_agents(path: Path, url: str) -> Path:
    path.write_text(
        '[agent]\nname = "pull-test-agent"\n\n'
        "[[nvrs]]\n"
        'id = "nvr-north"\nkind = "mediamtx"\nsite = "Northgate Estate"\n'
        f'url = "{url}"\ncredentials = "env:NVR_TEST_CREDENTIALS"\n'
        'cameras = { "cam-03" = "cam1" }\n'
    )
    return path


def test_cli_pulls_a_window_typed_in_uk_time_and_reports_it(
    nvr: MediamtxNvrServer, tmp_path: Path
) -> None:
    """Issue #17: ``evidence-vault ingest pull --source --camera --from --to`` with times typed
    as UK local time (no offset; GMT in December) pulls the window and prints the report;
    --json gives the same report as the API."""
    from typer.testing import CliRunner

    from api.cli import app
    from vault.config import Settings
    from vault.localtime import UK

    Vault.init(Settings(home=tmp_path / "home")).close()
    config = write_agents(tmp_path / "agents.toml", nvr.url)
    (start, _), _ = nvr.listing()
    start = start.replace(microsecond=0) + dt.timedelta(seconds=1)
    end = start + dt.timedelta(seconds=2)
    local = [t.astimezone(UK).strftime("%Y-%m-%dT%H:%M:%S") for t in (start, end)]
    result = CliRunner().invoke(
        app,
        ["ingest", "pull", "--config", str(config), "--source", "nvr-north", "--camera", "cam-03",
         "--from", local[0], "--to", local[1], "--reference", "ASB-4411", "--json"],
        env={"EVIDENCE_VAULT_HOME": str(tmp_path / "home"),
             "NVR_TEST_CREDENTIALS": f"{USER}:{PASSWORD}"},
    )
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    assert report["state"] == "complete"
    assert report["window"] == {"start": start.isoformat(), "end": end.isoformat()}
    assert report["requested_by"]["user"].startswith("local:")
    assert "read as Europe/London" in result.stderr  # the CLI says how it read the times


def test_cli_without_an_agents_file_says_how_to_name_the_nvrs(tmp_path: Path) -> None:
    """Issue #17: no --config and no agents_file setting: exit 9 with what to do."""
    from typer.testing import CliRunner

    from api.cli import app

    result = CliRunner().invoke(
        app, ["ingest", "pull", "--source", "nvr-north", "--camera", "cam-03",
              "--from", "2026-11-24T21:00", "--to", "2026-11-24T23:00"],
        env={"EVIDENCE_VAULT_HOME": str(tmp_path / "home")},
    )
    assert result.exit_code == 9
    assert "EVIDENCE_VAULT_AGENTS_FILE" in result.stderr


def test_api_pull_respects_the_site_boundary_and_names_the_requester(
    nvr: MediamtxNvrServer, tmp_path: Path
) -> None:
    """Issue #17: ``POST /ingest/pulls`` pulls for an ASB officer assigned to the NVR's site
    (custody names them), refuses one assigned elsewhere (403, logged) and an auditor, needs
    X-Purpose, and answers 502 naming the NVR when it is down."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from vault.access import identity
    from vault.actors import Role
    from vault.config import Settings

    settings = Settings(home=tmp_path / "home",
                        agents_file=write_agents(tmp_path / "agents.toml", nvr.url))
    admin = Actor.local_operator()
    with Vault.init(settings) as vault, TestClient(create_app(settings, vault=vault)) as client:
        tokens = {}
        for name, role, sites in (("jones", Role.ASB_OFFICER, ["Northgate Estate"]),
                                  ("patel", Role.ASB_OFFICER, ["Oak Park"]),
                                  ("audit", Role.AUDITOR, [])):
            identity.create_user(vault, name=name, role=role, organisation="Northgate Homes",
                                 sites=sites, actor=admin)
            tokens[name] = identity.issue_token(vault, name, actor=admin).token
        (start, _), _ = nvr.listing()
        body = {"nvr": "nvr-north", "camera": "cam-03",
                "start": (start + dt.timedelta(seconds=1)).isoformat(),
                "end": (start + dt.timedelta(seconds=3)).isoformat()}

        def post(who: str, purpose: bool = True, **extra: Any) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            if purpose:
                headers["X-Purpose"] = "ASB report 4411"
            return client.post("/ingest/pulls", json={**body, **extra}, headers=headers)

        assert post("jones", purpose=False).status_code == 400
        refused = post("patel")
        assert refused.status_code == 403, refused.text
        assert post("audit").status_code == 403
        assert len(vault.ledger.events(action="access_denied")) >= 2
        ok = post("jones")
        assert ok.status_code == 201, ok.text
        report = ok.json()
        assert report["state"] == "complete"
        [recording] = report["recordings"]
        [closing] = vault.ledger.events(action=PULL_ACTION)
        assert closing.event.actor == "jones" and closing.event.purpose == "ASB report 4411"
        assert list(closing.event.object_ids) == [recording["recording_id"]]
        assert post("jones", nvr="nvr-south").status_code == 404

    down = tmp_path / "down"
    settings = Settings(home=down / "home",
                        agents_file=write_agents(down.parent / "down.toml",
                                                 f"http://127.0.0.1:{free_port()}"))
    with Vault.init(settings) as vault, TestClient(create_app(settings, vault=vault)) as client:
        identity.create_user(vault, name="jones", role=Role.ASB_OFFICER,
                             organisation="Northgate Homes", sites=["Northgate Estate"],
                             actor=admin)
        token = identity.issue_token(vault, "jones", actor=admin).token
        answer = client.post("/ingest/pulls", json=body, headers={
            "Authorization": f"Bearer {token}", "X-Purpose": "ASB report 4411"})
        assert answer.status_code == 502, answer.text
        assert answer.json()["error"] == "nvr_error"
        assert "nvr-north" in answer.json()["detail"]
