"""Issue #12: local users' passwords (Argon2id) and TOTP second factor (vault/access/credentials.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from tests.api.conftest import Clock
from vault.access import credentials, identity, web_sessions
from vault.actors import Actor, Role
from vault.config import Settings
from vault.access.credentials import Credential
from vault.ledger.custody import Action
from vault.errors import InvalidInput, NotFound, Unauthenticated
from vault.vault import Vault

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation="N")
PASSWORD = "correct horse battery"


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[tuple[Vault, Clock, str]]:
    clock = Clock(T0)
    v = Vault.init(Settings(home=tmp_path / "home"), clock=clock)
    user = identity.create_user(v, name="jo", role=Role.ASB_OFFICER, organisation="N",
                                actor=OPERATOR)
    credentials.set_password(v, "jo", PASSWORD, actor=OPERATOR)
    try:
        yield v, clock, user.id
    finally:
        v.close()


def _enrol(v: Vault, clock: Clock, user_id: str) -> str:
    secret = credentials.begin_enrolment(v, user_id, issuer="test").secret
    credentials.check_code(v, user_id, pyotp.TOTP(secret).at(clock.now), enrolling=True)
    return secret


def test_only_an_argon2id_hash_is_stored(vault: tuple[Vault, Clock, str]) -> None:
    """Issue #12: the password is stored as an Argon2id hash only."""
    v, _, user_id = vault
    with v.sessions() as s:
        row = s.get(Credential, user_id)
    assert row is not None and row.password_hash is not None
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    found = credentials.check_password(v, "jo", PASSWORD)
    assert found.name == "jo" and not found.enrolled


@pytest.mark.parametrize("bad", ["short", "a" * 20, "x" * 1025])
def test_weak_passwords_are_refused_with_the_rule(vault: tuple[Vault, Clock, str], bad: str) -> None:
    """Issue #12: a password of fewer than 12 characters, of one repeated character, or over
    1024 characters is refused, saying what is needed."""
    v, _, _ = vault
    with pytest.raises(InvalidInput, match="password"):
        credentials.set_password(v, "jo", bad, actor=OPERATOR)
    credentials.check_password(v, "jo", PASSWORD)  # the old one still works


def test_wrong_password_unknown_user_and_disabled_user_are_refused(vault: tuple[Vault, Clock, str]) -> None:
    """Issue #12: each refusal names its reason for the custody log and the same message for
    the person (which names exist is not told)."""
    v, _, _ = vault
    with pytest.raises(Unauthenticated) as wrong:
        credentials.check_password(v, "jo", "not the password")
    with pytest.raises(Unauthenticated) as unknown:
        credentials.check_password(v, "nobody", PASSWORD)
    assert str(wrong.value) == str(unknown.value)
    assert (wrong.value.reason, unknown.value.reason) == ("wrong-password", "unknown-user")
    identity.set_active(v, "jo", False, actor=OPERATOR)
    with pytest.raises(Unauthenticated) as disabled:
        credentials.check_password(v, "jo", PASSWORD)
    assert disabled.value.reason == "disabled"


def test_a_totp_code_works_once_and_within_one_step_of_drift(vault: tuple[Vault, Clock, str]) -> None:
    """Issue #12: a code is accepted for the current 30-second step or one either side, and
    only once: a code seen on the wire cannot be replayed."""
    v, clock, user_id = vault
    secret = _enrol(v, clock, user_id)
    clock.advance(seconds=60)
    totp = pyotp.TOTP(secret)
    code = totp.at(clock.now - dt.timedelta(seconds=30))  # the previous step: drift allowed
    credentials.check_code(v, user_id, code)
    with pytest.raises(Unauthenticated, match="already used"):
        credentials.check_code(v, user_id, code)
    clock.advance(seconds=30)
    with pytest.raises(Unauthenticated):
        credentials.check_code(v, user_id, totp.at(clock.now - dt.timedelta(seconds=90)))
    credentials.check_code(v, user_id, totp.at(clock.now))


def test_enrolment_needs_a_code_and_cannot_replace_an_enrolled_factor(vault: tuple[Vault, Clock, str]) -> None:
    """Issue #12: a new secret counts only once a code from it is entered; after that only an
    administrator's reset replaces it (a stolen password cannot enrol a second phone)."""
    v, clock, user_id = vault
    pending = credentials.begin_enrolment(v, user_id, issuer="Council vault")
    assert pending.uri.startswith("otpauth://totp/Council%20vault:jo?")
    assert not credentials.check_password(v, "jo", PASSWORD).enrolled
    with pytest.raises(Unauthenticated):
        credentials.check_code(v, user_id, pyotp.TOTP(pending.secret).at(clock.now))  # not yet
    credentials.check_code(v, user_id, pyotp.TOTP(pending.secret).at(clock.now), enrolling=True)
    assert credentials.check_password(v, "jo", PASSWORD).enrolled
    with pytest.raises(InvalidInput, match="already set up"):
        credentials.begin_enrolment(v, user_id, issuer="x")
    changes = [e.event.details["change"] for e in v.ledger.events(action=Action.USER_CHANGED.value)]
    assert "second_factor_enrolled" in changes


def test_five_failures_lock_the_account_until_an_administrator_sets_a_password(
    vault: tuple[Vault, Clock, str],
) -> None:
    """Issue #12: after 5 wrong passwords or codes in a row the account is locked for 15
    minutes, even to the right password; a new password from an administrator unlocks it."""
    v, clock, user_id = vault
    secret = _enrol(v, clock, user_id)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            credentials.check_password(v, "jo", "not the password")
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            credentials.check_code(v, user_id, "123456" if pyotp.TOTP(secret).at(clock.now) != "123456" else "654321")
    with pytest.raises(Unauthenticated) as locked:
        credentials.check_password(v, "jo", PASSWORD)
    assert locked.value.reason == "locked"
    clock.advance(minutes=16)
    credentials.check_password(v, "jo", PASSWORD)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            credentials.check_password(v, "jo", "not the password")
    credentials.set_password(v, "jo", "a brand new pass phrase", actor=OPERATOR)
    credentials.check_password(v, "jo", "a brand new pass phrase")


def test_recovery_ends_web_sessions_and_is_logged(vault: tuple[Vault, Clock, str]) -> None:
    """Issue #12: an administrator's set-password or reset-2fa ends every web session of the
    user (whoever held the old credentials is shut out) and is a ``user_changed`` event."""
    v, clock, user_id = vault
    _enrol(v, clock, user_id)
    started = web_sessions.start_session(v, user_id, web_sessions.Stage.SIGNED_IN,
                                         absolute=dt.timedelta(hours=10))
    credentials.reset_second_factor(v, "jo", actor=OPERATOR)
    assert web_sessions.find_session(v, started.token, idle=dt.timedelta(hours=1)) is None
    assert not credentials.check_password(v, "jo", PASSWORD).enrolled
    events = v.ledger.events(action=Action.USER_CHANGED.value)
    assert events[-1].event.details["change"] == "second_factor_reset"
    assert events[-1].event.details["web_sessions_ended"] == 1
    with pytest.raises(NotFound):
        credentials.reset_second_factor(v, "nobody", actor=OPERATOR)
    with v.sessions() as s:
        assert s.scalars(select(Credential.totp_secret).where(Credential.user_id == user_id)).one() is None
