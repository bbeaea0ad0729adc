"""Which ledger signing key was in effect at each size of the ledger.

One rule, read by the verify (:mod:`vault.ledger.verify`) and by its worker processes
(:mod:`vault.ledger.verify_pool`), which must agree on it exactly: a worker that checked an
event's MAC under another key than the parent expects would send the event back to be
checked again, or, worse, vouch for it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Epochs"]


@dataclass(frozen=True)
class Epochs:
    """Which signing key was in effect at each size of the ledger.

    ``rotations`` lists (seq, old key, new key) for every ledger key rotation, in order. Events
    before the first rotation, and the rotation event itself, were written under its old key;
    after it, under the new. With no rotation, the one key is ``current``.
    """

    rotations: tuple[tuple[int, str, str], ...]
    current: str

    def key_at(self, size: int) -> str:
        """The key in effect once ``size`` events are written: it MACs event ``size`` and
        signs checkpoints of ``size``."""
        key = self.rotations[0][1] if self.rotations else self.current
        for seq, _old, new in self.rotations:
            if seq < size:
                key = new
        return key

    def signers_of(self, size: int) -> list[str]:
        """The keys that must have signed a checkpoint of ``size``: the key in effect, and
        also the old key when the checkpoint ends with a rotation (the hand-over, cosigned)."""
        keys = [self.key_at(size)]
        keys += [old for seq, old, _new in self.rotations if seq == size - 1]
        return keys
