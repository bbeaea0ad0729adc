"""UK local time (Europe/London: GMT in winter, BST in summer) as the web pages show and read it.

Officers think in the clock on the wall; the catalog stores UTC. Reading a typed wall-clock
time is :func:`vault.localtime.uk_wall_time`, the one rule the API and CLI use too: the hour the
clocks skip in spring is refused, naming the gap; in the hour repeated in autumn a window
*start* takes the earlier (BST) instant and an *end* the later (GMT) one, so no footage is
missed. This module adds what the forms need around it: a date and a time in two fields, and
times printed with their zone.
"""

from __future__ import annotations

import datetime as dt

from vault.errors import InvalidInput
from vault.localtime import UK, Edge, uk_wall_time


def to_uk(when: dt.datetime) -> dt.datetime:
    """``when`` (aware) in UK local time."""
    return when.astimezone(UK)


def zone_name(when: dt.datetime) -> str:
    """``GMT`` or ``BST``: the UK zone in force at ``when`` (aware)."""
    return to_uk(when).tzname() or "UK time"


def format_uk(when: dt.datetime | None, *, seconds: bool = True) -> str:
    """``25 Nov 2026, 15:00:00 GMT``: an aware time as an officer reads it ('' for None)."""
    if when is None:
        return ""
    local = to_uk(when)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    return f"{local:%-d %b %Y}, {local.strftime(clock)} {local.tzname()}"


def parse_uk(day: str, clock: str, *, field: str, edge: Edge) -> dt.datetime:
    """The UTC instant of ``day`` (YYYY-MM-DD) at ``clock`` (HH:MM or HH:MM:SS), UK time.

    ``edge`` picks the instant of a repeated hour (see the module docstring). Raises
    InvalidInput naming ``field`` for a malformed date or time, or a time the clocks skip.
    """
    try:
        date = dt.date.fromisoformat(day.strip())
    except ValueError:
        raise InvalidInput(f"{field}: enter the date as YYYY-MM-DD, for example 2026-11-25") from None
    try:
        time = dt.time.fromisoformat(clock.strip())
    except ValueError:
        raise InvalidInput(f"{field}: enter the time as HH:MM in 24-hour UK time, for example 14:30") from None
    # The one rule for UK wall-clock times, shared with the API and the CLI (issue #11 f26).
    return uk_wall_time(dt.datetime.combine(date, time.replace(tzinfo=None)), field=field, edge=edge)


__all__ = ["UK", "format_uk", "parse_uk", "to_uk", "zone_name"]
