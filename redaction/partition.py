"""Which things are one: a union-find partition, with pairs that must stay apart.

Two places ask it. Grouping a plan's tracks into people (:mod:`redaction.grouping`), where
two tracks seen at the same time on different faces must never be joined, however much
else links them. And joining the pieces of neighbouring chunk plans into one person across
a chunk border (:mod:`redaction.chunks`).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Partition"]


class Partition:
    """Union-find over integer ids (path halving), with "never the same" constraints
    between the sets."""

    def __init__(self, ids: Iterable[int]) -> None:
        self.parent = {i: i for i in ids}
        self.apart: dict[int, set[int]] = {i: set() for i in self.parent}

    def find(self, i: int) -> int:
        """The id that names ``i``'s set."""
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def forbid(self, a: int, b: int) -> None:
        """``a``'s set and ``b``'s may never be joined (:meth:`allowed` says so)."""
        ra, rb = self.find(a), self.find(b)
        self.apart[ra].add(rb)
        self.apart[rb].add(ra)

    def allowed(self, a: int, b: int) -> bool:
        """Whether joining ``a``'s set and ``b``'s breaks no :meth:`forbid`."""
        ra, rb = self.find(a), self.find(b)
        return ra == rb or (rb not in {self.find(x) for x in self.apart[ra]})

    def union(self, a: int, b: int) -> None:
        """Join ``b``'s set into ``a``'s (named by ``a``'s set's id from then on)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        self.apart[ra] |= self.apart.pop(rb)
        for s in self.apart.values():
            if rb in s:
                s.discard(rb)
                s.add(ra)

    def members(self) -> dict[int, list[int]]:
        """Each set's members, in the order the ids were given, by the id naming it."""
        out: dict[int, list[int]] = {}
        for i in self.parent:
            out.setdefault(self.find(i), []).append(i)
        return out
