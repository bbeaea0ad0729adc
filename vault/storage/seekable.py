"""A seekable, read-only file of a recording's plaintext, decrypted on demand (issue #12).

:class:`DecryptedReader` is an :class:`io.RawIOBase` over an encrypted object: ``seek`` and
``tell`` move a position, ``readinto`` decrypts only the segments that cover the bytes asked
for (:func:`vault.storage.crypto.decrypt_range` through the store's ``read_at``), so a demuxer
(PyAV's ``av.open(reader)``) that jumps to the keyframes it needs reads those parts of the
object and no others, instead of the whole recording being decrypted to a file first.

It holds no custody logic: it is made by :meth:`vault.vault.Vault.open_reader`, which decides
nothing either (callers check policy first) but logs the access once, before the reader
exists, as :meth:`Vault.read` does before any byte is released. Plaintext stays in memory: the
header and the one segment last decrypted (so a demuxer's small sequential reads do not
decrypt a segment twice); nothing is written to disk. Every segment is authenticated as it is
decrypted (CiphertextError otherwise).
"""

from __future__ import annotations

import io

from . import crypto
from ._segments import HEADER_SIZE, Header

__all__ = ["DecryptedReader"]


class DecryptedReader(io.RawIOBase):
    """The plaintext of one encrypted object as a seekable binary file.

    ``read_at(offset, length)`` returns stored bytes (an object store's ``read_at`` bound to
    the object's key); ``stored_size`` is the object's stored length. The header is read and
    checked here: CiphertextError for a truncated object or a malformed header.
    """

    def __init__(self, read_at: crypto.ReadAt, stored_size: int, *, dek: bytes,
                 object_id: str) -> None:
        super().__init__()
        self._object_id = object_id
        self._dek = dek
        self._stored_size = stored_size
        raw = read_at(0, HEADER_SIZE)
        header = Header.from_bytes(raw, object_id=object_id)
        self._segment = header.segment_size
        self._size = crypto.plaintext_size(stored_size, self._segment, object_id=object_id)

        def cached(offset: int, length: int) -> bytes:
            # decrypt_range reads the header on every call; it was read and checked above.
            return raw if offset == 0 and length == HEADER_SIZE else read_at(offset, length)

        self._read_at = cached
        self._pos = 0
        self._cache_start = -1
        self._cache = b""

    @property
    def size(self) -> int:
        """The plaintext length in bytes."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` from the start, the current position or the end; a position
        past the end reads nothing. Raises ValueError for a negative position (as files do)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the position (short only at the end); returns the count, 0 at
        the end. Decrypts only the segments covering those bytes (the last one is kept)."""
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        filled = 0
        while filled < want:
            got = self._cached(want - filled)
            view[filled:filled + len(got)] = got
            filled += len(got)
            self._pos += len(got)
        return filled

    def _cached(self, want: int) -> bytes:
        """Up to ``want`` bytes at the position: from the kept segment when it holds the
        position, else decrypted (all covering segments at once; the last one kept)."""
        if self._cache_start <= self._pos < self._cache_start + len(self._cache):
            at = self._pos - self._cache_start
            return self._cache[at:at + want]
        seg = self._segment
        first = self._pos - self._pos % seg
        last = min(self._size, first + -(-(self._pos + want - first) // seg) * seg) - 1
        data = b"".join(crypto.decrypt_range(
            self._read_at, self._stored_size, dek=self._dek, object_id=self._object_id,
            start=first, end=last))
        # Keep only the last segment: the bytes a demuxer is most likely to read next.
        self._cache_start = last - last % seg
        self._cache = data[self._cache_start - first:]
        return data[self._pos - first:self._pos - first + want]
