"""Incremental verification of the custody ledger: check only what was appended since the last
verified checkpoint, resuming the Merkle tree from that checkpoint's stored frontier.

:meth:`CustodyLedger.verify <vault.ledger.custody.CustodyLedger.verify>` recomputes the whole ledger;
at tens of millions of events that is an hour's work. The scheduled check runs this instead:

1. The *verified mark* is the signed note of the largest checkpoint a verify (full or
   incremental) has matched. It lives beside the witness file (``verified.checkpoint`` in
   ``Settings.ledger_witness_dir``: outside the database, so a database writer cannot move it
   forward past events they changed), or in ``vault_meta`` when the ledger has no witness.
   Without a mark the first run is a full verify.
2. The mark's note must verify with the key in effect at its size, the database must still hold
   a checkpoint of that size with the same root (no rollback), and that checkpoint's stored
   frontier (:class:`~vault.ledger.merkle.CompactRange`) must fold to the signed root: a frontier that
   does so cannot be forged without a SHA-256 collision.
3. From there each appended event gets the full verify's checks 1-7 (position, canonical entry,
   chain link to the event before the mark, entry hash, leaf hash, MAC under the key then in
   effect, index columns, key hand-overs) and the object index is read beside it; every stored
   checkpoint after the mark, and the witness and trusted checkpoints, must match the root
   recomputed at their size; none may be larger than the ledger.
4. On success the mark moves to the latest stored checkpoint.

Memory is a few batches of events and one frontier (O(log n)); each event's own checks run in
``CustodyLedger.verify_workers`` processes (:mod:`vault.ledger.verify_pool`); time is linear in the events appended since
the mark. Events before the mark are not re-read: a full verify (``custody verify``) still
checks those, and the catalog binding, on its own schedule.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError as SQLAlchemyIntegrityError

from vault.storage.catalog import Setting
from .checkpoint import Checkpoint
from .custody import CustodyLedger
from .tables import CHECKPOINTS, EVENTS
from .verify import (
    READ_BATCH as _READ_BATCH,
    VERIFY_COLUMNS as _VERIFY_COLUMNS,
    ChainChecker as _ChainChecker,
    Epochs as _Epochs,
    IndexCursor as _IndexCursor,
    VerifyReport,
    _frontier_parse,
    check_events,
)
from .tables import unpack_entry
from vault.storage.durable import replace_file
from vault.errors import LedgerError

_CHECKPOINTS = CHECKPOINTS
_C = CHECKPOINTS.c
_E = EVENTS.c

#: vault_meta key of the verified mark when the ledger has no witness directory.
VERIFIED_META_KEY = "ledger_verified_checkpoint"
#: File name of the verified mark beside the witness file.
VERIFIED_FILE = "verified.checkpoint"


def verified_mark_path(ledger: CustodyLedger) -> Path | None:
    """Where the verified mark is written: beside the witness file, or None (vault_meta)."""
    if ledger.witness_path is None:
        return None
    return ledger.witness_path.with_name(VERIFIED_FILE)


def read_verified_mark(ledger: CustodyLedger) -> str | None:
    """The signed note of the last verified checkpoint, unchecked; None before any verify."""
    path = verified_mark_path(ledger)
    if path is not None:
        return path.read_text(encoding="utf-8") if path.exists() else None
    with ledger._sessions() as session:
        row = session.get(Setting, VERIFIED_META_KEY)
    return None if row is None else row.value


def _write_verified_mark(ledger: CustodyLedger, note: str) -> None:
    path = verified_mark_path(ledger)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, note.encode("utf-8"))
        return
    try:
        with ledger._sessions.begin() as session:
            row = session.get(Setting, VERIFIED_META_KEY)
            if row is None:
                session.add(Setting(key=VERIFIED_META_KEY, value=note))
            else:
                row.value = note
    except SQLAlchemyIntegrityError:
        pass  # another verify wrote its mark at the same moment: the next run moves it on


def verify_incremental(
    ledger: CustodyLedger, *, trusted_checkpoint: str | None = None
) -> VerifyReport:
    """Verify the events appended since the last verified checkpoint (see the module text), and
    move the mark to the latest stored checkpoint.

    Returns a VerifyReport whose ``events`` is the ledger's size (``recordings`` is None: the
    catalog is compared by the full verify and by fixity runs). Raises LedgerError naming the
    first event that does not verify, as :meth:`CustodyLedger.verify` does.
    """
    mark = read_verified_mark(ledger)
    if mark is None:
        report = ledger.verify(trusted_checkpoint=trusted_checkpoint, catalog=False)
        _mark_latest(ledger, report.latest_checkpoint)
        return report
    witness_note = ledger._witness_note()
    with ledger._snapshot() as conn:
        epochs = ledger._epochs(conn)
        # 2. The mark is a checkpoint this ledger signed, still stored, with a sound frontier.
        try:
            start = ledger._open(mark, epochs)
        except LedgerError as exc:
            raise LedgerError(f"the verified mark does not verify: {exc}") from None
        checker = _resume(ledger, conn, start, epochs)
        # The targets: every stored checkpoint after the mark, and the ones kept outside.
        targets: dict[int, list[tuple[str, bytes, bool]]] = {}
        later = list(
            conn.execute(
                select(_C.size, _C.root_hash, _C.note).where(_C.size > start.size).order_by(_C.size)
            )
        )
        for row in later:
            try:
                cp = ledger._open(row.note, epochs)
            except LedgerError as exc:
                raise LedgerError(f"checkpoint {row.size} does not verify: {exc}") from None
            if cp.size != row.size or cp.root_hash.hex() != row.root_hash:
                raise LedgerError(f"checkpoint {row.size}'s columns differ from its signed note")
            targets.setdefault(cp.size, []).append((f"signed checkpoint {cp.size}", cp.root_hash, False))
        outside: list[tuple[str, Checkpoint]] = []
        if trusted_checkpoint is not None:
            try:
                outside.append(("trusted checkpoint", ledger._open(trusted_checkpoint, epochs)))
            except LedgerError as exc:
                raise LedgerError(f"the trusted checkpoint does not verify: {exc}") from None
        witnessed = ledger._read_witness(epochs, witness_note)
        if witnessed is not None:
            outside.append(("witnessed checkpoint", witnessed))
        for label, cp in outside:
            if cp.size >= start.size:
                targets.setdefault(cp.size, []).append((label, cp.root_hash, True))
                continue
            # Before the mark: the database must still hold exactly that checkpoint.
            stored = conn.execute(
                select(_C.root_hash).where(_C.size == cp.size)
            ).scalar_one_or_none()
            if stored != cp.root_hash.hex():
                raise LedgerError(
                    f"the {label} {cp.size} is not in the ledger: rolled back or forked",
                    seq=cp.size,
                )
        matched = {False: start.size, True: start.size}
        ledger._check_roots(targets, checker, matched)
        # 3. Stream what was appended since the mark, with its object links beside it.
        stream = conn.execute(
            select(*_VERIFY_COLUMNS)
            .where(_E.seq >= start.size)
            .order_by(_E.seq)
            .execution_options(yield_per=_READ_BATCH)
        )
        links = _IndexCursor(conn, start.size)

        def at_size() -> None:
            if checker.seq in targets:
                ledger._check_roots(targets, checker, matched)

        check_events(checker, links, stream, epochs, ledger.verify_workers, at_size)
        size = checker.seq
        rotations = tuple(r for r in epochs.rotations if r[0] >= start.size)
        if tuple(checker.rotations) != rotations:  # pragma: no cover - check 7 catches it
            raise LedgerError("the ledger's key rotations differ from its action index")
        beyond = [s for s in targets if s > size]
        if beyond:
            labels = ", ".join(label for s in sorted(beyond) for label, _, _ in targets[s])
            raise LedgerError(
                f"the ledger has {size} events but {labels} signed more: events were removed",
                seq=size,
            )
        count = conn.execute(select(func.count()).select_from(_CHECKPOINTS)).scalar_one()
    # 4. Move the mark to the latest stored checkpoint (all of whose events were just checked).
    latest = later[-1] if later else None
    if latest is not None:
        _write_verified_mark(ledger, latest.note)
    signed = max([start.size, *(r.size for r in later), *(cp.size for _, cp in outside)])
    return VerifyReport(
        events=size,
        checkpoints=count,
        root_hash=checker.tree.root().hex(),
        latest_checkpoint=latest.size if latest is not None else start.size,
        witnessed=witnessed.size if witnessed is not None else None,
        trusted=outside[0][1].size if trusted_checkpoint is not None else None,
        unsigned=max(0, size - signed),
        recordings=None,
    )


def _resume(
    ledger: CustodyLedger, conn: Connection, start: Checkpoint, epochs: _Epochs
) -> _ChainChecker:
    """A chain checker positioned just after the verified checkpoint ``start``."""
    row = conn.execute(
        select(_C.root_hash, _C.frontier).where(_C.size == start.size)
    ).first()
    if row is None or row.root_hash != start.root_hash.hex():
        raise LedgerError(
            f"the verified checkpoint {start.size} is not in the ledger: rolled back or forked",
            seq=start.size,
        )
    tree = _frontier_parse(start.size, row.frontier)
    if tree.root() != start.root_hash:
        raise LedgerError(f"checkpoint {start.size} does not match its frontier", seq=start.size)
    if start.size == 0:
        return ledger._checker(epochs)
    # The next event's prev must name this entry, and its MAC covers that link.
    before = conn.execute(
        select(_E.entry).where(_E.seq == start.size - 1)
    ).scalar_one_or_none()
    if before is None:
        raise LedgerError(f"event {start.size - 1} is missing", seq=start.size - 1)
    prev = hashlib.sha256(unpack_entry(before, start.size - 1)).hexdigest()
    return ledger._checker(epochs, seq=start.size, prev=prev, tree=tree)


def _mark_latest(ledger: CustodyLedger, size: int | None) -> None:
    if size is None:
        return
    with ledger._snapshot() as conn:
        note = conn.execute(select(_C.note).where(_C.size == size)).scalar_one_or_none()
    if note is not None:
        _write_verified_mark(ledger, note)


__all__ = [
    "VERIFIED_FILE",
    "VERIFIED_META_KEY",
    "read_verified_mark",
    "verified_mark_path",
    "verify_incremental",
]
