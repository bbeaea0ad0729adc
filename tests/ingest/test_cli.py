"""``evidence-vault ingest`` (api/cli/ingest.py) driven in-process: file, run, status."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from api.cli.ingest import ingest_app
from tests.ingest.media import copy
from vault.config import Settings
from vault.vault import Vault


def _env(tmp_path: Path) -> dict[str, str]:
    Vault.init(Settings(home=tmp_path / "home")).close()
    return {"EVIDENCE_VAULT_HOME": str(tmp_path / "home")}


def test_file_command_stores_and_refuses(tmp_path: Path, clips: dict[str, Path]) -> None:
    env = _env(tmp_path)
    junk = tmp_path / "notes.txt"
    junk.write_text("not footage")
    runner = CliRunner()
    result = runner.invoke(
        ingest_app,
        [
            "file",
            str(clips["video"]),
            str(clips["wav"]),
            str(junk),
            "--device",
            "phone-7",
            "--json",
        ],
        env=env,
    )
    assert result.exit_code == 8, result.output
    rows = json.loads(result.stdout)
    assert [r["ok"] for r in rows] == [True, True, False]
    assert rows[0]["source"] == "phone-7" and len(rows[0]["sha256"]) == 64
    assert "not a media file" in rows[2]["error"]
    again = runner.invoke(ingest_app, ["file", str(clips["video"]), "--device", "phone-7"], env=env)
    assert again.exit_code == 0, again.output
    assert "already in the vault" in again.stdout


def test_run_then_status(tmp_path: Path, clips: dict[str, Path]) -> None:
    env = _env(tmp_path)
    dock = tmp_path / "dock"
    copy(clips["m4a"], dock / "bwv-3" / "a.m4a")
    config = tmp_path / "agents.toml"
    config.write_text(
        f'[agent]\nname = "cli-agent"\nspool_dir = "{tmp_path / "spool"}"\n\n'
        f'[[sources]]\nid = "dock-1"\nkind = "dock"\npath = "{dock}"\nstable_seconds = 0\npoll_interval_s = 0.1\n'
    )
    runner = CliRunner()
    result = runner.invoke(
        ingest_app, ["run", "--config", str(config), "--duration", "2", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout)
    assert final["spool"]["counts"]["acknowledged"] == 1
    assert not (dock / "bwv-3" / "a.m4a").exists()
    # The agent has stopped: status still reports, and exits 1 (a healthcheck fails).
    status = runner.invoke(ingest_app, ["status", "--config", str(config), "--json"], env=env)
    assert status.exit_code == 1, status.output
    data = json.loads(status.stdout)
    assert data["agent"] == "cli-agent" and data["stopping"] is True
    assert data["journal"]["counts"]["acknowledged"] == 1
    # (In-process, the pid in the status file is this test's, so it is "no live workers".)
    assert not data["healthy"] and data["live_workers"] == 0 and data["problems"]
    human = runner.invoke(ingest_app, ["status", "--spool", str(tmp_path / "spool")], env=env)
    assert human.exit_code == 1 and "dock-1" in human.stdout and "UNHEALTHY" in human.stdout


def test_bad_config_exits_9(tmp_path: Path) -> None:
    env = _env(tmp_path)
    config = tmp_path / "agents.toml"
    config.write_text('[[sources]]\nid = "x"\nkind = "ftp"\n')
    result = CliRunner().invoke(ingest_app, ["run", "--config", str(config)], env=env)
    assert result.exit_code == 9
    assert "kind" in result.output


def test_help() -> None:
    for command in ("file", "run", "status"):
        result = CliRunner().invoke(ingest_app, [command, "--help"])
        assert result.exit_code == 0 and "--json" in result.stdout
