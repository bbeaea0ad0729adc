"""Object store: one small interface, two backends, one file each.

``base.py`` holds the :class:`ObjectStore` protocol and the rules below; ``local.py`` and
``s3.py`` one backend each (as httpx keeps ``_transports/``); :func:`open_store` picks one.

:class:`LocalStore` keeps objects as files under one directory (the embedded default, no server).
:class:`S3Store` speaks plain S3 through the ``minio`` client, so any S3-compatible server works
(MinIO, SeaweedFS, AWS); it uses S3 object lock (legal hold) and lifecycle where the bucket offers
them. Both pass the same conformance suite (``tests/vault/test_objectstore.py``).

The store only ever sees ciphertext; keys name objects, never people or footage.

Rules both backends keep:

1. Keys are 1-1024 characters of ``[A-Za-z0-9._/-]``, ``/``-separated, with no empty segment and
   no segment starting with ``.`` (so no ``.``/``..`` and no clash with the local store's temp
   files); anything else is :class:`~vault.errors.InvalidInput`.
2. Objects are immutable: putting a key that exists raises :class:`~vault.errors.InvalidInput`.
3. A missing object is :class:`~vault.errors.NotFound`; a store that fails or cannot be reached
   is :class:`~vault.errors.StorageError`, one line naming the key or endpoint and the reason.
4. ``read_at`` returns exactly the bytes asked for or raises :class:`~vault.errors.InvalidInput`
   when the range runs past the end (a short read would hide truncation).
5. ``delete`` removes every version (versioned and object-lock buckets too), is idempotent and
   refuses, before removing anything, when a version is under legal hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import ObjectInfo, ObjectStore, PartialUpload, validate_key
from .local import LocalStore
from .s3 import S3Store

if TYPE_CHECKING:
    from vault.config import Settings

__all__ = [
    "LocalStore",
    "ObjectInfo",
    "ObjectStore",
    "PartialUpload",
    "S3Store",
    "open_store",
    "validate_key",
]


def open_store(settings: Settings) -> ObjectStore:
    """Return the object store ``settings`` select (no network I/O; call ``check()`` to probe).

    Raises InvalidInput for an impossible S3 part size.
    """
    if settings.store_backend == "s3":
        return S3Store(
            settings.s3_endpoint,
            settings.s3_access_key.get_secret_value(),
            settings.s3_secret_key.get_secret_value(),
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            object_lock=settings.s3_object_lock,
        )
    return LocalStore(settings.objects_dir)
