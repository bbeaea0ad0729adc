"""Issue #12: web sessions stored server-side in the catalog (vault/access/web_sessions.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.api.conftest import Clock
from vault.access import identity, web_sessions
from vault.actors import Actor, Purpose, Role
from vault.config import Settings
from vault.vault import Vault
from vault.access.web_sessions import Stage, WebSession

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation="N")
IDLE = dt.timedelta(minutes=30)
ABSOLUTE = dt.timedelta(hours=10)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Vault, Clock, str]]:
    clock = Clock(T0)
    v = Vault.init(Settings(home=tmp_path / "home"), clock=clock)
    user = identity.create_user(v, name="jo", role=Role.ASB_OFFICER, organisation="N",
                                actor=OPERATOR)
    try:
        yield v, clock, user.id
    finally:
        v.close()


def test_only_the_token_hash_is_stored_and_another_vault_process_sees_the_session(
    world: tuple[Vault, Clock, str],
) -> None:
    """Issue #12: sessions live in the catalog (any instance sees them), as SHA-256 only."""
    v, _, user_id = world
    started = web_sessions.start_session(v, user_id, Stage.SIGNED_IN, absolute=ABSOLUTE)
    with v.sessions() as s:
        stored = list(s.scalars(select(WebSession.token_hash)))
    assert stored == [web_sessions.hash_session_token(started.token)]
    with Vault.open(v.settings) as other:  # a second instance of the app
        other.clock = v.clock
        found = web_sessions.find_session(other, started.token, idle=IDLE)
    assert found is not None and found.id == started.session.id


def test_each_step_up_issues_a_new_token_and_ends_the_old_one(world: tuple[Vault, Clock, str]) -> None:
    """Issue #12 (session fixation): the signed-in session never reuses a pending token, and
    keeps the pending session's start as its own for the absolute timeout."""
    v, clock, user_id = world
    pending = web_sessions.start_session(v, user_id, Stage.SECOND_FACTOR, absolute=ABSOLUTE)
    clock.advance(minutes=1)
    full = web_sessions.start_session(v, user_id, Stage.SIGNED_IN, absolute=ABSOLUTE,
                                      replaces=pending.session.id)
    assert full.token != pending.token
    assert web_sessions.find_session(v, pending.token, idle=IDLE) is None
    assert full.session.expires_at == T0 + ABSOLUTE


def test_a_pending_session_lasts_five_minutes(world: tuple[Vault, Clock, str]) -> None:
    """Issue #12: half a sign-in (password, no code yet) expires after five minutes."""
    v, clock, user_id = world
    pending = web_sessions.start_session(v, user_id, Stage.SECOND_FACTOR, absolute=ABSOLUTE)
    clock.advance(minutes=5, seconds=1)
    assert web_sessions.find_session(v, pending.token, idle=IDLE) is None


def test_a_disabled_users_sessions_stop_at_once(world: tuple[Vault, Clock, str]) -> None:
    """Issue #12: disabling a user ends their web sessions at the next request."""
    v, _, user_id = world
    started = web_sessions.start_session(v, user_id, Stage.SIGNED_IN, absolute=ABSOLUTE)
    identity.set_active(v, "jo", False, actor=OPERATOR)
    assert web_sessions.find_session(v, started.token, idle=IDLE) is None
    with v.sessions() as s:
        assert s.get(WebSession, started.session.id).end_reason == "disabled"  # type: ignore[union-attr]


@pytest.mark.parametrize("token", [None, "", "evt_" + "a" * 43, "evs_" + "a" * 43, "evs_" + "a" * 200])
def test_junk_tokens_find_nothing(world: tuple[Vault, Clock, str], token: str | None) -> None:
    """Issue #12: no, malformed, unknown and oversized cookies find no session."""
    v, _, _ = world
    assert web_sessions.find_session(v, token, idle=IDLE) is None


def test_purposes_are_remembered_per_task_newest_first(world: tuple[Vault, Clock, str]) -> None:
    """Issue #12: the purpose stated for a task is remembered with the session; stating one
    for the same reference again replaces it, and the newest is the current task."""
    v, _, user_id = world
    started = web_sessions.start_session(v, user_id, Stage.SIGNED_IN, absolute=ABSOLUTE)
    web_sessions.state_purpose(v, started.session.id, Purpose("one", reference="ASB/1", lawful_basis="b"))
    web_sessions.state_purpose(v, started.session.id, Purpose("two", reference="ASB/2", lawful_basis="b"))
    web_sessions.state_purpose(v, started.session.id, Purpose("one again", reference="ASB/1", lawful_basis="b"))
    found = web_sessions.find_session(v, started.token, idle=IDLE)
    assert found is not None and found.purpose is not None
    assert [(p.reference, p.purpose) for p in found.purposes] == [("ASB/1", "one again"), ("ASB/2", "two")]
