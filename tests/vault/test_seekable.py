"""The seekable decrypting reader (vault/storage/seekable.py, issue #12 thumbnails).

:meth:`Vault.open_reader` logs one access, then gives a file whose reads decrypt only the
segments they cover: any seek and read returns the plaintext's bytes, a tampered segment is a
CiphertextError when it is read (not before), and a shredded recording is refused at open.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import random

import pytest

from vault.actors import Actor, Purpose, Role
from vault.capture import Capture
from vault.errors import CiphertextError, Shredded
from vault.ledger.custody import Action
from vault.storage.objectstore import LocalStore
from vault.vault import Vault

ACTOR = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation="Northside Homes")
WHY = Purpose(purpose="testing the reader")
T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def _put(vault: Vault, data: bytes) -> str:
    return vault.put_stream(io.BytesIO(data), Capture(source_id="cam-01", captured_at=T0),
                            actor=ACTOR).id


def test_any_seek_and_read_is_the_plaintext_and_the_access_is_logged_once(vault: Vault) -> None:
    """Issue #12: reads at random positions and lengths (across 4 KiB segments, from the end,
    past the end) return exactly the plaintext's bytes; opening is one ``viewed`` event with
    the details given, however many reads follow."""
    data = os.urandom(50_000)
    rid = _put(vault, data)
    _, reader = vault.open_reader(rid, actor=ACTOR, purpose=WHY, details={"thumbnails": 3})
    rng = random.Random(7)
    with reader:
        assert reader.seekable() and reader.size == len(data)
        for _ in range(200):
            at, n = rng.randrange(0, len(data) + 10), rng.randrange(1, 20_000)
            reader.seek(at)
            assert reader.read(n) == data[at:at + n]
            assert reader.tell() == min(at + n, len(data)) if at < len(data) else at
        reader.seek(-100, io.SEEK_END)
        assert reader.read() == data[-100:]
        reader.seek(0)
        assert io.BufferedReader(reader).read() == data
        with pytest.raises(ValueError):
            reader.seek(-1)
    events = [e.event for e in vault.ledger.events(action=Action.VIEWED.value, limit=100)
              if rid in e.event.object_ids]
    assert [e.details for e in events] == [{"thumbnails": 3}]


def test_a_tampered_segment_fails_when_read(vault: Vault) -> None:
    """A segment altered in the store is a CiphertextError when a read covers it; reads of
    other segments still succeed (each segment is authenticated on its own)."""
    data = os.urandom(30_000)
    rid = _put(vault, data)
    recording = vault.recording(rid)
    assert isinstance(vault.store, LocalStore)
    path = vault.store.root.joinpath(*recording.object_key.split("/"))
    stored = bytearray(path.read_bytes())
    stored[-50] ^= 1  # in the last segment
    path.write_bytes(bytes(stored))
    _, reader = vault.open_reader(rid, actor=ACTOR, purpose=WHY)
    assert reader.read(1000) == data[:1000]
    reader.seek(len(data) - 10)
    with pytest.raises(CiphertextError):
        reader.read(10)


def test_a_shredded_recording_is_refused_at_open(vault: Vault) -> None:
    """Retention destroyed the key: open_reader raises Shredded and logs nothing."""
    rid = _put(vault, os.urandom(5000))
    recording = vault.recording(rid)
    with vault.sessions.begin() as session:
        row = session.get(type(recording), rid)
        assert row is not None
        row.wrapped_dek = None
    with pytest.raises(Shredded):
        vault.open_reader(rid, actor=ACTOR, purpose=WHY, action=Action.VIEWED)
