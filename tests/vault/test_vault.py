"""End-to-end behaviour of the Vault facade: put, read, ranges, duplicates, failures."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from pathlib import Path

import pytest

from vault.storage import crypto
from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import Recording
from vault.config import Settings
from vault.errors import (
    CiphertextError,
    InvalidInput,
    KeyUnavailable,
    NotFound,
    Shredded,
    StorageError,
)
from vault.vault import ByteRange, Vault
from vault.capture import Capture

ACTOR = Actor(user="officer-1", role=Role.ASB_OFFICER, organisation="Housing", client_addr="127.0.0.1")
PURPOSE = Purpose(purpose="incident review", reference="ASB/2026/001")
T0 = dt.datetime(2026, 11, 1, 14, 32, tzinfo=dt.timezone.utc)


def _read_all(vault: Vault, rid: str, byte_range: ByteRange | None = None) -> bytes:
    _, _, chunks = vault.read(rid, actor=ACTOR, purpose=PURPOSE, byte_range=byte_range)
    return b"".join(chunks)


def test_round_trip_across_sizes(any_vault: Vault) -> None:
    seg = any_vault.settings.segment_size
    for size in (0, 1, seg - 1, seg, seg + 1, 3 * seg + 17):
        data = os.urandom(size)
        rec = any_vault.put_stream(
            io.BytesIO(data),
            Capture(source_id="cam-01", captured_at=T0 + dt.timedelta(seconds=size)),
            actor=ACTOR,
        )
        assert rec.size == size
        assert rec.sha256 == hashlib.sha256(data).hexdigest()
        assert _read_all(any_vault, rec.id) == data
        any_vault.verify_recording(rec.id)


def test_byte_ranges_equal_plaintext_slices(any_vault: Vault) -> None:
    seg = any_vault.settings.segment_size
    data = os.urandom(5 * seg + 123)
    rec = any_vault.put_stream(
        io.BytesIO(data), Capture(source_id="cam-01", captured_at=T0), actor=ACTOR
    )
    cases = {
        "0-0": data[0:1],
        f"{seg - 1}-{seg}": data[seg - 1 : seg + 1],
        f"{2 * seg + 5}-{4 * seg}": data[2 * seg + 5 : 4 * seg + 1],
        f"{len(data) - 10}-": data[-10:],
        "-100": data[-100:],
        f"10-{len(data) * 2}": data[10:],  # an end past the size is clipped, as in HTTP
    }
    for text, expected in cases.items():
        assert _read_all(any_vault, rec.id, ByteRange.parse(text)) == expected, text
    with pytest.raises(InvalidInput):
        _read_all(any_vault, rec.id, ByteRange.parse(f"{len(data)}-"))


@pytest.mark.parametrize("text", ["", "abc", "5-2", "-0", "1-2-3", "-"])
def test_bad_range_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        ByteRange.parse(text)


def test_same_file_twice_is_one_recording(vault: Vault) -> None:
    data = b"the same clip" * 1000
    first = vault.put_stream(
        io.BytesIO(data), Capture(source_id="cam-02", captured_at=T0), actor=ACTOR
    )
    second = vault.put_stream(
        io.BytesIO(data), Capture(source_id="cam-02", captured_at=T0), actor=ACTOR
    )
    assert first.id == second.id
    assert len(vault.recordings(source_id="cam-02")) == 1
    # The duplicate upload is removed: only one object is stored.
    assert list(vault.store.list("recordings/")) == [first.object_key]


def test_every_access_is_logged_before_bytes_are_released(vault: Vault) -> None:
    rec = vault.put_stream(
        io.BytesIO(b"x" * 10), Capture(source_id="cam-01", captured_at=T0), actor=ACTOR
    )
    _read_all(vault, rec.id, ByteRange.parse("0-4"))
    events = vault.ledger.events(object_id=rec.id)
    actions = [e.action.value if hasattr(e.action, "value") else e.action for e in events]
    assert actions[0] == "ingested"
    assert actions[-1] == "viewed"
    vault.ledger.verify()


def test_export_file_verifies_hash_and_leaves_no_partial_file(vault: Vault, tmp_path: Path) -> None:
    data = os.urandom(3 * vault.settings.segment_size)
    rec = vault.put_stream(
        io.BytesIO(data), Capture(source_id="cam-01", captured_at=T0), actor=ACTOR
    )
    out = tmp_path / "out.bin"
    vault.export_file(rec.id, out, actor=ACTOR, purpose=PURPOSE)
    assert out.read_bytes() == data

    # Corrupt one byte of the stored ciphertext: decryption fails, no output appears.
    path = vault.settings.objects_dir / rec.object_key
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(raw))
    broken = tmp_path / "broken.bin"
    with pytest.raises(CiphertextError):
        vault.export_file(rec.id, broken, actor=ACTOR, purpose=PURPOSE)
    assert not broken.exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    with pytest.raises(CiphertextError):
        vault.verify_recording(rec.id)


def test_unknown_recording_is_not_found(vault: Vault) -> None:
    with pytest.raises(NotFound, match="no recording with id nope"):
        vault.recording("nope")


def test_shredded_recording_says_when_it_was_deleted(vault: Vault) -> None:
    data = b"evidence" * 100
    rec = vault.put_stream(
        io.BytesIO(data), Capture(source_id="cam-01", captured_at=T0), actor=ACTOR
    )
    # Simulate retention: the wrapped key is destroyed; the ciphertext survives (a backup).
    with vault.sessions.begin() as session:
        row = session.get(Recording, rec.id)
        assert row is not None
        row.wrapped_dek = None
        row.deleted_at = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
        row.deletion_reason = "retention: 23 days after capture"
    with pytest.raises(Shredded, match="deleted on 2026-11-24"):
        _read_all(vault, rec.id)


def test_wrong_keyring_fails_clearly(vault: Vault, tmp_path: Path) -> None:
    from vault.storage.keys import LocalKeyring

    rec = vault.put_stream(
        io.BytesIO(b"abc"), Capture(source_id="cam-01", captured_at=T0), actor=ACTOR
    )
    other = LocalKeyring.create(tmp_path / "other-keyring.json")
    vault.keys = other
    with pytest.raises(KeyUnavailable):
        _read_all(vault, rec.id)


def test_failed_upload_leaves_nothing_behind(vault: Vault) -> None:
    class Exploding(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            if self.sent > 3 * vault.settings.segment_size:
                raise OSError(28, "No space left on device")
            n = len(b)
            b[:n] = b"\0" * n
            self.sent += n
            return n

    with pytest.raises((StorageError, OSError)):
        vault.put_stream(Exploding(), Capture(source_id="cam-01", captured_at=T0), actor=ACTOR)  # type: ignore[arg-type]
    assert list(vault.store.list("")) == []
    assert vault.recordings() == []


def test_naive_capture_time_is_refused(vault: Vault) -> None:
    with pytest.raises(InvalidInput, match="timezone"):
        vault.put_stream(
            io.BytesIO(b"a"),
            Capture(source_id="c", captured_at=dt.datetime(2026, 1, 1)),
            actor=ACTOR,
        )


def test_put_file_missing_is_not_found(vault: Vault, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        vault.put_file(tmp_path / "missing.mp4", Capture(source_id="c"), actor=ACTOR)


def test_open_without_init_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="evidence-vault init"):
        Vault.open(Settings(home=tmp_path / "nothing"))


def test_ciphertext_never_contains_plaintext(vault: Vault) -> None:
    marker = b"PLAINTEXT-MARKER-" * 64
    rec = vault.put_stream(
        io.BytesIO(marker), Capture(source_id="cam-01", captured_at=T0), actor=ACTOR
    )
    stored = (vault.settings.objects_dir / rec.object_key).read_bytes()
    assert b"PLAINTEXT-MARKER" not in stored
    assert len(stored) == crypto.ciphertext_size(len(marker), vault.settings.segment_size)


def test_orphaned_upload_is_found_and_removed(vault: Vault) -> None:
    kept = vault.put_stream(
        io.BytesIO(b"kept"), Capture(source_id="cam-01", captured_at=T0), actor=ACTOR
    )
    # An agent died after uploading but before the catalog commit: ciphertext, no row.
    vault.store.put("recordings/ab/abandoned", io.BytesIO(b"ciphertext"))
    assert vault.orphans() == []  # too young: could be a put still in flight
    assert vault.orphans(older_than=dt.timedelta(0)) == ["recordings/ab/abandoned"]
    assert vault.remove_orphans(older_than=dt.timedelta(0)) == ["recordings/ab/abandoned"]
    assert list(vault.store.list("recordings/")) == [kept.object_key]


def test_find_by_hash_and_received_at(vault: Vault) -> None:
    received = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
    rec = vault.put_stream(
        io.BytesIO(b"abc"),
        Capture(source_id="bwv-1", captured_at=T0, received_at=received),
        actor=ACTOR,
    )
    assert rec.received_at == received
    assert vault.find_by_hash("bwv-1", hashlib.sha256(b"abc").hexdigest()).id == rec.id  # type: ignore[union-attr]
    assert vault.find_by_hash("bwv-2", rec.sha256) is None
