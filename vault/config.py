"""The one settings object.

Every setting is an environment variable prefixed ``EVIDENCE_VAULT_`` (or a line in the optional
``EVIDENCE_VAULT_CONFIG`` env file). With nothing set, everything lives under one data directory,
``EVIDENCE_VAULT_HOME`` (default ``~/.evidence-vault``): a SQLite catalog, a local encrypted
object store and a local keyring. Production points ``database_url`` at PostgreSQL and
``store_backend``/``s3_*`` at MinIO or another S3-compatible server.

Build a :class:`Settings` in the entry point and pass it down; nothing reads the environment at
import time and no secret is generated here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

DEFAULT_HOME = Path("~/.evidence-vault")


class Settings(BaseSettings):
    """Evidence vault settings; each field is documented in ``docs/settings.md``."""

    model_config = SettingsConfigDict(
        env_prefix="EVIDENCE_VAULT_",
        env_file=os.environ.get("EVIDENCE_VAULT_CONFIG"),
        extra="ignore",
    )

    home: Path = Field(
        default=DEFAULT_HOME,
        description="Data directory holding the SQLite catalog, local store, keyring and spool.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the catalog; default sqlite:///<home>/catalog.sqlite3.",
    )
    store_backend: Literal["local", "s3"] = Field(
        default="local", description="Object store: 'local' directory or 's3' (MinIO, SeaweedFS...)."
    )
    store_path: Path | None = Field(
        default=None, description="Directory of the local object store; default <home>/objects."
    )
    s3_endpoint: str = Field(default="127.0.0.1:9000", description="S3 endpoint host:port.")
    s3_access_key: SecretStr = Field(default=SecretStr(""), description="S3 access key.")
    s3_secret_key: SecretStr = Field(default=SecretStr(""), description="S3 secret key.")
    s3_bucket: str = Field(default="evidence", description="S3 bucket holding the vault's objects.")
    s3_secure: bool = Field(default=False, description="Use TLS to reach the S3 endpoint.")
    s3_object_lock: bool = Field(
        default=False,
        description="Create the bucket with S3 object lock so held footage gets a legal hold.",
    )
    s3_region: str | None = Field(default=None, description="S3 region, where the server needs one.")
    keyring_path: Path | None = Field(
        default=None, description="Local keyring file (key-encryption keys); default <home>/keyring.json."
    )
    keyring_passphrase: SecretStr | None = Field(
        default=None, description="Optional passphrase protecting the local keyring file."
    )
    key_provider: Literal["keyring", "pkcs11"] = Field(
        default="keyring",
        description="Where the key-encryption keys live: 'keyring' (the local keyring file) or "
        "'pkcs11' (an HSM token through its PKCS#11 library: the keys never leave it; see "
        "docs/deployment.md).",
    )
    pkcs11_module: Path | None = Field(
        default=None,
        description="key_provider=pkcs11: the token's PKCS#11 library, e.g. "
        "/usr/lib/softhsm/libsofthsm2.so.",
    )
    pkcs11_token_label: str | None = Field(
        default=None, description="key_provider=pkcs11: the label of the token holding the keys."
    )
    pkcs11_pin: SecretStr | None = Field(
        default=None,
        description="key_provider=pkcs11: the token's user PIN (give it as a file with "
        "EVIDENCE_VAULT_CONFIG or a secrets mount, not in the environment).",
    )
    pkcs11_key_label: str = Field(
        default="evidence-vault-kek", min_length=1, max_length=200,
        description="key_provider=pkcs11: label prefix of this vault's keys on the token "
        "(distinct per vault when vaults share a token).",
    )
    ledger_key_path: Path | None = Field(
        default=None,
        description="Ed25519 key that signs custody checkpoints; default <home>/ledger-signing.key.",
    )
    ledger_origin: str | None = Field(
        default=None,
        description="Origin line of signed custody checkpoints (names this log). Unset: the one "
        "'init' derived and stored for this vault (<host>/evidence-vault/<random id>); vaults "
        "made before that keep evidence-vault.local/custody. Set, it must match the stored one.",
    )
    checkpoint_every: int = Field(
        default=256, ge=1, description="Sign a custody checkpoint after this many new events."
    )
    checkpoint_interval_s: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="Sign a custody checkpoint at most this many seconds after an event that no "
        "checkpoint covers yet (sensitive events, such as denials, releases, shares, exports and "
        "deletions, are signed at once): the unsigned tail is never older than this.",
    )
    ledger_witness_dir: Path | None = Field(
        default=None,
        description="Directory where the latest signed custody checkpoint is also kept, outside "
        "the catalog, so a rollback of the database is detected; default <home>/checkpoints. "
        "Point it at another disk or a mount of another host that database administrators "
        "cannot write (docs/ledger.md).",
    )
    ledger_verify_workers: int | None = Field(
        default=None,
        ge=1,
        description="Processes that check custody events during a ledger verify (full or "
        "incremental); the hash chain and Merkle tree are still followed in order in one. "
        "Default: one per CPU; 1 checks every event in the verifying process.",
    )
    segment_size: int = Field(
        default=1 << 20,
        ge=4096,
        le=16 << 20,
        description="Plaintext bytes per encrypted segment of stored objects.",
    )
    organisation: str | None = Field(
        default=None,
        max_length=256,
        description="The organisation whose footage this vault holds, for sources at no "
        "registered site. Set it (and register each site's organisation with 'admin site add') "
        "when users of more than one organisation share the vault; unset, footage of "
        "unregistered sites is every organisation's (docs/organisations.md).",
    )
    retention_days: int = Field(
        default=23, ge=1, description="Days after capture at which footage is deleted unless held."
    )
    retention_overrides: dict[str, int] = Field(
        default_factory=dict,
        description="Days per source kind where they differ from retention_days, as JSON, "
        'e.g. {"staff_device": 31}. Kinds: cctv, nvr_export, staff_device, upload.',
    )
    capture_clock_tolerance_s: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="A capture time later than its receipt by more than this many seconds is "
        "flagged (clock_flagged) and retention counts from the receipt instead: footage "
        "stamped in the future must not escape deletion.",
    )
    spool_path: Path | None = Field(
        default=None, description="Ingest spool directory; default <home>/spool."
    )
    agents_file: Path | None = Field(
        default=None,
        description="The ingest agents file (TOML or YAML, see ingest/config.py). The API "
        "(POST /ingest/pulls) and 'ingest pull' read its [[nvrs]]: the site NVRs past footage "
        "may be pulled from (docs/nvr-pull.md). Unset: no NVR can be pulled from the API.",
    )
    denial_burst: int = Field(
        default=20, ge=1,
        description="API: anonymous refusals (no, malformed or unknown token) logged one by one "
        "per client address and window; the rest are summed into one custody event.",
    )
    denial_window_s: int = Field(
        default=60, ge=1, description="API: the window of denial_burst, in seconds."
    )
    queue_url: SecretStr | None = Field(
        default=None,
        description="Redis URL of the job queue (redis://[:password@]host:6379/0), shared by "
        "every API and worker process on every host. Unset: the embedded SQLite queue at "
        "<home>/jobs.sqlite3 (workers on this host only).",
    )
    queue_warn_after_s: int = Field(
        default=300, ge=1,
        description="/readyz warns (200, queue 'warn') when a job has been queued this many "
        "seconds, or when jobs are queued and no worker's heartbeat is fresh.",
    )
    queue_fail_after_s: int = Field(
        default=1800, ge=1,
        description="/readyz fails (503) when the oldest queued job has waited this many "
        "seconds: nobody is running the work people asked for ('evidence-vault worker').",
    )
    queue_resend_after_s: int = Field(
        default=300, ge=1,
        description="Workers' sweep: a job queued this many seconds whose message is no longer "
        "in the queue (Redis restarted without persistence, flushed, or a lost queue file) is "
        "enqueued again; the job row is the truth.",
    )
    redaction_chunk_s: float = Field(
        default=0.0, ge=0,
        description="Redaction: footage longer than one and a half chunks is split at keyframes "
        "into chunks of about this many seconds (120 suits several workers), planned in "
        "parallel (each chunk a job any worker on any host may run) and rendered in parallel, "
        "joined without re-encoding (docs/redaction.md 'Chunked redaction'). 0 (the default): "
        "one pass, however long, which is faster on a single two-core worker.",
    )
    redaction_chunk_overlap_s: float = Field(
        default=2.0, ge=0,
        description="Redaction: seconds each chunk plans beyond its borders, where the tracks "
        "of neighbouring chunks are joined into one person (at least the tracker's one-second "
        "gap).",
    )
    redaction_workers: int = Field(
        default=2, ge=1,
        description="Redaction: chunks one process plans or renders at once (the CLI's chunks, "
        "a render job's chunks). More worker processes plan more chunks at once.",
    )
    redaction_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Redaction: where the face detector runs. 'auto': an NVIDIA GPU where "
        "onnxruntime-gpu is installed in place of onnxruntime and a GPU answers, else the CPU; "
        "'cpu': always the CPU (a GPU kept for other work); 'cuda': the GPU or an error "
        "(detector_unavailable), never a silent fall back to the CPU. Each plan records the "
        "provider that ran it (docs/redaction.md, Stages: Detect).",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="API: sign-in through this OpenID Connect issuer (its 'iss', e.g. "
        "https://login.microsoftonline.com/<tenant>/v2.0) as well as vault API tokens. Off when "
        "unset. Each caller's account (issuer + subject) must be linked to a vault user "
        "('admin user link-oidc' or 'allow-oidc'): the vault decides roles and sites.",
    )
    oidc_audience: str | None = Field(
        default=None, description="API: the 'aud' OIDC tokens must carry (the vault's client id)."
    )
    oidc_jwks_url: str | None = Field(
        default=None,
        description="API: where the issuer publishes its signing keys (JWKS); default: the "
        "jwks_uri of <issuer>/.well-known/openid-configuration.",
    )
    oidc_username_claim: str = Field(
        default="preferred_username",
        description="API: the OIDC claim compared with the vault user name for a first-use bind "
        "an administrator allowed ('admin user allow-oidc'); never used to sign in otherwise "
        "(e.g. preferred_username, upn, email).",
    )
    oidc_algorithms: list[str] = Field(
        default=["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
        description="API: JWS algorithms accepted for OIDC tokens (asymmetric only).",
    )
    oidc_leeway_s: float = Field(
        default=60, ge=0, le=600, description="API: clock skew allowed on OIDC token times, seconds."
    )
    web_cookie_secure: bool = Field(
        default=False,
        description="Web app: mark the session cookie Secure (sent over HTTPS only) and name it "
        "__Host-; turn on behind a TLS reverse proxy, as every production set-up should be.",
    )
    web_session_idle_minutes: int = Field(
        default=30, ge=1, le=24 * 60,
        description="Web app: a session ends after this many minutes without a request.",
    )
    web_session_absolute_hours: int = Field(
        default=10, ge=1, le=24,
        description="Web app: a session ends this many hours after sign-in, however active.",
    )
    web_totp_issuer: str = Field(
        default="Evidence vault", min_length=1, max_length=64,
        description="Web app: the name authenticator apps show beside the second-factor code.",
    )
    web_oidc_client_secret: SecretStr | None = Field(
        default=None,
        description="Web app: the vault's client secret at the OpenID Connect provider "
        "(oidc_issuer; the client id is oidc_audience). Set, the sign-in page offers sign-in "
        "through the provider (authorization code flow with PKCE).",
    )
    web_public_url: str | None = Field(
        default=None,
        description="Web app: the address people reach the vault at (e.g. https://vault.example.org), "
        "for the OpenID Connect redirect address and the share links the web app gives out; "
        "default: the address of each request.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Settings also come from files in ``$EVIDENCE_VAULT_SECRETS_DIR``, one per setting,
        named like its variable (``EVIDENCE_VAULT_PKCS11_PIN``): compose or Kubernetes secrets
        mounted at ``/run/secrets``, which ``docker inspect`` does not show as the environment
        does. Read when settings are built, not at import; the environment wins over a file."""
        secrets_dir = os.environ.get("EVIDENCE_VAULT_SECRETS_DIR")
        if secrets_dir:
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    # Derived locations: the embedded default keeps everything under ``home``.
    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'catalog.sqlite3'}"

    @property
    def objects_dir(self) -> Path:
        return (self.store_path or self.home_dir / "objects").expanduser()

    @property
    def keyring_file(self) -> Path:
        return (self.keyring_path or self.home_dir / "keyring.json").expanduser()

    @property
    def ledger_key_file(self) -> Path:
        return (self.ledger_key_path or self.home_dir / "ledger-signing.key").expanduser()

    @property
    def witness_file(self) -> Path:
        return (self.ledger_witness_dir or self.home_dir / "checkpoints").expanduser() / (
            "latest.checkpoint"
        )

    @property
    def spool_dir(self) -> Path:
        return (self.spool_path or self.home_dir / "spool").expanduser()
