"""Packing detector regions into one mosaic: no overlaps, gutters kept, little waste."""

from __future__ import annotations

import random

import pytest

from redaction.mosaic import pack


def _check(sizes: list[tuple[int, int]], gutter: int) -> None:
    p = pack(sizes, gutter=gutter)
    assert p.width % 32 == 0 and p.height % 32 == 0
    rects = [(x, y, x + w, y + h) for (x, y), (w, h) in zip(p.positions, sizes, strict=True)]
    for x0, y0, x1, y1 in rects:
        assert 0 <= x0 and 0 <= y0 and x1 <= p.width and y1 <= p.height
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            # Separated by at least the gutter on one axis.
            apart = (a[2] + gutter <= b[0] or b[2] + gutter <= a[0]
                     or a[3] + gutter <= b[1] or b[3] + gutter <= a[1])
            assert apart, (a, b)


def test_random_sets_pack_without_overlap() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 25)
        sizes = [(rng.randint(8, 300), rng.randint(8, 300)) for _ in range(n)]
        _check(sizes, gutter=rng.choice([0, 4, 16]))


def test_one_region_is_its_aligned_size() -> None:
    p = pack([(100, 70)])
    assert (p.width, p.height) == (128, 96)
    assert p.positions == [(0, 0)]


def test_skyline_wastes_less_than_shelves() -> None:
    # Regions of one look on the benchmark's street scene (sizes in detector px). Shelf
    # packing, the previous method, gave a 751x596 mosaic for them (60% of it regions).
    sizes = [(297, 185), (311, 165), (140, 153), (118, 134), (157, 123), (101, 123),
             (106, 118), (106, 113), (101, 112), (104, 111), (112, 95), (78, 95), (112, 90),
             (84, 90), (90, 73), (62, 62)]
    p = pack(sizes, gutter=16)
    used = sum(w * h for w, h in sizes)
    assert used / p.area > 0.68
    assert p.area < 0.85 * 751 * 596


def test_deterministic() -> None:
    sizes = [(50, 60), (60, 50), (50, 60), (10, 10)]
    assert pack(sizes) == pack(list(sizes))


@pytest.mark.parametrize("sizes", [[], [(0, 10)], [(10, -1)]])
def test_rejects_bad_sizes(sizes: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):
        pack(sizes)


def test_long_strips_are_grouped_apart_from_ordinary_crops() -> None:
    """A strip along a panned frame's edge (2342x24) and a walker's whole height (78x741)
    would set a shared mosaic's width or height on their own: each shape is a group."""
    from redaction.mosaic import by_shape

    sizes = [(60, 70), (2342, 24), (78, 741), (300, 40), (100, 500), (1000, 300)]
    assert by_shape(sizes) == [[0, 5], [1, 3], [2, 4]]
    assert by_shape([(60, 70)]) == [[0]] and by_shape([]) == []
