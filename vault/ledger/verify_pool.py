"""The per-event checks of a verify, spread over worker processes (issue #15: incremental
verify of 100k events in seconds, not half a minute).

An event's own checks (its stored entry unpacks, is canonical custody JSON naming its position,
carries a good MAC under the key the stored rotations put in effect there, and agrees with its
index columns) need nothing from the events around it. What does (the hash chain, the Merkle
frontier, the key in effect as the chain itself hands it over) is cheap and stays in the parent,
folded in seq order by :meth:`vault.ledger.verify.ChainChecker.fold`.

So the parent reads rows in batches of :data:`BATCH` and sends each to a worker, one batch
per worker in flight (memory stays bounded whatever the ledger's size), and takes the
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
import os
import pickle
import subprocess
import sys
from pathlib import Path
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from vault.errors import LedgerError

from .entries import Action, action_value, parse_entry
from .epochs import Epochs
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
_epochs = Epochs((), "")


def default_workers() -> int:
    """Worker processes when none are configured: one per CPU this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _init(macs: Mapping[str, bytes], rotations: tuple[tuple[int, str, str], ...],
          current: str) -> None:
    global _macs, _epochs
    _macs, _epochs = dict(macs), Epochs(rotations, current)


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
    vkey = _epochs.key_at(seq)
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
    # Workers are fresh interpreters running :func:`_serve`, not multiprocessing's
    # spawn, which re-runs the caller's main script in each worker (a script with no
    # ``if __name__ == "__main__":`` guard would run again, side effects and all), nor fork,
    # which copies the parent's database connections and threads. One batch in flight per
    # worker: the parent never writes to a worker that is writing to it (no pipe deadlock).
    # When a worker cannot start or dies, the parent checks the rest itself: slower, never
    # less checked.
    pool = [_Worker(dict(macs), rotations, current) for _ in range(workers)]
    idle = list(pool)
    pending: deque[tuple[list[tuple[Any, ...]], _Worker, bool]] = deque()
    try:
        for batch in _chain(first, second, batches):
            if not idle:
                done, worker, sent = pending.popleft()
                yield done, _answer(done, worker if sent else None)
                idle.append(worker)
            worker = idle.pop(0)
            pending.append((batch, worker, worker.send(batch)))
        while pending:
            done, worker, sent = pending.popleft()
            yield done, _answer(done, worker if sent else None)
    finally:
        for worker in pool:
            worker.close()


def _answer(batch: list[tuple[Any, ...]], worker: _Worker | None) -> list[Facts | None]:
    facts = worker.receive() if worker is not None else None
    return facts if facts is not None and len(facts) == len(batch) else [None] * len(batch)


def _child_env() -> dict[str, str]:
    # The worker imports this package from where this process found it.
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


class _Worker:
    """One worker process (:func:`_serve`), spoken to in pickles over its pipes
    (it runs only this module's checks, on data this process read)."""

    def __init__(self, macs: Mapping[str, bytes], rotations: tuple[tuple[int, str, str], ...],
                 current: str) -> None:
        self.proc: subprocess.Popen[bytes] | None
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from vault.ledger.verify_pool import _serve; _serve()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_child_env(),
            )
        except OSError:
            self.proc = None
        self.send((macs, rotations, current))

    def send(self, message: Any) -> bool:
        if self.proc is None or self.proc.stdin is None:
            return False
        try:
            pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            self.close()
            return False
        return True

    def receive(self) -> list[Facts | None] | None:
        if self.proc is None or self.proc.stdout is None:
            return None
        try:
            answer: list[Facts | None] = pickle.load(self.proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError):
            self.close()
            return None
        return answer

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve() -> None:
    """A worker's loop: the keys first, then batches of rows in, their facts out, until EOF."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        _init(*pickle.load(stdin))
        while True:
            batch = pickle.load(stdin)
            pickle.dump(_batch_facts(batch), stdout, protocol=pickle.HIGHEST_PROTOCOL)
            stdout.flush()
    except EOFError:
        return


def _chain(
    first: list[tuple[Any, ...]], second: list[tuple[Any, ...]],
    rest: Iterator[list[tuple[Any, ...]]],
) -> Iterator[list[tuple[Any, ...]]]:
    yield first
    yield second
    yield from rest


__all__ = ["BATCH", "Facts", "checked_batches", "default_workers", "row_facts"]
