"""Verifying the custody ledger: the per-event checks (:class:`ChainChecker`), the object index
streamed beside the events (:class:`IndexCursor`), which signing key was in effect where
(:class:`Epochs`), and what a verify reports (:class:`VerifyReport`).

The checks are numbered as in :meth:`vault.ledger.custody.LedgerView.verify`; every failure
is a LedgerError naming the first event (``seq``) that does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from vault.errors import CatalogMismatch, LedgerError

from .catalog_binding import CatalogReport
from .catalog_binding import check_catalog as compare_catalog

from .checkpoint import Checkpoint, VerifierKey
from .epochs import Epochs
from .entries import GENESIS_PREV, Action, CustodyEvent, action_value, parse_entry
from .merkle import CompactRange, leaf_hash
from .tables import CHECKPOINTS, EVENTS, OBJECTS, binds_catalog, unpack_entry
from .verify_pool import Facts, checked_batches, default_workers

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
    """What :meth:`LedgerView.verify` checked."""

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

    def fold(self, facts: Facts | None) -> bool:
        """Take in a row a worker checked (:mod:`vault.ledger.verify_pool`) when its facts
        continue this chain exactly (position, link, key in effect): True. Else False, and
        nothing changes: the caller checks the row with :meth:`check`."""
        if facts is None:
            return False
        seq, prev, entry_hash, leaf, _ids, vkey = facts
        if seq != self.seq or prev != self.prev or vkey != self.vkey:
            return False
        self.tree.append(leaf)
        self.prev = entry_hash
        self.seq = seq + 1
        return True

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


def check_events(
    checker: ChainChecker,
    links: IndexCursor,
    rows: Iterable[Any],
    epochs: Epochs,
    workers: int | None,
    at_size: Callable[[], None],
) -> None:
    """Check ``rows`` (VERIFY_COLUMNS, in seq order) with ``checker`` and their object links
    with ``links``, calling ``at_size`` after each event; each event's own checks run in
    ``workers`` processes (None: one per CPU; 1: here), see :mod:`vault.ledger.verify_pool`.
    Raises LedgerError naming the first event that does not verify, as checking each row
    here would."""
    count = default_workers() if workers is None else max(1, workers)
    for batch, facts in checked_batches(rows, count, checker.macs, epochs.rotations, epochs.current):
        for row, fact in zip(batch, facts, strict=True):
            if checker.fold(fact):
                assert fact is not None
                links.check(row[0], fact[4])
            else:
                links.check(row[0], checker.check(row).object_ids)
            at_size()


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



class LedgerView(Protocol):
    """What verifying and proving read of a :class:`vault.ledger.custody.CustodyLedger` (a
    protocol, so that these modules need not import the ledger that delegates to them)."""

    origin: str
    _macs: dict[str, bytes]
    _sessions: sessionmaker[Session]

    def _snapshot(self) -> AbstractContextManager[Connection]: ...
    def _epochs(self, conn: Connection | Session) -> Epochs: ...
    def _open(self, note: str, epochs: Epochs) -> Checkpoint: ...
    def _read_witness(self, epochs: Epochs, note: str | None = None) -> Checkpoint | None: ...
    def _witness_note(self) -> str | None: ...
    def _checker(self, epochs: Epochs, **resume: Any) -> ChainChecker: ...
    def _lock(self, session: Session) -> None: ...
    def _size(self, session: Session | Connection) -> int: ...
    def checkpoint(self, session: Session | None = None) -> str: ...


def verify_ledger(
    ledger: LedgerView,
    *,
    trusted_checkpoint: str | None = None,
    catalog: bool = True,
    workers: int | None = None,
) -> VerifyReport:
    """Recompute every entry, link, leaf, MAC, Merkle root and signed checkpoint, and (with
    ``catalog``) compare every catalog row with the ledger's record of it.

    ``trusted_checkpoint`` is a signed note saved earlier outside the vault; the witness
    file, when set and present, is checked the same way. Returns a VerifyReport, which
    says how many events no signature covers yet; raises LedgerError naming (``seq``) the
    first event that does not verify, CatalogMismatch listing the rows that differ.
    ``workers``: processes for the per-event checks (:func:`check_events`).
    """
    # 1. Checkpoints kept outside the database, read before it (a rollback cannot reach them).
    witness_note = ledger._witness_note()
    with ledger._snapshot() as conn:
        # Which key signed what: the rotations as stored, checked against the chain in 3.
        epochs = ledger._epochs(conn)
        outside: list[tuple[str, Checkpoint]] = []
        if trusted_checkpoint is not None:
            try:
                trusted = ledger._open(trusted_checkpoint, epochs)
            except LedgerError as exc:
                raise LedgerError(f"the trusted checkpoint does not verify: {exc}") from None
            outside.append(("trusted checkpoint", trusted))
        witnessed = ledger._read_witness(epochs, witness_note)
        if witnessed is not None:
            outside.append(("witnessed checkpoint", witnessed))
        # 2. Every stored checkpoint is a note signed for our origin by the key in effect
        #    at its size (both keys at a hand-over), and its columns say what the note says.
        targets: dict[int, list[tuple[str, bytes, bool]]] = {}
        stored = list(conn.execute(select(_C.size, _C.root_hash, _C.note).order_by(_C.size)))
        for cp_row in stored:
            try:
                cp = ledger._open(cp_row.note, epochs)
            except LedgerError as exc:
                raise LedgerError(f"checkpoint {cp_row.size} does not verify: {exc}") from None
            if cp.size != cp_row.size or cp.root_hash.hex() != cp_row.root_hash:
                raise LedgerError(
                    f"checkpoint {cp_row.size}'s columns differ from its signed note"
                )
            targets.setdefault(cp.size, []).append(
                (f"signed checkpoint {cp.size}", cp.root_hash, False)
            )
        for label, cp in outside:
            targets.setdefault(cp.size, []).append((label, cp.root_hash, True))
        # 3. Stream the events once, checking each row (ChainChecker's checks 1-6), and
        # 4. at every size a checkpoint names, the recomputed root must equal the signed one
        #    (so all checkpoints are prefixes of this one history: they only ever grew).
        checker = ledger._checker(epochs)
        # The largest size that matched, per kind (stored / outside): a mismatch can only
        # say the change lies after it.
        matched = {False: 0, True: 0}
        check_roots(targets, checker, matched)
        stream = conn.execute(
            select(*VERIFY_COLUMNS).order_by(_E.seq).execution_options(yield_per=READ_BATCH)
        )
        # 6 (in the same pass). The object index, read alongside in seq order, lists exactly
        #    the objects each entry names: memory stays one event's worth, whatever the size.
        links = IndexCursor(conn)

        def at_size() -> None:
            if checker.seq in targets:
                check_roots(targets, checker, matched)

        check_events(checker, links, stream, epochs, workers, at_size)
        size = checker.seq
        if tuple(checker.rotations) != epochs.rotations:  # pragma: no cover - see check 6
            raise LedgerError("the ledger's key rotations differ from its action index")
        # 5. No checkpoint, stored or outside, may be larger than the ledger (rollback).
        beyond = [s for s in targets if s > size]
        if beyond:
            labels = ", ".join(label for s in sorted(beyond) for label, _, _ in targets[s])
            raise LedgerError(
                f"the ledger has {size} events but {labels} signed more: events were removed",
                seq=size,
            )
        # (Index rows beyond the last event name no event of this snapshot: ignored.)
        # 7. Every catalog row says what the ledger recorded of it, in the same snapshot
        #    as the events just verified (vault.ledger.catalog_binding).
        recordings = None
        if catalog:
            recordings = _raise_mismatches(_check_catalog(ledger, conn, epochs)).recordings
    latest = stored[-1].size if stored else None
    signed = max([0, *(row.size for row in stored), *(cp.size for _, cp in outside)])
    return VerifyReport(
        events=size,
        checkpoints=len(stored),
        root_hash=checker.tree.root().hex(),
        latest_checkpoint=latest,
        witnessed=witnessed.size if witnessed is not None else None,
        trusted=outside[0][1].size if trusted_checkpoint is not None else None,
        unsigned=max(0, size - signed),
        recordings=recordings,
    )

def check_catalog(ledger: LedgerView) -> CatalogReport:
    """Compare every catalog row with the ledger's record of it (:mod:`vault.ledger.catalog_binding`).

    Reads one snapshot; each event used is authenticated (entry MAC by the key then in
    effect). Returns the report, mismatches listed, not raised; raises LedgerError when an
    event it reads was not written by this ledger.
    """
    with ledger._snapshot() as conn:
        return _check_catalog(ledger, conn, ledger._epochs(conn))

def _check_catalog(
    ledger: LedgerView, conn: Connection, epochs: Epochs) -> CatalogReport:
    return compare_catalog(conn, _object_events(ledger, conn, epochs))

def _object_events(
    ledger: LedgerView, conn: Connection, epochs: Epochs
) -> Iterator[tuple[str, int, CustodyEvent]]:
    """(object id, seq, event) for every event that may create, move or delete a
    recording, by object id (code points) then seq, each checked against its entry MAC."""
    collation = "C" if conn.dialect.name == "postgresql" else "BINARY"
    rows = conn.execute(
        select(_O.object_id, _E.seq, _E.entry, _E.entry_mac)
        .join_from(OBJECTS, EVENTS, _E.seq == _O.seq)
        # The flag is checked against the entry by verify (check 6): an event whose flag
        # was cleared is reported there, and here the row it moved is reported as altered.
        .where(_E.binds_catalog == 1)
        .order_by(_O.object_id.collate(collation), _E.seq)
        .execution_options(yield_per=READ_BATCH)
    )
    for row in rows:
        payload = unpack_entry(row.entry, row.seq)
        key = ledger._macs.get(epochs.key_at(row.seq))
        if key is None or not hmac.compare_digest(bytes(row.entry_mac), _mac(key, payload)):
            raise LedgerError(
                f"event {row.seq} was not written by this ledger (bad entry MAC)", seq=row.seq
            )
        try:
            seq, _prev, ev = parse_entry(payload)
        except LedgerError as exc:
            raise LedgerError(f"event {row.seq}: {exc}", seq=row.seq) from None
        if seq != row.seq or row.object_id not in ev.object_ids:
            raise LedgerError(
                f"the object index ties {row.object_id} to event {row.seq}, which does not"
                " name it",
                seq=row.seq,
            )
        yield row.object_id, seq, ev

def check_roots(
    targets: dict[int, list[tuple[str, bytes, bool]]],
    checker: ChainChecker,
    matched: dict[bool, int],
) -> None:
    size = checker.seq
    root = checker.tree.root()
    for label, expected, outside in targets.get(size, ()):
        if expected != root:
            # The chain and MACs held, so events were rewritten by a holder of the key or
            # the checkpoint belongs to another history. A root cannot say which event
            # changed, only that it lies after the last checkpoint of that kind that matched.
            first = matched[outside]
            raise LedgerError(f"events {first}..{size - 1} do not match the {label}", seq=first)
        matched[outside] = size


def _raise_mismatches(report: CatalogReport) -> CatalogReport:
    """``report``, or CatalogMismatch naming its first few problems."""
    if report.passed:
        return report
    shown = "; ".join(str(p) for p in report.problems[:5])
    more = len(report.problems) - 5
    raise CatalogMismatch(
        f"{len(report.problems)} catalog problem(s): {shown}"
        + (f"; and {more} more" if more > 0 else ""),
        problems=list(report.problems),
        seq=report.problems[0].seq,
    )


__all__ = [
    "LEDGER_KEY",
    "READ_BATCH",
    "VERIFY_COLUMNS",
    "ChainChecker",
    "Epochs",
    "IndexCursor",
    "LedgerView",
    "VerifyReport",
    "check_catalog",
    "check_events",
    "check_roots",
    "verify_ledger",
]
