"""The access policy: the role table, need-to-know scope, organisations, and logged refusals."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.casework import cases, policy
from vault.access import identity
from vault.actors import Actor, Role
from vault.storage.catalog import SourceKind
from vault.config import Settings
from vault.errors import AccessDenied, NotFound
from vault.casework.policy import Permission as P
from vault.vault import Vault
from vault.capture import Capture

OP = Actor(user="local:test", role=Role.ADMINISTRATOR)
T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)

# The docs/design.md roles, as a table the code must match exactly.
_ADMIN_ONLY = {P.USERS_MANAGE, P.SITES_MANAGE}
EXPECTED = {
    Role.ADMINISTRATOR: set(P),
    Role.ASB_OFFICER: set(P) - _ADMIN_ONLY - {P.UPLOAD, P.CUSTODY_READ, P.CUSTODY_VERIFY,
                                              P.SAR_READ, P.SAR_WRITE},
    Role.IG_OFFICER: set(P) - _ADMIN_ONLY - {P.UPLOAD},
    Role.POLICE_LIAISON: set(P) - _ADMIN_ONLY - {P.UPLOAD, P.CUSTODY_READ, P.CUSTODY_VERIFY,
                                                 P.SAR_READ, P.SAR_WRITE},
    Role.AUDITOR: {P.CUSTODY_READ, P.CUSTODY_VERIFY, P.SELF},
    Role.INGEST_AGENT: {P.UPLOAD, P.SELF},
    Role.SHARE_RECIPIENT: set(),
}


@pytest.mark.parametrize("role", list(Role))
def test_role_table(role: Role) -> None:
    assert {p for p in P if policy.allowed(role, p)} == EXPECTED[role]


def test_auditors_never_touch_footage_and_agents_only_write() -> None:
    footage = {P.SEARCH, P.READ, P.VIEW, P.DOWNLOAD}
    assert not footage & EXPECTED[Role.AUDITOR]
    assert not footage & EXPECTED[Role.INGEST_AGENT]


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.init(Settings(home=tmp_path / "home", segment_size=4096)) as v:
        yield v


def _put(vault: Vault, source: str, site: str) -> str:
    return vault.put_stream(
        io.BytesIO(source.encode() * 100),
        Capture(source_id=source, source_kind=SourceKind.CCTV, site=site, captured_at=T0),
        actor=OP,
    ).id


def test_need_to_know_scope(any_vault: Vault) -> None:
    vault = any_vault
    officer = identity.create_user(
        vault, name="asb1", role="asb_officer", organisation="Northside", sites=["Riverside"], actor=OP
    )
    identity.create_user(vault, name="asb2", role="asb_officer", organisation="Partner", actor=OP)
    identity.create_user(vault, name="ig1", role="ig_officer", organisation="Northside", actor=OP)
    by_site = _put(vault, "cam-r", "Riverside")
    by_case = _put(vault, "cam-e", "Elm Court")
    hidden = _put(vault, "cam-o", "Oak Park")
    case = cases.create_case(
        vault, reference="ASB/9", organisation="Northside", actor=OP, member_ids=(officer.id,)
    )
    cases.link_recording(vault, case.id, by_case, actor=OP)
    asb1 = identity.principal_for(vault, "asb1")
    asb2 = identity.principal_for(vault, "asb2")
    ig1 = identity.principal_for(vault, "ig1")

    assert policy.require_recording(vault, asb1, P.VIEW, by_site).id == by_site
    assert policy.require_recording(vault, asb1, P.VIEW, by_case).id == by_case
    with pytest.raises(AccessDenied, match="not linked to your cases"):
        policy.require_recording(vault, asb1, P.VIEW, hidden, route="GET /x")
    denial = vault.ledger.events(action="access_denied")[-1].event
    assert denial.actor == "asb1" and denial.actor_role == "asb_officer"
    assert denial.object_ids == (hidden,) and denial.details["permission"] == "recordings.view"
    assert denial.details["route"] == "GET /x"

    # The other organisation's officer sees none of it; the case is closed to them.
    for rid in (by_site, by_case, hidden):
        with pytest.raises(AccessDenied):
            policy.require_recording(vault, asb2, P.READ, rid)
    with pytest.raises(AccessDenied, match="not a member"):
        policy.require_case(vault, asb2, P.CASE_READ, case.id)
    # An unscoped role sees everything in its organisation, and gets 404 for what is missing.
    assert policy.require_recording(vault, ig1, P.DOWNLOAD, hidden).id == hidden
    with pytest.raises(NotFound):
        policy.require_recording(vault, ig1, P.READ, "00000000-0000-4000-8000-000000000000")
    # A scoped officer cannot probe ids: a missing one is refused like a hidden one.
    with pytest.raises(AccessDenied):
        policy.require_recording(vault, asb1, P.READ, "00000000-0000-4000-8000-000000000000")

    # Unassigning the site removes access at once.
    identity.set_sites(vault, "asb1", [], actor=OP)
    with pytest.raises(AccessDenied):
        policy.require_recording(vault, identity.principal_for(vault, "asb1"), P.VIEW, by_site)


def test_cases_stay_in_their_organisation(vault: Vault) -> None:
    identity.create_user(vault, name="ig1", role="ig_officer", organisation="Northside", actor=OP)
    identity.create_user(vault, name="ig2", role="ig_officer", organisation="Partner", actor=OP)
    case = cases.create_case(vault, reference="C1", organisation="Northside", actor=OP)
    policy.require_case(vault, identity.principal_for(vault, "ig1"), P.CASE_READ, case.id)
    with pytest.raises(AccessDenied, match="another organisation"):
        policy.require_case(vault, identity.principal_for(vault, "ig2"), P.CASE_READ, case.id)
    from vault.errors import InvalidInput

    with pytest.raises(InvalidInput, match="share the footage instead"):
        cases.add_member(vault, case.id, "ig2", actor=OP)


def test_every_role_refusal_is_logged(vault: Vault) -> None:
    identity.create_user(vault, name="aud", role="auditor", organisation="X", actor=OP)
    auditor = identity.principal_for(vault, "aud", client_addr="203.0.113.9")
    before = len(vault.ledger.events(action="access_denied"))
    for permission in (P.SEARCH, P.VIEW, P.DOWNLOAD, P.UPLOAD, P.SHARE_CREATE):
        with pytest.raises(AccessDenied, match="role auditor may not"):
            policy.require(vault, auditor, permission)
    events = vault.ledger.events(action="access_denied")[before:]
    assert [e.event.details["permission"] for e in events] == [
        "recordings.search", "recordings.view", "recordings.download", "recordings.upload",
        "shares.create",
    ]
    assert {e.event.client_addr for e in events} == {"203.0.113.9"}
