"""Anonymous refusals: logged one by one up to a budget per address, then summed; never lost."""

from __future__ import annotations

import datetime as dt

import pytest

from vault.access import identity
from vault.actors import Actor, Role
from vault.access.denials import DenialThrottle
from vault.vault import Vault

from .conftest import T0, Clock

OP = Actor(user="local:test", role=Role.ADMINISTRATOR)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def vault(clocked_vault: Vault) -> Vault:
    return clocked_vault


def _denied(vault: Vault) -> list[dict[str, object]]:
    return [dict(e.event.details) | {"addr": e.event.client_addr}
            for e in vault.ledger.events(action="access_denied", limit=10_000)]


def _refuse(vault: Vault, token: str | None, addr: str, throttle: DenialThrottle) -> None:
    with pytest.raises(identity.Unauthenticated):
        identity.authenticate(vault, token, client_addr=addr, throttle=throttle)


def test_a_flood_is_summed_and_every_refusal_is_accounted_for(vault: Vault, clock: Clock) -> None:
    throttle = DenialThrottle(burst=5, window=MINUTE)
    for i in range(30):
        _refuse(vault, None if i % 2 else "evt_" + "A" * 43, "203.0.113.9", throttle)
    assert len(_denied(vault)) == 5  # the burst, one by one; the other 25 are being counted
    # Another address has its own budget.
    _refuse(vault, None, "198.51.100.7", throttle)
    assert len(_denied(vault)) == 6
    # The window closes; the next refusal (from anyone) writes the summary.
    clock.now += MINUTE
    _refuse(vault, None, "198.51.100.7", throttle)
    events = _denied(vault)
    (summary,) = [e for e in events if "summary" in e]
    assert summary["addr"] == "203.0.113.9"
    s = summary["summary"]
    assert isinstance(s, dict)
    assert s["count"] == 25 and s["by_reason"] == {"missing": 13, "unknown": 12}
    individual = [e for e in events if "summary" not in e and e["addr"] == "203.0.113.9"]
    assert len(individual) + s["count"] == 30
    vault.ledger.verify()


def test_refusals_naming_a_credential_are_never_summed(vault: Vault) -> None:
    identity.create_user(vault, name="a", role="ig_officer", organisation="X", actor=OP)
    issued = identity.issue_token(vault, "a", actor=OP)
    identity.revoke_token(vault, issued.token_id, actor=OP)
    throttle = DenialThrottle(burst=2, window=MINUTE)
    for _ in range(6):
        _refuse(vault, issued.token, "203.0.113.9", throttle)
    revoked = [e for e in _denied(vault) if e["reason"] == "authentication: revoked"]
    assert len(revoked) == 6 and all(e["token_id"] == issued.token_id for e in revoked)


def test_a_successful_sign_in_and_a_flush_write_closed_windows(vault: Vault, clock: Clock) -> None:
    identity.create_user(vault, name="a", role="ig_officer", organisation="X", actor=OP)
    token = identity.issue_token(vault, "a", actor=OP).token
    throttle = DenialThrottle(burst=1, window=MINUTE)
    for _ in range(4):
        _refuse(vault, None, "203.0.113.9", throttle)
    clock.now += MINUTE
    identity.authenticate(vault, token, throttle=throttle)
    assert [e["summary"]["count"] for e in _denied(vault) if "summary" in e] == [3]  # type: ignore[index]
    # Still open at shutdown: flushed whatever the time.
    for _ in range(3):
        _refuse(vault, None, "203.0.113.9", throttle)
    identity.log_denial_summaries(vault, throttle.flush())
    assert [e["summary"]["count"] for e in _denied(vault) if "summary" in e] == [3, 2]  # type: ignore[index]


def test_memory_is_bounded_across_many_addresses() -> None:
    throttle = DenialThrottle(burst=1, window=MINUTE, max_addresses=3)
    for i in range(10):
        assert throttle.admit(f"10.0.0.{i}", "missing", T0)[0] is (i < 4)
    assert len(throttle._windows) == 3 + 1  # three addresses and the shared overflow
    (overflow,) = [s for s in throttle.flush() if s.client_addr == "*"]
    assert overflow.count == 6


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        DenialThrottle(burst=0)
