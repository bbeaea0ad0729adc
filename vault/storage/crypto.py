"""Stored-object encryption: the ``evs1`` streaming segmented AEAD format, version 1.

Every object in the store is one plaintext (a recording, a redacted copy, an export) encrypted
under its own random 256-bit data key (DEK) with AES-256-GCM, in independently authenticated
segments, so that a stream of any length is encrypted and decrypted in O(segment) memory and any
byte range is decrypted by reading only the segments that cover it. The construction follows
Tink's AES-GCM-HKDF streaming AEAD and age's STREAM (Hoang, Reyhanitabar, Rogaway, Vizár,
"Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015): a random nonce
prefix, a segment counter and a last-segment flag in every nonce. The DEK is never reused across
objects (it is wrapped per object by :mod:`vault.storage.keys`), so, unlike Tink, no per-object key
derivation step is needed; should a DEK ever be reused, the random prefix still keeps nonces
apart up to about 2**28 objects (birthday bound on 56 bits).

Layout (all integers big-endian)::

    offset  size  field
    0       4     magic            b"EVSF"
    4       1     version          0x01
    5       4     segment_size     S, plaintext bytes per segment, 4096 <= S <= 16777216
    9       7     nonce_prefix     random, fresh for every object
    16      ...   segments 0 .. n-1

    segment i = AES-256-GCM(key=DEK, nonce=N_i, aad=AD, plaintext=P_i) = C_i || T_i
        P_i  the plaintext bytes [i*S, i*S + S); every segment but the last holds exactly S
             bytes; the last holds 1..S bytes, or 0 bytes only when the whole plaintext is
             empty (so an empty object still carries one authenticated segment).
        N_i  = nonce_prefix (7) || uint32(i) (4) || flag (1), flag 0x01 on the last segment,
             0x00 on every other; 12 bytes in all
        AD   = header (the 16 bytes above) || UTF-8 object id (no terminator: the header has a
             fixed length)
        C_i  ciphertext, len(P_i) bytes;  T_i  the 16-byte GCM tag

    for a plaintext of L bytes: n = max(1, ceil(L / S)) segments, at most 2**32 (the counter
    never wraps), and the stored size is 16 + L + 16 * n.

What each part defeats:

- The counter in the nonce fixes every segment to its position: reordering, dropping or
  duplicating a middle segment fails to authenticate.
- The last-segment flag marks the end: cutting the object at a segment boundary leaves a last
  segment that was sealed with flag 0x00 and fails; data after a flag-0x01 segment is refused.
- The header in the associated data authenticates the header itself (magic, version, segment
  size, nonce prefix); the object id in it means a segment (or a whole object) copied from
  another object fails, even under the same data key.
- A stored size that no plaintext size produces is rejected before any decryption.

Failures raise :class:`~vault.errors.CiphertextError` naming the object id and segment index;
no plaintext is released from a segment that does not authenticate.

Why this module is long: the format above and the streaming writer and reader that implement
it are reviewed together; the pure layout arithmetic is already apart, in ``_segments.py``.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
import io
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import _segments
from ._segments import (
    DEFAULT_SEGMENT_SIZE,
    FORMAT,
    HEADER_SIZE,
    KEY_SIZE,
    MAX_SEGMENT_SIZE,
    MAX_SEGMENTS,
    MIN_SEGMENT_SIZE,
    TAG_SIZE,
    Header,
)
from vault.errors import CiphertextError, InvalidInput

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "FORMAT",
    "HEADER_SIZE",
    "KEY_SIZE",
    "MAX_SEGMENT_SIZE",
    "MIN_SEGMENT_SIZE",
    "RANGE_READ_SIZE",
    "TAG_SIZE",
    "DecryptingReader",
    "EncryptingReader",
    "Header",
    "ciphertext_size",
    "decrypt_range",
    "decrypt_stream",
    "new_data_key",
    "parse_header",
    "plaintext_size",
]

# decrypt_range fetches about this many stored bytes per read_at call (at least one segment):
# few enough round trips to an object store, little enough latency before a seek's first byte.
RANGE_READ_SIZE = 4 << 20

ReadAt = Callable[[int, int], bytes]


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def new_data_key() -> bytes:
    """Return a fresh random 256-bit data key for one object."""
    return os.urandom(KEY_SIZE)


def ciphertext_size(plaintext_size: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """Return the stored size of a ``plaintext_size``-byte object.

    Raises InvalidInput on a negative size, a segment size out of range, or a plaintext too
    large for the 32-bit segment counter.
    """
    return _segments.ciphertext_size(plaintext_size, segment_size)


def plaintext_size(stored_size: int, segment_size: int, *, object_id: str | None = None) -> int:
    """Return the plaintext size of a stored object of ``stored_size`` bytes.

    Raises CiphertextError when ``stored_size`` is not a size this format produces (a truncated
    or extended object), InvalidInput on a segment size out of range.
    """
    return _segments.plaintext_size(stored_size, segment_size, object_id=object_id)


def parse_header(header_bytes: bytes, *, object_id: str | None = None) -> Header:
    """Parse the first :data:`HEADER_SIZE` bytes of a stored object.

    Returns the :class:`Header` (segment size, nonce prefix). Raises CiphertextError on a short
    or malformed header. The header is only authenticated once a segment decrypts.
    """
    return Header.from_bytes(header_bytes, object_id=object_id)


def _fill(source: BinaryIO | _Readable, view: memoryview, start: int) -> int:
    """Fill ``view[start:]`` from ``source`` until full or end of stream; return bytes held.

    Uses ``readinto`` where the source has a working one (no intermediate copy), else ``read``.
    Raises InvalidInput for a non-blocking source with no data or a source that over-reads.
    """
    filled = start
    end = len(view)
    readinto = getattr(source, "readinto", None)
    while filled < end:
        got: int | None
        if readinto is not None:
            try:
                got = readinto(view[filled:])
            except NotImplementedError:  # io.RawIOBase subclasses that define only read()
                readinto = None
                continue
        else:
            data = source.read(end - filled)
            got = None if data is None else len(data)
            if got is not None and got > end - filled:
                raise InvalidInput("source stream returned more bytes than were asked for")
            if got:
                view[filled : filled + got] = data
        if got is None:
            raise InvalidInput("source stream is non-blocking and had no data ready")
        if got == 0:
            break
        filled += got
    return filled


class _ChunkReader(io.RawIOBase):
    """A read-only stream over chunks produced one at a time by :meth:`_next_chunk`.

    ``read(n)`` returns exactly ``n`` bytes until the end, as ``bytes``: MinIO's client insists
    on ``bytes`` and concatenates short reads quadratically. A read that takes exactly one whole
    chunk returns it without a copy; any other copies once. Reads of a few MiB at most keep the
    copy in cache (see ``benchmarks/crypto.py``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._chunk: bytes = b""
        self._chunk_view = memoryview(self._chunk)
        self._pos = 0
        self._eof = False
        self._error: Exception | None = None

    def _next_chunk(self) -> bytes | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _advance(self) -> bool:
        """Load the next chunk; return False at the end of the stream."""
        while not self._eof:
            if self._error is not None:
                # A stream that failed stays failed: its position is no longer meaningful.
                raise self._error
            try:
                chunk = self._next_chunk()
            except Exception as exc:
                self._error = exc
                raise
            if chunk is None:
                self._eof = True
                break
            if chunk:
                self._chunk, self._chunk_view, self._pos = chunk, memoryview(chunk), 0
                return True
        self._chunk, self._chunk_view, self._pos = b"", memoryview(b""), 0
        return False

    def readable(self) -> bool:
        """Return True: this stream can be read."""
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        """Return the next ``size`` bytes (fewer only at the end; all remaining if negative)."""
        if self.closed:
            raise ValueError("I/O operation on closed stream")
        if size is None or size < 0:
            return self.readall()
        pieces: list[bytes | memoryview] = []
        need = size
        while need:
            avail = len(self._chunk) - self._pos
            if avail == 0:
                if not self._advance():
                    break
                avail = len(self._chunk)
            take = min(avail, need)
            if self._pos == 0 and take == len(self._chunk):
                pieces.append(self._chunk)
            else:
                pieces.append(self._chunk_view[self._pos : self._pos + take])
            self._pos += take
            need -= take
        if len(pieces) == 1 and isinstance(pieces[0], bytes):
            return pieces[0]
        return b"".join(pieces)

    def readall(self) -> bytes:
        """Return everything up to the end of the stream."""
        if self.closed:
            raise ValueError("I/O operation on closed stream")
        pieces: list[bytes | memoryview] = [self._chunk_view[self._pos :]]
        while self._advance():
            pieces.append(self._chunk)
        self._pos = len(self._chunk)
        return b"".join(pieces)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` (fewer bytes only at the end); return how many (0 at the end).

        Copies straight from the chunks: a store that stages its writes (vault/storage/durable.py)
        reads this way and saves the copy :meth:`read` makes to join chunks.
        """
        if self.closed:
            raise ValueError("I/O operation on closed stream")
        out = memoryview(buffer).cast("B")
        done = 0
        while done < len(out):
            avail = len(self._chunk) - self._pos
            if avail == 0:
                if not self._advance():
                    break
                avail = len(self._chunk)
            take = min(avail, len(out) - done)
            out[done : done + take] = self._chunk_view[self._pos : self._pos + take]
            self._pos += take
            done += take
        return done


class EncryptingReader(_ChunkReader):
    """A file-like object whose bytes are the ``evs1`` encryption of ``source``.

    Reads ``source`` one segment (plus one byte of lookahead, to know which segment is the last)
    at a time, so memory stays O(segment size) whatever the input length. Works as the ``data``
    of ``Minio.put_object(..., length=-1)`` and with ``shutil.copyfileobj``. The source is not
    closed. :attr:`plaintext_sha256` and :attr:`plaintext_size` describe the plaintext read.

    Raises InvalidInput (bad key, object id or segment size; on read: a plaintext beyond the
    format's 2**32 segments) and whatever ``source.read`` raises.
    """

    def __init__(
        self,
        source: BinaryIO,
        *,
        dek: bytes,
        object_id: str,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        super().__init__()
        self._aead = _segments.check_data_key(dek)
        oid = _segments.encode_object_id(object_id)
        self.header = Header.new(segment_size)
        self._ad = _segments.associated_data(self.header.to_bytes(), oid)
        self._source = source
        self._segment_size = segment_size
        # Two buffers, each with one spare byte (if it fills, the segment before it is not the
        # last one). SHA-256 runs on a helper thread over one buffer while the next segment is
        # read and encrypted in the other: hashing is the slowest step, and hashlib releases the
        # GIL, so the two overlap on two cores.
        self._buffers: list[bytearray] | None = [bytearray(segment_size + 1) for _ in range(2)]
        self._hashing: list[Future[None] | None] = [None, None]
        self._which = 0
        self._lookahead = 0
        self._carry = 0
        self._index = 0
        self._sha256 = hashlib.sha256()
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evs1-sha256")
        self._size = 0
        self._finished = False
        self._header_pending = True

    @property
    def plaintext_size(self) -> int:
        """Plaintext bytes read from the source so far (the total once the stream is read)."""
        return self._size

    @property
    def plaintext_sha256(self) -> str:
        """Hex SHA-256 of the plaintext. Raises InvalidInput before the stream is fully read."""
        if not self._finished:
            raise InvalidInput("plaintext_sha256 is known only after the stream has been read")
        return self._sha256.hexdigest()

    def _next_chunk(self) -> bytes | None:
        if self._header_pending:
            self._header_pending = False
            return self.header.to_bytes()
        if self._finished or self._buffers is None:
            return None
        if self._index >= MAX_SEGMENTS:
            raise InvalidInput(f"plaintext exceeds the format's limit of {MAX_SEGMENTS} segments")
        size = self._segment_size
        which = self._which
        buffer = self._buffers[which]
        self._wait_hash(which)  # this buffer's previous segment must be hashed before reuse
        if self._carry:
            buffer[0] = self._lookahead  # the lookahead byte opens the next segment
        view = memoryview(buffer)
        held = _fill(self._source, view, self._carry)
        final = held <= size
        length = held if final else size
        segment = view[:length]
        # One worker thread: segments are hashed in order.
        self._hashing[which] = self._hasher.submit(self._sha256.update, segment)
        sealed = self._aead.encrypt(
            _segments.nonce(self.header.nonce_prefix, self._index, final), segment, self._ad
        )
        self._size += length
        self._index += 1
        if final:
            self._wait_hash(0)
            self._wait_hash(1)
            self._finished = True
            self._release()  # nothing more to read: free the buffers and the thread now
        else:
            self._lookahead = buffer[size]
            self._carry = 1
            self._which = 1 - which
        return sealed

    def _wait_hash(self, which: int) -> None:
        pending = self._hashing[which]
        if pending is not None:
            self._hashing[which] = None
            pending.result()

    def _release(self) -> None:
        self._hasher.shutdown(wait=True)
        self._hashing = [None, None]
        self._buffers = None

    def close(self) -> None:
        """Release the segment buffers and the hashing thread; the source stays open."""
        self._release()
        super().close()


class DecryptingReader(_ChunkReader):
    """A file-like object whose bytes are the plaintext of the ``evs1`` object in ``source``.

    Reads one stored segment (plus one byte of lookahead) at a time; memory stays O(segment).
    Each segment is authenticated before any of its bytes are returned, and the stream ends only
    after a segment flagged final, so a truncated object fails at its end rather than passing
    as shorter. Reading ``header.segment_size`` bytes at a time hands over each segment without
    a copy. The source is not closed.

    ``read`` raises CiphertextError on any truncation, alteration, reordering, splicing, wrong
    key or wrong object id. The constructor raises InvalidInput on a bad key or object id.
    """

    def __init__(self, source: BinaryIO, *, dek: bytes, object_id: str) -> None:
        super().__init__()
        self._aead = _segments.check_data_key(dek)
        self._oid = _segments.encode_object_id(object_id)
        self._object_id = object_id
        self._source = source
        self.header: Header | None = None
        self._ad = b""
        self._buffer: bytearray | None = None
        self._carry = 0
        self._index = 0
        self._size = 0
        self._finished = False

    @property
    def plaintext_size(self) -> int:
        """Plaintext bytes authenticated so far (the total once the stream is read)."""
        return self._size

    def _read_header(self) -> Header:
        raw = bytearray(HEADER_SIZE)
        got = _fill(self._source, memoryview(raw), 0)
        header = Header.from_bytes(bytes(raw[:got]), object_id=self._object_id)
        self._ad = _segments.associated_data(header.to_bytes(), self._oid)
        self._buffer = bytearray(header.stored_segment_size + 1)
        return header

    def _next_chunk(self) -> bytes | None:
        if self._finished:
            return None
        if self.header is None:
            self.header = self._read_header()
        buffer = self._buffer
        assert buffer is not None
        full = self.header.stored_segment_size
        with memoryview(buffer) as view:
            held = _fill(self._source, view, self._carry)
            final = held <= full
            length = held if final else full
            self._check_final_length(final, length)
            with view[:length] as segment:
                plain = _segments.open_segment(
                    self._aead,
                    self.header.nonce_prefix,
                    self._index,
                    final,
                    segment,
                    self._ad,
                    object_id=self._object_id,
                )
        self._index += 1
        self._size += len(plain)
        if final:
            self._finished = True
            self._buffer = None
        else:
            buffer[0] = buffer[full]  # the lookahead byte opens the next segment
            self._carry = 1
        return plain

    def _check_final_length(self, final: bool, length: int) -> None:
        who = f"object {self._object_id!r}"
        if self._index >= MAX_SEGMENTS:
            raise CiphertextError(f"{who}: more than {MAX_SEGMENTS} segments")
        if not final:
            return
        if length == 0 and self._index == 0:
            raise CiphertextError(f"{who}: truncated: no segment after the header")
        if length < TAG_SIZE:
            raise CiphertextError(
                f"{who}: truncated: segment {self._index} has {length} bytes, "
                f"less than a {TAG_SIZE}-byte tag"
            )
        if length == TAG_SIZE and self._index > 0:
            # An empty final segment after a full one is never written; refuse it so that the
            # stream reader agrees with plaintext_size() about which sizes are valid.
            raise CiphertextError(f"{who}: truncated or extended: empty segment {self._index}")

    def close(self) -> None:
        """Release the segment buffer; the source stays open."""
        self._buffer = None
        super().close()


def decrypt_stream(
    source: BinaryIO,
    destination: BinaryIO,
    *,
    dek: bytes,
    object_id: str,
    chunk_size: int = 8 << 20,
) -> tuple[int, str]:
    """Decrypt a whole ``evs1`` object from ``source`` into ``destination``.

    Returns ``(plaintext_size, plaintext_sha256_hex)``. Raises CiphertextError as
    :class:`DecryptingReader` does; bytes already written came from authenticated segments,
    but the caller must discard the output if this raises.
    """
    reader = DecryptingReader(source, dek=dek, object_id=object_id)
    digest = hashlib.sha256()
    size = 0
    while chunk := reader.read(chunk_size):
        digest.update(chunk)
        destination.write(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _read_exactly(read_at: ReadAt, offset: int, length: int, object_id: str) -> bytes:
    data = read_at(offset, length)
    if len(data) != length:
        raise CiphertextError(
            f"object {object_id!r}: truncated: read {len(data)} of {length} bytes at offset "
            f"{offset} (the stored object is shorter than its recorded size)"
        )
    return data


def decrypt_range(
    read_at: ReadAt,
    stored_size: int,
    *,
    dek: bytes,
    object_id: str,
    start: int = 0,
    end: int | None = None,
) -> Iterator[bytes]:
    """Decrypt plaintext bytes ``start`` to ``end`` inclusive (HTTP Range semantics).

    ``read_at(offset, length)`` returns that many stored bytes; it is called once for the
    header and then about once per :data:`RANGE_READ_SIZE` of covering segments, never for
    segments outside the range. ``end`` None or past the end means "to the end". The empty
    object's only range is the whole object (``start=0, end=None``), which yields nothing but
    still authenticates its one segment.

    Returns an iterator of plaintext chunks. The header is read and the range and stored size
    are checked when this is called: InvalidInput for a negative ``start``, ``start > end`` or
    ``start`` at or beyond the plaintext size; CiphertextError when ``stored_size`` is not a
    valid size or the header is malformed. While iterating, CiphertextError for a segment that
    does not authenticate (including a final segment, when the range reaches the end, that was
    not sealed as final).
    """
    aead = _segments.check_data_key(dek)
    oid = _segments.encode_object_id(object_id)
    if not isinstance(start, int) or start < 0:
        raise InvalidInput(f"range start {start!r} must be a non-negative integer")
    if end is not None and (not isinstance(end, int) or end < start):
        raise InvalidInput(f"range end {end!r} is before its start {start}")
    if stored_size < HEADER_SIZE + TAG_SIZE:
        raise CiphertextError(
            f"object {object_id!r}: truncated: {stored_size} bytes cannot hold a header and a "
            "segment"
        )
    header = Header.from_bytes(
        _read_exactly(read_at, 0, HEADER_SIZE, object_id), object_id=object_id
    )
    size = plaintext_size(stored_size, header.segment_size, object_id=object_id)
    if size == 0 and start == 0 and end is None:
        last = -1
    elif start >= size:
        raise InvalidInput(f"range start {start} is beyond the {size}-byte object {object_id!r}")
    else:
        last = size - 1 if end is None else min(end, size - 1)
    return _decrypt_segments(read_at, aead, header, oid, object_id, size, start, last)


def _decrypt_segments(
    read_at: ReadAt,
    aead: AESGCM,
    header: Header,
    oid: bytes,
    object_id: str,
    size: int,
    start: int,
    last: int,
) -> Iterator[bytes]:
    seg = header.segment_size
    full = header.stored_segment_size
    count = _segments.segment_count(size, seg)
    ad = _segments.associated_data(header.to_bytes(), oid)
    first_index = start // seg
    last_index = max(last, 0) // seg
    per_read = max(1, RANGE_READ_SIZE // full)
    for batch_start in range(first_index, last_index + 1, per_read):
        batch_end = min(batch_start + per_read, last_index + 1)  # exclusive
        offset = HEADER_SIZE + batch_start * full
        final_length = size - (count - 1) * seg + TAG_SIZE
        length = (batch_end - batch_start) * full
        if batch_end == count:
            length += final_length - full
        data = memoryview(_read_exactly(read_at, offset, length, object_id))
        for index in range(batch_start, batch_end):
            at = (index - batch_start) * full
            final = index == count - 1
            plain = _segments.open_segment(
                aead,
                header.nonce_prefix,
                index,
                final,
                data[at : at + (final_length if final else full)],
                ad,
                object_id=object_id,
                count=count,
            )
            base = index * seg
            lo = max(start - base, 0)
            hi = min(last + 1 - base, len(plain))
            if lo == 0 and hi == len(plain):
                yield plain
            elif hi > lo:
                yield plain[lo:hi]
