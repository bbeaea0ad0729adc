"""One way to end a record (vault/ending.py) and one decision of a share's state (issue #14
item 3): a hold released, a share revoked and a token revoked all end the same way."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable

import pytest

from vault.access import identity
from vault.actors import Actor, Role
from vault.capture import Capture
from vault.casework import holds, shares
from vault.casework.shares import ShareAccess, share_status
from vault.errors import InvalidInput, ShareUnavailable
from vault.storage.catalog import HoldKind
from vault.vault import Vault

from .conftest import T0, Clock

ADMIN = Actor(user="admin-1", role=Role.ADMINISTRATOR, organisation="Northside")


def _recording(vault: Vault) -> str:
    return vault.put_stream(
        io.BytesIO(b"footage" * 500), Capture(source_id="cam-1", captured_at=T0), actor=ADMIN
    ).id


def _hold(vault: Vault) -> tuple[str, Callable[[], object]]:
    rid = _recording(vault)
    hold = holds.place_hold(vault, kind=HoldKind.LEGAL, reason="claim", actor=ADMIN,
                            recording_id=rid)
    return "released", lambda: holds.release_hold(vault, hold.id, actor=ADMIN, reason="settled")


def _share(vault: Vault) -> tuple[str, Callable[[], object]]:
    rid = _recording(vault)
    created = shares.create_share(
        vault, actor=ADMIN, recipient="DC Smith", recipient_org="Met Police", purpose="inquiry",
        lawful_basis="DPA 2018 s.35", reference="CR/1", recording_ids=[rid],
        expires_at=T0 + dt.timedelta(days=1),
    )
    return "share_revoked", lambda: shares.revoke_share(
        vault, created.share.id, actor=ADMIN, reason="sent in error")


def _token(vault: Vault) -> tuple[str, Callable[[], object]]:
    identity.create_user(vault, name="viewer", role=Role.IG_OFFICER, organisation="Northside",
                         actor=ADMIN)
    issued = identity.issue_token(vault, "viewer", actor=ADMIN)
    return "user_changed", lambda: identity.revoke_token(vault, issued.token_id, actor=ADMIN)


@pytest.mark.parametrize("make", [_hold, _share, _token], ids=["hold", "share", "token"])
def test_a_record_ends_once_with_one_event(
    clocked_vault: Vault, clock: Clock, make: Callable[[Vault], tuple[str, Callable[[], object]]]
) -> None:
    """Issue #14 item 3, one way to end a record: releasing a hold, revoking a share and
    revoking a token each mark the row ended by whom and when and log one custody event;
    ending it again is refused naming the date, with nothing written."""
    action, end = make(clocked_vault)
    clock.now = T0 + dt.timedelta(hours=1)
    row = end()
    at = getattr(row, "released_at", None) or getattr(row, "revoked_at")
    by = getattr(row, "released_by", None) or getattr(row, "revoked_by")
    assert (at, by) == (clock.now, "admin-1")
    events = len(clocked_vault.ledger.events(action=action))
    with pytest.raises(InvalidInput, match=r"was already (released|revoked) on 2026-11-25"):
        end()
    assert len(clocked_vault.ledger.events(action=action)) == events


def test_a_share_state_is_decided_once(clocked_vault: Vault, clock: Clock) -> None:
    """Issue #14 item 3, the share state in one function: the listing's state and the
    recipient's refusal come from share_status, so they cannot disagree (revoked wins over
    expired; an exhausted share still streams)."""
    rid = _recording(clocked_vault)
    created = shares.create_share(
        clocked_vault, actor=ADMIN, recipient="DC Smith", recipient_org="Met Police",
        purpose="inquiry", lawful_basis="DPA 2018 s.35", reference="CR/1", recording_ids=[rid],
        expires_at=T0 + dt.timedelta(days=1), allow_download=True, max_downloads=1,
    )
    shares.access_share(clocked_vault, created.token, ShareAccess.DOWNLOAD, recording_id=rid)
    share = shares.get_share(clocked_vault, created.share.id)[0]  # type: ignore[index]
    assert share_status(share, clock.now).state == shares.share_state(share, clock.now) == "exhausted"
    shares.access_share(clocked_vault, created.token, ShareAccess.STREAM, recording_id=rid)
    with pytest.raises(ShareUnavailable, match="download limit"):
        shares.access_share(clocked_vault, created.token, ShareAccess.DOWNLOAD, recording_id=rid)

    clock.now = T0 + dt.timedelta(days=2)
    status = share_status(share, clock.now)
    assert status.state == "expired" and not status.opens
    with pytest.raises(ShareUnavailable) as refused:
        shares.access_share(clocked_vault, created.token, ShareAccess.STREAM)
    assert str(refused.value) == status.message

    shares.revoke_share(clocked_vault, created.share.id, actor=ADMIN, reason="done")
    share = shares.get_share(clocked_vault, created.share.id)[0]  # type: ignore[index]
    status = share_status(share, clock.now)
    assert status.state == "revoked"
    with pytest.raises(ShareUnavailable) as refused:
        shares.access_share(clocked_vault, created.token, ShareAccess.STREAM)
    assert str(refused.value) == status.message


def test_a_record_ended_by_someone_else_meanwhile_is_not_ended_twice(
    clocked_vault: Vault, clock: Clock
) -> None:
    """Issue #14 item 3, ending once under concurrency: two officers revoking one share at
    once both read it unrevoked; the ending used to trust the row in hand, so the second
    revoked it again and logged a second share_revoked. Played deterministically here: the
    second caller holds the row as read before the first revoked it."""
    from vault.ending import end_record
    from vault.ledger.custody import Action

    rid = _recording(clocked_vault)
    created = shares.create_share(
        clocked_vault, actor=ADMIN, recipient="DC Smith", recipient_org="Met Police",
        purpose="inquiry", lawful_basis="DPA 2018 s.35", reference="CR/1", recording_ids=[rid],
        expires_at=T0 + dt.timedelta(days=1),
    )
    with clocked_vault.sessions() as session:
        stale = session.get(shares.Share, created.share.id)
        assert stale is not None and stale.revoked_at is None
        session.expunge(stale)
    shares.revoke_share(clocked_vault, created.share.id, actor=ADMIN, reason="first")
    clock.now = T0 + dt.timedelta(hours=2)
    with pytest.raises(InvalidInput, match="was already revoked on 2026-11-25"):
        with clocked_vault.sessions.begin() as session:
            row = session.merge(stale, load=False)
            end_record(clocked_vault, session, row, shares.SHARE_REVOCATION,
                       record_id=created.share.id, actor=ADMIN, reason="second",
                       action=Action.SHARE_REVOKED, object_ids=[created.share.id],
                       details={"share_id": created.share.id, "reason": "second"})
    assert len(clocked_vault.ledger.events(action="share_revoked")) == 1
    share = shares.get_share(clocked_vault, created.share.id)[0]  # type: ignore[index]
    assert share.revoke_reason == "first"
