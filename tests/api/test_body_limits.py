"""Request bodies are authenticated before they are read and capped per route (issue #11
finding 8), checked against a real ``evidence-vault serve`` (uvicorn) on loopback over raw
sockets, so what is measured is what a client on the network could do."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from api._body import BODY_LIMITS, DEFAULT_BODY_LIMIT, limit_for
from tests.api.conftest import World
from vault.access import identity
from vault.actors import Actor, Role
from vault.config import Settings
from vault.vault import Vault

HUGE = 57_000_000  # the body size of the finding


@dataclass
class Server:
    port: int
    pid: int
    token: str

    def rss(self) -> int:
        """The server process's resident memory, bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")  # pragma: no cover


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("served") / "home"
    operator = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation="Northside Homes")
    with Vault.init(Settings(home=home)) as vault:
        identity.create_user(vault, name="admin", role=Role.ADMINISTRATOR,
                             organisation="Northside Homes", actor=operator)
        token = identity.issue_token(vault, "admin", actor=operator).token
    port = _free_port()
    env = {**os.environ, "EVIDENCE_VAULT_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
                time.sleep(0.2)
        yield Server(port, proc.pid, token)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _send(server: Server, head: str, body_part: bytes, *, timeout: float = 10) -> tuple[int, dict, float]:  # type: ignore[type-arg]
    """Send ``head`` and the first ``body_part`` of a body, then read the answer: its status,
    JSON body and how long it took. The rest of the declared body is never sent."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        started = time.monotonic()
        sock.sendall(head.encode("latin-1") + b"\r\n" + body_part)
        data = b""
        while b"\r\n\r\n" not in data or not _complete(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        elapsed = time.monotonic() - started
    status = int(data.split(b" ", 2)[1])
    payload = json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")
    return status, payload, elapsed


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _head(path: str, *, length: int | None, token: str | None = None, chunked: bool = False) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return "\r\n".join(lines) + "\r\n"


def test_huge_unauthenticated_body_is_refused_before_it_is_read(server: Server) -> None:
    """Issue #11 finding 8: a 57 MB JSON body without a token was read and parsed (server memory
    +230 MB) before the token was checked. Now the 401 comes before the body: the server
    answers having received 1 MiB of the 57 MB, at once, and its memory does not grow."""
    before = server.rss()
    junk = b'{"recipient": "' + b"A" * (1024 * 1024)
    for path in ("/shares", "/cases", "/sars", "/exports", "/recordings?source=x&captured_at=2026-11-25T10:00Z"):
        status, body, elapsed = _send(server, _head(path, length=HUGE), junk)
        assert status == 401, (path, body)
        assert body["error"] == "unauthenticated"
        assert elapsed < 5, f"{path}: answered after {elapsed:.1f}s: it waited for the body"
    bad_token = _head("/shares", length=HUGE, token="evt_not-a-real-token")
    assert _send(server, bad_token, junk)[0] == 401
    assert server.rss() - before < 20 * 1024 * 1024


def test_authenticated_body_over_the_route_limit_is_413(server: Server) -> None:
    """Issue #11 finding 8: a body over the route's limit is refused with 413 and a clear
    message: at once when its Content-Length says so, and at the byte that passes the limit
    when it is chunked (no length to check up front)."""
    status, body, elapsed = _send(server, _head("/shares", length=HUGE, token=server.token), b"{")
    assert status == 413 and body["error"] == "too_large"
    assert "1 MiB" in body["detail"] and "POST /shares" in body["detail"]
    assert elapsed < 5

    piece = b"A" * (256 * 1024)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(6))  # 1.5 MiB
    status, body, _ = _send(server, _head("/shares", length=None, token=server.token, chunked=True),
                            chunks)
    assert status == 413 and "POST /shares" in body["detail"]


def test_small_authenticated_body_still_reaches_the_route(server: Server) -> None:
    """Issue #11 finding 8: the gate changes nothing for a body within the limit."""
    payload = b'{"recipient": "x"}'
    status, body, _ = _send(server, _head("/shares", length=len(payload), token=server.token), payload)
    assert status == 422, body  # the route ran and validated it: fields are missing


def test_limits_table() -> None:
    """Issue #11 finding 8: every route has a limit; only the streamed upload is unbounded."""
    assert limit_for("POST /shares") == DEFAULT_BODY_LIMIT
    assert [route for route, limit in BODY_LIMITS.items() if limit is None] == ["POST /recordings"]


def test_body_route_authenticates_once(world: World) -> None:
    """Issue #11 finding 8: a request with a body is authenticated by the gate, and the route
    uses that principal: one refusal event for one refused request, not two."""
    before = world.denials()
    refused = world.client.post("/shares", json={"recipient": "x"},
                                headers={"Authorization": "Bearer evt_unknown"})
    assert refused.status_code == 401 and refused.json()["error"] == "unauthenticated"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert world.denials() == before + 1
    denied = world.vault.ledger.events(action="access_denied", limit=100_000)[-1].event
    assert denied.details.get("route") == "POST /shares"
