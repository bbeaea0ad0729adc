"""The vault's data directory (``EVIDENCE_VAULT_HOME``): created private, or a clear refusal.

The home holds the keyring, the ledger signing key and the embedded catalog, so it is made
``0700``. A home the process cannot create or write (a root-owned container volume for a
process running as uid 10001, issue #11 finding 24) would otherwise surface as a raw
``PermissionError`` traceback from whichever file came first; this check turns it into one
:class:`~vault.errors.ConfigError` naming the directory, the user and how to fix it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ConfigError

HOME_MODE = 0o700


def _who() -> str:
    try:
        import pwd

        name = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):  # no passwd entry (a bare uid in a container)
        name = "?"
    return f"uid {os.geteuid()} ({name})" if hasattr(os, "geteuid") else "this user"


def _refuse(home: Path, what: str) -> ConfigError:
    owner = ""
    try:
        stat = home.stat()
        owner = f" (it belongs to uid {stat.st_uid}, mode {stat.st_mode & 0o777:o})"
    except OSError:
        pass
    return ConfigError(
        f"the vault's home {home}{owner} {what} by {_who()}: make it writable by that user "
        f"(e.g. chown it to them) or point EVIDENCE_VAULT_HOME at a directory they own"
    )


def prepare_home(home: Path) -> None:
    """Create ``home`` (and its parents) if absent, make it ``0700``, and prove it writable.

    Raises ConfigError (naming the directory, its owner and the user) when it cannot be
    created, its mode cannot be set, or a file cannot be written in it.
    """
    try:
        home.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise _refuse(home, "cannot be created") from None
    except OSError as error:
        raise ConfigError(f"the vault's home {home} cannot be created: {error.strerror}") from None
    try:
        os.chmod(home, HOME_MODE)
    except PermissionError:
        raise _refuse(home, "cannot be made private (chmod 700)") from None
    try:
        with tempfile.TemporaryFile(dir=home):
            pass
    except PermissionError:
        raise _refuse(home, "cannot be written") from None
    except OSError as error:
        raise ConfigError(f"the vault's home {home} cannot be written: {error.strerror}") from None


__all__ = ["HOME_MODE", "prepare_home"]
