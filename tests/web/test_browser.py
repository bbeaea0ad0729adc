"""Issue #12 journeys in real headless Chromium against a real ``serve`` on loopback.

Each page is checked with axe-core (no serious or critical violation) and by the browser's own
Content-Security-Policy enforcement (no violation reported), and no request leaves loopback.
With ``EVIDENCE_VAULT_SCREENSHOTS`` set to a folder, each page is photographed into it
(``scripts/screenshots.py`` does this for docs/screenshots/).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.conftest import Checked, Served
from vault.ledger.custody import Action

pytestmark = pytest.mark.slow



@pytest.fixture
def context(browser: Any, axe_source: str) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 800}, locale="en-GB")
    # Injected by the DevTools protocol, not as a <script>: the page's CSP stays intact.
    ctx.add_init_script(script=axe_source)
    try:
        yield ctx
    finally:
        ctx.close()


def _session_cookie(page: Any) -> dict[str, Any]:
    found = [c for c in page.context.cookies() if c["name"] == "ev_session"]
    assert len(found) == 1, found
    return dict(found[0])


def _sign_in(checked: Checked, served: Served, user: str, *, shots: bool = False) -> tuple[str, str]:
    """Sign in through the pages from ``/``; returns the session cookie after the password and
    after the code."""
    seen: list[str] = []

    def step(name: str) -> None:
        if name == "code":
            seen.append(_session_cookie(checked.page)["value"])
        if shots:
            checked.audit({"sign-in": "01-sign-in", "code": "02-security-code"}[name])

    served.sign_in(checked.page, user, start="/", at_step=step)
    return seen[0], _session_cookie(checked.page)["value"]


def test_asb_officer_signs_in_finds_a_window_and_the_video_plays_and_seeks(
    context: Any, served: Served
) -> None:
    """Issue #12: an ASB officer signs in with password + TOTP, finds a window typed in UK
    time, states the task's purpose once, and the recording plays (currentTime advances,
    videoWidth > 0) and seeks, through the decrypting Range path, logged with that purpose."""
    checked = Checked(context, served)
    page = checked.page
    pending, signed_in = _sign_in(checked, served, "asb", shots=True)
    assert pending != signed_in  # a new session id at sign-in (no fixation)
    cookie = _session_cookie(page)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert cookie["expires"] == -1  # a browser-session cookie; the server times it out
    assert page.evaluate("document.cookie") == ""  # no script can read it
    checked.audit("03-find")

    page.select_option("#site", "Riverside")
    page.fill("#day", served.day)
    page.fill("#from", "14:00")
    page.fill("#to", "15:00")
    page.click("main form button[type=submit]")
    page.wait_for_selector("#results")
    rows = page.locator("#results tbody tr")
    assert rows.count() == 1
    assert "cam-river-1" in rows.first.inner_text()
    assert "cam-oak-1" not in page.content()
    checked.audit("04-find-results")

    page.click("#results a")
    page.wait_for_url("**/purpose**")
    checked.audit("05-purpose")
    page.fill("#reference", "ASB/2026/0142")
    page.fill("#purpose", "Identify who damaged the stairwell door")
    page.fill("#lawful_basis", "Anti-social Behaviour, Crime and Policing Act 2014")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"**/watch/{served.recordings['river']}")

    video = page.locator("#player")
    page.evaluate("() => { const v = document.getElementById('player'); v.muted = true; "
                  "return v.play(); }")
    page.wait_for_function(
        "() => { const v = document.getElementById('player'); "
        "return v.videoWidth > 0 && v.currentTime > 0.5; }", timeout=20_000)
    assert video.evaluate("v => v.videoWidth") == 320
    page.evaluate("() => { const v = document.getElementById('player'); v.pause(); "
                  "v.currentTime = 4.2; }")
    page.wait_for_function(
        "() => { const v = document.getElementById('player'); "
        "return !v.seeking && v.currentTime >= 4.0 && v.readyState >= 2; }", timeout=20_000)
    # The UK wall-clock time of the frame on screen, frame steps and speed (player.js).
    page.wait_for_function("() => /14:30:0[3-5]/.test("
                           "document.getElementById('player-clock').textContent)")
    assert served.zone in page.inner_text("#player-clock")
    page.focus("#frame-forward")
    before = video.evaluate("v => v.currentTime")
    page.keyboard.press("Enter")  # by keyboard alone
    page.wait_for_function(f"() => Math.abs(document.getElementById('player').currentTime - "
                           f"{before} - 0.04) < 0.005")
    page.select_option("#speed", "2")
    assert video.evaluate("v => v.playbackRate") == 2
    checked.audit("06-watch")

    media = [r for r in checked.responses if "/media" in r.url]
    assert media and all(r.status in (200, 206) for r in media)
    assert all("no-store" in r.headers.get("cache-control", "") for r in media)
    with served.open_vault() as vault:
        streamed = [e for e in vault.ledger.events(action=Action.STREAMED.value, limit=10_000)
                    if served.recordings["river"] in e.event.object_ids]
    assert streamed, "no streamed event"
    assert all(e.event.actor == "asb" and e.event.reference == "ASB/2026/0142" for e in streamed)

    page.click("text=Sign out")
    page.wait_for_url("**/sign-in?signed_out=true")
    assert page.get_by_text("You have signed out").is_visible()
    page.goto(served.url + f"/watch/{served.recordings['river']}")
    assert "/sign-in" in page.url  # the old session is gone


def test_first_sign_in_sets_up_the_authenticator(context: Any, served: Served) -> None:
    """Issue #12: a user with a password but no second factor enrols one at first sign-in:
    the key is shown, a code from it proves it, and they are signed in."""
    import pyotp

    checked = Checked(context, served)
    page = checked.page
    served.sign_in(page, "newcomer", code=False)
    page.wait_for_url("**/sign-in/enrol")
    checked.audit("07-set-up-authenticator")
    secret = page.get_attribute("#totp-secret", "data-secret")
    assert secret
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    page.wait_for_url("**/find")
    page.goto(served.url + "/account")
    checked.audit("08-account")


def test_pages_refuse_a_form_without_its_csrf_token_in_the_browser(
    context: Any, served: Served
) -> None:
    """Issue #12: a form whose CSRF token was removed is refused (403) and nothing changes."""
    checked = Checked(context, served)
    page = checked.page
    _sign_in(checked, served, "asb_oak")
    page.goto(served.url + "/purpose")
    page.evaluate("() => document.querySelectorAll('input[name=csrf_token]')"
                  ".forEach(e => e.remove())")
    page.fill("#reference", "ASB/9")
    page.fill("#purpose", "p")
    page.fill("#lawful_basis", "b")
    with page.expect_response(lambda r: r.url.endswith("/purpose")) as answer:
        page.click("main form button[type=submit]")
    assert answer.value.status == 403
    page.goto(served.url + "/purpose")
    assert "ASB/9" not in page.content()
    checked.problems.clear()  # the 403 itself is reported on the console
