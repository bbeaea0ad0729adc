"""Benchmark: the web app's search and case pages at council scale, and time to first frame.

    python benchmarks/web.py                        # 10,000 recordings, 100,000 custody events
    python benchmarks/web.py --recordings 2000 --events 20000 --requests 20 --frames 3

A vault is created in a temporary directory (SQLite catalog, the embedded default) holding
``--recordings`` catalog rows over 40 cameras at 8 sites across 30 days, ``--events`` custody
events naming them (real ledger appends: hash-chained, Merkle tree, signed checkpoints), and a
case of 20 items. Each page is requested ``--requests`` times in-process (the ASGI app, no
network) and its server time measured:

- **find**: an ASB officer's search of one day at their site (25 results a page, the
  ``searched`` custody event written each time), first page and page 3;
- **case**: the information-governance officer's case page, with every item's custody
  history proved against the signed checkpoint (the "Verified" marks).

The anchor, same run, same vault: the API's ``GET /recordings`` for the same window (same
policy, same search and custody event, JSON instead of HTML), and ``/healthz`` (the
framework's floor).

Time to first video frame: a real ``evidence-vault serve`` on loopback and Debian's headless
Chromium (Playwright); from navigating to the watch page of a 6-second H.264 recording to the
player having decoded a frame and advanced (``videoWidth > 0``, ``currentTime > 0``),
``--frames`` times. Needs /usr/bin/chromium; skipped with a note without it.

Prints p50/p99 per row and ends with one summary line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import insert

from api.app import create_app
from ingest._ffmpeg import ffmpeg_exe
from vault.casework import cases as case_ops
from vault.access import credentials, identity
from vault.casework import sites
from vault.actors import Actor, Role
from vault.storage.catalog import MediaKind, Recording, Source, SourceKind, new_id
from vault.config import Settings
from vault.ledger.custody import Action
from vault.vault import Vault
from vault.capture import Capture

ORG = "Northside Homes"
PASSWORD = "stairwell-door-2026"
OPERATOR = Actor(user="local:bench", role=Role.ADMINISTRATOR, organisation=ORG)
SITES = [f"Site {i}" for i in range(8)]
CAMERAS = 40
DAYS = 30
CHROMIUM = "/usr/bin/chromium"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def populate(vault: Vault, n_recordings: int, n_events: int, now: dt.datetime) -> dict[str, Any]:
    """Catalog rows, custody events and users; returns what the requests need."""
    for site in SITES:
        sites.register_site(vault, site, organisation=ORG, actor=OPERATOR)
    secrets = {}
    for name, role, assigned in (("asb", Role.ASB_OFFICER, [SITES[0]]),
                                 ("ig", Role.IG_OFFICER, [])):
        user = identity.create_user(vault, name=name, role=role, organisation=ORG,
                                    sites=assigned, actor=OPERATOR)
        credentials.set_password(vault, name, PASSWORD, actor=OPERATOR)
        secret = credentials.begin_enrolment(vault, user.id, issuer="bench").secret
        credentials.check_code(vault, user.id, pyotp.TOTP(secret).at(now), enrolling=True)
        secrets[name] = secret
    token = identity.issue_token(vault, "asb", actor=OPERATOR).token
    # Catalog rows straight into the tables (their ciphertext is never read by these pages):
    # storing 10,000 real objects would measure ingest, not the pages.
    start = now - dt.timedelta(days=DAYS)
    step = dt.timedelta(days=DAYS) / max(1, n_recordings // CAMERAS)
    rows, ids = [], []
    with vault.sessions.begin() as session:
        for c in range(CAMERAS):
            session.add(Source(id=f"cam-{c:02d}", kind=SourceKind.CCTV, site=SITES[c % len(SITES)],
                               organisation=ORG, created_at=start))
    for i in range(n_recordings):
        at = start + step * (i // CAMERAS)
        rid = new_id()
        ids.append(rid)
        rows.append({
            "id": rid, "source_id": f"cam-{i % CAMERAS:02d}", "media_kind": MediaKind.VIDEO,
            "captured_start": at, "captured_end": at + dt.timedelta(minutes=5),
            "received_at": at, "clock_flagged": False, "original_name": f"r{i}.mp4",
            "content_type": "video/mp4", "size": 50_000_000, "sha256": f"{i:064x}",
            "object_key": f"bench/{rid}", "stored_size": 50_100_000, "enc_format": "bench",
            "wrapped_dek": b"\0" * 61, "key_id": "local-1",
            "retain_until": at + dt.timedelta(days=23)})
    with vault.sessions.begin() as session:
        for lo in range(0, len(rows), 2000):
            session.execute(insert(Recording), rows[lo:lo + 2000])
    made = 0
    batch = 2000
    while made < n_events:
        events = []
        for k in range(min(batch, n_events - made)):
            i = made + k
            rid = ids[i % len(ids)]
            events.append(vault.ledger.event(
                Action.INGESTED if i < len(ids) else Action.VIEWED, actor=f"officer-{i % 40}",
                actor_role="asb_officer", actor_org=ORG, object_ids=[rid],
                hashes={rid: f"{i % len(ids):064x}"},
                purpose="ASB investigation", reference=f"ASB/2026/{i % 300:04d}",
                details={"i": i}))
        vault.ledger.record_many(events)
        made += len(events)
    vault.ledger.checkpoint()
    asb = identity.get_user(vault, "asb")
    officer = Actor(user="asb", role=Role.ASB_OFFICER, organisation=ORG)
    case = case_ops.create_case(vault, reference="ASB/2026/0142", organisation=ORG,
                                actor=officer, member_ids=(asb.id,))
    for rid in ids[:20 * CAMERAS:CAMERAS]:  # 20 recordings of camera 0 (Site 0)
        case_ops.link_recording(vault, case.id, rid, actor=officer)
    day = (start + step * (len(ids) // CAMERAS // 2)).date()
    return {"secrets": secrets, "token": token, "case": case.id, "day": day,
            "recording_ids": ids}


def sign_in(client: TestClient, user: str, secret: str, at: dt.datetime) -> None:
    from tests.web.conftest import csrf_of

    r = client.post("/sign-in", data={"username": user, "password": PASSWORD,
                                      "csrf_token": csrf_of(client.get("/sign-in").text)})
    r = client.post("/sign-in/code", data={"code": pyotp.TOTP(secret).at(at),
                                           "csrf_token": csrf_of(r.text)})
    assert r.status_code == 200 and str(r.url).endswith("/find"), r.text[:200]


def timed(client: TestClient, path: str, n: int, **kwargs: Any) -> list[float]:
    client.get(path, **kwargs)  # warm (templates compiled, caches filled)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path, **kwargs)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return times


def first_frames(home: Path, recording_id: str, secret: str, n: int) -> list[float] | str:
    """Seconds from navigating to the watch page to a decoded, advancing frame, ``n`` times."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "playwright not installed"
    from tests.servers import free_port

    port = free_port()
    env = {**os.environ, "EVIDENCE_VAULT_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "api", "serve", "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    return "serve did not start"
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--autoplay-policy=no-user-gesture-required"])
            page = browser.new_page()
            page.goto(f"{url}/sign-in")
            page.fill("#username", "asb")
            page.fill("#password", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_url("**/sign-in/code**")
            page.fill("#code", pyotp.TOTP(secret).now())
            page.click("main button[type=submit]")
            page.wait_for_url("**/find")
            page.goto(f"{url}/purpose?next=/find")
            page.fill("#reference", "ASB/2026/0142")
            page.fill("#purpose", "Benchmark")
            page.fill("#lawful_basis", "Benchmark")
            page.click("main form button[type=submit]")
            page.wait_for_url("**/find")
            times = []
            for _ in range(n):
                t = time.perf_counter()
                page.goto(f"{url}/watch/{recording_id}")
                page.evaluate("() => { const v = document.getElementById('player'); "
                              "v.muted = true; return v.play(); }")
                page.wait_for_function("() => { const v = document.getElementById('player'); "
                                       "return v.videoWidth > 0 && v.currentTime > 0; }",
                                       timeout=30_000)
                times.append((time.perf_counter() - t) * 1000)
                page.goto(f"{url}/find")
            browser.close()
            return times
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def footage(tmp: Path) -> Path:
    path = tmp / "clip.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=6",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
         "-movflags", "+faststart", str(path)], check=True, capture_output=True, timeout=120)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--frames", type=int, default=5)
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home)
        t = time.perf_counter()
        with Vault.init(settings, clock=lambda: now) as vault:
            world = populate(vault, args.recordings, args.events, now)
            with footage(Path(tmp)).open("rb") as f:
                video = vault.put_stream(
                    f,
                    Capture(
                        source_id="cam-00",
                        source_kind=SourceKind.CCTV,
                        site=SITES[0],
                        captured_at=now - dt.timedelta(hours=1),
                        captured_end=now - dt.timedelta(hours=1) + dt.timedelta(seconds=6),
                        media_kind=MediaKind.VIDEO,
                        original_name="clip.mp4",
                    ),
                    actor=OPERATOR,
                ).id
            setup_s = time.perf_counter() - t
        clock_now = [now]

        def clock() -> dt.datetime:
            return clock_now[0]

        vault = Vault.open(settings, clock=clock)
        app = create_app(settings, vault=vault)
        rows: dict[str, list[float]] = {}
        with TestClient(app, base_url="http://127.0.0.1") as asb, \
                TestClient(app, base_url="http://127.0.0.1") as ig, \
                TestClient(app, base_url="http://127.0.0.1") as api:
            clock_now[0] = now + dt.timedelta(seconds=31)
            sign_in(asb, "asb", world["secrets"]["asb"], clock_now[0])
            sign_in(ig, "ig", world["secrets"]["ig"], clock_now[0])
            query = f"site={SITES[0].replace(' ', '+')}&day={world['day']}&from=00:00&to=23:59"
            rows["find (ASB officer, 1 day, page 1)"] = timed(asb, f"/find?{query}", args.requests)
            rows["find (page 3)"] = timed(asb, f"/find?{query}&page=3", args.requests)
            rows["case (IG officer, 20 items, histories verified)"] = timed(
                ig, f"/casework/{world['case']}", args.requests)
            day = dt.datetime.combine(world["day"], dt.time(0), tzinfo=dt.UTC)
            rows["anchor: API GET /recordings (same window)"] = timed(
                api, "/recordings", args.requests,
                params={"site": SITES[0], "since": day.isoformat(),
                        "until": (day + dt.timedelta(days=1)).isoformat(), "limit": 26},
                headers={"Authorization": f"Bearer {world['token']}"})
            rows["anchor: /healthz"] = timed(api, "/healthz", args.requests)
        vault.close()
        frames = first_frames(home, video, world["secrets"]["asb"], args.frames)

    print(f"web pages: {args.recordings:,} recordings, {args.events:,} custody events "
          f"(set up in {setup_s:.0f} s), {args.requests} requests each, in-process")
    print(f"{'page':<50} {'p50 ms':>8} {'p99 ms':>8}")
    for name, times in rows.items():
        print(f"  {name:<48} {statistics.median(times):>8.1f} {pct(times, 0.99):>8.1f}")
    if isinstance(frames, str):
        print(f"first video frame: skipped ({frames})")
        frame_text = "first frame skipped"
    else:
        print(f"first video frame (navigate -> decoded, advancing; 720p H.264, loopback, "
              f"headless Chromium): p50 {statistics.median(frames):.0f} ms, "
              f"max {max(frames):.0f} ms over {len(frames)}")
        frame_text = f"first frame p50 {statistics.median(frames):.0f} ms"
    find, case = rows["find (ASB officer, 1 day, page 1)"], rows[
        "case (IG officer, 20 items, histories verified)"]
    anchor = rows["anchor: API GET /recordings (same window)"]
    print(f"summary: find p50 {statistics.median(find):.0f} ms / p99 {pct(find, 0.99):.0f} ms "
          f"(API {statistics.median(anchor):.0f} ms), case p50 {statistics.median(case):.0f} ms / "
          f"p99 {pct(case, 0.99):.0f} ms, {frame_text}, with {args.recordings:,} recordings and "
          f"{args.events:,} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
