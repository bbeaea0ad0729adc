"""The one-command demo runs end to end and leaves what it promises."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.demo import DEMO_MARKER, prepare_home, run_demo
from vault.errors import InvalidInput


@pytest.mark.slow
def test_demo_runs_every_step(tmp_path: Path) -> None:
    report = run_demo(tmp_path / "demo", segment_seconds=3, segments=2, width=320, height=240)
    names = [s.name for s in report.steps]
    assert names[0] == "create the vault" and names[-1] == "24 days later: retention"
    assert len(names) == 9
    out = tmp_path / "demo" / "out"
    assert (out / "redacted-incident.mp4").stat().st_size > 0
    with zipfile.ZipFile(out / "disclosure-ASB-2026-0113.zip") as z:
        assert "verify_export.py" in z.namelist()
    assert any("recordings intact" in line for line in report.steps[-2].lines)
    retention = report.steps[-1].lines
    assert sum(line.startswith("deleted") for line in retention) == 2  # one segment + the audio note
    assert sum(line.startswith("kept") for line in retention) == 2  # the held clip + its redacted copy
    certificate = next(out.glob("deletion-certificate-*.json"))
    assert json.loads(certificate.read_text())["certificate"]["format"].startswith("evidence-vault/deletion")


def test_demo_cli_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--home", str(tmp_path / "d"), "--segment-seconds", "2", "--segments", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["home"] == str((tmp_path / "d").resolve())
    assert [s["name"] for s in data["steps"]][-1] == "24 days later: retention"


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "evidence.mp4").write_bytes(b"keep me")
    with pytest.raises(InvalidInput, match="not a demo directory"):
        prepare_home(precious)
    assert (precious / "evidence.mp4").read_bytes() == b"keep me"
    # A directory the demo made is re-created.
    demo = tmp_path / "demo"
    prepare_home(demo)
    (demo / "old").write_text("x")
    prepare_home(demo)
    assert sorted(p.name for p in demo.iterdir()) == [DEMO_MARKER]


def test_demo_outputs_are_private(tmp_path: Path) -> None:
    """Issue #11 finding 11: the demo's ``out/`` (a decrypted redacted copy, a disclosure
    package) was world-readable. Under umask 000 its folders are 0700 and its footage and
    package files 0600."""
    import os
    import stat

    old = os.umask(0)
    try:
        run_demo(tmp_path / "demo", segment_seconds=2, segments=1, width=320, height=240)
    finally:
        os.umask(old)
    home = tmp_path / "demo"
    for folder in (home, home / "out", home / "footage"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for name in ("redacted-incident.mp4", "disclosure-ASB-2026-0113.zip"):
        assert stat.S_IMODE((home / "out" / name).stat().st_mode) == 0o600, name
