"""Verifying the custody ledger: the per-event checks (:class:`ChainChecker`), the object index
streamed beside the events (:class:`IndexCursor`), which signing key was in effect where
(:class:`Epochs`), and what a verify reports (:class:`VerifyReport`).

The checks are numbered as in :meth:`vault.ledger.custody.CustodyLedger.verify`; every failure
is a LedgerError naming the first event (``seq``) that does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from vault.errors import LedgerError

from .checkpoint import VerifierKey
from .entries import GENESIS_PREV, Action, CustodyEvent, action_value, parse_entry
from .merkle import CompactRange, leaf_hash
from .tables import CHECKPOINTS, EVENTS, OBJECTS, binds_catalog, unpack_entry

#: ``details.key`` of the ``key_rotated`` event that hands the ledger to a new signing key.
LEDGER_KEY = "ledger"
READ_BATCH = 2000

_E = EVENTS.c
_O = OBJECTS.c
_C = CHECKPOINTS.c
VERIFY_COLUMNS = (
    _E.seq,
    _E.entry,
    _E.entry_mac,
    _E.ts,
    _E.action,
    _E.actor,
    _E.reference,
    _E.binds_catalog,
)


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`CustodyLedger.verify` checked."""

    events: int
    checkpoints: int
    root_hash: str
    latest_checkpoint: int | None
    witnessed: int | None
    trusted: int | None
    #: Events after the largest signed checkpoint (stored or witnessed): not yet under any
    #: signature, so their removal could not be detected.
    unsigned: int = 0
    #: Catalog rows compared with the ledger's record of them (None: not checked).
    recordings: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "events": self.events,
            "checkpoints": self.checkpoints,
            "root_hash": self.root_hash,
            "latest_checkpoint": self.latest_checkpoint,
            "witnessed": self.witnessed,
            "trusted": self.trusted,
            "unsigned": self.unsigned,
            "recordings": self.recordings,
        }

    def summary(self) -> str:
        """One line for people."""
        parts = [
            f"{self.events} events",
            f"{self.checkpoints} signed checkpoints",
            f"{self.unsigned} events not yet covered by a signature",
            f"root {self.root_hash}",
        ]
        if self.recordings is not None:
            parts.append(f"{self.recordings} catalog rows match the ledger")
        if self.witnessed is not None:
            parts.append(f"witnessed checkpoint {self.witnessed} matches")
        if self.trusted is not None:
            parts.append(f"trusted checkpoint {self.trusted} matches")
        return ", ".join(parts)


def _rotation(ev: CustodyEvent, seq: int) -> tuple[str, str] | None:
    """(old, new) verifier keys when ``ev`` hands the ledger to a new signing key, else None."""
    if ev.action != Action.KEY_ROTATED or ev.details.get("key") != LEDGER_KEY:
        return None
    old, new = ev.details.get("old_key"), ev.details.get("new_key")
    if not isinstance(old, str) or not isinstance(new, str):
        raise LedgerError(f"event {seq} rotates the ledger key without naming both keys", seq=seq)
    for vkey in (old, new):
        try:
            VerifierKey.parse(vkey)
        except LedgerError:
            raise LedgerError(f"event {seq} names a malformed verifier key", seq=seq) from None
    return old, new


def _short(vkey: str) -> str:
    """``name+keyid`` of a verifier key, for messages."""
    return vkey.rpartition("+")[0] or vkey


@dataclass(frozen=True)
class Epochs:
    """Which signing key was in effect at each size of the ledger.

    ``rotations`` lists (seq, old key, new key) for every ledger key rotation, in order. Events
    before the first rotation, and the rotation event itself, were written under its old key;
    after it, under the new. With no rotation, the one key is ``current``.
    """

    rotations: tuple[tuple[int, str, str], ...]
    current: str

    def key_at(self, size: int) -> str:
        """The key in effect once ``size`` events are written: it MACs event ``size`` and
        signs checkpoints of ``size``."""
        key = self.rotations[0][1] if self.rotations else self.current
        for seq, _old, new in self.rotations:
            if seq < size:
                key = new
        return key

    def signers_of(self, size: int) -> list[str]:
        """The keys that must have signed a checkpoint of ``size``: the key in effect, and
        also the old key when the checkpoint ends with a rotation (the hand-over, cosigned)."""
        keys = [self.key_at(size)]
        keys += [old for seq, old, _new in self.rotations if seq == size - 1]
        return keys


class ChainChecker:
    """Checks stored rows one by one, in seq order, keeping the chain head and Merkle frontier,
    and following the ledger's signing key through rotations."""

    def __init__(
        self,
        macs: Mapping[str, bytes],
        vkey: str,
        *,
        seq: int = 0,
        prev: str = GENESIS_PREV,
        tree: CompactRange | None = None,
    ) -> None:
        self.macs = macs
        self.vkey = vkey
        self.seq = seq
        self.prev = prev
        self.tree = tree or CompactRange()
        self.rotations: list[tuple[int, str, str]] = []

    def _mac_key(self, seq: int) -> bytes:
        key = self.macs.get(self.vkey)
        if key is None:
            raise LedgerError(
                f"event {seq} was written under signing key {_short(self.vkey)}, whose MAC key"
                " this vault does not hold (see the retired ledger keys file)",
                seq=seq,
            )
        return key

    def check(self, row: Any) -> CustodyEvent:
        """Check one row (columns as in VERIFY_COLUMNS); returns its event or raises."""
        seq, stored, mac_col, ts, action, actor, reference, binds = row
        # 1. Positions are contiguous from 0: a gap is a deleted event, a repeat a reorder.
        if seq != self.seq:
            if seq > self.seq:
                raise LedgerError(f"event {self.seq} is missing from the ledger", seq=self.seq)
            raise LedgerError(f"event {seq} appears out of order", seq=seq)
        payload = unpack_entry(stored, seq)
        # 2. The entry is canonical custody JSON that names its own position.
        try:
            entry_seq, prev, ev = parse_entry(payload)
        except LedgerError as exc:
            raise LedgerError(f"event {seq}: {exc}", seq=seq) from None
        if entry_seq != seq:
            raise LedgerError(
                f"event {seq} is stored at the position of event {entry_seq}'s entry", seq=seq
            )
        # 3. It links to the entry before it (the hash chain).
        if prev != self.prev:
            raise LedgerError(f"event {seq} does not link to event {seq - 1}", seq=seq)
        # 4. Its entry hash (the next entry's prev) and Merkle leaf hash, recomputed: storage
        #    layout 2 keeps no copy of them that could disagree.
        entry_hash = hashlib.sha256(payload).hexdigest()
        leaf = leaf_hash(payload)
        # 5. It was written by a holder of the signing key then in effect (no forged,
        #    re-chained events, none written with a retired key).
        if not isinstance(mac_col, bytes | memoryview) or not hmac.compare_digest(
            bytes(mac_col), _mac(self._mac_key(seq), payload)
        ):
            raise LedgerError(
                f"event {seq} was not written by this ledger (bad entry MAC)", seq=seq
            )
        # 6. The columns that queries filter on say what the entry says (no hidden events).
        if (
            ts != ev.ts
            or action != action_value(ev.action)
            or actor != ev.actor
            or reference != ev.reference
            or binds != binds_catalog(action, payload)
        ):
            raise LedgerError(f"event {seq}'s index columns differ from its entry", seq=seq)
        # 7. A key rotation hands over from the key in effect; what follows is under the new one.
        rotation = _rotation(ev, seq)
        if rotation is not None:
            old, new = rotation
            if old != self.vkey:
                raise LedgerError(
                    f"event {seq} rotates away from key {_short(old)}, but"
                    f" {_short(self.vkey)} was in effect",
                    seq=seq,
                )
            self.vkey = new
            self.rotations.append((seq, old, new))
        self.tree.append(leaf)
        self.prev = entry_hash
        self.seq = seq + 1
        return ev


class IndexCursor:
    """The object index (``custody_event_objects``) streamed in seq order beside the events."""

    def __init__(self, conn: Connection, start: int = 0) -> None:
        rows = conn.execute(
            select(_O.seq, _O.object_id)
            .where(_O.seq >= start)
            .order_by(_O.seq)
            .execution_options(yield_per=READ_BATCH)
        )
        self._rows = iter(rows)
        self._next = next(self._rows, None)

    def check(self, seq: int, object_ids: Sequence[str]) -> None:
        """The index rows of event ``seq`` name exactly ``object_ids``; else LedgerError."""
        listed: set[str] = set()
        while self._next is not None and self._next.seq <= seq:
            link, self._next = self._next, next(self._rows, None)
            if link.seq < seq or link.object_id not in object_ids:
                raise LedgerError(
                    f"the object index ties {link.object_id} to event {link.seq},"
                    " which does not name it",
                    seq=link.seq,
                )
            listed.add(link.object_id)
        hidden = [oid for oid in object_ids if oid not in listed]
        if hidden:
            raise LedgerError(
                f"the object index hides event {seq} from queries about {min(hidden)}", seq=seq
            )


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.digest(key, payload, "sha256")


def _frontier_text(tree: CompactRange) -> str:
    return ",".join(h.hex() for h in tree.hashes)


def _frontier_parse(size: int, value: str) -> CompactRange:
    try:
        hashes = [bytes.fromhex(h) for h in value.split(",")] if value else []
    except ValueError:
        raise LedgerError(f"checkpoint {size} has a corrupt frontier") from None
    return CompactRange(size, hashes)


__all__ = [
    "LEDGER_KEY",
    "READ_BATCH",
    "VERIFY_COLUMNS",
    "ChainChecker",
    "Epochs",
    "IndexCursor",
    "VerifyReport",
]
