"""Issue #12 item 8, the SAR workspace, in real headless Chromium against a real ``serve`` and
a real ``worker`` on loopback.

The information-governance officer registers a subject access request, attaches a window of
footage in which three different real people (faces from Labeled Faces in the Wild, made by
``redaction.synthetic``) walk and stand, and runs redaction as a job whose progress shows on
the page. The gallery shows one face per person (cropped on demand, no-store); the officer
ticks the requester by keyboard alone, previews a frame before and after, draws a box over a
corner and mutes half a second of sound, renders, plays the copy, and records the disclosure.
The copy's decoded frames show the requester and hide the other two; its sound is silent where
it was muted. axe-core and the browser's CSP enforcement on every SAR page.

Over HTTP against the same server: an ASB officer of another site and an IG officer of another
organisation see nothing of the request on any page, thumbnail, preview or copy (each refusal
an ``access_denied`` event, the list not naming it), and every SAR form without its CSRF token
is refused, changing nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyotp
import pytest

from redaction.synthetic import (
    Clip,
    Face,
    face_visibility,
    linear,
    make_clip,
    read_audio,
    read_frames,
    still,
)
from tests.web.conftest import PASSWORD, SEGMENT, Checked, Served, csrf_of, run_serve, run_worker
from vault.access import credentials, identity
from vault.casework import sites
from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import MediaKind, SourceKind
from vault.config import Settings
from vault.ledger.custody import Action
from vault.casework.jobs import Job, JobKind, get_job
from vault.casework.sar import SarStatus, get_sar
from vault.vault import Vault
from vault.capture import Capture

pytestmark = pytest.mark.slow

NORTH, EAST = "Northside Homes", "Eastgate Housing"
OPERATORS = "Vault operations"  # the administrator's own organisation
ADMIN = Actor(user="local:test", role=Role.ADMINISTRATOR)
REFERENCE = "SAR-2026-014"
VISIBLE = 0.3  # tests/redaction/test_pipeline.py's threshold for a face left visible
#: The requester (face 0) walks across; person 1 stands still; person 2 walks the other way.
FACES = [Face(linear(70, 110, 150, 120, 2.0), 44, identity=3),
         Face(still(235, 100), 40, identity=11, mirror=True),
         Face(linear(250, 185, 180, 180, 2.0), 38, identity=42)]
MUTE = (0.5, 1.0)


def _populate(settings: Settings, tmp: Path) -> tuple[dict[str, str], Clip, str]:
    """The IG officers ``ig`` and ``ig2`` at Northside Homes, an administrator of the vault's
    operators; an ASB officer at another of its sites
    (``asb_oak``) and an IG officer of another organisation (``ig_east``). A 2 s clip of three
    people from cam-river-1 at Riverside, captured yesterday at 14:30:00 UK time."""
    from api.web.uktime import UK

    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    secrets: dict[str, str] = {}
    clip = make_clip(tmp / "three-people.mp4", FACES, seconds=2.0, background="coffee")
    yesterday = (dt.datetime.now(UK) - dt.timedelta(days=1)).date()
    start = dt.datetime.combine(yesterday, dt.time(14, 30), tzinfo=UK).astimezone(dt.UTC)
    with Vault.init(settings, clock=lambda: past) as vault:
        for site, org in (("Riverside", NORTH), ("Oak Park", NORTH), ("Eastgate", EAST)):
            sites.register_site(vault, site, organisation=org, actor=ADMIN)
        for name, role, org, assigned in (("ig", Role.IG_OFFICER, NORTH, []),
                                          ("ig2", Role.IG_OFFICER, NORTH, []),
                                          ("asb_oak", Role.ASB_OFFICER, NORTH, ["Oak Park"]),
                                          ("ig_east", Role.IG_OFFICER, EAST, []),
                                          ("admin", Role.ADMINISTRATOR, OPERATORS, [])):
            user = identity.create_user(vault, name=name, role=role, organisation=org,
                                        sites=assigned, actor=ADMIN)
            credentials.set_password(vault, name, PASSWORD, actor=ADMIN)
            enrolment = credentials.begin_enrolment(vault, user.id, issuer="test")
            credentials.check_code(vault, user.id, pyotp.TOTP(enrolment.secret).at(past),
                                   enrolling=True)
            secrets[name] = enrolment.secret
        with clip.path.open("rb") as f:
            vault.put_stream(
                f,
                Capture(
                    source_id="cam-river-1",
                    source_kind=SourceKind.CCTV,
                    site="Riverside",
                    captured_at=start,
                    captured_end=start + dt.timedelta(seconds=2),
                    media_kind=MediaKind.VIDEO,
                    original_name="cam-river-1.mp4",
                ),
                actor=ADMIN,
            )
    return secrets, clip, yesterday.strftime("%Y-%m-%d")


class World(Served):
    clip: Clip
    state: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A real ``serve`` and a real ``worker`` on one vault."""
    tmp = tmp_path_factory.mktemp("sar")
    home = tmp / "home"
    settings = Settings(home=home, segment_size=SEGMENT)
    secrets, clip, day = _populate(settings, tmp)
    with run_worker(home), run_serve(home) as url:
        world = World(url=url, home=home, settings=settings, secrets=secrets, day=day)
        world.clip = clip
        world.state = {}
        yield world



def _requester_track(plan: dict[str, Any], clip: Clip, face: int = 0) -> int:
    """The track that follows ``face`` (0: the requester): the most overlap with its true
    box."""
    def overlap(track: dict[str, Any]) -> float:
        total = 0.0
        for i, box in enumerate(track["boxes"]):
            frame = track["start"] + i
            truth = dict(clip.gt[frame]).get(face)
            if box is None or truth is None:
                continue
            w = min(box[2], truth[2]) - max(box[0], truth[0])
            h = min(box[3], truth[3]) - max(box[1], truth[1])
            total += max(0.0, w) * max(0.0, h)
        return total
    return int(max(plan["tracks"], key=overlap)["id"])


def _loaded(page: Any, selector: str) -> None:
    page.wait_for_function(
        "(s) => [...document.querySelectorAll(s)].every(i => i.complete && i.naturalWidth > 0)",
        arg=selector, timeout=60_000)


def _tab_to(page: Any, element_id: str, limit: int = 60) -> None:
    """Press Tab until ``element_id`` has the focus (keyboard only)."""
    for _ in range(limit):
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def test_ig_officer_runs_a_sar_to_a_redacted_copy(contexts: Callable[..., Any], served: World,
                                                   tmp_path: Path) -> None:
    """Issue #12 item 8: register -> extend the deadline -> attach a window (UK time) -> find people (a job with
    progress) -> gallery, one face per person -> keep the requester by keyboard -> preview
    before and after -> a box over a missed face and a muted range -> render -> play the copy
    -> record the disclosure. The copy's decoded frames show the requester and hide the other
    two; its sound is silent in the muted range. axe-core and CSP on every SAR page."""
    ig = Checked(contexts(), served)
    page = ig.page
    served.sign_in(ig.page, "ig")

    # --- the list, then register ------------------------------------------------------------
    page.click("nav >> text=Subject access")
    page.wait_for_url("**/subject-access")
    page.click("text=Register a request")
    page.wait_for_url("**/subject-access/new")
    page.click("main button[type=submit]")  # nothing filled in: the form says what is missing
    page.wait_for_selector(".govuk-error-summary")
    assert "Enter the request's reference" in page.content()
    ig.problems.clear()  # the 400 itself is reported on the console
    page.fill("#reference", REFERENCE)
    page.fill("#requester_name", "Jordan Reyes")
    page.fill("#description", "Tall, dark jacket, walked past the block B door at about 2:30 pm")
    ig.audit("32-sar-new")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/subject-access/[0-9a-f-]{36}$"))
    sar_url = page.url
    sar_id = sar_url.rsplit("/", 1)[1]
    served.state["sar"] = sar_id
    deadline = page.inner_text("#deadline")
    assert "end of the day, UK time" in deadline and re.search(r"\d+ days left", deadline), deadline
    # --- extend the deadline by a month, with the reason ------------------------------------
    days = int(re.search(r"(\d+) days left", deadline).group(1))  # type: ignore[union-attr]
    page.click("#extension summary")
    page.check("#months")
    page.fill("#extension-reason", "Footage from three cameras must be reviewed")
    with page.expect_navigation():
        page.click("#extension button[type=submit]")
    extended = page.inner_text("#deadline")
    assert "Extended by 1 month" in extended and "three cameras" in extended, extended
    assert int(re.search(r"(\d+) days left", extended).group(1)) - days in (28, 29, 30, 31)  # type: ignore[union-attr]
    page.click("nav >> text=Subject access")
    assert REFERENCE in page.inner_text("#sars") and "days left" in page.inner_text("#sars")
    ig.audit("31-sar-list")
    page.click(f"#sars >> text={REFERENCE}")
    page.wait_for_url(sar_url)

    # --- attach a window typed in UK time; it is held at once ---------------------------------
    page.select_option("#camera", "cam-river-1")
    page.fill("#window-day", served.day)
    page.fill("#window-start", "14:29")
    page.fill("#window-end", "14:31")
    page.click("#attach-window button[type=submit]")
    page.wait_for_url(f"{sar_url}#windows")
    windows = page.inner_text("#sar-windows")
    assert "cam-river-1" in windows and re.search(r"14:29:00 (GMT|BST)", windows), windows
    assert "Yes, since" in windows
    ig.audit("33-sar-window-held")

    # --- find the people: a job, its progress on the page ------------------------------------
    page.click("#find-people")
    page.wait_for_url(f"{sar_url}#redaction")
    assert page.locator("#sar-jobs progress").count() == 1
    # sar.js polls the progress and reloads the page when the job is done.
    review = page.wait_for_selector("#sar-jobs a[href*='/people/']", timeout=300_000)
    assert review is not None and "Review the people found" in review.inner_text()
    page.wait_for_load_state("load")
    ig.audit("34-sar-people-found")
    page.click("#sar-jobs a[href*='/people/']")
    page.wait_for_url("**/people/*")
    job_id = page.url.split("/people/")[1].split("?")[0].split("#")[0]
    served.state["job"] = job_id

    # --- the gallery: one face per person, each cropped on demand, no-store -------------------
    people = page.locator("#gallery .ev-person")
    # Issue #13 item 4: one card per person (three people, three tracks; the tracker's
    # faint duplicates of a face are joined to its person, not shown as people).
    assert people.count() == len(FACES), people.count()
    _loaded(page, "#gallery img.ev-thumb")
    thumbs = [r for r in ig.responses if "/thumbnails/" in r.url]
    assert len(thumbs) >= len(FACES)
    assert all(r.status == 200 and "no-store" in r.headers["cache-control"]
               and r.headers["content-type"] == "image/jpeg" for r in thumbs)
    with served.open_vault() as vault:
        plan_job = get_job(vault, job_id)
        assert plan_job.plan is not None
        requester = _requester_track(plan_job.plan, served.clip)
        # ... and each card is a different person's.
        assert len({_requester_track(plan_job.plan, served.clip, k)
                    for k in range(len(FACES))}) == len(FACES)
        clip_id = str((plan_job.result or {})["recording_id"])
    served.state["track"] = str(requester)
    ig.audit("35-sar-gallery")

    # --- tick the requester by keyboard alone --------------------------------------------------
    page.focus("#gallery input[type=checkbox] >> nth=0")
    _tab_to(page, f"keep-{requester}")
    page.keyboard.press("Space")
    assert page.is_checked(f"#keep-{requester}")
    _tab_to(page, "save-keep")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.is_checked(f"#keep-{requester}")
    assert page.locator("#gallery input:checked").count() == 1

    # --- before and after at a chosen frame ---------------------------------------------------
    page.fill("#frame", "12")
    page.press("#frame", "Enter")
    page.wait_for_url("**?frame=12*")
    _loaded(page, "img.ev-preview")
    previews = [r for r in ig.responses if "/frames/12" in r.url]
    assert {("masked=true" in r.url) for r in previews} == {True, False}
    assert all("no-store" in r.headers["cache-control"] for r in previews)
    ig.audit("36-sar-preview")

    # --- a box over a "missed face" (a corner) and half a second muted ------------------------
    # Dragging over the picture fills in the box (sar.js); the typed form is what is sent.
    page.locator("#preview-before").scroll_into_view_if_needed()
    shot = page.locator("#preview-before").bounding_box()
    assert shot is not None
    page.mouse.move(shot["x"] + shot["width"] * 0.1, shot["y"] + shot["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(shot["x"] + shot["width"] * 0.3, shot["y"] + shot["height"] * 0.9, steps=5)
    page.mouse.up()
    dragged = [int(page.input_value(f"#box-{k}")) for k in ("x0", "y0", "x1", "y1")]
    width, height = served.clip.width, served.clip.height
    assert abs(dragged[0] - 0.1 * width) <= 3 and abs(dragged[3] - 0.9 * height) <= 3, dragged
    for field, value in (("#box-first", "0"), ("#box-last", "49"), ("#box-x0", "4"),
                         ("#box-y0", "200"), ("#box-x1", "40"), ("#box-y1", "236")):
        page.fill(field, value)
    with page.expect_navigation():
        page.click("#box-form button[type=submit]")
    assert "0 to 49" in page.inner_text("#manual-boxes")
    _loaded(page, "#waveform")
    wave = [r for r in ig.responses if r.url.endswith("/waveform")]
    assert wave and wave[-1].headers["content-type"] == "image/png"
    assert "no-store" in wave[-1].headers["cache-control"]
    page.locator("#waveform").scroll_into_view_if_needed()
    line = page.locator("#waveform").bounding_box()
    assert line is not None
    page.mouse.move(line["x"] + line["width"] * 0.25, line["y"] + line["height"] / 2)
    page.mouse.down()
    page.mouse.move(line["x"] + line["width"] * 0.5, line["y"] + line["height"] / 2, steps=5)
    page.mouse.up()
    assert abs(float(page.input_value("#audio_start")) - 0.5) <= 0.1
    assert abs(float(page.input_value("#audio_end")) - 1.0) <= 0.1
    page.fill("#audio_start", str(MUTE[0]))
    page.fill("#audio_end", f"0:0{MUTE[1]}")
    with page.expect_navigation():
        page.click("#audio-form button[type=submit]")
    assert "Muted" in page.inner_text("#audio-ranges")

    # --- render, then play the copy ------------------------------------------------------------
    with page.expect_navigation():
        page.click("#render")
    page.wait_for_selector("video.ev-copy", timeout=300_000)
    assert page.locator("#plan-changed").count() == 0  # the copy is of the plan as it stands
    copy_id = page.get_attribute("video.ev-copy", "data-recording")
    assert copy_id
    served.state["copy"] = copy_id
    page.evaluate("() => { const v = document.querySelector('video.ev-copy'); v.muted = true; "
                  "return v.play(); }")
    page.wait_for_function("() => { const v = document.querySelector('video.ev-copy'); "
                           "return v.videoWidth > 0 && v.currentTime > 0.3; }", timeout=30_000)
    streams = [r for r in ig.responses if f"/copies/{copy_id}/media" in r.url]
    assert streams and all("no-store" in r.headers["cache-control"] for r in streams)
    ig.audit("37-sar-rendered")

    # --- record the disclosure --------------------------------------------------------------
    page.goto(sar_url + "#disclosures")
    page.check("#disclose-copies")
    page.fill("#method", "Secure download link")
    with page.expect_navigation():
        page.click("#record-disclosure")
    from api.web.uktime import UK

    today = dt.datetime.now(UK)
    assert f"{today:%-d %b %Y}" in page.inner_text("#sar-disclosures")
    assert "Disclosed" in page.inner_text("h1")
    ig.audit("38-sar-disclosed")

    # --- the copy, decoded: the requester shown, the others hidden, the range silent ----------
    out = tmp_path / "copy.mp4"
    with served.open_vault() as vault:
        copy = vault.recording(copy_id)
        assert copy.provenance and copy.provenance.get("kind") == "redaction"
        assert copy.parent_id == clip_id
        vault.export_file(copy_id, out, actor=ADMIN,
                          purpose=Purpose("test: check the redacted copy", "test", REFERENCE))
        view = get_sar(vault, sar_id)
        assert view.sar.status is SarStatus.DISCLOSED
        assert view.disclosures[0].recording_ids == [copy_id]
        assert vault.ledger.events(action="sar.disclosed", limit=10)
        edits = [e.event for e in vault.ledger.events(action=Action.REDACTION_PLANNED, limit=100)
                 if (e.event.details or {}).get("edited")]
        assert len(edits) == 3 and {e.actor for e in edits} == {"ig"}  # keep, box, audio
    frames = read_frames(out)
    assert len(frames) == served.clip.frame_count
    shown = {k: 0 for k in range(len(FACES))}
    for i, boxes in enumerate(served.clip.gt):
        source = served.clip.frame(i)
        for k, box in boxes:
            if face_visibility(source, frames[i], box) > VISIBLE:
                shown[k] += 1
    # Issue #13 item 4: keeping the requester's one track keeps them visible in >= 99 % of
    # their frames (measured: all 50). It was >= 80 % while faint texture tracks beside
    # another face, padded back in time, swept over the requester's face and stayed masked.
    assert shown[0] >= 0.99 * served.clip.frame_count, shown
    assert shown[1] == 0 and shown[2] == 0, shown  # everyone else is hidden on every frame
    corner = [float(np.abs(served.clip.frame(i)[200:236, 4:40].astype(int)
                           - frames[i][200:236, 4:40].astype(int)).mean()) for i in (0, 25, 49)]
    assert min(corner) > 3, corner  # the hand-drawn box was masked too
    samples, rate = read_audio(out)
    muted = samples[int((MUTE[0] + 0.05) * rate):int((MUTE[1] - 0.05) * rate)]
    heard = samples[int(1.2 * rate):int(1.8 * rate)]
    assert float(np.sqrt(np.mean(muted ** 2))) < 0.01 < float(np.sqrt(np.mean(heard ** 2)))


# --- over HTTP: the boundary and CSRF ---------------------------------------------------------


def _client(served: World, user: str, *, step: int = 0) -> httpx.Client:
    """A signed-in HTTP session for ``user`` (``step``: use the next TOTP step's code, which
    the server accepts as one step of drift, when this step's was spent)."""
    client = httpx.Client(base_url=served.url, follow_redirects=True, timeout=60)
    page = client.get("/sign-in")
    r = client.post("/sign-in", data={"username": user, "password": PASSWORD,
                                      "csrf_token": csrf_of(page.text)})
    code = pyotp.TOTP(served.secrets[user]).at(time.time() + 30 * step)
    r = client.post("/sign-in/code", data={"code": code, "csrf_token": csrf_of(r.text)})
    assert r.status_code == 200 and str(r.url).endswith("/find"), r.text[:300]
    return client


def _denials(vault: Vault, actor: str) -> list[Any]:
    return [e.event for e in vault.ledger.events(action=Action.ACCESS_DENIED, limit=100_000)
            if e.event.actor == actor]


def test_other_site_and_other_organisation_see_nothing_of_the_sar(served: World) -> None:
    """Issue #12 item 8: an ASB officer of another site (no SAR rights at all) and an IG
    officer of another organisation are refused every SAR page, the progress poll, each
    person's thumbnail, the before/after previews and the copy's stream (403, each refusal an
    ``access_denied`` event naming the route), and the list never names the request."""
    state = served.state
    if "copy" not in state:
        pytest.skip("the journey test did not get as far as a rendered copy")
    sar, job, track, copy = state["sar"], state["job"], state["track"], state["copy"]
    people = f"/subject-access/{sar}/people/{job}"
    gets = [f"/subject-access/{sar}", f"/subject-access/{sar}/progress", people,
            f"{people}/thumbnails/{track}", f"{people}/frames/10?masked=false",
            f"{people}/frames/10?masked=true", f"/subject-access/{sar}/copies/{copy}/media"]
    posts = [f"/subject-access/{sar}/{p}" for p in ("extend", "windows", "redaction", "disclose",
                                                    "close")] + \
        [f"{people}/{p}" for p in ("keep", "boxes", "audio", "render")]
    for user in ("asb_oak", "ig_east"):
        client = _client(served, user)
        with served.open_vault() as vault:
            before = len(_denials(vault, user))
        listing = client.get("/subject-access")
        assert REFERENCE not in listing.text and sar not in listing.text
        for url in gets:
            r = client.get(url)
            assert r.status_code == 403, (user, url, r.status_code)
            assert "image/jpeg" not in r.headers.get("content-type", "")
            assert "no-store" in r.headers["cache-control"]
        home = client.get("/find")
        token = csrf_of(home.text)
        for url in posts:
            r = client.post(url, data={"csrf_token": token, "reason": "x", "months": "1",
                                       "track": track, "method": "x"})
            assert r.status_code == 403, (user, url, r.status_code)
        with served.open_vault() as vault:
            refused = _denials(vault, user)[before:]
            # The list page refuses an ASB officer too; an IG officer of another
            # organisation may list (their own requests), so it is not a refusal for them.
            assert len(refused) >= len(gets) + len(posts), (user, len(refused))
            routes = {str((e.details or {}).get("route", "")) for e in refused}
            assert any("/thumbnails/" in r for r in routes) and any("/frames/" in r for r in routes)
        client.close()
    with served.open_vault() as vault:
        view = get_sar(vault, sar)
        assert view.sar.status is SarStatus.DISCLOSED and len(view.windows) == 1


def test_every_sar_form_needs_its_csrf_token(served: World) -> None:
    """Issue #12 item 8: each SAR form posted without its CSRF token, or with another
    session's, is refused (403), logged, and changes nothing: no request registered, no
    window, extension, job, plan edit, render, disclosure or closing. With its token, the
    disclosure form takes only the request's own redacted copies."""
    state = served.state
    if "copy" not in state:
        pytest.skip("the journey test did not get as far as a rendered copy")
    sar, job, track, copy = state["sar"], state["job"], state["track"], state["copy"]
    people = f"/subject-access/{sar}/people/{job}"
    forms: list[tuple[str, dict[str, Any]]] = [
        ("/subject-access", {"reference": "SAR-CSRF-1", "requester_name": "X",
                             "received_on": served.day}),
        (f"/subject-access/{sar}/extend", {"months": "1", "reason": "complex"}),
        (f"/subject-access/{sar}/windows", {"camera": "cam-river-1", "day": served.day,
                                            "start": "14:00", "end": "14:10"}),
        (f"/subject-access/{sar}/redaction", {}),
        (f"/subject-access/{sar}/disclose", {"recording": copy, "method": "post"}),
        (f"/subject-access/{sar}/close", {"reason": "done"}),
        (f"{people}/keep", {"track": track}),
        (f"{people}/boxes", {"first": "0", "last": "1", "x0": "0", "y0": "0", "x1": "9",
                             "y1": "9"}),
        (f"{people}/boxes/web-1/remove", {}),
        (f"{people}/audio", {"audio_start": "0", "audio_end": "1", "action": "mute"}),
        (f"{people}/audio/0/remove", {}),
        (f"{people}/render", {}),
    ]
    client = _client(served, "ig", step=1)
    with served.open_vault() as vault:
        plan_before = get_job(vault, job).plan
        jobs_before = _job_count(vault)
        view = get_sar(vault, sar)
        before = (view.sar.status, view.sar.extension_months, len(view.windows),
                  len(view.disclosures))
        denied_before = len(_denials(vault, "ig"))
    for url, data in forms:
        for token in (None, "forged-token-from-another-session"):
            sent = dict(data) if token is None else {**data, "csrf_token": token}
            r = client.post(url, data=sent)
            assert r.status_code == 403, (url, token, r.status_code)
            assert "did not come from this site" in r.text
    with served.open_vault() as vault:
        assert get_job(vault, job).plan == plan_before
        assert _job_count(vault) == jobs_before
        view = get_sar(vault, sar)
        assert (view.sar.status, view.sar.extension_months, len(view.windows),
                len(view.disclosures)) == before
        assert "SAR-CSRF-1" not in {s.reference for s in _sars(vault)}
        refused = _denials(vault, "ig")[denied_before:]
        assert len(refused) == 2 * len(forms)
        assert all(str((e.details or {}).get("reason", "")).startswith("csrf") for e in refused)
        clip_id = str((get_job(vault, job).result or {})["recording_id"])
    # With its token, a disclosure still offers only the request's own rendered copies: the
    # clip of the window (not redacted) is refused with a message, and nothing is recorded.
    token = csrf_of(client.get(f"/subject-access/{sar}").text)
    r = client.post(f"/subject-access/{sar}/disclose",
                    data={"csrf_token": token, "recording": clip_id, "method": "post"})
    assert r.status_code == 400 and "copies rendered for this request" in r.text
    with served.open_vault() as vault:
        assert len(get_sar(vault, sar).disclosures) == before[3]
    client.close()


def test_an_administrators_search_shows_on_the_request(served: World) -> None:
    """An administrator (of the vault's operators, not the request's organisation) searches
    the request's window for people: the job is on the request's page and in its progress, as
    an IG officer's is (the listing once kept to jobs of the request's organisation, and lost
    it)."""
    state = served.state
    if "copy" not in state:
        pytest.skip("the journey test did not get as far as a rendered copy")
    client = _client(served, "admin")
    page = client.get(f"/subject-access/{state['sar']}")
    r = client.post(f"/subject-access/{state['sar']}/redaction",
                    data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 200
    with served.open_vault() as vault:
        from sqlalchemy import select

        with vault.sessions() as session:
            newest = session.scalars(select(Job).where(Job.created_by == "admin")).one()
        assert newest.created_org == OPERATORS
    assert f'data-job="{newest.id}"' in r.text
    progress = client.get(f"/subject-access/{state['sar']}/progress").json()
    assert newest.id in {j["id"] for j in progress["jobs"]}
    client.close()


def test_the_workspace_works_without_script(contexts: Callable[..., Any], served: World) -> None:
    """Issue #12 item 8 (progressive enhancement): with JavaScript off, a colleague searches
    the window again; the page shows the job and a "Refresh progress" link, which loads the
    page anew (a new address each time, so it is never a mere scroll) until the people are
    found; the gallery's pictures show, the drag hints stay hidden, and the keep and preview
    forms work as plain forms."""
    state = served.state
    if "copy" not in state:
        pytest.skip("the journey test did not get as far as a rendered copy")
    checked = Checked(contexts(java_script_enabled=False), served)
    page = checked.page
    served.sign_in(checked.page, "ig2")
    page.goto(f"{served.url}/subject-access/{state['sar']}")
    with page.expect_navigation():
        page.click("#find-people")
    deadline = time.monotonic() + 300
    while not page.locator("#sar-jobs a[href*='/people/']").count():
        assert time.monotonic() < deadline, "the job never finished"
        assert page.locator("#refresh-progress a").count() == 1
        time.sleep(1)
        with page.expect_navigation():
            page.click("#refresh-progress a")
    href = page.get_attribute("#sar-jobs a[href*='/people/']", "href")
    assert href and state["job"] not in href  # the new search
    page.goto(served.url + href)
    _loaded(page, "#gallery img.ev-thumb")
    assert all(not hint.is_visible() for hint in page.locator(".ev-js-only").all())
    with page.expect_navigation():
        page.click("#save-keep")
    assert page.locator("#gallery input:checked").count() == 0
    page.fill("#frame", "5")
    with page.expect_navigation():
        page.press("#frame", "Enter")
    _loaded(page, "img.ev-preview")
    assert "frame=5" in page.url
    # The copy rendered from the earlier search is still the request's, offered for disclosure.
    page.goto(f"{served.url}/subject-access/{state['sar']}")
    assert page.locator(f"input[name=recording][value='{state['copy']}']").count() == 1
    page.goto(f"{served.url}/subject-access/{state['sar']}/people/{state['job']}")
    assert "searched for again since" in page.inner_text(".govuk-warning-text")
    assert page.locator("video.ev-copy").count() == 1 and page.locator("#plan-changed").count() == 0
    assert checked.problems == []


def _job_count(vault: Vault) -> int:
    from sqlalchemy import func, select

    with vault.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Job).where(
            Job.kind.in_([JobKind.REDACTION_PLAN, JobKind.REDACTION_RENDER]))) or 0)


def _sars(vault: Vault) -> list[Any]:
    from vault.casework.sar import list_sars

    return list_sars(vault, limit=1000)
