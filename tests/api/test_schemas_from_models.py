"""The API's public views are built from the table rows (issue #14 item 3, "API schemas ...
built from the models rather than by copying fields by hand").

Each view declares its fields once and reads each from the row's column of the same name
(``api.schemas._RowView``); its ``of`` passes only what it computes. These tests hold that
mapping: every field a view does not compute is a column of its table (a column renamed under
a declared field fails here, not as a silently missing value), no view declares a column that
holds key material or storage locations, and a response carries exactly the view's fields with
the row's values.
"""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from api.schemas import CasePublic, HoldPublic, RecordingPublic, SharePublic
from tests.api.conftest import World
from vault.casework.shares import Share
from vault.storage.catalog import Case, Hold, Recording

VIEWS = [
    (RecordingPublic, Recording, {"held", "kept_until", "clock_offset_s", "clock_note"}),
    (CasePublic, Case, {"organisation"}),
    (HoldPublic, Hold, set()),
    (SharePublic, Share, {"recording_ids", "state"}),
]
#: Column names that must never be a public field (keys, wrapped keys, object-store places,
#: token hashes).
SECRET = ("key", "wrapped", "object", "token", "secret", "nonce")


@pytest.mark.parametrize(("view", "table", "computed"), VIEWS,
                         ids=[v.__name__ for v, _, _ in VIEWS])
def test_every_field_a_view_reads_is_a_column_of_its_table(
    view: type, table: type, computed: set[str]
) -> None:
    """Issue #14 item 3: the fields a view reads from its row are columns of that row's table,
    and the ones it computes are not read from it."""
    columns = set(inspect(table).attrs.keys())
    read = set(view.model_fields) - computed  # type: ignore[attr-defined]
    assert read <= columns, f"{view.__name__} reads no such columns: {read - columns}"
    assert not any(part in name for name in read for part in SECRET), read


def test_a_response_is_the_views_fields_with_the_rows_values(world: World) -> None:
    """Issue #14 item 3: GET /recordings/{id} answers exactly RecordingPublic's fields, each
    read column equal to the catalog row's."""
    rec = world.rec["rec_site"]
    body = world.client.get(f"/recordings/{rec.id}", headers=world.headers("admin")).json()
    assert set(body) == set(RecordingPublic.model_fields)
    for name in ("id", "source_id", "sha256", "size", "original_name", "parent_id"):
        assert body[name] == getattr(rec, name), name
    assert body["media_kind"] == rec.media_kind.value
