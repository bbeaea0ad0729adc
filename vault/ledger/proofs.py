"""Inclusion and consistency proofs of the custody ledger (RFC 9162 2.1.3 and 2.1.4), from
the stored Merkle tree (:mod:`vault.ledger.stored_tree`: O(log n) rows a proof), and their
offline checks. Every proof handed out is first checked against the signed checkpoint it names,
so a wrong stored node yields a refusal, never a false proof.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from vault.errors import InvalidInput, LedgerError, NotFound

from . import stored_tree
from .checkpoint import Checkpoint, open_checkpoint
from .entries import parse_entry
from .merkle import leaf_hash, verify_consistency, verify_inclusion
from .tables import CHECKPOINTS, EVENTS, unpack_entry
from .verify import LedgerView

INCLUSION_PROOF_FORMAT = "evidence-vault custody inclusion proof v1"
CONSISTENCY_PROOF_FORMAT = "evidence-vault custody consistency proof v1"

_E = EVENTS.c
_C = CHECKPOINTS.c


def inclusion_proof(
    ledger: LedgerView, seq: int, *, checkpoint_size: int | None = None) -> dict[str, Any]:
    """A JSON-ready proof that event ``seq`` is in the log, with the checkpoint it verifies
    against: the latest (signed now if none covers the event yet), or the stored one of
    ``checkpoint_size``.

    Raises NotFound for an unknown seq or checkpoint, LedgerError when the stored tree
    disagrees with the checkpoint (run :meth:`verify`).
    """
    # Proofs read O(log n) stored nodes (vault.ledger.stored_tree); a ledger from before they were
    # stored is filled in first, in committed batches, then the read is retried.
    signed = caught_up = False
    while True:
        with ledger._snapshot() as session:
            stored = session.execute(
                select(_E.entry).where(_E.seq == seq)
            ).scalar_one_or_none()
            if stored is None:
                raise NotFound(f"no custody event {seq}")
            query = select(_C.size, _C.note).order_by(_C.size.desc()).limit(1)
            if checkpoint_size is not None:
                query = query.where(_C.size == checkpoint_size)
            latest = session.execute(query).first()
            if checkpoint_size is not None and (latest is None or latest.size <= seq):
                raise NotFound(f"no checkpoint of size {checkpoint_size} covers event {seq}")
            size, note = 0, ""
            if latest is not None and latest.size > seq:
                size, note = latest.size, latest.note
            if size and _tree_ready(session, size):
                epochs = ledger._epochs(session)
                tree_root, paths = stored_tree.inclusion_proofs(session, [seq], size)
                break
        if size and not caught_up:
            stored_tree.catch_up(ledger._sessions, ledger._lock, size)
            caught_up = True
        elif not size and not signed:
            ledger.checkpoint()
            signed = True
        else:  # pragma: no cover - checkpoint() always covers an existing event
            raise LedgerError(f"no checkpoint covers event {seq}", seq=seq)
    cp = ledger._open(note, epochs)
    entry = unpack_entry(stored, seq)
    leaf = leaf_hash(entry)
    try:
        if tree_root != cp.root_hash:
            raise LedgerError("root differs")
        verify_inclusion(leaf, seq, cp.size, paths[seq], cp.root_hash)
    except LedgerError:
        raise LedgerError(
            f"the stored tree does not match checkpoint {cp.size}; run custody verify", seq=seq
        ) from None
    return {
        "format": INCLUSION_PROOF_FORMAT,
        "origin": ledger.origin,
        "entry": entry.decode("utf-8"),
        "leaf_index": seq,
        "tree_size": cp.size,
        "leaf_hash": leaf.hex(),
        "root_hash": cp.root_hash.hex(),
        "proof": [h.hex() for h in paths[seq]],
        "checkpoint": note,
        "verifier_key": epochs.key_at(cp.size),
    }

def handovers(ledger: LedgerView) -> list[dict[str, Any]]:
    """Every rotation of the signing key, oldest first, each with the inclusion proof of its
    ``key_rotated`` event against the hand-over checkpoint (signed by both keys).

    With these, someone who trusts an older verifier key can follow the chain to the key
    in effect now (``verify_export.py`` does, for export packages).
    """
    with ledger._snapshot() as conn:
        rotations = ledger._epochs(conn).rotations
    return [
        {
            "old_key": old,
            "new_key": new,
            "proof": inclusion_proof(ledger, seq, checkpoint_size=seq + 1),
        }
        for seq, old, new in rotations
    ]

def verify_inclusion_proof(
    proof: Mapping[str, Any], vkey: str, *, origin: str | None = None,
    opened: dict[tuple[str, str, Any], Checkpoint] | None = None,
) -> None:
    """Check an inclusion proof offline, with nothing but the proof and the verifier key.

    ``vkey`` must come from the recipient's own trusted copy, not from the proof; ``origin``
    (default: the proof's own ``origin``) is the log its checkpoint must name. ``opened``
    is a cache kept by a caller checking many proofs: a checkpoint note opened (signature
    verified) for this key and origin is not opened again. Returns None; raises
    LedgerError when anything does not verify.
    """
    try:
        # 1. The format is the one this function reads.
        if proof.get("format") != INCLUSION_PROOF_FORMAT:
            raise LedgerError("not a custody inclusion proof")
        # 2. The checkpoint is signed by the trusted key and names the expected log (by
        #    default the one the proof names: a checkpoint of another log proves nothing).
        expected = origin if origin is not None else proof.get("origin")
        opened_key = (proof["checkpoint"], vkey, expected)
        cp = opened.get(opened_key) if opened is not None else None
        if cp is None:
            cp = open_checkpoint(proof["checkpoint"], vkey, origin=expected)
            if opened is not None:
                opened[opened_key] = cp
        # 3. The proof's own size and root, if a reader looks at them, are the signed ones.
        if proof["tree_size"] != cp.size or proof["root_hash"] != cp.root_hash.hex():
            raise LedgerError("proof's tree size or root differ from its checkpoint")
        # 4. The entry is a canonical custody entry at the position the proof claims.
        entry = proof["entry"].encode("utf-8")
        seq, _prev, _event = parse_entry(entry)
        index = proof["leaf_index"]
        if seq != index or isinstance(index, bool):
            raise LedgerError("the entry's seq is not the proof's leaf index")
        leaf = leaf_hash(entry)
        if proof.get("leaf_hash", leaf.hex()) != leaf.hex():
            raise LedgerError("the proof's leaf hash is not the entry's")
        # 5. The audit path leads from the entry's leaf to the signed root (RFC 9162 2.1.3.2).
        path = [bytes.fromhex(h) for h in proof["proof"]]
        verify_inclusion(leaf, index, cp.size, path, cp.root_hash)
    except LedgerError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LedgerError(f"malformed inclusion proof: {exc!r}") from None

def consistency_proof(
    ledger: LedgerView, old_size: int, new_size: int | None = None) -> dict[str, Any]:
    """A JSON-ready proof that the log at ``old_size`` is a prefix of it at ``new_size``
    (default: now), with the signed checkpoints of those sizes where they exist.

    Raises InvalidInput unless 0 <= old_size <= new_size <= the ledger's size.
    """
    for attempt in range(2):
        with ledger._snapshot() as session:
            size = ledger._size(session)
            new_size = size if new_size is None else new_size
            if not 0 <= old_size <= new_size <= size:
                raise InvalidInput(
                    f"no consistency proof from {old_size} to {new_size} (ledger has {size})"
                )
            if _tree_ready(session, new_size) or attempt:
                old_root, new_root, path = stored_tree.consistency(session, old_size, new_size)
                notes = {
                    row.size: row.note
                    for row in session.execute(
                        select(_C.size, _C.note).where(_C.size.in_([old_size, new_size]))
                    )
                }
                break
        stored_tree.catch_up(ledger._sessions, ledger._lock, new_size)
    return {
        "format": CONSISTENCY_PROOF_FORMAT,
        "origin": ledger.origin,
        "old_size": old_size,
        "new_size": new_size,
        "old_root": old_root.hex(),
        "new_root": new_root.hex(),
        "proof": [h.hex() for h in path],
        "old_checkpoint": notes.get(old_size),
        "new_checkpoint": notes.get(new_size),
    }

def verify_consistency_proof(
    proof: Mapping[str, Any], vkey: str | Sequence[str] | None = None
) -> None:
    """Check a consistency proof; with ``vkey``, against the two signed checkpoints it carries.

    ``vkey`` may list several trusted keys (the old and new keys of a rotation the proof
    spans, followed through :meth:`handovers`): each checkpoint must be signed by one.
    Returns None; raises LedgerError.
    """
    try:
        if proof.get("format") != CONSISTENCY_PROOF_FORMAT:
            raise LedgerError("not a custody consistency proof")
        m, n = proof["old_size"], proof["new_size"]
        old_root, new_root = bytes.fromhex(proof["old_root"]), bytes.fromhex(proof["new_root"])
        # 1. With a key, both roots must be the signed ones of those sizes.
        if vkey is not None:
            for size, root, note in (
                (m, old_root, proof["old_checkpoint"]),
                (n, new_root, proof["new_checkpoint"]),
            ):
                if note is None:
                    raise LedgerError(f"no signed checkpoint of size {size} in the proof")
                cp = _open_with_any(note, [vkey] if isinstance(vkey, str) else list(vkey))
                if cp.size != size or cp.root_hash != root:
                    raise LedgerError(f"checkpoint of size {size} does not match the proof")
        # 2. The proof links the two roots (RFC 9162 2.1.4.2).
        verify_consistency(m, n, old_root, new_root, [bytes.fromhex(h) for h in proof["proof"]])
    except LedgerError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LedgerError(f"malformed consistency proof: {exc!r}") from None



def _tree_ready(conn: Connection, size: int) -> bool:
    """Whether the stored Merkle tree holds every node a proof within ``size`` leaves needs."""
    floor = size >> stored_tree.LOWEST_STORED_LEVEL << stored_tree.LOWEST_STORED_LEVEL
    return stored_tree.covered(conn) >= floor


def _open_with_any(note: str, vkeys: list[str]) -> Checkpoint:
    """The checkpoint in ``note``, signed by at least one of ``vkeys``; else LedgerError."""
    if not vkeys:
        raise LedgerError("no verifier key given")
    last: LedgerError | None = None
    for vkey in vkeys:
        try:
            return open_checkpoint(note, vkey)
        except LedgerError as exc:
            last = exc
    assert last is not None
    raise last


__all__ = [
    "CONSISTENCY_PROOF_FORMAT",
    "INCLUSION_PROOF_FORMAT",
    "consistency_proof",
    "handovers",
    "inclusion_proof",
    "verify_consistency_proof",
    "verify_inclusion_proof",
]
