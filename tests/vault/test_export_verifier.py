"""The packaged verifier (``verify_export.py``): what it refuses in a ZIP and in signed notes.

These run the stdlib-only checker directly, as a recipient does, on packages built by the vault
and then altered the way a forger would.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

from vault import Actor, Purpose, Role, Vault
from vault.capture import Capture
from vault.ledger import _export_verifier as verifier
from vault.ledger.checkpoint import Checkpoint, LedgerSigner
from vault.casework.disclosure import build_export

ACTOR = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Northgate Housing")
PURPOSE = Purpose(purpose="evidence for prosecution", lawful_basis="DPA 2018 s35",
                  reference="CRIME/2026/4411")
T0 = dt.datetime(2026, 11, 20, 22, 5, tzinfo=dt.UTC)

# golang.org/x/mod/sumdb/note's documented example key and note.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_SIG = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdn"
          "gotpRZb6KE6RyyBwJnAM=\n")


@pytest.fixture
def package(vault: Vault, tmp_path: Path) -> tuple[Vault, Path]:
    rec = vault.put_stream(
        io.BytesIO(os.urandom(9_000)),
        Capture(source_id="cam-03", captured_at=T0, original_name="seg0.mp4"),
        actor=ACTOR,
    )
    out = tmp_path / "export.zip"
    build_export(vault, [rec.id], out, actor=ACTOR, purpose=PURPOSE, recipient="DC Amy Shaw",
                 recipient_org="West Yorkshire Police")
    return vault, out


def _copy_with(src: Path, dst: Path, extra: list[tuple[zipfile.ZipInfo | str, bytes]],
               *, first: bool = False) -> Path:
    """``src`` rewritten with ``extra`` entries (before the originals when ``first``)."""
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names: that is the attack
        if first:
            for info, data in extra:
                b.writestr(info, data)
        for info in a.infolist():
            b.writestr(info, a.read(info.filename))
        if not first:
            for info, data in extra:
                b.writestr(info, data)
    return dst


def _run_script(package: Path, vkey: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "verify_export.py"
    script.write_bytes(Path(verifier.__file__).read_bytes())
    return subprocess.run([sys.executable, "-I", str(script), str(package), "--key", vkey],
                          check=False, capture_output=True, text=True, cwd=tmp_path)


def test_the_untouched_package_passes(package: tuple[Vault, Path], tmp_path: Path) -> None:
    """The baseline for the drills below: the package as built verifies, origin checked."""
    vault, out = package
    verifier.verify_package(str(out), vault.ledger.verifier_key(), vault.ledger.origin)
    assert _run_script(out, vault.ledger.verifier_key(), tmp_path).returncode == 0


def test_duplicate_entry_with_a_forged_first_copy_is_refused(
    package: tuple[Vault, Path], tmp_path: Path
) -> None:
    """Issue #11 finding 17: a forged copy of a master placed first (which ``unzip`` extracts)
    beside the genuine one (which Python's zipfile reads) is refused, not half-checked."""
    vault, out = package
    with zipfile.ZipFile(out) as z:
        master = next(n for n in z.namelist() if n.startswith("masters/"))
    forged = _copy_with(out, tmp_path / "forged.zip", [(master, b"forged footage")], first=True)
    with zipfile.ZipFile(forged) as z:
        assert [i.filename for i in z.infolist()].count(master) == 2
    with pytest.raises(verifier.VerificationError, match="twice"):
        verifier.verify_package(str(forged), vault.ledger.verifier_key())
    result = _run_script(forged, vault.ledger.verifier_key(), tmp_path)
    assert result.returncode == 1 and "twice" in result.stderr


@pytest.mark.parametrize(
    "name",
    ["masters/", "/etc/cron.d/x", "../outside.txt", "masters/../../x", "masters\\..\\x",
     "C:/Windows/x", "masters//x", "./VERIFY.txt", "masters/a\x01b"],
)
def test_unsafe_entry_names_are_refused(
    package: tuple[Vault, Path], tmp_path: Path, name: str
) -> None:
    """Issue #11 finding 17: directory entries, absolute names, drive letters, '..', '.',
    empty parts, backslashes and control characters are refused before anything is read."""
    vault, out = package
    info = zipfile.ZipInfo(name)
    bad = _copy_with(out, tmp_path / "bad.zip", [(info, b"")])
    with pytest.raises(verifier.VerificationError, match="directory entry|unsafe entry name"):
        verifier.verify_package(str(bad), vault.ledger.verifier_key())


def test_verifier_refuses_malformed_signature_lines_by_unknown_keys() -> None:
    """Issue #11 finding 18: the packaged verifier parses notes as strictly as sumdb/note: a
    '+' or control character in another signer's name, or a signature under 5 bytes, is
    malformed even though that key is not the one being checked."""
    assert verifier.open_note(GO_TEXT + "\n" + GO_SIG, GO_VKEY) == GO_TEXT
    for extra in ("— a+b AAAAAAA=\n", "— wit\x01ness AAAAAAA=\n", "— witness AAAAAA==\n",
                  "— witness \n", "— witness AA AAAAA=\n"):
        with pytest.raises(verifier.VerificationError):
            verifier.open_note(GO_TEXT + "\n" + GO_SIG + extra, GO_VKEY)
    with pytest.raises(verifier.VerificationError):
        verifier.open_note("\x01" + GO_TEXT + "\n" + GO_SIG, GO_VKEY)
    with pytest.raises(verifier.VerificationError):
        verifier.open_note(GO_TEXT + "\n", GO_VKEY)
    with pytest.raises(verifier.VerificationError):
        verifier.parse_verifier_key("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_verifier_checks_the_checkpoint_origin_and_body() -> None:
    """Issue #11 finding 18: a checkpoint signed by the trusted key but for another log, or with
    a loose body (leading zeros, short root), does not prove an event in this vault's log."""
    signer = LedgerSigner.generate("host/evidence-vault/aaaa")
    vkey = signer.verifier_key()
    ours = signer.sign(Checkpoint("host/evidence-vault/aaaa", 5, bytes(32)))
    other = signer.sign(Checkpoint("host/evidence-vault/bbbb", 5, bytes(32)))
    assert verifier._signed_tree(ours, vkey, "host/evidence-vault/aaaa") == (5, bytes(32))
    with pytest.raises(verifier.VerificationError, match="for log"):
        verifier._signed_tree(other, vkey, "host/evidence-vault/aaaa")
    root = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    for body in (f"o\n05\n{root}\n", f"o\n+5\n{root}\n", "o\n5\nAAAA\n", f"\n5\n{root}\n",
                 f"o\n5\n{root}\n\n"):
        with pytest.raises(verifier.VerificationError):
            verifier._signed_tree(signer.sign_note(body), vkey)


def test_package_checked_against_another_origin_fails(package: tuple[Vault, Path]) -> None:
    """Issue #11 finding 18: ``--origin`` names the log the recipient expects."""
    vault, out = package
    with pytest.raises(verifier.VerificationError, match="for log"):
        verifier.verify_package(str(out), vault.ledger.verifier_key(), "elsewhere/evidence-vault/x")
