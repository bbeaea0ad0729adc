"""A pull request checked before anything is fetched, and the window arithmetic (no server).

Issue #17: bad input gets a clear error saying what would be right, and nothing is asked of the
NVR; gaps and pieces cover the window exactly.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.config import AgentsFile, MediamtxNvrConfig
from ingest.errors import AgentsFileError
from ingest.nvr import Span
from ingest.pull import GapReason, check_request, find_gaps, split_pieces
from vault.errors import InvalidInput

T = dt.datetime(2026, 11, 24, 21, 0, tzinfo=dt.UTC)
NOW = T + dt.timedelta(hours=12)
NVR = MediamtxNvrConfig(id="nvr-north", kind="mediamtx", site="Northgate", url="http://nvr:9996",
                        cameras={"cam-03": "bin-store-1", "cam-04": "bin-store-2"},
                        max_window_hours=4)


def s(a: float, b: float) -> Span:
    return Span(T + dt.timedelta(seconds=a), T + dt.timedelta(seconds=b))


@pytest.mark.parametrize(
    ("camera", "start", "end", "says"),
    [
        ("cam-99", T, T + dt.timedelta(hours=1), "its cameras: cam-03, cam-04"),
        ("cam-03", T, T - dt.timedelta(minutes=1), "ends"),
        ("cam-03", NOW + dt.timedelta(minutes=1), NOW + dt.timedelta(hours=1), "future"),
        ("cam-03", T, T + dt.timedelta(hours=5), "at most 4 h per pull"),
        ("cam-03", T.replace(tzinfo=None), T + dt.timedelta(hours=1), "timezone"),
    ],
)
def test_a_bad_request_is_refused_with_what_would_be_right(
    camera: str, start: dt.datetime, end: dt.datetime, says: str
) -> None:
    """Issue #17: unknown camera, a window ending before it starts, a window in the future, a
    window longer than the NVR allows, a time without a zone: InvalidInput naming it."""
    with pytest.raises(InvalidInput, match=says):
        check_request(NVR, camera, start, end, now=NOW)


def test_a_window_ending_in_the_future_is_cut_at_now() -> None:
    nvr_camera, until = check_request(NVR, "cam-03", NOW - dt.timedelta(hours=1),
                                      NOW + dt.timedelta(hours=1), now=NOW)
    assert (nvr_camera, until) == ("bin-store-1", NOW)


def test_an_unknown_nvr_names_the_nvrs_there_are() -> None:
    agents = AgentsFile(nvrs=[NVR])
    with pytest.raises(AgentsFileError, match="NVRs: nvr-north"):
        agents.nvr("nvr-south")


def test_nvr_and_source_ids_share_one_namespace() -> None:
    """An [[nvrs]] id may not repeat a [[sources]] id: custody and the spool name them alike."""
    with pytest.raises(AgentsFileError, match="used twice"):
        AgentsFile.from_dict({
            "sources": [{"id": "nvr-north", "kind": "upload"}],
            "nvrs": [NVR.model_dump()],
        })


def test_credentials_in_an_nvr_url_are_refused() -> None:
    with pytest.raises(AgentsFileError, match="not in the URL"):
        AgentsFile.from_dict({"nvrs": [{**NVR.model_dump(), "url": "http://u:p@nvr:9996"}]})


def test_gaps_are_the_window_minus_the_spans_with_their_reasons() -> None:
    """Before the oldest footage: before_retention; between spans: no_recording."""
    gaps = find_gaps([s(100, 200), s(300, 400)], T, T + dt.timedelta(seconds=500),
                     oldest=T + dt.timedelta(seconds=100))
    assert [(g.start, g.end, g.reason) for g in gaps] == [
        (T, s(100, 100).start, GapReason.BEFORE_RETENTION),
        (s(200, 200).start, s(300, 300).start, GapReason.NO_RECORDING),
        (s(400, 400).start, s(500, 500).start, GapReason.NO_RECORDING),
    ]
    none = find_gaps([], T, T + dt.timedelta(seconds=10), oldest=None)
    assert none[0].reason == GapReason.NO_RECORDING and "no footage" in none[0].message


def test_pieces_cover_each_span_exactly_without_slivers() -> None:
    pieces = split_pieces([s(0, 200.05), s(300, 310)], 100)
    assert [(p.start, p.end) for p in pieces] == [
        (s(0, 0).start, s(100, 100).start),
        (s(100, 100).start, s(200.05, 200.05).start),  # the 0.05 s sliver joins the last piece
        (s(300, 300).start, s(310, 310).start),
    ]
