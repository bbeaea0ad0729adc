"""What every NVR client offers a pull: the recordings it holds, and one stretch of them.

    class Nvr(Protocol):
        id, kind                      the agents-file NVR id and its kind ("mediamtx", "onvif")
        describe()                    who it is, for custody: id, kind, site, URL (no secrets)
        listing(camera, start, end)   the spans of footage it holds in [start, end), its clock
        oldest(camera)                when its oldest footage of the camera starts (retention)
        close()

    class FileNvr(Nvr):               footage arrives as a file the NVR cuts (mediamtx /get)
        fetch(camera, start, end)     a byte stream of that stretch; resumed by bytes

    class ReplayNvr(Nvr):             footage arrives as frames replayed (ONVIF RTSP replay)
        replay(camera, start, end, journal=, out=, ...)   the stretch saved as MP4 at ``out``;
                                      resumed by frames from the journal beside it

``camera`` is always the NVR's own name for the camera (the agents file maps vault camera ids to
it). Times are timezone-aware UTC. A client raises :class:`~ingest.errors.NvrUnreachable`,
:class:`~ingest.errors.NvrAuthFailed` or :class:`~ingest.errors.NvrError`, never a transport
library's exception, so ingest/pull.py can tell the person what went wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .replay import Replayed


@dataclass(frozen=True)
class Span:
    """A stretch of continuous footage the NVR holds: ``start <= t < end`` (UTC)."""

    start: dt.datetime
    end: dt.datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Listing:
    """The NVR's answer to "what do you hold of this camera in this window".

    ``server_time`` is the NVR's clock as it stated it when it answered (an HTTP ``Date``
    header, an ONVIF ``GetSystemDateAndTime``); ``server_time_resolution_s`` is how finely the NVR states its clock (``Date``: 1 s), so an
    offset smaller than that is not evidence of drift.
    """

    spans: tuple[Span, ...]
    server_time: dt.datetime | None = None
    server_time_resolution_s: float = 0.0


class Fetch(Protocol):
    """One answer carrying footage: iterate :meth:`chunks`; ``resumable`` says whether the NVR
    honoured a byte offset (HTTP Range) or is sending the stretch from its first byte again."""

    resumable: bool

    def chunks(self) -> Iterator[bytes]: ...


@runtime_checkable
class Nvr(Protocol):
    """An NVR client (see the module docstring)."""

    id: str
    kind: str

    def describe(self) -> dict[str, Any]:
        """JSON-ready: ``id``, ``kind``, ``site``, ``url`` (without credentials)."""
        ...

    def listing(self, camera: str, start: dt.datetime, end: dt.datetime) -> Listing:
        """The spans of ``camera``'s footage in ``[start, end)``, clipped to it, oldest first.

        Raises NvrUnreachable, NvrAuthFailed, NvrError.
        """
        ...

    def oldest(self, camera: str) -> dt.datetime | None:
        """Start of the oldest footage of ``camera`` the NVR still holds; None if it holds none.

        Raises NvrUnreachable, NvrAuthFailed, NvrError.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class FileNvr(Nvr, Protocol):
    """An NVR that cuts a stretch into a file and sends its bytes (HTTP)."""

    def fetch(
        self, camera: str, start: dt.datetime, end: dt.datetime, *, offset: int = 0
    ) -> AbstractContextManager[Fetch]:
        """Open a stream of ``camera``'s footage for ``[start, end)`` (from byte ``offset``
        where the NVR supports ranges). Raises NvrUnreachable, NvrAuthFailed, NvrError."""
        ...


@runtime_checkable
class ReplayNvr(Nvr, Protocol):
    """An NVR that replays a stretch as a stream of frames (RTSP), saved by the client."""

    def replay(
        self,
        camera: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        journal: Path,
        out: Path,
        max_attempts: int,
        tell: Callable[[int, str], None],
    ) -> Replayed:
        """Replay ``[start, end)`` of ``camera`` and save it as MP4 at ``out``, the frames
        journalled at ``journal`` as they arrive (a rerun resumes from it; removed once ``out``
        is written). Raises NvrAuthFailed at once; NvrUnreachable, NvrError after
        ``max_attempts``."""
        ...


__all__ = ["Fetch", "FileNvr", "Listing", "Nvr", "ReplayNvr", "Span"]
