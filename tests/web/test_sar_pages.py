"""The SAR workspace's people page with plans that use one-person tracks (redaction/identity.py).

In-process (``TestClient``) with a hand-written plan on a finished plan job, so each case is
exact: a joined person's ``extra`` boxes, and two tracks the tracker could not tell apart
(a review span with ``reason: identity``). The browser journey is tests/web/test_sar.py.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.web.sar_people import preview_masks
from redaction import RedactionPlan
from tests.api.conftest import Clock
from tests.web.conftest import PASSWORD, csrf_of
from vault.access import credentials, identity
from vault.casework import sites
from vault.casework import sar as sars
from vault.actors import Actor, Role
from vault.storage.catalog import MediaKind, SourceKind
from vault.config import Settings
from vault.casework.jobs import Job, JobKind, JobState
from vault.vault import Vault
from vault.capture import Capture

NORTH = "Northside Homes"
T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
ADMIN = Actor(user="local:test", role=Role.ADMINISTRATOR)
IG = Actor(user="ig", role=Role.IG_OFFICER, organisation=NORTH)
SHA = "ab" * 32


def _plan(**changes: Any) -> RedactionPlan:
    """Three tracks on a 10-frame 320x240 clip: 1 (with a second detection of the same face
    joined as ``extra`` on frames 2-3), 2 and 3 (which may be one person)."""
    data: dict[str, Any] = {
        "schema": "evidence-vault/redaction-plan", "version": 2,
        "source": {"name": "clip.mp4", "sha256": SHA, "width": 320, "height": 240,
                   "frame_count": 10, "fps": "25/1", "duration": 0.4},
        "tracks": [
            {"id": 1, "start": 0, "boxes": [[10, 10, 50, 60, 0.9]] * 10, "quality": 0.8,
             "best_frame": 4, "extra": [{"start": 2, "boxes": [[60, 10, 100, 60, 0.4]] * 2}]},
            {"id": 2, "start": 0, "boxes": [[150, 10, 190, 60, 0.9]] * 4, "quality": 0.7,
             "best_frame": 1},
            {"id": 3, "start": 6, "boxes": [[160, 10, 200, 60, 0.9]] * 4, "quality": 0.6,
             "best_frame": 7},
        ],
        "review": [{"track_id": 3, "start": 6, "end": 9, "start_time": 0.24, "end_time": 0.36,
                    "reason": "identity", "min_confidence": 0.9, "related_track": 2}],
        **changes,
    }
    return RedactionPlan.model_validate(data)


def test_the_preview_hides_every_box_of_a_person_not_kept() -> None:
    """The before/after preview masks what the render masks: a joined person's ``extra``
    boxes too (it masked only each track's own box, so the preview showed a face the copy
    hides, and a reviewer would draw boxes that were not needed), and nothing of a person
    kept."""
    plan = _plan()
    tracks, manual = preview_masks(plan, 2)
    assert (60, 10, 100, 60) in tracks and (10, 10, 50, 60) in tracks and manual == []
    kept = plan.with_keep({1})
    tracks, _ = preview_masks(kept, 2)
    assert (60, 10, 100, 60) not in tracks and (10, 10, 50, 60) not in tracks
    assert (150, 10, 190, 60) in tracks


@dataclass
class World:
    vault: Vault
    client: TestClient
    sar_id: str
    job_id: str


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """An IG officer signed in, a request with a window, and a finished plan job on it
    carrying :func:`_plan` (the clip's hash is the plan's, so the page reads it)."""
    clock = Clock(T0)
    vault = Vault.init(Settings(home=tmp_path / "home", segment_size=4096), clock=clock)
    sites.register_site(vault, "Riverside", organisation=NORTH, actor=ADMIN)
    user = identity.create_user(vault, name="ig", role=Role.IG_OFFICER, organisation=NORTH,
                                actor=ADMIN)
    credentials.set_password(vault, "ig", PASSWORD, actor=ADMIN)
    enrolment = credentials.begin_enrolment(vault, user.id, issuer="test")
    credentials.check_code(vault, user.id, pyotp.TOTP(enrolment.secret).at(clock.now),
                           enrolling=True)
    start = T0 - dt.timedelta(hours=1)
    clip = vault.put_stream(
        io.BytesIO(b"clip" * 100),
        Capture(
            source_id="cam-river-1",
            source_kind=SourceKind.CCTV,
            site="Riverside",
            captured_at=start,
            captured_end=start + dt.timedelta(seconds=1),
            media_kind=MediaKind.VIDEO,
            original_name="clip.mp4",
        ),
        actor=ADMIN,
    )
    request = sars.register_sar(vault, reference="SAR-1", requester_name="J",
                                received_on=T0.date(), actor=IG)
    window = sars.attach_window(vault, request.id, source_id="cam-river-1", start=start,
                                end=start + dt.timedelta(minutes=1), actor=IG)
    clock.advance(seconds=1)
    job = Job(kind=JobKind.REDACTION_PLAN, state=JobState.SUCCEEDED, progress=1.0,
              params={"recording_ids": [clip.id],
                      "window": {"source_id": "cam-river-1", "start": start.isoformat(),
                                 "end": (start + dt.timedelta(minutes=1)).isoformat(),
                                 "sar_window_id": window.id}},
              plan=_plan(source={"name": "clip.mp4", "sha256": clip.sha256, "width": 320,
                                 "height": 240, "frame_count": 10, "fps": "25/1",
                                 "duration": 0.4}).to_dict(),
              result={"recording_id": clip.id}, created_by="ig", created_role="ig_officer",
              created_org=NORTH, created_at=clock.now, attempts=1, max_attempts=3)
    with vault.sessions.begin() as session:
        session.add(job)
    client = TestClient(create_app(vault.settings, vault=vault), base_url="http://127.0.0.1")
    clock.advance(seconds=31)
    page = client.get("/sign-in")
    r = client.post("/sign-in", data={"username": "ig", "password": PASSWORD,
                                      "csrf_token": csrf_of(page.text)})
    r = client.post("/sign-in/code", data={"code": pyotp.TOTP(enrolment.secret).at(clock.now),
                                           "csrf_token": csrf_of(r.text)})
    assert str(r.url).endswith("/find"), r.text[:300]
    try:
        yield World(vault=vault, client=client, sar_id=request.id, job_id=job.id)
    finally:
        client.close()
        vault.close()


def test_the_gallery_says_which_tracks_may_be_one_person(world: World) -> None:
    """Two tracks the tracker could not tell apart (``reason: identity``) are marked on both
    pictures, "check both before keeping either", and the span is described as that (it was
    described as a face the search lost)."""
    page = world.client.get(f"/subject-access/{world.sar_id}/people/{world.job_id}")
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert html.count("check both before keeping either") == 3  # persons 2 and 3, the span
    assert "may be the same person as person 2" in html
    assert "may be the same person as person 3" in html
    assert "this may be the same person as person 2" in html
    assert "the search lost this face" not in html
