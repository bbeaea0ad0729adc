"""Where decrypted footage and packages are written: private files and folders only.

Footage is personal data (CCTV images, often special-category), so a plaintext copy the vault
writes (``get -o``, ``export create -o``, a package or clip being built in the spool, an RTSP
segment before it is ingested, the demo's outputs) must be readable by the vault's own user
and nobody else (issue #11 finding 11). The rules, one per helper:

1. Files are created ``0600`` by ``open(O_CREAT | O_EXCL, 0o600)``: the mode is fixed at the
   moment the file appears, so there is no window in which another user can open it (a
   ``chmod`` afterwards leaves one, and an open descriptor outlives it). ``O_NOFOLLOW`` and
   ``O_EXCL`` refuse a planted symlink or file at the name.
2. A finished file is written under a fresh hidden name beside its destination and renamed
   into place (:func:`private_partial`), so the destination is never partly written and
   always has the partial file's ``0600`` mode, even when it replaces a wider one.
3. Folders the vault makes for plaintext are ``0700`` (:func:`private_dir`, or
   :func:`tempfile.mkdtemp`), which also covers files a tool (ffmpeg, PyAV) creates inside
   with its own mode. An existing folder is never changed: it may be shared (a spool path
   set to ``/tmp``), so what goes inside protects itself (a 0700 work folder, a 0600 file).

The umask can only narrow these modes, never widen them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

from .errors import InvalidInput, StorageError

#: Mode of every plaintext file the vault creates.
PRIVATE_FILE_MODE = 0o600
#: Mode of every folder the vault creates to hold plaintext.
PRIVATE_DIR_MODE = 0o700

_CREATE = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


def open_private(path: Path, *, append: bool = False) -> BinaryIO:
    """Create ``path`` with mode 0600 and return it open for binary writing.

    ``append=False`` (the default) refuses an existing file or symlink at ``path``
    (``FileExistsError``); ``append=True`` opens an existing file for appending (a log) and
    creates a missing one 0600. Raises OSError from the operating system otherwise.
    """
    flags = _CREATE | (os.O_APPEND if append else os.O_EXCL)
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "ab" if append else "wb")


def private_partial(destination: Path) -> tuple[Path, BinaryIO]:
    """A new 0600 file beside ``destination`` to write into, then :func:`os.replace` over it.

    Returns its path and the open file. The name is hidden and random, so concurrent writers
    and a crashed earlier attempt never collide. Raises InvalidInput when the folder does not
    exist, StorageError when it cannot be written.
    """
    destination = Path(destination)
    if not destination.parent.is_dir():
        raise InvalidInput(f"{destination.parent} is not a folder; create it first")
    partial = destination.with_name(f".{destination.name}.partial-{secrets.token_hex(6)}")
    try:
        return partial, open_private(partial)
    except OSError as error:
        raise StorageError(f"cannot write {destination}: {error.strerror}") from None


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as a folder only its owner can enter; return it.

    The folder itself is made 0700; parents the call creates get the process's default mode,
    and an existing folder is left as it is (rule 3). Raises StorageError when it cannot be
    made.
    """
    path = Path(path)
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"cannot create folder {path}: {error.strerror}") from None
    return path


__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "open_private",
    "private_dir",
    "private_partial",
]
