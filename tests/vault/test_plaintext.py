"""Decrypted footage and packages the vault writes are private: files 0600, folders 0700.

Each test runs under umask 000, where a file created with Python's default mode would be
world-readable (0666): the mode must come from the vault, not from the caller's umask.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import MediaKind
from vault.config import Settings
from vault.casework.disclosure import build_export
from vault.errors import InvalidInput
from vault.casework.jobs import spool_dir
from vault.plaintext import open_private, private_dir, private_partial
from vault.vault import Vault
from vault.capture import Capture

OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR)
WHY = Purpose("test", reference="T/1")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.init(Settings(home=tmp_path / "home", spool_path=tmp_path / "spool")) as v:
        yield v


def _put(vault: Vault, data: bytes = b"footage " * 1000) -> str:
    import datetime as dt

    return vault.put_stream(
        io.BytesIO(data),
        Capture(source_id="cam-1", captured_at=dt.datetime.now(dt.UTC), media_kind=MediaKind.VIDEO),
        actor=OPERATOR,
    ).id


@pytest.mark.usefixtures("open_umask")
def test_export_file_is_0600_even_over_a_world_readable_file(vault: Vault, tmp_path: Path) -> None:
    """Issue #11 finding 11: ``get -o`` (Vault.export_file) wrote decrypted footage 0644
    (0666 under this umask). It is 0600, also when it replaces an existing readable file,
    and no partial file is left beside it."""
    rid = _put(vault)
    out = tmp_path / "out" / "clip.mp4"
    out.parent.mkdir()
    out.write_bytes(b"old")
    os.chmod(out, 0o644)
    vault.export_file(rid, out, actor=OPERATOR, purpose=WHY)
    assert mode(out) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["clip.mp4"]
    with pytest.raises(InvalidInput, match="not a folder"):
        vault.export_file(rid, tmp_path / "missing" / "x.mp4", actor=OPERATOR, purpose=WHY)


@pytest.mark.usefixtures("open_umask")
def test_disclosure_package_and_its_spool_work_are_private(vault: Vault, tmp_path: Path) -> None:
    """Issue #11 finding 11: ``export create -o`` and the job's package in the spool were
    world-readable ZIPs of footage. The package is 0600 from creation; the spool and every
    work folder are 0700 while the footage is decrypted there."""
    rid = _put(vault)
    seen: list[int] = []

    def playable(master: Path, out: Path) -> bool:  # called while the masters are decrypted
        seen.extend([mode(master.parent.parent), mode(master), mode(vault.settings.spool_dir)])
        return False

    package = tmp_path / "package.zip"
    build_export(vault, [rid], package, actor=OPERATOR, purpose=WHY, recipient="DC Shaw",
                 recipient_org="West Yorkshire Police", playable=playable)
    assert mode(package) == 0o600
    assert seen == [0o700, 0o600, 0o700]
    with zipfile.ZipFile(package) as z:
        assert "manifest.json" in z.namelist()
    with spool_dir(vault, "job-") as work:
        assert mode(work) == 0o700


@pytest.mark.usefixtures("open_umask")
def test_helpers(tmp_path: Path) -> None:
    """Issue #11 finding 11: the helpers every writer of plaintext uses. A file is 0600 at
    creation and refuses a planted file or symlink at its name; a folder is 0700."""
    folder = private_dir(tmp_path / "a" / "b")
    assert mode(folder) == 0o700
    with open_private(folder / "f") as f:
        f.write(b"x")
    assert mode(folder / "f") == 0o600
    os.symlink(tmp_path / "elsewhere", folder / "link")
    with pytest.raises(OSError):
        open_private(folder / "link")
    assert not (tmp_path / "elsewhere").exists()
    partial, handle = private_partial(folder / "g")
    handle.close()
    assert mode(partial) == 0o600 and partial.name.startswith(".g.partial-")


@pytest.mark.usefixtures("open_umask")
def test_cli_get_and_export_create_write_0600(tmp_path: Path) -> None:
    """Issue #11 finding 11, CLI paths: ``get -o`` and ``export create -o``."""
    import json

    from typer.testing import CliRunner

    from api.cli import app

    runner = CliRunner()
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home")}
    assert runner.invoke(app, ["init"], env=env).exit_code == 0
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(5000))
    put = runner.invoke(app, ["put", str(clip), "--source", "cam-1", "--captured-at",
                              "2026-11-25T14:32:00Z", "--json"], env=env)
    rid = json.loads(put.stdout)["id"]
    got = runner.invoke(app, ["get", rid, "-o", str(tmp_path / "got.mp4")], env=env)
    assert got.exit_code == 0, got.output
    exported = runner.invoke(app, ["export", "create", rid, "-o", str(tmp_path / "p.zip"),
                                   "--recipient", "DC Shaw", "--recipient-org", "WYP",
                                   "--purpose", "prosecution"], env=env)
    assert exported.exit_code == 0, exported.output
    assert mode(tmp_path / "got.mp4") == 0o600
    assert mode(tmp_path / "p.zip") == 0o600
