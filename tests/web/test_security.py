"""Issue #12: the web app's sign-in, sessions, CSRF, headers and need-to-know, over HTTP.

In-process (``TestClient``) with an explicit clock, so timeouts are tested by moving it; the
browser tests (test_browser.py) check the same defences as Chromium enforces them.
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
from api.web._security import CSP
from tests.api.conftest import Clock
from tests.web.conftest import PASSWORD, csrf_of, sign_in_client, state_purpose
from vault.access import credentials, identity, web_sessions
from vault.actors import Actor, Role
from vault.config import Settings
from vault.ledger.custody import Action
from vault.vault import Vault
from tests.captures import cctv_video

ORG = "Northside Homes"
T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)  # 15:00 GMT
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation=ORG)
BASE = "http://127.0.0.1"


@dataclass
class Web:
    vault: Vault
    clock: Clock
    secrets: dict[str, str] = field(default_factory=dict)
    rec: dict[str, str] = field(default_factory=dict)
    clients: list[TestClient] = field(default_factory=list)

    def client(self) -> TestClient:
        c = TestClient(create_app(self.vault.settings, vault=self.vault), base_url=BASE)
        self.clients.append(c)
        return c

    def code(self, user: str) -> str:
        return pyotp.TOTP(self.secrets[user]).at(self.clock.now)

    def sign_in(self, client: TestClient, user: str) -> str:
        """Sign in through the forms; returns the session cookie."""
        self.clock.advance(seconds=31)  # a fresh TOTP step: codes are single-use
        sign_in_client(client, user, lambda: self.code(user))
        return str(client.cookies["ev_session"])

    def state_purpose(self, client: TestClient, reference: str = "ASB/1") -> None:
        state_purpose(client, reference)

    def events(self, action: str) -> list[object]:
        return [e.event for e in self.vault.ledger.events(action=action, limit=100_000)]


def _world(tmp_path: Path, settings: Settings | None = None) -> Web:
    clock = Clock(T0)
    vault = Vault.init(settings or Settings(home=tmp_path / "home", segment_size=4096), clock=clock)
    web = Web(vault=vault, clock=clock)
    for name, site in (("asb", "Riverside"), ("asb_oak", "Oak Park")):
        user = identity.create_user(vault, name=name, role=Role.ASB_OFFICER, organisation=ORG,
                                    sites=[site], actor=OPERATOR)
        credentials.set_password(vault, name, PASSWORD, actor=OPERATOR)
        enrolment = credentials.begin_enrolment(vault, user.id, issuer="test")
        credentials.check_code(vault, user.id, pyotp.TOTP(enrolment.secret).at(clock.now),
                               enrolling=True)
        web.secrets[name] = enrolment.secret
    for key, source, site in (("river", "cam-river-1", "Riverside"), ("oak", "cam-oak-1", "Oak Park")):
        web.rec[key] = vault.put_stream(
            io.BytesIO(bytes(range(256)) * 40),
            cctv_video(source, site, T0 - dt.timedelta(hours=1), dt.timedelta(minutes=10),
                       name=f"{source}.mp4"),
            actor=OPERATOR,
        ).id
    return web


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = _world(tmp_path)
    try:
        yield w
    finally:
        for c in w.clients:
            c.close()
        w.vault.close()


FIND = "/find?day=2026-11-25&from=13:00&to=15:00"


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(web: Web) -> None:
    """Issue #12: every form needs its CSRF token: without it (or with a wrong one, or sent
    from another site) the sign-in, purpose and sign-out forms answer 403 and nothing changes."""
    c = web.client()
    c.get("/sign-in")
    for data in ({}, {"csrf_token": "forged"}):
        r = c.post("/sign-in", data={"username": "asb", "password": PASSWORD, **data})
        assert r.status_code == 403
        assert "ev_session" not in c.cookies
    web.sign_in(c, "asb")
    token = csrf_of(c.get("/purpose").text)
    denied = len(web.events(Action.ACCESS_DENIED.value))
    r = c.post("/purpose", data={"purpose": "p", "reference": "ASB/7", "lawful_basis": "b"})
    assert r.status_code == 403
    r = c.post("/purpose", data={"purpose": "p", "reference": "ASB/7", "lawful_basis": "b",
                                 "csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert "ASB/7" not in c.get("/purpose").text
    assert len(web.events(Action.ACCESS_DENIED.value)) == denied + 2  # each refusal logged
    r = c.post("/sign-out", data={})
    assert r.status_code == 403
    assert c.get("/find", follow_redirects=False).status_code == 200  # still signed in


def test_session_cookie_flags(web: Web, tmp_path: Path) -> None:
    """Issue #12: the session cookie is HttpOnly, SameSite=Lax, Path=/, and Secure with a
    ``__Host-`` name when web_cookie_secure is set (behind TLS)."""
    c = web.client()
    page = c.get("/sign-in")
    r = c.post("/sign-in", data={"username": "asb", "password": PASSWORD,
                                 "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("ev_session=evs_")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie and "Max-Age" not in cookie and "Domain" not in cookie

    secure = Settings(home=tmp_path / "home", web_cookie_secure=True)
    app = create_app(secure, vault=web.vault)
    with TestClient(app, base_url="https://127.0.0.1") as sc:
        page = sc.get("/sign-in")
        assert "__Host-ev_csrf=" in page.headers["set-cookie"]
        r = sc.post("/sign-in", data={"username": "asb", "password": PASSWORD,
                                      "csrf_token": csrf_of(page.text)}, follow_redirects=False)
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("__Host-ev_session=evs_")
        assert "Secure" in cookie and "HttpOnly" in cookie


def test_the_session_id_changes_at_sign_in_and_a_planted_one_is_worthless(web: Web) -> None:
    """Issue #12 (session fixation): a session token set before sign-in, by anyone, is never
    the one the signed-in session uses; each sign-in step issues a new token and ends the
    previous one."""
    c = web.client()
    c.cookies.set("ev_session", "evs_" + "A" * 43, domain="127.0.0.1")  # planted by an attacker
    page = c.get("/sign-in")
    r = c.post("/sign-in", data={"username": "asb", "password": PASSWORD,
                                 "csrf_token": csrf_of(page.text)})
    pending = str(c.cookies["ev_session"])
    assert pending != "evs_" + "A" * 43
    web.clock.advance(seconds=31)
    r = c.post("/sign-in/code", data={"code": web.code("asb"), "csrf_token": csrf_of(r.text)})
    assert str(r.url).endswith("/find")
    signed_in = str(c.cookies["ev_session"])
    assert signed_in not in (pending, "evs_" + "A" * 43)
    idle = dt.timedelta(minutes=30)
    assert web_sessions.find_session(web.vault, pending, idle=idle) is None
    active = web_sessions.find_session(web.vault, signed_in, idle=idle)
    assert active is not None and active.stage is web_sessions.Stage.SIGNED_IN
    # A half-signed-in session opens no page.
    other = web.client()
    other.cookies.set("ev_session", pending, domain="127.0.0.1")
    assert "/sign-in" in str(other.get("/find").url)


def test_a_user_of_another_site_sees_nothing_of_it(web: Web) -> None:
    """Issue #12: an ASB officer of Oak Park sees nothing of Riverside on any page: not its
    site or camera in the search form, not its recording in results, and the watch page and
    the stream are refused (403, logged) whether or not they know the id."""
    c = web.client()
    web.sign_in(c, "asb_oak")
    web.state_purpose(c)
    page = c.get(FIND)
    assert page.status_code == 200
    assert "cam-oak-1" in page.text
    assert "Riverside" not in page.text and "cam-river-1" not in page.text
    assert web.rec["river"] not in page.text
    denied = len(web.events(Action.ACCESS_DENIED.value))
    r = c.get(f"/watch/{web.rec['river']}")
    assert r.status_code == 403 and "cam-river-1" not in r.text
    r = c.get(f"/watch/{web.rec['river']}/media", headers={"Range": "bytes=0-10"})
    assert r.status_code == 403
    r = c.get(FIND + "&site=Riverside")
    assert "cam-river-1" not in r.text and "No recordings" in r.text
    assert len(web.events(Action.ACCESS_DENIED.value)) == denied + 2


def test_pages_have_a_strict_csp_no_inline_script_or_style_and_are_not_cached(web: Web) -> None:
    """Issue #12: every page carries a Content-Security-Policy with no 'unsafe-inline', has no
    inline script, event handler or style attribute, and is ``Cache-Control: no-store``; so is
    the footage stream."""
    assert "unsafe" not in CSP and "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    c = web.client()
    pages = ["/sign-in"]
    web.sign_in(c, "asb")
    web.state_purpose(c)
    pages += ["/find", FIND, "/purpose", "/account", f"/watch/{web.rec['river']}",
              f"/watch/{web.rec['oak']}"]
    for path in pages:
        r = c.get(path)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["cache-control"] == "no-store", path
        assert r.headers["x-frame-options"] == "DENY"
        html = r.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert not re.search(r"\sstyle=", html) and "<style" not in html, path
        assert "javascript:" not in html, path
    media = c.get(f"/watch/{web.rec['river']}/media", headers={"Range": "bytes=0-99"})
    assert media.status_code == 206 and "no-store" in media.headers["cache-control"]


def test_idle_and_absolute_timeouts_end_the_session(web: Web) -> None:
    """Issue #12: a session ends after web_session_idle_minutes without a request, and
    web_session_absolute_hours after sign-in however active it is."""
    c = web.client()
    web.sign_in(c, "asb")
    web.clock.advance(minutes=29)
    assert c.get("/find", follow_redirects=False).status_code == 200
    web.clock.advance(minutes=31)
    assert c.get("/find", follow_redirects=False).status_code == 303
    web.sign_in(c, "asb")
    signed_in = web.clock.now
    for _ in range(10 * 3 + 1):  # active every 20 minutes for 10 hours
        web.clock.advance(minutes=20)
        r = c.get("/find", follow_redirects=False)
        if r.status_code == 303:
            break
    assert r.status_code == 303 and "/sign-in" in r.headers["location"]
    lasted = web.clock.now - signed_in
    assert dt.timedelta(hours=9, minutes=40) < lasted <= dt.timedelta(hours=10)


def test_sign_out_and_sign_out_everywhere(web: Web) -> None:
    """Issue #12: signing out ends this browser's session; signing out everywhere ends every
    session of the user; both are custody events."""
    a, b, c = web.client(), web.client(), web.client()
    for client in (a, b, c):
        web.sign_in(client, "asb")
    r = a.post("/sign-out", data={"csrf_token": csrf_of(a.get("/account").text)})
    assert "signed_out=true" in str(r.url)
    assert "/sign-in" in str(a.get("/find").url)
    assert str(b.get("/find").url).endswith("/find")
    r = b.post("/sign-out", data={"csrf_token": csrf_of(b.get("/account").text),
                                  "everywhere": "true"})
    assert "/sign-in" in str(c.get("/find").url)
    outs = web.events("web.signed_out")
    assert [e.details["everywhere"] for e in outs] == [False, True]  # type: ignore[attr-defined]
    assert outs[1].details["sessions_ended"] == 2  # type: ignore[attr-defined]


def test_every_sign_in_and_failure_is_a_custody_event(web: Web) -> None:
    """Issue #12: a sign-in is ``web.signed_in``; a wrong password, a wrong code and an
    unknown user are each ``access_denied`` naming why (never the password)."""
    c = web.client()
    page = c.get("/sign-in")
    token = csrf_of(page.text)
    for user, password in (("asb", "not the password"), ("nobody", PASSWORD)):
        r = c.post("/sign-in", data={"username": user, "password": password, "csrf_token": token})
        assert r.status_code == 401 and "wrong user name or password" in r.text
    r = c.post("/sign-in", data={"username": "asb", "password": PASSWORD, "csrf_token": token})
    r = c.post("/sign-in/code", data={"code": "000000", "csrf_token": csrf_of(r.text)})
    assert r.status_code == 401
    reasons = [e.details["reason"] for e in web.events(Action.ACCESS_DENIED.value)]  # type: ignore[attr-defined]
    assert reasons[-3:] == ["sign-in: wrong-password", "sign-in: unknown-user", "sign-in: wrong-code"]
    web.sign_in(c, "asb")
    ins = web.events("web.signed_in")
    assert len(ins) == 1 and ins[0].actor == "asb"  # type: ignore[attr-defined]
    assert PASSWORD not in str([e.details for e in web.events(Action.ACCESS_DENIED.value)])  # type: ignore[attr-defined]


def test_after_sign_in_the_browser_stays_on_this_site(web: Web) -> None:
    """Issue #12: ``next`` after sign-in is a path on this site only: ``//evil.example`` or
    ``https://evil.example`` sends the officer to the search page instead (no open redirect)."""
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        c = web.client()
        page = c.get("/sign-in", params={"next": target})
        assert target not in page.text
        web.clock.advance(seconds=31)
        r = c.post("/sign-in", data={"username": "asb", "password": PASSWORD, "next": target,
                                     "csrf_token": csrf_of(page.text)})
        r = c.post("/sign-in/code", data={"code": web.code("asb"), "next": target,
                                          "csrf_token": csrf_of(r.text)})
        assert str(r.url) == f"{BASE}/find"


def test_footage_needs_a_signed_in_session_and_a_stated_purpose(web: Web) -> None:
    """Issue #12: the stream is refused without a session (401) and until a purpose is stated
    (the watch page asks for it first); once stated, each stream is a ``streamed`` event with
    that purpose, reference and lawful basis, as the API logs it."""
    anonymous = web.client()
    assert anonymous.get(f"/watch/{web.rec['river']}/media").status_code == 401
    c = web.client()
    web.sign_in(c, "asb")
    r = c.get(f"/watch/{web.rec['river']}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/purpose?next=/watch/")
    assert c.get(f"/watch/{web.rec['river']}/media").status_code == 403
    web.state_purpose(c, "ASB/42")
    r = c.get(f"/watch/{web.rec['river']}/media", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == (bytes(range(256)) * 40)[100:200]
    streamed = web.events(Action.STREAMED.value)[-1]
    assert streamed.reference == "ASB/42" and streamed.purpose == "p"  # type: ignore[attr-defined]
    assert streamed.lawful_basis == "b" and streamed.details["via"] == "web"  # type: ignore[attr-defined]


def test_find_pages_through_results_in_uk_time(web: Web) -> None:
    """Issue #12: results come 25 a page with Next and First page links, and times are shown and
    read in UK local time (GMT here)."""
    for i in range(28):
        web.vault.put_stream(
            io.BytesIO(b"clip %d" % i),
            cctv_video("cam-river-1", "Riverside", T0 - dt.timedelta(minutes=40 - i),
                       dt.timedelta(minutes=1)),
            actor=OPERATOR,
        )
    c = web.client()
    web.sign_in(c, "asb")
    first = c.get(FIND + "&site=Riverside")
    assert first.text.count('href="/watch/') == 25
    assert 'rel="next"' in first.text and 'rel="first"' not in first.text
    assert "GMT" in first.text
    [next_link] = re.findall(r'href="(/find\?[^"]+)" rel="next"', first.text)
    second = c.get(next_link.replace("&amp;", "&"))  # keyset: the link carries after=<cursor>
    assert second.text.count('href="/watch/') == 4  # 29 in all, the first recording included
    assert 'rel="first"' in second.text and 'rel="next"' not in second.text
    searched = web.events(Action.SEARCHED.value)[-1]
    assert searched.details["criteria"]["since"] == "2026-11-25T13:00:00+00:00"  # type: ignore[attr-defined]


def test_a_time_the_clocks_skip_is_refused_with_a_clear_message(web: Web) -> None:
    """Issue #12: 01:30 on the day the clocks go forward does not exist in UK time: the search
    says so instead of quietly moving the window an hour."""
    c = web.client()
    web.sign_in(c, "asb")
    r = c.get("/find?day=2026-03-29&from=01:30&to=03:00")
    assert r.status_code == 400
    assert "does not exist in UK time" in r.text


def test_sign_in_guesses_from_one_address_are_summed_not_flooded(tmp_path: Path) -> None:
    """Issue #12: refused sign-ins that name no known user pass through the API's denial
    throttle: beyond denial_burst per address and window they are counted, not logged one by
    one, so a script guessing names cannot flood the custody ledger; a known user's failures
    are always logged, under their name."""
    w = _world(tmp_path, Settings(home=tmp_path / "home", denial_burst=3))
    try:
        c = w.client()
        token = csrf_of(c.get("/sign-in").text)
        before = len(w.events(Action.ACCESS_DENIED.value))
        for i in range(10):
            r = c.post("/sign-in", data={"username": f"guess{i}", "password": PASSWORD,
                                         "csrf_token": token})
            assert r.status_code == 401
        assert len(w.events(Action.ACCESS_DENIED.value)) == before + 3
        r = c.post("/sign-in", data={"username": "asb", "password": "not the password",
                                     "csrf_token": token})
        last = w.events(Action.ACCESS_DENIED.value)[-1]
        assert last.actor == "asb" and last.details["reason"] == "sign-in: wrong-password"  # type: ignore[attr-defined]
        assert "guess" not in str([e.details for e in w.events(Action.ACCESS_DENIED.value)])  # type: ignore[attr-defined]
    finally:
        for c in w.clients:
            c.close()
        w.vault.close()


def test_a_malformed_recording_id_is_a_not_found_page_and_writes_nothing(web: Web) -> None:
    """Issue #12: a watch address whose id is not a UUID answers a 404 page before any policy
    check, so nobody can write text of their choosing into the custody log through the URL."""
    c = web.client()
    web.sign_in(c, "asb")
    before = web.vault.ledger.events(limit=1_000_000)
    for path in ("/watch/<script>alert(1)<script>", "/watch/" + "x" * 300 + "/media"):
        r = c.get(path)
        assert r.status_code == 404 and "There is no page at this address" in r.text
        assert r.headers["content-security-policy"] == CSP and "<script>alert" not in r.text
    assert len(web.vault.ledger.events(limit=1_000_000)) == len(before)


def test_the_api_is_unchanged_and_a_session_cookie_does_not_open_it(web: Web) -> None:
    """Issue #12: the API's routes answer as before beside the web app, and only to a bearer
    token: the browser's session cookie does not authorise them, so no other site can make a
    signed-in browser call the JSON API (which has no CSRF tokens)."""
    c = web.client()
    web.sign_in(c, "asb")
    for path in ("/recordings", f"/recordings/{web.rec['river']}", "/me"):
        r = c.get(path)
        assert r.status_code == 401 and r.json()["error"] == "unauthenticated", path
    assert c.get("/healthz").status_code == 200
    assert c.get("/openapi.json").json()["paths"].keys().isdisjoint(
        {"/", "/find", "/sign-in", "/watch/{recording_id}"})
