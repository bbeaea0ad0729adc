"""Evidence vault core: settings, catalog, encrypted object store, keys, custody ledger, retention.

Import public names from here (``from vault import Vault, Settings``); modules whose names start
with an underscore are private to this package.
"""

from .actors import Actor, Purpose, Role
from .capture import Capture
from .storage.catalog import Case, Hold, HoldKind, MediaKind, Recording, Source, SourceKind
from .config import Settings
from .ledger.custody import Action, CustodyLedger, VerifyReport
from .casework.disclosure import ExportResult, build_export, verify_export
from .errors import (
    AccessDenied,
    CiphertextError,
    ConfigError,
    HashMismatch,
    IntegrityError,
    InvalidInput,
    KeyUnavailable,
    LedgerError,
    NotFound,
    Shredded,
    StorageError,
    VaultError,
)
from .casework.holds import place_hold, release_hold
from .storage.keys import KeyProvider, LocalKeyring, WrappedKey
from .storage.objectstore import LocalStore, ObjectInfo, ObjectStore, S3Store, open_store
from .casework.retention import (
    RetentionReport,
    deletion_certificate,
    run_retention,
    verify_deletion_certificate,
)
from .storage.hold_rule import active_holds
from .storage.retention_rule import RetentionPolicy
from .vault import ByteRange, Vault

__all__ = [
    "AccessDenied",
    "Action",
    "Actor",
    "ByteRange",
    "Capture",
    "Case",
    "CiphertextError",
    "ConfigError",
    "CustodyLedger",
    "ExportResult",
    "HashMismatch",
    "Hold",
    "HoldKind",
    "IntegrityError",
    "InvalidInput",
    "KeyProvider",
    "KeyUnavailable",
    "LedgerError",
    "LocalKeyring",
    "LocalStore",
    "MediaKind",
    "NotFound",
    "ObjectInfo",
    "ObjectStore",
    "Purpose",
    "Recording",
    "RetentionPolicy",
    "RetentionReport",
    "Role",
    "S3Store",
    "Settings",
    "Shredded",
    "Source",
    "SourceKind",
    "StorageError",
    "Vault",
    "VaultError",
    "VerifyReport",
    "WrappedKey",
    "active_holds",
    "build_export",
    "deletion_certificate",
    "open_store",
    "place_hold",
    "release_hold",
    "run_retention",
    "verify_deletion_certificate",
    "verify_export",
]
