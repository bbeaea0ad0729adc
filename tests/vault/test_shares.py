"""Shares in the vault core: create, access, exhaust, expire (explicit clock), revoke; each logged."""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.casework import shares
from vault.actors import Actor, Role
from vault.config import Settings
from vault.errors import AccessDenied, InvalidInput, NotFound
from vault.errors import ShareUnavailable
from vault.casework.shares import ShareAccess
from vault.vault import Vault
from vault.capture import Capture

from .conftest import T0, Clock

OFFICER = Actor(user="asb1", role=Role.ASB_OFFICER, organisation="Northside")


@pytest.fixture
def vault(tmp_path: Path, clock: Clock) -> Iterator[Vault]:
    with Vault.init(Settings(home=tmp_path / "home", segment_size=4096), clock=clock) as v:
        yield v


@pytest.fixture
def rid(vault: Vault) -> str:
    rec = vault.put_stream(
        io.BytesIO(b"footage" * 1000), Capture(source_id="cam-1", captured_at=T0), actor=OFFICER
    )
    return rec.id


def _share(vault: Vault, rid: str, **kw: object) -> shares.CreatedShare:
    options: dict[str, object] = {
        "actor": OFFICER, "recipient": "DC Smith", "recipient_org": "Met Police", "purpose": "investigation",
        "lawful_basis": "DPA 2018 s.35", "reference": "CR/1", "recording_ids": [rid],
        "expires_at": T0 + dt.timedelta(days=1), "allow_download": True, "max_downloads": 2,
    }
    options.update(kw)
    return shares.create_share(vault, **options)  # type: ignore[arg-type]


def _last(vault: Vault, action: str):  # type: ignore[no-untyped-def]
    return vault.ledger.events(action=action)[-1].event


def test_lifecycle_is_logged(vault: Vault, rid: str, clock: Clock) -> None:
    created = _share(vault, rid)
    assert created.token.startswith("evs_")
    shared = _last(vault, "shared")
    assert shared.recipient == "DC Smith" and shared.recipient_org == "Met Police"
    assert shared.object_ids == (rid, created.share.id) and rid in shared.hashes

    grant = shares.access_share(vault, created.token, ShareAccess.METADATA, client_addr="198.51.100.7")
    assert [r.id for r in grant.recordings] == [rid]
    assert grant.actor.user == f"share:{created.share.id}"
    accessed = _last(vault, "share_accessed")
    assert accessed.client_addr == "198.51.100.7" and accessed.actor_role == shares.RECIPIENT_ROLE
    assert accessed.purpose == "investigation" and accessed.reference == "CR/1"

    for n in (1, 2):
        shares.access_share(vault, created.token, ShareAccess.DOWNLOAD, recording_id=rid)
        assert _last(vault, "share_accessed").details["downloads"] == n
    with pytest.raises(ShareUnavailable, match="download limit") as info:
        shares.access_share(vault, created.token, ShareAccess.DOWNLOAD, recording_id=rid)
    assert info.value.reason == "exhausted"
    assert _last(vault, "access_denied").details["reason"] == "share: exhausted"
    shares.access_share(vault, created.token, ShareAccess.STREAM, recording_id=rid)  # still viewable

    shares.revoke_share(vault, created.share.id, actor=OFFICER, reason="case closed")
    assert _last(vault, "share_revoked").details["reason"] == "case closed"
    with pytest.raises(ShareUnavailable, match="revoked"):
        shares.access_share(vault, created.token, ShareAccess.STREAM, recording_id=rid)
    assert _last(vault, "access_denied").details["reason"] == "share: revoked"
    vault.ledger.verify()


def test_expiry_follows_the_clock(vault: Vault, rid: str, clock: Clock) -> None:
    created = _share(vault, rid, expires_at=T0 + dt.timedelta(hours=2))
    clock.now = T0 + dt.timedelta(hours=2) - dt.timedelta(microseconds=1)
    shares.access_share(vault, created.token, ShareAccess.METADATA)
    clock.now = T0 + dt.timedelta(hours=2)
    with pytest.raises(ShareUnavailable, match="expired"):
        shares.access_share(vault, created.token, ShareAccess.METADATA)
    assert shares.share_state(created.share, clock.now) == "expired"
    assert shares.list_shares(vault, active_only=True) == []


def test_refusals(vault: Vault, rid: str) -> None:
    view_only = _share(vault, rid, allow_download=False, max_downloads=None)
    with pytest.raises(AccessDenied, match="view-only"):
        shares.access_share(vault, view_only.token, ShareAccess.DOWNLOAD, recording_id=rid)
    other = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(AccessDenied, match="not in this share"):
        shares.access_share(vault, view_only.token, ShareAccess.STREAM, recording_id=other)
    with pytest.raises(NotFound):
        shares.access_share(vault, "evs_" + "B" * 43, ShareAccess.METADATA)
    reasons = [e.event.details["reason"] for e in vault.ledger.events(action="access_denied")]
    assert reasons == ["share: view_only", "share: not_shared", "share: unknown"]


def test_create_checks(vault: Vault, rid: str, clock: Clock) -> None:
    with pytest.raises(InvalidInput, match="expire in the future"):
        _share(vault, rid, expires_at=T0)
    with pytest.raises(InvalidInput, match="within 366 days"):
        _share(vault, rid, expires_at=T0 + dt.timedelta(days=400))
    with pytest.raises(InvalidInput, match="needs a share that allows downloads"):
        _share(vault, rid, allow_download=False, max_downloads=3)
    with pytest.raises(InvalidInput, match="recipient"):
        _share(vault, rid, recipient=" ")
    with pytest.raises(NotFound):
        _share(vault, rid, recording_ids=["00000000-0000-4000-8000-000000000000"])
    with pytest.raises(InvalidInput, match="1-500"):
        _share(vault, rid, recording_ids=[])


def test_download_limit_holds_under_concurrency(any_vault: Vault) -> None:
    vault = any_vault
    vault.clock = lambda: T0  # type: ignore[method-assign]
    rid = vault.put_stream(
        io.BytesIO(b"footage"), Capture(source_id="cam-1", captured_at=T0), actor=OFFICER
    ).id
    created = _share(vault, rid, max_downloads=3)
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            shares.access_share(vault, created.token, ShareAccess.DOWNLOAD, recording_id=rid)
            outcomes.append("ok")
        except ShareUnavailable:
            outcomes.append("exhausted")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["exhausted"] * 5 + ["ok"] * 3
