"""Object store conformance: one suite, every backend (local directory, MinIO, SeaweedFS).

The ``store``/``make_store`` fixtures (tests/conftest.py) run each conformance test on every
backend whose server the suite can start. Local-only tests at the end cover crash and disk-full
behaviour and path tricks against the filesystem; S3-only tests cover reachability and lifecycle.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from vault.config import Settings
from vault.errors import InvalidInput, NotFound, StorageError
from vault.storage.objectstore import LocalStore, ObjectInfo, ObjectStore, S3Store, open_store

StoreFactory = Callable[..., ObjectStore]  # the make_store fixtures (tests/conftest.py)
S3_TEST_PART_SIZE = 5 << 20  # the part size those fixtures give S3 stores
KEY = "recordings/ab/abcdef0123"
BIG = 12 << 20  # > 2 parts of S3_TEST_PART_SIZE


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating bytes (so a misplaced range read shows)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


class Unseekable(io.RawIOBase):
    """A source stream that cannot seek or tell its size, like a pipe or an HTTP upload."""

    def __init__(
        self,
        data: bytes,
        *,
        chunk: int = 64 << 10,
        fail_after: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._chunk = chunk
        self._fail_after = fail_after
        self._error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self._pos >= self._fail_after:
            assert self._error is not None
            raise self._error
        n = self._chunk if size < 0 else min(size, self._chunk)
        chunk = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(chunk)
        return chunk


def read_all(store: ObjectStore, key: str) -> bytes:
    with store.open(key) as f:
        return f.read()


def versions_of(store: ObjectStore, key: str) -> list[Any]:
    """Every version (delete markers too) the server still holds for ``key``."""
    if not isinstance(store, S3Store):
        return [key] if store.exists(key) else []
    return [
        o
        for o in store._client.list_objects(
            store.bucket, prefix=key, recursive=True, include_version=True
        )
        if o.object_name == key
    ]


# --------------------------------------------------------------------------------------------
# Conformance: every backend
# --------------------------------------------------------------------------------------------


def test_store_satisfies_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    store.check()
    # The conformance buckets have no object lock: no legal holds, and saying so lets the
    # vault skip its hold lookup on every put.
    assert store.legal_holds is False
    store.put(KEY, io.BytesIO(b"x"), length=1)
    assert store.set_legal_hold(KEY, True) is False


@pytest.mark.parametrize("size", [0, 1, 1000], ids=["empty", "one-byte", "small"])
def test_round_trip(store: ObjectStore, size: int) -> None:
    data = payload(size)
    info = store.put(KEY, io.BytesIO(data), length=size)
    assert isinstance(info, ObjectInfo)
    assert (info.key, info.size) == (KEY, size)
    assert read_all(store, KEY) == data
    assert store.stat(KEY).size == size


def test_round_trip_multipart(store: ObjectStore) -> None:
    data = payload(BIG, seed=1)
    info = store.put(KEY, io.BytesIO(data), length=len(data))
    assert info.size == BIG
    assert read_all(store, KEY) == data
    if isinstance(store, S3Store):
        # A multipart ETag is "<md5 of part md5s>-<parts>": proof the upload really was split.
        assert store.part_size == S3_TEST_PART_SIZE
        assert info.etag is not None and info.etag.endswith("-3")


def test_object_data_goes_unsigned_and_control_requests_signed(
        make_s3_store: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Over plain HTTP the footage is not hashed again for the request signature (the
    # ciphertext authenticates itself); the server must still take it, and bucket and
    # multipart control requests stay fully signed.
    store = make_s3_store()
    assert isinstance(store, S3Store)
    sent: list[tuple[str, str, int]] = []
    http = store._client._http
    real = http.urlopen

    def spy(method: str, url: str, body: Any = None, headers: Any = None, **kw: Any) -> Any:
        sent.append((method, headers.get("x-amz-content-sha256", ""), len(body or b"")))
        return real(method, url, body=body, headers=headers, **kw)

    monkeypatch.setattr(http, "urlopen", spy)
    data = payload(BIG, seed=7)
    store.put(KEY, io.BytesIO(data), length=len(data))
    assert read_all(store, KEY) == data
    parts = [sha for method, sha, n in sent if method == "PUT" and n >= 64 << 10]
    assert parts == ["UNSIGNED-PAYLOAD"] * 3  # 12 MiB in 5 MiB parts
    small = [sha for method, sha, n in sent if n < 64 << 10]
    assert small and all(len(sha) == 64 for sha in small)  # a hex SHA-256 in each signature


@pytest.mark.parametrize("size", [0, 10, BIG], ids=["empty", "small", "multipart"])
def test_unknown_length_streams(store: ObjectStore, size: int) -> None:
    data = payload(size, seed=2)
    info = store.put(KEY, Unseekable(data), length=-1)  # type: ignore[arg-type]
    assert info.size == size
    assert store.stat(KEY).size == size
    assert read_all(store, KEY) == data
    if isinstance(store, S3Store) and size == BIG:
        assert info.etag is not None and info.etag.endswith("-3")


def test_stream_shorter_than_length_is_refused(store: ObjectStore) -> None:
    with pytest.raises(InvalidInput, match="ended after 5 of 10 bytes"):
        store.put(KEY, io.BytesIO(b"12345"), length=10)
    assert not store.exists(KEY)
    assert list(store.list()) == []


def test_open_streams_in_chunks(store: ObjectStore) -> None:
    data = payload(3 << 20, seed=3)
    store.put(KEY, io.BytesIO(data), length=len(data))
    digest = hashlib.sha256()
    with store.open(KEY) as f:
        while chunk := f.read(256 << 10):
            digest.update(chunk)
    assert digest.digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 100), (0, 1), (5000, 4096), (9999, 1), (9000, 1000), (0, 10000), (10000, 0), (42, 0)],
    ids=["start", "first-byte", "middle", "last-byte", "end", "whole", "empty-at-end", "empty"],
)
def test_range_reads(store: ObjectStore, offset: int, length: int) -> None:
    data = payload(10000, seed=4)
    store.put(KEY, io.BytesIO(data), length=len(data))
    assert store.read_at(KEY, offset, length) == data[offset : offset + length]


def test_range_reads_across_parts(store: ObjectStore) -> None:
    data = payload(BIG, seed=5)
    store.put(KEY, Unseekable(data), length=-1)  # type: ignore[arg-type]
    for offset in (S3_TEST_PART_SIZE - 10, 2 * S3_TEST_PART_SIZE - 1, BIG - 7):
        assert store.read_at(KEY, offset, 7) == data[offset : offset + 7]


@pytest.mark.parametrize(
    ("offset", "length"),
    [(9990, 11), (10000, 1), (20000, 10), (10001, 0), (-1, 5), (0, -1)],
    ids=[
        "overlaps-end",
        "at-end",
        "far-past-end",
        "empty-past-end",
        "negative-offset",
        "negative-length",
    ],
)
def test_range_past_the_end_is_a_clear_error(store: ObjectStore, offset: int, length: int) -> None:
    store.put(KEY, io.BytesIO(payload(10000)), length=10000)
    with pytest.raises(InvalidInput, match=KEY):
        store.read_at(KEY, offset, length)


def test_stat_and_exists(store: ObjectStore) -> None:
    assert not store.exists(KEY)
    info = store.put(KEY, io.BytesIO(b"abc"), length=3)
    assert store.exists(KEY)
    stat = store.stat(KEY)
    assert (stat.key, stat.size) == (KEY, 3)
    if isinstance(store, S3Store):
        assert stat.etag == info.etag
    # A prefix of a key, or a key below it, is not an object.
    assert not store.exists("recordings/ab")
    assert not store.exists(KEY + "/more")


def test_list_by_prefix_in_key_order(store: ObjectStore) -> None:
    keys = ["a/1", "a/2", "a/sub/3", "a-b", "ab/c", "b/x", "a.txt"]
    for key in keys:
        store.put(key, io.BytesIO(key.encode()), length=len(key))
    assert list(store.list()) == sorted(keys)
    assert list(store.list("a/")) == ["a/1", "a/2", "a/sub/3"]
    assert list(store.list("a")) == sorted(k for k in keys if k.startswith("a"))
    assert list(store.list("a/s")) == ["a/sub/3"]
    assert list(store.list("ab/c")) == ["ab/c"]
    assert list(store.list("zzz")) == []
    assert list(store.list("nothing/here/")) == []


def test_objects_are_immutable(store: ObjectStore) -> None:
    store.put(KEY, io.BytesIO(b"original"), length=8)
    with pytest.raises(InvalidInput, match="already exists"):
        store.put(KEY, io.BytesIO(b"replaced"), length=8)
    with pytest.raises(InvalidInput, match="already exists"):
        store.put(KEY, Unseekable(b"replaced"), length=-1)  # type: ignore[arg-type]
    assert read_all(store, KEY) == b"original"


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put(KEY, io.BytesIO(b"x" * 10), length=10)
    store.put("recordings/ab/other", io.BytesIO(b"y"), length=1)
    assert store.delete(KEY) == 1
    assert store.delete(KEY) == 0
    assert store.delete("recordings/never/was") == 0
    assert not store.exists(KEY)
    assert list(store.list()) == ["recordings/ab/other"]
    with pytest.raises(NotFound):
        store.read_at(KEY, 0, 1)
    assert versions_of(store, KEY) == []
    # The key is free again after a delete.
    store.put(KEY, io.BytesIO(b"again"), length=5)
    assert read_all(store, KEY) == b"again"


def test_delete_removes_every_version_on_a_versioned_bucket(make_store: StoreFactory) -> None:
    store = make_store(object_lock=True)  # object lock turns versioning on
    store.put(KEY, io.BytesIO(b"v1"), length=2)
    expected = 1
    if isinstance(store, S3Store):
        # Versions made behind the store's back (another client, an old release) go too.
        store._client.put_object(store.bucket, KEY, io.BytesIO(b"v2"), 2)
        store._client.remove_object(store.bucket, KEY)  # leaves a delete marker
        store._client.put_object(store.bucket, KEY, io.BytesIO(b"v3"), 2)
        expected = len(versions_of(store, KEY))
        assert expected == 4
    assert store.delete(KEY) == expected
    assert versions_of(store, KEY) == []
    assert not store.exists(KEY)
    assert store.delete(KEY) == 0


def test_legal_hold(make_store: StoreFactory) -> None:
    store = make_store(object_lock=True)
    store.put(KEY, io.BytesIO(b"evidence"), length=8)
    supported = store.set_legal_hold(KEY, True)
    assert supported is isinstance(store, S3Store)
    if not supported:
        assert store.delete(KEY) == 1
        return
    assert isinstance(store, S3Store)
    assert store.is_legal_hold(KEY)
    with pytest.raises(StorageError, match="legal hold"):
        store.delete(KEY)
    assert read_all(store, KEY) == b"evidence"  # nothing was removed
    assert store.set_legal_hold(KEY, False) is True
    assert not store.is_legal_hold(KEY)
    assert store.delete(KEY) == 1
    assert versions_of(store, KEY) == []


def test_legal_hold_without_object_lock_reports_unsupported(store: ObjectStore) -> None:
    store.put(KEY, io.BytesIO(b"evidence"), length=8)
    assert store.set_legal_hold(KEY, True) is False
    assert store.delete(KEY) == 1


BAD_KEYS = [
    "",
    "/etc/passwd",
    "../escape",
    "a/../../escape",
    "a/..",
    "..",
    ".",
    "./a",
    "a/./b",
    "a//b",
    "a/",
    "/",
    "a\\b",
    "..\\escape",
    "a\x00b",
    "a b",
    "caf\u00e9",
    "a\nb",
    "~/x",
    ".hidden",
    "a/.tmp-123",
    "x" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=[repr(k)[:20] for k in BAD_KEYS])
def test_path_tricks_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        store.put(key, io.BytesIO(b"x"), length=1)
    for call in (
        lambda: store.read_at(key, 0, 1),
        lambda: store.open(key),
        lambda: store.stat(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.set_legal_hold(key, True),
    ):
        with pytest.raises(InvalidInput):
            call()
    assert list(store.list()) == []


@pytest.mark.parametrize("prefix", ["/", "../", "a/../..", "a\\b", "a\x00"])
def test_bad_list_prefix_is_refused(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidInput):
        list(store.list(prefix))


def test_missing_key_is_not_found(store: ObjectStore) -> None:
    for call in (
        lambda: store.stat(KEY),
        lambda: store.open(KEY),
        lambda: store.read_at(KEY, 0, 1),
        lambda: store.read_at(KEY, 0, 0),
        lambda: store.set_legal_hold(KEY, True),
    ):
        with pytest.raises(NotFound, match=KEY):
            call()
    assert store.exists(KEY) is False
    assert store.delete(KEY) == 0


def test_source_failure_leaves_nothing(store: ObjectStore) -> None:
    source = Unseekable(payload(BIG), fail_after=7 << 20, error=RuntimeError("camera unplugged"))
    with pytest.raises(RuntimeError, match="camera unplugged"):
        store.put(KEY, source, length=-1)  # type: ignore[arg-type]
    assert not store.exists(KEY)
    assert list(store.list()) == []


# --------------------------------------------------------------------------------------------
# S3 only
# --------------------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_endpoint_fails_fast() -> None:
    port = closed_port()
    store = S3Store(f"127.0.0.1:{port}", "key", "secret", "evidence")
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        store.check()
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith(f"cannot reach S3 endpoint 127.0.0.1:{port}: ")
    assert "\n" not in message
    calls: list[Callable[[], object]] = [
        lambda: store.stat(KEY),
        lambda: store.put(KEY, io.BytesIO(b"x"), length=1),
    ]
    for call in calls:
        with pytest.raises(StorageError, match="cannot reach S3 endpoint"):
            call()


def test_silent_endpoint_times_out() -> None:
    # Accepts the TCP connection (the kernel backlog does) but never answers a request.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = S3Store(f"127.0.0.1:{port}", "key", "secret", "evidence", read_timeout=1)
        started = time.monotonic()
        with pytest.raises(StorageError, match=f"cannot reach S3 endpoint 127.0.0.1:{port}: "):
            store.check()
        assert time.monotonic() - started < 10


def test_wrong_credentials_are_a_storage_error(minio_server: Any) -> None:
    store = S3Store(minio_server.endpoint, minio_server.access_key, "wrong-secret", "evidence")
    with pytest.raises(StorageError, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKey"):
        store.check()


def test_missing_bucket_is_not_created_when_told_not_to(make_s3_store: StoreFactory) -> None:
    existing = make_s3_store()
    assert isinstance(existing, S3Store)
    store = S3Store(
        existing.endpoint,
        existing._client._provider.retrieve().access_key,  # type: ignore[union-attr]
        existing._client._provider.retrieve().secret_key,  # type: ignore[union-attr]
        existing.bucket + "-missing",
        create_bucket=False,
    )
    with pytest.raises(StorageError, match="does not exist"):
        store.check()


def test_expiry_rule(make_s3_store: StoreFactory) -> None:
    store = make_s3_store()
    assert isinstance(store, S3Store)
    assert store.set_expiry_rule(23, prefix="recordings/") is True
    config = store._client.get_bucket_lifecycle(store.bucket)
    assert config is not None
    rules = [(r.rule_id, r.expiration.days if r.expiration else None) for r in config.rules]
    assert rules == [("evidence-vault-expiry", 23)]
    with pytest.raises(InvalidInput):
        store.set_expiry_rule(0)


def test_part_size_below_s3_minimum_is_refused() -> None:
    with pytest.raises(InvalidInput, match="part size"):
        S3Store("127.0.0.1:9", "k", "s", "b", part_size=1 << 20)


# --------------------------------------------------------------------------------------------
# Local store only
# --------------------------------------------------------------------------------------------


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_local_source_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    source = Unseekable(payload(3 << 20), fail_after=1 << 20, error=RuntimeError("unplugged"))
    with pytest.raises(RuntimeError):
        store.put(KEY, source, length=-1)  # type: ignore[arg-type]
    assert leftovers(tmp_path / "objects") == []


def test_local_disk_full_is_a_storage_error_naming_the_key(tmp_path: Path) -> None:
    import errno

    store = LocalStore(tmp_path / "objects")
    source = Unseekable(
        payload(3 << 20),
        fail_after=1 << 20,
        error=OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    )
    with pytest.raises(StorageError, match=f"cannot store object {KEY}: disk full"):
        store.put(KEY, source, length=-1)  # type: ignore[arg-type]
    assert leftovers(tmp_path / "objects") == []
    assert not store.exists(KEY)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_local_real_write_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    # A real failing write(2): a file-size limit makes the kernel refuse bytes past 1 MiB
    # (EFBIG), as a full disk would (ENOSPC). Run in a child so the limit cannot hurt pytest.
    root = tmp_path / "objects"
    script = textwrap.dedent(f"""
        import io, resource, signal, sys
        from vault.storage.objectstore import LocalStore
        from vault.errors import StorageError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        store = LocalStore({str(root)!r})
        store.check()
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        try:
            store.put({KEY!r}, io.BytesIO(b"x" * (3 << 20)), length=-1)
        except StorageError as exc:
            print(exc)
            sys.exit(0)
        sys.exit("put succeeded past the file size limit")
    """)
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert f"cannot store object {KEY}: " in result.stdout
    assert leftovers(root) == []


def test_local_nothing_written_outside_root(tmp_path: Path) -> None:
    root = tmp_path / "store" / "objects"
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalStore(root)
    store.check()
    for key in BAD_KEYS:
        with pytest.raises(InvalidInput):
            store.put(key, io.BytesIO(b"x"), length=1)
    # A symlink planted inside the store must not lead writes (or reads) out of it.
    (root / "evil").symlink_to(outside, target_is_directory=True)
    (outside / "secret").write_bytes(b"not yours")
    with pytest.raises(InvalidInput, match="outside"):
        store.put("evil/x", io.BytesIO(b"x"), length=1)
    with pytest.raises(InvalidInput, match="outside"):
        store.read_at("evil/secret", 0, 1)
    with pytest.raises(InvalidInput, match="outside"):
        store.delete("evil/secret")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert leftovers(tmp_path / "store") == []


def test_local_list_ignores_temp_files_from_a_crash(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put(KEY, io.BytesIO(b"ok"), length=2)
    (tmp_path / "recordings" / "ab" / ".tmp-0123456789abcdef").write_bytes(b"half")
    assert list(store.list()) == [KEY]


def test_local_delete_prunes_empty_directories(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    store.put(KEY, io.BytesIO(b"ok"), length=2)
    store.delete(KEY)
    assert list((tmp_path / "objects").iterdir()) == []


def test_local_key_clashing_with_a_directory_is_a_storage_error(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("a", io.BytesIO(b"x"), length=1)
    with pytest.raises(StorageError, match="a/b: the key lies below an existing object"):
        store.put("a/b", io.BytesIO(b"y"), length=1)
    store.put("c/d", io.BytesIO(b"z"), length=1)
    with pytest.raises(StorageError, match="c: the key is a prefix of existing objects"):
        store.put("c", io.BytesIO(b"w"), length=1)
    assert leftovers(tmp_path) == ["a", "c/d"]


def test_local_check_fails_on_unusable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StorageError, match="not usable"):
        LocalStore(blocker / "objects").check()


def test_local_legal_hold_is_unsupported(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put(KEY, io.BytesIO(b"x"), length=1)
    assert store.set_legal_hold(KEY, True) is False


# --------------------------------------------------------------------------------------------
# open_store
# --------------------------------------------------------------------------------------------


def test_open_store_defaults_to_local(tmp_path: Path) -> None:
    store = open_store(Settings(home=tmp_path))
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "objects"


def test_open_store_s3(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        store_backend="s3",
        s3_endpoint="127.0.0.1:9",
        s3_bucket="evidence",
        s3_access_key=SecretStr("k"),
        s3_secret_key=SecretStr("s"),
    )
    store = open_store(settings)
    assert isinstance(store, S3Store)
    assert (store.endpoint, store.bucket) == ("127.0.0.1:9", "evidence")
