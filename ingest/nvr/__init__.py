"""NVR clients for pulling past footage (ingest/pull.py): one module per kind of NVR.

- ``mediamtx``: mediamtx's recorder and playback server (``/list``, ``/get``), mediamtx.py.
- ``onvif``: ONVIF Profile G recording search (onvif.py) and RTSP replay (replay.py).

:func:`open_nvr` builds the client an agents-file ``[[nvrs]]`` entry names; every client meets
:class:`~ingest.nvr.base.Nvr`.
"""

from __future__ import annotations

from ..config import MediamtxNvrConfig, NvrConfig
from .base import Fetch, FileNvr, Listing, Nvr, ReplayNvr, Span
from .mediamtx import MediamtxNvr
from .onvif import OnvifNvr
from .replay import Replayed


def open_nvr(config: NvrConfig) -> Nvr:
    """The client for ``config``'s kind of NVR. Raises AgentsFileError (credentials)."""
    if isinstance(config, MediamtxNvrConfig):
        return MediamtxNvr(config)
    return OnvifNvr(config)


__all__ = [
    "Fetch",
    "FileNvr",
    "Listing",
    "MediamtxNvr",
    "Nvr",
    "OnvifNvr",
    "ReplayNvr",
    "Replayed",
    "Span",
    "open_nvr",
]
