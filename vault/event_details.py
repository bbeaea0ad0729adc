"""Typed ``details`` for the closed custody event kinds the vault's own modules append.

:mod:`vault.ledger.events` declares each kind once: its name, its meaning and its ``details``
keys, and checks every append against that declaration at run time. The types here let the
type checker hold each call site to the same declaration before it runs: a misspelt key, a
value of the wrong type or (for ``user_changed``) an undeclared ``change`` fails ``mypy``.
``tests/vault/test_event_details.py`` checks every type here names only keys its kind
declares, and that the modules using them build no free-form ``details`` dict.

They are ``TypedDict``: at run time each is the plain ``dict`` the ledger always received, so
the custody entry bytes (format v1) are unchanged.
"""

from __future__ import annotations

from typing import Literal, Required, TypedDict

#: What a ``user_changed`` event records as its ``change``.
UserChange = Literal[
    "user_created", "sites_set", "enabled", "disabled", "role_set", "token_issued",
    "token_revoked", "oidc_linked", "oidc_bind_allowed", "oidc_unlinked", "oidc_bound",
    "password_set", "second_factor_reset", "second_factor_enrolled",
]


class UserChanged(TypedDict, total=False):
    """``user_changed``: a user, their sites, role, tokens, sign-in links or credentials."""

    change: Required[UserChange]
    user: str
    role: str
    previous_role: str
    organisation: str
    sites: list[str]
    token_id: str
    expires_at: str
    issuer: str
    subject: str | None
    replaced_subject: str | None
    bind_until: str
    username_claim: str | None
    web_sessions_ended: int


class Held(TypedDict, total=False):
    """``held``: a hold placed (``case_id`` for case holds, ``source`` and ``window`` for
    window holds)."""

    hold_id: Required[str]
    kind: Required[str]
    reason: Required[str]
    case_id: str
    source: str
    window: list[str]


class Released(Held, total=False):
    """``released``: a hold released, and why."""

    release_reason: Required[str]


class Shared(TypedDict):
    """``shared``: footage shared with a named recipient."""

    share_id: str
    expires_at: str
    allow_download: bool
    max_downloads: int | None


class ShareRevoked(TypedDict):
    """``share_revoked``: a share revoked, and why."""

    share_id: str
    reason: str


class CaseCreated(TypedDict, total=False):
    """``case_created``: a case opened."""

    case_id: Required[str]
    organisation: Required[str]
    members: Required[list[str]]
    crime_number: str


class CaseMembership(TypedDict):
    """``case.member_added`` and ``case.member_removed``."""

    case_id: str
    user: str


class CaseUnlinked(TypedDict):
    """``case_unlinked``: a recording unlinked from a case."""

    case_id: str


class CaseEnded(TypedDict):
    """``case.closed`` and ``case.reopened``, with the reason."""

    case_id: str
    reason: str


class SarRegistered(TypedDict):
    """``sar.registered``."""

    sar_id: str
    received_on: str
    due_on: str


class SarWindowAttached(TypedDict):
    """``sar.window_attached``: a camera window attached to a SAR and held."""

    sar_id: str
    hold_id: str
    source: str
    window: list[str]
    recordings: int


class SarExtended(TypedDict):
    """``sar.extended``: a SAR's deadline extended."""

    sar_id: str
    months: int
    extension_months: int
    deadline: str
    reason: str | None


class SarClosed(TypedDict):
    """``sar.closed``: a SAR closed (or refused) and its holds released."""

    sar_id: str
    status: str
    reason: str | None
    holds_released: list[str]


class Exported(TypedDict):
    """``exported``: a disclosure package built (its manifest's hash, how many files)."""

    export_id: str
    manifest_sha256: str
    files: int


class Searched(TypedDict):
    """``searched``: the search as asked and how many recordings matched."""

    criteria: dict[str, object]
    results: int


class Deleted(TypedDict, total=False):
    """``deleted``: footage crypto-shredded and deleted by retention or by hand."""

    reason: Required[str]
    policy: Required[str]
    source: Required[str]
    size: Required[int]
    captured_start: Required[str]
    retain_until: Required[str]
    key_id: Required[str | None]
    method: Required[str]
    parent_id: str


class FixityChecked(TypedDict, total=False):
    """``fixity_checked``: one batch of stored footage read back (the first batch, or an
    event of its own, also carries the catalog's comparison with the ledger)."""

    checked: Required[int]
    ok: Required[int]
    failed: Required[dict[str, dict[str, str]]]
    catalog_rows: int
    catalog_failed: dict[str, dict[str, str]]


class KeyRotated(TypedDict, total=False):
    """``key_rotated``: the ledger signing key or the keyring's KEK rotated."""

    key: Required[str]
    old_key: str
    new_key: str
    old_key_id: str
    new_key_id: str
    reason: Required[str]


class KeysDestroyed(TypedDict):
    """``keys.destroyed``: a retired KEK destroyed."""

    key_id: str
    retired: str | None
    reason: str


class SiteRegistered(TypedDict):
    """``site.registered``: a site and its owner, and the sources it adopted."""

    site: str
    organisation: str
    sources: list[str]


#: Each type beside the event kinds it types (``tests/vault/test_event_details.py``).
TYPED: dict[str, type] = {
    "user_changed": UserChanged,
    "held": Held,
    "released": Released,
    "shared": Shared,
    "share_revoked": ShareRevoked,
    "case_created": CaseCreated,
    "case.member_added": CaseMembership,
    "case.member_removed": CaseMembership,
    "case_unlinked": CaseUnlinked,
    "case.closed": CaseEnded,
    "case.reopened": CaseEnded,
    "sar.registered": SarRegistered,
    "sar.window_attached": SarWindowAttached,
    "sar.extended": SarExtended,
    "sar.closed": SarClosed,
    "searched": Searched,
    "exported": Exported,
    "deleted": Deleted,
    "fixity_checked": FixityChecked,
    "key_rotated": KeyRotated,
    "keys.destroyed": KeysDestroyed,
    "site.registered": SiteRegistered,
}

__all__ = [
    "TYPED",
    "CaseCreated",
    "CaseEnded",
    "CaseMembership",
    "CaseUnlinked",
    "Deleted",
    "Exported",
    "FixityChecked",
    "Held",
    "KeyRotated",
    "KeysDestroyed",
    "Released",
    "SarClosed",
    "SarExtended",
    "SarRegistered",
    "SarWindowAttached",
    "Searched",
    "ShareRevoked",
    "Shared",
    "SiteRegistered",
    "UserChange",
    "UserChanged",
]
