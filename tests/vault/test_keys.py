"""Key providers: the local keyring file, wrapping, rotation, and what must fail."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from vault.errors import ConfigError, InvalidInput, KeyUnavailable
from vault.storage.keys import KeyProvider, LocalKeyring, WrappedKey, rewrap

DEK = bytes(range(32))
OID = "rec-0001"
T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "keyring.json"


@pytest.fixture
def keyring(keyring_path: Path) -> LocalKeyring:
    return LocalKeyring.create(keyring_path, clock=lambda: T0)


def _file(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _rewrite(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(data)
    path.chmod(0o600)


# --- wrapping ------------------------------------------------------------------------------


def test_wrap_round_trip(keyring: LocalKeyring) -> None:
    wrapped = keyring.wrap(DEK, context=OID)

    assert wrapped.key_id == "local-1" == keyring.current_key_id()
    assert len(wrapped.blob) == 61 and DEK not in wrapped.blob
    assert keyring.unwrap(wrapped, context=OID) == DEK


def test_wrapping_twice_gives_different_blobs(keyring: LocalKeyring) -> None:
    assert keyring.wrap(DEK, context=OID).blob != keyring.wrap(DEK, context=OID).blob


def test_wrapped_key_moved_to_another_object_does_not_open(keyring: LocalKeyring) -> None:
    wrapped = keyring.wrap(DEK, context=OID)
    with pytest.raises(KeyUnavailable, match="rec-0002"):
        keyring.unwrap(wrapped, context="rec-0002")


def test_wrapped_key_relabelled_with_another_key_id_does_not_open(keyring: LocalKeyring) -> None:
    keyring.rotate()
    wrapped = keyring.wrap(DEK, context=OID)  # under local-2
    with pytest.raises(KeyUnavailable):
        keyring.unwrap(WrappedKey(key_id="local-1", blob=wrapped.blob), context=OID)


def test_key_wrapped_by_another_keyring_file_does_not_open(
    keyring: LocalKeyring, tmp_path: Path
) -> None:
    other = LocalKeyring.create(tmp_path / "other.json")  # also has a "local-1"
    wrapped = other.wrap(DEK, context=OID)
    with pytest.raises(KeyUnavailable, match="wrong keyring"):
        keyring.unwrap(wrapped, context=OID)


@pytest.mark.parametrize("position", [0, 1, 20, 60])
def test_altered_wrapped_key_does_not_open(keyring: LocalKeyring, position: int) -> None:
    wrapped = keyring.wrap(DEK, context=OID)
    blob = bytearray(wrapped.blob)
    blob[position] ^= 0x01
    with pytest.raises(KeyUnavailable):
        keyring.unwrap(WrappedKey(key_id=wrapped.key_id, blob=bytes(blob)), context=OID)


def test_truncated_wrapped_key_does_not_open(keyring: LocalKeyring) -> None:
    wrapped = keyring.wrap(DEK, context=OID)
    with pytest.raises(KeyUnavailable, match="malformed"):
        keyring.unwrap(WrappedKey(key_id=wrapped.key_id, blob=wrapped.blob[:-1]), context=OID)


def test_unknown_key_id_is_unavailable(keyring: LocalKeyring) -> None:
    wrapped = keyring.wrap(DEK, context=OID)
    with pytest.raises(KeyUnavailable, match="local-9"):
        keyring.unwrap(WrappedKey(key_id="local-9", blob=wrapped.blob), context=OID)


@pytest.mark.parametrize("dek", [b"", b"k" * 31, b"k" * 33])
def test_wrap_refuses_a_malformed_data_key(keyring: LocalKeyring, dek: bytes) -> None:
    with pytest.raises(InvalidInput):
        keyring.wrap(dek, context=OID)


def test_wrap_refuses_an_empty_context(keyring: LocalKeyring) -> None:
    with pytest.raises(InvalidInput):
        keyring.wrap(DEK, context="")


def test_key_material_is_not_in_reprs(keyring: LocalKeyring, keyring_path: Path) -> None:
    wrapped = keyring.wrap(DEK, context=OID)
    kek_b64 = _file(keyring_path)["keys"][0]["key"]
    assert kek_b64 not in repr(keyring) and "key=" not in repr(keyring._keys["local-1"])
    assert repr(wrapped.blob) not in repr(wrapped)


def test_local_keyring_is_a_key_provider(keyring: LocalKeyring) -> None:
    assert isinstance(keyring, KeyProvider)


# --- rotation ------------------------------------------------------------------------------


def test_rotation_keeps_old_keys_usable(keyring: LocalKeyring, keyring_path: Path) -> None:
    old = keyring.wrap(DEK, context=OID)

    assert keyring.rotate() == "local-2"
    new = keyring.wrap(DEK, context=OID)

    assert keyring.current_key_id() == new.key_id == "local-2"
    assert keyring.key_ids() == ["local-1", "local-2"]
    assert keyring.unwrap(old, context=OID) == DEK
    reopened = LocalKeyring.open(keyring_path)
    assert reopened.unwrap(old, context=OID) == reopened.unwrap(new, context=OID) == DEK
    states = {k["id"]: k["state"] for k in _file(keyring_path)["keys"]}
    assert states == {"local-1": "retired", "local-2": "active"}


def test_rewrap_moves_a_data_key_to_the_current_key(keyring: LocalKeyring) -> None:
    old = keyring.wrap(DEK, context=OID)
    assert rewrap(keyring, old, context=OID) is old  # already current: nothing to do

    keyring.rotate()
    moved = rewrap(keyring, old, context=OID)

    assert moved.key_id == "local-2"
    assert keyring.unwrap(moved, context=OID) == DEK
    with pytest.raises(KeyUnavailable):
        rewrap(keyring, old, context="rec-0002")


def test_rotation_by_another_process_is_seen_by_unwrap(keyring_path: Path) -> None:
    first = LocalKeyring.create(keyring_path)
    second = LocalKeyring.open(keyring_path)
    assert second.rotate() == "local-2"
    wrapped = second.wrap(DEK, context=OID)

    assert first.unwrap(wrapped, context=OID) == DEK  # re-reads the file for local-2


def test_rotation_by_another_process_is_seen_by_wrap(keyring_path: Path) -> None:
    agent = LocalKeyring.create(keyring_path)
    assert agent.wrap(DEK, context=OID).key_id == "local-1"
    assert LocalKeyring.open(keyring_path).rotate() == "local-2"  # an operator, elsewhere
    assert agent.wrap(DEK, context=OID).key_id == "local-2"


def test_concurrent_rotations_never_lose_a_key(keyring_path: Path) -> None:
    stale = LocalKeyring.create(keyring_path)
    other = LocalKeyring.open(keyring_path)
    other.rotate()
    wrapped = other.wrap(DEK, context=OID)  # under the other process's local-2

    assert stale.rotate() == "local-3"  # not a second, different local-2 over the first
    assert LocalKeyring.open(keyring_path).unwrap(wrapped, context=OID) == DEK


def test_created_times_come_from_the_clock(keyring_path: Path) -> None:
    times = iter([T0, T0 + dt.timedelta(days=90)])
    keyring = LocalKeyring.create(keyring_path, clock=lambda: next(times))
    keyring.rotate()
    created = [k["created"] for k in _file(keyring_path)["keys"]]
    assert created == ["2026-11-01T09:00:00Z", "2027-01-30T09:00:00Z"]


# --- the file --------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o377])
def test_keyring_file_is_private(keyring_path: Path, umask: int) -> None:
    old_umask = os.umask(umask)  # the mode is 0600 whatever the umask
    try:
        keyring = LocalKeyring.create(keyring_path)
        keyring.rotate()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(keyring_path.stat().st_mode) == 0o600


def test_keyring_readable_by_others_is_refused(keyring: LocalKeyring, keyring_path: Path) -> None:
    keyring_path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        LocalKeyring.open(keyring_path)


def test_writes_leave_no_temporary_files(keyring: LocalKeyring, keyring_path: Path) -> None:
    keyring.rotate()
    assert sorted(p.name for p in keyring_path.parent.iterdir()) == [
        "keyring.json",
        "keyring.json.lock",
    ]


def test_existing_keyring_is_never_replaced(keyring: LocalKeyring, keyring_path: Path) -> None:
    before = keyring_path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        LocalKeyring.create(keyring_path)
    assert keyring_path.read_bytes() == before


def test_missing_keyring_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        LocalKeyring.open(tmp_path / "nope.json")


def _corrupt_cases(path: Path) -> dict[str, str | bytes]:
    good = _file(path)
    cases: dict[str, str | bytes] = {
        "garbage": os.urandom(64),
        "truncated json": path.read_text()[:40],
        "not a keyring": json.dumps({"hello": "world"}),
        "future version": json.dumps({**good, "version": 99}),
        "no keys": json.dumps({**good, "keys": []}),
        "bad base64": json.dumps({**good, "keys": [{**good["keys"][0], "key": "%%%"}]}),
        "short key": json.dumps(
            {**good, "keys": [{**good["keys"][0], "key": base64.b64encode(b"x" * 16).decode()}]}
        ),
        "current not active": json.dumps({**good, "current": "local-7"}),
        "unknown state": json.dumps({**good, "keys": [{**good["keys"][0], "state": "weird"}]}),
    }
    return cases


@pytest.mark.parametrize(
    "case",
    [
        "garbage",
        "truncated json",
        "not a keyring",
        "future version",
        "no keys",
        "bad base64",
        "short key",
        "current not active",
        "unknown state",
    ],
)
def test_corrupt_keyring_is_a_config_error(
    keyring: LocalKeyring, keyring_path: Path, case: str
) -> None:
    _rewrite(keyring_path, _corrupt_cases(keyring_path)[case])
    with pytest.raises(ConfigError) as caught:
        LocalKeyring.open(keyring_path)
    message = str(caught.value)
    assert str(keyring_path) in message and "\n" not in message


# --- passphrase ----------------------------------------------------------------------------


def test_passphrase_keyring_round_trip(keyring_path: Path) -> None:
    keyring = LocalKeyring.create(keyring_path, passphrase="correct horse")
    wrapped = keyring.wrap(DEK, context=OID)
    keyring.rotate()

    reopened = LocalKeyring.open(keyring_path, passphrase="correct horse")

    assert reopened.unwrap(wrapped, context=OID) == DEK
    entries = _file(keyring_path)["keys"]
    assert all("sealed" in k and "key" not in k for k in entries)
    assert _file(keyring_path)["kdf"]["name"] == "scrypt"


def test_wrong_passphrase_is_refused(keyring_path: Path) -> None:
    LocalKeyring.create(keyring_path, passphrase="correct horse")
    with pytest.raises(KeyUnavailable, match="wrong passphrase") as caught:
        LocalKeyring.open(keyring_path, passphrase="battery staple")
    assert "battery" not in str(caught.value)


def test_missing_passphrase_is_refused(keyring_path: Path) -> None:
    LocalKeyring.create(keyring_path, passphrase="correct horse")
    with pytest.raises(KeyUnavailable, match="EVIDENCE_VAULT_KEYRING_PASSPHRASE"):
        LocalKeyring.open(keyring_path)


def test_passphrase_for_an_unprotected_keyring_is_refused(
    keyring: LocalKeyring, keyring_path: Path
) -> None:
    with pytest.raises(ConfigError, match="no passphrase"):
        LocalKeyring.open(keyring_path, passphrase="correct horse")


def test_sealed_key_moved_to_another_id_does_not_open(keyring_path: Path) -> None:
    keyring = LocalKeyring.create(keyring_path, passphrase="correct horse")
    keyring.rotate()
    data = _file(keyring_path)
    data["keys"][0]["sealed"], data["keys"][1]["sealed"] = (
        data["keys"][1]["sealed"],
        data["keys"][0]["sealed"],
    )
    _rewrite(keyring_path, json.dumps(data))
    with pytest.raises(KeyUnavailable):
        LocalKeyring.open(keyring_path, passphrase="correct horse")


def test_empty_passphrase_is_refused(keyring_path: Path) -> None:
    with pytest.raises(InvalidInput):
        LocalKeyring.create(keyring_path, passphrase="")
    assert not keyring_path.exists()


@pytest.mark.parametrize("passphrase", [None, "correct horse"])
def test_a_destroyed_key_is_gone_from_the_file_and_says_so(keyring_path: Path,
                                                          passphrase: str | None) -> None:
    keyring = LocalKeyring.create(keyring_path, passphrase=passphrase)
    old = keyring.wrap(DEK, context=OID)
    keyring.rotate()
    keyring.destroy("local-1")
    keyring.destroy("local-1")  # twice is a no-op
    entry = json.loads(keyring_path.read_text())["keys"][0]
    assert entry["state"] == "destroyed" and not {"key", "sealed"} & set(entry)
    reopened = LocalKeyring.open(keyring_path, passphrase=passphrase)
    assert reopened.key_ids() == ["local-2"]
    assert [k.state for k in reopened.describe()] == ["destroyed", "active"]
    with pytest.raises(KeyUnavailable, match="destroyed on"):
        reopened.unwrap(old, context=OID)
    assert reopened.rotate() == "local-3"  # ids are never reused
