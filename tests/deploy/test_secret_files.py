"""Issue #16 item 4: secrets come from files (compose secrets), not only the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.config import Settings


def test_settings_read_secrets_from_files_in_the_secrets_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #16 item 4: with EVIDENCE_VAULT_SECRETS_DIR set, each file named like a setting's
    variable gives its value (a trailing newline, as editors leave one, is dropped), so the
    HSM PIN and the queue password need not be in the environment ``docker inspect`` shows."""
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (secrets / "EVIDENCE_VAULT_PKCS11_PIN").write_text("4321\n")
    (secrets / "EVIDENCE_VAULT_QUEUE_URL").write_text("redis://:pw@redis:6379/0\n")
    monkeypatch.setenv("EVIDENCE_VAULT_SECRETS_DIR", str(secrets))
    monkeypatch.delenv("EVIDENCE_VAULT_PKCS11_PIN", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.pkcs11_pin is not None and settings.pkcs11_pin.get_secret_value() == "4321"
    assert settings.queue_url is not None
    assert settings.queue_url.get_secret_value() == "redis://:pw@redis:6379/0"
    # The environment still wins over a file, as for every other source.
    monkeypatch.setenv("EVIDENCE_VAULT_PKCS11_PIN", "9999")
    pin = Settings(_env_file=None).pkcs11_pin  # type: ignore[call-arg]
    assert pin is not None and pin.get_secret_value() == "9999"


def test_no_secrets_dir_reads_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #16 item 4: unset, nothing is read from any directory (the embedded default)."""
    monkeypatch.delenv("EVIDENCE_VAULT_SECRETS_DIR", raising=False)
    monkeypatch.delenv("EVIDENCE_VAULT_PKCS11_PIN", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EVIDENCE_VAULT_PKCS11_PIN").write_text("1111")
    assert Settings(_env_file=None).pkcs11_pin is None  # type: ignore[call-arg]
