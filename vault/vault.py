"""The vault: one object that wires settings to the catalog, store, keys and custody ledger.

Everything the CLI, the API and the agents do to footage goes through :class:`Vault`, so each
operation hashes, encrypts, stores, catalogs and records custody the same way.

Write path (``put_stream``):
    1. a fresh data key and object id; the plaintext is hashed and encrypted in one streaming
       pass while it is uploaded (no plaintext on disk, memory bounded by one segment);
    2. the stored size is checked against the size the format predicts;
    3. the catalog row and its ``ingested`` custody event commit in one transaction. If that
       fails, the uploaded object is deleted, so a failed put leaves nothing behind. If the
       process dies between 1 and 3, the orphan holds only ciphertext whose key was never
       written anywhere: unreadable. ``sweep_leftovers()`` removes such orphans and the
       store's unfinished uploads (temp files, multipart uploads) once old enough; every
       ingest agent runs it at start and hourly (docs/ingest-faults.md).

Why this module is long: every write and read of footage goes through this one object, and
the write path, read path and orphan sweep share its invariants; the rules it applies live in
their own modules (``storage/retention_rule.py``, ``storage/hold_rule.py``, the ledger).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import mimetypes
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from .storage import crypto
from .actors import Actor, Purpose
from .capture import Capture
from .storage.catalog import (
    MediaKind,
    Recording,
    RecordingOrigin,
    Site,
    Source,
    SourceKind,
    new_id,
    utcnow,
)
from .ledger.checkpoint import LedgerSigner, load_or_create_signing_key
from .ledger.signing_keys import LedgerKeys
from ._home import prepare_home
from .config import Settings
from .ledger.catalog_binding import RECORD_KEY, catalog_record
from .ledger.custody import Action, CustodyLedger, establish_origin, resolve_origin
from .storage.db import (
    head_revision,
    make_engine,
    read_sessions,
    schema_revision,
    session_factory,
    upgrade,
)
from .storage.paging import after_clause
from .storage.seekable import DecryptedReader
from .errors import (
    ConfigError,
    HashMismatch,
    InvalidInput,
    LedgerError,
    NotFound,
    Shredded,
    StorageError,
    VaultError,
)
from .storage.key_providers import open_key_provider
from .storage.keys import KeyProvider, WrappedKey
from .storage.objectstore import ObjectStore, S3Store, open_store
from .plaintext import private_partial
from .storage.hold_rule import active_holds
from .storage.retention_rule import RetentionPolicy, future_capture

Clock = Callable[[], dt.datetime]
log = logging.getLogger("evidence_vault")
# Storage-side expiry runs this many days after the longest retention period (defence in depth).
LIFECYCLE_MARGIN_DAYS = 7
#: The most recordings one page of :meth:`Vault.recordings` returns.
MAX_PAGE = 1000


@dataclass(frozen=True)
class Leftovers:
    """What :meth:`Vault.sweep_leftovers` removed: orphan object keys and unfinished uploads."""

    orphans: list[str]
    orphan_bytes: int
    partials: list[str]
    partial_bytes: int


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range, as in HTTP ``Range: bytes=A-B``."""

    start: int
    end: int | None = None  # None: to the end

    @classmethod
    def parse(cls, text: str) -> ByteRange:
        """Parse ``A-B``, ``A-`` or ``-N`` (the last N bytes is resolved later as start=-N).

        Raises InvalidInput on anything else.
        """
        text = text.strip()
        first, sep, last = text.partition("-")
        try:
            if not sep:
                raise ValueError
            if first == "":
                n = int(last)
                if n <= 0:
                    raise ValueError
                return cls(start=-n)
            start = int(first)
            end = int(last) if last else None
        except ValueError:
            raise InvalidInput(f"bad byte range {text!r}: use A-B, A- or -N (inclusive offsets)") from None
        if start < 0 or (end is not None and end < start):
            raise InvalidInput(f"bad byte range {text!r}: start must be <= end")
        return cls(start=start, end=end)

    def resolve(self, size: int) -> tuple[int, int]:
        """Absolute inclusive (start, end) within an object of ``size`` bytes.

        Raises InvalidInput when the range is not satisfiable (HTTP 416).
        """
        if self.start < 0:
            if size == 0:
                raise InvalidInput("range not satisfiable: the recording is empty")
            return max(0, size + self.start), size - 1
        if self.start >= size:
            raise InvalidInput(f"range not satisfiable: start {self.start} is beyond the size {size}")
        end = size - 1 if self.end is None else min(self.end, size - 1)
        return self.start, end


class Vault:
    """The evidence vault on one set of settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        store: ObjectStore,
        keys: KeyProvider,
        signer: LedgerSigner | LedgerKeys,
        clock: Clock = utcnow,
        origin: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        self.store = store
        self.keys = keys
        self.clock = clock
        self.ledger = CustodyLedger(
            self.sessions,
            signer,
            origin=origin or resolve_origin(engine, settings.ledger_origin),
            checkpoint_every=settings.checkpoint_every,
            checkpoint_interval=dt.timedelta(seconds=settings.checkpoint_interval_s),
            clock=clock,
            witness_path=settings.witness_file,
            verify_workers=settings.ledger_verify_workers,
        )

    @property
    def signer(self) -> LedgerSigner:
        """The custody signing key in effect (certificates are signed with it)."""
        return self.ledger.signer

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def init(cls, settings: Settings, *, clock: Clock = utcnow) -> Vault:
        """Create (or bring up to date) a vault: data directory, keyring, signing key, schema.

        Safe to run again on an existing vault. Raises StorageError if the store is unreachable.
        """
        home = settings.home_dir
        prepare_home(home)  # a clear ConfigError, not a traceback, for an unwritable home
        keys = open_key_provider(settings, create=True)  # the first KEK, where there is none
        close_keys = getattr(keys, "close", None)
        if close_keys is not None:
            close_keys()
        engine = make_engine(settings.catalog_url)
        upgrade(engine)
        # Each new vault names its own log (C2SP: an origin is unique); older ones keep theirs.
        origin = establish_origin(engine, settings.ledger_origin)
        load_or_create_signing_key(settings.ledger_key_file, origin)
        vault = cls.open(settings, clock=clock, engine=engine)
        vault.store.check()
        vault._storage_defence_in_depth()
        return vault

    def _storage_defence_in_depth(self) -> None:
        """On an object-lock bucket, ask the store to expire objects a week after the longest
        retention period: a backstop if the reaper stops running. Held objects carry an S3 legal
        hold, which lifecycle expiry cannot remove. Without object lock nothing could protect held
        footage from such a rule, so none is set and the reaper alone decides.
        """
        if isinstance(self.store, S3Store) and self.store.object_lock:
            policy = RetentionPolicy.from_settings(self.settings)
            longest = max([policy.default_days, *policy.overrides.values()])
            self.store.set_expiry_rule(longest + LIFECYCLE_MARGIN_DAYS, prefix="recordings/")

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock = utcnow, engine: Engine | None = None) -> Vault:
        """Open an initialised vault. Raises NotFound when ``init`` has not been run."""
        if settings.database_url is None and not (settings.home_dir / "catalog.sqlite3").exists():
            raise NotFound(f"no vault at {settings.home_dir}: run 'evidence-vault init' first")
        keys = open_key_provider(settings)
        engine = engine or make_engine(settings.catalog_url)
        # After a software update the catalog may be a schema behind: say what to run, rather
        # than fail later on a missing table in the middle of someone's work.
        found, expected = schema_revision(engine), head_revision()
        if found != expected:
            raise ConfigError(
                f"the catalog's schema is at revision {found or 'none'}, this version of the "
                f"vault needs {expected}: run 'evidence-vault init' once to upgrade it (it "
                "migrates in place and keeps everything)")
        origin = resolve_origin(engine, settings.ledger_origin)
        signer = LedgerKeys.load(settings.ledger_key_file, origin)
        return cls(
            settings,
            engine=engine,
            store=open_store(settings),
            keys=keys,
            signer=signer,
            clock=clock,
            origin=origin,
        )

    def close(self) -> None:
        """Sign the custody events still waiting for a checkpoint, then release the catalog
        and the key provider's session (an HSM token's, where it keeps one)."""
        self.ledger.close()
        self.engine.dispose()
        close_keys = getattr(self.keys, "close", None)
        if close_keys is not None:
            close_keys()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sources -----------------------------------------------------------------------------

    def ensure_source(
        self, session: Session, source_id: str, *, kind: SourceKind, site: str | None = None
    ) -> Source:
        """The source row for ``source_id``, created on first use.

        A new source belongs to its site's organisation where the site is registered
        (``vault.casework.sites``), else to the vault's own (``settings.organisation``, may be unset).
        """
        if not source_id or len(source_id) > 128:
            raise InvalidInput("a source id is required (at most 128 characters)")
        source = session.get(Source, source_id)
        if source is None:
            registered = session.get(Site, site) if site else None
            source = Source(
                id=source_id, kind=kind, site=site, created_at=self.clock(),
                organisation=registered.organisation if registered else self.settings.organisation,
            )
            session.add(source)
            session.flush()
        return source

    # -- write -------------------------------------------------------------------------------

    def retention_date(self, kind: SourceKind, captured_start: dt.datetime) -> dt.datetime:
        """When footage captured at ``captured_start`` falls due for deletion."""
        return RetentionPolicy.from_settings(self.settings).due(kind, captured_start)

    def put_file(self, path: Path, capture: Capture, *, actor: Actor) -> Recording:
        """Store one file (see :meth:`put_stream`), filling in what the file says where
        ``capture`` is silent (:meth:`Capture.for_file`). Raises NotFound if the file is
        missing."""
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"no such file: {path}")
        with path.open("rb") as f:
            return self.put_stream(f, capture.for_file(path), actor=actor)

    def put_stream(self, stream: BinaryIO, capture: Capture, *, actor: Actor) -> Recording:
        """Hash, encrypt and store a stream; catalog it and log its custody event (``ingested``
        unless ``capture.action`` says otherwise) in one transaction.

        The same bytes from the same source twice give one recording: the second call returns
        the first recording (and removes the duplicate upload). Derived copies are recorded
        flattened to their originals in ``recording_origins`` for the access policy.

        A capture time after the receipt (beyond ``capture_clock_tolerance_s``) is a clock
        error, not a reason to refuse evidence: the recording is stored, ``clock_flagged``,
        the reason goes into ``media_info["clock"]`` and the custody event, and retention
        counts from the receipt, so footage stamped in the future cannot outlive the policy
        (issue #11 finding 7). The stated capture times are kept as given.
        Raises StorageError if the store fails, InvalidInput on a capture without a capture
        time or with one without a timezone, NotFound for an unknown parent.
        """
        capture, retention_start = self._clock_checked(capture)
        recording_id = new_id()
        object_key = f"recordings/{recording_id[:2]}/{recording_id}"
        dek = crypto.new_data_key()
        reader = crypto.EncryptingReader(
            stream, dek=dek, object_id=recording_id, segment_size=self.settings.segment_size
        )
        try:
            info = self.store.put(object_key, reader)  # type: ignore[arg-type]
        finally:
            reader.close()  # frees its buffers and hashing thread, also when the upload failed
        try:
            expected = crypto.ciphertext_size(reader.plaintext_size, self.settings.segment_size)
            if info.size != expected:
                raise StorageError(
                    f"stored object {object_key} is {info.size} bytes, expected {expected}"
                )
            wrapped = self.keys.wrap(dek, context=recording_id)
            with self.sessions.begin() as session:
                duplicate = self._live_copy(session, capture.source_id, reader.plaintext_sha256)
                if duplicate is not None:
                    self.store.delete(object_key)
                    return duplicate
                recording = Recording(
                    id=recording_id,
                    size=reader.plaintext_size,
                    sha256=reader.plaintext_sha256,
                    object_key=object_key,
                    stored_size=info.size,
                    enc_format=crypto.FORMAT,
                    wrapped_dek=wrapped.blob,
                    key_id=wrapped.key_id,
                )
                self._catalog(session, recording, capture, retention_start)
                self._log_ingest(session, recording, capture, actor)
        except BaseException:
            # Nothing half-written: the ciphertext goes if its catalog row did not commit.
            try:
                if not self._cataloged(recording_id):
                    self.store.delete(object_key)
            except VaultError:
                pass
            raise
        self._legal_hold_if_held(recording)
        self.checkpoint_if_due()
        return recording

    def _clock_checked(self, capture: Capture) -> tuple[Capture, dt.datetime]:
        # The capture with its receipt time settled and any future capture flagged, and the
        # time retention counts from.
        captured_at = capture.captured_at
        if captured_at is None:
            raise InvalidInput("a capture time is required (e.g. 2026-11-25T14:32:00Z)")
        if captured_at.tzinfo is None:
            raise InvalidInput("capture time must include a timezone (e.g. 2026-11-25T14:32:00Z)")
        now = self.clock()
        received_at = capture.received_at or now
        capture = replace(capture, received_at=received_at)
        # A receipt time is the agent's word too: never later than the vault's own clock.
        future = future_capture(
            captured_at, capture.captured_end, received_at=min(received_at, now),
            tolerance=dt.timedelta(seconds=self.settings.capture_clock_tolerance_s),
        )
        if future is None:
            return capture, captured_at
        media_info = capture.media_info or {}
        clock = dict(media_info.get("clock") or {})  # type: ignore[call-overload]
        reasons = [r for r in (clock.get("reason"), future["reason"]) if r]
        clock.update(flagged=True, future_capture=future, reason="; ".join(reasons))
        flagged = replace(
            capture,
            clock_flagged=True,
            media_info={**media_info, "clock": clock},
            details={**(capture.details or {}), "future_capture": future},
        )
        return flagged, min(captured_at, received_at, now)

    @staticmethod
    def _live_copy(session: Session, source_id: str, sha256: str) -> Recording | None:
        return session.scalars(
            select(Recording).where(
                Recording.source_id == source_id,
                Recording.sha256 == sha256.lower(),
                Recording.deleted_at.is_(None),
            )
        ).first()

    def _catalog(
        self, session: Session, recording: Recording, capture: Capture,
        retention_start: dt.datetime,
    ) -> None:
        # Fills in the row from the capture, adds it and its origins to the session.
        assert capture.captured_at is not None and capture.received_at is not None  # settled
        source = self.ensure_source(
            session, capture.source_id, kind=capture.source_kind, site=capture.site
        )
        if capture.parent_id is not None:
            parent = session.get(Recording, capture.parent_id)
            if parent is None:
                raise NotFound(f"no recording with id {capture.parent_id} (the parent)")
            # Derived copies follow their parent for retention.
            recording.retain_until = parent.retain_until
        else:
            recording.retain_until = self.retention_date(source.kind, retention_start)
        recording.source_id = capture.source_id
        recording.media_kind = capture.media_kind or MediaKind.OTHER
        recording.captured_start = capture.captured_at
        recording.captured_end = capture.captured_end
        recording.received_at = capture.received_at
        recording.device_time = capture.device_time
        recording.clock_offset_ms = capture.clock_offset_ms
        recording.clock_flagged = capture.clock_flagged
        recording.original_name = capture.original_name
        recording.content_type = mimetypes.guess_type(capture.original_name or "")[0]
        recording.parent_id = capture.parent_id
        recording.provenance = capture.provenance
        recording.media_info = capture.media_info
        session.add(recording)
        session.flush()
        if capture.parent_id is not None or capture.derived_from:
            self._record_origins(
                session, recording.id, capture.derived_from or [capture.parent_id]
            )

    def _log_ingest(
        self, session: Session, recording: Recording, capture: Capture, actor: Actor
    ) -> None:
        assert capture.captured_at is not None  # settled by _clock_checked
        self.ledger.append(
            session,
            capture.action,
            actor=actor,
            object_ids=[recording.id],
            hashes={recording.id: recording.sha256},
            details={
                "source": capture.source_id,
                "size": recording.size,
                "original_name": capture.original_name,
                "captured_start": capture.captured_at.isoformat(),
                **({"parent_id": capture.parent_id} if capture.parent_id else {}),
                **(capture.details or {}),
                # What the row says, bound to the ledger (vault.ledger.catalog_binding).
                RECORD_KEY: catalog_record(recording),
            },
        )

    def _record_origins(
        self, session: Session, recording_id: str, made_from: Sequence[str | None]
    ) -> None:
        # Flattened to originals, so the policy asks one question of one table however deep
        # the chain (a redacted copy of a clip of two segments names the two segments).
        origins: set[str] = set()
        for rid in dict.fromkeys(r for r in made_from if r):
            if session.get(Recording, rid) is None:
                raise NotFound(f"no recording with id {rid} (a source of this copy)")
            theirs = session.scalars(
                select(RecordingOrigin.origin_id).where(RecordingOrigin.recording_id == rid)
            ).all()
            origins.update(theirs or [rid])
        session.add_all(RecordingOrigin(recording_id=recording_id, origin_id=o) for o in origins)
        session.flush()

    def origins(self, recording_id: str) -> list[str]:
        """The original recordings a derived copy was made from ([] for an original)."""
        with self.sessions() as session:
            return list(session.scalars(
                select(RecordingOrigin.origin_id)
                .where(RecordingOrigin.recording_id == recording_id)
                .order_by(RecordingOrigin.origin_id)
            ))

    def _legal_hold_if_held(self, recording: Recording) -> None:
        # Footage arriving inside an already-held window (a SAR for "camera 3, 14:00-15:00",
        # an agent that was offline) is protected in storage too, not only by the reaper.
        if not self.store.legal_holds:
            return  # nothing to place (the local store; S3 without object lock)
        with self.sessions() as session:
            row = session.get(Recording, recording.id)
            held = row is not None and bool(active_holds(session, row))
        if held:
            self.store.set_legal_hold(recording.object_key, True)

    def checkpoint_if_due(self) -> None:
        """Sign a custody checkpoint if one is due, after the caller's commit.

        A ledger that fails its pre-signing checks is logged loudly but does not undo the
        action that just committed; ``custody verify`` reports it with the bad event.
        """
        try:
            self.ledger.maybe_checkpoint()
        except LedgerError as error:
            log.error("custody checkpoint refused: %s (run 'evidence-vault custody verify')", error)

    def find_by_hash(self, source_id: str, sha256: str) -> Recording | None:
        """The live recording of these bytes from this source, if the vault holds one."""
        with self.sessions() as session:
            return self._live_copy(session, source_id, sha256)

    def orphans(self, *, older_than: dt.timedelta = dt.timedelta(hours=1)) -> list[str]:
        """Stored recording objects with no catalog row: uploads whose process died before the
        catalog commit. Their data key was never written anywhere, so they are unreadable.

        Objects younger than ``older_than`` are left alone: a put still in flight has no
        catalog row yet either.
        """
        with self.sessions() as session:
            known = set(session.scalars(select(Recording.object_key)))
        found = []
        for key in self.store.list("recordings/"):
            if key in known:
                continue
            try:
                info = self.store.stat(key)
            except NotFound:
                continue
            if info.last_modified is not None and self.clock() - info.last_modified < older_than:
                continue
            found.append(key)
        return found

    def remove_orphans(self, *, older_than: dt.timedelta = dt.timedelta(hours=1)) -> list[str]:
        """Delete the objects :meth:`orphans` lists; returns their keys."""
        removed = []
        for key in self.orphans(older_than=older_than):
            self.store.delete(key)
            removed.append(key)
        return removed

    def sweep_leftovers(self, *, older_than: dt.timedelta = dt.timedelta(hours=6)) -> Leftovers:
        """Remove what killed uploads left in the store: orphan objects (:meth:`orphans`) and
        unfinished uploads (local temp files, S3 multipart uploads), all older than
        ``older_than``. Returns what was removed; logs it. Raises StorageError.
        """
        now = self.clock()
        partials = self.store.partials(older_than, now=now)
        for partial in partials:
            self.store.remove_partial(partial)
        orphan_bytes = 0
        orphans = []
        for key in self.orphans(older_than=older_than):
            with contextlib.suppress(NotFound):
                orphan_bytes += self.store.stat(key).size
            self.store.delete(key)
            orphans.append(key)
        swept = Leftovers(
            orphans=orphans,
            orphan_bytes=orphan_bytes,
            partials=[p.key for p in partials],
            partial_bytes=sum(p.size or 0 for p in partials),
        )
        if orphans or partials:
            log.warning(
                "swept %d orphan object(s) (%d bytes) and %d unfinished upload(s) (%d bytes) "
                "left by killed uploads, all older than %s",
                len(orphans),
                swept.orphan_bytes,
                len(partials),
                swept.partial_bytes,
                older_than,
            )
        return swept

    def _cataloged(self, recording_id: str) -> bool:
        with self.sessions() as session:
            return session.get(Recording, recording_id) is not None

    # -- read --------------------------------------------------------------------------------

    def recording(self, recording_id: str) -> Recording:
        """The catalog row of one recording. Raises NotFound."""
        with self.sessions() as session:
            recording = session.get(Recording, recording_id)
        if recording is None:
            raise NotFound(f"no recording with id {recording_id}")
        return recording

    def recordings(
        self,
        *,
        source_id: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        include_deleted: bool = False,
        limit: int = MAX_PAGE,
        after: str | None = None,
    ) -> list[Recording]:
        """Recordings, oldest capture first, filtered by source and capture window: at most
        ``limit`` (1 to :data:`MAX_PAGE`) of them, after the row the cursor ``after`` names
        (:func:`vault.storage.paging.page_cursor` of the previous page's last recording).

        The trusted, unfiltered service path: it takes no principal, checks no permission,
        applies no scope and logs no custody event, so it returns footage whoever it belongs
        to. Only the vault's own workers (code that runs as the service, not for a person),
        benchmarks and tests may call it; a person's request goes through :func:`vault.casework.search.search_recordings` with
        their scope (``tests/vault/test_recordings_paging.py`` holds that nothing under
        ``api/``, ``redaction/``, ``vault/access/`` or ``vault/casework/`` calls it).

        Pages are by keyset, so a deep page costs what the first does and rows added between
        pages are neither repeated nor skipped; reads go through
        :func:`vault.storage.db.read_sessions` (on SQLite: a snapshot, no write lock).
        Raises InvalidInput for a limit out of range or a cursor :func:`page_cursor` did not
        make.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit is 1-{MAX_PAGE}; page on with after=page_cursor(last)")
        query = select(Recording).order_by(Recording.captured_start, Recording.id).limit(limit)
        if after:
            query = query.where(after_clause(after))
        if source_id:
            query = query.where(Recording.source_id == source_id)
        if since:
            query = query.where(Recording.captured_start >= since)
        if until:
            query = query.where(Recording.captured_start < until)
        if not include_deleted:
            query = query.where(Recording.deleted_at.is_(None))
        with read_sessions(self.engine)() as session:
            return list(session.scalars(query))

    @staticmethod
    def ensure_not_deleted(recording: Recording) -> None:
        """Raise Shredded, saying when and why, if retention destroyed this recording's key."""
        if recording.wrapped_dek is None or recording.deleted_at is not None:
            when = recording.deleted_at.isoformat() if recording.deleted_at else "an unknown date"
            raise Shredded(
                f"recording {recording.id} was deleted on {when}"
                f" ({recording.deletion_reason or 'retention'}); its key was destroyed"
            )

    def _data_key(self, recording: Recording) -> bytes:
        self.ensure_not_deleted(recording)
        assert recording.wrapped_dek is not None
        return self.keys.unwrap(
            WrappedKey(key_id=recording.key_id, blob=recording.wrapped_dek), context=recording.id
        )

    def read(
        self,
        recording_id: str,
        *,
        actor: Actor,
        purpose: Purpose,
        byte_range: ByteRange | None = None,
        action: Action | str = Action.VIEWED,
        details: dict[str, object] | None = None,
    ) -> tuple[Recording, tuple[int, int], Iterator[bytes]]:
        """Decrypt a recording (or an inclusive byte range of it), logging the access first.

        Returns the recording, the resolved (start, end) and an iterator of plaintext chunks.
        The access is logged before any byte is released. Raises NotFound, Shredded,
        InvalidInput (unsatisfiable range), CiphertextError.
        """
        recording = self.recording(recording_id)
        dek = self._data_key(recording)
        if recording.size == 0:
            start, end = 0, -1
        else:
            start, end = (byte_range or ByteRange(0)).resolve(recording.size)
        with self.sessions.begin() as session:
            self.ledger.append(
                session,
                action,
                actor=actor,
                purpose=purpose,
                object_ids=[recording.id],
                hashes={recording.id: recording.sha256},
                details={**({"range": [start, end]} if byte_range else {}), **(details or {})},
            )
        self.checkpoint_if_due()
        chunks = crypto.decrypt_range(
            lambda offset, length: self.store.read_at(recording.object_key, offset, length),
            recording.stored_size,
            dek=dek,
            object_id=recording.id,
            start=start,
            end=None if recording.size == 0 else end,
        )
        return recording, (start, end), chunks

    def open_reader(
        self,
        recording_id: str,
        *,
        actor: Actor,
        purpose: Purpose,
        action: Action | str = Action.VIEWED,
        details: dict[str, object] | None = None,
    ) -> tuple[Recording, DecryptedReader]:
        """The recording's plaintext as a seekable file that decrypts only what is read
        (:class:`vault.storage.seekable.DecryptedReader`), logging the access first.

        For a reader that needs parts of a recording (a demuxer seeking to keyframes), where
        :meth:`read` would decrypt it all. Logs one event for the whole recording, as
        :meth:`read` does, before the reader exists, however many reads follow. Decides
        nothing: callers check policy first. Raises NotFound, Shredded, CiphertextError.
        """
        recording = self.recording(recording_id)
        dek = self._data_key(recording)
        with self.sessions.begin() as session:
            self.ledger.append(
                session, action, actor=actor, purpose=purpose, object_ids=[recording.id],
                hashes={recording.id: recording.sha256}, details=dict(details or {}),
            )
        self.checkpoint_if_due()
        reader = DecryptedReader(
            lambda offset, length: self.store.read_at(recording.object_key, offset, length),
            recording.stored_size, dek=dek, object_id=recording.id,
        )
        return recording, reader

    def export_file(
        self,
        recording_id: str,
        destination: Path,
        *,
        actor: Actor,
        purpose: Purpose,
        byte_range: ByteRange | None = None,
        action: Action | str = Action.DOWNLOADED,
    ) -> Recording:
        """Write a decrypted recording (or range) to ``destination``, verifying the whole-file hash.

        Writes to a temporary file beside ``destination`` and renames it only once every byte
        has decrypted (and, for a whole file, the SHA-256 matches the catalog), so a failure
        never leaves a partial file. The file is created 0600: only the vault's user can read
        the footage (issue #11 finding 11). Raises HashMismatch, CiphertextError, NotFound,
        Shredded, InvalidInput (no such folder).
        """
        import hashlib

        destination = Path(destination)
        recording, (start, end), chunks = self.read(
            recording_id, actor=actor, purpose=purpose, byte_range=byte_range, action=action
        )
        # Plaintext footage: created 0600 at open, renamed into place (vault/plaintext.py).
        tmp, out = private_partial(destination)
        digest = hashlib.sha256()
        try:
            with out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if byte_range is None and digest.hexdigest() != recording.sha256:
                raise HashMismatch(
                    f"recording {recording.id}: decrypted SHA-256 {digest.hexdigest()} "
                    f"differs from the catalog's {recording.sha256}"
                )
            os.replace(tmp, destination)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return recording

    def verify_recording(self, recording_id: str) -> Recording:
        """Read back and decrypt the stored copy; check its SHA-256 against the catalog.

        This is the check an agent makes before it deletes its source copy. It is not a
        footage access (nothing is released), so it is not a custody event.
        Raises HashMismatch, CiphertextError, StorageError.
        """
        import hashlib
        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        recording = self.recording(recording_id)
        dek = self._data_key(recording)
        digest = hashlib.sha256()
        # SHA-256 is the slow step: it runs on a helper thread (hashlib releases the GIL)
        # while the next segments are read and decrypted, a few chunks behind at most.
        behind: deque[Future[None]] = deque()
        with ThreadPoolExecutor(1, thread_name_prefix="verify-sha256") as hasher:
            # Even an empty recording has one authenticated (empty, final) segment.
            for chunk in crypto.decrypt_range(
                lambda offset, length: self.store.read_at(recording.object_key, offset, length),
                recording.stored_size,
                dek=dek,
                object_id=recording.id,
            ):
                behind.append(hasher.submit(digest.update, chunk))
                if len(behind) > 4:
                    behind.popleft().result()
        # Leaving the executor waited for the rest of the hashing.
        if digest.hexdigest() != recording.sha256:
            raise HashMismatch(f"recording {recording.id}: stored copy does not match its hash")
        return recording
