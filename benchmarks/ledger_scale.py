"""Benchmark: the custody ledger and catalog at council scale (issue #15), on the embedded SQLite.

    python benchmarks/ledger_scale.py                        # 100k and 1M events, 1M recordings
    python benchmarks/ledger_scale.py --sizes 100000 --recordings 200000   # quick

Grows one vault (``Vault.init``: SQLite catalog, local store, real keys) in steps. The history
is *built* in bulk, straight into the tables, so the run measures the operations and not the
building: custody entries are canonical v1 entries (checked against ``CustodyEvent.to_bytes``),
hash-chained, MACed with the vault's ledger key, with the stored Merkle nodes written from the
builder's own leaves (benchmark only: what ``vault.ledger.stored_tree.extend`` stores; every
proof measured checks them against a signed root) and a signed, witnessed checkpoint at the end
of each step (``custody verify`` of the grown ledger passes: the incremental verify measured
below checks every bulk event of the day); the
catalog gets ``--recordings`` rows from 200 cameras in one-hour segments, of which only the last
23 days are live (most rows deleted, as after a year and more of retention).

Reported per ledger size:

- append rate: ``record`` (one event per transaction, as an API request) and ``record_many``
  (1,000 per transaction);
- bytes per event: the custody tables and their indexes (SQLite ``dbstat``), and of those the
  stored Merkle nodes;
- full verify (``custody verify`` without the catalog comparison) time and peak memory, in a
  child process (its peak RSS, beside a child that only opens the vault);
- incremental verify of a day's events (``--day`` events appended since the last verified
  checkpoint), time and peak RSS;
- inclusion and consistency proof time (50 each, at random positions);
- export proof time for 20 recordings with 25 events each (and any the bulk history gave them):
  every event naming them, proved against one checkpoint (``vault.casework.disclosure.event_proofs``,
  what a package's certificate carries);
- search p50/p99 over 200 runs each: camera + one-hour window, no filter (first page of 100), a
  deep page by keyset (``after``) and, for comparison, the same depth by ``offset``.

Ends with one summary line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vault.ledger import stored_tree  # noqa: E402
from vault.ledger.checkpoint import Checkpoint  # noqa: E402
from vault.config import Settings  # noqa: E402
from vault.ledger.custody import Action, CustodyEvent  # noqa: E402
from vault.casework.disclosure import event_proofs  # noqa: E402
from vault.ledger.incremental_verify import verify_incremental  # noqa: E402
from vault.ledger.merkle import leaf_hash  # noqa: E402
from vault.ledger.tables import pack_entry, unpack_entry  # noqa: E402
from vault.casework.search import RecordingQuery, list_recordings, page_cursor  # noqa: E402
from vault.vault import Vault  # noqa: E402

CAMERAS = 200
SEGMENT = dt.timedelta(hours=1)
LIVE_DAYS = 23
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ORG = "Northgate Housing"
SHA = "5d" * 32
_BATCH = 20_000


def _ts(when: dt.datetime) -> str:
    # SQLAlchemy's SQLite DateTime text (UTC, naive), as the catalog stores it.
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# --- building history in bulk ----------------------------------------------------------------


def build_recordings(db: sqlite3.Connection, n: int) -> list[str]:
    """``n`` recording rows from CAMERAS cameras, one-hour segments ending at NOW; rows older
    than LIVE_DAYS are deleted (key shredded, ciphertext purged). Returns the ids."""
    db.executemany(
        "INSERT INTO sources (id, kind, site, name, created_at, organisation)"
        " VALUES (?, 'CCTV', ?, ?, ?, ?)",
        [(f"cam-{c:03d}", f"Estate {c // 10}", f"Camera {c}", _ts(NOW), ORG)
         for c in range(CAMERAS)],
    )
    ids: list[str] = []
    per_camera = -(-n // CAMERAS)
    cutoff = NOW - dt.timedelta(days=LIVE_DAYS)
    rows: list[tuple[Any, ...]] = []
    for k in range(n):
        camera, slot = k % CAMERAS, k // CAMERAS
        start = NOW - SEGMENT * (per_camera - slot)
        rid = str(uuid.UUID(int=random.getrandbits(128), version=4))
        ids.append(rid)
        deleted = start < cutoff
        rows.append((
            rid, f"cam-{camera:03d}", "VIDEO", _ts(start), _ts(start + SEGMENT), _ts(start),
            0, 50_000_000, SHA, f"objects/{rid}", 50_000_100, "evs1",
            None if deleted else b"\x00" * 60, "kek-1", _ts(start + dt.timedelta(days=LIVE_DAYS)),
            _ts(start + dt.timedelta(days=LIVE_DAYS)) if deleted else None,
            "retention" if deleted else None,
            _ts(start + dt.timedelta(days=LIVE_DAYS)) if deleted else None,
        ))
        if len(rows) == _BATCH or k == n - 1:
            db.executemany(
                "INSERT INTO recordings (id, source_id, media_kind, captured_start, captured_end,"
                " received_at, clock_flagged, size, sha256, object_key, stored_size, enc_format,"
                " wrapped_dek, key_id, retain_until, deleted_at, deletion_reason, purged_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            rows = []
    db.commit()
    return ids


class LedgerBuilder:
    """Appends valid v1 entries in bulk, continuing the vault's chain and tree."""

    def __init__(self, vault: Vault, db: sqlite3.Connection, object_ids: list[str]) -> None:
        self.vault, self.db, self.object_ids = vault, db, object_ids
        ledger = vault.ledger
        self.mac_key = ledger._mac_key
        self.seq, self.prev = 0, "0" * 64
        self.resume()
        self._check_template()

    def resume(self) -> None:
        """Continue after whatever the ledger holds now (events appended the ordinary way)."""
        head = self.db.execute(
            "SELECT seq, entry FROM custody_events ORDER BY seq DESC LIMIT 1").fetchone()
        self.seq, self.prev = (
            (int(head[0]) + 1, hashlib.sha256(unpack_entry(head[1])).hexdigest())
            if head else (0, "0" * 64))
        with self.vault.engine.connect() as conn:
            self.tree = stored_tree._frontier(conn, self.seq)

    def _event(self, seq: int, when: dt.datetime) -> tuple[bytes, str, str]:
        rid = self.object_ids[random.randrange(len(self.object_ids))]
        eid = str(uuid.UUID(int=random.getrandbits(128), version=4))
        actor = f"officer-{seq % 40}"
        ref = f"ASB/{seq % 997}"
        text = (
            '{"action":"viewed","actor":"%s","actor_org":"%s","actor_role":"asb_officer",'
            '"client_addr":"10.20.%d.%d","details":{},"event_id":"%s","hashes":{"%s":"%s"},'
            '"lawful_basis":"Housing Act 1996 s.153A","object_ids":["%s"],'
            '"purpose":"investigating ASB incident","recipient":null,"recipient_org":null,'
            '"reference":"%s","ts":"%s"}'
            % (actor, ORG, seq % 250, seq % 200, eid, rid, SHA, rid, ref,
               when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        )
        return text.encode(), rid, eid

    def _check_template(self) -> None:
        when = NOW
        raw, rid, eid = self._event(7, when)
        event = CustodyEvent(
            action=Action.VIEWED, actor="officer-7", ts=when, event_id=eid, actor_role="asb_officer",
            actor_org=ORG, object_ids=(rid,), hashes={rid: SHA}, purpose="investigating ASB incident",
            lawful_basis="Housing Act 1996 s.153A", reference="ASB/7", client_addr="10.20.7.7")
        assert raw == event.to_bytes(), "the bulk template is not canonical v1"

    def grow(self, n: int, start: dt.datetime, span: dt.timedelta) -> None:
        """Append ``n`` events spread over ``span`` from ``start``, sign and witness."""
        events: list[tuple[Any, ...]] = []
        links: list[tuple[str, int]] = []
        leaves: list[bytes] = []
        step = span / max(n, 1)
        ledger = self.vault.ledger
        # Benchmark only: the stored Merkle nodes come from the leaves computed here (what
        # stored_tree.extend would store), not from reading every entry back (catch_up below
        # then finds the store covered). Proofs and verify check them against signed roots.
        with self.vault.engine.connect() as conn:
            covered = stored_tree.covered(conn)
        direct = covered >= (self.seq >> stored_tree.LOWEST_STORED_LEVEL
                             << stored_tree.LOWEST_STORED_LEVEL)
        for i in range(n):
            seq = self.seq
            when = start + step * i
            body, rid, eid = self._event(seq, when)
            entry = b'{"event":%s,"prev":"%s","seq":%d,"v":1}' % (body, self.prev.encode(), seq)
            entry_hash = hashlib.sha256(entry).hexdigest()
            leaf = leaf_hash(entry)
            leaves.append(leaf)
            mac = hmac.digest(self.mac_key, entry, "sha256")
            # Storage layout 2 (vault/ledger/tables.py): the entry once, packed; raw MAC; time
            # in microseconds; a viewed event binds no catalog row.
            events.append((seq, pack_entry(entry), mac, (when - EPOCH) // dt.timedelta(microseconds=1),
                           "viewed", f"officer-{seq % 40}", f"ASB/{seq % 997}", None))
            links.append((rid, seq))
            self.prev, self.seq = entry_hash, seq + 1
            if len(events) == _BATCH or i == n - 1:
                nodes = self.tree.extend(leaves)
                leaves = []
                if direct:
                    self.db.executemany(
                        "INSERT OR REPLACE INTO custody_tree_nodes (level, idx, hash)"
                        " VALUES (?, ?, ?)",
                        [(level, idx, digest) for (level, idx), digest in nodes
                         if level >= stored_tree.LOWEST_STORED_LEVEL])
                self.db.executemany(
                    "INSERT INTO custody_events (seq, entry, entry_mac, ts, action, actor,"
                    " reference, binds_catalog) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
                self.db.executemany(
                    "INSERT INTO custody_event_objects (object_id, seq) VALUES (?, ?)", links)
                self.db.commit()
                events, links = [], []
        stored_tree.catch_up(self.vault.sessions, ledger._lock, self.seq)
        checkpoint = Checkpoint(ledger.origin, self.seq, self.tree.root())
        note = ledger.signer.sign(checkpoint)
        self.db.execute(
            "INSERT INTO custody_checkpoints (size, root_hash, note, frontier, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (self.seq, checkpoint.root_hash.hex(), note,
             ",".join(h.hex() for h in self.tree.hashes), _ts(NOW)))
        self.db.commit()
        ledger.witness(note)


# --- measuring -------------------------------------------------------------------------------


def _child(home: Path, what: str) -> dict[str, float]:
    """Run ``what`` (open | verify | incremental) in a child process: wall time and peak RSS."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, "--home", str(home)],
        check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _child_main(home: Path, what: str) -> None:
    with Vault.open(Settings(home=home)) as vault:
        t = time.perf_counter()
        if what == "verify":
            vault.ledger.verify(catalog=False)
        elif what == "incremental":
            verify_incremental(vault.ledger)
        elif what == "mark":
            verify_incremental(vault.ledger)  # no mark yet: a full verify that sets it
        seconds = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"s": seconds, "rss_mib": peak_kib / 1024}))


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def _custody_pages(db: sqlite3.Connection) -> dict[str, int]:
    """Bytes of pages per custody table and index (SQLite ``dbstat``), checkpoints aside."""
    sizes = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
    return {k: v for k, v in sizes.items() if "custody" in k and "checkpoint" not in k}


def _bytes_per_event(db: sqlite3.Connection, events: int) -> tuple[float, float]:
    sizes = _custody_pages(db)
    print("bytes per event by table and index: " + ", ".join(
        f"{k} {v / events:.0f}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])),
        flush=True)
    nodes = sum(v for k, v in sizes.items() if "tree_nodes" in k)
    return sum(sizes.values()) / events, nodes / events


def measure(vault: Vault, home: Path, db: sqlite3.Connection, builder: LedgerBuilder,
            recordings: list[str], day: int) -> dict[str, Any]:
    ledger = vault.ledger
    out: dict[str, Any] = {"events": builder.seq}
    # Append rates (real appends through the ledger, stored tree included).
    t = time.perf_counter()
    for _ in range(500):
        ledger.record(Action.VIEWED, actor="officer-1", object_ids=["bench-append"],
                      purpose="investigating ASB incident", reference="ASB/1")
    out["record_per_s"] = 500 / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(5):
        ledger.record_many([ledger.event(Action.VIEWED, actor="officer-2",
                                         object_ids=["bench-append"]) for _ in range(1000)])
    out["record_many_per_s"] = 5000 / (time.perf_counter() - t)
    ledger.checkpoint()
    builder.resume()
    out["bytes_per_event"], out["node_bytes_per_event"] = _bytes_per_event(db, builder.seq)
    # Full verify in a child (time, peak RSS beside a child that only opens the vault).
    base = _child(home, "open")
    full = _child(home, "mark")
    out["verify_s"], out["verify_rss_mib"] = full["s"], full["rss_mib"]
    out["open_rss_mib"] = base["rss_mib"]
    # A day's events appended in bulk, then the incremental verify.
    builder.grow(day, NOW, dt.timedelta(days=1))
    inc = _child(home, "incremental")
    out["day_events"], out["incremental_s"], out["incremental_rss_mib"] = day, inc["s"], inc["rss_mib"]
    out["events_after_day"] = builder.seq
    out.update(measure_proofs(vault, recordings))
    return out


def measure_proofs(vault: Vault, recordings: list[str]) -> dict[str, Any]:
    """Inclusion and consistency proof times, and the export proofs of 20 recordings."""
    ledger = vault.ledger
    size = ledger.size()
    out: dict[str, Any] = {}
    rng = random.Random(7)
    samples = []
    for _ in range(50):
        seq = rng.randrange(size)
        t = time.perf_counter()
        ledger.inclusion_proof(seq)
        samples.append(time.perf_counter() - t)
    out["inclusion_ms_p50"], out["inclusion_ms_p99"] = _ms(samples)
    samples = []
    for _ in range(50):
        m = rng.randrange(1, size)
        t = time.perf_counter()
        ledger.consistency_proof(m, size)
        samples.append(time.perf_counter() - t)
    out["consistency_ms_p50"], out["consistency_ms_p99"] = _ms(samples)
    # Export proofs for 20 recordings: every event naming them, against one checkpoint. Each
    # gets 25 events first (ingest, views, case, hold, share...), spread through the ledger's
    # tail, as a recording worth exporting has.
    chosen = rng.sample(recordings, 20)
    for _ in range(25):
        ledger.record_many([ledger.event(Action.VIEWED, actor="officer-3", object_ids=[rid])
                            for rid in chosen])
    ledger.checkpoint()
    t = time.perf_counter()
    seqs = sorted({e.seq for rid in chosen for e in ledger.events(object_id=rid, limit=100_000)})
    proofs = event_proofs(vault, seqs)
    out["export_s"] = time.perf_counter() - t
    out["export_events"] = len(proofs)
    out["proof_events"] = ledger.size()
    return out


def measure_search(vault: Vault, runs: int) -> dict[str, Any]:
    rng = random.Random(11)
    out: dict[str, Any] = {}
    live_from = NOW - dt.timedelta(days=LIVE_DAYS)
    live = list_recordings(vault, RecordingQuery(limit=1000))
    deep_at = 50_000
    # The cursor of the row deep_at down the live list (found once, by keyset pages).
    cursor = None
    for _ in range(deep_at // 1000):
        page = list_recordings(vault, RecordingQuery(limit=1000, after=cursor))
        if not page:
            break
        cursor = page_cursor(page[-1])
    kinds: dict[str, Callable[[], RecordingQuery]] = {
        "camera_window": lambda: RecordingQuery(
            source_id=f"cam-{rng.randrange(CAMERAS):03d}",
            since=(s := live_from + dt.timedelta(hours=rng.randrange(LIVE_DAYS * 24 - 1))),
            until=s + dt.timedelta(hours=1), limit=100),
        "no_filter": lambda: RecordingQuery(limit=100),
        "deep_keyset": lambda: RecordingQuery(limit=100, after=cursor),
        "deep_offset": lambda: RecordingQuery(limit=100, offset=deep_at),
    }
    for name, make in kinds.items():
        samples = []
        for _ in range(runs):
            query = make()
            t = time.perf_counter()
            list_recordings(vault, query)
            samples.append(time.perf_counter() - t)
        out[f"search_{name}_ms_p50"], out[f"search_{name}_ms_p99"] = _ms(samples)
    out["live_rows_first_page"] = len(live)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="Ledger sizes to grow to and measure at, comma-separated.")
    parser.add_argument("--recordings", type=int, default=1_000_000)
    parser.add_argument("--day", type=int, default=100_000,
                        help="Events appended for the incremental verify (a busy day).")
    parser.add_argument("--search-runs", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None, help="Work here (default: a temp dir).")
    parser.add_argument("--proofs-only", action="store_true",
                        help="Only the proof and export figures, on the vault already in --dir.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child_main(args.home, args.child)
        return
    random.seed(1)
    if args.proofs_only:
        with Vault.open(Settings(home=args.dir / "home")) as vault:
            with vault.engine.connect() as conn:
                ids = list(conn.exec_driver_sql(
                    "SELECT id FROM recordings ORDER BY id LIMIT 5000").scalars())
            print(json.dumps({k: round(v, 2) for k, v in measure_proofs(vault, ids).items()}))
        return
    work = args.dir or Path(tempfile.mkdtemp(prefix="ledger-scale-"))
    home = work / "home"
    sizes = [int(s) for s in args.sizes.split(",")]
    with Vault.init(Settings(home=home)) as vault:
        path = vault.engine.url.database
        assert path
        db = sqlite3.connect(path, timeout=60)
        # The bulk writer's own page cache (256 MiB): the object index takes random inserts.
        db.execute("PRAGMA cache_size = -262144")
        t = time.perf_counter()
        recordings = build_recordings(db, args.recordings)
        print(f"built {args.recordings:,} recording rows in {time.perf_counter() - t:.0f} s",
              flush=True)
        search = measure_search(vault, args.search_runs)
        print("search at %s rows: %s" % (f"{args.recordings:,}", json.dumps(
            {k: round(v, 2) for k, v in search.items()})), flush=True)
        builder = LedgerBuilder(vault, db, recordings)
        results = []
        for size in sizes:
            if size <= builder.seq:
                print(f"skipping {size:,}: the ledger already has {builder.seq:,}", flush=True)
                continue
            t = time.perf_counter()
            builder.grow(size - builder.seq, NOW - dt.timedelta(days=365), dt.timedelta(days=364))
            print(f"grew the ledger to {builder.seq:,} events in {time.perf_counter() - t:.0f} s",
                  flush=True)
            row = measure(vault, home, db, builder, recordings, args.day)
            results.append(row)
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)
        db.close()
    print()
    print(f"{'events':>10} {'rec/s':>7} {'many/s':>7} {'B/ev':>6} {'verify s':>9} {'RSS MiB':>8}"
          f" {'incr s':>7} {'incl ms':>8} {'cons ms':>8} {'export s':>9}")
    for r in results:
        print(f"{r['events']:>10,} {r['record_per_s']:>7.0f} {r['record_many_per_s']:>7.0f}"
              f" {r['bytes_per_event']:>6.0f} {r['verify_s']:>9.1f} {r['verify_rss_mib']:>8.0f}"
              f" {r['incremental_s']:>7.1f} {r['inclusion_ms_p99']:>8.1f}"
              f" {r['consistency_ms_p99']:>8.1f} {r['export_s']:>9.2f}")
    last = results[-1]
    print(
        f"summary: {last['events']:,} events: proof p99 {last['inclusion_ms_p99']:.1f} ms,"
        f" export of 20 recordings ({last['export_events']} events) {last['export_s']:.2f} s,"
        f" incremental verify of {last['day_events']:,} events {last['incremental_s']:.1f} s,"
        f" full verify {last['verify_s']:.0f} s at {last['verify_rss_mib']:.0f} MiB peak RSS"
        f" (open alone {last['open_rss_mib']:.0f});"
        f" {args.recordings:,} recording rows: camera+window search p99"
        f" {search['search_camera_window_ms_p99']:.1f} ms, deep page p99"
        f" {search['search_deep_keyset_ms_p99']:.1f} ms by keyset vs"
        f" {search['search_deep_offset_ms_p99']:.1f} ms by offset"
    )


if __name__ == "__main__":
    main()
