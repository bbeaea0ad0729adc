"""The one-command demo: the whole life of some footage on the embedded default.

Creates a data directory, generates synthetic CCTV footage with real faces and a staff-device
audio recording, ingests them, opens an ASB case that holds one clip, redacts that clip, shares
the redacted copy with a police recipient, exports a disclosure package and checks it offline,
verifies the custody ledger, then moves the clock 24 days on and runs retention: unheld
footage is crypto-shredded with a signed deletion certificate, the case's footage is kept.

Everything runs in-process with no server: SQLite catalog, local encrypted store, local keyring.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest import UploadSourceConfig, ingest_files
from redaction.redacted_copy import redact_recording
from redaction.synthetic import Face, circle, linear, make_clip
from vault import (
    Actor,
    HoldKind,
    Purpose,
    Role,
    Settings,
    Vault,
    build_export,
    deletion_certificate,
    place_hold,
    run_retention,
    verify_deletion_certificate,
    verify_export,
)
from vault.casework.cases import create_case, link_recording
from vault.errors import InvalidInput, Shredded
from vault.casework.fixity import check_fixity
from vault.plaintext import private_dir
from vault.casework.shares import ShareAccess, access_share, create_share

DEMO_MARKER = ".evidence-vault-demo"
OFFICER = Actor(user="asb.officer.khan", role=Role.ASB_OFFICER, organisation="Northgate Housing")
IG_OFFICER = Actor(user="ig.officer.patel", role=Role.IG_OFFICER, organisation="Northgate Housing")


@dataclass
class Step:
    """One step of the demo: what it did, how long it took, and what it produced."""

    name: str
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoReport:
    home: str
    steps: list[Step] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "home": self.home,
            "steps": [
                {"name": s.name, "seconds": round(s.seconds, 2), "lines": s.lines, **s.data}
                for s in self.steps
            ],
        }


def prepare_home(home: Path) -> None:
    """Make ``home`` an empty demo directory; refuse to touch a directory the demo did not make."""
    if home.exists() and any(home.iterdir()):
        if not (home / DEMO_MARKER).exists():
            raise InvalidInput(f"{home} exists and is not a demo directory; choose another --home")
        shutil.rmtree(home)
    # The demo writes decrypted footage and packages under home: only its user may look.
    private_dir(home)
    (home / DEMO_MARKER).write_text("made by 'evidence-vault demo'; safe to delete\n")


def _write_audio(path: Path, seconds: float, rate: int = 16_000) -> None:
    # A staff device's audio note: a few tones standing in for speech.
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.2 * np.sin(2 * math.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * math.pi * 0.5 * t))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((signal * 32767).astype("<i2").tobytes())


def run_demo(
    home: Path,
    *,
    segment_seconds: float = 40.0,
    segments: int = 3,
    width: int = 640,
    height: int = 360,
    on_step: Callable[[Step], None] | None = None,
) -> DemoReport:
    """Run every step; returns the report. ``on_step`` sees each step as it finishes."""
    home = home.resolve()
    prepare_home(home)
    report = DemoReport(home=str(home))

    @contextmanager
    def step(name: str) -> Iterator[Step]:
        current = Step(name)
        started = time.perf_counter()
        yield current
        current.seconds = time.perf_counter() - started
        report.steps.append(current)
        if on_step:
            on_step(current)

    settings = Settings(home=home / "vault")
    footage = private_dir(home / "footage")
    out = private_dir(home / "out")  # decrypted copies and the package (issue #11 finding 11)
    # The footage was "captured" this morning; retention is then shown 24 days later.
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=6)

    with step("create the vault") as s:
        vault = Vault.init(settings)
        s.lines.append(f"data directory {settings.home_dir} (SQLite catalog, encrypted local store, keyring)")
        s.lines.append(f"custody verifier key {vault.ledger.verifier_key()}")

    with step("generate synthetic footage") as s:
        clips = []
        for i in range(segments):
            faces = [
                Face(linear(0.1 * width, 0.3 * height, 0.85 * width, 0.45 * height, segment_seconds), 0.09 * height),
                Face(circle(0.55 * width, 0.6 * height, 0.12 * height, segment_seconds / 2), 0.11 * height, mirror=True, gain=0.9),
            ]
            path = footage / f"cam-03_{(start + dt.timedelta(seconds=i * segment_seconds)):%Y%m%dT%H%M%SZ}.mp4"
            clips.append(make_clip(path, faces, width=width, height=height, seconds=segment_seconds, seed=i + 1))
        audio = footage / "bwv-17_incident-note.wav"
        _write_audio(audio, 30.0)
        s.lines.append(f"{segments} x {segment_seconds:.0f} s CCTV segments ({width}x{height}, two moving faces each) from cam-03")
        s.lines.append("one 30 s audio note from staff device bwv-17")

    with vault:
        with step("ingest (spool, probe, hash, encrypt, store, catalog, custody)") as s:
            upload = UploadSourceConfig(id="demo-upload", kind="upload", site="Northgate Estate")
            recordings = []
            for i, clip in enumerate(clips):
                (result,) = ingest_files(
                    vault, [clip.path], config=upload, spool_dir=settings.spool_dir / "demo",
                    agent_name="demo", device="cam-03",
                    captured_at=start + dt.timedelta(seconds=i * segment_seconds),
                )
                if not result.ok or result.item is None or result.item.recording_id is None:
                    raise InvalidInput(f"demo ingest of {clip.path.name} failed: {result.error}")
                recordings.append(vault.recording(result.item.recording_id))
            (note,) = ingest_files(
                vault, [audio], config=upload, spool_dir=settings.spool_dir / "demo",
                agent_name="demo", device="bwv-17", captured_at=start + dt.timedelta(minutes=5),
            )
            if note.item is None or note.item.recording_id is None:
                raise InvalidInput(f"demo ingest of {audio.name} failed: {note.error}")
            for r in [*recordings, vault.recording(note.item.recording_id)]:
                s.lines.append(f"{r.id}  {r.source_id:<7} {r.media_kind.value:<5} {r.size:>9} B  sha256 {r.sha256[:16]}...")

        incident = recordings[min(1, len(recordings) - 1)]
        with step("open an ASB case and hold the incident clip") as s:
            case = create_case(
                vault, reference="ASB/2026/0113", organisation="Northgate Housing", actor=OFFICER,
                title="Intimidation at Northgate Estate stairwell", crime_number="WY-2026-88120",
            )
            link_recording(vault, case.id, incident.id, actor=OFFICER, purpose=Purpose("evidence for ASB case"))
            place_hold(vault, kind=HoldKind.CASE, reason="ASB case evidence", reference=case.reference, case_id=case.id, actor=OFFICER)
            s.lines.append(f"case {case.reference} holds recording {incident.id}")

        with step("redact faces in the incident clip") as s:
            copy = redact_recording(
                vault, incident.id, actor=IG_OFFICER,
                purpose=Purpose("disclosure to police", lawful_basis="DPA 2018 s35", reference=case.reference),
                caption="REDACTED COPY ASB/2026/0113",
            )
            watch = out / "redacted-incident.mp4"
            vault.export_file(copy.recording.id, watch, actor=IG_OFFICER, purpose=Purpose("demo: review the redacted copy"))
            stats = copy.render.stats
            s.lines.append(f"redacted copy {copy.recording.id}: {copy.render.frame_count} frames, {len(copy.plan.tracks)} face tracks, {stats.get('fps', 0)} fps")
            s.lines.append(f"watch it: {watch}")
            s.data["fps"] = stats.get("fps")

        with step("share the redacted copy with a police officer") as s:
            shared = create_share(
                vault, actor=OFFICER, recipient="DC Amy Shaw", recipient_org="West Yorkshire Police",
                purpose="investigation of reported intimidation", lawful_basis="DPA 2018 s35",
                reference=case.crime_number, recording_ids=[copy.recording.id],
                expires_at=vault.clock() + dt.timedelta(days=14), allow_download=True, max_downloads=3,
            )
            access_share(vault, shared.token, ShareAccess.METADATA, client_addr="127.0.0.1")
            s.lines.append(f"share {shared.share.id} for DC Amy Shaw (West Yorkshire Police), 14 days, 3 downloads")
            s.lines.append("the recipient's first look is already in the custody log")

        with step("export a disclosure package and check it offline") as s:
            package = out / "disclosure-ASB-2026-0113.zip"
            exported = build_export(
                vault, [incident.id, copy.recording.id], package, actor=OFFICER,
                purpose=Purpose("evidence for prosecution", lawful_basis="DPA 2018 s35", reference=case.crime_number),
                recipient="DC Amy Shaw", recipient_org="West Yorkshire Police",
            )
            checked = verify_export(package, vault.ledger.verifier_key())
            s.lines.append(f"{package} ({len(exported.manifest['files'])} files, {checked['events']} custody events with inclusion proofs)")
            s.lines.append(f"recipient check: python3 verify_export.py {package.name} --key '<verifier key>'")

        with step("verify the custody ledger and the stored footage") as s:
            verified = vault.ledger.verify()
            s.lines.append(f"custody ledger verified: {verified.summary()}")
            fixity = check_fixity(vault, actor=IG_OFFICER)
            s.lines.append(f"fixity check (read back, decrypt, SHA-256): {fixity.summary()}")

        with step("24 days later: retention") as s:
            later = start + dt.timedelta(days=24)
            retained = run_retention(vault, now=later)
            for d in retained.deleted:
                s.lines.append(f"deleted {d.recording_id} ({d.source}): {d.reason}")
            for d in retained.kept:
                s.lines.append(f"kept    {d.recording_id} ({d.source}): {d.reason}")
            gone = retained.deleted[0].recording_id
            certificate = deletion_certificate(vault, gone)
            verify_deletion_certificate(certificate, vault.ledger.verifier_key())
            (out / f"deletion-certificate-{gone}.json").write_text(__import__("json").dumps(certificate, indent=2))
            try:
                vault.read(gone, actor=OFFICER, purpose=Purpose("demo: try to read deleted footage"))
            except Shredded as error:
                s.lines.append(f"reading {gone} now fails: {error}")
            s.lines.append(f"signed deletion certificate: {out / f'deletion-certificate-{gone}.json'}")
            vault.ledger.verify()
            s.lines.append("custody ledger still verifies: events are never deleted")
    return report
