"""Keyset paging over recordings in their listing order, (capture start, id).

A page ends with a cursor (:func:`page_cursor`, naming the last row's capture start and id)
that the next request passes as ``after``; :func:`after_clause` turns it back into the
condition "after that row". A deep page then costs what the first does, where an ``offset``
makes the database sort and skip every earlier row, and rows inserted or deleted between
pages neither repeat nor drop one. Used by the search (:mod:`vault.casework.search`) and by
:meth:`vault.vault.Vault.recordings`, so both read one cursor format.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt

from sqlalchemy import ColumnElement, tuple_

from vault.errors import InvalidInput

from .catalog import Recording


def page_cursor(recording: Recording) -> str:
    """The cursor that continues a listing after ``recording`` (pass it as ``after``): opaque
    URL-safe text naming its capture start and id, the listing's sort key."""
    start = recording.captured_start.astimezone(dt.UTC).isoformat(timespec="microseconds")
    raw = f"{start}|{recording.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after_clause(cursor: str) -> ColumnElement[bool]:
    """Rows after ``cursor`` in (captured_start, id) order. Raises InvalidInput for text that
    is not a cursor :func:`page_cursor` made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start_text, _, rid = raw.partition("|")
        start = dt.datetime.fromisoformat(start_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(
            f"bad paging cursor {cursor[:40]!r}: pass the one a page ended with") from None
    if start.tzinfo is None or not rid or len(rid) > 36:
        raise InvalidInput(f"bad paging cursor {cursor[:40]!r}: pass the one a page ended with")
    return tuple_(Recording.captured_start, Recording.id) > tuple_(start, rid)


__all__ = ["after_clause", "page_cursor"]
