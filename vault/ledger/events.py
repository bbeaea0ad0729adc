"""The custody events: one declaration per kind of event, its name, its fields and their types,
its meaning.

The events are the evidence, so what each kind records is declared here once, as a
``TypedDict`` whose every field is ``Annotated[<type>, "<meaning>"]``. That one declaration is
read three ways, so a field cannot be declared in one place and typed differently in another:

* the type checker holds every call site to it (``details=Held(hold_id=..., ...)``): a misspelt
  key, a value of the wrong type or an undeclared ``user_changed`` change fails ``mypy``;
* :func:`check_event` checks every append against it at run time
  (:meth:`vault.ledger.custody.CustodyLedger.append` and every other append path);
* ``docs/custody-events.md`` is generated from it (``scripts/gen_docs.py``;
  ``tests/test_docs.py`` fails while it differs), with each field's type and allowed values.

What the check enforces
    1. The kind is declared: an :class:`~vault.ledger.entries.Action` member, or a dotted
       extension name (``sar.registered``) listed here. An undeclared kind is refused with
       :class:`UndeclaredEvent` before anything is written.
    2. For a kind whose ``details`` are *closed*, every key of ``details`` is declared. Kinds
       whose details carry what the caller adds (a read's route or range, an ingest's
       provenance) are *open*: their declared keys are documented and checked, others are
       accepted.
    3. Every declared key present has a value of its declared type (a ``Literal`` field: one of
       its values), else :class:`MistypedDetails`. A key the type marks required is not
       enforced at run time (events appended by tools and tests carry only what they know);
       ``mypy`` enforces it where a typed call site builds the details.

What it does not do: change a byte. At run time a ``TypedDict`` is the plain ``dict`` the ledger
always received, so the entry an event makes is exactly the custody entry format v1
(:mod:`vault.ledger.custody`), and ledgers written before this module existed verify unchanged;
events are checked when appended, never when read back, so an old ledger holding a kind retired
since still opens and verifies.

Every event also has the envelope fields of :class:`~vault.ledger.entries.CustodyEvent`:
who (``actor``, ``actor_role``, ``actor_org``), from where (``client_addr``), when (``ts``),
what (``object_ids``, ``hashes``), why (``purpose``, ``lawful_basis``, ``reference``) and to
whom (``recipient``, ``recipient_org``).

Why this module is long: it is the vocabulary itself, one typed declaration per kind of event
(some forty); splitting it would put the kinds a reader compares side by side in two places.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Required,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from vault.errors import InvalidInput


class UndeclaredEvent(InvalidInput):
    """An event of a kind, or with a ``details`` key, that the vocabulary does not declare."""


class MistypedDetails(InvalidInput):
    """An event whose ``details`` value is not of the type its kind declares for that key."""


# --- the declarations ------------------------------------------------------------------------
# Each field is Annotated[<type>, "<meaning>"]; tests/vault/test_event_details.py holds that
# every field has a meaning and a type the run-time check understands.


class Common(TypedDict, total=False):
    """``details`` keys any kind may carry."""

    retain_until: Annotated[str | dict[str, str], "the retention date the event moves a "
                            "recording to, ISO 8601, or one per recording id (read by "
                            "vault/ledger/catalog_binding.py)"]


class Ingested(TypedDict, total=False):
    """``ingested`` (open)."""

    source: Annotated[str, "source id"]
    original_name: Annotated[str | None, "file name as received"]
    size: Annotated[int, "bytes"]
    captured_start: Annotated[str, "capture start, ISO 8601"]
    parent_id: Annotated[str, "the recording it was derived from"]
    catalog: Annotated[dict[str, object], "the catalog record the ledger binds "
                       "(vault/ledger/catalog_binding.py)"]
    future_capture: Annotated[dict[str, object], "why the capture time was after receipt, "
                              "when it was"]
    spool_item: Annotated[str, "the ingest agent's spool item"]


class Read(TypedDict, total=False):
    """``viewed``, ``streamed``, ``downloaded``, ``share_accessed``, ``clip.cut`` (open)."""

    range: Annotated[list[int], "[first, last] byte of a partial read"]
    via: Annotated[str, "the surface used (``web``)"]
    route: Annotated[str | None, "the API route that served it"]
    session_id: Annotated[str, "the web session"]
    job_id: Annotated[str, "the job whose result was read"]
    export_id: Annotated[str | None, "the disclosure package read"]
    recording_ids: Annotated[list[str], "the recordings the package holds"]
    acknowledged: Annotated[bool, "the recipient acknowledged the terms before downloading"]
    share_id: Annotated[str, "the share it was read through"]


class Searched(TypedDict):
    """``searched``: the search as asked and how many recordings matched."""

    criteria: Annotated[dict[str, object], "the search as asked"]
    results: Annotated[int, "how many recordings matched"]


class RedactionPlanned(TypedDict, total=False):
    """``redaction_planned`` (open)."""

    job_id: Annotated[str, "the job"]
    plan_sha256: Annotated[str, "SHA-256 of the plan"]
    tracks: Annotated[int, "faces tracked"]
    kept: Annotated[list[int], "tracks kept visible"]
    review_spans: Annotated[int, "spans flagged for review"]
    edited: Annotated[bool, "the plan was edited by a person"]
    previous_plan_sha256: Annotated[str | None, "the plan it replaced"]
    route: Annotated[str | None, "the API route"]
    range: Annotated[list[int], "first and last byte read (a chunk job reads its part)"]
    chunk: Annotated[int, "the chunk a chunk job plans or renders"]
    stage: Annotated[str, "render: read by a chunk render job (absent: to plan)"]


class RedactionRendered(TypedDict, total=False):
    """``redaction_rendered`` (open)."""

    plan_sha256: Annotated[str, "the plan rendered"]
    purpose: Annotated[str | None, "why"]


class Held(TypedDict, total=False):
    """``held``: a hold placed (``case_id`` for case holds, ``source`` and ``window`` for
    window holds)."""

    hold_id: Required[Annotated[str, "the hold"]]
    kind: Required[Annotated[str, "case, police, sar or legal"]]
    reason: Required[Annotated[str, "why it was placed"]]
    case_id: Annotated[str, "the case it holds (case holds)"]
    source: Annotated[str, "the source of a window hold"]
    window: Annotated[list[str], "[start, end) of a window hold, ISO 8601"]


class Released(Held, total=False):
    """``released``: a hold released, and why."""

    release_reason: Required[Annotated[str, "why it ended"]]


class Shared(TypedDict):
    """``shared``: footage shared with a named recipient."""

    share_id: Annotated[str, "the share"]
    expires_at: Annotated[str, "when it ends, ISO 8601"]
    max_downloads: Annotated[int | None, "download limit (none: no limit)"]
    allow_download: Annotated[bool, "whether the recipient may download"]


class ShareRevoked(TypedDict):
    """``share_revoked``: a share revoked, and why."""

    share_id: Annotated[str, "the share"]
    reason: Annotated[str, "why"]


class Exported(TypedDict):
    """``exported``: a disclosure package built."""

    export_id: Annotated[str, "the package"]
    files: Annotated[int, "how many files it holds (their hashes are in its manifest)"]
    manifest_sha256: Annotated[str, "SHA-256 of its manifest"]


class Deleted(TypedDict, total=False):
    """``deleted``: footage crypto-shredded and deleted by retention or by hand."""

    reason: Required[Annotated[str, "why"]]
    policy: Required[Annotated[str, "the retention rule applied"]]
    method: Required[Annotated[str, "how (crypto-shred)"]]
    key_id: Required[Annotated[str | None, "the KEK its destroyed data key was wrapped under"]]
    size: Required[Annotated[int, "bytes"]]
    source: Required[Annotated[str, "source id"]]
    captured_start: Required[Annotated[str, "capture start, ISO 8601"]]
    retain_until: Required[Annotated[str, "its due date, ISO 8601"]]
    parent_id: Annotated[str, "the recording it was derived from"]


class KeyRotated(TypedDict, total=False):
    """``key_rotated``: the ledger signing key or the keyring's KEK rotated."""

    key: Required[Annotated[str, "which key: ``ledger`` (the signing key) or ``keyring`` (a "
                            "KEK)"]]
    old_key: Annotated[str, "the retired ledger verifier key"]
    new_key: Annotated[str, "the new ledger verifier key"]
    old_key_id: Annotated[str, "the retired keyring KEK"]
    new_key_id: Annotated[str, "the new keyring KEK"]
    reason: Required[Annotated[str, "why it was rotated"]]


#: What a ``user_changed`` event records as its ``change``.
UserChange = Literal[
    "user_created", "sites_set", "enabled", "disabled", "role_set", "token_issued",
    "token_revoked", "oidc_linked", "oidc_bind_allowed", "oidc_unlinked", "oidc_bound",
    "password_set", "second_factor_reset", "second_factor_enrolled",
]


class UserChanged(TypedDict, total=False):
    """``user_changed``: a user, their sites, role, tokens, sign-in links or credentials."""

    change: Required[Annotated[UserChange, "what changed"]]
    user: Annotated[str, "the user's name"]
    role: Annotated[str, "their role"]
    previous_role: Annotated[str, "the role it replaced (a role change)"]
    organisation: Annotated[str, "theirs"]
    sites: Annotated[list[str], "their sites"]
    token_id: Annotated[str, "an API token"]
    expires_at: Annotated[str, "its expiry, ISO 8601"]
    issuer: Annotated[str, "OIDC issuer"]
    subject: Annotated[str | None, "OIDC subject"]
    replaced_subject: Annotated[str | None, "the OIDC subject it replaced"]
    bind_until: Annotated[str, "until when a first OIDC sign-in may bind, ISO 8601"]
    username_claim: Annotated[str | None, "the claim that named the user"]
    web_sessions_ended: Annotated[int, "web sessions ended by the change"]


class AccessDenied(TypedDict, total=False):
    """``access_denied`` (open)."""

    reason: Annotated[str, "why"]
    route: Annotated[str, "the route asked"]
    permission: Annotated[str, "what was asked for"]
    token_id: Annotated[str, "the API token presented (a refused authentication)"]


class GapRecorded(TypedDict, total=False):
    """``gap_recorded`` (open)."""

    ingest_source: Annotated[str, "the source"]
    message: Annotated[str, "what happened"]
    agent_host: Annotated[str, "the agent"]


class CaseCreated(TypedDict, total=False):
    """``case_created``: a case opened."""

    case_id: Required[Annotated[str, "the case"]]
    organisation: Required[Annotated[str, "its owner"]]
    members: Required[Annotated[list[str], "its members"]]
    crime_number: Annotated[str, "the police crime number, if any"]


class CaseRef(TypedDict):
    """``case_linked`` (open), ``case_unlinked``."""

    case_id: Annotated[str, "the case"]


class FixityChecked(TypedDict, total=False):
    """``fixity_checked``: one batch of stored footage read back (the first batch, or an
    event of its own, also carries the catalog's comparison with the ledger)."""

    checked: Required[Annotated[int, "recordings checked"]]
    ok: Required[Annotated[int, "how many matched"]]
    failed: Required[Annotated[dict[str, dict[str, str]], "those that did not"]]
    catalog_rows: Annotated[int, "catalog rows compared with the ledger"]
    catalog_failed: Annotated[dict[str, dict[str, str]], "rows that differ"]


class SarRegistered(TypedDict):
    """``sar.registered``."""

    sar_id: Annotated[str, "the request"]
    received_on: Annotated[str, "date received"]
    due_on: Annotated[str, "its deadline"]


class SarWindowAttached(TypedDict):
    """``sar.window_attached``: a camera window attached to a SAR and held."""

    sar_id: Annotated[str, "the request"]
    hold_id: Annotated[str, "the SAR hold"]
    source: Annotated[str, "the camera"]
    window: Annotated[list[str], "[start, end), ISO 8601"]
    recordings: Annotated[int, "recordings it covers now"]


class SarExtended(TypedDict):
    """``sar.extended``: a SAR's deadline extended."""

    sar_id: Annotated[str, "the request"]
    months: Annotated[int, "months added"]
    extension_months: Annotated[int, "total extension"]
    deadline: Annotated[str, "the new deadline"]
    reason: Annotated[str | None, "why"]


class SarRef(TypedDict):
    """``sar.disclosed`` (open)."""

    sar_id: Annotated[str, "the request"]


class SarClosed(TypedDict):
    """``sar.closed``: a SAR closed (or refused) and its holds released."""

    sar_id: Annotated[str, "the request"]
    status: Annotated[str, "how it ended"]
    reason: Annotated[str | None, "why"]
    holds_released: Annotated[list[str], "the holds it released"]


class CaseMembership(TypedDict):
    """``case.member_added`` and ``case.member_removed``."""

    case_id: Annotated[str, "the case"]
    user: Annotated[str, "the user"]


class CaseEnded(TypedDict):
    """``case.closed`` and ``case.reopened``, with the reason."""

    case_id: Annotated[str, "the case"]
    reason: Annotated[str, "why"]


class SiteRegistered(TypedDict):
    """``site.registered``: a site and its owner, and the sources it adopted."""

    site: Annotated[str, "the site"]
    organisation: Annotated[str, "its owner"]
    sources: Annotated[list[str], "its sources"]


class Nothing(TypedDict):
    """A kind that declares no ``details`` keys (open ones carry what the caller adds)."""


class KeysDestroyed(TypedDict):
    """``keys.destroyed``: a retired KEK destroyed."""

    key_id: Annotated[str, "the KEK"]
    retired: Annotated[str | None, "when it was retired"]
    reason: Annotated[str, "why"]


class ExportStored(TypedDict, total=False):
    """``export.stored`` (open)."""

    export_id: Annotated[str, "the package"]
    job_id: Annotated[str, "the export job"]
    catalog: Annotated[dict[str, object], "the catalog record the ledger binds"]
    parent_id: Annotated[str, "the first recording it holds"]


class IngestRejected(TypedDict):
    """``ingest.rejected``: a file an agent refused."""

    ingest_source: Annotated[str, "the agent's source"]
    device: Annotated[str, "the vault source"]
    name: Annotated[str, "file name"]
    size: Annotated[int, "bytes"]
    origin: Annotated[str, "where it came from"]
    reason: Annotated[str, "why it was refused"]
    agent_host: Annotated[str, "the agent"]


class IngestSameBytes(TypedDict):
    """``ingest.same_bytes``: bytes another device already delivered, stored and flagged."""

    recording_id: Annotated[str, "the new recording"]
    device: Annotated[str, "its source"]
    sha256: Annotated[str, "the bytes' hash"]
    same_as: Annotated[list[dict[str, str]], "the other recordings and devices "
                       "(``recording_id``, ``device``)"]
    agent_host: Annotated[str, "the agent"]


class SignedIn(TypedDict, total=False):
    """``web.signed_in`` (open)."""

    session_id: Annotated[str, "the web session"]
    method: Annotated[str, "password+totp or oidc"]


class SignedOut(TypedDict, total=False):
    """``web.signed_out`` (open)."""

    session_id: Annotated[str, "the web session"]
    everywhere: Annotated[bool, "every session of theirs ended"]


# --- the registry, built from the declarations ----------------------------------------------


@dataclass(frozen=True)
class Field:
    """One declared ``details`` key: its type, whether a typed call site must set it, and what
    it means."""

    name: str
    type: Any
    meaning: str
    required: bool

    def accepts(self, value: object) -> bool:
        """Whether ``value`` is of this field's type (``Literal``: one of its values)."""
        return _conforms(value, self.type)

    def describe(self) -> str:
        """The type as the docs and the error messages write it."""
        return _describe(self.type)


def _fields(schema: type) -> dict[str, Field]:
    """The fields of a declaration: each annotation ``[Not]Required[Annotated[T, meaning]]``."""
    total = bool(getattr(schema, "__total__", True))
    fields: dict[str, Field] = {}
    for name, hint in get_type_hints(schema, include_extras=True).items():
        required = total
        if get_origin(hint) in (Required, NotRequired):
            required = get_origin(hint) is Required
            hint = get_args(hint)[0]
        if get_origin(hint) is not Annotated or not isinstance(hint.__metadata__[0], str):
            raise TypeError(f"{schema.__name__}.{name}: declare it Annotated[<type>, '<meaning>']")
        fields[name] = Field(name, get_args(hint)[0], hint.__metadata__[0], required)
    return fields


def _conforms(value: object, tp: Any) -> bool:
    origin, args = get_origin(tp), get_args(tp)
    if tp is object or tp is Any:
        return True
    if tp is None or tp is type(None):
        return value is None
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is list:
        # A tuple is written as the same JSON array.
        return isinstance(value, (list, tuple)) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items())
    if tp is float:
        return isinstance(value, (int, float))
    if isinstance(tp, type):
        return isinstance(value, tp)
    raise TypeError(f"custody event field type {tp!r} is not one the check understands")


def _describe(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if tp is None or tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is list:
        return f"list of {_describe(args[0])}"
    if origin is dict:
        return f"object of {_describe(args[1])}"
    return {str: "string", int: "integer", bool: "boolean", float: "number",
            object: "any JSON"}.get(tp, getattr(tp, "__name__", repr(tp)))


#: ``details`` keys any kind may carry.
COMMON_DETAILS: Mapping[str, Field] = _fields(Common)


@dataclass(frozen=True)
class EventKind:
    """One kind of custody event: its ``action`` name, what it means, the ``TypedDict`` that
    declares its ``details``, and whether they are open to keys the caller adds."""

    name: str
    meaning: str
    schema: type = Nothing
    #: True: ``details`` may carry keys beyond the declared ones (what the caller adds).
    open_details: bool = False

    @property
    def details(self) -> Mapping[str, Field]:
        """The declared ``details`` keys, read from :attr:`schema`."""
        return _FIELDS[self.schema]

    def check(self, details: Mapping[str, Any]) -> None:
        """Raise UndeclaredEvent for a ``details`` key a closed kind does not declare, and
        MistypedDetails for a declared key whose value is not of its type."""
        declared = self.details
        if not self.open_details:
            extra = sorted(set(details) - set(declared) - set(COMMON_DETAILS))
            if extra:
                raise UndeclaredEvent(
                    f"custody event {self.name!r} has undeclared details {extra}: declare them "
                    "in vault/ledger/events.py (then run scripts/gen_docs.py)"
                )
        for key, value in details.items():
            spec = declared.get(key) or COMMON_DETAILS.get(key)
            if spec is not None and not spec.accepts(value):
                raise MistypedDetails(
                    f"custody event {self.name!r}: details[{key!r}] is {value!r}, declared "
                    f"{spec.describe()} in vault/ledger/events.py"
                )


VOCABULARY: tuple[EventKind, ...] = (
    EventKind("ingested", "Footage entered the vault: hashed, encrypted, stored, catalogued.",
              Ingested, open_details=True),
    EventKind("viewed", "Footage was decrypted for someone to look at.", Read, open_details=True),
    EventKind("streamed", "Footage was streamed to a player (whole or a byte range).", Read,
              open_details=True),
    EventKind("downloaded", "Footage or a package left the vault as a file.", Read,
              open_details=True),
    EventKind("searched", "Someone searched the catalog.", Searched),
    EventKind("redaction_planned", "A redaction plan was made or edited.", RedactionPlanned,
              open_details=True),
    EventKind("redaction_rendered", "A redacted copy was rendered from a plan and stored.",
              RedactionRendered, open_details=True),
    EventKind("held", "A hold was placed: footage is kept past its retention date.", Held),
    EventKind("released", "A hold was released.", Released),
    EventKind("shared", "Footage was shared with a named recipient.", Shared),
    EventKind("share_accessed", "A share's recipient used it.", Read, open_details=True),
    EventKind("share_revoked", "A share was revoked.", ShareRevoked),
    EventKind("exported", "A disclosure package was built.", Exported),
    EventKind("deleted", "Footage was crypto-shredded and deleted by retention or by hand.",
              Deleted),
    EventKind("key_rotated", "A key was rotated: the ledger signing key or the keyring's KEK.",
              KeyRotated),
    EventKind("user_changed", "A user, their sites, roles, tokens, sign-in links or credentials "
              "changed.", UserChanged),
    EventKind("access_denied", "A request was refused (one event, or a summary of many).",
              AccessDenied, open_details=True),
    EventKind("gap_recorded", "An ingest agent recorded a gap in a source's footage.",
              GapRecorded, open_details=True),
    EventKind("case_created", "A case was opened.", CaseCreated),
    EventKind("case_linked", "A recording was linked to a case as evidence.", CaseRef,
              open_details=True),
    EventKind("case_unlinked", "A recording was unlinked from a case.", CaseRef),
    EventKind("fixity_checked", "Stored footage was read back and its hashes checked.",
              FixityChecked),
    # Dotted extension kinds.
    EventKind("sar.registered", "A subject access request was registered.", SarRegistered),
    EventKind("sar.window_attached", "A camera and window were attached to a SAR (and held).",
              SarWindowAttached),
    EventKind("sar.extended", "A SAR's deadline was extended.", SarExtended),
    EventKind("sar.disclosed", "Footage was disclosed to a SAR's requester.", SarRef,
              open_details=True),
    EventKind("sar.closed", "A SAR was closed and its holds released.", SarClosed),
    EventKind("case.member_added", "A user was added to a case.", CaseMembership),
    EventKind("case.member_removed", "A user was removed from a case.", CaseMembership),
    EventKind("case.closed", "A case was closed.", CaseEnded),
    EventKind("case.reopened", "A closed case was reopened.", CaseEnded),
    EventKind("site.registered", "A site and its owner were registered.", SiteRegistered),
    EventKind("keys.rewrapped", "Data keys were moved onto the current KEK.", Nothing,
              open_details=True),
    EventKind("keys.destroyed", "A retired KEK was destroyed.", KeysDestroyed),
    EventKind("export.stored", "A disclosure package was stored, encrypted, as a derived "
              "recording of the footage it holds (an export job).", ExportStored,
              open_details=True),
    EventKind("ingest.rejected", "An ingest agent refused a file that is not media; the spool "
              "copy was dropped.", IngestRejected),
    EventKind("ingest.same_bytes", "An agent stored bytes another device already delivered, as "
              "a recording of its own, and flagged it.", IngestSameBytes),
    EventKind("ingest.pull", "Footage was pulled from a site's NVR for a window.", Nothing,
              open_details=True),
    EventKind("web.signed_in", "Someone signed in to the web app.", SignedIn, open_details=True),
    EventKind("web.signed_out", "Someone signed out of the web app.", SignedOut,
              open_details=True),
    EventKind("clip.cut", "A source recording was decrypted to cut a clip from it.", Read,
              open_details=True),
    EventKind("clip.assembled", "A clip was stored as a derived recording.", Nothing,
              open_details=True),
)

# Read once at import: a declaration the registry cannot read fails here, not at an append.
_FIELDS: dict[type, dict[str, Field]] = {k.schema: _fields(k.schema) for k in VOCABULARY}

KINDS: Mapping[str, EventKind] = {kind.name: kind for kind in VOCABULARY}


def check_event(action: enum.Enum | str, details: Mapping[str, Any]) -> EventKind:
    """The declaration of an event about to be appended. Raises UndeclaredEvent for an
    undeclared kind or (closed kinds) an undeclared ``details`` key, MistypedDetails for a
    declared key whose value is not of its declared type."""
    name = str(action.value) if isinstance(action, enum.Enum) else action
    kind = KINDS.get(name)
    if kind is None:
        raise UndeclaredEvent(
            f"custody event kind {name!r} is not declared in vault/ledger/events.py"
        )
    kind.check(details)
    return kind


def _table(fields: Mapping[str, Field]) -> list[str]:
    return ["| details key | type | meaning |", "|---|---|---|", *[
        f"| `{f.name}` | {f.describe()}{'' if f.required else ', optional'} | {f.meaning} |"
        for f in fields.values()], ""]


def vocabulary_markdown() -> str:
    """``docs/custody-events.md``: every kind, its meaning and its typed ``details`` keys."""
    lines = [
        "# Custody events",
        "",
        "Generated by `scripts/gen_docs.py` from `vault/ledger/events.py`; do not edit by hand.",
        "",
        "Every event has the envelope fields who (`actor`, `actor_role`, `actor_org`), from",
        "where (`client_addr`), when (`ts`), what (`object_ids`, `hashes`), why (`purpose`,",
        "`lawful_basis`, `reference`) and to whom (`recipient`, `recipient_org`), and the",
        "`details` below. An event is stored as a custody entry v1 (docs/ledger.md). *Open*",
        "kinds may carry further `details` keys that the caller adds; the others may not. A",
        "value not of its key's type is refused when the event is appended; *optional* keys",
        "are the ones the vault's own code may leave out. Any kind may carry:",
        "",
        *_table(COMMON_DETAILS),
    ]
    for kind in VOCABULARY:
        lines += [f"## `{kind.name}`", "", kind.meaning + (" *Open.*" if kind.open_details else ""), ""]
        if kind.details:
            lines += _table(kind.details)
    return "\n".join(lines)


__all__ = [
    "COMMON_DETAILS", "KINDS", "VOCABULARY", "AccessDenied", "CaseCreated", "CaseEnded",
    "CaseMembership", "CaseRef", "Common", "Deleted", "EventKind", "ExportStored", "Exported",
    "Field", "FixityChecked", "GapRecorded", "Held", "IngestRejected", "IngestSameBytes",
    "Ingested", "KeyRotated", "KeysDestroyed", "MistypedDetails", "Nothing", "Read",
    "RedactionPlanned", "RedactionRendered", "Released", "SarClosed", "SarExtended", "SarRef",
    "SarRegistered", "SarWindowAttached", "Searched", "ShareRevoked", "Shared", "SignedIn",
    "SignedOut", "SiteRegistered", "UndeclaredEvent", "UserChange", "UserChanged",
    "check_event", "vocabulary_markdown",
]
