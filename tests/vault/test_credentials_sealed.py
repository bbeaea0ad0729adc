"""Issue #12 item 10: TOTP secrets sealed under the key-encryption key (vault/access/credentials.py
checks 7-9): nothing in the clear in the catalog, old plaintext rows still work and are sealed,
a sealed secret does not open on another user's row, and KEK rotation moves them too."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import update

from tests.api.conftest import Clock
from vault.access import credentials, identity
from vault.casework import rekey
from vault.actors import Actor, Role
from vault.config import Settings
from vault.access.credentials import Credential
from vault.errors import CiphertextError, InvalidInput, KeyUnavailable
from vault.vault import Vault

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation="N")
PASSWORD = "correct horse battery"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Vault, Clock, dict[str, str]]]:
    clock = Clock(T0)
    v = Vault.init(Settings(home=tmp_path / "home"), clock=clock)
    ids = {}
    for name in ("jo", "sam"):
        ids[name] = identity.create_user(v, name=name, role=Role.ASB_OFFICER, organisation="N",
                                         actor=OPERATOR).id
        credentials.set_password(v, name, PASSWORD, actor=OPERATOR)
    try:
        yield v, clock, ids
    finally:
        v.close()


def _enrol(v: Vault, clock: Clock, user_id: str) -> str:
    secret = credentials.begin_enrolment(v, user_id, issuer="test").secret
    credentials.check_code(v, user_id, pyotp.TOTP(secret).at(clock.now), enrolling=True)
    return secret


def _row(v: Vault, user_id: str) -> Credential:
    with v.sessions() as s:
        row = s.get(Credential, user_id)
    assert row is not None
    return row


def _code(v: Vault, clock: Clock, user_id: str, secret: str) -> None:
    clock.advance(seconds=31)
    credentials.check_code(v, user_id, pyotp.TOTP(secret).at(clock.now))


def test_the_catalog_holds_no_second_factor_in_the_clear(
        world: tuple[Vault, Clock, dict[str, str]]) -> None:
    """Issue #12 item 10 (check 7): after enrolment the row holds the secret only sealed (no
    base32 text, no raw bytes of it), its data key wrapped by the vault's current KEK; codes
    from it are accepted."""
    v, clock, ids = world
    secret = _enrol(v, clock, ids["jo"])
    row = _row(v, ids["jo"])
    assert row.totp_secret is None and row.totp_sealed is not None
    assert row.totp_key_id == v.keys.current_key_id() and row.totp_wrapped_key
    raw = base64.b32decode(secret)
    for blob in (row.totp_sealed, row.totp_wrapped_key):
        assert secret.encode() not in blob and raw not in blob
    _code(v, clock, ids["jo"], secret)
    assert credentials.check_password(v, "jo", PASSWORD).enrolled


def test_a_plaintext_row_from_before_still_works_and_is_sealed(
        world: tuple[Vault, Clock, dict[str, str]]) -> None:
    """Issue #12 item 10 (check 8): a row written before sealing (plaintext ``totp_secret``)
    still signs its user in; the accepted code seals it and clears the plaintext, and
    ``seal_second_factors`` seals any left."""
    v, clock, ids = world
    secret = pyotp.random_base32(32)
    with v.sessions.begin() as s:  # as vault 0008 wrote them (set_password made the rows)
        s.execute(update(Credential).values(totp_secret=secret, totp_confirmed_at=T0))
    assert credentials.check_password(v, "jo", PASSWORD).enrolled
    _code(v, clock, ids["jo"], secret)
    row = _row(v, ids["jo"])
    assert row.totp_secret is None and row.totp_sealed is not None
    _code(v, clock, ids["jo"], secret)  # and still works, sealed
    assert credentials.seal_second_factors(v) == 1  # sam's
    assert _row(v, ids["sam"]).totp_secret is None
    _code(v, clock, ids["sam"], secret)


def test_a_sealed_secret_moved_to_another_users_row_does_not_open(
        world: tuple[Vault, Clock, dict[str, str]]) -> None:
    """Issue #12 item 10 (check 7): the seal and the wrap both name the user, so copying
    jo's sealed secret onto sam's row (someone with write access to the catalog trying to
    give sam a second factor they hold) is refused, and an altered seal is too."""
    v, clock, ids = world
    _enrol(v, clock, ids["jo"])
    jo = _row(v, ids["jo"])
    with v.sessions.begin() as s:
        s.execute(update(Credential).where(Credential.user_id == ids["sam"]).values(
            totp_key_id=jo.totp_key_id, totp_wrapped_key=jo.totp_wrapped_key,
            totp_sealed=jo.totp_sealed, totp_confirmed_at=T0))
    with pytest.raises(KeyUnavailable):
        credentials.check_code(v, ids["sam"], "123456")
    assert jo.totp_sealed is not None
    altered = bytearray(jo.totp_sealed)
    altered[-1] ^= 0x01
    with v.sessions.begin() as s:
        s.execute(update(Credential).where(Credential.user_id == ids["jo"]).values(
            totp_sealed=bytes(altered)))
    with pytest.raises(CiphertextError):
        credentials.check_code(v, ids["jo"], "123456")


def test_rotating_the_kek_moves_second_factors_and_never_destroys_them(
        world: tuple[Vault, Clock, dict[str, str]]) -> None:
    """Issue #12 item 10 (check 9): after a KEK rotation, the retired KEK still wraps a
    second factor, so destroying it is refused (it is counted with the recordings); a rewrap
    moves the second factor to the new KEK, the old one can then be destroyed, and the user's
    codes still work."""
    v, clock, ids = world
    secret = _enrol(v, clock, ids["jo"])
    old = v.keys.current_key_id()
    rekey.rotate(v, actor=OPERATOR, reason="test")
    assert rekey.in_use_counts(v).get(old) == 1 and old not in rekey.live_counts(v)
    clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)  # the keyring's own clock
    with pytest.raises(InvalidInput, match="still use key"):
        rekey.destroy(v, old, actor=OPERATOR, reason="test", grace=dt.timedelta(0))
    report = rekey.rewrap(v, actor=OPERATOR)
    assert report.rewrapped == 0  # no recordings; the second factor moved on its own
    assert _row(v, ids["jo"]).totp_key_id == v.keys.current_key_id() != old
    assert old not in rekey.in_use_counts(v)
    rekey.destroy(v, old, actor=OPERATOR, reason="test", grace=dt.timedelta(0))
    _code(v, clock, ids["jo"], secret)
    # A second-factor reset clears every part of the sealed secret.
    credentials.reset_second_factor(v, "jo", actor=OPERATOR)
    row = _row(v, ids["jo"])
    assert (row.totp_secret, row.totp_key_id, row.totp_wrapped_key, row.totp_sealed) == (
        None, None, None, None)


def test_the_keyring_schedule_moves_second_factors_before_destroying_a_kek(
        world: tuple[Vault, Clock, dict[str, str]]) -> None:
    """Issue #12 item 10 (check 9): the scheduled maintenance (``keys`` schedule of the
    retention worker) sees a retired KEK still wrapping a second factor, moves it, and only
    then destroys the KEK: the user's codes keep working."""
    v, clock, ids = world
    secret = _enrol(v, clock, ids["jo"])
    old = v.keys.current_key_id()
    rekey.rotate(v, actor=OPERATOR, reason="test")
    clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)  # the keyring's own clock
    done = rekey.maintain(v, actor=OPERATOR, rotate_every=dt.timedelta(days=365),
                          grace=dt.timedelta(0))
    assert done["destroyed"] == [old]
    assert _row(v, ids["jo"]).totp_key_id == v.keys.current_key_id()
    _code(v, clock, ids["jo"], secret)


def test_a_catalog_from_before_migration_0011_keeps_its_second_factors(tmp_path: Path) -> None:
    """Issue #12 item 10 (check 8, migration 0011): a catalog migrated from 0010 (plaintext
    ``totp_secret``) to the head keeps its users' second factors: the code from their existing
    authenticator is accepted, then the secret is sealed and the plaintext gone."""
    from alembic import command
    from alembic.config import Config

    from vault.storage.db import MIGRATIONS_DIR, make_engine, upgrade

    clock = Clock(T0)
    settings = Settings(home=tmp_path / "home")
    v = Vault.init(settings, clock=clock)
    user_id = identity.create_user(v, name="jo", role=Role.ASB_OFFICER, organisation="N",
                                   actor=OPERATOR).id
    v.close()
    engine = make_engine(settings.catalog_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0010")
    secret = pyotp.random_base32(32)
    with engine.begin() as connection:  # the row as vault 0.x wrote it, secret in the clear
        connection.execute(Credential.__table__.insert().values(
            user_id=user_id, totp_secret=secret, totp_confirmed_at=T0, failed_attempts=0))
    upgrade(engine)
    engine.dispose()
    v = Vault.open(settings, clock=clock)
    try:
        _code(v, clock, user_id, secret)
        row = _row(v, user_id)
        assert row.totp_secret is None and row.totp_sealed is not None
    finally:
        v.close()
