"""ONVIF Profile G search for a pull (issue #17 item 2), over real SOAP with WS-Security digest.

Limitation, stated: the NVR here is a loopback SOAP endpoint (tests/ingest/onvif_server.py),
not a commercial NVR's firmware. Every answer it sends is validated against the ONVIF WSDLs that
``onvif-zeep-async`` ships, and it checks the UsernameToken digest of every request, so the
client is tested against what the standard defines; a device that departs from the standard is
not covered. Replay over RTSP is tested in test_pull_onvif_replay.py; here nothing listens at
the replay URI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from ingest.config import AgentsFile, OnvifNvrConfig
from ingest.errors import NvrAuthFailed, NvrError, NvrUnreachable
from ingest.nvr.onvif import OnvifNvr
from ingest.pull import PULL_ACTION, GapReason, pull
from tests.ingest.conftest import free_port
from tests.ingest.onvif_server import NS, OnvifNvrServer, validate
from vault.actors import Actor, Role
from vault.vault import Vault

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
FIRST, LAST = NOW - dt.timedelta(hours=1), NOW - dt.timedelta(minutes=5)
OFFICER = Actor(user="ig.khan", role=Role.IG_OFFICER, organisation="Northgate Homes")


@pytest.fixture
def server() -> Iterator[OnvifNvrServer]:
    nvr = OnvifNvrServer("onvif-user", "digest-secret", {"Rec_0001": (FIRST, LAST)},
                         clock_offset=dt.timedelta(seconds=45),
                         replay_base=f"rtsp://127.0.0.1:{free_port()}")  # nothing listens
    nvr.start()
    try:
        yield nvr
    finally:
        nvr.stop()


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONVIF_TEST_CREDENTIALS", "onvif-user:digest-secret")


def config(url: str) -> OnvifNvrConfig:
    return OnvifNvrConfig(id="nvr-onvif", kind="onvif", site="Northgate Estate", url=url,
                          credentials="env:ONVIF_TEST_CREDENTIALS",
                          cameras={"cam-07": "Rec_0001"}, timeout_s=5, max_attempts=1)


def test_recording_search_finds_the_span_the_oldest_footage_and_the_clock(
    server: OnvifNvrServer,
) -> None:
    """Issue #17 item 2: FindRecordings / GetRecordingSearchResults / EndSearch give the
    recording's held span clipped to the window, GetRecordingSummary and the recording's
    EarliestRecording where its retention begins, GetSystemDateAndTime the NVR's clock; every
    request carried a digest the NVR accepted."""
    nvr = OnvifNvr(config(server.url))
    listing = nvr.listing("Rec_0001", NOW - dt.timedelta(hours=2), NOW - dt.timedelta(minutes=10))
    [span] = listing.spans
    assert (span.start, span.end) == (FIRST, NOW - dt.timedelta(minutes=10))
    assert listing.server_time is not None
    assert 40 <= (listing.server_time - dt.datetime.now(dt.UTC)).total_seconds() <= 46
    assert nvr.oldest("Rec_0001") == FIRST
    assert nvr.replay_uri("Rec_0001").endswith("/Rec_0001")
    assert {"FindRecordings", "GetRecordingSearchResults", "EndSearch", "GetRecordingSummary",
            "GetSystemDateAndTime", "GetReplayUri"} <= set(server.asked)
    assert server.refused == []
    # A recording the NVR does not hold: no span (the whole window is then a gap).
    assert nvr.listing("Rec_9999", NOW - dt.timedelta(hours=2), NOW).spans == ()


def test_the_server_validates_what_it_sends_against_the_wsdl() -> None:
    """The limitation's guard: an answer the ONVIF schema does not allow is caught (here a
    recording summary without NumberRecordings), so the endpoint cannot drift from the WSDL."""
    wrong = etree.fromstring(
        f'<tse:GetRecordingSummaryResponse xmlns:tse="{NS["tse"]}" xmlns:tt="{NS["tt"]}">'
        "<tse:Summary><tt:DataFrom>2026-01-01T00:00:00Z</tt:DataFrom>"
        "<tt:DataUntil>2026-01-02T00:00:00Z</tt:DataUntil></tse:Summary>"
        "</tse:GetRecordingSummaryResponse>")
    with pytest.raises(AssertionError, match="invalid GetRecordingSummaryResponse"):
        validate("tse", wrong)


def test_a_pull_from_onvif_reports_gaps_and_clock_when_replay_is_unreachable(
    server: OnvifNvrServer, vault: Vault, tmp_path: Path
) -> None:
    """Issue #17 items 2 and 4: a pull from an ONVIF NVR searches, reports the part of the
    window before the NVR's retention and flags its clock (45 s fast); when nothing answers at
    the replay URI it fails with NvrUnreachable naming it, and the ingest.pull custody event
    by the requester records all of it and that it failed. Nothing half-made is stored."""
    agents = AgentsFile(nvrs=[config(server.url)])
    with pytest.raises(NvrUnreachable, match="replay server 127.0.0.1"):
        pull(vault, agents, nvr_id="nvr-onvif", camera="cam-07",
             start=FIRST - dt.timedelta(hours=1), end=FIRST + dt.timedelta(minutes=10),
             requested_by=OFFICER, spool_dir=tmp_path / "spool")
    assert vault.recordings() == []
    [closing] = vault.ledger.events(action=PULL_ACTION)
    details = closing.event.details
    assert closing.event.actor == "ig.khan"
    assert details["state"] == "failed"
    assert [g["reason"] for g in details["gaps"]] == [GapReason.BEFORE_RETENTION.value]
    assert details["clock"]["flagged"] is True
    assert 40_000 <= details["clock"]["offset_ms"] <= 46_000
    assert details["nvr"]["kind"] == "onvif"


def test_wrong_onvif_credentials_fail_with_not_authorized(
    server: OnvifNvrServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #17 must-show 4 (ONVIF): a digest made with the wrong password is refused by the
    NVR (ter:NotAuthorized) and reported as NvrAuthFailed naming the reference, not the
    secret."""
    monkeypatch.setenv("ONVIF_TEST_CREDENTIALS", "onvif-user:guessed")
    with pytest.raises(NvrAuthFailed) as refused:
        OnvifNvr(config(server.url)).listing("Rec_0001", FIRST, LAST)
    assert "env:ONVIF_TEST_CREDENTIALS" in str(refused.value)
    assert "guessed" not in str(refused.value)
    assert server.refused


def test_an_onvif_nvr_that_is_down_is_unreachable() -> None:
    """Issue #17 must-show 5 (ONVIF): nothing listening: NvrUnreachable naming the NVR."""
    url = f"http://127.0.0.1:{free_port()}/onvif/device_service"
    with pytest.raises(NvrUnreachable, match="nvr-onvif"):
        OnvifNvr(config(url)).listing("Rec_0001", FIRST, LAST)


def test_the_device_service_url_is_checked() -> None:
    """An ONVIF url that is not the device service is refused with the form it must take."""
    with pytest.raises(NvrError, match="/onvif/device_service"):
        OnvifNvr(config("http://127.0.0.1:80/api"))
