"""The chain-of-custody ledger: custody entry format v1, hash-chained, the leaves of an
RFC 6962 Merkle tree, with C2SP tlog-checkpoint v1 signed notes (:mod:`vault.ledger.merkle`,
:mod:`vault.ledger.checkpoint`).

Every action on footage is one :class:`CustodyEvent`. Appending event number ``seq`` stores its
*entry*, canonical JSON (RFC 8785 JCS, :mod:`vault.ledger.rfc8785`: sorted keys, no insignificant whitespace, UTF-8, integers
only, no floats)::

    {"event":{...the event's fields...},"prev":"<hex SHA-256 of entry seq-1>","seq":<seq>,"v":1}

with ``prev`` = 64 zeros for entry 0. Then

- ``entry_hash`` = SHA-256(entry), which the next entry's ``prev`` names (the hash chain);
- ``leaf_hash``  = SHA-256(0x00 || entry), leaf ``seq`` of the Merkle tree (RFC 6962);
- ``entry_mac``  = HMAC-SHA256(key derived from the ledger signing key, entry), so that someone
  who can write the database but does not hold the signing key cannot append a well-formed
  forged event, nor rewrite the unsigned tail and recompute the chain;
- a signed checkpoint of the tree, stored in ``custody_checkpoints`` and, when a witness path
  is set, also written to a file outside the database (``Settings.ledger_witness_dir``: another
  disk or host), so that deleting events *and* checkpoints (a rollback) is still caught. A
  checkpoint is signed every ``checkpoint_every`` events, once ``checkpoint_interval`` has passed
  since the last while events wait (a timer, so a quiet ledger's tail is signed too), at once
  after a sensitive event (:data:`SENSITIVE_ACTIONS`: denials, releases, shares, exports,
  deletions, key and user changes), and when the ledger is closed. Only the events after the
  latest signature (``VerifyReport.unsigned``) can be removed without :meth:`CustodyLedger.verify`
  noticing, and only for that long.

:meth:`CustodyLedger.verify` recomputes all of it. A recipient of an export needs only an
inclusion proof (:meth:`CustodyLedger.inclusion_proof`) and the verifier key to check one event
offline (:meth:`CustodyLedger.verify_inclusion_proof`).

Key rotation (:meth:`CustodyLedger.rotate_key`, key files in :mod:`vault.ledger.signing_keys`): a
``key_rotated`` event with ``details.key == "ledger"`` names the old and new verifier keys. It
is MACed with the old key, the checkpoint that ends with it is signed by both keys, and every
later event and checkpoint uses the new key. Verification follows the chain from key to key;
an event written with a retired key after its hand-over fails its MAC check.

Why this module is long: one concept, the ledger class (about 950 lines with this text): it
keeps the appenders' lock, the head and Merkle-frontier hints, the checkpoint timer and the
witness file together, since every append and checkpoint reads and moves them under that lock. What can stand alone is in its own
module: the entry format (:mod:`vault.ledger.entries`), storage (:mod:`vault.ledger.tables`),
verifying (:mod:`vault.ledger.verify`), proofs (:mod:`vault.ledger.proofs`) and the origin
(:mod:`vault.ledger.origin`).

Concurrency: appends serialise on a lock taken before the head is read (PostgreSQL: an advisory
transaction lock; SQLite: ``BEGIN IMMEDIATE``, which :func:`vault.storage.db.make_engine` issues), and the
primary key on ``seq`` refuses a second event at the same position, so the chain never forks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from . import proofs as _proofs
from . import stored_tree
from . import verify as _verify
from vault.actors import Actor, Purpose
from vault.storage.catalog import new_id, utcnow
from .catalog_binding import CatalogReport
from .tables import (
    CHECKPOINTS,
    EVENTS,
    OBJECTS,
    CustodyCheckpointRow,
    CustodyEventObjectRow,
    CustodyEventRow,
    binds_catalog,
    pack_entry,
    unpack_entry,
)
from .checkpoint import (
    Checkpoint,
    LedgerSigner,
    open_checkpoint,
    peek_checkpoint,
)
from vault.storage.durable import replace_file
from vault.errors import InvalidInput, LedgerError, NotFound
from .entries import (
    _MAX_NAME,
    GENESIS_PREV,
    SENSITIVE_ACTIONS,
    Action,
    CustodyEvent,
    EventRecord,
    _text,
    action_value,
    entry_bytes,
    parse_action,
    parse_entry,
)
from .events import check_event
from .origin import ORIGIN_META_KEY, establish_origin, resolve_origin, stored_origin
from .verify import (
    LEDGER_KEY,
    READ_BATCH,
    VERIFY_COLUMNS,
    ChainChecker,
    Epochs,
    IndexCursor,
    VerifyReport,
    _frontier_parse,
    _frontier_text,
    _mac,
    _rotation,
    _short,
)
from .signing_keys import LedgerKeys, mac_key
from .merkle import (
    CompactRange,
    leaf_hash,
)

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key shared by every process appending to this catalog.
PG_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"evidence-vault custody ledger").digest()[:8], "big", signed=True
)

_READ_BATCH = READ_BATCH
_HEAD_KEY = "vault.custody.head"  # session.info: (transaction, next seq, its prev hash)
_HOOK_KEY = "vault.custody.after_commit"  # session.info: this ledger checkpoints after commits

Clock = Callable[[], dt.datetime]


# --- tables (vault.ledger.tables) -----------------------------------------------------------

_EVENTS = EVENTS
_OBJECTS = OBJECTS
_E = _EVENTS.c
_O = _OBJECTS.c
_C = CHECKPOINTS.c
_VERIFY_COLUMNS = VERIFY_COLUMNS
_Epochs = Epochs
_ChainChecker = ChainChecker
_IndexCursor = IndexCursor
_action_value = action_value


class CustodyLedger:
    """The append-only, tamper-evident custody log of one vault.

    ``sessions`` is the catalog's session factory (or an engine). Checkpoints are signed by
    ``signer`` for the log ``origin`` every ``checkpoint_every`` events, at once after a
    sensitive event (:data:`SENSITIVE_ACTIONS`), and, with ``checkpoint_interval``, no later than
    that after an event (a timer thread signs the tail of a ledger gone quiet); each is also
    written to ``witness_path`` when given. ``clock`` supplies event and checkpoint times.
    :meth:`close` signs whatever is left and stops the timer.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session] | Engine,
        signer: LedgerSigner | LedgerKeys,
        *,
        origin: str,
        checkpoint_every: int = 256,
        checkpoint_interval: dt.timedelta | None = None,
        clock: Clock = utcnow,
        witness_path: Path | str | None = None,
        verify_workers: int | None = None,
    ) -> None:
        if isinstance(sessions, Engine):
            sessions = sessionmaker(sessions, expire_on_commit=False)
        bind = sessions.kw.get("bind")
        if not isinstance(bind, Engine):
            raise InvalidInput("the custody ledger needs a sessionmaker bound to an engine")
        if checkpoint_every < 1:
            raise InvalidInput("checkpoint_every must be at least 1")
        try:
            Checkpoint(origin, 0, bytes(32))  # the origin must fit a checkpoint's first line
        except LedgerError as exc:
            raise InvalidInput(str(exc)) from None
        self._sessions = sessions
        self._engine = bind
        # With the key files (LedgerKeys) the ledger can rotate its key and follow a rotation
        # made by another process; with a bare signer it has one key for life.
        self._keys = signer if isinstance(signer, LedgerKeys) else None
        held = signer.signer if isinstance(signer, LedgerKeys) else signer
        self._macs: dict[str, bytes] = dict(self._keys.macs) if self._keys else {}
        self.origin = origin
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self._clock = clock
        self.witness_path = Path(witness_path) if witness_path is not None else None
        #: Processes for a verify's per-event checks (None: one per CPU; 1: in this process).
        self.verify_workers = verify_workers
        self._use(held)
        self._postgres = bind.dialect.name == "postgresql"
        self._reader: Engine | None = None
        # Hints (never trusted for correctness) that spare a locked round trip per append.
        self._seen_size = 0
        self._tree_hint: tuple[int, str, CompactRange] | None = None
        self._seen_checkpoint: tuple[int, dt.datetime | None] | None = None
        # The newest key_rotated event's seq when this process last confirmed its key
        # (-1: not looked yet; None: there was none).
        self._rotations_seen: int | None = -1
        # A sensitive event was appended: sign at the next chance, whatever the count or time.
        self._urgent = False
        self._timer: threading.Timer | None = None
        self._timer_pid = 0
        self._timer_lock = threading.Lock()
        self._closed = False

    def _use(self, signer: LedgerSigner) -> None:
        self._signer = signer
        self._vkey_text = signer.verifier_key()
        self._mac_key = mac_key(signer)
        self._macs[self._vkey_text] = self._mac_key

    # -- writing ------------------------------------------------------------------------------

    @property
    def signer(self) -> LedgerSigner:
        """The key in effect: it signs checkpoints and certificates and MACs new events."""
        return self._signer

    def verifier_key(self) -> str:
        """The C2SP verifier key that opens this ledger's current checkpoints."""
        return self._vkey_text

    def event(
        self,
        action: Action | str,
        *,
        actor: str | Actor,
        actor_role: str | None = None,
        actor_org: str | None = None,
        object_ids: Iterable[str] = (),
        hashes: Mapping[str, str] | None = None,
        purpose: str | Purpose | None = None,
        lawful_basis: str | None = None,
        reference: str | None = None,
        recipient: str | None = None,
        recipient_org: str | None = None,
        client_addr: str | None = None,
        details: Mapping[str, Any] | None = None,
        ts: dt.datetime | None = None,
        event_id: str | None = None,
    ) -> CustodyEvent:
        """Build an event, taking who from an :class:`Actor` and why from a :class:`Purpose`.

        Explicit arguments win over the Actor's and Purpose's fields; ``ts`` defaults to the
        ledger's clock. Raises InvalidInput.
        """
        if isinstance(actor, Actor):
            role = actor.role
            actor_role = actor_role or (role.value if isinstance(role, enum.Enum) else role)
            actor_org = actor_org or actor.organisation
            client_addr = client_addr or actor.client_addr
            actor = actor.user
        if isinstance(purpose, Purpose):
            lawful_basis = lawful_basis or purpose.lawful_basis
            reference = reference or purpose.reference
            purpose = purpose.purpose
        return CustodyEvent(
            action=action,
            actor=actor,
            ts=ts if ts is not None else self._clock(),
            event_id=event_id or new_id(),
            actor_role=actor_role,
            actor_org=actor_org,
            object_ids=tuple(object_ids),
            hashes=hashes or {},
            purpose=purpose,
            lawful_basis=lawful_basis,
            reference=reference,
            recipient=recipient,
            recipient_org=recipient_org,
            client_addr=client_addr,
            details=details or {},
        )

    def append(self, session: Session, action: Action | str, **fields: Any) -> EventRecord:
        """Append one event inside the caller's transaction (the caller commits).

        Takes the same keywords as :meth:`event`. Holds the ledger lock until the caller's
        transaction ends, so append late and commit soon; call :meth:`maybe_checkpoint` after
        the commit. Raises InvalidInput.
        """
        return self.append_many(session, [self.event(action, **fields)])[0]

    def append_many(self, session: Session, events: Iterable[CustodyEvent]) -> list[EventRecord]:
        """Append events, in order, inside the caller's transaction. Returns their records.

        Raises InvalidInput for an event that would hand the ledger to another signing key:
        only :meth:`rotate_key` writes those.
        """
        batch = list(events)
        for seq, ev in enumerate(batch):
            if isinstance(ev, CustodyEvent) and _rotation(ev, seq) is not None:
                raise InvalidInput("the ledger's signing key is rotated by rotate_key only")
        return self._append(session, batch)

    def _append(self, session: Session, batch: list[CustodyEvent]) -> list[EventRecord]:
        if not batch:
            return []
        for ev in batch:
            # The vocabulary is checked on the way in only: reading back never re-checks, so a
            # ledger holding a kind retired since still verifies.
            check_event(ev.action, ev.details)
        conn = session.connection()  # begins the transaction (BEGIN IMMEDIATE on SQLite)
        txn = session.get_nested_transaction() or session.get_transaction()
        cached = session.info.get(_HEAD_KEY)
        if cached is not None and cached[0] is txn:
            # This transaction already holds the lock and wrote the head itself.
            seq, prev = cached[1], cached[2]
        else:
            self._lock(session)
            self._follow_rotation(conn)
            head = conn.execute(
                select(_E.seq, _E.entry).order_by(_E.seq.desc()).limit(1)
            ).first()
            seq, prev = (
                (head.seq + 1, hashlib.sha256(unpack_entry(head.entry, head.seq)).hexdigest())
                if head
                else (0, GENESIS_PREV)
            )
        rows: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        records: list[EventRecord] = []
        leaves: list[bytes] = []
        first_prev = prev
        for ev in batch:
            if not isinstance(ev, CustodyEvent):
                raise InvalidInput("append_many takes CustodyEvent objects")
            entry = entry_bytes(seq, prev, ev)
            entry_hash = hashlib.sha256(entry).hexdigest()
            leaf = leaf_hash(entry)
            action = _action_value(ev.action)
            rows.append(
                {
                    "seq": seq,
                    "entry": pack_entry(entry),
                    "entry_mac": _mac(self._mac_key, entry),
                    "ts": ev.ts,
                    "action": action,
                    "actor": ev.actor,
                    "reference": ev.reference,
                    "binds_catalog": binds_catalog(action, entry),
                }
            )
            leaves.append(leaf)
            links.extend({"object_id": oid, "seq": seq} for oid in ev.object_ids)
            records.append(EventRecord(seq, prev, ev, entry, entry_hash, leaf.hex()))
            prev, seq = entry_hash, seq + 1
        conn.execute(insert(_EVENTS), rows)
        # The Merkle nodes these leaves complete, in the same transaction (vault.ledger.stored_tree).
        # The frontier this process left after its last append is reused when the head is the
        # one it wrote (same seq and entry hash: the same history), sparing a read per append.
        start, hint = rows[0]["seq"], self._tree_hint
        frontier = hint[2].copy() if hint and hint[:2] == (start, first_prev) else None
        tree = stored_tree.extend(conn, start, leaves, frontier)
        self._tree_hint = (seq, prev, tree.copy())
        if links:
            conn.execute(insert(_OBJECTS), links)
        # Keyed by the innermost transaction object: a rolled-back savepoint or a new
        # transaction never sees a head it did not write.
        session.info[_HEAD_KEY] = (txn, seq, prev)
        self._seen_size = max(self._seen_size, seq)
        if any(ev.action in SENSITIVE_ACTIONS for ev in batch):
            self._urgent = True
        # Whoever appended, and whether or not they remember to, the checkpoint that is due
        # follows the commit (and a rollback just finds nothing new to sign).
        if session.info.get(_HOOK_KEY) is not self:
            event.listen(session, "after_commit", self._after_commit)
            session.info[_HOOK_KEY] = self
        return records

    def _after_commit(self, session: Session) -> None:
        # The caller's commit has succeeded: nothing here may make it look as if it failed.
        # SQLAlchemy also calls this when a savepoint is released; the outer transaction then
        # still holds the appenders' lock, and a checkpoint taking it would wait for ever. (At
        # the outer commit the session still reports a transaction, but not a nested one.)
        if self._closed or session.in_nested_transaction():
            return
        try:
            self.maybe_checkpoint()
        except (LedgerError, InvalidInput) as exc:
            log.error("custody checkpoint refused: %s (seq=%s)", str(exc), getattr(exc, "seq", None))
        except (SQLAlchemyError, OSError) as exc:
            log.error("custody checkpoint failed: %s", str(exc))

    def record(self, action: Action | str, **fields: Any) -> EventRecord:
        """Append one event in a transaction of its own, commit, and checkpoint if one is due.

        A checkpoint that fails after the event committed is logged, not raised (the event is
        recorded; :meth:`verify` reports the problem). Raises InvalidInput.
        """
        with self._sessions.begin() as session:
            rec = self.append(session, action, **fields)
        self._checkpoint_after_commit()
        return rec

    def record_many(self, events: Iterable[CustodyEvent]) -> list[EventRecord]:
        """:meth:`append_many` in a transaction of its own, then a checkpoint if one is due."""
        with self._sessions.begin() as session:
            recs = self.append_many(session, events)
        self._checkpoint_after_commit()
        return recs

    def _checkpoint_after_commit(self) -> None:
        try:
            self.maybe_checkpoint()
        except LedgerError as exc:
            log.error("custody checkpoint refused: %s (seq=%s)", str(exc), exc.seq)

    def _follow_rotation(self, conn: Connection) -> None:
        """Under the ledger lock: make sure new events are written with the key the ledger
        says is in effect, taking it up if another process rotated; else LedgerError."""
        # Every append comes here: while no key_rotated event was added since the last look
        # (seqs only grow), the answer stands, and one indexed MAX says so.
        newest = conn.execute(
            select(func.max(_E.seq)).where(_E.action == Action.KEY_ROTATED.value)
        ).scalar()
        if newest == self._rotations_seen:
            return
        rotations = self._epochs(conn).rotations
        if not rotations or rotations[-1][2] == self._vkey_text:
            self._rotations_seen = newest
            return
        seq, _old, wanted = rotations[-1]
        adopted = self._keys.adopt(wanted) if self._keys is not None else None
        if self._keys is None or adopted is None:
            raise LedgerError(
                f"the custody signing key was rotated to {_short(wanted)} at event {seq}, and"
                " this process does not hold that key: give it the vault's current key files"
                " and restart it",
                seq=seq,
            )
        self._macs.update(self._keys.macs)
        self._use(adopted)
        self._rotations_seen = newest

    def _epochs(self, conn: Connection | Session) -> _Epochs:
        """The ledger's key rotations as stored (verify checks them against the chain)."""
        rotations: list[tuple[int, str, str]] = []
        rows = conn.execute(
            select(_E.seq, _E.entry)
            .where(_E.action == Action.KEY_ROTATED.value)
            .order_by(_E.seq)
        )
        for row in rows:
            try:
                ev = parse_entry(unpack_entry(row.entry, row.seq))[2]
            except LedgerError as exc:
                raise LedgerError(f"event {row.seq}: {exc}", seq=row.seq) from None
            rotation = _rotation(ev, row.seq)
            if rotation is not None:
                rotations.append((row.seq, *rotation))
        return _Epochs(tuple(rotations), self._vkey_text)

    def _open(self, note: str, epochs: _Epochs) -> Checkpoint:
        """Open a checkpoint note with the key(s) that must have signed one of its size."""
        checkpoint: Checkpoint | None = None
        for vkey in epochs.signers_of(peek_checkpoint(note).size):
            checkpoint = open_checkpoint(note, vkey, origin=self.origin)
        assert checkpoint is not None
        return checkpoint

    def _checker(self, epochs: _Epochs, **resume: Any) -> _ChainChecker:
        return _ChainChecker(self._macs, epochs.key_at(resume.get("seq", 0)), **resume)

    def _lock(self, session: Session) -> None:
        # SQLite: the engine opened this transaction with BEGIN IMMEDIATE, which already holds
        # the database's single write lock. PostgreSQL: one advisory lock for every appender,
        # released when the transaction ends; READ COMMITTED then shows us the latest head.
        if self._postgres:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})

    # -- checkpoints ---------------------------------------------------------------------------

    def maybe_checkpoint(self) -> str | None:
        """Sign a checkpoint if one is due; returns its signed note, or None.

        Due when ``checkpoint_every`` events were added since the latest checkpoint, when a
        sensitive event was added, or when ``checkpoint_interval`` has passed since it and any
        event was added; when events wait but none of these holds yet, a timer is set to sign
        them once the interval is up. Raises LedgerError when the ledger does not extend its
        latest or witnessed checkpoint.
        """
        if self._seen_checkpoint is not None and not self._due(
            self._seen_size, *self._seen_checkpoint
        ):
            self._arm_timer(self._seen_size, *self._seen_checkpoint)
            return None
        with self._sessions.begin() as session:
            self._lock(session)
            self._follow_rotation(session.connection())
            size = self._size(session)
            latest = session.execute(
                select(_C.size, _C.created_at).order_by(_C.size.desc()).limit(1)
            ).first()
            self._seen_size = max(self._seen_size, size)
            self._seen_checkpoint = (latest.size, latest.created_at) if latest else (0, None)
            # Under the lock every appender has committed or rolled back: what is urgent is
            # signed now or was never written.
            urgent, self._urgent = self._urgent, False
            if not urgent and not self._due(size, *self._seen_checkpoint):
                self._arm_timer(size, *self._seen_checkpoint)
                return None
            note = self._checkpoint_locked(session, size)
        self.witness(note)
        return note

    def _due(self, size: int, cp_size: int, cp_time: dt.datetime | None) -> bool:
        if size <= cp_size:
            return False
        if self._urgent or size - cp_size >= self.checkpoint_every:
            return True
        interval = self.checkpoint_interval
        if interval is None:
            return False
        return cp_time is None or self._clock() - cp_time >= interval

    def _arm_timer(self, size: int, cp_size: int, cp_time: dt.datetime | None) -> None:
        """Events wait for a signature: make sure one comes within ``checkpoint_interval``."""
        interval = self.checkpoint_interval
        if interval is None or size <= cp_size or self._closed:
            return
        if self._timer is not None and self._timer_pid == os.getpid():
            return
        with self._timer_lock:
            # A timer armed before this process was forked did not come with it.
            if (self._timer is not None and self._timer_pid == os.getpid()) or self._closed:
                return
            waited = self._clock() - cp_time if cp_time is not None else interval
            delay = min(max((interval - waited).total_seconds(), 0.0), interval.total_seconds())
            timer = threading.Timer(delay, self._on_timer)
            timer.daemon = True  # never keeps a process alive; close() signs the rest
            timer.name = "custody-checkpoint-timer"
            self._timer, self._timer_pid = timer, os.getpid()
            timer.start()

    def _on_timer(self) -> None:
        with self._timer_lock:
            self._timer = None
            if self._closed:
                return
        self.sign_pending()

    def sign_pending(self) -> str | None:
        """Sign a checkpoint now if any committed event is not yet covered by one.

        Returns the new note, or None when nothing waited. Failures are logged, not raised (as
        after a commit): :meth:`verify` reports them.
        """
        try:
            with self._snapshot() as conn:
                size = self._size(conn)
                signed = conn.execute(select(func.max(_C.size))).scalar() or 0
            if size <= signed:
                return None
            return self.checkpoint()
        except (LedgerError, InvalidInput) as exc:
            log.error("custody checkpoint refused: %s (seq=%s)", str(exc), getattr(exc, "seq", None))
        except (SQLAlchemyError, OSError) as exc:
            log.error("custody checkpoint failed: %s", str(exc))
        return None

    def close(self) -> None:
        """Stop the checkpoint timer and sign any events still waiting (idempotent)."""
        with self._timer_lock:
            if self._closed:
                return
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.sign_pending()
        if self._reader is not None:
            self._reader.dispose()

    def checkpoint(self, session: Session | None = None) -> str:
        """Sign a checkpoint of the whole ledger now (or return the latest if nothing is new).

        With ``session``, inside the caller's transaction: the caller commits, then passes the
        note to :meth:`witness`. Raises LedgerError as :meth:`maybe_checkpoint` does.
        """
        if session is not None:
            self._lock(session)
            self._follow_rotation(session.connection())
            return self._checkpoint_locked(session, self._size(session))
        with self._sessions.begin() as own:
            self._lock(own)
            self._follow_rotation(own.connection())
            note = self._checkpoint_locked(own, self._size(own))
        self.witness(note)
        return note

    def rotate_key(self, *, actor: str | Actor, reason: str) -> dict[str, Any]:
        """Hand the ledger to a new signing key; returns the hand-over as JSON-ready fields.

        In one transaction, under the ledger lock: every event since the latest checkpoint is
        checked and signed with the old key, then a ``key_rotated`` event naming both verifier
        keys is written (MACed with the old key), then a checkpoint ending with it is signed by
        *both* keys. Anyone holding the old verifier key can so follow the hand-over: the old
        key signed a tree whose last event names the new key. From then on the new key MACs
        events and signs checkpoints; the old signing key is destroyed, its MAC key kept
        (``<key>.retired``) so earlier events still verify.

        Raises InvalidInput when the ledger was opened without its key files, LedgerError when
        the ledger does not verify since its latest checkpoint (nothing is rotated then).
        """
        if self._keys is None:
            raise InvalidInput("rotating the ledger key needs the vault's key files")
        reason = _text("reason", reason, _MAX_NAME, required=True) or ""
        with self._sessions.begin() as session:
            self._lock(session)
            self._follow_rotation(session.connection())
            size = self._size(session)
            self._checkpoint_locked(session, size)
            old = self._signer
            new = self._keys.begin_rotation()  # durable before the ledger names it
            self._macs.update(self._keys.macs)
            (record,) = self._append(session, [self.event(
                Action.KEY_ROTATED,
                actor=actor,
                details={
                    "key": LEDGER_KEY,
                    "old_key": old.verifier_key(),
                    "new_key": new.verifier_key(),
                    "reason": reason,
                },
            )])
            note = self._checkpoint_locked(session, size + 1, signers=[old, new])
        adopted = self._keys.adopt(new.verifier_key())  # the successor replaces the key file
        assert adopted is not None
        self._use(adopted)
        self.witness(note)
        log.warning(
            "custody signing key rotated at event %d: %s -> %s",
            record.seq, _short(old.verifier_key()), _short(new.verifier_key()),
        )
        return {
            "seq": record.seq,
            "old_key": old.verifier_key(),
            "new_key": new.verifier_key(),
            "checkpoint": note,
        }

    def _size(self, session: Session | Connection) -> int:
        head = session.execute(select(_E.seq).order_by(_E.seq.desc()).limit(1)).scalar()
        return 0 if head is None else head + 1

    def _checkpoint_locked(
        self, session: Session, size: int, signers: Sequence[LedgerSigner] | None = None
    ) -> str:
        latest = session.execute(
            select(CustodyCheckpointRow).order_by(_C.size.desc()).limit(1)
        ).scalar_one_or_none()
        # 1. The ledger must not have shrunk below what was already signed (rollback).
        if latest is not None and latest.size > size:
            raise LedgerError(
                f"the ledger has {size} events but checkpoint {latest.size} was signed:"
                " rolled back",
                seq=size,
            )
        # 2. The database must still hold the checkpoint witnessed outside it.
        epochs = self._epochs(session)
        self._check_witness_in_db(session, epochs)
        if latest is not None and latest.size == size:
            return latest.note
        # 3. Resume the tree from the latest checkpoint, after checking it is ours and intact.
        if latest is None or latest.size == 0:  # nothing to resume from
            checker = self._checker(epochs)
        else:
            cp = self._open(latest.note, epochs)
            tree = _frontier_parse(latest.size, latest.frontier)
            if cp.size != latest.size or tree.root() != cp.root_hash:
                raise LedgerError(
                    f"checkpoint {latest.size} does not match its frontier", seq=latest.size
                )
            before = session.execute(
                select(_E.entry).where(_E.seq == latest.size - 1)
            ).scalar_one_or_none()
            if before is None:
                raise LedgerError(f"event {latest.size - 1} is missing", seq=latest.size - 1)
            checker = self._checker(
                epochs,
                seq=latest.size,
                prev=hashlib.sha256(unpack_entry(before, latest.size - 1)).hexdigest(),
                tree=tree,
            )
        # 4. Check every event the new checkpoint adds: never sign what this ledger did not write.
        rows = session.execute(
            select(*_VERIFY_COLUMNS).where(_E.seq >= checker.seq, _E.seq < size).order_by(_E.seq)
        )
        # Closed also on failure: an unfinished SQLite statement would pin this pooled
        # connection to an old snapshot, and its next write would fail as "locked".
        with contextlib.closing(rows):
            for row in rows:
                checker.check(row)
        if checker.seq != size:
            raise LedgerError(f"event {checker.seq} is missing", seq=checker.seq)
        # 5. Sign (the hand-over of a rotation by both keys) and store.
        checkpoint = Checkpoint(self.origin, size, checker.tree.root())
        first, *others = signers or [self._signer]
        note = first.sign(checkpoint)
        for other in others:
            note = other.cosign(note)
        now = self._clock()
        session.execute(
            insert(CustodyCheckpointRow),
            [
                {
                    "size": size,
                    "root_hash": checkpoint.root_hash.hex(),
                    "note": note,
                    "frontier": _frontier_text(checker.tree),
                    "created_at": now,
                }
            ],
        )
        self._seen_checkpoint = (size, now)
        return note

    def _check_witness_in_db(self, session: Session, epochs: _Epochs) -> None:
        witnessed = self._read_witness(epochs)
        if witnessed is None:
            return
        stored = session.execute(
            select(_C.root_hash).where(_C.size == witnessed.size)
        ).scalar_one_or_none()
        if stored != witnessed.root_hash.hex():
            raise LedgerError(
                f"the witnessed checkpoint {witnessed.size} is not in the ledger:"
                " rolled back or forked",
                seq=witnessed.size,
            )

    # -- the witness file ---------------------------------------------------------------------

    def witness(self, note: str) -> None:
        """Write a committed checkpoint to the witness file, unless a larger one is there.

        The file lives outside the database, so a rollback of events and checkpoints together
        still disagrees with it. Raises LedgerError when the note does not verify, or when the
        witness file holds a different checkpoint of the same size (a fork).
        """
        if self.witness_path is None:
            return
        with self._snapshot() as conn:
            epochs = self._epochs(conn)
        cp = self._open(note, epochs)
        path = self.witness_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path.with_name(path.name + ".lock")):
            current = self._read_witness(epochs)
            if current is not None and current.size >= cp.size:
                if current.size == cp.size and current.root_hash != cp.root_hash:
                    raise LedgerError(
                        f"two different checkpoints of size {cp.size}: the ledger forked"
                    )
                return
            replace_file(path, note.encode("utf-8"))

    def _witness_note(self) -> str | None:
        if self.witness_path is None or not self.witness_path.exists():
            return None
        return self.witness_path.read_text(encoding="utf-8")

    def _read_witness(self, epochs: _Epochs, note: str | None = None) -> Checkpoint | None:
        note = note if note is not None else self._witness_note()
        if note is None:
            return None
        try:
            return self._open(note, epochs)
        except LedgerError as exc:
            raise LedgerError(f"witness file {self.witness_path} does not verify: {exc}") from None

    # -- reading ------------------------------------------------------------------------------

    def events(
        self,
        *,
        object_id: str | None = None,
        object_ids: Collection[str] | None = None,
        actor: str | None = None,
        action: Action | str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        reference: str | None = None,
        where: ColumnElement[bool] | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[EventRecord]:
        """Events matching every filter given, oldest first (``since`` <= ts < ``until``), and
        ``where`` (a reader's boundary: :func:`vault.casework.policy.visible_events`).

        ``object_ids`` selects events naming any of those objects (none for an empty
        collection) in one statement, on the ``(object_id, seq)`` key of the event-object
        links: a case's history is one query, not one per item.

        Raises LedgerError when a stored entry does not parse (run :meth:`verify`).
        """
        query = select(_E.seq, _E.entry).order_by(_E.seq).limit(limit).offset(offset)
        if where is not None:
            query = query.where(where)
        if object_id is not None:
            query = query.where(_E.seq.in_(select(_O.seq).where(_O.object_id == object_id)))
        if object_ids is not None:
            query = query.where(_E.seq.in_(select(_O.seq).where(_O.object_id.in_(object_ids))))
        if actor is not None:
            query = query.where(_E.actor == actor)
        if action is not None:
            query = query.where(_E.action == _action_value(parse_action(action)))
        if since is not None:
            query = query.where(_E.ts >= since)
        if until is not None:
            query = query.where(_E.ts < until)
        if reference is not None:
            query = query.where(_E.reference == reference)
        with self._snapshot() as session:
            rows = list(session.execute(query))
        return [EventRecord.from_entry(unpack_entry(r.entry, r.seq)) for r in rows]

    def get(self, seq: int) -> EventRecord:
        """The event at ``seq``. Raises NotFound, or LedgerError when it does not parse."""
        with self._snapshot() as session:
            stored = session.execute(select(_E.entry).where(_E.seq == seq)).scalar_one_or_none()
        if stored is None:
            raise NotFound(f"no custody event {seq}")
        return EventRecord.from_entry(unpack_entry(stored, seq))

    def size(self) -> int:
        """The number of events in the ledger."""
        with self._snapshot() as session:
            return self._size(session)

    # -- verification (vault.ledger.verify) --------------------------------------------------

    def verify(
        self, *, trusted_checkpoint: str | None = None, catalog: bool = True
    ) -> VerifyReport:
        """:func:`vault.ledger.verify.verify_ledger`: recompute every entry, link, leaf, MAC,
        Merkle root and signed checkpoint, and (with ``catalog``) compare the catalog with the
        ledger. Raises LedgerError naming the first event that does not verify, CatalogMismatch."""
        return _verify.verify_ledger(
            self, trusted_checkpoint=trusted_checkpoint, catalog=catalog,
            workers=self.verify_workers,
        )

    def check_catalog(self) -> CatalogReport:
        """:func:`vault.ledger.verify.check_catalog`: every catalog row beside the ledger's
        record of it; mismatches listed, not raised."""
        return _verify.check_catalog(self)

    _check_roots = staticmethod(_verify.check_roots)

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        # One consistent read (of checkpoints and events, say) that does not block appenders.
        if self._postgres:
            with self._engine.connect() as conn:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    yield conn
            return
        with self._read_engine().connect() as conn, conn.begin():
            yield conn

    def _read_engine(self) -> Engine:
        # make_engine begins every SQLite transaction with BEGIN IMMEDIATE (the write lock);
        # a long verify must not hold it, so read through a twin engine that begins a deferred
        # transaction: in WAL mode that is a snapshot, and appenders carry on meanwhile.
        engine = self._engine
        if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
            return engine
        if self._reader is None:
            reader = create_engine(
                engine.url,
                poolclass=NullPool,
                connect_args={"timeout": 30, "isolation_level": None},
            )
            event.listen(reader, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
            self._reader = reader
        return self._reader

    # -- proofs (vault.ledger.proofs) ---------------------------------------------------------

    def inclusion_proof(self, seq: int, *, checkpoint_size: int | None = None) -> dict[str, Any]:
        """:func:`vault.ledger.proofs.inclusion_proof` of event ``seq``. Raises NotFound,
        LedgerError."""
        return _proofs.inclusion_proof(self, seq, checkpoint_size=checkpoint_size)

    def handovers(self) -> list[dict[str, Any]]:
        """:func:`vault.ledger.proofs.handovers`: every key rotation with its proof."""
        return _proofs.handovers(self)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """:func:`vault.ledger.proofs.consistency_proof`. Raises InvalidInput."""
        return _proofs.consistency_proof(self, old_size, new_size)

    verify_inclusion_proof = staticmethod(_proofs.verify_inclusion_proof)
    verify_consistency_proof = staticmethod(_proofs.verify_consistency_proof)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Serialises witness updates between processes (POSIX); elsewhere best effort.
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


__all__ = [
    "GENESIS_PREV",
    "ORIGIN_META_KEY",
    "SENSITIVE_ACTIONS",
    "Action",
    "CustodyCheckpointRow",
    "CustodyEvent",
    "CustodyEventObjectRow",
    "CustodyEventRow",
    "CustodyLedger",
    "EventRecord",
    "VerifyReport",
    "entry_bytes",
    "establish_origin",
    "parse_action",
    "parse_entry",
    "resolve_origin",
    "stored_origin",
]
