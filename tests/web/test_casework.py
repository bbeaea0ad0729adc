"""Issue #12, second slice, in real headless Chromium against a real ``serve`` on loopback.

The ASB officer marks in on one recording and out on the next (a clip across the segment
boundary, cut by the API's own path), starts a case with the clip (its masters come too), and
shares the case's evidence; the police recipient, in a fresh browser with no account, reads the
terms, plays the clip, downloads it after acknowledging the terms and checks the file in the
browser (SHA-256 with WebCrypto; a tampered copy fails); the officer revokes the link and it
stops working; the IG officer reads the case's custody history, every event verified against
the signed checkpoint, closes the case, and sees what retention will delete in the next 7 days
(their organisation's only) and a deletion certificate that verifies. Every page passes
axe-core (no serious or critical violation) and the browser's CSP enforcement, and no request
leaves loopback. With ``EVIDENCE_VAULT_SCREENSHOTS`` set, each page is photographed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.web.conftest import (
    PASSWORD,
    SEGMENT,
    Checked,
    Served,
    make_footage,
    run_serve,
)
from vault.casework import cases as case_ops
from vault.access import credentials, identity
from vault.casework import sites
from vault.actors import Actor, Purpose, Role
from vault.config import Settings
from vault.ledger.rfc8785 import canonical_json
from vault.casework.disclosure import build_export
from vault.casework.retention import run_retention, verify_deletion_certificate
from vault.vault import Vault
from tests.captures import cctv_video

pytestmark = pytest.mark.slow

NORTH, EAST = "Northside Homes", "Eastgate Housing"
ADMIN = Actor(user="local:test", role=Role.ADMINISTRATOR)


def _populate(settings: Settings, tmp: Path) -> tuple[dict[str, str], dict[str, str], str]:
    """Two consecutive 6 s recordings from cam-river-1 (yesterday 14:30:00 and 14:30:06 UK
    time), footage due for deletion in 4 days at Riverside and at another organisation's
    Eastgate, and a 30-day-old recording already deleted (its certificate exists)."""
    from api.web.uktime import UK

    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    secrets: dict[str, str] = {}
    recordings: dict[str, str] = {}
    yesterday = (dt.datetime.now(UK) - dt.timedelta(days=1)).date()
    start = dt.datetime.combine(yesterday, dt.time(14, 30), tzinfo=UK).astimezone(dt.UTC)
    with Vault.init(settings, clock=lambda: past) as vault:
        for site, org in (("Riverside", NORTH), ("Eastgate", EAST)):
            sites.register_site(vault, site, organisation=org, actor=ADMIN)
        for name, role, org, assigned in (("asb", Role.ASB_OFFICER, NORTH, ["Riverside"]),
                                          ("ig", Role.IG_OFFICER, NORTH, [])):
            user = identity.create_user(vault, name=name, role=role, organisation=org,
                                        sites=assigned, actor=ADMIN)
            credentials.set_password(vault, name, PASSWORD, actor=ADMIN)
            enrolment = credentials.begin_enrolment(vault, user.id, issuer="test")
            credentials.check_code(vault, user.id, pyotp.TOTP(enrolment.secret).at(past),
                                   enrolling=True)
            secrets[name] = enrolment.secret
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
        for key, source, site, days in (("river_due", "cam-river-2", "Riverside", 19),
                                        ("east_due", "cam-east-2", "Eastgate", 19),
                                        ("river_old", "cam-river-3", "Riverside", 30)):
            at = past - dt.timedelta(days=days)
            recordings[key] = vault.put_stream(
                io.BytesIO(key.encode() * 100),
                cctv_video(source, site, at, dt.timedelta(minutes=5), name=f"{source}.mp4"),
                actor=ADMIN,
            ).id
        run_retention(vault)
    return secrets, recordings, start.astimezone(UK).tzname() or ""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("casework")
    home = tmp / "home"
    settings = Settings(home=home, segment_size=SEGMENT)
    secrets, recordings, zone = _populate(settings, tmp)
    with run_serve(home) as url:
        yield Served(url=url, home=home, settings=settings, secrets=secrets,
                     recordings=recordings, zone=zone)



def _play(page: Any, selector: str) -> None:
    """Play a <video> muted until a frame is decoded and time advances."""
    page.evaluate("(s) => { const v = document.querySelector(s); v.muted = true; "
                  "return v.play(); }", selector)
    page.wait_for_function(
        "(s) => { const v = document.querySelector(s); "
        "return v.videoWidth > 0 && v.currentTime > 0.5; }", arg=selector, timeout=30_000)


def _seek(page: Any, seconds: float) -> None:
    page.evaluate(f"() => {{ const v = document.getElementById('player'); v.pause(); "
                  f"v.currentTime = {seconds}; }}")
    page.wait_for_function(
        "() => { const v = document.getElementById('player'); "
        f"return !v.seeking && Math.abs(v.currentTime - {seconds}) < 0.01 && v.readyState >= 2; }}",
        timeout=20_000)


def _flip_byte_in_clip(package: Path, out: Path) -> None:
    """One bit of the clip's bytes changed inside the (stored) package."""
    data = bytearray(package.read_bytes())
    with zipfile.ZipFile(package) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(".mp4"))
    with package.open("rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0x01
    out.write_bytes(bytes(data))


def _rewrite(package: Path, out: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """The package again with its custody certificate edited (everything else unchanged)."""
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "custody-certificate.json":
                document = json.loads(data)
                edit(document)
                data = json.dumps(document, indent=2).encode()
            dst.writestr(info.filename, data)


def _edit_certificate(package: Path, out: Path) -> None:
    def edit(document: dict[str, Any]) -> None:
        document["certificate"]["events"] = document["certificate"]["events"][1:]
    _rewrite(package, out, edit)


def _break_a_proof(package: Path, out: Path, vault: Vault) -> None:
    """One audit path changed, and the certificate signed again with the vault's own key (as
    a vault whose log was rewritten would): only the inclusion proof check catches it."""
    def edit(document: dict[str, Any]) -> None:
        payload = document["certificate"]
        item = next(e for e in payload["events"] if e.get("proof"))
        item["proof"][0] = "00" * 32
        document["signed_note"] = vault.signer.sign_note(
            f"evidence-vault custody certificate v1\n{canonical_json(payload).decode()}\n")
    _rewrite(package, out, edit)


def test_asb_clip_case_share_recipient_and_ig_review(contexts: Callable[..., Any],
                                                      served: Served, tmp_path: Path) -> None:
    """Issue #12 (second slice): clip across a segment boundary -> case -> share -> police
    recipient plays, downloads within the limit after acknowledging, verifies the file in the
    browser (a tampered copy fails) -> revoked link stops -> IG officer sees each item's
    custody history verified against the signed checkpoint, closes the case, and reads the
    7-day retention forecast and a deletion certificate. axe-core and CSP on every page."""
    officer = Checked(contexts(), served)
    page = officer.page
    served.sign_in(officer.page, "asb")

    # --- clip: mark in on the first recording (keyboard), out on the next (button) ----------
    page.goto(served.url + f"/watch/{served.recordings['a']}")
    page.wait_for_url("**/purpose**")
    page.fill("#reference", "ASB/2026/0142")
    page.fill("#purpose", "Identify who damaged the stairwell door")
    page.fill("#lawful_basis", "Anti-social Behaviour, Crime and Policing Act 2014")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"**/watch/{served.recordings['a']}")
    _play(page, "#player")
    _seek(page, 4.0)
    page.focus("#player")
    page.keyboard.press("i")  # by keyboard alone, while the player has focus
    assert page.input_value("#clip-start").startswith("14:30:04")
    page.click("#next-recording")
    page.wait_for_url(f"**/watch/{served.recordings['b']}")
    # The in mark came along (this tab's sessionStorage), so the clip spans both recordings.
    assert page.input_value("#clip-start").startswith("14:30:04")
    _play(page, "#player")
    _seek(page, 2.0)
    page.click("#mark-out")
    assert page.input_value("#clip-end").startswith("14:30:08")
    officer.audit("09-watch-mark-in-out")
    page.click("#cut-clip")
    page.wait_for_url("**made=1", timeout=120_000)
    assert page.locator("#made-from tbody tr").count() == 2  # across the segment boundary
    clip_id = page.url.split("/watch/")[1].split("?")[0]
    _play(page, "#player")
    officer.audit("10-clip-made")
    with served.open_vault() as vault:
        clip = vault.recording(clip_id)
        assert clip.provenance and clip.provenance["kind"] == "clip"
        assert {s["id"] for s in clip.provenance["sources"]} == {
            served.recordings["a"], served.recordings["b"]}
        assert 95 <= clip.provenance["frame_count"] <= 105  # 4 s at 25 fps
        clip_sha = clip.sha256

    # --- case: start one with the clip; its masters come too --------------------------------
    page.click("text=Start a new case with this recording")
    page.wait_for_url("**/casework/new?recording=*")
    page.fill("#reference", "ASB/2026/0142")
    page.fill("#title", "Stairwell door, Riverside block B")
    officer.audit("11-case-new")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/casework/*-*")
    case_url = page.url
    assert page.locator("#case-items tbody tr").count() == 3  # the clip and both masters
    assert "Your role does not read the custody log" in page.content()
    officer.audit("12-case")

    # --- share the case's evidence ---------------------------------------------------------
    page.click("text=Share this case's evidence with someone outside")
    page.wait_for_url("**/sharing/new?*")
    page.fill("#recipient", "DC Sam Patel")
    page.fill("#email", "sam.patel@police.example.uk")
    page.fill("#recipient_org", "Northshire Police")
    page.fill("#purpose", "Investigation of criminal damage, crime 41/22817/26")
    page.fill("#lawful_basis", "DPA 2018 s.35 law enforcement")
    page.check("#access-download")
    page.fill("#max_downloads", "2")
    officer.audit("13-share-new")
    page.click("main form button[type=submit]")
    page.wait_for_selector("#share-link")
    link = page.input_value("#share-link")
    assert link.startswith(served.url + "/s/evs_")
    officer.audit("14-share-created")
    page.goto(served.url + "/sharing")
    assert "Active" in page.inner_text("#shares")
    officer.audit("15-shares")

    # --- the police recipient: a fresh browser, no account -----------------------------------
    police = Checked(contexts(accept_downloads=True), served)
    rp = police.page
    rp.goto(link)
    for text in ("DC Sam Patel", "Northshire Police", "crime 41/22817/26", "asb",
                 "2 downloads left"):
        assert text in rp.content(), text
    clip_video = f"video[data-recording='{clip_id}']"
    _play(rp, clip_video)
    streams = [r for r in police.responses if "/stream" in r.url]
    assert streams and all(r.status == 206 for r in streams)  # the share's capped window
    assert all("no-store" in r.headers.get("cache-control", "") for r in streams)
    police.audit("16-recipient")
    form = f"form[action$='/recordings/{clip_id}/download']"
    rp.click(f"{form} button[type=submit]")  # without the acknowledgement
    rp.wait_for_selector(".govuk-error-summary")
    assert "Confirm that you will handle" in rp.content()
    police.problems.clear()  # the 400 itself is reported on the console
    rp.check(f"{form} input[name=acknowledge]")
    with rp.expect_download() as download:
        rp.click(f"{form} button[type=submit]")
    saved = Path(download.value.path())
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == clip_sha
    rp.set_input_files("#check-file", str(saved))
    rp.wait_for_selector("#check-result[data-matches=yes]")
    tampered = tmp_path / "clip-tampered.mp4"
    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    rp.set_input_files("#check-file", str(tampered))
    rp.wait_for_selector("#check-result[data-matches=no]")
    assert "does NOT match" in rp.inner_text("#check-result")
    rp.reload()
    assert "1 download left" in rp.content()

    # --- a disclosure package of the clip, verified in the browser against the vault's key ---
    package = tmp_path / "package.zip"
    with served.open_vault() as vault:
        build_export(vault, [clip_id], package, actor=ADMIN, recipient="DC Sam Patel",
                     recipient_org="Northshire Police",
                     purpose=Purpose("Disclosure for crime 41/22817/26", "DPA 2018 s.35",
                                     "ASB/2026/0142"))
    rp.set_input_files("#check-file", str(package))
    rp.wait_for_selector("#check-result[data-verdict=pass]", timeout=30_000)
    # The refused download's 400 reaches the console late; any other problem still fails.
    police.problems[:] = [p for p in police.problems if "status of 400" not in p]
    police.audit("17-recipient-package-verified")
    with served.open_vault() as vault:
        forgeries: list[tuple[str, Callable[[Path, Path], None], str]] = [
            ("bytes", _flip_byte_in_clip, "has been modified"),
            ("certificate", _edit_certificate, "differs from what was signed"),
            ("proof", lambda src, dst: _break_a_proof(src, dst, vault), "is not in the signed log"),
        ]
        for name, tamper, _reason in forgeries:
            tamper(package, tmp_path / f"package-{name}.zip")
    for name, _tamper, reason in forgeries:
        bad = tmp_path / f"package-{name}.zip"
        rp.set_input_files("#check-file", str(bad))
        rp.wait_for_selector("#check-result[data-verdict=fail]", timeout=30_000)
        assert reason in rp.inner_text("#check-result"), (name, rp.inner_text("#check-result"))
    assert not [r for r in police.responses if r.request.method == "POST"
                and "/download" not in r.url]  # nothing uploaded

    # --- the officer revokes the link; it stops at once --------------------------------------
    page.goto(served.url + "/sharing")
    page.fill("#shares input[name=reason]", "Sent to the wrong officer")
    page.click("#shares button[type=submit]")
    page.wait_for_url("**/sharing")
    assert "Revoked" in page.inner_text("#shares")
    answer = rp.goto(link)
    assert answer is not None and answer.status == 410
    assert "revoked" in rp.content()
    police.problems.clear()

    # --- the IG officer: custody history verified, close the case, retention ------------------
    ig = Checked(contexts(accept_downloads=True), served)
    gp = ig.page
    served.sign_in(ig.page, "ig")
    gp.goto(served.url + "/casework")
    gp.click("text=ASB/2026/0142")
    gp.wait_for_url(case_url)
    verified = gp.locator(".ev-history .ev-verified").count()
    assert verified >= 6 and gp.locator(".ev-unverified").count() == 0
    history = gp.inner_text(f".ev-history[data-item='{clip_id}']")
    assert "clip assembled" in history and "shared" in history
    ig.audit("18-case-history")
    gp.fill("#reason", "Police have taken the investigation over")
    gp.click("text=Close case")
    gp.wait_for_url(case_url)
    assert "Closed" in gp.inner_text("h1")
    gp.goto(served.url + "/retention")
    going = gp.inner_text("#retention-going")
    assert "cam-river-2" in going and "cam-east-2" not in gp.content()
    assert "cam-river-3" in gp.inner_text("#retention-deleted")
    ig.audit("19-retention")
    with gp.expect_download() as download:
        gp.click(f"#retention-deleted tr[data-recording='{served.recordings['river_old']}'] a")
    certificate = json.loads(Path(download.value.path()).read_text())
    with served.open_vault() as vault:
        verify_deletion_certificate(certificate, vault.ledger.verifier_key())
        closed = vault.ledger.events(action=case_ops.CLOSED, limit=10)
        assert closed and closed[-1].event.actor == "ig"
