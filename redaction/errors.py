"""Errors raised by the redaction pipeline.

Every error here is a :class:`vault.errors.VaultError`, so a caller that reports vault
problems catches these too. Messages name the file or the plan field at fault, never pixel
data.

    VaultError
    └── RedactionError        anything the redaction pipeline refuses or cannot do
        ├── MediaError        the footage cannot be read: missing, zero-length, not a media
        │   │                 file, corrupt, truncated, or without a video stream
        │   └── ChunkError    long footage could not be split, planned or joined in chunks
        │                     as laid out (redaction/chunks.py)
        ├── PlanError         a redaction plan that does not validate, or that belongs to
        │                     another recording
        └── EncodeError       the redacted copy could not be written
"""

from __future__ import annotations

from pathlib import Path

from vault.errors import VaultError

__all__ = ["ChunkError", "EncodeError", "MediaError", "PlanError", "RedactionError"]


class RedactionError(VaultError):
    """Base class of every error the redaction pipeline raises."""


class MediaError(RedactionError):
    """The footage cannot be read: missing, empty, corrupt, truncated or without video.

    ``path`` is the file at fault, so a caller can report it without parsing the message.
    """

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


class ChunkError(MediaError):
    """Footage could not be split, planned or joined in chunks as laid out: a cut that is not
    the frames planned, chunk plans that do not fit the layout."""


class PlanError(RedactionError):
    """A redaction plan is invalid, or does not belong to the footage it is applied to."""


class EncodeError(RedactionError):
    """The redacted copy could not be encoded or written."""


class DetectorUnavailable(RedactionError):
    """The face detector cannot run on the device it was asked to run on (say, CUDA with an
    onnxruntime build that has none). Nothing was planned: no face would have been found."""
