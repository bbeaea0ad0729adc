"""API fixtures: a vault with an explicit clock, one user per role, a case, recordings, a client.

The world (all in organisation "Northside Homes" unless said):

- ``admin``, ``asb`` (assigned site "Riverside", member of case ASB/1), ``asb_other_org``
  (an ASB officer of "Partner Council", no sites, no cases), ``ig``, ``police``, ``auditor``,
  ``ingest``; each with a 30-day token. ``expired`` is a token of ``asb`` that expired an hour
  ago; ``revoked`` a revoked token of ``ig``; ``no_token`` sends none.
- recordings of 50,000 bytes in 4 KiB segments (13 segments): ``rec_case`` (site "Elm Court",
  linked to ASB/1), ``rec_site`` (site "Riverside"), ``rec_other`` (site "Oak Park": outside
  the ASB officer's scope).
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


from fastapi.testclient import TestClient

from api.app import create_app
from api.jobs import open_job_queue
from vault.casework import cases
from vault.access import identity
from vault.actors import Actor, Role
from vault.storage.catalog import MediaKind, Recording, SourceKind
from vault.config import Settings
from vault.vault import Vault
from vault.capture import Capture

SEGMENT = 4096
SIZE = 50_000
ORG = "Northside Homes"
PARTNER = "Partner Council"
T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation=ORG)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class World:
    vault: Vault
    clock: Clock
    client: TestClient
    tokens: dict[str, str | None] = field(default_factory=dict)
    users: dict[str, identity.User] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    rec: dict[str, Recording] = field(default_factory=dict)
    case_id: str = ""

    def headers(self, who: str, *, purpose: bool = True, **extra: str) -> dict[str, str]:
        h: dict[str, str] = {}
        token = self.tokens[who]
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if purpose:
            h["X-Purpose"] = "investigating ASB incident"
            h["X-Reference"] = "ASB/1"
            h["X-Lawful-Basis"] = "Housing Act 1996 s.153A"
        h.update(extra)
        return h

    def denials(self) -> int:
        return len(self.vault.ledger.events(action="access_denied", limit=1_000_000))


def _store(vault: Vault, source: str, site: str, data: bytes, start: dt.datetime) -> Recording:
    return vault.put_stream(
        io.BytesIO(data),
        Capture(
            source_id=source,
            source_kind=SourceKind.CCTV,
            site=site,
            captured_at=start,
            captured_end=start + dt.timedelta(minutes=10),
            media_kind=MediaKind.VIDEO,
            original_name=f"{source}.mp4",
        ),
        actor=OPERATOR,
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock(T0)
    vault = Vault.init(Settings(home=tmp_path / "home", segment_size=SEGMENT), clock=clock)
    people = {
        "admin": (Role.ADMINISTRATOR, ORG, []),
        "asb": (Role.ASB_OFFICER, ORG, ["Riverside"]),
        "asb_other_org": (Role.ASB_OFFICER, PARTNER, []),
        "ig": (Role.IG_OFFICER, ORG, []),
        "police": (Role.POLICE_LIAISON, ORG, []),
        "auditor": (Role.AUDITOR, ORG, []),
        "ingest": (Role.INGEST_AGENT, ORG, []),
    }
    w = World(vault=vault, clock=clock, client=TestClient(create_app(vault.settings, vault=vault)))
    for name, (role, org, sites) in people.items():
        w.users[name] = identity.create_user(
            vault, name=name, role=role, organisation=org, sites=sites, actor=OPERATOR
        )
        w.tokens[name] = identity.issue_token(vault, name, actor=OPERATOR).token
    w.tokens["expired"] = identity.issue_token(
        vault, "asb", actor=OPERATOR, expires_in=dt.timedelta(minutes=30)
    ).token
    revoked = identity.issue_token(vault, "ig", actor=OPERATOR)
    identity.revoke_token(vault, revoked.token_id, actor=OPERATOR)
    w.tokens["revoked"] = revoked.token
    w.tokens["no_token"] = None

    for key, (source, site) in {
        "rec_case": ("cam-elm-1", "Elm Court"),
        "rec_site": ("cam-river-2", "Riverside"),
        "rec_other": ("cam-oak-3", "Oak Park"),
    }.items():
        w.data[key] = os.urandom(SIZE)
        w.rec[key] = _store(vault, source, site, w.data[key], T0 - dt.timedelta(hours=2))
    case = cases.create_case(
        vault, reference="ASB/1", organisation=ORG, actor=OPERATOR, title="Stairwell damage",
        member_ids=(w.users["asb"].id,),
    )
    cases.link_recording(vault, case.id, w.rec["rec_case"].id, actor=OPERATOR)
    w.case_id = case.id
    clock.advance(hours=1)  # the "expired" token is now past its expiry
    try:
        yield w
    finally:
        w.client.close()
        vault.close()


@pytest.fixture
def jw(world: World) -> Iterator[World]:
    """The API world with an immediate queue: jobs finish inside the request (Huey's immediate
    mode); tests/vault/test_jobs.py runs a real consumer."""
    world.client.app.state.jobs = open_job_queue(  # type: ignore[attr-defined]
        world.vault.settings, immediate=True, vault=world.vault)
    yield world
