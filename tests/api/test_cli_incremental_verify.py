"""``custody verify --incremental`` through the CLI (issue #15): the scheduled check."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app as cli_app


def test_incremental_verify_from_the_cli(tmp_path: Path) -> None:
    """Issue #15 build 1: the first run checks everything and leaves its mark beside the
    witness file; the next checks what came after (tamper drills: tests/vault/
    test_incremental_verify.py)."""
    runner = CliRunner()
    home = tmp_path / "home"
    env = {"EVIDENCE_VAULT_HOME": str(home)}
    assert runner.invoke(cli_app, ["init"], env=env).exit_code == 0
    clip = tmp_path / "clip.bin"
    clip.write_bytes(os.urandom(500))
    assert runner.invoke(cli_app, ["put", str(clip), "--source", "cam-1"], env=env).exit_code == 0
    first = runner.invoke(cli_app, ["custody", "verify", "--incremental", "--json"], env=env)
    assert first.exit_code == 0, first.stderr
    assert (home / "checkpoints" / "verified.checkpoint").exists()
    assert runner.invoke(cli_app, ["put", str(clip), "--source", "cam-2"], env=env).exit_code == 0
    second = runner.invoke(cli_app, ["custody", "verify", "--incremental", "--json"], env=env)
    assert second.exit_code == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["events"] > json.loads(first.stdout)["events"] and report["recordings"] is None
