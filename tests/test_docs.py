"""Docs stay true: README commands match CI, generated references match the code."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gen_docs  # noqa: E402


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", setup)


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "evidence-vault demo" in demo
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, f".ci/run must run the README's test command: {tests!r}"


@pytest.mark.parametrize("rel", sorted(gen_docs.DOCS))
def test_generated_docs_are_current(rel: str) -> None:
    expected = gen_docs.DOCS[rel]()
    assert (ROOT / rel).read_text() == expected, f"{rel} is stale: run python scripts/gen_docs.py"


def test_every_setting_is_described() -> None:
    from vault.config import Settings

    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_settings_doc_shows_real_defaults() -> None:
    """Issue #11 finding 24: docs/settings.md showed ``PydanticUndefined`` as the default of a
    setting whose default comes from a factory. Every default shown is a value or a word."""
    text = gen_docs.settings_markdown()
    assert "Undefined" not in text and "PydanticUndefined" not in (ROOT / "docs" / "settings.md").read_text()
    assert "| `EVIDENCE_VAULT_RETENTION_OVERRIDES` | (empty) |" in text


_CITED_PATH = re.compile(
    r"`((?:vault|ingest|redaction|api|scripts|benchmarks|tests|deploy|docs)/[\w./-]+"
    r"\.(?:py|md|sh|toml|html|js|css|conf|mjs))(?:::\w+)?`")


def test_every_file_the_docs_cite_exists() -> None:
    """The docs name files a reader will open; after the vault/ re-layering (issue #14) every
    such path must still lead somewhere."""
    docs = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    missing = sorted(
        f"{doc.relative_to(ROOT)}: {path}"
        for doc in docs if doc.exists()
        for path in _CITED_PATH.findall(doc.read_text())
        if not (ROOT / path).exists()
    )
    assert missing == []
