"""``evidence-vault admin`` and ``serve``, mounted as the lead mounts them, driven in-process."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli.admin import admin_app, parse_duration
from api.cli.serve import RedactShareTokens, serve
from vault.config import Settings
from vault.errors import InvalidInput

app = typer.Typer()
app.command()(serve)
app.add_typer(admin_app, name="admin")


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home")}
    from vault.vault import Vault

    Vault.init(Settings(home=tmp_path / "home")).close()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env=env)

    return run


def test_users_and_tokens(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    added = cli("admin", "user", "add", "jo", "--role", "asb_officer", "--org", "Northside",
                "--site", "Riverside", "--site", "Elm Court")
    assert added.exit_code == 0, added.output
    listed = json.loads(cli("admin", "user", "list", "--json").stdout)
    assert listed[0]["name"] == "jo" and listed[0]["sites"] == ["Elm Court", "Riverside"]
    issued = cli("admin", "token", "issue", "jo", "--expires-in", "12h", "--json")
    assert issued.exit_code == 0, issued.output
    token = json.loads(issued.stdout)["token"]

    with TestClient(create_app(Settings(home=tmp_path / "home"))) as client:
        me = client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["sites"] == ["Elm Court", "Riverside"]
        revoked = cli("admin", "token", "revoke", json.loads(issued.stdout)["token_id"])
        assert revoked.exit_code == 0, revoked.output
        assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert token not in cli("admin", "token", "list", "--json").stdout


def test_cli_errors(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("admin", "token", "issue", "nobody").exit_code == 3  # NotFound
    bad_role = cli("admin", "user", "add", "x", "--role", "root", "--org", "X")
    assert bad_role.exit_code == 2
    cli("admin", "user", "add", "x", "--role", "auditor", "--org", "X")
    assert cli("admin", "token", "issue", "x", "--expires-in", "forever").exit_code == 8


def test_parse_duration() -> None:
    assert parse_duration("30d").days == 30
    assert parse_duration("90m").total_seconds() == 5400
    with pytest.raises(InvalidInput):
        parse_duration("1y")


def test_serve_help_and_access_log_redaction() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/share/evs_SECRET/recordings/x/stream", "1.1", 200), None,
    )
    RedactShareTokens().filter(record)
    assert "SECRET" not in record.getMessage()
    assert "/share/<redacted>/recordings/x/stream" in record.getMessage()
