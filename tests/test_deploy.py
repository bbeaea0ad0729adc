"""The docker-compose stack: valid compose file, and settings the vault really accepts.

There is no Docker engine on CI, so the stack is checked without running it: the compose
file is validated by docker-compose's own schema check (Debian's docker-compose, installed
by .ci/run), and the vault settings it passes are parsed by the real Settings class. The
MinIO features it relies on (object lock bucket, legal hold, lifecycle) are exercised against a
real MinIO server in tests/vault/test_objectstore.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ingest.config import load_agents_file
from vault.config import Settings

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "MINIO_ROOT_USER": "evidence-vault",
    "MINIO_ROOT_PASSWORD": "x" * 32,
    "POSTGRES_PASSWORD": "y" * 32,
}


def _compose_cli() -> list[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is missing on CI: .ci/run installs Debian's docker-compose")
        pytest.skip("docker-compose not installed (Debian: apt-get install docker-compose)")
    return [exe]


def test_compose_file_validates(tmp_path: Path) -> None:
    env_file = ROOT / ".env"
    created = not env_file.exists()
    if created:
        shutil.copy(ROOT / "deploy" / "env.example", env_file)
    try:
        result = subprocess.run(
            [*_compose_cli(), "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
            capture_output=True, text=True, env={**os.environ, **ENV}, cwd=ROOT,
        )
    finally:
        if created:
            env_file.unlink()
    assert result.returncode == 0, result.stderr


def test_compose_services_and_vault_settings() -> None:
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"minio", "postgres", "api", "ingest", "worker", "retention", "init"} <= set(services)
    for name in ("minio", "postgres", "api", "ingest"):
        assert "healthcheck" in services[name], name
    environment = spec["x-vault"]["environment"]
    resolved = {
        k: v.replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}", "pw")
        .replace("${MINIO_ROOT_USER:?set MINIO_ROOT_USER in .env}", "user")
        .replace("${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD in .env}", "secret")
        for k, v in environment.items()
    }
    settings = Settings(_env_file=None, **{k.removeprefix("EVIDENCE_VAULT_").lower(): v for k, v in resolved.items()})  # type: ignore[arg-type]
    assert settings.store_backend == "s3" and settings.s3_object_lock is True
    assert settings.catalog_url.startswith("postgresql+psycopg://vault:pw@postgres")
    assert "retention" in services and services["retention"]["command"][:2] == ["retention", "worker"]


def test_compose_agents_file_loads() -> None:
    agents = load_agents_file(ROOT / "deploy" / "agents.toml")
    assert [s.kind for s in agents.sources] == ["dock"]


def test_env_example_sets_every_required_secret() -> None:
    text = (ROOT / "deploy" / "env.example").read_text()
    for name in ENV:
        assert f"{name}=" in text


def test_every_compose_command_parses_with_the_real_cli() -> None:
    import click
    import typer.main

    from api.cli import app

    root = typer.main.get_command(app)
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    checked = 0
    for name, service in spec["services"].items():
        if service.get("image") != "evidence-vault:latest" and "<<" not in service:
            continue
        args = list(service["command"])
        command: click.Command = root
        ctx = click.Context(root, info_name="evidence-vault")
        while isinstance(command, click.Group):
            sub = command.get_command(ctx, args[0])
            assert sub is not None, f"service {name}: unknown command {args[0]!r}"
            command, args = sub, args[1:]
        command.make_context(command.name, list(args))  # raises on unknown options
        checked += 1
    assert checked >= 5
