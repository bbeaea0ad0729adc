"""Custody entry format v1: events, their canonical JSON, and the entries that chain them
(docs/decisions/0003-ledger-format-v1.md).

An event (:class:`CustodyEvent`) is who did what to which objects, when, why and for whom; its
canonical form is RFC 8785 JSON (:mod:`vault.ledger.rfc8785`). Event number ``seq`` is kept as
the entry ``{"event":{...},"prev":"<hex SHA-256 of entry seq-1>","seq":<seq>,"v":1}``
(:func:`entry_bytes`), parsed back only from that exact text (:func:`parse_entry`). How an
entry is stored is :mod:`vault.ledger.tables`; how it is chained, MACed and signed is
:mod:`vault.ledger.custody`.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from vault.errors import InvalidInput, LedgerError
from vault.storage.catalog import new_id

from .merkle import leaf_hash
from .rfc8785 import DECODER, canonical_plain, json_copy

ENTRY_VERSION = 1
GENESIS_PREV = "0" * 64

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_EXTENSION_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_MAX_ID = 128
_MAX_NAME = 256


class Action(str, enum.Enum):
    """What was done. Extensions outside this list use a dotted name (``ingest.spool_gap``)."""

    INGESTED = "ingested"
    VIEWED = "viewed"
    STREAMED = "streamed"
    DOWNLOADED = "downloaded"
    SEARCHED = "searched"
    REDACTION_PLANNED = "redaction_planned"
    REDACTION_RENDERED = "redaction_rendered"
    HELD = "held"
    RELEASED = "released"
    SHARED = "shared"
    SHARE_ACCESSED = "share_accessed"
    SHARE_REVOKED = "share_revoked"
    EXPORTED = "exported"
    DELETED = "deleted"
    KEY_ROTATED = "key_rotated"
    USER_CHANGED = "user_changed"
    ACCESS_DENIED = "access_denied"
    GAP_RECORDED = "gap_recorded"
    CASE_CREATED = "case_created"
    CASE_LINKED = "case_linked"
    CASE_UNLINKED = "case_unlinked"
    FIXITY_CHECKED = "fixity_checked"


_ACTIONS = {a.value: a for a in Action}

#: Actions whose events are signed into a checkpoint as soon as they commit: the ones an insider
#: would most want to remove from the unsigned tail (a refusal, a released hold, footage handed
#: over or destroyed, a key or a user changed).
SENSITIVE_ACTIONS = frozenset(
    {
        Action.ACCESS_DENIED,
        Action.RELEASED,
        Action.SHARED,
        Action.SHARE_REVOKED,
        Action.EXPORTED,
        Action.DOWNLOADED,
        Action.DELETED,
        Action.KEY_ROTATED,
        Action.USER_CHANGED,
    }
)


def parse_action(value: Action | str) -> Action | str:
    """The Action named ``value``, or ``value`` itself when it is a dotted extension name.

    Raises InvalidInput for anything else, so a typo never becomes a new kind of event.
    """
    if isinstance(value, Action):
        return value
    known = _ACTIONS.get(value) if isinstance(value, str) else None
    if known is not None:
        return known
    if isinstance(value, str) and len(value) <= 64 and _EXTENSION_ACTION.fullmatch(value):
        return value
    raise InvalidInput(f"unknown custody action {value!r} (extensions are dotted: 'area.name')")


# --- strict parsing of stored entries --------------------------------------------------------


def _loads(data: bytes | str) -> Any:
    # Strict parse: UTF-8, no floats, no NaN/Infinity, only safe integers. Duplicate keys,
    # whitespace, key order and escapes are caught by the caller re-encoding and comparing bytes.
    try:
        text_ = data.decode("utf-8") if isinstance(data, bytes) else data
        return DECODER.decode(text_)
    except (UnicodeDecodeError, json.JSONDecodeError, InvalidInput, RecursionError) as exc:
        raise LedgerError(f"custody entry is not strict JSON: {exc}") from None



# --- events ----------------------------------------------------------------------------------


def _format_ts(ts: dt.datetime) -> str:
    # Always UTC, always microseconds: one text per instant.
    return ts.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _parse_ts(value: Any) -> dt.datetime:
    if not isinstance(value, str) or not _TS_RE.fullmatch(value):
        raise InvalidInput("event time must be YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("event time is not a valid date and time") from None


def _text(name: str, value: Any, limit: int | None = None, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidInput(f"custody event needs a {name}")
        return None  # one representation for "not given"
    if not isinstance(value, str):
        raise InvalidInput(f"custody event {name} must be text")
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"custody event {name} is longer than {limit} characters")
    return str.__str__(value)


_OPTIONAL_TEXT = tuple(
    (name, None if name == "purpose" else _MAX_NAME)
    for name in (
        "actor_role",
        "actor_org",
        "purpose",
        "lawful_basis",
        "reference",
        "recipient",
        "recipient_org",
        "client_addr",
    )
)


@dataclass(frozen=True)
class CustodyEvent:
    """One action on footage: who, what, when, why, to whom, from where.

    Built events are normalised and checked (InvalidInput otherwise); empty strings become
    None. ``to_bytes`` is the canonical JSON of :meth:`to_dict`; ``from_bytes`` accepts only
    that exact text.
    """

    action: Action | str
    actor: str
    ts: dt.datetime
    event_id: str = field(default_factory=new_id)
    actor_role: str | None = None
    actor_org: str | None = None
    object_ids: tuple[str, ...] = ()
    hashes: Mapping[str, str] = field(default_factory=dict)
    purpose: str | None = None
    lawful_basis: str | None = None
    reference: str | None = None
    recipient: str | None = None
    recipient_org: str | None = None
    client_addr: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    _ts_text: str = field(default="", init=False, repr=False, compare=False)
    _canonical: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "action", parse_action(self.action))
        put(self, "actor", _text("actor", self.actor, _MAX_NAME, required=True))
        put(self, "event_id", _text("event id", self.event_id, _MAX_ID, required=True))
        if not isinstance(self.ts, dt.datetime) or self.ts.tzinfo is None:
            raise InvalidInput("custody event time must be an aware datetime")
        put(self, "ts", self.ts.astimezone(dt.UTC))
        put(self, "_ts_text", _format_ts(self.ts))
        for name, limit in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value is not None:
                put(self, name, _text(name, value, limit))
        if isinstance(self.object_ids, str) or not isinstance(self.object_ids, Sequence):
            raise InvalidInput("custody event object_ids must be a list of ids")
        ids = tuple(self.object_ids)
        for oid in ids:
            if not isinstance(oid, str) or not oid or len(oid) > _MAX_ID:
                raise InvalidInput(f"custody event object ids are 1-{_MAX_ID} characters of text")
        if len(set(ids)) != len(ids):
            raise InvalidInput("custody event names an object twice")
        put(self, "object_ids", tuple(str.__str__(oid) for oid in ids))
        if not isinstance(self.hashes, Mapping):
            raise InvalidInput("custody event hashes must map object id to SHA-256 hex")
        hashes: dict[str, str] = {}
        for oid, digest in self.hashes.items():
            if not isinstance(oid, str) or not oid or not isinstance(digest, str):
                raise InvalidInput("custody event hashes must map object id to SHA-256 hex")
            if not _HEX64.fullmatch(digest.lower()):
                raise InvalidInput(f"hash of {oid} is not SHA-256 hex")
            hashes[str.__str__(oid)] = digest.lower()
        put(self, "hashes", hashes)
        if not isinstance(self.details, Mapping):
            raise InvalidInput("custody event details must be a mapping")
        # A private copy, checked all through (no floats, string keys, safe integers).
        put(self, "details", json_copy(self.details))
        put(self, "_canonical", canonical_plain(self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data, every field present (None where not given)."""
        return {
            "action": self.action.value if isinstance(self.action, Action) else self.action,
            "actor": self.actor,
            "actor_org": self.actor_org,
            "actor_role": self.actor_role,
            "client_addr": self.client_addr,
            "details": self.details,
            "event_id": self.event_id,
            "hashes": self.hashes,
            "lawful_basis": self.lawful_basis,
            "object_ids": list(self.object_ids),
            "purpose": self.purpose,
            "recipient": self.recipient,
            "recipient_org": self.recipient_org,
            "reference": self.reference,
            "ts": self._ts_text,
        }

    def to_bytes(self) -> bytes:
        """The canonical JSON of the event."""
        return self._canonical

    @classmethod
    def from_dict(cls, data: Any) -> CustodyEvent:
        """Rebuild an event from :meth:`to_dict` output. Raises InvalidInput."""
        if not isinstance(data, dict) or set(data) != _EVENT_FIELDS:
            raise InvalidInput("custody event does not have exactly the v1 fields")
        fields = dict(data)
        fields["ts"] = _parse_ts(fields["ts"])
        if not isinstance(fields["object_ids"], list):
            raise InvalidInput("custody event object_ids must be a list")
        return cls(**fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> CustodyEvent:
        """Parse canonical event JSON; anything but the exact canonical text raises LedgerError."""
        try:
            built = cls.from_dict(_loads(data))
        except InvalidInput as exc:
            raise LedgerError(f"not a custody event: {exc}") from None
        if built.to_bytes() != data:
            raise LedgerError("custody event is not in canonical form")
        return built


_EVENT_FIELDS = frozenset(
    CustodyEvent(
        action=Action.VIEWED, actor="x", ts=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    ).to_dict()
)


# (field, longest, required) for every text field of an event; purpose has no limit.
_CHECKED_TEXT = (
    ("actor", _MAX_NAME, True),
    ("event_id", _MAX_ID, True),
    *((name, limit, False) for name, limit in _OPTIONAL_TEXT),
)


def entry_bytes(seq: int, prev: str, event: CustodyEvent) -> bytes:
    """The canonical ledger entry of ``event`` at position ``seq`` after ``prev``."""
    # Keys in JCS order: event < prev < seq < v.
    return b'{"event":%s,"prev":"%s","seq":%d,"v":%d}' % (
        event.to_bytes(),
        prev.encode(),
        seq,
        ENTRY_VERSION,
    )


# In canonical text a number follows a key's ``":``, or ``[`` or ``,`` directly (with no
# backslash in the text, a ``"`` always ends a string, so ``":`` is never inside one). A fraction
# or exponent there (a float, which custody JSON refuses) or 16 digits or more (perhaps beyond
# +/-(2**53-1)) sends the entry to the exact parser; a string that merely looks like one
# (``"a,1.5"``) costs only speed.
# (Two searches, each starting from a literal or a character class, scan ~5x faster than one
# alternation.)
_RISKY_VALUE = re.compile(rb'":-?[0-9]+(?:[.eE]|[0-9]{15})')
_RISKY_ITEM = re.compile(rb'[\[,]-?[0-9]+(?:[.eE]|[0-9]{15})')


def _fast_canonical(entry: bytes) -> Any | None:
    """The parsed entry when it is provably canonical by the fast route, else None (then the
    exact parser and RFC 8785 encoder decide, with their messages).

    The route: orjson parses and re-encodes with sorted keys, and the bytes must come back
    identical. That agrees with :func:`~vault.ledger.rfc8785.canonical_plain` exactly when the
    text is ASCII (code point order is then UTF-16 order), holds no backslash (no escapes,
    whose spelling encoders may choose differently: so no control characters either), no
    float and no integer of 16 digits or more (:data:`_RISKY_VALUE`), and is an object.
    Duplicate keys, whitespace and key order all change the re-encoded bytes.
    """
    if entry[:1] != b"{" or not entry.isascii() or b"\\" in entry:
        return None
    if _RISKY_VALUE.search(entry) or _RISKY_ITEM.search(entry):
        return None
    try:
        data = orjson.loads(entry)
        same = orjson.dumps(data, option=orjson.OPT_SORT_KEYS) == entry
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    return data if same else None


def parse_entry(entry: bytes) -> tuple[int, str, CustodyEvent]:
    """Split a canonical ledger entry into (seq, prev, event). Raises LedgerError."""
    fast = _fast_canonical(entry)
    data = _loads(entry) if fast is None else fast
    if not isinstance(data, dict) or set(data) != {"event", "prev", "seq", "v"}:
        raise LedgerError("custody entry does not have exactly event, prev, seq and v")
    if data["v"] != ENTRY_VERSION or isinstance(data["v"], bool):
        raise LedgerError(f"custody entry version {data['v']!r} is not {ENTRY_VERSION}")
    seq, prev = data["seq"], data["prev"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise LedgerError("custody entry seq is not a non-negative integer")
    if not isinstance(prev, str) or not _HEX64.fullmatch(prev):
        raise LedgerError("custody entry prev is not a SHA-256 hex digest")
    # Canonical: the entry is exactly the JCS text of what it parses to (order, spacing,
    # escapes, duplicate keys). One encoding, not the event rebuilt and encoded again: this is
    # the per-event cost of every verify (issue #15: incremental verify of 100k events).
    try:
        canonical = fast is not None or canonical_plain(data) == entry
    except InvalidInput:
        canonical = False
    if not canonical:
        raise LedgerError("custody entry is not in canonical form")
    event_text = entry[len(b'{"event":') : entry.rindex(b',"prev":"')]
    try:
        built = _parsed_event(data["event"], event_text)
    except InvalidInput as exc:
        raise LedgerError(f"custody entry holds no valid event: {exc}") from None
    return seq, prev, built


def _parsed_event(data: Any, canonical: bytes) -> CustodyEvent:
    """The event of canonical entry text already parsed into ``data`` (``canonical``: its
    bytes), checked as :class:`CustodyEvent` checks a new one, but accepting only values that
    event would keep as they are (so that entry and event bytes stay one and the same): no
    empty text for a missing field, lower-case hashes, times as the ledger writes them."""
    if not isinstance(data, dict) or data.keys() != _EVENT_FIELDS:
        raise InvalidInput("custody event does not have exactly the v1 fields")
    action = parse_action(data["action"])
    for name, limit, required in _CHECKED_TEXT:
        value = data[name]
        if value is None and not required:
            continue
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"custody event {name} must be non-empty text")
        if limit is not None and len(value) > limit:
            raise InvalidInput(f"custody event {name} is longer than {limit} characters")
    ts_text = data["ts"]
    ts = _parse_ts(ts_text)
    ids = data["object_ids"]
    if not isinstance(ids, list):
        raise InvalidInput("custody event object_ids must be a list")
    for oid in ids:
        if not isinstance(oid, str) or not oid or len(oid) > _MAX_ID:
            raise InvalidInput(f"custody event object ids are 1-{_MAX_ID} characters of text")
    if len(set(ids)) != len(ids):
        raise InvalidInput("custody event names an object twice")
    hashes = data["hashes"]
    if not isinstance(hashes, dict):
        raise InvalidInput("custody event hashes must map object id to SHA-256 hex")
    for oid, digest in hashes.items():
        if not oid or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise InvalidInput(f"hash of {oid} is not lower-case SHA-256 hex")
    if not isinstance(data["details"], dict):
        raise InvalidInput("custody event details must be a mapping")
    # Everything CustodyEvent would normalise is already in normal form: set the fields as
    # they are (the parsed values are this event's own; nothing else holds them).
    built = object.__new__(CustodyEvent)
    fields = vars(built)  # a frozen dataclass's instance dict, filled as __init__ would
    fields.update(data)
    fields.update(action=action, ts=ts, object_ids=tuple(ids), _ts_text=ts_text,
                  _canonical=canonical)
    return built


@dataclass(frozen=True)
class EventRecord:
    """An event as stored in the ledger: its position, links and canonical entry."""

    seq: int
    prev_hash: str
    event: CustodyEvent
    entry: bytes
    entry_hash: str
    leaf_hash: str

    @classmethod
    def from_entry(cls, entry: bytes | str) -> EventRecord:
        """Parse a canonical entry (as found in an inclusion proof). Raises LedgerError."""
        data = entry.encode("utf-8") if isinstance(entry, str) else entry
        seq, prev, ev = parse_entry(data)
        return cls(seq, prev, ev, data, hashlib.sha256(data).hexdigest(), leaf_hash(data).hex())

    @property
    def action(self) -> Action | str:
        return self.event.action

    @property
    def actor(self) -> str:
        return self.event.actor

    @property
    def ts(self) -> dt.datetime:
        return self.event.ts

    @property
    def object_ids(self) -> tuple[str, ...]:
        return self.event.object_ids

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: seq, hashes and the event's fields."""
        return {
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
            "leaf_hash": self.leaf_hash,
            "event": self.event.to_dict(),
        }

    def summary(self) -> str:
        """One line for people: seq, time, action, actor, objects, why."""
        ev = self.event
        action = ev.action.value if isinstance(ev.action, Action) else ev.action
        why = " ".join(x for x in (ev.reference, ev.purpose) if x)
        objects = ",".join(ev.object_ids) or "-"
        line = f"{self.seq:>6}  {_format_ts(ev.ts)}  {action:<18} {ev.actor}  {objects}  {why}"
        return line.rstrip()


def action_value(action: Action | str) -> str:
    """The text of an action as entries and the ``action`` column hold it."""
    return action.value if isinstance(action, Action) else action


__all__ = [
    "ENTRY_VERSION",
    "GENESIS_PREV",
    "SENSITIVE_ACTIONS",
    "Action",
    "CustodyEvent",
    "EventRecord",
    "action_value",
    "entry_bytes",
    "parse_action",
    "parse_entry",
]
