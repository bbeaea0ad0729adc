"""The agents file: TOML and YAML, credentials by reference only, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import (
    AgentsFile,
    DockSourceConfig,
    NvrHttpSourceConfig,
    RtspSourceConfig,
    load_agents_file,
    resolve_credentials,
)
from ingest.errors import AgentsFileError
from vault.storage.catalog import SourceKind
from vault.errors import ConfigError

TOML = """
[agent]
name = "estate-north"
spool_limit_mb = 100
clock_offset_bound_s = 1.5

[[sources]]
id = "cam-03"
kind = "rtsp"
site = "Northgate"
url = "rtsp://127.0.0.1:8554/cam3"
credentials = "env:CAM03_RTSP"
segment_seconds = 2

[[sources]]
id = "nvr-1"
kind = "nvr_http"
url = "http://127.0.0.1:9/exports"
credentials = "file:/nonexistent/token"

[[sources]]
id = "dock-1"
kind = "dock"
path = "/srv/dock"
layout = "{device}/{wearer}/{file}"

[[sources]]
id = "handed-in"
kind = "upload"
"""


def test_toml_agents_file_loads_every_kind(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(TOML)
    agents = load_agents_file(path)
    assert agents.agent.name == "estate-north"
    assert agents.agent.spool_limit_mb == 100
    kinds = [s.kind for s in agents.sources]
    assert kinds == ["rtsp", "nvr_http", "dock", "upload"]
    cam = agents.source("cam-03")
    assert isinstance(cam, RtspSourceConfig)
    assert cam.camera_id == "cam-03" and cam.segment_seconds == 2
    assert cam.vault_kind == SourceKind.CCTV
    assert isinstance(agents.source("nvr-1"), NvrHttpSourceConfig)
    dock = agents.source("dock-1")
    assert isinstance(dock, DockSourceConfig) and dock.vault_kind == SourceKind.STAFF_DEVICE


def test_yaml_agents_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(
        "agent:\n  name: a1\nsources:\n  - id: dock-1\n    kind: dock\n    path: /srv/dock\n"
    )
    agents = load_agents_file(path)
    assert agents.sources[0].id == "dock-1"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[[sources]]\nid = "c"\nkind = "rtsp"\nurl = "rtsp://u:p@host/x"\n', "credentials"),
        (
            '[[sources]]\nid = "c"\nkind = "rtsp"\nurl = "rtsp://h/x"\ncredentials = "hunter2"\n',
            "reference",
        ),
        ('[[sources]]\nid = "c"\nkind = "dock"\npath = "/d"\nstable_secs = 3\n', "stable_secs"),
        (
            '[[sources]]\nid = "c"\nkind = "dock"\npath = "/d"\n[[sources]]\nid = "c"\nkind = "dock"\npath = "/e"\n',
            "twice",
        ),
        ('[[sources]]\nid = "c"\nkind = "ftp"\n', "kind"),
        ('[[sources]]\nid = "c"\nkind = "dock"\npath = "/d"\nlayout = "{file}"\n', "device"),
        ("not = [valid", "TOML"),
    ],
)
def test_bad_agents_files_are_refused_with_the_field(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    with pytest.raises(AgentsFileError, match=needle) as info:
        load_agents_file(path)
    assert isinstance(info.value, ConfigError)  # exit status 9 in the CLI
    assert "hunter2" not in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(AgentsFileError, match="cannot read"):
        load_agents_file(tmp_path / "nope.toml")


def test_credentials_resolve_from_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAM_SECRET", "user:pass")
    assert resolve_credentials("env:CAM_SECRET", source_id="c").get_secret_value() == "user:pass"  # type: ignore[union-attr]
    token = tmp_path / "token"
    token.write_text("abc\n")
    assert resolve_credentials(f"file:{token}", source_id="c").get_secret_value() == "abc"  # type: ignore[union-attr]
    monkeypatch.delenv("CAM_SECRET")
    with pytest.raises(AgentsFileError, match="CAM_SECRET is not set"):
        resolve_credentials("env:CAM_SECRET", source_id="c")
    assert resolve_credentials(None, source_id="c") is None


def test_default_agents_file_is_valid() -> None:
    agents = AgentsFile()
    assert agents.sources == [] and agents.agent.workers == 2
