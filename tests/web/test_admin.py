"""Issue #12 item 10: the administrator's pages, over HTTP and in real headless Chromium.

Over HTTP (``TestClient`` with an explicit clock): every change is confirmed before it is made,
is the CLI's custody event, and needs the session's CSRF token; non-administrators (of this
organisation or another) are refused every page and form, logged, with nothing changed. In
Chromium against a real ``serve``: the administrator adds a user, who signs in with the
temporary password and sets up an authenticator; resets another user's second factor (they
enrol again); issues an API token that works on the API, revokes it, and the API refuses it.
axe-core and the CSP on every page.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import Clock
from tests.web.conftest import (
    PASSWORD,
    SEGMENT,
    Checked,
    Served,
    csrf_of,
    run_serve,
    sign_in_client,
    sign_in_page,
)
from vault.access import credentials, identity
from vault.casework import sites
from vault.actors import Actor, Role
from vault.storage.catalog import MediaKind, Site, SourceKind
from vault.config import Settings
from vault.access.credentials import Credential
from vault.ledger.custody import Action
from vault.errors import NotFound
from vault.vault import Vault
from vault.capture import Capture

NORTH, EAST = "Northside Homes", "Eastgate Housing"
T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR)
BASE = "http://127.0.0.1"
USERS = (("admin", Role.ADMINISTRATOR, NORTH, []),
         ("asb", Role.ASB_OFFICER, NORTH, ["Riverside"]),
         ("ig", Role.IG_OFFICER, NORTH, []),
         ("ig_east", Role.IG_OFFICER, EAST, []))


def _enrol(vault: Vault, name: str, role: Role, org: str, assigned: list[str],
           at: dt.datetime) -> str:
    user = identity.create_user(vault, name=name, role=role, organisation=org, sites=assigned,
                                actor=OPERATOR)
    credentials.set_password(vault, name, PASSWORD, actor=OPERATOR)
    enrolment = credentials.begin_enrolment(vault, user.id, issuer="test")
    credentials.check_code(vault, user.id, pyotp.TOTP(enrolment.secret).at(at), enrolling=True)
    return enrolment.secret


@dataclass
class World:
    vault: Vault
    clock: Clock
    secrets: dict[str, str] = field(default_factory=dict)
    clients: list[TestClient] = field(default_factory=list)

    def anonymous(self) -> TestClient:
        c = TestClient(create_app(self.vault.settings, vault=self.vault), base_url=BASE)
        self.clients.append(c)
        return c

    def client(self, user: str, password: str = PASSWORD) -> TestClient:
        c = self.anonymous()
        self.clock.advance(seconds=31)  # a fresh TOTP step: codes are single-use
        sign_in_client(c, user, lambda: pyotp.TOTP(self.secrets[user]).at(self.clock.now),
                       password=password)
        return c

    def events(self, action: str = Action.USER_CHANGED.value) -> list[Any]:
        return [e.event for e in self.vault.ledger.events(action=action, limit=100_000)]

    def changes(self) -> list[str]:
        return [str(e.details.get("change")) for e in self.events()]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock(T0)
    vault = Vault.init(Settings(home=tmp_path / "home", segment_size=4096), clock=clock)
    w = World(vault=vault, clock=clock)
    for site, org in (("Riverside", NORTH), ("Eastgate", EAST)):
        sites.register_site(vault, site, organisation=org, actor=OPERATOR)
    for name, role, org, assigned in USERS:
        w.secrets[name] = _enrol(vault, name, role, org, assigned, clock.now)
    try:
        yield w
    finally:
        for c in w.clients:
            c.close()
        vault.close()


def _post(c: TestClient, path: str, data: dict[str, str], *, confirm: bool = True,
          token: str | None = None) -> Any:
    token = token or csrf_of(c.get("/account").text)
    body = {"csrf_token": token, **data, **({"confirm": "yes"} if confirm else {})}
    return c.post(path, data=body, follow_redirects=False)


def _secret_of(html: str) -> str:
    match = re.search(r'id="issued-secret" type="text" readonly value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def test_admin_adds_a_user_who_signs_in_and_enrols(world: World) -> None:
    """Issue #12 item 10: adding a user is asked again before it happens (nothing is created
    by the first POST); confirmed, it is the CLI's ``user_changed`` (``user_created``) event by
    the administrator, and a temporary password is shown once (only its hash kept); the new
    user signs in with it and is sent to set up an authenticator."""
    admin = world.client("admin")
    token = csrf_of(admin.get("/admin/users/new").text)
    form = {"name": "j.okafor", "role": "asb_officer", "organisation": NORTH,
            "sites": "Riverside\nElm Court"}
    asked = _post(admin, "/admin/users", form, confirm=False, token=token)
    assert asked.status_code == 200 and "Add j.okafor?" in asked.text
    assert "Riverside, Elm Court" in asked.text
    with pytest.raises(NotFound):
        identity.get_user(world.vault, "j.okafor")
    made = _post(admin, "/admin/users", {**form, "sites": "Riverside\nElm Court"},
                 token=csrf_of(asked.text))
    assert made.status_code == 200 and "j.okafor added" in made.text
    password = _secret_of(made.text)
    assert len(password) >= credentials.MIN_PASSWORD
    user = identity.get_user(world.vault, "j.okafor")
    assert user.role is Role.ASB_OFFICER and user.organisation == NORTH
    created = [e for e in world.events() if e.details.get("change") == "user_created"][-1]
    assert created.actor == "admin" and created.details["sites"] == ["Riverside", "Elm Court"]
    with world.vault.sessions() as session:
        row = session.get(Credential, user.id)
        assert row is not None and row.password_hash and password not in row.password_hash
    newcomer = world.anonymous()
    r = newcomer.post("/sign-in", data={"username": "j.okafor", "password": password,
                                        "csrf_token": csrf_of(newcomer.get("/sign-in").text)})
    assert str(r.url).endswith("/sign-in/enrol")
    secret = re.search(r'data-secret="([A-Z2-7]+)"', r.text)
    assert secret
    r = newcomer.post("/sign-in/enrol", data={
        "code": pyotp.TOTP(secret.group(1)).at(world.clock.now), "csrf_token": csrf_of(r.text)})
    assert str(r.url).endswith("/find")
    # A bad form is sent back with a message per field, nothing made.
    r = _post(admin, "/admin/users", {"name": "j.okafor", "role": "wizard", "organisation": ""},
              confirm=False)
    assert r.status_code == 400
    for text in ("There is already a user called j.okafor", "Choose what they do",
                 "Enter their organisation"):
        assert text in r.text


def test_role_sites_disable_password_and_second_factor_are_confirmed_custody_events(
        world: World) -> None:
    """Issue #12 item 10: changing a role or sites, disabling and enabling, a new password and
    a second-factor reset each ask first and change nothing until confirmed; each is the CLI's
    ``user_changed`` event by the administrator; a disabled user's session ends; a reset ends
    the user's sessions and forces enrolment at their next sign-in."""
    admin = world.client("admin")
    asb = world.client("asb")
    steps: list[tuple[str, dict[str, str], str]] = [
        ("/admin/users/asb/role", {"role": "police_liaison"}, "role_set"),
        ("/admin/users/asb/sites", {"sites": "Riverside\nOak Park"}, "sites_set"),
        ("/admin/users/asb/disable", {}, "disabled"),
        ("/admin/users/asb/enable", {}, "enabled"),
        ("/admin/users/asb/reset-2fa", {}, "second_factor_reset"),
        ("/admin/users/asb/password", {}, "password_set"),
    ]
    for path, data, change in steps:
        before = world.changes()
        asked = _post(admin, path, data, confirm=False)
        assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.text, path
        assert world.changes() == before, path  # asking changes nothing
        done = _post(admin, path, data)
        assert done.status_code in (200, 303), (path, done.text[:300])
        event = world.events()[-1]
        assert event.details["change"] == change and event.actor == "admin", path
        assert event.actor_role == "administrator"
        if change == "disabled":
            assert asb.get("/find", follow_redirects=False).status_code == 303  # signed out
    user = identity.get_user(world.vault, "asb")
    assert user.role is Role.POLICE_LIAISON and user.active
    assert identity.principal_for(world.vault, "asb").sites == {"Riverside", "Oak Park"}
    with world.vault.sessions() as session:
        row = session.get(Credential, user.id)
        assert row is not None and not row.has_second_factor
    # The new password was shown once; with it, the next sign-in sets up a new authenticator.
    password = _secret_of(done.text)
    fresh = world.anonymous()
    r = fresh.post("/sign-in", data={"username": "asb", "password": password,
                                     "csrf_token": csrf_of(fresh.get("/sign-in").text)})
    assert str(r.url).endswith("/sign-in/enrol")


def test_tokens_are_issued_once_and_a_revoked_token_fails_on_the_api(world: World) -> None:
    """Issue #12 item 10: an API token issued from the user's page is shown once and works on
    the API; revoking it on the tokens page (confirmed) is ``token_revoked``, and the API
    refuses it from the next request (401, an ``access_denied`` event naming the token)."""
    admin = world.client("admin")
    issued = _post(admin, "/admin/users/ig/tokens", {"label": "Riverside dock", "days": "7"})
    assert issued.status_code == 200
    token = _secret_of(issued.text)
    assert token.startswith(identity.TOKEN_PREFIX)
    api = world.anonymous()
    me = api.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["name"] == "ig"
    listing = admin.get("/admin/tokens")
    assert "Riverside dock" in listing.text and token not in listing.text
    token_id = identity.list_tokens(world.vault, "ig")[0][0].id
    asked = _post(admin, f"/admin/tokens/{token_id}/revoke", {}, confirm=False)
    assert "Revoke this API token?" in asked.text
    assert api.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert _post(admin, f"/admin/tokens/{token_id}/revoke", {}).status_code == 303
    assert world.events()[-1].details == {"change": "token_revoked", "token_id": token_id}
    refused = api.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    denial = world.events(Action.ACCESS_DENIED.value)[-1]
    assert denial.details["token_id"] == token_id
    assert "Revoked" in admin.get("/admin/tokens").text


def test_sites_and_organisations(world: World) -> None:
    """Issue #12 item 10: the sites page lists each organisation (users, sites) and site, warns
    of cameras no organisation owns; registering a site is confirmed and is the CLI's
    ``site.registered`` event, adopting the unowned cameras there."""
    world.vault.put_stream(
        io.BytesIO(b"elm" * 100),
        Capture(
            source_id="cam-elm-1",
            source_kind=SourceKind.CCTV,
            site="Elm Court",
            captured_at=T0 - dt.timedelta(hours=1),
            media_kind=MediaKind.VIDEO,
        ),
        actor=OPERATOR,
    )
    admin = world.client("admin")
    page = admin.get("/admin/sites")
    assert page.status_code == 200
    for text in (NORTH, EAST, "Riverside", "cam-elm-1"):
        assert text in page.text
    asked = _post(admin, "/admin/sites", {"site": "Elm Court", "organisation": EAST},
                  confirm=False)
    assert "Register Elm Court?" in asked.text and "cam-elm-1" in asked.text
    with world.vault.sessions() as session:
        assert session.get(Site, "Elm Court") is None
    assert _post(admin, "/admin/sites", {"site": "Elm Court", "organisation": EAST}).status_code == 303
    registered = world.events(sites.REGISTERED)[-1]
    assert registered.actor == "admin" and registered.details["sources"] == ["cam-elm-1"]
    # Footage does not move between organisations by registering again.
    again = _post(admin, "/admin/sites", {"site": "Elm Court", "organisation": NORTH})
    assert again.status_code == 400 and "registered to" in again.text


def test_an_administrator_cannot_lock_themselves_out(world: World) -> None:
    """Issue #12 item 10: an administrator may not disable themselves or take away their own
    administrator role (nobody could undo it from the browser; their own page offers no
    "Disable"), nothing changes; another user's page offers it."""
    admin = world.client("admin")
    assert 'id="disable-user"' in admin.get("/admin/users/asb").text
    assert 'id="disable-user"' not in admin.get("/admin/users/admin").text
    before = world.changes()
    assert _post(admin, "/admin/users/admin/disable", {}).status_code == 400
    assert _post(admin, "/admin/users/admin/role", {"role": "auditor"}).status_code == 400
    assert world.changes() == before
    assert identity.get_user(world.vault, "admin").role is Role.ADMINISTRATOR


ADMIN_FORMS: list[tuple[str, dict[str, str]]] = [
    ("/admin/users", {"name": "intruder", "role": "administrator", "organisation": NORTH}),
    ("/admin/users/asb/role", {"role": "administrator"}),
    ("/admin/users/asb/sites", {"sites": "Eastgate"}),
    ("/admin/users/asb/disable", {}),
    ("/admin/users/asb/password", {}),
    ("/admin/users/asb/reset-2fa", {}),
    ("/admin/users/asb/tokens", {"days": "30"}),
    ("/admin/tokens/{token}/revoke", {}),
    ("/admin/sites", {"site": "Elm Court", "organisation": EAST}),
]
ADMIN_PAGES = ["/admin", "/admin/users", "/admin/users/new", "/admin/users/asb",
               "/admin/tokens", "/admin/sites"]


def _state(world: World) -> tuple[Any, ...]:
    users = tuple((u.name, u.role, u.active, tuple(s)) for u, s in identity.list_users(world.vault))
    tokens = tuple((t.id, t.revoked_at) for t, _ in identity.list_tokens(world.vault))
    with world.vault.sessions() as session:
        creds = tuple((c.user_id, c.password_hash, c.totp_sealed) for c in
                      session.query(Credential).order_by(Credential.user_id))
        registered = tuple(s.name for s in session.query(Site).order_by(Site.name))
    return users, tokens, creds, registered


def test_every_admin_form_refuses_a_missing_csrf_token(world: World) -> None:
    """Issue #12 item 10: each administration form, confirmed but without its CSRF token, is
    refused (403), logged as ``access_denied`` with the route, and changes nothing."""
    token_id = identity.issue_token(world.vault, "ig", actor=OPERATOR).token_id
    admin = world.client("admin")
    before, denied = _state(world), len(world.events(Action.ACCESS_DENIED.value))
    for path, data in ADMIN_FORMS:
        r = admin.post(path.format(token=token_id), data={**data, "confirm": "yes"},
                       follow_redirects=False)
        assert r.status_code == 403, path
    assert _state(world) == before
    denials = world.events(Action.ACCESS_DENIED.value)[denied:]
    assert len(denials) == len(ADMIN_FORMS)
    assert all(d.details["reason"].startswith("csrf:") for d in denials)


def test_non_administrators_of_any_organisation_are_refused(world: World) -> None:
    """Issue #12 item 10: an ASB officer and an IG officer of this organisation and an IG
    officer of another see no Administration link and are refused every administration page
    and every confirmed form (403, each an ``access_denied`` event naming the permission);
    nothing changes."""
    token_id = identity.issue_token(world.vault, "ig", actor=OPERATOR).token_id
    before, denied = _state(world), len(world.events(Action.ACCESS_DENIED.value))
    for user in ("asb", "ig", "ig_east"):
        c = world.client(user)
        assert 'href="/admin"' not in c.get("/find").text
        for path in ADMIN_PAGES:
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 403 and "j.okafor" not in r.text, (user, path)
        for path, data in ADMIN_FORMS:
            r = _post(c, path.format(token=token_id), data)
            assert r.status_code == 403, (user, path)
    assert _state(world) == before
    denials = world.events(Action.ACCESS_DENIED.value)[denied:]
    assert len(denials) == 3 * (len(ADMIN_PAGES) + len(ADMIN_FORMS))
    assert {d.details["permission"] for d in denials} == {"users.manage", "sites.manage"}
    assert 'href="/admin"' in world.client("admin").get("/find").text


# --- in Chromium ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("admin")
    home = tmp / "home"
    settings = Settings(home=home, segment_size=SEGMENT)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    secrets: dict[str, str] = {}
    with Vault.init(settings, clock=lambda: past) as vault:
        sites.register_site(vault, "Riverside", organisation=NORTH, actor=OPERATOR)
        for name, role, org, assigned in USERS[:3]:
            secrets[name] = _enrol(vault, name, role, org, assigned, past)
    with run_serve(home) as url:
        yield Served(url=url, home=home, settings=settings, secrets=secrets)



def _api_me(served: Served, token: str) -> int:
    request = urllib.request.Request(served.url + "/me",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["name"] == "ig"
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


@pytest.mark.slow
def test_admin_adds_a_user_resets_a_second_factor_and_revokes_a_token(
        contexts: Callable[..., Any], served: Served) -> None:
    """Issue #12 item 10 in Chromium: the administrator adds an ASB officer (confirmed), who
    signs in with the temporary password in a fresh browser and sets up an authenticator;
    resets the ASB officer's second factor (confirmed), after which their sign-in asks them to
    set up a new one; issues an API token that works on the API, revokes it (confirmed), and
    the API refuses it. axe-core and CSP on every page."""
    admin = Checked(contexts(), served)
    page = admin.page
    sign_in_page(page, served.url, "admin")
    page.wait_for_url("**/sign-in/code**")
    page.fill("#code", served.code("admin"))
    page.click("main button[type=submit]")
    page.wait_for_url("**/find")
    page.click("text=Administration")
    page.wait_for_url("**/admin/users")
    admin.audit("23-admin-users")
    page.click("#add-user")
    page.fill("#name", "j.okafor")
    page.select_option("#role", "asb_officer")
    page.fill("#organisation", NORTH)
    page.fill("#sites", "Riverside")
    admin.audit("24-admin-user-new")
    page.click("main form button[type=submit]")
    page.wait_for_selector("#confirm")
    assert "Add j.okafor?" in page.inner_text("h1")
    admin.audit("25-admin-confirm")
    page.click("#confirm")
    page.wait_for_selector("#issued-secret")
    password = page.input_value("#issued-secret")
    admin.audit("26-admin-password-shown-once")

    newcomer = Checked(contexts(), served)
    np = newcomer.page
    sign_in_page(np, served.url, "j.okafor", password=password)
    np.wait_for_url("**/sign-in/enrol")
    secret = np.get_attribute("#totp-secret", "data-secret")
    assert secret
    np.fill("#code", pyotp.TOTP(secret).now())
    np.click("main button[type=submit]")
    np.wait_for_url("**/find")
    newcomer.audit("27-new-user-signed-in")

    # --- second-factor reset: the ASB officer enrols again at their next sign-in -----------
    page.goto(served.url + "/admin/users/asb")
    admin.audit("28-admin-user")
    page.click("#reset-2fa")
    page.wait_for_selector("#confirm")
    page.click("#confirm")
    page.wait_for_url("**/admin/users/asb?done=reset-2fa")
    assert "Not set up" in page.inner_text("#second-factor")
    officer = Checked(contexts(), served)
    sign_in_page(officer.page, served.url, "asb")
    officer.page.wait_for_url("**/sign-in/enrol")

    # --- a token: issued once, works, revoked, refused ----------------------------------------
    page.goto(served.url + "/admin/users/ig")
    page.fill("#token-label", "Riverside dock")
    page.fill("#token-days", "7")
    page.click("#issue-token")
    page.wait_for_selector("#confirm")
    page.click("#confirm")
    page.wait_for_selector("#issued-secret")
    token = page.input_value("#issued-secret")
    assert _api_me(served, token) == 200
    page.goto(served.url + "/admin/tokens")
    admin.audit("29-admin-tokens")
    page.click("#tokens tbody tr button[type=submit]")
    page.wait_for_selector("#confirm")
    page.click("#confirm")
    page.wait_for_url("**/admin/tokens?done=revoked")
    assert "Revoked" in page.inner_text("#tokens")
    assert _api_me(served, token) == 401
    page.goto(served.url + "/admin/sites")
    admin.audit("30-admin-sites")
