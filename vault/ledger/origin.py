"""The log origin of a vault's custody ledger: derived once at ``init``, stored in the catalog
(``vault_meta.ledger_origin``), and named by every checkpoint (docs/ledger.md section 5)."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError as SQLAlchemyIntegrityError
from sqlalchemy.orm import Session, sessionmaker

from vault.errors import ConfigError, InvalidInput, LedgerError
from vault.storage.catalog import Setting

from .checkpoint import LEGACY_ORIGIN, Checkpoint, new_origin
from .tables import EVENTS

#: vault_meta key of the log origin derived at ``init``.
ORIGIN_META_KEY = "ledger_origin"
_E = EVENTS.c


def stored_origin(
    sessions: sessionmaker[Session] | Engine, configured: str | None = None
) -> str | None:
    """The log origin stored in the catalog at ``init`` (None before that).

    Raises ConfigError when ``configured`` (``Settings.ledger_origin``) names another: the
    checkpoints already signed carry the stored one.
    """
    if isinstance(sessions, Engine):
        sessions = sessionmaker(sessions)
    with sessions() as session:
        row = session.get(Setting, ORIGIN_META_KEY)
    if row is None:
        return None
    if configured and configured != row.value:
        raise ConfigError(
            f"ledger_origin is set to {configured!r} but this vault's custody log is"
            f" {row.value!r}; unset it (the origin is fixed at init)"
        )
    return row.value


def resolve_origin(sessions: sessionmaker[Session] | Engine, configured: str | None = None) -> str:
    """The origin to open this vault's ledger with: the stored one, else ``configured``, else
    :data:`~vault.ledger.checkpoint.LEGACY_ORIGIN` (a vault from before origins were stored)."""
    return stored_origin(sessions, configured) or configured or LEGACY_ORIGIN


def establish_origin(
    sessions: sessionmaker[Session] | Engine, configured: str | None = None
) -> str:
    """Store this vault's log origin once (at ``init``) and return it.

    A new vault (no custody event yet) gets ``configured`` or a fresh unique
    :func:`~vault.ledger.checkpoint.new_origin`; an existing one keeps the origin its checkpoints
    already carry (``configured`` or the legacy default). Idempotent; raises ConfigError as
    :func:`stored_origin` does, InvalidInput for an origin a checkpoint cannot carry.
    """
    if isinstance(sessions, Engine):
        sessions = sessionmaker(sessions)
    existing = stored_origin(sessions, configured)
    if existing is not None:
        return existing
    try:
        with sessions.begin() as session:
            used = session.execute(select(_E.seq).limit(1)).first() is not None
            origin = configured or (LEGACY_ORIGIN if used else new_origin())
            try:
                Checkpoint(origin, 0, bytes(32))
            except LedgerError as exc:
                raise InvalidInput(f"ledger origin {origin!r}: {exc}") from None
            if session.get(Setting, ORIGIN_META_KEY) is None:
                session.add(Setting(key=ORIGIN_META_KEY, value=origin))
    except SQLAlchemyIntegrityError:
        pass  # another process stored its origin first: that one stands
    return stored_origin(sessions) or origin


__all__ = ["ORIGIN_META_KEY", "establish_origin", "resolve_origin", "stored_origin"]
