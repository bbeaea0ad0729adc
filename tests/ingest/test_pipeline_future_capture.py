"""The agent path: a future capture time through the spool and pipeline (issue #11 finding 7)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ingest.pipeline import Pipeline
from ingest.spool import Spool
from tests.ingest.media import make_media
from vault.storage.catalog import SourceKind
from vault.config import Settings
from vault.vault import Vault

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
FUTURE = dt.datetime(2099, 1, 1, 12, 0, tzinfo=dt.UTC)


def test_future_capture_through_the_pipeline_is_flagged_and_retained_from_receipt(
    tmp_path: Path,
) -> None:
    """Issue #11 finding 7, agent path: a handed-in file whose stated capture time is 2099
    goes through the spool and pipeline and lands flagged, retention counted from receipt."""
    vault = Vault.init(Settings(home=tmp_path / "home"), clock=lambda: NOW)
    clip = make_media(tmp_path / "handed-in.mp4", seconds=1)
    with Spool(tmp_path / "spool") as spool:
        item = spool.add(
            clip, source="upload", origin="handed-in.mp4", name="handed-in.mp4",
            vault_source="phone-7", source_kind=SourceKind.UPLOAD, mode="copy",
            received_at=NOW, captured_start=FUTURE, time_basis="stated by the uploader",
        )
        Pipeline(vault, spool, agent_name="agent-1", clock_bound_s=2.0).process(item)
    (rec,) = vault.recordings(source_id="phone-7")
    assert rec.clock_flagged and rec.captured_start == FUTURE
    assert rec.retain_until == NOW + dt.timedelta(days=23)
    vault.close()
