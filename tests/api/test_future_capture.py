"""HTTP upload and CLI ``put`` with a capture time in the future (issue #11 finding 7)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app
from tests.api.conftest import World


def test_api_upload_of_future_footage_is_stored_flagged_and_says_why(world: World) -> None:
    """Issue #11 finding 7, HTTP path: ``POST /recordings`` with a 2099 capture time answers
    201 (the footage is kept), with ``clock_flagged``, a ``clock_note`` saying why, and a
    retain_until counted from receipt rather than from 2099."""
    params = {"source": "dock-2", "captured_at": "2099-01-01T12:00:00Z", "name": "bwv.mp4"}
    headers = world.headers("ingest", **{"Content-Type": "application/octet-stream"})
    created = world.client.post("/recordings", params=params, content=os.urandom(5000),
                                headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["captured_start"] == "2099-01-01T12:00:00Z"
    assert body["clock_flagged"] is True
    assert "after the footage was received" in body["clock_note"]
    assert "retention counts from receipt" in body["clock_note"]
    assert dt.datetime.fromisoformat(body["retain_until"]) == world.clock() + dt.timedelta(days=23)


def test_cli_put_of_future_footage_warns(tmp_path: Path) -> None:
    """Issue #11 finding 7, CLI path: ``put --captured-at 2099-...`` stores the file and warns
    on stderr that the time is after receipt and when the footage will be deleted."""
    runner = CliRunner()
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home")}
    assert runner.invoke(app, ["init"], env=env).exit_code == 0
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(1000))
    result = runner.invoke(
        app,
        ["put", str(clip), "--source", "cam-3", "--captured-at", "2099-01-01T12:00:00Z", "--json"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["clock_flagged"] is True
    assert body["captured_start"].startswith("2099-01-01")
    assert not body["retain_until"].startswith("2099")
    assert "after the footage was received" in result.stderr
    assert "retention counts from receipt" in result.stderr and "kept until" in result.stderr
