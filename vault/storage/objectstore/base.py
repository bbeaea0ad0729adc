"""What every object store is: the :class:`ObjectStore` protocol, its records, and the key
and range rules both backends keep (the numbered rules in :mod:`vault.storage.objectstore`)."""

from __future__ import annotations

import datetime as dt
import errno
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, NoReturn, Protocol, runtime_checkable


from vault.errors import InvalidInput


MAX_KEY_LENGTH = 1024


COPY_CHUNK = 1 << 20


_KEY_CHARS = re.compile(r"[A-Za-z0-9._/-]+")


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

_ERRNO_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "I/O error",
}


def _os_reason(exc: OSError) -> str:
    reason = _ERRNO_REASONS.get(exc.errno or 0)
    detail = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason} ({detail})" if reason else detail
