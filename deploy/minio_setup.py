"""Give the vault its own MinIO user, allowed its bucket and nothing else (least privilege).

Run once per deployment, and again safely (every step is idempotent), by compose's
``minio-setup`` service before the vault's ``init``; the MinIO root credentials stay in this
one-shot container and never reach the vault's. It talks to MinIO's admin API through
``minio.MinioAdmin`` (the API ``mc admin`` uses) and does three things:

1. creates the vault's bucket with S3 object lock (so legal holds work) if it is missing, as
   root: the vault's user cannot create, delete or reconfigure buckets;
2. writes the policy ``<bucket>-vault``: the object and listing actions the vault uses
   (``vault/storage/objectstore/s3.py``) on that bucket only, and not ``s3:BypassGovernanceRetention``,
   ``s3:PutObjectRetention``, ``s3:PutBucketObjectLockConfiguration``, ``s3:PutBucketPolicy``,
   ``s3:DeleteBucket`` or any ``admin:`` action;
3. creates (or updates the secret of) the vault's user and attaches that policy to it alone.

Settings come from the environment, or from files named like the variable in
``$EVIDENCE_VAULT_SECRETS_DIR`` (compose secrets):

    MINIO_ROOT_USER, MINIO_ROOT_PASSWORD      the root credentials (this script only)
    EVIDENCE_VAULT_S3_ENDPOINT                host:port (the balancer in compose)
    EVIDENCE_VAULT_S3_BUCKET                  the vault's bucket
    EVIDENCE_VAULT_S3_ACCESS_KEY              the vault's user
    EVIDENCE_VAULT_S3_SECRET_KEY              and its secret (8-40 characters for MinIO)
    EVIDENCE_VAULT_S3_SECURE                  "true" to reach MinIO over TLS

Exit status 0 when the user, policy and bucket are in place; 1 with one line on stderr saying
what is wrong otherwise. tests/deploy/test_least_privilege.py runs this file against a real
MinIO and checks what the user can and cannot do.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

#: What the vault does to objects in its bucket: store, read, delete every version when
#: footage is shredded, place and lift legal holds, clean up abandoned multipart uploads.
OBJECT_ACTIONS = [
    "s3:PutObject",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectLegalHold",
    "s3:GetObjectLegalHold",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
#: What it asks of the bucket itself: find it, list it (versions and uploads included), read
#: its object-lock setting, and keep its lifecycle rule (defence in depth, DESIGN.md).
BUCKET_ACTIONS = [
    "s3:GetBucketLocation",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketVersioning",
    "s3:GetLifecycleConfiguration",
    "s3:PutLifecycleConfiguration",
]


class SetupError(Exception):
    """A setting is missing or MinIO refused a step; the message says which."""


def policy_for(bucket: str) -> dict[str, Any]:
    """The IAM policy document allowing the vault's actions on ``bucket`` and nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": BUCKET_ACTIONS, "Resource": [f"arn:aws:s3:::{bucket}"]},
            {"Effect": "Allow", "Action": OBJECT_ACTIONS, "Resource": [f"arn:aws:s3:::{bucket}/*"]},
        ],
    }


def policy_name(bucket: str) -> str:
    """The name the policy is stored under in MinIO."""
    return f"{bucket}-vault"


def _setting(name: str, *, required: bool = True) -> str:
    value = os.environ.get(name)
    secrets_dir = os.environ.get("EVIDENCE_VAULT_SECRETS_DIR")
    if value is None and secrets_dir and (Path(secrets_dir) / name).is_file():
        value = (Path(secrets_dir) / name).read_text().strip()
    if required and not value:
        raise SetupError(f"{name} is not set (environment, or a file in $EVIDENCE_VAULT_SECRETS_DIR)")
    return value or ""


def setup(*, endpoint: str, root_user: str, root_password: str, bucket: str,
          access_key: str, secret_key: str, secure: bool = False) -> None:
    """Create the bucket (object lock), the bucket-only policy and the vault's user.

    Raises SetupError when the vault's user would be root itself or MinIO refuses a step.
    """
    from minio import Minio, MinioAdmin
    from minio.credentials.providers import StaticProvider
    from minio.error import MinioAdminException, S3Error

    if access_key == root_user:
        raise SetupError("EVIDENCE_VAULT_S3_ACCESS_KEY must be the vault's own user, not MinIO's root")
    root = Minio(endpoint, access_key=root_user, secret_key=root_password, secure=secure)
    admin = MinioAdmin(endpoint=endpoint, credentials=StaticProvider(root_user, root_password),
                       secure=secure)
    name = policy_name(bucket)
    try:
        if not root.bucket_exists(bucket):
            root.make_bucket(bucket, object_lock=True)
        admin.policy_add(name, policy=policy_for(bucket))
        admin.user_add(access_key, secret_key)  # sets the secret again if the user exists
        attached = json.loads(admin.user_info(access_key)).get("policyName") or ""
        if attached != name:
            if attached:  # the user had other policies: keep only the vault's
                admin.detach_policy([p for p in attached.split(",") if p], user=access_key)
            admin.attach_policy([name], user=access_key)
    except (MinioAdminException, S3Error) as exc:
        raise SetupError(f"MinIO at {endpoint} refused the vault's user setup: {exc}") from None


def main() -> int:
    """Run :func:`setup` from the environment; print one line; return the exit status."""
    try:
        bucket = _setting("EVIDENCE_VAULT_S3_BUCKET")
        access_key = _setting("EVIDENCE_VAULT_S3_ACCESS_KEY")
        setup(endpoint=_setting("EVIDENCE_VAULT_S3_ENDPOINT"),
              root_user=_setting("MINIO_ROOT_USER"), root_password=_setting("MINIO_ROOT_PASSWORD"),
              bucket=bucket, access_key=access_key,
              secret_key=_setting("EVIDENCE_VAULT_S3_SECRET_KEY"),
              secure=_setting("EVIDENCE_VAULT_S3_SECURE", required=False).lower() == "true")
    except SetupError as exc:
        print(f"minio setup: {exc}", file=sys.stderr)
        return 1
    print(f"minio setup: user {access_key} may use bucket {bucket} only (policy {policy_name(bucket)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
