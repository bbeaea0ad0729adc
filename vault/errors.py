"""Errors raised by the vault core.

Every error the vault raises is a :class:`VaultError`; callers that only want to report a
problem catch that one class. Only ``api/`` maps these to HTTP status codes, and only the CLI
maps them to exit codes. Messages carry identifiers (object ids, event sequence numbers, key
ids), never plaintext, keys or tokens.

    VaultError
    ├── ConfigError           settings that cannot work (bad URL, missing directory)
    ├── NotFound              no such recording, case, event, key or object
    ├── AccessDenied          the caller may not do this
    │   ├── Unauthenticated   no usable credentials (no, unknown, expired or revoked token)
    │   └── ShareUnavailable  a share that was revoked, expired or used up
    ├── KeyUnavailable        a key-encryption key or data key cannot be had (wrong keyring,
    │                         unknown key id, shredded data key)
    │   └── Shredded          the data key was destroyed by retention: the footage is gone
    ├── IntegrityError        something does not verify
    │   ├── CiphertextError   an encrypted object was truncated, reordered, spliced or altered
    │   ├── HashMismatch      a plaintext hash differs from the catalog's
    │   └── LedgerError       a custody event, hash link, Merkle proof or checkpoint fails
    │       └── CatalogMismatch  a catalog row differs from the ledger's record of it
    ├── StorageError          the object store failed or is unreachable
    └── InvalidInput          input the vault refuses (empty name, bad range, path trick)
"""

from __future__ import annotations


class VaultError(Exception):
    """Base class of every error the vault raises."""


class ConfigError(VaultError):
    """Settings that cannot work."""


class NotFound(VaultError):
    """No such recording, case, event, key or object."""


class AccessDenied(VaultError):
    """The caller is not allowed to do this."""


class Unauthenticated(AccessDenied):
    """No usable credentials: no token, an unknown, expired or revoked one (HTTP 401)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ShareUnavailable(AccessDenied):
    """The share exists but can no longer be used: revoked, expired or out of downloads (410)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class KeyUnavailable(VaultError):
    """A key cannot be had: unknown key id, wrong keyring, or a wrapped key that does not open."""


class Shredded(KeyUnavailable):
    """The data key was destroyed by retention; the footage can never be decrypted again."""


class IntegrityError(VaultError):
    """Something that must verify does not."""


class CiphertextError(IntegrityError):
    """An encrypted object was truncated, reordered, spliced with another, or altered."""


class HashMismatch(IntegrityError):
    """A plaintext hash differs from the one the catalog recorded."""


class LedgerError(IntegrityError):
    """A custody event, hash link, Merkle proof or signed checkpoint does not verify."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class CatalogMismatch(LedgerError):
    """Catalog rows differ from the custody ledger's record of them (source, capture times,
    size, hash, retention date, deletion), or a recording the ledger shows alive lost its row.

    ``problems`` lists them (:class:`vault.ledger.catalog_binding.CatalogProblem`).
    """

    def __init__(self, message: str, *, problems: list[object], seq: int | None = None) -> None:
        super().__init__(message, seq=seq)
        self.problems = problems


class StorageError(VaultError):
    """The object store failed or could not be reached."""


class InvalidInput(VaultError):
    """Input the vault refuses: an empty name, a bad byte range, a path trick."""
