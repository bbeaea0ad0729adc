"""Issue #12 item 6: case export with progress, over HTTP and in real headless Chromium.

Over HTTP (``TestClient``, the app's own SQLite job queue, jobs run by hand): who may start,
watch and download an export (the case and every item, as the API decides), CSRF, what a
failed job tells the officer, and the download's custody event and headers. In Chromium
against a real ``serve`` and a real ``evidence-vault worker``: the ASB officer starts an
export, watches its progress (static/progress.js), downloads the package, and the package
passes the vault's offline verifier. axe-core and the CSP on every page.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.web.exports import failure_advice
from tests.api.conftest import Clock
from tests.web.conftest import (
    PASSWORD,
    SEGMENT,
    Checked,
    Served,
    csrf_of,
    make_footage,
    run_serve,
    run_worker,
    sign_in_client,
    state_purpose,
)
from vault.casework import cases as case_ops
from vault.access import credentials, identity
from vault.casework import sites
from vault.actors import Actor, Role
from vault.storage.catalog import Recording
from vault.config import Settings
from vault.ledger.custody import Action
from vault.casework.disclosure import verify_export
from vault.casework.jobs import Job, JobState
from vault.vault import Vault
from tests.captures import cctv_video

NORTH, EAST = "Northside Homes", "Eastgate Housing"
T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
ADMIN = Actor(user="local:test", role=Role.ADMINISTRATOR)
BASE = "http://127.0.0.1"
FORM = {"recipient": "DC Sam Patel", "recipient_org": "Northshire Police",
        "purpose": "Investigation of criminal damage", "reference": "41/22817/26",
        "lawful_basis": "DPA 2018 s.35 law enforcement"}
USERS = (("asb", Role.ASB_OFFICER, NORTH, ["Riverside"]),
         ("asb_oak", Role.ASB_OFFICER, NORTH, ["Oak Park"]),
         ("ig", Role.IG_OFFICER, NORTH, []),
         ("auditor", Role.AUDITOR, NORTH, []),
         ("ig_east", Role.IG_OFFICER, EAST, []))


def _enrol(vault: Vault, name: str, role: Role, org: str, assigned: list[str],
           at: dt.datetime) -> str:
    user = identity.create_user(vault, name=name, role=role, organisation=org, sites=assigned,
                                actor=ADMIN)
    credentials.set_password(vault, name, PASSWORD, actor=ADMIN)
    enrolment = credentials.begin_enrolment(vault, user.id, issuer="test")
    credentials.check_code(vault, user.id, pyotp.TOTP(enrolment.secret).at(at), enrolling=True)
    return enrolment.secret


@dataclass
class World:
    vault: Vault
    clock: Clock
    secrets: dict[str, str] = field(default_factory=dict)
    rec: dict[str, str] = field(default_factory=dict)
    clients: list[TestClient] = field(default_factory=list)
    case_id: str = ""
    mixed_case_id: str = ""

    def client(self, user: str) -> TestClient:
        c = TestClient(create_app(self.vault.settings, vault=self.vault), base_url=BASE)
        self.clients.append(c)
        self.clock.advance(seconds=31)  # a fresh TOTP step: codes are single-use
        sign_in_client(c, user, lambda: pyotp.TOTP(self.secrets[user]).at(self.clock.now))
        state_purpose(c, purpose="Prepare the disclosure", lawful_basis="DPA 2018 s.35")
        return c

    def jobs(self) -> int:
        with self.vault.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Job)) or 0)

    def denials(self) -> int:
        return len(self.vault.ledger.events(action=Action.ACCESS_DENIED.value, limit=100_000))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock(T0)
    vault = Vault.init(Settings(home=tmp_path / "home", segment_size=4096), clock=clock)
    w = World(vault=vault, clock=clock)
    for site, org in (("Riverside", NORTH), ("Oak Park", NORTH), ("Eastgate", EAST)):
        sites.register_site(vault, site, organisation=org, actor=ADMIN)
    for name, role, org, assigned in USERS:
        w.secrets[name] = _enrol(vault, name, role, org, assigned, clock.now)
    for key, source, site in (("river", "cam-river-1", "Riverside"),
                              ("river2", "cam-river-2", "Riverside"),
                              ("east", "cam-east-1", "Eastgate")):
        start = T0 - dt.timedelta(hours=2)
        w.rec[key] = vault.put_stream(
            io.BytesIO(key.encode() * 3000),
            cctv_video(source, site, start, dt.timedelta(minutes=10), name=f"{source}.mp4"),
            actor=ADMIN,
        ).id
    asb = identity.get_user(vault, "asb")
    officer = Actor(user="asb", role=Role.ASB_OFFICER, organisation=NORTH)
    case = case_ops.create_case(vault, reference="ASB/2026/0142", organisation=NORTH,
                                actor=officer, member_ids=(asb.id,))
    for key in ("river", "river2"):
        case_ops.link_recording(vault, case.id, w.rec[key], actor=officer)
    w.case_id = case.id
    # A Northside case an administrator linked Eastgate footage to: Northside's IG officer
    # sees the case but not that item, so may not export it.
    mixed = case_ops.create_case(vault, reference="ASB/2026/0150", organisation=NORTH,
                                 actor=ADMIN)
    for key in ("river", "east"):
        case_ops.link_recording(vault, mixed.id, w.rec[key], actor=ADMIN)
    w.mixed_case_id = mixed.id
    try:
        yield w
    finally:
        for c in w.clients:
            c.close()
        vault.close()


def _start(world: World, c: TestClient, case_id: str) -> str:
    form = c.get(f"/casework/{case_id}/export")
    assert form.status_code == 200, form.text[:500]
    r = c.post(f"/casework/{case_id}/export", data={"csrf_token": csrf_of(form.text), **FORM},
               follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    return str(r.headers["location"]).rsplit("/", 1)[1]


def _run(c: TestClient, job_id: str) -> None:
    """What a worker does with the queued job (the app's own queue, run by hand)."""
    c.app.state.jobs.run(job_id)  # type: ignore[attr-defined]


def test_a_member_exports_the_case_watches_progress_and_downloads_the_package(
        world: World, tmp_path: Path) -> None:
    """Issue #12 item 6: the case page's "Export disclosure package" starts an export job of
    the case's evidence (the API's job, with the recipient, purpose and lawful basis typed);
    while it waits the page shows progress, a refresh link, the polling script and that no
    worker is running; the JSON progress route says the same (no-store); once it has run, the
    page offers the download, which is the package (attachment, no-store, a ``downloaded``
    event naming the job and case) and passes the vault's offline verifier."""
    c = world.client("asb")
    case_page = c.get(f"/casework/{world.case_id}")
    assert f'href="/casework/{world.case_id}/export"' in case_page.text
    assert "Export disclosure package" in case_page.text
    job_id = _start(world, c, world.case_id)
    job_url = f"/casework/{world.case_id}/exports/{job_id}"
    waiting = c.get(job_url)
    assert waiting.status_code == 200
    assert "Building the disclosure package" in waiting.text
    assert 'id="export-refresh"' in waiting.text and "/static/web/progress.js" in waiting.text
    assert "No job worker is running" in waiting.text
    assert "<script>" not in waiting.text  # no inline script (CSP)
    progress = c.get(f"{job_url}/progress")
    assert progress.headers["cache-control"] == "no-store"
    assert progress.json()["state"] == "queued" and progress.json()["finished"] is False
    with world.vault.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.params["case_id"] == world.case_id
        assert sorted(job.params["recording_ids"]) == sorted([world.rec["river"],
                                                              world.rec["river2"]])
        assert job.created_by == "asb" and job.params["recipient"] == "DC Sam Patel"
    _run(c, job_id)
    done = c.get(f"{job_url}/progress").json()
    assert done["state"] == "succeeded" and done["percent"] == 100 and done["finished"]
    ready = c.get(job_url)
    assert "Package ready" in ready.text and "progress.js" not in ready.text
    package = c.get(done["package"])
    assert package.status_code == 200
    assert "no-store" in package.headers["cache-control"]
    assert package.headers["content-disposition"].startswith("attachment")
    path = tmp_path / "package.zip"
    path.write_bytes(package.content)
    summary = verify_export(path, world.vault.ledger.verifier_key())
    assert summary["files"] == 2
    with zipfile.ZipFile(path) as archive:
        assert "custody-certificate.json" in archive.namelist()
    downloads = [e.event for e in world.vault.ledger.events(action=Action.DOWNLOADED.value,
                                                             limit=100)]
    assert downloads[-1].actor == "asb"
    assert downloads[-1].details["job_id"] == job_id
    assert downloads[-1].details["case_id"] == world.case_id
    exported = world.vault.ledger.events(action=Action.EXPORTED.value, limit=10)
    assert exported and exported[-1].event.recipient == "DC Sam Patel"
    # The organisation's IG officer sees the case, so the job and package too.
    ig = world.client("ig")
    assert ig.get(job_url).status_code == 200
    assert ig.get(done["package"]).status_code == 200


def test_only_those_who_see_the_case_and_every_item_start_or_see_an_export(
        world: World) -> None:
    """Issue #12 item 6: an ASB officer who is not a member (another site), an IG officer of
    another organisation and an auditor (no case reading) are refused the form, the start,
    the job page, its progress and its package (403, each logged), and nothing is queued; an
    IG officer who sees a case but not one of its items may not export it; a job of another
    case is not found under this one."""
    member = world.client("asb")
    job_id = _start(world, member, world.case_id)
    _run(member, job_id)
    job_url = f"/casework/{world.case_id}/exports/{job_id}"
    jobs, denied = world.jobs(), world.denials()
    refusals = 0
    for user in ("asb_oak", "ig_east", "auditor"):
        c = world.client(user)
        token = csrf_of(c.get("/account").text)
        assert c.get(f"/casework/{world.case_id}/export").status_code == 403
        r = c.post(f"/casework/{world.case_id}/export", data={"csrf_token": token, **FORM})
        assert r.status_code == 403, user
        for path in (job_url, f"{job_url}/progress", f"{job_url}/package"):
            r = c.get(path)
            assert r.status_code == 403, (user, path)
            assert "DC Sam Patel" not in r.text
        refusals += 5
    assert world.jobs() == jobs
    assert world.denials() >= denied + refusals
    ig = world.client("ig")
    assert ig.get(f"/casework/{world.mixed_case_id}").status_code == 200
    token = csrf_of(ig.get("/account").text)
    r = ig.post(f"/casework/{world.mixed_case_id}/export", data={"csrf_token": token, **FORM})
    assert r.status_code == 403 and world.jobs() == jobs
    # Under the other case's address the job is not found (no reaching a job by its id).
    assert ig.get(f"/casework/{world.mixed_case_id}/exports/{job_id}").status_code == 404


def test_the_export_form_refuses_a_missing_csrf_token_and_missing_fields(world: World) -> None:
    """Issue #12 item 6: the export form without its CSRF token is refused (403, logged,
    nothing queued); without a recipient, organisation, purpose or lawful basis it comes back
    with a message on each field and nothing is queued."""
    c = world.client("asb")
    jobs, denied = world.jobs(), world.denials()
    r = c.post(f"/casework/{world.case_id}/export", data=FORM)
    assert r.status_code == 403 and world.jobs() == jobs
    assert world.denials() == denied + 1
    token = csrf_of(c.get(f"/casework/{world.case_id}/export").text)
    r = c.post(f"/casework/{world.case_id}/export", data={"csrf_token": token})
    assert r.status_code == 400 and world.jobs() == jobs
    for text in ("Enter the name of the person", "Enter their organisation",
                 "Say why the footage is disclosed", "Enter the lawful basis"):
        assert text in r.text


def test_progress_moves_item_by_item_while_the_package_is_built(world: World) -> None:
    """Issue #12 item 6: while the job runs, the progress the page polls moves with each item
    put into the package ("checked and added item 1 of 2", then 2 of 2), between "gathering"
    and "storing", rather than sitting at one figure until the end."""
    from vault.casework.jobs import JobContext, JobKind, get_job, run_export

    c = world.client("asb")
    job_id = _start(world, c, world.case_id)
    seen: list[tuple[int, str]] = []
    progress_url = f"/casework/{world.case_id}/exports/{job_id}/progress"

    def watched(ctx: JobContext) -> dict[str, Any]:
        report = ctx.progress

        def progress(fraction: float, message: str | None = None, *, force: bool = False) -> None:
            report(fraction, message, force=force)
            # What the officer's page reads at this moment, through the route itself.
            state = c.get(progress_url).json()
            seen.append((state["percent"], state["message"]))

        ctx.progress = progress  # type: ignore[method-assign]
        return run_export(ctx)

    c.app.state.jobs.register(JobKind.EXPORT, watched)  # type: ignore[attr-defined]
    _run(c, job_id)
    assert get_job(world.vault, job_id).state is JobState.SUCCEEDED
    messages = [m for _, m in seen]
    assert messages == ["gathering and checking recordings", "checked and added item 1 of 2",
                        "checked and added item 2 of 2", "storing the package encrypted"]
    percents = [p for p, _ in seen]
    assert percents == sorted(percents) and percents[1] < percents[2] < percents[3]


def test_a_case_without_evidence_is_not_exported(world: World) -> None:
    """Issue #12 item 6: a case with no evidence left says so (400) and queues nothing."""
    asb = identity.get_user(world.vault, "asb")
    empty = case_ops.create_case(world.vault, reference="ASB/2026/0160", organisation=NORTH,
                                 actor=ADMIN, member_ids=(asb.id,))
    c = world.client("asb")
    jobs = world.jobs()
    token = csrf_of(c.get(f"/casework/{empty.id}/export").text)
    r = c.post(f"/casework/{empty.id}/export", data={"csrf_token": token, **FORM})
    assert r.status_code == 400 and "no evidence to export" in r.text
    assert world.jobs() == jobs


def test_a_failed_export_says_what_to_do(world: World) -> None:
    """Issue #12 item 6: when an item fails its integrity check while the package is built
    (a byte of its stored ciphertext changed), the job fails and its page says so in words
    an officer can act on (do not disclose another copy, tell the administrator with the job
    reference), shows what the vault recorded, and offers to start again; nothing is offered
    for download."""
    c = world.client("asb")
    job_id = _start(world, c, world.case_id)
    with world.vault.sessions() as session:
        key = session.scalar(select(Recording.object_key).where(
            Recording.id == world.rec["river2"]))
    stored = next(p for p in (world.vault.settings.home_dir).rglob("*")
                  if p.is_file() and key and p.name == Path(key).name)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    _run(c, job_id)
    job_url = f"/casework/{world.case_id}/exports/{job_id}"
    progress = c.get(f"{job_url}/progress").json()
    assert progress["state"] == "failed" and progress["finished"] and progress["package"] is None
    page = c.get(job_url)
    assert "The package could not be made" in page.text
    assert "failed its integrity check" in page.text and job_id in page.text
    assert f'href="/casework/{world.case_id}/export"' in page.text
    assert c.get(f"{job_url}/package").status_code == 404


@pytest.mark.parametrize(("error", "advice"), [
    ("Shredded: recording x was deleted", "deleted after the export was started"),
    ("NotFound: no recording x", "missing from the vault"),
    ("HashMismatch: sha256 differs", "failed its integrity check"),
    ("CiphertextError: segment 3", "failed its integrity check"),
    ("KeyUnavailable: key local-1", "encryption key"),
    ("StorageError: connection refused", "storage could not be reached"),
    ("OSError: No space left on device", "Start the export again"),
    (None, "Start the export again"),
])
def test_failure_advice_names_what_to_do(error: str | None, advice: str) -> None:
    """Issue #12 item 6: each kind of failure maps to advice a person can follow."""
    assert advice in failure_advice(error)


# --- in Chromium ------------------------------------------------------------------------------


def _populate(settings: Settings, tmp: Path) -> tuple[dict[str, str], dict[str, str], str]:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    secrets: dict[str, str] = {}
    recordings: dict[str, str] = {}
    with Vault.init(settings, clock=lambda: past) as vault:
        sites.register_site(vault, "Riverside", organisation=NORTH, actor=ADMIN)
        secrets["asb"] = _enrol(vault, "asb", Role.ASB_OFFICER, NORTH, ["Riverside"], past)
        start = past - dt.timedelta(hours=20)
        for key, offset, hz in (("a", 0, 440), ("b", 6, 660)):
            media = make_footage(tmp / f"{key}.mp4", frequency=hz)
            at = start + dt.timedelta(seconds=offset)
            with media.open("rb") as f:
                recordings[key] = vault.put_stream(
                    f,
                    cctv_video("cam-river-1", "Riverside", at, dt.timedelta(seconds=6),
                               name=f"river-{key}.mp4"),
                    actor=ADMIN,
                ).id
        officer = Actor(user="asb", role=Role.ASB_OFFICER, organisation=NORTH)
        case = case_ops.create_case(vault, reference="ASB/2026/0142", organisation=NORTH,
                                    actor=officer, title="Stairwell door, Riverside block B",
                                    member_ids=(identity.get_user(vault, "asb").id,))
        for rid in recordings.values():
            case_ops.link_recording(vault, case.id, rid, actor=officer)
        recordings["case"] = case.id
    return secrets, recordings, ""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("export")
    home = tmp / "home"
    settings = Settings(home=home, segment_size=SEGMENT)
    secrets, recordings, zone = _populate(settings, tmp)
    with run_serve(home) as url:
        yield Served(url=url, home=home, settings=settings, secrets=secrets,
                     recordings=recordings, zone=zone)



@pytest.mark.slow
def test_asb_officer_exports_a_case_and_downloads_a_package_that_verifies(
        contexts: Callable[..., Any], served: Served, tmp_path: Path) -> None:
    """Issue #12 item 6 in Chromium: the ASB officer opens the case, presses "Export
    disclosure package", fills in the recipient, purpose and lawful basis, and lands on the
    job's page, which shows the job waiting (no worker yet); a real ``evidence-vault worker``
    starts, the page follows the job by itself (static/progress.js) to "Package ready", and the
    downloaded package passes the vault's offline verifier with the vault's key. axe-core and
    CSP on every page; the download is no-store."""
    officer = Checked(contexts(accept_downloads=True), served)
    page = officer.page
    served.sign_in(page, "asb")
    case_url = f"{served.url}/casework/{served.recordings['case']}"
    page.goto(f"{served.url}/purpose?next=/casework/{served.recordings['case']}")
    page.fill("#reference", "ASB/2026/0142")
    page.fill("#purpose", "Disclose the stairwell footage to the police")
    page.fill("#lawful_basis", "DPA 2018 s.35 law enforcement")
    page.click("main form button[type=submit]")
    page.wait_for_url(case_url)
    page.click("#export-case")
    page.wait_for_url("**/export")
    for name, value in FORM.items():
        page.fill(f"#{name}", value)
    officer.audit("20-export-new")
    page.click("#start-export")
    page.wait_for_url("**/exports/*")
    assert page.locator("#export-bar").count() == 1
    assert "No job worker is running" in page.inner_text("main")
    officer.audit("21-export-progress")
    with run_worker(served.home):
        # No navigation by the test: progress.js polls and reloads when the job is done.
        page.wait_for_selector("#download-package", timeout=120_000)
    assert "Package ready" in page.inner_text("h1")
    officer.audit("22-export-ready")
    with page.expect_download() as download:
        page.click("#download-package")
    saved = Path(download.value.path())
    with served.open_vault() as vault:
        summary = verify_export(saved, vault.ledger.verifier_key())
        assert summary["files"] == 2
        with vault.sessions() as session:
            state = session.scalar(select(Job.state).order_by(Job.created_at.desc()))
        assert state == JobState.SUCCEEDED
    # The same request as the browser's download, with its cookies: the headers it carried.
    href = page.get_attribute("#download-package", "href")
    answer = page.context.request.get(served.url + str(href))
    assert answer.status == 200 and "no-store" in answer.headers["cache-control"]
    assert answer.headers["content-disposition"].startswith("attachment")
