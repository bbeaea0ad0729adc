"""Disclosure packages: built from the vault, checked offline by a stdlib-only script."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vault import Actor, IntegrityError, InvalidInput, Purpose, Role, Vault
from vault.capture import Capture
from vault.ledger import _export_verifier as verifier
from vault.casework.disclosure import build_export, verify_export

ACTOR = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Northgate Housing")
PURPOSE = Purpose(purpose="evidence for prosecution", lawful_basis="DPA 2018 s35", reference="CRIME/2026/4411")
T0 = dt.datetime(2026, 11, 20, 22, 5, tzinfo=dt.timezone.utc)


@pytest.fixture
def package(vault: Vault, tmp_path: Path) -> tuple[Vault, Path, list[str]]:
    ids = []
    for i in range(2):
        rec = vault.put_stream(
            io.BytesIO(os.urandom(20_000 + i)),
            Capture(
                source_id="cam-03",
                captured_at=T0 + dt.timedelta(minutes=i),
                original_name=f"seg{i}.mp4",
            ),
            actor=ACTOR,
        )
        ids.append(rec.id)
    out = tmp_path / "export.zip"
    build_export(vault, ids, out, actor=ACTOR, purpose=PURPOSE, recipient="DC Amy Shaw", recipient_org="West Yorkshire Police")
    return vault, out, ids


def _rewrite(src: Path, dst: Path, *, drop: str | None = None, change: tuple[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for info in a.infolist():
            if info.filename == drop:
                continue
            data = a.read(info.filename)
            if change and info.filename == change[0]:
                data = change[1]
            b.writestr(info.filename, data)
    return dst


def test_package_verifies_with_the_cli_checker_and_the_standalone_script(package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault, out, ids = package
    vkey = vault.ledger.verifier_key()
    summary = verify_export(out, vkey)
    assert summary["files"] == 2
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        z.extract("verify_export.py", tmp_path)
        manifest = json.loads(z.read("manifest.json"))
    assert {"manifest.json", "SHA256SUMS", "custody-certificate.json", "VERIFY.txt", "verify_export.py"} <= names
    assert {f["recording_id"] for f in manifest["files"]} == set(ids)
    assert manifest["recipient_org"] == "West Yorkshire Police"
    # The recipient's view: isolated Python, no vault installed, only the script and the zip.
    script = tmp_path / "verify_export.py"
    result = subprocess.run([sys.executable, "-I", str(script), str(out), "--key", vkey], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK:")
    # The export is in the custody log with its recipient.
    exported = [e for e in vault.ledger.events(object_id=ids[0]) if e.action.value == "exported"]
    assert any(e.to_dict()["event"]["recipient_org"] == "West Yorkshire Police" for e in exported)


def test_modified_file_is_detected(package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault, out, _ = package
    with zipfile.ZipFile(out) as z:
        master = next(n for n in z.namelist() if n.startswith("masters/"))
        data = bytearray(z.read(master))
    data[100] ^= 1
    bad = _rewrite(out, tmp_path / "bad.zip", change=(master, bytes(data)))
    with pytest.raises(IntegrityError, match="has been modified"):
        verify_export(bad, vault.ledger.verifier_key())


def test_missing_file_is_detected(package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault, out, _ = package
    with zipfile.ZipFile(out) as z:
        master = next(n for n in z.namelist() if n.startswith("masters/"))
    bad = _rewrite(out, tmp_path / "bad.zip", drop=master)
    with pytest.raises(IntegrityError, match="missing"):
        verify_export(bad, vault.ledger.verifier_key())


def test_modified_certificate_is_detected(package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault, out, _ = package
    with zipfile.ZipFile(out) as z:
        cert = json.loads(z.read("custody-certificate.json"))
    cert["certificate"]["events"] = cert["certificate"]["events"][1:]  # hide an event
    bad = _rewrite(out, tmp_path / "bad.zip", change=("custody-certificate.json", json.dumps(cert).encode()))
    with pytest.raises(IntegrityError, match="differs from what was signed"):
        verify_export(bad, vault.ledger.verifier_key())
    cert2 = json.loads(json.dumps(cert))
    cert2["signed_note"] = cert2["signed_note"].replace("CRIME/2026/4411", "CRIME/2026/9999")
    bad2 = _rewrite(out, tmp_path / "bad2.zip", change=("custody-certificate.json", json.dumps(cert2).encode()))
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_export(bad2, vault.ledger.verifier_key())


def test_manifest_swapped_for_another_is_detected(package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault, out, _ = package
    with zipfile.ZipFile(out) as z:
        manifest = json.loads(z.read("manifest.json"))
    manifest["recipient"] = "someone else"
    bad = _rewrite(out, tmp_path / "bad.zip", change=("manifest.json", json.dumps(manifest).encode()))
    with pytest.raises(IntegrityError, match="different manifest"):
        verify_export(bad, vault.ledger.verifier_key())


def test_wrong_key_is_refused(package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from vault.ledger.checkpoint import LedgerSigner

    _, out, _ = package
    other = LedgerSigner.generate("evidence-vault.local/custody").verifier_key()
    with pytest.raises(IntegrityError, match="not signed by|does not verify"):
        verify_export(out, other)


def _export_after_rotations(vault: Vault, tmp_path: Path, rotations: int) -> tuple[Path, list[str]]:
    """Put footage, rotate the custody key ``rotations`` times, export it; the keys in order."""
    keys = [vault.ledger.verifier_key()]
    rec = vault.put_stream(
        io.BytesIO(os.urandom(5000)),
        Capture(source_id="cam-03", captured_at=T0, original_name="seg.mp4"),
        actor=ACTOR,
    )
    for n in range(rotations):
        keys.append(vault.ledger.rotate_key(actor="admin", reason=f"rotation {n}")["new_key"])
    out = tmp_path / "export.zip"
    build_export(vault, [rec.id], out, actor=ACTOR, purpose=PURPOSE, recipient="DC Amy Shaw",
                 recipient_org="West Yorkshire Police")
    return out, keys


def test_a_key_from_before_a_rotation_still_verifies_through_the_handovers(
        vault: Vault, tmp_path: Path) -> None:
    # A police force given the vault's key last year checks this year's package with it.
    out, keys = _export_after_rotations(vault, tmp_path, rotations=2)
    for key in keys:
        assert verify_export(out, key)["events"] >= 2
    with zipfile.ZipFile(out) as z:
        z.extract("verify_export.py", tmp_path)
    result = subprocess.run([sys.executable, "-I", str(tmp_path / "verify_export.py"), str(out),
                             "--key", keys[0]], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_forged_handover_is_refused(vault: Vault, tmp_path: Path) -> None:
    from vault.ledger.checkpoint import LedgerSigner

    out, keys = _export_after_rotations(vault, tmp_path, rotations=1)
    with zipfile.ZipFile(out) as z:
        document = json.loads(z.read("custody-certificate.json"))
    # Someone swaps in a key of their own as the successor of the trusted key.
    forged = json.loads(json.dumps(document))
    forged["key_handovers"][0]["new_key"] = LedgerSigner.generate(
        vault.ledger.origin).verifier_key()
    bad = _rewrite(out, tmp_path / "forged.zip",
                   change=("custody-certificate.json", json.dumps(forged).encode()))
    with pytest.raises(IntegrityError, match="not signed by|does not match"):
        verify_export(bad, keys[0])
    # Without the hand-overs the old key cannot vouch for the new one.
    dropped = {**document, "key_handovers": []}
    bad2 = _rewrite(out, tmp_path / "dropped.zip",
                    change=("custody-certificate.json", json.dumps(dropped).encode()))
    with pytest.raises(IntegrityError, match="not signed by"):
        verify_export(bad2, keys[0])
    assert verify_export(bad2, keys[1])  # the current key needs none


def test_bad_requests_are_refused(vault: Vault, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="at least one"):
        build_export(vault, [], tmp_path / "x.zip", actor=ACTOR, purpose=PURPOSE, recipient="a", recipient_org="b")
    (tmp_path / "exists.zip").write_bytes(b"")
    rec = vault.put_stream(io.BytesIO(b"x"), Capture(source_id="c", captured_at=T0), actor=ACTOR)
    with pytest.raises(InvalidInput, match="already exists"):
        build_export(vault, [rec.id], tmp_path / "exists.zip", actor=ACTOR, purpose=PURPOSE, recipient="a", recipient_org="b")
    assert list(vault.settings.spool_dir.glob("export-*")) == []


def test_pure_python_ed25519_agrees_with_cryptography() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    for message in (b"", b"abc", os.urandom(300)):
        signature = key.sign(message)
        assert verifier.ed25519_verify(public, message, signature)
        assert not verifier.ed25519_verify(public, message + b"x", signature)
        forged = bytearray(signature)
        forged[5] ^= 1
        assert not verifier.ed25519_verify(public, message, bytes(forged))
    # RFC 8032 section 7.1, test 1 (empty message).
    pk = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert verifier.ed25519_verify(pk, b"", sig)


def test_verifier_uses_only_the_standard_library() -> None:
    import ast

    tree = ast.parse(Path(verifier.__file__).read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}, modules


# --- what the certificate tells a recipient (issue #11 finding 16) ---------------------------


def _busy_history(vault: Vault, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A recording with the history real footage gets before it is exported to the police:
    viewed by staff, shared with a partner for their own purpose, opened by that partner,
    disclosed to a SAR requester, and refused to someone else. Returns the recording id and
    the strings the police recipient has no business reading."""
    from vault.access.identity import Principal
    from vault.casework.policy import Permission, deny
    from vault.casework.sar import record_disclosure, register_sar
    from vault.casework.shares import create_share

    ig = Actor(user="ig-priya", role=Role.IG_OFFICER, organisation="Northgate Housing",
               client_addr="10.9.8.7")
    rec = vault.put_stream(
        io.BytesIO(os.urandom(30_000)),
        Capture(source_id="cam-03", captured_at=T0, original_name="seg.mp4"),
        actor=ACTOR,
    )
    vault.export_file(rec.id, tmp_path / "viewed.bin", actor=Actor(
        user="asb-jo", role=Role.ASB_OFFICER, organisation="Northgate Housing",
        client_addr="192.168.44.10"), purpose=Purpose(purpose="checking the stairwell camera"))
    create_share(vault, actor=ACTOR, recipient="Sam Partner", recipient_org="Eastfield ASB Team",
                 purpose="joint problem-solving meeting about flat 12", lawful_basis="DPA 2018 s8",
                 recording_ids=[rec.id], expires_at=vault.clock() + dt.timedelta(days=7))
    vault.ledger.record("share_accessed", actor="Sam Partner", actor_role="share_recipient",
                        client_addr="203.0.113.77", object_ids=[rec.id])
    sar = register_sar(vault, reference="SAR-2026-017", requester_name="Jordan Requester",
                       received_on=vault.clock().date(), actor=ig)
    record_disclosure(vault, sar.id, recording_ids=[rec.id], method="secure link", actor=ig,
                      override_reason="requester's own footage, nobody else in frame")
    intruder = Principal(user_id="u-x", name="nosy-neighbour-staff", role=Role.ASB_OFFICER,
                         organisation="Northgate Housing", client_addr="172.16.5.5")
    with pytest.raises(Exception):
        deny(vault, intruder, Permission.DOWNLOAD, "not on this case", object_ids=[rec.id])
    secrets = {
        "other recipient": "Sam Partner", "other organisation": "Eastfield ASB Team",
        "other purpose": "joint problem-solving meeting", "SAR requester": "Jordan Requester",
        "staff address": "192.168.44.10", "IG address": "10.9.8.7",
        "partner address": "203.0.113.77", "refused person": "nosy-neighbour-staff",
        "refusal address": "172.16.5.5", "refusal reason": "not on this case",
        "staff purpose": "checking the stairwell camera",
    }
    return rec.id, secrets


def test_the_certificate_carries_only_what_the_recipient_needs(vault: Vault, tmp_path: Path) -> None:
    """Issue #11 finding 16: the certificate told the police recipient about other recipients
    and their purposes, a SAR requester's name, and staff names and addresses from refusals.
    Now every event about the item is there (the continuity: who handled it, when, what),
    proven in the log, but other people's business is withheld, and the package verifies."""
    rid, secrets = _busy_history(vault, tmp_path)
    out = tmp_path / "police.zip"
    discloser = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Northgate Housing",
                      client_addr="10.1.1.1")
    secrets["discloser's address"] = "10.1.1.1"
    build_export(vault, [rid], out, actor=discloser, purpose=PURPOSE, recipient="DC Amy Shaw",
                 recipient_org="West Yorkshire Police")
    with zipfile.ZipFile(out) as z:
        text = "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist()
                         if n.endswith((".json", ".txt")) or n == "SHA256SUMS")
    leaked = {what: s for what, s in secrets.items() if s in text}
    assert leaked == {}
    summary = verify_export(out, vault.ledger.verifier_key())
    assert summary["redacted_events"] >= 5

    with zipfile.ZipFile(out) as z:
        document = json.loads(z.read("custody-certificate.json"))
    events = document["certificate"]["events"]
    # Every event naming the recording is accounted for, in order, none skipped.
    logged = [e.seq for e in vault.ledger.events(object_id=rid)]
    assert [e["leaf_index"] for e in events] == logged
    forms = {e["leaf_index"]: e["disclosure"] for e in events}
    views = {e["leaf_index"]: json.loads(e["entry"])["event"] if e["disclosure"] == "full"
             else e["event"] for e in events}
    by_action = {v.get("action"): v for v in views.values() if v}
    # Continuity of evidence: the staff who handled it are named, with their roles.
    assert by_action["ingested"]["actor"] == "asb-1"
    assert by_action["downloaded"]["actor"] == "asb-jo"
    assert by_action["shared"]["actor"] == "asb-1" and "recipient" in by_action["shared"]["withheld"]
    assert "actor" in by_action["share_accessed"]["withheld"]
    assert "recipient" in by_action["sar.disclosed"]["withheld"]
    # The refusal is there only as a position and a leaf hash.
    denials = [s for s, f in forms.items() if f == "withheld"]
    assert len(denials) == 1 and views[denials[0]] == {"seq": denials[0], "withheld": ["*"]}
    # This export's own event is disclosed to its recipient (their name, the purpose), but
    # not the discloser's address.
    own_seq = document["certificate"]["export_seq"]
    own = views[own_seq]
    assert own["action"] == "exported" and own["details"]["export_id"]
    assert own["recipient"] == "DC Amy Shaw" and own["purpose"] == PURPOSE.purpose
    # ... and it is shipped whole: the recipient recomputes its leaf, which records every
    # item's SHA-256 and the manifest's. The discloser's address is still in the ledger, on
    # the item reads that precede it.
    assert forms[own_seq] == "full" and own["client_addr"] is None
    assert own["hashes"] == {rid: vault.recording(rid).sha256}
    reads = [e.event for e in vault.ledger.events(object_id=rid) if e.seq < own_seq]
    assert reads[-1].action == "exported" and reads[-1].client_addr == "10.1.1.1"


def test_a_redacted_event_opens_to_its_logged_entry_and_nothing_else(vault: Vault, tmp_path: Path) -> None:
    """Issue #11 finding 16: a redacted event's leaf hash commits to the whole entry. When the
    vault produces the entry (to a court), check_opening proves it is the one logged and that
    the view was a faithful redaction of it; a changed entry or a doctored view fails."""
    rid, _ = _busy_history(vault, tmp_path)
    out = tmp_path / "police.zip"
    build_export(vault, [rid], out, actor=ACTOR, purpose=PURPOSE, recipient="DC Amy Shaw",
                 recipient_org="West Yorkshire Police")
    with zipfile.ZipFile(out) as z:
        cert = json.loads(z.read("custody-certificate.json"))["certificate"]
    scope, export_seq = set(cert["scope"]), cert["export_seq"]
    opened = 0
    for item in cert["events"]:
        if item["disclosure"] == "full":
            continue
        entry = vault.ledger.get(item["leaf_index"]).entry.decode()
        verifier.check_opening(item, entry, scope, export_seq)
        opened += 1
        forged = entry.replace('"seq":', '"seq": ', 1)
        with pytest.raises(verifier.VerificationError, match="not the one logged"):
            verifier.check_opening(item, forged, scope, export_seq)
    assert opened >= 5
    shared = next(i for i in cert["events"] if i.get("event", {}).get("action") == "shared")
    entry = vault.ledger.get(shared["leaf_index"]).entry.decode()
    doctored = json.loads(json.dumps(shared))
    doctored["event"]["actor"] = "someone-else"
    with pytest.raises(verifier.VerificationError, match="does not match its entry"):
        verifier.check_opening(doctored, entry, scope, export_seq)


def test_the_packaged_verifier_checks_an_opening_the_vault_produces(vault: Vault, tmp_path: Path) -> None:
    """Issue #11 finding 16: the court's check of a withheld field, end to end with the packaged
    script: ``verify_export.py PACKAGE --opening PROOF.json`` accepts the vault's ``custody
    proof N`` output for a redacted event and refuses a changed one."""
    rid, _ = _busy_history(vault, tmp_path)
    out = tmp_path / "police.zip"
    build_export(vault, [rid], out, actor=ACTOR, purpose=PURPOSE, recipient="DC Amy Shaw",
                 recipient_org="West Yorkshire Police")
    shared = next(e for e in vault.ledger.events(object_id=rid) if e.event.action == "shared")
    proof = vault.ledger.inclusion_proof(shared.seq)  # what 'evidence-vault custody proof N' prints
    good, bad = tmp_path / "proof.json", tmp_path / "forged.json"
    good.write_text(json.dumps(proof))
    bad.write_text(json.dumps({**proof, "entry": proof["entry"].replace("Sam Partner", "Sam Other")}))
    court = tmp_path / "court"
    court.mkdir()
    with zipfile.ZipFile(out) as z:
        (court / "verify_export.py").write_bytes(z.read("verify_export.py"))
    vkey = vault.ledger.verifier_key()

    def run(opening: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-I", "-S", "verify_export.py", str(out), "--key", vkey,
                               "--opening", str(opening)], cwd=court, capture_output=True, text=True)

    opened = run(good)
    assert opened.returncode == 0, opened.stderr
    assert f"event {shared.seq} opened" in opened.stdout
    forged = run(bad)
    assert forged.returncode == 1 and "not the one logged" in forged.stderr
