"""Vault.recordings: keyset paging through a read session, the trusted service path (issue #14,
S2)."""

from __future__ import annotations

import datetime as dt
import io
import re
import sqlite3
from pathlib import Path

import pytest

from vault.actors import Actor, Role
from vault.capture import Capture
from vault.errors import InvalidInput
from vault.storage.paging import page_cursor
from vault.vault import MAX_PAGE, Vault

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
ACTOR = Actor(user="officer-1", role=Role.ASB_OFFICER, organisation="Housing")


def _put(vault: Vault, n: int, at: dt.datetime) -> str:
    return vault.put_stream(io.BytesIO(f"clip {n}".encode()),
                            Capture(source_id="cam-1", captured_at=at), actor=ACTOR).id


def test_keyset_pages_neither_repeat_nor_skip_rows_added_between_pages(vault: Vault) -> None:
    """Issue #14 (S2): Vault.recordings paged by offset, so a recording captured earlier and
    stored between two pages shifted every later row by one and the next page repeated a
    row. With ``after`` each page starts after the last row seen: every recording once."""
    ids = [_put(vault, i, T0 + dt.timedelta(minutes=i)) for i in range(5)]
    first = vault.recordings(limit=2)
    assert [r.id for r in first] == ids[:2]
    late = _put(vault, 99, T0 - dt.timedelta(hours=1))  # sorts before every row seen
    rest, after = [], page_cursor(first[-1])
    while page := vault.recordings(limit=2, after=after):
        rest += page
        after = page_cursor(page[-1])
    assert [r.id for r in rest] == ids[2:]
    assert late not in {r.id for r in first + rest}
    assert vault.recordings()[0].id == late


def test_reads_through_a_read_session(vault: Vault) -> None:
    """Issue #14 (S2): the listing read through an ordinary session, which on SQLite queues
    behind (and holds up) ingest and custody appends; it now reads through read_sessions, so it
    answers while another connection holds the write lock."""
    _put(vault, 1, T0)
    path = vault.engine.url.database
    assert path is not None
    writer = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        assert len(vault.recordings()) == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": MAX_PAGE + 1}, {"after": "nope!"}])
def test_bad_page_refused(vault: Vault, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="limit|cursor"):
        vault.recordings(**kwargs)  # type: ignore[arg-type]


def test_only_the_service_calls_the_unfiltered_listing() -> None:
    """Issue #14 (S2): Vault.recordings takes no principal and applies no scope; a person's
    request must go through search_recordings with their scope, so nothing that serves people
    (api/, redaction/, vault/access/, vault/casework/) calls it."""
    callers = [f"{path.relative_to(ROOT)}:{n}"
               for package in ("api", "redaction", "vault/access", "vault/casework")
               for path in sorted((ROOT / package).rglob("*.py"))
               for n, line in enumerate(path.read_text().splitlines(), 1)
               if re.search(r"vault\.recordings\(", line)]
    assert callers == []
