"""Unfinished uploads on every backend (issue #18 finding 3): ``partials`` lists what a killed
upload left (local ``.tmp-*`` files, S3 multipart uploads) once older than the threshold,
``remove_partial`` removes it, and a finished put leaves none."""

from __future__ import annotations

import datetime as dt
import io

from vault.storage.objectstore import LocalStore, ObjectStore


def test_a_finished_put_leaves_no_partial(store: ObjectStore) -> None:
    """Issue #18 finding 3: the sweep must find nothing after ordinary puts, on every backend."""
    store.put("recordings/ab/one", io.BytesIO(b"x" * 1000))
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    assert store.partials(dt.timedelta(0), now=later) == []


def test_local_temp_files_are_partials_once_old(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue #18 finding 3: the local store's listing hides dot-files, so a killed put's
    ``.tmp-*`` file was never seen; ``partials`` finds it (by mtime), ``remove_partial``
    deletes it and refuses anything that is not a temp file of the store."""
    import pytest

    from vault.errors import InvalidInput
    from vault.storage.objectstore import PartialUpload

    store = LocalStore(tmp_path / "objects")
    store.put("recordings/ab/kept", io.BytesIO(b"k"))
    leftover = store.root / "recordings" / "ab" / ".tmp-00112233aabbccdd"
    leftover.write_bytes(b"z" * 4096)
    assert list(store.list("recordings/")) == ["recordings/ab/kept"]
    now = dt.datetime.now(dt.timezone.utc)
    assert store.partials(dt.timedelta(minutes=10), now=now) == []
    (partial,) = store.partials(dt.timedelta(minutes=10), now=now + dt.timedelta(minutes=11))
    assert partial.key == "recordings/ab/.tmp-00112233aabbccdd" and partial.size == 4096
    store.remove_partial(partial)
    assert not leftover.exists() and store.exists("recordings/ab/kept")
    store.remove_partial(partial)  # gone already: fine
    with pytest.raises(InvalidInput):
        store.remove_partial(PartialUpload("recordings/ab/kept", "recordings/ab/kept", 1, now))
