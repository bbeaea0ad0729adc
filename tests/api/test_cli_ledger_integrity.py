"""``evidence-vault custody verify`` and ``fixity check`` on a tampered catalog, driven as an
operator would (issue #11 findings 13 and 14)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli import app


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    runner = CliRunner()
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home"),
           "EVIDENCE_VAULT_LEDGER_WITNESS_DIR": str(tmp_path / "witness")}

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env)

    assert run("init", "--json").exit_code == 0
    return run


def _put(cli: Any, path: Path, source: str) -> str:
    result = cli("put", str(path), "--source", source, "--captured-at", "2026-11-25T14:32:00Z",
                 "--json")
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["id"])


def test_custody_verify_reports_unsigned_events_and_catalog_rows(cli: Any, tmp_path: Path) -> None:
    """Issue #11 finding 13: the operator sees how many events no signature covers (none, once
    each command has closed the vault) and how many catalog rows were compared."""
    clip = tmp_path / "a.mp4"
    clip.write_bytes(os.urandom(4000))
    _put(cli, clip, "cam-03")
    result = cli("custody", "verify")
    assert result.exit_code == 0, result.output
    assert "0 events not yet covered by a signature" in result.output
    assert "1 catalog rows match the ledger" in result.output
    report = json.loads(cli("custody", "verify", "--json").stdout)
    assert report["unsigned"] == 0 and report["recordings"] == 1
    assert (tmp_path / "witness" / "latest.checkpoint").exists()


def test_moving_footage_to_another_site_fails_verify_and_fixity(cli: Any, tmp_path: Path) -> None:
    """Issue #11 finding 14 drill, from the command line: a source_id edited in the database
    fails ``custody verify`` (exit 4, naming the recording and field) and ``fixity check``."""
    for name, source in (("a.mp4", "cam-site-a"), ("b.mp4", "cam-site-b")):
        (tmp_path / name).write_bytes(os.urandom(3000))
    rid = _put(cli, tmp_path / "a.mp4", "cam-site-a")
    _put(cli, tmp_path / "b.mp4", "cam-site-b")
    with sqlite3.connect(tmp_path / "home" / "catalog.sqlite3") as db:
        db.execute("UPDATE recordings SET source_id = 'cam-site-b' WHERE id = ?", (rid,))
    result = cli("custody", "verify")
    assert result.exit_code == 4, result.output
    assert rid in result.output and "source_id" in result.output
    fixity = cli("fixity", "check", "--json")
    assert fixity.exit_code != 0, fixity.output
    assert "catalog_altered" in fixity.output


def test_a_trusted_checkpoint_saved_by_an_auditor_catches_a_rollback(
    cli: Any, tmp_path: Path
) -> None:
    """Issue #11 finding 13: a checkpoint saved outside the vault (``--trusted-checkpoint``)
    catches events deleted together with their checkpoints and the witness."""
    clip = tmp_path / "a.mp4"
    clip.write_bytes(os.urandom(4000))
    rid = _put(cli, clip, "cam-03")
    assert cli("get", rid, "-o", str(tmp_path / "copy.mp4")).exit_code == 0
    saved = tmp_path / "auditor.checkpoint"
    saved.write_text((tmp_path / "witness" / "latest.checkpoint").read_text())
    with sqlite3.connect(tmp_path / "home" / "catalog.sqlite3") as db:
        (size,) = db.execute("SELECT max(seq) FROM custody_events").fetchone()
        db.execute("DELETE FROM custody_event_objects WHERE seq = ?", (size,))
        db.execute("DELETE FROM custody_events WHERE seq = ?", (size,))
        db.execute("DELETE FROM custody_checkpoints WHERE size > ?", (size,))
    (tmp_path / "witness" / "latest.checkpoint").unlink()
    assert cli("custody", "verify").exit_code == 0  # the rollback alone looks consistent...
    result = cli("custody", "verify", "--trusted-checkpoint", str(saved))
    assert result.exit_code == 4, result.output  # ...but not against the saved checkpoint
    assert "removed" in result.output


def test_init_shows_the_vaults_own_origin(cli: Any) -> None:
    """Issue #11 finding 18: ``init`` names the log origin it derived for this vault, which the
    recipient passes to ``verify_export.py --origin``; running it again keeps it."""
    first = json.loads(cli("init", "--json").stdout)
    assert "/evidence-vault/" in first["ledger_origin"]
    assert first["ledger_verifier_key"].startswith(first["ledger_origin"] + "+")
    assert json.loads(cli("init", "--json").stdout)["ledger_origin"] == first["ledger_origin"]
