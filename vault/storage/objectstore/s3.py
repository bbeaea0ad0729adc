"""The S3 object store: plain S3 through the ``minio`` client, so any S3-compatible server
works (MinIO, SeaweedFS, AWS), with object lock (legal hold) and lifecycle where the bucket
offers them. Implements :class:`~vault.storage.objectstore.base.ObjectStore`."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from typing import Any, BinaryIO, NoReturn, cast

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.credentials.credentials import Credentials
from minio.error import MinioException, S3Error
from minio.helpers import DictType
from minio.lifecycleconfig import Expiration, LifecycleConfig, NoncurrentVersionExpiration, Rule

from vault.errors import InvalidInput, NotFound, StorageError

from .base import (
    COPY_CHUNK,
    ObjectInfo,
    PartialUpload,
    Partials,
    _check_range,
    _os_reason,
    _past_end,
    _validate_prefix,
    validate_key,
)


_URLLIB3_PREFIX = re.compile(r"^(<[^>]*>|HTTPS?Connection(Pool)?\([^)]*\))[:.] *")


DEFAULT_PART_SIZE = 16 << 20


MIN_PART_SIZE = 5 << 20  # S3's floor for every multipart part but the last


EXPIRY_RULE_ID = "evidence-vault-expiry"


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
