"""The per-event checks of a verify, spread over worker processes (issue #15: incremental
verify of 100k events in seconds, not half a minute).

An event's own checks (its stored entry unpacks, is canonical custody JSON naming its position,
carries a good MAC under the key the stored rotations put in effect there, and agrees with its
index columns) need nothing from the events around it. What does (the hash chain, the Merkle
frontier, the key in effect as the chain itself hands it over) is cheap and stays in the parent,
folded in seq order by :meth:`vault.ledger.verify.ChainChecker.fold`.

So the parent reads rows in batches of :data:`BATCH` and sends each to a worker, at most two
batches per worker in flight (memory stays bounded whatever the ledger's size), and takes the
answers back in order. A worker answers each row with its *facts* (seq, prev, entry hash, leaf
hash, object ids, the key it checked the MAC with) or with None when any check failed or the
event hands the ledger key over. The parent folds a row's facts only when they continue its
chain exactly (position, link, key in effect); anything else, and every None, is re-checked in
the parent by :meth:`~vault.ledger.verify.ChainChecker.check` itself, so a failure raises the
same LedgerError, naming the same event, as a verify without workers.
"""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from vault.errors import LedgerError

from .entries import Action, action_value, parse_entry
from .merkle import leaf_hash
from .tables import binds_catalog, unpack_entry

#: Rows per batch handed to a worker.
BATCH = 5000
#: ``details.key`` of a ledger key hand-over (verify.LEDGER_KEY; repeated to keep this module
#: free of the verify module, which imports it).
_LEDGER_KEY = "ledger"

#: (seq, prev, entry hash hex, leaf hash, object ids, verifier key used)
Facts = tuple[int, str, str, bytes, tuple[str, ...], str]

_macs: Mapping[str, bytes] = {}
_rotations: tuple[tuple[int, str, str], ...] = ()
_current = ""


def default_workers() -> int:
    """Worker processes when none are configured: one per CPU this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _init(macs: Mapping[str, bytes], rotations: tuple[tuple[int, str, str], ...],
          current: str) -> None:
    global _macs, _rotations, _current
    _macs, _rotations, _current = dict(macs), rotations, current


def _key_at(size: int) -> str:
    # As verify.Epochs.key_at: the key that MACs event ``size``.
    key = _rotations[0][1] if _rotations else _current
    for seq, _old, new in _rotations:
        if seq < size:
            key = new
    return key


def row_facts(row: Sequence[Any]) -> Facts | None:
    """The facts of one row (columns as in verify.VERIFY_COLUMNS), or None when a check fails
    or the event is a ledger key hand-over (the parent checks those itself)."""
    seq, stored, mac_col, ts, action, actor, reference, binds = row
    try:
        payload = unpack_entry(stored, seq)
        entry_seq, prev, ev = parse_entry(payload)
    except LedgerError:
        return None
    if entry_seq != seq:
        return None
    if ev.action == Action.KEY_ROTATED and ev.details.get("key") == _LEDGER_KEY:
        return None
    vkey = _key_at(seq)
    key = _macs.get(vkey)
    if (
        key is None
        or not isinstance(mac_col, bytes | memoryview)
        or not hmac.compare_digest(bytes(mac_col), hmac.digest(key, payload, "sha256"))
    ):
        return None
    if (
        ts != ev.ts
        or action != action_value(ev.action)
        or actor != ev.actor
        or reference != ev.reference
        or binds != binds_catalog(action, payload)
    ):
        return None
    return seq, prev, hashlib.sha256(payload).hexdigest(), leaf_hash(payload), ev.object_ids, vkey


def _batch_facts(rows: list[tuple[Any, ...]]) -> list[Facts | None]:
    return [row_facts(row) for row in rows]


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(tuple(row))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def checked_batches(
    rows: Iterable[Any],
    workers: int,
    macs: Mapping[str, bytes],
    rotations: tuple[tuple[int, str, str], ...],
    current: str,
) -> Iterator[tuple[list[tuple[Any, ...]], list[Facts | None]]]:
    """(rows, their facts) batch by batch, in order: facts from ``workers`` processes, or
    all None (the parent checks every row) when ``workers`` is 1 or the rows fit in one batch,
    where starting processes would cost more than it saves."""
    batches = _batches(rows, BATCH)
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if workers <= 1 or second is None:
        yield first, [None] * len(first)
        if second is not None:
            yield second, [None] * len(second)
        for batch in batches:
            yield batch, [None] * len(batch)
        return
    # spawn, not fork: the parent holds database connections and threads a fork would copy.
    # (So, as with any spawn, a script that verifies must guard its top level with
    # ``if __name__ == "__main__":``; when workers cannot start or die, the parent checks the
    # rest itself: slower, never less checked.)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init,
        initargs=(dict(macs), rotations, current),
    ) as pool:
        pending: deque[tuple[list[tuple[Any, ...]], Future[list[Facts | None]] | None]] = deque()
        broken = False

        def answer(batch: list[tuple[Any, ...]], future: Future[list[Facts | None]] | None,
                   ) -> list[Facts | None]:
            nonlocal broken
            if future is not None and not broken:
                try:
                    return future.result()
                except BrokenProcessPool:
                    broken = True
            return [None] * len(batch)

        try:
            for batch in _chain(first, second, batches):
                pending.append((batch, None if broken else pool.submit(_batch_facts, batch)))
                if len(pending) >= 2 * workers:
                    done, future = pending.popleft()
                    yield done, answer(done, future)
            while pending:
                done, future = pending.popleft()
                yield done, answer(done, future)
        finally:
            # A failure found in the parent stops the verify: drop the work not yet begun.
            for _batch, left in pending:
                if left is not None:
                    left.cancel()


def _chain(
    first: list[tuple[Any, ...]], second: list[tuple[Any, ...]],
    rest: Iterator[list[tuple[Any, ...]]],
) -> Iterator[list[tuple[Any, ...]]]:
    yield first
    yield second
    yield from rest


__all__ = ["BATCH", "Facts", "checked_batches", "default_workers", "row_facts"]
