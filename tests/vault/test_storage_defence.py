"""Defence in depth on S3 object-lock buckets, against real MinIO and SeaweedFS servers:
a lifecycle backstop past the retention period, and legal holds that follow vault holds."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio import Minio

from vault import Actor, HoldKind, Role, Settings, Vault, place_hold, release_hold, run_retention
from vault.capture import Capture
from vault.storage.objectstore import S3Store
from vault.vault import LIFECYCLE_MARGIN_DAYS

ACTOR = Actor(user="ig-1", role=Role.IG_OFFICER)
T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(params=[pytest.param("minio", marks=pytest.mark.minio), pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)])
def locked_vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Vault, Minio]]:
    server = request.getfixturevalue(f"{request.param}_server")
    settings = Settings(
        home=tmp_path / "home", store_backend="s3", s3_endpoint=server.endpoint,
        s3_access_key=server.access_key, s3_secret_key=server.secret_key,
        s3_bucket=f"locked-{uuid.uuid4().hex[:10]}", s3_object_lock=True,
        retention_overrides={"staff_device": 31},
    )
    client = Minio(server.endpoint, access_key=server.access_key, secret_key=server.secret_key, secure=False)
    with Vault.init(settings) as vault:
        yield vault, client


def test_lifecycle_backstop_is_set_past_the_longest_retention(locked_vault: tuple[Vault, Minio]) -> None:
    vault, client = locked_vault
    assert isinstance(vault.store, S3Store) and vault.store.object_lock
    config = client.get_bucket_lifecycle(vault.settings.s3_bucket)
    assert config is not None
    (rule,) = config.rules
    assert rule.expiration.days == 31 + LIFECYCLE_MARGIN_DAYS
    assert rule.rule_filter.prefix == "recordings/"


def test_legal_hold_follows_vault_holds_including_late_footage(locked_vault: tuple[Vault, Minio]) -> None:
    vault, _ = locked_vault
    store = vault.store
    assert isinstance(store, S3Store)
    early = vault.put_stream(
        io.BytesIO(b"early" * 100), Capture(source_id="cam-9", captured_at=T0), actor=ACTOR
    )
    hold = place_hold(vault, kind=HoldKind.SAR, reason="SAR", reference="SAR-9", source_id="cam-9",
                      window=(T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1)), actor=ACTOR)
    assert store.is_legal_hold(early.object_key)
    # Footage from an agent that was offline arrives later, inside the held window.
    late = vault.put_stream(
        io.BytesIO(b"late" * 100),
        Capture(source_id="cam-9", captured_at=T0 + dt.timedelta(minutes=30)),
        actor=ACTOR,
    )
    outside = vault.put_stream(
        io.BytesIO(b"out" * 100),
        Capture(source_id="cam-9", captured_at=T0 + dt.timedelta(hours=5)),
        actor=ACTOR,
    )
    assert store.is_legal_hold(late.object_key)
    assert not store.is_legal_hold(outside.object_key)

    report = run_retention(vault, now=T0 + dt.timedelta(days=40))
    assert {d.recording_id for d in report.kept} == {early.id, late.id}
    assert store.exists(early.object_key) and not store.exists(outside.object_key)

    release_hold(vault, hold.id, actor=ACTOR, reason="disclosed")
    assert not store.is_legal_hold(early.object_key)
    report = run_retention(vault, now=T0 + dt.timedelta(days=41))
    assert {d.recording_id for d in report.deleted} == {early.id, late.id}
    assert report.errors == []
    assert not store.exists(early.object_key) and not store.exists(late.object_key)
