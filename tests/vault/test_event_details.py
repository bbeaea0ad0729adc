"""Typed custody event details (vault/event_details.py, issue #14 item 3)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_type_hints

import pytest

from vault.event_details import TYPED, UserChanged
from vault.ledger.events import COMMON_DETAILS, KINDS

ROOT = Path(__file__).resolve().parents[2]
APPENDERS = {"append", "record", "append_many", "end_record"}


@pytest.mark.parametrize("kind", sorted(TYPED))
def test_each_type_names_only_what_its_kind_declares(kind: str) -> None:
    """A type may not drift from vault/ledger/events.py: every key it allows is declared for
    its kind (or common to all kinds), so a typed call site can never be refused at append."""
    declared = set(KINDS[kind].details) | set(COMMON_DETAILS)
    keys = set(get_type_hints(TYPED[kind]))
    assert keys <= declared, f"{kind}: {sorted(keys - declared)} not declared in events.py"
    assert not KINDS[kind].open_details, f"{kind} is open: its details are not typed"


def test_typed_details_are_the_same_dict() -> None:
    """At run time a typed details value is the plain dict the ledger always received, so
    the custody entry bytes (format v1) cannot change."""
    details = UserChanged(change="token_revoked", token_id="t-1")
    assert type(details) is dict and details == {"change": "token_revoked", "token_id": "t-1"}


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
        if kind not in TYPED:
            continue
        for keyword in node.keywords:
            if keyword.arg == "details" and isinstance(keyword.value, (ast.Dict, ast.DictComp)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} ({kind})")
    return found


def test_typed_kinds_are_appended_with_their_types() -> None:
    """Issue #14 item 3: identity.py appended ``user_changed`` with a hand-built ``details``
    dict in six places (and holds, shares, cases and SARs did the same), checked only when
    appended; every append of a typed kind now builds its details with the kind's type, so
    mypy checks each key and value where it is written."""
    offenders = [hit for package in ("vault", "ingest", "redaction", "api")
                 for path in sorted((ROOT / package).rglob("*.py"))
                 for hit in _free_form_details(path)]
    assert not offenders, f"build these details with vault/event_details.py types: {offenders}"
