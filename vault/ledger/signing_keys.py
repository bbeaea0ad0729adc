"""The custody ledger's signing keys over time: the current key, a successor during a
rotation, and the entry-MAC keys of retired keys.

A rotation (:meth:`vault.ledger.custody.CustodyLedger.rotate_key`) hands the ledger from one Ed25519
key to the next. Three files live side by side (``<key>`` is ``Settings.ledger_key_file``):

- ``<key>``: the current signing key (PKCS#8 PEM), as :func:`load_or_create_signing_key` reads;
- ``<key>.next``: the successor, written before the rotation is recorded in the ledger and
  moved over ``<key>`` once it is; a crash in between leaves both, and the ledger itself says
  which one is current (:meth:`LedgerKeys.adopt`);
- ``<key>.retired``: for each retired key, its verifier key and its entry-MAC key. The retired
  *signing* key is destroyed: nobody can sign a checkpoint with it again, while the events it
  MACed still verify. The MAC keys are secrets: the file is mode 0600, like the signing key.

Each process holding a :class:`LedgerKeys` re-reads these files when the ledger shows a
rotation it has not seen (another process rotated), so no process keeps writing events with a
retired key.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .checkpoint import KEY_FILE_MODE, LedgerSigner, check_private, load_or_create_signing_key
from vault.storage.durable import fsync_dir, replace_file
from vault.errors import ConfigError, KeyUnavailable

#: HKDF context of the key that MACs custody entries, derived from the signing key.
MAC_CONTEXT = "custody entry MAC v1"
RETIRED_FORMAT = "evidence-vault retired ledger keys v1"


def mac_key(signer: LedgerSigner) -> bytes:
    """The key that MACs the custody entries written while ``signer`` is current."""
    return signer.derive_key(MAC_CONTEXT)


def next_path(path: Path) -> Path:
    """Where a rotation's successor key waits until the ledger records it."""
    return path.with_name(path.name + ".next")


def retired_path(path: Path) -> Path:
    """Where retired keys' MAC keys are kept."""
    return path.with_name(path.name + ".retired")


@dataclass
class LedgerKeys:
    """The signing key files of one vault, loaded.

    ``signer`` signs checkpoints and MACs new events; ``macs`` maps every verifier key this
    vault can check events for (current, successor, retired) to its entry-MAC key.
    """

    path: Path
    name: str
    signer: LedgerSigner
    successor: LedgerSigner | None = None
    macs: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str, name: str) -> LedgerKeys:
        """Read the key files at ``path`` (creating the signing key if there is none).

        Raises ConfigError when a file is readable by others, KeyUnavailable when one cannot
        be read.
        """
        path = Path(path)
        signer = load_or_create_signing_key(path, name)
        successor = None
        if next_path(path).exists():
            successor = load_or_create_signing_key(next_path(path), name)
        macs = _read_retired(retired_path(path))
        for held in (signer, successor):
            if held is not None:
                macs[held.verifier_key()] = mac_key(held)
        return cls(path=path, name=name, signer=signer, successor=successor, macs=macs)

    def reload(self) -> LedgerKeys:
        """The key files as they are now (another process may have rotated)."""
        return LedgerKeys.load(self.path, self.name)

    def begin_rotation(self) -> LedgerSigner:
        """Make the successor key: written to ``<key>.next``, and the current key's MAC key
        added to ``<key>.retired``, both durable before the ledger records the rotation.

        Returns the successor. A successor left by an interrupted rotation that the ledger never
        recorded is replaced. Raises ConfigError when the files cannot be written (a full disk).
        """
        successor = LedgerSigner(Ed25519PrivateKey.generate(), self.name)
        retired = _read_retired(retired_path(self.path))
        retired[self.signer.verifier_key()] = mac_key(self.signer)
        try:
            replace_file(next_path(self.path), successor.to_pem(), mode=KEY_FILE_MODE)
            replace_file(retired_path(self.path), _retired_json(retired), mode=KEY_FILE_MODE)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the ledger key files in {self.path.parent}: {exc.strerror or exc}"
                " (nothing was rotated)"
            ) from None
        self.successor = successor
        self.macs[self.signer.verifier_key()] = mac_key(self.signer)
        self.macs[successor.verifier_key()] = mac_key(successor)
        return successor

    def adopt(self, verifier_key: str) -> LedgerSigner | None:
        """Make the key the ledger names current (``verifier_key``) this process's signer.

        The successor of a rotation the ledger has recorded is moved over the key file (the
        step a crash may have cut off); the old signing key is gone after this. Returns the
        new signer, or None when this vault holds no such signing key.
        """
        if self.signer.verifier_key() == verifier_key:
            return self.signer
        fresh = self.reload()
        for candidate in (fresh.successor, fresh.signer):
            if candidate is None or candidate.verifier_key() != verifier_key:
                continue
            if candidate is fresh.successor:
                try:
                    os.replace(next_path(self.path), self.path)
                except FileNotFoundError:
                    pass  # another process of this vault moved it a moment ago
                fsync_dir(self.path.parent)
            self.signer, self.successor = candidate, None
            self.macs.update(fresh.macs)
            return candidate
        return None


def _read_retired(path: Path) -> dict[str, bytes]:
    if not path.exists():
        return {}
    check_private(path, "retired ledger keys file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != RETIRED_FORMAT:
            raise ValueError("unknown format")
        return {
            str(k["verifier_key"]): base64.b64decode(k["mac_key"], validate=True)
            for k in data["keys"]
        }
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise KeyUnavailable(f"retired ledger keys file {path} cannot be read: {exc}") from None


def _retired_json(macs: dict[str, bytes]) -> bytes:
    keys: list[dict[str, Any]] = [
        {"verifier_key": vkey, "mac_key": base64.b64encode(mac).decode()}
        for vkey, mac in sorted(macs.items())
    ]
    return (json.dumps({"format": RETIRED_FORMAT, "keys": keys}, indent=2) + "\n").encode()


__all__ = ["MAC_CONTEXT", "LedgerKeys", "mac_key", "next_path", "retired_path"]
