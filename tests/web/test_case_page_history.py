"""Issue #12, Benchmark (case page at 100,000 custody events): the case page's custody history.

The page read each item's history in a query of its own, each applying the reader's boundary
by building the set of every event the organisation may read (about 90 ms each at 100,000
events), and checked each of 220 inclusion proofs by re-opening the same signed checkpoint:
6.8 s a page. These tests pin what replaced it: one statement for every item's history, a
boundary that costs per candidate event and selects exactly what the set form selects, a page
of events per item with a "more events" link, and a checkpoint opened once per batch of
proofs without weakening any check. Over HTTP (``TestClient``) on real vaults: SQLite and PostgreSQL catalogs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.engine import Engine

from api.app import create_app
from api.web.casework import HISTORY_LIMIT
from tests.api.conftest import Clock
from tests.web.conftest import PASSWORD, sign_in_client
from vault.casework import cases as case_ops
from vault.access import credentials, identity
from vault.casework import sites
from vault.actors import Actor, Role
from vault.storage.catalog import MediaKind, SourceKind
from vault.config import Settings
from vault.ledger.custody import Action, CustodyEventRow, CustodyLedger
from vault.casework.disclosure import event_proofs
from vault.errors import LedgerError
from vault.access.identity import Principal
from vault.casework.policy import visible_events
from vault.vault import Vault
from vault.capture import Capture

NORTH, EAST = "Northside Homes", "Eastgate Housing"
T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
ADMIN = Actor(user="local:test", role=Role.ADMINISTRATOR)
OFFICER = Actor(user="asb", role=Role.ASB_OFFICER, organisation=NORTH)
BASE = "http://127.0.0.1"


@dataclasses.dataclass
class World:
    vault: Vault
    clock: Clock
    secret: str
    recordings: list[str]
    east_recording: str
    east_case: str
    clients: list[TestClient] = dataclasses.field(default_factory=list)

    def ig_client(self) -> TestClient:
        c = TestClient(create_app(self.vault.settings, vault=self.vault), base_url=BASE)
        self.clients.append(c)
        self.clock.advance(seconds=31)  # a fresh TOTP step: codes are single-use
        sign_in_client(c, "ig", lambda: pyotp.TOTP(self.secret).at(self.clock.now))
        return c

    def case_of(self, recordings: list[str], reference: str) -> str:
        asb = identity.get_user(self.vault, "asb")
        case = case_ops.create_case(self.vault, reference=reference, organisation=NORTH,
                                    actor=OFFICER, member_ids=(asb.id,))
        for rid in recordings:
            case_ops.link_recording(self.vault, case.id, rid, actor=OFFICER)
        return case.id

    def views(self, rid: str, n: int, *, also: tuple[str, ...] = (),
              actor: Actor = OFFICER) -> None:
        ledger = self.vault.ledger
        ledger.record_many([ledger.event(
            Action.VIEWED, actor=actor, object_ids=[rid, *also], purpose="Review",
            reference="ASB/1") for _ in range(n)])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """20 Northside recordings with three views each, an Eastgate recording and case; on the
    embedded SQLite catalog and on PostgreSQL (the window functions and correlated checks
    must plan on both)."""
    clock = Clock(T0)
    options: dict[str, Any] = {"home": tmp_path / "home", "segment_size": 4096}
    if request.param == "postgres":
        options["database_url"] = request.getfixturevalue("fresh_postgres_url")
    vault = Vault.init(Settings(**options), clock=clock)
    for site, org in (("Riverside", NORTH), ("Eastgate", EAST)):
        sites.register_site(vault, site, organisation=org, actor=ADMIN)
    secret = ""
    for name, role, org in (("asb", Role.ASB_OFFICER, NORTH), ("ig", Role.IG_OFFICER, NORTH),
                            ("ig_east", Role.IG_OFFICER, EAST)):
        user = identity.create_user(vault, name=name, role=role, organisation=org,
                                    sites=["Riverside"] if name == "asb" else [], actor=ADMIN)
        credentials.set_password(vault, name, PASSWORD, actor=ADMIN)
        enrolment = credentials.begin_enrolment(vault, user.id, issuer="test")
        credentials.check_code(vault, user.id, pyotp.TOTP(enrolment.secret).at(clock.now),
                               enrolling=True)
        if name == "ig":
            secret = enrolment.secret

    def put(source: str, site: str, k: int) -> str:
        start = T0 - dt.timedelta(hours=2, minutes=k)
        return vault.put_stream(
            io.BytesIO(f"{source}-{k}".encode() * 50),
            Capture(
                source_id=source,
                source_kind=SourceKind.CCTV,
                site=site,
                captured_at=start,
                captured_end=start + dt.timedelta(minutes=1),
                media_kind=MediaKind.VIDEO,
                original_name=f"{source}-{k}.mp4",
            ),
            actor=ADMIN,
        ).id

    recordings = [put("cam-river-1", "Riverside", k) for k in range(20)]
    east_recording = put("cam-east-1", "Eastgate", 0)
    east_case = case_ops.create_case(vault, reference="EG/2026/7", organisation=EAST,
                                     actor=ADMIN).id
    w = World(vault, clock, secret, recordings, east_recording, east_case)
    for rid in recordings:
        w.views(rid, 3)
    try:
        yield w
    finally:
        for c in w.clients:
            c.close()
        vault.close()


def _statements(client: TestClient, path: str) -> tuple[int, str]:
    """SQL statements executed on any engine while answering GET ``path``, and the page."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa_event.listen(Engine, "before_cursor_execute", count)
    try:
        r = client.get(path)
    finally:
        sa_event.remove(Engine, "before_cursor_execute", count)
    assert r.status_code == 200, r.text[:500]
    return len(seen), r.text


def _history_rows(html: str, rid: str) -> int:
    table = html.split(f'data-item="{rid}"', 1)[1].split("</table>", 1)[0]
    return table.count("ev-verified") + table.count("ev-unverified")


def test_case_page_statements_do_not_grow_with_its_items(world: World) -> None:
    """Issue #12 Benchmark: the case page ran one history query per item (20 items, 20
    queries, ~90 ms each at 100,000 events); now a case of 20 items costs the same number of
    statements as a case of 2, and every item's history is on the page, verified."""
    small = world.case_of(world.recordings[:2], "ASB/2026/0001")
    large = world.case_of(world.recordings, "ASB/2026/0002")
    ig = world.ig_client()
    ig.get(f"/casework/{small}")  # warm: the first page signs a checkpoint
    n_small, _ = _statements(ig, f"/casework/{small}")
    n_large, html = _statements(ig, f"/casework/{large}")
    assert n_large == n_small, (n_small, n_large)
    for rid in world.recordings:
        # ingested, linked to the two cases (or one), three views: every one proved.
        assert _history_rows(html, rid) >= 4
        table = html.split(f'data-item="{rid}"', 1)[1].split("</table>", 1)[0]
        assert "ev-unverified" not in table


def _seqs(vault: Vault, principal: Principal, *, narrowed: bool) -> list[int]:
    with vault.sessions() as session:
        return list(session.scalars(select(CustodyEventRow.seq).where(
            visible_events(principal, narrowed=narrowed)).order_by(CustodyEventRow.seq)))


def test_narrowed_boundary_selects_exactly_the_set_forms_events(world: World) -> None:
    """Issue #12 Benchmark: the boundary's per-event (narrowed) form, which the case page and
    require_event use, shows each reader exactly the events the set form shows: their
    organisation's, never one that also names another organisation's case or footage."""
    mixed = world.recordings[0]
    # By an administrator (no organisation's user): only what the events name decides.
    world.views(mixed, 1, also=(world.east_case,), actor=ADMIN)  # names Eastgate's case
    world.views(world.east_recording, 2, actor=ADMIN)             # Eastgate's footage only
    world.views(mixed, 1, also=(world.east_recording,), actor=ADMIN)  # and Eastgate's footage
    vault = world.vault
    readers = [identity.principal_for(vault, name) for name in ("ig", "ig_east", "asb")]
    readers.append(dataclasses.replace(readers[0], organisation="Nobody Housing"))
    for reader in readers:
        assert _seqs(vault, reader, narrowed=True) == _seqs(vault, reader, narrowed=False)
    north = set(_seqs(vault, readers[0], narrowed=True))
    east = set(_seqs(vault, readers[1], narrowed=True))
    foreign_ids = {world.east_case, world.east_recording}
    both = {r.seq for r in vault.ledger.events(object_id=mixed)
            if foreign_ids & set(r.event.object_ids)}
    only_east = {r.seq for r in vault.ledger.events(object_id=world.east_recording)
                 if mixed not in r.event.object_ids}
    assert len(both) == 2 and not both & north and not both & east
    assert len(only_east) == 3 and only_east <= east and not only_east & north
    assert _seqs(vault, readers[2], narrowed=True) == []  # an ASB officer reads no custody log


def test_case_page_history_keeps_the_organisation_boundary(world: World) -> None:
    """Issue #12 Benchmark: the one history statement reads the item's links itself, and the
    boundary must still weigh every object an event names, not just that link: an event
    about a Northside item that also names Eastgate's case or footage stays off Northside's
    case page (as the per-item query with the set-form boundary kept it off)."""
    mixed, plain = world.recordings[0], world.recordings[1]
    world.views(mixed, 1, also=(world.east_case,), actor=ADMIN)
    world.views(mixed, 1, also=(world.east_recording,), actor=ADMIN)
    world.views(mixed, 2, actor=ADMIN)
    case_id = world.case_of([mixed, plain], "ASB/2026/0004")
    html = world.ig_client().get(f"/casework/{case_id}").text
    ig = identity.principal_for(world.vault, "ig")
    for rid in (mixed, plain):
        expected = world.vault.ledger.events(object_id=rid, where=visible_events(ig))
        assert _history_rows(html, rid) == len(expected)
    assert _history_rows(html, mixed) == 1 + 1 + 3 + 2  # ingested, linked, views; not the two
    assert world.east_case not in html and world.east_recording not in html


def test_a_busy_item_shows_a_page_of_events_and_a_link_to_the_rest(world: World) -> None:
    """Issue #12 Benchmark: an item's history can grow without bound (every view is an
    event). The page shows HISTORY_LIMIT events an item and "N more events" linking to the
    next page of that item, and a busy item does not crowd the others off the page."""
    busy, quiet = world.recordings[0], world.recordings[1]
    case_id = world.case_of([busy, quiet], "ASB/2026/0003")
    world.views(busy, HISTORY_LIMIT + 3)
    total = len(world.vault.ledger.events(object_id=busy, limit=100_000))
    assert total == 1 + 1 + 3 + HISTORY_LIMIT + 3  # ingested, linked, views
    ig = world.ig_client()
    html = ig.get(f"/casework/{case_id}").text
    assert _history_rows(html, busy) == HISTORY_LIMIT
    assert _history_rows(html, quiet) == 5  # ingested, linked, three views
    more = total - HISTORY_LIMIT
    link = re.search(rf'href="(/casework/{case_id}\?item={busy}&amp;after=(\d+))#history-{busy}">'
                     rf"{more} more events</a>", html)
    assert link and int(link.group(2)) == HISTORY_LIMIT, html[-3000:]
    rest = ig.get(link.group(1).replace("&amp;", "&")).text
    assert _history_rows(rest, busy) == more
    assert _history_rows(rest, quiet) == 5
    assert f"Events {HISTORY_LIMIT + 1} to {total} of {total}." in rest
    assert "Earlier events" in rest and "more event" not in rest
    # Past the end: an empty page that still says how many there are, not an error.
    past = ig.get(f"/casework/{case_id}?item={busy}&after={total + 10}")
    assert past.status_code == 200 and f"of {total}." in past.text


def test_one_opened_checkpoint_still_checks_every_proof(world: World) -> None:
    """Issue #12 Benchmark: proofs checked in a batch share one opened checkpoint (its
    signature verified once, 220 times before); a proof whose checkpoint, root or path differs
    from the one opened still fails, as it does alone."""
    vault = world.vault
    seqs = [r.seq for r in vault.ledger.events(object_id=world.recordings[0])]
    proofs = event_proofs(vault, seqs)
    vkey, origin = vault.ledger.verifier_key(), vault.ledger.origin
    opened: dict[Any, Any] = {}
    for proof in proofs.values():
        CustodyLedger.verify_inclusion_proof(proof, vkey, origin=origin, opened=opened)
    assert len(opened) == 1
    good = proofs[seqs[-1]]
    forged_note = good["checkpoint"].replace("\n\n", "\nextra\n\n", 1)
    bad_root = {**good, "root_hash": "00" * 32}
    bad_path = {**good, "proof": ["00" * 32, *good["proof"][1:]] or ["00" * 32]}
    for bad in ({**good, "checkpoint": forged_note}, bad_root, bad_path):
        with pytest.raises(LedgerError):
            CustodyLedger.verify_inclusion_proof(bad, vkey, origin=origin, opened=opened)
