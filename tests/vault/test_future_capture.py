"""A capture time in the future cannot keep footage past the retention policy.

The library path (``put_stream``, under every other path in: the ingest pipeline, the HTTP
upload, the CLI ``put``, tested in tests/ingest and tests/api). The footage is stored (refusing
it would lose evidence), its clock flagged, and retention counts from receipt.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from vault.actors import Actor, Role
from vault.storage.catalog import SourceKind
from vault.config import Settings
from vault.ledger.custody import Action
from vault.casework.retention import run_retention
from vault.vault import Vault
from vault.capture import Capture

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
FUTURE = dt.datetime(2099, 1, 1, 12, 0, tzinfo=dt.UTC)
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault.init(Settings(home=tmp_path / "home"), clock=lambda: NOW)


def test_future_capture_is_stored_flagged_and_retained_from_receipt(vault: Vault) -> None:
    """Issue #11 finding 7: captured "2099" was kept until 2099. The recording is stored with
    its stated capture time, flagged, the reason is in its clock record and custody event,
    and retention counts from receipt: the reaper deletes it 23 days later."""
    rec = vault.put_stream(
        io.BytesIO(b"footage" * 100),
        Capture(source_id="cam-09", captured_at=FUTURE, source_kind=SourceKind.CCTV),
        actor=OPERATOR,
    )
    assert rec.captured_start == FUTURE  # the evidence as stated, not rewritten
    assert rec.clock_flagged
    assert rec.retain_until == NOW + dt.timedelta(days=23)
    clock = rec.media_info["clock"]  # type: ignore[index]
    assert clock["future_capture"]["retention_from"] == "received_at"
    assert "after the footage was received" in clock["reason"] and "2099" in clock["reason"]
    (event,) = vault.ledger.events(action=Action.INGESTED, limit=10)
    assert event.event.details["future_capture"]["ahead_s"] > 70 * 365 * 86400
    report = run_retention(vault, now=NOW + dt.timedelta(days=24))
    assert [d.recording_id for d in report.deleted] == [rec.id]


def test_within_tolerance_and_past_times_are_untouched(vault: Vault) -> None:
    """Issue #11 finding 7: ordinary clock jitter (inside ``capture_clock_tolerance_s``) and
    old footage are not flagged; retention counts from capture as before. An end time past
    receipt flags the clock but never moves retention later than the capture start."""
    jitter = vault.put_stream(
        io.BytesIO(b"a"),
        Capture(source_id="cam-1", captured_at=NOW + dt.timedelta(seconds=60)),
        actor=OPERATOR,
    )
    old = vault.put_stream(
        io.BytesIO(b"b"),
        Capture(source_id="cam-1", captured_at=NOW - dt.timedelta(days=3)),
        actor=OPERATOR,
    )
    late_end = vault.put_stream(
        io.BytesIO(b"c"),
        Capture(
            source_id="cam-1",
            captured_at=NOW - dt.timedelta(days=3),
            captured_end=NOW + dt.timedelta(days=1),
        ),
        actor=OPERATOR,
    )
    assert not jitter.clock_flagged and not old.clock_flagged
    assert jitter.retain_until == NOW + dt.timedelta(seconds=60, days=23)
    assert old.retain_until == NOW + dt.timedelta(days=20)
    assert late_end.clock_flagged and late_end.retain_until == old.retain_until
    assert "capture end" in late_end.media_info["clock"]["reason"]  # type: ignore[index]


def test_a_receipt_time_in_the_future_does_not_help(vault: Vault) -> None:
    """Issue #11 finding 7: an agent stating a future receipt (its own clock off) cannot carry
    a future capture past the policy: the vault's clock bounds the receipt."""
    rec = vault.put_stream(
        io.BytesIO(b"d"),
        Capture(source_id="cam-1", captured_at=FUTURE, received_at=FUTURE),
        actor=OPERATOR,
    )
    assert rec.clock_flagged and rec.retain_until == NOW + dt.timedelta(days=23)
