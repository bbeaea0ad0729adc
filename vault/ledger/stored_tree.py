"""The custody ledger's Merkle tree, stored: its full subtrees, so that a proof reads O(log n)
rows whatever the ledger's size.

The tree is RFC 6962's over the ledger's leaf hashes (:mod:`vault.ledger.merkle`). Every *perfect*
subtree, once all its leaves are appended, never changes; this module keeps the root of each
one of level :data:`LOWEST_STORED_LEVEL` or more in ``custody_tree_nodes`` (level, index,
32-byte hash), written in the appending transaction, never updated. Nodes below that level are
rehashed from at most ``2**LOWEST_STORED_LEVEL`` entries of ``custody_events``, which keeps
the table to a quarter of a row per event (about 50 bytes per event less than keeping every
node). This is C2SP ``tlog-tiles`` with tiles one node wide: a 256-wide tile would be rewritten
by every append of a ledger that commits one event per transaction, while these rows are
written once.

Proofs are planned in :mod:`vault.ledger.merkle` (which perfect subtrees each element folds) and
their nodes read in one query per call: an inclusion or consistency proof reads about
``log2(n)`` rows plus a few leaves, and a batch of ``k`` inclusion proofs against one tree
shares the nodes it has in common. Proofs are checked against the signed checkpoint by their
callers, so a stored node that is wrong yields a refused proof (LedgerError), never a false one.

Existing ledgers (before migration 0010) are filled in lazily and resumably:
:func:`extend` fills any gap below the appended position inside the append's transaction, and
:func:`catch_up` fills it in committed batches before a proof needs it. The stored tree covers
leaf ``c`` when every node of level >= :data:`LOWEST_STORED_LEVEL` inside ``[0, c)`` is stored,
so progress is the table itself: the highest stored node of the lowest level.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Connection,
    LargeBinary,
    SmallInteger,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from vault.storage.catalog import Base
from vault.errors import LedgerError
from .tables import EVENTS, unpack_entry
from .merkle import (
    CompactRange,
    NodeId,
    consistency_plan,
    fold,
    inclusion_plan,
    leaf_hash,
    node_hash,
    plan_hashes,
    subtree_nodes,
)

#: Nodes of this level and above are stored; below it they are rehashed from leaves.
LOWEST_STORED_LEVEL = 2
#: Leaves read, and nodes written, per statement when filling in an existing ledger.
BACKFILL_BATCH = 50_000
# Bound parameters per IN list (SQLite allows 32766; PostgreSQL 65535).
_IN_CHUNK = 5000


class TreeNodeRow(Base):
    """The root of one perfect subtree of the custody Merkle tree (level >= 2)."""

    __tablename__ = "custody_tree_nodes"
    # The primary key is the only index: WITHOUT ROWID stores each row once, in key order.
    __table_args__ = {"sqlite_with_rowid": False}

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


_NODES = cast(Table, TreeNodeRow.__table__)
_N = _NODES.c
_L = EVENTS.c


def _leaf(seq: int, stored: bytes) -> bytes:
    # Storage layout 2 keeps no leaf hash: it is the hash of the entry (RFC 6962 leaf).
    return leaf_hash(unpack_entry(stored, seq))


def covered(conn: Connection) -> int:
    """How many leaves the stored nodes cover: every stored-level node inside ``[0, c)``
    exists. A multiple of ``2**LOWEST_STORED_LEVEL``."""
    top = conn.execute(
        select(func.max(_N.idx)).where(_N.level == LOWEST_STORED_LEVEL)
    ).scalar()
    return 0 if top is None else (top + 1) << LOWEST_STORED_LEVEL


def read_nodes(conn: Connection, nodes: Collection[NodeId]) -> dict[NodeId, bytes]:
    """The hashes of perfect subtrees ``nodes``, reading each stored one and rehashing the
    lower ones from their leaves: one query for the stored nodes, one for the leaves.

    Raises LedgerError naming a node that is neither stored nor made of stored leaves.
    """
    wanted = set(nodes)
    stored: list[NodeId] = []
    low: list[NodeId] = []
    for node in wanted:
        (stored if node[0] >= LOWEST_STORED_LEVEL else low).append(node)
    found: dict[NodeId, bytes] = {}
    # One statement for all levels: a proof's ~log2(n) nodes in one round trip. Spelled as
    # "level = ? AND idx IN (...)" per level, OR-ed: both databases look each up by primary key
    # (SQLite scans the whole table for a row-value "(level, idx) IN (VALUES ...)").
    for start in range(0, len(stored), _IN_CHUNK):
        by_level: dict[int, list[int]] = {}
        for level, index in stored[start : start + _IN_CHUNK]:
            by_level.setdefault(level, []).append(index)
        rows = conn.execute(
            select(_N.level, _N.idx, _N.hash).where(
                or_(*(and_(_N.level == lv, _N.idx.in_(ix)) for lv, ix in by_level.items()))
            )
        )
        found.update(((row.level, row.idx), bytes(row.hash)) for row in rows)
    if low:
        seqs = sorted({seq for level, index in low for seq in _leaf_range(level, index)})
        leaves: dict[int, bytes] = {}
        for start in range(0, len(seqs), _IN_CHUNK):
            chunk = seqs[start : start + _IN_CHUNK]
            rows = conn.execute(select(_L.seq, _L.entry).where(_L.seq.in_(chunk)))
            leaves.update((row.seq, _leaf(row.seq, row.entry)) for row in rows)
        for level, index in low:
            try:
                found[(level, index)] = _perfect_root([leaves[s] for s in _leaf_range(level, index)])
            except (KeyError, ValueError):
                raise LedgerError(
                    f"leaves of the subtree ({level}, {index}) are missing or malformed;"
                    " run custody verify"
                ) from None
    missing = wanted - found.keys()
    if missing:
        level, index = min(missing)
        raise LedgerError(
            f"the stored Merkle tree lacks node ({level}, {index}): run custody verify"
        )
    return found


def root(conn: Connection, size: int) -> bytes:
    """The MTH of the first ``size`` leaves, from O(log n) stored nodes. Raises LedgerError."""
    nodes = subtree_nodes(0, size)
    known = read_nodes(conn, nodes)
    return fold([known[n] for n in nodes])


def inclusion_proofs(
    conn: Connection, indexes: Iterable[int], size: int
) -> tuple[bytes, dict[int, list[bytes]]]:
    """The root of the first ``size`` leaves and the audit path of each leaf ``indexes`` in
    that tree (RFC 9162 2.1.3.1), reading every node they need in one pass.

    Raises LedgerError for an index outside the tree or a node the store lacks.
    """
    wanted = sorted(set(indexes))
    plans = {i: inclusion_plan(i, size) for i in wanted}
    top = subtree_nodes(0, size)
    need = {node for plan in plans.values() for element in plan for node in element}
    known = read_nodes(conn, need.union(top))
    return fold([known[n] for n in top]), {i: plan_hashes(p, known) for i, p in plans.items()}


def consistency(conn: Connection, m: int, n: int) -> tuple[bytes, bytes, list[bytes]]:
    """(root of size ``m``, root of size ``n``, the consistency proof between them, RFC 9162
    2.1.4.1), from O(log n) stored nodes. Raises LedgerError unless 0 <= m <= n."""
    plan = consistency_plan(m, n)
    old_top, new_top = subtree_nodes(0, m), subtree_nodes(0, n)
    known = read_nodes(conn, {node for e in plan for node in e}.union(old_top, new_top))
    return (
        fold([known[x] for x in old_top]),
        fold([known[x] for x in new_top]),
        plan_hashes(plan, known),
    )


def extend(
    conn: Connection, size: int, leaves: Sequence[bytes], frontier: CompactRange | None = None
) -> CompactRange:
    """Store the nodes that ``leaves``, appended at position ``size``, complete; call it in the
    appending transaction, under the ledger lock. Returns the compact range after them, which
    the caller may pass back as ``frontier`` for the next append at that size (it then skips
    reading the frontier; give it only for the same history, e.g. keyed by the head's hash).

    Fills in first whatever the store lacks below ``size`` (a ledger from before migration
    0010), and drops nodes beyond it (events removed from the end: ``verify`` reports that; the
    stored tree follows the events as they are). Raises LedgerError when a stored node needed
    to continue is missing.
    """
    have = covered(conn)
    floor = size >> LOWEST_STORED_LEVEL << LOWEST_STORED_LEVEL
    if have > floor:
        _truncate(conn, size)
        have = covered(conn)
    if have < floor:
        tree = _frontier(conn, have)
        _fill(conn, tree, size)
    elif frontier is not None and frontier.size == size:
        tree = frontier
    else:  # every stored node below ``size`` is there: start from its frontier directly
        tree = _frontier(conn, size)
    _store(conn, tree.extend(leaves))
    return tree


def catch_up(
    sessions: sessionmaker[Session],
    lock: Callable[[Session], None],
    size: int,
    *,
    batch: int = BACKFILL_BATCH,
) -> int:
    """Fill the store up to ``size`` leaves in committed batches of ``batch`` leaves, each
    under ``lock`` (the ledger's appenders' lock), so that an interrupted run resumes where it
    stopped. Returns how many leaves it covers. Raises LedgerError as :func:`extend`."""
    floor = size >> LOWEST_STORED_LEVEL << LOWEST_STORED_LEVEL
    while True:
        with sessions.begin() as session:
            conn = session.connection()
            if covered(conn) >= floor:
                return covered(conn)
            lock(session)
            have = covered(conn)
            if have >= floor:
                return have
            tree = _frontier(conn, have)
            _fill(conn, tree, min(size, have + batch))


def _leaf_range(level: int, index: int) -> range:
    return range(index << level, (index + 1) << level)


def _perfect_root(hashes: list[bytes]) -> bytes:
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    if not hashes or len(hashes[0]) != 32:
        raise ValueError("not a perfect subtree")
    return hashes[0]


def _frontier(conn: Connection, size: int) -> CompactRange:
    """The compact range of the first ``size`` leaves, from the stored nodes."""
    nodes = subtree_nodes(0, size)
    known = read_nodes(conn, nodes)
    return CompactRange(size, [known[n] for n in nodes])


def _fill(conn: Connection, tree: CompactRange, stop: int) -> None:
    """Extend ``tree`` with the stored leaves up to ``stop``, storing what they complete."""
    while tree.size < stop:
        end = min(stop, tree.size + BACKFILL_BATCH)
        rows = conn.execute(
            select(_L.seq, _L.entry)
            .where(_L.seq >= tree.size, _L.seq < end)
            .order_by(_L.seq)
        ).all()
        if len(rows) != end - tree.size or (rows and rows[0].seq != tree.size):
            raise LedgerError(
                f"custody events {tree.size}..{end - 1} are not all there; run custody verify",
                seq=tree.size,
            )
        _store(conn, tree.extend(_leaf(row.seq, row.entry) for row in rows))


def _store(conn: Connection, done: Iterable[tuple[NodeId, bytes]]) -> None:
    rows = [
        {"level": level, "idx": index, "hash": digest}
        for (level, index), digest in done
        if level >= LOWEST_STORED_LEVEL
    ]
    if not rows:
        return
    # A node is a pure function of its leaves, so writing it again replaces it: a stray row
    # (left by a removed tail, or written by hand) never blocks the ledger's appends.
    dialect = conn.dialect.name
    stmt: Any
    if dialect == "sqlite":
        stmt = sqlite_insert(_NODES)
        stmt = stmt.on_conflict_do_update(index_elements=["level", "idx"],
                                          set_={"hash": stmt.excluded.hash})
    elif dialect == "postgresql":
        stmt = pg_insert(_NODES)
        stmt = stmt.on_conflict_do_update(index_elements=["level", "idx"],
                                          set_={"hash": stmt.excluded.hash})
    else:  # pragma: no cover - the catalog runs on SQLite and PostgreSQL
        stmt = insert(_NODES)
    for start in range(0, len(rows), BACKFILL_BATCH):
        conn.execute(stmt, rows[start : start + BACKFILL_BATCH])


def _truncate(conn: Connection, size: int) -> None:
    # A node survives only when all its leaves lie below ``size``.
    levels = [row[0] for row in conn.execute(select(_N.level).distinct())]
    if levels:
        conn.execute(
            delete(_NODES).where(
                or_(*(and_(_N.level == lv, _N.idx >= size >> lv) for lv in levels))
            )
        )


def nodes_in(conn: Connection) -> Mapping[NodeId, bytes]:
    """Every stored node (for tests and drills on small ledgers)."""
    return {(r.level, r.idx): bytes(r.hash) for r in conn.execute(select(_N.level, _N.idx, _N.hash))}


__all__ = [
    "BACKFILL_BATCH",
    "LOWEST_STORED_LEVEL",
    "TreeNodeRow",
    "catch_up",
    "consistency",
    "covered",
    "extend",
    "inclusion_proofs",
    "nodes_in",
    "read_nodes",
    "root",
]
