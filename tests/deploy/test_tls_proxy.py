"""Issue #16 item 5: the TLS reverse proxy in front of the API (``deploy/Caddyfile``).

The real Caddy (Debian's ``caddy``) runs the very Caddyfile compose mounts, on loopback, with a
certificate from a test CA made here; two real ``evidence-vault serve`` processes sit behind
it, told their public address, as compose's ``api1`` and ``api2`` do. A police recipient's share link is opened and its footage downloaded
through the proxy over TLS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers import HOST, free_port
from vault import Settings, Vault
from vault.capture import Capture
from vault.access import identity
from vault.casework import shares as share_ops
from vault.actors import Actor, Role

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "deploy" / "Caddyfile"
PUBLIC_HOST = "localhost"
ORG = "Housing"
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation=ORG)
FOOTAGE = b"footage through the proxy " * 4000
MAX_REQUEST = 1024 * 1024  # the test's limits, small so a test body can pass them
MAX_UPLOAD = 4 * 1024 * 1024

pytestmark = pytest.mark.slow


def _caddy() -> str:
    found = shutil.which("caddy")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("caddy is missing on CI: .ci/run installs Debian's caddy")
        pytest.skip("caddy not installed (Debian: apt-get install caddy)")
    return found


def _test_ca(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed for ``localhost`` and 127.0.0.1 (PEM files:
    CA certificate, server certificate, server key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Evidence vault test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PUBLIC_HOST)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(PUBLIC_HOST), x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp / "ca.pem", tmp / "vault.pem", tmp / "vault.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, *, verify: ssl.SSLContext | bool = True,
          timeout: float = 90, ok: int | None = None) -> None:
    """Wait until ``url`` answers (with status ``ok`` if given, else anything below 500)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            status = httpx.get(url, verify=verify, timeout=2).status_code
            if status == ok or (ok is None and status < 500):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout}s:\n{log.read_text()[-3000:]}")


@dataclass
class Proxied:
    public_url: str  # https://localhost:<port>, through Caddy
    http_url: str  # Caddy's plain-HTTP port (redirects)
    tls: ssl.SSLContext  # trusts the test CA only
    settings: Settings
    share_token: str
    recording_id: str
    admin_token: str
    instances: list[subprocess.Popen[bytes]]  # the serve processes behind the proxy
    health_url: str  # what compose's healthcheck asks, inside the proxy's container


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    """Two ``serve`` processes behind Caddy running deploy/Caddyfile with a test certificate."""
    caddy = _caddy()
    ca, cert, key = _test_ca(tmp_path)
    https_port, http_port, health_port = free_port(), free_port(), free_port()
    api_ports = [free_port(), free_port()]
    public_url = f"https://{PUBLIC_HOST}:{https_port}"
    settings = Settings(home=tmp_path / "home", segment_size=4096)
    now = dt.datetime.now(dt.UTC)
    with Vault.init(settings) as vault:
        identity.create_user(vault, name="admin", role=Role.ADMINISTRATOR, organisation=ORG,
                             sites=[], actor=OPERATOR)
        admin_token = identity.issue_token(vault, "admin", actor=OPERATOR).token
        import io

        recording = vault.put_stream(
            io.BytesIO(FOOTAGE),
            Capture(source_id="cam-1", captured_at=now - dt.timedelta(hours=1), site="Riverside"),
            actor=OPERATOR,
        )
        created = share_ops.create_share(
            vault, actor=OPERATOR, recipient="DC Sam Patel <sam@police.example.uk>",
            recipient_org="Northshire Police", purpose="Investigate the damage",
            lawful_basis="DPA 2018 s.35", recording_ids=[recording.id],
            expires_at=now + dt.timedelta(days=7), allow_download=True, max_downloads=2)
    serve_env = {**os.environ, "EVIDENCE_VAULT_HOME": str(settings.home_dir),
                 "EVIDENCE_VAULT_SEGMENT_SIZE": "4096",
                 # What compose sets on every API instance behind the proxy.
                 "EVIDENCE_VAULT_WEB_PUBLIC_URL": public_url,
                 "EVIDENCE_VAULT_WEB_COOKIE_SECURE": "true"}
    caddy_env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "caddy-data"),
                 "XDG_CONFIG_HOME": str(tmp_path / "caddy-config"),
                 "VAULT_PUBLIC_HOST": PUBLIC_HOST, "VAULT_TLS": f"{cert} {key}",
                 "VAULT_UPSTREAMS": " ".join(f"{HOST}:{p}" for p in api_ports),
                 "VAULT_MAX_REQUEST_SIZE": str(MAX_REQUEST), "VAULT_MAX_UPLOAD_SIZE": str(MAX_UPLOAD),
                 "CADDY_HTTPS_PORT": str(https_port), "CADDY_HTTP_PORT": str(http_port),
                 "CADDY_HEALTH_PORT": str(health_port),
                 "CADDY_GLOBAL_OPTIONS": f"default_bind {HOST}"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, port in enumerate(api_ports):
            with (tmp_path / f"serve-{i}.log").open("wb") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "api", "serve", "--host", HOST, "--port", str(port),
                     "--log-level", "warning"], cwd=ROOT, env=serve_env, stdout=out,
                    stderr=subprocess.STDOUT))
        for i, port in enumerate(api_ports):
            _wait(f"http://{HOST}:{port}/healthz", procs[i], tmp_path / f"serve-{i}.log")
        caddy_log = tmp_path / "caddy.log"
        with caddy_log.open("wb") as out:
            procs.append(subprocess.Popen(
                [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                cwd=tmp_path, env=caddy_env, stdout=out, stderr=subprocess.STDOUT))
        tls = ssl.create_default_context(cafile=str(ca))
        _wait(f"http://{HOST}:{health_port}/healthz", procs[-1], caddy_log, ok=200)
        _wait(f"{public_url}/healthz", procs[-1], caddy_log, verify=tls)
        yield Proxied(public_url, f"http://{PUBLIC_HOST}:{http_port}", tls, settings, created.token,
                      recording.id, admin_token, procs[:2], f"http://{HOST}:{health_port}/healthz")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_share_link_opens_through_the_tls_proxy_with_secure_cookie_and_hsts(proxied: Proxied) -> None:
    """Issue #16 item 5: a police recipient opens the share link at the public name over TLS
    (a certificate the client checks against the CA): the page answers, with HSTS, the
    app's own CSP kept, no ``Server`` banner, and its CSRF cookie ``Secure`` and
    ``__Host-``; the download through the proxy returns the footage byte for byte, and the
    custody event names the client's address, not a proxy's."""
    p = proxied
    with httpx.Client(base_url=p.public_url, verify=p.tls, timeout=60) as recipient:
        page = recipient.get(f"/s/{p.share_token}")
        assert page.status_code == 200, page.text[:500]
        assert "DC Sam Patel" in page.text and "Northshire Police" in page.text
        assert page.headers["strict-transport-security"].startswith("max-age=")
        assert "script-src 'self'" in page.headers["content-security-policy"]  # the app's, kept
        assert page.headers["x-frame-options"] == "DENY"
        assert "server" not in page.headers
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-ev_csrf=") and "; secure" in cookie.lower()
        from tests.web.conftest import csrf_of

        r = recipient.post(f"/s/{p.share_token}/recordings/{p.recording_id}/download",
                           data={"csrf_token": csrf_of(page.text), "acknowledge": "yes"})
        assert r.status_code == 200, r.text[:500]
        assert r.content == FOOTAGE
        assert r.headers["strict-transport-security"].startswith("max-age=")
    with Vault.open(p.settings) as vault:
        downloads = vault.ledger.events(action="downloaded", limit=10)
        assert downloads and downloads[-1].event.client_addr == HOST


def test_plain_http_is_redirected_to_https_and_an_untrusted_client_is_refused(proxied: Proxied) -> None:
    """Issue #16 item 5: a link typed as http:// is sent to https:// at the same path (never
    served in the clear); the certificate is the one the deployment gave Caddy."""
    r = httpx.get(f"{proxied.http_url}/s/{proxied.share_token}", timeout=30)
    assert r.status_code in (301, 308)
    assert r.headers["location"].startswith(f"https://{PUBLIC_HOST}")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{proxied.public_url}/healthz", timeout=30)  # the system CAs do not know it


def test_request_size_limits_refuse_oversized_bodies_before_the_api(proxied: Proxied) -> None:
    """Issue #16 item 5: a body over the general limit is refused by the proxy (413) whatever
    the route; footage uploads (POST /recordings) have their own, larger limit: an upload
    under it is stored, one over it is refused and nothing is stored."""
    p = proxied
    auth = {"Authorization": f"Bearer {p.admin_token}", "Content-Type": "application/octet-stream"}
    query = {"source": "cam-2", "captured_at": "2026-01-01T10:00:00Z"}
    with httpx.Client(base_url=p.public_url, verify=p.tls, timeout=120) as c:
        big_form = c.post("/sign-in", content=b"x" * (MAX_REQUEST + 1),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert big_form.status_code == 413
        ok = c.post("/recordings", params=query, headers=auth, content=b"a" * (2 * MAX_REQUEST))
        assert ok.status_code == 201, ok.text[:500]
        too_big = c.post("/recordings", params={**query, "source": "cam-3"}, headers=auth,
                         content=b"b" * (MAX_UPLOAD + 1))
        assert too_big.status_code == 413
    from sqlalchemy import func, select

    from vault.storage.catalog import Recording

    with Vault.open(p.settings) as vault, vault.sessions() as session:
        stored = session.scalar(select(func.count()).where(Recording.source_id == "cam-3"))
    assert stored == 0


def test_the_proxy_steps_around_an_api_instance_that_died(proxied: Proxied) -> None:
    """Issue #16 item 5 (several API instances): kill -9 one of the two instances; every
    request through the proxy still succeeds (a request sent to the dead one is tried on the
    other), the share link included; the proxy's own healthcheck stays healthy while one
    instance answers, and fails once none does."""
    victim = proxied.instances[0]
    victim.kill()
    victim.wait()
    with httpx.Client(base_url=proxied.public_url, verify=proxied.tls, timeout=60) as c:
        statuses = [c.get("/healthz").status_code for _ in range(8)]
        assert statuses == [200] * 8
        assert c.get(f"/s/{proxied.share_token}").status_code == 200
    assert httpx.get(proxied.health_url, timeout=30).status_code == 200
    proxied.instances[1].kill()
    proxied.instances[1].wait()
    assert httpx.get(proxied.health_url, timeout=30).status_code >= 500  # none left: unhealthy
