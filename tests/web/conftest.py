"""Web app fixtures: a real ``evidence-vault serve`` on loopback, real footage, real Chromium.

The world (organisation "Northside Homes"):

- ``asb`` (ASB officer, site "Riverside", password and authenticator set up five minutes ago),
  ``asb_oak`` (ASB officer, site "Oak Park", set up likewise), ``newcomer`` (ASB officer,
  site "Riverside", a password but no authenticator yet).
- ``river``: a 6-second H.264/AAC MP4 made on the fly with ffmpeg, from camera
  ``cam-river-1`` at Riverside, captured yesterday at 14:30 UK time; ``oak``: the same from
  ``cam-oak-1`` at Oak Park. Stored in 64 KiB segments, so a seek reads across segments.

The authenticators were set up with the vault's clock five minutes back, so the code a test
computes now is in a later TOTP step than the one used at set-up (codes are single-use).
Chromium is Debian's (/usr/bin/chromium, installed by .ci/run) driven by Playwright; nothing
is downloaded. Without it the browser tests skip, or fail on CI.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest

from ingest._ffmpeg import ffmpeg_exe
from tests.conftest import on_ci
from tests.servers import free_port
from vault.access import credentials, identity
from vault.actors import Actor, Role
from vault.storage.catalog import MediaKind, SourceKind
from vault.config import Settings
from vault.vault import Vault
from vault.capture import Capture

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
AXE = Path(os.environ.get("EVIDENCE_VAULT_AXE", "~/.cache/evidence-vault/npm/node_modules/axe-core/axe.min.js")).expanduser()
ORG = "Northside Homes"
PASSWORD = "stairwell-door-2026"
SEGMENT = 64 * 1024
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation=ORG)
UK_FMT = "%Y-%m-%d"


def make_footage(path: Path, *, seconds: int = 6, frequency: int = 440) -> Path:
    """An H.264/AAC MP4 a browser plays: moov atom first (faststart), a keyframe each second."""
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=44100:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
         "-profile:v", "baseline", "-c:a", "aac", "-movflags", "+faststart", "-shortest",
         str(path)],
        check=True, capture_output=True, timeout=120)
    return path


@dataclass
class Served:
    """A running server and what the tests need to know about its vault."""

    url: str
    home: Path
    settings: Settings
    secrets: dict[str, str] = field(default_factory=dict)
    recordings: dict[str, str] = field(default_factory=dict)
    day: str = ""  # yesterday, UK date, YYYY-MM-DD
    zone: str = ""  # GMT or BST, yesterday at 14:30

    def code(self, user: str) -> str:
        """The user's current TOTP code."""
        return pyotp.TOTP(self.secrets[user]).now()

    def open_vault(self) -> Vault:
        return Vault.open(self.settings)

    def sign_in(self, page: Any, user: str, *, code: bool = True, **options: Any) -> None:
        """Sign ``user`` in through the pages (:func:`sign_in_page`) with their current code,
        or (``code=False``) only as far as the password, for a user who has none yet."""
        sign_in_page(page, self.url, user, (lambda: self.code(user)) if code else None,
                     **options)


def _populate(settings: Settings, tmp: Path) -> tuple[dict[str, str], dict[str, str], str, str]:
    from api.web.uktime import UK

    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    secrets: dict[str, str] = {}
    recordings: dict[str, str] = {}
    yesterday = (dt.datetime.now(UK) - dt.timedelta(days=1)).date()
    start = dt.datetime.combine(yesterday, dt.time(14, 30), tzinfo=UK).astimezone(dt.UTC)
    with Vault.init(settings, clock=lambda: past) as vault:
        for name, site, enrol in (("asb", "Riverside", True), ("asb_oak", "Oak Park", True),
                                  ("newcomer", "Riverside", False)):
            user = identity.create_user(vault, name=name, role=Role.ASB_OFFICER, organisation=ORG,
                                        sites=[site], actor=OPERATOR)
            credentials.set_password(vault, name, PASSWORD, actor=OPERATOR)
            if enrol:
                enrolment = credentials.begin_enrolment(vault, user.id, issuer="test")
                code = pyotp.TOTP(enrolment.secret).at(past)
                credentials.check_code(vault, user.id, code, enrolling=True)
                secrets[name] = enrolment.secret
        for key, source, site, hz in (("river", "cam-river-1", "Riverside", 440),
                                      ("oak", "cam-oak-1", "Oak Park", 880)):
            media = make_footage(tmp / f"{key}.mp4", frequency=hz)
            with media.open("rb") as f:
                rec = vault.put_stream(
                    f,
                    Capture(
                        source_id=source,
                        source_kind=SourceKind.CCTV,
                        site=site,
                        captured_at=start,
                        captured_end=start + dt.timedelta(seconds=6),
                        media_kind=MediaKind.VIDEO,
                        original_name=f"{source}.mp4",
                    ),
                    actor=OPERATOR,
                )
            recordings[key] = rec.id
    return secrets, recordings, yesterday.strftime(UK_FMT), start.astimezone(UK).tzname() or ""


@contextmanager
def run_serve(home: Path, port: int | None = None, **env: str) -> Iterator[str]:
    """A real ``evidence-vault serve`` (uvicorn, its own process) on ``home``; yields its URL.
    ``env``: more EVIDENCE_VAULT_* settings."""
    port = port or free_port()
    full = {**os.environ, "EVIDENCE_VAULT_HOME": str(home),
            "EVIDENCE_VAULT_SEGMENT_SIZE": str(SEGMENT), **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--port", str(port), "--log-level", "warning"],
        env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real ``evidence-vault serve`` over a populated vault."""
    tmp = tmp_path_factory.mktemp("web")
    home = tmp / "home"
    settings = Settings(home=home, segment_size=SEGMENT)
    secrets, recordings, day, zone = _populate(settings, tmp)
    with run_serve(home) as url:
        yield Served(url=url, home=home, settings=settings, secrets=secrets,
                     recordings=recordings, day=day, zone=zone)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium under Playwright (skips without it; fails on CI)."""
    reason = None
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} not found (apt-get install chromium; .ci/run does)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (pip install -e '.[test]')"
    if reason is not None:
        if on_ci():
            pytest.fail(f"{reason} (CI=true: nothing may be skipped)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's source, from the npm cache .ci/run fills (never fetched at test time)."""
    if not AXE.exists():
        message = f"axe-core not found at {AXE} (.ci/run installs it with npm)"
        if on_ci():
            pytest.fail(message)
        pytest.skip(message)
    return AXE.read_text()


@pytest.fixture
def contexts(browser: Any, axe_source: str) -> Iterator[Callable[..., Any]]:
    """Fresh browser contexts (each its own cookies and storage), closed after the test, with
    axe-core injected by the DevTools protocol rather than as a <script>: the CSP stays intact."""
    made: list[Any] = []

    def new(**options: Any) -> Any:
        ctx = browser.new_context(viewport={"width": 1100, "height": 800}, locale="en-GB",
                                  **options)
        ctx.add_init_script(script=axe_source)
        made.append(ctx)
        return ctx

    try:
        yield new
    finally:
        for ctx in made:
            ctx.close()


SHOTS = os.environ.get("EVIDENCE_VAULT_SCREENSHOTS")
SERIOUS = ("serious", "critical")


class Checked:
    """A page under watch: CSP reports, console errors, off-site requests, footage headers."""

    def __init__(self, context: Any, served: Served | Any) -> None:
        self.page = context.new_page()
        self.problems: list[str] = []
        self.responses: list[Any] = []
        self.page.on("console", self._console)
        self.page.on("request", self._request)
        self.page.on("response", lambda response: self.responses.append(response))
        self.base: str = served.url

    def _console(self, message: Any) -> None:
        text = message.text
        if message.type == "error" or "Content Security Policy" in text:
            self.problems.append(f"console {message.type}: {text}")

    def _request(self, request: Any) -> None:
        if not request.url.startswith(self.base) and not request.url.startswith("data:"):
            self.problems.append(f"off-site request: {request.url}")

    def audit(self, name: str) -> None:
        """axe-core on the page as it stands; a screenshot when asked for."""
        self.page.wait_for_load_state("load")
        result = self.page.evaluate(
            "async () => { const r = await axe.run(document); return r.violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map("
            "n => n.target.join(' ') + ': ' + (n.failureSummary || '').slice(0, 300))})); }")
        bad = [v for v in result if v["impact"] in SERIOUS]
        assert bad == [], f"{name}: axe-core found {bad}"
        assert self.problems == [], f"{name}: {self.problems}"
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)



def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in_page(page: Any, url: str, user: str, code: Callable[[], str] | None = None, *,
                 password: str = PASSWORD, start: str = "/sign-in",
                 at_step: Callable[[str], None] | None = None) -> None:
    """Sign ``user`` in through the pages in Chromium: open ``start`` (which must lead to the
    sign-in page), give the password, then, when ``code`` is given, the TOTP code it returns,
    and wait for the find page. Without ``code`` it stops after the password (enrolment and
    refusal tests go on from there). ``at_step`` is called with ``"sign-in"`` and ``"code"``
    on each page before it is filled (for screenshots and cookie checks)."""
    page.goto(url + start)
    assert "/sign-in" in page.url, page.url
    if at_step:
        at_step("sign-in")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("main button[type=submit]")
    if code is None:
        return
    page.wait_for_url("**/sign-in/code**")
    if at_step:
        at_step("code")
    page.fill("#code", code())
    page.click("main button[type=submit]")
    page.wait_for_url("**/find")


def sign_in_client(client: Any, user: str, code: Callable[[], str], *,
                   password: str = PASSWORD) -> Any:
    """Sign ``user`` in through the forms with a FastAPI TestClient (password, then the code
    ``code`` returns once the password is accepted); asserts the browser is sent on to the find
    page (which a role without search, an auditor, is then refused) and returns that response."""
    r = client.post("/sign-in", data={"username": user, "password": password,
                                      "csrf_token": csrf_of(client.get("/sign-in").text)})
    assert r.status_code == 200 and "/sign-in/code" in str(r.url), r.text[:300]
    r = client.post("/sign-in/code", data={"code": code(), "csrf_token": csrf_of(r.text)})
    assert str(r.url).endswith("/find"), r.text[:300]
    return r


def state_purpose(client: Any, reference: str = "ASB/1", purpose: str = "p",
                  lawful_basis: str = "b") -> None:
    """State the task's purpose through the purpose form (TestClient)."""
    r = client.post("/purpose", data={"csrf_token": csrf_of(client.get("/purpose").text),
                                      "purpose": purpose, "reference": reference,
                                      "lawful_basis": lawful_basis}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]


@contextmanager
def run_worker(home: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``evidence-vault worker`` (its own process) draining ``home``'s job queue."""
    full = {**os.environ, "EVIDENCE_VAULT_HOME": str(home),
            "EVIDENCE_VAULT_SEGMENT_SIZE": str(SEGMENT), **env}
    proc = subprocess.Popen([sys.executable, "-m", "api", "worker", "--log-level", "warning"],
                            env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
