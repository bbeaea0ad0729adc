"""Users and bearer tokens: hashed at rest, expiring, revocable; every refusal logged."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3

import pytest

from vault.access import identity
from vault.actors import Actor, Role
from vault.errors import InvalidInput, NotFound
from vault.vault import Vault

from .conftest import T0, Clock

OP = Actor(user="local:test", role=Role.ADMINISTRATOR)


@pytest.fixture
def vault(clocked_vault: Vault) -> Vault:
    return clocked_vault


def _denials(vault: Vault) -> list[dict[str, object]]:
    return [dict(e.event.details) | {"actor": e.event.actor} for e in vault.ledger.events(action="access_denied")]


def test_user_and_token_round_trip(vault: Vault) -> None:
    user = identity.create_user(
        vault, name="jo.bloggs", role=Role.ASB_OFFICER, organisation="Northside", sites=["A", "B", "A"],
        actor=OP,
    )
    issued = identity.issue_token(vault, "jo.bloggs", actor=OP, label="laptop")
    assert issued.token.startswith("evt_") and len(issued.token) == 47
    principal = identity.authenticate(vault, issued.token, client_addr="10.0.0.5")
    assert principal.user_id == user.id and principal.role is Role.ASB_OFFICER
    assert principal.sites == frozenset({"A", "B"}) and principal.token_id == issued.token_id
    assert principal.actor.client_addr == "10.0.0.5"
    changes = [e.event.details["change"] for e in vault.ledger.events(action="user_changed")]
    assert changes == ["user_created", "token_issued"]
    assert [u.name for u, _ in identity.list_users(vault)] == ["jo.bloggs"]


def test_only_the_hash_is_stored(vault: Vault) -> None:
    identity.create_user(vault, name="a", role="auditor", organisation="X", actor=OP)
    token = identity.issue_token(vault, "a", actor=OP).token
    vault.engine.dispose()
    with sqlite3.connect(vault.settings.home_dir / "catalog.sqlite3") as conn:
        dump = "\n".join(conn.iterdump())
    assert token not in dump and token[4:] not in dump
    assert hashlib.sha256(token.encode()).hexdigest() in dump
    assert all(token not in e.entry.decode() for e in vault.ledger.events())


def test_expiry_uses_the_clock(vault: Vault, clock: Clock) -> None:
    identity.create_user(vault, name="a", role="auditor", organisation="X", actor=OP)
    token = identity.issue_token(vault, "a", actor=OP, expires_in=dt.timedelta(hours=1)).token
    clock.now = T0 + dt.timedelta(minutes=59)
    identity.authenticate(vault, token)
    clock.now = T0 + dt.timedelta(hours=1)
    with pytest.raises(identity.Unauthenticated, match="expired") as info:
        identity.authenticate(vault, token, route="GET /me")
    assert info.value.reason == "expired"
    last = _denials(vault)[-1]
    assert last["actor"] == "a" and last["reason"] == "authentication: expired"
    assert last["route"] == "GET /me"


@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, "missing"), ("", "missing"), ("Bearer x", "malformed"), ("evt_" + "A" * 43, "unknown")],
)
def test_bad_tokens_are_refused_and_logged(vault: Vault, token: str | None, reason: str) -> None:
    with pytest.raises(identity.Unauthenticated) as info:
        identity.authenticate(vault, token, client_addr="192.0.2.1")
    assert info.value.reason == reason
    event = vault.ledger.events(action="access_denied")[-1].event
    assert event.actor == identity.ANONYMOUS and event.client_addr == "192.0.2.1"


def test_revocation_and_disabled_users(vault: Vault) -> None:
    identity.create_user(vault, name="a", role="ig_officer", organisation="X", actor=OP)
    first = identity.issue_token(vault, "a", actor=OP)
    second = identity.issue_token(vault, "a", actor=OP)
    identity.revoke_token(vault, first.token_id, actor=OP)
    with pytest.raises(identity.Unauthenticated, match="revoked"):
        identity.authenticate(vault, first.token)
    identity.authenticate(vault, second.token)
    with pytest.raises(InvalidInput, match="already revoked"):
        identity.revoke_token(vault, first.token_id, actor=OP)
    identity.revoke_token(vault, second.token, actor=OP)  # by the token itself
    third = identity.issue_token(vault, "a", actor=OP)
    identity.set_active(vault, "a", False, actor=OP)
    with pytest.raises(identity.Unauthenticated, match="disabled"):
        identity.authenticate(vault, third.token)
    with pytest.raises(InvalidInput, match="disabled"):
        identity.issue_token(vault, "a", actor=OP)


def test_input_checks(vault: Vault) -> None:
    with pytest.raises(InvalidInput, match="unknown role"):
        identity.create_user(vault, name="a", role="superuser", organisation="X", actor=OP)
    with pytest.raises(InvalidInput, match="not valid"):
        identity.create_user(vault, name="../a", role="auditor", organisation="X", actor=OP)
    with pytest.raises(InvalidInput, match="organisation"):
        identity.create_user(vault, name="a", role="auditor", organisation=" ", actor=OP)
    identity.create_user(vault, name="a", role="auditor", organisation="X", actor=OP)
    with pytest.raises(InvalidInput, match="already exists"):
        identity.create_user(vault, name="a", role="auditor", organisation="X", actor=OP)
    with pytest.raises(NotFound):
        identity.issue_token(vault, "nobody", actor=OP)
    with pytest.raises(InvalidInput, match="lifetime"):
        identity.issue_token(vault, "a", actor=OP, expires_in=dt.timedelta(days=400))
    with pytest.raises(NotFound):
        identity.revoke_token(vault, "no-such-id", actor=OP)


def test_set_sites(vault: Vault) -> None:
    identity.create_user(vault, name="a", role="asb_officer", organisation="X", sites=["A"], actor=OP)
    assert identity.set_sites(vault, "a", ["B", "C"], actor=OP) == ["B", "C"]
    assert identity.principal_for(vault, "a").sites == frozenset({"B", "C"})


def test_record_refusal_is_the_one_place_a_refused_sign_in_is_logged(vault: Vault) -> None:
    """Issue #14 (S2, duplicates): the web sign-in and token authentication each built the
    same ``access_denied`` event by hand; both now call identity.record_refusal. A known user
    is the actor (with role, organisation and their id as the object); an unknown one is
    ANONYMOUS about the target, and the route is cut to 256 characters."""
    user = identity.create_user(vault, name="a", role="auditor", organisation="X", actor=OP)
    identity.record_refusal(vault, user, "sign-in: wrong-password", client_addr="10.0.0.1",
                            route="/sign-in")
    identity.record_refusal(vault, None, "authentication: unknown-token", client_addr=None,
                            route="/" + "r" * 300, token_id="t-1", target="t-1")
    known, unknown = [e.event for e in vault.ledger.events(action="access_denied", limit=10)][-2:]
    assert (known.actor, known.actor_role, known.actor_org, known.object_ids) == (
        "a", "auditor", "X", (user.id,))
    assert known.details == {"reason": "sign-in: wrong-password", "route": "/sign-in"}
    assert unknown.actor == identity.ANONYMOUS and list(unknown.object_ids) == ["t-1"]
    assert len(unknown.details["route"]) == 256 and unknown.details["token_id"] == "t-1"
