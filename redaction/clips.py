"""Incident clips: "camera 3, 14:32 to 14:40" cut from the segments that cover it.

An officer names a source and a capture window; the clip is assembled from every recording of
that source whose capture overlaps the window, across segment boundaries, and stored as a
derived recording with provenance (each source's id, SHA-256 and the offsets used, the window,
the method, the software version) and a ``clip.assembled`` custody event. Each source's
decryption is a ``clip.cut`` custody event with the officer's purpose.

Which frames: a source frame captured at ``T`` (the recording's ``captured_start`` plus the
frame's time from the container start) is in the clip when ``start <= T < end``. So the first
frame is at most one frame interval after ``start`` and the last at most one before ``end``.
The clip's clock starts at its first frame; a gap between recordings stays a gap in time.

How (method ``stream-copy+edge-reencode``), per source recording:

    frames in window:   a .... K1 ================== K2 .... b
                        |head  |   stream copy      | tail |
                        re-encode (libx264)          re-encode

``K1`` is the first keyframe at or after the window's first frame and ``K2`` the last keyframe
(or the end of the file) with everything before it inside the window. The untouched H.264
packets between them are copied bit for bit; only the head and tail are re-encoded, so the clip
starts and ends on the requested frames without re-encoding the hour around them. All parts go
into one MPEG-TS stream (Annex B, so every part carries its own SPS/PPS in band), audio is cut
sample-exactly and re-encoded to AAC, and the result is remuxed to an MP4 with the index at the
front (``faststart``).

Fallback (method ``reencode``): the smart path needs H.264 sources of one picture size and
monotonic timestamps at each join; when a source is something else (HEVC, MJPEG) or the
assembled file does not decode to exactly the frames planned, the whole window is re-encoded
instead. The method used is in the provenance. Either way the clip is H.264/AAC MP4.

Plaintext exists only in a spool directory for the duration of the call and is removed whatever
happens. Audio-only sources are refused (InvalidInput): download the recording instead.

This module is the vault half (which recordings, custody, provenance, storing); the cutting
itself, from decrypted files to the MP4, is :mod:`redaction.clipcut`.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from sqlalchemy import or_, select

from vault import Actor, MediaKind, NotFound, Purpose, Recording, Vault
from vault.capture import Capture
from vault.errors import InvalidInput

from .clipcut import CRF, METHOD_REENCODE, METHOD_SMART, PRESET, Piece, analyse, seconds, write_clip
from .pipeline import software_version

__all__ = [
    "CLIP_ASSEMBLED",
    "CLIP_CUT",
    "MAX_WINDOW",
    "METHOD_REENCODE",
    "METHOD_SMART",
    "IncidentClip",
    "assemble_clip",
    "clip_sources",
]

#: The longest window one clip may span.
MAX_WINDOW = dt.timedelta(hours=2)
#: Custody actions (dotted extension names, see vault.ledger.custody.parse_action).
CLIP_CUT = "clip.cut"  # a source recording decrypted to cut a clip from it
CLIP_ASSEMBLED = "clip.assembled"  # the clip stored as a derived recording


@dataclass(frozen=True)
class IncidentClip:
    """A clip stored in the vault: the derived recording, how it was made, its frame count."""

    recording: Recording
    method: str
    frame_count: int
    source_ids: tuple[str, ...]


def clip_sources(vault: Vault, source_id: str, start: dt.datetime, end: dt.datetime) -> list[Recording]:
    """The live original recordings of ``source_id`` whose capture overlaps [start, end),
    oldest first (derived copies, earlier clips included, are never cut again)."""
    query = (
        select(Recording)
        .where(
            Recording.source_id == source_id,
            Recording.deleted_at.is_(None),
            Recording.parent_id.is_(None),
            Recording.captured_start < end,
            # A recording without an end time is taken to last until the next check (probe).
            or_(Recording.captured_end.is_(None), Recording.captured_end > start),
        )
        .order_by(Recording.captured_start, Recording.id)
    )
    with vault.sessions() as session:
        return list(session.scalars(query))


# --- the operation ----------------------------------------------------------------------------


def assemble_clip(
    vault: Vault,
    source_id: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    actor: Actor,
    purpose: Purpose,
    method: str = "auto",
    max_window: dt.timedelta = MAX_WINDOW,
) -> IncidentClip:
    """Cut [start, end) of ``source_id``'s footage into one clip, stored as a derived recording.

    ``method``: ``"auto"`` (stream copy with re-encoded edges, falling back to a full
    re-encode when that cannot be done or does not verify) or ``"reencode"``.
    Returns the stored clip. Raises InvalidInput (naive times, end <= start, a window longer
    than ``max_window``, an audio-only source, an unknown method), NotFound (no footage of
    the source in the window), Shredded, MediaError, EncodeError. Nothing is stored on error
    and the spool is left clean.
    """
    _check_window(start, end, method=method, max_window=max_window)
    recordings = _clip_recordings(vault, source_id, start, end)
    spool = vault.settings.spool_dir
    spool.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="clip-", dir=spool))
    try:
        pieces, origin = _cut(vault, source_id, recordings, work, start, end, actor=actor,
                              purpose=purpose)
        output, frames, used, fallback = write_clip(
            pieces, work, method=method, stop=seconds(end - start) - origin)
        last = pieces[-1]
        first_at = start + dt.timedelta(seconds=float(origin))
        last_at = start + dt.timedelta(
            seconds=float(origin + last.offset + last.frames[-1] + 1 / last.fps))
        provenance = _provenance(source_id, start, end, pieces, method=used, frames=frames,
                                 first_at=first_at, fallback=fallback)
        stamp = start.strftime("%Y%m%dT%H%M%SZ")
        clip = vault.put_file(
            output,
            Capture(
                source_id=source_id,
                captured_at=first_at,
                captured_end=last_at,
                media_kind=MediaKind.VIDEO,
                original_name=f"{source_id}-{stamp}-clip.mp4",
                parent_id=pieces[0].recording.id,
                derived_from=[p.recording.id for p in pieces],
                provenance=provenance,
                details={
                    "sources": [p.recording.id for p in pieces],
                    "window": [start.isoformat(), end.isoformat()],
                    "method": used,
                    "frames": frames,
                    "purpose": purpose.purpose,
                    **({"reference": purpose.reference} if purpose.reference else {}),
                },
                action=CLIP_ASSEMBLED,
            ),
            actor=actor,
        )
        return IncidentClip(recording=clip, method=used, frame_count=frames,
                            source_ids=tuple(p.recording.id for p in pieces))
    finally:
        # Plaintext leaves the spool as soon as the clip is stored or has failed.
        shutil.rmtree(work, ignore_errors=True)


def _check_window(
    start: dt.datetime, end: dt.datetime, *, method: str, max_window: dt.timedelta
) -> None:
    # Raises InvalidInput for a window or method assemble_clip cannot cut.
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("clip window times must include a timezone (e.g. 2026-11-25T14:32:00Z)")
    if end <= start:
        raise InvalidInput(f"the clip window must end after it starts ({start.isoformat()} to {end.isoformat()})")
    if end - start > max_window:
        raise InvalidInput(
            f"the clip window is {end - start}; at most {max_window} may be clipped at once")
    if method not in ("auto", METHOD_REENCODE):
        raise InvalidInput(f"unknown clip method {method!r}: use 'auto' or 'reencode'")


def _clip_recordings(
    vault: Vault, source_id: str, start: dt.datetime, end: dt.datetime
) -> list[Recording]:
    # The recordings the window overlaps; NotFound for none, InvalidInput for audio-only ones.
    recordings = clip_sources(vault, source_id, start, end)
    if not recordings:
        raise NotFound(f"no footage from source {source_id} between {_window(start, end)}")
    audio_only = [r.id for r in recordings if r.media_kind == MediaKind.AUDIO]
    if audio_only:
        raise InvalidInput(
            f"source {source_id} has audio-only recordings in the window ({', '.join(audio_only)}); "
            "clips are cut from video: download the recordings instead")
    return recordings


def _window(start: dt.datetime, end: dt.datetime) -> str:
    return f"{start.isoformat()} to {end.isoformat()}"


def _cut(
    vault: Vault, source_id: str, recordings: Sequence[Recording], work: Path,
    start: dt.datetime, end: dt.datetime, *, actor: Actor, purpose: Purpose,
) -> tuple[list[Piece], Fraction]:
    """Decrypt each recording into ``work`` (a ``clip.cut`` event each) and find the frames
    of the window in it; returns the pieces, on the clip's clock (0 at its first frame), and
    that first frame's time after ``start``. Raises NotFound when no recording has a frame
    in the window."""
    pieces: list[Piece] = []
    covered = Fraction(0)  # a later (overlapping) recording starts where the last ended
    for n, recording in enumerate(recordings):
        suffix = Path(recording.original_name or "").suffix or ".mp4"
        path = work / f"source-{n}{suffix}"
        vault.export_file(recording.id, path, actor=actor, purpose=purpose, action=CLIP_CUT)
        # Times in the plan are seconds after the window's start.
        offset = seconds(recording.captured_start - start)
        lo = max(Fraction(0), covered) - offset
        hi = seconds(end - start) - offset
        piece = analyse(recording, path, start, lo, hi)
        if piece is None:
            continue
        pieces.append(piece)
        covered = piece.offset + piece.frames[-1] + Fraction(1, 1_000_000)
    if not pieces:
        raise NotFound(f"no footage from source {source_id} between "
                       f"{_window(start, end)} (the recordings that overlap it have no frames "
                       "there)")
    origin = pieces[0].offset + pieces[0].frames[0]
    for piece in pieces:  # the clip's clock: 0 at its first frame
        piece.offset -= origin
    return pieces, origin


def _provenance(
    source_id: str, start: dt.datetime, end: dt.datetime, pieces: Sequence[Piece], *,
    method: str, frames: int, first_at: dt.datetime, fallback: str | None,
) -> dict[str, object]:
    # What the clip was made from and how, stored with it (docs/redaction.md).
    step = 1 / pieces[-1].fps
    sources = [
        {
            "id": p.recording.id,
            "sha256": p.recording.sha256,
            "captured_start": p.recording.captured_start.isoformat(),
            "from_ms": int((p.frames[0]) * 1000),
            "to_ms": int((p.frames[-1] + step) * 1000),
            "frames": len(p.frames),
            "parts": [[kind, int(a * 1000), int(b * 1000)] for kind, a, b in p.parts]
            if method == METHOD_SMART else [["encode", int(p.frames[0] * 1000),
                                             int(p.frames[-1] * 1000)]],
        }
        for p in pieces
    ]
    provenance: dict[str, object] = {
        "kind": "clip",
        "source_id": source_id,
        "sources": sources,
        "window": [start.isoformat(), end.isoformat()],
        "first_frame_at": first_at.isoformat(),
        "method": method,
        "frame_count": frames,
        "software_version": software_version(),
        "parameters": {"codec": "libx264", "crf": CRF, "preset": PRESET,
                       "audio": "aac" if any(p.has_audio for p in pieces) else None},
    }
    if fallback:
        provenance["fallback_reason"] = fallback
    return provenance
