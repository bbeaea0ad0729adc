"""Three users' journeys end to end through the HTTP API, on real footage with faces (issue #11,
"Must show"): where the parts meet is where they broke.

1. ASB officer: a clip across two segments -> a case (which keeps it) -> a share -> the
   police recipient plays it and downloads it within its limit.
2. ASB officer -> police: the clip in a disclosure package, whose own `verify_export.py`,
   run with `python -I` in an empty folder (no vault importable), passes; and fails after
   any tampering.
3. Information governance: a SAR registered, a camera window attached, the window redacted
   keeping the requester, disclosed before the deadline.

Jobs run inside the request (the queue's immediate mode); tests/vault/test_jobs.py runs a real
consumer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path


from redaction.synthetic import Face, face_visibility, linear, make_clip, read_frames, still
from tests.api.conftest import OPERATOR, T0, World
from vault.storage.catalog import MediaKind, SourceKind
from vault.capture import Capture

SEG = 2.0  # seconds per segment
START = T0 - dt.timedelta(hours=1)


def _segments(w: World, tmp_path: Path, source: str, site: str) -> list[str]:
    """Two consecutive 2 s segments with two people walking through, as a recorder writes."""
    people = [Face(linear(40, 90, 280, 140, 2 * SEG), 30),
              Face(linear(280, 160, 60, 100, 2 * SEG), 34, mirror=True, gain=0.9)]
    ids = []
    for n in range(2):
        shifted = [Face(lambda t, p=f.path, n=n: p(t + n * SEG), f.size, mirror=f.mirror,
                        gain=f.gain) for f in people]
        clip = make_clip(tmp_path / f"{source}-{n}.mp4", shifted, seconds=SEG, seed=7 + n)
        begin = START + dt.timedelta(seconds=n * SEG)
        rec = w.vault.put_file(
            clip.path,
            Capture(
                source_id=source,
                source_kind=SourceKind.CCTV,
                site=site,
                captured_at=begin,
                captured_end=begin + dt.timedelta(seconds=SEG),
                media_kind=MediaKind.VIDEO,
            ),
            actor=OPERATOR,
        )
        ids.append(rec.id)
    return ids


def _clip(w: World, who: str, source: str) -> dict:  # type: ignore[type-arg]
    window = {"source_id": source,
              "start": (START + dt.timedelta(seconds=1)).isoformat(),
              "end": (START + dt.timedelta(seconds=3)).isoformat()}
    made = w.client.post("/clips", json=window, headers=w.headers(who))
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def test_asb_clip_case_share_and_the_police_recipient(jw: World, tmp_path: Path) -> None:
    w = jw
    segments = _segments(w, tmp_path, "cam-river-5", "Riverside")
    asb = w.headers("asb")
    found = w.client.get("/recordings", params={"source": "cam-river-5"}, headers=asb).json()
    assert {r["id"] for r in found["items"]} == set(segments)

    clip = _clip(w, "asb", "cam-river-5")
    assert sorted(clip["source_recording_ids"]) == sorted(segments)
    assert 45 <= clip["frame_count"] <= 55  # 2 s at 25 fps, across the segment boundary

    linked = w.client.post(f"/cases/{w.case_id}/recordings", json={"recording_id": clip["id"]},
                           headers=asb)
    assert linked.status_code == 200, linked.text
    assert set(segments) | {clip["id"]} <= set(linked.json()["recording_ids"])  # masters too
    for rid in [clip["id"], *segments]:
        shown = w.client.get(f"/recordings/{rid}", headers=asb).json()
        assert shown["held"] is True and shown["kept_until"] is None, shown

    shared = w.client.post("/shares", headers=asb, json={
        "recipient": "DC 1234 Shaw", "recipient_org": "West Yorkshire Police",
        "purpose": "criminal damage investigation", "lawful_basis": "DPA 2018 s.35",
        "reference": "ASB/1", "recording_ids": [clip["id"]], "allow_download": True,
        "max_downloads": 1})
    assert shared.status_code == 201, shared.text
    token = shared.json()["token"]

    police = w.client  # no account: the link is the credential
    landing = police.get(f"/share/{token}")
    assert landing.status_code == 200
    assert [i["id"] for i in landing.json()["recordings"]] == [clip["id"]]
    assert landing.json()["downloads_left"] == 1
    part = police.get(f"/share/{token}/recordings/{clip['id']}/stream",
                      headers={"Range": "bytes=0-1023"})
    assert part.status_code == 206 and len(part.content) == 1024
    got = police.get(f"/share/{token}/recordings/{clip['id']}/download")
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == clip["sha256"]
    frames = read_frames_from(got.content, tmp_path / "received.mp4")
    assert len(frames) == clip["frame_count"] and frames[0].shape[:2] == (240, 320)
    again = police.get(f"/share/{token}/recordings/{clip['id']}/download")
    assert again.status_code in (403, 410), again.text  # the limit was one download
    accessed = w.vault.ledger.events(action="share_accessed", limit=100)
    assert any(clip["id"] in e.event.object_ids for e in accessed)


def read_frames_from(data: bytes, path: Path) -> list:  # type: ignore[type-arg]
    path.write_bytes(data)
    return read_frames(path)


def test_clip_export_verifies_offline_and_tampering_fails(jw: World, tmp_path: Path) -> None:
    w = jw
    _segments(w, tmp_path, "cam-river-6", "Riverside")
    clip = _clip(w, "asb", "cam-river-6")
    r = w.client.post("/exports", headers=w.headers("asb"), json={
        "recording_ids": [clip["id"]], "recipient": "DC Shaw", "recipient_org": "WYP",
        "purpose": "prosecution file", "lawful_basis": "DPA 2018 s.35", "reference": "ASB/1"})
    assert r.status_code == 202 and r.json()["state"] == "succeeded", r.text
    package = w.client.get(f"/exports/{r.json()['id']}/package", headers=w.headers("asb")).content

    # The recipient's machine: an empty folder, the package and its own verifier, no vault.
    there = tmp_path / "recipient"
    there.mkdir()
    (there / "package.zip").write_bytes(package)
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        (there / "verify_export.py").write_bytes(z.read("verify_export.py"))
        names = z.namelist()
    key = w.vault.ledger.verifier_key()

    def verify(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-I", "verify_export.py", name, "--key", key],
                              cwd=there, capture_output=True, text=True, timeout=120)

    ok = verify("package.zip")
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert ok.stdout.startswith("OK")

    def tampered(name: str, edit) -> str:  # type: ignore[no-untyped-def]
        out = there / f"tampered-{len(list(there.iterdir()))}.zip"
        with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                dst.writestr(info, edit(data) if info.filename == name else data)
        return out.name

    media = next(n for n in names if n.endswith(".mp4"))
    flip = lambda d: d[:1000] + bytes([d[1000] ^ 1]) + d[1001:]  # noqa: E731
    cert = next(n for n in names if "certificate" in n or "custody" in n)
    for name, edit in [(media, flip), (cert, lambda d: d.replace(b"WYP", b"XYP")),
                       ("manifest.json", lambda d: d.replace(b'"sha256"', b'"sha256x"', 1))]:
        bad = verify(tampered(name, edit))
        assert bad.returncode != 0 and "FAILED" in bad.stderr, (name, bad.stdout, bad.stderr)


def test_sar_window_redacted_keeping_the_requester_then_disclosed(jw: World, tmp_path: Path) -> None:
    w = jw
    requester = Face(still(90, 110), 40)
    passer = Face(linear(300, 120, 170, 120, 2.0), 36, mirror=True, gain=0.9)
    clip = make_clip(tmp_path / "lobby.mp4", [requester, passer], seconds=2.0, seed=3)
    rec = w.vault.put_file(
        clip.path,
        Capture(
            source_id="cam-elm-7",
            source_kind=SourceKind.CCTV,
            site="Elm Court",
            captured_at=START,
            captured_end=START + dt.timedelta(seconds=2),
            media_kind=MediaKind.VIDEO,
        ),
        actor=OPERATOR,
    )
    ig = w.headers("ig", purpose=False)
    sar = w.client.post("/sars", headers=ig, json={
        "reference": "SAR-2026-77", "requester_name": "A. Resident",
        "received_on": w.clock().date().isoformat()}).json()
    attached = w.client.post(f"/sars/{sar['id']}/windows", headers=ig, json={
        "source_id": "cam-elm-7", "start": (START - dt.timedelta(minutes=1)).isoformat(),
        "end": (START + dt.timedelta(minutes=1)).isoformat()})
    assert attached.status_code == 201, attached.text
    queued = w.client.post(f"/sars/{sar['id']}/redaction-jobs", headers=ig, json={})
    assert queued.status_code == 202, queued.text
    job = queued.json()["jobs"][0]
    assert job["state"] == "succeeded", job
    plan = w.client.get(f"/jobs/{job['id']}/plan", headers=ig).json()
    assert plan["tracks"], "the two people were found"

    # Keep the track that sits on the requester (the ground truth says where they are).
    def on_requester(track: dict) -> float:  # type: ignore[type-arg]
        hits = 0
        boxes = track["boxes"]
        for i, box in enumerate(boxes):
            t = clip.times[min(track["start"] + i, clip.frame_count - 1)]
            gt = clip.face_box(requester, t)
            if gt and box and abs((box[0] + box[2]) / 2 - (gt[0] + gt[2]) / 2) < 20:
                hits += 1
        return hits / max(1, len(boxes))

    best = max(plan["tracks"], key=on_requester)
    assert on_requester(best) > 0.5
    for track in plan["tracks"]:
        track["keep"] = track["id"] == best["id"] or on_requester(track) > 0.5
    saved = w.client.put(f"/jobs/{job['id']}/plan", headers=w.headers("ig"), json=plan)
    assert saved.status_code == 200, saved.text
    rendered = w.client.post(f"/jobs/{job['id']}/render", headers=w.headers("ig"))
    assert rendered.status_code == 202 and rendered.json()["state"] == "succeeded", rendered.text
    copy_id = rendered.json()["result"]["redacted_recording_id"]

    out = tmp_path / "copy.mp4"
    out.write_bytes(w.client.get(f"/recordings/{copy_id}/download", headers=w.headers("ig")).content)
    frames = read_frames(out)
    shown, hidden = [], []
    for i, frame in enumerate(frames[:clip.frame_count]):
        t = clip.times[i]
        for face, into in ((requester, shown), (passer, hidden)):
            box = clip.face_box(face, t)
            if box is not None and box[2] - box[0] > 12:
                into.append(face_visibility(clip.frame(i), frame, box))
    assert sum(v >= 0.5 for v in shown) / len(shown) >= 0.95, "the requester stays visible"
    assert max(hidden) <= 0.34, "everyone else is hidden on every frame"

    disclosed = w.client.post(f"/sars/{sar['id']}/disclosures", headers=ig, json={
        "recording_ids": [copy_id], "method": "secure link"})
    assert disclosed.status_code == 201, disclosed.text
    body = disclosed.json()
    assert body["status"] == "disclosed" and w.clock().date().isoformat() <= body["deadline"]
    assert rec.id != copy_id
