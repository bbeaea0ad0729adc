"""Merkle tree hashing and proofs, RFC 6962 section 2.1 / RFC 9162 section 2.1 (SHA-256).

The custody ledger's events are the leaves of this tree. Leaves and interior nodes are hashed
with distinct one-byte prefixes (second-preimage resistance), the tree over ``n`` leaves splits
at the largest power of two below ``n``, and the empty tree's hash is SHA-256 of nothing.

Proof *generation* here works level by level over a list of leaf hashes (the unpaired node at
the end of a level is carried up unchanged, which yields exactly RFC 6962's tree). Proof
*verification* follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step and fails with
:class:`~vault.errors.LedgerError`; it also rejects every proof longer or shorter than the
one the sizes call for, a lesson from immudb's client, which accepted forged consistency proofs
(GHSA-672p-m5jq-mrh8).

Sizes are leaf counts and indexes are zero-based, as in the RFCs.

Proofs over a *stored* tree (:mod:`vault.ledger.stored_tree`) are planned here first: a
:data:`NodeId` names a perfect subtree, :func:`subtree_nodes` splits any subtree RFC 6962 uses
into perfect ones, and :func:`inclusion_plan` / :func:`consistency_plan` say which perfect
subtrees each proof element folds, so a proof reads O(log n) stored nodes, never every leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from vault.errors import LedgerError

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256

#: A perfect subtree: ``(level, index)`` is the root over leaves ``[index << level,
#: (index + 1) << level)``; level 0 is a leaf.
NodeId = tuple[int, int]


def leaf_hash(entry: bytes) -> bytes:
    """The hash of one leaf: SHA-256(0x00 || entry)."""
    return _sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return _sha256(NODE_PREFIX + left + right).digest()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of a tree with these leaf hashes; EMPTY_ROOT for none."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaf_hashes`` (RFC 9162 2.1.3.1).

    Raises LedgerError when the index is outside the tree.
    """
    size = len(leaf_hashes)
    if not 0 <= index < size:
        raise LedgerError(f"leaf index {index} outside a tree of size {size}")
    proof: list[bytes] = []
    level = list(leaf_hashes)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        # else: the node is the unpaired last one of its level, carried up with no sibling.
        level = _next_level(level)
        index >>= 1
    return proof


def inclusion_proofs(indexes: Iterable[int], leaf_hashes: Sequence[bytes]) -> dict[int, list[bytes]]:
    """The audit paths of several leaves of one tree, each as :func:`inclusion_proof` gives it.

    The tree's levels are hashed once, so ``k`` proofs over ``n`` leaves cost O(n + k log n)
    rather than O(k n) (a disclosure certificate proves every event of its items). Raises
    LedgerError when an index is outside the tree.
    """
    size = len(leaf_hashes)
    wanted = sorted(set(indexes))
    if wanted and not (0 <= wanted[0] and wanted[-1] < size):
        raise LedgerError(f"leaf indexes {wanted[0]}..{wanted[-1]} outside a tree of size {size}")
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        levels.append(_next_level(levels[-1]))
    proofs: dict[int, list[bytes]] = {}
    for index in wanted:
        proof, at = [], index
        for level in levels[:-1]:
            if at ^ 1 < len(level):
                proof.append(level[at ^ 1])
            at >>= 1
        proofs[index] = proof
    return proofs


def consistency_proof(m: int, n: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of the first ``m`` leaves is a prefix of the first ``n``.

    RFC 9162 2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true); empty when m is 0 or m == n.
    Raises LedgerError unless 0 <= m <= n <= len(leaf_hashes).
    """
    if not 0 <= m <= n <= len(leaf_hashes):
        raise LedgerError(
            f"no consistency proof from size {m} to {n} in a tree of {len(leaf_hashes)}"
        )
    if m == 0 or m == n:
        return []
    return _subproof(m, leaf_hashes, n)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` leaves with hash ``root``.

    RFC 9162 section 2.1.3.2. Returns None; raises LedgerError when the proof does not verify.
    """
    _check_hashes([leaf, root, *proof])
    # 1. The index must lie inside the tree.
    if not 0 <= index < size:
        raise LedgerError(f"inclusion proof: leaf index {index} outside a tree of size {size}")
    # 2. The proof must have exactly the length the index and size determine.
    if len(proof) != _inclusion_proof_length(index, size):
        raise LedgerError(f"inclusion proof for leaf {index} of {size} has the wrong length")
    # 3. Recompute the root from the leaf along the path (RFC 9162 2.1.3.2 steps 2-5).
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise LedgerError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # 4. The path must end at the root, and at the root hash given.
    if sn != 0:
        raise LedgerError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise LedgerError(
            f"inclusion proof for leaf {index} does not lead to the root of size {size}"
        )


def verify_consistency(
    m: int, n: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of size ``m`` with ``old_root`` is a prefix of size ``n``'s ``new_root``.

    RFC 9162 section 2.1.4.2, plus the two cases it leaves out (m == n: the proof is empty and the
    roots equal; m == 0: the proof is empty and ``old_root`` is the empty tree's hash).
    Returns None; raises LedgerError when the proof does not verify.
    """
    _check_hashes([old_root, new_root, *proof])
    # 1. Sizes only grow.
    if not 0 <= m <= n:
        raise LedgerError(f"consistency proof: size {m} cannot precede size {n}")
    # 2. Degenerate cases carry no proof at all.
    if m == n or m == 0:
        if proof:
            raise LedgerError(f"consistency proof from {m} to {n} must be empty")
        expected = new_root if m == n else EMPTY_ROOT
        if old_root != expected:
            raise LedgerError(f"tree of size {m} does not match the tree of size {n}")
        return
    # 3. The proof must have exactly the length the sizes determine (RFC 9162 step 1 only
    #    rejects an empty one; a padded or truncated proof must not get further either).
    if len(proof) != _consistency_proof_length(m, n):
        raise LedgerError(f"consistency proof from {m} to {n} has the wrong length")
    # 4. RFC 9162 2.1.4.2 steps 2-6: walk both roots up from the first proof node.
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, old_root)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise LedgerError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 5. Step 7: both recomputed roots must equal the ones given, and the path must be complete.
    if sn != 0:
        raise LedgerError("consistency proof is shorter than the path to the root")
    if fr != old_root:
        raise LedgerError(f"consistency proof does not lead to the old root of size {m}")
    if sr != new_root:
        raise LedgerError(f"consistency proof does not lead to the new root of size {n}")


class CompactRange:
    """The Merkle tree of a growing list of leaves, in O(log n) memory.

    Holds the roots of the perfect subtrees the leaves so far decompose into (one per set bit of
    the size, largest first); :meth:`root` folds them right to left into RFC 6962's MTH. Lets a
    reader stream a ledger once and know the root at every size on the way.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """An empty range, or one restored from a saved ``size`` and :attr:`hashes`.

        Raises LedgerError when the hashes do not fit the size (one per set bit).
        """
        if size < 0 or len(hashes) != (size).bit_count():
            raise LedgerError(f"a compact range of size {size} has one hash per set bit of it")
        _check_hashes(hashes)
        self._size = size
        self._stack: list[bytes] = list(hashes)

    def copy(self) -> CompactRange:
        """An independent range at the same size."""
        return CompactRange(self._size, self._stack)

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """The perfect-subtree roots, largest subtree first; saved to resume later."""
        return list(self._stack)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at the end."""
        stack = self._stack
        stack.append(leaf)
        size = self._size
        # Each trailing set bit of the old size is a perfect subtree that now has a right twin.
        while size & 1:
            right = stack.pop()
            stack[-1] = node_hash(stack[-1], right)
            size >>= 1
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[NodeId, bytes]]:
        """Add leaf hashes at the end; returns every interior node they complete, as
        ``((level, index), hash)`` in the order completed (what a stored tree keeps)."""
        stack = self._stack
        done: list[tuple[NodeId, bytes]] = []
        for leaf in leaves:
            stack.append(leaf)
            size, level = self._size, 0
            while size & 1:
                right = stack.pop()
                stack[-1] = node_hash(stack[-1], right)
                size >>= 1
                level += 1
                done.append(((level, size), stack[-1]))
            self._size += 1
        return done

    def root(self) -> bytes:
        """The tree hash of the leaves appended so far (EMPTY_ROOT when none)."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        r = stack[-1]
        for h in reversed(stack[:-1]):
            r = node_hash(h, r)
        return r


def subtree_nodes(lo: int, hi: int) -> list[NodeId]:
    """The perfect subtrees that make up leaves ``[lo, hi)``, left to right, each as large as
    its alignment allows.

    For a subtree RFC 6962 builds (``lo`` a multiple of a power of two >= ``hi - lo``) these are
    the set bits of ``hi - lo``, largest first, and :func:`fold` of their hashes is its MTH.
    """
    nodes: list[NodeId] = []
    while lo < hi:
        level = (lo & -lo).bit_length() - 1 if lo else (hi - lo).bit_length()
        while 1 << level > hi - lo:
            level -= 1
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The MTH of consecutive perfect subtrees (largest first), hashed right to left as
    RFC 6962's split at the largest power of two does; EMPTY_ROOT for none."""
    if not hashes:
        return EMPTY_ROOT
    r = hashes[-1]
    for h in reversed(hashes[:-1]):
        r = node_hash(h, r)
    return r


def inclusion_plan(index: int, size: int) -> list[list[NodeId]]:
    """The audit path of leaf ``index`` in a tree of ``size`` leaves (RFC 9162 2.1.3.1), as the
    perfect subtrees each element folds (:func:`fold`), deepest element first.

    At most one element (the sibling on the tree's right border) has more than one subtree, so
    a path needs O(log n) nodes. Raises LedgerError when the index is outside the tree.
    """
    if not 0 <= index < size:
        raise LedgerError(f"leaf index {index} outside a tree of size {size}")
    lo, hi = 0, size
    top_down: list[list[NodeId]] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            top_down.append(subtree_nodes(lo + k, hi))
            hi = lo + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            top_down.append(subtree_nodes(lo, lo + k))
            lo += k
    return top_down[::-1]


def consistency_plan(m: int, n: int) -> list[list[NodeId]]:
    """The consistency proof from size ``m`` to ``n`` (RFC 9162 2.1.4.1), as the perfect
    subtrees each element folds, in proof order; empty when m is 0 or m == n.

    Raises LedgerError unless 0 <= m <= n.
    """
    if not 0 <= m <= n:
        raise LedgerError(f"no consistency proof from size {m} to {n}")
    if m == 0 or m == n:
        return []
    lo, hi, complete = 0, n, True
    top_down: list[list[NodeId]] = []
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            top_down.append(subtree_nodes(lo + k, hi))
            hi = lo + k
        else:
            top_down.append(subtree_nodes(lo, lo + k))
            lo += k
            m -= k
            complete = False
    seed = [] if complete else [subtree_nodes(lo, hi)]
    return seed + top_down[::-1]


def plan_hashes(plan: Sequence[Sequence[NodeId]], nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """The proof a plan describes, from the hashes of its nodes. Raises KeyError for a node
    ``nodes`` lacks."""
    return [fold([nodes[node] for node in element]) for element in plan]


def _next_level(level: list[bytes]) -> list[bytes]:
    # Pairs hash into their parent; an unpaired last node moves up unchanged (RFC 6962's split at
    # the largest power of two gives exactly this tree).
    nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) & 1:
        nxt.append(level[-1])
    return nxt


def _split(n: int) -> int:
    # The largest power of two strictly below n (n >= 2).
    return 1 << ((n - 1).bit_length() - 1)


def _subproof(m: int, leaves: Sequence[bytes], n: int) -> list[bytes]:
    # RFC 9162 2.1.4.1 SUBPROOF(m, D[0:n], true), unrolled down the tree. The recursion appends
    # each level's sibling after the deeper part of the proof, so collect top-down and reverse.
    lo, hi, complete = 0, n, True
    top_down: list[bytes] = []
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            top_down.append(root_hash(leaves[lo + k : hi]))
            hi = lo + k
        else:
            top_down.append(root_hash(leaves[lo : lo + k]))
            lo += k
            m -= k
            complete = False
    seed = [] if complete else [root_hash(leaves[lo:hi])]
    return seed + top_down[::-1]


def _inclusion_proof_length(index: int, size: int) -> int:
    # Levels where the node on the path has a sibling: the bits in which index and size-1
    # share a prefix below the split, plus the full-subtree levels.
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def _consistency_proof_length(m: int, n: int) -> int:
    # Same decomposition as transparency-dev/merkle: the inner part of the path from leaf m-1
    # to the root of n, minus the levels where m-1 is a right child completed by the old tree
    # (those come from the old root), plus the border levels, plus the seed node unless m is a
    # power of two (then the seed is old_root itself, not sent).
    inner = ((m - 1) ^ (n - 1)).bit_length()
    shift = (m & -m).bit_length() - 1  # trailing zeros of m
    inner -= shift
    border = ((m - 1) >> (inner + shift)).bit_count()
    seed = 0 if m == 1 << shift else 1
    return inner + border + seed


def _check_hashes(hashes: Sequence[bytes]) -> None:
    for h in hashes:
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise LedgerError(f"a Merkle hash must be {HASH_SIZE} bytes")


__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "CompactRange",
    "NodeId",
    "consistency_plan",
    "consistency_proof",
    "fold",
    "inclusion_plan",
    "inclusion_proof",
    "inclusion_proofs",
    "leaf_hash",
    "node_hash",
    "plan_hashes",
    "root_hash",
    "subtree_nodes",
    "verify_consistency",
    "verify_inclusion",
]
