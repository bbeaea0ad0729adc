"""Issue #12: windows typed in UK local time (api/web/uktime.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from api.web.uktime import format_uk, parse_uk, zone_name
from vault.errors import InvalidInput


def test_winter_is_gmt_and_summer_is_bst() -> None:
    """Issue #12: 14:30 in November is 14:30 UTC (GMT); in July it is 13:30 UTC (BST)."""
    assert parse_uk("2026-11-25", "14:30", field="From", edge="start") == dt.datetime(2026, 11, 25, 14, 30, tzinfo=dt.UTC)
    summer = parse_uk("2026-07-14", "14:30", field="From", edge="start")
    assert summer == dt.datetime(2026, 7, 14, 13, 30, tzinfo=dt.UTC)
    assert zone_name(summer) == "BST" and format_uk(summer) == "14 Jul 2026, 14:30:00 BST"


def test_the_hour_the_clocks_skip_is_refused() -> None:
    """Issue #12: 01:30 on 29 March 2026 never happened in the UK: refused, not moved."""
    with pytest.raises(InvalidInput, match="does not exist in UK time"):
        parse_uk("2026-03-29", "01:30", field="From", edge="start")


def test_the_repeated_hour_is_covered_whole() -> None:
    """Issue #12: 01:00-02:00 on 25 October 2026 happens twice; a window from 01:10 to 01:50
    starts at the first 01:10 (BST) and ends at the second 01:50 (GMT), so it misses neither."""
    start = parse_uk("2026-10-25", "01:10", field="From", edge="start")
    end = parse_uk("2026-10-25", "01:50", field="To", edge="end")
    assert start == dt.datetime(2026, 10, 25, 0, 10, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 10, 25, 1, 50, tzinfo=dt.UTC)


@pytest.mark.parametrize("day,clock,match", [("25/11/2026", "14:00", "YYYY-MM-DD"),
                                             ("2026-11-25", "2pm", "HH:MM")])
def test_malformed_dates_and_times_say_what_to_type(day: str, clock: str, match: str) -> None:
    """Issue #12: a date or time in the wrong shape is refused with an example of the right one."""
    with pytest.raises(InvalidInput, match=match):
        parse_uk(day, clock, field="From", edge="start")
