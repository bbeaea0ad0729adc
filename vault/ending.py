"""Ending a record: one way to release a hold, revoke a share or revoke an API token.

Records that stop having effect (a hold that no longer keeps footage, a share link that no
longer opens, a token that no longer signs in) are never deleted: they are marked ended, by
whom, when and (where the table keeps one) why, and the ending is a custody event committed in
the same transaction, so the catalog and the ledger cannot disagree about it. What differs
between them is declared once per kind as an :class:`Ending`, beside its table; the rule is
here:

1. a record ends once: ending it again is refused with :class:`~vault.errors.InvalidInput`
   naming the date it ended, and nothing is written;
2. a reason, where the table keeps one, is required and stored as given;
3. the row is marked and the event appended in the caller's transaction, the mark by one
   conditional ``UPDATE`` so that two callers ending the same record at once end it once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .actors import Actor
from .errors import InvalidInput
from .ledger.custody import Action

if TYPE_CHECKING:
    from .vault import Vault


@dataclass(frozen=True)
class Ending:
    """How one kind of record ends: its noun, the past tense of its ending and its columns."""

    noun: str  # "hold"
    ended: str  # "released"
    at: str  # the column holding when: "released_at"
    by: str  # the column holding who: "released_by"
    reason: str | None = None  # the column holding why, where the table keeps one

    def ended_at(self, row: object) -> Any:
        """When ``row`` ended, or None while it has effect."""
        return getattr(row, self.at)


def _already_ended(row: object, ending: Ending, record_id: str) -> None:
    when = ending.ended_at(row)
    if when is not None:
        raise InvalidInput(f"{ending.noun} {record_id} was already {ending.ended} on {when:%Y-%m-%d}")


def end_record(
    vault: Vault,
    session: Session,
    row: object,
    ending: Ending,
    *,
    record_id: str,
    actor: Actor,
    action: Action | str,
    object_ids: Sequence[str],
    details: Mapping[str, Any],
    reason: str | None = None,
    **envelope: Any,
) -> None:
    """Mark ``row`` ended now by ``actor`` (for ``reason``) and append ``action`` for it in
    ``session``; ``envelope`` carries the event's other fields (reference, recipient...).

    Raises InvalidInput if it had already ended, or if the table keeps a reason and none was
    given; in both cases nothing is changed.
    """
    if ending.reason is not None and (not reason or not reason.strip()):
        raise InvalidInput(f"say why the {ending.noun} is {ending.ended} (a reason is required)")
    _already_ended(row, ending, record_id)
    values = {ending.at: vault.clock(), ending.by: actor.user}
    if ending.reason is not None:
        values[ending.reason] = reason
    # One conditional UPDATE, not a read then a write: of two callers ending the same record
    # at once (two officers revoking one share), the second matches no row and is refused,
    # so the ending and its event happen once (check 1), whatever the row in hand said.
    table = type(row)
    mapper = sa_inspect(table)
    key = mapper.primary_key_from_instance(row)
    ended = session.execute(
        update(table)
        .where(*(column == value for column, value in zip(mapper.primary_key, key, strict=True)))
        .where(getattr(table, ending.at).is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if ended.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(row)
        _already_ended(row, ending, record_id)
        raise InvalidInput(f"{ending.noun} {record_id} has already ended")  # pragma: no cover
    for name, value in values.items():
        set_committed_value(row, name, value)
    vault.ledger.append(
        session, action, actor=actor, object_ids=list(object_ids), details=dict(details),
        **envelope,
    )


__all__ = ["Ending", "end_record"]
