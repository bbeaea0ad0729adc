"""RFC 6962 / 9162 Merkle maths: known vectors, every proof of small trees, forged proofs."""

from __future__ import annotations

import hashlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.errors import LedgerError
from vault.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# --- a naive reference, written straight from the RFC 6962 section 2.1 definitions ---------


def _ref_split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _ref_split(n)
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _ref_split(n)
    if m < k:
        return ref_path(m, leaves[:k]) + [ref_mth(leaves[k:])]
    return ref_path(m - k, leaves[k:]) + [ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = _ref_split(n)
    if m <= k:
        return ref_subproof(m, leaves[:k], complete) + [ref_mth(leaves[k:])]
    return ref_subproof(m - k, leaves[k:], False) + [ref_mth(leaves[:k])]


def ref_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    if m == 0 or m == len(leaves):
        return []
    return ref_subproof(m, leaves, True)


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


MAX_N = 40
ENTRIES = entries(MAX_N)
LEAVES = [leaf_hash(e) for e in ENTRIES]
ROOTS = [ref_mth(ENTRIES[:n]) for n in range(MAX_N + 1)]

# --- the certificate-transparency test vectors (RFC 6962 reference implementation) -----------

CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATHS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def _flip(proof: list[bytes], element: int, byte: int) -> list[bytes]:
    bad = [bytearray(p) for p in proof]
    bad[element][byte] ^= 0x01
    return [bytes(b) for b in bad]


# --- hashing ---------------------------------------------------------------------------------


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert CompactRange().root() == EMPTY_ROOT


def test_leaf_and_node_prefixes_differ() -> None:
    # Second-preimage resistance: a leaf whose bytes look like two hashes is not their node.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(a + b) != node_hash(a, b)
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()


@pytest.mark.parametrize("n", range(1, 9))
def test_ct_vector_roots(n: int) -> None:
    leaves = [leaf_hash(e) for e in CT_LEAVES[:n]]
    assert root_hash(leaves).hex() == CT_ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size", "path"), CT_PATHS)
def test_ct_vector_inclusion_paths(index: int, size: int, path: list[str]) -> None:
    leaves = [leaf_hash(e) for e in CT_LEAVES[:size]]
    proof = inclusion_proof(index, leaves)
    assert [p.hex() for p in proof] == path
    verify_inclusion(leaves[index], index, size, proof, bytes.fromhex(CT_ROOTS[size - 1]))


@pytest.mark.parametrize(("m", "n", "path"), CT_CONSISTENCY)
def test_ct_vector_consistency_proofs(m: int, n: int, path: list[str]) -> None:
    leaves = [leaf_hash(e) for e in CT_LEAVES[:n]]
    proof = consistency_proof(m, n, leaves)
    assert [p.hex() for p in proof] == path
    verify_consistency(m, n, bytes.fromhex(CT_ROOTS[m - 1]), bytes.fromhex(CT_ROOTS[n - 1]), proof)


def test_roots_match_reference_for_every_size() -> None:
    compact = CompactRange()
    for n in range(MAX_N + 1):
        assert root_hash(LEAVES[:n]) == ROOTS[n], n
        assert compact.size == n
        assert compact.root() == ROOTS[n], n
        if n < MAX_N:
            compact.append(LEAVES[n])


# --- inclusion -------------------------------------------------------------------------------


def test_every_inclusion_proof_matches_reference_and_verifies() -> None:
    for n in range(1, MAX_N + 1):
        for i in range(n):
            proof = inclusion_proof(i, LEAVES[:n])
            assert proof == ref_path(i, ENTRIES[:n]), (i, n)
            verify_inclusion(LEAVES[i], i, n, proof, ROOTS[n])


def test_size_one_tree_has_empty_inclusion_proof() -> None:
    assert inclusion_proof(0, LEAVES[:1]) == []
    verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[0])
    with pytest.raises(LedgerError):
        verify_inclusion(LEAVES[1], 0, 1, [], LEAVES[0])


def test_inclusion_proof_refuses_index_outside_tree() -> None:
    for index in (-1, 5):
        with pytest.raises(LedgerError):
            inclusion_proof(index, LEAVES[:5])
    with pytest.raises(LedgerError):
        inclusion_proof(0, [])


def test_inclusion_fails_for_every_flipped_byte() -> None:
    for n in range(2, 18):
        for i in range(n):
            proof = inclusion_proof(i, LEAVES[:n])
            for e in range(len(proof)):
                for b in range(32):
                    with pytest.raises(LedgerError):
                        verify_inclusion(LEAVES[i], i, n, _flip(proof, e, b), ROOTS[n])
            for b in range(32):
                with pytest.raises(LedgerError):
                    verify_inclusion(LEAVES[i], i, n, proof, _flip([ROOTS[n]], 0, b)[0])
                with pytest.raises(LedgerError):
                    verify_inclusion(_flip([LEAVES[i]], 0, b)[0], i, n, proof, ROOTS[n])


def test_inclusion_fails_with_wrong_index_or_size() -> None:
    # A path alone does not pin the size (leaf 0's path is the same in trees of 3 and 4 leaves);
    # the signed checkpoint binds size and root together, so a wrong size comes with its own root.
    for n in range(1, MAX_N + 1):
        for i in range(n):
            proof = inclusion_proof(i, LEAVES[:n])
            for other in (i - 1, i + 1, n, -1):
                with pytest.raises(LedgerError):
                    verify_inclusion(LEAVES[i], other, n, proof, ROOTS[n])
            for size in (n - 1, n + 1, 2 * n, 0):
                root = ROOTS[size] if 0 <= size <= MAX_N else EMPTY_ROOT
                with pytest.raises(LedgerError):
                    verify_inclusion(LEAVES[i], i, size, proof, root)
            with pytest.raises(LedgerError):
                verify_inclusion(LEAVES[i], i, n, proof, ROOTS[n - 1])


def test_inclusion_fails_with_truncated_or_padded_proof() -> None:
    for n in range(1, MAX_N + 1):
        for i in range(n):
            proof = inclusion_proof(i, LEAVES[:n])
            if proof:
                with pytest.raises(LedgerError):
                    verify_inclusion(LEAVES[i], i, n, proof[:-1], ROOTS[n])
                with pytest.raises(LedgerError):
                    verify_inclusion(LEAVES[i], i, n, proof[1:], ROOTS[n])
            with pytest.raises(LedgerError):
                verify_inclusion(LEAVES[i], i, n, [*proof, LEAVES[0]], ROOTS[n])
            with pytest.raises(LedgerError):
                verify_inclusion(LEAVES[i], i, n, [*proof, EMPTY_ROOT], ROOTS[n])


def test_inclusion_refuses_hashes_of_wrong_length() -> None:
    proof = inclusion_proof(1, LEAVES[:4])
    with pytest.raises(LedgerError):
        verify_inclusion(LEAVES[1], 1, 4, [proof[0][:31], proof[1]], ROOTS[4])
    with pytest.raises(LedgerError):
        verify_inclusion(LEAVES[1], 1, 4, proof, ROOTS[4] + b"\x00")


def test_inclusion_of_interior_node_as_leaf_fails() -> None:
    # An interior node hash is not a leaf of the tree: presenting H(leaf0, leaf1) as leaf 0
    # of a tree of size 2**k-ish with a shortened path must fail because the size pins the depth.
    parent = node_hash(LEAVES[0], LEAVES[1])
    proof = inclusion_proof(0, LEAVES[:4])
    with pytest.raises(LedgerError):
        verify_inclusion(parent, 0, 4, proof[1:], ROOTS[4])


# --- consistency -----------------------------------------------------------------------------


def test_every_consistency_proof_matches_reference_and_verifies() -> None:
    for n in range(MAX_N + 1):
        for m in range(n + 1):
            proof = consistency_proof(m, n, LEAVES[:n])
            assert proof == ref_proof(m, ENTRIES[:n]), (m, n)
            verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)


def test_consistency_proof_refuses_bad_sizes() -> None:
    for m, n in ((3, 2), (-1, 2), (2, 41)):
        with pytest.raises(LedgerError):
            consistency_proof(m, n, LEAVES)


def test_consistency_fails_for_every_flipped_byte() -> None:
    for n in range(2, 18):
        for m in range(1, n):
            proof = consistency_proof(m, n, LEAVES[:n])
            for e in range(len(proof)):
                for b in range(32):
                    with pytest.raises(LedgerError):
                        verify_consistency(m, n, ROOTS[m], ROOTS[n], _flip(proof, e, b))
            for b in range(32):
                with pytest.raises(LedgerError):
                    verify_consistency(m, n, _flip([ROOTS[m]], 0, b)[0], ROOTS[n], proof)
                with pytest.raises(LedgerError):
                    verify_consistency(m, n, ROOTS[m], _flip([ROOTS[n]], 0, b)[0], proof)


def test_consistency_fails_with_wrong_sizes() -> None:
    for n in range(2, MAX_N + 1):
        for m in range(1, n):
            proof = consistency_proof(m, n, LEAVES[:n])
            for m2, n2 in ((m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1), (n, m)):
                if n2 > MAX_N or 0 <= m2 <= n2 and ref_proof(m2, ENTRIES[:n2]) == proof:
                    continue  # the same nodes happen to prove that pair too: not a forgery
                with pytest.raises(LedgerError):
                    verify_consistency(m2, n2, ROOTS[m2], ROOTS[n2], proof)
            # The genuine roots under swapped or shifted sizes must not pass either.
            with pytest.raises(LedgerError):
                verify_consistency(m, n, ROOTS[m + 1], ROOTS[n], proof)
            with pytest.raises(LedgerError):
                verify_consistency(m, n, ROOTS[m], ROOTS[n - 1], proof)


def test_consistency_fails_with_truncated_padded_or_empty_proof() -> None:
    # GHSA-672p-m5jq-mrh8: a client must not accept a proof it did not fully check.
    for n in range(2, MAX_N + 1):
        for m in range(1, n):
            proof = consistency_proof(m, n, LEAVES[:n])
            for bad in (proof[:-1], proof[1:], [*proof, ROOTS[n]], [ROOTS[m], *proof], []):
                with pytest.raises(LedgerError):
                    verify_consistency(m, n, ROOTS[m], ROOTS[n], bad)


def test_consistency_forged_proof_for_rewritten_history_fails() -> None:
    # An attacker rewrites entry 2 and builds a tree of size 8 that is internally consistent;
    # no proof of the old size-5 root can lead to it, including the genuine proof of the forgery.
    forged = [*LEAVES[:2], leaf_hash(b"forged"), *LEAVES[3:8]]
    forged_root = root_hash(forged)
    for proof in (consistency_proof(5, 8, forged), consistency_proof(5, 8, LEAVES[:8])):
        with pytest.raises(LedgerError):
            verify_consistency(5, 8, ROOTS[5], forged_root, proof)


def test_consistency_degenerate_cases() -> None:
    # m == n: no proof, the roots must match.
    verify_consistency(7, 7, ROOTS[7], ROOTS[7], [])
    with pytest.raises(LedgerError):
        verify_consistency(7, 7, ROOTS[7], ROOTS[8], [])
    with pytest.raises(LedgerError):
        verify_consistency(7, 7, ROOTS[7], ROOTS[7], [ROOTS[7]])
    # m == 0: every tree extends the empty one, but the old root must be the empty root.
    verify_consistency(0, 9, EMPTY_ROOT, ROOTS[9], [])
    with pytest.raises(LedgerError):
        verify_consistency(0, 9, ROOTS[1], ROOTS[9], [])
    with pytest.raises(LedgerError):
        verify_consistency(0, 9, EMPTY_ROOT, ROOTS[9], [ROOTS[9]])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    # size 1 to 2: the proof is the second leaf.
    assert consistency_proof(1, 2, LEAVES[:2]) == [LEAVES[1]]
    verify_consistency(1, 2, ROOTS[1], ROOTS[2], [LEAVES[1]])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_large_trees(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=3000))
    m = data.draw(st.integers(min_value=1, max_value=n))
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    root, old = root_hash(leaves), root_hash(leaves[:m])
    verify_inclusion(leaves[i], i, n, inclusion_proof(i, leaves), root)
    proof = consistency_proof(m, n, leaves)
    verify_consistency(m, n, old, root, proof)
    if m < n:
        with pytest.raises(LedgerError):
            verify_consistency(m, n, root_hash(leaves[: m - 1]) if m > 1 else old, old, proof)


def test_root_of_100k_leaves_is_fast() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(100_000)]
    start = time.perf_counter()
    root = root_hash(leaves)
    elapsed = time.perf_counter() - start
    compact = CompactRange()
    for h in leaves:
        compact.append(h)
    assert compact.root() == root
    assert elapsed < 1.0, f"root of 100k leaves took {elapsed:.2f}s"


def test_inclusion_proofs_of_many_leaves_equal_one_at_a_time() -> None:
    """Issue #11 finding 16 (the certificate proves every event of its items): the batched
    audit paths are exactly RFC 9162's, for every leaf of trees of every shape up to 70 and a
    few larger, and an index outside the tree is refused."""
    import os

    from vault.ledger.merkle import inclusion_proof, inclusion_proofs, root_hash, verify_inclusion

    for n in [*range(1, 71), 255, 256, 257, 1000]:
        leaves = [os.urandom(32) for _ in range(n)]
        paths = inclusion_proofs(range(n), leaves)
        root = root_hash(leaves)
        for i in range(n):
            assert paths[i] == inclusion_proof(i, leaves)
        verify_inclusion(leaves[n - 1], n - 1, n, paths[n - 1], root)
    with pytest.raises(LedgerError):
        inclusion_proofs([3], [os.urandom(32)] * 3)
