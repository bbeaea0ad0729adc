"""Issue #16 item 3: two API instances behind one reverse proxy, on one PostgreSQL catalog.

Two real ``evidence-vault serve`` processes share a PostgreSQL catalog; Debian's nginx spreads
requests over both. Searches through the proxy from concurrent clients each append a custody
event from whichever instance served them: the ledger stays one ordered, verifiable chain.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import HOST, free_port
from vault import Settings, Vault
from vault.access import credentials, identity
from vault.actors import Actor, Role

ROOT = Path(__file__).resolve().parents[2]
ORG = "Housing"
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation=ORG)
REQUESTS = 40

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout}s:\n{log.read_text()[-3000:]}")


def _nginx_conf(tmp: Path, port: int, upstreams: list[int]) -> Path:
    conf = tmp / "nginx.conf"
    servers = "\n".join(f"        server {HOST}:{p};" for p in upstreams)
    conf.write_text(f"""
user root;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream vault_api {{
{servers}
    }}
    server {{
        listen {HOST}:{port};
        location / {{
            proxy_pass http://vault_api;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
""")
    return conf


@dataclass
class Deployment:
    proxy: str  # nginx, in front of both
    instances: list[str]  # each serve process, directly
    token: str  # an administrator's API token
    settings: Settings


@pytest.fixture
def deployment(tmp_path: Path, fresh_postgres_url: str) -> Iterator[Deployment]:
    """Two ``serve`` instances on one PostgreSQL catalog, behind nginx."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing on CI: .ci/run installs Debian's nginx-light")
        pytest.skip("nginx not installed (Debian: apt-get install nginx-light)")
    settings = Settings(home=tmp_path / "home", database_url=fresh_postgres_url)
    with Vault.init(settings) as vault:
        identity.create_user(vault, name="admin", role=Role.ADMINISTRATOR, organisation=ORG,
                             sites=[], actor=OPERATOR)
        token = identity.issue_token(vault, "admin", actor=OPERATOR).token
    env = {**os.environ, "EVIDENCE_VAULT_HOME": str(settings.home_dir),
           "EVIDENCE_VAULT_DATABASE_URL": fresh_postgres_url}
    procs: list[subprocess.Popen[bytes]] = []
    ports = [free_port(), free_port()]
    try:
        for i, port in enumerate(ports):
            log = tmp_path / f"serve-{i}.log"
            with log.open("wb") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "api", "serve", "--host", HOST, "--port", str(port),
                     "--log-level", "warning"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
        for i, (port, proc) in enumerate(zip(ports, procs, strict=True)):
            _wait(f"http://{HOST}:{port}/healthz", proc, tmp_path / f"serve-{i}.log")
        proxy_port = free_port()
        conf = _nginx_conf(tmp_path, proxy_port, ports)
        nginx_log = tmp_path / "nginx.log"
        with nginx_log.open("wb") as out:
            procs.append(subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                                          stdout=out, stderr=subprocess.STDOUT))
        _wait(f"http://{HOST}:{proxy_port}/healthz", procs[-1], nginx_log)
        yield Deployment(f"http://{HOST}:{proxy_port}", [f"http://{HOST}:{p}" for p in ports],
                         token, settings)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_custody_appends_from_two_instances_behind_the_proxy_stay_one_ordered_ledger(
        deployment: Deployment) -> None:
    """Issue #16 item 3: 40 searches from 8 concurrent clients through nginx are served by both
    API processes; each logs its search, and the ledger holds all 40 in one hash chain that
    ``custody verify`` (a third process) accepts."""
    base, token, settings = deployment.proxy, deployment.token, deployment.settings

    def search(i: int) -> str:
        request = urllib.request.Request(
            f"{base}/recordings?source=cam-{i}",
            headers={"Authorization": f"Bearer {token}", "X-Purpose": "audit of the proxy",
                     "X-Reference": f"REF/{i}", "X-Lawful-Basis": "DPA 2018 s.35"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            return str(response.headers["X-Upstream"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        upstreams = list(pool.map(search, range(REQUESTS)))
    assert len(set(upstreams)) == 2, upstreams  # both instances served searches

    with Vault.open(settings) as vault:
        searched = vault.ledger.events(action="searched", limit=10_000)
        assert len(searched) == REQUESTS
        seqs = [e.seq for e in vault.ledger.events(limit=100_000)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, no duplicate
    env = {**os.environ, "EVIDENCE_VAULT_HOME": str(settings.home_dir),
           "EVIDENCE_VAULT_DATABASE_URL": str(settings.database_url)}
    verify = subprocess.run([sys.executable, "-m", "api", "custody", "verify"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_web_session_made_on_one_instance_works_on_the_other_and_ends_everywhere(
        deployment: Deployment) -> None:
    """Issue #16 item 3: sessions are not per process. Signing in (password, then the
    authenticator code) through instance A gives a session instance B honours; signing out on
    B ends it on A too. The proxy may send each request to either."""
    import httpx
    import pyotp

    from tests.web.conftest import PASSWORD, csrf_of

    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    with Vault.open(deployment.settings, clock=lambda: past) as vault:
        user = identity.create_user(vault, name="asb", role=Role.ASB_OFFICER, organisation=ORG,
                                    sites=["Riverside"], actor=OPERATOR)
        credentials.set_password(vault, "asb", PASSWORD, actor=OPERATOR)
        enrolment = credentials.begin_enrolment(vault, user.id, issuer="test")
        credentials.check_code(vault, user.id, pyotp.TOTP(enrolment.secret).at(past), enrolling=True)
    a_url, b_url = deployment.instances
    with httpx.Client(base_url=a_url, follow_redirects=True, timeout=60) as a:
        page = a.get("/sign-in")
        r = a.post("/sign-in", data={"username": "asb", "password": PASSWORD,
                                     "csrf_token": csrf_of(page.text)})
        assert "/sign-in/code" in str(r.url), r.text[:300]
        r = a.post("/sign-in/code", data={"code": pyotp.TOTP(enrolment.secret).now(),
                                          "csrf_token": csrf_of(r.text)})
        assert str(r.url).endswith("/find"), r.text[:300]
        cookies = dict(a.cookies)
    with httpx.Client(base_url=b_url, follow_redirects=True, timeout=60, cookies=cookies) as b:
        r = b.get("/find")
        assert r.status_code == 200 and str(r.url).endswith("/find")  # B knows A's session
        r = b.post("/sign-out", data={"csrf_token": csrf_of(b.get("/account").text)})
        assert "signed_out=true" in str(r.url)
    with httpx.Client(base_url=a_url, follow_redirects=True, timeout=60, cookies=cookies) as a:
        assert "/sign-in" in str(a.get("/find").url)  # ended on A as well
