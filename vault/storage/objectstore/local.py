"""The local-directory object store: the embedded default, one file per object, no server.

Implements :class:`~vault.storage.objectstore.base.ObjectStore`; writes through
:mod:`vault.storage.durable` so an object is on disk before the catalog names it."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


from vault.errors import InvalidInput, NotFound, StorageError
from vault.storage import durable

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


# Local temp files; never a key, because key segments cannot start with ".".
_TMP_PREFIX = ".tmp-"






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
