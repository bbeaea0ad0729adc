"""Times people type: ISO-8601 with an offset as given, without one as UK local time.

Officers, IG staff and operators think in the clock on the wall in the UK (Europe/London: GMT
in winter, BST in summer); the catalog, the custody ledger and every response keep UTC. This is
the one parser for a time a person typed, used by the API (:data:`api.schemas.Instant`), the
CLI (``api/cli/_common.parse_time``) and the web app's forms, so the same text means the same
instant everywhere (issue #11 finding 26).

- ``2026-11-25T14:32:00Z`` or ``...+01:00``: that instant.
- ``2026-11-25T14:32`` (no offset), or a bare date (midnight): UK local time, and the result
  says so (:attr:`ParsedTime.assumed`), so callers can tell the person which zone was used.

Two hours a year need a rule, and the rule is stated, not guessed:

- **Spring forward** (last Sunday of March, 01:00-01:59 does not exist): refused, naming the
  gap, rather than moved an hour.
- **Fall back** (last Sunday of October, 01:00-01:59 happens twice, first BST then GMT): a time
  with no known role is refused, naming the two offsets to choose from; a window *start* takes
  the earlier (BST) instant and a window *end* the later (GMT) one (``edge=``), so a window
  covers both and no footage is missed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from .errors import InvalidInput

ZONE = "Europe/London"
UK = ZoneInfo(ZONE)  # the tzdata wheel provides it where the system has no zone files

Edge = Literal["start", "end"]

__all__ = ["UK", "ZONE", "Edge", "ParsedTime", "parse_instant", "uk_wall_time"]


@dataclass(frozen=True)
class ParsedTime:
    """A typed time as an instant in UTC, and how it was read."""

    utc: dt.datetime
    #: ``None`` when the text carried its own offset; else the UK zone in force then,
    #: e.g. ``"Europe/London (GMT, +00:00)"``.
    assumed: str | None

    def note(self, field: str) -> str | None:
        """One line telling a person how ``field`` was read, or None if it had an offset."""
        if self.assumed is None:
            return None
        local = self.utc.astimezone(UK)
        return (f"{field} {local:%Y-%m-%dT%H:%M:%S} read as {self.assumed} = "
                f"{self.utc:%Y-%m-%dT%H:%M:%S}Z")


def _describe(when: dt.datetime) -> str:
    local = when.astimezone(UK)
    offset = local.strftime("%z")
    return f"{ZONE} ({local.tzname()}, {offset[:3]}:{offset[3:]})"


def uk_wall_time(naive: dt.datetime, *, field: str, edge: Edge | None = None) -> dt.datetime:
    """The UTC instant of a UK wall-clock time (``naive``: no tzinfo).

    ``edge`` picks the instant of a repeated hour (see the module docstring); without it a
    repeated hour is refused. Raises InvalidInput naming ``field`` for a time the clocks skip,
    or a repeated one with no ``edge``.
    """
    if naive.tzinfo is not None:
        raise ValueError("uk_wall_time takes a time without a timezone")
    early = naive.replace(tzinfo=UK, fold=0)
    late = naive.replace(tzinfo=UK, fold=1)
    # A wall time that does not exist maps to an instant whose wall time differs from it.
    if early.astimezone(dt.UTC).astimezone(UK).replace(tzinfo=None) != naive:
        raise InvalidInput(
            f"{field}: {naive:%H:%M} on {naive:%-d %B %Y} does not exist in UK time (the clocks "
            "went forward an hour); use a time before or after the change"
        )
    if early.utcoffset() != late.utcoffset():
        if edge is None:
            raise InvalidInput(
                f"{field}: {naive:%H:%M} on {naive:%-d %B %Y} happens twice in UK time (the clocks "
                f"went back an hour): add the offset, {naive:%Y-%m-%dT%H:%M}+01:00 for the first "
                f"(BST) or {naive:%Y-%m-%dT%H:%M}+00:00 for the second (GMT)"
            )
        return (early if edge == "start" else late).astimezone(dt.UTC)
    return early.astimezone(dt.UTC)


def parse_instant(text: str, *, field: str = "time", edge: Edge | None = None) -> ParsedTime:
    """Read an ISO-8601 time a person typed (see the module docstring).

    Raises InvalidInput naming ``field`` for text that is not an ISO-8601 time, or a UK time
    that does not exist or (without ``edge``) happens twice.
    """
    cleaned = text.strip()
    try:
        value = dt.datetime.fromisoformat(cleaned)  # Python 3.11 reads "Z" too
    except ValueError:
        raise InvalidInput(
            f"{field}: {text!r} is not an ISO-8601 time (e.g. 2026-11-25T14:32:00Z, or "
            "2026-11-25T14:32 for UK local time)"
        ) from None
    if value.tzinfo is not None:
        return ParsedTime(value.astimezone(dt.UTC), None)
    instant = uk_wall_time(value, field=field, edge=edge)
    return ParsedTime(instant, _describe(instant))
