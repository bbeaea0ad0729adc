"""One typed declaration per custody event kind (vault/ledger/events.py, issue #14 item 3)."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path
from typing import get_args

import pytest

from vault.ledger.checkpoint import load_or_create_signing_key
from vault.ledger.custody import Action, CustodyLedger
from vault.ledger.events import (
    COMMON_DETAILS,
    KINDS,
    VOCABULARY,
    MistypedDetails,
    UndeclaredEvent,
    UserChange,
    UserChanged,
    check_event,
    vocabulary_markdown,
)
from vault.storage.catalog import Base
from vault.storage.db import make_engine, session_factory

ROOT = Path(__file__).resolve().parents[2]
APPENDERS = {"append", "record", "append_many", "end_record", "record_custody"}


@pytest.fixture
def ledger(tmp_path: Path) -> CustodyLedger:
    """A ledger on a fresh SQLite catalog (the check runs before any database work)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    Base.metadata.create_all(engine)
    signer = load_or_create_signing_key(tmp_path / "ledger.key", "vault.test/events")
    return CustodyLedger(session_factory(engine), signer, origin="vault.test/events")


def test_one_declaration_per_kind_types_the_check_and_the_docs() -> None:
    """Issue #14 item 3 (S2): a kind was declared in vault/ledger/events.py (keys and
    meanings) and typed again in vault/event_details.py, so a key could be declared in one
    and typed differently in the other. Now the registry is read from each kind's TypedDict:
    every key has a meaning and a type the check understands, vault/event_details.py is gone,
    and the docs show each key's type."""
    assert not (ROOT / "vault" / "event_details.py").exists()
    docs = vocabulary_markdown()
    for kind in VOCABULARY:
        for field in [*kind.details.values(), *COMMON_DETAILS.values()]:
            assert field.meaning.strip(), f"{kind.name}.{field.name} has no meaning"
            field.describe()  # raises for a type the check cannot read
            assert f"| `{field.name}` | {field.describe()}" in docs


def test_exported_files_is_a_count() -> None:
    """Issue #14 item 3 (S2): ``exported.files`` was described as "its files and hashes"
    while disclosure.py records how many files; it is now declared an integer count, and a
    list is refused at append."""
    files = KINDS["exported"].details["files"]
    assert files.describe() == "integer" and "how many" in files.meaning
    check_event(Action.EXPORTED, {"export_id": "x", "files": 3, "manifest_sha256": "ab"})
    with pytest.raises(MistypedDetails, match="files"):
        check_event(Action.EXPORTED, {"export_id": "x", "files": [{"a": "b"}]})


def test_user_changed_change_values_are_declared_and_checked() -> None:
    """Issue #14 item 3 (S2): the 14 ``user_changed`` change values are the Literal the call
    sites are typed with, shown in the docs, and an undeclared one is refused at append (it
    was accepted before: the check saw keys only)."""
    values = get_args(UserChange)
    assert len(values) == 14
    row = next(line for line in vocabulary_markdown().splitlines() if line.startswith("| `change`"))
    assert all(f"`{v}`" in row for v in values)
    check_event(Action.USER_CHANGED, UserChanged(change="token_revoked", token_id="t-1"))
    with pytest.raises(MistypedDetails, match="change"):
        check_event(Action.USER_CHANGED, {"change": "password_stolen"})


@pytest.mark.parametrize(("action", "details", "key"), [
    (Action.SHARED, {"share_id": "s", "expires_at": "2026", "max_downloads": "3",
                     "allow_download": True}, "max_downloads"),
    (Action.VIEWED, {"range": ["0", "9"]}, "range"),  # an open kind: declared keys are typed
    (Action.HELD, {"hold_id": "h", "kind": "case", "reason": "r", "retain_until": 5},
     "retain_until"),  # a key common to all kinds
    ("sar.extended", {"sar_id": "s", "months": "2"}, "months"),
])
def test_mistyped_details_refused_before_anything_is_written(
    ledger: CustodyLedger, action: Action | str, details: dict[str, object], key: str,
) -> None:
    """Issue #14 item 3 (S2): the append-time check now checks each declared key's value
    against its type, not only that the key is declared; a mistyped value is refused with an
    error naming the key and the declared type, and nothing is written."""
    before = len(ledger.events())
    with pytest.raises(MistypedDetails, match=key):
        ledger.record(action, actor="x", details=details)
    assert len(ledger.events()) == before


def test_typed_details_keep_the_entry_bytes(ledger: CustodyLedger) -> None:
    """At run time a typed details value is the plain dict the ledger always received, so the
    custody entry bytes (format v1) cannot change."""
    details = UserChanged(change="token_revoked", token_id="t-1")
    assert type(details) is dict
    rec = ledger.record(Action.USER_CHANGED, actor="x", event_id="e-1", details=details,
                        ts=dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc))
    assert rec.event.to_bytes().startswith(
        b'{"action":"user_changed","actor":"x","actor_org":null,"actor_role":null,'
        b'"client_addr":null,"details":{"change":"token_revoked","token_id":"t-1"},')


def test_undeclared_key_still_refused() -> None:
    with pytest.raises(UndeclaredEvent, match="colour"):
        check_event(Action.SHARE_REVOKED, {"share_id": "s", "colour": "red"})


def _kind(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id == "Action":
        return node.attr.lower()
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _free_form_details(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in APPENDERS:
            continue
        candidates = [*node.args[:2], *(k.value for k in node.keywords if k.arg == "action")]
        kind = next((k for k in (_kind(c, constants) for c in candidates) if k), None)
        if kind is None or kind not in KINDS or KINDS[kind].open_details:
            continue
        values = [k.value for k in node.keywords if k.arg == "details"] + node.args[1:2]
        found += [f"{path.relative_to(ROOT)}:{node.lineno} ({kind})" for value in values
                  if isinstance(value, (ast.Dict, ast.DictComp))]
    return found


def test_closed_kinds_are_appended_with_their_types() -> None:
    """Issue #14 item 3: identity.py appended ``user_changed`` with a hand-built ``details``
    dict in six places (and holds, shares, cases, SARs and the ingest agent did the same),
    checked only when appended; every append of a closed kind now builds its details with
    the kind's type, so mypy checks each key and value where it is written."""
    offenders = [hit for package in ("vault", "ingest", "redaction", "api")
                 for path in sorted((ROOT / package).rglob("*.py"))
                 for hit in _free_form_details(path)]
    assert not offenders, f"build these details with vault/ledger/events.py types: {offenders}"
