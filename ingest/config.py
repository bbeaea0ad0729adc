"""The agents file: every source an ingest agent runs, in one TOML (or YAML) file.

Example (``agents.toml``)::

    [agent]
    name = "estate-north-agent"      # recorded as the agent host in custody events
    spool_limit_mb = 20480           # back-pressure above this much footage waiting
    clock_offset_bound_s = 2.0       # flag device clocks further off than this

    [[sources]]
    id = "cam-03"                    # the camera id recorded with each segment
    kind = "rtsp"
    site = "Northgate Estate"
    url = "rtsp://10.0.0.23:554/stream1"
    credentials = "env:CAM03_RTSP"   # "user:password", read from the environment
    segment_seconds = 60

    [[sources]]
    id = "nvr-1"
    kind = "nvr_http"
    site = "Northgate Estate"
    url = "https://nvr-1.local/api/exports"
    credentials = "file:/etc/evidence-vault/nvr-1.token"
    cameras = ["cam-03", "cam-04"]   # the only cameras its clips may be filed under

    [[sources]]
    id = "dock-office"
    kind = "dock"
    site = "Estate office"
    path = "/srv/dock"
    layout = "{device}/{wearer}/{file}"

    [[nvrs]]                         # NVRs asked for past footage (``ingest pull``)
    id = "nvr-north"
    kind = "mediamtx"                # or "onvif" (Profile G)
    site = "Northgate Estate"
    url = "http://10.0.0.40:9996"    # mediamtx's playback server
    credentials = "env:NVR_NORTH"    # "user:password"
    cameras = { "cam-03" = "bin-store-1" }   # vault camera id -> the NVR's name for it

``[[nvrs]]`` are not run by the agent: nothing is fetched from them until someone asks for a
window (``evidence-vault ingest pull``, ``POST /ingest/pulls``; see docs/nvr-pull.md).

Credentials are never written in the file: ``credentials`` is a reference, ``env:NAME`` (an
environment variable) or ``file:/path`` (a file holding the secret), resolved when the agent
starts. Every field is described below in its model; unknown fields are refused so that a typo
does not silently fall back to a default.
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from vault.storage.catalog import SourceKind

from .errors import AgentsFileError

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"



def http_url_without_credentials(value: str) -> str:
    """``value`` if it is an http(s) URL with no ``user:pass@``; credentials go by reference
    (``credentials``), never in a URL that logs and process lists show. Raises ValueError."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("url must start with http:// or https://")
    if "@" in value.split("://", 1)[1].split("/", 1)[0]:
        raise ValueError("put credentials in 'credentials', not in the URL")
    return value

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentOptions(_Model):
    """The ``[agent]`` table: settings of the agent process itself."""

    name: str = Field(
        default_factory=socket.gethostname,
        description="Agent name, recorded as the agent host in every ingested event.",
    )
    spool_dir: Path | None = Field(
        default=None,
        description="Spool directory of this agent; default <vault spool_dir>/agent.",
    )
    spool_limit_mb: float = Field(
        default=10240, gt=0, description="Footage waiting in the spool above which intake pauses."
    )
    min_free_mb: float = Field(
        default=512,
        ge=0,
        description="Free space kept on the spool disk: every intake waits (and live sources "
        "log a gap) while a file would take the disk below it.",
    )
    workers: int = Field(default=2, ge=1, le=32, description="Files processed at once.")
    clock_offset_bound_s: float = Field(
        default=2.0, gt=0, description="Device clock offsets beyond this are flagged."
    )
    status_interval_s: float = Field(
        default=1.0, gt=0, description="How often the status file is rewritten."
    )
    retry_min_s: float = Field(
        default=1.0, gt=0, description="First retry delay after a store failure."
    )
    retry_max_s: float = Field(default=60.0, gt=0, description="Longest retry delay.")
    store_probe_s: float = Field(
        default=5.0,
        gt=0,
        description="While the store or disk is failing, how often the agent checks it; when it "
        "answers, every waiting item is retried at once.",
    )
    sweep_after_s: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="Unreadable leftovers of killed uploads (store objects with no catalog row, "
        "temp files, unfinished multipart uploads) older than this are removed.",
    )
    sweep_every_s: float = Field(
        default=3600.0,
        gt=0,
        description="How often the running agent sweeps leftovers (it also sweeps at start).",
    )
    shutdown_grace_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long in-flight work may take to finish."
    )


class _SourceBase(_Model):
    id: str = Field(pattern=_ID_PATTERN, description="Unique source id in this agents file.")
    site: str | None = Field(default=None, description="Site or estate name.")
    credentials: str | None = Field(
        default=None, description="Credentials reference: env:NAME or file:/path (never inline)."
    )
    enabled: bool = Field(default=True, description="Set false to keep a source but not run it.")

    @field_validator("credentials")
    @classmethod
    def _reference_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition(":")
        if not sep or scheme not in ("env", "file") or not rest:
            raise ValueError(
                "credentials must be a reference, env:NAME or file:/path; "
                "secrets are never written in the agents file"
            )
        return value

    def secret(self) -> SecretStr | None:
        """Resolve the credentials reference. Raises AgentsFileError naming the source."""
        return resolve_credentials(self.credentials, source_id=self.id)

    @property
    def vault_kind(self) -> SourceKind:  # pragma: no cover - overridden
        raise NotImplementedError


class RtspSourceConfig(_SourceBase):
    """A camera or NVR channel recorded continuously from its RTSP stream."""

    kind: Literal["rtsp"]
    url: str = Field(description="rtsp:// URL of the stream (without credentials).")
    camera: str | None = Field(
        default=None,
        pattern=_ID_PATTERN,
        description="Camera id in the vault; default the source id.",
    )
    segment_seconds: float = Field(default=60.0, ge=1, le=3600, description="Segment length.")
    transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport.")
    container: Literal["mpegts", "mp4"] = Field(
        default="mpegts",
        description="Segment container: MPEG-TS survives a cut-off write; mp4 is fragmented.",
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="Longest reconnect delay.")
    timeout_s: float = Field(
        default=5.0, gt=0, description="A stream silent this long is treated as dropped."
    )

    @field_validator("url")
    @classmethod
    def _rtsp_url(cls, value: str) -> str:
        if not value.startswith(("rtsp://", "rtsps://")):
            raise ValueError("url must start with rtsp:// or rtsps://")
        if "@" in value.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError("put credentials in 'credentials', not in the URL")
        return value

    @property
    def camera_id(self) -> str:
        return self.camera or self.id

    @property
    def vault_kind(self) -> SourceKind:
        return SourceKind.CCTV


class NvrHttpSourceConfig(_SourceBase):
    """An NVR's clip-export endpoint, polled for new clips (see ``ingest/nvr_http.py``)."""

    kind: Literal["nvr_http"]
    url: str = Field(description="http(s):// URL of the export listing.")
    poll_interval_s: float = Field(default=30.0, gt=0, description="Seconds between polls.")
    timeout_s: float = Field(default=30.0, gt=0, description="HTTP timeout per request.")
    verify_tls: bool = Field(default=True, description="Check the NVR's TLS certificate.")
    auth: Literal["bearer", "basic"] = Field(
        default="bearer", description="How credentials are sent: bearer token or user:password."
    )
    max_attempts: int = Field(default=5, ge=1, description="Download attempts before giving up.")
    cameras: list[Annotated[str, Field(pattern=_ID_PATTERN)]] = Field(
        default_factory=list,
        description=(
            "Camera ids this NVR may file footage under; a listed clip naming any other camera "
            "is refused (the listing must not choose another site's camera). Empty: clips are "
            "filed under the source id and a clip naming another camera is refused."
        ),
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url_without_credentials(value)

    @property
    def vault_kind(self) -> SourceKind:
        return SourceKind.NVR_EXPORT


class DockSourceConfig(_SourceBase):
    """A dock folder that staff-worn devices are offloaded into."""

    kind: Literal["dock"]
    path: Path = Field(description="The dock folder.")
    layout: str = Field(
        default="{device}/{file}",
        description="Where device id and wearer sit in the path, e.g. {device}/{wearer}/{file}.",
    )
    stable_seconds: float = Field(
        default=5.0,
        ge=0,
        description="A file must keep its size and mtime this long to be complete.",
    )
    poll_interval_s: float = Field(default=2.0, gt=0, description="Seconds between dock scans.")
    check_open: bool = Field(
        default=True,
        description="Also wait while any process has the file open for writing (a Linux file "
        "lease sees writers in every PID namespace; /proc is the fallback).",
    )
    incomplete_wait_s: float = Field(
        default=3600.0,
        ge=0,
        description="A file whose headers say it is cut off (WAV sizes, MP4 boxes) is waited "
        "for while modified within this many seconds; after that it is refused into the "
        "rejected folder with the reason.",
    )
    rejected_dir: str = Field(
        default="_rejected", description="Folder (under the dock) that refused files move to."
    )
    spool_mode: Literal["link", "copy"] = Field(
        default="link",
        description="Hard-link dock files into the spool (same disk) or copy them.",
    )

    @field_validator("layout")
    @classmethod
    def _layout(cls, value: str) -> str:
        parts = value.split("/")
        if parts[-1] != "{file}" or "{device}" not in parts:
            raise ValueError("layout must name {device} and end with {file}")
        allowed = {"{device}", "{wearer}", "{file}", "*"}
        if any(p not in allowed for p in parts):
            raise ValueError("layout parts may only be {device}, {wearer}, * and {file}")
        return value

    @property
    def vault_kind(self) -> SourceKind:
        return SourceKind.STAFF_DEVICE


class UploadSourceConfig(_SourceBase):
    """An upload route for ``evidence-vault ingest file`` (handed-in phone video, USB exports)."""

    kind: Literal["upload"]

    @property
    def vault_kind(self) -> SourceKind:
        return SourceKind.UPLOAD


class _NvrBase(_SourceBase):
    site: str = Field(
        description="Site or estate the NVR records; pulled footage is filed there, and its "
        "organisation (vault.casework.sites) decides who may pull from it."
    )
    cameras: dict[Annotated[str, Field(pattern=_ID_PATTERN)], str] = Field(
        min_length=1,
        description="Vault camera id -> the NVR's name for that camera (a mediamtx path, an "
        "ONVIF recording token). Only these cameras can be pulled, and pulled footage is "
        "filed under the vault camera id.",
    )
    timeout_s: float = Field(default=30.0, gt=0, description="Timeout of each request.")
    verify_tls: bool = Field(default=True, description="Check the NVR's TLS certificate.")
    max_attempts: int = Field(
        default=5, ge=1, description="Attempts per piece when the connection drops."
    )
    piece_seconds: float = Field(
        default=300.0,
        ge=1,
        le=3600,
        description="A window is fetched and stored in pieces of at most this long, so a "
        "dropped connection costs at most one piece.",
    )
    max_window_hours: float = Field(
        default=24.0, gt=0, description="Longest window one pull may ask for."
    )

    @field_validator("url", check_fields=False)
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url_without_credentials(value)

    @property
    def vault_kind(self) -> SourceKind:
        return SourceKind.CCTV


class MediamtxNvrConfig(_NvrBase):
    """A mediamtx recorder's playback server (``/list`` and ``/get``; ingest/nvr/mediamtx.py)."""

    kind: Literal["mediamtx"]
    url: str = Field(description="http(s):// URL of the playback server, e.g. http://nvr:9996.")


class OnvifNvrConfig(_NvrBase):
    """An ONVIF Profile G NVR: recording search and RTSP replay (ingest/nvr/onvif.py)."""

    kind: Literal["onvif"]
    url: str = Field(
        description="http(s):// URL of the device service, e.g. http://nvr/onvif/device_service."
    )


NvrConfig = Annotated[
    Union[MediamtxNvrConfig, OnvifNvrConfig],
    Field(discriminator="kind"),
]


SourceConfig = Annotated[
    Union[RtspSourceConfig, NvrHttpSourceConfig, DockSourceConfig, UploadSourceConfig],
    Field(discriminator="kind"),
]


class AgentsFile(_Model):
    """A whole agents file: the ``[agent]`` table and the ``[[sources]]`` list."""

    agent: AgentOptions = Field(default_factory=AgentOptions)
    sources: list[SourceConfig] = Field(default_factory=list)
    nvrs: list[NvrConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> AgentsFile:
        seen: set[str] = set()
        for source in [*self.sources, *self.nvrs]:
            if source.id in seen:
                raise ValueError(f"source id {source.id!r} is used twice")
            seen.add(source.id)
        return self

    def source(self, source_id: str) -> SourceConfig:
        """The source named ``source_id``. Raises AgentsFileError if there is none."""
        for source in self.sources:
            if source.id == source_id:
                return source
        raise AgentsFileError(f"no source {source_id!r} in the agents file")

    def nvr(self, nvr_id: str) -> NvrConfig:
        """The NVR named ``nvr_id``. Raises AgentsFileError listing the NVRs there are."""
        for nvr in self.nvrs:
            if nvr.id == nvr_id:
                return nvr
        known = ", ".join(n.id for n in self.nvrs) or "none: add an [[nvrs]] table"
        raise AgentsFileError(f"no NVR {nvr_id!r} in the agents file (NVRs: {known})")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str = "agents file") -> AgentsFile:
        """Validate parsed data. Raises AgentsFileError naming the bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            raise AgentsFileError(f"{origin}: {problems}") from None


def load_agents_file(path: Path) -> AgentsFile:
    """Read and validate an agents file (``.toml``, or ``.yaml``/``.yml``).

    Returns the validated file. Raises AgentsFileError when it is missing, unparsable or invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AgentsFileError(f"cannot read agents file {path}: {error.strerror}") from None
    data: Any
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML ships with our dependencies
            raise AgentsFileError("YAML agents files need PyYAML; use TOML instead") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise AgentsFileError(f"{path}: not valid YAML: {error}") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise AgentsFileError(f"{path}: not valid TOML: {error}") from None
    if not isinstance(data, dict):
        raise AgentsFileError(f"{path}: expected a table with [agent] and [[sources]]")
    return AgentsFile.from_dict(data, origin=str(path))


def resolve_credentials(reference: str | None, *, source_id: str) -> SecretStr | None:
    """The secret behind ``env:NAME`` or ``file:/path``; None when there is no reference.

    Raises AgentsFileError naming the source and the reference (never the secret).
    """
    if reference is None:
        return None
    scheme, _, rest = reference.partition(":")
    if scheme == "env":
        value = os.environ.get(rest)
        if value is None:
            raise AgentsFileError(f"source {source_id}: environment variable {rest} is not set")
        return SecretStr(value)
    if scheme == "file":
        try:
            return SecretStr(Path(rest).expanduser().read_text(encoding="utf-8").strip())
        except OSError as error:
            raise AgentsFileError(
                f"source {source_id}: cannot read credentials file {rest}: {error.strerror}"
            ) from None
    raise AgentsFileError(f"source {source_id}: unknown credentials reference {scheme}:")


__all__ = [
    "AgentOptions",
    "AgentsFile",
    "DockSourceConfig",
    "MediamtxNvrConfig",
    "NvrConfig",
    "NvrHttpSourceConfig",
    "OnvifNvrConfig",
    "RtspSourceConfig",
    "SourceConfig",
    "UploadSourceConfig",
    "load_agents_file",
    "resolve_credentials",
]
