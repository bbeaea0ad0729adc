"""Object store: one small interface, two backends.

:class:`LocalStore` keeps objects as files under one directory (the embedded default, no server).
:class:`S3Store` speaks plain S3 through the ``minio`` client, so any S3-compatible server works
(MinIO, SeaweedFS, AWS); it uses S3 object lock (legal hold) and lifecycle where the bucket offers
them. Both pass the same conformance suite (``tests/vault/test_objectstore.py``).

The store only ever sees ciphertext; keys name objects, never people or footage.

Rules both backends keep:

1. Keys are 1-1024 characters of ``[A-Za-z0-9._/-]``, ``/``-separated, with no empty segment and
   no segment starting with ``.`` (so no ``.``/``..`` and no clash with the local store's temp
   files); anything else is :class:`~vault.errors.InvalidInput`.
2. Objects are immutable: putting a key that exists raises :class:`~vault.errors.InvalidInput`.
3. A missing object is :class:`~vault.errors.NotFound`; a store that fails or cannot be reached
   is :class:`~vault.errors.StorageError`, one line naming the key or endpoint and the reason.
4. ``read_at`` returns exactly the bytes asked for or raises :class:`~vault.errors.InvalidInput`
   when the range runs past the end (a short read would hide truncation).
5. ``delete`` removes every version (versioned and object-lock buckets too), is idempotent and
   refuses, before removing anything, when a version is under legal hold.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import io
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, Protocol, cast, runtime_checkable

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.credentials.credentials import Credentials
from minio.error import MinioException, S3Error
from minio.helpers import DictType
from minio.lifecycleconfig import Expiration, LifecycleConfig, NoncurrentVersionExpiration, Rule

from . import durable
from vault.errors import InvalidInput, NotFound, StorageError

if TYPE_CHECKING:
    from vault.config import Settings

__all__ = [
    "LocalStore",
    "ObjectInfo",
    "ObjectStore",
    "PartialUpload",
    "S3Store",
    "open_store",
    "validate_key",
]

MAX_KEY_LENGTH = 1024
COPY_CHUNK = 1 << 20
DEFAULT_PART_SIZE = 16 << 20
MIN_PART_SIZE = 5 << 20  # S3's floor for every multipart part but the last
EXPIRY_RULE_ID = "evidence-vault-expiry"
# Local temp files; never a key, because key segments cannot start with ".".
_TMP_PREFIX = ".tmp-"

_KEY_CHARS = re.compile(r"[A-Za-z0-9._/-]+")
_URLLIB3_PREFIX = re.compile(r"^(<[^>]*>|HTTPS?Connection(Pool)?\([^)]*\))[:.] *")
_ERRNO_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "I/O error",
}
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchVersion", "NoSuchObject", "ResourceNotFound"}
_NO_LOCK_CODES = {"ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"}
_NO_HOLD_CODES = {
    "NoSuchObjectLegalHold",
    "NoSuchObjectLockConfiguration",
    "ObjectLockConfigurationNotFoundError",
}
# What the S3 client raises: its own errors, urllib3's (connection, timeout, protocol), OSError
# from the socket, ValueError from its argument checks.
_CLIENT_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError)
_UNSUPPORTED_CODES = {"NotImplemented", "MethodNotAllowed", "UnsupportedOperation"}


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one object: key, size in bytes, and the S3 ETag/version."""

    key: str
    size: int
    etag: str | None = None
    version_id: str | None = None
    last_modified: dt.datetime | None = None


@dataclass(frozen=True)
class PartialUpload:
    """An upload a killed process never finished: a local temp file or an S3 multipart upload.

    It holds ciphertext whose data key was never written anywhere, so it is unreadable and
    only takes space. ``key`` is the temp file's path under the store root, or the object key
    of the multipart upload; ``handle`` is what :meth:`ObjectStore.remove_partial` needs (the
    same path, or the upload id).
    """

    key: str
    handle: str
    size: int | None
    started: dt.datetime


#: What ``partials`` returns (an alias: inside the store classes ``list`` is their method).
Partials = list[PartialUpload]


@runtime_checkable
class ObjectStore(Protocol):
    """A flat namespace of immutable objects."""

    def put(self, key: str, data: BinaryIO, *, length: int = -1) -> ObjectInfo:
        """Stream ``data`` into a new object; ``length`` -1 means unknown (read to EOF).

        Returns the stored object's info. Raises InvalidInput for a bad key, an existing key or
        a stream shorter than ``length``; StorageError when the store fails.
        """
        ...

    def read_at(self, key: str, offset: int, length: int) -> bytes:
        """Return exactly ``length`` bytes from ``offset``.

        Raises NotFound, InvalidInput (range outside the object) or StorageError.
        """
        ...

    def open(self, key: str) -> BinaryIO:
        """Return a stream of the whole object; the caller closes it. Raises NotFound."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's info. Raises NotFound."""
        ...

    def exists(self, key: str) -> bool:
        """Return whether the object exists."""
        ...

    def delete(self, key: str) -> int:
        """Delete every version of the object; return how many were removed (0 if none).

        Raises StorageError when a version is under legal hold (nothing is removed then).
        """
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield the keys starting with ``prefix``, in lexicographic order."""
        ...

    def set_legal_hold(self, key: str, on: bool) -> bool:
        """Place or release a legal hold; return False where the store has no object lock."""
        ...

    @property
    def legal_holds(self) -> bool:
        """True if :meth:`set_legal_hold` can place holds here (S3 object lock)."""
        ...

    def check(self) -> None:
        """Return if the store is reachable and usable, else raise StorageError saying why."""
        ...

    def partials(self, older_than: dt.timedelta, *, now: dt.datetime) -> Partials:
        """Unfinished uploads last written more than ``older_than`` before ``now``.

        Younger ones may be uploads in progress and are not listed. Raises StorageError.
        """
        ...

    def remove_partial(self, partial: PartialUpload) -> None:
        """Remove one unfinished upload (gone already is fine). Raises StorageError."""
        ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid object key; raise InvalidInput saying why otherwise."""
    if not isinstance(key, str) or not key:
        raise InvalidInput("object key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"object key longer than {MAX_KEY_LENGTH} characters")
    if _KEY_CHARS.fullmatch(key) is None:
        raise InvalidInput(f"object key {key!r} may only contain A-Z a-z 0-9 . _ / -")
    if key.startswith("/"):
        raise InvalidInput(f"object key {key!r} must be relative, not absolute")
    for segment in key.split("/"):
        if not segment:
            raise InvalidInput(f"object key {key!r} has an empty path segment")
        if segment.startswith("."):
            raise InvalidInput(f"object key {key!r} has a segment starting with '.'")
    return key


def _validate_prefix(prefix: str) -> str:
    if prefix and (
        _KEY_CHARS.fullmatch(prefix) is None or prefix.startswith("/") or ".." in prefix
    ):
        raise InvalidInput(f"list prefix {prefix!r} is not a valid key prefix")
    return prefix


def _check_range(key: str, offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise InvalidInput(f"bad byte range of {key}: offset {offset}, length {length}")


def _past_end(key: str, offset: int, length: int, size: int) -> NoReturn:
    raise InvalidInput(
        f"byte range {offset}+{length} of {key} runs past the end of the object ({size} bytes)"
    )


def _os_reason(exc: OSError) -> str:
    reason = _ERRNO_REASONS.get(exc.errno or 0)
    detail = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason} ({detail})" if reason else detail


# --------------------------------------------------------------------------------------------
# Local directory
# --------------------------------------------------------------------------------------------


class LocalStore:
    """Objects as files under ``root``: the embedded default.

    Writes go to a temp file in the target directory, are fsynced and then linked into place, so
    a crash or a full disk never leaves a half-written object under a key. Legal hold is not
    supported (``set_legal_hold`` returns False).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()
        self._staging = durable.StagingPool()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # Every path comes through here: the key is validated and the real path must stay in root
    # (a symlink planted inside the store must not lead out of it).
    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self.root.joinpath(*key.split("/"))
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root or real == real_root:
            raise InvalidInput(f"object key {key!r} resolves outside the store")
        return path

    def put(self, key: str, data: BinaryIO, *, length: int = -1) -> ObjectInfo:
        path = self._path(key)
        if path.is_dir():
            raise StorageError(
                f"cannot store object {key}: the key is a prefix of existing objects"
            )
        if path.exists():
            raise InvalidInput(f"object {key} already exists; objects are immutable")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StorageError(
                f"cannot store object {key}: the key lies below an existing object"
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot store object {key}: {_os_reason(exc)}") from exc
        self._path(key)  # check again now the parents exist (a symlinked directory)
        tmp: Path | None = None
        try:
            fd, tmp_name = _mkstemp(path.parent)
            tmp = Path(tmp_name)
            try:
                size, _ = durable.write_stream(fd, data, chunk=COPY_CHUNK, length=length,
                                               pool=self._staging)
            finally:
                os.close(fd)
            if length >= 0 and size != length:
                raise InvalidInput(f"stream for {key} ended after {size} of {length} bytes")
            _publish(tmp, path, key)
            durable.fsync_dir(path.parent)
        except FileExistsError:
            raise InvalidInput(f"object {key} already exists; objects are immutable") from None
        except IsADirectoryError:
            raise StorageError(
                f"cannot store object {key}: the key is a prefix of existing objects"
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot store object {key}: {_os_reason(exc)}") from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
        return ObjectInfo(key=key, size=size)

    def read_at(self, key: str, offset: int, length: int) -> bytes:
        _check_range(key, offset, length)
        with self.open(key) as f:
            size = os.fstat(f.fileno()).st_size
            if offset + length > size:
                _past_end(key, offset, length, size)
            f.seek(offset)
            try:
                chunk = f.read(length)
            except OSError as exc:
                raise StorageError(f"cannot read object {key}: {_os_reason(exc)}") from exc
        if len(chunk) != length:
            _past_end(key, offset, length, size)
        return chunk

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            if not path.is_file():
                raise NotFound(f"object {key} not found")
            return path.open("rb")
        except FileNotFoundError:
            raise NotFound(f"object {key} not found") from None
        except OSError as exc:
            raise StorageError(f"cannot open object {key}: {_os_reason(exc)}") from exc

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"object {key} not found") from None
        except OSError as exc:
            raise StorageError(f"cannot stat object {key}: {_os_reason(exc)}") from exc
        if not path.is_file():
            raise NotFound(f"object {key} not found")
        modified = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
        return ObjectInfo(key=key, size=st.st_size, last_modified=modified)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            return 0
        try:
            path.unlink()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StorageError(f"cannot delete object {key}: {_os_reason(exc)}") from exc
        durable.fsync_dir(path.parent)
        # Drop directories the delete emptied, so the tree does not grow forever.
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        return 1

    def list(self, prefix: str = "") -> Iterator[str]:
        _validate_prefix(prefix)
        # Walk only the deepest directory the prefix names, then filter and sort the keys:
        # lexicographic key order ("a-b" < "a/b") differs from a directory walk's order.
        base_parts = prefix.split("/")[:-1]
        base = self.root.joinpath(*base_parts)
        if not base.is_dir():
            return iter(())
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            for name in filenames:
                if name.startswith("."):
                    continue  # temp files and check probes
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        keys.sort()
        return iter(keys)

    def set_legal_hold(self, key: str, on: bool) -> bool:
        self.stat(key)
        return False

    def partials(self, older_than: dt.timedelta, *, now: dt.datetime) -> Partials:
        # Temp files are dot-files, which list() hides; walk for them here. A put writes its
        # temp file continuously, so an mtime older than the threshold means its writer died.
        found: Partials = []
        if not self.root.is_dir():
            return found
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if not name.startswith(_TMP_PREFIX):
                    continue
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StorageError(f"cannot stat {path}: {_os_reason(exc)}") from exc
                modified = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
                if now - modified < older_than:
                    continue
                rel = path.relative_to(self.root).as_posix()
                found.append(PartialUpload(key=rel, handle=rel, size=st.st_size, started=modified))
        return sorted(found, key=lambda p: p.handle)

    def remove_partial(self, partial: PartialUpload) -> None:
        name = partial.handle.rsplit("/", 1)[-1]
        if not name.startswith(_TMP_PREFIX) or ".." in partial.handle.split("/"):
            raise InvalidInput(f"{partial.handle!r} is not a temp file of this store")
        try:
            (self.root / partial.handle).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot remove {partial.handle}: {_os_reason(exc)}") from exc

    @property
    def legal_holds(self) -> bool:
        return False

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = _mkstemp(self.root)
            try:
                os.write(fd, b"check")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            raise StorageError(
                f"local object store {self.root} is not usable: {_os_reason(exc)}"
            ) from exc


def _mkstemp(directory: Path) -> tuple[int, str]:
    name = os.path.join(directory, f"{_TMP_PREFIX}{secrets.token_hex(8)}")
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    return fd, name


def _publish(tmp: Path, path: Path, key: str) -> None:
    # link() refuses an existing name atomically, so two writers cannot both win; rename() would
    # silently replace an object. Fall back to rename where the filesystem has no hard links.
    # The caller removes the temp name afterwards.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        if path.exists():
            raise FileExistsError(key) from None
        os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# S3 (MinIO, SeaweedFS, AWS...)
# --------------------------------------------------------------------------------------------


#: Request bodies at least this large (object data, multipart parts) go with UNSIGNED-PAYLOAD.
UNSIGNED_PAYLOAD_MIN = 64 << 10


class _Client(Minio):
    """minio's client, sending object data over plain HTTP without hashing it for the signature.

    Over plain HTTP minio signs a SHA-256 of every request body (over HTTPS it sends
    ``UNSIGNED-PAYLOAD`` already): one more full SHA-256 pass over the footage in this process,
    and one in the server to check it, which on a 2-core machine costs as much CPU as the
    vault's own hash. What the vault stores is ``evs1`` ciphertext whose every segment carries
    an AES-GCM tag and whose plaintext hash is checked by reading it back (ingest does before
    it deletes a source), so a payload hash adds no protection. Headers, the request line and
    small bodies (bucket settings, legal holds, multipart completion) stay signed.
    """

    def _build_headers(  # minio's private hook, same signature
        self,
        host: str,
        headers: DictType | None = None,
        body: bytes | None = None,
        creds: Credentials | None = None,
    ) -> tuple[DictType, dt.datetime]:
        if creds is None or body is None or len(body) < UNSIGNED_PAYLOAD_MIN:
            return super()._build_headers(host, headers, body, creds)
        if self._base_url.is_https:
            return super()._build_headers(host, headers, body, creds)
        built, date = super()._build_headers(host, headers, None, creds)
        built["Content-Length"] = str(len(body))
        built["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        return built, date


class S3Store:
    """Objects in one S3 bucket, through the ``minio`` client and only the S3 API.

    ``object_lock=True`` creates the bucket with object lock (which also turns on versioning) so
    legal holds work; an existing bucket is used as it is, and ``set_legal_hold`` returns False
    when it has no object lock. ``region`` defaults to us-east-1, which MinIO and SeaweedFS
    use; set it for AWS buckets elsewhere.

    Every call fails with StorageError rather than hang: an unreachable endpoint within about
    2 x ``connect_timeout`` seconds, a server that accepts but never answers within about
    2 x ``read_timeout``.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        create_bucket: bool = True,
        object_lock: bool = False,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise InvalidInput(f"S3 part size must be at least {MIN_PART_SIZE} bytes")
        self.endpoint = endpoint
        self.bucket = bucket
        self.part_size = part_size
        self.create_bucket = create_bucket
        self.object_lock = object_lock
        # minio's default pool waits 5 minutes per connect and retries 5 times; an unreachable
        # store must fail fast and say so.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=10,
            retries=urllib3.Retry(
                total=3,
                connect=1,
                read=1,
                backoff_factor=0.2,
                status_forcelist=[500, 502, 503, 504],
            ),
        )
        self._client: Minio = _Client(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region or "us-east-1",
            http_client=http,
        )
        self._bucket_ready = False
        self._lock_enabled: bool | None = None

    def __repr__(self) -> str:
        return f"S3Store({self.endpoint!r}, bucket={self.bucket!r})"

    # -- errors -------------------------------------------------------------------------------

    def _fail(self, exc: Exception, what: str, key: str | None = None) -> NoReturn:
        """Translate a client exception into NotFound or StorageError (one line)."""
        if isinstance(exc, S3Error):
            if key is not None and exc.code in _NOT_FOUND_CODES:
                raise NotFound(f"object {key} not found") from None
            if exc.code == "NoSuchBucket":
                raise StorageError(
                    f"S3 bucket {self.bucket} does not exist at {self.endpoint}"
                ) from None
            target = f" {key}" if key else ""
            raise StorageError(f"S3 {what}{target} failed: {exc.code}: {exc.message}") from None
        if _is_connection_error(exc):
            raise StorageError(
                f"cannot reach S3 endpoint {self.endpoint}: {_root_cause(exc)}"
            ) from None
        raise StorageError(f"S3 {what} failed at {self.endpoint}: {_root_cause(exc)}") from exc

    def _ready(self) -> Minio:
        if not self._bucket_ready:
            self._ensure_bucket()
        return self._client

    def _ensure_bucket(self) -> None:
        try:
            exists = self._client.bucket_exists(self.bucket)
            if not exists:
                if not self.create_bucket:
                    raise StorageError(f"S3 bucket {self.bucket} does not exist at {self.endpoint}")
                self._client.make_bucket(self.bucket, object_lock=self.object_lock)
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "bucket setup")
        if self.object_lock and not self._has_object_lock():
            raise StorageError(
                f"S3 bucket {self.bucket} has no object lock; legal holds need a bucket "
                "created with object lock"
            )
        self._bucket_ready = True

    def _has_object_lock(self) -> bool:
        if self._lock_enabled is not None:
            return self._lock_enabled
        try:
            self._client.get_object_lock_config(self.bucket)
            enabled = True
        except S3Error as exc:
            if exc.code not in _NO_LOCK_CODES | _UNSUPPORTED_CODES:
                self._fail(exc, "object lock lookup")
            enabled = False
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "object lock lookup")
        self._lock_enabled = enabled
        return enabled

    # -- ObjectStore ----------------------------------------------------------------------------

    def put(self, key: str, data: BinaryIO, *, length: int = -1) -> ObjectInfo:
        validate_key(key)
        client = self._ready()
        # Check-then-put: S3 has no portable "create only"; keys are fresh ids, so the window
        # between the two calls is not a practical race.
        if self.exists(key):
            raise InvalidInput(f"object {key} already exists; objects are immutable")
        counted = _CountingReader(data)
        try:
            result = client.put_object(
                self.bucket,
                key,
                cast(BinaryIO, counted),
                length,
                part_size=self.part_size,
            )
        except _CLIENT_ERRORS as exc:
            if exc is counted.error and not isinstance(exc, OSError):
                raise  # the caller's stream failed, not the store (as LocalStore does)
            if isinstance(exc, OSError) and "not enough data" in str(exc):
                raise InvalidInput(
                    f"stream for {key} ended after {counted.count} of {length} bytes"
                ) from None
            if exc is counted.error and isinstance(exc, OSError):
                raise StorageError(f"cannot store object {key}: {_os_reason(exc)}") from exc
            self._fail(exc, "put", key)
        size = length if length >= 0 else counted.count
        return ObjectInfo(key=key, size=size, etag=result.etag, version_id=result.version_id)

    def read_at(self, key: str, offset: int, length: int) -> bytes:
        validate_key(key)
        _check_range(key, offset, length)
        client = self._ready()
        if length == 0:  # the client reads "length 0" as "to the end"
            info = self.stat(key)
            if offset > info.size:
                _past_end(key, offset, length, info.size)
            return b""
        try:
            resp = client.get_object(self.bucket, key, offset=offset, length=length)
            try:
                chunk = resp.read()
            finally:
                resp.close()
                resp.release_conn()
        except S3Error as exc:
            if exc.code == "InvalidRange":
                _past_end(key, offset, length, self.stat(key).size)
            self._fail(exc, "read", key)
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "read", key)
        if len(chunk) != length:
            _past_end(key, offset, length, self.stat(key).size)
        return chunk

    def open(self, key: str) -> BinaryIO:
        validate_key(key)
        client = self._ready()
        try:
            resp = client.get_object(self.bucket, key)
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "read", key)
        reader = io.BufferedReader(_ResponseReader(resp, self, key), buffer_size=COPY_CHUNK)
        return cast(BinaryIO, reader)

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        client = self._ready()
        try:
            obj = client.stat_object(self.bucket, key)
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "stat", key)
        return ObjectInfo(
            key=key,
            size=int(obj.size or 0),
            etag=obj.etag,
            version_id=obj.version_id,
            last_modified=obj.last_modified,
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> int:
        validate_key(key)
        client = self._ready()
        try:
            versions = [
                (o.version_id, bool(o.is_delete_marker))
                for o in client.list_objects(
                    self.bucket, prefix=key, recursive=True, include_version=True
                )
                if o.object_name == key
            ]
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "list versions of", key)
        # Refuse before removing anything: a half-deleted held object helps nobody.
        if self._has_object_lock():
            for version_id, marker in versions:
                if not marker and self._held(key, version_id):
                    raise StorageError(
                        f"cannot delete object {key}: version {version_id} is under legal hold; "
                        "release the hold first"
                    )
        removed = 0
        for version_id, _marker in versions:
            try:
                client.remove_object(self.bucket, key, version_id=version_id)
            except _CLIENT_ERRORS as exc:
                # AWS/SeaweedFS answer AccessDenied, MinIO InvalidRequest ("WORM protected").
                if (
                    isinstance(exc, S3Error)
                    and exc.code in {"AccessDenied", "InvalidRequest"}
                    and self._has_object_lock()
                ):
                    raise StorageError(
                        f"cannot delete object {key}: version {version_id} is protected by "
                        "object lock (legal hold or retention)"
                    ) from None
                self._fail(exc, "delete", key)
            removed += 1
        return removed

    def list(self, prefix: str = "") -> Iterator[str]:
        _validate_prefix(prefix)
        client = self._ready()
        try:
            names = [
                str(o.object_name)
                for o in client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
                if o.object_name and not o.is_dir
            ]
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "list")
        return iter(sorted(names))

    def set_legal_hold(self, key: str, on: bool) -> bool:
        validate_key(key)
        client = self._ready()
        info = self.stat(key)
        if not self._has_object_lock():
            return False
        try:
            if on:
                client.enable_object_legal_hold(self.bucket, key, version_id=info.version_id)
            else:
                client.disable_object_legal_hold(self.bucket, key, version_id=info.version_id)
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "legal hold on", key)
        return True

    @property
    def legal_holds(self) -> bool:
        return self._has_object_lock()

    def is_legal_hold(self, key: str) -> bool:
        """Return whether the object's current version is under legal hold. Raises NotFound."""
        info = self.stat(key)
        return self._has_object_lock() and self._held(key, info.version_id)

    def check(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()

    def partials(self, older_than: dt.timedelta, *, now: dt.datetime) -> Partials:
        # minio aborts a multipart upload whose put fails, but a killed process leaves it, and
        # its parts are billed and kept until aborted. The client lists them only through its
        # private ListMultipartUploads call (the S3 API itself is standard).
        client = self._ready()
        found: Partials = []
        marker: str | None = None
        while True:
            try:
                result = client._list_multipart_uploads(
                    self.bucket, key_marker=marker, max_uploads=1000
                )
            except S3Error as exc:
                if exc.code in _UNSUPPORTED_CODES:
                    return found
                self._fail(exc, "multipart upload listing")
            except _CLIENT_ERRORS as exc:
                self._fail(exc, "multipart upload listing")
            for upload in result.uploads:
                started = upload.initiated_time
                if started is None or now - started < older_than:
                    continue
                found.append(
                    PartialUpload(
                        key=upload.object_name,
                        handle=str(upload.upload_id),
                        size=None,
                        started=started,
                    )
                )
            if not result.is_truncated or not result.next_key_marker:
                return found
            marker = result.next_key_marker

    def remove_partial(self, partial: PartialUpload) -> None:
        client = self._ready()
        try:
            client._abort_multipart_upload(self.bucket, partial.key, partial.handle)
        except S3Error as exc:
            if exc.code in ("NoSuchUpload", *_NOT_FOUND_CODES):
                return
            self._fail(exc, "multipart abort", partial.key)
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "multipart abort", partial.key)

    def set_expiry_rule(self, days: int, prefix: str = "") -> bool:
        """Ask the bucket to expire objects ``days`` after creation (defence in depth only).

        The retention reaper stays the mechanism: lifecycle scanners lag and round to midnight
        UTC, and held objects are skipped. Returns False where the server has no lifecycle
        support; raises InvalidInput for ``days`` < 1 and StorageError on other failures.
        """
        if days < 1:
            raise InvalidInput(f"expiry must be at least one day, not {days}")
        _validate_prefix(prefix)
        client = self._ready()
        rule = Rule(
            ENABLED,
            rule_filter=Filter(prefix=prefix),
            rule_id=EXPIRY_RULE_ID,
            expiration=Expiration(days=days),
            noncurrent_version_expiration=NoncurrentVersionExpiration(noncurrent_days=1),
        )
        try:
            client.set_bucket_lifecycle(self.bucket, LifecycleConfig([rule]))
        except S3Error as exc:
            if exc.code in _UNSUPPORTED_CODES:
                return False
            self._fail(exc, "lifecycle setup")
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "lifecycle setup")
        return True

    def _held(self, key: str, version_id: str | None) -> bool:
        try:
            return bool(
                self._client.is_object_legal_hold_enabled(self.bucket, key, version_id=version_id)
            )
        except S3Error as exc:
            if exc.code in _NO_HOLD_CODES:  # never held: SeaweedFS answers an error here
                return False
            self._fail(exc, "legal hold lookup", key)
        except _CLIENT_ERRORS as exc:
            self._fail(exc, "legal hold lookup", key)


class _CountingReader:
    """Counts the bytes the client pulls from the caller's stream (unknown-length puts)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.count = 0
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self._raw.read(size)
        except BaseException as exc:
            self.error = exc
            raise
        self.count += len(chunk)
        return chunk


class _ResponseReader(io.RawIOBase):
    """A raw stream over an HTTP response that returns the connection to the pool on close."""

    def __init__(self, resp: Any, store: S3Store, key: str) -> None:
        self._resp = resp
        self._store = store
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return int(self._resp.readinto(buffer))
        except _CLIENT_ERRORS as exc:
            self._store._fail(exc, "read", self._key)

    def close(self) -> None:
        if not self.closed:
            try:
                self._resp.close()
                self._resp.release_conn()
            finally:
                super().close()


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(
        exc,
        (
            urllib3.exceptions.MaxRetryError,
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.TimeoutError,
            ConnectionError,
            TimeoutError,
        ),
    )


def _root_cause(exc: BaseException) -> str:
    inner: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        inner = exc.reason
    # urllib3 prefixes the connection's repr ("HTTPConnection(host=..., port=...): "): the
    # endpoint is already in our message, so keep the human part.
    text = _URLLIB3_PREFIX.sub("", str(inner))
    return text.splitlines()[0] if text else type(inner).__name__


# --------------------------------------------------------------------------------------------


def open_store(settings: Settings) -> ObjectStore:
    """Return the object store ``settings`` select (no network I/O; call ``check()`` to probe).

    Raises InvalidInput for an impossible S3 part size.
    """
    if settings.store_backend == "s3":
        return S3Store(
            settings.s3_endpoint,
            settings.s3_access_key.get_secret_value(),
            settings.s3_secret_key.get_secret_value(),
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            object_lock=settings.s3_object_lock,
        )
    return LocalStore(settings.objects_dir)
