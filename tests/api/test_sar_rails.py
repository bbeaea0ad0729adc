"""SAR safety rails (issue #11 finding 21): what goes to a requester is a redacted copy of a held
window, or an explicit, logged override says why not; and SAR redaction jobs redact the held
window only, not the whole recordings it touches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from api.jobs import open_job_queue
from tests.api.conftest import OPERATOR, T0, World
from tests.redaction.test_clips import FPS, SECONDS, make_segment
from vault.storage.catalog import MediaKind, Recording, SourceKind
from vault.capture import Capture
from vault.casework.sar import SarDisclosure

START = T0 - dt.timedelta(hours=3)  # the two segments' capture start


@pytest.fixture
def sw(world: World, tmp_path: Path) -> Iterator[World]:
    """The world with an immediate queue and two real 4 s segments of camera cam-elm-5."""
    world.client.app.state.jobs = open_job_queue(  # type: ignore[attr-defined]
        world.vault.settings, immediate=True, vault=world.vault)
    for n in range(2):
        path = make_segment(tmp_path / f"seg{n}.mp4", n * SECONDS * FPS)
        at = START + dt.timedelta(seconds=n * SECONDS)
        world.rec[f"seg{n}"] = world.vault.put_file(
            path,
            Capture(
                source_id="cam-elm-5",
                source_kind=SourceKind.CCTV,
                site="Elm Court",
                captured_at=at,
                captured_end=at + dt.timedelta(seconds=SECONDS),
                media_kind=MediaKind.VIDEO,
            ),
            actor=OPERATOR,
        )
    yield world


def _sar_with_window(w: World, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    ig = w.headers("ig", purpose=False)
    sar = w.client.post("/sars", headers=ig, json={
        "reference": "SAR-2026-31", "requester_name": "A. Resident",
        "received_on": w.clock.now.date().isoformat()})
    assert sar.status_code == 201, sar.text
    attached = w.client.post(f"/sars/{sar.json()['id']}/windows", headers=ig, json={
        "source_id": "cam-elm-5", "start": start.isoformat(), "end": end.isoformat()})
    assert attached.status_code == 201, attached.text
    return attached.json()


def _frames(w: World, rid: str, tmp_path: Path) -> int:
    out = tmp_path / f"{rid}.mp4"
    w.vault.export_file(rid, out, actor=OPERATOR, purpose=_purpose())
    with av.open(str(out)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def _purpose():  # type: ignore[no-untyped-def]
    from vault.actors import Purpose

    return Purpose(purpose="test: count frames")


def test_sar_redaction_jobs_redact_the_held_window_only(sw: World, tmp_path: Path) -> None:
    """Issue #11 finding 21: SAR redaction jobs planned and rendered the whole recordings a
    window touched (8 s of footage for a 2 s window). Each job now cuts exactly the held
    window (across the segment join) and the plan, the render and the disclosure cover that
    span only; such a copy is disclosed without any override."""
    w = sw
    start, end = START + dt.timedelta(seconds=3), START + dt.timedelta(seconds=5)
    sar = _sar_with_window(w, start, end)
    ig = w.headers("ig", purpose=False)
    queued = w.client.post(f"/sars/{sar['id']}/redaction-jobs", headers=ig, json={})
    assert queued.status_code == 202, queued.text
    jobs = queued.json()["jobs"]
    assert len(jobs) == 1  # one window, one job (not one per recording)
    job = jobs[0]
    assert job["state"] == "succeeded", job["error"]
    assert set(job["recording_ids"]) == {w.rec["seg0"].id, w.rec["seg1"].id}
    clip = w.vault.recording(job["result"]["recording_id"])
    assert clip.provenance["kind"] == "clip"
    assert start <= clip.captured_start and clip.captured_end <= end
    plan = w.client.get(f"/jobs/{job['id']}/plan", headers=w.headers("ig")).json()
    assert plan["source"]["sha256"] == clip.sha256
    assert plan["source"]["frame_count"] == 2 * FPS  # the window, not 2 x 4 s of segments

    rendered = w.client.post(f"/jobs/{job['id']}/render", headers=w.headers("ig"))
    assert rendered.status_code == 202 and rendered.json()["state"] == "succeeded", rendered.text
    copy_id = rendered.json()["result"]["redacted_recording_id"]
    assert _frames(w, copy_id, tmp_path) == 2 * FPS
    disclosed = w.client.post(f"/sars/{sar['id']}/disclosures", headers=ig,
                              json={"recording_ids": [copy_id], "method": "secure link"})
    assert disclosed.status_code == 201, disclosed.text
    assert disclosed.json()["disclosures"][0]["override_reason"] is None
    event = w.vault.ledger.events(action="sar.disclosed")[-1].event
    assert "override" not in event.details


def test_disclosing_a_master_or_footage_outside_the_windows_needs_a_logged_override(
    sw: World, tmp_path: Path,
) -> None:
    """Issue #11 finding 21: disclosure of an unredacted master, or of a redacted copy that runs
    past the SAR's windows, was accepted silently. Each is refused (400, naming the ids, nothing
    recorded) unless an override reason is given, which the disclosure and its custody event
    carry."""
    w = sw
    sar = _sar_with_window(w, START + dt.timedelta(seconds=1), START + dt.timedelta(seconds=3))
    ig = w.headers("ig", purpose=False)
    master = w.rec["seg0"].id
    # A redacted copy of the whole first segment (0-4 s): redacted, but past the 1-3 s window.
    whole = w.client.post(f"/recordings/{master}/redaction-jobs", headers=w.headers("ig"),
                          json={"render": True})
    assert whole.json()["state"] == "succeeded", whole.text
    copy = whole.json()["result"]["redacted_recording_id"]

    refused = w.client.post(f"/sars/{sar['id']}/disclosures", headers=ig,
                            json={"recording_ids": [master, copy], "method": "secure link"})
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert f"not redacted: {master}" in detail
    assert master in detail.split("not inside the request's windows:")[1] and copy in detail
    assert "override_reason" in detail
    assert w.vault.ledger.events(action="sar.disclosed") == []
    with w.vault.sessions() as session:
        assert session.query(SarDisclosure).count() == 0
    assert w.client.get(f"/sars/{sar['id']}", headers=ig).json()["status"] == "open"

    blank = w.client.post(f"/sars/{sar['id']}/disclosures", headers=ig,
                          json={"recording_ids": [copy], "method": "x", "override_reason": ""})
    assert blank.status_code == 422  # an override must say why

    reason = "requester asked for the whole minute; nobody else in frame before or after"
    accepted = w.client.post(f"/sars/{sar['id']}/disclosures", headers=ig, json={
        "recording_ids": [master, copy], "method": "secure link", "override_reason": reason})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["disclosures"][0]["override_reason"] == reason
    event = w.vault.ledger.events(action="sar.disclosed")[-1].event
    assert event.details["override"] == {"reason": reason, "unredacted": [master],
                                         "outside_windows": [master, copy]}
    assert event.actor == "ig"


def test_recording_outside_of_any_window_source_is_named(sw: World) -> None:
    """Issue #11 finding 21: footage of another camera than the request's windows is outside
    them, whatever its times."""
    from vault.casework.sar import DisclosureNeedsOverride, record_disclosure

    w = sw
    sar = _sar_with_window(w, START, START + dt.timedelta(seconds=8))
    other: Recording = w.rec["rec_site"]  # cam-river-2: no window of this request
    with pytest.raises(DisclosureNeedsOverride) as refused:
        record_disclosure(w.vault, sar["id"], recording_ids=[other.id], method="post",
                          actor=OPERATOR)
    assert refused.value.outside_windows == [other.id] and refused.value.unredacted == [other.id]
