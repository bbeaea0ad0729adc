"""A vault written before the re-layering (tests/fixtures/vault-v1, made by
tests/fixtures/make_vault_v1.py with the code of commit 8b47096) opens, reads and verifies."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from vault import Actor, Purpose, Role, Settings, Vault

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vault-v1"


def _home_copy(tmp_path: Path) -> Path:
    """The fixture's home in a scratch directory, private again (git keeps no file modes)."""
    home = tmp_path / "home"
    shutil.copytree(FIXTURE / "home", home)
    for path in [home, *home.rglob("*")]:
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    return home


def test_old_vault_opens_reads_and_verifies(tmp_path: Path) -> None:
    """Issue #14 must-show: old vault directories and ledgers open and verify with the new
    code (evs1 objects, custody entry v1, checkpoints, catalog, keyring, signing key)."""
    expected = json.loads((FIXTURE / "expected.json").read_text())
    settings = Settings(home=_home_copy(tmp_path))
    # What an operator runs after installing a new version ('evidence-vault init'): the
    # catalog migrations (Vault.open does not migrate); nothing else in the home changes.
    Vault.init(settings).close()
    with Vault.open(settings) as vault:
        # 1. The ledger as it was signed: same events, same root, same checkpoint note.
        report = vault.ledger.verify(trusted_checkpoint=expected["checkpoint"])
        assert report.events == expected["events"]
        assert report.root_hash == expected["root_hash"]
        assert report.unsigned == 0 and report.recordings == 1
        actions = [str(getattr(e.action, "value", e.action)) for e in vault.ledger.events()]
        assert actions == expected["actions"]

        # 2. The footage decrypts to the bytes that were ingested.
        reader = Actor(user="police-1", role=Role.POLICE_LIAISON, organisation="Housing")
        recording, _, chunks = vault.read(
            expected["recording_id"], actor=reader, purpose=Purpose(purpose="fixture check")
        )
        plaintext = b"".join(chunks)
        assert len(plaintext) == recording.size == expected["size"]
        assert hashlib.sha256(plaintext).hexdigest() == recording.sha256 == expected["sha256"]
        assert plaintext[4:8] == b"ftyp"  # an MP4, as ffmpeg wrote it

        # 3. The new code appends to the old ledger and it still verifies end to end.
        vault.ledger.checkpoint()
        assert vault.ledger.verify().events == expected["events"] + 1
