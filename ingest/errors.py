"""Errors raised by the ingest agents.

Every ingest error is a :class:`vault.errors.VaultError`, so the CLI maps it to an exit status
like any other (configuration problems exit 9, refused input 8, integrity 4, storage 5).
Messages name the source, the spool item or the file, never credentials.

    VaultError
    └── IngestError               base of everything below
        ├── AgentsFileError       (also ConfigError) the agents file cannot be used
        ├── NotMedia              (also InvalidInput) the file is not usable media: empty,
        │                         truncated, not a container ffmpeg knows, no audio or video
        ├── SpoolError            the local spool cannot be used
        │   ├── SpoolLocked       another agent process holds this spool
        │   └── SpoolFull         back-pressure: the spool reached its limit
        └── SourceError           a source failed (stream down, HTTP error); carries source id
            ├── SourceChanged     a source file changed while it was being spooled (a
            │                     writer came back); it is offered again once it settles
            ├── ChecksumMismatch  (also IntegrityError) a download differs from the checksum
            │                     its source offered
            ├── OriginRefused     a URL or redirect pointed away from the source's own origin;
            │                     nothing was sent there
            └── NvrError          an NVR asked for past footage (ingest/pull.py) answered
                │                 badly: an HTTP or SOAP error, a listing it cannot explain
                ├── NvrUnreachable  the NVR does not answer (down, wrong address, firewall)
                └── NvrAuthFailed   the NVR refused the vault's credentials for it
"""

from __future__ import annotations

from vault.errors import ConfigError, IntegrityError, InvalidInput, VaultError


class IngestError(VaultError):
    """Base class of every ingest error."""


class AgentsFileError(IngestError, ConfigError):
    """The agents file is missing, unreadable or invalid (names the file and the field)."""


class NotMedia(IngestError, InvalidInput):
    """A file the pipeline refuses, with the reason (``reason``) and the file name (``name``)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class SpoolError(IngestError):
    """The local spool directory or its journal cannot be used."""


class SpoolLocked(SpoolError):
    """Another process holds the spool's lock (one agent per spool)."""


class SpoolFull(SpoolError):
    """The spool reached its configured limit; intake pauses until the store catches up."""

    def __init__(self, message: str, *, used: int, limit: int) -> None:
        super().__init__(message)
        self.used = used
        self.limit = limit


class SourceError(IngestError):
    """A source failed: a stream dropped, an export endpoint answered badly."""

    def __init__(self, message: str, *, source_id: str | None = None) -> None:
        super().__init__(message)
        self.source_id = source_id


class SourceChanged(SourceError):
    """A source file changed while it was being spooled; nothing was kept of that attempt."""


class ChecksumMismatch(SourceError, IntegrityError):
    """A downloaded clip does not match the checksum its source offered."""


class OriginRefused(SourceError):
    """A clip URL or redirect pointed away from the export listing's origin (scheme, host,
    port); the request was not sent, so neither credentials nor the agent's network position
    reached the other host (issue #11 finding 5)."""


class NvrError(SourceError):
    """An NVR asked for past footage answered with an error; ``source_id`` names the NVR."""


class NvrUnreachable(NvrError):
    """The NVR did not answer at all (connection refused, timed out, name unknown); nothing
    was pulled."""


class NvrAuthFailed(NvrError):
    """The NVR refused the credentials the agents file gives for it (HTTP 401/403, a SOAP
    ``NotAuthorized`` fault); nothing was pulled."""


__all__ = [
    "AgentsFileError",
    "ChecksumMismatch",
    "IngestError",
    "NotMedia",
    "NvrAuthFailed",
    "NvrError",
    "NvrUnreachable",
    "OriginRefused",
    "SourceChanged",
    "SourceError",
    "SpoolError",
    "SpoolFull",
    "SpoolLocked",
]
