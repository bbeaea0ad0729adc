"""The hold rule has one definition (vault/storage/hold_rule.py): the SQL form and the
per-recording form agree, on parents and on window edges."""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from vault.actors import Actor, Role
from vault.casework.holds import held_ids, place_hold
from vault.storage.catalog import HoldKind, Recording, SourceKind
from vault.storage.hold_rule import active_holds, held_clause
from vault.config import Settings
from vault.vault import Vault
from vault.capture import Capture

ACTOR = Actor(user="ig-1", role=Role.IG_OFFICER, organisation="Housing")
T0 = dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.timezone.utc)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Vault]:
    """A vault on each catalog: the rule is SQL (a recursive CTE), so both engines run it."""
    options: dict[str, object] = {"home": tmp_path / "home"}
    if request.param == "postgres":
        options["database_url"] = request.getfixturevalue("fresh_postgres_url")
    with Vault.init(Settings(**options)) as v:  # type: ignore[arg-type]
        yield v


def _put(vault: Vault, *, end: dt.datetime | None = None, parent: Recording | None = None) -> Recording:
    return vault.put_stream(
        io.BytesIO(os.urandom(64)),
        Capture(
            source_id="cam-01",
            captured_at=T0,
            captured_end=end,
            source_kind=SourceKind.CCTV,
            parent_id=parent.id if parent else None,
        ),
        actor=ACTOR,
    )


def _both_forms(vault: Vault, recordings: list[Recording]) -> tuple[set[str], set[str]]:
    ids = [r.id for r in recordings]
    with vault.sessions() as session:
        by_sql = set(session.scalars(select(Recording.id).where(Recording.id.in_(ids), held_clause())))
        by_walk = {r.id for r in recordings if active_holds(session, session.get(Recording, r.id))}
    return by_sql, by_walk


def test_sql_form_follows_parents_like_active_holds(vault: Vault) -> None:
    """Issue #14 (hold rule twice): ``held_clause`` ignored the parent rule, so a clip of a held
    master, and a redacted copy of that clip, were listed as not held while retention kept them."""
    master = _put(vault, end=T0 + 10 * MINUTE)
    clip = _put(vault, parent=master)
    copy_of_clip = _put(vault, parent=clip)
    unrelated = _put(vault)
    place_hold(vault, kind=HoldKind.LEGAL, reason="claim", actor=ACTOR, recording_id=master.id)

    by_sql, by_walk = _both_forms(vault, [master, clip, copy_of_clip, unrelated])
    assert by_sql == by_walk == {master.id, clip.id, copy_of_clip.id}
    assert held_ids(vault, [copy_of_clip.id, unrelated.id]) == {copy_of_clip.id}


def test_window_that_only_touches_the_recording_does_not_hold_it(vault: Vault) -> None:
    """Issue #14 (hold rule twice): the SQL form held a recording 12:00-12:10 under a window
    starting at 12:10; windows are half-open, so neither form holds it now."""
    recording = _put(vault, end=T0 + 10 * MINUTE)
    place_hold(vault, kind=HoldKind.SAR, reason="SAR", actor=ACTOR, source_id="cam-01",
               window=(T0 + 10 * MINUTE, T0 + 20 * MINUTE))
    assert _both_forms(vault, [recording]) == (set(), set())

    place_hold(vault, kind=HoldKind.SAR, reason="SAR", actor=ACTOR, source_id="cam-01",
               window=(T0 + 9 * MINUTE, T0 + 20 * MINUTE))
    assert _both_forms(vault, [recording]) == ({recording.id}, {recording.id})
