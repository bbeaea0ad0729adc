"""Benchmark: the evs1 stored-object format beside raw one-shot AES-256-GCM, same data, same run.

    python benchmarks/crypto.py                 # 1 GiB, 1 MiB segments, best of 3
    python benchmarks/crypto.py --size 256MiB --repeat 5

The plaintext is generated as it is read (a random 1 MiB block repeated), so no run holds the
stream in memory. Rows, each the best of ``--repeat`` runs, interleaved so that they share the
machine's load:

- raw AES-GCM encrypt / decrypt: ``AESGCM.encrypt``/``decrypt`` on 1 MiB buffers in memory (the
  anchor: no I/O, no hashing, no framing);
- raw AES-GCM + SHA-256: the anchor plus hashing the plaintext, the least work an encryptor
  that also reports the plaintext's SHA-256 (as EncryptingReader does) can do;
- evs1 encrypt: EncryptingReader over the generated stream, read in ``--read-size`` reads
  into a null sink (so it includes copying the source into segment buffers and the hash);
- evs1 decrypt: DecryptingReader over an encrypted temporary file (in the page cache after it
  is written), and decrypt_range over the same file with ``os.pread`` (what the vault uses);
- "segment-sized reads": the same readers read one segment at a time, which hands each
  segment over without the copy that joining several into one ``read`` result costs;
- raw AES-GCM decrypt + file reads: the anchor plus reading the same file in segments.

Memory: peak RSS of the whole process (``ru_maxrss``), and tracemalloc's peak over one extra
encrypt-then-decrypt pass. Ends with one summary line.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.storage import crypto

MiB = 1 << 20
GiB = 1 << 30
BLOCK_SIZE = MiB  # the raw anchor's buffer size and the generated stream's repeating block
_UNITS = {
    "": 1,
    "b": 1,
    "kib": 1 << 10,
    "mib": MiB,
    "gib": GiB,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
}


def parse_size(text: str) -> int:
    """Return the byte count of ``text`` such as ``1GiB``, ``512MiB`` or ``1048576``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1GiB, 256MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class GeneratedSource(io.RawIOBase):
    """``total`` bytes of a random block repeated, produced as read (never held whole)."""

    def __init__(self, total: int, block: bytes) -> None:
        super().__init__()
        self._block = block
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


def timed(run: Callable[[], object]) -> float:
    """Return the seconds ``run`` took."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=GiB, help="plaintext size (1GiB)")
    parser.add_argument(
        "--segment-size", type=parse_size, default=crypto.DEFAULT_SEGMENT_SIZE, help="(1MiB)"
    )
    parser.add_argument("--read-size", type=parse_size, default=8 * MiB, help="reads of (8MiB)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (3)")
    parser.add_argument("--tmpdir", type=Path, default=None, help="where the ciphertext goes")
    args = parser.parse_args(argv)
    size: int = args.size
    segment_size: int = args.segment_size
    read_size: int = args.read_size
    blocks = max(1, size // BLOCK_SIZE)
    anchor_bytes = blocks * BLOCK_SIZE

    block = os.urandom(BLOCK_SIZE)
    dek = crypto.new_data_key()
    aead = AESGCM(dek)
    object_id = "benchmark-object"
    ad = b"\0" * (crypto.HEADER_SIZE + len(object_id))
    sealed_block = aead.encrypt(b"\0" * 12, block, ad)

    def raw_encrypt() -> None:
        for i in range(blocks):
            aead.encrypt(i.to_bytes(12, "big"), block, ad)

    def raw_encrypt_sha256() -> None:
        digest = hashlib.sha256()
        for i in range(blocks):
            aead.encrypt(i.to_bytes(12, "big"), block, ad)
            digest.update(block)
        digest.hexdigest()

    def raw_decrypt() -> None:
        for _ in range(blocks):
            aead.decrypt(b"\0" * 12, sealed_block, ad)

    def vault_encrypt(
        sink: BinaryIO | None = None, chunk_size: int = read_size
    ) -> crypto.EncryptingReader:
        source = cast(BinaryIO, GeneratedSource(size, block))
        reader = crypto.EncryptingReader(
            source, dek=dek, object_id=object_id, segment_size=segment_size
        )
        while chunk := reader.read(chunk_size):
            if sink is not None:
                sink.write(chunk)
        return reader

    tmpdir = tempfile.TemporaryDirectory(dir=args.tmpdir, prefix="evs1-bench-")
    path = Path(tmpdir.name) / "object.evs1"
    stored_size = crypto.ciphertext_size(size, segment_size)
    full = segment_size + crypto.TAG_SIZE

    def raw_decrypt_file() -> None:
        # The least a reader of this file must do: read each segment, decrypt it in one shot.
        count = -(-size // segment_size) or 1
        buffer = bytearray(full)
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as f:
            header = f.read(crypto.HEADER_SIZE)
            prefix = crypto.parse_header(header).nonce_prefix
            segment_ad = header + object_id.encode()
            for i in range(count):
                got = f.readinto(view)
                nonce = prefix + i.to_bytes(4, "big") + bytes([i == count - 1])
                aead.decrypt(nonce, view[:got], segment_ad)

    def vault_decrypt(chunk_size: int = read_size) -> None:
        with open(path, "rb") as f:
            reader = crypto.DecryptingReader(cast(BinaryIO, f), dek=dek, object_id=object_id)
            while reader.read(chunk_size):
                pass

    def vault_range() -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            for _ in crypto.decrypt_range(
                lambda offset, length: os.pread(fd, length, offset),
                stored_size,
                dek=dek,
                object_id=object_id,
            ):
                pass
        finally:
            os.close(fd)

    print(
        f"evs1 benchmark: {size / GiB:.2f} GiB plaintext, {segment_size // 1024} KiB segments, "
        f"{read_size // MiB} MiB reads, best of {args.repeat}; anchors on {blocks} x 1 MiB buffers"
    )
    with open(path, "wb") as sink:
        write_s = timed(lambda: vault_encrypt(cast(BinaryIO, sink)))
    assert path.stat().st_size == stored_size
    print(f"  (wrote the ciphertext to {path} in {write_s:.2f} s)")

    runs: dict[str, list[float]] = {}
    rows: list[tuple[str, Callable[[], object], int]] = [
        ("raw AES-GCM encrypt", raw_encrypt, anchor_bytes),
        ("raw AES-GCM encrypt + SHA-256", raw_encrypt_sha256, anchor_bytes),
        ("evs1 EncryptingReader (+SHA-256)", vault_encrypt, size),
        ("  same, segment-sized reads (enc)", lambda: vault_encrypt(chunk_size=full), size),
        ("raw AES-GCM decrypt", raw_decrypt, anchor_bytes),
        ("raw AES-GCM decrypt + file reads", raw_decrypt_file, size),
        ("evs1 DecryptingReader (file)", vault_decrypt, size),
        ("  same, segment-sized reads (dec)", lambda: vault_decrypt(segment_size), size),
        ("evs1 decrypt_range (pread)", vault_range, size),
    ]
    for _ in range(args.repeat):
        for name, run, nbytes in rows:
            runs.setdefault(name, []).append(nbytes / GiB / timed(run))
    speed = {name: max(values) for name, values in runs.items()}

    anchors = {
        "evs1 EncryptingReader (+SHA-256)": (
            "raw AES-GCM encrypt",
            "raw AES-GCM encrypt + SHA-256",
        ),
        "  same, segment-sized reads (enc)": (
            "raw AES-GCM encrypt",
            "raw AES-GCM encrypt + SHA-256",
        ),
        "evs1 DecryptingReader (file)": ("raw AES-GCM decrypt", "raw AES-GCM decrypt + file reads"),
        "  same, segment-sized reads (dec)": (
            "raw AES-GCM decrypt",
            "raw AES-GCM decrypt + file reads",
        ),
        "evs1 decrypt_range (pread)": ("raw AES-GCM decrypt", "raw AES-GCM decrypt + file reads"),
    }
    for name, _, _ in rows:
        line = f"  {name:<36} {speed[name]:6.2f} GiB/s"
        if name in anchors:
            raw, matched = anchors[name]
            line += (
                f"   {speed[name] / speed[raw]:5.0%} of raw,"
                f" {speed[name] / speed[matched]:5.0%} of '{matched}'"
            )
        print(line)

    # Memory: one more pass under tracemalloc, encrypting straight into a decryptor.
    source = cast(BinaryIO, GeneratedSource(size, block))
    tracemalloc.start()
    encrypting = crypto.EncryptingReader(
        source, dek=dek, object_id=object_id, segment_size=segment_size
    )
    decrypting = crypto.DecryptingReader(cast(BinaryIO, encrypting), dek=dek, object_id=object_id)
    digest = hashlib.sha256()
    while chunk := decrypting.read(read_size):
        digest.update(chunk)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if digest.hexdigest() != encrypting.plaintext_sha256:
        print("ROUND TRIP FAILED: decrypted SHA-256 differs")
        return 1
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(
        f"  memory: peak RSS {rss_peak / MiB:.0f} MiB (whole process), tracemalloc peak "
        f"{traced_peak / MiB:.1f} MiB over an encrypt->decrypt pass of {size / GiB:.2f} GiB"
    )
    tmpdir.cleanup()

    raw_enc, raw_dec = speed["raw AES-GCM encrypt"], speed["raw AES-GCM decrypt"]
    enc = speed["evs1 EncryptingReader (+SHA-256)"]
    dec = speed["evs1 DecryptingReader (file)"]
    dec_seg = speed["  same, segment-sized reads (dec)"]
    rng = speed["evs1 decrypt_range (pread)"]
    print(
        f"SUMMARY evs1 {size / GiB:.2f} GiB: encrypt+SHA-256 {enc:.2f} GiB/s "
        f"({enc / raw_enc:.0%} of raw AES-GCM, "
        f"{enc / speed['raw AES-GCM encrypt + SHA-256']:.0%} of AES-GCM+SHA-256); decrypt "
        f"{dec:.2f} GiB/s in {read_size // MiB} MiB reads ({dec / raw_dec:.0%}), {dec_seg:.2f} "
        f"in segment reads ({dec_seg / raw_dec:.0%}), decrypt_range {rng:.2f} "
        f"({rng / raw_dec:.0%}); peak RSS {rss_peak / MiB:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
