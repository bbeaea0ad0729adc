"""Rotating the keyring's key-encryption key (KEK) and moving data keys onto the new one.

Every recording's data key (DEK) is stored wrapped under a KEK of the key provider
(:mod:`vault.storage.keys`). Rotation makes a new KEK current: new footage is wrapped under it at once,
and :func:`rewrap` moves existing DEKs onto it, without touching the footage itself (the DEK,
and so the ciphertext, stays the same). Earlier KEKs still unwrap, so a rewrap can be stopped
and resumed at any point.

Once no live recording uses a retired KEK, :func:`destroy` removes it from the keyring for
good. That finishes what crypto-shredding starts: a deleted recording's wrapped data key is
gone from the catalog, but a *backup* of the catalog still holds it, and opens it for as long
as the KEK exists. Rotating, rewrapping and destroying (say monthly, with 23-day retention)
bounds how long a backup can bring deleted footage back.

Each step is a custody event: ``key_rotated`` (``details.key == "keyring"``, with the old and
new KEK ids and the reason) when the KEK changes, ``keys.rewrapped`` with the count when a
rewrap pass ends, ``keys.destroyed`` when a KEK is destroyed. A recording deleted while a rewrap runs stays deleted: a DEK is replaced only
if it is still the one that was read (crypto-shredding sets it to nothing, and nothing is
written back over that).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import func, select, update

from vault.actors import Actor
from vault.storage.catalog import Recording
from vault.ledger.custody import Action
from vault.ledger.events import KeyRotated, KeysDestroyed
from vault.errors import InvalidInput
from vault.storage.keys import KeyInfo, WrappedKey
from vault.storage.keys import rewrap as rewrap_key

if TYPE_CHECKING:
    from sqlalchemy import CursorResult

    from vault.vault import Vault

#: Custody actions of a finished rewrap pass and of a destroyed KEK (extension names).
REWRAPPED = "keys.rewrapped"
DESTROYED = "keys.destroyed"
#: How long a KEK must have been retired before it may be destroyed: a put that wrapped its
#: data key just before the rotation may still be committing.
DESTROY_GRACE = dt.timedelta(hours=1)
KEYRING = "keyring"


@dataclass(frozen=True)
class RewrapReport:
    """What one rewrap pass did."""

    key_id: str
    rewrapped: int
    already_current: int
    deleted_meanwhile: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "rewrapped": self.rewrapped,
            "already_current": self.already_current,
            "deleted_meanwhile": self.deleted_meanwhile,
        }


def rotate(vault: Vault, *, actor: Actor, reason: str) -> dict[str, str]:
    """Make a new KEK current and log ``key_rotated``; returns the old and new KEK ids.

    Footage stored from now on is wrapped under the new KEK; run :func:`rewrap` to move the
    rest. Raises InvalidInput without a reason, ConfigError when the keyring cannot be written.
    """
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why the key is rotated (--reason), for the custody log")
    old = vault.keys.current_key_id()
    new = vault.keys.rotate()
    vault.ledger.record(
        Action.KEY_ROTATED,
        actor=actor,
        details=KeyRotated(key=KEYRING, old_key_id=old, new_key_id=new, reason=reason),
    )
    return {"old_key_id": old, "new_key_id": new}


def rewrap(
    vault: Vault,
    *,
    actor: Actor,
    batch: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> RewrapReport:
    """Move every live recording's DEK onto the current KEK; log ``keys.rewrapped``.

    Commits every ``batch`` recordings, so an interrupted pass loses nothing and the next one
    carries on. ``progress(done, total)`` is called after each batch. Raises KeyUnavailable
    when a DEK does not unwrap (nothing of that batch is written).
    """
    current = vault.keys.current_key_id()
    with vault.sessions() as session:
        pending = list(
            session.scalars(
                select(Recording.id).where(
                    Recording.wrapped_dek.is_not(None), Recording.key_id != current
                ).order_by(Recording.id)
            )
        )
        live = session.scalar(
            select(func.count()).select_from(Recording).where(Recording.wrapped_dek.is_not(None))
        ) or 0
    done = vanished = 0
    for start in range(0, len(pending), batch):
        ids = pending[start : start + batch]
        with vault.sessions.begin() as session:
            rows = session.execute(
                select(Recording.id, Recording.key_id, Recording.wrapped_dek).where(
                    Recording.id.in_(ids)
                )
            ).all()
            for rid, key_id, blob in rows:
                if blob is None:
                    vanished += 1
                    continue
                moved = rewrap_key(vault.keys, WrappedKey(key_id, blob), context=rid)
                result = session.execute(
                    update(Recording)
                    .where(Recording.id == rid, Recording.wrapped_dek == blob)
                    .values(wrapped_dek=moved.blob, key_id=moved.key_id)
                    .execution_options(synchronize_session=False)
                )
                changed = cast("CursorResult[Any]", result).rowcount
                if changed:
                    done += 1
                else:
                    vanished += 1
            vanished += len(ids) - len(rows)
        if progress is not None:
            progress(min(start + batch, len(pending)), len(pending))
    report = RewrapReport(
        key_id=current,
        rewrapped=done,
        already_current=int(live) - len(pending),
        deleted_meanwhile=vanished,
    )
    # Second-factor secrets are wrapped by the same KEKs (vault/access/credentials.py check 9).
    from vault.access.credentials import rewrap_second_factors, seal_second_factors

    sealed = seal_second_factors(vault)
    factors = rewrap_second_factors(vault)
    vault.ledger.record(REWRAPPED, actor=actor, details={
        **report.to_dict(), "second_factors_rewrapped": factors,
        "second_factors_sealed": sealed})
    return report


def destroy(
    vault: Vault,
    key_id: str,
    *,
    actor: Actor,
    reason: str,
    grace: dt.timedelta = DESTROY_GRACE,
) -> dict[str, Any]:
    """Destroy retired KEK ``key_id`` for good and log ``keys.destroyed``.

    Refused (InvalidInput) for the current KEK, for one retired less than ``grace`` ago, and
    while any live recording's data key is still wrapped by it (run :func:`rewrap` first).
    Data keys of deleted recordings wrapped by it, wherever a copy survives, stop opening.
    """
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why the key is destroyed (--reason), for the custody log")
    info = next((k for k in describe_keys(vault) if k.key_id == key_id), None)
    if info is None:
        raise InvalidInput(f"no key {key_id!r} in the keyring")
    if info.state == "active" or info.retired is None:
        raise InvalidInput(f"key {key_id} is the current key: rotate before destroying it")
    retired = _when(info.retired)
    if vault.clock() - retired < grace:
        raise InvalidInput(
            f"key {key_id} was retired at {info.retired}; wait until {retired + grace:%H:%M} UTC"
            " (footage stored just before the rotation may still be using it)"
        )
    from vault.access.credentials import second_factor_key_counts

    still = live_counts(vault).get(key_id, 0)
    factors = second_factor_key_counts(vault).get(key_id, 0)
    if still or factors:
        also = f" and {factors} web sign-in second factors" if factors else ""
        raise InvalidInput(
            f"{still} recordings{also} still use key {key_id}: run 'evidence-vault keys rewrap' "
            "first"
        )
    vault.keys.destroy(key_id)
    vault.ledger.record(
        DESTROYED, actor=actor, details=KeysDestroyed(
            key_id=key_id, retired=info.retired, reason=reason,
        ),
    )
    return {"key_id": key_id, "retired": info.retired}


def maintain(
    vault: Vault,
    *,
    actor: Actor,
    rotate_every: dt.timedelta,
    grace: dt.timedelta = DESTROY_GRACE,
) -> dict[str, Any]:
    """The keyring's schedule, safe to run every few minutes: rotate when the current KEK is
    older than ``rotate_every``, move data keys still under retired KEKs onto the current one,
    and destroy retired KEKs that wrap no live recording once ``grace`` has passed.

    So no copy of a data key, in the catalog or in any backup of it, opens for much longer than
    ``rotate_every`` + ``grace`` after the footage was deleted. Returns what it did.
    """
    done: dict[str, Any] = {"rotated": None, "rewrapped": 0, "destroyed": []}
    current = next(k for k in describe_keys(vault) if k.state == "active")
    if vault.clock() - _when(current.created) >= rotate_every:
        done["rotated"] = rotate(vault, actor=actor,
                                 reason=f"scheduled: the key was older than {rotate_every.days} days")
    counts = in_use_counts(vault)
    if any(k.key_id in counts for k in describe_keys(vault) if k.state == "retired"):
        done["rewrapped"] = rewrap(vault, actor=actor).rewrapped
    in_use = in_use_counts(vault)
    for key in describe_keys(vault):
        if key.state != "retired" or key.retired is None or key.key_id in in_use:
            continue
        if vault.clock() - _when(key.retired) < grace:
            continue
        destroy(vault, key.key_id, actor=actor, grace=grace,
                reason="scheduled: retired, past its grace period, and no live recording uses it")
        done["destroyed"].append(key.key_id)
    return done


def describe_keys(vault: Vault) -> list[KeyInfo]:
    """Every KEK of the vault's keyring, oldest first, destroyed ones too.

    Raises InvalidInput for a key provider that keeps its key history to itself (a KMS rotates
    and destroys keys by its own procedure).
    """
    describe = getattr(vault.keys, "describe", None)
    if describe is None:
        raise InvalidInput("this key provider rotates and destroys keys by its own procedure")
    return list(describe())


def live_counts(vault: Vault) -> dict[str, int]:
    """How many live (not deleted) recordings each KEK wraps; KEKs wrapping none are absent."""
    with vault.sessions() as session:
        return {
            key_id: int(n)
            for key_id, n in session.execute(
                select(Recording.key_id, func.count())
                .where(Recording.wrapped_dek.is_not(None))
                .group_by(Recording.key_id)
            )
        }


def in_use_counts(vault: Vault) -> dict[str, int]:
    """How many data keys each KEK still wraps: live recordings' and web sign-in second
    factors' (vault/access/credentials.py check 9). A KEK in here must not be destroyed."""
    from vault.access.credentials import second_factor_key_counts

    counts = live_counts(vault)
    for key_id, n in second_factor_key_counts(vault).items():
        counts[key_id] = counts.get(key_id, 0) + n
    return counts


def _when(timestamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


__all__ = ["DESTROYED", "DESTROY_GRACE", "KEYRING", "REWRAPPED", "RewrapReport", "describe_keys",
           "destroy", "in_use_counts", "live_counts", "maintain", "rewrap", "rotate"]
