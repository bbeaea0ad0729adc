"""The agent's custody events and the one vocabulary of event kinds (issue #14 item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import Pipeline
from ingest.spool import Spool
from vault.config import Settings
from vault.ledger.events import UndeclaredEvent
from vault.vault import Vault


def test_an_undeclared_event_kind_from_the_agent_is_raised_not_logged(tmp_path: Path) -> None:
    """Issue #14 item 2: the agent logs and carries on when the ledger is briefly unavailable,
    but an event kind the vocabulary does not declare is a defect: swallowed like an outage,
    every such event would be lost with only a log line. It is raised, and nothing is appended."""
    vault = Vault.init(Settings(home=tmp_path / "home"))
    try:
        before = vault.ledger.size()
        with Spool(tmp_path / "spool") as spool:
            pipeline = Pipeline(vault, spool, agent_name="agent-1")
            with pytest.raises(UndeclaredEvent):
                pipeline.record_custody("ingest.never_declared", {"ingest_source": "dock"})
            pipeline.record_custody("ingest.rejected", {"ingest_source": "dock"})
        assert vault.ledger.size() == before + 1
    finally:
        vault.close()
