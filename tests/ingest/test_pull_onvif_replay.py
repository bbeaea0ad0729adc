"""Pulling a window from an ONVIF Profile G NVR: SOAP search, then RTSP replay (issue #17 item 2).

The NVR is two servers started here: the SOAP endpoint of test_pull_onvif.py (answers validated
against the ONVIF WSDLs, WS-Security digest checked) and an RTSP replay server, one of two
(``kind``, every must-show test runs on both):

- ``gstreamer``: GStreamer's ONVIF RTSP server (``RTSPOnvifServer``, ``RTSPOnvifMediaFactory``
  with replay support, ``rtponviftimestamp``, RTSP Digest by ``RTSPAuth``) replaying the
  recording (tests/ingest/gst_onvif_replay_server.py), behind a recording TCP proxy;
- ``loopback``: a server written here to the ONVIF Streaming Specification
  (tests/ingest/onvif_replay_server.py), which can also misbehave on purpose (start mid-GOP,
  drop after an exact frame).

Limitation, stated: neither is a commercial NVR's firmware.

The recording is three real H.264 files made by ffmpeg (25 fps, a keyframe every second):
T0..T0+4 s, T0+4..T0+8 s, then a 3 s gap, T0+11..T0+14 s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from ingest.config import AgentOptions, AgentsFile, OnvifNvrConfig
from ingest.errors import NvrAuthFailed, NvrError, NvrUnreachable
from ingest.nvr.replay import (
    FrameJournal,
    RtspReplayClient,
    clock_range,
    mux,
    replay_window,
)
from ingest.pull import PULL_ACTION, GapReason, PullProgress, PullReport, pull
from tests.conftest import on_ci
from tests.ingest.onvif_replay_server import (
    GstOnvifReplayServer,
    OnvifReplayServer,
    find_gst_python,
    make_recording,
)
from tests.ingest.onvif_server import OnvifNvrServer
from vault.actors import Actor, Purpose, Role
from vault.ledger.custody import Action
from vault.vault import Vault

pytestmark = [pytest.mark.rtsp, pytest.mark.slow]

FPS = 25
USER, PASSWORD = "onvif-user", "digest-secret"
T0 = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).replace(microsecond=0)
OFFICER = Actor(user="ig.khan", role=Role.IG_OFFICER, organisation="Northgate Homes")
WHY = Purpose(purpose="ASB report 4411: damage at the bin store", reference="ASB-4411")


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dt.datetime, Path]]:
    return make_recording(tmp_path_factory.mktemp("onvif-recording"),
                          [(at(0), 4.0), (at(4), 4.0), (at(11), 3.0)])


class Nvr:
    """The SOAP endpoint and the RTSP replay server (of ``kind``) of one NVR."""

    def __init__(self, kind: str, recording: list[tuple[dt.datetime, Path]], workdir: Path, *,
                 rtsp_password: str = PASSWORD, drop: bool = False,
                 start_exact: bool = False, event_search: bool = True) -> None:
        self.rtsp: GstOnvifReplayServer | OnvifReplayServer
        if kind == "gstreamer":
            python = find_gst_python()
            assert python is not None
            workdir.mkdir(parents=True, exist_ok=True)
            # About a second of this recording: the cut falls inside the window.
            self.rtsp = GstOnvifReplayServer(python, "Rec_0001", recording, USER, rtsp_password,
                                             workdir, drop_after_bytes=60_000 if drop else None)
        else:
            assert not start_exact or kind == "loopback"
            self.rtsp = OnvifReplayServer("Rec_0001", recording, USER, rtsp_password,
                                          drop_after=30 if drop else None,
                                          start_exact=start_exact)
        self.rtsp.start()
        self.soap = OnvifNvrServer(USER, PASSWORD, {"Rec_0001": (at(0), at(14))},
                                   replay_base=self.rtsp.url,
                                   gaps={"Rec_0001": [(at(8), at(11))]},
                                   event_search=event_search)
        self.soap.start()

    def stop(self) -> None:
        self.soap.stop()
        self.rtsp.stop()


@pytest.fixture(params=["gstreamer", "loopback"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "gstreamer" and find_gst_python() is None:
        reason = ("GStreamer's RTSP server is not importable (Debian python3-gi, "
                  "gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-bad; .ci/run installs them)")
        if on_ci():
            pytest.fail(f"{reason} (CI=true: the ONVIF replay server is required)")
        pytest.skip(reason)
    return str(request.param)


@pytest.fixture
def nvr(kind: str, recording: list[tuple[dt.datetime, Path]], tmp_path: Path) -> Iterator[Nvr]:
    server = Nvr(kind, recording, tmp_path / "nvr")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONVIF_TEST_CREDENTIALS", f"{USER}:{PASSWORD}")


def agents(nvr: Nvr, **extra: Any) -> AgentsFile:
    return AgentsFile(agent=AgentOptions(name="pull-test-agent"), nvrs=[OnvifNvrConfig(
        id="nvr-onvif", kind="onvif", site="Northgate Estate", url=nvr.soap.url,
        credentials="env:ONVIF_TEST_CREDENTIALS", cameras={"cam-07": "Rec_0001"}, timeout_s=5,
        **extra)])


def run_pull(vault: Vault, tmp_path: Path, files: AgentsFile, start: dt.datetime,
             end: dt.datetime, **kw: Any) -> PullReport:
    return pull(vault, files, nvr_id="nvr-onvif", camera="cam-07", start=start, end=end,
                requested_by=OFFICER, purpose=WHY, spool_dir=tmp_path / "pull-spool", **kw)


def shown_frames(path: Path) -> list[float]:
    """The presentation times (s) of the frames a player shows: decoding every frame is the
    "it plays" check (a file that does not decode raises)."""
    with av.open(str(path)) as container:
        return [float(f.time) for f in container.decode(video=0)]


def export(vault: Vault, recording_id: str, tmp_path: Path) -> Path:
    out = tmp_path / f"{recording_id}.mp4"
    # export_file checks the SHA-256 of every byte against the catalog: the hash verifies.
    vault.export_file(recording_id, out, actor=OFFICER, purpose=WHY)
    return out


def test_a_window_over_two_recording_files_is_replayed_to_the_frame(
    nvr: Nvr, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 1 (ONVIF): a window spanning the NVR's two recording files is
    replayed with ``Require: onvif-replay`` and ``Range: clock`` and saved without re-encoding:
    from the keyframe before its start (kept, not shown), frames shown from its start to its
    end exactly; the window and the replay's account in provenance; it plays, its hash
    verifies, its custody names the NVR and the requester."""
    start, end = at(2.5), at(6.5)
    report = run_pull(vault, tmp_path, agents(nvr), start, end)

    assert report.state == "complete", report.to_dict()
    [piece] = report.pieces
    # 1. What was asked, as the ONVIF Streaming Specification asks it.
    assert nvr.rtsp.plays == [clock_range(start, end)]
    asked = {method: headers for method, headers in nvr.rtsp.requests if "authorization"
             in headers}
    for method in ("DESCRIBE", "SETUP", "PLAY"):
        assert asked[method]["require"] == "onvif-replay"
        assert asked[method]["authorization"].startswith("Digest ")
    assert asked["PLAY"]["rate-control"] == "no"
    assert "RTP/AVP/TCP" in asked["SETUP"]["transport"]
    # 2. Exactly the window: 4 s at 25 fps, the first shown at 0; nothing re-encoded (the
    # H.264 frames are the recording files' own bytes).
    out = export(vault, piece.recording_id, tmp_path)
    times = shown_frames(out)
    assert len(times) == 4 * FPS and times[0] == 0.0 and times[-1] == pytest.approx(3.96)
    assert _h264_frames(out) == _source_frames(nvr, at(2), end)
    replay = piece.replay
    assert replay is not None
    assert replay["preroll_frames"] == 13  # 2.00 .. 2.48 s: from the keyframe at 2 s
    assert replay["waited_for_keyframe"] == 0
    # The window starts between two frames (2.48, 2.52 s): the first shown is the one after.
    assert replay["first_frame"] == at(2.52).isoformat()
    assert replay["frames"] == 4 * FPS + 13
    # 3. Provenance and custody: the window, the NVR, who asked; the hash verifies.
    recording = vault.recording(piece.recording_id)
    assert recording.captured_start == start and recording.captured_end == end
    provenance = recording.provenance
    assert provenance is not None
    assert provenance["window"] == {"start": start.isoformat(), "end": end.isoformat()}
    assert provenance["nvr"]["kind"] == "onvif" and provenance["nvr_camera"] == "Rec_0001"
    assert vault.verify_recording(piece.recording_id).sha256 == piece.sha256
    [ingested] = vault.ledger.events(object_id=piece.recording_id, action=Action.INGESTED)
    assert ingested.event.details["pull"]["requested_by"]["user"] == "ig.khan"
    assert ingested.event.details["pull"]["piece"]["replay"]["preroll_frames"] == 13
    [closing] = vault.ledger.events(action=PULL_ACTION)
    assert closing.event.actor == "ig.khan" and closing.event.details["state"] == "complete"
    assert closing.event.details["nvr"]["id"] == "nvr-onvif"
    assert vault.ledger.verify().events >= 2


def test_a_gap_in_the_recording_is_found_by_event_search_and_pulled_around(
    nvr: Nvr, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 2 (ONVIF): the NVR's track state events (``FindEvents``,
    ``IsDataPresent`` false at 8 s, true at 11 s) tell the 3 s it did not record; the window is
    pulled as a recording on each side and the gap is reported with its times and reason, in
    the report and the pull's custody event."""
    start, end = at(6), at(13)
    report = run_pull(vault, tmp_path, agents(nvr), start, end)

    assert report.state == "partial"
    [gap] = report.gaps
    assert gap.reason == GapReason.NO_RECORDING and (gap.start, gap.end) == (at(8), at(11))
    assert [(p.start, p.end) for p in report.pieces] == [(at(6), at(8)), (at(11), at(13))]
    for piece in report.pieces:
        assert len(shown_frames(export(vault, piece.recording_id, tmp_path))) == 2 * FPS
    assert nvr.rtsp.plays == [clock_range(at(6), at(8)), clock_range(at(11), at(13))]
    [closing] = vault.ledger.events(action=PULL_ACTION)
    assert closing.event.details["gaps"][0]["start"] == at(8).isoformat()


def test_without_event_search_the_replay_finds_the_gap(
    kind: str, recording: list[tuple[dt.datetime, Path]], vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 2 (ONVIF), for an NVR without event search (``FindEvents`` answered
    ``ter:ActionNotSupported``): the search lists one span; the replay's D flag shows the 3 s
    the NVR did not record, reported as a ``no_recording`` gap with its times; the frames
    either side are kept at their recorded times in one recording."""
    plain = Nvr(kind, recording, tmp_path / "plain", event_search=False)
    try:
        report = run_pull(vault, tmp_path, agents(plain), at(6), at(13))
    finally:
        plain.stop()
    assert "FindEvents" in plain.soap.asked
    assert report.state == "partial"
    [gap] = report.gaps
    assert gap.reason == GapReason.NO_RECORDING and (gap.start, gap.end) == (at(8), at(11))
    [piece] = report.pieces
    times = shown_frames(export(vault, piece.recording_id, tmp_path))
    assert len(times) == 4 * FPS  # 6..8 s and 11..13 s
    jump = [b - a for a, b in itertools.pairwise(times) if b - a > 0.5]
    assert jump == [pytest.approx(3.04)]  # the last frame before the gap to the first after


def test_a_dropped_replay_resumes_from_the_last_keyframe_and_loses_nothing(
    kind: str, recording: list[tuple[dt.datetime, Path]], vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 3 (ONVIF): the connection drops mid-replay; the pull asks again from
    the last keyframe it holds (``Range: clock`` from it), skips nothing and keeps no frame
    twice: the stored file is byte for byte the one an unbroken replay gives."""
    start, end = at(1.5), at(6.5)
    dropping = Nvr(kind, recording, tmp_path / "dropping", drop=True)
    seen: list[PullProgress] = []
    try:
        report = run_pull(vault, tmp_path, agents(dropping), start, end, progress=seen.append)
    finally:
        dropping.stop()
    [piece] = report.pieces
    assert piece.attempts == 2 and piece.replay is not None
    [resumed] = piece.replay["resumed_from"]
    resumed_at = dt.datetime.fromisoformat(resumed)
    assert resumed_at.microsecond == 0 and at(1) <= resumed_at < end  # a keyframe's time
    assert dropping.rtsp.plays == [clock_range(start, end), clock_range(resumed_at, end)]
    if kind == "loopback":
        assert resumed_at == at(2)  # 30 frames from the keyframe at 1 s: 1.00 .. 2.16 s
    assert any("retrying" in p.message for p in seen)
    assert any("resuming the replay from" in p.message for p in seen)

    unbroken = Nvr(kind, recording, tmp_path / "unbroken")
    try:
        expected = _replay_directly(unbroken, start, end, tmp_path / "direct")
    finally:
        unbroken.stop()
    out = export(vault, piece.recording_id, tmp_path)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert len(shown_frames(out)) == 5 * FPS


def test_a_pull_that_gave_up_resumes_from_its_frame_journal_when_run_again(
    recording: list[tuple[dt.datetime, Path]], vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 item 1 (resume) for ONVIF: the replay drops and the pull gives up
    (``max_attempts`` 1), keeping the frames it journalled in its spool; run again, it asks the
    NVR only from the last keyframe it holds and stores the same file an unbroken replay
    gives."""
    start, end = at(1.5), at(6.5)
    dropping = Nvr("loopback", recording, tmp_path / "dropping", drop=True)
    try:
        with pytest.raises(NvrError, match="frames kept for a rerun"):
            run_pull(vault, tmp_path, agents(dropping, max_attempts=1), start, end)
    finally:
        dropping.stop()
    assert vault.recordings() == []
    assert list((tmp_path / "pull-spool").rglob("*.frames"))  # the journal stays for the rerun

    again = Nvr("loopback", recording, tmp_path / "again")
    try:
        report = run_pull(vault, tmp_path, agents(again), start, end)
        expected = _replay_directly(again, start, end, tmp_path / "direct")
    finally:
        again.stop()
    [piece] = report.pieces
    assert piece.replay is not None and piece.replay["resumed_from"] == [at(2).isoformat()]
    assert again.rtsp.plays[0] == clock_range(at(2), end)
    out = export(vault, piece.recording_id, tmp_path)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert not list((tmp_path / "pull-spool").rglob("*.frames"))  # removed once saved


def test_a_replay_that_does_not_start_at_a_keyframe_waits_for_one_and_says_so(
    recording: list[tuple[dt.datetime, Path]], vault: Vault, tmp_path: Path
) -> None:
    """Last session's lost first keyframe, closed at the client: a server that starts at the
    exact instant (mid-GOP) sends frames that cannot be decoded; the client drops them until
    the first keyframe, counts them, and the report, provenance and progress say so. The file
    decodes from its first frame."""
    start, end = at(2.5), at(6.5)
    exact = Nvr("loopback", recording, tmp_path / "exact", start_exact=True)
    seen: list[PullProgress] = []
    try:
        report = run_pull(vault, tmp_path, agents(exact), start, end, progress=seen.append)
    finally:
        exact.stop()
    [piece] = report.pieces
    assert piece.replay is not None
    assert piece.replay["waited_for_keyframe"] == 12  # 2.52 .. 2.96 s
    assert piece.replay["first_keyframe"] == at(3).isoformat()
    assert any("did not start at a keyframe: 12 frames dropped" in p.message for p in seen)
    times = shown_frames(export(vault, piece.recording_id, tmp_path))
    assert len(times) == 88 and times[0] == pytest.approx(0.5)  # 3.00 .. 6.48 s


def test_wrong_replay_credentials_are_refused_and_nothing_is_stored(
    kind: str, recording: list[tuple[dt.datetime, Path]], vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 4 (ONVIF replay): the account may search but the replay server
    refuses its Digest (RTSP 401 twice): NvrAuthFailed at once (no retries), naming the
    credentials' reference and never the password; nothing stored; the failure in custody."""
    refusing = Nvr(kind, recording, tmp_path / "refusing", rtsp_password="another-password")
    try:
        with pytest.raises(NvrAuthFailed) as refused:
            run_pull(vault, tmp_path, agents(refusing), at(1), at(3))
        assert [m for m, _ in refusing.rtsp.requests].count("DESCRIBE") == 2
        assert refusing.rtsp.plays == []
    finally:
        refusing.stop()
    assert "env:ONVIF_TEST_CREDENTIALS" in str(refused.value)
    assert PASSWORD not in str(refused.value)
    assert vault.recordings() == []
    [closing] = vault.ledger.events(action=PULL_ACTION)
    assert closing.event.details["state"] == "failed"


def test_a_replay_server_that_is_down_is_unreachable_after_the_retries(
    nvr: Nvr, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 5 (ONVIF replay): the search answers but nothing listens at the
    replay URI: NvrUnreachable after ``max_attempts``, saying where it looked; nothing stored,
    the failure and the gap report in custody."""
    nvr.rtsp.stop()
    with pytest.raises(NvrUnreachable, match=r"replay server 127\.0\.0\.1:\d+ did not answer"):
        run_pull(vault, tmp_path, agents(nvr, max_attempts=2), at(1), at(3))
    assert vault.recordings() == []
    [closing] = vault.ledger.events(action=PULL_ACTION)
    assert closing.event.details["state"] == "failed"
    assert "attempt 2 of 2" in closing.event.details["error"]


def test_a_window_longer_than_the_nvr_keeps_pulls_what_it_holds(
    nvr: Nvr, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 must-show 6 (ONVIF): a window starting an hour before the oldest footage gives
    a ``before_retention`` gap up to it (GetRecordingSummary, the recording's earliest) and the
    footage from there, replayed from its first frame."""
    report = run_pull(vault, tmp_path, agents(nvr), at(-3600), at(3))
    assert report.state == "partial"
    [gap] = report.gaps
    assert gap.reason == GapReason.BEFORE_RETENTION and (gap.start, gap.end) == (at(-3600), at(0))
    assert report.oldest_held == at(0)
    [piece] = report.pieces
    assert (piece.start, piece.end) == (at(0), at(3))
    assert len(shown_frames(export(vault, piece.recording_id, tmp_path))) == 3 * FPS


def test_a_torn_journal_record_is_cut_and_the_rest_resumed(tmp_path: Path) -> None:
    """A killed process leaves half a frame at the journal's end: reopening cuts it off, and
    the resume point is the last whole keyframe."""
    path = tmp_path / "piece.frames"
    journal = FrameJournal(path)
    journal.set_config(b"\x00\x00\x00\x01\x67")
    journal.add(1_000, b"\x00\x00\x00\x01\x65key", keyframe=True)
    journal.add(2_000, b"\x00\x00\x00\x01\x41p", keyframe=False)
    journal.close()
    with path.open("ab") as torn:
        torn.write(b"\x02\x00\x00")
    reopened = FrameJournal(path)
    assert reopened.frames == 2 and reopened.last_ns == 2_000
    assert reopened.cut_to_last_keyframe() == 1_000
    assert reopened.frames == 0 and reopened.config == b"\x00\x00\x00\x01\x67"
    reopened.close()


def _replay_directly(nvr: Nvr, start: dt.datetime, end: dt.datetime, work: Path) -> bytes:
    work.mkdir()

    def client() -> RtspReplayClient:
        return RtspReplayClient(f"{nvr.rtsp.url}/Rec_0001", user=USER, password=PASSWORD,
                                timeout_s=5, nvr_id="direct", credentials_ref=None)

    journal, _ = replay_window(client, start, end, work / "j.frames", max_attempts=1,
                               tell=lambda *_: None)
    try:
        mux(journal, work / "out.mp4", start, end)
    finally:
        journal.close()
    return (work / "out.mp4").read_bytes()


def _h264_frames(path: Path) -> list[bytes]:
    """Each stored frame's picture NAL units, length-prefixed; parameter sets and access unit
    delimiters left out (a server may repeat them in-band, as GStreamer's h264parse does)."""
    frames = []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            data, offset, kept = bytes(packet), 0, b""
            while offset + 4 <= len(data):
                size = int.from_bytes(data[offset:offset + 4], "big")
                nal = data[offset + 4:offset + 4 + size]
                if nal and nal[0] & 0x1F not in (7, 8, 9):
                    kept += data[offset:offset + 4 + size]
                offset += 4 + size
            if kept:
                frames.append(kept)
    return frames


def _source_frames(nvr: Nvr, start: dt.datetime, end: dt.datetime) -> list[bytes]:
    """The recording files' own frames in ``[start, end)``, length-prefixed as in MP4."""
    low, high = (round(t.timestamp() * 1e6) * 1000 for t in (start, end))
    return [b"".join(len(n).to_bytes(4, "big") + n for n in f.nals if n[0] & 0x1F not in (7, 8, 9))
            for f in nvr.rtsp.frames if low <= f.ns < high]


def _agents_toml(path: Path, soap_url: str) -> Path:
    path.write_text(
        '[agent]\nname = "pull-test-agent"\n\n[[nvrs]]\nid = "nvr-onvif"\nkind = "onvif"\n'
        f'site = "Northgate Estate"\nurl = "{soap_url}"\n'
        'credentials = "env:ONVIF_TEST_CREDENTIALS"\ntimeout_s = 5\n'
        'cameras = { "cam-07" = "Rec_0001" }\n')
    return path


def test_the_cli_says_when_the_replay_had_to_wait_for_a_keyframe(
    recording: list[tuple[dt.datetime, Path]], tmp_path: Path
) -> None:
    """``evidence-vault ingest pull`` from an ONVIF NVR: the report it prints says that the
    replay did not start at a keyframe, how many frames that cost and where the footage
    starts (the client waits for the first keyframe and says so)."""
    from typer.testing import CliRunner

    from api.cli import app
    from vault.config import Settings

    Vault.init(Settings(home=tmp_path / "home")).close()
    exact = Nvr("loopback", recording, tmp_path / "exact", start_exact=True)
    try:
        result = CliRunner().invoke(
            app,
            ["ingest", "pull", "--config", str(_agents_toml(tmp_path / "a.toml", exact.soap.url)),
             "--source", "nvr-onvif", "--camera", "cam-07", "--from", at(2.5).isoformat(),
             "--to", at(6.5).isoformat()],
            env={"EVIDENCE_VAULT_HOME": str(tmp_path / "home"),
                 "ONVIF_TEST_CREDENTIALS": f"{USER}:{PASSWORD}"},
        )
    finally:
        exact.stop()
    assert result.exit_code == 0, result.output
    assert (f"the replay did not start at a keyframe: 12 frames dropped, footage from "
            f"{at(3).isoformat()}") in result.stderr
    assert ": complete" in result.stdout


def test_the_api_pulls_from_an_onvif_nvr_and_returns_the_replay_account(
    nvr: Nvr, tmp_path: Path
) -> None:
    """``POST /ingest/pulls`` naming an ONVIF NVR: 201 with the recording and the replay's
    account (pre-roll frames, first frame shown); custody names the officer who asked."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from vault.access import identity
    from vault.config import Settings

    settings = Settings(home=tmp_path / "home",
                        agents_file=_agents_toml(tmp_path / "a.toml", nvr.soap.url))
    admin = Actor.local_operator()
    with Vault.init(settings) as vault, TestClient(create_app(settings, vault=vault)) as client:
        identity.create_user(vault, name="jones", role=Role.ASB_OFFICER,
                             organisation="Northgate Homes", sites=["Northgate Estate"],
                             actor=admin)
        token = identity.issue_token(vault, "jones", actor=admin).token
        answer = client.post(
            "/ingest/pulls",
            json={"nvr": "nvr-onvif", "camera": "cam-07", "start": at(2.5).isoformat(),
                  "end": at(6.5).isoformat()},
            headers={"Authorization": f"Bearer {token}", "X-Purpose": "ASB report 4411"})
        assert answer.status_code == 201, answer.text
        [recording] = answer.json()["recordings"]
        assert recording["replay"]["preroll_frames"] == 13
        assert recording["replay"]["first_frame"] == at(2.52).isoformat()
        [closing] = vault.ledger.events(action=PULL_ACTION)
        assert closing.event.actor == "jones"
