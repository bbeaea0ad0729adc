"""Issue #16 items 1 and 2 in the compose file: four erasure-coded MinIO nodes behind one
balancer, and a Redis job queue every vault container shares (validated offline: there is no
Docker engine on CI; tests/test_deploy.py runs docker-compose's own schema check)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return spec


def test_minio_runs_as_four_erasure_coded_nodes_each_on_its_own_volume() -> None:
    """Issue #16 item 2: four MinIO nodes form one erasure set (the same server command naming
    all four), each with its own drive volume and a healthcheck."""
    services = _spec()["services"]
    nodes = [f"minio{i}" for i in range(1, 5)]
    volumes = []
    for name in nodes:
        node = services[name]
        assert node["command"][:2] == ["server", "http://minio{1...4}/data"], name
        assert node["hostname"] == name and "healthcheck" in node
        volumes.append(node["volumes"][0].split(":")[0])
    assert len(set(volumes)) == 4 and set(volumes) <= set(_spec()["volumes"])


def test_the_vault_reaches_minio_through_a_balancer_over_every_node() -> None:
    """Issue #16 item 2: the vault's S3 endpoint is the balancer, which lists all four nodes
    and whose healthcheck asks for cluster write quorum, not one node's liveness."""
    spec = _spec()
    assert spec["x-vault"]["environment"]["EVIDENCE_VAULT_S3_ENDPOINT"] == "minio:9000"
    balancer = spec["services"]["minio"]
    assert "/minio/health/cluster" in " ".join(balancer["healthcheck"]["test"])
    mount = next(v for v in balancer["volumes"] if "minio-lb.conf" in v)
    conf = (ROOT / mount.split(":")[0]).read_text()
    assert re.findall(r"server (minio\d):9000", conf) == ["minio1", "minio2", "minio3", "minio4"]
    assert "proxy_request_buffering off" in conf and "client_max_body_size 0" in conf


def test_every_vault_container_shares_one_password_protected_redis_queue(tmp_path: Path) -> None:
    """Issue #16 item 1: queue_url (a secret file) names the Redis service with its password
    for every vault container, so worker replicas on any host drain one queue; Redis requires
    that same password (its config is a secret too); init waits for Redis."""
    import os
    import subprocess

    spec = _spec()
    assert "EVIDENCE_VAULT_QUEUE_URL" in spec["x-vault"]["secrets"]
    secrets = tmp_path / "secrets"
    subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), str(secrets)], check=True,
                   capture_output=True, env=dict(os.environ))
    password = (secrets / "redis_password").read_text()
    assert (secrets / "EVIDENCE_VAULT_QUEUE_URL").read_text() == f"redis://:{password}@redis:6379/0"
    assert (secrets / "redis.conf").read_text().strip() == f"requirepass {password}"
    redis = spec["services"]["redis"]
    assert redis["command"][:2] == ["redis-server", "/run/secrets/redis.conf"]
    assert "redis.conf" in redis["secrets"] and "healthcheck" in redis
    assert spec["services"]["init"]["depends_on"]["redis"] == {"condition": "service_healthy"}
