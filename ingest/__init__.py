"""Ingest agents: footage from cameras (RTSP), NVR exports (HTTP), staff-device docks and
uploads, through a durable local spool, into the vault.

    source -> spool -> probe -> hash, encrypt, store, catalog, custody -> verify -> acknowledge

Start with :class:`Agent` (``evidence-vault ingest run``) or :func:`ingest_files`
(``evidence-vault ingest file``); the agents file is described in ``ingest/config.py``.
Past footage is pulled from a site's NVR with :func:`pull` (``evidence-vault ingest pull``).
"""

from .agent import Agent, agent_spool_dir, read_status
from .clock import ClockCheck, check_clock
from .config import (
    AgentOptions,
    AgentsFile,
    DockSourceConfig,
    MediamtxNvrConfig,
    NvrConfig,
    NvrHttpSourceConfig,
    OnvifNvrConfig,
    RtspSourceConfig,
    UploadSourceConfig,
    load_agents_file,
)
from .dock import DockSource
from .errors import (
    AgentsFileError,
    ChecksumMismatch,
    IngestError,
    NotMedia,
    NvrAuthFailed,
    NvrError,
    NvrUnreachable,
    OriginRefused,
    SourceError,
    SpoolError,
    SpoolFull,
    SpoolLocked,
)
from .nvr_http import NvrHttpSource
from .pipeline import CRASH_ENV, CrashPoint, Pipeline
from .probe import MediaInfo, probe
from .pull import (
    Gap,
    GapReason,
    PulledPiece,
    PullProgress,
    PullReport,
    pull,
    pull_spool_dir,
)
from .rtsp import RtspSource
from .sources import Source, SourceContext
from .spool import ItemState, Spool, SpoolItem, inspect_spool
from .upload import UploadResult, UploadSource, ingest_files

__all__ = [
    "Agent",
    "AgentOptions",
    "AgentsFile",
    "AgentsFileError",
    "CRASH_ENV",
    "ChecksumMismatch",
    "ClockCheck",
    "CrashPoint",
    "DockSource",
    "DockSourceConfig",
    "Gap",
    "GapReason",
    "IngestError",
    "ItemState",
    "MediaInfo",
    "MediamtxNvrConfig",
    "NotMedia",
    "NvrAuthFailed",
    "NvrConfig",
    "NvrError",
    "NvrHttpSource",
    "NvrHttpSourceConfig",
    "NvrUnreachable",
    "OnvifNvrConfig",
    "OriginRefused",
    "Pipeline",
    "PullProgress",
    "PullReport",
    "PulledPiece",
    "RtspSource",
    "RtspSourceConfig",
    "Source",
    "SourceContext",
    "SourceError",
    "Spool",
    "SpoolError",
    "SpoolFull",
    "SpoolItem",
    "SpoolLocked",
    "UploadResult",
    "UploadSource",
    "UploadSourceConfig",
    "agent_spool_dir",
    "check_clock",
    "ingest_files",
    "inspect_spool",
    "load_agents_file",
    "probe",
    "pull",
    "pull_spool_dir",
    "read_status",
]
