"""Footage responses with HTTP range requests (RFC 9110 section 14), for seeking players.

- No ``Range`` (or a unit other than ``bytes``, which RFC 9110 says to ignore): 200, whole file.
- ``bytes=A-B``, ``bytes=A-``, ``bytes=-N``: 206 with ``Content-Range: bytes A-B/size``.
- Several ranges: answered with one range covering them all (a server may coalesce), so a
  player never gets ``multipart/byteranges``, which none of them need.
- A range that starts at or past the end, a malformed one, or any range of an empty file:
  416 with ``Content-Range: bytes */size``.

Only the encrypted segments that cover the range are read and decrypted
(:meth:`vault.vault.Vault.read`), and the access is logged before the first byte is sent. The
ETag is the plaintext SHA-256: recordings are immutable, so ``If-Range`` always matches.

**A window per request** (``window=N``, share streams): the response carries at most N bytes.
A request without ``Range`` (or with ``bytes=A-``, or any range wider than N) is answered 206
with the first N bytes from its start and a ``Content-Range`` naming them; players read
``Content-Range`` and ask for the rest. So a stream that must not hand over a copy (a view-only
share, a share whose downloads are counted) never yields a whole recording in one request, and
every further piece is another logged request.

**What the browser may do with the bytes** (issue #11 finding 6): a recording is whatever was
uploaded, and an upload named ``x.html`` or ``y.svg`` would otherwise run as a page of the
vault's own origin (stealing a share token or a session). So only ``audio/*`` and ``video/*``
are served with their own type, and only they may be ``inline``; everything else is
``application/octet-stream`` as an attachment. Every footage response also carries
``X-Content-Type-Options: nosniff`` (no guessing HTML from the bytes),
``Content-Security-Policy: sandbox`` (a document opened anyway runs with no script, no origin)
and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import base64
import re
import urllib.parse

from fastapi.responses import StreamingResponse

from vault.actors import Actor, Purpose
from vault.storage.catalog import Recording
from vault.ledger.custody import Action
from vault.errors import InvalidInput
from vault.vault import ByteRange, Vault

from .errors import RangeNotSatisfiable

MAX_RANGES = 16
#: Content-Security-Policy of every footage response: a sandbox with nothing allowed.
FOOTAGE_CSP = "sandbox"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")
# A bare type/subtype token (RFC 9110 5.6.2); parameters and anything odd fall back to octet-stream.
_PLAYABLE = re.compile(r"(audio|video)/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
OCTET_STREAM = "application/octet-stream"


def served_type(content_type: str | None) -> str:
    """The ``Content-Type`` a stored recording is served with: its own for audio and video,
    ``application/octet-stream`` for anything else (HTML, SVG, PDF, unknown)."""
    value = (content_type or "").strip().lower()
    return value if _PLAYABLE.fullmatch(value) else OCTET_STREAM


def window_range(wanted: tuple[int, int] | None, size: int, window: int) -> tuple[int, int] | None:
    """``wanted`` (None: the whole file) cut to at most ``window`` bytes from its start; an
    empty recording's ``wanted`` unchanged (it has no bytes to cut)."""
    if size == 0:
        return wanted
    start, end = wanted if wanted is not None else (0, size - 1)
    return start, min(end, start + window - 1)


def resolve_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The absolute inclusive range a ``Range`` header asks for, or None for the whole file.

    Raises RangeNotSatisfiable (416).
    """
    if header is None:
        return None
    unit, sep, specs = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None  # RFC 9110 14.2: ignore a range unit we do not support
    parts = [p for p in specs.split(",") if p.strip()]
    if not parts or len(parts) > MAX_RANGES:
        raise RangeNotSatisfiable(
            f"Range must name 1-{MAX_RANGES} byte ranges (A-B, A- or -N)", size=size
        )
    if size == 0:
        raise RangeNotSatisfiable("range not satisfiable: the recording is empty", size=size)
    resolved: list[tuple[int, int]] = []
    for part in parts:
        try:
            byte_range = ByteRange.parse(part)
        except InvalidInput as exc:
            raise RangeNotSatisfiable(str(exc), size=size) from None
        try:
            resolved.append(byte_range.resolve(size))
        except InvalidInput:
            continue  # RFC 9110 14.1.1: unsatisfiable ranges are dropped from a set
    if not resolved:
        raise RangeNotSatisfiable(
            f"range not satisfiable: the recording is {size} bytes (offsets 0-{size - 1})",
            size=size,
        )
    return min(s for s, _ in resolved), max(e for _, e in resolved)


def _disposition(kind: str, recording: Recording) -> str:
    name = recording.original_name or f"recording-{recording.id}"
    ascii_name = _SAFE_NAME.sub("_", name)[:200] or f"recording-{recording.id}"
    quoted = urllib.parse.quote(name[:200], safe="")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"


def footage_response(
    vault: Vault,
    recording: Recording,
    *,
    actor: Actor,
    purpose: Purpose,
    range_header: str | None,
    action: Action,
    attachment: bool,
    details: dict[str, object] | None = None,
    window: int | None = None,
) -> StreamingResponse:
    """Log the access (with ``details``) and stream the recording (or the range asked for).

    ``attachment=False`` asks for ``inline``, which only audio and video get (see the module
    docstring); ``window`` caps the bytes this one response carries (206 with Content-Range).
    Raises Shredded (410) for deleted footage, RangeNotSatisfiable (416).
    """
    # Deleted footage answers 410 before any Range is looked at.
    vault.ensure_not_deleted(recording)
    wanted = resolve_range(range_header, recording.size)
    if window is not None:
        if window < 1:
            raise ValueError("window must be at least 1 byte")
        wanted = window_range(wanted, recording.size, window)
    media_type = served_type(recording.content_type)
    inline = not attachment and media_type != OCTET_STREAM
    _, (start, end), chunks = vault.read(
        recording.id,
        actor=actor,
        purpose=purpose,
        byte_range=ByteRange(*wanted) if wanted else None,
        action=action,
        details=details,
    )
    length = max(0, end - start + 1)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(length),
        "ETag": f'"{recording.sha256}"',
        # RFC 9530: the whole representation's digest, whatever range this response carries.
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(recording.sha256)).decode()}:",
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": FOOTAGE_CSP,
        "Referrer-Policy": "no-referrer",  # a share link's token must not leak onwards
        "Content-Disposition": _disposition("inline" if inline else "attachment", recording),
    }
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{recording.size}"
    return StreamingResponse(
        chunks,
        status_code=206 if wanted is not None else 200,
        media_type=media_type,
        headers=headers,
    )


__all__ = [
    "FOOTAGE_CSP",
    "MAX_RANGES",
    "OCTET_STREAM",
    "footage_response",
    "resolve_range",
    "served_type",
    "window_range",
]
