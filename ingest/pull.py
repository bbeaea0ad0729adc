"""Pull past footage from an NVR: a camera and a window in, verified recordings and a report out.

An incident was reported this morning; the footage of last night sits on the site's NVR, which
the vault was not recording. :func:`pull` asks the NVR for exactly that window and ingests it
like any other footage (ingest/pipeline.py: spool, probe, hash, encrypt, store, catalog,
custody, verify). In order:

1. **The request is checked** before anything is fetched: the NVR is one the agents file names
   (``[[nvrs]]``), the camera one it maps for that NVR, the window ends after it starts, starts
   in the past and is no longer than ``max_window_hours``. A window ending in the future is cut
   at now (the rest is reported as a gap). Who may ask is the caller's business (the API and
   CLI check ``holds.place`` on the camera's source, vault/casework/policy.py ``require_source``).
2. **The NVR lists** what it holds of the camera in the window (:meth:`Nvr.listing`). The parts
   of the window it does not hold are **gaps**, each with its reason: ``before_retention`` (the
   window starts before the oldest footage the NVR keeps of that camera), ``no_recording``
   (the NVR recorded nothing then), ``future`` (after now), ``short_transfer`` (the NVR listed
   footage but sent less than it listed).
3. **The NVR's clock** (as it stated it with the listing) is compared with the vault's
   (ingest/clock.py); the offset goes into every pulled recording's clock check and custody
   event, and is flagged beyond the agent's ``clock_offset_bound_s`` (or the NVR's stated
   resolution, if coarser). The footage's own times are never rewritten: an NVR whose clock
   runs fast was asked for the window *on its own clock*, and the flag tells the reviewer so.
4. **Each held span is fetched in pieces** of at most ``piece_seconds``, each one request and
   one recording, cut by the NVR at the requested instants (frame-accurate to the keyframe:
   mediamtx and ONVIF replay both start at the keyframe at or before the start). A piece's
   bytes go to ``partial/`` in the pull's spool as they arrive; a dropped connection is
   retried (``max_attempts``, growing delay) and **resumed**: from the byte already held where
   the NVR honours ranges, else the NVR's resend is checked byte for byte against what is
   held and only the rest written (a resend that differs starts the piece again). A pull
   interrupted outright (a killed process) is resumed by running it again: pieces already in
   the vault are not fetched again (the spool journal remembers them by NVR, camera and time).
5. **Each piece goes through the pipeline** with its provenance (``pull``): the NVR (id, kind,
   site, URL), the camera and the NVR's name for it, the window asked for, the piece's own
   window, who asked, and the pull's id. The ``ingested`` custody event carries the same.
6. **One ``ingest.pull`` custody event** by the person who asked closes the pull, whatever the
   outcome: the NVR, camera, window, the recordings made, the gaps, the clock check, and the
   error if it failed (an NVR that is down, refused credentials).

Progress is reported through ``progress`` (:class:`PullProgress`) as bytes arrive.

Why this module is long: a pull is one operation with one report: the request's checks,
the gaps found, the window split into pieces, each piece downloaded or replayed and recorded;
the NVR protocols themselves are in ``ingest/nvr/``.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vault.actors import Actor, Purpose
from vault.storage.catalog import utcnow
from vault.config import Settings
from vault.errors import InvalidInput, VaultError
from vault.plaintext import open_private
from vault.vault import Vault

from .clock import ClockCheck, check_clock
from .config import AgentsFile, NvrConfig
from .errors import NvrAuthFailed, NvrError, NvrUnreachable, SpoolLocked
from .nvr import FileNvr, Nvr, Replayed, ReplayNvr, Span, open_nvr
from .pipeline import Pipeline
from .spool import ItemState, Spool

log = logging.getLogger("ingest.pull")

#: Custody action closing every pull (dotted extension name, vault/ledger/custody.py).
PULL_ACTION = "ingest.pull"
#: A piece shorter than this is not asked for (the NVR cannot cut less than a frame).
MIN_PIECE_S = 0.1
#: A piece whose media is shorter than asked by more than this is reported as a gap.
SHORTFALL_S = 1.0
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_CHUNK = 1 << 20


class GapReason(str, enum.Enum):
    """Why part of a window was not pulled."""

    BEFORE_RETENTION = "before_retention"
    NO_RECORDING = "no_recording"
    FUTURE = "future"
    SHORT_TRANSFER = "short_transfer"


@dataclass(frozen=True)
class Gap:
    """Part of the window with no footage pulled, and why (``message`` says it to a person)."""

    start: dt.datetime
    end: dt.datetime
    reason: GapReason
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (and custody-ready: no floats)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "seconds": round((self.end - self.start).total_seconds()),
            "reason": self.reason.value,
            "message": self.message,
        }


@dataclass(frozen=True)
class PulledPiece:
    """One piece of the window, now a recording in the vault."""

    start: dt.datetime
    end: dt.datetime
    recording_id: str
    sha256: str
    size: int
    duration_ms: int | None
    attempts: int
    resumed_bytes: int  # bytes held before the last attempt and kept
    already_pulled: bool  # an earlier run of the same pull stored it
    replay: dict[str, Any] | None = None  # an RTSP replay's account (ingest/nvr/replay.py)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (and custody-ready)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "recording_id": self.recording_id,
            "sha256": self.sha256,
            "size": self.size,
            "duration_ms": self.duration_ms,
            "attempts": self.attempts,
            "resumed_bytes": self.resumed_bytes,
            "already_pulled": self.already_pulled,
            "replay": self.replay,
        }


@dataclass(frozen=True)
class PullProgress:
    """Where a pull is: piece ``piece`` of ``pieces``, ``seconds_done`` of ``seconds_total``
    of held footage stored, ``bytes`` received in this piece so far."""

    piece: int
    pieces: int
    seconds_done: float
    seconds_total: float
    bytes: int
    message: str


@dataclass
class PullReport:
    """The outcome of one pull (``state``: ``complete``, ``partial``, ``empty``, ``failed``)."""

    id: str
    nvr: dict[str, Any]
    camera: str
    nvr_camera: str
    start: dt.datetime
    end: dt.datetime
    requested_by: Actor
    pieces: list[PulledPiece] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    clock: ClockCheck | None = None
    oldest_held: dt.datetime | None = None
    error: str | None = None

    @property
    def state(self) -> str:
        if self.error is not None:
            return "failed"
        if not self.pieces:
            return "empty"
        return "partial" if self.gaps else "complete"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for the CLI and the API."""
        return {
            "id": self.id,
            "state": self.state,
            "nvr": self.nvr,
            "camera": self.camera,
            "nvr_camera": self.nvr_camera,
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "requested_by": _who(self.requested_by),
            "recordings": [p.to_dict() for p in self.pieces],
            "gaps": [g.to_dict() for g in self.gaps],
            "clock": self.clock.to_dict() if self.clock else None,
            "oldest_held": self.oldest_held.isoformat() if self.oldest_held else None,
            "error": self.error,
        }


def pull_spool_dir(settings: Settings, nvr_id: str) -> Path:
    """The spool of pulls from ``nvr_id``: one per NVR, shared by the CLI and the API, so a
    pull interrupted in one resumes from the other."""
    return settings.spool_dir / "pull" / _SAFE.sub("_", nvr_id)


def _who(actor: Actor) -> dict[str, Any]:
    return {"user": actor.user, "role": actor.role.value, "organisation": actor.organisation}


# -- the request -----------------------------------------------------------------------------


def check_request(
    config: NvrConfig, camera: str, start: dt.datetime, end: dt.datetime, *, now: dt.datetime
) -> tuple[str, dt.datetime]:
    """Check a pull request against the NVR's configuration (step 1 of the module docstring).

    Returns the NVR's name for ``camera`` and the window's end cut at ``now``. Raises
    InvalidInput naming what is wrong and what would be right.
    """
    if camera not in config.cameras:
        known = ", ".join(sorted(config.cameras))
        raise InvalidInput(
            f"NVR {config.id} has no camera {camera!r} in the agents file (its cameras: {known})"
        )
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("window times must include a timezone")
    if end <= start:
        raise InvalidInput(
            f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})"
        )
    if start >= now:
        raise InvalidInput(
            f"the window starts in the future ({start.isoformat()}; now {now.isoformat()}): "
            "an NVR only holds the past"
        )
    longest = dt.timedelta(hours=config.max_window_hours)
    if end - start > longest:
        raise InvalidInput(
            f"the window is {(end - start).total_seconds() / 3600:.1f} h; NVR {config.id} allows "
            f"at most {config.max_window_hours:g} h per pull (max_window_hours): split it"
        )
    return config.cameras[camera], min(end, now)


def find_gaps(
    spans: tuple[Span, ...] | list[Span],
    start: dt.datetime,
    end: dt.datetime,
    *,
    oldest: dt.datetime | None,
) -> list[Gap]:
    """The parts of ``[start, end)`` no span covers, each with its reason (step 2)."""
    gaps: list[Gap] = []
    cursor = start
    for span in sorted(spans, key=lambda s: s.start):
        if span.start > cursor:
            gaps.append(_gap(cursor, min(span.start, end), oldest))
        cursor = max(cursor, span.end)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append(_gap(cursor, end, oldest))
    return [g for g in gaps if g.end > g.start]


def _gap(start: dt.datetime, end: dt.datetime, oldest: dt.datetime | None) -> Gap:
    if oldest is None:
        return Gap(start, end, GapReason.NO_RECORDING,
                   "the NVR holds no footage of this camera at all")
    if end <= oldest:
        return Gap(
            start, end, GapReason.BEFORE_RETENTION,
            f"before the oldest footage the NVR keeps of this camera ({oldest.isoformat()}): "
            "the window reaches further back than the NVR keeps footage",
        )
    return Gap(start, end, GapReason.NO_RECORDING, "the NVR recorded nothing then")


def split_pieces(spans: list[Span], piece_seconds: float) -> list[Span]:
    """Each span cut into consecutive pieces of at most ``piece_seconds``."""
    out: list[Span] = []
    step = dt.timedelta(seconds=piece_seconds)
    for span in spans:
        cursor = span.start
        while (span.end - cursor).total_seconds() >= MIN_PIECE_S:
            stop = min(cursor + step, span.end)
            # No sliver of less than MIN_PIECE_S at the end: the last piece takes it.
            if (span.end - stop).total_seconds() < MIN_PIECE_S:
                stop = span.end
            out.append(Span(cursor, stop))
            cursor = stop
    return out


# -- the pull --------------------------------------------------------------------------------


def pull(
    vault: Vault,
    agents: AgentsFile,
    *,
    nvr_id: str,
    camera: str,
    start: dt.datetime,
    end: dt.datetime,
    requested_by: Actor,
    spool_dir: Path,
    purpose: Purpose | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
    progress: Callable[[PullProgress], None] | None = None,
    nvr: Nvr | None = None,
    stop: threading.Event | None = None,
    lock_wait_s: float = 60.0,
) -> PullReport:
    """Pull ``camera``'s footage for ``[start, end)`` from NVR ``nvr_id`` into the vault.

    See the module docstring for the steps. ``spool_dir`` is this NVR's pull spool (one pull
    per NVR at a time: a second waits up to ``lock_wait_s`` for the first); ``clock`` is the
    vault's clock; ``nvr`` replaces the client the agents file describes (tests). Returns the
    report, also when the window held nothing (``state`` ``empty``). Raises InvalidInput for a
    bad request (nothing is recorded), AgentsFileError for an unknown NVR; NvrUnreachable,
    NvrAuthFailed, NvrError when the NVR fails (the failure is in the ``ingest.pull`` custody
    event first); SpoolLocked when another pull from the NVR holds its spool past the wait.
    """
    config = agents.nvr(nvr_id)
    nvr_camera, until = check_request(config, camera, start, end, now=clock())
    client = nvr if nvr is not None else open_nvr(config)
    report = PullReport(
        id=str(uuid.uuid4()),
        nvr=client.describe(),
        camera=camera,
        nvr_camera=nvr_camera,
        start=start,
        end=end,
        requested_by=requested_by,
    )
    try:
        with _open_spool(spool_dir, lock_wait_s, nvr_id) as spool:
            _run(vault, agents, config, client, report, spool, until=until, purpose=purpose,
                 clock=clock, progress=progress, stop=stop or threading.Event())
    except VaultError as error:
        report.error = str(error)
        raise
    finally:
        if nvr is None:
            client.close()
        _record(vault, report, purpose)
    return report


@contextmanager
def _open_spool(path: Path, wait_s: float, nvr_id: str) -> Iterator[Spool]:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            spool = Spool(path)
            break
        except SpoolLocked:
            if time.monotonic() >= deadline:
                raise SpoolLocked(
                    f"another pull from NVR {nvr_id} is still running (spool {path}); "
                    "try again when it has finished"
                ) from None
            time.sleep(0.5)
    try:
        spool.recover()
        yield spool
    finally:
        spool.close()


def _run(
    vault: Vault,
    agents: AgentsFile,
    config: NvrConfig,
    client: Nvr,
    report: PullReport,
    spool: Spool,
    *,
    until: dt.datetime,
    purpose: Purpose | None,
    clock: Callable[[], dt.datetime],
    progress: Callable[[PullProgress], None] | None,
    stop: threading.Event,
) -> None:
    start, end = report.start, until
    # 2. What the NVR holds, and its clock at that moment.
    listing = client.listing(report.nvr_camera, start, end)
    received_at = clock()
    bound = max(agents.agent.clock_offset_bound_s, listing.server_time_resolution_s)
    report.clock = check_clock(
        received_at=received_at, bound_s=bound, device_time=listing.server_time
    )
    if report.clock.flagged:
        log.warning("NVR %s: %s", config.id, report.clock.reason)
    spans = sorted(listing.spans, key=lambda s: s.start)
    if not spans or spans[0].start > start:
        report.oldest_held = client.oldest(report.nvr_camera)
    report.gaps = find_gaps(spans, start, end, oldest=report.oldest_held)
    if until < report.end:
        report.gaps.append(Gap(until, report.end, GapReason.FUTURE,
                               "after the time of the pull: no footage exists yet"))
    pieces = split_pieces(spans, config.piece_seconds)
    total = sum(p.seconds for p in pieces)
    pipeline = Pipeline(vault, spool, agent_name=agents.agent.name, clock_bound_s=bound)
    provenance = {
        "pull_id": report.id,
        "nvr": report.nvr,
        "camera": report.camera,
        "nvr_camera": report.nvr_camera,
        "window": {"start": start.isoformat(), "end": report.end.isoformat()},
        "requested_by": _who(report.requested_by),
        "purpose": purpose.purpose if purpose else None,
        "reference": purpose.reference if purpose else None,
    }
    done = 0.0
    for index, piece in enumerate(pieces, 1):
        if stop.is_set():
            raise NvrError(f"pull {report.id} stopped before piece {index}", source_id=config.id)

        def tell(received: int, message: str, *, _i: int = index, _done: float = done) -> None:
            if progress is not None:
                progress(PullProgress(_i, len(pieces), _done, total, received, message))

        pulled = _pull_piece(
            client, config, report, spool, pipeline, piece,
            provenance=provenance, received_at=received_at,
            server_time=listing.server_time, tell=tell, clock=clock,
        )
        report.pieces.append(pulled)
        done += piece.seconds
        for gap in (pulled.replay or {}).get("gaps", []):
            # Found by the replay (D flag, or a jump in the frames' recorded times): an NVR
            # without event search lists no gaps inside a recording (ingest/nvr/onvif.py).
            report.gaps.append(Gap(
                dt.datetime.fromisoformat(gap["start"]), dt.datetime.fromisoformat(gap["end"]),
                GapReason.NO_RECORDING,
                "the NVR recorded nothing then (its replay skipped this stretch)",
            ))
        if pulled.duration_ms is not None:
            short = piece.seconds - pulled.duration_ms / 1000
            if short > SHORTFALL_S:
                cut = piece.end - dt.timedelta(seconds=short)
                report.gaps.append(Gap(
                    cut, piece.end, GapReason.SHORT_TRANSFER,
                    f"the NVR listed footage to {piece.end.isoformat()} but sent "
                    f"{pulled.duration_ms / 1000:.1f} s of the {piece.seconds:.1f} s asked for",
                ))
        tell(pulled.size, f"stored piece {index} of {len(pieces)} as {pulled.recording_id}")
    report.gaps.sort(key=lambda g: g.start)


def _origin(nvr_camera: str, piece: Span) -> str:
    return f"{nvr_camera}|{piece.start.isoformat()}|{piece.end.isoformat()}"


def _pull_piece(
    client: Nvr,
    config: NvrConfig,
    report: PullReport,
    spool: Spool,
    pipeline: Pipeline,
    piece: Span,
    *,
    provenance: dict[str, Any],
    received_at: dt.datetime,
    server_time: dt.datetime | None,
    tell: Callable[..., None],
    clock: Callable[[], dt.datetime],
) -> PulledPiece:
    origin = _origin(report.nvr_camera, piece)
    earlier = spool.find(config.id, origin)
    already = earlier is not None and earlier.state == ItemState.ACKNOWLEDGED
    attempts, resumed = 0, 0
    replayed: Replayed | None = None
    if earlier is not None and earlier.state != ItemState.REJECTED:
        item = earlier
        replayed_meta = ((earlier.meta or {}).get("pull") or {}).get("piece", {}).get("replay")
    else:
        part = _partial_path(spool, config.id, origin)
        if isinstance(client, ReplayNvr):
            replayed = _replay(client, config, report.nvr_camera, piece, part, tell=tell)
            attempts = replayed.attempts
        elif isinstance(client, FileNvr):
            attempts, resumed = _download(client, config, report.nvr_camera, piece, part,
                                          tell=tell)
        else:  # pragma: no cover - open_nvr only builds the two
            raise NvrError(f"NVR {config.id}: its client can neither fetch nor replay",
                           source_id=config.id)
        replayed_meta = replayed.to_dict() if replayed is not None else None
        item = spool.add(
            part,
            source=config.id,
            origin=origin,
            name=f"{_SAFE.sub('_', report.nvr_camera)}_{piece.start:%Y%m%dT%H%M%S.%f}Z.mp4",
            vault_source=report.camera,
            source_kind=config.vault_kind,
            mode="move",
            received_at=received_at,
            device_time=server_time,
            captured_start=piece.start,
            captured_end=piece.end,
            time_basis=f"NVR recording index ({config.kind})",
            meta={
                "site": config.site,
                "camera": report.camera,
                "pull": {
                    **provenance,
                    "piece": {
                        "start": piece.start.isoformat(),
                        "end": piece.end.isoformat(),
                        **({"replay": replayed_meta} if replayed_meta else {}),
                    },
                },
            },
        )
    item = pipeline.process(item)
    if item.state != ItemState.ACKNOWLEDGED or item.recording_id is None:
        raise NvrError(
            f"NVR {config.id}: piece {piece.start.isoformat()}..{piece.end.isoformat()} was "
            f"refused by the pipeline: {item.error}",
            source_id=config.id,
        )
    duration = (item.media_info or {}).get("duration_s")
    return PulledPiece(
        start=piece.start,
        end=piece.end,
        recording_id=item.recording_id,
        sha256=item.sha256 or "",
        size=item.size,
        duration_ms=round(duration * 1000) if isinstance(duration, (int, float)) else None,
        attempts=attempts,
        resumed_bytes=resumed,
        already_pulled=already,
        replay=replayed_meta,
    )


def _partial_path(spool: Spool, nvr_id: str, origin: str) -> Path:
    digest = hashlib.sha256(origin.encode()).hexdigest()[:24]
    return spool.partial_dir / f"pull-{_SAFE.sub('_', nvr_id)[:64]}-{digest}.mp4"


def _replay(
    client: ReplayNvr,
    config: NvrConfig,
    nvr_camera: str,
    piece: Span,
    part: Path,
    *,
    tell: Callable[..., None],
) -> Replayed:
    """Replay one piece into ``part`` (step 4 for NVRs that replay frames: ONVIF). The frames
    are journalled beside ``part`` as they arrive, so a drop, or a killed process and a rerun,
    resumes from the last keyframe held. Raises NvrAuthFailed at once; NvrError after
    ``max_attempts``."""
    replayed = client.replay(
        nvr_camera, piece.start, piece.end,
        journal=part.with_suffix(".frames"), out=part,
        max_attempts=config.max_attempts, tell=tell,
    )
    if replayed.waited_for_keyframe:
        # Said where it is seen: the first frames of the piece could not be decoded.
        tell(part.stat().st_size,
             f"the NVR's replay did not start at a keyframe: {replayed.waited_for_keyframe} "
             f"frames dropped; the piece starts at {replayed.first_keyframe}")
    return replayed


def _download(
    client: FileNvr,
    config: NvrConfig,
    nvr_camera: str,
    piece: Span,
    part: Path,
    *,
    tell: Callable[..., None],
) -> tuple[int, int]:
    """Fetch one piece into ``part``, resuming after drops (step 4). Returns (attempts, bytes
    kept from before the last attempt). Raises NvrAuthFailed at once; NvrError after
    ``max_attempts``."""
    resumed = 0
    for attempt in range(1, config.max_attempts + 1):
        held = part.stat().st_size if part.exists() else 0
        try:
            with client.fetch(nvr_camera, piece.start, piece.end, offset=held) as answer:
                kept = _receive(answer.chunks(), part, held, resumable=answer.resumable,
                                tell=tell)
            if held:
                resumed = kept
            return attempt, resumed
        except NvrAuthFailed:
            raise
        except NvrError as error:
            if attempt == config.max_attempts:
                # Still an NvrUnreachable when it is one (the API and CLI tell them apart).
                kind = NvrUnreachable if isinstance(error, NvrUnreachable) else NvrError
                raise kind(
                    f"{error} (attempt {attempt} of {config.max_attempts}; "
                    f"{part.stat().st_size if part.exists() else 0} bytes kept for a rerun)",
                    source_id=config.id,
                ) from None
            delay = min(5.0, 0.25 * 2 ** (attempt - 1))
            tell(part.stat().st_size if part.exists() else 0,
                 f"connection dropped ({error}); retrying in {delay:.2f} s")
            log.warning("NVR %s: %s; attempt %d, retrying", config.id, error, attempt)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _receive(
    chunks: Iterator[bytes],
    part: Path,
    held: int,
    *,
    resumable: bool,
    tell: Callable[..., None],
) -> int:
    """Write an answer to ``part``; return how many bytes held before it were kept.

    ``resumable``: the answer starts at byte ``held``. Otherwise it starts at byte 0 and is
    compared with the bytes already in ``part``: where it first differs (the NVR is sending
    something else now) the file is cut there and the rest written from the answer; an answer
    that ends inside the bytes held is the whole piece now, and the file is cut to it.
    """
    if not held or resumable:
        _write(chunks, part, held, tell=tell)
        return held
    stream = iter(chunks)
    matched = 0
    with part.open("rb") as mine:
        for chunk in stream:
            need = min(len(chunk), held - matched)
            ours = mine.read(need)
            same = _common_prefix(ours, chunk[:need])
            if same < need:
                log.warning("%s: the NVR's resend differs from the bytes held at byte %d; "
                            "keeping only what matched", part.name, matched + same)
                os.truncate(part, matched + same)
                _write(_prepend(chunk[same:], stream), part, matched + same, tell=tell)
                return matched + same
            matched += need
            if matched == held:
                _write(_prepend(chunk[need:], stream), part, held, tell=tell)
                return held
    os.truncate(part, matched)
    return matched


def _common_prefix(a: bytes, b: bytes) -> int:
    if a == b:
        return len(a)
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _write(chunks: Iterator[bytes], part: Path, held: int, *, tell: Callable[..., None]) -> int:
    received = held
    # Footage: 0600 from its creation (vault/plaintext.py); synced before it is journalled.
    with open_private(part, append=True) as out:
        for chunk in chunks:
            out.write(chunk)
            received += len(chunk)
            tell(received, "receiving")
        out.flush()
        os.fsync(out.fileno())
    return received


def _record(vault: Vault, report: PullReport, purpose: Purpose | None) -> None:
    """Step 6: the ``ingest.pull`` custody event by the person who asked."""
    clock = report.clock
    details: dict[str, Any] = {
        "pull_id": report.id,
        "state": report.state,
        "nvr": report.nvr,
        "camera": report.camera,
        "nvr_camera": report.nvr_camera,
        "window": {"start": report.start.isoformat(), "end": report.end.isoformat()},
        "recordings": [p.to_dict() for p in report.pieces],
        "gaps": [g.to_dict() for g in report.gaps],
        "oldest_held": report.oldest_held.isoformat() if report.oldest_held else None,
        "clock": None if clock is None else {
            "device_time": clock.device_time.isoformat() if clock.device_time else None,
            "received_at": clock.received_at.isoformat(),
            "offset_ms": None if clock.offset_s is None else round(clock.offset_s * 1000),
            "flagged": clock.flagged,
            "reason": clock.reason,
        },
        "error": report.error,
    }
    ids = [p.recording_id for p in report.pieces]
    try:
        with vault.sessions.begin() as session:
            vault.ledger.append(
                session,
                PULL_ACTION,
                actor=report.requested_by,
                object_ids=ids,
                hashes={p.recording_id: p.sha256 for p in report.pieces},
                purpose=purpose,
                details=details,
            )
        vault.ledger.maybe_checkpoint()
    except VaultError as error:  # the pull's own outcome stands; say loudly what is missing
        log.error("could not record pull %s in the custody ledger: %s", report.id, error)


__all__ = [
    "PULL_ACTION",
    "Gap",
    "GapReason",
    "PullProgress",
    "PullReport",
    "PulledPiece",
    "check_request",
    "find_gaps",
    "pull",
    "pull_spool_dir",
    "split_pieces",
]
