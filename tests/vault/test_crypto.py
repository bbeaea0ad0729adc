"""The evs1 stored-object format: round trips, ranges, streaming, and every attack on it."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import tracemalloc
from collections.abc import Callable
from typing import BinaryIO, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault.storage import crypto
from vault.storage.crypto import (
    HEADER_SIZE,
    TAG_SIZE,
    DecryptingReader,
    EncryptingReader,
    ciphertext_size,
    decrypt_range,
    decrypt_stream,
    new_data_key,
    parse_header,
    plaintext_size,
)
from vault.errors import CiphertextError, InvalidInput

SEG = 4096  # small segments keep boundary and tamper cases cheap
FULL = SEG + TAG_SIZE  # bytes a full segment occupies in storage
OID = "rec-0001"
DEK = bytes(range(32))
MiB = 1 << 20


def encrypt(
    plaintext: bytes, *, dek: bytes = DEK, object_id: str = OID, segment_size: int = SEG
) -> bytes:
    reader = EncryptingReader(
        io.BytesIO(plaintext), dek=dek, object_id=object_id, segment_size=segment_size
    )
    return reader.read()


def decrypt(stored: bytes, *, dek: bytes = DEK, object_id: str = OID) -> bytes:
    return DecryptingReader(io.BytesIO(stored), dek=dek, object_id=object_id).read()


class CountingStore:
    """A ``read_at`` over stored bytes that records every call."""

    def __init__(self, stored: bytes) -> None:
        self.stored = stored
        self.calls: list[tuple[int, int]] = []

    def __call__(self, offset: int, length: int) -> bytes:
        self.calls.append((offset, length))
        return self.stored[offset : offset + length]

    @property
    def bytes_read(self) -> int:
        return sum(length for _, length in self.calls)


def read_range(
    stored: bytes,
    start: int = 0,
    end: int | None = None,
    *,
    dek: bytes = DEK,
    object_id: str = OID,
    stored_size: int | None = None,
) -> bytes:
    size = len(stored) if stored_size is None else stored_size
    chunks = decrypt_range(
        CountingStore(stored), size, dek=dek, object_id=object_id, start=start, end=end
    )
    return b"".join(chunks)


def segment(stored: bytes, index: int) -> bytes:
    at = HEADER_SIZE + index * FULL
    return stored[at : at + FULL]


def segments(stored: bytes) -> list[bytes]:
    body = stored[HEADER_SIZE:]
    return [body[i : i + FULL] for i in range(0, len(body), FULL)]


def flip(data: bytes, position: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[position] ^= 1 << bit
    return bytes(out)


# --- round trips ---------------------------------------------------------------------------

BOUNDARY_SIZES = [
    0,
    1,
    15,
    16,
    17,
    SEG - 1,
    SEG,
    SEG + 1,
    2 * SEG - 1,
    2 * SEG,
    2 * SEG + 1,
    5 * SEG,
]


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
@pytest.mark.parametrize("segment_size", [SEG, 5000, 3 * SEG])
def test_round_trip_around_segment_boundaries(size: int, segment_size: int) -> None:
    plaintext = os.urandom(size)
    reader = EncryptingReader(
        io.BytesIO(plaintext), dek=DEK, object_id=OID, segment_size=segment_size
    )
    stored = reader.read()

    assert len(stored) == ciphertext_size(size, segment_size)
    assert plaintext_size(len(stored), segment_size) == size
    assert reader.plaintext_size == size
    assert reader.plaintext_sha256 == hashlib.sha256(plaintext).hexdigest()
    assert decrypt(stored) == plaintext
    assert read_range(stored) == plaintext


def test_empty_plaintext_is_one_authenticated_segment() -> None:
    stored = encrypt(b"")

    assert len(stored) == HEADER_SIZE + TAG_SIZE
    assert decrypt(stored) == b""
    assert read_range(stored) == b""


def test_default_segment_size_round_trip() -> None:
    plaintext = os.urandom(crypto.DEFAULT_SEGMENT_SIZE + 123)
    reader = EncryptingReader(io.BytesIO(plaintext), dek=DEK, object_id=OID)
    stored = reader.read()

    assert parse_header(stored[:HEADER_SIZE]).segment_size == crypto.DEFAULT_SEGMENT_SIZE
    assert len(stored) == ciphertext_size(len(plaintext))
    assert decrypt(stored) == plaintext


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plaintext=st.binary(min_size=0, max_size=4 * SEG + 50),
    read_sizes=st.lists(st.integers(min_value=1, max_value=3 * FULL), min_size=1, max_size=8),
)
def test_any_read_pattern_gives_the_same_stream(plaintext: bytes, read_sizes: list[int]) -> None:
    reader = EncryptingReader(io.BytesIO(plaintext), dek=DEK, object_id=OID, segment_size=SEG)
    expected_len = ciphertext_size(len(plaintext), SEG)
    pieces = []
    for i in range(expected_len + 1):  # bounded: at least one byte per read until the end
        piece = reader.read(read_sizes[i % len(read_sizes)])
        assert isinstance(piece, bytes)
        if not piece:
            break
        pieces.append(piece)
    stored = b"".join(pieces)

    assert len(stored) == expected_len
    assert all(len(p) == read_sizes[i % len(read_sizes)] for i, p in enumerate(pieces[:-1]))
    assert decrypt(stored) == plaintext
    assert reader.plaintext_sha256 == hashlib.sha256(plaintext).hexdigest()


@settings(max_examples=80, deadline=None)
@given(data=st.data(), size=st.integers(min_value=1, max_value=6 * SEG))
def test_any_range_equals_the_plaintext_slice(data: st.DataObject, size: int) -> None:
    plaintext = os.urandom(size)
    stored = encrypt(plaintext)
    start = data.draw(st.integers(min_value=0, max_value=size - 1), label="start")
    end = data.draw(st.integers(min_value=start, max_value=size + 10), label="end")

    assert read_range(stored, start, end) == plaintext[start : end + 1]


PLAIN = os.urandom(10 * SEG + 100)  # eleven segments, the last one short
STORED = encrypt(PLAIN)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 0),  # first byte
        (0, 99),  # a prefix
        (0, None),  # everything
        (5 * SEG + 7, 5 * SEG + 7),  # one byte in the middle
        (3 * SEG - 1, 3 * SEG),  # the two bytes either side of a boundary
        (3 * SEG, 4 * SEG - 1),  # exactly one segment
        (2 * SEG + 10, 7 * SEG + 10),  # across several boundaries
        (len(PLAIN) - 1, None),  # the last byte
        (len(PLAIN) - 500, None),  # a suffix across the last boundary
        (9 * SEG, len(PLAIN) + 1000),  # an end past the object is clamped, as in HTTP
    ],
)
def test_range_equals_the_plaintext_slice(start: int, end: int | None) -> None:
    expected = PLAIN[start:] if end is None else PLAIN[start : end + 1]
    assert read_range(STORED, start, end) == expected


@pytest.mark.parametrize(
    ("start", "end", "covering"),
    [
        (5 * SEG + 10, 6 * SEG + 10, [5, 6]),
        (0, 0, [0]),
        (3 * SEG, 4 * SEG - 1, [3]),
        (len(PLAIN) - 1, None, [10]),
    ],
)
def test_range_reads_only_the_covering_segments(
    start: int, end: int | None, covering: list[int]
) -> None:
    store = CountingStore(STORED)
    out = b"".join(decrypt_range(store, len(STORED), dek=DEK, object_id=OID, start=start, end=end))

    assert out == (PLAIN[start:] if end is None else PLAIN[start : end + 1])
    header_call, *segment_calls = store.calls
    assert header_call == (0, HEADER_SIZE)
    first, last = covering[0], covering[-1]
    expected_bytes = (
        HEADER_SIZE + first * FULL,
        HEADER_SIZE + last * FULL + len(segment(STORED, last)),
    )
    assert segment_calls[0][0] == expected_bytes[0]
    assert segment_calls[-1][0] + segment_calls[-1][1] == expected_bytes[1]
    assert store.bytes_read == HEADER_SIZE + expected_bytes[1] - expected_bytes[0]


def test_range_fetches_a_few_segments_per_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "RANGE_READ_SIZE", 3 * FULL)
    store = CountingStore(STORED)

    out = b"".join(decrypt_range(store, len(STORED), dek=DEK, object_id=OID))

    assert out == PLAIN
    # header, then segments 0-2, 3-5, 6-8, 9-10
    assert [length for _, length in store.calls] == [
        HEADER_SIZE,
        3 * FULL,
        3 * FULL,
        3 * FULL,
        FULL + len(segment(STORED, 10)),
    ]


def test_range_is_read_lazily() -> None:
    store = CountingStore(STORED)
    chunks = decrypt_range(store, len(STORED), dek=DEK, object_id=OID)

    assert store.calls == [(0, HEADER_SIZE)]  # only the header until iteration starts
    next(iter(chunks))
    assert len(store.calls) == 2


@pytest.mark.parametrize(
    ("start", "end"),
    [(10, 9), (-1, None), (len(PLAIN), None), (len(PLAIN) + 5, len(PLAIN) + 9)],
)
def test_bad_range_is_refused_before_any_segment_is_read(start: int, end: int | None) -> None:
    store = CountingStore(STORED)
    with pytest.raises(InvalidInput):
        decrypt_range(store, len(STORED), dek=DEK, object_id=OID, start=start, end=end)
    assert store.bytes_read <= HEADER_SIZE


def test_empty_object_has_no_byte_ranges() -> None:
    stored = encrypt(b"")
    with pytest.raises(InvalidInput):
        decrypt_range(CountingStore(stored), len(stored), dek=DEK, object_id=OID, start=0, end=0)


# --- streaming behaviour -------------------------------------------------------------------


class TrickleSource:
    """A source with only ``read``, returning at most a few bytes per call (like a pipe)."""

    def __init__(self, data: bytes, most: int = 7) -> None:
        self._data = memoryview(data)
        self._most = most
        self.position = 0

    def read(self, n: int = -1) -> bytes:
        n = self._most if n < 0 else min(n, self._most)
        piece = bytes(self._data[self.position : self.position + n])
        self.position += len(piece)
        return piece


def test_source_with_only_short_reads_round_trips() -> None:
    plaintext = os.urandom(3 * SEG + 5)
    reader = EncryptingReader(
        cast(BinaryIO, TrickleSource(plaintext)), dek=DEK, object_id=OID, segment_size=SEG
    )
    stored = reader.read()

    assert decrypt(stored) == plaintext
    assert (
        DecryptingReader(cast(BinaryIO, TrickleSource(stored)), dek=DEK, object_id=OID).read()
        == plaintext
    )


def test_encryption_reads_the_source_one_segment_ahead_at_most() -> None:
    source = io.BytesIO(os.urandom(10 * SEG))
    reader = EncryptingReader(source, dek=DEK, object_id=OID, segment_size=SEG)

    assert reader.read(HEADER_SIZE) and source.tell() == 0
    reader.read(1)
    assert source.tell() == SEG + 1  # segment 0 and the lookahead byte


def test_works_with_shutil_copyfileobj_and_minio_part_reader() -> None:
    from minio.helpers import read_part_data

    plaintext = os.urandom(7 * SEG + 3)
    out = io.BytesIO()
    shutil.copyfileobj(
        EncryptingReader(io.BytesIO(plaintext), dek=DEK, object_id=OID, segment_size=SEG), out, 1000
    )
    assert decrypt(out.getvalue()) == plaintext

    # What Minio.put_object(length=-1) does: read part_size + 1 bytes per part.
    reader = EncryptingReader(io.BytesIO(plaintext), dek=DEK, object_id=OID, segment_size=SEG)
    parts = []
    while part := read_part_data(cast(BinaryIO, reader), 3 * SEG + 1):
        parts.append(part)
    assert decrypt(b"".join(parts)) == plaintext


def test_readers_are_readable_binary_streams() -> None:
    reader = EncryptingReader(io.BytesIO(b"abc"), dek=DEK, object_id=OID, segment_size=SEG)
    assert reader.readable() and not reader.writable() and not reader.seekable()
    assert reader.read(0) == b""
    buffer = bytearray(5)
    assert reader.readinto(buffer) == 5
    assert bytes(buffer) == reader.header.to_bytes()[:5]
    rest = reader.read()
    assert reader.read() == b"" and reader.read(10) == b""
    assert decrypt(bytes(buffer) + rest) == b"abc"
    reader.close()
    with pytest.raises(ValueError):
        reader.read(1)


@pytest.mark.parametrize("size", [1, SEG - 1, SEG + 7, 3 * SEG + 1])
def test_readinto_across_segments_gives_the_same_bytes_as_read(size: int) -> None:
    plaintext = os.urandom(4 * SEG + 3)
    reader = EncryptingReader(io.BytesIO(plaintext), dek=DEK, object_id=OID, segment_size=SEG)
    buffer = bytearray(size)
    pieces = []
    while got := reader.readinto(buffer):
        pieces.append(bytes(buffer[:got]))
        if got < size:  # only the last read comes up short
            assert reader.readinto(buffer) == 0
            break
    assert decrypt(b"".join(pieces)) == plaintext


def test_plaintext_hash_is_refused_before_the_end() -> None:
    reader = EncryptingReader(io.BytesIO(b"x" * 3 * SEG), dek=DEK, object_id=OID, segment_size=SEG)
    reader.read(HEADER_SIZE + 10)
    with pytest.raises(InvalidInput):
        _ = reader.plaintext_sha256


def test_same_key_and_plaintext_never_give_the_same_ciphertext() -> None:
    assert encrypt(PLAIN) != encrypt(PLAIN)


def test_decrypt_stream_returns_size_and_hash() -> None:
    out = io.BytesIO()
    size, digest = decrypt_stream(io.BytesIO(STORED), out, dek=DEK, object_id=OID)
    assert (size, digest) == (len(PLAIN), hashlib.sha256(PLAIN).hexdigest())
    assert out.getvalue() == PLAIN


def test_header_names_the_format_and_segment_size() -> None:
    header = parse_header(STORED[:HEADER_SIZE])
    assert STORED[:4] == b"EVSF" and STORED[4] == 1 and crypto.FORMAT == "evs1"
    assert header.segment_size == SEG
    assert header.to_bytes() == STORED[:HEADER_SIZE]


@pytest.mark.parametrize("segment_size", [0, 4095, (16 << 20) + 1])
def test_segment_size_out_of_range_is_refused(segment_size: int) -> None:
    with pytest.raises(InvalidInput):
        EncryptingReader(io.BytesIO(b""), dek=DEK, object_id=OID, segment_size=segment_size)
    with pytest.raises(InvalidInput):
        ciphertext_size(10, segment_size)


@pytest.mark.parametrize("dek", [b"", b"k" * 16, b"k" * 33])
def test_bad_data_key_is_refused(dek: bytes) -> None:
    with pytest.raises(InvalidInput):
        EncryptingReader(io.BytesIO(b""), dek=dek, object_id=OID)
    with pytest.raises(InvalidInput):
        DecryptingReader(io.BytesIO(STORED), dek=dek, object_id=OID)


def test_empty_object_id_is_refused() -> None:
    with pytest.raises(InvalidInput):
        EncryptingReader(io.BytesIO(b""), dek=DEK, object_id="")


def test_new_data_keys_are_random_256_bit() -> None:
    keys = {new_data_key() for _ in range(4)}
    assert len(keys) == 4 and all(len(k) == 32 for k in keys)


def test_every_stored_size_is_valid_exactly_when_a_plaintext_produces_it() -> None:
    valid = {ciphertext_size(n, SEG) for n in range(5 * SEG + 1)}
    for stored_size in range(HEADER_SIZE + 4 * FULL + TAG_SIZE + 2):
        if stored_size in valid:
            assert ciphertext_size(plaintext_size(stored_size, SEG), SEG) == stored_size
        else:
            with pytest.raises(CiphertextError):
                plaintext_size(stored_size, SEG)


def test_streamed_encryption_memory_stays_per_segment() -> None:
    segment_size = 64 << 10
    total = 64 * MiB
    source = PatternSource(total)  # its 1 MiB pattern block is not the reader's memory
    tracemalloc.start()
    try:
        reader = EncryptingReader(
            cast(BinaryIO, source), dek=DEK, object_id=OID, segment_size=segment_size
        )
        while reader.read(segment_size):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.plaintext_size == total
    assert peak < 8 * segment_size  # not O(input): the input is 1024 segments


# --- attacks -------------------------------------------------------------------------------


def _whole_stream(stored: bytes, *, dek: bytes = DEK, object_id: str = OID) -> bytes:
    return decrypt(stored, dek=dek, object_id=object_id)


def _whole_range(stored: bytes, *, dek: bytes = DEK, object_id: str = OID) -> bytes:
    return read_range(stored, dek=dek, object_id=object_id)


@pytest.fixture(params=["stream", "range"])
def open_object(request: pytest.FixtureRequest) -> Callable[..., bytes]:
    """Decrypt a whole stored object with DecryptingReader or with decrypt_range."""
    return _whole_stream if request.param == "stream" else _whole_range


def test_truncated_final_segment_is_detected(open_object: Callable[..., bytes]) -> None:
    with pytest.raises(CiphertextError, match=OID):
        open_object(STORED[:-7])


def test_dropped_final_segment_is_detected(open_object: Callable[..., bytes]) -> None:
    cut = STORED[: HEADER_SIZE + 10 * FULL]  # a valid-looking size: ten full segments
    with pytest.raises(CiphertextError, match="truncated: segment 9"):
        open_object(cut)


def test_truncation_to_header_only_is_detected(open_object: Callable[..., bytes]) -> None:
    with pytest.raises(CiphertextError, match="truncated"):
        open_object(STORED[:HEADER_SIZE])


def test_empty_object_truncated_to_header_only_is_detected(
    open_object: Callable[..., bytes],
) -> None:
    with pytest.raises(CiphertextError, match="truncated"):
        open_object(encrypt(b"")[:HEADER_SIZE])


def test_truncated_header_is_detected(open_object: Callable[..., bytes]) -> None:
    with pytest.raises(CiphertextError):
        open_object(STORED[: HEADER_SIZE - 3])


def test_dropped_middle_segment_is_detected(open_object: Callable[..., bytes]) -> None:
    parts = segments(STORED)
    tampered = STORED[:HEADER_SIZE] + b"".join(parts[:4] + parts[5:])
    with pytest.raises(CiphertextError, match="segment 4"):
        open_object(tampered)


def test_swapped_segments_are_detected(open_object: Callable[..., bytes]) -> None:
    parts = segments(STORED)
    parts[2], parts[3] = parts[3], parts[2]
    with pytest.raises(CiphertextError, match="segment 2"):
        open_object(STORED[:HEADER_SIZE] + b"".join(parts))


def test_duplicated_segment_is_detected(open_object: Callable[..., bytes]) -> None:
    parts = segments(STORED)
    tampered = STORED[:HEADER_SIZE] + b"".join(parts[:3] + [parts[2]] + parts[3:])
    with pytest.raises(CiphertextError, match="segment 3"):
        open_object(tampered)


def test_duplicated_final_segment_is_detected(open_object: Callable[..., bytes]) -> None:
    plaintext = os.urandom(3 * SEG)  # full final segment, so a copy keeps a valid-looking size
    stored = encrypt(plaintext)
    with pytest.raises(CiphertextError):
        open_object(stored + segment(stored, 2))


def test_data_appended_after_final_segment_is_detected(open_object: Callable[..., bytes]) -> None:
    stored = encrypt(os.urandom(3 * SEG))
    with pytest.raises(CiphertextError):
        open_object(stored + b"\0" * (SEG + 5))


def test_segment_spliced_from_another_object_is_detected(
    open_object: Callable[..., bytes],
) -> None:
    # Same data key and same plaintext, different object id: only the binding differs.
    other = encrypt(PLAIN, object_id="rec-0002")
    parts = segments(STORED)
    parts[6] = segment(other, 6)
    with pytest.raises(CiphertextError, match="segment 6"):
        open_object(STORED[:HEADER_SIZE] + b"".join(parts))


def test_segment_spliced_from_another_encryption_of_the_same_object_is_detected(
    open_object: Callable[..., bytes],
) -> None:
    other = encrypt(PLAIN)  # same key, object id and plaintext; another nonce prefix
    parts = segments(STORED)
    parts[6] = segment(other, 6)
    with pytest.raises(CiphertextError, match="segment 6"):
        open_object(STORED[:HEADER_SIZE] + b"".join(parts))


def test_header_swapped_from_another_object_is_detected(open_object: Callable[..., bytes]) -> None:
    other = encrypt(PLAIN)
    with pytest.raises(CiphertextError, match="segment 0"):
        open_object(other[:HEADER_SIZE] + STORED[HEADER_SIZE:])


@pytest.mark.parametrize("size", [100, 4 * SEG])
def test_changed_segment_size_field_is_detected(
    open_object: Callable[..., bytes], size: int
) -> None:
    # With one short segment the layout stays valid under the new size: only the header's
    # place in the associated data catches it.
    stored = encrypt(os.urandom(size))
    tampered = stored[:5] + struct.pack(">I", 2 * SEG) + stored[9:]
    with pytest.raises(CiphertextError):
        open_object(tampered)


@pytest.mark.parametrize(
    ("position", "message"),
    [
        (0, "bad magic"),
        (4, "version"),
        (7, OID),  # the segment size field: another size, so sizes or segment 0 fail
        (HEADER_SIZE - 1, "header or segment 0 does not authenticate"),  # nonce prefix
        (HEADER_SIZE, "segment 0 does not authenticate"),
        (HEADER_SIZE + 3 * FULL + 100, "segment 3 "),
        (HEADER_SIZE + 4 * FULL - 1, "segment 3 "),  # the last byte of segment 3's tag
        (len(STORED) - 1, "segment 10 "),  # the final tag
    ],
)
def test_flipped_bit_is_detected(
    open_object: Callable[..., bytes], position: int, message: str
) -> None:
    with pytest.raises(CiphertextError, match=message) as caught:
        open_object(flip(STORED, position))
    assert OID in str(caught.value)


def test_wrong_key_is_detected(open_object: Callable[..., bytes]) -> None:
    with pytest.raises(CiphertextError, match="segment 0"):
        open_object(STORED, dek=new_data_key())


def test_wrong_object_id_is_detected(open_object: Callable[..., bytes]) -> None:
    with pytest.raises(CiphertextError, match="rec-0002"):
        open_object(STORED, object_id="rec-0002")


@pytest.mark.parametrize("delta", [-1, +1, -FULL])
def test_wrong_stored_size_is_detected(delta: int) -> None:
    with pytest.raises(CiphertextError):
        read_range(STORED, stored_size=len(STORED) + delta)


def test_object_shorter_than_its_recorded_size_is_detected() -> None:
    with pytest.raises(CiphertextError, match="shorter"):
        read_range(STORED[:-FULL], stored_size=len(STORED))


def test_no_plaintext_is_released_from_a_tampered_segment() -> None:
    reader = DecryptingReader(
        io.BytesIO(flip(STORED, HEADER_SIZE + 2 * FULL + 5)), dek=DEK, object_id=OID
    )
    assert reader.read(SEG) == PLAIN[:SEG]
    assert reader.read(SEG) == PLAIN[SEG : 2 * SEG]
    with pytest.raises(CiphertextError, match="segment 2"):
        reader.read(1)
    with pytest.raises(CiphertextError):  # and it stays failed
        reader.read(1)


def test_range_ending_in_a_dropped_final_segment_checks_the_flag() -> None:
    cut = STORED[: HEADER_SIZE + 10 * FULL]
    size = plaintext_size(len(cut), SEG)
    with pytest.raises(CiphertextError, match="truncated"):
        b"".join(
            decrypt_range(CountingStore(cut), len(cut), dek=DEK, object_id=OID, start=size - 1)
        )


# --- multi-gigabyte stream -----------------------------------------------------------------


class PatternSource(io.RawIOBase):
    """``total`` bytes of pseudo-random data, generated as read, never held whole.

    Repeats a random block whose length is not a multiple of any segment size, so segments
    differ from one another.
    """

    def __init__(self, total: int, block_size: int = MiB + 7) -> None:
        super().__init__()
        self._block = os.urandom(block_size)
        self._left = total
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._left)
        done = 0
        while done < n:
            take = min(n - done, len(self._block) - self._pos)
            view[done : done + take] = self._block[self._pos : self._pos + take]
            self._pos = (self._pos + take) % len(self._block)
            done += take
        self._left -= n
        return n


@pytest.mark.slow
def test_two_gibibyte_stream_round_trips_in_constant_memory() -> None:
    total = (2 << 30) + 3  # not a whole number of segments
    source = PatternSource(total)
    tracemalloc.start()
    try:
        encrypting = EncryptingReader(cast(BinaryIO, source), dek=DEK, object_id=OID)
        decrypting = DecryptingReader(cast(BinaryIO, encrypting), dek=DEK, object_id=OID)
        digest = hashlib.sha256()
        size = 0
        while chunk := decrypting.read(MiB):
            digest.update(chunk)
            size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert size == total == encrypting.plaintext_size
    assert digest.hexdigest() == encrypting.plaintext_sha256
    assert peak < 16 * MiB, f"peak traced memory {peak / MiB:.1f} MiB for a 2 GiB stream"
