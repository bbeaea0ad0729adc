"""The ASB -> police journey over HTTP (issue #11 finding 19): an officer cuts a clip across two
real segments, exports it to a police officer as a job, downloads the package, and the police
officer's copy of ``verify_export.py`` passes it on a machine with no vault, and fails it once
anything in it is changed."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.jobs import open_job_queue
from tests.api.conftest import OPERATOR, T0, World
from tests.redaction.test_clips import FPS, SECONDS, make_segment
from vault.storage.catalog import MediaKind, SourceKind
from vault.capture import Capture

START = T0 - dt.timedelta(hours=3)


@pytest.fixture
def jw(world: World, tmp_path: Path) -> Iterator[World]:
    world.client.app.state.jobs = open_job_queue(  # type: ignore[attr-defined]
        world.vault.settings, immediate=True, vault=world.vault)
    for n in range(2):
        path = make_segment(tmp_path / f"seg{n}.mp4", n * SECONDS * FPS)
        at = START + dt.timedelta(seconds=n * SECONDS)
        world.vault.put_file(
            path,
            Capture(
                source_id="cam-river-7",
                source_kind=SourceKind.CCTV,
                site="Riverside",
                captured_at=at,
                captured_end=at + dt.timedelta(seconds=SECONDS),
                media_kind=MediaKind.VIDEO,
            ),
            actor=OPERATOR,
        )
    yield world


def _check(package: bytes, vkey: str, where: Path) -> subprocess.CompletedProcess[str]:
    """The police officer's machine: the package's own script, standard library only."""
    where.mkdir(exist_ok=True)
    (where / "package.zip").write_bytes(package)
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        (where / "verify_export.py").write_bytes(z.read("verify_export.py"))
    return subprocess.run([sys.executable, "-I", "-S", "verify_export.py", "package.zip",
                           "--key", vkey], cwd=where, capture_output=True, text=True)


def test_a_clip_exported_to_the_police_over_http_verifies_offline(jw: World, tmp_path: Path) -> None:
    """Issue #11 finding 19, the journey as the API serves it: before, the police officer's
    check failed with "no custody event records SHA-256" and the package called the clip a
    master; now it verifies, and any tampering fails it."""
    w = jw
    clip = w.client.post("/clips", headers=w.headers("asb"), json={
        "source_id": "cam-river-7", "start": (START + dt.timedelta(seconds=2.5)).isoformat(),
        "end": (START + dt.timedelta(seconds=5.5)).isoformat()})
    assert clip.status_code == 201, clip.text
    assert len(clip.json()["source_recording_ids"]) == 2
    job = w.client.post("/exports", headers=w.headers("asb"), json={
        "recording_ids": [clip.json()["id"]], "recipient": "DC Amy Shaw",
        "recipient_org": "West Yorkshire Police", "purpose": "prosecution file",
        "lawful_basis": "DPA 2018 s.35", "reference": "CRIME/2026/4411"})
    assert job.status_code == 202 and job.json()["state"] == "succeeded", job.text
    got = w.client.get(f"/exports/{job.json()['id']}/package", headers=w.headers("asb"))
    assert got.status_code == 200
    package = got.content
    vkey = w.vault.ledger.verifier_key()

    ok = _check(package, vkey, tmp_path / "police")
    assert ok.returncode == 0, ok.stderr
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        manifest = json.loads(z.read("manifest.json"))
        blobs = {n: z.read(n) for n in z.namelist()}
    (entry,) = manifest["files"]
    assert entry["role"] == "derived" and entry["path"].startswith("clips/")
    assert [s["recording_id"] for s in entry["derivation"]["sources"]] == clip.json()["source_recording_ids"]

    def changed(name: str, data: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            for n, blob in blobs.items():
                z.writestr(n, data if n == name else blob)
        return out.getvalue()

    edited = bytearray(blobs[entry["path"]])
    edited[-100] ^= 0x40
    cert = json.loads(blobs["custody-certificate.json"])
    cert["certificate"]["events"] = cert["certificate"]["events"][:-1]
    for name, tampered in {
        "a byte of the clip": changed(entry["path"], bytes(edited)),
        "an event dropped": changed("custody-certificate.json", json.dumps(cert).encode()),
    }.items():
        bad = _check(tampered, vkey, tmp_path / "police")
        assert bad.returncode == 1 and bad.stderr.startswith("FAILED:"), name
