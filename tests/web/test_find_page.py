"""Issue #12 items 3-4 and issue #17 item 1: the find page (keyset paging, source and case
filters, per-camera timeline), the watch page's device-clock flag and UK-time overlay, and
pulling the searched window from a site's NVR, over HTTP against the app (the boundary, CSRF,
the same policy as ``POST /ingest/pulls``) and a real mediamtx NVR.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import update

from tests.ingest.test_pull import nvr  # noqa: F401  (the mediamtx NVR fixture)
from tests.ingest.nvr_servers import PASSWORD as NVR_PASSWORD
from tests.ingest.nvr_servers import USER as NVR_USER
from tests.ingest.nvr_servers import MediamtxNvrServer
from tests.ingest.test_pull import write_agents
from tests.web.conftest import PASSWORD, Checked, Served, csrf_of
from tests.web.test_security import FIND, OPERATOR, ORG, T0, Web, _world
from api.web.uktime import UK
from ingest.pull import PULL_ACTION
from vault.access import credentials, identity
from vault.capture import Capture
from vault.actors import Role
from vault.casework import cases as case_ops
from vault.config import Settings
from vault.ledger.custody import Action
from vault.storage.catalog import MediaKind, Recording, SourceKind
from tests.captures import cctv_video


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = _world(tmp_path)
    try:
        yield w
    finally:
        for c in w.clients:
            c.close()
        w.vault.close()


def _put(web: Web, source: str, start: dt.datetime, minutes: float = 1, site: str = "Riverside",
         body: bytes = b"") -> str:
    return web.vault.put_stream(
        io.BytesIO(body or f"{source} {start.isoformat()}".encode()),
        cctv_video(source, site, start, dt.timedelta(minutes=minutes)),
        actor=OPERATOR,
    ).id


def _watch_ids(html: str) -> list[str]:
    return re.findall(r'href="/watch/([0-9a-f-]{36})">Watch', html)


def _next(html: str) -> str | None:
    found = re.findall(r'href="(/find\?[^"]+)" rel="next"', html)
    return found[0].replace("&amp;", "&") if found else None


def test_paging_is_by_keyset_so_footage_arriving_earlier_shifts_no_page(web: Web) -> None:
    """Issue #12 item 3 (paging): the Next link carries the last row's cursor (``after=``), not
    a page number, so a recording filed before the cursor while the officer reads page one (an
    NVR pull, a late dock) neither repeats a row on page two nor hides one; every recording is
    seen once and the ``searched`` events show the cursor. With ``?page=`` offsets page two
    repeated the last row of page one."""
    for i in range(30):
        _put(web, "cam-river-1", T0 - dt.timedelta(minutes=45 - i))
    c = web.client()
    web.sign_in(c, "asb")
    first = c.get(FIND + "&site=Riverside")
    page_one = _watch_ids(first.text)
    assert len(page_one) == 25
    _put(web, "cam-river-1", T0 - dt.timedelta(minutes=59))  # filed before the cursor
    link = _next(first.text)
    assert link is not None and "after=" in link and "page=" not in link
    second = c.get(link)
    page_two = _watch_ids(second.text)
    assert not set(page_one) & set(page_two)
    assert len(page_one) + len(page_two) == 31  # the earlier recording is before the cursor
    assert _next(second.text) is None and 'rel="first"' in second.text
    criteria = web.events(Action.SEARCHED.value)[-1].details["criteria"]  # type: ignore[attr-defined]
    assert criteria["after"] and criteria["offset"] == 0


def test_a_tampered_cursor_is_a_clear_error_and_searches_nothing(web: Web) -> None:
    """Issue #12 item 3: an ``after`` that is not a cursor a page made is a 400 naming it, not
    a server error, and no ``searched`` event is written."""
    c = web.client()
    web.sign_in(c, "asb")
    before = len(web.events(Action.SEARCHED.value))
    r = c.get(FIND + "&after=bm90LWEtY3Vyc29y")
    assert r.status_code == 400
    assert "bad paging cursor" in r.text
    assert len(web.events(Action.SEARCHED.value)) == before


def test_results_are_grouped_per_camera_on_a_timeline_of_the_window(web: Web) -> None:
    """Issue #12 item 3 (timeline): each camera's results are a section with an SVG bar per
    recording placed by time within the searched window (13:00-15:00 here: a recording from
    14:00 to 14:12 starts half way along and is a tenth wide; one starting before the window
    is clipped to its start), server-rendered (no script, no inline style: presentation
    attributes pass the strict CSP)."""
    _put(web, "cam-river-2", T0 - dt.timedelta(hours=1), minutes=12)
    _put(web, "cam-river-2", T0 - dt.timedelta(hours=2, minutes=30), minutes=40)
    c = web.client()
    web.sign_in(c, "asb")
    r = c.get(FIND)
    assert r.status_code == 200
    sections = re.findall(r'<h3 class="govuk-heading-s" id="camera-\d+">([^<]+)</h3>', r.text)
    assert sections == ["cam-river-2", "cam-river-1"]  # ordered by each camera's first capture
    bars = re.findall(r'<rect class="ev-bar" x="([\d.]+)%" y="4" width="([\d.]+)%"', r.text)
    assert ("0.0", "8.333") in bars  # 12:30-13:10 clipped to 13:00-13:10 of a 2-hour window
    assert ("50.0", "10.0") in bars  # 14:00-14:12
    assert 'style="' not in r.text and "<script>" not in r.text
    assert "cam-oak-1" not in r.text  # another site's camera has no section and no bar


def test_filter_by_case_shows_only_its_footage_and_refuses_a_case_not_yours(web: Web) -> None:
    """Issue #12 item 3 (filters): the Case list holds the cases the officer works; choosing one
    shows only its footage. A case id typed into the URL that is not theirs is refused with a
    message on the field, never used as a filter (it would tell which of their recordings
    another team's case holds)."""
    other = _put(web, "cam-river-1", T0 - dt.timedelta(minutes=30))
    mine = case_ops.create_case(web.vault, reference="ASB-77", organisation=ORG, actor=OPERATOR)
    case_ops.add_member(web.vault, mine.id, "asb", actor=OPERATOR)
    case_ops.link_recording(web.vault, mine.id, web.rec["river"], actor=OPERATOR)
    theirs = case_ops.create_case(web.vault, reference="ASB-78", organisation=ORG, actor=OPERATOR)
    case_ops.link_recording(web.vault, theirs.id, other, actor=OPERATOR)
    c = web.client()
    web.sign_in(c, "asb")
    form = c.get("/find").text
    assert f'<option value="{mine.id}">ASB-77</option>' in form and theirs.id not in form
    assert set(_watch_ids(c.get(FIND).text)) == {web.rec["river"], other}
    assert _watch_ids(c.get(FIND + f"&case={mine.id}").text) == [web.rec["river"]]
    refused = c.get(FIND + f"&case={theirs.id}")
    assert refused.status_code == 400 and "cases you work on" in refused.text
    assert not _watch_ids(refused.text)
    assert _watch_ids(c.get(FIND + "&camera=cam-river-1").text)  # source (device) filter


def test_watch_shows_the_device_clock_flag_with_its_offset_and_the_uk_clock(web: Web) -> None:
    """Issue #12 item 4: a recording whose device clock was flagged says so above the player,
    with the measured offset and which way (device minus vault, ingest/clock.py), and the
    vault's time beside the recorder's, on the page and in the player's UK-time clock. The page
    said before that the times shown were "corrected by the vault", which they are not: ingest
    never rewrites a capture time."""
    with web.vault.sessions.begin() as session:
        session.execute(update(Recording).where(Recording.id == web.rec["river"])
                        .values(clock_flagged=True, clock_offset_ms=-93_400))
    c = web.client()
    web.sign_in(c, "asb")
    web.state_purpose(c)
    assert "Clock flagged" in c.get(FIND).text
    page = c.get(f"/watch/{web.rec['river']}").text
    flag = page.split('id="clock-flag"')[1].split("</div>")[0]
    assert "93.4 seconds slow" in flag and "corrected by the vault" not in page
    assert "25 Nov 2026, 14:01:33 GMT" in flag  # 14:00:00 on a clock 93.4 s slow
    assert 'id="player-clock">25 Nov 2026, 14:00:00 GMT<' in page  # the recorder's time
    assert 'id="player-clock-corrected">25 Nov 2026, 14:01:33 GMT<' in page
    assert 'data-clock-offset-ms="-93400"' in page  # player.js keeps both clocks running
    unflagged = c.get(f"/watch/{web.rec['oak']}")
    assert unflagged.status_code == 404 or 'id="clock-flag"' not in unflagged.text


# --- pulling from the NVR -------------------------------------------------------------------


def _nvr_world(tmp_path: Path, url: str) -> Web:
    """Jones, an ASB officer at the NVR's site ("Northgate Estate"), and asb at Riverside; the
    vault's clock is the real one (the NVR's footage is from the last minute)."""
    settings = Settings(home=tmp_path / "home", segment_size=4096,
                        agents_file=write_agents(tmp_path / "agents.toml", url))
    w = _world(tmp_path, settings)
    w.clock.now = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=62)  # sign-ins add 31 s each
    user = identity.create_user(w.vault, name="jones", role=Role.ASB_OFFICER, organisation=ORG,
                                sites=["Northgate Estate"], actor=OPERATOR)
    credentials.set_password(w.vault, "jones", PASSWORD, actor=OPERATOR)
    enrolment = credentials.begin_enrolment(w.vault, user.id, issuer="test")
    credentials.check_code(w.vault, user.id, pyotp.TOTP(enrolment.secret).at(w.clock.now),
                           enrolling=True)
    w.secrets["jones"] = enrolment.secret
    return w


@pytest.mark.rtsp
@pytest.mark.slow
def test_pull_this_window_from_the_nvr_from_the_find_page(
    nvr: MediamtxNvrServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    """Issue #17 item 1 (the web app's search page): where the agents file maps the chosen
    camera to its site's NVR, the find page offers "Pull this window from the NVR" to an
    officer who may pull it (``holds.place`` at that site; the camera is in the Camera list
    before the vault has any footage of it), and posting it runs the same
    function as ``POST /ingest/pulls``: the footage is pulled, the page lists the recordings
    (Watch links) and the parts the NVR does not hold, and custody names the officer and the
    task's purpose. The form needs its CSRF token and a stated purpose; an officer of another
    site is not offered it and is refused (403, logged) if they post it anyway."""
    monkeypatch.setenv("NVR_TEST_CREDENTIALS", f"{NVR_USER}:{NVR_PASSWORD}")
    w = _nvr_world(tmp_path, nvr.url)
    try:
        (first, _), (_, last_end) = nvr.listing()
        start = first.replace(microsecond=0) - dt.timedelta(seconds=2)
        end = last_end.replace(microsecond=0) + dt.timedelta(seconds=1)
        day = start.astimezone(UK).strftime("%Y-%m-%d")
        window = {"day": day, "from": start.astimezone(UK).strftime("%H:%M:%S"),
                  "to": end.astimezone(UK).strftime("%H:%M:%S")}
        query = "&".join(f"{k}={v}" for k, v in window.items())
        jones = w.client()
        w.sign_in(jones, "jones")
        assert '<option value="cam-03">cam-03 (Northgate Estate)</option>' in jones.get("/find").text
        found = jones.get(f"/find?camera=cam-03&{query}")
        assert found.status_code == 200
        assert "Pull this window from the NVR" in found.text
        assert 'id="pull-purpose"' in found.text  # no task stated yet: the page says so first
        form = {"nvr": "nvr-north", "camera": "cam-03", **window}

        no_token = jones.post("/find/pull", data=form)
        assert no_token.status_code == 403
        no_purpose = jones.post("/find/pull", data={**form, "csrf_token": csrf_of(found.text)})
        assert no_purpose.status_code == 400 and "state the purpose" in no_purpose.text
        assert not w.vault.ledger.events(action=PULL_ACTION)

        other = w.client()
        w.sign_in(other, "asb")
        w.state_purpose(other)
        offered = other.get(f"/find?camera=cam-03&{query}")
        assert "Pull this window" not in offered.text
        denied = len(w.events(Action.ACCESS_DENIED.value))
        refused = other.post("/find/pull", data={**form, "csrf_token": csrf_of(offered.text)})
        assert refused.status_code == 403
        assert len(w.events(Action.ACCESS_DENIED.value)) > denied
        assert not w.vault.ledger.events(action=PULL_ACTION)

        w.state_purpose(jones, reference="ASB-4411")
        page = jones.get(f"/find?camera=cam-03&{query}")
        pulled = jones.post("/find/pull", data={**form, "csrf_token": csrf_of(page.text)})
        assert pulled.status_code == 200, pulled.text[-2000:]
        listed = re.findall(r'<a class="govuk-link" href="/watch/([0-9a-f-]{36})">',
                            pulled.text.split('id="pulled-recordings"')[1].split("</ul>")[0])
        assert len(listed) == 2  # the two stretches the NVR holds, around its gap
        gaps = pulled.text.split('id="pulled-gaps"')[1].split("</ul>")[0]
        assert gaps.count("<li>") >= 1  # the 3-second pause between them at least
        assert set(listed) <= set(_watch_ids(pulled.text))  # and the search now finds them
        [closing] = w.vault.ledger.events(action=PULL_ACTION)
        assert closing.event.actor == "jones" and closing.event.reference == "ASB-4411"
        assert set(closing.event.object_ids) == set(listed)
    finally:
        for c in w.clients:
            c.close()
        w.vault.close()


def test_without_an_agents_file_the_find_page_offers_no_pull(web: Web) -> None:
    """Issue #17 item 1: no NVR configured, no pull form; a pull posted anyway is refused with
    a message naming the agents file, not a server error."""
    c = web.client()
    web.sign_in(c, "asb")
    page = c.get(FIND + "&camera=cam-river-1")
    assert "Pull this window" not in page.text
    web.state_purpose(c)
    r = c.post("/find/pull", data={"nvr": "nvr-north", "camera": "cam-river-1",
                                   "day": "2026-11-25", "from": "13:00", "to": "15:00",
                                   "csrf_token": csrf_of(page.text)})
    assert r.status_code == 400
    assert "in the agents file" in r.text



# --- in Chromium ----------------------------------------------------------------------------


@pytest.fixture
def context(browser: Any, axe_source: str) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 800}, locale="en-GB")
    # Injected by the DevTools protocol, not as a <script>: the page's CSP stays intact.
    ctx.add_init_script(script=axe_source)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.mark.slow
def test_find_journey_timeline_keyset_pages_by_keyboard_and_flagged_clock_in_chromium(
    context: Any, served: Served
) -> None:
    """Issue #12 item 3 in a real browser: 30 more recordings from a second Riverside camera
    (14:00-14:29 yesterday) and the fixture's one at 14:30; a 13:00-16:00 search shows page one
    as one camera's timeline (its first bar a third of the way along, as drawn), Next page
    reached by keyboard alone shows the rest as two cameras' timelines with a First page link;
    axe-core finds nothing serious on either page and the browser reports no CSP violation.
    Then issue #12 item 4: for a recording whose recorder ran 2.5 s fast, the warning stands
    above the player and player.js keeps the recorder's UK time and the corrected one 2.5 s
    behind it as the footage seeks."""
    start = dt.datetime.strptime(f"{served.day} 14:00", "%Y-%m-%d %H:%M").replace(tzinfo=UK)
    with served.open_vault() as vault:
        for i in range(30):
            vault.put_stream(
                io.BytesIO(f"river-2 {i}".encode()),
                Capture(
                    source_id="cam-river-2",
                    source_kind=SourceKind.CCTV,
                    site="Riverside",
                    captured_at=start + dt.timedelta(minutes=i),
                    captured_end=start + dt.timedelta(minutes=i, seconds=30),
                    media_kind=MediaKind.VIDEO,
                ),
                actor=OPERATOR,
            )
    checked = Checked(context, served)
    page = checked.page
    served.sign_in(page, "asb")
    page.fill("#day", served.day)
    page.fill("#from", "13:00")
    page.fill("#to", "16:00")
    page.click("main form.ev-find button[type=submit]")
    page.wait_for_selector("#results")
    assert page.locator("section.ev-camera h3").all_inner_texts() == ["cam-river-2"]
    bars = page.locator("rect.ev-bar")
    assert bars.count() == 25
    track = page.locator("svg.ev-timeline").first.bounding_box()
    first = bars.first.bounding_box()
    assert track and first and first["width"] > 0
    assert abs((first["x"] - track["x"]) / track["width"] - 1 / 3) < 0.01  # 14:00 of 13-16
    checked.audit("find-timeline")

    page.focus("a[rel=next]")
    page.keyboard.press("Enter")
    page.wait_for_url("**after=**")
    assert page.locator("section.ev-camera h3").all_inner_texts() == ["cam-river-2", "cam-river-1"]
    assert page.locator("rect.ev-bar").count() == 6
    assert page.locator("a[rel=next]").count() == 0 and page.locator("a[rel=first]").count() == 1
    checked.audit("find-timeline-page-2")

    # Issue #12 item 4: the recorder of cam-river-1 ran 2.5 s fast (one sign-in: codes are
    # single-use).
    with served.open_vault() as vault, vault.sessions.begin() as session:
        session.execute(update(Recording).where(Recording.id == served.recordings["river"])
                        .values(clock_flagged=True, clock_offset_ms=2_500))
    page.goto(f"{served.url}/watch/{served.recordings['river']}")
    page.wait_for_url("**/purpose**")
    page.fill("#reference", "ASB/2026/0150")
    page.fill("#purpose", "Check the time of the door damage")
    page.fill("#lawful_basis", "Anti-social Behaviour, Crime and Policing Act 2014")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"**/watch/{served.recordings['river']}")
    assert "2.5 seconds fast" in page.inner_text("#clock-flag")
    page.evaluate("() => { const v = document.getElementById('player'); v.muted = true; "
                  "v.currentTime = 4.2; }")
    page.wait_for_function(
        "() => { const v = document.getElementById('player'); "
        "return !v.seeking && v.currentTime >= 4.0 && v.readyState >= 2; }", timeout=20_000)
    page.wait_for_function("() => /14:30:0[3-5]/.test("
                           "document.getElementById('player-clock').textContent)")
    page.wait_for_function("() => /14:30:0[1-3]/.test("
                           "document.getElementById('player-clock-corrected').textContent)")
    checked.audit("watch-clock-flagged")
