"""Layout arithmetic, header codec and per-segment AEAD of the ``evs1`` format.

Private to :mod:`vault.storage.crypto`, whose docstring specifies the format byte by byte. Everything
here is small and pure (no I/O), so the streaming classes in ``crypto.py`` stay readable and the
size arithmetic can be tested on its own.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import CiphertextError, InvalidInput

FORMAT = "evs1"
MAGIC = b"EVSF"
VERSION = 1
KEY_SIZE = 32  # AES-256
TAG_SIZE = 16  # GCM tag appended to every segment
NONCE_PREFIX_SIZE = 7  # 7 + 4 (counter) + 1 (flag) = the 12-byte GCM nonce
HEADER_SIZE = 16  # magic 4 + version 1 + segment size 4 + nonce prefix 7
MIN_SEGMENT_SIZE = 4 << 10
MAX_SEGMENT_SIZE = 16 << 20
DEFAULT_SEGMENT_SIZE = 1 << 20
MAX_SEGMENTS = 1 << 32  # the counter is a 32-bit field; it must never wrap

FLAG_MORE = 0x00
FLAG_FINAL = 0x01

_HEADER = struct.Struct(">4sBI7s")
_COUNTER_FLAG = struct.Struct(">IB")
assert _HEADER.size == HEADER_SIZE


def _label(object_id: str | None) -> str:
    return f"object {object_id!r}" if object_id is not None else "object"


@dataclass(frozen=True)
class Header:
    """The fixed 16-byte header that opens every ``evs1`` object.

    Built by :meth:`new` (random nonce prefix) or :meth:`from_bytes` (validated).
    """

    segment_size: int
    nonce_prefix: bytes
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.version != VERSION:
            raise InvalidInput(
                f"unsupported evs version {self.version}; this build writes {VERSION}"
            )
        check_segment_size(self.segment_size)
        if len(self.nonce_prefix) != NONCE_PREFIX_SIZE:
            raise InvalidInput(f"nonce prefix must be {NONCE_PREFIX_SIZE} bytes")

    @classmethod
    def new(cls, segment_size: int) -> Header:
        """Return a header with a fresh random nonce prefix. Raises InvalidInput on a bad size."""
        return cls(segment_size=segment_size, nonce_prefix=os.urandom(NONCE_PREFIX_SIZE))

    def to_bytes(self) -> bytes:
        """Return the canonical 16-byte encoding."""
        return _HEADER.pack(MAGIC, self.version, self.segment_size, self.nonce_prefix)

    @classmethod
    def from_bytes(cls, data: bytes, *, object_id: str | None = None) -> Header:
        """Parse and check a stored header.

        Returns the header. Raises CiphertextError when ``data`` is not exactly a well-formed
        ``evs1`` header (short, wrong magic, unknown version, segment size out of range).
        Only the syntax is checked here; the header's bytes are authenticated by every segment.
        """
        who = _label(object_id)
        if len(data) != HEADER_SIZE:
            raise CiphertextError(f"{who}: truncated header ({len(data)} of {HEADER_SIZE} bytes)")
        magic, version, segment_size, prefix = _HEADER.unpack(bytes(data))
        if magic != MAGIC:
            raise CiphertextError(f"{who}: not an {FORMAT} object (bad magic)")
        if version != VERSION:
            raise CiphertextError(f"{who}: unsupported {FORMAT} header version {version}")
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise CiphertextError(f"{who}: header segment size {segment_size} is out of range")
        return cls(segment_size=segment_size, nonce_prefix=prefix, version=version)

    @property
    def stored_segment_size(self) -> int:
        """Bytes a full segment occupies in storage (plaintext segment plus tag)."""
        return self.segment_size + TAG_SIZE


def check_segment_size(segment_size: int) -> None:
    """Raise InvalidInput unless ``segment_size`` is within the allowed range."""
    if not isinstance(segment_size, int) or not (
        MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE
    ):
        raise InvalidInput(
            f"segment size {segment_size!r} must be between {MIN_SEGMENT_SIZE} and "
            f"{MAX_SEGMENT_SIZE} bytes"
        )


def check_data_key(dek: bytes) -> AESGCM:
    """Return the AEAD for ``dek``. Raises InvalidInput unless it is 32 bytes."""
    if not isinstance(dek, (bytes, bytearray)) or len(dek) != KEY_SIZE:
        raise InvalidInput(f"data key must be {KEY_SIZE} bytes")
    return AESGCM(bytes(dek))


def encode_object_id(object_id: str) -> bytes:
    """Return the UTF-8 object id bound into every segment. Raises InvalidInput if unusable."""
    if not isinstance(object_id, str) or not object_id:
        raise InvalidInput("object id must be a non-empty string")
    try:
        return object_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("object id must be valid Unicode text") from exc


def associated_data(header: bytes, object_id: bytes) -> bytes:
    """Return a segment's associated data: the header, then the object id.

    The header has a fixed length, so the concatenation is unambiguous.
    """
    return header + object_id


def nonce(prefix: bytes, index: int, final: bool) -> bytes:
    """Return the 12-byte nonce of segment ``index``."""
    return prefix + _COUNTER_FLAG.pack(index, FLAG_FINAL if final else FLAG_MORE)


def segment_count(plaintext_size: int, segment_size: int) -> int:
    """Return how many segments hold ``plaintext_size`` bytes (at least one, maybe empty)."""
    return max(1, -(-plaintext_size // segment_size))


def ciphertext_size(plaintext_size: int, segment_size: int) -> int:
    """Return the stored size of a plaintext of ``plaintext_size`` bytes.

    Raises InvalidInput on a negative size, a bad segment size, or a plaintext too large for
    the 32-bit segment counter.
    """
    check_segment_size(segment_size)
    if not isinstance(plaintext_size, int) or plaintext_size < 0:
        raise InvalidInput(f"plaintext size {plaintext_size!r} must be a non-negative integer")
    count = segment_count(plaintext_size, segment_size)
    if count > MAX_SEGMENTS:
        raise InvalidInput(
            f"{plaintext_size} bytes need {count} segments; the format allows {MAX_SEGMENTS}"
        )
    return HEADER_SIZE + plaintext_size + TAG_SIZE * count


def plaintext_size(stored_size: int, segment_size: int, *, object_id: str | None = None) -> int:
    """Return the plaintext size of a stored object of ``stored_size`` bytes.

    Raises CiphertextError when no plaintext encrypts to exactly ``stored_size`` bytes (the
    object was truncated or extended), InvalidInput on a bad segment size.
    """
    check_segment_size(segment_size)
    who = _label(object_id)
    body = stored_size - HEADER_SIZE
    if body < TAG_SIZE:
        raise CiphertextError(
            f"{who}: truncated: {stored_size} bytes cannot hold a header and one segment"
        )
    full = segment_size + TAG_SIZE
    count = -(-body // full)
    candidate = body - TAG_SIZE * count
    # Every valid size has exactly one candidate; re-encoding it catches the sizes no plaintext
    # produces (a tail shorter than a tag, or an empty segment after a full one).
    if candidate < 0 or ciphertext_size(candidate, segment_size) != stored_size:
        raise CiphertextError(
            f"{who}: truncated or extended: {stored_size} bytes is not a valid {FORMAT} size "
            f"for {segment_size}-byte segments"
        )
    return candidate


def open_segment(
    aead: AESGCM,
    prefix: bytes,
    index: int,
    final: bool,
    segment: bytes | bytearray | memoryview,
    ad: bytes,
    *,
    object_id: str,
    count: int | None = None,
) -> bytes:
    """Decrypt and authenticate one stored segment; return its plaintext.

    Raises CiphertextError naming the object and segment. When the segment would have opened
    with the other value of the last-segment flag, the message says what that means
    (truncation, or data after the final segment); anything else is alteration, reordering,
    splicing, or the wrong key or object id, which AES-GCM cannot tell apart.
    """
    try:
        return aead.decrypt(nonce(prefix, index, final), segment, ad)
    except InvalidTag:
        pass
    of = f" of {count}" if count is not None else ""
    try:
        aead.decrypt(nonce(prefix, index, not final), segment, ad)
    except InvalidTag:
        what = "the header or segment 0" if index == 0 else f"segment {index}{of}"
        raise CiphertextError(
            f"object {object_id!r}: {what} does not authenticate: altered, reordered or "
            "spliced from another object, or the wrong data key or object id"
        ) from None
    if final:
        raise CiphertextError(
            f"object {object_id!r}: truncated: segment {index}{of} is not the final segment "
            "(the segments after it are missing)"
        )
    raise CiphertextError(
        f"object {object_id!r}: segment {index} is the final segment but more data follows it "
        "(data appended or segments duplicated)"
    )
