"""Issue #16 item 4: keys out of the app's volume, in a real PKCS#11 token (SoftHSM2)."""

from __future__ import annotations

import datetime as dt
import io
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.servers import SoftHsm
from vault import Settings, Vault
from vault.capture import Capture
from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import Recording, SourceKind
from vault.errors import ConfigError, InvalidInput, KeyUnavailable
from vault.storage.key_providers import open_key_provider
from vault.storage.keys import WrappedKey
from vault.storage.pkcs11 import Pkcs11Keys
from vault.casework.rekey import describe_keys, destroy, rewrap, rotate

ACTOR = Actor(user="admin-1", role=Role.ADMINISTRATOR, organisation="Housing", client_addr="10.0.0.9")
PURPOSE = Purpose("review", "DPA 2018 s.35", "CASE/1")
ROOT = Path(__file__).resolve().parents[2]


def _settings(home: Path, hsm: SoftHsm, label: str, *, pin: str | None = None) -> Settings:
    return Settings(home=home, segment_size=4096, key_provider="pkcs11", pkcs11_module=hsm.module,
                    pkcs11_token_label=hsm.token_label, pkcs11_pin=SecretStr(pin or hsm.pin),
                    pkcs11_key_label=label)


@pytest.fixture
def label() -> str:
    """This test's own key label on the shared token."""
    return f"kek-{secrets.token_hex(4)}"


@pytest.fixture
def vault(tmp_path: Path, softhsm: SoftHsm, label: str) -> Iterator[Vault]:
    with Vault.init(_settings(tmp_path / "home", softhsm, label)) as v:
        yield v


def _put(vault: Vault, data: bytes) -> str:
    return vault.put_stream(
        io.BytesIO(data),
        Capture(
            source_id="cam-1", source_kind=SourceKind.CCTV, captured_at=dt.datetime.now(dt.UTC)
        ),
        actor=ACTOR,
    ).id


def _read(vault: Vault, rid: str) -> bytes:
    _, _, chunks = vault.read(rid, actor=ACTOR, purpose=PURPOSE)
    return b"".join(chunks)


def _row(vault: Vault, rid: str) -> Recording:
    with vault.sessions() as session:
        row = session.get(Recording, rid)
        assert row is not None
        return row


def test_footage_is_stored_and_read_with_a_kek_that_never_leaves_the_token(
        vault: Vault, softhsm: SoftHsm, label: str) -> None:
    """Issue #16 item 4: with key_provider=pkcs11 the data keys are wrapped inside the token;
    the vault's volume holds no keyring, and the token refuses to reveal or export the KEK."""
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11 import exceptions as p11

    data = os.urandom(20_000)
    rid = _put(vault, data)
    assert _read(vault, rid) == data
    assert isinstance(vault.keys, Pkcs11Keys)
    assert _row(vault, rid).key_id == "pkcs11-1"
    assert not vault.settings.keyring_file.exists()
    assert not any("keyring" in p.name for p in vault.settings.home_dir.rglob("*"))

    import pkcs11

    # The vault's provider holds this process's login to the token; a session shares it.
    with pkcs11.lib(str(softhsm.module)).get_token(token_label=softhsm.token_label).open(
            rw=True) as session:
        objects: list[Any] = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))
        kek = next(o for o in objects if str(o.label).startswith(label + "/1/"))
        assert kek[Attribute.SENSITIVE] and kek[Attribute.ALWAYS_SENSITIVE]
        assert not kek[Attribute.EXTRACTABLE] and kek[Attribute.NEVER_EXTRACTABLE]
        with pytest.raises(p11.AttributeSensitive):
            kek[Attribute.VALUE]
        # Nor can it be wrapped out of the token under a key an attacker holds.
        thief: Any = session.generate_key(KeyType.AES, 256, label="thief", capabilities=None,
                                     template={Attribute.WRAP: True, Attribute.EXTRACTABLE: True})
        with pytest.raises((p11.KeyUnextractable, p11.KeyNotWrappable, p11.MechanismInvalid)):
            thief.wrap_key(kek, mechanism=Mechanism.AES_KEY_WRAP)


def test_a_second_process_opens_the_footage_through_the_token_alone(
        vault: Vault, softhsm: SoftHsm, label: str) -> None:
    """Issue #16 item 4: another process (another API or worker instance) reads the footage
    with the same token settings: nothing but the token and the catalog is shared."""
    rid = _put(vault, b"shared footage " * 500)
    code = (
        "import sys; from pathlib import Path; from pydantic import SecretStr;"
        "from vault import Settings, Vault; from tests.deploy.test_pkcs11 import ACTOR, PURPOSE;"
        "s = Settings(home=Path(sys.argv[1]), key_provider='pkcs11', pkcs11_module=sys.argv[2],"
        " pkcs11_token_label=sys.argv[3], pkcs11_pin=SecretStr(sys.argv[4]), pkcs11_key_label=sys.argv[5]);"
        "v = Vault.open(s); _, _, c = v.read(sys.argv[6], actor=ACTOR, purpose=PURPOSE);"
        "sys.stdout.write(b''.join(c).decode()); v.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(vault.settings.home_dir), str(softhsm.module),
         softhsm.token_label, softhsm.pin, label, rid],
        cwd=ROOT, env={**os.environ, **softhsm.env()}, capture_output=True, text=True,
        timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "shared footage " * 500


def test_rotation_rewrap_and_destroy_work_on_the_token(vault: Vault) -> None:
    """Issue #16 item 4: keyring rotation (vault.casework.rekey) works with the PKCS#11 provider: a new
    KEK is generated in the token, data keys move onto it, and destroying the retired KEK in
    the token shreds every copy of a data key it wrapped (a catalog backup, say)."""
    data = os.urandom(9_000)
    rid = _put(vault, data)
    before = _row(vault, rid)
    backup = WrappedKey(before.key_id, bytes(before.wrapped_dek or b""))

    assert rotate(vault, actor=ACTOR, reason="test") == {"old_key_id": "pkcs11-1",
                                                         "new_key_id": "pkcs11-2"}
    assert vault.keys.current_key_id() == "pkcs11-2"
    assert [k.state for k in describe_keys(vault)] == ["retired", "active"]
    assert rewrap(vault, actor=ACTOR).rewrapped == 1
    assert _row(vault, rid).key_id == "pkcs11-2"
    assert _read(vault, rid) == data

    with pytest.raises(InvalidInput, match="current key"):
        destroy(vault, "pkcs11-2", actor=ACTOR, reason="test", grace=dt.timedelta(0))
    destroy(vault, "pkcs11-1", actor=ACTOR, reason="test", grace=dt.timedelta(0))
    assert vault.keys.key_ids() == ["pkcs11-2"]
    with pytest.raises(KeyUnavailable, match="not on token"):
        vault.keys.unwrap(backup, context=rid)
    assert _read(vault, rid) == data


def test_a_wrapped_key_opens_only_for_its_own_object_and_unaltered(vault: Vault) -> None:
    """Issue #16 item 4: the wrap inside the token is bound to the object id (GCM additional
    data) and authenticated: a blob moved to another row, or altered, does not open."""
    dek = os.urandom(32)
    wrapped = vault.keys.wrap(dek, context="object-a")
    assert vault.keys.unwrap(wrapped, context="object-a") == dek
    with pytest.raises(KeyUnavailable, match="another object"):
        vault.keys.unwrap(wrapped, context="object-b")
    flipped = bytearray(wrapped.blob)
    flipped[20] ^= 1
    with pytest.raises(KeyUnavailable):
        vault.keys.unwrap(WrappedKey(wrapped.key_id, bytes(flipped)), context="object-a")
    with pytest.raises(KeyUnavailable, match="malformed"):
        vault.keys.unwrap(WrappedKey(wrapped.key_id, wrapped.blob[:-1]), context="object-a")
    with pytest.raises(InvalidInput):
        vault.keys.wrap(b"short", context="object-a")


def test_wrong_pin_missing_settings_and_an_empty_token_say_what_to_fix(
        tmp_path: Path, softhsm: SoftHsm, label: str, vault: Vault) -> None:
    """Issue #16 item 4: misconfiguration fails with the setting to fix, not a traceback."""
    with pytest.raises(KeyUnavailable, match="refused the PIN"):
        open_key_provider(_settings(tmp_path / "h", softhsm, label, pin="0000"))
    with pytest.raises(ConfigError, match="EVIDENCE_VAULT_PKCS11_MODULE"):
        open_key_provider(Settings(home=tmp_path / "h", key_provider="pkcs11"))
    with pytest.raises(KeyUnavailable, match="holds no key labelled"):
        open_key_provider(_settings(tmp_path / "h", softhsm, label + "-none"))
    wrong_token = _settings(tmp_path / "h", softhsm, label).model_copy(
        update={"pkcs11_token_label": "no-such-token"})
    with pytest.raises(ConfigError, match="no-such-token"):
        open_key_provider(wrong_token)


def _unwrap_in_child(keys: Pkcs11Keys, wrapped: WrappedKey, out: Any) -> None:
    out.put(keys.unwrap(wrapped, context="object-a"))


def test_a_forked_worker_process_reinitialises_the_token_and_unwraps(vault: Vault) -> None:
    """Issue #16 item 4: ``evidence-vault worker --processes`` forks after the parent has used
    the token. PKCS#11 says a library must be initialised again in the child; the provider
    does so on its first use there (C_Finalize + C_Initialize, a new login), and the parent's
    session keeps working. SoftHSM2 happens to tolerate the inherited state too, so this shows
    the re-initialisation path works; network HSMs are the ones that need it."""
    import multiprocessing

    assert isinstance(vault.keys, Pkcs11Keys)
    dek = os.urandom(32)
    wrapped = vault.keys.wrap(dek, context="object-a")  # the parent's session is open
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_unwrap_in_child, args=(vault.keys, wrapped, out))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert out.get(timeout=5) == dek
    assert vault.keys.unwrap(wrapped, context="object-a") == dek  # the parent's still works


def test_the_cli_inits_rotates_and_lists_keys_on_the_token(
        tmp_path: Path, softhsm: SoftHsm, label: str) -> None:
    """Issue #16 item 4: with the PKCS#11 settings in the environment, ``init``, ``keys
    rotate`` and ``keys list`` work on the token, and the vault's home holds no keyring."""
    home = tmp_path / "home"
    env = {**os.environ, **softhsm.env(), "EVIDENCE_VAULT_HOME": str(home),
           "EVIDENCE_VAULT_KEY_PROVIDER": "pkcs11",
           "EVIDENCE_VAULT_PKCS11_MODULE": str(softhsm.module),
           "EVIDENCE_VAULT_PKCS11_TOKEN_LABEL": softhsm.token_label,
           "EVIDENCE_VAULT_PKCS11_PIN": softhsm.pin, "EVIDENCE_VAULT_PKCS11_KEY_LABEL": label}

    def cli(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "api", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    cli("init")
    cli("keys", "rotate", "--reason", "test")
    listed = cli("keys", "list")
    assert "pkcs11-1" in listed and "retired" in listed
    assert "pkcs11-2" in listed and "active" in listed
    assert not (home / "keyring.json").exists()
