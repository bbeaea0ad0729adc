"""Request and response models of the HTTP API, apart from the catalog tables.

Public models never carry key material (wrapped keys, key ids of shredded items), object-store
keys or token hashes. Times are ISO-8601; one without a UTC offset is read as UK local time
(Europe/London, :mod:`vault.localtime`) and the response says so in ``X-Assumed-Time-Zone``.
Responses give UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
)

from vault.actors import Role
from vault.errors import InvalidInput
from vault.localtime import parse_instant
from vault.storage.catalog import Case, CaseStatus, Hold, HoldKind, MediaKind, Recording
from vault.casework.retention import clock_note
from vault.casework.shares import Share, share_state

from ._localtime import note_assumed


def _sane_instant(value: dt.datetime) -> dt.datetime:
    # Far dates overflow when converted to UTC or when retention adds days to them.
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"year must be between {MIN_YEAR} and {MAX_YEAR}")
    return value.astimezone(dt.UTC)


MIN_YEAR, MAX_YEAR = 1970, 2999


def _uk_if_no_offset(value: Any, info: ValidationInfo) -> Any:
    # Issue #11 finding 26: a person types the time on the wall; read it as UK time (one parser
    # for API, CLI and web: vault.localtime) and let the response say which zone was used.
    field = info.field_name or "time"
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.isoformat()
    if not isinstance(value, str):
        return value  # aware datetimes pass; anything else gets pydantic's own error
    try:
        parsed = parse_instant(value, field=field)
    except InvalidInput as error:
        raise ValueError(str(error)) from None
    except OverflowError:  # year 1 or 9999 in UK time has no UTC instant
        raise ValueError(f"year must be between {MIN_YEAR} and {MAX_YEAR}") from None
    # FastAPI validates a query parameter without naming it: then the note names the value.
    note = parsed.note(info.field_name) if info.field_name else parsed.note("")
    if note is not None:
        note_assumed(note.strip())
    return parsed.utc


Instant = Annotated[AwareDatetime, BeforeValidator(_uk_if_no_offset), AfterValidator(_sane_instant)]
"""An ISO-8601 time in 1970-2999, normalised to UTC; without an offset, UK local time (a time
the clocks skip or repeat is refused, naming the offsets to choose from)."""

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
Id = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _RowView(BaseModel):
    """A public view of a table row, built from it (issue #14 item 3): each field is declared
    once, here, and its value read from the row's attribute of the same name; ``of`` passes
    only what is computed (a state, a unit change, a related row). Only the declared fields are
    read, so a column that is not declared (key material, object-store keys) never reaches a
    response, and a column renamed under a declared field fails validation instead of vanishing
    (tests/api/test_schemas_from_models.py)."""

    @classmethod
    def _from_row(cls, row: object, **computed: object) -> Self:
        values = {name: getattr(row, name) for name in cls.model_fields
                  if name not in computed and hasattr(row, name)}
        return cls.model_validate({**values, **computed})


class ErrorBody(BaseModel):
    """Every error response."""

    error: str = Field(description="Kind of error, e.g. 'forbidden', 'not_found'.")
    detail: str = Field(description="What went wrong, for people.")


class ValidationErrorBody(BaseModel):
    """A request that does not match the route's schema (FastAPI's own 422 body): one item per
    field at fault, each with its location, message and type."""

    detail: list[dict[str, Any]] = Field(description="Each field at fault: loc, msg, type.")


# --- recordings ------------------------------------------------------------------------------


class RecordingPublic(_RowView):
    """A recording's catalog entry (no key material)."""

    id: str
    source_id: str
    media_kind: MediaKind
    captured_start: dt.datetime
    captured_end: dt.datetime | None
    received_at: dt.datetime = Field(description="When the ingest agent received it.")
    device_time: dt.datetime | None = Field(
        description="The device's own clock at hand-over, where it stated one.")
    clock_offset_s: float | None = Field(
        description="device_time minus received_at, seconds (positive: the device ran fast).")
    clock_flagged: bool = Field(
        description="The device clock was off by more than the agent's bound, or the capture "
                    "ends after it was received: check the capture times.")
    clock_note: str | None = Field(
        default=None,
        description="Why clock_flagged is set, for people. A capture time after receipt is "
                    "stored as given and flagged, and retention counts from receipt.")
    original_name: str | None
    content_type: str | None
    size: int = Field(description="Plaintext size in bytes.")
    sha256: str = Field(description="SHA-256 of the plaintext, as ingested.")
    retain_until: dt.datetime = Field(
        description="The retention rule's date: deleted after this unless held.")
    held: bool = Field(
        default=False,
        description="Something keeps it past that date now: a hold, a subject access request's "
                    "window, or an open case it is evidence on.")
    kept_until: dt.datetime | None = Field(
        default=None,
        description="When it will be deleted as things stand: retain_until, or null while held "
                    "(kept until every hold is released and every case it is on is closed).")
    deleted_at: dt.datetime | None
    deletion_reason: str | None
    parent_id: str | None = Field(description="The recording this copy was derived from.")

    @classmethod
    def of(cls, r: Recording, *, held: bool = False) -> RecordingPublic:
        """The public view of a catalog row (``held``: see :func:`vault.casework.holds.held_ids`)."""
        return cls._from_row(
            r, held=held, kept_until=None if held or r.deleted_at else r.retain_until,
            clock_offset_s=None if r.clock_offset_ms is None else r.clock_offset_ms / 1000,
            clock_note=clock_note(r))


class RecordingList(BaseModel):
    """One page of search results, oldest capture first."""

    items: list[RecordingPublic]
    limit: int
    offset: int
    #: Pass as ``after`` for the next page; None when this page was the last.
    next_after: str | None = None


# --- cases and holds -------------------------------------------------------------------------


class CaseCreate(_Model):
    """A new case; the caller's organisation owns it and the caller becomes a member."""

    reference: Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
    title: Annotated[str, StringConstraints(max_length=512)] | None = None
    crime_number: Annotated[str, StringConstraints(max_length=128)] | None = None
    members: list[Annotated[str, StringConstraints(max_length=128)]] = Field(
        default_factory=list, max_length=100, description="Other users (names) working the case."
    )


class CasePublic(_RowView):
    """A case."""

    id: str
    reference: str
    title: str | None
    crime_number: str | None
    status: CaseStatus
    organisation: str | None
    created_by: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, case: Case, organisation: str | None) -> CasePublic:
        """The public view of a case row (``organisation``: its owner's name)."""
        return cls._from_row(case, organisation=organisation)


class CaseDetail(CasePublic):
    """A case with its recordings and members."""

    recording_ids: list[str]
    members: list[str]


class CaseLink(_Model):
    """A recording to mark as evidence for the case."""

    recording_id: Id


class CaseMemberAdd(_Model):
    """A user (by name) to add to the case; they must belong to the case's organisation."""

    user: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class HoldCreate(_Model):
    """A hold on exactly one of: a recording, a case, or a source and capture window."""

    kind: HoldKind
    reason: LongText
    reference: ShortText | None = None
    recording_id: Id | None = None
    case_id: Id | None = None
    source_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    window_start: Instant | None = None
    window_end: Instant | None = None


class CaseClose(_Model):
    """Why the case is closed or reopened (recorded in the custody log)."""

    reason: LongText


class HoldRelease(_Model):
    """Why the hold is released (footage past its date goes on the next retention run)."""

    reason: LongText


class HoldPublic(_RowView):
    """A hold."""

    id: str
    kind: HoldKind
    reason: str
    reference: str | None
    recording_id: str | None
    case_id: str | None
    source_id: str | None
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    created_by: str | None
    created_at: dt.datetime
    released_at: dt.datetime | None
    released_by: str | None
    release_reason: str | None

    @classmethod
    def of(cls, h: Hold) -> HoldPublic:
        """The public view of a hold row."""
        return cls._from_row(h)


# --- shares ----------------------------------------------------------------------------------


class ShareCreate(_Model):
    """Share recordings with a named recipient."""

    recipient: ShortText = Field(description="The person receiving access, e.g. 'DC 1234 Smith'.")
    recipient_org: ShortText = Field(description="Their organisation, e.g. 'Metropolitan Police'.")
    purpose: LongText
    lawful_basis: ShortText
    reference: ShortText | None = Field(default=None, description="Case, crime or SAR reference.")
    recording_ids: list[Id] = Field(min_length=1, max_length=500)
    expires_at: Instant | None = Field(
        default=None, description="When access ends (default: in 14 days; at most 366 days)."
    )
    allow_download: bool = Field(default=False, description="False: view (stream) only.")
    max_downloads: int | None = Field(default=None, ge=1, le=1000)


class SharePublic(_RowView):
    """A share (never its token)."""

    id: str
    recipient: str
    recipient_org: str
    purpose: str
    lawful_basis: str
    reference: str | None
    recording_ids: list[str]
    allow_download: bool
    max_downloads: int | None
    downloads: int
    expires_at: dt.datetime
    created_by: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    revoked_by: str | None
    state: str = Field(description="active, revoked, expired or exhausted.")

    @classmethod
    def of(cls, share: Share, recording_ids: list[str], now: dt.datetime) -> SharePublic:
        """The public view of a share row (``recording_ids``: what it shares)."""
        return cls._from_row(share, recording_ids=recording_ids, state=share_state(share, now))


class ShareCreated(BaseModel):
    """A new share: the token and link are shown only now; send them to the recipient."""

    share: SharePublic
    token: str
    url: str = Field(description="The recipient's link (relative to this server).")


class ShareRevoke(_Model):
    """Why the share is revoked."""

    reason: LongText


class SharedRecording(BaseModel):
    """A recording as a share's recipient sees it."""

    id: str
    media_kind: MediaKind
    captured_start: dt.datetime
    captured_end: dt.datetime | None
    size: int
    sha256: str
    content_type: str | None
    stream_url: str
    download_url: str | None


class ShareRecipientView(BaseModel):
    """What a share grants, for its recipient."""

    recipient: str
    recipient_org: str
    purpose: str
    reference: str | None
    expires_at: dt.datetime
    allow_download: bool
    downloads_left: int | None
    recordings: list[SharedRecording]


# --- custody ---------------------------------------------------------------------------------


class CustodyEventPublic(BaseModel):
    """A ledger entry: position, hashes and the event (who, what, when, why, to whom)."""

    seq: int
    prev_hash: str
    entry_hash: str
    leaf_hash: str
    event: dict[str, Any]


class CustodyEventList(BaseModel):
    """Events, oldest first."""

    items: list[CustodyEventPublic]
    limit: int
    offset: int


class VerifyResult(BaseModel):
    """The outcome of recomputing the whole ledger."""

    ok: bool
    events: int
    checkpoints: int
    root_hash: str
    latest_checkpoint: int | None
    witnessed: int | None
    trusted: int | None
    unsigned: int = Field(
        default=0,
        description="Events after the latest signed checkpoint: not yet under any signature "
                    "(sensitive events are signed at once, the rest within a minute).")
    recordings: int | None = Field(
        default=None, description="Catalog rows compared with the ledger's record of them.")
    summary: str


class InclusionProof(BaseModel):
    """Proof that one event is in the log (RFC 6962), checkable offline with the verifier key."""

    format: str
    origin: str
    entry: str
    leaf_index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str]
    checkpoint: str
    verifier_key: str


class KeyHandover(BaseModel):
    """One rotation of the custody signing key: the event naming both keys, proven against
    the checkpoint that ends with it, which both keys signed."""

    old_key: str
    new_key: str
    proof: InclusionProof


class FixityRequest(BaseModel):
    """Which recordings to prove intact: named ones, or a random sample of those held."""

    model_config = ConfigDict(extra="forbid")

    recording_ids: list[Id] = Field(default_factory=list, max_length=100)
    sample: int | None = Field(default=None, ge=1, le=100)


class FixityFailurePublic(BaseModel):
    """A recording that did not prove intact: corrupt, missing or unreadable, and why."""

    recording_id: str
    outcome: str
    reason: str


class FixityResult(BaseModel):
    """What a fixity check found; each batch is a ``fixity_checked`` custody event."""

    checked: int
    ok: int
    bytes_checked: int
    failures: list[FixityFailurePublic]
    custody_events: list[int]
    passed: bool
    summary: str


class CheckpointPublic(BaseModel):
    """The latest signed checkpoint (C2SP tlog-checkpoint) and the key that verifies it."""

    origin: str
    size: int
    checkpoint: str
    verifier_key: str
    key_handovers: list[KeyHandover] = Field(
        default_factory=list,
        description="Every rotation of the signing key, oldest first: a holder of an earlier "
        "verifier key follows them to the current one.",
    )


# --- users and health ------------------------------------------------------------------------


class UserPublic(BaseModel):
    """The calling user."""

    name: str
    role: Role
    organisation: str
    sites: list[str]


class Health(BaseModel):
    """Liveness."""

    status: str


class Ready(BaseModel):
    """Readiness: each dependency's state, and how the job queue stands."""

    status: str
    checks: dict[str, str]
    queue: dict[str, Any] | None = Field(
        default=None,
        description="Jobs queued and running, the oldest queued job's age (oldest_queued_s) and "
        "the workers whose heartbeat is fresh (live_workers).")


__all__ = [
    "UUID_PATTERN",
    "CaseClose",
    "CaseCreate",
    "CaseDetail",
    "CaseLink",
    "CaseMemberAdd",
    "CasePublic",
    "CheckpointPublic",
    "CustodyEventList",
    "CustodyEventPublic",
    "ErrorBody",
    "Health",
    "HoldCreate",
    "HoldPublic",
    "HoldRelease",
    "Id",
    "InclusionProof",
    "Instant",
    "Ready",
    "RecordingList",
    "RecordingPublic",
    "ShareCreate",
    "ShareCreated",
    "SharePublic",
    "ShareRecipientView",
    "ShareRevoke",
    "SharedRecording",
    "UserPublic",
    "VerifyResult",
]
