"""Captures the tests store again and again: a CCTV camera's video over a window."""

from __future__ import annotations

import datetime as dt

from vault import MediaKind, SourceKind
from vault.capture import Capture


def cctv_video(source_id: str, site: str, start: dt.datetime, length: dt.timedelta, *,
               name: str | None = None) -> Capture:
    """Video from CCTV camera ``source_id`` at ``site``, from ``start`` for ``length``."""
    return Capture(source_id=source_id, source_kind=SourceKind.CCTV, site=site,
                   captured_at=start, captured_end=start + length,
                   media_kind=MediaKind.VIDEO, original_name=name)
