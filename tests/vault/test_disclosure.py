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
from vault import _export_verifier as verifier
from vault.disclosure import build_export, verify_export

ACTOR = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Northgate Housing")
PURPOSE = Purpose(purpose="evidence for prosecution", lawful_basis="DPA 2018 s35", reference="CRIME/2026/4411")
T0 = dt.datetime(2026, 11, 20, 22, 5, tzinfo=dt.timezone.utc)


@pytest.fixture
def package(vault: Vault, tmp_path: Path) -> tuple[Vault, Path, list[str]]:
    ids = []
    for i in range(2):
        rec = vault.put_stream(
            io.BytesIO(os.urandom(20_000 + i)), source_id="cam-03", actor=ACTOR,
            captured_at=T0 + dt.timedelta(minutes=i), original_name=f"seg{i}.mp4",
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
    from vault.checkpoint import LedgerSigner

    _, out, _ = package
    other = LedgerSigner.generate("evidence-vault.local/custody").verifier_key()
    with pytest.raises(IntegrityError, match="not signed by|does not verify"):
        verify_export(out, other)


def _export_after_rotations(vault: Vault, tmp_path: Path, rotations: int) -> tuple[Path, list[str]]:
    """Put footage, rotate the custody key ``rotations`` times, export it; the keys in order."""
    keys = [vault.ledger.verifier_key()]
    rec = vault.put_stream(io.BytesIO(os.urandom(5000)), source_id="cam-03", actor=ACTOR,
                           captured_at=T0, original_name="seg.mp4")
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
    from vault.checkpoint import LedgerSigner

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
    rec = vault.put_stream(io.BytesIO(b"x"), source_id="c", actor=ACTOR, captured_at=T0)
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
