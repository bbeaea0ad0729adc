"""Issue #12, second slice: cases, shares, the recipient page and retention over HTTP.

In-process (``TestClient``) with an explicit clock: the organisation and site boundary on each
new page, CSRF on each new form (a refused form changes nothing), and the page headers. The
browser journeys (test_casework.py) check the same pages in Chromium with real footage.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import Clock
from tests.web.conftest import PASSWORD, csrf_of, sign_in_client, state_purpose
from vault.casework import cases as case_ops
from vault.access import credentials, identity
from vault.casework import sites
from vault.casework import shares as share_ops
from vault.actors import Actor, Role
from vault.storage.catalog import MediaKind, SourceKind
from vault.config import Settings
from vault.ledger.custody import Action
from vault.casework.retention import run_retention
from vault.vault import Vault
from vault.capture import Capture

NORTH, EAST = "Northside Homes", "Eastgate Housing"
T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
ADMIN = Actor(user="local:test", role=Role.ADMINISTRATOR)
BASE = "http://127.0.0.1"


@dataclass
class World:
    vault: Vault
    clock: Clock
    secrets: dict[str, str] = field(default_factory=dict)
    rec: dict[str, str] = field(default_factory=dict)
    clients: list[TestClient] = field(default_factory=list)
    case_id: str = ""
    share_id: str = ""
    token: str = ""

    def client(self, user: str | None = None) -> TestClient:
        c = TestClient(create_app(self.vault.settings, vault=self.vault), base_url=BASE)
        self.clients.append(c)
        if user:
            self.sign_in(c, user)
        return c

    def sign_in(self, client: TestClient, user: str) -> None:
        self.clock.advance(seconds=31)  # a fresh TOTP step: codes are single-use
        sign_in_client(client, user, lambda: pyotp.TOTP(self.secrets[user]).at(self.clock.now))
        state_purpose(client)

    def events(self, action: str) -> list[object]:
        return [e.event for e in self.vault.ledger.events(action=action, limit=100_000)]


USERS = (("asb", Role.ASB_OFFICER, NORTH, ["Riverside"]),
         ("asb_oak", Role.ASB_OFFICER, NORTH, ["Oak Park"]),
         ("ig", Role.IG_OFFICER, NORTH, []),
         ("ig_east", Role.IG_OFFICER, EAST, []),
         ("asb_east", Role.ASB_OFFICER, EAST, ["Eastgate"]))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock(T0)
    vault = Vault.init(Settings(home=tmp_path / "home", segment_size=4096), clock=clock)
    w = World(vault=vault, clock=clock)
    for site, org in (("Riverside", NORTH), ("Oak Park", NORTH), ("Eastgate", EAST)):
        sites.register_site(vault, site, organisation=org, actor=ADMIN)
    for name, role, org, assigned in USERS:
        user = identity.create_user(vault, name=name, role=role, organisation=org,
                                    sites=assigned, actor=ADMIN)
        credentials.set_password(vault, name, PASSWORD, actor=ADMIN)
        enrolment = credentials.begin_enrolment(vault, user.id, issuer="test")
        credentials.check_code(vault, user.id, pyotp.TOTP(enrolment.secret).at(clock.now),
                               enrolling=True)
        w.secrets[name] = enrolment.secret
    for key, source, site, ago in (("river", "cam-river-1", "Riverside", 1),
                                   ("oak", "cam-oak-1", "Oak Park", 1),
                                   ("east", "cam-east-1", "Eastgate", 1),
                                   ("river_due", "cam-river-2", "Riverside", 24 * 19),
                                   ("east_due", "cam-east-2", "Eastgate", 24 * 19),
                                   ("river_old", "cam-river-3", "Riverside", 24 * 30),
                                   ("east_old", "cam-east-3", "Eastgate", 24 * 30)):
        start = T0 - dt.timedelta(hours=ago)
        w.rec[key] = vault.put_stream(
            io.BytesIO(key.encode() * 500),
            Capture(
                source_id=source,
                source_kind=SourceKind.CCTV,
                site=site,
                captured_at=start,
                captured_end=start + dt.timedelta(minutes=10),
                media_kind=MediaKind.VIDEO,
                original_name=f"{source}.mp4",
            ),
            actor=ADMIN,
        ).id
    run_retention(vault)  # the 30-day-old recordings go: their certificates exist
    asb = identity.get_user(vault, "asb")
    actor = Actor(user="asb", role=Role.ASB_OFFICER, organisation=NORTH)
    case = case_ops.create_case(vault, reference="ASB/2026/0142", organisation=NORTH,
                                actor=actor, member_ids=(asb.id,))
    case_ops.link_recording(vault, case.id, w.rec["river"], actor=actor)
    w.case_id = case.id
    created = share_ops.create_share(
        vault, actor=actor, recipient="DC Sam Patel <sam@police.example.uk>",
        recipient_org="Northshire Police", purpose="Investigate the damage",
        lawful_basis="DPA 2018 s.35", recording_ids=[w.rec["river"]],
        expires_at=T0 + dt.timedelta(days=7), allow_download=True, max_downloads=1)
    w.share_id, w.token = created.share.id, created.token
    try:
        yield w
    finally:
        for c in w.clients:
            c.close()
        vault.close()


def test_another_site_or_organisation_sees_nothing_of_a_case(world: World) -> None:
    """Issue #12 (second slice): a case, its items and its history are seen only within its
    boundary: an ASB officer of another site (not a member) and an IG officer of another
    organisation get a refusal (logged) on the case page and its forms, and the case is not in
    their list; the IG officer of its own organisation sees it and its custody history."""
    denied = len(world.events(Action.ACCESS_DENIED.value))
    for user in ("asb_oak", "ig_east", "asb_east"):
        c = world.client(user)
        listing = c.get("/casework")
        assert listing.status_code == 200 and "ASB/2026/0142" not in listing.text
        page = c.get(f"/casework/{world.case_id}")
        assert page.status_code == 403 and "ASB/2026/0142" not in page.text
        token = csrf_of(c.get("/account").text)
        for path, data in ((f"/casework/{world.case_id}/close", {"reason": "x"}),
                           (f"/casework/{world.case_id}/members", {"name": user}),
                           ("/casework/link", {"case": world.case_id,
                                               "recording": world.rec["river"]})):
            r = c.post(path, data={"csrf_token": token, **data})
            assert r.status_code == 403, (user, path)
    assert len(world.events(Action.ACCESS_DENIED.value)) >= denied + 12  # each one logged
    with world.vault.sessions() as session:
        from vault.storage.catalog import Case
        case = session.get(Case, world.case_id)
        assert case is not None and case.status.value == "open"
    assert case_ops.case_details(world.vault, world.case_id)[3] == ["asb"]
    ig = world.client("ig")
    page = ig.get(f"/casework/{world.case_id}")
    assert page.status_code == 200
    assert "Verified" in page.text and "Not verified" not in page.text
    # The ASB officer is a member but reads no custody log (vault.casework.policy): told so, not shown.
    own = world.client("asb").get(f"/casework/{world.case_id}")
    assert own.status_code == 200 and "Your role does not read the custody log" in own.text


def test_footage_and_clips_of_another_site_are_refused_on_the_watch_page(world: World) -> None:
    """Issue #12 (second slice): the watch page and its clip form decide like the API: an ASB
    officer of another site, or a user of another organisation, is refused the page, the clip
    and a new case started from the recording (403, logged), and nothing is cut or created."""
    before = len(world.events("clip.assembled"))
    for user in ("asb_oak", "asb_east", "ig_east"):
        c = world.client(user)
        assert c.get(f"/watch/{world.rec['river']}").status_code == 403
        token = csrf_of(c.get("/account").text)
        r = c.post(f"/watch/{world.rec['river']}/clip", data={
            "csrf_token": token, "day": "2026-11-25", "start": "14:00:00", "end": "14:00:05"})
        assert r.status_code == 403
        # Nor may they start a case from it: refused before the case exists.
        assert c.get(f"/casework/new?recording={world.rec['river']}").status_code == 403
        r = c.post("/casework", data={"csrf_token": token, "reference": f"X/{user}",
                                      "recording": world.rec["river"]})
        assert r.status_code == 403
    assert len(world.events("clip.assembled")) == before
    assert not [c for c, _ in case_ops.list_cases(world.vault) if c.reference.startswith("X/")]


def test_shares_are_seen_and_revoked_only_within_their_boundary(world: World) -> None:
    """Issue #12 (second slice): the shares page lists an ASB officer's own shares, an IG
    officer's organisation's; another officer or organisation neither sees nor revokes one,
    nor opens the share form for footage outside their sites."""
    for user in ("asb_oak", "ig_east"):
        c = world.client(user)
        assert "Sam Patel" not in c.get("/sharing").text
        token = csrf_of(c.get("/account").text)
        r = c.post(f"/sharing/{world.share_id}/revoke", data={"csrf_token": token, "reason": "x"})
        assert r.status_code in (403, 404)
        r = c.get(f"/sharing/new?recording={world.rec['river']}")
        assert r.status_code == 403
    assert share_ops.share_state(share_ops.get_share(world.vault, world.share_id)[0],  # type: ignore[index]
                                 world.clock.now) == "active"
    assert "Sam Patel" in world.client("ig").get("/sharing").text
    mine = world.client("asb")
    listing = mine.get("/sharing")
    assert "Sam Patel" in listing.text and "Active" in listing.text


def test_retention_shows_only_its_organisations_footage(world: World) -> None:
    """Issue #12 (second slice): the retention page forecasts from the reaper's own dry run,
    and shows an IG officer their organisation's footage due in the next 7 days and its
    deletion certificates, never another organisation's; an ASB officer is refused the page;
    looking deletes nothing and writes nothing to the custody log."""
    deleted = len(world.events(Action.DELETED.value))
    ig = world.client("ig")
    size = world.vault.ledger.size()
    north = ig.get("/retention")
    assert north.status_code == 200
    assert world.vault.ledger.size() == size  # looking writes nothing
    for key in ("river_due", "river_old"):
        assert world.rec[key] in north.text
    for key in ("east_due", "east_old", "river"):
        assert world.rec[key] not in north.text
    east = world.client("ig_east").get("/retention")
    assert world.rec["east_due"] in east.text and world.rec["river_due"] not in east.text
    assert world.vault.recording(world.rec["river_due"]).deleted_at is None
    c = world.client("ig_east")
    assert c.get(f"/retention/certificates/{world.rec['river_old']}").status_code == 403
    cert = world.client("ig").get(f"/retention/certificates/{world.rec['river_old']}")
    assert cert.status_code == 200 and "attachment" in cert.headers["content-disposition"]
    from vault.casework.retention import verify_deletion_certificate
    verify_deletion_certificate(cert.json(), world.vault.ledger.verifier_key())
    refused = world.client("asb").get("/retention")
    assert refused.status_code == 403
    assert len(world.events(Action.DELETED.value)) == deleted  # nothing deleted by looking


def test_new_forms_refuse_a_missing_csrf_token_and_change_nothing(world: World) -> None:
    """Issue #12 (second slice): every new form (case, add to case, close, member, clip, share,
    revoke, recipient download) without its CSRF token is refused (403) and nothing changes:
    no case, link, share, revocation or download."""
    c = world.client("asb")
    shares = len(share_ops.list_shares(world.vault))
    for path, data in (
        ("/casework", {"reference": "ASB/NEW"}),
        ("/casework/link", {"case": world.case_id, "recording": world.rec["river"]}),
        (f"/casework/{world.case_id}/close", {"reason": "done"}),
        (f"/casework/{world.case_id}/members", {"name": "asb_oak"}),
        (f"/watch/{world.rec['river']}/clip", {"day": "2026-11-25", "start": "14:00:00",
                                               "end": "14:00:05"}),
        ("/sharing", {"recording": world.rec["river"], "recipient": "X", "email": "x@y.uk",
                     "recipient_org": "Y", "purpose": "p", "lawful_basis": "b",
                     "expires": "2026-12-01", "access": "view"}),
        (f"/sharing/{world.share_id}/revoke", {"reason": "x"}),
    ):
        assert c.post(path, data=data).status_code == 403, path
    assert len(share_ops.list_shares(world.vault)) == shares
    assert case_ops.case_details(world.vault, world.case_id)[3] == ["asb"]
    assert share_ops.get_share(world.vault, world.share_id)[0].revoked_at is None  # type: ignore[index]
    recipient = world.client()
    page = recipient.get(f"/s/{world.token}")
    assert page.status_code == 200
    r = recipient.post(f"/s/{world.token}/recordings/{world.rec['river']}/download",
                       data={"acknowledge": "yes"})
    assert r.status_code == 403
    assert share_ops.get_share(world.vault, world.share_id)[0].downloads == 0  # type: ignore[index]


def test_recipient_page_states_the_terms_and_downloads_only_when_acknowledged(world: World) -> None:
    """Issue #12 (second slice): the recipient's page (no account) says who shared what with
    whom, why and until when, with no-store and the strict CSP; a download needs the
    acknowledgement (else a message and nothing counted), counts against the limit, and once
    used up or revoked the link answers 410 with a page saying why."""
    c = world.client()
    page = c.get(f"/s/{world.token}")
    assert page.status_code == 200
    for text in ("DC Sam Patel", "Northshire Police", "Investigate the damage", "DPA 2018 s.35",
                 "asb", NORTH, "1 download left"):
        assert text in page.text, text
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # no inline script
    url = f"/s/{world.token}/recordings/{world.rec['river']}/download"
    r = c.post(url, data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 400 and "Confirm that you will handle" in r.text
    assert share_ops.get_share(world.vault, world.share_id)[0].downloads == 0  # type: ignore[index]
    r = c.post(url, data={"csrf_token": csrf_of(page.text), "acknowledge": "yes"})
    assert r.status_code == 200 and r.content == b"river" * 500
    assert "attachment" in r.headers["content-disposition"]
    again = c.post(url, data={"csrf_token": csrf_of(page.text), "acknowledge": "yes"})
    assert again.status_code == 410
    assert "<html" in again.text  # a page, not the API's JSON
    assert c.get("/s/not-a-token").status_code == 404


def test_share_form_needs_each_field_and_gives_the_full_link_once(world: World) -> None:
    """Issue #12 (second slice): a share form missing its fields answers 400 naming each one
    (nothing created); a complete one shows the full link under web_public_url, whose token
    opens the recipient page, and the share's recipient carries the email address."""
    c = world.client("asb")
    form = c.get(f"/sharing/new?recording={world.rec['river']}")
    assert form.status_code == 200
    token = csrf_of(form.text)
    before = len(share_ops.list_shares(world.vault))
    bad = c.post("/sharing", data={"csrf_token": token, "recording": world.rec["river"],
                                  "email": "not-an-address", "expires": "2026-13-01",
                                  "access": "download", "max_downloads": "0"})
    assert bad.status_code == 400
    for text in ("Enter the name of the person", "email address", "their organisation",
                 "Say why they need", "lawful basis", "Expiry", "Download limit"):
        assert text in bad.text, text
    assert len(share_ops.list_shares(world.vault)) == before
    ok = c.post("/sharing", data={
        "csrf_token": token, "recording": world.rec["river"], "recipient": "DC Ana Lee",
        "email": "ana.lee@police.example.uk", "recipient_org": "Northshire Police",
        "purpose": "Identify the suspect", "lawful_basis": "DPA 2018 s.35",
        "expires": "2026-12-01", "access": "download", "max_downloads": "3"})
    assert ok.status_code == 200
    link = re.search(r'id="share-link"[^>]*value="([^"]+)"', ok.text)
    assert link and link.group(1).startswith(f"{BASE}/s/ev")
    share, _ids = share_ops.list_shares(world.vault, limit=1)[0]
    assert share.recipient == "DC Ana Lee <ana.lee@police.example.uk>"
    assert share.max_downloads == 3 and share.allow_download
    end_of_day = dt.datetime(2026, 12, 1, 23, 59, 59, tzinfo=dt.UTC)  # GMT in December
    assert share.expires_at.astimezone(dt.UTC) == end_of_day
    recipient = world.client()
    assert recipient.get(link.group(1).removeprefix(BASE)).status_code == 200


def test_share_link_uses_the_public_address_behind_a_proxy(world: World) -> None:
    """Issue #12 (second slice): behind a TLS proxy the link given out is
    ``web_public_url`` + ``/s/<token>`` (not the address the app was reached at), so the
    recipient gets a full link that works from outside."""
    settings = world.vault.settings.model_copy(
        update={"web_public_url": "https://vault.example.org/"})
    c = TestClient(create_app(settings, vault=world.vault), base_url=BASE)
    world.clients.append(c)
    world.sign_in(c, "asb")
    form = c.get(f"/sharing/new?recording={world.rec['river']}")
    ok = c.post("/sharing", data={
        "csrf_token": csrf_of(form.text), "recording": world.rec["river"],
        "recipient": "DC Ana Lee",
        "email": "ana.lee@police.example.uk", "recipient_org": "Northshire Police",
        "purpose": "Identify the suspect", "lawful_basis": "DPA 2018 s.35",
        "expires": "2026-12-01", "access": "view"})
    link = re.search(r'id="share-link"[^>]*value="([^"]+)"', ok.text)
    assert link and link.group(1).startswith("https://vault.example.org/s/evs_")
