"""What is known about footage as it arrives: the one argument :meth:`Vault.put_stream` takes.

Every way footage enters the vault (an upload, the ingest pipeline, a pulled NVR window, a
redacted copy, a clip, a disclosure package) describes it with one :class:`Capture`: where it
came from, when it was captured and received, what the device clock said, what it was derived
from and which custody event records it. The vault then decides the rest (object id, data key,
retention date) the same way for all of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .ledger.custody import Action
from .storage.catalog import MediaKind, SourceKind

_AUDIO_EXTS = {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".amr"}
_VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".ts", ".m2ts", ".mjpeg", ".mjpg", ".webm", ".264",
               ".h264", ".h265", ".hevc", ".3gp"}


def guess_media_kind(name: str) -> MediaKind:
    """The media kind suggested by a file name's extension (ingest probes properly)."""
    ext = Path(name).suffix.lower()
    if ext in _AUDIO_EXTS:
        return MediaKind.AUDIO
    if ext in _VIDEO_EXTS:
        return MediaKind.VIDEO
    return MediaKind.OTHER


@dataclass(frozen=True, kw_only=True)
class Capture:
    """Where footage came from and when: everything about it the caller knows before storing.

    ``source_id`` names the camera, device or upload source (created on first use with
    ``source_kind`` and ``site``). ``captured_at`` and ``captured_end`` are the capture window
    as stated, with a timezone; :meth:`Vault.put_file` fills a missing ``captured_at`` from the
    file's modification time, :meth:`Vault.put_stream` refuses one. ``received_at`` is when the
    footage reached the vault's agent (default: the vault's clock); ``device_time``,
    ``clock_offset_ms`` and ``clock_flagged`` record the device clock check made then.
    ``parent_id`` is the recording a derived copy was made from (it follows its parent for
    retention); ``derived_from`` names every recording it was made from (default: the parent).
    ``details`` are added to the custody event, whose kind is ``action``.
    """

    source_id: str
    captured_at: dt.datetime | None = None
    captured_end: dt.datetime | None = None
    source_kind: SourceKind = SourceKind.UPLOAD
    media_kind: MediaKind | None = None
    original_name: str | None = None
    site: str | None = None
    media_info: dict[str, object] | None = None
    received_at: dt.datetime | None = None
    device_time: dt.datetime | None = None
    clock_offset_ms: int | None = None
    clock_flagged: bool = False
    parent_id: str | None = None
    derived_from: Sequence[str] | None = None
    provenance: dict[str, object] | None = None
    details: dict[str, object] | None = None
    action: Action | str = Action.INGESTED

    def for_file(self, path: Path) -> Capture:
        """This capture with what a file says filled in where the caller said nothing: the
        capture time from its modification time (the best evidence left), the media kind from
        its extension and its name as the original name."""
        captured_at = self.captured_at
        if captured_at is None:
            captured_at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        return replace(
            self,
            captured_at=captured_at,
            media_kind=self.media_kind or guess_media_kind(path.name),
            original_name=self.original_name or path.name,
        )


__all__ = ["Capture", "guess_media_kind"]
