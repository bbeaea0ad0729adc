"""Issue #16 items 4-7 in the compose file: secrets as files, least privilege, the TLS proxy
and scheduled backups (checked offline: there is no Docker engine on CI; the scripts compose
runs are run for real in test_tls_proxy.py, test_least_privilege.py, test_backup_schedule.py)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Values that would be secrets if they sat in an environment (docker inspect shows those).
SECRET_NAME = re.compile(r"PASSWORD|SECRET_KEY|_PIN$|PASSPHRASE|^EVIDENCE_VAULT_(DATABASE|QUEUE)_URL$")
# A URL carrying a password (scheme://user:password@host).
URL_WITH_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]+@")


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return spec


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {str(k): str(v) for k, v in env.items()}


def test_no_secret_is_an_environment_variable_and_every_secret_is_a_file() -> None:
    """Issue #16 item 4: no service passes a password, secret key, PIN or credential-bearing
    URL in its environment (``docker inspect`` shows those); each comes from a compose secret
    file, and the vault's containers read them through EVIDENCE_VAULT_SECRETS_DIR."""
    spec = _spec()
    for name, service in spec["services"].items():
        for key, value in _environment(service).items():
            if key.endswith("_FILE"):
                continue
            assert not SECRET_NAME.search(key), f"{name}: {key} is a secret in the environment"
            assert "PASSWORD" not in value, f"{name}: {key} interpolates a password"
            assert not URL_WITH_PASSWORD.search(value), f"{name}: {key} is a URL with a password"
        for secret in service.get("secrets", []):
            assert secret in spec["secrets"], f"{name}: unknown secret {secret}"
    assert spec["x-vault"]["environment"]["EVIDENCE_VAULT_SECRETS_DIR"] == "/run/secrets"
    assert all(s["file"].startswith("./secrets/") for s in spec["secrets"].values())
    assert "/secrets/" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_vault_reaches_minio_as_its_own_user_and_postgres_as_a_role_without_superuser() -> None:
    """Issue #16 item 6: MinIO's root credentials reach only the MinIO nodes and the one-shot
    minio-setup (deploy/minio_setup.py), which init waits for; the vault's S3 user is its own.
    PostgreSQL's superuser password stays in the postgres container, whose first start runs
    deploy/postgres-init.sh to make the vault's role; the vault's URL names that role."""
    spec = _spec()
    services = spec["services"]
    root_holders = {name for name, s in services.items()
                    if {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} & set(s.get("secrets", []))}
    assert root_holders == {"minio1", "minio2", "minio3", "minio4", "minio-setup"}
    assert spec["x-vault"]["environment"]["EVIDENCE_VAULT_S3_ACCESS_KEY"].startswith("${VAULT_S3_ACCESS_KEY")
    setup = services["minio-setup"]
    assert setup["restart"] == "no" and any("minio_setup.py" in v for v in setup["volumes"])
    assert services["init"]["depends_on"]["minio-setup"] == {"condition": "service_completed_successfully"}
    superuser = {name for name, s in services.items()
                 if "postgres_superuser_password" in s.get("secrets", [])}
    assert superuser == {"postgres"}
    postgres = services["postgres"]
    assert "POSTGRES_USER" not in postgres["environment"]  # the superuser is "postgres", not vault
    assert any(v.startswith("./deploy/postgres-init.sh:/docker-entrypoint-initdb.d/")
               for v in postgres["volumes"])


def test_containers_run_with_read_only_root_file_systems_where_the_image_allows() -> None:
    """Issue #16 item 6: every service but the MinIO nodes (whose server writes its own
    config directory outside the drive) has a read-only root file system; what each writes
    is a named volume or a tmpfs."""
    services = _spec()["services"]
    writable = {name for name, s in services.items() if not s.get("read_only")}
    assert writable == {"minio1", "minio2", "minio3", "minio4"}, writable
    for name in ("api1", "worker", "retention", "ingest", "init"):
        assert "/tmp" in services[name]["tmpfs"], name


def test_the_proxy_is_the_only_way_in_and_tells_the_app_its_public_address() -> None:
    """Issue #16 item 5: only Caddy publishes ports (80 for the redirect and ACME, 443); the
    API instances publish none, sit in its VAULT_UPSTREAMS, trust its forwarded headers, and
    know their public https address; the proxy's healthcheck goes through to an instance."""
    spec = _spec()
    services = spec["services"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"proxy"}
    proxy = services["proxy"]
    assert any(v.startswith("./deploy/Caddyfile:") for v in proxy["volumes"])
    assert proxy["environment"]["VAULT_UPSTREAMS"].split() == ["api1:8000", "api2:8000"]
    assert "8081/healthz" in " ".join(proxy["healthcheck"]["test"])
    for name in ("api1", "api2"):
        assert services[name]["command"][0] == "serve"
        assert services[name]["environment"]["FORWARDED_ALLOW_IPS"] == "*"
    env = spec["x-vault"]["environment"]
    assert env["EVIDENCE_VAULT_WEB_PUBLIC_URL"].startswith("https://${VAULT_PUBLIC_HOST")
    assert env["EVIDENCE_VAULT_WEB_COOKIE_SECURE"] == "true"


def test_backups_run_on_a_schedule_with_healthchecks_that_see_a_missed_round() -> None:
    """Issue #16 item 7: the backup service runs deploy/backup.sh daily (catalog, keys,
    witness) with the vault's home read-only and only DAC_READ_SEARCH; backup-bucket mirrors
    the bucket hourly as the vault's user; each healthcheck fails when its last complete round
    is too old."""
    services = _spec()["services"]
    backup = services["backup"]
    assert "sleep 86400" in backup["command"][0] and "backup.sh" in backup["command"][0]
    assert "vault-keys:/var/lib/evidence-vault:ro" in backup["volumes"]
    assert backup["cap_drop"] == ["ALL"] and backup["cap_add"] == ["DAC_READ_SEARCH"]
    assert "-mmin -1560" in backup["healthcheck"]["test"][1]
    mirror = services["backup-bucket"]
    assert "mc mirror" in mirror["command"][0] and "sleep 3600" in mirror["command"][0]
    assert "MINIO_ROOT_PASSWORD" not in mirror.get("secrets", [])
    assert "-mmin -180" in mirror["healthcheck"]["test"][1]


def test_make_secrets_writes_each_secret_once_consistent_and_private(tmp_path: Path) -> None:
    """Issue #16 item 4: deploy/make-secrets.sh writes every file compose names, in a 0700
    directory; the database URL carries the vault role's password and the queue URL Redis's;
    running it again changes nothing a running stack depends on."""
    target = tmp_path / "secrets"
    for _ in range(2):
        done = subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), str(target)],
                              capture_output=True, text=True, env=dict(os.environ), check=True)
        if _ == 0:
            first = {p.name: p.read_text() for p in target.iterdir()}
    assert "evidence-vault-app" in done.stdout
    assert {p.name: p.read_text() for p in target.iterdir()} == first  # kept, not regenerated
    assert set(first) == set(_spec()["secrets"])
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    password = first["vault_db_password"]
    assert len(password) >= 32 and password != first["postgres_superuser_password"]
    assert first["EVIDENCE_VAULT_DATABASE_URL"] == (
        f"postgresql+psycopg://vault:{password}@postgres:5432/vault")
    assert first["EVIDENCE_VAULT_QUEUE_URL"] == f"redis://:{first['redis_password']}@redis:6379/0"
