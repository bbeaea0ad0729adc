"""The docker-compose stack: valid compose file, and settings the vault really accepts.

There is no Docker engine on CI, so the stack is checked without running it: the compose
file is validated by docker-compose's own schema check (Debian's docker-compose, installed
by .ci/run), and the vault settings it passes are parsed by the real Settings class. The
MinIO features it relies on (object lock bucket, legal hold, lifecycle) are exercised against a
real MinIO server in tests/vault/test_objectstore.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ingest.config import load_agents_file
from vault.config import Settings

ROOT = Path(__file__).resolve().parent.parent
# What .env must set (deploy/env.example); every secret is a file made by make-secrets.sh.
ENV = {
    "VAULT_PUBLIC_HOST": "vault.example.org",
    "VAULT_TLS": "it-security@example.org",
    "VAULT_S3_ACCESS_KEY": "evidence-vault-app",
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


def test_compose_services_and_vault_settings(tmp_path: Path) -> None:
    """The vault settings compose gives its containers, with the secrets deploy/make-secrets.sh
    writes, are accepted by the real Settings class: PostgreSQL as the vault's role, S3 with
    object lock as the vault's own MinIO user, the Redis queue, the public https address."""
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"proxy", "api1", "api2", "minio", "minio-setup", "postgres", "redis", "ingest",
            "worker", "retention", "init", "backup", "backup-bucket"} <= set(services)
    for name in ("proxy", "api1", "api2", "minio", "postgres", "ingest", "backup"):
        assert "healthcheck" in services[name], name
    secrets_dir = tmp_path / "secrets"
    subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), str(secrets_dir)], check=True,
                   capture_output=True, env={**os.environ, **ENV})
    environment = spec["x-vault"]["environment"]
    resolved = {k: re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: ENV[m.group(1)], v)
                for k, v in environment.items()}
    resolved["EVIDENCE_VAULT_SECRETS_DIR"] = str(secrets_dir)
    for name in spec["x-vault"]["secrets"]:
        assert (secrets_dir / name).is_file(), name
    saved = dict(os.environ)
    try:
        os.environ.update(resolved)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert settings.store_backend == "s3" and settings.s3_object_lock is True
    password = (secrets_dir / "vault_db_password").read_text()
    assert settings.catalog_url == f"postgresql+psycopg://vault:{password}@postgres:5432/vault"
    assert settings.queue_url is not None
    assert settings.queue_url.get_secret_value().endswith("@redis:6379/0")
    assert settings.s3_access_key.get_secret_value() == "evidence-vault-app"
    assert settings.s3_secret_key.get_secret_value() == (
        secrets_dir / "EVIDENCE_VAULT_S3_SECRET_KEY").read_text()
    assert settings.web_public_url == "https://vault.example.org" and settings.web_cookie_secure
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
        if "entrypoint" in service:  # the image running a deploy script, not the CLI
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


def _vault_command(args: list[str]) -> None:
    """Parse ``args`` (after ``evidence-vault``) with the real CLI; raise if it would not run."""
    import click
    import typer.main

    from api.cli import app

    command: click.Command = typer.main.get_command(app)
    ctx = click.Context(command, info_name="evidence-vault")
    while isinstance(command, click.Group):
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"unknown command {args[0]!r}"
        command, args = sub, args[1:]
    command.make_context(command.name, list(args))


def test_every_long_running_service_has_a_healthcheck() -> None:
    """Issue #11 finding 24: ``worker`` and ``retention`` had no healthcheck. Every service that
    is meant to keep running has one, and a vault healthcheck runs a command the real CLI
    accepts."""
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in spec["services"].items():
        if service.get("restart") == "no":  # one-shot (init)
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"service {name} has no healthcheck"
        test = check["test"]
        if test[:2] == ["CMD", "evidence-vault"]:
            _vault_command(test[2:])
    assert spec["services"]["init"]["restart"] == "no"


def test_retention_and_worker_healthchecks_tell_alive_from_stale(tmp_path: Path) -> None:
    """Issue #11 finding 24: the commands the new healthchecks run say unhealthy until the
    process has reported, healthy while it reports, and unhealthy once it stops."""
    import datetime as dt

    from api.cli.health import Unhealthy, check_retention, check_worker, touch_retention_heartbeat
    from vault.casework.jobs import WorkerHeartbeat
    from vault.vault import Vault

    settings = Settings(_env_file=None, home=tmp_path / "home")  # type: ignore[call-arg]
    Vault.init(settings).close()
    now = dt.datetime.now(dt.UTC)
    limit = dt.timedelta(minutes=35)
    with pytest.raises(Unhealthy, match="no retention round"):
        check_retention(settings, now, limit)
    touch_retention_heartbeat(settings, now)
    assert "alive" in check_retention(settings, now + dt.timedelta(minutes=20), limit)
    with pytest.raises(Unhealthy, match="limit 2100 s"):
        check_retention(settings, now + dt.timedelta(minutes=36), limit)

    with pytest.raises(Unhealthy, match="no job worker"):
        check_worker(settings, now, dt.timedelta(minutes=2))
    beat = WorkerHeartbeat(settings, kinds=["export"], threads=1)
    beat.beat()
    assert "alive" in check_worker(settings, dt.datetime.now(dt.UTC), dt.timedelta(minutes=2))
    with pytest.raises(Unhealthy, match="1 stale"):
        check_worker(settings, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3),
                     dt.timedelta(minutes=2))


def test_dockerfile_creates_the_home_for_its_user() -> None:
    """Issue #11 finding 24: the image ran as uid 10001 and never created its home, so a named
    volume came up root-owned and ``init`` died. The Dockerfile creates the home owned by the
    user it runs as, and that user is not root."""
    text = (ROOT / "Dockerfile").read_text()
    user = re.search(r"^USER\s+(\S+)", text, re.M)
    assert user is not None and user.group(1).split(":")[0] not in ("root", "0")
    uid = user.group(1).split(":")[0]
    home = re.search(r"^ENV\s+EVIDENCE_VAULT_HOME=(\S+)", text, re.M)
    assert home is not None
    install = re.search(r"install -d -o (\d+) -g (\d+) -m (\d+) ([^\n]+)", text)
    assert install is not None and install.group(1) == uid and install.group(3) == "0700"
    assert "$EVIDENCE_VAULT_HOME" in install.group(4)
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert spec["x-vault"]["environment"]["EVIDENCE_VAULT_HOME"] == home.group(1)
    assert "vault-keys:/var/lib/evidence-vault" in spec["x-vault"]["volumes"]


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder any user can reach (pytest's own tmp_path is under a root-only folder)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="ev-deploy-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for sub in path.rglob("*"):
            if sub.is_dir():
                sub.chmod(0o755)
        shutil.rmtree(path)


def _as_another_user() -> dict[str, int]:
    """subprocess arguments that run a child as a user who does not own root's files."""
    if os.geteuid() == 0:
        return {"user": 65534, "group": 65534, "extra_groups": []}
    return {}


def test_init_on_an_unwritable_home_says_what_to_do(open_tmp: Path) -> None:
    """Issue #11 finding 24: ``init`` on a home it cannot write (a root-owned volume) died
    with a raw PermissionError traceback. It now exits 9 with one line naming the directory,
    its owner, the user and the fix, and writes nothing."""
    import sys

    home = open_tmp / "volume"
    home.mkdir(mode=0o755)
    if os.geteuid() != 0:
        home.chmod(0o555)  # not root: make it unwritable for ourselves
    for target in (home, home / "sub"):
        result = subprocess.run(
            [sys.executable, "-m", "api", "init"], capture_output=True, text=True, cwd=ROOT,
            env={**os.environ, "EVIDENCE_VAULT_HOME": str(target), "HOME": str(open_tmp)},
            **_as_another_user(),  # type: ignore[arg-type]
        )
        assert result.returncode == 9, result.stderr
        assert "Traceback" not in result.stderr
        assert str(target) in result.stderr and "EVIDENCE_VAULT_HOME" in result.stderr
        assert "writable" in result.stderr
    assert list(home.iterdir()) == []


def test_cli_permission_errors_are_one_line(open_tmp: Path) -> None:
    """Issue #11 finding 24 (the class): any command that meets a path its user may not write
    (here ``get -o`` into a read-only folder) says so in one line, exit 9, not a traceback."""
    import sys

    home, readonly = open_tmp / "home", open_tmp / "readonly"
    readonly.mkdir(mode=0o555)
    home.mkdir(mode=0o700)
    clip = open_tmp / "clip.mp4"
    clip.write_bytes(b"\0" * 1000)
    clip.chmod(0o644)
    other = _as_another_user()
    if other:
        os.chown(home, other["user"], other["group"])
    env = {**os.environ, "EVIDENCE_VAULT_HOME": str(home), "HOME": str(open_tmp)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "api", *args], capture_output=True,
                              text=True, cwd=ROOT, env=env, check=False, **other)  # type: ignore[arg-type]

    assert cli("init").returncode == 0
    put = cli("put", str(clip), "--source", "cam-1", "--captured-at", "2026-11-25T10:00Z", "--json")
    assert put.returncode == 0, put.stderr
    rid = json.loads(put.stdout)["id"]
    got = cli("get", rid, "-o", str(readonly / "out.mp4"))
    assert got.returncode in (5, 9), got.stderr
    assert "Traceback" not in got.stderr and "permission denied" in got.stderr.lower()
    assert str(readonly) in got.stderr and len(got.stderr.strip().splitlines()) == 1


def test_any_command_turns_permission_errors_into_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue #11 finding 24 (the class): whatever command meets a PermissionError the library
    did not name (a file in a root-owned volume), the CLI says which path, exit 9."""
    import typer

    from api.cli._common import reports_errors

    @reports_errors
    def command() -> None:
        raise PermissionError(13, "Permission denied", "/var/lib/evidence-vault/ledger.key")

    with pytest.raises(typer.Exit) as exited:
        command()
    assert exited.value.exit_code == 9
    err = capsys.readouterr().err
    assert err.startswith("error: permission denied /var/lib/evidence-vault/ledger.key for uid ")
