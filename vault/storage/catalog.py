"""The catalog: what the vault holds, in SQLAlchemy 2.x tables.

SQLite by default, PostgreSQL in production; the schema is created and upgraded only by the
Alembic migrations in ``vault/storage/migrations`` (see :func:`vault.storage.db.upgrade`). Custody events live in
``vault/ledger/custody.py`` beside the ledger that writes them; they share this module's ``Base``.

Times are stored as timezone-aware UTC. The catalog never holds plaintext or an unwrapped key:
a recording row carries only the *wrapped* data key and the id of the key that wraps it.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A datetime that is always timezone-aware UTC going in and coming out.

    SQLite drops the offset; without this a naive value would read back as local time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; use an aware UTC datetime")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def new_id() -> str:
    """A new random identifier (UUID4, hex with dashes)."""
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON}


class SourceKind(str, enum.Enum):
    """Where footage comes from; retention is configured per kind."""

    CCTV = "cctv"  # fixed camera, via RTSP or an NVR
    NVR_EXPORT = "nvr_export"  # clips exported by an NVR over HTTP
    STAFF_DEVICE = "staff_device"  # body-worn / handheld device, docked and offloaded
    UPLOAD = "upload"  # handed in or uploaded by hand
    DERIVED = "derived"  # produced by the vault: redacted copy, incident clip


class MediaKind(str, enum.Enum):
    VIDEO = "video"
    AUDIO = "audio"
    OTHER = "other"


class HoldKind(str, enum.Enum):
    CASE = "case"
    POLICE = "police"
    SAR = "sar"
    LEGAL = "legal"


class Source(Base):
    """A camera, NVR channel, staff device or upload route."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[SourceKind] = mapped_column(Enum(SourceKind, native_enum=False, length=32))
    site: Mapped[str | None] = mapped_column(String(256))
    name: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Whose footage this source records; NULL: the vault's own organisation (settings.organisation),
    # or, in a vault that names none, every organisation's (a single-organisation vault).
    organisation: Mapped[str | None] = mapped_column(String(256), index=True)

    recordings: Mapped[list[Recording]] = relationship(back_populates="source")


class Site(Base):
    """A site (estate, building) and the organisation that runs its cameras.

    Registering a site (``evidence-vault admin site add``) gives every source at it that
    organisation, so officers of another organisation who happen to be assigned a site of the
    same name never see it.
    """

    __tablename__ = "sites"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    organisation: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


#: Index options restricting it to live recordings, where the database supports that.
_LIVE: dict[str, Any] = {
    "sqlite_where": text("deleted_at IS NULL"),
    "postgresql_where": text("deleted_at IS NULL"),
}


class Recording(Base):
    """One stored file: an ingested original or a derived copy (redaction, clip, export)."""

    __tablename__ = "recordings"
    __table_args__ = (
        Index("ix_recordings_source_start", "source_id", "captured_start"),
        # The live set (issue #15): after a year of retention most rows are deleted, so the
        # indexes searches and the reaper walk hold live rows only (partial indexes).
        Index("ix_recordings_live_start", "captured_start", "id", **_LIVE),
        Index("ix_recordings_live_source_start", "source_id", "captured_start", "id", **_LIVE),
        # A window search's lower bound: where a recording's capture ends (its start when the
        # end is unknown), the expression search_recordings filters on.
        Index("ix_recordings_live_source_end", "source_id",
              text("coalesce(captured_end, captured_start)"), **_LIVE),
        Index("ix_recordings_live_retain_until", "retain_until", **_LIVE),
        # Deleted rows whose ciphertext is still to be removed (the reaper's step 2).
        Index("ix_recordings_purge_pending", "deleted_at",
              sqlite_where=text("deleted_at IS NOT NULL AND purged_at IS NULL"),
              postgresql_where=text("deleted_at IS NOT NULL AND purged_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    media_kind: Mapped[MediaKind] = mapped_column(Enum(MediaKind, native_enum=False, length=16))
    captured_start: Mapped[dt.datetime]
    captured_end: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The device's own clock at hand-over, as it stated it, and how far it was from
    # received_at (device minus agent, ms); flagged beyond the agent's bound. Capture times
    # stay as the device wrote them: a reviewer corrects them with a stated reason.
    device_time: Mapped[dt.datetime | None]
    clock_offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    clock_flagged: Mapped[bool] = mapped_column(default=False, index=True)
    original_name: Mapped[str | None] = mapped_column(String(512))
    content_type: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)

    # Where and how the ciphertext is stored (see vault/storage/crypto.py for the format).
    object_key: Mapped[str] = mapped_column(String(512), unique=True)
    stored_size: Mapped[int] = mapped_column(BigInteger)
    enc_format: Mapped[str] = mapped_column(String(32))
    # The wrapped data key; NULL once crypto-shredded by retention.
    wrapped_dek: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(128))

    retain_until: Mapped[dt.datetime]
    deleted_at: Mapped[dt.datetime | None]
    deletion_reason: Mapped[str | None] = mapped_column(Text)
    # Set once every stored version of the ciphertext is gone (the key went at deleted_at).
    purged_at: Mapped[dt.datetime | None]

    # Provenance: derived copies name their parent and how they were made.
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("recordings.id"), index=True)
    provenance: Mapped[dict[str, Any] | None]
    media_info: Mapped[dict[str, Any] | None]

    source: Mapped[Source] = relationship(back_populates="recordings")
    holds: Mapped[list[Hold]] = relationship(back_populates="recording")

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class RecordingOrigin(Base):
    """One original recording a derived recording (clip, redacted copy, package) was made from.

    Flattened through derived parents: a redacted copy of a clip names the clip's originals.
    A derived recording is visible only to those who may see every origin (vault/casework/policy.py).
    """

    __tablename__ = "recording_origins"

    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), primary_key=True)
    origin_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), primary_key=True,
                                           index=True)


class CaseStatus(str, enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class Case(Base):
    """An ASB or incident case: the need-to-know boundary for officers."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    reference: Mapped[str] = mapped_column(String(128), unique=True)
    crime_number: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[CaseStatus] = mapped_column(
        Enum(CaseStatus, native_enum=False, length=16), default=CaseStatus.OPEN
    )
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CaseRecording(Base):
    """A recording linked to a case."""

    __tablename__ = "case_recordings"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    # Indexed alone too: retention asks, per recording, which cases it is on.
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), primary_key=True,
                                              index=True)
    linked_by: Mapped[str | None] = mapped_column(String(128))
    linked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Hold(Base):
    """A reason to keep footage past its retention date, until released.

    A hold names either one recording, or a source and a capture window (a SAR or police
    request for "camera 3, 14:00-15:00" holds whatever matches, including footage that arrives
    later from a delayed agent).
    """

    __tablename__ = "holds"
    __table_args__ = (
        # Retention asks, per recording, whether an active window hold covers it.
        Index("ix_holds_active_source", "source_id", "window_start",
              sqlite_where=text("released_at IS NULL"),
              postgresql_where=text("released_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[HoldKind] = mapped_column(Enum(HoldKind, native_enum=False, length=16))
    reason: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(128))
    case_id: Mapped[str | None] = mapped_column(ForeignKey("cases.id"), index=True)
    recording_id: Mapped[str | None] = mapped_column(ForeignKey("recordings.id"), index=True)
    source_id: Mapped[str | None] = mapped_column(ForeignKey("sources.id"))
    window_start: Mapped[dt.datetime | None]
    window_end: Mapped[dt.datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    released_at: Mapped[dt.datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(128))
    release_reason: Mapped[str | None] = mapped_column(Text)
    # The organisation whose hold it is (the case's owner, or the organisation of who placed it).
    organisation: Mapped[str | None] = mapped_column(String(256), index=True)

    recording: Mapped[Recording | None] = relationship(back_populates="holds")

    @property
    def active(self) -> bool:
        return self.released_at is None


class Setting(Base):
    """Small key/value facts about this vault instance (e.g. its id, schema notes)."""

    __tablename__ = "vault_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


__all__ = [
    "Base",
    "Case",
    "CaseRecording",
    "CaseStatus",
    "Hold",
    "HoldKind",
    "MediaKind",
    "Recording",
    "RecordingOrigin",
    "Setting",
    "Site",
    "Source",
    "SourceKind",
    "UTCDateTime",
    "new_id",
    "utcnow",
]

