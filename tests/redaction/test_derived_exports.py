"""Derived copies in disclosure packages: clips, redacted copies and packages of packages are
described as derived (their sources' SHA-256 and the cut) and pass the packaged verifier, run
as a recipient would: ``python -I verify_export.py`` in a folder where no vault is importable.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from redaction.clips import assemble_clip
from redaction.redacted_copy import redact_recording
from tests.redaction.test_clips import FPS, SECONDS, T0, make_segment
from vault import Actor, IntegrityError, MediaKind, Purpose, Role, Settings, SourceKind, Vault
from vault.capture import Capture
from vault.casework import disclosure
from vault.casework.disclosure import build_export, verify_export
from vault.casework.jobs import JobKind, JobState, get_job, open_queue

ACTOR = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Housing", client_addr="10.20.30.40")
PURPOSE = Purpose(purpose="ASB incident, stairwell", reference="ASB/2026/31")
POLICE = {"recipient": "DC Amy Shaw", "recipient_org": "West Yorkshire Police"}


@pytest.fixture
def vault(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Vault.init(Settings(home=tmp_path / "home")) as v:
        yield v


@pytest.fixture
def clip_and_copy(vault: Vault, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two 4 s segments of cam-3, a clip across their join, and a redacted copy of the clip."""
    for n in range(2):
        path = make_segment(tmp_path / f"seg{n}.mp4", n * SECONDS * FPS)
        start = T0 + dt.timedelta(seconds=n * SECONDS)
        vault.put_file(
            path,
            Capture(
                source_id="cam-3",
                source_kind=SourceKind.CCTV,
                captured_at=start,
                captured_end=start + dt.timedelta(seconds=SECONDS),
                media_kind=MediaKind.VIDEO,
            ),
            actor=ACTOR,
        )
    clip = assemble_clip(vault, "cam-3", T0 + dt.timedelta(seconds=3), T0 + dt.timedelta(seconds=5),
                         actor=ACTOR, purpose=PURPOSE)
    copy = redact_recording(vault, clip.recording.id, actor=ACTOR, purpose=PURPOSE)
    return clip, copy


def recipient_check(package: Path, vkey: str, where: Path) -> subprocess.CompletedProcess[str]:
    """The packaged verify_export.py, run as the recipient runs it: isolated Python (-I: no
    user site, no PYTHONPATH, no current directory on the path; -S: no site-packages, where
    this checkout's vault is installed) in a folder of its own: the standard library only."""
    where.mkdir(exist_ok=True)
    with zipfile.ZipFile(package) as z:
        (where / "verify_export.py").write_bytes(z.read("verify_export.py"))
    # The recipient's machine: no vault to import.
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", "import vault"], cwd=where,
                           capture_output=True, text=True)
    assert probe.returncode != 0, "the vault is importable in the recipient's folder"
    return subprocess.run([sys.executable, "-I", "-S", "verify_export.py", str(package), "--key", vkey],
                          cwd=where, capture_output=True, text=True)


def rewrite(src: Path, dst: Path, change: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for info in a.infolist():
            b.writestr(info.filename, change.get(info.filename, a.read(info.filename)))
    return dst


def test_a_clip_and_its_redacted_copy_exported_to_the_police_pass_their_offline_check(
    vault: Vault, clip_and_copy, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Issue #11 finding 19: a clip exported to the police failed the packaged verifier ("no
    custody event records SHA-256", clips being logged as ``clip.assembled``), and the package
    called it a master "byte for byte as ingested". Derived copies are described as derived,
    with their sources' SHA-256 and the cut, and verify."""
    clip, copy = clip_and_copy
    out = tmp_path / "package.zip"
    build_export(vault, [clip.recording.id, copy.recording.id], out, actor=ACTOR,
                 purpose=PURPOSE, **POLICE)
    vkey = vault.ledger.verifier_key()
    done = recipient_check(out, vkey, tmp_path / "recipient")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK:")

    with zipfile.ZipFile(out) as z:
        manifest = json.loads(z.read("manifest.json"))
        guide = z.read("VERIFY.txt").decode()
    files = {f["recording_id"]: f for f in manifest["files"]}
    assert not any(f["role"] == "master" for f in files.values())
    clip_entry, copy_entry = files[clip.recording.id], files[copy.recording.id]
    assert clip_entry["path"].startswith("clips/") and clip_entry["role"] == "derived"
    assert copy_entry["path"].startswith("redacted/") and copy_entry["role"] == "derived"
    # The clip names both segments it was cut from, with their hashes and the offsets taken.
    cut = clip_entry["derivation"]
    assert cut["kind"] == "clip" and cut["window"] == clip.recording.provenance["window"]
    assert [s["recording_id"] for s in cut["sources"]] == list(clip.source_ids)
    for source in cut["sources"]:
        assert source["sha256"] == vault.recording(source["recording_id"]).sha256
        assert source["cut"]["to_ms"] > source["cut"]["from_ms"]
    # The redacted copy names the clip, which names the segments: the chain to the masters.
    chain = copy_entry["derivation"]
    assert chain["kind"] == "redaction" and chain["plan_sha256"] == copy.render.plan_sha256
    assert chain["sources"][0]["recording_id"] == clip.recording.id
    assert chain["sources"][0]["derivation"]["kind"] == "clip"
    # Nothing in this package is a master, and the guide does not say otherwise.
    assert "DERIVED copies" in guide and "byte for byte" not in guide


def test_a_package_of_a_package_round_trips(vault: Vault, clip_and_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue #11 finding 19 (the class): an export of an export (a package stored in the vault
    by the export job, disclosed again) is derived from the first package's items and verifies."""
    clip, copy = clip_and_copy
    queue = open_queue(vault.settings, immediate=True, vault=vault)
    job = queue.submit(JobKind.EXPORT, actor=ACTOR, vault=vault, purpose=PURPOSE,
                       params={"recording_ids": [copy.recording.id], **POLICE})
    job = get_job(vault, job.id)
    assert job.state == JobState.SUCCEEDED, job.error
    package_id = job.result["package_recording_id"]
    out = tmp_path / "again.zip"
    build_export(vault, [package_id], out, actor=ACTOR, purpose=PURPOSE,
                 recipient="CPS reviewer", recipient_org="Crown Prosecution Service")
    done = recipient_check(out, vault.ledger.verifier_key(), tmp_path / "recipient")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out) as z:
        entry = json.loads(z.read("manifest.json"))["files"][0]
    assert entry["path"].startswith("packages/")
    assert entry["derivation"]["kind"] == "export"
    assert entry["derivation"]["sources"][0]["recording_id"] == copy.recording.id


def test_tampering_with_a_derived_package_fails_the_recipient_check(
    vault: Vault, clip_and_copy, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Issue #11 finding 19: the same packaged verifier fails a clip package after any of:
    a byte edited, a file swapped for another (manifest and sums made to agree), an event
    dropped from the certificate, a certificate forged."""
    clip, copy = clip_and_copy
    out = tmp_path / "package.zip"
    build_export(vault, [clip.recording.id, copy.recording.id], out, actor=ACTOR,
                 purpose=PURPOSE, **POLICE)
    vkey = vault.ledger.verifier_key()
    with zipfile.ZipFile(out) as z:
        manifest = json.loads(z.read("manifest.json"))
        cert = json.loads(z.read("custody-certificate.json"))
        blobs = {n: z.read(n) for n in z.namelist()}
    clip_path = next(f["path"] for f in manifest["files"] if f["path"].startswith("clips/"))
    copy_path = next(f["path"] for f in manifest["files"] if f["path"].startswith("redacted/"))

    edited = bytearray(blobs[clip_path])
    edited[len(edited) // 2] ^= 1
    swapped_manifest = json.loads(json.dumps(manifest))
    for f in swapped_manifest["files"]:  # the redacted copy's bytes under the clip's name
        if f["path"] == clip_path:
            f["sha256"] = next(g["sha256"] for g in manifest["files"] if g["path"] == copy_path)
            f["size"] = len(blobs[copy_path])
    swapped_sums = "".join(f"{f['sha256']}  {f['path']}\n" for f in swapped_manifest["files"])
    dropped = json.loads(json.dumps(cert))
    dropped["certificate"]["events"].pop(0)
    forged = json.loads(json.dumps(cert))
    for item in forged["certificate"]["events"]:
        if item.get("event", {}).get("action") == "clip.assembled":
            item["event"]["details"]["window"] = ["2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00"]

    drills = {
        "byte edited": {clip_path: bytes(edited)},
        "file swapped": {clip_path: blobs[copy_path],
                         "manifest.json": json.dumps(swapped_manifest, indent=2, sort_keys=True).encode() + b"\n",
                         "SHA256SUMS": swapped_sums.encode()},
        "event dropped": {"custody-certificate.json": json.dumps(dropped).encode()},
        "certificate forged": {"custody-certificate.json": json.dumps(forged).encode()},
    }
    for name, change in drills.items():
        bad = rewrite(out, tmp_path / f"{name.replace(' ', '-')}.zip", change)
        done = recipient_check(bad, vkey, tmp_path / "recipient")
        assert done.returncode == 1, name
        assert done.stderr.startswith("FAILED:"), (name, done.stderr)


def test_a_derivation_the_log_does_not_record_is_refused(
    vault: Vault, clip_and_copy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """Issue #11 finding 19: the derivation checks bite. A package whose (correctly signed)
    manifest names a source the log never recorded, or a source hash the log does not hold,
    fails: the verifier compares the manifest's account of a copy with the custody log's."""
    clip, _ = clip_and_copy
    real = disclosure._derivation

    def wrong_hash(v: Vault, recording, depth: int = 0):  # type: ignore[no-untyped-def]
        found = real(v, recording, depth)
        found["sources"][0]["sha256"] = "0" * 64
        return found

    monkeypatch.setattr(disclosure, "_derivation", wrong_hash)
    out = tmp_path / "wrong.zip"
    build_export(vault, [clip.recording.id], out, actor=ACTOR, purpose=PURPOSE, **POLICE)
    with pytest.raises(IntegrityError, match="SHA-256 0{64}"):
        verify_export(out, vault.ledger.verifier_key())
