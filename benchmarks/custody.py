"""Benchmark: the custody ledger on the embedded SQLite catalog, beside raw SQLite, same run.

    python benchmarks/custody.py                       # 100,000 events
    python benchmarks/custody.py --events 20000 --checkpoint-every 64

Builds one ledger of ``--events`` events in a SQLite file in a temporary directory, appending
them three ways (each row beside its anchor):

- ``record``: one event per transaction (what an API request does), on the first ``--record``
  events;
- ``append``: single appends, ``--per-txn`` per transaction, on the next ``--appended`` events;
- ``append_many``: batches of ``--batch`` events per call and transaction, on the rest;
- anchor: plain ``executemany`` INSERTs of rows of the same size into a twin table, in the same
  batches, with no canonical JSON, hashing, MAC, lock or checkpoint (the database's floor).

Then the full ``verify()`` of all events and checkpoints, beside the anchor of streaming the
same columns without checking them, and one inclusion proof at the full size. Checkpoints are
signed every ``--checkpoint-every`` events and witnessed to a file, as in a real vault.
Ends with one summary line; the target is a full verify of 100,000 events in under 10 s.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from vault.storage.catalog import Base
from vault.ledger.checkpoint import LedgerSigner
from vault.ledger.custody import Action, CustodyLedger
from vault.storage.db import make_engine, session_factory

ORIGIN = "bench.local/custody"
VERIFY_TARGET_S = 10.0


def event_fields(i: int) -> dict[str, Any]:
    rec = f"rec-{i % 5000:05d}-0000-4000-8000-000000000000"
    return {
        "actor": f"officer-{i % 40}",
        "actor_role": "asb_officer",
        "actor_org": "Example Housing",
        "object_ids": [rec],
        "hashes": {rec: f"{i:064x}"},
        "purpose": "ASB investigation",
        "reference": f"ASB/2024/{i % 300:04d}",
        "client_addr": "10.20.30.40",
        "details": {"range": [0, 1048575], "i": i},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--record", type=int, default=2_000)
    parser.add_argument("--appended", type=int, default=20_000)
    parser.add_argument("--per-txn", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--checkpoint-every", type=int, default=256)
    args = parser.parse_args()
    n_record = min(args.record, args.events)
    n_append = min(args.appended, args.events - n_record)
    n_many = args.events - n_record - n_append

    with tempfile.TemporaryDirectory(prefix="custody-bench-") as tmp:
        home = Path(tmp)
        url = f"sqlite:///{home / 'catalog.sqlite3'}"
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        ledger = CustodyLedger(
            session_factory(engine),
            LedgerSigner.generate(ORIGIN),
            origin=ORIGIN,
            checkpoint_every=args.checkpoint_every,
            witness_path=home / "checkpoints" / "latest.checkpoint",
        )
        sessions = session_factory(engine)
        rates: dict[str, float] = {}

        # -- appending --------------------------------------------------------------------
        i = 0
        start = time.perf_counter()
        for _ in range(n_record):
            ledger.record(Action.VIEWED, **event_fields(i))
            i += 1
        rates["record (1 event/txn)"] = n_record / (time.perf_counter() - start)

        start = time.perf_counter()
        while i < n_record + n_append:
            with sessions.begin() as session:
                for _ in range(min(args.per_txn, n_record + n_append - i)):
                    ledger.append(session, Action.VIEWED, **event_fields(i))
                    i += 1
            ledger.maybe_checkpoint()
        rates[f"append ({args.per_txn} events/txn)"] = n_append / (time.perf_counter() - start)

        start = time.perf_counter()
        while i < args.events:
            count = min(args.batch, args.events - i)
            events = [ledger.event(Action.VIEWED, **event_fields(i + k)) for k in range(count)]
            ledger.record_many(events)
            i += count
        rates[f"append_many ({args.batch}/call)"] = (
            n_many / (time.perf_counter() - start) if n_many else 0.0
        )
        ledger.checkpoint()

        # Anchor: the same rows' bytes, inserted raw into a twin table.
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT seq, event_id, ts, action, actor, reference, payload, prev_hash,"
                    " entry_hash, leaf_hash, entry_mac FROM custody_events ORDER BY seq"
                )
            ).all()
        raw = sqlite3.connect(home / "catalog.sqlite3", isolation_level=None)
        raw.execute("CREATE TABLE raw_events AS SELECT * FROM custody_events WHERE 0")
        start = time.perf_counter()
        for lo in range(0, len(rows), args.batch):
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany(
                "INSERT INTO raw_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [tuple(r) for r in rows[lo : lo + args.batch]],
            )
            raw.execute("COMMIT")
        raw_insert = len(rows) / (time.perf_counter() - start)

        # -- verifying --------------------------------------------------------------------
        start = time.perf_counter()
        count = sum(1 for _ in raw.execute("SELECT * FROM custody_events ORDER BY seq"))
        raw_read = time.perf_counter() - start
        raw.close()
        start, cpu = time.perf_counter(), time.process_time()
        report = ledger.verify()
        verify_s, verify_cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        proof = ledger.inclusion_proof(args.events // 2)
        CustodyLedger.verify_inclusion_proof(proof, ledger.verifier_key())
        proof_s = time.perf_counter() - start
        db_mib = os.path.getsize(home / "catalog.sqlite3") / (1 << 20)
        engine.dispose()

    assert report.events == args.events == count
    print(
        f"custody ledger benchmark: {args.events} events, SQLite file,"
        f" Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'appending':<34} {'events/s':>10}")
    for name, rate in rates.items():
        print(f"  {name:<32} {rate:>10,.0f}")
    print(f"  {'anchor: raw executemany INSERT':<32} {raw_insert:>10,.0f}")
    print(f"{'verifying':<34} {'seconds':>10} {'events/s':>10}")
    print(
        f"  {'verify() everything':<32} {verify_s:>10.2f} {args.events / verify_s:>10,.0f}"
        f"   (CPU {verify_cpu:.2f} s; load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"  {'anchor: stream rows, no checks':<32} {raw_read:>10.2f}"
        f" {args.events / raw_read:>10,.0f}"
    )
    print(f"  {'inclusion proof (make + check)':<32} {proof_s:>10.2f}")
    print(
        f"ledger: {report.checkpoints} checkpoints, root {report.root_hash[:16]}...,"
        f" {db_mib:.0f} MiB"
    )
    verdict = "meets" if verify_s * 100_000 / args.events < VERIFY_TARGET_S else "MISSES"
    print(
        f"SUMMARY custody: verify {args.events} events {verify_s:.1f} s, CPU {verify_cpu:.1f} s"
        f" ({verdict} <10 s/100k); "
        f"append_many {rates[f'append_many ({args.batch}/call)']:,.0f} ev/s, "
        f"append {rates[f'append ({args.per_txn} events/txn)']:,.0f} ev/s, "
        f"record {rates['record (1 event/txn)']:,.0f} ev/s; raw insert {raw_insert:,.0f} ev/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
