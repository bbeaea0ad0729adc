"""The organisation boundary, checked against a model (issue #11, "Must show": a model-based
authorisation test).

Each seed generates a vault shared by several organisations: registered sites per
organisation (and one unregistered site, whose footage is every organisation's, as in a
single-organisation vault), cameras, original recordings, derived copies made from one to
three originals (across sites and organisations, and a copy of a copy, filed under the first
source as packages and clips are), cases with members and links (one linking another
organisation's footage), holds of every kind, subject access requests with windows, shares,
and one user of every role per organisation; ASB officers get some of their sites and, as an
attacker would, a site name of another organisation.

A small, independent model below says what each user may see; then every user asks every
route the question over HTTP (search, metadata, thumbnail sheets, holds list and release,
SARs, cases, case history, custody events, shares) and the answers must equal the model's.
The model is written from docs/design.md's rules, not from vault/casework/policy.py's SQL:

- footage is its source's organisation's (unowned: everyone's); scoped roles (ASB officers)
  see only their organisation's footage at their sites or on their cases;
- a derived copy is visible only to those who may see every recording it was made from;
- holds, SARs, cases and shares are their organisation's (ASB officers: their cases, their
  own shares); a SAR hold is released only by closing its SAR; a case hold by the case's
  managers;
- custody readers see events by their organisation's users or naming what it owns.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import Clock
from vault.casework import cases, shares, sites
from vault.access import identity
from vault.actors import Actor, Role
from vault.storage.catalog import HoldKind, MediaKind
from vault.config import Settings
from vault.casework.holds import list_holds, place_hold
from vault.casework.sar import attach_window, register_sar
from vault.vault import Vault
from vault.capture import Capture
from tests.captures import cctv_video

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
ROLES = [Role.ADMINISTRATOR, Role.ASB_OFFICER, Role.IG_OFFICER, Role.POLICE_LIAISON,
         Role.AUDITOR, Role.INGEST_AGENT]
FOOTAGE_ROLES = {Role.ADMINISTRATOR, Role.ASB_OFFICER, Role.IG_OFFICER, Role.POLICE_LIAISON}
CUSTODY_ROLES = {Role.ADMINISTRATOR, Role.IG_OFFICER, Role.AUDITOR}
SAR_ROLES = {Role.ADMINISTRATOR, Role.IG_OFFICER}
PURPOSE = {"X-Purpose": "boundary test", "X-Lawful-Basis": "test", "X-Reference": "T/1"}


@dataclass
class Rec:
    id: str
    org: str | None  # owner of its source (None: unowned, everyone's)
    site: str
    source: str
    origins: tuple[str, ...] = ()  # originals it was made from (derived copies only)


@dataclass
class User:
    name: str
    role: Role
    org: str
    sites: frozenset[str]
    token: str = ""
    id: str = ""
    cases: set[str] = field(default_factory=set)


@dataclass
class Model:
    recs: dict[str, Rec] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    case_org: dict[str, str] = field(default_factory=dict)
    case_links: dict[str, set[str]] = field(default_factory=dict)
    holds: dict[str, tuple[str, HoldKind, str | None, bool]] = field(default_factory=dict)
    sars: dict[str, str] = field(default_factory=dict)
    shares: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (org, creator)

    # -- the rules --------------------------------------------------------------------------

    def sees_original(self, u: User, r: Rec, *, scoped: bool) -> bool:
        if u.role == Role.ADMINISTRATOR:
            return True
        if r.org not in (None, u.org):
            return False
        if not scoped:
            return True
        on_case = any(r.id in self.case_links[c] for c in u.cases)
        return r.site in u.sites or on_case

    def sees(self, u: User, rid: str) -> bool:
        if u.role not in FOOTAGE_ROLES:
            return False
        return self.owns(u, rid, scoped=u.role == Role.ASB_OFFICER)

    def owns(self, u: User, rid: str, *, scoped: bool = False) -> bool:
        r = self.recs[rid]
        if r.origins:
            return all(self.sees_original(u, self.recs[o], scoped=scoped) for o in r.origins)
        return self.sees_original(u, r, scoped=scoped)

    def sees_case(self, u: User, case_id: str) -> bool:
        if u.role == Role.ADMINISTRATOR:
            return True
        if u.role == Role.ASB_OFFICER:
            return case_id in u.cases
        return self.case_org[case_id] == u.org

    def sees_hold(self, u: User, hold_id: str) -> bool:
        org, _kind, case_id, _sar = self.holds[hold_id]
        if u.role == Role.ADMINISTRATOR:
            return True
        if u.role not in FOOTAGE_ROLES:
            return False
        if u.role == Role.ASB_OFFICER:
            return case_id is not None and case_id in u.cases
        return org == u.org

    def may_release(self, u: User, hold_id: str) -> bool:
        _org, kind, case_id, of_sar = self.holds[hold_id]
        if not self.sees_hold(u, hold_id) or of_sar:
            return False
        if kind == HoldKind.SAR and u.role not in SAR_ROLES:
            return False
        return case_id is None or self.sees_case(u, case_id)

    def sees_sar(self, u: User, sar_id: str) -> bool:
        return u.role in SAR_ROLES and (u.role == Role.ADMINISTRATOR or self.sars[sar_id] == u.org)

    def sees_share(self, u: User, share_id: str) -> bool:
        org, creator = self.shares[share_id]
        if u.role == Role.ADMINISTRATOR:
            return True
        if u.role not in FOOTAGE_ROLES:
            return False
        return creator == u.name if u.role == Role.ASB_OFFICER else org == u.org


def build(seed: int, tmp_path: Path) -> tuple[Vault, TestClient, Model]:
    rnd = random.Random(seed)
    clock = Clock(T0)
    vault = Vault.init(Settings(home=tmp_path / "home", segment_size=4096), clock=clock)
    admin = Actor(user="local:model", role=Role.ADMINISTRATOR)
    m = Model()
    orgs = [f"Org{seed}-{i}" for i in range(rnd.randint(2, 3))]
    org_sites = {o: [f"{o}/site{j}" for j in range(rnd.randint(1, 3))] for o in orgs}
    for org, names in org_sites.items():
        for name in names:
            sites.register_site(vault, name, organisation=org, actor=admin)
    all_sites = [(s, o) for o, names in org_sites.items() for s in names] + [("Unowned", None)]

    for site, org in all_sites:
        for c in range(rnd.randint(1, 2)):
            source = f"cam-{site}-{c}".replace("/", "-")
            for n in range(rnd.randint(1, 2)):
                start = T0 - dt.timedelta(hours=2, minutes=10 * n)
                rec = vault.put_stream(
                    io.BytesIO(rnd.randbytes(2000)),
                    cctv_video(source, site, start, dt.timedelta(minutes=10), name=f"{source}.mp4"),
                    actor=admin,
                )
                m.recs[rec.id] = Rec(rec.id, org, site, source)
    originals = list(m.recs.values())
    for _ in range(rnd.randint(4, 6)):
        made_from = rnd.sample(originals, rnd.randint(1, min(3, len(originals))))
        _derive(vault, m, admin, [r.id for r in made_from])
    derived = [r for r in m.recs.values() if r.origins]
    _derive(vault, m, admin, [rnd.choice(derived).id, rnd.choice(originals).id])  # copy of a copy

    for org in orgs:
        for role in ROLES:
            name = f"{role.value}.{org}".replace("/", "-").lower()
            own = org_sites[org]
            assigned = set(rnd.sample(own, rnd.randint(0, len(own))))
            foreign = [s for s, o in all_sites if o not in (org, None)]
            if role == Role.ASB_OFFICER and foreign:
                assigned.add(rnd.choice(foreign))  # another organisation's site name: no effect
                if rnd.random() < 0.5:
                    assigned.add("Unowned")
            user = identity.create_user(vault, name=name, role=role, organisation=org,
                                        sites=sorted(assigned) if role == Role.ASB_OFFICER else [],
                                        actor=admin)
            token = identity.issue_token(vault, name, actor=admin).token
            m.users[name] = User(name, role, org, frozenset(assigned)
                                 if role == Role.ASB_OFFICER else frozenset(), token, user.id)

    for org in orgs:
        officers = [u for u in m.users.values() if u.org == org and u.role == Role.ASB_OFFICER]
        actor = Actor(user=f"ig.{org}", role=Role.IG_OFFICER, organisation=org)
        for k in range(rnd.randint(1, 2)):
            members = [u for u in officers if rnd.random() < 0.7]
            case = cases.create_case(vault, reference=f"{org}/ASB/{k}", organisation=org,
                                     actor=actor, member_ids=tuple(u.id for u in members))
            m.case_org[case.id] = org
            m.case_links[case.id] = set()
            for u in members:
                u.cases.add(case.id)
            mine = [r for r in originals if r.org == org]
            theirs = [r for r in originals if r.org not in (org, None)]
            picks = rnd.sample(mine, min(len(mine), rnd.randint(1, 2)))
            if theirs and k == 0:
                picks.append(rnd.choice(theirs))  # linked by an administrator across the line
            for r in picks:
                cases.link_recording(vault, case.id, r.id, actor=admin)
                m.case_links[case.id].add(r.id)
            hold = place_hold(vault, kind=HoldKind.CASE, reason="case", case_id=case.id,
                              actor=actor, organisation=org)
            m.holds[hold.id] = (org, HoldKind.CASE, case.id, False)
        own = [r for r in originals if r.org == org]
        target = rnd.choice(own)
        hold = place_hold(vault, kind=HoldKind.POLICE, reason="police request",
                          recording_id=target.id, actor=actor)
        m.holds[hold.id] = (org, HoldKind.POLICE, None, False)
        hold = place_hold(vault, kind=HoldKind.LEGAL, reason="claim", source_id=target.source,
                          window=(T0 - dt.timedelta(hours=3), T0), actor=actor)
        m.holds[hold.id] = (org, HoldKind.LEGAL, None, False)
        sar = register_sar(vault, reference=f"SAR-{org}", requester_name=f"Resident of {org}",
                           received_on=T0.date(), actor=actor)
        m.sars[sar.id] = org
        window = attach_window(vault, sar.id, source_id=target.source,
                               start=T0 - dt.timedelta(hours=3), end=T0, actor=actor)
        m.holds[window.hold_id] = (org, HoldKind.SAR, None, True)
        officer = rnd.choice(officers)
        visible = [rid for rid in m.recs if m.sees(officer, rid)]
        if visible:
            officer_actor = Actor(user=officer.name, role=Role.ASB_OFFICER, organisation=org)
            created = shares.create_share(
                vault, actor=officer_actor, recipient="DC Test", recipient_org="Police",
                purpose="investigation", lawful_basis="DPA 2018 s.35",
                recording_ids=rnd.sample(visible, 1), expires_at=T0 + dt.timedelta(days=7))
            m.shares[created.share.id] = (org, officer.name)
    client = TestClient(create_app(vault.settings, vault=vault))
    return vault, client, m


def _derive(vault: Vault, m: Model, actor: Actor, made_from: list[str]) -> None:
    first = m.recs[made_from[0]]
    copy = vault.put_stream(
        io.BytesIO(random.randbytes(1500)),
        Capture(
            source_id=first.source,
            captured_at=T0 - dt.timedelta(hours=2),
            media_kind=MediaKind.OTHER,
            original_name="derived.bin",
            parent_id=made_from[0],
            derived_from=made_from,
            provenance={"kind": "export", "recording_ids": made_from},
            action="export.stored",
        ),
        actor=actor,
    )
    origins: set[str] = set()
    for rid in made_from:
        origins |= set(m.recs[rid].origins or (rid,))
    m.recs[copy.id] = Rec(copy.id, first.org, first.site, first.source, tuple(sorted(origins)))


@pytest.fixture(params=[11, 23, 37], ids=lambda s: f"seed{s}")
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Vault, TestClient, Model]]:
    vault, client, model = build(request.param, tmp_path)
    try:
        yield vault, client, model
    finally:
        client.close()
        vault.close()


def _h(u: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {u.token}", **PURPOSE}


def test_every_route_answers_as_the_model_says(world: tuple[Vault, TestClient, Model]) -> None:
    """Issue #11 findings 1, 2 and 3 as a class: derived copies, holds, SARs, cases, shares and
    custody history never cross the organisation / site / case boundary, on any path."""
    vault, client, m = world
    wrong: list[str] = []

    def check(u: User, what: str, got: object, expected: object) -> None:
        if got != expected:
            wrong.append(f"{u.name} {what}: got {got!r}, model says {expected!r}")

    for u in m.users.values():
        h = _h(u)
        # Search and metadata, for every recording.
        found = client.get("/recordings", params={"limit": 1000}, headers=h)
        if u.role in FOOTAGE_ROLES:
            check(u, "search", {r["id"] for r in found.json()["items"]},
                  {rid for rid in m.recs if m.sees(u, rid)})
        else:
            check(u, "search status", found.status_code, 403)
        for rid in m.recs:
            status = client.get(f"/recordings/{rid}", headers=h).status_code
            check(u, f"GET /recordings/{rid}", status == 200, m.sees(u, rid))
            if status != 200:
                check(u, f"GET /recordings/{rid} refusal", status, 403)
            # Thumbnails are footage (issue #12): the stream's decision for every user and
            # recording. A permitted sheet decrypts the recording, whose random bytes then
            # fail to decode (422; 400 for a derived copy that is not video); a refused one
            # is a 403 before anything is decrypted.
            sheet = client.get(f"/recordings/{rid}/thumbnails", params={"tiles": 1},
                               headers=h).status_code
            check(u, f"GET /recordings/{rid}/thumbnails", sheet != 403, m.sees(u, rid))
            check(u, f"GET /recordings/{rid}/thumbnails status", sheet,
                  sheet if sheet in (400, 422) else 403)
        # Holds: listing and releasing.
        if u.role in FOOTAGE_ROLES and u.role != Role.ASB_OFFICER:
            listed = client.get("/holds", params={"limit": 1000, "all": "true"}, headers=h)
            check(u, "holds", {x["id"] for x in listed.json()}, {hid for hid in m.holds
                                                                if m.sees_hold(u, hid)})
        for case_id in m.case_org:
            listed = client.get("/holds", params={"case_id": case_id}, headers=h)
            if u.role in FOOTAGE_ROLES and m.sees_case(u, case_id):
                check(u, f"holds of case {case_id}", all(
                    x["case_id"] == case_id and m.sees_hold(u, x["id"]) for x in listed.json()),
                    True)
            else:
                check(u, f"holds of case {case_id} status", listed.status_code, 403)
        for hid in m.holds:
            if not m.may_release(u, hid):
                r = client.post(f"/holds/{hid}/release", json={"reason": "probe"}, headers=h)
                check(u, f"release hold {hid} ({m.holds[hid][1].value})", r.status_code, 403)
        # SARs.
        listed = client.get("/sars", params={"limit": 1000}, headers=h)
        if u.role in SAR_ROLES:
            check(u, "sars", {s["id"] for s in listed.json()},
                  {sid for sid in m.sars if m.sees_sar(u, sid)})
        for sid in m.sars:
            status = client.get(f"/sars/{sid}", headers=h).status_code
            check(u, f"GET /sars/{sid}", status == 200, m.sees_sar(u, sid))
        # Cases and their custody history.
        listed = client.get("/cases", params={"limit": 1000}, headers=h)
        if u.role in FOOTAGE_ROLES:
            check(u, "cases", {c["id"] for c in listed.json()},
                  {c for c in m.case_org if m.sees_case(u, c)})
        for case_id in m.case_org:
            history = client.get("/custody/events", params={"case_id": case_id}, headers=h)
            check(u, f"history of case {case_id}", history.status_code == 200,
                  u.role in CUSTODY_ROLES and m.sees_case(u, case_id))
        # Shares.
        listed = client.get("/shares", params={"limit": 1000}, headers=h)
        if u.role in FOOTAGE_ROLES:
            check(u, "shares", {s["id"] for s in listed.json()},
                  {s for s in m.shares if m.sees_share(u, s)})
    # Custody events: a reader sees no event that is only about another organisation.
    for u in m.users.values():
        if u.role not in CUSTODY_ROLES or u.role == Role.ADMINISTRATOR:
            continue
        org_users = {x.name for x in m.users.values() if x.org == u.org} | {x.id for x in
                                                                         m.users.values()
                                                                         if x.org == u.org}
        owned = ({rid for rid in m.recs if m.owns(u, rid)} | org_users
                 | {c for c, o in m.case_org.items() if o == u.org}
                 | {h for h, v in m.holds.items() if v[0] == u.org}
                 | {s for s, o in m.sars.items() if o == u.org}
                 | {s for s, v in m.shares.items() if v[0] == u.org})
        got = [dict(e["event"], seq=e["seq"]) for e in client.get(
            "/custody/events", params={"limit": 1000}, headers=_h(u)).json()["items"]]
        assert got, "a custody reader sees at least their organisation's own events"
        for event in got:
            if event["actor"] not in org_users and not set(event["object_ids"]) & owned:
                wrong.append(f"{u.name} reads event {event['seq']} ({event['action']}) of "
                             "another organisation")
        foreign = ({r.id for r in m.recs.values() if not r.origins and r.org not in (None, u.org)}
                   | {c for c, o in m.case_org.items() if o != u.org}
                   | {h for h, v in m.holds.items() if v[0] != u.org}
                   | {s for s, o in m.sars.items() if o != u.org}
                   | {s for s, v in m.shares.items() if v[0] != u.org}
                   | {x.id for x in m.users.values() if x.org != u.org})
        check(u, "events by others naming another organisation's objects", [
            e["seq"] for e in got if e["actor"] not in org_users
            and set(e["object_ids"]) & foreign], [])
        foreign_sars = [s for s, o in m.sars.items() if o != u.org]
        check(u, "events naming another organisation's SAR", [
            e["seq"] for e in got if set(e["object_ids"]) & set(foreign_sars)
            and not set(e["object_ids"]) & owned and e["actor"] not in org_users], [])
    assert not wrong, f"{len(wrong)} answers differ from the model:\n" + "\n".join(wrong[:40])
    # Nothing the refused probes tried was released.
    assert all(h.released_at is None for h in list_holds(vault, active=None))


def test_model_is_not_vacuous(world: tuple[Vault, TestClient, Model]) -> None:
    """The generated worlds exercise the rules the test is for: a derived copy one user sees
    part of but not all of, an officer whose foreign site name grants nothing, a hold one
    organisation sees and another does not, and footage one officer sees and another not."""
    _vault, _client, m = world
    users = list(m.users.values())
    officers = [u for u in users if u.role == Role.ASB_OFFICER]
    derived = [r for r in m.recs.values() if r.origins]
    assert any(
        any(m.sees_original(u, m.recs[o], scoped=False) for o in d.origins) and not m.sees(u, d.id)
        for u in users if u.role in FOOTAGE_ROLES for d in derived
    )
    assert any(not m.sees(u, r.id) for u in officers for r in m.recs.values()
               if r.site in u.sites)
    assert any(m.sees_hold(a, h) and not m.sees_hold(b, h) for h in m.holds
               for a in users for b in users)
    assert any(m.sees(a, r) and not m.sees(b, r) for r in m.recs for a in officers for b in officers)
