"""Redacting a vault recording: the copy is stored with provenance, the master is untouched."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from redaction.redacted_copy import redact_recording
from redaction.errors import MediaError
from tests.redaction.conftest import two_people
from redaction.synthetic import face_visibility, make_clip, read_frames
from vault import Action, Actor, Purpose, Role, Settings, SourceKind, Vault, run_retention
from vault.capture import Capture

ACTOR = Actor(user="ig-1", role=Role.IG_OFFICER, organisation="Housing")
PURPOSE = Purpose(purpose="subject access request", reference="SAR-2026-7", lawful_basis="UK GDPR Art 15")
T0 = dt.datetime(2026, 11, 3, 14, 32, tzinfo=dt.timezone.utc)


@pytest.fixture
def vault(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Vault.init(Settings(home=tmp_path / "home")) as v:
        yield v


def test_redacted_copy_is_a_new_recording_with_provenance(vault: Vault, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", two_people())
    master = vault.put_file(
        clip.path,
        Capture(source_id="cam-03", source_kind=SourceKind.CCTV, captured_at=T0),
        actor=ACTOR,
    )

    result = redact_recording(vault, master.id, actor=ACTOR, purpose=PURPOSE)
    copy = result.recording
    assert copy.parent_id == master.id and copy.id != master.id
    assert copy.retain_until == master.retain_until  # follows its parent
    prov = copy.provenance or {}
    assert prov["parent_sha256"] == master.sha256
    assert prov["plan_sha256"] == result.render.plan_sha256 == result.plan.sha256()
    assert prov["software_version"] and prov["parameters"]["encode"]["codec"] == "libx264"

    # The stored copy decrypts to the rendered file, and every face is hidden in every frame.
    out = tmp_path / "copy.mp4"
    vault.export_file(copy.id, out, actor=ACTOR, purpose=PURPOSE)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == copy.sha256 == result.render.sha256
    frames = read_frames(out)
    assert len(frames) == clip.frame_count
    for i, boxes in enumerate(clip.gt):
        source = clip.frame(i)
        for _, box in boxes:
            assert face_visibility(source, frames[i], box) < 0.3, (i, box)

    # The master is unchanged, and the custody log tells the story.
    assert vault.verify_recording(master.id).sha256 == master.sha256
    actions = [e.action for e in vault.ledger.events(object_id=master.id)]
    assert actions == [Action.INGESTED, Action.REDACTION_PLANNED]
    rendered = vault.ledger.events(object_id=copy.id)
    assert [e.action for e in rendered] == [Action.REDACTION_RENDERED, Action.DOWNLOADED]
    # No plaintext is left in the spool.
    assert list(vault.settings.spool_dir.iterdir()) == []

    # Retention takes the copy with its parent.
    report = run_retention(vault, now=master.retain_until)
    assert {d.recording_id for d in report.deleted} == {master.id, copy.id}


def test_non_video_recording_fails_cleanly(vault: Vault, tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_bytes(b"not a video at all" * 100)
    rec = vault.put_file(notes, Capture(source_id="upload", captured_at=T0), actor=ACTOR)
    with pytest.raises(MediaError):
        redact_recording(vault, rec.id, actor=ACTOR, purpose=PURPOSE)
    assert [r.id for r in vault.recordings()] == [rec.id]
    assert list(vault.settings.spool_dir.iterdir()) == []
