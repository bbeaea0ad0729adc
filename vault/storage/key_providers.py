"""Which key provider a vault uses: the one place that chooses between the backends.

:mod:`vault.storage.keys` defines the :class:`~vault.storage.keys.KeyProvider` protocol and the
local keyring file (the embedded default); :mod:`vault.storage.pkcs11` implements it on an HSM.
Choosing between them here, above both, keeps the base module free of its backends (they used
to import each other, issue #14).
"""

from __future__ import annotations

from vault.config import Settings
from vault.errors import NotFound

from .keys import KeyProvider, LocalKeyring


def open_key_provider(settings: Settings, *, create: bool = False) -> KeyProvider:
    """The key provider ``settings.key_provider`` names: the local keyring file, or a PKCS#11
    token (:class:`vault.storage.pkcs11.Pkcs11Keys`).

    With ``create=True`` (``init``) a missing keyring file, or a token with no key under this
    vault's label, gets its first KEK. Raises NotFound for a missing keyring file (without
    ``create``), ConfigError for settings that cannot work, KeyUnavailable for a wrong
    passphrase or PIN.
    """
    if settings.key_provider == "pkcs11":
        # Loaded only when asked for: python-pkcs11 opens a native library.
        from .pkcs11 import Pkcs11Keys

        return Pkcs11Keys.from_settings(settings, create=create)
    path = settings.keyring_file
    passphrase = settings.keyring_passphrase.get_secret_value() if settings.keyring_passphrase else None
    if not path.exists():
        if create:
            return LocalKeyring.create(path, passphrase=passphrase)
        raise NotFound(f"keyring {path} not found: run 'evidence-vault init' first")
    return LocalKeyring.open(path, passphrase=passphrase)
